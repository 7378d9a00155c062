//! Where a GPU test runs. On a machine with a GPU, in the test's own process. Without one, the
//! same test runs again in a child process on the emulated GPU: `tests/kernel_emu/libcuda.cpp`,
//! an emulated CUDA driver built here with g++ and put first on the child's `LD_LIBRARY_PATH`,
//! which runs the real kernels of `kernels/*.cu` on the CPU (NVRTC still compiles them; launches,
//! copies and frees are checked against live allocations with guard zones, fresh and freed memory
//! reads as NaN, and stream work is deferred to the latest point CUDA allows). So every GPU test
//! body runs in CI. Only without g++ does a GPU test report `SKIPPED` and pass.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use scadles::backend::cuda::kernels::Family;

/// Set in a child process that runs a test on the emulated GPU.
pub const EMULATED: &str = "SCADLES_TEST_EMULATED_GPU";
/// Set (to anything) to skip GPU tests instead of emulating the GPU: `scripts/gpu_check.sh` does,
/// so that a GPU machine whose GPU is not usable reports SKIPPED rather than emulated results.
pub const NO_EMULATION: &str = "SCADLES_TEST_NO_EMULATED_GPU";

/// Whether this process runs on the emulated GPU.
pub fn emulated() -> bool {
    std::env::var_os(EMULATED).is_some()
}

/// For a test that needs a GPU: `true` when this process has one (a real GPU, or the emulated one
/// it was started with) and the test body should go on. Otherwise runs the calling test (found by
/// its thread's name) in a child process on the emulated GPU, prints the child's output, fails
/// unless the child ran the test and passed, and returns `false`; without g++ to build the
/// emulated driver it prints `SKIPPED (no GPU): <label> (...)` and returns `false`.
pub fn here(label: &str) -> bool {
    let why = match scadles::backend::cuda::probe() {
        Ok(_) => return true,
        Err(why) => why,
    };
    assert!(!emulated(), "{label}: the emulated GPU is not usable: {why}");
    if std::env::var_os(NO_EMULATION).is_some() {
        eprintln!("SKIPPED (no GPU; {NO_EMULATION} is set): {label} ({why})");
        return false;
    }
    let Some(dir) = driver() else {
        eprintln!("SKIPPED (no GPU, and no g++ or emulator sources to build the emulated one): {label} ({why})");
        return false;
    };
    let current = std::thread::current();
    let test = current.name().filter(|n| *n != "main").expect("GPU tests run on libtest's named test threads");
    let mut path = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        path.push(":");
        path.push(old);
    }
    let mut c = Command::new(std::env::current_exe().expect("the test binary's path"));
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(EMULATED, "1").env("LD_LIBRARY_PATH", path);
    let o = super::run_with_limit(c, Duration::from_secs(1800));
    let (so, se) = super::text(&o);
    eprintln!("---- {test} on the emulated GPU (no GPU here: {why}) ----\n{so}\n{se}\n---- end of {test} ----");
    assert!(o.status.success(), "{test} failed on the emulated GPU");
    assert!(so.contains("1 passed"), "{test}: the child process did not run the test");
    assert!(!so.contains("SKIPPED") && !se.contains("SKIPPED"), "{test}: the child process skipped the test");
    false
}

fn have_gxx() -> bool {
    Command::new("g++").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The directory holding the emulated `libcuda.so.1` (and `libcuda.so`), built once per set of
/// sources: the directory name is a hash of the emulator's and the kernels' sources and of the
/// kernel list, so a change to any of them builds a new one. `None` without g++ or without the
/// sources (a test binary carried to another machine).
pub fn driver() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel_emu/libcuda.cpp");
    DIR.get_or_init(|| (sources.exists() && have_gxx()).then(build)).clone()
}

fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names: String = Family::ALL
        .iter()
        .flat_map(|f| f.kernels().iter().chain(f.tensor_core_kernels()))
        .map(|k| format!("EMU_KERNEL({k})\n"))
        .collect();
    let mut sources = vec![root.join("tests/kernel_emu/shim.h"), root.join("tests/kernel_emu/libcuda.cpp")];
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(root.join("kernels"))
        .expect("reading kernels/")
        .map(|e| e.expect("kernels/ entry").path())
        .collect();
    kernels.sort();
    sources.extend(kernels);
    let mut h = DefaultHasher::new();
    names.hash(&mut h);
    for s in &sources {
        std::fs::read(s).unwrap_or_else(|e| panic!("reading {}: {e}", s.display())).hash(&mut h);
    }
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(format!("emulated-gpu-{:016x}", h.finish()));
    if dir.join("libcuda.so.1").exists() {
        return dir;
    }
    // Built in a private directory, then renamed into place, so that concurrent test binaries
    // never load a half-written library.
    let tmp = base.join(format!("emulated-gpu-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("creating the emulated driver's build directory");
    std::fs::write(tmp.join("kernel_names.h"), names).expect("writing kernel_names.h");
    let t = std::time::Instant::now();
    let out = Command::new("g++")
        // Built and run on this machine, so -march=native is safe; contraction stays off so that
        // arithmetic rounds as written (explicit fmaf calls become FMA instructions).
        .args(["-std=c++20", "-O2", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-fvisibility=hidden", "-pthread", "-I"])
        .arg(&tmp)
        .arg("-o")
        .arg(tmp.join("libcuda.so.1"))
        .arg(root.join("tests/kernel_emu/libcuda.cpp"))
        .output()
        .expect("running g++");
    assert!(out.status.success(), "g++ failed to build the emulated CUDA driver:\n{}", String::from_utf8_lossy(&out.stderr));
    std::os::unix::fs::symlink("libcuda.so.1", tmp.join("libcuda.so")).expect("linking libcuda.so");
    eprintln!("built the emulated CUDA driver in {:.1} s", t.elapsed().as_secs_f64());
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process got there first; its library is the same.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}
