//! Helpers for tests that launch MPI jobs: the launcher with the flags this MPI needs, a time
//! limit so that a hang fails the test instead of stalling the suite, and temp directories.
#![allow(dead_code)]
pub mod gpu;
pub mod paper;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpirun -np N` plus Open MPI's root/oversubscribe flags when that is the MPI on PATH.
pub fn mpirun(np: usize) -> Command {
    let launcher = std::env::var("MPIRUN").unwrap_or_else(|_| "mpirun".into());
    let version = Command::new(&launcher).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).to_lowercase()).unwrap_or_default();
    let mut c = Command::new(&launcher);
    if version.contains("open mpi") || version.contains("openrte") || version.contains("prte") {
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1").arg("--oversubscribe");
    }
    c.arg("-np").arg(np.to_string());
    c
}

/// Runs `cmd` to completion or kills it after `limit` (then panics: a hang is a failure).
pub fn run_with_limit(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn mpirun");
    let start = Instant::now();
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let te = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Output { status, stdout: to.join().unwrap(), stderr: te.join().unwrap() };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&te.join().unwrap()).to_string();
            panic!("the MPI job did not finish within {limit:?} (a rank hung?); stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scadles-{tag}-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scadles")
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

/// The end of an MPI child test: the ranks agree on whether any collected `fails` exist, each
/// prints its own, each prints `ok_mark` only when no rank failed (so a run that selected no test
/// cannot pass), MPI is finalised on every rank, and the process exits 1 when any rank failed.
pub fn finish_child(world: &scadles::dist::World, fails: &[String], ok_mark: &str) {
    let any = world.any(!fails.is_empty());
    for f in fails {
        eprintln!("rank {}: {f}", world.rank());
    }
    if !any {
        println!("{ok_mark} rank {}", world.rank());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    world.barrier();
    // The process-wide universe is never dropped; without MPI_Finalize, MPICH's launcher treats the
    // first rank to exit as a failure and kills the others mid-output.
    scadles::dist::World::finalize();
    if any {
        std::process::exit(1);
    }
}

/// Asserts |got − want| ≤ atol + rtol·|want| everywhere (GPU `got` against CPU `want`); lists the
/// first 8 mismatches. A NaN or infinite value fails unless `same_nonfinite` is set and both sides
/// hold the same value (or both NaN).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32, same_nonfinite: bool) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = Vec::new();
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        worst = worst.max(if err.is_nan() { f32::INFINITY } else { err });
        // NaN fails the comparison.
        let ok = err <= atol + rtol * w.abs() || (same_nonfinite && (g == w || (g.is_nan() && w.is_nan())));
        if !ok {
            bad.push(format!("[{i}] gpu {g} cpu {w}"));
        }
    }
    assert!(bad.is_empty(), "{what}: {} mismatches (max |err| {worst}), first: {}", bad.len(), bad[..bad.len().min(8)].join(", "));
    eprintln!("{what}: ok, max |err| {worst:.3e} over {} values", got.len());
}

/// Asserts, for every named range (a parameter tensor), that all values are finite and that
/// ‖got − want‖₂ / ‖want‖₂ ≤ `bound`; prints the worst tensor. For whole-model gradients where an
/// elementwise bound is meaningless: a freshly initialised ResNet with BatchNorm over few values
/// flips ReLUs under rounding-level changes, which moves single elements by tens of percent while
/// every tensor stays within about 1e-2 (see tests/conv_algorithms.rs); a wrongly computed or
/// routed layer is off by O(1).
/// ‖got − want‖₂ / ‖want‖₂, in f64; ‖got‖₂ when `want` is all zero.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "rel_l2: lengths");
    let num: f64 = got.iter().zip(want).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    if den > 0.0 {
        (num / den).sqrt()
    } else {
        num.sqrt()
    }
}

pub fn assert_tensors_close(what: &str, got: &[f32], want: &[f32], tensors: &[(String, std::ops::Range<usize>)], bound: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, "");
    let mut bad = Vec::new();
    for (name, r) in tensors {
        let (g, w) = (&got[r.clone()], &want[r.clone()]);
        assert!(g.iter().all(|v| v.is_finite()), "{what}: {name} holds a non-finite value");
        let e = rel_l2(g, w);
        if e > worst.0 {
            worst = (e, name);
        }
        if e > bound {
            bad.push(format!("{name} {e:.2e}"));
        }
    }
    assert!(bad.is_empty(), "{what}: {} tensors beyond {bound:e} (relative L2): {}", bad.len(), bad.join(", "));
    eprintln!("{what}: ok, worst tensor {} {:.2e} (relative L2) of {} tensors", worst.1, worst.0, tensors.len());
}
