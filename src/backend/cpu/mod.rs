//! CPU backend: ops with forward and backward on contiguous row-major f32 slices, images NCHW.
//!
//! Convolutions lower to one GEMM per chunk of images (im2col over the chunk); elementwise,
//! normalisation and pooling ops run over (n, c) planes with rayon when the tensor is large enough
//! to pay for the fork. Gradients are written over the output slices, never accumulated.
pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod dense_conv;
pub mod dropout;
pub mod gemm;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod winograd;

pub use activation::{relu_backward, relu_backward_inplace, relu_forward, relu_inplace};
pub use batchnorm::{batchnorm2d_backward, batchnorm2d_forward_eval, batchnorm2d_forward_train};
pub use conv::{conv2d_backward, conv2d_forward, conv_algo, set_conv_algo, Conv2dShape, ConvAlgo};
pub use dropout::{dropout_backward, dropout_forward};
pub use gemm::{blas_name, set_num_threads, sgemm};
pub use linear::{linear_backward, linear_forward};
pub use loss::{softmax_cross_entropy, topk_correct};
pub use pool::{
    adaptive_avgpool2d_backward, adaptive_avgpool2d_forward, maxpool2d_backward, maxpool2d_forward, Pool2dShape,
};

use rayon::prelude::*;

/// Keeps freed activation and workspace blocks (up to 32 MB each, glibc's ceiling) in the heap
/// instead of returning them to the kernel: every training step allocates the same tensors again,
/// and fresh pages cost a fault and a clear each (about 4% of a ResNet step). Idempotent.
pub fn retain_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets glibc allocator parameters; both values are within range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

/// Below this many elements a loop stays on the calling thread: a rayon fork costs a few
/// microseconds, more than the work it would split.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;

/// Smallest number of `chunk`-sized pieces one rayon task takes, so each task does at least
/// a few thousand elements of work.
pub(crate) fn min_pieces(chunk: usize) -> usize {
    (4096 / chunk.max(1)).max(1)
}

/// Runs `f(index, piece)` over `data` split into `chunk`-sized pieces, in parallel when `work`
/// (elements touched in all) is large enough.
pub(crate) fn for_each_piece<T: Send, F>(data: &mut [T], chunk: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    if chunk == 0 || data.is_empty() {
        return;
    }
    if work < PAR_MIN_ELEMS || rayon::current_num_threads() == 1 {
        data.chunks_mut(chunk).enumerate().for_each(|(i, p)| f(i, p));
    } else {
        data.par_chunks_mut(chunk)
            .with_min_len(min_pieces(chunk))
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared helpers of the op tests: random data, tolerance checks, central differences.
    use rand::{Rng, SeedableRng};

    pub fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    pub fn randv(rng: &mut impl Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    pub fn to64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// Asserts `|got - want| <= atol + rtol*|want|` elementwise, listing the first mismatches.
    pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let bad: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (&g, &w))| {
                // Written so that NaN fails.
                let within = (g as f64 - w).abs() <= atol + rtol * w.abs();
                !within
            })
            .take(5)
            .map(|(i, (g, w))| format!("[{i}] got {g} want {w}"))
            .collect();
        assert!(bad.is_empty(), "{what}: mismatches (first 5): {}", bad.join(", "));
    }

    /// Central differences (step 1e-6) of `loss` at `p` with respect to every element of `p`.
    pub fn numeric_grad(p: &[f64], mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
        let eps = 1e-6;
        let mut q = p.to_vec();
        (0..p.len())
            .map(|i| {
                q[i] = p[i] + eps;
                let lp = loss(&q);
                q[i] = p[i] - eps;
                let lm = loss(&q);
                q[i] = p[i];
                (lp - lm) / (2.0 * eps)
            })
            .collect()
    }

    /// `Σ y·r`, the scalar whose gradient the backward tests check.
    pub fn dot(y: &[f64], r: &[f64]) -> f64 {
        y.iter().zip(r).map(|(a, b)| a * b).sum()
    }
}
