//! Helpers for the tests of `scripts/paper/<id>.sh`: the repository root, reading a file, the files
//! results/paper/README.md names for an item, and running an item's script.
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fresh temporary directory named after `tag` and this process.
pub fn fresh_tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scadles-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The file names in backticks in the files column of README.md's row for `scripts/paper/<id>.sh`
/// (at least three, `table.md` among them).
pub fn readme_files(readme: &str, id: &str) -> Vec<String> {
    let script = format!("`scripts/paper/{id}.sh`");
    let row = readme.lines().find(|l| l.starts_with('|') && l.contains(&script)).unwrap_or_else(|| panic!("results/paper/README.md has no row for {script}"));
    // | item | script | files | ...: cols[0] is empty before the first bar.
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    let files: Vec<String> = cols[3].split('`').skip(1).step_by(2).map(str::to_string).collect();
    assert!(files.len() >= 3 && files.iter().any(|f| f == "table.md"), "{id}: files column {:?}", cols[3]);
    files
}

/// Checks that every file README.md's row names for `id` is in `out` and not empty, that PNGs are
/// PNGs of under 200 kB and SVGs are SVG.
pub fn check_readme_files(out: &Path, id: &str) -> Vec<String> {
    let readme = read(&root().join("results/paper/README.md"));
    let files = readme_files(&readme, id);
    for f in &files {
        let p = out.join(f);
        let len = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{id}: {f}: {e}")).len();
        assert!(len > 0, "{id}: {f} is empty");
        if f.ends_with(".png") {
            let b = std::fs::read(&p).unwrap();
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{id}: {f}");
            assert!(len < 200_000, "{id}: {f} is {len} bytes");
        }
        if f.ends_with(".svg") {
            assert!(read(&p).starts_with("<svg"), "{id}: {f}");
        }
    }
    files
}

/// Runs `scripts/paper/<id>.sh --scale <scale> --out <out>` from the repository root with this
/// build's binary and the given environment (the PAPER_* variables of the caller's shell removed);
/// panics with its output unless it succeeds; returns stdout and stderr together.
pub fn script(id: &str, scale: &str, out: &Path, env: &[(&str, &Path)]) -> String {
    let mut c = Command::new("bash");
    c.arg(root().join(format!("scripts/paper/{id}.sh"))).args(["--scale", scale, "--out"]).arg(out).env("SCADLES_BIN", env!("CARGO_BIN_EXE_scadles")).current_dir(root());
    for v in ["PAPER_RUNS", "PAPER_NONIID", "PAPER_CELLS", "PAPER_EXECUTE", "PAPER_DATA_DIR", "PAPER_NP", "PAPER_ARGS", "TABLE5_MODELS"] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("bash");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{id} --scale {scale}: {text}");
    text
}
