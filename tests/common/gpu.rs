//! Where a GPU test runs. On a machine with a GPU, in the test's own process. Without one, the
//! same test runs again in a child process on the emulated GPU: `tests/kernel_emu/libcuda.cpp`, an
//! emulated CUDA driver built by `scripts/emulated_gpu.sh` (g++) and put first on the child's
//! `LD_LIBRARY_PATH`, which runs the real kernels of `kernels/*.cu` on the CPU (NVRTC still
//! compiles them; launches, copies and frees are checked against live allocations with guard
//! zones, fresh and freed memory reads as NaN, and stream work is deferred to the latest point CUDA
//! allows). So every GPU test body runs in CI. Only without g++ does a GPU test report `SKIPPED`
//! and pass.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

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

/// Whether g++ runs (it builds the kernel emulator and the emulated GPU).
pub fn have_gxx() -> bool {
    Command::new("g++").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The directory holding the emulated `libcuda.so.1`, built (once per process, and only when its
/// sources changed) by `scripts/emulated_gpu.sh`. `None` without g++ or without the sources (a
/// test binary carried to another machine).
pub fn driver() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("scripts/emulated_gpu.sh");
        if !script.is_file() || !root.join("tests/kernel_emu/libcuda.cpp").is_file() || !have_gxx() {
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emulated-gpu");
        let t = std::time::Instant::now();
        let out = Command::new(&script).arg(&dir).output().expect("running scripts/emulated_gpu.sh");
        assert!(out.status.success(), "scripts/emulated_gpu.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let built = String::from_utf8_lossy(&out.stdout).lines().last().map(PathBuf::from).expect("the script prints the directory");
        assert!(built.join("libcuda.so.1").is_file(), "no libcuda.so.1 in {}", built.display());
        eprintln!("emulated CUDA driver ready in {:.1} s: {}", t.elapsed().as_secs_f64(), built.display());
        Some(built)
    })
    .clone()
}
