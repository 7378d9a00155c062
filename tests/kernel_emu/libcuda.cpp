// An emulated CUDA driver: a `libcuda.so.1` that implements the part of the driver API the GPU
// backend uses (through cudarc) and runs the real kernels of kernels/*.cu on the CPU with the
// fiber emulator of shim.h. Put on LD_LIBRARY_PATH, it makes a machine without a GPU look like one
// with an sm_90 device, so the whole GPU path (device selection, NVRTC compilation, memory
// management, every launch with the grid and parameter block the backend computes, staging
// copies, the gradient exchange) runs end to end in CI (tests/common/gpu.rs).
//
// Memory and ordering, made strict on purpose:
//  * Device memory is host memory with guard zones on both sides. New allocations are filled with
//    NaN (as a float pattern), so a kernel that reads memory nobody wrote shows NaN. After every
//    kernel and memory operation the guard zones of all live allocations are checked; a damaged
//    one aborts the process naming the operation and the allocation. Freed memory is NaN-filled
//    and not reused at once, so a read after free shows NaN too.
//  * Every memory range a copy or memset touches must lie inside one live allocation.
//  * Stream work is deferred: launches, copies, memsets, event records and stream-ordered frees
//    are queued and run only when the host must wait (a stream, event or context synchronise, a
//    blocking copy, a copy into pageable memory). So the host sees results at the latest moment
//    CUDA allows: code that reads a pinned buffer before synchronising, or rewrites one that a
//    queued copy still has to read, gets the stale or the new data deterministically. Copies from
//    pageable host memory take their data at the call, as CUDA's staging does.
//  * All streams share one queue (a legal serialisation of independent streams).
//
// Kernel names come from kernel_names.h (EMU_KERNEL(name) per kernel), which
// scripts/emulated_gpu.sh generates from the kernels' declarations and which builds this file. cuModuleLoadData keeps the PTX text NVRTC produced, and
// cuModuleGetFunction requires the kernel's `.entry` in it, so a function is only found in the
// module that really defines it.
//
// Environment: SCADLES_EMU_GPUS = number of devices (default 1); SCADLES_EMU_GPU_MEM_MB = device
// memory (default 16 GiB; allocations beyond it fail with CUDA_ERROR_OUT_OF_MEMORY);
// SCADLES_EMU_TRACE=1 prints every executed operation to stderr.
#include "shim.h"

#include "../../kernels/activation.cu"
#include "../../kernels/batchnorm.cu"
#include "../../kernels/conv.cu"
#include "../../kernels/dropout.cu"
#include "../../kernels/gemm.cu"
#include "../../kernels/loss.cu"
#include "../../kernels/optimizer.cu"
#include "../../kernels/pack.cu"
#include "../../kernels/pool.cu"
#include "../../kernels/topk.cu"

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace emudrv {

using std::size_t;

// ---- driver API types (ABI of cuda.h, CUDA 13) ----------------------------------------------------
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct Ctx {
    int device;
};
struct Module {
    std::string ptx;
};
struct Function;
struct Stream {
    int id;
};
struct Event {
    std::chrono::steady_clock::time_point at{};
    unsigned long long pending = 0;  // queue number of its latest record, until that has run
};
struct Pool {
    int device;
};

constexpr CUresult SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, INVALID_IMAGE = 200,
                   INVALID_CONTEXT = 201, INVALID_PTX = 218, INVALID_HANDLE = 400, NOT_FOUND = 500, NOT_SUPPORTED = 801;

// ---- kernels -------------------------------------------------------------------------------------
/// Captures a launch's arguments from cuLaunchKernel's `kernelParams` (each a pointer to the value,
/// valid only during the call) as the kernel's parameter types, for a later run.
template <class... P>
std::function<void()> bind_launch(const char* name, emu::LaunchConfig cfg, void (*k)(P...), void** params) {
    return [&]<size_t... I>(std::index_sequence<I...>) {
        std::tuple<std::decay_t<P>...> args(*static_cast<std::decay_t<P>*>(params[I])...);
        return std::function<void()>([name, cfg, k, args]() {
            std::apply([&](const auto&... a) { emu::launch(name, cfg, k, a...); }, args);
        });
    }(std::index_sequence_for<P...>{});
}

struct Function {
    const char* name;
    std::function<void()> (*bind)(emu::LaunchConfig, void**);
};

#define EMU_KERNEL(k) \
    Function{#k, [](emu::LaunchConfig cfg, void** params) { return bind_launch(#k, cfg, &::k, params); }},
static Function g_kernels[] = {
#include "kernel_names.h"
};
#undef EMU_KERNEL

// ---- state -----------------------------------------------------------------------------------------
constexpr size_t GUARD = 256;                 // bytes of guard zone on each side of a device allocation
constexpr unsigned char GUARD_BYTE = 0xA5;
constexpr uint32_t UNWRITTEN = 0x7FC0DEADu;   // quiet NaN with a payload: fresh device memory
size_t TOTAL_MEM = 16ull << 30;               // device memory (SCADLES_EMU_GPU_MEM_MB)

struct Alloc {
    size_t size;
    int device;
    std::string origin;  // the operation that allocated it (for messages)
};

std::recursive_mutex g_mu;
bool g_initialised = false;
bool g_trace = false;
int g_devices = 1;
std::vector<Ctx*> g_primary;
thread_local Ctx* g_current = nullptr;
std::map<uintptr_t, Alloc> g_device;  // user pointer -> allocation (guards around it)
std::map<uintptr_t, size_t> g_pinned; // pinned host allocations
struct Op {
    unsigned long long seq;
    std::string what;
    std::function<void()> run;
};
std::deque<Op> g_queue;
unsigned long long g_enqueued = 0;
size_t g_in_use = 0;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "emulated CUDA driver: %s\n", what.c_str());
    std::fflush(stderr);
    std::_Exit(3);
}

void check_guards(const std::string& after) {
    for (const auto& [p, a] : g_device) {
        const unsigned char* lo = reinterpret_cast<const unsigned char*>(p) - GUARD;
        const unsigned char* hi = reinterpret_cast<const unsigned char*>(p) + a.size;
        for (size_t i = 0; i < GUARD; i++)
            if (lo[i] != GUARD_BYTE || hi[i] != GUARD_BYTE)
                die("after " + after + ": the guard zone " + (lo[i] != GUARD_BYTE ? "before" : "after") +
                    " the device allocation of " + std::to_string(a.size) + " bytes (" + a.origin +
                    ") was overwritten: an out-of-bounds write");
    }
}

/// Runs the queued operations in order, up to and including number `upto` (all by default).
void flush(unsigned long long upto = ~0ull) {
    while (!g_queue.empty() && g_queue.front().seq <= upto) {
        Op op = std::move(g_queue.front());
        g_queue.pop_front();
        if (g_trace) std::fprintf(stderr, "[emu-cuda] %s\n", op.what.c_str());
        op.run();
        check_guards(op.what);
    }
}

unsigned long long enqueue(std::string what, std::function<void()> run) {
    g_queue.push_back(Op{++g_enqueued, std::move(what), std::move(run)});
    return g_enqueued;
}

/// The allocation holding [p, p + n), or a fatal error naming the operation.
const Alloc& device_range(CUdeviceptr p, size_t n, const char* op) {
    auto it = g_device.upper_bound((uintptr_t)p);
    if (it != g_device.begin()) {
        --it;
        if ((uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + it->second.size) return it->second;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: device range [%#llx, +%zu) is not inside one live allocation", op, p, n);
    die(buf);
}

bool is_pinned(const void* p, size_t n) {
    auto it = g_pinned.upper_bound((uintptr_t)p);
    if (it == g_pinned.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + it->second;
}

CUresult device_alloc(CUdeviceptr* out, size_t n, const char* how) {
    if (!out) return INVALID_VALUE;
    if (g_in_use + n > TOTAL_MEM) return OUT_OF_MEMORY;
    const size_t body = (n + 3) & ~size_t(3);
    unsigned char* raw = static_cast<unsigned char*>(std::malloc(body + 2 * GUARD));
    if (!raw) return OUT_OF_MEMORY;
    std::memset(raw, GUARD_BYTE, GUARD);
    uint32_t* words = reinterpret_cast<uint32_t*>(raw + GUARD);
    for (size_t i = 0; i < body / 4; i++) words[i] = UNWRITTEN;
    std::memset(raw + GUARD + n, GUARD_BYTE, GUARD + body - n);
    const uintptr_t p = reinterpret_cast<uintptr_t>(raw + GUARD);
    g_device[p] = Alloc{n, g_current ? g_current->device : 0, std::string(how) + " #" + std::to_string(g_device.size())};
    g_in_use += n;
    *out = p;
    return SUCCESS;
}

/// Freed memory is filled with the NaN pattern and kept out of reuse for a while (up to
/// QUARANTINE bytes, oldest first released), so a kernel that still reads a buffer after its free
/// sees NaN rather than whatever a new allocation put there.
constexpr size_t QUARANTINE = 1ull << 30;
std::deque<std::pair<unsigned char*, size_t>> g_quarantine;
size_t g_quarantined = 0;

void device_free_now(CUdeviceptr p, const char* how) {
    auto it = g_device.find((uintptr_t)p);
    if (it == g_device.end()) die(std::string(how) + ": pointer is not a live device allocation (double free?)");
    check_guards(how);
    const size_t n = it->second.size;
    g_in_use -= n;
    g_device.erase(it);
    uint32_t* words = reinterpret_cast<uint32_t*>(p);
    for (size_t i = 0; i < n / 4; i++) words[i] = UNWRITTEN;
    g_quarantine.emplace_back(reinterpret_cast<unsigned char*>(p) - GUARD, n);
    g_quarantined += n;
    while (g_quarantined > QUARANTINE) {
        std::free(g_quarantine.front().first);
        g_quarantined -= g_quarantine.front().second;
        g_quarantine.pop_front();
    }
}

void init_once() {
    if (g_initialised) return;
    if (const char* e = std::getenv("SCADLES_EMU_GPUS")) g_devices = std::max(0, std::atoi(e));
    if (const char* e = std::getenv("SCADLES_EMU_TRACE")) g_trace = std::strcmp(e, "0") != 0;
    if (const char* e = std::getenv("SCADLES_EMU_GPU_MEM_MB")) TOTAL_MEM = (size_t)std::max(1L, std::atol(e)) << 20;
    for (int d = 0; d < g_devices; d++) g_primary.push_back(new Ctx{d});
    g_initialised = true;
}

const char* error_name(CUresult r) {
    switch (r) {
        case SUCCESS: return "CUDA_SUCCESS";
        case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case 3: return "CUDA_ERROR_NOT_INITIALIZED";
        case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
        case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
        case INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
        case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
        default: return "CUDA_ERROR_UNKNOWN";
    }
}

}  // namespace emudrv

// ---- the exported driver API -------------------------------------------------------------------------
using namespace emudrv;
#define API extern "C" __attribute__((visibility("default")))
#define LOCK std::lock_guard<std::recursive_mutex> lock_(g_mu)
#define NEED_INIT \
    if (!g_initialised) return 3

API CUresult cuGetErrorName(CUresult r, const char** s) {
    if (!s) return INVALID_VALUE;
    *s = error_name(r);
    return SUCCESS;
}
API CUresult cuGetErrorString(CUresult r, const char** s) { return cuGetErrorName(r, s); }

API CUresult cuInit(unsigned) {
    LOCK;
    init_once();
    return SUCCESS;
}
API CUresult cuDriverGetVersion(int* v) {
    if (!v) return INVALID_VALUE;
    *v = 13000;
    return SUCCESS;
}
API CUresult cuDeviceGetCount(int* n) {
    LOCK;
    NEED_INIT;
    if (!n) return INVALID_VALUE;
    *n = g_devices;
    return SUCCESS;
}
API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    LOCK;
    NEED_INIT;
    if (!d) return INVALID_VALUE;
    if (ordinal < 0 || ordinal >= g_devices) return INVALID_DEVICE;
    *d = ordinal;
    return SUCCESS;
}
API CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    if (!name || len <= 0) return INVALID_VALUE;
    std::snprintf(name, (size_t)len, "SCADLES emulated GPU (CPU fibers)");
    return SUCCESS;
}
API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    if (!bytes) return INVALID_VALUE;
    *bytes = TOTAL_MEM;
    return SUCCESS;
}
API CUresult cuDeviceGetUuid_v2(unsigned char* uuid, CUdevice d) {
    if (!uuid) return INVALID_VALUE;
    std::memset(uuid, 0, 16);
    uuid[15] = (unsigned char)d;
    return SUCCESS;
}
API CUresult cuDeviceGetUuid(unsigned char* uuid, CUdevice d) { return cuDeviceGetUuid_v2(uuid, d); }
API CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    LOCK;
    NEED_INIT;
    if (!v) return INVALID_VALUE;
    if (d < 0 || d >= g_devices) return INVALID_DEVICE;
    switch (attr) {
        case 1: *v = 1024; break;                // max threads per block
        case 2: case 3: *v = 1024; break;        // max block dim x, y
        case 4: *v = 64; break;                  // max block dim z
        case 5: *v = 2147483647; break;          // max grid dim x
        case 6: case 7: *v = 65535; break;       // max grid dim y, z
        case 8: *v = 48 * 1024; break;           // shared memory per block
        case 10: *v = 32; break;                 // warp size
        case 13: *v = 1980000; break;            // clock rate (kHz)
        case 16: *v = 132; break;                // multiprocessors (an H100 SXM's count)
        case 33: *v = d; break;                  // PCI bus id
        case 36: *v = 2619000; break;            // memory clock (kHz)
        case 37: *v = 5120; break;               // memory bus width
        case 38: *v = 50 * 1024 * 1024; break;   // L2 bytes
        case 39: *v = 2048; break;               // threads per multiprocessor
        case 41: *v = 1; break;                  // unified addressing
        case 75: *v = 9; break;                  // compute capability major
        case 76: *v = 0; break;                  // compute capability minor
        case 97: *v = 227 * 1024; break;         // opt-in shared memory per block
        case 115: *v = 1; break;                 // memory pools supported
        default: *v = 0; break;
    }
    return SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(Ctx** ctx, CUdevice d) {
    LOCK;
    NEED_INIT;
    if (!ctx) return INVALID_VALUE;
    if (d < 0 || d >= g_devices) return INVALID_DEVICE;
    *ctx = g_primary[(size_t)d];
    return SUCCESS;
}
API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { return d >= 0 && d < g_devices ? SUCCESS : INVALID_DEVICE; }
API CUresult cuCtxSetCurrent(Ctx* ctx) {
    g_current = ctx;
    return SUCCESS;
}
API CUresult cuCtxGetCurrent(Ctx** ctx) {
    if (!ctx) return INVALID_VALUE;
    *ctx = g_current;
    return SUCCESS;
}
API CUresult cuCtxGetDevice(CUdevice* d) {
    if (!d) return INVALID_VALUE;
    if (!g_current) return INVALID_CONTEXT;
    *d = g_current->device;
    return SUCCESS;
}
API CUresult cuCtxSynchronize() {
    LOCK;
    flush();
    return SUCCESS;
}

API CUresult cuStreamCreate(Stream** s, unsigned) {
    if (!s) return INVALID_VALUE;
    static int next = 1;
    LOCK;
    *s = new Stream{next++};
    return SUCCESS;
}
API CUresult cuStreamCreateWithPriority(Stream** s, unsigned flags, int) { return cuStreamCreate(s, flags); }
API CUresult cuStreamDestroy_v2(Stream* s) {
    LOCK;
    flush();
    delete s;
    return SUCCESS;
}
API CUresult cuStreamSynchronize(Stream*) {
    LOCK;
    flush();
    return SUCCESS;
}
API CUresult cuStreamWaitEvent(Stream*, Event*, unsigned) { return SUCCESS; }  // one queue: already ordered
API CUresult cuStreamIsCapturing(Stream*, int* status) {
    if (!status) return INVALID_VALUE;
    *status = 0;
    return SUCCESS;
}
API CUresult cuLaunchHostFunc(Stream*, void (*fn)(void*), void* user) {
    LOCK;
    enqueue("host function", [fn, user] { fn(user); });
    return SUCCESS;
}

API CUresult cuEventCreate(Event** e, unsigned) {
    if (!e) return INVALID_VALUE;
    *e = new Event();
    return SUCCESS;
}
API CUresult cuEventDestroy_v2(Event* e) {
    LOCK;
    if (e->pending) flush(e->pending);  // its queued record still points at it
    delete e;
    return SUCCESS;
}
// An event waits for exactly the work queued before its latest record: synchronising on an
// event that was never recorded, or whose record has run, returns at once (as CUDA's does), so a
// wait on the wrong event does not hide a missing one.
API CUresult cuEventRecord(Event* e, Stream*) {
    if (!e) return INVALID_HANDLE;
    LOCK;
    e->pending = enqueue("event record", [e] {
        e->at = std::chrono::steady_clock::now();
        e->pending = 0;
    });
    return SUCCESS;
}
API CUresult cuEventSynchronize(Event* e) {
    if (!e) return INVALID_HANDLE;
    LOCK;
    if (e->pending) flush(e->pending);
    return SUCCESS;
}
/// Queried work is taken as done by then (the device progresses on its own).
API CUresult cuEventQuery(Event* e) { return cuEventSynchronize(e); }
API CUresult cuEventElapsedTime_v2(float* ms, Event* a, Event* b) {
    if (!ms || !a || !b) return INVALID_VALUE;
    LOCK;
    flush(std::max(a->pending, b->pending));
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return SUCCESS;
}
API CUresult cuEventElapsedTime(float* ms, Event* a, Event* b) { return cuEventElapsedTime_v2(ms, a, b); }

API CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    if (!free_bytes || !total) return INVALID_VALUE;
    LOCK;
    *total = TOTAL_MEM;
    *free_bytes = TOTAL_MEM - g_in_use;
    return SUCCESS;
}
API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
    LOCK;
    return device_alloc(p, n, "cuMemAlloc");
}
API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t n, Stream*) {
    LOCK;
    return device_alloc(p, n, "cuMemAllocAsync");
}
API CUresult cuMemFree_v2(CUdeviceptr p) {
    LOCK;
    flush();
    device_free_now(p, "cuMemFree");
    return SUCCESS;
}
API CUresult cuMemFreeAsync(CUdeviceptr p, Stream*) {
    LOCK;
    if (!g_device.count((uintptr_t)p)) die("cuMemFreeAsync: pointer is not a live device allocation");
    enqueue("cuMemFreeAsync", [p] { device_free_now(p, "cuMemFreeAsync"); });
    return SUCCESS;
}
API CUresult cuMemHostAlloc(void** p, size_t n, unsigned) {
    if (!p) return INVALID_VALUE;
    LOCK;
    void* mem = std::malloc(std::max<size_t>(n, 1));
    if (!mem) return OUT_OF_MEMORY;
    std::memset(mem, 0xCD, n);
    g_pinned[(uintptr_t)mem] = n;
    *p = mem;
    return SUCCESS;
}
API CUresult cuMemFreeHost(void* p) {
    LOCK;
    flush();  // queued copies may still use it
    if (!g_pinned.erase((uintptr_t)p)) die("cuMemFreeHost: not a pinned allocation");
    std::free(p);
    return SUCCESS;
}
API CUresult cuDeviceGetDefaultMemPool(Pool** pool, CUdevice d) {
    if (!pool) return INVALID_VALUE;
    static Pool pools[64];
    if (d < 0 || d >= 64) return INVALID_DEVICE;
    pools[d].device = d;
    *pool = &pools[d];
    return SUCCESS;
}
API CUresult cuDeviceGetMemPool(Pool** pool, CUdevice d) { return cuDeviceGetDefaultMemPool(pool, d); }
API CUresult cuMemPoolSetAttribute(Pool*, int, void*) { return SUCCESS; }
API CUresult cuMemPoolGetAttribute(Pool*, int, void* v) {
    if (!v) return INVALID_VALUE;
    std::memset(v, 0, 8);
    return SUCCESS;
}
API CUresult cuMemPoolTrimTo(Pool*, size_t) { return SUCCESS; }

// Copies. Host -> device from pageable memory reads the host data now (CUDA stages it before
// returning); from pinned memory, when the queue runs. Device -> host into pageable memory
// completes before returning; into pinned memory, when the queue runs.
static CUresult htod(CUdeviceptr dst, const void* src, size_t n, bool async, const char* what) {
    LOCK;
    if (n == 0) return SUCCESS;
    if (!src) return INVALID_VALUE;
    device_range(dst, n, what);
    if (async && is_pinned(src, n)) {
        enqueue(what, [dst, src, n] { std::memcpy(reinterpret_cast<void*>(dst), src, n); });
    } else {
        auto data = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                                  static_cast<const unsigned char*>(src) + n);
        enqueue(what, [dst, data] { std::memcpy(reinterpret_cast<void*>(dst), data->data(), data->size()); });
    }
    if (!async) flush();
    return SUCCESS;
}
static CUresult dtoh(void* dst, CUdeviceptr src, size_t n, bool async, const char* what) {
    LOCK;
    if (n == 0) return SUCCESS;
    if (!dst) return INVALID_VALUE;
    device_range(src, n, what);
    enqueue(what, [dst, src, n] { std::memcpy(dst, reinterpret_cast<const void*>(src), n); });
    if (!async || !is_pinned(dst, n)) flush();
    return SUCCESS;
}
static CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, bool async, const char* what) {
    LOCK;
    if (n == 0) return SUCCESS;
    device_range(dst, n, what);
    device_range(src, n, what);
    enqueue(what, [dst, src, n] { std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), n); });
    if (!async) flush();
    return SUCCESS;
}
API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { return htod(d, h, n, false, "cuMemcpyHtoD"); }
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, Stream*) {
    return htod(d, h, n, true, "cuMemcpyHtoDAsync");
}
API CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) { return dtoh(h, d, n, false, "cuMemcpyDtoH"); }
API CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, Stream*) {
    return dtoh(h, d, n, true, "cuMemcpyDtoHAsync");
}
API CUresult cuMemcpyDtoD_v2(CUdeviceptr a, CUdeviceptr b, size_t n) { return dtod(a, b, n, false, "cuMemcpyDtoD"); }
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, Stream*) {
    return dtod(a, b, n, true, "cuMemcpyDtoDAsync");
}
static CUresult memset_d(CUdeviceptr d, unsigned value, size_t width, size_t count, bool async, const char* what) {
    LOCK;
    if (count == 0) return SUCCESS;
    device_range(d, count * width, what);
    enqueue(what, [d, value, width, count] {
        unsigned char* p = reinterpret_cast<unsigned char*>(d);
        for (size_t i = 0; i < count; i++) std::memcpy(p + i * width, &value, width);
    });
    if (!async) flush();
    return SUCCESS;
}
API CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { return memset_d(d, v, 1, n, false, "cuMemsetD8"); }
API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, Stream*) {
    return memset_d(d, v, 1, n, true, "cuMemsetD8Async");
}
API CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned v, size_t n) { return memset_d(d, v, 4, n, false, "cuMemsetD32"); }
API CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, Stream*) {
    return memset_d(d, v, 4, n, true, "cuMemsetD32Async");
}

API CUresult cuModuleLoadData(Module** m, const void* image) {
    if (!m || !image) return INVALID_VALUE;
    const char* text = static_cast<const char*>(image);
    if (!std::strstr(text, ".version") || !std::strstr(text, ".target")) return INVALID_PTX;
    *m = new Module{text};
    return SUCCESS;
}
API CUresult cuModuleUnload(Module* m) {
    LOCK;
    flush();
    delete m;
    return SUCCESS;
}
API CUresult cuModuleGetFunction(Function** f, Module* m, const char* name) {
    if (!f || !m || !name) return INVALID_VALUE;
    // The PTX must define the entry (".entry name(" or ".entry name" at a line end).
    const std::string entry = std::string(".entry ") + name;
    bool defined = false;
    for (size_t at = m->ptx.find(entry); at != std::string::npos; at = m->ptx.find(entry, at + 1)) {
        const char next = at + entry.size() < m->ptx.size() ? m->ptx[at + entry.size()] : '\0';
        if (next == '(' || next == '\n' || next == '\r' || next == ' ') defined = true;
    }
    if (!defined) return NOT_FOUND;
    for (Function& k : g_kernels)
        if (std::strcmp(k.name, name) == 0) {
            *f = &k;
            return SUCCESS;
        }
    die(std::string("cuModuleGetFunction: the PTX defines ") + name + " but the emulator was not built with it");
}
API CUresult cuFuncGetAttribute(int* v, int attr, Function*) {
    if (!v) return INVALID_VALUE;
    *v = attr == 0 ? 1024 : 0;  // max threads per block; sizes and registers: 0
    return SUCCESS;
}
API CUresult cuFuncSetAttribute(Function*, int, int) { return SUCCESS; }
API CUresult cuFuncSetCacheConfig(Function*, int) { return SUCCESS; }

API CUresult cuLaunchKernel(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shared, Stream*, void** params, void** extra) {
    if (!f) return INVALID_HANDLE;
    if (extra) return NOT_SUPPORTED;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || bx * by * bz > 1024 || gy > 65535 || gz > 65535 ||
        shared != 0)
        return INVALID_VALUE;
    LOCK;
    const emu::LaunchConfig cfg{{gx, gy, gz}, {bx, by, bz}, shared};
    char what[200];
    std::snprintf(what, sizeof what, "kernel %s <<<(%u,%u,%u), (%u,%u,%u)>>>", f->name, gx, gy, gz, bx, by, bz);
    enqueue(what, f->bind(cfg, params));
    return SUCCESS;
}

// NVRTC opens libcuda.so.1 when it can and asks it for an internal interface table; the emulated
// driver has none, which NVRTC takes as "no driver services" and compiles as it does without a
// driver.
API CUresult cuGetExportTable(const void** table, const void*) {
    if (table) *table = nullptr;
    return NOT_SUPPORTED;
}
