// Row-major SGEMM: C[m,n] = alpha * op(A) * op(B) + beta * C, op = identity or transpose.
// `gemm_simt` runs everywhere; `gemm_tf32` uses TF32 tensor cores (sm_80+) with FP32 accumulation.
// Grid: (ceil(n/64), ceil(m/64)); block: 256 threads (simt) or 128 (tf32).
#include "common.cuh"

struct GemmA {
    const float* a;
    GemmParams p;
    __device__ float operator()(u32 m, u32 k) const {
        if (m >= p.m || k >= p.k) return 0.0f;
        return p.trans_a ? a[(u64)k * p.lda + m] : a[(u64)m * p.lda + k];
    }
};

struct GemmB {
    const float* b;
    GemmParams p;
    __device__ float operator()(u32 k, u32 n) const {
        if (k >= p.k || n >= p.n) return 0.0f;
        return p.trans_b ? b[(u64)n * p.ldb + k] : b[(u64)k * p.ldb + n];
    }
};

struct GemmStore {
    float* c;
    GemmParams p;
    __device__ void operator()(u32 m, u32 n, float acc) const {
        float* dst = c + (u64)m * p.ldc + n;
        // beta == 0 never reads C, so an uninitialised output cannot leak NaN into the result.
        *dst = p.beta == 0.0f ? p.alpha * acc : p.alpha * acc + p.beta * *dst;
    }
};

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
gemm_simt(const GemmParams p, const float* __restrict__ a, const float* __restrict__ b, float* c) {
    gemm_core_simt(GemmA{a, p}, GemmB{b, p}, GemmStore{c, p}, p.m, p.n, 0, p.k);
}

#if __CUDA_ARCH__ >= 800
extern "C" __global__ void __launch_bounds__(MMA_THREADS)
gemm_tf32(const GemmParams p, const float* __restrict__ a, const float* __restrict__ b, float* c) {
    gemm_core_tf32(GemmA{a, p}, GemmB{b, p}, GemmStore{c, p}, p.m, p.n, 0, p.k);
}
#endif
