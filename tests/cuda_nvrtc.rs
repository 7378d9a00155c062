//! Compiles every kernel file with NVRTC 13.0 for sm_90 (the H100/H200 target) and for sm_75
//! (no tensor cores), with no GPU needed. Fails on any compile error or warning, on a PTX ISA
//! other than 9.0 (what a CUDA 13.0 / R580 driver loads), and on a missing entry point.
//!
//! NVRTC comes from `SCADLES_NVRTC_DIR`, else this repository's `.venv-cuda` (made by
//! `scripts/install_nvrtc.sh`), else a CUDA install. Without it the test fails, unless
//! `SCADLES_ALLOW_NO_NVRTC=1`, which turns the failure into a visible SKIPPED line.
use scadles::backend::cuda::kernels::{compile, compile_source, ensure_nvrtc, find_nvrtc_dir, preload_nvrtc, Family};

/// Loads the pinned NVRTC, or returns None when the test is allowed to skip.
fn nvrtc_or_skip() -> Option<()> {
    match find_nvrtc_dir() {
        Some(dir) => {
            preload_nvrtc(&dir).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("NVRTC from {}", dir.display());
        }
        None => {
            if std::env::var("SCADLES_ALLOW_NO_NVRTC").as_deref() == Ok("1") {
                skipped("SKIPPED (no NVRTC; SCADLES_ALLOW_NO_NVRTC=1): kernels were not compiled");
                return None;
            }
            panic!(
                "libnvrtc.so.13 not found: run scripts/install_nvrtc.sh (or set SCADLES_NVRTC_DIR), \
                 or set SCADLES_ALLOW_NO_NVRTC=1 to skip this test"
            );
        }
    }
    let (major, minor) = ensure_nvrtc().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((major, minor), (13, 0), "NVRTC {major}.{minor} loaded; the kernels are pinned to 13.0 (PTX ISA 9.0)");
    Some(())
}

/// Names of the `.entry` functions in a PTX text.
fn entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| l.trim_start().strip_prefix(".visible .entry "))
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn every_kernel_compiles_for_sm90_without_warnings() {
    if nvrtc_or_skip().is_none() {
        return;
    }
    let mut failures = Vec::new();
    for fam in Family::ALL {
        let t = std::time::Instant::now();
        let out = match compile(fam, "sm_90") {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: {e}", fam.file_name()));
                continue;
            }
        };
        if out.log.to_lowercase().contains("warning") {
            failures.push(format!("{}: warnings:\n{}", fam.file_name(), out.log));
        }
        if !out.ptx.lines().any(|l| l.trim() == ".version 9.0") {
            failures.push(format!("{}: PTX is not `.version 9.0`", fam.file_name()));
        }
        if !out.ptx.lines().any(|l| l.trim() == ".target sm_90") {
            failures.push(format!("{}: PTX is not `.target sm_90`", fam.file_name()));
        }
        let have = entries(&out.ptx);
        for want in fam.kernels().iter().chain(fam.tensor_core_kernels()) {
            if !have.iter().any(|h| h == want) {
                failures.push(format!("{}: entry point {want} missing (have {have:?})", fam.file_name()));
            }
        }
        if !fam.tensor_core_kernels().is_empty() && !out.ptx.contains("mma.sync.aligned.m16n8k8") {
            failures.push(format!("{}: no tensor-core mma instruction in the sm_90 PTX", fam.file_name()));
        }
        eprintln!("{:<14} {:>3} kernels  {:>7} bytes PTX  {:>4} ms", fam.file_name(), have.len(), out.ptx.len(), t.elapsed().as_millis());
    }
    assert!(failures.is_empty(), "NVRTC sm_90 failures:\n{}", failures.join("\n"));
}

/// Pre-Ampere GPUs get the SIMT kernels only: the tensor-core entry points must compile away.
#[test]
fn sm75_build_has_no_tensor_core_kernels() {
    if nvrtc_or_skip().is_none() {
        return;
    }
    for fam in [Family::Gemm, Family::Conv] {
        let out = compile(fam, "sm_75").unwrap_or_else(|e| panic!("{e}"));
        let have = entries(&out.ptx);
        for want in fam.kernels() {
            assert!(have.iter().any(|h| h == want), "{}: {want} missing for sm_75", fam.file_name());
        }
        for tc in fam.tensor_core_kernels() {
            assert!(!have.iter().any(|h| h == tc), "{}: {tc} present for sm_75", fam.file_name());
        }
        assert!(!out.ptx.contains("mma.sync"), "{}: mma in sm_75 PTX", fam.file_name());
    }
}

/// The checks above can fail: a warning reaches the log and an error comes back as `Err` with
/// NVRTC's message, not as a panic.
#[test]
fn warnings_and_errors_are_reported() {
    if nvrtc_or_skip().is_none() {
        return;
    }
    let warn = "extern \"C\" __global__ void k(float* y) { int unused = 3; y[0] = 1.0f; }";
    let out = compile_source("warn.cu", warn, "sm_90").unwrap_or_else(|e| panic!("{e}"));
    assert!(out.log.contains("warning") && out.log.contains("unused"), "log: {:?}", out.log);
    let bad = "extern \"C\" __global__ void k(float* y) { y[0] = undefined_name; }";
    let e = compile_source("bad.cu", bad, "sm_90").unwrap_err().to_string();
    assert!(e.contains("bad.cu") && e.contains("undefined_name"), "{e}");
}

/// Writes straight to the process's stderr, which the test harness does not capture, so the
/// line shows in a plain `cargo test` run.
fn skipped(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
