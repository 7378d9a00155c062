//! Kernel parameter structs, field for field the structs of `kernels/common.cuh` (one per kernel
//! family, passed by value as the first kernel argument). The sizes are asserted on both sides.
use cudarc::driver::DeviceRepr;

/// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (`gemm.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub trans_a: u32,
    pub trans_b: u32,
    pub alpha: f32,
    pub beta: f32,
}

/// NCHW convolution, weight [c_out, c_in, kh, kw] (`conv.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConvParams {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub oh: u32,
    pub ow: u32,
    /// Split-K chunk of the weight gradient's reduction (n*oh*ow), a multiple of 16.
    pub k_chunk: u32,
    pub beta: f32,
}

/// Per-channel bias over [n, c, hw] (`conv.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BiasParams {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub beta: f32,
}

/// Sum of `splits` partial buffers of `len` values (`conv.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReduceParams {
    pub len: u32,
    pub splits: u32,
    pub beta: f32,
}

/// Batch normalisation over [n, c, hw] (`batchnorm.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BnParams {
    pub n: u32,
    pub c: u32,
    pub hw: u32,
    pub eps: f32,
    pub momentum: f32,
}

/// Elementwise op over `len` values (`activation.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EltParams {
    pub len: u32,
}

/// 2-D pooling over NCHW planes (`pool.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
}

/// Softmax cross-entropy over [n, classes] (`loss.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct XentParams {
    pub n: u32,
    pub classes: u32,
    pub scale: f32,
}

/// SGD with momentum and weight decay (`optimizer.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SgdParams {
    pub len: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

/// Top-k by magnitude (`topk.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopkParams {
    pub len: u32,
    pub k: u32,
    pub shift: u32,
    pub chunk: u32,
    pub nblocks: u32,
}

/// Segmented top-k / sums of squares over a block table (`topk.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SegParams {
    pub nseg: u32,
    pub nblocks: u32,
    pub chunk: u32,
    pub shift: u32,
}

/// Inverted dropout over `len` values (`dropout.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DropoutParams {
    pub len: u32,
    /// `ceil(p·2³²)`: an element whose hash has its upper 32 bits below this is dropped.
    pub threshold: u32,
    /// The 64-bit mask seed, low and high halves.
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// `1/(1−p)`, the factor of the kept values.
    pub scale: f32,
}

/// cand = weight * g + residual (`pack.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PackParams {
    pub len: u32,
    pub weight: f32,
}

/// Scatter of `count` (index, value) pairs into `len` values (`pack.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScatterParams {
    pub count: u32,
    pub len: u32,
    pub scale: f32,
}

// SAFETY: each struct is `#[repr(C)]`, made only of u32/f32 fields with no padding, and has the
// same layout as its C counterpart in kernels/common.cuh (sizes asserted on both sides).
unsafe impl DeviceRepr for GemmParams {}
unsafe impl DeviceRepr for ConvParams {}
unsafe impl DeviceRepr for BiasParams {}
unsafe impl DeviceRepr for ReduceParams {}
unsafe impl DeviceRepr for BnParams {}
unsafe impl DeviceRepr for EltParams {}
unsafe impl DeviceRepr for PoolParams {}
unsafe impl DeviceRepr for XentParams {}
unsafe impl DeviceRepr for SgdParams {}
unsafe impl DeviceRepr for TopkParams {}
unsafe impl DeviceRepr for SegParams {}
unsafe impl DeviceRepr for DropoutParams {}
unsafe impl DeviceRepr for PackParams {}
unsafe impl DeviceRepr for ScatterParams {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// The same sizes are `static_assert`ed in kernels/common.cuh.
    #[test]
    fn sizes_match_common_cuh() {
        let cuh = super::super::kernels::COMMON_CUH;
        for (name, size) in [
            ("GemmParams", size_of::<GemmParams>()),
            ("ConvParams", size_of::<ConvParams>()),
            ("BiasParams", size_of::<BiasParams>()),
            ("ReduceParams", size_of::<ReduceParams>()),
            ("BnParams", size_of::<BnParams>()),
            ("EltParams", size_of::<EltParams>()),
            ("PoolParams", size_of::<PoolParams>()),
            ("XentParams", size_of::<XentParams>()),
            ("SgdParams", size_of::<SgdParams>()),
            ("TopkParams", size_of::<TopkParams>()),
            ("SegParams", size_of::<SegParams>()),
            ("DropoutParams", size_of::<DropoutParams>()),
            ("PackParams", size_of::<PackParams>()),
            ("ScatterParams", size_of::<ScatterParams>()),
        ] {
            let assert = format!("static_assert(sizeof({name}) == {size},");
            assert!(cuh.contains(&assert), "kernels/common.cuh lacks `{assert}`: layouts differ");
        }
    }
}
