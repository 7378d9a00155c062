//! Single-precision GEMM, row-major: OpenBLAS when the build script linked it (`cfg(scadles_blas)`),
//! otherwise the pure-Rust matrixmultiply kernel through ndarray.
use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut2, ShapeBuilder};

#[cfg(scadles_blas)]
mod ffi {
    pub const CBLAS_ROW_MAJOR: i32 = 101;
    pub const CBLAS_NO_TRANS: i32 = 111;
    pub const CBLAS_TRANS: i32 = 112;
    extern "C" {
        #[allow(clippy::too_many_arguments)]
        pub fn cblas_sgemm(
            order: i32,
            trans_a: i32,
            trans_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        pub fn openblas_set_num_threads(n: i32);
    }
}

/// Name of the GEMM in use: `"openblas"` or `"matrixmultiply"`.
pub fn blas_name() -> &'static str {
    if cfg!(scadles_blas) {
        "openblas"
    } else {
        "matrixmultiply"
    }
}

/// Threads a top-level GEMM is split over (0 = not set yet: the rayon pool's size).
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static BLAS_SINGLE: std::sync::Once = std::sync::Once::new();

/// Sets the number of threads GEMMs use. Parallelism is owned by rayon: OpenBLAS itself always
/// runs single-threaded, large GEMMs called outside the rayon pool are split into column or row
/// blocks over `n` threads, and GEMMs called from inside the pool (per-image convolution parts)
/// run on the calling thread. One owner of the cores avoids OpenBLAS's spinning workers
/// competing with rayon's.
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    blas_single_threaded();
}

fn blas_single_threaded() {
    BLAS_SINGLE.call_once(|| {
        #[cfg(scadles_blas)]
        // SAFETY: plain setter of OpenBLAS's global thread count; 1 is valid.
        unsafe {
            ffi::openblas_set_num_threads(1)
        };
    });
}

/// Threads available to one GEMM or convolution called from outside the rayon pool; 1 inside it.
pub fn num_threads() -> usize {
    if rayon::current_thread_index().is_some() {
        return 1;
    }
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Minimum slice length holding a `rows × cols` row-major matrix with leading dimension `ld`.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// Checks the operand shapes against their slices; a mismatch is a programming error.
#[allow(clippy::too_many_arguments)]
fn check_operands(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &[f32],
    ldc: usize,
) {
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    assert!(
        lda >= ac.max(1) && a.len() >= span(ar, ac, lda),
        "sgemm: A is {ar}x{ac} with lda {lda}, slice {}",
        a.len()
    );
    assert!(
        ldb >= bc.max(1) && b.len() >= span(br, bc, ldb),
        "sgemm: B is {br}x{bc} with ldb {ldb}, slice {}",
        b.len()
    );
    assert!(
        ldc >= n.max(1) && c.len() >= span(m, n, ldc),
        "sgemm: C is {m}x{n} with ldc {ldc}, slice {}",
        c.len()
    );
}

/// `C = beta*C` on the `m × n` block (the k = 0 case, where the product is empty).
fn scale_c(m: usize, n: usize, beta: f32, c: &mut [f32], ldc: usize) {
    for row in c.chunks_mut(ldc).take(m) {
        for v in &mut row[..n] {
            // beta = 0 overwrites, as in BLAS (C may hold garbage).
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
    }
}

/// `C = alpha * op(A) * op(B) + beta * C`, row-major; `op(A)` is `m × k`, `op(B)` is `k × n`.
/// `A` is stored `m × k` (or `k × m` when `trans_a`) with leading dimension `lda`, likewise `B`.
/// `beta = 0` overwrites `C` without reading it. Zero `m`, `n` or `k` does no product.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    #[cfg(scadles_blas)]
    {
        check_operands(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            scale_c(m, n, beta, c, ldc);
            return;
        }
        blas_single_threaded();
        let threads = num_threads();
        if threads > 1 && (m as u64) * (n as u64) * (k as u64) >= SPLIT_MIN_WORK && m.max(n) >= 64 * threads {
            split_blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
            return;
        }
        // SAFETY: check_operands proved every slice spans its matrix under the given leading
        // dimensions, and `c` is the only mutable operand.
        unsafe { blas(trans_a, trans_b, m, n, k, alpha, a.as_ptr(), lda, b.as_ptr(), ldb, beta, c.as_mut_ptr(), ldc) };
    }
    #[cfg(not(scadles_blas))]
    sgemm_matrixmultiply(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// A `rows × cols` row-major view with leading dimension `ld`, transposed when `tr`.
#[cfg_attr(scadles_blas, allow(dead_code))]
fn strided_view(s: &[f32], rows: usize, cols: usize, ld: usize, tr: bool) -> ArrayView2<'_, f32> {
    let v =
        ArrayView2::from_shape((rows, cols).strides((ld, 1)), &s[..span(rows, cols, ld)]).expect("sgemm: strided view");
    if tr {
        v.reversed_axes()
    } else {
        v
    }
}

/// The pure-Rust path of [`sgemm`] (ndarray's `general_mat_mul` over strided views); always
/// compiled so that it is tested even where OpenBLAS is linked.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(scadles_blas, allow(dead_code))]
pub(crate) fn sgemm_matrixmultiply(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    check_operands(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    let av = if trans_a {
        strided_view(a, k, m, lda, true)
    } else {
        strided_view(a, m, k, lda, false)
    };
    let bv = if trans_b {
        strided_view(b, n, k, ldb, true)
    } else {
        strided_view(b, k, n, ldb, false)
    };
    let cspan = span(m, n, ldc);
    let mut cv = ArrayViewMut2::from_shape((m, n).strides((ldc, 1)), &mut c[..cspan]).expect("sgemm: strided view");
    if beta == 0.0 {
        // matrixmultiply would read C for beta = 0 only through 0*C; clear it so NaN garbage cannot leak.
        cv.fill(0.0);
    }
    general_mat_mul(alpha, &av, &bv, beta, &mut cv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    type Gemm = fn(bool, bool, usize, usize, usize, f32, &[f32], usize, &[f32], usize, f32, &mut [f32], usize);

    /// Large enough to be split across threads (≥ SPLIT_MIN_WORK, long side ≥ 64·threads), with
    /// padded leading dimensions, along both m and n: equal to the unsplit pure-Rust product.
    #[cfg(scadles_blas)]
    #[test]
    fn split_gemm_matches_unsplit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        super::set_num_threads(2);
        for &(m, n, k) in &[(96usize, 700usize, 160usize), (700, 96, 160)] {
            assert!((m * n * k) as u64 >= SPLIT_MIN_WORK && m.max(n) >= 128);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + 3, bc + 5, n + 7);
                let a: Vec<f32> = (0..ar * lda).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..br * ldb).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let c0: Vec<f32> = (0..m * ldc).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let (mut c1, mut c2) = (c0.clone(), c0.clone());
                sgemm(ta, tb, m, n, k, 0.7, &a, lda, &b, ldb, 0.3, &mut c1, ldc);
                sgemm_matrixmultiply(ta, tb, m, n, k, 0.7, &a, lda, &b, ldb, 0.3, &mut c2, ldc);
                for (idx, (x, y)) in c1.iter().zip(&c2).enumerate() {
                    assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "m{m} n{n} ta{ta} tb{tb}: c[{idx}] {x} vs {y}");
                }
            }
        }
    }

    /// Naive f64 reference of the same contract.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        beta: f64,
        c: &[f32],
        ldc: usize,
    ) -> Vec<f64> {
        let mut out: Vec<f64> = c.iter().map(|&v| v as f64).collect();
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { a[p * lda + i] } else { a[i * lda + p] } as f64;
                    let bv = if tb { b[j * ldb + p] } else { b[p * ldb + j] } as f64;
                    s += av * bv;
                }
                out[i * ldc + j] = alpha * s + beta * c[i * ldc + j] as f64;
            }
        }
        out
    }

    fn check(gemm: Gemm, name: &str) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for &(m, n, k) in &[
            (5usize, 7usize, 3usize),
            (1, 9, 17),
            (33, 2, 65),
            (64, 70, 40),
            (3, 1, 1),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    // Padded leading dimensions catch a stride mistake.
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + 3, bc + 1, n + 2);
                    let a: Vec<f32> = (0..ar * lda).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    let b: Vec<f32> = (0..br * ldb).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 1.0), (-1.5, 0.25)] {
                        let mut c = c0.clone();
                        gemm(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut c, ldc);
                        let r = reference(ta, tb, m, n, k, alpha as f64, &a, lda, &b, ldb, beta as f64, &c0, ldc);
                        for (i, (&got, &want)) in c.iter().zip(&r).enumerate() {
                            assert!(
                                (got as f64 - want).abs() <= 1e-4 + 1e-4 * want.abs(),
                                "{name} ta={ta} tb={tb} m={m} n={n} k={k} alpha={alpha} beta={beta}: C[{i}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sgemm_matches_naive_all_transposes() {
        check(sgemm, blas_name());
    }

    #[test]
    fn matrixmultiply_path_matches_naive_all_transposes() {
        check(sgemm_matrixmultiply, "matrixmultiply");
    }

    #[test]
    fn zero_sizes_only_scale_c() {
        for gemm in [sgemm as Gemm, sgemm_matrixmultiply as Gemm] {
            // k = 0: C = beta*C, and beta = 0 clears NaN garbage.
            let mut c = vec![2.0f32, f32::NAN, 4.0, 8.0];
            gemm(false, false, 2, 2, 0, 1.0, &[], 1, &[], 2, 0.0, &mut c, 2);
            assert_eq!(c, vec![0.0; 4]);
            let mut c = vec![2.0f32, 3.0, 4.0, 8.0];
            gemm(true, true, 2, 2, 0, 1.0, &[], 2, &[], 1, 0.5, &mut c, 2);
            assert_eq!(c, vec![1.0, 1.5, 2.0, 4.0]);
            // m = 0 or n = 0: untouched.
            let mut c = vec![5.0f32; 3];
            gemm(false, false, 0, 3, 2, 1.0, &[], 2, &[1.0; 6], 3, 0.0, &mut c, 3);
            gemm(false, false, 1, 0, 2, 1.0, &[1.0; 2], 2, &[], 1, 0.0, &mut c, 1);
            assert_eq!(c, vec![5.0; 3]);
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_c() {
        for gemm in [sgemm as Gemm, sgemm_matrixmultiply as Gemm] {
            let a = [1.0f32, 2.0, 3.0, 4.0];
            let b = [1.0f32, 0.0, 0.0, 1.0];
            let mut c = [f32::NAN; 4];
            gemm(false, false, 2, 2, 2, 1.0, &a, 2, &b, 2, 0.0, &mut c, 2);
            assert_eq!(c, a);
        }
    }
}

/// Multiply-adds below which a GEMM is not worth splitting across threads.
#[cfg(scadles_blas)]
const SPLIT_MIN_WORK: u64 = 1 << 23;

/// A raw pointer that may cross to rayon workers (each block touches disjoint elements of C).
#[cfg(scadles_blas)]
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
#[cfg(scadles_blas)]
unsafe impl Send for SendPtr {}
#[cfg(scadles_blas)]
unsafe impl Sync for SendPtr {}

/// Splits C into `threads` blocks along its larger dimension and runs one single-threaded
/// OpenBLAS call per block on the rayon pool. Operands were checked by the caller.
#[cfg(scadles_blas)]
#[allow(clippy::too_many_arguments)]
fn split_blas(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    threads: usize,
) {
    use rayon::prelude::*;
    let along_n = n >= m;
    let dim = if along_n { n } else { m };
    // Blocks rounded to 16 so every block but the last keeps full SIMD panels.
    let step = dim.div_ceil(threads).div_ceil(16) * 16;
    let cp = SendPtr(c.as_mut_ptr());
    let (ap, bp) = (a.as_ptr() as usize, b.as_ptr() as usize);
    (0..dim.div_ceil(step)).into_par_iter().for_each(|blk| {
        let lo = blk * step;
        let len = step.min(dim - lo);
        // Moves the whole SendPtr into the closure (edition 2021 would capture only its raw field).
        #[allow(clippy::redundant_locals)]
        let cp = cp;
        // Offsets of the block's first element in A, B and C (row-major, op() as flagged).
        let (a_off, b_off, c_off, mm, nn) = if along_n {
            (0, if trans_b { lo * ldb } else { lo }, lo, m, len)
        } else {
            (if trans_a { lo } else { lo * lda }, 0, lo * ldc, len, n)
        };
        // SAFETY: the caller checked that A, B and C span their matrices; a block reads a
        // sub-matrix of A or B and writes a sub-matrix of C that no other block writes.
        unsafe {
            blas(
                trans_a,
                trans_b,
                mm,
                nn,
                k,
                alpha,
                (ap as *const f32).add(a_off),
                lda,
                (bp as *const f32).add(b_off),
                ldb,
                beta,
                cp.0.add(c_off),
                ldc,
            )
        };
    });
}

/// One single-threaded OpenBLAS call on raw operands.
///
/// # Safety
/// Each pointer must span its matrix under its leading dimension (row-major, op() as flagged),
/// and no other thread may write the elements of C this call writes.
#[cfg(scadles_blas)]
#[allow(clippy::too_many_arguments)]
unsafe fn blas(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let t = |tr: bool| if tr { ffi::CBLAS_TRANS } else { ffi::CBLAS_NO_TRANS };
    let i = |v: usize| i32::try_from(v).expect("sgemm: dimension exceeds i32");
    ffi::cblas_sgemm(ffi::CBLAS_ROW_MAJOR, t(trans_a), t(trans_b), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}
