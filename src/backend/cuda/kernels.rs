//! The CUDA kernel sources (embedded in the binary), their run-time compilation with NVRTC for the
//! GPU in hand, and a per-context cache of loaded modules keyed by [`Family`].
//!
//! NVRTC is loaded dynamically (cudarc `dynamic-loading`). When the process was started without it
//! on the library path, [`ensure_nvrtc`] preloads `libnvrtc-builtins.so.13.0` and `libnvrtc.so.13`
//! by absolute path from the first directory that holds them (`SCADLES_NVRTC_DIR`, the CUDA
//! install, the PyTorch venv's wheels, or this repository's `.venv-cuda`).
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{result as nvrtc, Ptx};

use super::probe::quiet_catch;
use crate::error::{Error, Result};

/// The shared header pasted into every kernel file in place of its `#include "common.cuh"`.
pub const COMMON_CUH: &str = include_str!("../../../kernels/common.cuh");

/// One `.cu` file: a family of kernels, forward and backward together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Conv,
    Gemm,
    BatchNorm,
    Pool,
    Activation,
    Dropout,
    Loss,
    Optimizer,
    Topk,
    Pack,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Conv,
        Family::Gemm,
        Family::BatchNorm,
        Family::Pool,
        Family::Activation,
        Family::Dropout,
        Family::Loss,
        Family::Optimizer,
        Family::Topk,
        Family::Pack,
    ];

    /// File name under `kernels/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Family::Conv => "conv.cu",
            Family::Gemm => "gemm.cu",
            Family::BatchNorm => "batchnorm.cu",
            Family::Pool => "pool.cu",
            Family::Activation => "activation.cu",
            Family::Dropout => "dropout.cu",
            Family::Loss => "loss.cu",
            Family::Optimizer => "optimizer.cu",
            Family::Topk => "topk.cu",
            Family::Pack => "pack.cu",
        }
    }

    /// The file's source as embedded, before the header is pasted in.
    pub fn raw_source(self) -> &'static str {
        match self {
            Family::Conv => include_str!("../../../kernels/conv.cu"),
            Family::Gemm => include_str!("../../../kernels/gemm.cu"),
            Family::BatchNorm => include_str!("../../../kernels/batchnorm.cu"),
            Family::Pool => include_str!("../../../kernels/pool.cu"),
            Family::Activation => include_str!("../../../kernels/activation.cu"),
            Family::Dropout => include_str!("../../../kernels/dropout.cu"),
            Family::Loss => include_str!("../../../kernels/loss.cu"),
            Family::Optimizer => include_str!("../../../kernels/optimizer.cu"),
            Family::Topk => include_str!("../../../kernels/topk.cu"),
            Family::Pack => include_str!("../../../kernels/pack.cu"),
        }
    }

    /// Entry points every architecture has.
    pub fn kernels(self) -> &'static [&'static str] {
        match self {
            Family::Conv => &[
                "conv2d_fwd_simt",
                "conv2d_bwd_data_simt",
                "conv2d_bwd_weight_simt",
                "splitk_reduce",
                "bias_fwd",
                "bias_bwd",
            ],
            Family::Gemm => &["gemm_simt"],
            Family::BatchNorm => &["batchnorm_fwd_train", "batchnorm_fwd_eval", "batchnorm_bwd"],
            Family::Pool => &["maxpool_fwd", "maxpool_bwd", "adaptive_avgpool_fwd", "adaptive_avgpool_bwd"],
            Family::Activation => &["relu_fwd", "relu_bwd", "add_relu_fwd"],
            Family::Dropout => &["dropout_fwd", "dropout_bwd"],
            Family::Loss => &["xent_fwd", "xent_bwd", "sum_scaled", "topk_correct"],
            Family::Optimizer => &["sgd_momentum"],
            Family::Topk => &[
                "topk_hist",
                "topk_pick",
                "topk_count",
                "topk_scan",
                "topk_compact",
                "topk_seg_hist",
                "topk_seg_pick",
                "topk_seg_count",
                "topk_seg_compact",
                "topk_seg_sumsq",
            ],
            Family::Pack => &["pack_weighted", "scale_inplace", "axpy", "scatter_add", "scatter_zero"],
        }
    }

    /// Tensor-core entry points, present only when compiled for sm_80 or newer.
    pub fn tensor_core_kernels(self) -> &'static [&'static str] {
        match self {
            Family::Conv => &["conv2d_fwd_tf32", "conv2d_bwd_data_tf32", "conv2d_bwd_weight_tf32"],
            Family::Gemm => &["gemm_tf32"],
            _ => &[],
        }
    }

    /// The complete translation unit handed to NVRTC (no headers needed).
    pub fn source(self) -> String {
        self.raw_source().replace("#include \"common.cuh\"", COMMON_CUH)
    }
}

/// Output of one NVRTC compile: the PTX text and the compiler log (warnings; empty when clean).
#[derive(Debug, Clone)]
pub struct CompiledPtx {
    pub ptx: String,
    pub log: String,
}

/// NVRTC options for `arch` (e.g. `"sm_90"`). Precise division and square root are kept so the
/// kernels match the CPU backend to float rounding.
pub fn nvrtc_options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()]
}

/// Directories searched for `libnvrtc.so.13`, in order.
pub fn nvrtc_dir_candidates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("SCADLES_NVRTC_DIR") {
        v.push(PathBuf::from(d));
    }
    v.push(PathBuf::from("/usr/local/cuda/lib64"));
    for venv in ["/opt/torch/.venv", concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-cuda")] {
        if let Ok(rd) = std::fs::read_dir(Path::new(venv).join("lib")) {
            let mut pys: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            pys.sort();
            for py in pys {
                v.push(py.join("site-packages/nvidia/cu13/lib"));
            }
        }
    }
    v
}

/// First candidate directory that holds both NVRTC libraries.
pub fn find_nvrtc_dir() -> Option<PathBuf> {
    nvrtc_dir_candidates()
        .into_iter()
        .find(|d| d.join("libnvrtc.so.13").exists() && d.join("libnvrtc-builtins.so.13.0").exists())
}

/// Loads the two NVRTC libraries from `dir` by absolute path with RTLD_GLOBAL, builtins first
/// (libnvrtc opens it by name later); cudarc's own load by soname then finds them.
pub fn preload_nvrtc(dir: &Path) -> Result<()> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    for name in ["libnvrtc-builtins.so.13.0", "libnvrtc.so.13"] {
        let p = dir.join(name);
        // SAFETY: loading NVIDIA's NVRTC runs only its library initialisers, which have no
        // preconditions; the handle is leaked on purpose so the library stays loaded for cudarc.
        let lib = unsafe { Library::open(Some(&p), RTLD_NOW | RTLD_GLOBAL) }
            .map_err(|e| Error::Cuda(format!("cannot load {}: {e}", p.display())))?;
        std::mem::forget(lib);
    }
    Ok(())
}

/// Makes sure NVRTC can be used: already loadable by name, or preloaded from [`find_nvrtc_dir`].
/// Returns NVRTC's (major, minor) version.
pub fn ensure_nvrtc() -> Result<(i32, i32)> {
    static DONE: OnceLock<std::result::Result<(i32, i32), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: dlopen probe by soname; never panics and has no other effect.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            let dir = find_nvrtc_dir().ok_or_else(|| {
                "libnvrtc.so.13 not found: set SCADLES_NVRTC_DIR to the directory holding it \
                 (or run scripts/install_nvrtc.sh)"
                    .to_string()
            })?;
            preload_nvrtc(&dir).map_err(|e| e.to_string())?;
        }
        nvrtc_version().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Error::Cuda)
}

/// NVRTC's (major, minor) version. NVRTC must be loadable (see [`ensure_nvrtc`]).
fn nvrtc_version() -> Result<(i32, i32)> {
    let (mut major, mut minor) = (0i32, 0i32);
    quiet_catch(|| {
        // SAFETY: both out-pointers are valid for writes of one c_int.
        unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }.result()
    })
    .map_err(Error::Cuda)?
    .map_err(|e| Error::Cuda(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

fn c_chars_to_string(v: &[c_char]) -> String {
    let bytes: Vec<u8> = v.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Compiles `family` to PTX for `arch` (e.g. `"sm_90"`), returning the PTX and NVRTC's log.
/// A compile error comes back as `Error::Cuda` carrying the log.
pub fn compile(family: Family, arch: &str) -> Result<CompiledPtx> {
    compile_source(family.file_name(), &family.source(), arch)
}

/// Compiles one CUDA translation unit (`name` is used in messages) to PTX for `arch`.
pub fn compile_source(name: &str, source: &str, arch: &str) -> Result<CompiledPtx> {
    ensure_nvrtc()?;
    let src = CString::new(source).map_err(|_| Error::Cuda(format!("{name}: source holds a NUL byte")))?;
    let cname = CString::new(name).map_err(|_| Error::Cuda(format!("{name}: name holds a NUL byte")))?;
    let opts = nvrtc_options(arch);
    let prog =
        nvrtc::create_program(&src, Some(&cname)).map_err(|e| Error::Cuda(format!("nvrtcCreateProgram({name}): {e:?}")))?;
    // SAFETY: `prog` was just created from `src` and `cname`, which outlive it; it is destroyed
    // exactly once, below, after the last use.
    unsafe {
        let status = nvrtc::compile_program(prog, &opts);
        let log = nvrtc::get_program_log(prog).map(|l| c_chars_to_string(&l)).unwrap_or_default();
        let res = match status {
            Ok(()) => nvrtc::get_ptx(prog)
                .map(|p| CompiledPtx { ptx: c_chars_to_string(&p), log })
                .map_err(|e| Error::Cuda(format!("nvrtcGetPTX({name}): {e:?}"))),
            Err(e) => Err(Error::Cuda(format!(
                "NVRTC failed on kernels/{name} for {arch} ({e:?}): {}",
                log.replace('\n', " | ")
            ))),
        };
        let _ = nvrtc::destroy_program(prog);
        res
    }
}

/// Loaded modules of one CUDA context, compiled at first use for that GPU's architecture.
pub struct ModuleCache {
    ctx: Arc<CudaContext>,
    arch: String,
    modules: Mutex<HashMap<Family, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl ModuleCache {
    /// A cache for `ctx`, compiling for `sm_{major}{minor}` of its device.
    pub fn new(ctx: Arc<CudaContext>) -> Result<Self> {
        let (major, minor) =
            ctx.compute_capability().map_err(|e| Error::Cuda(format!("compute capability: {e:?}")))?;
        Ok(ModuleCache {
            ctx,
            arch: format!("sm_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The architecture string the kernels are compiled for, e.g. `"sm_90"`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    fn module(&self, family: Family) -> Result<Arc<CudaModule>> {
        let mut mods = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = mods.get(&family) {
            return Ok(m.clone());
        }
        let compiled = compile(family, &self.arch)?;
        let m = self
            .ctx
            .load_module(Ptx::from_src(compiled.ptx))
            .map_err(|e| Error::Cuda(format!("loading kernels/{} for {}: {e:?}", family.file_name(), self.arch)))?;
        mods.insert(family, m.clone());
        Ok(m)
    }

    /// The kernel `name` of `family`, compiling and loading the family on first use.
    pub fn function(&self, family: Family, name: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(f.clone());
        }
        let f = self
            .module(family)?
            .load_function(name)
            .map_err(|e| Error::Cuda(format!("kernel {name} in kernels/{}: {e:?}", family.file_name())))?;
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).insert(name, f.clone());
        Ok(f)
    }
}
