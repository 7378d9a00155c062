// Shared definitions of the CUDA kernels: parameter structs (one per kernel family, mirrored
// field for field by `#[repr(C)]` structs in src/backend/cuda/params.rs), block reductions and the
// two GEMM cores (SIMT and TF32 tensor-core) that gemm.cu and conv.cu instantiate with their own
// operand loaders.
//
// The source is compiled by NVRTC with no headers: every kernel file pastes this one in place of
// its `#include "common.cuh"` line before compiling.
#pragma once

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

// +inf without <math.h> (NVRTC compiles with no headers).
#define POS_INF __int_as_float(0x7f800000)

// ---------------------------------------------------------------------------------------------
// Parameter structs. Sizes are asserted here and in Rust, so a field added on one side only fails
// the NVRTC compile test.
// ---------------------------------------------------------------------------------------------

/// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C.
struct GemmParams {
    u32 m, n, k;
    u32 lda, ldb, ldc;
    u32 trans_a, trans_b;
    float alpha, beta;
};
static_assert(sizeof(GemmParams) == 40, "GemmParams layout");

/// NCHW convolution, weight [c_out, c_in, kh, kw]. `k_chunk` is the split-K chunk of the weight
/// gradient (grid.z partial sums); `beta` scales what is already in the output (0 overwrites).
struct ConvParams {
    u32 n, c_in, h, w;
    u32 c_out, kh, kw, stride, pad;
    u32 oh, ow;
    u32 k_chunk;
    float beta;
};
static_assert(sizeof(ConvParams) == 52, "ConvParams layout");

/// Per-channel bias of an [n, c, hw] tensor (conv and linear layers).
struct BiasParams {
    u32 n, c, hw;
    float beta;
};
static_assert(sizeof(BiasParams) == 16, "BiasParams layout");

/// Sum of `splits` partial [len] buffers: out = sum + beta * out.
struct ReduceParams {
    u32 len, splits;
    float beta;
};
static_assert(sizeof(ReduceParams) == 12, "ReduceParams layout");

/// Batch normalisation over [n, c, hw], statistics per channel (PyTorch BatchNorm2d).
struct BnParams {
    u32 n, c, hw;
    float eps, momentum;
};
static_assert(sizeof(BnParams) == 20, "BnParams layout");

/// Elementwise op over `len` values.
struct EltParams {
    u32 len;
};
static_assert(sizeof(EltParams) == 4, "EltParams layout");

/// 2-D pooling over NCHW planes. Max pooling uses kh, kw, stride, pad; adaptive average pooling
/// derives its windows from (h, w) -> (oh, ow) and ignores them.
struct PoolParams {
    u32 n, c, h, w;
    u32 oh, ow;
    u32 kh, kw, stride, pad;
};
static_assert(sizeof(PoolParams) == 40, "PoolParams layout");

/// Softmax cross-entropy over [n, classes] logits; `scale` multiplies the gradient (g / n for
/// the mean over the batch).
struct XentParams {
    u32 n, classes;
    float scale;
};
static_assert(sizeof(XentParams) == 12, "XentParams layout");

/// SGD with momentum and weight decay, PyTorch semantics (dampening 0, no Nesterov).
struct SgdParams {
    u32 len;
    float lr, momentum, weight_decay;
};
static_assert(sizeof(SgdParams) == 16, "SgdParams layout");

/// Top-k by magnitude over `len` values. `shift` is the radix pass's bit offset; `chunk` is the
/// number of consecutive elements one block owns in the counting and compaction passes.
struct TopkParams {
    u32 len, k, shift, chunk, nblocks;
};
static_assert(sizeof(TopkParams) == 20, "TopkParams layout");

/// Segmented top-k and sums of squares over `nseg` consecutive segments of one buffer, cut into
/// `nblocks` blocks of at most `chunk` values that never straddle a segment (the block table);
/// `shift` is the radix pass's byte position.
struct SegParams {
    u32 nseg, nblocks, chunk, shift;
};
static_assert(sizeof(SegParams) == 16, "SegParams layout");

/// Inverted dropout over `len` values. Element i is dropped when the upper 32 bits of its hash
/// (the i-th value of the SplitMix64 stream started at the seed) are below `threshold` =
/// ceil(p * 2^32), i.e. with probability p; kept values are multiplied by `scale` = 1/(1 - p). The
/// 64-bit seed is passed as two halves so that the struct holds only 32-bit fields.
struct DropoutParams {
    u32 len, threshold, seed_lo, seed_hi;
    float scale;
};
static_assert(sizeof(DropoutParams) == 20, "DropoutParams layout");

/// Weighted packing before top-k: cand = weight * g + residual.
struct PackParams {
    u32 len;
    float weight;
};
static_assert(sizeof(PackParams) == 8, "PackParams layout");

/// Scatter of `count` (index, value) pairs into a dense buffer of `len` values.
struct ScatterParams {
    u32 count, len;
    float scale;
};
static_assert(sizeof(ScatterParams) == 12, "ScatterParams layout");

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (<= 1024).
/// The order of additions is fixed by the launch shape, so results are run-to-run identical.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // part[] may still be read by a previous call
    if (lane == 0) part[wid] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.0f;
    return warp_sum(v);
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : -POS_INF;
    return warp_max(v);
}

// ---------------------------------------------------------------------------------------------
// GEMM cores. C[m,n] = sum_k A(m,k) B(k,n) over k in [k_begin, k_end), tile (blockIdx.y, blockIdx.x).
// Loaders are functors `float operator()(u32 row, u32 col) const` that return 0 outside the
// matrix; the store is `void operator()(u32 m, u32 n, float acc) const`, called inside bounds.
// ---------------------------------------------------------------------------------------------

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define SIMT_THREADS 256
#define MMA_THREADS 128

/// Plain FP32 core: 256 threads, each owning a 4x4 set of outputs strided by 16 so that
/// neighbouring threads store neighbouring columns.
template <class LA, class LB, class ST>
__device__ void gemm_core_simt(const LA& la, const LB& lb, const ST& st, u32 M, u32 N, u32 k_begin,
                               u32 k_end) {
    __shared__ float As[TILE_K][TILE_M + 1];
    __shared__ float Bs[TILE_K][TILE_N];
    const u32 tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const u32 m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (u32 k0 = k_begin; k0 < k_end; k0 += TILE_K) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const u32 idx = tid + i * SIMT_THREADS;
            const u32 mm = idx / TILE_K, kk = idx % TILE_K;
            const u32 k = k0 + kk;
            As[kk][mm] = k < k_end ? la(m0 + mm, k) : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const u32 idx = tid + i * SIMT_THREADS;
            const u32 kk = idx / TILE_N, nn = idx % TILE_N;
            const u32 k = k0 + kk;
            Bs[kk][nn] = k < k_end ? lb(k, n0 + nn) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) st(m, n, acc[i][j]);
        }
}

#if __CUDA_ARCH__ >= 800
__device__ __forceinline__ u32 to_tf32(float x) {
    u32 r;
#ifdef SCADLES_KERNEL_EMU
    r = emu_cvt_rna_tf32(x);  // CPU emulation (tests/kernel_emu/shim.h)
#else
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
#endif
    return r;
}

/// Tensor-core core (sm_80+): 4 warps in a 2x2 grid, each warp computing a 32x32 sub-tile as
/// 2 (m16) x 4 (n8) `mma.sync.m16n8k8` TF32 products with FP32 accumulation. Operands are rounded
/// to TF32 (10-bit mantissa) when staged into shared memory.
template <class LA, class LB, class ST>
__device__ void gemm_core_tf32(const LA& la, const LB& lb, const ST& st, u32 M, u32 N, u32 k_begin,
                               u32 k_end) {
    __shared__ u32 As[TILE_M][TILE_K + 4];  // row m, k contiguous (padding breaks bank conflicts)
    __shared__ u32 Bs[TILE_K][TILE_N + 8];  // row k, n contiguous
    const u32 tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const u32 g = lane >> 2, t = lane & 3;  // mma groupID / thread-in-group
    const u32 wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const u32 m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    for (u32 k0 = k_begin; k0 < k_end; k0 += TILE_K) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 idx = tid + i * MMA_THREADS;
            const u32 mm = idx / TILE_K, kk = idx % TILE_K;
            const u32 k = k0 + kk;
            As[mm][kk] = to_tf32(k < k_end ? la(m0 + mm, k) : 0.0f);
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 idx = tid + i * MMA_THREADS;
            const u32 kk = idx / TILE_N, nn = idx % TILE_N;
            const u32 k = k0 + kk;
            Bs[kk][nn] = to_tf32(k < k_end ? lb(k, n0 + nn) : 0.0f);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < TILE_K; ks += 8) {
            u32 a[2][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const u32 r = wm + 16 * i + g;
                a[i][0] = As[r][ks + t];
                a[i][1] = As[r + 8][ks + t];
                a[i][2] = As[r][ks + t + 4];
                a[i][3] = As[r + 8][ks + t + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const u32 c = wn + 8 * j + g;
                b[j][0] = Bs[ks + t][c];
                b[j][1] = Bs[ks + t + 4][c];
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
#ifdef SCADLES_KERNEL_EMU
                    emu_mma_m16n8k8_tf32(acc[i][j], a[i], b[j]);  // CPU emulation (tests/kernel_emu/shim.h)
#else
                    asm volatile(
                        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
                        : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
#endif
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const u32 m = m0 + wm + 16 * i + g + (r >= 2 ? 8 : 0);
                const u32 n = n0 + wn + 8 * j + 2 * t + (r & 1);
                if (m < M && n < N) st(m, n, acc[i][j][r]);
            }
}
#endif
