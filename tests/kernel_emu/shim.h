// CPU emulation of the CUDA device environment the kernels in kernels/*.cu are written for, so
// that the real, unmodified kernel sources compile as C++20 with g++ and run on the host. Two
// programs use it: tests/kernel_emu/harness.cpp (every kernel against a double-precision
// reference, driven by tests/kernel_emulation.rs) and tests/kernel_emu/libcuda.cpp (an emulated
// CUDA driver that runs the whole GPU backend on the CPU, used by tests/common/gpu.rs).
//
// What is emulated:
//  * Every CUDA thread of a block is a fiber: its own stack, switched to and from cooperatively
//    on the launching OS thread (a few registers saved and restored on x86-64, ucontext
//    elsewhere). Blocks of a grid run one after another. A fiber runs until it reaches a
//    synchronisation point (a block barrier, a warp operation, the end of the block); the
//    scheduler then runs the next ready fiber.
//  * `__shared__` is `static`: a `__shared__` array declared in a kernel or device function is one
//    object shared by all threads of the block (and reused, not reset, by the next block, as the
//    contents of shared memory are undefined at block start on the GPU too).
//  * `__syncthreads` / `__syncthreads_count|and|or` end a phase: the phase is over when every
//    thread of the block has reached the barrier. Which threads run a phase first is chosen per
//    phase, reproducibly, from four legal GPU schedules (see `perturb_schedule`), so that a
//    missing barrier shows as a wrong result. A barrier reached by only part of the block, or a
//    warp operation reached by only part of a warp, is reported as the deadlock it would be.
//  * Warp-level operations (`__shfl_*_sync`, `__ballot_sync`, `mma.sync`) synchronise only the
//    32 lanes of their warp, through a double-buffered exchange area: a lane publishes its
//    operand, waits for the 31 others, then reads theirs. The full mask 0xffffffff is required
//    (anything else aborts): the kernels always have all lanes converged.
//  * `atomicAdd` is a genuine atomic read-modify-write (std::atomic_ref).
//  * TF32: `cvt.rna.tf32.f32` rounds to nearest with ties away from zero to a 10-bit mantissa;
//    `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` gathers the warp's fragments by the
//    PTX ISA fragment layout tables, ignores the low 13 bits of each operand (as the hardware
//    does), and accumulates the 8 products and C in double before one rounding to FP32.
//    common.cuh calls these through its `#ifdef SCADLES_KERNEL_EMU` branches.
//
// Limits (what is NOT emulated):
//  * Lock-step execution and arbitrary interleavings: threads switch only at synchronisation
//    points, so between two of them a thread's code runs as one piece. The four schedules order
//    whole warps and whole phases; a race that only a finer interleaving would show is missed.
//  * The memory model is sequentially consistent; GPU weak-ordering bugs that a barrier would not
//    fix are not caught, nor are races between blocks (blocks do not run concurrently).
//  * Floating point: host libm (expf, logf) instead of CUDA's (<= 2 ulp apart), rsqrtf is exact
//    1/sqrtf, no FMA contraction unlike nvcc's default, tensor-core accumulation order/rounding
//    replaced by an exact sum rounded once. Comparisons must use tolerances accordingly.
//  * No dynamic shared memory, no cooperative groups: only what the kernels use.
//  * `__restrict__` keeps g++'s own meaning (the same promise nvcc relies on).
#pragma once

#define SCADLES_KERNEL_EMU 1

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
#include <utility>
#include <vector>

#if defined(__x86_64__) && !defined(SCADLES_EMU_UCONTEXT)
#define EMU_X86_SWITCH 1
#else
#include <ucontext.h>
#endif

// ---- qualifiers ------------------------------------------------------------------------------
// The kernels and everything they include form one translation unit, so device functions need
// no linkage tricks.
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
// Set by the scheduler: the launch's shape, the running block, and the running fiber's thread
// index (written before every switch to a fiber; all fibers share the launching OS thread).
inline emu_dim3 gridDim, blockDim, blockIdx, threadIdx;

namespace emu {

[[noreturn]] inline void fatal(const char* msg) {
    std::fprintf(stderr, "emu: fatal: %s\n", msg);
    std::fflush(stderr);
    std::_Exit(3);
}

// ---- fibers ----------------------------------------------------------------------------------
enum class State : unsigned char { Ready, AtBarrier, AtWarp, Done };

/// One emulated CUDA thread. Fibers are pooled and reused by every later launch.
struct Fiber {
    void* sp = nullptr;  // saved stack pointer while switched out (x86-64)
#ifndef EMU_X86_SWITCH
    ucontext_t uc;
#endif
    emu_dim3 tid;
    unsigned lane = 0, warp = 0;
    unsigned xphase = 0;  // which half of the warp's double-buffered exchange area is next
    State state = State::Done;
    bool pred = false;  // the __syncthreads_count predicate it brought to the barrier
};

constexpr size_t FIBER_STACK = 256 * 1024;  // reserved per fiber (touched pages only), a guard page below

}  // namespace emu

extern "C" [[noreturn]] __attribute__((visibility("hidden"))) void emu_fiber_main(emu::Fiber* f);

#ifdef EMU_X86_SWITCH
// emu_swap_stack(save, load): pushes the callee-saved registers, MXCSR and the x87 control word,
// stores the stack pointer in *save, switches to `load` and pops the same frame from there. A new
// fiber's stack holds such a frame whose return address is emu_fiber_trampoline, with the Fiber
// in r12.
extern "C" __attribute__((visibility("hidden"))) void emu_swap_stack(void** save, void* load);
extern "C" __attribute__((visibility("hidden"))) void emu_fiber_trampoline();
asm(R"(
    .text
    .p2align 4
    .globl emu_swap_stack
    .hidden emu_swap_stack
    .type emu_swap_stack, @function
emu_swap_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw (%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr 8(%rsp)
    fldcw (%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_swap_stack, .-emu_swap_stack

    .p2align 4
    .globl emu_fiber_trampoline
    .hidden emu_fiber_trampoline
    .type emu_fiber_trampoline, @function
emu_fiber_trampoline:
    movq %r12, %rdi
    andq $-16, %rsp
    call emu_fiber_main
    ud2
    .size emu_fiber_trampoline, .-emu_fiber_trampoline
)");
#endif

namespace emu {

// ---- launch state and scheduler -----------------------------------------------------------------
/// Schedule perturbation, on unless the environment sets SCADLES_EMU_SCHEDULE=free. A phase (the
/// code between two block barriers) runs under one of four schedules, picked by a hash of the
/// phase number and the launch's ordinal:
///   forward:   threads in index order, each up to its next synchronisation point;
///   reverse:   the same in reverse index order;
///   run-ahead: one chosen warp runs the whole phase alone, then the others (forward);
///   lag:       the other warps run the whole phase (forward), then the chosen warp.
/// All four are legal GPU schedules (warps are independent between barriers), so a correct kernel
/// passes under any of them, and the choice is reproducible run to run. With the variable set to
/// `free`, every phase runs forward.
inline const bool perturb_schedule = [] {
    const char* e = std::getenv("SCADLES_EMU_SCHEDULE");
    return !(e && std::strcmp(e, "free") == 0);
}();

enum class Gate : unsigned char { Forward, Reverse, RunAhead, Lag };

constexpr unsigned SLOT = 48;  // bytes one lane publishes per warp operation (mma: 40)
struct WarpArea {
    alignas(64) unsigned char slot[2][32][SLOT];
    unsigned lanes = 32, arrived = 0;
    // The whole warp's mma.sync result for each half of the exchange area, computed by the first
    // lane that reads it; invalidated when a lane writes that half again.
    float mma[2][16][8];
    bool mma_valid[2] = {false, false};
};

struct Launch {
    const char* name;
    unsigned nthreads, nwarps;
    void (*body)(void*);  // runs the kernel once with the captured arguments
    void* arg;
    std::vector<WarpArea> warps;
    unsigned long long phase = 0;  // barrier phases completed in this launch
    unsigned last = 0;             // the last barrier's __syncthreads_count total
    Gate gate = Gate::Forward;
    unsigned chosen = 0;
};

inline Launch* g_launch = nullptr;
inline unsigned long long g_launches = 0;  // launches so far: seeds each launch's schedule sequence
inline Fiber* g_cur = nullptr;
inline std::vector<Fiber*> g_pool;
#ifdef EMU_X86_SWITCH
inline void* g_sched_sp = nullptr;
#else
inline ucontext_t g_sched_uc;
#endif

/// Name and start time of the launch in flight, for the watchdog.
inline std::atomic<const char*> current_kernel{nullptr};
inline std::atomic<long long> launch_started_ms{0};
inline long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Aborts the process when one launch runs longer than `limit_s` (a kernel that never reaches
/// its end, e.g. a loop waiting for a value no thread writes).
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
                    std::fprintf(stdout, "FAIL  %s: launch did not finish within %d s\n", k, limit.load());
                    std::fflush(stdout);
                    std::_Exit(4);
                }
            }
            return nullptr;
        },
        nullptr);
    pthread_detach(th);
}

#ifndef EMU_X86_SWITCH
inline void fiber_entry_ucontext(unsigned hi, unsigned lo) {
    emu_fiber_main(reinterpret_cast<Fiber*>((uintptr_t(hi) << 32) | uintptr_t(lo)));
}
#endif

inline Fiber* new_fiber() {
    Fiber* f = new Fiber();
    void* mem = mmap(nullptr, FIBER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) fatal("mmap of a fiber stack failed");
    const long page = sysconf(_SC_PAGESIZE);
    if (mprotect(mem, (size_t)page, PROT_NONE) != 0) fatal("mprotect of a fiber stack's guard page failed");
    char* base = static_cast<char*>(mem);
#ifdef EMU_X86_SWITCH
    // The frame emu_swap_stack pops: x87 control word, MXCSR, r15, r14, r13, r12 (= the fiber),
    // rbx, rbp, return address (the trampoline), one spare word. The trampoline is entered with
    // rsp = frame + 72 and aligns the stack itself before its call.
    const uintptr_t top = (reinterpret_cast<uintptr_t>(base) + FIBER_STACK) & ~uintptr_t(15);
    uint64_t* frame = reinterpret_cast<uint64_t*>(top - 80);
    unsigned mxcsr;
    unsigned short fpcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpcw));
    std::memset(frame, 0, 80);
    frame[0] = fpcw;
    frame[1] = mxcsr;
    frame[5] = reinterpret_cast<uint64_t>(f);
    frame[8] = reinterpret_cast<uint64_t>(&emu_fiber_trampoline);
    f->sp = frame;
#else
    if (getcontext(&f->uc) != 0) fatal("getcontext failed");
    f->uc.uc_stack.ss_sp = base + page;
    f->uc.uc_stack.ss_size = FIBER_STACK - (size_t)page;
    f->uc.uc_link = nullptr;
    const uintptr_t p = reinterpret_cast<uintptr_t>(f);
    makecontext(&f->uc, reinterpret_cast<void (*)()>(&fiber_entry_ucontext), 2, unsigned(p >> 32), unsigned(p));
#endif
    return f;
}

/// Switches from the scheduler to fiber `f`; returns when `f` yields.
inline void resume(Fiber* f) {
    g_cur = f;
    threadIdx = f->tid;
#ifdef EMU_X86_SWITCH
    emu_swap_stack(&g_sched_sp, f->sp);
#else
    if (swapcontext(&g_sched_uc, &f->uc) != 0) fatal("swapcontext failed");
#endif
    g_cur = nullptr;
}

/// Switches from the running fiber back to the scheduler, having set its state.
inline void yield(Fiber* f, State s) {
    f->state = s;
#ifdef EMU_X86_SWITCH
    emu_swap_stack(&f->sp, g_sched_sp);
#else
    if (swapcontext(&f->uc, &g_sched_uc) != 0) fatal("swapcontext failed");
#endif
}

inline Fiber* current(const char* what) {
    if (!g_cur) {
        std::fprintf(stderr, "emu: fatal: %s outside a kernel launch\n", what);
        std::fflush(stderr);
        std::_Exit(3);
    }
    return g_cur;
}

/// Picks the schedule of the next phase (see perturb_schedule).
inline void next_schedule(Launch& L) {
    unsigned long long h = (++L.phase + (g_launches << 20)) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    L.chosen = (unsigned)(h % L.nwarps);
    if (!perturb_schedule) L.gate = Gate::Forward;
    else if (L.nwarps == 1) L.gate = Gate((h >> 40) % 2);
    else L.gate = Gate((h >> 40) % 4);
}

[[noreturn]] inline void deadlock(const Launch& L, const char* what) {
    std::fprintf(stderr, "emu: fatal: %s: %s (block %u,%u,%u)\n", L.name, what, blockIdx.x, blockIdx.y, blockIdx.z);
    std::fflush(stderr);
    std::_Exit(3);
}

/// Runs the ready fibers among `ids` until none is ready (each up to its next synchronisation
/// point), releasing a warp's lanes once all of them have reached its warp operation.
inline void run_group(Launch& L, const std::vector<Fiber*>& ids) {
    for (bool progress = true; progress;) {
        progress = false;
        for (Fiber* f : ids) {
            if (f->state != State::Ready) continue;
            progress = true;
            resume(f);
            if (f->state == State::AtWarp) {
                WarpArea& w = L.warps[f->warp];
                if (++w.arrived == w.lanes) {
                    w.arrived = 0;
                    for (unsigned l = 0; l < w.lanes; l++) g_pool[32 * f->warp + l]->state = State::Ready;
                }
            }
        }
    }
}

/// One block: phases separated by barriers until every thread has finished the kernel.
inline void run_block(Launch& L) {
    const unsigned n = L.nthreads;
    for (unsigned t = 0; t < n; t++) {
        g_pool[t]->state = State::Ready;
        g_pool[t]->xphase = 0;
    }
    std::vector<Fiber*> first, second;
    first.reserve(n);
    second.reserve(n);
    for (;;) {
        first.clear();
        second.clear();
        for (unsigned t = 0; t < n; t++) {
            Fiber* f = g_pool[t];
            const bool chosen = f->warp == L.chosen;
            switch (L.gate) {
                case Gate::Forward: first.push_back(f); break;
                case Gate::Reverse: first.push_back(g_pool[n - 1 - t]); break;
                case Gate::RunAhead: (chosen ? first : second).push_back(f); break;
                case Gate::Lag: (chosen ? second : first).push_back(f); break;
            }
        }
        run_group(L, first);
        run_group(L, second);
        unsigned at_barrier = 0, done = 0, count = 0;
        for (unsigned t = 0; t < n; t++) {
            const Fiber* f = g_pool[t];
            if (f->state == State::AtWarp) deadlock(L, "a warp operation that not every lane of the warp reaches");
            if (f->state == State::AtBarrier) at_barrier++, count += f->pred ? 1 : 0;
            if (f->state == State::Done) done++;
        }
        if (done == n) return;
        if (at_barrier != n) deadlock(L, "a __syncthreads that not every thread of the block reaches");
        L.last = count;
        next_schedule(L);
        for (unsigned t = 0; t < n; t++) g_pool[t]->state = State::Ready;
    }
}

struct LaunchConfig {
    emu_dim3 grid, block;
    unsigned shared_mem_bytes = 0;
};

/// Runs `body(arg)` as a kernel over `cfg.grid` blocks of `cfg.block` threads.
inline void run_launch(const char* name, const LaunchConfig& cfg, void (*body)(void*), void* arg) {
    if (g_launch) fatal("a kernel launch from inside a kernel");
    if (cfg.shared_mem_bytes != 0) fatal("dynamic shared memory is not emulated");
    const unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
    if (n == 0 || n > 1024) fatal("block size out of range (1..1024 threads)");
    if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0) fatal("empty grid");
    if (cfg.grid.y > 65535 || cfg.grid.z > 65535) fatal("grid.y/grid.z above 65535");
    while (g_pool.size() < n) g_pool.push_back(new_fiber());
    Launch L{name, n, (n + 31) / 32, body, arg, std::vector<WarpArea>((n + 31) / 32)};
    for (unsigned w = 0; w < L.nwarps; w++) L.warps[w].lanes = std::min(32u, n - 32 * w);
    for (unsigned t = 0; t < n; t++) {
        Fiber* f = g_pool[t];
        f->tid = {t % cfg.block.x, (t / cfg.block.x) % cfg.block.y, t / (cfg.block.x * cfg.block.y)};
        f->lane = t % 32;
        f->warp = t / 32;
    }
    g_launches++;
    next_schedule(L);
    gridDim = cfg.grid;
    blockDim = cfg.block;
    g_launch = &L;
    current_kernel = name;
    launch_started_ms = now_ms();
    for (unsigned z = 0; z < cfg.grid.z; z++)
        for (unsigned y = 0; y < cfg.grid.y; y++)
            for (unsigned x = 0; x < cfg.grid.x; x++) {
                blockIdx = {x, y, z};
                run_block(L);
            }
    current_kernel = nullptr;
    g_launch = nullptr;
}

/// Runs `kernel(args...)` over `cfg.grid` blocks of `cfg.block` threads; returns when all are done.
/// The arguments are converted to the kernel's parameter types first (by-value copies, as a
/// kernel launch passes them), so a wrong argument list is a compile error.
template <class... P, class... A>
void launch(const char* name, const LaunchConfig& cfg, void (*kernel)(P...), A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
    using Args = std::tuple<std::decay_t<P>...>;
    Args packed(std::forward<A>(args)...);
    struct Call {
        void (*k)(P...);
        Args* a;
    } call{kernel, &packed};
    run_launch(
        name, cfg,
        [](void* p) {
            Call* c = static_cast<Call*>(p);
            Args copy = *c->a;  // each thread gets its own copy of the by-value parameters
            std::apply(c->k, copy);
        },
        &call);
}

// ---- warp synchronisation --------------------------------------------------------------------
/// Publishes `n` bytes for this lane and waits for the whole warp; returns the exchange area
/// ([32][SLOT]) of this operation. Double buffering makes one wait per operation enough: a lane
/// can only overwrite this half again after passing the *next* operation, which every lane
/// reaches only after it has finished reading this one.
inline const unsigned char* warp_exchange(const void* mine, size_t n, unsigned mask) {
    if (mask != 0xffffffffu) fatal("warp operation with a partial mask is not emulated");
    Fiber* f = current("a warp operation");
    WarpArea& w = g_launch->warps[f->warp];
    unsigned char* area = &w.slot[f->xphase][0][0];
    w.mma_valid[f->xphase] = false;
    std::memcpy(area + f->lane * SLOT, mine, n);
    yield(f, State::AtWarp);
    f->xphase ^= 1u;
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

/// __syncthreads_count: waits for the whole block and returns how many threads passed `pred`.
inline int block_barrier_count(int pred) {
    Fiber* f = current("__syncthreads");
    f->pred = pred != 0;
    yield(f, State::AtBarrier);
    return (int)g_launch->last;  // valid until the next barrier completes, which needs this thread
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
    Fiber* me = current("mma.sync");
    WarpArea& w = g_launch->warps[me->warp];
    const unsigned half = area == &w.slot[0][0][0] ? 0 : 1;
    const unsigned g = me->lane >> 2, t = me->lane & 3u;
    if (w.mma_valid[half]) {
        for (int r = 0; r < 4; r++) d[r] = w.mma[half][g + (r >= 2 ? 8 : 0)][2 * t + (r & 1)];
        return;
    }
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
    for (unsigned row = 0; row < 16; row++)
        for (unsigned col = 0; col < 8; col++) {
            double s = C[row][col];
            for (int k = 0; k < 8; k++) s += A[row][k] * B[k][col];
            w.mma[half][row][col] = (float)s;
        }
    w.mma_valid[half] = true;
    for (int r = 0; r < 4; r++) d[r] = w.mma[half][g + (r >= 2 ? 8 : 0)][2 * t + (r & 1)];
}

}  // namespace emu

extern "C" void emu_fiber_main(emu::Fiber* f) {
    for (;;) {
        emu::g_launch->body(emu::g_launch->arg);
        emu::yield(f, emu::State::Done);
    }
}

// ---- synchronisation intrinsics ----------------------------------------------------------------

inline void __syncthreads() { emu::block_barrier_count(0); }
inline int __syncthreads_count(int pred) { return emu::block_barrier_count(pred); }
inline int __syncthreads_or(int pred) { return __syncthreads_count(pred) != 0; }
inline int __syncthreads_and(int pred) { return __syncthreads_count(pred) == (int)(blockDim.x * blockDim.y * blockDim.z); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    const char z = 0;
    emu::warp_exchange(&z, 1, mask);
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    if (width != 32) emu::fatal("__shfl_xor_sync: only width 32 is emulated");
    return emu::shfl_from(v, mask, emu::current("__shfl_xor_sync")->lane ^ (unsigned)lane_mask, false);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (width != 32) emu::fatal("__shfl_down_sync: only width 32 is emulated");
    const unsigned src = emu::current("__shfl_down_sync")->lane + delta;
    return emu::shfl_from(v, mask, src, src >= 32);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (width != 32) emu::fatal("__shfl_up_sync: only width 32 is emulated");
    const unsigned lane = emu::current("__shfl_up_sync")->lane;
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
