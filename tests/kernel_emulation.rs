//! Executes every CUDA kernel of `kernels/*.cu` on the CPU, with no GPU, and checks it against an
//! independent double-precision reference.
//!
//! `tests/kernel_emu/harness.cpp` includes the real, unmodified kernel sources after
//! `tests/kernel_emu/shim.h`, which makes them valid C++20: every CUDA thread becomes a fiber,
//! `__syncthreads` the end of a scheduling phase, warp shuffles/ballots and the TF32 `mma.sync` a per-warp
//! exchange (common.cuh's two inline-PTX sites call the shim under `SCADLES_KERNEL_EMU`). Each kernel
//! is launched with the grid, block and parameter struct that `src/backend/cuda/ops.rs` computes,
//! on small shapes chosen to hit partial tiles, padding, strides, split-K, ties and the like.
//! This test compiles the harness with g++, runs it, prints its report (one line per case), fails
//! when any case fails, and checks that every entry point listed in `src/backend/cuda/kernels.rs`
//! (`Family::kernels` and `Family::tensor_core_kernels`) was checked by at least one case.
//!
//! What the emulation cannot show (see shim.h): warp-scheduling effects beyond the perturbed
//! schedules it tries, weak-memory-ordering bugs, races between blocks (blocks run one at a time),
//! and differences between CUDA's math library / tensor-core rounding and the host's, which the
//! tolerances absorb. It complements, and does not replace, a run on a real GPU.
//!
//! Without g++ the test prints "SKIPPED (no g++)" and passes. `SCADLES_EMU_SCHEDULE=free` turns the
//! schedule perturbation off (for diagnosis); the harness also accepts a kernel-name filter when run
//! by hand (`<target>/tmp/kernel_emu_harness conv2d_fwd`).
mod common;
use common::gpu::have_gxx;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scadles::backend::cuda::kernels::Family;

/// Whole-run limit; the harness itself aborts a single launch that hangs for 60 s.
const RUN_LIMIT: Duration = Duration::from_secs(600);


fn compile(root: &Path, exe: &Path) {
    let harness = root.join("tests/kernel_emu/harness.cpp");
    let t = Instant::now();
    let out = Command::new("g++")
        .args(["-std=c++20", "-O2", "-pthread", "-o"])
        .arg(exe)
        .arg(&harness)
        .output()
        .unwrap_or_else(|e| panic!("running g++: {e}"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "g++ failed to compile {}:\n{log}", harness.display());
    if !log.trim().is_empty() {
        println!("g++ warnings:\n{log}");
    }
    println!("compiled {} in {:.1} s", harness.display(), t.elapsed().as_secs_f64());
}

/// Runs the harness to completion (or `RUN_LIMIT`); returns its exit code and stdout + stderr.
fn run(exe: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the harness") {
            break Some(st);
        }
        if t.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !err.is_empty() {
        text.push_str("\n[stderr]\n");
        text.push_str(&err);
    }
    match status {
        Some(st) => (st.code(), text),
        None => {
            text.push_str(&format!("\nkilled after {} s\n", RUN_LIMIT.as_secs()));
            (None, text)
        }
    }
}

/// The value of `[pub(...)] const NAME: u32 = <int>;` or `= <int> << <int>;` in `src`, if present.
fn rust_const(src: &str, name: &str) -> Option<u64> {
    let decl = format!("const {name}: ");
    let line = src.lines().map(str::trim).find(|l| {
        let l = l.strip_prefix("pub(super) ").or_else(|| l.strip_prefix("pub(crate) ")).or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
        l.starts_with(&decl)
    })?;
    let expr = line.split_once('=')?.1.trim().trim_end_matches(';').replace('_', "");
    match expr.split_once("<<") {
        Some((a, b)) => Some(a.trim().parse::<u64>().ok()? << b.trim().parse::<u32>().ok()?),
        None => expr.trim().parse().ok(),
    }
}

#[test]
fn every_kernel_matches_its_reference_under_cpu_emulation() {
    if !have_gxx() {
        println!("SKIPPED (no g++): the CUDA kernels were not executed under CPU emulation");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kernel_emu_harness");
    let t = Instant::now();
    compile(root, &exe);
    let (code, report) = run(&exe);
    println!("{report}");
    println!("kernel emulation: {:.1} s in all (compile included)", t.elapsed().as_secs_f64());

    // Every entry point of kernels.rs must have been checked by at least one case.
    let checked: BTreeSet<&str> =
        report.lines().filter_map(|l| l.strip_prefix("KERNEL ")).filter_map(|l| l.split_whitespace().next()).collect();
    let mut missing = Vec::new();
    for fam in Family::ALL {
        for &name in fam.kernels().iter().chain(fam.tensor_core_kernels()) {
            if !checked.contains(name) {
                missing.push(format!("{name} ({})", fam.file_name()));
            }
        }
    }
    // The launch constants the harness mirrors must still be those of ops.rs.
    let ops = std::fs::read_to_string(root.join("src/backend/cuda/ops.rs")).expect("reading ops.rs");
    let mut drift = Vec::new();
    for line in report.lines().filter_map(|l| l.strip_prefix("CONST ")) {
        let (name, value) = line.split_once(' ').expect("CONST <name> <value>");
        let mirrored: u64 = value.trim().parse().expect("CONST value");
        match rust_const(&ops, name) {
            Some(v) if v == mirrored => {}
            Some(v) => drift.push(format!("{name}: ops.rs has {v}, the harness mirrors {mirrored}")),
            None => println!("note: `const {name}` not found in ops.rs; the harness uses {mirrored}"),
        }
    }
    assert!(drift.is_empty(), "tests/kernel_emu/harness.cpp no longer mirrors ops.rs: {}", drift.join("; "));
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        code == Some(0) && failed.is_empty(),
        "kernel emulation failed (exit {code:?}); failing cases:\n{}",
        failed.join("\n")
    );
    assert!(
        missing.is_empty(),
        "kernels listed in src/backend/cuda/kernels.rs but not checked by tests/kernel_emu/harness.cpp: {}",
        missing.join(", ")
    );
}
