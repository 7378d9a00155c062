//! Finds a CBLAS to link for the CPU GEMM. OpenBLAS is linked statically when its archive is
//! found (no runtime dependency beyond libgfortran); otherwise the crate falls back to the
//! pure-Rust matrixmultiply path of ndarray (about half the speed, see README).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=SCADLES_OPENBLAS_DIR");
    println!("cargo:rerun-if-env-changed=SCADLES_NO_BLAS");
    println!("cargo::rustc-check-cfg=cfg(scadles_blas)");
    if std::env::var_os("SCADLES_NO_BLAS").is_some() {
        return;
    }
    let mut dirs: Vec<String> = Vec::new();
    if let Ok(d) = std::env::var("SCADLES_OPENBLAS_DIR") {
        dirs.push(d);
    }
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu/openblas-pthread",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/local/lib",
            "/opt/OpenBLAS/lib",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for d in &dirs {
        if Path::new(d).join("libopenblas.a").exists() {
            println!("cargo:rustc-link-search=native={d}");
            println!("cargo:rustc-link-lib=static=openblas");
            println!("cargo:rustc-link-lib=dylib=gfortran");
            println!("cargo:rustc-cfg=scadles_blas");
            return;
        }
    }
    for d in &dirs {
        if Path::new(d).join("libopenblas.so").exists() {
            println!("cargo:rustc-link-search=native={d}");
            println!("cargo:rustc-link-lib=dylib=openblas");
            println!("cargo:rustc-cfg=scadles_blas");
            return;
        }
    }
    println!("cargo:warning=OpenBLAS not found: using the pure-Rust GEMM (slower). Install libopenblas-dev for full CPU speed.");
}
