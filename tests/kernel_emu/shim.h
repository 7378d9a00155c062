// CPU emulation of the CUDA device environment the kernels in kernels/*.cu are written for, so
// that the real, unmodified kernel sources compile as C++20 with g++ and run on the host
// (tests/kernel_emu/harness.cpp, driven by tests/kernel_emulation.rs).
//
// What is emulated:
//  * Every CUDA thread of a block is a real OS thread (pthreads, small stacks). The blocks of a
//    grid run one after another on the same set of threads, separated by a barrier, so a block
//    never overlaps the next one.
//  * `__shared__` is `static`: a `__shared__` array declared in a kernel or device function is one
//    object shared by all threads of the block (and reused, not reset, by the next block, as the
//    contents of shared memory are undefined at block start on the GPU too).
//  * `__syncthreads` / `__syncthreads_count|and|or` are a std::barrier over the block's threads.
//    Between two barriers, a reproducible pseudo-random choice lets one warp run the phase alone
//    before the others, or after them, or all together (see `perturb_schedule`), so that a
//    missing barrier shows as a wrong result instead of depending on OS timing.
//  * Warp-level operations (`__shfl_*_sync`, `__ballot_sync`, `mma.sync`) synchronise only the
//    32 lanes of their warp, through one std::barrier per warp and a double-buffered exchange
//    area: a lane publishes its operand, waits for the 31 others, then reads theirs. The full mask
//    0xffffffff is required (anything else aborts): the kernels always have all lanes converged.
//    A warp op reached by only some lanes deadlocks, which the launch watchdog reports.
//  * `atomicAdd` is a genuine atomic read-modify-write (std::atomic_ref), since threads are real.
//  * TF32: `cvt.rna.tf32.f32` rounds to nearest with ties away from zero to a 10-bit mantissa;
//    `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` gathers the warp's fragments by the
//    PTX ISA fragment layout tables, ignores the low 13 bits of each operand (as the hardware
//    does), and accumulates the 8 products and C in double before one rounding to FP32.
//    common.cuh calls these through its `#ifdef SCADLES_KERNEL_EMU` branches.
//
// Limits (what is NOT emulated):
//  * Warp scheduling order in general, lock-step execution and independent-thread-scheduling
//    corner cases: lanes run freely between warp operations, warps between barriers (apart from
//    the whole-warp orderings above); only the synchronisation points order them.
//  * The memory model is sequentially consistent through barriers (std::barrier gives
//    happens-before); GPU weak-ordering bugs that a barrier would not fix are not caught, nor are
//    races between blocks (blocks do not run concurrently).
//  * Floating point: host libm (expf, logf) instead of CUDA's (<= 2 ulp apart), rsqrtf is exact
//    1/sqrtf, no FMA contraction unlike nvcc's default, tensor-core accumulation order/rounding
//    replaced by an exact sum rounded once. Comparisons must use tolerances accordingly.
//  * No dynamic shared memory, no cooperative groups, no streams: only what the kernels use.
//  * `__restrict__` keeps g++'s own meaning (the same promise nvcc relies on).
#pragma once

#define SCADLES_KERNEL_EMU 1

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <vector>

// ---- qualifiers ------------------------------------------------------------------------------
// The kernels and everything they include form one translation unit (harness.cpp), so device
// functions need no linkage tricks.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static
// Compile the sm_80+ (tensor-core) entry points, as NVRTC does for sm_90.
#define __CUDA_ARCH__ 900

// ---- built-in variables ----------------------------------------------------------------------
struct emu_dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline emu_dim3 gridDim, blockDim;               // set before a launch's threads start
inline thread_local emu_dim3 threadIdx, blockIdx;  // per emulated thread

namespace emu {

[[noreturn]] inline void fatal(const char* msg) {
    std::fprintf(stderr, "emu: fatal: %s\n", msg);
    std::fflush(stderr);
    std::_Exit(3);
}

// ---- block synchronisation -------------------------------------------------------------------
/// Schedule perturbation, on unless the environment sets SCADLES_EMU_SCHEDULE=free. Threads left
/// to the OS scheduler interleave in few ways, so a missing __syncthreads (one warp still reading
/// shared memory that another warp already overwrites for the next step) would rarely show. So
/// after each block barrier, a hash of the phase number picks one warp and one of three schedules
/// for the phase that follows (up to the next barrier, or the end of the block):
///   run-ahead: the chosen warp runs the whole phase alone, then the others run it;
///   lag:       the other warps run the whole phase, then the chosen warp runs it;
///   free:      all run at once.
/// All three are legal GPU schedules (warps are independent between barriers), so a correct kernel
/// passes under any of them, and the choice is reproducible run to run.
inline const bool perturb_schedule = [] {
    const char* e = std::getenv("SCADLES_EMU_SCHEDULE");
    return !(e && std::strcmp(e, "free") == 0);
}();

enum class Gate : unsigned char { Free, RunAhead, Lag };

struct BlockSync;
struct PhaseCompletion {
    BlockSync* s;
    void operator()() noexcept;
};
/// One barrier over all threads of a block. The completion step (run once per phase, after the
/// last arrival and before anyone is released) publishes the phase's __syncthreads_count total,
/// clears the counter, and sets up the next phase's schedule.
struct BlockSync {
    const unsigned nthreads, nwarps;
    std::atomic<unsigned> count{0};
    unsigned last = 0;
    // Schedule of the current phase (written only by the completion step).
    unsigned long long phase = 0;
    unsigned chosen = 0;
    Gate gate = Gate::Free;
    unsigned first_group_size = 0;                  // threads that run the phase first
    std::atomic<unsigned> first_group_arrived{0};   // ... and have reached its end
    std::atomic<unsigned long long> released{0};    // phase whose second group may run
    std::barrier<PhaseCompletion> bar;
    explicit BlockSync(unsigned n)
        : nthreads(n), nwarps((n + 31) / 32), bar((std::ptrdiff_t)n, PhaseCompletion{this}) {}
    unsigned lanes_of(unsigned w) const { return std::min(32u, nthreads - 32 * w); }
};
inline void PhaseCompletion::operator()() noexcept {
    s->last = s->count.exchange(0, std::memory_order_relaxed);
    unsigned long long h = (++s->phase) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    s->chosen = (unsigned)(h % s->nwarps);
    s->gate = (!perturb_schedule || s->nwarps == 1) ? Gate::Free : Gate((h >> 40) % 3);
    s->first_group_size = s->gate == Gate::RunAhead ? s->lanes_of(s->chosen) : s->nthreads - s->lanes_of(s->chosen);
    s->first_group_arrived.store(0, std::memory_order_relaxed);
}

// ---- warp synchronisation --------------------------------------------------------------------
constexpr unsigned SLOT = 48;  // bytes one lane publishes per warp operation (mma: 40)
struct WarpSync {
    std::barrier<> bar;
    alignas(64) unsigned char slot[2][32][SLOT];
    explicit WarpSync(unsigned lanes) : bar((std::ptrdiff_t)lanes) {}
};

struct ThreadCtx {
    BlockSync* block = nullptr;
    WarpSync* warp = nullptr;
    unsigned lane = 0, warp_id = 0;
    unsigned phase = 0;  // which half of the warp's double-buffered exchange area is next
};
inline thread_local ThreadCtx ctx;

/// Publishes `n` bytes for this lane and waits for the whole warp; returns the exchange area
/// ([32][SLOT]) of this operation. Double buffering makes one barrier per operation enough: a lane
/// can only overwrite this half again after passing the *next* operation's barrier, which every
/// lane reaches only after it has finished reading this one.
inline const unsigned char* warp_exchange(const void* mine, size_t n, unsigned mask) {
    if (mask != 0xffffffffu) fatal("warp operation with a partial mask is not emulated");
    ThreadCtx& c = ctx;
    if (!c.warp) fatal("warp operation outside a kernel launch");
    unsigned char* area = &c.warp->slot[c.phase][0][0];
    std::memcpy(area + c.lane * SLOT, mine, n);
    c.warp->bar.arrive_and_wait();
    c.phase ^= 1u;
    return area;
}

template <class T>
inline T warp_read(const unsigned char* area, unsigned lane) {
    T v;
    std::memcpy(&v, area + lane * SLOT, sizeof(T));
    return v;
}

template <class T>
inline T shfl_from(T v, unsigned mask, unsigned src_lane, bool keep_own) {
    static_assert(sizeof(T) <= SLOT && std::is_trivially_copyable_v<T>);
    const unsigned char* area = warp_exchange(&v, sizeof(T), mask);
    return keep_own ? v : warp_read<T>(area, src_lane & 31u);
}

// ---- TF32 ------------------------------------------------------------------------------------
/// cvt.rna.tf32.f32: round the FP32 value to 10 explicit mantissa bits, to nearest, ties away
/// from zero (adding half an ulp to the magnitude bits carries into the exponent as needed and
/// overflows to infinity past the largest TF32 value). NaN and infinity pass unchanged.
inline unsigned cvt_rna_tf32(float x) {
    unsigned u = std::bit_cast<unsigned>(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;
    return (u + 0x1000u) & 0xffffe000u;
}

/// A TF32 operand register as the tensor core reads it: the low 13 bits are ignored.
inline double tf32_operand(unsigned r) { return (double)std::bit_cast<float>(r & 0xffffe000u); }

/// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {d0..d3}, {a0..a3}, {b0,b1}, {d0..d3}.
/// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with
/// groupID = lane >> 2 and threadID_in_group = lane % 4:
///   A (16x8, row-major): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
///   B (8x8, column):     b0 (k=t, n=g), b1 (k=t+4, n=g)
///   C/D (16x8):          c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
inline void mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
    struct Frag {
        unsigned a[4], b[2];
        float c[4];
    } mine;
    for (int i = 0; i < 4; i++) mine.a[i] = a[i], mine.c[i] = d[i];
    mine.b[0] = b[0];
    mine.b[1] = b[1];
    const unsigned char* area = warp_exchange(&mine, sizeof mine, 0xffffffffu);
    double A[16][8], B[8][8], C[16][8];
    for (unsigned lane = 0; lane < 32; lane++) {
        const Frag f = warp_read<Frag>(area, lane);
        const unsigned g = lane >> 2, t = lane & 3u;
        A[g][t] = tf32_operand(f.a[0]);
        A[g + 8][t] = tf32_operand(f.a[1]);
        A[g][t + 4] = tf32_operand(f.a[2]);
        A[g + 8][t + 4] = tf32_operand(f.a[3]);
        B[t][g] = tf32_operand(f.b[0]);
        B[t + 4][g] = tf32_operand(f.b[1]);
        C[g][2 * t] = f.c[0];
        C[g][2 * t + 1] = f.c[1];
        C[g + 8][2 * t] = f.c[2];
        C[g + 8][2 * t + 1] = f.c[3];
    }
    const unsigned lane = ctx.lane, g = lane >> 2, t = lane & 3u;
    for (int r = 0; r < 4; r++) {
        const unsigned row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r & 1);
        double s = C[row][col];
        for (int k = 0; k < 8; k++) s += A[row][k] * B[k][col];
        d[r] = (float)s;
    }
}

// ---- gated block barrier (see perturb_schedule) --------------------------------------------
inline bool in_first_group(const BlockSync* s) {
    return (ctx.warp_id == s->chosen) == (s->gate == Gate::RunAhead);
}
/// A thread reaches the end of a phase (a barrier, or the end of its block).
inline void phase_end(BlockSync* s) {
    if (s->gate != Gate::Free && in_first_group(s) &&
        s->first_group_arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == s->first_group_size) {
        s->released.store(s->phase, std::memory_order_release);
        s->released.notify_all();
    }
}
/// After a barrier: the second group of a gated phase waits for the first to finish it.
inline void phase_start(BlockSync* s) {
    if (s->gate == Gate::Free || in_first_group(s)) return;
    const unsigned long long ph = s->phase;
    for (unsigned long long r = s->released.load(std::memory_order_acquire); r < ph; r = s->released.load(std::memory_order_acquire))
        s->released.wait(r, std::memory_order_acquire);
}
inline void block_barrier(BlockSync* s) {
    phase_end(s);
    s->bar.arrive_and_wait();
    phase_start(s);
}

// ---- launch ----------------------------------------------------------------------------------
struct LaunchConfig {
    emu_dim3 grid, block;
    unsigned shared_mem_bytes = 0;
};

/// Name and start time of the launch in flight, for the watchdog.
inline std::atomic<const char*> current_kernel{nullptr};
inline std::atomic<long long> launch_started_ms{0};
inline long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Aborts the process when one launch runs longer than `limit_s` (a deadlock: a barrier or warp
/// operation that not every thread reaches).
inline void start_watchdog(int limit_s) {
    static std::atomic<int> limit{0};
    limit = limit_s;
    pthread_t th;
    pthread_create(
        &th, nullptr,
        [](void*) -> void* {
            for (;;) {
                sleep(1);
                const char* k = current_kernel.load();
                if (k && now_ms() - launch_started_ms.load() > 1000LL * limit.load()) {
                    std::fprintf(stdout, "FAIL  %s: launch did not finish within %d s (deadlock?)\n", k, limit.load());
                    std::fflush(stdout);
                    std::_Exit(4);
                }
            }
            return nullptr;
        },
        nullptr);
    pthread_detach(th);
}

struct LaunchState {
    emu_dim3 grid, block;
    unsigned nthreads;
    BlockSync sync;
    std::vector<std::unique_ptr<WarpSync>> warps;
    void (*body)(void*);  // runs the kernel once with the captured arguments
    void* arg;
    LaunchState(emu_dim3 g, emu_dim3 b, unsigned n) : grid(g), block(b), nthreads(n), sync(n) {}
};

struct ThreadStart {
    LaunchState* ls;
    unsigned linear;
};

inline void* thread_main(void* p) {
    const ThreadStart st = *static_cast<ThreadStart*>(p);
    LaunchState& ls = *st.ls;
    threadIdx = {st.linear % ls.block.x, (st.linear / ls.block.x) % ls.block.y, st.linear / (ls.block.x * ls.block.y)};
    ctx.block = &ls.sync;
    ctx.warp = ls.warps[st.linear / 32].get();
    ctx.lane = st.linear % 32;
    ctx.warp_id = st.linear / 32;
    ctx.phase = 0;
    for (unsigned z = 0; z < ls.grid.z; z++)
        for (unsigned y = 0; y < ls.grid.y; y++)
            for (unsigned x = 0; x < ls.grid.x; x++) {
                blockIdx = {x, y, z};
                ls.body(ls.arg);
                // End of block: the next block starts only when every thread has finished this one
                // (its shared memory is the same static storage). After the last block nothing
                // follows, so no thread waits for a schedule gate.
                if (x + 1 < ls.grid.x || y + 1 < ls.grid.y || z + 1 < ls.grid.z) {
                    block_barrier(&ls.sync);
                } else {
                    phase_end(&ls.sync);
                    ls.sync.bar.arrive_and_wait();
                }
            }
    ctx = ThreadCtx{};
    return nullptr;
}

/// Runs `kernel(args...)` over `cfg.grid` blocks of `cfg.block` threads; returns when all are done.
/// The arguments are converted to the kernel's parameter types first (by-value copies, as a
/// kernel launch passes them), so a wrong argument list is a compile error.
template <class... P, class... A>
void launch(const char* name, const LaunchConfig& cfg, void (*kernel)(P...), A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
    if (cfg.shared_mem_bytes != 0) fatal("dynamic shared memory is not emulated");
    const unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
    if (n == 0 || n > 1024) fatal("block size out of range (1..1024 threads)");
    if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0) fatal("empty grid");
    if (cfg.grid.y > 65535 || cfg.grid.z > 65535) fatal("grid.y/grid.z above 65535");
    using Args = std::tuple<std::decay_t<P>...>;
    Args packed(std::forward<A>(args)...);
    struct Call {
        void (*k)(P...);
        Args* a;
    } call{kernel, &packed};
    LaunchState ls(cfg.grid, cfg.block, n);
    for (unsigned w = 0; w < (n + 31) / 32; w++) ls.warps.push_back(std::make_unique<WarpSync>(std::min(32u, n - 32 * w)));
    ls.body = [](void* p) {
        Call* c = static_cast<Call*>(p);
        Args copy = *c->a;  // each thread gets its own copy of the by-value parameters
        std::apply(c->k, copy);
    };
    ls.arg = &call;
    gridDim = cfg.grid;
    blockDim = cfg.block;
    current_kernel = name;
    launch_started_ms = now_ms();
    std::vector<ThreadStart> starts(n);
    std::vector<pthread_t> ths(n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (unsigned t = 0; t < n; t++) {
        starts[t] = {&ls, t};
        if (const int e = pthread_create(&ths[t], &attr, thread_main, &starts[t])) {
            std::fprintf(stderr, "emu: %s: cannot start thread %u of %u (%s); the emulator needs one OS thread per CUDA thread\n",
                         name, t, n, std::strerror(e));
            fatal("pthread_create failed");
        }
    }
    pthread_attr_destroy(&attr);
    for (unsigned t = 0; t < n; t++) pthread_join(ths[t], nullptr);
    current_kernel = nullptr;
}

}  // namespace emu

// ---- synchronisation intrinsics ----------------------------------------------------------------

inline void __syncthreads() { emu::block_barrier(emu::ctx.block); }
inline int __syncthreads_count(int pred) {
    emu::BlockSync* s = emu::ctx.block;
    if (pred) s->count.fetch_add(1, std::memory_order_relaxed);
    emu::phase_end(s);
    s->bar.arrive_and_wait();
    const int r = (int)s->last;  // valid until the next phase completes, which needs this thread
    emu::phase_start(s);
    return r;
}
inline int __syncthreads_or(int pred) { return __syncthreads_count(pred) != 0; }
inline int __syncthreads_and(int pred) { return __syncthreads_count(pred) == (int)(blockDim.x * blockDim.y * blockDim.z); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    const char z = 0;
    emu::warp_exchange(&z, 1, mask);
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    if (width != 32) emu::fatal("__shfl_xor_sync: only width 32 is emulated");
    return emu::shfl_from(v, mask, emu::ctx.lane ^ (unsigned)lane_mask, false);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (width != 32) emu::fatal("__shfl_down_sync: only width 32 is emulated");
    const unsigned src = emu::ctx.lane + delta;
    return emu::shfl_from(v, mask, src, src >= 32);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (width != 32) emu::fatal("__shfl_up_sync: only width 32 is emulated");
    const unsigned lane = emu::ctx.lane;
    return emu::shfl_from(v, mask, lane - delta, delta > lane);
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    if (width != 32) emu::fatal("__shfl_sync: only width 32 is emulated");
    return emu::shfl_from(v, mask, (unsigned)src_lane, false);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    const unsigned char mine = pred ? 1 : 0;
    const unsigned char* area = emu::warp_exchange(&mine, 1, mask);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; l++)
        if (emu::warp_read<unsigned char>(area, l)) r |= 1u << l;
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }

// ---- TF32 hooks called from common.cuh's SCADLES_KERNEL_EMU branches ---------------------------
inline unsigned emu_cvt_rna_tf32(float x) { return emu::cvt_rna_tf32(x); }
inline void emu_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]) { emu::mma_m16n8k8_tf32(d, a, b); }

// ---- atomics ---------------------------------------------------------------------------------
template <class T>
inline T emu_atomic_add(T* p, T v) {
    return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}
inline float atomicAdd(float* p, float v) { return emu_atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return emu_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return emu_atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return emu_atomic_add(p, v); }

// ---- bit casts and integer intrinsics ------------------------------------------------------------
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline long long __double_as_longlong(double d) { return std::bit_cast<long long>(d); }
inline double __longlong_as_double(long long i) { return std::bit_cast<double>(i); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero((unsigned)x); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero((unsigned)x) + 1; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

// ---- math (the float functions of <math.h> are used as they are) -------------------------------
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }

// CUDA's integer min/max overloads, mixed signedness converting to unsigned as CUDA's do.
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
