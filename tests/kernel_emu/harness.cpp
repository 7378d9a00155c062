// Executes the real, unmodified CUDA kernels of kernels/*.cu on the CPU (through shim.h) and checks
// every kernel against an independent naive reference computed in double precision.
//
// Each kernel is launched with the grid, block and parameter struct that src/backend/cuda/ops.rs
// computes for it: the `op_*` functions and the launches inside each test mirror the ops.rs
// function named in the comment next to them, including the split-K rule of conv2d_backward
// (which depends on the GPU's SM count: 132 for an H100 SXM unless a case says otherwise) and the
// capped top-k histogram grid. ops.rs's launch constants are printed as "CONST" lines, which
// tests/kernel_emulation.rs compares with ops.rs. A few cases marked "[contract]" exercise a
// documented kernel path that ops.rs does not reach today (beta != 0 stores, grids smaller than
// the data).
//
// Buffers carry guard zones on both sides, filled with a NaN (or 0xDEAD....) whose payload differs
// per buffer: a kernel writing out of bounds fails the case ("guard zone"), and one reading out of
// bounds pulls NaN or garbage into its result. Outputs that a kernel must overwrite start as NaN.
//
// Output: one line per case, "PASS|FAIL  <kernel>  <case>  max_err=<e> tol=<t>|exact  <ms>", with
// the first mismatches after a failure, then one "KERNEL <name> cases=<n> max_err=<e> PASS|FAIL"
// line per kernel launched and checked (tests/kernel_emulation.rs cross-checks that list against
// src/backend/cuda/kernels.rs). Exit status: 0 when every case passes, 1 otherwise.
// max_err is max |got - want| / scale, scale = the largest |want| of that output unless the case
// says otherwise; "exact" checks compare bit patterns and report 0 or fail.
//
// Limits: see shim.h (warp-granular schedule perturbation only, no weak-memory effects, blocks run
// one at a time); shapes are small (the emulator runs each CUDA thread as a fiber, one at a time), so 32-bit
// index overflow paths and grids of more than a few hundred blocks are not exercised.
//
// Build: g++ -std=c++20 -O2 -pthread tests/kernel_emu/harness.cpp -o harness
// (tests/kernel_emulation.rs does this). Optional argument: a substring filter on kernel names.
#include "shim.h"

// The ten kernel families, exactly as NVRTC sees them (common.cuh is `#pragma once`).
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

#include <algorithm>
#include <cstdarg>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>

// Everything of the harness lives in a namespace, so that a helper added to a kernel file later
// cannot collide with one of the harness's names.
namespace kh {

using std::size_t;
using std::string;
using std::vector;

// =============================================================================================
// Infrastructure: guarded buffers, checked launches, cases and their report
// =============================================================================================

static string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
static string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

static vector<string> g_pending_errors;  // guard-zone violations seen since the last case ended
static const char* g_filter = nullptr;

constexpr size_t GUARD = 64;

struct GuardedBase {
    virtual bool guards_intact() = 0;  // restores the guards when they were not
    virtual const string& label() const = 0;
    virtual ~GuardedBase() = default;
};
static std::set<GuardedBase*> g_live;

/// Guard fill of the `id`-th buffer: a NaN (or 0xDEAD....) whose payload differs between buffers,
/// so that even copying one buffer's guard into another's is noticed.
template <class T>
T guard_value(unsigned id) {
    if constexpr (std::is_same_v<T, float>) return std::bit_cast<float>(0x7fc00000u | (0xd0000u + id % 0xffffu));
    else if constexpr (std::is_same_v<T, double>) return std::bit_cast<double>(0x7ff8dead00000000ull | (0xbeef0000ull + id % 0xffffu));
    else if constexpr (std::is_same_v<T, u8>) return (u8)(0xa0u + id % 16u);
    else return (T)(0xdead0000u + id % 0xffffu);
}
static unsigned g_buf_id = 0;

/// A "device" buffer: n values between two guard zones.
template <class T>
struct Buf : GuardedBase {
    string name;
    size_t n;
    T guard;
    vector<T> mem;
    Buf(string nm, size_t len, T fill)
        : name(std::move(nm)), n(len), guard(guard_value<T>(g_buf_id++)), mem(len + 2 * GUARD, guard) {
        std::fill(mem.begin() + GUARD, mem.begin() + GUARD + n, fill);
        g_live.insert(this);
    }
    Buf(string nm, const vector<T>& v)
        : name(std::move(nm)), n(v.size()), guard(guard_value<T>(g_buf_id++)), mem(v.size() + 2 * GUARD, guard) {
        std::copy(v.begin(), v.end(), mem.begin() + GUARD);
        g_live.insert(this);
    }
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
    ~Buf() override { g_live.erase(this); }
    T* p() { return mem.data() + GUARD; }
    const T* p() const { return mem.data() + GUARD; }
    T& operator[](size_t i) { return mem[GUARD + i]; }
    vector<T> vec() const { return vector<T>(mem.begin() + GUARD, mem.begin() + GUARD + n); }
    void set(const vector<T>& v) { std::copy(v.begin(), v.end(), mem.begin() + GUARD); }
    const string& label() const override { return name; }
    bool guards_intact() override {
        const T g = guard;
        bool ok = true;
        for (size_t i = 0; i < GUARD; i++)
            for (size_t j : {i, GUARD + n + i})
                if (std::memcmp(&mem[j], &g, sizeof(T)) != 0) {
                    ok = false;
                    mem[j] = g;
                }
        return ok;
    }
};

static std::set<string> g_launched;

/// Launches a kernel through the emulator, then checks every live buffer's guard zones.
template <class... P, class... A>
static void run(const char* name, const emu::LaunchConfig& cfg, void (*k)(P...), A&&... args) {
    g_launched.insert(name);
    emu::launch(name, cfg, k, std::forward<A>(args)...);
    for (GuardedBase* b : g_live)
        if (!b->guards_intact()) g_pending_errors.push_back(fmt("%s wrote or corrupted the guard zone of buffer '%s'", name, b->label().c_str()));
}

struct KernelStat {
    double max_err = 0;
    int cases = 0, fails = 0;
};
static std::map<string, KernelStat> g_stats;
static int g_cases = 0, g_failed = 0;
static auto g_last_report = std::chrono::steady_clock::now();  // a case's time: since the previous report

/// One checked case of one kernel: any number of output checks, one report line.
struct Case {
    string kernel, desc;
    double tol, max_err = 0;
    bool ok = true;
    vector<string> msgs;

    Case(string k, string d, double t) : kernel(std::move(k)), desc(std::move(d)), tol(t) {}
    Case(const Case&) = delete;

    void fail(const string& m) {
        ok = false;
        if (msgs.size() < 12) msgs.push_back(m);
    }

    /// |got - want| / scale <= tol elementwise; scale = max |want| (or `scale` when given > 0).
    template <class G>
    void close(const char* what, const G* got, const vector<double>& want, double scale = 0) {
        const double t = tol;
        if (scale <= 0) {
            for (double w : want)
                if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
            if (scale == 0) scale = 1;
        }
        double worst = 0;
        int shown = 0;
        for (size_t i = 0; i < want.size(); i++) {
            const double g = (double)got[i], w = want[i];
            double e;
            if (std::isnan(w) || std::isnan(g)) e = (std::isnan(w) && std::isnan(g)) ? 0 : INFINITY;
            else if (std::isinf(w) || std::isinf(g)) e = (g == w) ? 0 : INFINITY;
            else e = std::fabs(g - w) / scale;
            worst = std::max(worst, e);
            if (!(e <= t)) {
                if (shown++ < 5) fail(fmt("  %s[%zu]: got %.9g want %.9g (err %.3e, scale %.3g)", what, i, g, w, e, scale));
                else if (shown == 6) fail(fmt("  %s: more mismatches", what));
            }
        }
        if (!(worst <= t)) ok = false;
        max_err = std::max(max_err, worst);
    }

    /// Bit-for-bit equality.
    template <class T>
    void exact(const char* what, const T* got, const vector<T>& want) {
        int shown = 0;
        size_t bad = 0;
        for (size_t i = 0; i < want.size(); i++)
            if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
                bad++;
                if (shown++ < 5) {
                    if constexpr (std::is_floating_point_v<T>)
                        fail(fmt("  %s[%zu]: got %.9g want %.9g (not bit-identical)", what, i, (double)got[i], (double)want[i]));
                    else
                        fail(fmt("  %s[%zu]: got %llu want %llu", what, i, (unsigned long long)got[i], (unsigned long long)want[i]));
                }
            }
        if (bad) {
            fail(fmt("  %s: %zu of %zu values differ", what, bad, want.size()));
            max_err = INFINITY;
        }
    }

    ~Case() {
        for (const string& e : g_pending_errors) fail("  " + e);
        if (!g_pending_errors.empty()) max_err = INFINITY;
        g_pending_errors.clear();
        const auto now = std::chrono::steady_clock::now();
        const double ms = std::chrono::duration<double, std::milli>(now - g_last_report).count();
        g_last_report = now;
        const string tol_s = tol > 0 ? fmt("tol=%.0e", tol) : string("exact");
        std::printf("%s  %-22s %-60s max_err=%.2e %-9s %5.0f ms\n", ok ? "PASS" : "FAIL", kernel.c_str(), desc.c_str(),
                    max_err, tol_s.c_str(), ms);
        for (const string& m : msgs) std::printf("%s\n", m.c_str());
        std::fflush(stdout);
        KernelStat& s = g_stats[kernel];
        s.cases++;
        s.max_err = std::max(s.max_err, max_err);
        g_cases++;
        if (!ok) {
            s.fails++;
            g_failed++;
        }
    }
};

static bool selected(const char* what) { return !g_filter || std::strstr(what, g_filter); }

// ---- random inputs ---------------------------------------------------------------------------
static std::mt19937_64 g_rng(0x5CAD1E5u);
static vector<float> randn(size_t n, double scale = 1.0, double mean = 0.0) {
    std::normal_distribution<double> d(mean, scale);
    vector<float> v(n);
    for (float& x : v) x = (float)d(g_rng);
    return v;
}
static vector<float> randu(size_t n, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    vector<float> v(n);
    for (float& x : v) x = (float)d(g_rng);
    return v;
}
static vector<float> rand_int_valued(size_t n, int lo, int hi) {  // many exact ties
    std::uniform_int_distribution<int> d(lo, hi);
    vector<float> v(n);
    for (float& x : v) x = (float)d(g_rng);
    return v;
}
static u32 rand_u32(u32 below) { return (u32)(g_rng() % below); }
static vector<double> to_d(const vector<float>& v) { return vector<double>(v.begin(), v.end()); }
static const float NaNf = std::numeric_limits<float>::quiet_NaN();

// =============================================================================================
// Mirrors of src/backend/cuda/ops.rs launch logic
// =============================================================================================

constexpr u32 BLOCK = 256;          // ops.rs BLOCK
constexpr u32 TOPK_CHUNK = 4096;    // ops.rs TOPK_CHUNK
constexpr size_t H100_SMS = 132;    // CudaBackend::sm_count on an H100 SXM

static size_t div_ceil(size_t a, size_t b) { return (a + b - 1) / b; }

/// ops.rs `elementwise`: grid-stride launch over `len` elements.
static emu::LaunchConfig elementwise(size_t len) {
    const u32 blocks = (u32)std::clamp<size_t>(div_ceil(len, BLOCK), 1, 1 << 16);
    return {{blocks, 1, 1}, {BLOCK, 1, 1}, 0};
}
/// ops.rs `per_row`: one block of BLOCK threads per row.
static emu::LaunchConfig per_row(size_t rows) { return {{(u32)rows, 1, 1}, {BLOCK, 1, 1}, 0}; }
/// ops.rs `per_channel`: one block of BN_BLOCK threads per channel (the batch-norm reductions).
static const u32 BN_BLOCK = 1024;
static emu::LaunchConfig per_channel(size_t c) { return {{(u32)c, 1, 1}, {BN_BLOCK, 1, 1}, 0}; }
/// ops.rs `Capped::capped`.
static emu::LaunchConfig capped(emu::LaunchConfig c, size_t cap) {
    c.grid.x = std::min<u32>(c.grid.x, (u32)std::max<size_t>(cap, 1));
    return c;
}
/// ops.rs `CudaBackend::gemm_launch`.
static emu::LaunchConfig gemm_launch(bool tc, size_t m, size_t n, size_t splits) {
    return {{(u32)div_ceil(n, 64), (u32)div_ceil(m, 64), (u32)splits}, {tc ? 128u : 256u, 1, 1}, 0};
}
static const char* tc_name(bool tc) { return tc ? "tf32" : "simt"; }

/// Mirrors ops.rs `CudaBackend::gemm` (row-major C = alpha op(A) op(B) + beta C).
static void op_gemm(bool tc, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                    const float* b, size_t ldb, float beta, float* c, size_t ldc) {
    if (m == 0 || n == 0) return;
    const GemmParams p{(u32)m, (u32)n, (u32)k, (u32)lda, (u32)ldb, (u32)ldc, (u32)ta, (u32)tb, alpha, beta};
    const emu::LaunchConfig cfg{{(u32)div_ceil(n, 64), (u32)div_ceil(m, 64), 1}, {tc ? 128u : 256u, 1, 1}, 0};
    if (tc) run("gemm_tf32", cfg, gemm_tf32, p, a, b, c);
    else run("gemm_simt", cfg, gemm_simt, p, a, b, c);
}

/// Mirrors ops.rs `CudaBackend::bias_forward`.
static void op_bias_forward(size_t n, size_t c, size_t hw, const float* bias, float* y, float beta = 0.0f) {
    if (n * c * hw == 0) return;
    const BiasParams p{(u32)n, (u32)c, (u32)hw, beta};
    run("bias_fwd", elementwise(n * c * hw), bias_fwd, p, bias, y);
}

/// Mirrors ops.rs `CudaBackend::bias_backward`.
static void op_bias_backward(size_t n, size_t c, size_t hw, const float* dy, float* db, float beta = 0.0f) {
    if (c == 0) return;
    const BiasParams p{(u32)n, (u32)c, (u32)hw, beta};
    run("bias_bwd", per_row(c), bias_bwd, p, dy, db);
}

struct ConvShape {  // cpu::Conv2dShape
    size_t n, c_in, h, w, c_out, kh, kw, stride, pad;
    static size_t out_size(size_t len, size_t k, size_t s, size_t pad) {
        return (len + 2 * pad < k || s == 0) ? 0 : (len + 2 * pad - k) / s + 1;
    }
    size_t oh() const { return out_size(h, kh, stride, pad); }
    size_t ow() const { return out_size(w, kw, stride, pad); }
    size_t in_len() const { return n * c_in * h * w; }
    size_t out_len() const { return n * c_out * oh() * ow(); }
    size_t w_len() const { return c_out * c_in * kh * kw; }
    string str() const {
        return fmt("n%zu ci%zu %zux%zu co%zu k%zux%zu s%zu p%zu", n, c_in, h, w, c_out, kh, kw, stride, pad);
    }
};

/// Mirrors ops.rs `CudaBackend::conv_params`.
static ConvParams conv_params(const ConvShape& s) {
    return ConvParams{(u32)s.n, (u32)s.c_in, (u32)s.h, (u32)s.w, (u32)s.c_out, (u32)s.kh, (u32)s.kw,
                      (u32)s.stride, (u32)s.pad, (u32)s.oh(), (u32)s.ow(), 0, 0.0f};
}

/// Mirrors the convolution launch of ops.rs `CudaBackend::conv2d_forward` (the bias, when given,
/// is a separate bias_forward launch, checked on its own).
static void op_conv2d_forward(bool tc, const ConvShape& s, const float* x, const float* w, float* y, float beta = 0.0f) {
    ConvParams p = conv_params(s);
    p.beta = beta;  // [contract] cases only; ops.rs always passes 0
    const size_t m = s.c_out, n = s.n * s.oh() * s.ow();
    if (m == 0 || n == 0) return;
    if (tc) run("conv2d_fwd_tf32", gemm_launch(tc, m, n, 1), conv2d_fwd_tf32, p, x, w, y);
    else run("conv2d_fwd_simt", gemm_launch(tc, m, n, 1), conv2d_fwd_simt, p, x, w, y);
}

/// The split-K plan of ops.rs `CudaBackend::conv2d_backward` for the weight gradient.
struct SplitPlan {
    size_t m, n, k, splits, k_chunk;
};
static SplitPlan split_plan(const ConvShape& s, size_t sm_count) {
    const size_t m = s.c_out, n = s.c_in * s.kh * s.kw, k = s.n * s.oh() * s.ow();
    const size_t tiles = div_ceil(m, 64) * div_ceil(n, 64);
    const size_t want = std::max<size_t>(div_ceil(2 * sm_count, tiles), 1);
    const size_t max_splits = std::max<size_t>(k / 256, 1);
    const size_t splits0 = std::min({want, max_splits, (size_t)256});
    const size_t k_chunk = std::max<size_t>(div_ceil(div_ceil(k, splits0), 16), 1) * 16;
    const size_t splits = std::max<size_t>(div_ceil(k, k_chunk), 1);
    return {m, n, k, splits, k_chunk};
}

/// Mirrors the weight-gradient part of ops.rs `CudaBackend::conv2d_backward`: one launch writing
/// dw when there is one split, else a launch writing the [splits, m, n] workspace `ws` (returned
/// for inspection) followed by splitk_reduce into dw.
static void op_conv2d_backward_weight(bool tc, const ConvShape& s, size_t sm_count, const float* x, const float* dy,
                                      float* dw, Buf<float>* ws_out, bool do_reduce = true) {
    ConvParams p = conv_params(s);
    const SplitPlan sp = split_plan(s, sm_count);
    if (sp.m == 0 || sp.n == 0) return;
    p.k_chunk = (u32)sp.k_chunk;
    float* out = sp.splits == 1 ? dw : ws_out->p();
    if (tc) run("conv2d_bwd_weight_tf32", gemm_launch(tc, sp.m, sp.n, sp.splits), conv2d_bwd_weight_tf32, p, x, dy, out);
    else run("conv2d_bwd_weight_simt", gemm_launch(tc, sp.m, sp.n, sp.splits), conv2d_bwd_weight_simt, p, x, dy, out);
    if (sp.splits > 1 && do_reduce) {
        const ReduceParams rp{(u32)(sp.m * sp.n), (u32)sp.splits, 0.0f};
        run("splitk_reduce", elementwise(sp.m * sp.n), splitk_reduce, rp, (const float*)ws_out->p(), dw);
    }
}

/// Mirrors the data-gradient part of ops.rs `CudaBackend::conv2d_backward` (k_chunk reset to 0).
static void op_conv2d_backward_data(bool tc, const ConvShape& s, const float* dy, const float* w, float* dx) {
    ConvParams p = conv_params(s);
    p.k_chunk = 0;
    const size_t m = s.c_in, n = s.n * s.h * s.w;
    if (m == 0 || n == 0) return;
    if (tc) run("conv2d_bwd_data_tf32", gemm_launch(tc, m, n, 1), conv2d_bwd_data_tf32, p, dy, w, dx);
    else run("conv2d_bwd_data_simt", gemm_launch(tc, m, n, 1), conv2d_bwd_data_simt, p, dy, w, dx);
}

// =============================================================================================
// GEMM
// =============================================================================================

static void ref_gemm(bool ta, bool tb, size_t m, size_t n, size_t k, double alpha, const vector<float>& A, size_t lda,
                     const vector<float>& B, size_t ldb, double beta, const vector<float>& C0, size_t ldc,
                     vector<double>& out) {
    // out has C0's layout; entries outside the m x n window keep C0's values.
    out.assign(C0.begin(), C0.end());
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t l = 0; l < k; l++) {
                const double av = ta ? A[l * lda + i] : A[i * lda + l];
                const double bv = tb ? B[j * ldb + l] : B[l * ldb + j];
                s += av * bv;
            }
            out[i * ldc + j] = alpha * s + (beta == 0 ? 0.0 : beta * (double)C0[i * ldc + j]);
        }
}

static void test_gemm(bool tc, bool ta, bool tb, size_t m, size_t n, size_t k, size_t pad, float alpha, float beta,
                      const char* why) {
    const char* kname = tc ? "gemm_tf32" : "gemm_simt";
    if (!selected(kname)) return;
    const size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    const size_t lda = std::max<size_t>(ac + pad, 1), ldb = std::max<size_t>(bc + pad, 1), ldc = std::max<size_t>(n + pad, 1);
    const vector<float> A = randn(std::max<size_t>(ar * lda, 1)), B = randn(std::max<size_t>(br * ldb, 1));
    vector<float> C0 = randn(m * ldc);
    if (beta == 0.0f)  // beta == 0 must not read C: poison the window (the padding keeps values)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) C0[i * ldc + j] = NaNf;
    vector<double> want;
    ref_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C0, ldc, want);
    Buf<float> a("A", A), b("B", B), c("C", C0);
    op_gemm(tc, ta, tb, m, n, k, alpha, a.p(), lda, b.p(), ldb, beta, c.p(), ldc);
    Case cs(kname, fmt("%s m%zu n%zu k%zu ta%d tb%d ld+%zu a%g b%g", why, m, n, k, ta, tb, pad, alpha, beta), tc ? 3e-3 : 1e-5);
    cs.close("C", c.p(), want);
}

static void gemm_tests() {
    for (bool tc : {false, true}) {
        // The three GEMMs of linear_forward / linear_backward (n=5 samples, in_f=37, out_f=70).
        const size_t n = 5, in_f = 37, out_f = 70;
        test_gemm(tc, false, true, n, out_f, in_f, 0, 1.0f, 0.0f, "linear_fwd");
        test_gemm(tc, true, false, out_f, in_f, n, 0, 1.0f, 0.0f, "linear_bwd dw");
        test_gemm(tc, false, false, n, in_f, out_f, 0, 1.0f, 0.0f, "linear_bwd dx");
        // gemm() directly: all transposes, alpha/beta, padded leading dimensions, partial tiles.
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) test_gemm(tc, ta, tb, 70, 130, 37, 3, 0.5f, 0.25f, "gemm");
        test_gemm(tc, false, false, 64, 64, 16, 0, 1.0f, 0.0f, "exact tile");
        test_gemm(tc, true, true, 1, 1, 1, 2, 2.0f, -1.0f, "1x1x1");
        test_gemm(tc, false, true, 129, 65, 0, 1, 1.0f, 0.5f, "k=0");
        test_gemm(tc, true, false, 3, 200, 300, 5, 1.0f, 0.0f, "long k");
    }
}

// =============================================================================================
// FastDivmod (common.cuh): the divider that replaces `/` and `%` in the conv kernels
// =============================================================================================
// The struct is the device code itself, compiled for the host (its only intrinsics, __clz and
// __umulhi, come from shim.h), checked against plain `/` and `%`. These cases reach divisors and
// numerators near the top of the kernels' 32-bit range, which the (small) conv launches cannot.

static u64 g_fdm_checks = 0;

/// One numerator: div, mod and divmod against `/` and `%`.
static void fdm_check(Case& c, const FastDivmod& f, u32 x) {
    const u32 d = f.d, wq = x / d, wr = x % d;
    u32 q = ~0u, r = ~0u;
    f.divmod(x, &q, &r);
    const u32 dq = f.div(x), dr = f.mod(x);
    g_fdm_checks++;
    if (dq != wq || dr != wr || q != wq || r != wr) {
        c.fail(fmt("  d=%u x=%u: div %u mod %u divmod (%u, %u), want (%u, %u)", d, x, dq, dr, q, r, wq, wr));
        c.max_err = INFINITY;
    }
}

/// The numerators where a magic-number quotient goes wrong first: around 0, d, 2d, 2^31, the
/// largest multiple of d below 2^32, and 2^32 - 1.
static void fdm_boundaries(Case& c, const FastDivmod& f) {
    const u64 d = f.d, top = 0xffffffffull, last = top / d * d;
    for (u64 x : {0ull, 1ull, d - 1, d, d + 1, 2 * d - 1, 2 * d, 2 * d + 1, 0x7ffffffeull, 0x7fffffffull, 0x80000000ull,
                  0x80000001ull, last - d, last - d + 1, last - 1, last, last + 1, last + d - 1, top - 1, top})
        if (x <= top) fdm_check(c, f, (u32)x);
}

/// A flat index split by the kernels' two-level maps, x -> (x / outer, (x % outer) / inner,
/// (x % outer) % inner), e.g. k -> (c, ky, kx) with (khw, kw) or n -> (b, y, x) with (plane, row),
/// over the indices below `count` nearest the top, random ones, and multiples of `outer` +- 1.
static void fdm_map(Case& c, const char* what, const FastDivmod& outer, const FastDivmod& inner, u64 count) {
    if (count == 0) return;
    vector<u64> xs;
    for (u64 i = 1; i <= std::min<u64>(count, 2000); i++) xs.push_back(count - i);
    for (int i = 0; i < 20000; i++) xs.push_back(g_rng() % count);
    for (u64 b = count / outer.d, i = 0; i < 200 && b > 0; i++, b--)
        for (u64 x : {b * outer.d - 1, b * outer.d, b * outer.d + 1})
            if (x < count) xs.push_back(x);
    for (u64 x : xs) {
        u32 a, r, y, z;
        outer.divmod((u32)x, &a, &r);
        inner.divmod(r, &y, &z);
        const u64 wa = x / outer.d, wr = x % outer.d, wy = wr / inner.d, wz = wr % inner.d;
        g_fdm_checks++;
        if (a != wa || r != wr || y != wy || z != wz) {
            c.fail(fmt("  %s: x=%llu -> (%u, %u, %u), want (%llu, %llu, %llu)", what, (unsigned long long)x, a, y, z,
                       (unsigned long long)wa, (unsigned long long)wy, (unsigned long long)wz));
            c.max_err = INFINITY;
        }
    }
}

struct ConvShape;
static ConvParams conv_params(const ConvShape& s);

static void fastdivmod_tests();

/// The weight gradient restricted to the reduction range [k0, k1) of (b, oy, ox): one split.
static vector<double> ref_dw_range(const ConvShape& s, const vector<float>& x, const vector<float>& dy, size_t k0, size_t k1) {
    const size_t oh = s.oh(), ow = s.ow();
    vector<double> dw(s.w_len(), 0.0);
    for (size_t kk = k0; kk < k1; kk++) {
        const size_t b = kk / (oh * ow), oy = kk / ow % oh, ox = kk % ow;
        for (size_t co = 0; co < s.c_out; co++) {
            const double g = dy[((b * s.c_out + co) * oh + oy) * ow + ox];
            for (size_t ci = 0; ci < s.c_in; ci++)
                for (size_t ky = 0; ky < s.kh; ky++)
                    for (size_t kx = 0; kx < s.kw; kx++) {
                        const long iy = (long)(oy * s.stride + ky) - (long)s.pad;
                        const long ix = (long)(ox * s.stride + kx) - (long)s.pad;
                        if (iy < 0 || ix < 0 || iy >= (long)s.h || ix >= (long)s.w) continue;
                        dw[((co * s.c_in + ci) * s.kh + ky) * s.kw + kx] += g * x[((b * s.c_in + ci) * s.h + iy) * s.w + ix];
                    }
        }
    }
    return dw;
}

// =============================================================================================
// Convolution and bias
// =============================================================================================

struct ConvRef {
    vector<double> y, dx, dw;
};
static ConvRef ref_conv(const ConvShape& s, const vector<float>& x, const vector<float>& w, const vector<float>& dy) {
    const size_t oh = s.oh(), ow = s.ow();
    ConvRef r{vector<double>(s.out_len(), 0.0), vector<double>(s.in_len(), 0.0), {}};
    for (size_t b = 0; b < s.n; b++)
        for (size_t co = 0; co < s.c_out; co++)
            for (size_t oy = 0; oy < oh; oy++)
                for (size_t ox = 0; ox < ow; ox++) {
                    const size_t yi = ((b * s.c_out + co) * oh + oy) * ow + ox;
                    for (size_t ci = 0; ci < s.c_in; ci++)
                        for (size_t ky = 0; ky < s.kh; ky++)
                            for (size_t kx = 0; kx < s.kw; kx++) {
                                const long iy = (long)(oy * s.stride + ky) - (long)s.pad;
                                const long ix = (long)(ox * s.stride + kx) - (long)s.pad;
                                if (iy < 0 || ix < 0 || iy >= (long)s.h || ix >= (long)s.w) continue;
                                const size_t xi = ((b * s.c_in + ci) * s.h + iy) * s.w + ix;
                                const size_t wi = ((co * s.c_in + ci) * s.kh + ky) * s.kw + kx;
                                r.y[yi] += (double)w[wi] * x[xi];
                                r.dx[xi] += (double)w[wi] * dy[yi];
                            }
                }
    r.dw = ref_dw_range(s, x, dy, 0, s.n * oh * ow);
    return r;
}


static void test_conv(bool tc, const ConvShape& s, size_t sm_count = H100_SMS) {
    const double tol = tc ? 3e-3 : 1e-5;
    const vector<float> x = randn(s.in_len()), w = randn(s.w_len()), dy = randn(s.out_len());
    const ConvRef r = ref_conv(s, x, w, dy);
    Buf<float> bx("x", x), bw("w", w), bdy("dy", dy);
    const string fwd = fmt("conv2d_fwd_%s", tc_name(tc)), bwd_d = fmt("conv2d_bwd_data_%s", tc_name(tc)),
                 bwd_w = fmt("conv2d_bwd_weight_%s", tc_name(tc));

    if (selected(fwd.c_str())) {  // conv2d_forward
        Buf<float> y("y", s.out_len(), NaNf);
        op_conv2d_forward(tc, s, bx.p(), bw.p(), y.p());
        Case c(fwd, s.str(), tol);
        c.close("y", y.p(), r.y);
    }
    if (selected(bwd_d.c_str())) {  // conv2d_backward, dx
        Buf<float> dx("dx", s.in_len(), NaNf);
        op_conv2d_backward_data(tc, s, bdy.p(), bw.p(), dx.p());
        Case c(bwd_d, s.str(), tol);
        c.close("dx", dx.p(), r.dx);
    }
    if (selected(bwd_w.c_str()) || selected("splitk_reduce")) {  // conv2d_backward, dw (split-K)
        const SplitPlan sp = split_plan(s, sm_count);
        Buf<float> dw("dw", s.w_len(), NaNf), ws("splitk workspace", sp.splits * sp.m * sp.n, NaNf);
        op_conv2d_backward_weight(tc, s, sm_count, bx.p(), bdy.p(), dw.p(), &ws, true);
        {
            Case c(bwd_w, fmt("%s sms%zu splits%zu k_chunk%zu K%zu", s.str().c_str(), sm_count, sp.splits, sp.k_chunk, sp.k), tol);
            if (sp.splits == 1) c.close("dw", dw.p(), r.dw);
            else  // each split's partial sum over its k range
                for (size_t z = 0; z < sp.splits; z++) {
                    const vector<double> part = ref_dw_range(s, x, dy, std::min(z * sp.k_chunk, sp.k), std::min((z + 1) * sp.k_chunk, sp.k));
                    double scale = 0;
                    for (double v : r.dw) scale = std::max(scale, std::fabs(v));
                    c.close(fmt("ws[z=%zu]", z).c_str(), ws.p() + z * sp.m * sp.n, part, scale);
                }
        }
        if (sp.splits > 1) {
            Case c("splitk_reduce", fmt("len%zu splits%zu (from %s)", sp.m * sp.n, sp.splits, bwd_w.c_str()), tol);
            // The reduction itself is FP32 sums of the workspace, compared to the exact total.
            c.close("dw", dw.p(), r.dw);
        }
    }
}

static void test_bias(size_t n, size_t c, size_t hw, float beta = 0.0f) {
    const char* tag = beta != 0.0f ? " [contract beta]" : "";
    const vector<float> bias = randn(c), y0 = randn(n * c * hw), dy = randn(n * c * hw, 1.0, 0.3), db0 = randn(c);
    if (selected("bias_fwd")) {  // bias_forward (after conv2d_forward / linear_forward)
        Buf<float> bb("bias", bias), y("y", y0);
        op_bias_forward(n, c, hw, bb.p(), y.p());
        vector<double> want = to_d(y0);
        for (size_t i = 0; i < want.size(); i++) want[i] += bias[(i / hw) % c];
        Case cs("bias_fwd", fmt("n%zu c%zu hw%zu", n, c, hw), 1e-6);
        cs.close("y", y.p(), want);
    }
    if (selected("bias_bwd")) {  // bias_backward
        Buf<float> bdy("dy", dy), db("db", beta != 0.0f ? db0 : vector<float>(c, NaNf));
        op_bias_backward(n, c, hw, bdy.p(), db.p(), beta);
        vector<double> want(c, 0.0);
        for (size_t b = 0; b < n; b++)
            for (size_t ch = 0; ch < c; ch++)
                for (size_t i = 0; i < hw; i++) want[ch] += dy[(b * c + ch) * hw + i];
        if (beta != 0.0f)
            for (size_t ch = 0; ch < c; ch++) want[ch] += (double)beta * db0[ch];
        Case cs("bias_bwd", fmt("n%zu c%zu hw%zu%s", n, c, hw, tag), 1e-5);
        cs.close("db", db.p(), want);
    }
}

static void fastdivmod_tests() {
    if (!selected("fastdivmod")) return;
    const u64 TOP = 0xffffffffull;
    {
        Case c("fastdivmod", "d in 1..4096: boundaries, 1024 random x < 2^32, 512 < 2^31", 0);
        for (u32 d = 1; d <= 4096; d++) {
            const FastDivmod f(d);
            fdm_boundaries(c, f);
            for (int i = 0; i < 1024; i++) fdm_check(c, f, (u32)g_rng());
            for (int i = 0; i < 512; i++) fdm_check(c, f, (u32)g_rng() >> 1);
        }
    }
    {
        Case c("fastdivmod", "d = 2^k-1, 2^k, 2^k+1 (k < 32), 2^32-2, 2^32-1: edges, 4096 x", 0);
        vector<u64> ds = {TOP - 1, TOP};
        for (int k = 0; k < 32; k++)
            for (u64 d : {(1ull << k) - 1, 1ull << k, (1ull << k) + 1}) ds.push_back(d);
        for (u64 d : ds) {
            if (d == 0 || d > TOP) continue;
            const FastDivmod f((u32)d);
            fdm_boundaries(c, f);
            for (int i = 0; i < 4096; i++) fdm_check(c, f, (u32)g_rng());
        }
    }
    {
        Case c("fastdivmod", "4M random d (log-uniform), x uniform and q*d + {0,d-1,rand}", 0);
        for (int i = 0; i < 4000000; i++) {
            const u32 bits = 1 + rand_u32(32);  // d in [2^(bits-1), 2^bits)
            const u64 hi = 1ull << (bits - 1);
            const FastDivmod f((u32)(hi | (g_rng() & (hi - 1))));
            const u64 d = f.d;
            fdm_check(c, f, (u32)g_rng());
            const u64 x = g_rng() % (TOP / d + 1) * d + (i % 3 == 0 ? 0 : i % 3 == 1 ? d - 1 : g_rng() % d);
            if (x <= TOP) fdm_check(c, f, (u32)x);
        }
    }
    {
        Case c("fastdivmod", "all x < 2^24, d = 3 5 7 9 25 49 641 12544 50176 2^24-1", 0);
        for (u32 d : {3u, 5u, 7u, 9u, 25u, 49u, 641u, 12544u, 50176u, 16777215u}) {
            const FastDivmod f(d);
            for (u32 x = 0; x < (1u << 24); x++) fdm_check(c, f, x);
        }
    }
    {
        // The divisors each conv kernel builds (ConvDiv, the DataB stride) for shapes whose tensors
        // are just under the 2^32-element limit of ops.rs, and the index maps at their largest
        // indices: k over [c, kh, kw] and n over [b, ph, pw], forward (output grid) and
        // backward-data (input grid); the stride division of every ty = iy + pad - ky >= 0.
        Case c("fastdivmod", "ConvDiv maps of shapes with a tensor of 2^31..2^32-1 values", 0);
        const ConvShape big[] = {
            {4100, 1, 1023, 1023, 1, 3, 3, 1, 1},     // N = n*oh*ow = 4290768900, ohw 1046529
            {1, 87652393, 1, 1, 1, 7, 7, 1, 3},       // K = c_in*kh*kw = 4294967257
            {1, 1, 3, 3, 477218588, 3, 3, 1, 1},      // backward-data K = c_out*kh*kw = 4294967292
            {2, 3, 20000, 20000, 1, 7, 7, 3, 3},      // stride 3, pad 3: in 2.4e9, 6667x6667 output
            {7, 4, 12345, 12343, 2, 5, 5, 2, 2},      // 5x5 stride 2: in 4266e6, 6173x6172 output
            {65535, 1, 255, 257, 1, 1, 1, 1, 0},      // 1x1: in 4294836225, hw 65535, row 257
        };
        for (const ConvShape& s : big) {
            const bool fits = s.in_len() <= TOP && s.out_len() <= TOP && s.w_len() <= TOP;  // ops.rs's limit
            const u64 half = 1ull << 31;
            if (!fits || (s.in_len() <= half && s.out_len() <= half && s.w_len() <= half))
                c.fail("  shape " + s.str() + ": no tensor length in (2^31, 2^32)");
            const ConvParams p = conv_params(s);
            const ConvDiv fwd(p, p.oh, p.ow), data(p, p.h, p.w);  // as the kernels build them
            const string tag = s.str();
            fdm_map(c, (tag + " fwd/weight k").c_str(), fwd.khw, fwd.kw, (u64)s.c_in * s.kh * s.kw);
            fdm_map(c, (tag + " fwd/weight n").c_str(), fwd.plane, fwd.row, (u64)s.n * s.oh() * s.ow());
            fdm_map(c, (tag + " data k").c_str(), data.khw, data.kw, (u64)s.c_out * s.kh * s.kw);
            fdm_map(c, (tag + " data n").c_str(), data.plane, data.row, (u64)s.n * s.h * s.w);
            const FastDivmod stride(p.stride);
            for (u64 t = 0; t < std::max(s.h, s.w) + s.pad; t++) fdm_check(c, stride, (u32)t);
        }
    }
    {  // A zero extent (kh*kw = 0) is constructed, never divided by; it must not fault.
        Case c("fastdivmod", "FastDivmod(0) constructs without faulting, keeps d = 0", 0);
        const FastDivmod z(0);
        if (z.d != 0) c.fail("  FastDivmod(0).d != 0");
    }
    std::printf("      fastdivmod: %llu quotients and remainders checked\n", (unsigned long long)g_fdm_checks);
}

static void conv_tests() {
    const ConvShape shapes[] = {
        {2, 3, 9, 11, 5, 3, 3, 1, 1},   // odd sizes, padding, 4 column tiles
        {3, 4, 10, 7, 70, 3, 2, 2, 1},  // c_out > 64 (2 row tiles), stride 2, non-square kernel
        {2, 5, 8, 8, 3, 1, 1, 2, 0},    // 1x1 stride 2
        {2, 3, 11, 10, 5, 2, 2, 3, 0},  // stride > kernel: inputs no window covers (dx = 0)
        {1, 2, 4, 4, 2, 7, 7, 1, 3},    // kernel larger than the input, mostly padding
        {4, 6, 17, 17, 8, 3, 3, 1, 1},  // K = 1156: split-K (4 splits, ragged last chunk)
    };
    for (bool tc : {false, true})
        for (const ConvShape& s : shapes) test_conv(tc, s);
    // Index maps with non-power-of-two divisors (FastDivmod): kw 3/5/7, ow 7, ohw 49, khw 9/25/49,
    // strides 2 and 3, kernels 1x1 to 7x7, pads 0 to 3, and a longer K and N.
    const ConvShape div_shapes[] = {
        {2, 3, 7, 7, 4, 3, 3, 1, 1},     // ow 7, ohw 49, khw 9
        {3, 5, 13, 13, 6, 5, 5, 2, 2},   // 5x5 stride 2 pad 2: 7x7 output, khw 25
        {2, 4, 15, 14, 5, 7, 7, 3, 3},   // 7x7 stride 3 pad 3: 5x5 output, khw 49
        {2, 7, 9, 9, 3, 1, 1, 3, 0},     // 1x1 stride 3: ohw 9, khw 1
        {1, 3, 10, 12, 4, 3, 3, 2, 3},   // pad 3 > kernel / 2, stride 2: 7x8 output
        {2, 3, 8, 9, 2, 5, 3, 3, 2},     // 5x3 kernel, stride 3: khw 15, 3x4 output
        {2, 2, 6, 6, 3, 3, 3, 2, 0},     // 3x3 stride 2 pad 0: 2x2 output
        {1, 64, 7, 7, 8, 7, 7, 1, 3},    // forward K = c_in*kh*kw = 3136; weight N = 3136
        {8, 2, 23, 23, 3, 3, 3, 1, 1},   // N = n*oh*ow = 4232 (67 column tiles); weight K split 16 ways
    };
    for (bool tc : {false, true})
        for (const ConvShape& s : div_shapes) test_conv(tc, s);
    // The split rule for a GPU with few SMs gives a different chunking of the same problem.
    test_conv(false, {8, 3, 16, 16, 4, 3, 3, 1, 1}, H100_SMS);  // K = 2048: 8 splits of 256
    test_conv(true, {8, 3, 16, 16, 4, 3, 3, 1, 1}, 2);         // 4 splits of 512

    // [contract] beta != 0 stores (ConvParams.beta / ReduceParams.beta; ops.rs passes 0).
    for (bool tc : {false, true}) {
        const string k = fmt("conv2d_fwd_%s", tc_name(tc));
        if (!selected(k.c_str())) continue;
        const ConvShape s{2, 3, 6, 5, 4, 3, 3, 1, 1};
        const vector<float> x = randn(s.in_len()), w = randn(s.w_len()), y0 = randn(s.out_len());
        ConvRef r = ref_conv(s, x, w, vector<float>(s.out_len(), 0.0f));
        for (size_t i = 0; i < r.y.size(); i++) r.y[i] += 0.5 * y0[i];
        Buf<float> bx("x", x), bw("w", w), y("y", y0);
        op_conv2d_forward(tc, s, bx.p(), bw.p(), y.p(), 0.5f);
        Case c(k, s.str() + " [contract beta=0.5]", tc ? 3e-3 : 1e-5);
        c.close("y", y.p(), r.y);
    }
    if (selected("splitk_reduce")) {
        const size_t len = 1000, splits = 3;
        const vector<float> ws = randn(len * splits), out0 = randn(len);
        vector<double> want(len);
        for (size_t i = 0; i < len; i++) want[i] = (double)ws[i] + ws[len + i] + ws[2 * len + i] - 2.0 * out0[i];
        Buf<float> bws("ws", ws), out("out", out0);
        const ReduceParams rp{(u32)len, (u32)splits, -2.0f};
        run("splitk_reduce", elementwise(len), splitk_reduce, rp, (const float*)bws.p(), out.p());
        Case c("splitk_reduce", "len1000 splits3 [contract beta=-2]", 1e-5);
        c.close("out", out.p(), want);
    }

    // Bias after a conv ([n, c_out, oh*ow]) and after a linear layer ([n, out_f, 1]).
    test_bias(2, 5, 99);
    test_bias(3, 70, 20);
    test_bias(5, 70, 1);
    test_bias(2, 3, 700);  // n*hw > 256: the block loops
    test_bias(2, 3, 50, 0.5f);
    test_bias(3, 7, 49);  // non-power-of-two hw and c (FastDivmod in bias_fwd / bias_bwd)
}

// =============================================================================================
// Batch normalisation
// =============================================================================================

static void test_batchnorm(size_t n, size_t c, size_t hw) {
    const size_t m = n * hw, len = n * c * hw;
    const float eps = 1e-5f, mom = 0.1f;
    vector<float> x(len);
    {  // per-channel offsets and spreads, so the mean matters
        const vector<float> mu = randn(c, 3.0), sd = randu(c, 0.5, 2.0), z = randn(len);
        for (size_t i = 0; i < len; i++) x[i] = mu[(i / hw) % c] + sd[(i / hw) % c] * z[i];
    }
    const vector<float> gamma = randu(c, 0.5, 1.5), beta = randn(c), rm0 = randn(c), rv0 = randu(c, 0.5, 2.0), dy = randn(len);
    auto at = [&](size_t ch, size_t j) { return (j / hw * c + ch) * hw + j % hw; };
    // Reference statistics in double.
    vector<double> mean(c), var(c), invstd(c);
    for (size_t ch = 0; ch < c; ch++) {
        double s = 0;
        for (size_t j = 0; j < m; j++) s += x[at(ch, j)];
        mean[ch] = s / m;
        double q = 0;
        for (size_t j = 0; j < m; j++) q += (x[at(ch, j)] - mean[ch]) * (x[at(ch, j)] - mean[ch]);
        var[ch] = q / m;
        invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
    }
    const string shape = fmt("n%zu c%zu hw%zu (m=%zu)", n, c, hw, m);

    if (selected("batchnorm_fwd_train")) {  // batchnorm_forward_train
        Buf<float> bx("x", x), bg("gamma", gamma), bb("beta", beta), y("y", len, NaNf), sm("save_mean", c, NaNf),
            si("save_invstd", c, NaNf), rm("running_mean", rm0), rv("running_var", rv0);
        const BnParams p{(u32)n, (u32)c, (u32)hw, eps, mom};
        run("batchnorm_fwd_train", per_channel(c), batchnorm_fwd_train, p, bx.p(), bg.p(), bb.p(), y.p(), sm.p(), si.p(), rm.p(), rv.p());
        vector<double> wy(len), wrm(c), wrv(c);
        double yscale = 0;  // y is one fma x*a + b per element: its rounding scales with |x*a| and |b|
        for (size_t ch = 0; ch < c; ch++) {
            const double a = gamma[ch] * invstd[ch];
            for (size_t j = 0; j < m; j++) {
                const size_t i = at(ch, j);
                wy[i] = (x[i] - mean[ch]) * a + beta[ch];
                yscale = std::max({yscale, std::fabs(x[i] * a), std::fabs(beta[ch] - mean[ch] * a)});
            }
            const double unbiased = m > 1 ? var[ch] * m / (m - 1) : var[ch];
            wrm[ch] = (1 - mom) * (double)rm0[ch] + mom * mean[ch];
            wrv[ch] = (1 - mom) * (double)rv0[ch] + mom * unbiased;
        }
        Case cs("batchnorm_fwd_train", shape, 1e-5);
        cs.close("y", y.p(), wy, yscale);
        cs.close("save_mean", sm.p(), mean);
        cs.close("save_invstd", si.p(), invstd);
        cs.close("running_mean", rm.p(), wrm);
        cs.close("running_var", rv.p(), wrv);
    }
    if (selected("batchnorm_fwd_eval")) {  // batchnorm_forward_eval
        Buf<float> bx("x", x), bg("gamma", gamma), bb("beta", beta), rm("running_mean", rm0), rv("running_var", rv0),
            y("y", len, NaNf);
        const BnParams p{(u32)n, (u32)c, (u32)hw, eps, 0.0f};
        run("batchnorm_fwd_eval", elementwise(len), batchnorm_fwd_eval, p, bx.p(), bg.p(), bb.p(), rm.p(), rv.p(), y.p());
        vector<double> wy(len);
        for (size_t i = 0; i < len; i++) {
            const size_t ch = i / hw % c;
            wy[i] = (x[i] - (double)rm0[ch]) * gamma[ch] / std::sqrt((double)rv0[ch] + eps) + beta[ch];
        }
        Case cs("batchnorm_fwd_eval", shape, 1e-5);
        cs.close("y", y.p(), wy);
    }
    if (selected("batchnorm_bwd")) {  // batchnorm_backward, with the saved statistics as FP32 inputs
        vector<float> smf(c), sif(c);
        for (size_t ch = 0; ch < c; ch++) smf[ch] = (float)mean[ch], sif[ch] = (float)invstd[ch];
        Buf<float> bx("x", x), bdy("dy", dy), bg("gamma", gamma), sm("save_mean", smf), si("save_invstd", sif),
            dx("dx", len, NaNf), dg("dgamma", c, NaNf), db("dbeta", c, NaNf);
        const BnParams p{(u32)n, (u32)c, (u32)hw, 0.0f, 0.0f};
        run("batchnorm_bwd", per_channel(c), batchnorm_bwd, p, bx.p(), bdy.p(), bg.p(), sm.p(), si.p(), dx.p(), dg.p(), db.p());
        // d/dx of y = gamma * (x - mean) * invstd + beta through the batch statistics:
        //   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
        vector<double> wdx(len), wdg(c), wdb(c);
        for (size_t ch = 0; ch < c; ch++) {
            double sdy = 0, sdyx = 0;
            for (size_t j = 0; j < m; j++) {
                const size_t i = at(ch, j);
                const double xhat = ((double)x[i] - smf[ch]) * sif[ch];
                sdy += dy[i];
                sdyx += dy[i] * xhat;
            }
            wdb[ch] = sdy;
            wdg[ch] = sdyx;
            for (size_t j = 0; j < m; j++) {
                const size_t i = at(ch, j);
                const double xhat = ((double)x[i] - smf[ch]) * sif[ch];
                wdx[i] = (double)gamma[ch] * sif[ch] * (dy[i] - sdy / m - xhat * sdyx / m);
            }
        }
        Case cs("batchnorm_bwd", shape, 1e-5);
        cs.close("dx", dx.p(), wdx);
        cs.close("dgamma", dg.p(), wdg);
        cs.close("dbeta", db.p(), wdb);
    }
}

static void batchnorm_tests() {
    test_batchnorm(4, 3, 25);   // m = 100 < 256 threads
    test_batchnorm(2, 5, 300);  // m = 600: the block loops
    test_batchnorm(3, 70, 7);   // many channels (70 blocks)
    test_batchnorm(1, 2, 1);    // m = 1: zero variance, unbiased = biased
    if (selected("batchnorm_fwd_eval")) {  // [contract] grid smaller than the data: grid-stride loop
        const size_t n = 2, c = 3, hw = 300, len = n * c * hw;
        const vector<float> x = randn(len), g = randu(c, 0.5, 1.5), b = randn(c), rm = randn(c), rv = randu(c, 0.5, 2);
        Buf<float> bx("x", x), bg("gamma", g), bb("beta", b), brm("rm", rm), brv("rv", rv), y("y", len, NaNf);
        const BnParams p{(u32)n, (u32)c, (u32)hw, 1e-5f, 0.0f};
        run("batchnorm_fwd_eval", emu::LaunchConfig{{2, 1, 1}, {BLOCK, 1, 1}, 0}, batchnorm_fwd_eval, p, bx.p(), bg.p(), bb.p(), brm.p(), brv.p(), y.p());
        vector<double> wy(len);
        for (size_t i = 0; i < len; i++) {
            const size_t ch = i / hw % c;
            wy[i] = (x[i] - (double)rm[ch]) * g[ch] / std::sqrt((double)rv[ch] + 1e-5f) + b[ch];
        }
        Case cs("batchnorm_fwd_eval", "n2 c3 hw300, 2 blocks [contract grid-stride]", 1e-5);
        cs.close("y", y.p(), wy);
    }
}

// =============================================================================================
// Pooling
// =============================================================================================

struct PoolShape {  // cpu::Pool2dShape
    size_t n, c, h, w, k, stride, pad;
    size_t oh() const { return ConvShape::out_size(h, k, stride, pad); }
    size_t ow() const { return ConvShape::out_size(w, k, stride, pad); }
    size_t in_len() const { return n * c * h * w; }
    size_t out_len() const { return n * c * oh() * ow(); }
    string str() const { return fmt("n%zu c%zu %zux%zu k%zu s%zu p%zu", n, c, h, w, k, stride, pad); }
};

/// ops.rs `pool_params` (kh = kw = k).
static PoolParams pool_params(size_t n, size_t c, size_t h, size_t w, size_t oh, size_t ow, size_t k, size_t stride, size_t pad) {
    return PoolParams{(u32)n, (u32)c, (u32)h, (u32)w, (u32)oh, (u32)ow, (u32)k, (u32)k, (u32)stride, (u32)pad};
}

static void test_maxpool(const PoolShape& s, bool ties, bool nans) {
    const size_t oh = s.oh(), ow = s.ow();
    vector<float> x = ties ? rand_int_valued(s.in_len(), -2, 2) : randn(s.in_len());
    if (nans)
        for (size_t i = 3; i < x.size(); i += 37) x[i] = NaNf;
    // Reference: the first maximum in row-major window order; a NaN wins at once; padding never.
    vector<float> wy(s.out_len());
    vector<u32> warg(s.out_len());
    for (size_t plane = 0; plane < s.n * s.c; plane++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                bool have = false, nan = false;
                float best = 0;
                u32 arg = 0;
                for (size_t ky = 0; ky < s.k && !nan; ky++)
                    for (size_t kx = 0; kx < s.k && !nan; kx++) {
                        const long iy = (long)(oy * s.stride + ky) - (long)s.pad, ix = (long)(ox * s.stride + kx) - (long)s.pad;
                        if (iy < 0 || ix < 0 || iy >= (long)s.h || ix >= (long)s.w) continue;
                        const float v = x[plane * s.h * s.w + iy * s.w + ix];
                        if (std::isnan(v)) nan = true;
                        if (!have || nan || v > best) {
                            best = v;
                            arg = (u32)(iy * s.w + ix);
                            have = true;
                        }
                    }
                const size_t o = (plane * oh + oy) * ow + ox;
                wy[o] = have ? best : -INFINITY;
                warg[o] = arg;
            }
    const string desc = s.str() + (ties ? " ties" : "") + (nans ? " NaN" : "");
    if (selected("maxpool_fwd")) {  // maxpool_forward
        Buf<float> bx("x", x), y("y", s.out_len(), NaNf);
        Buf<u32> am("argmax", s.out_len(), 0xffffffffu);
        const PoolParams p = pool_params(s.n, s.c, s.h, s.w, oh, ow, s.k, s.stride, s.pad);
        run("maxpool_fwd", elementwise(s.out_len()), maxpool_fwd, p, bx.p(), y.p(), am.p());
        Case c("maxpool_fwd", desc, 0);
        c.exact("y", y.p(), wy);
        c.exact("argmax", am.p(), warg);
    }
    if (selected("maxpool_bwd")) {  // maxpool_backward, with the reference argmax as input
        const vector<float> dy = randn(s.out_len());
        vector<double> wdx(s.in_len(), 0.0);
        for (size_t o = 0; o < s.out_len(); o++) wdx[o / (oh * ow) * s.h * s.w + warg[o]] += dy[o];
        Buf<float> bdy("dy", dy), dx("dx", s.in_len(), NaNf);
        Buf<u32> am("argmax", warg);
        const PoolParams p = pool_params(s.n, s.c, s.h, s.w, oh, ow, s.k, s.stride, s.pad);
        run("maxpool_bwd", elementwise(s.in_len()), maxpool_bwd, p, bdy.p(), am.p(), dx.p());
        Case c("maxpool_bwd", desc, 1e-6);
        c.close("dx", dx.p(), wdx);
    }
}

static void test_adaptive_avgpool(size_t n, size_t c, size_t h, size_t w, size_t oh, size_t ow) {
    // PyTorch windows: start = floor(i*in/out), end = ceil((i+1)*in/out).
    auto start = [](size_t i, size_t in, size_t out) { return (size_t)std::floor((double)i * in / out); };
    auto end = [](size_t i, size_t in, size_t out) { return (size_t)std::ceil((double)(i + 1) * in / out); };
    const vector<float> x = randn(n * c * h * w), dy = randn(n * c * oh * ow);
    vector<double> wy(n * c * oh * ow, 0.0), wdx(n * c * h * w, 0.0);
    for (size_t plane = 0; plane < n * c; plane++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                const size_t y0 = start(oy, h, oh), y1 = end(oy, h, oh), x0 = start(ox, w, ow), x1 = end(ox, w, ow);
                const double area = (double)(y1 - y0) * (x1 - x0);
                const size_t o = (plane * oh + oy) * ow + ox;
                for (size_t iy = y0; iy < y1; iy++)
                    for (size_t ix = x0; ix < x1; ix++) {
                        wy[o] += x[plane * h * w + iy * w + ix] / area;
                        wdx[plane * h * w + iy * w + ix] += dy[o] / area;
                    }
            }
    const string desc = fmt("n%zu c%zu %zux%zu -> %zux%zu", n, c, h, w, oh, ow);
    const PoolParams p = pool_params(n, c, h, w, oh, ow, 0, 0, 0);
    if (selected("adaptive_avgpool_fwd")) {  // adaptive_avgpool_forward
        Buf<float> bx("x", x), y("y", n * c * oh * ow, NaNf);
        run("adaptive_avgpool_fwd", elementwise(n * c * oh * ow), adaptive_avgpool_fwd, p, bx.p(), y.p());
        Case cs("adaptive_avgpool_fwd", desc, 1e-5);
        cs.close("y", y.p(), wy);
    }
    if (selected("adaptive_avgpool_bwd")) {  // adaptive_avgpool_backward
        Buf<float> bdy("dy", dy), dx("dx", n * c * h * w, NaNf);
        run("adaptive_avgpool_bwd", elementwise(n * c * h * w), adaptive_avgpool_bwd, p, bdy.p(), dx.p());
        Case cs("adaptive_avgpool_bwd", desc, 1e-5);
        cs.close("dx", dx.p(), wdx);
    }
}

static void pool_tests() {
    test_maxpool({2, 3, 9, 11, 3, 2, 1}, false, false);  // overlapping windows, padding
    test_maxpool({2, 3, 9, 11, 3, 2, 1}, true, false);   // ties: first maximum wins
    test_maxpool({1, 2, 8, 8, 2, 2, 0}, true, false);    // tiling windows
    test_maxpool({2, 2, 7, 5, 3, 1, 1}, true, false);    // stride 1: every cell in up to 9 windows
    test_maxpool({1, 3, 5, 5, 5, 5, 2}, false, false);   // one window, mostly padding
    test_maxpool({3, 4, 12, 10, 3, 2, 1}, false, true);  // NaN propagates (and owns the gradient)
    test_maxpool({4, 8, 16, 16, 3, 2, 1}, false, false); // 2048 outputs: 8 blocks
    test_adaptive_avgpool(2, 3, 7, 9, 3, 4);   // overlapping windows
    test_adaptive_avgpool(1, 2, 5, 5, 5, 5);   // identity
    test_adaptive_avgpool(2, 2, 4, 6, 1, 1);   // global average
    test_adaptive_avgpool(1, 3, 3, 5, 5, 7);   // upsampling: repeated windows
    test_adaptive_avgpool(8, 64, 4, 4, 1, 1);  // ResNet head shape, 2 blocks
}

// =============================================================================================
// Activation, dropout, optimizer, packing
// =============================================================================================

static vector<float> with_specials(vector<float> v) {
    const float sp[] = {0.0f, -0.0f, NaNf, -NaNf, INFINITY, -INFINITY, 1e-40f, -1e-40f};
    for (size_t i = 0; i < 8 && i * 97 < v.size(); i++) v[i * 97] = sp[i];
    return v;
}

static void activation_tests() {
    for (size_t len : {1000ul, 5000ul}) {
        const vector<float> x = with_specials(randn(len)), dy = randn(len);
        if (selected("relu_fwd")) {  // relu_forward
            vector<float> want(len);
            for (size_t i = 0; i < len; i++) want[i] = std::isnan(x[i]) ? x[i] : (x[i] > 0 ? x[i] : 0.0f);
            Buf<float> bx("x", x), y("y", len, NaNf);
            run("relu_fwd", elementwise(len), relu_fwd, EltParams{(u32)len}, bx.p(), y.p());
            Case c("relu_fwd", fmt("len%zu with +-0, NaN, inf, denormals", len), 0);
            c.exact("y", y.p(), want);
        }
        if (selected("add_relu_fwd")) {  // add_relu_forward
            const vector<float> b = with_specials(randn(len));
            vector<float> want(len);
            for (size_t i = 0; i < len; i++) {
                const float s = x[i] + b[i];
                want[i] = std::isnan(s) ? s : (s > 0 ? s : 0.0f);
            }
            Buf<float> ba("a", x), bb("b", b), y("y", len, NaNf);
            run("add_relu_fwd", elementwise(len), add_relu_fwd, EltParams{(u32)len}, ba.p(), bb.p(), y.p());
            Case c("add_relu_fwd", fmt("len%zu with +-0, NaN, inf, denormals", len), 0);
            c.exact("y", y.p(), want);
        }
        if (selected("relu_bwd")) {  // relu_backward
            vector<float> want(len);
            for (size_t i = 0; i < len; i++) want[i] = x[i] > 0 ? dy[i] : 0.0f;
            Buf<float> by("y", x), bdy("dy", dy), dx("dx", len, NaNf);
            run("relu_bwd", elementwise(len), relu_bwd, EltParams{(u32)len}, by.p(), bdy.p(), dx.p());
            Case c("relu_bwd", fmt("len%zu", len), 0);
            c.exact("dx", dx.p(), want);
        }
    }
    if (selected("relu_fwd")) {  // [contract] grid-stride loop: 3 blocks over 5000 values
        const size_t len = 5000;
        const vector<float> x = randn(len);
        vector<float> want(len);
        for (size_t i = 0; i < len; i++) want[i] = x[i] > 0 ? x[i] : 0.0f;
        Buf<float> bx("x", x), y("y", len, NaNf);
        run("relu_fwd", emu::LaunchConfig{{3, 1, 1}, {BLOCK, 1, 1}, 0}, relu_fwd, EltParams{(u32)len}, bx.p(), y.p());
        Case c("relu_fwd", "len5000, 3 blocks [contract grid-stride]", 0);
        c.exact("y", y.p(), want);
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014), written from its definition: the generator's state
/// starts at `seed` and advances by the golden gamma before each output, which is mixed by
/// Stafford's variant 13. The i-th output (from 0) therefore mixes seed + (i+1)*gamma.
static u64 ref_splitmix64_nth(u64 seed, u64 i) {
    u64 state = seed;
    state += 0x9E3779B97F4A7C15ull * (i + 1);  // i+1 steps of the Weyl sequence (mod 2^64)
    u64 z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void dropout_tests() {
    // The reference generator must give SplitMix64's published first outputs for seed 0 (the
    // same vectors as ops.rs `dropout_threshold_edges`).
    {
        u64 s = 0, z0 = 0, z1 = 0;
        for (int k = 0; k < 2; k++) {  // the generator run step by step, independently of _nth
            s += 0x9E3779B97F4A7C15ull;
            u64 z = s;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            (k ? z1 : z0) = z ^ (z >> 31);
        }
        if (z0 != 0xE220A8397B1DCDAFull || z1 != 0x6E789E6AA1B965F4ull || ref_splitmix64_nth(0, 0) != z0 ||
            ref_splitmix64_nth(0, 1) != z1) {
            Case c("dropout_fwd", "reference SplitMix64 self-check", 0);
            c.fail("  the harness's SplitMix64 does not reproduce the published stream");
        }
    }
    struct D {
        float p;
        u64 seed;
        size_t len;
    };
    for (const D& d : {D{0.5f, 0x0123456789ABCDEFull, 5000}, D{0.1f, 42, 3001}, D{0.0f, 7, 1000}, D{0.9f, 0xFFFFFFFF00000001ull, 2000}}) {
        // ops.rs dropout_params: threshold = ceil(p * 2^32), scale = 1/(1-p) in f32, seed halves.
        const u32 threshold = (u32)std::ceil((double)d.p * 4294967296.0);
        const float scale = 1.0f / (1.0f - d.p);
        const DropoutParams prm{(u32)d.len, threshold, (u32)d.seed, (u32)(d.seed >> 32), scale};
        const vector<float> x = randn(d.len), dy = randn(d.len);
        vector<u8> wmask(d.len);
        vector<float> wy(d.len), wdx(d.len);
        size_t dropped = 0;
        for (size_t i = 0; i < d.len; i++) {
            // ops.rs dropout_keeps: the upper 32 bits of the i-th hash against the threshold.
            const bool keep = (u32)(ref_splitmix64_nth(d.seed, i) >> 32) >= threshold;
            wmask[i] = keep;
            wy[i] = keep ? x[i] * scale : 0.0f;
            wdx[i] = keep ? dy[i] * scale : 0.0f;
            dropped += !keep;
        }
        const string desc = fmt("len%zu p%.1f seed %#llx (%zu dropped)", d.len, d.p, (unsigned long long)d.seed, dropped);
        if (selected("dropout_fwd")) {  // dropout_forward
            Buf<float> bx("x", x), y("y", d.len, NaNf);
            Buf<u8> mask("mask", d.len, (u8)0x55);
            run("dropout_fwd", elementwise(d.len), dropout_fwd, prm, bx.p(), y.p(), mask.p());
            Case c("dropout_fwd", desc, 0);
            c.exact("mask", mask.p(), wmask);
            c.exact("y", y.p(), wy);
            const double frac = (double)dropped / d.len, sigma = std::sqrt(d.p * (1.0 - d.p) / d.len);
            if (std::fabs(frac - d.p) > 5 * sigma + 1e-12) c.fail(fmt("  dropped fraction %.4f, expected %.2f", frac, d.p));
        }
        if (selected("dropout_bwd")) {  // dropout_backward (its params carry seed 0)
            const DropoutParams bp{(u32)d.len, threshold, 0, 0, scale};
            Buf<u8> mask("mask", wmask);
            Buf<float> bdy("dy", dy), dx("dx", d.len, NaNf);
            run("dropout_bwd", elementwise(d.len), dropout_bwd, bp, (const u8*)mask.p(), bdy.p(), dx.p());
            Case c("dropout_bwd", desc, 0);
            c.exact("dx", dx.p(), wdx);
        }
    }
}

static void optimizer_tests() {  // sgd_step
    if (!selected("sgd_momentum")) return;
    struct S {
        size_t len;
        float lr, mom, wd;
    };
    for (const S& s : {S{3000, 0.1f, 0.9f, 5e-4f}, S{700, 0.01f, 0.0f, 0.0f}, S{257, 0.5f, 0.99f, 0.1f}}) {
        const vector<float> w0 = randn(s.len), g = randn(s.len), buf0 = randn(s.len, 0.1);
        vector<double> ww(s.len), wb(s.len);
        for (size_t i = 0; i < s.len; i++) {
            const double d = (double)g[i] + (double)s.wd * w0[i];
            wb[i] = (double)s.mom * buf0[i] + d;
            ww[i] = w0[i] - (double)s.lr * wb[i];
        }
        Buf<float> w("w", w0), bg("g", g), buf("buf", buf0);
        run("sgd_momentum", elementwise(s.len), sgd_momentum, SgdParams{(u32)s.len, s.lr, s.mom, s.wd}, w.p(), bg.p(), buf.p());
        Case c("sgd_momentum", fmt("len%zu lr%g mom%g wd%g", s.len, s.lr, s.mom, s.wd), 1e-6);
        c.close("w", w.p(), ww);
        c.close("buf", buf.p(), wb);
    }
}

static void pack_tests() {
    const size_t len = 3000;
    const vector<float> g = randn(len), r = randn(len, 0.1);
    if (selected("pack_weighted")) {  // pack_weighted
        const float wt = 0.37f;
        vector<double> want(len);
        for (size_t i = 0; i < len; i++) want[i] = (double)wt * g[i] + r[i];
        Buf<float> bg("g", g), br("residual", r), cand("cand", len, NaNf);
        run("pack_weighted", elementwise(len), pack_weighted, PackParams{(u32)len, wt}, bg.p(), br.p(), cand.p());
        Case c("pack_weighted", "len3000 w0.37", 1e-6);
        c.close("cand", cand.p(), want);
    }
    if (selected("scale_inplace")) {  // scale_inplace (ops.rs skips weight == 1)
        const float wt = -1.75f;
        vector<float> want(len);
        for (size_t i = 0; i < len; i++) want[i] = g[i] * wt;  // one FP32 product, exactly
        Buf<float> x("x", g);
        run("scale_inplace", elementwise(len), scale_inplace, PackParams{(u32)len, wt}, x.p());
        Case c("scale_inplace", "len3000 w-1.75", 0);
        c.exact("x", x.p(), want);
    }
    if (selected("axpy"))  // axpy
        for (float wt : {1.0f, -0.5f}) {
            vector<double> want(len);
            for (size_t i = 0; i < len; i++) want[i] = (double)wt * g[i] + r[i];
            Buf<float> x("x", g), y("y", r);
            run("axpy", elementwise(len), axpy, PackParams{(u32)len, wt}, x.p(), y.p());
            Case c("axpy", fmt("len3000 w%g", wt), 1e-6);
            c.close("y", y.p(), want);
        }
    // scatter_add / scatter_zero: repeated indices (as from several ranks) and out-of-range ones.
    const size_t dense_len = 500, count = 700;
    vector<u32> idx(count);
    for (size_t j = 0; j < count; j++) idx[j] = rand_u32(dense_len);
    for (size_t j = 0; j < count; j += 41) idx[j] = (u32)dense_len + rand_u32(3);  // just past the end
    idx[5] = 0xffffffffu;
    const vector<float> val = randn(count), dense0 = randn(dense_len);
    if (selected("scatter_add")) {  // scatter_add
        const float scale = 0.5f;
        vector<double> want = to_d(dense0);
        for (size_t j = 0; j < count; j++)
            if (idx[j] < dense_len) want[idx[j]] += (double)scale * val[j];
        Buf<u32> bi("idx", idx);
        Buf<float> bv("val", val), dense("dense", dense0);
        run("scatter_add", elementwise(count), scatter_add, ScatterParams{(u32)count, (u32)dense_len, scale}, bi.p(), bv.p(), dense.p());
        Case c("scatter_add", "count700 into 500, duplicates, out of range", 1e-6);
        c.close("dense", dense.p(), want);
    }
    if (selected("scatter_zero")) {  // scatter_zero
        vector<float> want = dense0;
        for (u32 i : idx)
            if (i < dense_len) want[i] = 0.0f;
        Buf<u32> bi("idx", idx);
        Buf<float> dense("dense", dense0);
        run("scatter_zero", elementwise(count), scatter_zero, ScatterParams{(u32)count, (u32)dense_len, 0.0f}, bi.p(), dense.p());
        Case c("scatter_zero", "count700 into 500, duplicates, out of range", 0);
        c.exact("dense", dense.p(), want);
    }
}

// =============================================================================================
// Loss and metrics
// =============================================================================================

static void test_xent(size_t n, size_t classes, bool bad_label) {
    vector<float> z = randn(n * classes, 3.0);
    z[0] = 80.0f;  // exp(80) overflows FP32: the max must be subtracted first
    vector<u32> labels(n);
    for (u32& l : labels) l = rand_u32((u32)classes);
    if (bad_label) labels[n - 1] = (u32)classes;  // out of range: NaN loss
    vector<double> wp(n * classes), wl(n);
    for (size_t r = 0; r < n; r++) {
        double mx = -INFINITY, s = 0;
        for (size_t j = 0; j < classes; j++) mx = std::max(mx, (double)z[r * classes + j]);
        for (size_t j = 0; j < classes; j++) s += std::exp(z[r * classes + j] - mx);
        for (size_t j = 0; j < classes; j++) wp[r * classes + j] = std::exp(z[r * classes + j] - mx) / s;
        wl[r] = labels[r] < classes ? std::log(s) + mx - z[r * classes + labels[r]] : NAN;
    }
    const string desc = fmt("n%zu classes%zu%s", n, classes, bad_label ? " label out of range" : "");
    if (selected("xent_fwd")) {  // softmax_cross_entropy, first launch
        Buf<float> bz("logits", z), probs("probs", n * classes, NaNf), rows("loss_rows", n, NaNf);
        Buf<u32> bl("labels", labels);
        run("xent_fwd", per_row(n), xent_fwd, XentParams{(u32)n, (u32)classes, 0.0f}, bz.p(), bl.p(), probs.p(), rows.p());
        Case c("xent_fwd", desc, 1e-5);
        c.close("probs", probs.p(), wp);
        double lscale = 0;  // loss = log(s) + mx - z[y]: its rounding scales with the terms
        for (size_t r = 0; r < n; r++)
            for (size_t j = 0; j < classes; j++) lscale = std::max(lscale, std::fabs((double)z[r * classes + j]));
        c.close("loss_rows", rows.p(), wl, lscale);
    }
    if (selected("xent_bwd")) {  // softmax_cross_entropy, dlogits (p.scale = 1/n), reference probs in
        vector<float> pf(wp.begin(), wp.end());
        const float scale = 1.0f / (float)n;
        vector<double> wd(n * classes);
        for (size_t i = 0; i < n * classes; i++) wd[i] = ((double)pf[i] - (i % classes == labels[i / classes] ? 1.0 : 0.0)) * scale;
        Buf<float> bp("probs", pf), dl("dlogits", n * classes, NaNf);
        Buf<u32> bl("labels", labels);
        run("xent_bwd", elementwise(n * classes), xent_bwd, XentParams{(u32)n, (u32)classes, scale}, bp.p(), bl.p(), dl.p());
        Case c("xent_bwd", desc, 1e-6);
        c.close("dlogits", dl.p(), wd);
    }
}

static void loss_tests() {
    test_xent(5, 10, false);
    test_xent(3, 1000, false);  // classes > 256: each thread loops
    test_xent(4, 3, false);     // classes < 32: most lanes idle in the reductions
    test_xent(2, 257, true);
    if (selected("sum_scaled"))  // softmax_cross_entropy, second launch: mean of the rows
        for (size_t n : {5ul, 300ul, 1000ul}) {
            const vector<float> v = randu(n, 0.0, 5.0);
            double s = 0;
            for (float f : v) s += f;
            Buf<float> bv("rows", v), out("out", 1, NaNf);
            run("sum_scaled", per_row(1), sum_scaled, XentParams{(u32)n, 1, 1.0f / (float)n}, bv.p(), out.p());
            Case c("sum_scaled", fmt("n%zu scale 1/n", n), 1e-6);
            c.close("out", out.p(), {s / n});
        }
    if (selected("topk_correct"))  // topk_correct
        for (auto [n, classes] : {std::pair<size_t, size_t>{300, 10}, {37, 1000}, {64, 4}}) {
            const vector<float> z = rand_int_valued(n * classes, 0, 3);  // many ties with the label
            vector<u32> labels(n);
            for (u32& l : labels) l = rand_u32((u32)classes);
            labels[0] = (u32)classes;  // out of range: never correct
            u32 top1 = 0, top5 = 0;
            for (size_t r = 0; r < n; r++) {
                if (labels[r] >= classes) continue;
                size_t above = 0;
                for (size_t j = 0; j < classes; j++) above += z[r * classes + j] > z[r * classes + labels[r]];
                top1 += above == 0;
                top5 += above < 5;
            }
            Buf<float> bz("logits", z);
            Buf<u32> bl("labels", labels), counts("counts", 2, 0u);
            run("topk_correct", elementwise(n), topk_correct, XentParams{(u32)n, (u32)classes, 0.0f}, bz.p(), bl.p(), counts.p());
            Case c("topk_correct", fmt("n%zu classes%zu ties, bad label", n, classes), 0);
            c.exact("counts", counts.p(), vector<u32>{top1, top5});
        }
}

// =============================================================================================
// Top-k
// =============================================================================================

/// Magnitude order of the top-k: NaN above +inf above every finite value.
static bool mag_greater(float a, float b) {
    if (std::isnan(a) != std::isnan(b)) return std::isnan(a);
    if (std::isnan(a)) return false;
    return std::fabs(a) > std::fabs(b);
}
static u32 mag_bits(float v) { return std::bit_cast<u32>(std::fabs(v)) | (std::isnan(v) ? 0x7fc00000u : 0u); }

/// Mirrors ops.rs `CudaBackend::topk_into` launch by launch, checking each kernel's output
/// against the reference on the way: the per-pass histograms and picks, the per-chunk counts,
/// their scan, and the final (index, value) pairs.
static void test_topk(const vector<float>& x, size_t k, const string& what, size_t sm_count = H100_SMS) {
    const size_t len = x.size();
    // Reference: order by (magnitude desc, index asc), take k, sort by index.
    vector<u32> order(len);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](u32 a, u32 b) { return mag_greater(x[a], x[b]); });
    vector<u32> widx(order.begin(), order.begin() + k);
    std::sort(widx.begin(), widx.end());
    vector<float> wval(k);
    for (size_t j = 0; j < k; j++) wval[j] = x[widx[j]];
    const u32 T = mag_bits(x[order[k - 1]]);  // magnitude (bits) of the k-th largest
    auto count_above = [&](u32 mask) {  // elements whose masked magnitude exceeds T's
        size_t c = 0;
        for (float v : x) c += (mag_bits(v) & mask) > (T & mask);
        return c;
    };
    const u32 need = (u32)(k - count_above(0xffffffffu));

    const size_t nblocks = div_ceil(len, TOPK_CHUNK);
    const string desc = fmt("len%zu k%zu %s", len, k, what.c_str());
    TopkParams p{(u32)len, (u32)k, 0, TOPK_CHUNK, (u32)nblocks};
    Buf<float> bx("x", x);
    Buf<u32> state("state", vector<u32>{0, 0, (u32)k, 0}), hist("hist", 256, 0u), counts("counts", 2 * nblocks, 0u);
    {
        Case cp("topk_pick", desc, 0);  // (reported after topk_hist: destroyed last)
        Case ch("topk_hist", desc + fmt(", grid capped at %zu", sm_count * 8), 0);
        u32 mask = 0;
        for (u32 shift : {24u, 16u, 8u, 0u}) {
            p.shift = shift;
            // Reference histogram of the elements matching the prefix found so far (from the
            // kernel's own state, itself checked after every pick).
            vector<u32> wh(256, 0);
            const u32 prefix = state[0], smask = state[1];
            for (float v : x)
                if ((mag_bits(v) & smask) == prefix) wh[(mag_bits(v) >> shift) & 255u]++;
            run("topk_hist", capped(elementwise(len), sm_count * 8), topk_hist, p, (const float*)bx.p(), (const u32*)state.p(), hist.p());
            ch.exact(fmt("hist(shift %u)", shift).c_str(), hist.p(), wh);
            run("topk_pick", per_row(1), topk_pick, p, hist.p(), state.p());
            mask |= 255u << shift;
            const u32 rem = (u32)(k - count_above(mask));
            cp.exact(fmt("state(shift %u)", shift).c_str(), state.p(), vector<u32>{T & mask, mask, rem, 0});
            cp.exact(fmt("hist cleared(shift %u)", shift).c_str(), hist.p(), vector<u32>(256, 0));
        }
        cp.exact("final {T, mask, need}", state.p(), vector<u32>{T, 0xffffffffu, need, 0});
    }
    const emu::LaunchConfig chunks{{(u32)nblocks, 1, 1}, {BLOCK, 1, 1}, 0};
    // The counting pass against the reference state, so that it is checked on its own.
    Buf<u32> rstate("ref state", vector<u32>{T, 0xffffffffu, need, 0});
    vector<u32> wc(2 * nblocks, 0);
    for (size_t i = 0; i < len; i++) {
        const u32 b = mag_bits(x[i]);
        wc[2 * (i / TOPK_CHUNK)] += b > T;
        wc[2 * (i / TOPK_CHUNK) + 1] += b == T;
    }
    {
        run("topk_count", chunks, topk_count, p, (const float*)bx.p(), (const u32*)rstate.p(), counts.p());
        Case c("topk_count", desc, 0);
        c.exact("counts", counts.p(), wc);
    }
    vector<u32> wscan(2 * nblocks);
    for (size_t b = 0, g = 0, e = 0; b < nblocks; b++) {
        wscan[2 * b] = (u32)g, wscan[2 * b + 1] = (u32)e;
        g += wc[2 * b], e += wc[2 * b + 1];
    }
    {
        counts.set(wc);
        run("topk_scan", emu::LaunchConfig{{1, 1, 1}, {1024, 1, 1}, 0}, topk_scan, p, counts.p());
        Case c("topk_scan", desc, 0);
        c.exact("offsets", counts.p(), wscan);
    }
    {
        counts.set(wscan);
        Buf<u32> oi("out_idx", k, 0xffffffffu);
        Buf<float> ov("out_val", k, NaNf);
        run("topk_compact", chunks, topk_compact, p, (const float*)bx.p(), (const u32*)rstate.p(), (const u32*)counts.p(), oi.p(), ov.p());
        Case c("topk_compact", desc, 0);
        c.exact("idx", oi.p(), widx);
        c.exact("val", ov.p(), wval);
    }
}

static void test_topk_scan(size_t nblocks) {
    if (!selected("topk_scan")) return;
    vector<u32> c(2 * nblocks), want(2 * nblocks);
    for (u32& v : c) v = rand_u32(4097);
    for (size_t b = 0, g = 0, e = 0; b < nblocks; b++) {
        want[2 * b] = (u32)g, want[2 * b + 1] = (u32)e;
        g += c[2 * b], e += c[2 * b + 1];
    }
    Buf<u32> counts("counts", c);
    const TopkParams p{(u32)(nblocks * TOPK_CHUNK), 1, 0, TOPK_CHUNK, (u32)nblocks};
    run("topk_scan", emu::LaunchConfig{{1, 1, 1}, {1024, 1, 1}, 0}, topk_scan, p, counts.p());
    Case cs("topk_scan", fmt("nblocks%zu (len %zu)", nblocks, nblocks * TOPK_CHUNK), 0);
    cs.exact("offsets", counts.p(), want);
}

/// Mirrors segtopk.rs `CudaBackend::segmented_topk` (and `segmented_sumsq`) launch by launch:
/// segments of the given lengths tile x; segment s keeps k_s = ks[s] values. Reference: per
/// segment, order by (magnitude desc, index asc), take k_s, sort by index; the concatenation over
/// segments with global indices. Also checks each segment's final radix state and the per-block
/// sums of squares.
static void test_seg_topk(const vector<float>& x, const vector<size_t>& lens, const vector<size_t>& ks, const string& what) {
    const size_t nseg = lens.size();
    vector<u32> bounds(nseg + 1, 0);
    for (size_t s = 0; s < nseg; s++) bounds[s + 1] = bounds[s] + (u32)lens[s];
    if (bounds[nseg] != x.size()) emu::fatal("test_seg_topk: segments do not tile x");
    // Block table (segtopk.rs `block_table`), written out independently.
    vector<u32> blk_seg, blk_start, seg_first(nseg), seg_out(nseg);
    size_t total_k = 0;
    for (size_t s = 0; s < nseg; s++) {
        seg_first[s] = (u32)blk_seg.size();
        seg_out[s] = (u32)total_k;
        total_k += ks[s];
        for (u32 at = bounds[s]; at < bounds[s + 1]; at += TOPK_CHUNK) blk_seg.push_back((u32)s), blk_start.push_back(at);
    }
    const size_t nb = blk_seg.size();
    vector<u32> widx, wstate;
    vector<float> wval;
    for (size_t s = 0; s < nseg; s++) {
        const size_t k = ks[s];
        if (k == 0) {  // an empty segment: every pick takes byte 255 with nothing to find
            for (u32 v : {0xffffffffu, 0xffffffffu, 0u, 0u}) wstate.push_back(v);
            continue;
        }
        vector<u32> order(lens[s]);
        std::iota(order.begin(), order.end(), bounds[s]);
        std::stable_sort(order.begin(), order.end(), [&](u32 a, u32 b) { return mag_greater(x[a], x[b]); });
        vector<u32> sel(order.begin(), order.begin() + k);
        std::sort(sel.begin(), sel.end());
        for (u32 i : sel) widx.push_back(i), wval.push_back(x[i]);
        const u32 T = mag_bits(x[order[k - 1]]);
        u32 above = 0;
        for (u32 i = bounds[s]; i < bounds[s + 1]; i++) above += mag_bits(x[i]) > T;
        for (u32 v : {T, 0xffffffffu, (u32)k - above, 0u}) wstate.push_back(v);
    }
    const string desc = fmt("%zu segments, len%zu, k%zu, %zu blocks: %s", nseg, x.size(), total_k, nb, what.c_str());
    Buf<float> bx("x", x);
    Buf<u32> bseg("blk_seg", blk_seg), bstart("blk_start", blk_start), bbounds("seg_bounds", bounds), bout("seg_out", seg_out),
        bfirst("seg_first", seg_first), state("state", 4 * nseg, 0u), hist("hist", 256 * nseg, 0u), counts("counts", 2 * nb, 0xffffffffu);
    for (size_t s = 0; s < nseg; s++) state[4 * s + 2] = (u32)ks[s];
    const emu::LaunchConfig blocks{{(u32)nb, 1, 1}, {BLOCK, 1, 1}, 0};
    {
        Case cp("topk_seg_pick", desc, 0);
        Case ch("topk_seg_hist", desc, 0);
        for (u32 shift : {24u, 16u, 8u, 0u}) {
            const SegParams p{(u32)nseg, (u32)nb, TOPK_CHUNK, shift};
            vector<u32> wh(256 * nseg, 0);
            for (size_t s = 0; s < nseg; s++)
                for (u32 i = bounds[s]; i < bounds[s + 1]; i++)
                    if ((mag_bits(x[i]) & state[4 * s + 1]) == state[4 * s]) wh[256 * s + ((mag_bits(x[i]) >> shift) & 255u)]++;
            run("topk_seg_hist", blocks, topk_seg_hist, p, (const float*)bx.p(), (const u32*)bseg.p(), (const u32*)bstart.p(),
                (const u32*)bbounds.p(), (const u32*)state.p(), hist.p());
            ch.exact(fmt("hist(shift %u)", shift).c_str(), hist.p(), wh);
            run("topk_seg_pick", per_row(nseg), topk_seg_pick, p, hist.p(), state.p());
            cp.exact(fmt("hist cleared(shift %u)", shift).c_str(), hist.p(), vector<u32>(256 * nseg, 0));
        }
        cp.exact("final {T, mask, need} per segment", state.p(), wstate);
    }
    const SegParams p{(u32)nseg, (u32)nb, TOPK_CHUNK, 0};
    vector<u32> wc(2 * nb, 0);
    for (size_t b = 0; b < nb; b++) {
        const u32 s = blk_seg[b], end = std::min(blk_start[b] + TOPK_CHUNK, bounds[s + 1]);
        for (u32 i = blk_start[b]; i < end; i++) {
            wc[2 * b] += mag_bits(x[i]) > wstate[4 * s];
            wc[2 * b + 1] += mag_bits(x[i]) == wstate[4 * s];
        }
    }
    {
        run("topk_seg_count", blocks, topk_seg_count, p, (const float*)bx.p(), (const u32*)bseg.p(), (const u32*)bstart.p(),
            (const u32*)bbounds.p(), (const u32*)state.p(), counts.p());
        Case c("topk_seg_count", desc, 0);
        c.exact("counts", counts.p(), wc);
    }
    // segtopk.rs runs the plain topk_scan over all blocks (checked on its own in test_topk_scan).
    const TopkParams sp{0, 0, 0, 0, (u32)nb};
    run("topk_scan", emu::LaunchConfig{{1, 1, 1}, {1024, 1, 1}, 0}, topk_scan, sp, counts.p());
    {
        Buf<u32> oi("out_idx", total_k, 0xffffffffu);
        Buf<float> ov("out_val", total_k, NaNf);
        run("topk_seg_compact", blocks, topk_seg_compact, p, (const float*)bx.p(), (const u32*)bseg.p(), (const u32*)bstart.p(),
            (const u32*)bbounds.p(), (const u32*)bout.p(), (const u32*)bfirst.p(), (const u32*)state.p(), (const u32*)counts.p(),
            oi.p(), ov.p());
        Case c("topk_seg_compact", desc, 0);
        c.exact("idx", oi.p(), widx);
        c.exact("val", ov.p(), wval);
    }
    if (selected("topk_seg_sumsq")) {
        vector<double> want(nb, 0.0);
        for (size_t b = 0; b < nb; b++) {
            const u32 end = std::min(blk_start[b] + TOPK_CHUNK, bounds[blk_seg[b] + 1]);
            for (u32 i = blk_start[b]; i < end; i++) want[b] += (double)x[i] * x[i];
        }
        Buf<double> part("partial", nb, std::numeric_limits<double>::quiet_NaN());
        run("topk_seg_sumsq", blocks, topk_seg_sumsq, p, (const float*)bx.p(), (const u32*)bseg.p(), (const u32*)bstart.p(),
            (const u32*)bbounds.p(), part.p());
        Case c("topk_seg_sumsq", desc, 1e-12);
        c.close("partial", part.p(), want);
    }
}

static void seg_topk_tests() {
    const char* ks[] = {"topk_seg_hist", "topk_seg_pick", "topk_seg_count", "topk_seg_compact", "topk_seg_sumsq"};
    if (!std::any_of(std::begin(ks), std::end(ks), [](const char* k) { return selected(k); })) return;
    // Layer-like segments: tiny (a bias), one value, several chunks, an empty one, exactly one chunk.
    {
        const vector<size_t> lens = {10, 1, 9000, 0, 4096, 300};
        size_t n = 0;
        for (size_t l : lens) n += l;
        vector<float> x = randn(n);
        for (size_t i = 0; i < 10; i++) x[i] *= 100.0f;  // a segment of large values must not crowd out the others
        vector<size_t> ks;
        for (size_t l : lens) ks.push_back(l == 0 ? 0 : std::max<size_t>(1, l / 10));
        test_seg_topk(x, lens, ks, "layer-like, cr 0.1");
        ks = {10, 1, 9000, 0, 4096, 300};
        test_seg_topk(x, lens, ks, "k == len everywhere");
    }
    {
        const vector<size_t> lens = {5000, 7, 8200};
        vector<float> x = rand_int_valued(5000 + 7 + 8200, -2, 2);
        test_seg_topk(x, lens, {1234, 3, 4100}, "integer values: ties inside every segment");
    }
    {
        vector<float> x = randn(6000);
        x[100] = NaNf, x[3000] = INFINITY, x[5999] = -INFINITY;
        test_seg_topk(x, {2000, 2000, 2000}, {5, 1, 2}, "NaN and inf in different segments");
    }
    test_seg_topk(randn(12000), {12000}, {120}, "one segment (global scope)");
}

static void topk_tests() {
    const char* ks[] = {"topk_hist", "topk_pick", "topk_count", "topk_scan", "topk_compact"};
    if (!std::any_of(std::begin(ks), std::end(ks), [](const char* k) { return selected(k); })) return;
    test_topk(randn(10000), 100, "normal, 3 chunks");
    test_topk(rand_int_valued(10000, -3, 3), 3000, "integer values: ties at the threshold");
    test_topk(randn(5000), 5000, "k == len");
    test_topk(randn(300), 1, "k = 1, one partial chunk");
    test_topk(randn(300), 17, "one partial chunk");
    {
        vector<float> x = randn(9000);
        x[17] = INFINITY, x[4500] = -INFINITY, x[8999] = NaNf, x[123] = -NaNf;
        test_topk(x, 10, "NaN and inf present");
        test_topk(x, 3, "k inside NaN/inf");
    }
    {
        vector<float> x(4100, 0.0f);
        for (size_t i = 1; i < x.size(); i += 2) x[i] = -0.0f;
        x[4099] = 1e-45f;
        x[2000] = -1e-45f;  // denormal magnitudes only
        test_topk(x, 7, "zeros and -0.0 with two denormals");
    }
    test_topk(rand_int_valued(8192, -1, 1), 4096, "two full chunks, ties", 2);  // hist grid capped at 16 blocks
    {  // equal magnitudes of both signs straddling a chunk boundary
        vector<float> x = randn(8200, 0.01);
        for (size_t i = 4090; i < 4110; i++) x[i] = (i % 2) ? 2.5f : -2.5f;
        test_topk(x, 13, "+-2.5 ties across a chunk boundary");
    }
    test_topk_scan(1);
    test_topk_scan(1024);
    test_topk_scan(1025);
    test_topk_scan(2500);  // more chunks than threads: each thread scans a segment of 3
}

// =============================================================================================
// Emulator self-check: the TF32 conversion and the warp intrinsics the kernels do not all use
// =============================================================================================

/// Each warp: lane l gets shfl_down(l*10, 3), shfl(l*10, 31-l), ballot(l odd) and, for the block,
/// syncthreads_count(l < 5).
__global__ void emu_selfcheck_kernel(u32* out) {
    const u32 t = threadIdx.x, lane = t & 31;
    out[4 * t + 0] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
    out[4 * t + 1] = __shfl_sync(0xffffffffu, lane * 10, 31 - lane);
    out[4 * t + 2] = __ballot_sync(0xffffffffu, lane & 1);
    out[4 * t + 3] = (u32)__syncthreads_count(lane < 5);
}

static void emu_selfcheck() {
    if (!selected("emu_selfcheck")) return;
    Case c("emu_selfcheck", "cvt.rna.tf32 ties/overflow; shfl_down/shfl/ballot/syncthreads_count", 0);
    auto f = [](u32 u) { return std::bit_cast<float>(u); };
    const std::pair<u32, u32> cvt[] = {
        {0x3f800000u, 0x3f800000u},  // 1.0 exact
        {0x3f801000u, 0x3f802000u},  // 1 + 2^-11: a tie, away from zero
        {0xbf801000u, 0xbf802000u},  // -(1 + 2^-11): away from zero, negative
        {0x3f800fffu, 0x3f800000u},  // just below the tie
        {0x3f803000u, 0x3f804000u},  // 1 + 3*2^-11: a tie, away from zero (not to even)
        {0x7f7fffffu, 0x7f800000u},  // the largest float rounds past the largest TF32: +inf
        {0x7f800000u, 0x7f800000u},  // +inf unchanged
        {0x00001fffu, 0x00002000u},  // denormal rounds up
    };
    for (auto [in, want] : cvt) {
        const u32 got = emu_cvt_rna_tf32(f(in));
        if (got != want) c.fail(fmt("  cvt.rna.tf32(%#x) = %#x, want %#x", in, got, want));
    }
    if (!std::isnan(std::bit_cast<float>(emu_cvt_rna_tf32(NaNf)))) c.fail("  cvt.rna.tf32(NaN) is not NaN");
    const u32 threads = 96;
    Buf<u32> out("out", 4 * threads, 0u);
    run("emu_selfcheck", emu::LaunchConfig{{2, 1, 1}, {threads, 1, 1}, 0}, emu_selfcheck_kernel, out.p());
    vector<u32> want(4 * threads);
    for (u32 t = 0; t < threads; t++) {
        const u32 lane = t & 31;
        want[4 * t + 0] = (lane + 3 < 32 ? lane + 3 : lane) * 10;
        want[4 * t + 1] = (31 - lane) * 10;
        want[4 * t + 2] = 0xaaaaaaaau;
        want[4 * t + 3] = 5 * (threads / 32);
    }
    c.exact("out", out.p(), want);
}

}  // namespace kh

// =============================================================================================

int main(int argc, char** argv) {
    using namespace kh;
    if (argc > 1) g_filter = argv[1];
    emu::start_watchdog(60);  // one launch takes a few seconds at most, even on a slow machine
    const auto t0 = std::chrono::steady_clock::now();
    std::printf("kernel emulation: real kernels/*.cu as CPU fibers (shim.h), double-precision references\n");
    // The launch constants mirrored from ops.rs (tests/kernel_emulation.rs compares them with it).
    std::printf("CONST BLOCK %u\nCONST BN_BLOCK %u\nCONST TOPK_CHUNK %u\n", BLOCK, BN_BLOCK, TOPK_CHUNK);
    emu_selfcheck();
    gemm_tests();
    fastdivmod_tests();
    conv_tests();
    batchnorm_tests();
    pool_tests();
    activation_tests();
    dropout_tests();
    loss_tests();
    optimizer_tests();
    pack_tests();
    topk_tests();
    seg_topk_tests();
    std::printf("\n");
    for (const auto& [name, s] : g_stats)
        std::printf("KERNEL %-24s cases=%-3d max_err=%.2e %s\n", name.c_str(), s.cases, s.max_err, s.fails ? "FAIL" : "PASS");
    for (const string& k : g_launched)
        if (!g_stats.count(k)) std::printf("UNCHECKED %s (launched but no case checked it)\n", k.c_str());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%d cases, %d failed, %zu kernels, %.1f s\n", g_cases, g_failed, g_stats.size(), secs);
    return g_failed ? 1 : 0;
}
