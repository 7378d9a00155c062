//! The CUDA backend: one launch wrapper per kernel over device views, with the same semantics as
//! the CPU ops in `backend::cpu` (gradients overwrite their outputs), plus pinned host staging for
//! MPI (device → pinned host → MPI → pinned host → device).
//!
//! Every wrapper checks the lengths of its buffers against the shape before launching, which is
//! what makes the launches sound: the kernels index only within those lengths.
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DeviceRepr, DriverError,
    LaunchConfig, PinnedHostSlice, PushKernelArg, ValidAsZeroBits,
};

use super::kernels::{Family, ModuleCache};
use super::params::*;
use super::probe::quiet_catch;
use crate::backend::cpu::{Conv2dShape, Pool2dShape};
use crate::error::{Error, Result};

/// Threads per block of the elementwise and grid-stride kernels.
pub(super) const BLOCK: u32 = 256;
/// Elements one block owns in the top-k counting and compaction passes.
pub(super) const TOPK_CHUNK: u32 = 4096;

pub(super) fn drv<T>(what: &str, r: std::result::Result<T, DriverError>) -> Result<T> {
    r.map_err(|e| Error::Cuda(format!("{what}: {e:?}")))
}

pub(super) fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        crate::bail!(Cuda, "{what}: buffer holds {got} values, expected {want}");
    }
    Ok(())
}

pub(super) fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Cuda(format!("{what}: {v} exceeds the kernels' 32-bit index range")))
}

/// Grid-stride launch over `len` elements.
fn elementwise(len: usize) -> LaunchConfig {
    let blocks = len.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// One block of `BLOCK` threads per row (channel, sample).
pub(super) fn per_row(rows: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Threads per block of the batch-norm reductions: one block per channel streams all n·hw values
/// of its channel (three passes forward, two backward), and with `BLOCK` threads too few loads
/// would be in flight per SM for the large planes of the early layers.
const BN_BLOCK: u32 = 1024;

/// One block of `BN_BLOCK` threads per channel.
fn per_channel(c: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (c as u32, 1, 1), block_dim: (BN_BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Device buffers come from the device's default stream-ordered pool (`cuMemAllocAsync`). Its
/// release threshold is 0 unless set, so every stream synchronisation hands the freed memory back
/// to the driver and the next training step maps all its activations afresh; an unbounded
/// threshold keeps it in the pool for reuse (the role of PyTorch's caching allocator). A GPU
/// without memory pools is left as it is.
fn keep_freed_memory_pooled(ctx: &CudaContext) {
    use cudarc::driver::sys;
    // SAFETY: plain driver queries on a valid device handle; the attribute value is a u64 that
    // outlives the call, as CU_MEMPOOL_ATTR_RELEASE_THRESHOLD requires.
    unsafe {
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()).result().is_ok() && !pool.is_null() {
            let mut threshold = u64::MAX;
            let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
            let _ = sys::cuMemPoolSetAttribute(pool, attr, (&mut threshold as *mut u64).cast()).result();
        }
    }
}

/// The i-th value (from 0) of the SplitMix64 stream started at `seed` (Steele, Lea & Flood 2014):
/// the hash from which `kernels/dropout.cu` draws element i's keep/drop decision, mirrored for the
/// host, which also draws the per-forward mask seeds from it.
pub fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `ceil(p·2³²)` for `p` in [0, 1): element i is dropped when the upper 32 bits of its hash are
/// below it, which happens with probability p (exact to 2⁻³²).
pub fn dropout_threshold(p: f32) -> u32 {
    (p as f64 * 4_294_967_296.0).ceil() as u32
}

/// Whether `dropout_fwd` keeps element `i` under `seed` and `threshold` (see [`dropout_threshold`]).
pub fn dropout_keeps(seed: u64, threshold: u32, i: u32) -> bool {
    (splitmix64(seed, i as u64) >> 32) as u32 >= threshold
}

/// A CUDA device with its stream and kernel modules.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cache: ModuleCache,
    sm_count: usize,
    tensor_cores: bool,
}

impl CudaBackend {
    /// Opens GPU `ordinal`. Tensor-core (TF32) GEMMs and convolutions are on for sm_80 and newer
    /// unless the environment sets `SCADLES_CUDA_TF32=0`.
    pub fn new(ordinal: usize) -> Result<Self> {
        super::probe::probe().map_err(|why| Error::Cuda(format!("no usable NVIDIA GPU ({why})")))?;
        let ctx = quiet_catch(|| CudaContext::new(ordinal))
            .map_err(Error::Cuda)?
            .map_err(|e| Error::Cuda(format!("opening GPU {ordinal}: {e:?}")))?;
        // SAFETY: every copy and launch of this backend goes to the context's default stream and no
        // other stream is created, so cudarc's cross-stream ordering has nothing to order; left on,
        // it creates and destroys two CUDA events per allocation.
        unsafe { ctx.disable_event_tracking() };
        keep_freed_memory_pooled(&ctx);
        let stream = ctx.default_stream();
        let cache = ModuleCache::new(ctx.clone())?;
        let sm_count = drv(
            "multiprocessor count",
            ctx.attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
        )? as usize;
        let (major, _) = drv("compute capability", ctx.compute_capability())?;
        let tensor_cores = major >= 8 && std::env::var("SCADLES_CUDA_TF32").map_or(true, |v| v != "0");
        Ok(CudaBackend { ctx, stream, cache, sm_count, tensor_cores })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The architecture the kernels are compiled for, e.g. `"sm_90"`.
    pub fn arch(&self) -> &str {
        self.cache.arch()
    }

    /// Device name as the driver reports it.
    pub fn name(&self) -> Result<String> {
        drv("device name", self.ctx.name())
    }

    /// Whether GEMMs and convolutions use the TF32 tensor-core kernels.
    pub fn tensor_cores(&self) -> bool {
        self.tensor_cores
    }

    /// Turns the TF32 tensor-core path on or off; it stays off on GPUs older than sm_80.
    pub fn set_tensor_cores(&mut self, on: bool) {
        let (major, _) = self.ctx.compute_capability().unwrap_or((0, 0));
        self.tensor_cores = on && major >= 8;
    }

    /// Kernel `name` of `family`, compiled and loaded on first use.
    pub fn function(&self, family: Family, name: &'static str) -> Result<CudaFunction> {
        self.cache.function(family, name)
    }

    /// Waits for all work queued on the stream.
    pub fn synchronize(&self) -> Result<()> {
        drv("stream synchronize", self.stream.synchronize())
    }

    // ---- memory ------------------------------------------------------------------------------

    /// The error of a failed allocation of `len` values: out of memory says how much was asked
    /// for and what the device has left, which is what a user needs to pick a batch that fits.
    fn alloc_error<T>(len: usize, e: DriverError) -> Error {
        if e.0 != cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            return Error::Cuda(format!("device allocation: {e:?}"));
        }
        let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
        let left = cudarc::driver::result::mem_get_info()
            .map(|(free, total)| format!(" ({:.0} of {:.0} MiB free)", mib(free), mib(total)))
            .unwrap_or_default();
        Error::Cuda(format!(
            "out of GPU memory allocating {:.1} MiB{left}; a smaller --batch or model would fit",
            mib(len * std::mem::size_of::<T>())
        ))
    }

    /// A zeroed device buffer of `len` values.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len).map_err(|e| Self::alloc_error::<T>(len, e))
    }

    /// A device buffer of `len` values that a kernel then overwrites completely: not zeroed, which
    /// saves one memset per activation and gradient. The CPU emulation test of every kernel
    /// (tests/kernel_emulation.rs) starts their outputs as NaN and fails on any value left
    /// unwritten.
    pub fn output<T: DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        // SAFETY: the contents are unspecified until written; every caller passes the buffer as
        // the output of a kernel that writes each of its `len` values before anything reads them.
        unsafe { self.stream.alloc::<T>(len) }.map_err(|e| Self::alloc_error::<T>(len, e))
    }

    /// Copies host values into a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        drv("host-to-device copy", self.stream.clone_htod(v))
    }

    /// Copies a device buffer into a new host vector (waits for the stream).
    pub fn download<T: DeviceRepr, S: DevicePtr<T>>(&self, v: &S) -> Result<Vec<T>> {
        drv("device-to-host copy", self.stream.clone_dtoh(v))
    }

    /// Copies a device view into an existing host slice of the same length and waits, so the host
    /// can read `dst` on return (no allocation: the training step reuses its gradient buffer).
    pub fn download_into<T: DeviceRepr>(&self, src: &CudaView<'_, T>, dst: &mut [T]) -> Result<()> {
        check_len("device-to-host copy", dst.len(), src.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        drv("device-to-host copy", self.stream.memcpy_dtoh(src, dst))?;
        self.synchronize()
    }

    /// Copies a host slice into an existing device view of the same length and waits, so the
    /// caller may overwrite `src` on return.
    pub fn upload_into<T: DeviceRepr>(&self, src: &[T], dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        check_len("host-to-device copy", src.len(), dst.len())?;
        if src.is_empty() {
            return Ok(());
        }
        drv("host-to-device copy", self.stream.memcpy_htod(src, dst))?;
        self.synchronize()
    }

    /// Zeroes a device view (queued on the stream).
    pub fn fill_zero<T: DeviceRepr + ValidAsZeroBits>(&self, dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        drv("device memset", self.stream.memset_zeros(dst))
    }

    /// Device → device copy between views of the same length (queued on the stream).
    pub fn copy<T: DeviceRepr>(&self, src: &CudaView<'_, T>, dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        check_len("device-to-device copy", dst.len(), src.len())?;
        drv("device-to-device copy", self.stream.memcpy_dtod(src, dst))
    }

    /// Compiles and loads every kernel (the tensor-core ones too when they are on), so that an
    /// NVRTC or module-load failure shows at start-up rather than in the middle of a run.
    pub fn load_all_kernels(&self) -> Result<()> {
        for family in Family::ALL {
            let tc: &[&'static str] = if self.tensor_cores { family.tensor_core_kernels() } else { &[] };
            for &name in family.kernels().iter().chain(tc) {
                self.function(family, name)?;
            }
        }
        Ok(())
    }

    /// Page-locked host buffer of `len` values for staging MPI messages (not write-combined:
    /// the host reads it).
    pub fn pinned(&self, len: usize) -> Result<PinnedHostSlice<f32>> {
        // SAFETY: the buffer is only handed out after being filled by `stage_to_host`, or written
        // by the caller through `as_mut_slice` before `stage_from_host` reads it; f32 has no
        // invalid bit patterns either way.
        drv("pinned host allocation", unsafe { self.ctx.alloc_pinned_with_flags::<f32>(len, 0) })
    }

    /// The pinned buffer as a host slice, once every copy queued into or out of it has finished.
    /// cudarc's own wait on the buffer is a no-op here: it records the buffer's event only when
    /// several streams are in use, and this backend uses one.
    pub fn pinned_host<'p>(&self, p: &'p mut PinnedHostSlice<f32>) -> Result<&'p mut [f32]> {
        self.synchronize()?;
        drv("pinned host buffer", p.as_mut_slice())
    }

    /// Device → pinned host, then waits so the host (MPI) can read `dst`.
    pub fn stage_to_host(&self, src: &CudaView<'_, f32>, dst: &mut PinnedHostSlice<f32>) -> Result<()> {
        check_len("stage_to_host", dst.len(), src.len())?;
        drv("device-to-pinned copy", self.stream.memcpy_dtoh(src, dst))?;
        self.synchronize()
    }

    /// Device → pinned host in chunks of `chunk` values, calling `each` on every chunk of `dst` as
    /// soon as it has arrived while the later chunks are still being copied: the copy engine
    /// overlaps with whatever `each` does on the host (the MPI allreduce of the chunk before).
    /// Every copy is queued up front behind the work already on the stream, one event after each.
    pub fn stage_to_host_chunked(
        &self,
        src: &CudaView<'_, f32>,
        dst: &mut PinnedHostSlice<f32>,
        chunk: usize,
        mut each: impl FnMut(&mut [f32]) -> Result<()>,
    ) -> Result<()> {
        check_len("stage_to_host_chunked", dst.len(), src.len())?;
        let (n, chunk) = (src.len(), chunk.max(1));
        if n == 0 {
            return Ok(());
        }
        // Copies into the buffer from an earlier step (an upload out of it) must be finished.
        self.synchronize()?;
        let host = drv("pinned host buffer", dst.as_mut_ptr())?;
        let (dev, _record) = src.device_ptr(&self.stream);
        drv("bind context", self.ctx.bind_to_thread())?;
        let mut events = Vec::with_capacity(n.div_ceil(chunk));
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            // SAFETY: `host` points to the n pinned f32s of `dst`, borrowed mutably for this call,
            // and [start, start + len) lies within them, as it does within `src`'s n device values.
            // Nothing reads this part of `dst` before its event has completed (below).
            unsafe {
                let part = std::slice::from_raw_parts_mut(host.add(start), len);
                drv(
                    "device-to-pinned copy",
                    cudarc::driver::result::memcpy_dtoh_async(part, dev + (start * 4) as u64, self.stream.cu_stream()),
                )?;
            }
            events.push(drv("record copy event", self.stream.record_event(None))?);
        }
        for (i, start) in (0..n).step_by(chunk).enumerate() {
            drv("copy event", events[i].synchronize())?;
            let len = chunk.min(n - start);
            // SAFETY: the copy into this part has completed and no other reference to it exists.
            each(unsafe { std::slice::from_raw_parts_mut(host.add(start), len) })?;
        }
        Ok(())
    }

    /// Pinned host → device (queued on the stream; later kernels see the data).
    pub fn stage_from_host(&self, src: &PinnedHostSlice<f32>, dst: &mut CudaViewMut<'_, f32>) -> Result<()> {
        check_len("stage_from_host", dst.len(), src.len())?;
        drv("pinned-to-device copy", self.stream.memcpy_htod(src, dst))
    }

    // ---- GEMM and linear -----------------------------------------------------------------------

    /// `C = alpha * op(A) * op(B) + beta * C`, row-major, the semantics of `cpu::sgemm`.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &CudaView<'_, f32>,
        lda: usize,
        b: &CudaView<'_, f32>,
        ldb: usize,
        beta: f32,
        c: &mut CudaViewMut<'_, f32>,
        ldc: usize,
    ) -> Result<()> {
        let span = |rows: usize, cols: usize, ld: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols };
        let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
        let (br, bc) = if trans_b { (n, k) } else { (k, n) };
        if ac > lda.max(1) || bc > ldb.max(1) || n > ldc.max(1) {
            crate::bail!(Cuda, "gemm: leading dimension smaller than a row (lda {lda}, ldb {ldb}, ldc {ldc})");
        }
        if a.len() < span(ar, ac, lda) || b.len() < span(br, bc, ldb) || c.len() < span(m, n, ldc) {
            crate::bail!(Cuda, "gemm: operand buffers too short for m={m} n={n} k={k}");
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        let p = GemmParams {
            m: u32_of("gemm m", m)?,
            n: u32_of("gemm n", n)?,
            k: u32_of("gemm k", k)?,
            lda: u32_of("gemm lda", lda)?,
            ldb: u32_of("gemm ldb", ldb)?,
            ldc: u32_of("gemm ldc", ldc)?,
            trans_a: trans_a as u32,
            trans_b: trans_b as u32,
            alpha,
            beta,
        };
        // Row tiles go on grid.y, which CUDA caps at 65535.
        if m.div_ceil(64) > 65_535 {
            crate::bail!(Cuda, "gemm: m = {m} needs more than 65535 row tiles of 64 (the grid's y limit)");
        }
        let (name, threads) = if self.tensor_cores { ("gemm_tf32", 128) } else { ("gemm_simt", 256) };
        let f = self.function(Family::Gemm, name)?;
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(a).arg(b).arg(c);
        // SAFETY: the argument list matches gemm_*(GemmParams, const float*, const float*, float*),
        // and the span checks above keep every access within a, b and c.
        drv(name, unsafe { l.launch(cfg) }).map(|_| ())
    }

    /// `y [n, out_f] = x [n, in_f] · Wᵀ + b`, weight `[out_f, in_f]` (as `cpu::linear_forward`).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_forward(
        &self,
        n: usize,
        in_f: usize,
        out_f: usize,
        x: &CudaView<'_, f32>,
        w: &CudaView<'_, f32>,
        b: Option<&CudaView<'_, f32>>,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("linear x", x.len(), n * in_f)?;
        check_len("linear weight", w.len(), out_f * in_f)?;
        check_len("linear y", y.len(), n * out_f)?;
        self.gemm(false, true, n, out_f, in_f, 1.0, x, in_f.max(1), w, in_f.max(1), 0.0, y, out_f.max(1))?;
        if let Some(b) = b {
            self.bias_forward(n, out_f, 1, b, y)?;
        }
        Ok(())
    }

    /// Writes `dw = dyᵀ·x`, and `db = Σ_rows dy`, `dx = dy·W` when given (as `cpu::linear_backward`).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward(
        &self,
        n: usize,
        in_f: usize,
        out_f: usize,
        x: &CudaView<'_, f32>,
        w: &CudaView<'_, f32>,
        dy: &CudaView<'_, f32>,
        dx: Option<&mut CudaViewMut<'_, f32>>,
        dw: &mut CudaViewMut<'_, f32>,
        db: Option<&mut CudaViewMut<'_, f32>>,
    ) -> Result<()> {
        check_len("linear x", x.len(), n * in_f)?;
        check_len("linear weight", w.len(), out_f * in_f)?;
        check_len("linear dy", dy.len(), n * out_f)?;
        check_len("linear dw", dw.len(), out_f * in_f)?;
        self.gemm(true, false, out_f, in_f, n, 1.0, dy, out_f.max(1), x, in_f.max(1), 0.0, dw, in_f.max(1))?;
        if let Some(db) = db {
            self.bias_backward(n, out_f, 1, dy, db)?;
        }
        if let Some(dx) = dx {
            check_len("linear dx", dx.len(), n * in_f)?;
            self.gemm(false, false, n, in_f, out_f, 1.0, dy, out_f.max(1), w, in_f.max(1), 0.0, dx, in_f.max(1))?;
        }
        Ok(())
    }

    /// `y[b, c, i] += bias[c]` over `[n, c, hw]`.
    pub fn bias_forward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        bias: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("bias", bias.len(), c)?;
        check_len("bias output", y.len(), n * c * hw)?;
        if y.is_empty() {
            return Ok(());
        }
        let p = BiasParams { n: u32_of("bias n", n)?, c: c as u32, hw: u32_of("bias hw", hw)?, beta: 0.0 };
        let f = self.function(Family::Conv, "bias_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(bias).arg(y);
        // SAFETY: matches bias_fwd(BiasParams, const float*, float*); lengths checked above.
        drv("bias_fwd", unsafe { l.launch(elementwise(n * c * hw)) }).map(|_| ())
    }

    /// `db[c] = Σ_(b,i) dy[b, c, i]` over `[n, c, hw]` (overwrites).
    pub fn bias_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        dy: &CudaView<'_, f32>,
        db: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("bias gradient", db.len(), c)?;
        check_len("bias dy", dy.len(), n * c * hw)?;
        if c == 0 {
            return Ok(());
        }
        let p = BiasParams { n: u32_of("bias n", n)?, c: u32_of("bias c", c)?, hw: u32_of("bias hw", hw)?, beta: 0.0 };
        u32_of("bias n*hw", n * hw)?;
        let f = self.function(Family::Conv, "bias_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(dy).arg(db);
        // SAFETY: matches bias_bwd(BiasParams, const float*, float*); one block per channel,
        // lengths checked above.
        drv("bias_bwd", unsafe { l.launch(per_row(c)) }).map(|_| ())
    }

    // ---- convolution ---------------------------------------------------------------------------

    fn conv_params(s: &Conv2dShape) -> Result<ConvParams> {
        if s.stride == 0 {
            crate::bail!(Cuda, "conv2d: stride must be positive");
        }
        u32_of("conv2d input", s.n * s.c_in * s.h * s.w)?;
        u32_of("conv2d output", s.out_len())?;
        u32_of("conv2d weight", s.c_out * s.c_in * s.kh * s.kw)?;
        Ok(ConvParams {
            n: s.n as u32,
            c_in: s.c_in as u32,
            h: s.h as u32,
            w: s.w as u32,
            c_out: s.c_out as u32,
            kh: s.kh as u32,
            kw: s.kw as u32,
            stride: s.stride as u32,
            pad: u32_of("conv2d pad", s.pad)?,
            oh: s.h_out() as u32,
            ow: s.w_out() as u32,
            k_chunk: 0,
            beta: 0.0,
        })
    }

    fn gemm_launch(&self, m: usize, n: usize, splits: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(64) as u32, m.div_ceil(64) as u32, splits as u32),
            block_dim: (if self.tensor_cores { 128 } else { 256 }, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Convolution forward, `y [n, c_out, ho, wo]` (as `cpu::conv2d_forward`).
    pub fn conv2d_forward(
        &self,
        s: &Conv2dShape,
        x: &CudaView<'_, f32>,
        w: &CudaView<'_, f32>,
        bias: Option<&CudaView<'_, f32>>,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::conv_params(s)?;
        check_len("conv2d x", x.len(), s.n * s.c_in * s.h * s.w)?;
        check_len("conv2d weight", w.len(), s.c_out * s.c_in * s.kh * s.kw)?;
        check_len("conv2d y", y.len(), s.out_len())?;
        let (m, n) = (s.c_out, s.n * s.h_out() * s.w_out());
        if m == 0 || n == 0 {
            return Ok(());
        }
        let name = if self.tensor_cores { "conv2d_fwd_tf32" } else { "conv2d_fwd_simt" };
        let f = self.function(Family::Conv, name)?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(w).arg(&mut *y);
        // SAFETY: matches conv2d_fwd_*(ConvParams, const float* x, const float* w, float* y); the
        // loaders index within the lengths checked above.
        drv(name, unsafe { l.launch(self.gemm_launch(m, n, 1)) })?;
        if let Some(b) = bias {
            self.bias_forward(s.n, s.c_out, s.h_out() * s.w_out(), b, y)?;
        }
        Ok(())
    }

    /// Convolution backward: writes `dw`, and `db`, `dx` when given (as `cpu::conv2d_backward`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward(
        &self,
        s: &Conv2dShape,
        x: &CudaView<'_, f32>,
        w: &CudaView<'_, f32>,
        dy: &CudaView<'_, f32>,
        dx: Option<&mut CudaViewMut<'_, f32>>,
        dw: &mut CudaViewMut<'_, f32>,
        db: Option<&mut CudaViewMut<'_, f32>>,
    ) -> Result<()> {
        let mut p = Self::conv_params(s)?;
        let in_len = s.n * s.c_in * s.h * s.w;
        let w_len = s.c_out * s.c_in * s.kh * s.kw;
        check_len("conv2d x", x.len(), in_len)?;
        check_len("conv2d weight", w.len(), w_len)?;
        check_len("conv2d dy", dy.len(), s.out_len())?;
        check_len("conv2d dw", dw.len(), w_len)?;
        let ohw = s.h_out() * s.w_out();
        if let Some(db) = db {
            self.bias_backward(s.n, s.c_out, ohw, dy, db)?;
        }
        let tc = self.tensor_cores;
        // Weight gradient: M = c_out, N = c_in*kh*kw, K = n*oh*ow, split over grid.z so that the
        // small output still fills the GPU.
        let (m, n, k) = (s.c_out, s.c_in * s.kh * s.kw, s.n * ohw);
        if m > 0 && n > 0 {
            let tiles = m.div_ceil(64) * n.div_ceil(64);
            let want = (2 * self.sm_count).div_ceil(tiles).max(1);
            let max_splits = (k / 256).max(1);
            let splits0 = want.min(max_splits).min(256);
            let k_chunk = k.div_ceil(splits0).div_ceil(16).max(1) * 16;
            let splits = k.div_ceil(k_chunk).max(1);
            p.k_chunk = u32_of("conv2d split", k_chunk)?;
            let name = if tc { "conv2d_bwd_weight_tf32" } else { "conv2d_bwd_weight_simt" };
            let f = self.function(Family::Conv, name)?;
            if splits == 1 {
                let mut l = self.stream.launch_builder(&f);
                l.arg(&p).arg(x).arg(dy).arg(&mut *dw);
                // SAFETY: matches conv2d_bwd_weight_*(ConvParams, const float* x, const float* dy,
                // float* out); with one split the output is dw itself (length checked).
                drv(name, unsafe { l.launch(self.gemm_launch(m, n, 1)) })?;
            } else {
                let mut ws = self.output::<f32>(splits * m * n)?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&p).arg(x).arg(dy).arg(&mut ws);
                // SAFETY: as above, the output being the [splits, m, n] workspace just allocated.
                drv(name, unsafe { l.launch(self.gemm_launch(m, n, splits)) })?;
                let rp = ReduceParams { len: (m * n) as u32, splits: splits as u32, beta: 0.0 };
                let f = self.function(Family::Conv, "splitk_reduce")?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&rp).arg(&ws).arg(&mut *dw);
                // SAFETY: matches splitk_reduce(ReduceParams, const float*, float*); ws holds
                // splits * len values and dw len values.
                drv("splitk_reduce", unsafe { l.launch(elementwise(m * n)) })?;
            }
        }
        if let Some(dx) = dx {
            check_len("conv2d dx", dx.len(), in_len)?;
            let (m, n) = (s.c_in, s.n * s.h * s.w);
            if m > 0 && n > 0 {
                p.k_chunk = 0;
                let name = if tc { "conv2d_bwd_data_tf32" } else { "conv2d_bwd_data_simt" };
                let f = self.function(Family::Conv, name)?;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&p).arg(dy).arg(w).arg(dx);
                // SAFETY: matches conv2d_bwd_data_*(ConvParams, const float* dy, const float* w,
                // float* dx); lengths checked above.
                drv(name, unsafe { l.launch(self.gemm_launch(m, n, 1)) })?;
            }
        }
        Ok(())
    }

    // ---- batch normalisation ---------------------------------------------------------------------

    fn bn_params(n: usize, c: usize, hw: usize, eps: f32, momentum: f32) -> Result<BnParams> {
        u32_of("batchnorm size", n * c * hw)?;
        Ok(BnParams { n: n as u32, c: c as u32, hw: hw as u32, eps, momentum })
    }

    /// Training-mode forward (as `cpu::batchnorm2d_forward_train`): batch statistics, saved mean
    /// and 1/sqrt(var + eps), running statistics updated with `momentum` and the unbiased variance.
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_forward_train(
        &self,
        x: &CudaView<'_, f32>,
        n: usize,
        c: usize,
        hw: usize,
        gamma: &CudaView<'_, f32>,
        beta: &CudaView<'_, f32>,
        eps: f32,
        momentum: f32,
        running_mean: &mut CudaViewMut<'_, f32>,
        running_var: &mut CudaViewMut<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        save_mean: &mut CudaViewMut<'_, f32>,
        save_invstd: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::bn_params(n, c, hw, eps, momentum)?;
        check_len("batchnorm x", x.len(), n * c * hw)?;
        check_len("batchnorm y", y.len(), n * c * hw)?;
        for (what, len) in [
            ("gamma", gamma.len()),
            ("beta", beta.len()),
            ("running_mean", running_mean.len()),
            ("running_var", running_var.len()),
            ("save_mean", save_mean.len()),
            ("save_invstd", save_invstd.len()),
        ] {
            check_len(what, len, c)?;
        }
        if c == 0 || n * hw == 0 {
            return Ok(());
        }
        let f = self.function(Family::BatchNorm, "batchnorm_fwd_train")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(gamma).arg(beta).arg(y).arg(save_mean).arg(save_invstd).arg(running_mean).arg(running_var);
        // SAFETY: matches batchnorm_fwd_train's nine arguments in order; one block per channel,
        // per-channel buffers hold c values and x, y hold n*c*hw (checked above).
        drv("batchnorm_fwd_train", unsafe { l.launch(per_channel(c)) }).map(|_| ())
    }

    /// Evaluation-mode forward with the running statistics (as `cpu::batchnorm2d_forward_eval`).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_forward_eval(
        &self,
        x: &CudaView<'_, f32>,
        n: usize,
        c: usize,
        hw: usize,
        gamma: &CudaView<'_, f32>,
        beta: &CudaView<'_, f32>,
        eps: f32,
        running_mean: &CudaView<'_, f32>,
        running_var: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::bn_params(n, c, hw, eps, 0.0)?;
        check_len("batchnorm x", x.len(), n * c * hw)?;
        check_len("batchnorm y", y.len(), n * c * hw)?;
        for (what, len) in
            [("gamma", gamma.len()), ("beta", beta.len()), ("running_mean", running_mean.len()), ("running_var", running_var.len())]
        {
            check_len(what, len, c)?;
        }
        if x.is_empty() {
            return Ok(());
        }
        let f = self.function(Family::BatchNorm, "batchnorm_fwd_eval")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(gamma).arg(beta).arg(running_mean).arg(running_var).arg(y);
        // SAFETY: matches batchnorm_fwd_eval's seven arguments; lengths checked above.
        drv("batchnorm_fwd_eval", unsafe { l.launch(elementwise(n * c * hw)) }).map(|_| ())
    }

    /// Backward of the training forward (as `cpu::batchnorm2d_backward`).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_backward(
        &self,
        x: &CudaView<'_, f32>,
        dy: &CudaView<'_, f32>,
        n: usize,
        c: usize,
        hw: usize,
        gamma: &CudaView<'_, f32>,
        save_mean: &CudaView<'_, f32>,
        save_invstd: &CudaView<'_, f32>,
        dx: &mut CudaViewMut<'_, f32>,
        dgamma: &mut CudaViewMut<'_, f32>,
        dbeta: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::bn_params(n, c, hw, 0.0, 0.0)?;
        for (what, len) in [("batchnorm x", x.len()), ("batchnorm dy", dy.len()), ("batchnorm dx", dx.len())] {
            check_len(what, len, n * c * hw)?;
        }
        for (what, len) in [
            ("gamma", gamma.len()),
            ("save_mean", save_mean.len()),
            ("save_invstd", save_invstd.len()),
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
        ] {
            check_len(what, len, c)?;
        }
        if c == 0 || n * hw == 0 {
            return Ok(());
        }
        let f = self.function(Family::BatchNorm, "batchnorm_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(dy).arg(gamma).arg(save_mean).arg(save_invstd).arg(dx).arg(dgamma).arg(dbeta);
        // SAFETY: matches batchnorm_bwd's nine arguments; one block per channel; lengths checked.
        drv("batchnorm_bwd", unsafe { l.launch(per_channel(c)) }).map(|_| ())
    }

    // ---- activation ------------------------------------------------------------------------------

    /// `y = max(x, 0)`.
    pub fn relu_forward(&self, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
        check_len("relu y", y.len(), x.len())?;
        if x.is_empty() {
            return Ok(());
        }
        let p = EltParams { len: u32_of("relu length", x.len())? };
        let f = self.function(Family::Activation, "relu_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(y);
        // SAFETY: matches relu_fwd(EltParams, const float*, float*); both hold p.len values.
        drv("relu_fwd", unsafe { l.launch(elementwise(x.len())) }).map(|_| ())
    }

    /// `y = max(a + b, 0)`: a residual block's join in one kernel (the sum is not kept).
    pub fn add_relu_forward(&self, a: &CudaView<'_, f32>, b: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
        check_len("add_relu b", b.len(), a.len())?;
        check_len("add_relu y", y.len(), a.len())?;
        if a.is_empty() {
            return Ok(());
        }
        let p = EltParams { len: u32_of("add_relu length", a.len())? };
        let f = self.function(Family::Activation, "add_relu_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(a).arg(b).arg(y);
        // SAFETY: matches add_relu_fwd(EltParams, const float*, const float*, float*); all hold
        // p.len values.
        drv("add_relu_fwd", unsafe { l.launch(elementwise(a.len())) }).map(|_| ())
    }

    /// `dx = dy` where `y > 0`, else 0 (`y` the ReLU output or input).
    pub fn relu_backward(
        &self,
        y: &CudaView<'_, f32>,
        dy: &CudaView<'_, f32>,
        dx: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("relu dy", dy.len(), y.len())?;
        check_len("relu dx", dx.len(), y.len())?;
        if y.is_empty() {
            return Ok(());
        }
        let p = EltParams { len: u32_of("relu length", y.len())? };
        let f = self.function(Family::Activation, "relu_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(y).arg(dy).arg(dx);
        // SAFETY: matches relu_bwd(EltParams, const float*, const float*, float*); all hold p.len.
        drv("relu_bwd", unsafe { l.launch(elementwise(y.len())) }).map(|_| ())
    }

    // ---- dropout ---------------------------------------------------------------------------------

    fn dropout_params(p: f32, len: usize, seed: u64) -> Result<DropoutParams> {
        if !(0.0..1.0).contains(&p) {
            crate::bail!(Cuda, "dropout: p = {p}, expected a probability in [0, 1)");
        }
        Ok(DropoutParams {
            len: u32_of("dropout length", len)?,
            threshold: dropout_threshold(p),
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            // The CPU's factor, computed the same way, so kept values match it bit for bit.
            scale: 1.0 / (1.0 - p),
        })
    }

    /// Inverted dropout (as `cpu::dropout_forward`): each element is dropped with probability `p`
    /// (`y = 0`, `mask = 0`) or kept (`y = x·(1/(1−p))`, `mask = 1`). The decision for element i is a
    /// hash of (`seed`, i) ([`dropout_keeps`]), so the same seed gives the same mask.
    pub fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        mask: &mut CudaViewMut<'_, u8>,
    ) -> Result<()> {
        let prm = Self::dropout_params(p, x.len(), seed)?;
        check_len("dropout y", y.len(), x.len())?;
        check_len("dropout mask", mask.len(), x.len())?;
        if x.is_empty() {
            return Ok(());
        }
        let f = self.function(Family::Dropout, "dropout_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&prm).arg(x).arg(y).arg(mask);
        // SAFETY: matches dropout_fwd(DropoutParams, const float*, float*, u8*); all hold p.len values.
        drv("dropout_fwd", unsafe { l.launch(elementwise(x.len())) }).map(|_| ())
    }

    /// `dx = dy·mask/(1−p)` with the mask of [`Self::dropout_forward`] (as `cpu::dropout_backward`).
    pub fn dropout_backward(
        &self,
        p: f32,
        mask: &CudaView<'_, u8>,
        dy: &CudaView<'_, f32>,
        dx: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let prm = Self::dropout_params(p, dy.len(), 0)?;
        check_len("dropout mask", mask.len(), dy.len())?;
        check_len("dropout dx", dx.len(), dy.len())?;
        if dy.is_empty() {
            return Ok(());
        }
        let f = self.function(Family::Dropout, "dropout_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&prm).arg(mask).arg(dy).arg(dx);
        // SAFETY: matches dropout_bwd(DropoutParams, const u8*, const float*, float*); all hold
        // p.len values.
        drv("dropout_bwd", unsafe { l.launch(elementwise(dy.len())) }).map(|_| ())
    }

    // ---- pooling ---------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn pool_params(n: usize, c: usize, h: usize, w: usize, oh: usize, ow: usize, k: usize, stride: usize, pad: usize) -> Result<PoolParams> {
        u32_of("pool input", n * c * h * w)?;
        u32_of("pool output", n * c * oh * ow)?;
        Ok(PoolParams {
            n: n as u32,
            c: c as u32,
            h: h as u32,
            w: w as u32,
            oh: oh as u32,
            ow: ow as u32,
            kh: u32_of("pool window", k)?,
            kw: k as u32,
            stride: u32_of("pool stride", stride)?,
            pad: u32_of("pool pad", pad)?,
        })
    }

    /// Max pooling forward; `argmax` gets each maximum's index within its input plane (as
    /// `cpu::maxpool2d_forward`).
    pub fn maxpool_forward(
        &self,
        s: &Pool2dShape,
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        argmax: &mut CudaViewMut<'_, u32>,
    ) -> Result<()> {
        if s.stride == 0 {
            crate::bail!(Cuda, "maxpool2d: stride must be positive");
        }
        let p = Self::pool_params(s.n, s.c, s.h, s.w, s.h_out(), s.w_out(), s.k, s.stride, s.pad)?;
        check_len("maxpool x", x.len(), s.n * s.c * s.h * s.w)?;
        check_len("maxpool y", y.len(), s.out_len())?;
        check_len("maxpool argmax", argmax.len(), s.out_len())?;
        if s.out_len() == 0 {
            return Ok(());
        }
        let f = self.function(Family::Pool, "maxpool_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(y).arg(argmax);
        // SAFETY: matches maxpool_fwd(PoolParams, const float*, float*, u32*); lengths checked.
        drv("maxpool_fwd", unsafe { l.launch(elementwise(s.out_len())) }).map(|_| ())
    }

    /// Max pooling backward: each `dy` goes to its argmax cell; `dx` is overwritten.
    pub fn maxpool_backward(
        &self,
        s: &Pool2dShape,
        dy: &CudaView<'_, f32>,
        argmax: &CudaView<'_, u32>,
        dx: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        if s.stride == 0 {
            crate::bail!(Cuda, "maxpool2d: stride must be positive");
        }
        let p = Self::pool_params(s.n, s.c, s.h, s.w, s.h_out(), s.w_out(), s.k, s.stride, s.pad)?;
        check_len("maxpool dy", dy.len(), s.out_len())?;
        check_len("maxpool argmax", argmax.len(), s.out_len())?;
        check_len("maxpool dx", dx.len(), s.n * s.c * s.h * s.w)?;
        if dx.is_empty() {
            return Ok(());
        }
        let f = self.function(Family::Pool, "maxpool_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(dy).arg(argmax).arg(dx);
        // SAFETY: matches maxpool_bwd(PoolParams, const float*, const u32*, float*); the gather
        // visits only outputs inside [0, oh) x [0, ow); lengths checked.
        drv("maxpool_bwd", unsafe { l.launch(elementwise(s.n * s.c * s.h * s.w)) }).map(|_| ())
    }

    /// Adaptive average pooling `[n, c, h, w] → [n, c, oh, ow]` with PyTorch's windows.
    #[allow(clippy::too_many_arguments)]
    pub fn adaptive_avgpool_forward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::pool_params(n, c, h, w, oh, ow, 0, 0, 0)?;
        check_len("adaptive_avgpool x", x.len(), n * c * h * w)?;
        check_len("adaptive_avgpool y", y.len(), n * c * oh * ow)?;
        if y.is_empty() || h == 0 || w == 0 {
            return Ok(());
        }
        let f = self.function(Family::Pool, "adaptive_avgpool_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(y);
        // SAFETY: matches adaptive_avgpool_fwd(PoolParams, const float*, float*); windows stay
        // inside [0, h) x [0, w); lengths checked.
        drv("adaptive_avgpool_fwd", unsafe { l.launch(elementwise(n * c * oh * ow)) }).map(|_| ())
    }

    /// Backward of [`Self::adaptive_avgpool_forward`]; `dx` is overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn adaptive_avgpool_backward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        dy: &CudaView<'_, f32>,
        dx: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let p = Self::pool_params(n, c, h, w, oh, ow, 0, 0, 0)?;
        check_len("adaptive_avgpool dy", dy.len(), n * c * oh * ow)?;
        check_len("adaptive_avgpool dx", dx.len(), n * c * h * w)?;
        if dx.is_empty() {
            return Ok(());
        }
        let f = self.function(Family::Pool, "adaptive_avgpool_bwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(dy).arg(dx);
        // SAFETY: matches adaptive_avgpool_bwd(PoolParams, const float*, float*); lengths checked.
        drv("adaptive_avgpool_bwd", unsafe { l.launch(elementwise(n * c * h * w)) }).map(|_| ())
    }

    // ---- loss and metrics -------------------------------------------------------------------------

    fn check_labels(n: usize, classes: usize, logits: usize, labels: usize) -> Result<XentParams> {
        check_len("logits", logits, n * classes)?;
        check_len("labels", labels, n)?;
        u32_of("logits", n * classes)?;
        Ok(XentParams { n: n as u32, classes: classes as u32, scale: 0.0 })
    }

    /// Mean over the batch of `−log softmax(logits)[label]`; when `dlogits` is given it gets
    /// `(softmax − onehot)/n` (as `cpu::softmax_cross_entropy`). A label `>= classes` makes the
    /// loss NaN (the data layer validates labels first). Waits for the stream to return the loss.
    pub fn softmax_cross_entropy(
        &self,
        logits: &CudaView<'_, f32>,
        n: usize,
        classes: usize,
        labels: &CudaView<'_, u32>,
        dlogits: Option<&mut CudaViewMut<'_, f32>>,
    ) -> Result<f32> {
        let mut p = Self::check_labels(n, classes, logits.len(), labels.len())?;
        if n == 0 || classes == 0 {
            return Ok(0.0);
        }
        let mut probs = self.output::<f32>(n * classes)?;
        let mut rows = self.output::<f32>(n)?;
        let mut out = self.output::<f32>(1)?;
        let f = self.function(Family::Loss, "xent_fwd")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(logits).arg(labels).arg(&mut probs).arg(&mut rows);
        // SAFETY: matches xent_fwd(XentParams, const float*, const u32*, float*, float*); one block
        // per sample; logits/probs hold n*classes values, labels/rows n.
        drv("xent_fwd", unsafe { l.launch(per_row(n)) })?;
        let sp = XentParams { n: n as u32, classes: 1, scale: 1.0 / n as f32 };
        let f = self.function(Family::Loss, "sum_scaled")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&sp).arg(&rows).arg(&mut out);
        // SAFETY: matches sum_scaled(XentParams, const float*, float*); rows holds sp.n values.
        drv("sum_scaled", unsafe { l.launch(per_row(1)) })?;
        if let Some(d) = dlogits {
            check_len("dlogits", d.len(), n * classes)?;
            p.scale = 1.0 / n as f32;
            let f = self.function(Family::Loss, "xent_bwd")?;
            let mut l = self.stream.launch_builder(&f);
            l.arg(&p).arg(&probs).arg(labels).arg(d);
            // SAFETY: matches xent_bwd(XentParams, const float*, const u32*, float*); lengths as above.
            drv("xent_bwd", unsafe { l.launch(elementwise(n * classes)) })?;
        }
        Ok(self.download(&out)?[0])
    }

    /// (top-1, top-5) correct counts; a tie with the label counts as correct (as `cpu::topk_correct`).
    pub fn topk_correct(
        &self,
        logits: &CudaView<'_, f32>,
        n: usize,
        classes: usize,
        labels: &CudaView<'_, u32>,
    ) -> Result<(usize, usize)> {
        let p = Self::check_labels(n, classes, logits.len(), labels.len())?;
        if n == 0 || classes == 0 {
            return Ok((0, 0));
        }
        let mut counts = self.zeros::<u32>(2)?;
        let f = self.function(Family::Loss, "topk_correct")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(logits).arg(labels).arg(&mut counts);
        // SAFETY: matches topk_correct(XentParams, const float*, const u32*, u32*); counts holds 2.
        drv("topk_correct", unsafe { l.launch(elementwise(n)) })?;
        let c = self.download(&counts)?;
        Ok((c[0] as usize, c[1] as usize))
    }

    // ---- optimizer ---------------------------------------------------------------------------------

    /// SGD step, PyTorch semantics: `d = g + wd·w; buf = μ·buf + d; w −= lr·buf`.
    pub fn sgd_step(
        &self,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
        w: &mut CudaViewMut<'_, f32>,
        g: &CudaView<'_, f32>,
        buf: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("sgd gradient", g.len(), w.len())?;
        check_len("sgd momentum buffer", buf.len(), w.len())?;
        if w.is_empty() {
            return Ok(());
        }
        let p = SgdParams { len: u32_of("sgd length", w.len())?, lr, momentum, weight_decay };
        let len = w.len();
        let f = self.function(Family::Optimizer, "sgd_momentum")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(w).arg(g).arg(buf);
        // SAFETY: matches sgd_momentum(SgdParams, float*, const float*, float*); all hold p.len.
        drv("sgd_momentum", unsafe { l.launch(elementwise(len)) }).map(|_| ())
    }

    // ---- compression --------------------------------------------------------------------------------

    /// `cand = weight·g + residual` (paper Eq. 4b scaling by r_i, plus error feedback).
    pub fn pack_weighted(
        &self,
        weight: f32,
        g: &CudaView<'_, f32>,
        residual: &CudaView<'_, f32>,
        cand: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("pack residual", residual.len(), g.len())?;
        check_len("pack candidate", cand.len(), g.len())?;
        if g.is_empty() {
            return Ok(());
        }
        let p = PackParams { len: u32_of("pack length", g.len())?, weight };
        let f = self.function(Family::Pack, "pack_weighted")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(g).arg(residual).arg(cand);
        // SAFETY: matches pack_weighted(PackParams, const float*, const float*, float*); all p.len.
        drv("pack_weighted", unsafe { l.launch(elementwise(g.len())) }).map(|_| ())
    }

    /// `x *= weight` (Eq. 4a).
    pub fn scale_inplace(&self, weight: f32, x: &mut CudaViewMut<'_, f32>) -> Result<()> {
        if x.is_empty() || weight == 1.0 {
            return Ok(());
        }
        let p = PackParams { len: u32_of("scale length", x.len())?, weight };
        let len = x.len();
        let f = self.function(Family::Pack, "scale_inplace")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x);
        // SAFETY: matches scale_inplace(PackParams, float*); x holds p.len values.
        drv("scale_inplace", unsafe { l.launch(elementwise(len)) }).map(|_| ())
    }

    /// `y = weight·x + y` in place (one rounding per element).
    pub fn axpy(&self, weight: f32, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
        check_len("axpy target", y.len(), x.len())?;
        if x.is_empty() {
            return Ok(());
        }
        let p = PackParams { len: u32_of("axpy length", x.len())?, weight };
        let f = self.function(Family::Pack, "axpy")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(y);
        // SAFETY: matches axpy(PackParams, const float*, float*); both hold p.len values.
        drv("axpy", unsafe { l.launch(elementwise(x.len())) }).map(|_| ())
    }

    /// `dense[idx[j]] += scale·val[j]` (indices may repeat; out-of-range ones are skipped).
    pub fn scatter_add(
        &self,
        idx: &CudaView<'_, u32>,
        val: &CudaView<'_, f32>,
        scale: f32,
        dense: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        check_len("scatter values", val.len(), idx.len())?;
        if idx.is_empty() {
            return Ok(());
        }
        let p = ScatterParams { count: u32_of("scatter count", idx.len())?, len: u32_of("scatter target", dense.len())?, scale };
        let f = self.function(Family::Pack, "scatter_add")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(idx).arg(val).arg(dense);
        // SAFETY: matches scatter_add(ScatterParams, const u32*, const float*, float*); the kernel
        // skips indices >= p.len = dense length.
        drv("scatter_add", unsafe { l.launch(elementwise(idx.len())) }).map(|_| ())
    }

    /// `dense[idx[j]] = 0` (clears sent entries of the residual).
    pub fn scatter_zero(&self, idx: &CudaView<'_, u32>, dense: &mut CudaViewMut<'_, f32>) -> Result<()> {
        if idx.is_empty() {
            return Ok(());
        }
        let p = ScatterParams { count: u32_of("scatter count", idx.len())?, len: u32_of("scatter target", dense.len())?, scale: 0.0 };
        let f = self.function(Family::Pack, "scatter_zero")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(idx).arg(dense);
        // SAFETY: matches scatter_zero(ScatterParams, const u32*, float*); indices >= p.len skipped.
        drv("scatter_zero", unsafe { l.launch(elementwise(idx.len())) }).map(|_| ())
    }

    /// The `k` largest-magnitude entries of `x` as (index, value) pairs in increasing index order;
    /// among equal magnitudes the lower indices win. `k` is clamped to `x.len()`.
    pub fn topk(&self, x: &CudaView<'_, f32>, k: usize) -> Result<(CudaSlice<u32>, CudaSlice<f32>)> {
        let k = k.min(x.len());
        let mut idx = self.zeros::<u32>(k.max(1))?;
        let mut val = self.zeros::<f32>(k.max(1))?;
        self.topk_into(x, &mut idx.slice_mut(..k), &mut val.slice_mut(..k))?;
        Ok((idx, val))
    }

    /// [`Self::topk`] into existing views, `k` = their length (at most `x.len()`); queued on the
    /// stream. Indices are relative to `x`.
    pub fn topk_into(&self, x: &CudaView<'_, f32>, idx: &mut CudaViewMut<'_, u32>, val: &mut CudaViewMut<'_, f32>) -> Result<()> {
        let len = x.len();
        let k = idx.len();
        check_len("top-k values", val.len(), k)?;
        if k > len {
            crate::bail!(Cuda, "top-k of {k} values from {len}");
        }
        if k == 0 {
            return Ok(());
        }
        let nblocks = (len as u64).div_ceil(TOPK_CHUNK as u64) as usize;
        let mut p = TopkParams { len: u32_of("top-k length", len)?, k: k as u32, shift: 0, chunk: TOPK_CHUNK, nblocks: nblocks as u32 };
        let mut state = self.upload(&[0u32, 0, k as u32, 0])?;
        let mut hist = self.zeros::<u32>(256)?;
        let mut counts = self.zeros::<u32>(2 * nblocks)?;
        let hist_f = self.function(Family::Topk, "topk_hist")?;
        let pick_f = self.function(Family::Topk, "topk_pick")?;
        for shift in [24u32, 16, 8, 0] {
            p.shift = shift;
            let mut l = self.stream.launch_builder(&hist_f);
            l.arg(&p).arg(x).arg(&state).arg(&mut hist);
            // SAFETY: matches topk_hist(TopkParams, const float*, const u32* state, u32* hist);
            // x holds p.len values, state 4, hist 256.
            drv("topk_hist", unsafe { l.launch(elementwise(len).capped(self.sm_count * 8)) })?;
            let mut l = self.stream.launch_builder(&pick_f);
            l.arg(&p).arg(&mut hist).arg(&mut state);
            // SAFETY: matches topk_pick(TopkParams, u32* hist, u32* state); one block.
            drv("topk_pick", unsafe { l.launch(per_row(1)) })?;
        }
        let chunks = LaunchConfig { grid_dim: (nblocks as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 };
        let f = self.function(Family::Topk, "topk_count")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(&state).arg(&mut counts);
        // SAFETY: matches topk_count(TopkParams, const float*, const u32*, u32*); block b reads
        // x[b*chunk .. min(len, (b+1)*chunk)) and writes counts[2b..2b+2] (2*nblocks allocated).
        drv("topk_count", unsafe { l.launch(chunks) })?;
        let f = self.function(Family::Topk, "topk_scan")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(&mut counts);
        // SAFETY: matches topk_scan(TopkParams, u32*); one block of 1024 threads over nblocks pairs.
        drv("topk_scan", unsafe {
            l.launch(LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 })
        })?;
        let f = self.function(Family::Topk, "topk_compact")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&p).arg(x).arg(&state).arg(&counts).arg(idx).arg(val);
        // SAFETY: matches topk_compact(TopkParams, const float*, const u32*, const u32*, u32*,
        // float*); exactly k elements are selected, at distinct positions < k = idx/val length.
        drv("topk_compact", unsafe { l.launch(chunks) }).map(|_| ())
    }
}

/// Caps the grid of kernels whose per-block setup (a shared histogram flushed with atomics)
/// costs more than a longer grid-stride loop.
trait Capped {
    fn capped(self, cap: usize) -> Self;
}

impl Capped for LaunchConfig {
    fn capped(mut self, cap: usize) -> Self {
        self.grid_dim.0 = self.grid_dim.0.min(cap.max(1) as u32);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host mirror of the kernel's hash drops a fraction p of 2²⁰ elements, within 5σ.
    #[test]
    fn dropout_hash_drops_a_fraction_p() {
        let len = 1u32 << 20;
        for (p, seed) in [(0.5f32, 1u64), (0.1, 2), (0.9, 0xDEAD_BEEF_0000_0001)] {
            let t = dropout_threshold(p);
            let dropped = (0..len).filter(|&i| !dropout_keeps(seed, t, i)).count() as f64 / len as f64;
            let sigma = (p as f64 * (1.0 - p as f64) / len as f64).sqrt();
            assert!((dropped - p as f64).abs() <= 5.0 * sigma, "p = {p}: dropped {dropped}, 5σ = {}", 5.0 * sigma);
        }
    }

    /// Decisions of neighbouring elements and of neighbouring seeds are uncorrelated: the pair
    /// (keep i, keep i+1) and (seed s, seed s+1) agree as often as independent draws would.
    #[test]
    fn dropout_hash_has_no_neighbour_correlation() {
        let (len, p) = (1u32 << 20, 0.5f32);
        let t = dropout_threshold(p);
        let agree_i = (0..len - 1).filter(|&i| dropout_keeps(7, t, i) == dropout_keeps(7, t, i + 1)).count();
        let agree_s = (0..len).filter(|&i| dropout_keeps(7, t, i) == dropout_keeps(8, t, i)).count();
        let five_sigma = 5.0 * (0.25 * len as f64).sqrt();
        for (what, agree) in [("neighbouring elements", agree_i), ("neighbouring seeds", agree_s)] {
            assert!((agree as f64 - 0.5 * len as f64).abs() <= five_sigma, "{what}: {agree} of {len} agree");
        }
    }

    /// p = 0 keeps everything; the threshold is exact at the ends of the range.
    #[test]
    fn dropout_threshold_edges() {
        assert_eq!(dropout_threshold(0.0), 0);
        assert_eq!(dropout_threshold(0.5), 1 << 31);
        assert_eq!(dropout_threshold(0.25), 1 << 30);
        let below_one = f32::from_bits(1.0f32.to_bits() - 1);
        assert_eq!(dropout_threshold(below_one), u32::MAX - 255);
        assert!((0..10_000).all(|i| dropout_keeps(3, 0, i)));
        // The first values of SplitMix64 seeded with 0 (the reference implementation's output).
        assert_eq!(splitmix64(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0, 1), 0x6E78_9E6A_A1B9_65F4);
    }
}
