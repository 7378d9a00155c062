//! scripts/lib/detect.sh, the checks setup.sh and test.sh use to decide what to install, run
//! against fake trees and fake tools: each must find the thing the build uses and nothing that only
//! resembles it. The first case is the one that broke a fresh Debian 12 image: ldconfig lists
//! clang's C++ library libclang-cpp.so.14, which the old check took for the libclang bindgen loads.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scadles-detect-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_exe(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let _ = Command::new("chmod").arg("+x").arg(path).status();
}

/// Runs `script` in bash with detect.sh sourced, PATH = `bin` then the system's, and no library
/// search variables from the test's own environment. Returns (success, stdout).
fn detect(bin: &Path, env: &[(&str, &str)], script: &str) -> (bool, String) {
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!(". '{}/scripts/lib/detect.sh'\n{script}", root().display()));
    c.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    for k in ["LIBCLANG_PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "SCADLES_LIBCLANG_DIRS", "MPICC"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("bash");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// A fake tree holding only what Debian 12's base image has: libclang-cpp.so.14 (here a real ELF
/// shared library, so only its name can rule it out), and an ldconfig that lists it.
fn libclang_cpp_only() -> (PathBuf, PathBuf) {
    let d = tmp("clangcpp");
    let (lib, bin) = (d.join("lib"), d.join("bin"));
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(d.join("c.c"), "int clang_createIndex(int a) { return a; }\n").unwrap();
    let ok = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(lib.join("libclang-cpp.so.14")).arg(d.join("c.c")).status().unwrap();
    assert!(ok.success(), "cc -shared failed");
    write_exe(&bin.join("ldconfig"), &format!("echo '\tlibclang-cpp.so.14 (libc6,x86-64) => {}/libclang-cpp.so.14'", lib.display()));
    write_exe(&bin.join("llvm-config"), "exit 1");
    (lib, bin)
}

#[test]
fn libclang_cpp_is_not_the_libclang_bindgen_loads() {
    let (lib, bin) = libclang_cpp_only();
    let dirs = [("SCADLES_LIBCLANG_DIRS", lib.to_str().unwrap())];
    // The old check, in the same environment, wrongly found libclang: this is what the test guards.
    let (old, _) = detect(&bin, &dirs, "ldconfig -p 2>/dev/null | grep -q 'libclang.*\\.so'");
    assert!(old, "the old check should be fooled by libclang-cpp (else this test guards nothing)");
    let (found, out) = detect(&bin, &dirs, "detect_libclang");
    assert!(!found, "libclang-cpp.so.14 was taken for libclang: {out}");

    // A real libclang (any name clang-sys accepts) is found, and a non-ELF file of that name is not.
    std::fs::write(lib.join("libclang.so"), "not a library\n").unwrap();
    assert!(!detect(&bin, &dirs, "detect_libclang").0, "a text file named libclang.so is no library");
    std::fs::copy(lib.join("libclang-cpp.so.14"), lib.join("libclang-14.so.1")).unwrap();
    let (found, out) = detect(&bin, &dirs, "detect_libclang");
    assert!(found && out.ends_with("libclang-14.so.1"), "{out}");
    // A library without the C API is rejected.
    std::fs::write(lib.join("d.c"), "int other(int a) { return a; }\n").unwrap();
    std::fs::remove_file(lib.join("libclang-14.so.1")).unwrap();
    Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(lib.join("libclang.so.13")).arg(lib.join("d.c")).status().unwrap();
    assert!(!detect(&bin, &dirs, "detect_libclang").0, "a library without clang_createIndex is no libclang");
    // LIBCLANG_PATH is the only place searched when set, as in clang-sys.
    let empty = tmp("emptyclang");
    std::fs::copy(lib.join("libclang-cpp.so.14"), lib.join("libclang-15.so.1")).unwrap();
    let (found, _) = detect(&bin, &[dirs[0], ("LIBCLANG_PATH", empty.to_str().unwrap())], "detect_libclang");
    assert!(!found, "LIBCLANG_PATH pointing at an empty folder must not fall back to other folders");
    let (found, out) = detect(&bin, &[("LIBCLANG_PATH", lib.to_str().unwrap())], "detect_libclang");
    assert!(found && out.contains("libclang-15.so.1"), "{out}");
    // clang's builtin headers beside the library.
    std::fs::create_dir_all(lib.join("clang/15.0.0/include")).unwrap();
    std::fs::write(lib.join("clang/15.0.0/include/stddef.h"), "").unwrap();
    let (found, out) = detect(&bin, &[("LIBCLANG_PATH", lib.to_str().unwrap())], "detect_clang_headers");
    assert!(found && out.starts_with(lib.to_str().unwrap()), "{out}");
}

#[test]
fn a_compiler_or_mpi_wrapper_that_cannot_build_is_missing() {
    let d = tmp("tools");
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The real cc links a program.
    assert!(detect(&bin, &[], "detect_cc").0, "cc on this machine should link a program");
    // An mpicc that answers -show but cannot compile (an MPI runtime without its headers).
    write_exe(&bin.join("mpicc"), "[ \"$1\" = -show ] && { echo gcc -I/nonexistent; exit 0; }; exit 1");
    write_exe(&bin.join("mpirun"), "exit 0");
    assert!(!detect(&bin, &[], "detect_mpi").0, "an mpicc that cannot build an MPI program was accepted");
    // A cc that exits 0 without producing a program.
    write_exe(&bin.join("cc"), "exit 0");
    assert!(!detect(&bin, &[], "detect_cc").0, "a cc that builds nothing was accepted");
    // A g++ that is not C++20-capable (here: builds nothing).
    write_exe(&bin.join("g++"), "exit 0");
    assert!(!detect(&bin, &[], "detect_cxx20").0, "a g++ that builds nothing was accepted");
}

#[test]
fn fashion_mnist_needs_all_four_files() {
    let d = tmp("fmnist");
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"];
    for n in &names[..3] {
        std::fs::write(d.join(n), b"x").unwrap();
    }
    let script = format!("detect_fashion_mnist '{}'", d.display());
    assert!(!detect(&bin, &[], &script).0, "three of four files are not the dataset");
    std::fs::write(d.join(names[3]), b"").unwrap();
    assert!(!detect(&bin, &[], &script).0, "an empty file is not the dataset");
    std::fs::write(d.join(names[3]), b"x").unwrap();
    assert!(detect(&bin, &[], &script).0, "gzip and plain files together are the dataset");
}

#[test]
fn setup_searches_openblas_where_build_rs_links_it() {
    let build = std::fs::read_to_string(root().join("scripts/build.rs")).unwrap();
    let start = build.find("dirs.extend(").unwrap();
    let list: Vec<&str> = build[start..build[start..].find(".iter()").unwrap() + start].split('"').skip(1).step_by(2).collect();
    let (ok, out) = detect(Path::new("/nonexistent"), &[], "echo $OPENBLAS_DIRS");
    assert!(ok);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), list, "detect.sh OPENBLAS_DIRS and build.rs search different folders");
}
