//! Helpers for tests that launch MPI jobs: the launcher with the flags this MPI needs, a time
//! limit so that a hang fails the test instead of stalling the suite, and temp directories.
#![allow(dead_code)]
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
