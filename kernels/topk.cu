// Top-k by magnitude over a flat gradient, as (u32 index, f32 value) pairs in increasing index
// order. Selection is exact and deterministic:
//  1. Radix select on the bit pattern of |x| (for non-negative floats the bit order is the value
//     order): four 8-bit passes from the most significant byte, each a histogram of the elements
//     that match the prefix found so far (`topk_hist`) and a pick of the byte in which the k-th
//     largest falls (`topk_pick`). After the last pass `state` = {T, mask, need}: T is the bit
//     pattern of the k-th largest magnitude and `need` how many elements equal to T to keep.
//  2. Compaction: every element with |x| > T is kept, and of those with |x| == T the `need` with
//     the lowest indices. Each block owns a chunk of consecutive elements: `topk_count` counts its
//     greater/equal elements, `topk_scan` turns the counts into exclusive offsets, `topk_compact`
//     writes in index order with warp ballots.
// NaN magnitudes order above +inf. The host handles k == 0 and clamps k to len.
#include "common.cuh"

#define ABS_BITS(v) (__float_as_uint(v) & 0x7fffffffu)

// ---- the phases, shared by the whole-buffer and the segmented kernels ---------------------------

/// hist[byte] += elements x[i], i = i0, i0 + step, ... < end, whose |x| matches `prefix` under
/// `mask`, binned by the byte at `shift` (a shared histogram per block, flushed with atomics).
__device__ void radix_hist(const float* __restrict__ x, u32 i0, u32 end, u32 step, u32 prefix, u32 mask, u32 shift,
                           u32* __restrict__ hist) {
    __shared__ u32 h[256];
    for (u32 i = threadIdx.x; i < 256; i += blockDim.x) h[i] = 0;
    __syncthreads();
    for (u32 i = i0; i < end; i += step) {
        const u32 bits = ABS_BITS(x[i]);
        if ((bits & mask) == prefix) atomicAdd(&h[(bits >> shift) & 255u], 1u);
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < 256; i += blockDim.x)
        if (h[i]) atomicAdd(&hist[i], h[i]);
}

/// Picks the byte holding the k-th largest (st[2] = rank still to find), extends the prefix
/// st[0] and mask st[1] by it, and clears the 256 bins of `hist` for the next pass. One block.
__device__ void radix_pick(u32 shift, u32* __restrict__ hist, u32* __restrict__ st) {
    if (threadIdx.x == 0) {
        const u32 k_rem = st[2];
        u32 above = 0;
        for (int b = 255; b >= 0; b--) {
            const u32 c = hist[b];
            if (above + c >= k_rem) {
                st[0] |= (u32)b << shift;
                st[1] |= 255u << shift;
                st[2] = k_rem - above;
                break;
            }
            above += c;
        }
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
}

/// out[0] / out[1] = elements of x[start, end) with |x| > t / == t (written by thread 0).
__device__ void count_range(const float* __restrict__ x, u32 start, u32 end, u32 t, u32* __restrict__ out) {
    u32 gt = 0, eq = 0;
    for (u32 base = start; base < end; base += blockDim.x) {
        const u32 i = base + threadIdx.x;
        const u32 bits = i < end ? ABS_BITS(x[i]) : 0u;
        gt += __syncthreads_count(i < end && bits > t);
        eq += __syncthreads_count(i < end && bits == t);
    }
    if (threadIdx.x == 0) {
        out[0] = gt;
        out[1] = eq;
    }
}

/// Writes the kept elements of x[start, end) at their rank in index order:
///   out0 + (kept greater before) + min(equal before, need),
/// counting from `gt_base` greater and `eq_base` equal elements kept before `start`.
__device__ void compact_range(const float* __restrict__ x, u32 start, u32 end, u32 t, u32 need, u32 gt_base,
                              u32 eq_base, u32 out0, u32* __restrict__ out_idx, float* __restrict__ out_val) {
    __shared__ u32 wg[32], we[32];
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (u32 base = start; base < end; base += blockDim.x) {
        const u32 i = base + threadIdx.x;
        const float v = i < end ? x[i] : 0.0f;
        const u32 bits = ABS_BITS(v);
        const bool is_gt = i < end && bits > t, is_eq = i < end && bits == t;
        const u32 bg = __ballot_sync(0xffffffffu, is_gt), be = __ballot_sync(0xffffffffu, is_eq);
        const u32 lt = (1u << lane) - 1u;
        if (lane == 0) {
            wg[wid] = __popc(bg);
            we[wid] = __popc(be);
        }
        __syncthreads();
        u32 og = 0, oe = 0, tg = 0, te = 0;
        for (u32 w = 0; w < nw; w++) {
            if (w < wid) {
                og += wg[w];
                oe += we[w];
            }
            tg += wg[w];
            te += we[w];
        }
        const u32 gt_before = gt_base + og + __popc(bg & lt);
        const u32 eq_before = eq_base + oe + __popc(be & lt);
        if (is_gt || (is_eq && eq_before < need)) {
            const u32 pos = out0 + gt_before + min(eq_before, need);
            out_idx[pos] = i;
            out_val[pos] = v;
        }
        gt_base += tg;
        eq_base += te;
        __syncthreads();  // wg/we are rewritten by the next tile
    }
}

// ---- one top-k over the whole buffer ------------------------------------------------------------

/// hist[byte] += elements whose |x| matches state's prefix under its mask, by the byte at p.shift.
extern "C" __global__ void topk_hist(const TopkParams p, const float* __restrict__ x, const u32* __restrict__ state,
                                     u32* __restrict__ hist) {
    radix_hist(x, blockIdx.x * blockDim.x + threadIdx.x, p.len, gridDim.x * blockDim.x, state[0], state[1], p.shift, hist);
}

/// Picks the byte holding the k-th largest (state[2] = rank still to find, >= 1), extends the
/// prefix, and clears the histogram for the next pass. One block.
extern "C" __global__ void topk_pick(const TopkParams p, u32* __restrict__ hist, u32* __restrict__ state) {
    radix_pick(p.shift, hist, state);
}

/// counts[2b] = elements of chunk b with |x| > T, counts[2b+1] = with |x| == T.
extern "C" __global__ void topk_count(const TopkParams p, const float* __restrict__ x, const u32* __restrict__ state,
                                      u32* __restrict__ counts) {
    const u32 start = blockIdx.x * p.chunk;
    count_range(x, start, min(p.len, start + p.chunk), state[0], counts + 2 * blockIdx.x);
}

/// In place: counts -> exclusive prefix sums over blocks (both columns). One block of 1024 threads,
/// each scanning a contiguous segment.
extern "C" __global__ void topk_scan(const TopkParams p, u32* __restrict__ counts) {
    __shared__ u32 sg[1024], se[1024];
    const u32 nt = blockDim.x, seg = (p.nblocks + nt - 1) / nt;
    const u32 b0 = min(threadIdx.x * seg, p.nblocks), b1 = min(b0 + seg, p.nblocks);
    u32 g = 0, e = 0;
    for (u32 b = b0; b < b1; b++) {
        g += counts[2 * b];
        e += counts[2 * b + 1];
    }
    sg[threadIdx.x] = g;
    se[threadIdx.x] = e;
    __syncthreads();
    if (threadIdx.x == 0) {
        u32 rg = 0, re = 0;
        for (u32 i = 0; i < nt; i++) {
            const u32 cg = sg[i], ce = se[i];
            sg[i] = rg;
            se[i] = re;
            rg += cg;
            re += ce;
        }
    }
    __syncthreads();
    g = sg[threadIdx.x];
    e = se[threadIdx.x];
    for (u32 b = b0; b < b1; b++) {
        const u32 cg = counts[2 * b], ce = counts[2 * b + 1];
        counts[2 * b] = g;
        counts[2 * b + 1] = e;
        g += cg;
        e += ce;
    }
}

/// Writes the kept elements of chunk b at their rank in index order:
///   position = (kept greater before) + min(equal before, need).
extern "C" __global__ void topk_compact(const TopkParams p, const float* __restrict__ x,
                                        const u32* __restrict__ state, const u32* __restrict__ offsets,
                                        u32* __restrict__ out_idx, float* __restrict__ out_val) {
    const u32 start = blockIdx.x * p.chunk;
    compact_range(x, start, min(p.len, start + p.chunk), state[0], state[2], offsets[2 * blockIdx.x],
                  offsets[2 * blockIdx.x + 1], 0, out_idx, out_val);
}

// ---- segmented: one top-k per segment of one buffer, all segments in the same launches ----------
// The per-layer scope of top-k compression selects k_s of every parameter tensor; tensors number in
// the hundreds, so one launch sequence per tensor would cost thousands of launches per step. Here
// the buffer is cut into blocks of at most p.chunk values inside one segment (the block table:
// blk_seg[b], blk_start[b]; segment s spans [seg_bounds[s], seg_bounds[s+1])). Each segment has
// its own radix state (state[4s..4s+3] = prefix, mask, rank still to find, unused) and histogram
// (hist[256s..256s+255]); segment s's pairs go to out[seg_out[s] ..] with GLOBAL indices in
// increasing order, so the concatenation over segments is what one top-k per segment in turn
// would give. The exclusive scan of the per-block counts is `topk_scan` over all blocks; a block
// subtracts the scan value of its segment's first block (seg_first[s]).

__device__ __forceinline__ u32 seg_block_end(const SegParams& p, const u32* seg_bounds, u32 s, u32 start) {
    return min(start + p.chunk, seg_bounds[s + 1]);
}

/// hist[256s + byte] += elements of block b's range (segment s) that match s's prefix.
extern "C" __global__ void topk_seg_hist(const SegParams p, const float* __restrict__ x, const u32* __restrict__ blk_seg,
                                         const u32* __restrict__ blk_start, const u32* __restrict__ seg_bounds,
                                         const u32* __restrict__ state, u32* __restrict__ hist) {
    const u32 s = blk_seg[blockIdx.x], start = blk_start[blockIdx.x];
    radix_hist(x, start + threadIdx.x, seg_block_end(p, seg_bounds, s, start), blockDim.x, state[4 * s], state[4 * s + 1],
               p.shift, hist + 256 * s);
}

/// `topk_pick` for segment s = blockIdx.x: extends its prefix by the byte holding its k-th
/// largest and clears its histogram for the next pass.
extern "C" __global__ void topk_seg_pick(const SegParams p, u32* __restrict__ hist, u32* __restrict__ state) {
    radix_pick(p.shift, hist + 256 * blockIdx.x, state + 4 * blockIdx.x);
}

/// counts[2b] / counts[2b+1] = elements of block b's range with |x| > T_s / == T_s.
extern "C" __global__ void topk_seg_count(const SegParams p, const float* __restrict__ x, const u32* __restrict__ blk_seg,
                                          const u32* __restrict__ blk_start, const u32* __restrict__ seg_bounds,
                                          const u32* __restrict__ state, u32* __restrict__ counts) {
    const u32 s = blk_seg[blockIdx.x], start = blk_start[blockIdx.x];
    count_range(x, start, seg_block_end(p, seg_bounds, s, start), state[4 * s], counts + 2 * blockIdx.x);
}

/// `topk_compact` per segment: block b writes its kept elements of segment s at
///   seg_out[s] + (kept greater before, within s) + min(equal before within s, need_s).
extern "C" __global__ void topk_seg_compact(const SegParams p, const float* __restrict__ x, const u32* __restrict__ blk_seg,
                                            const u32* __restrict__ blk_start, const u32* __restrict__ seg_bounds,
                                            const u32* __restrict__ seg_out, const u32* __restrict__ seg_first,
                                            const u32* __restrict__ state, const u32* __restrict__ offsets,
                                            u32* __restrict__ out_idx, float* __restrict__ out_val) {
    const u32 s = blk_seg[blockIdx.x], start = blk_start[blockIdx.x], f = seg_first[s];
    compact_range(x, start, seg_block_end(p, seg_bounds, s, start), state[4 * s], state[4 * s + 2],
                  offsets[2 * blockIdx.x] - offsets[2 * f], offsets[2 * blockIdx.x + 1] - offsets[2 * f + 1], seg_out[s],
                  out_idx, out_val);
}

/// partial[b] = sum of x[i]^2 in double over block b's range (the adaptive rule's per-segment
/// norms: the host adds a segment's partials in block order). blockDim.x a multiple of 32.
extern "C" __global__ void topk_seg_sumsq(const SegParams p, const float* __restrict__ x, const u32* __restrict__ blk_seg,
                                          const u32* __restrict__ blk_start, const u32* __restrict__ seg_bounds,
                                          double* __restrict__ partial) {
    __shared__ double part[32];
    const u32 s = blk_seg[blockIdx.x], start = blk_start[blockIdx.x];
    const u32 end = seg_block_end(p, seg_bounds, s, start);
    double acc = 0.0;
    for (u32 i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double v = (double)x[i];
        acc = fma(v, v, acc);
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) part[wid] = acc;
    __syncthreads();
    if (wid == 0) {
        acc = lane < nw ? part[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) partial[blockIdx.x] = acc;
    }
}
