//! A short training run of the `scadles` binary under mpirun on the real Fashion-MNIST files of
//! the installed package (no `--data-dir`), and its one-line error for a bad data folder.
mod common;
use common::*;
use std::time::{Duration, Instant};

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

#[test]
fn tinycnn_learns_fashion_mnist_under_four_ranks() {
    let dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/setup.sh (it installs Debian's dataset-fashion-mnist)",
        dir.display()
    );
    let out = tmpdir("fmnist-train");
    let mut c = mpirun(4);
    c.arg(bin()).arg("train").args([
        "--dataset",
        "fashion-mnist",
        "--model",
        "tinycnn",
        "--policy",
        "ddl",
        "--rates",
        "100,100,100,100",
        "--batch",
        "32",
        "--steps",
        "300",
        "--lr",
        "0.05",
        "--milestones",
        "1000",
        "--eval-every",
        "100",
        "--eval-samples",
        "2000",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t0 = Instant::now();
    let o = run_with_limit(c, Duration::from_secs(300));
    let wall = t0.elapsed().as_secs_f64();
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s = read_json(&out.join("summary.json"));
    let top1 = s["final_top1"].as_f64().unwrap();
    eprintln!("fashion-mnist, tinycnn, 4 ranks, 300 steps: top1 {top1} on the first 2000 test images in {wall:.1} s");
    // Chance is 0.10; a model that never sees the right pixels with the right labels stays near it.
    // This run reaches about 0.73 (0.67 after 200 steps).
    assert!(
        top1 >= 0.60,
        "tinycnn should learn Fashion-MNIST well above chance, got top1 {top1}"
    );
    let evals = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    let first: f64 = evals
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first < top1,
        "accuracy should climb: first eval {first}, final {top1}"
    );
    assert_eq!(s["ranks"], 4);
    assert_eq!(s["steps"], 300);
    // A Fashion-MNIST sample is a 3,072-byte 32×32×3 image, like a CIFAR one.
    assert_eq!(
        s["max_buffer_bytes"].as_u64().unwrap(),
        s["max_buffer_samples"].as_u64().unwrap() * 3072
    );
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["dataset"], "fashion-mnist");
    assert_eq!(cfg["data_dir"], serde_json::Value::Null);
    assert!(!se.contains("panicked"), "{se}");
}

#[test]
fn a_bad_fashion_mnist_folder_stops_every_rank_with_one_line() {
    let dir = tmpdir("fmnist-bad");
    // The four files, the test labels cut short.
    let px = vec![1u8; 4 * 784];
    scadles::data::write_fashion_mnist(
        &dir,
        (&px, &[0, 1, 2, 3]),
        (&px[..2 * 784], &[4, 5]),
        false,
    )
    .unwrap();
    let victim = dir.join("t10k-labels-idx1-ubyte");
    std::fs::write(&victim, &std::fs::read(&victim).unwrap()[..9]).unwrap();
    let out = tmpdir("fmnist-bad-out");
    let mut c = mpirun(2);
    c.arg(bin()).arg("train").args([
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = run_with_limit(c, Duration::from_secs(120));
    let (so, se) = text(&o);
    assert!(!o.status.success(), "stdout:{so}\nstderr:{se}");
    let ours: Vec<&str> = se
        .lines()
        .filter(|l| l.starts_with("scadles: error:"))
        .collect();
    assert_eq!(ours.len(), 1, "one error line, printed once; stderr:\n{se}");
    assert!(
        ours[0].contains(&format!("{}: truncated", victim.display())),
        "{}",
        ours[0]
    );
    assert!(!se.contains("panicked"), "{se}");
}
