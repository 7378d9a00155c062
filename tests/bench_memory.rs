//! `scadles bench memory` at tiny sizes: one table row per cell, the peak grows with the batch,
//! Adam's extra moment shows in the baseline, and the CSV parses.
use std::process::Command;

const CLASSES: &str = "32768";

#[test]
fn memory_bench_measures_each_cell_in_its_own_process() {
    let dir = std::env::temp_dir().join(format!("scadles-bench-memory-{}", std::process::id()));
    let csv = dir.join("mem.csv");
    // A wide head (32768 classes, about 2.1 M parameters) makes Adam's second moment (8.5 MB)
    // stand well above the run-to-run jitter of the baseline.
    let out = Command::new(env!("CARGO_BIN_EXE_scadles"))
        .args([
            "bench",
            "memory",
            "--model",
            "tinycnn_bn",
            "--shape",
            "cifar",
        ])
        .args([
            "--num-classes",
            CLASSES,
            "--batch",
            "8,64",
            "--optimizer",
            "sgd,adam",
        ])
        .args(["--threads", "1", "--csv", csv.to_str().unwrap()])
        .output()
        .expect("run scadles");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench memory failed:\n{stdout}\n{stderr}"
    );

    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("tinycnn_bn"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "one row per cell:\n{stdout}");

    let text = std::fs::read_to_string(&csv).expect("the CSV was written");
    std::fs::remove_dir_all(&dir).ok();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("model,shape,batch,optimizer,peak_mib,baseline_mib,params")
    );
    struct Row {
        batch: usize,
        opt: String,
        peak: f64,
        baseline: f64,
        params: usize,
    }
    let cells: Vec<Row> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "{l}");
            assert_eq!((f[0], f[1]), ("tinycnn_bn", "cifar"));
            Row {
                batch: f[2].parse().unwrap(),
                opt: f[3].to_string(),
                peak: f[4].parse().unwrap(),
                baseline: f[5].parse().unwrap(),
                params: f[6].parse().unwrap(),
            }
        })
        .collect();
    assert_eq!(cells.len(), 4, "{text}");
    let get = |b: usize, o: &str| cells.iter().find(|c| c.batch == b && c.opt == o).unwrap();
    for o in ["sgd", "adam"] {
        let (small, big) = (get(8, o), get(64, o));
        assert!(
            small.peak > small.baseline,
            "{o}: the steps add to the baseline"
        );
        // 56 more 3×32×32 samples through 32-channel feature maps: several MiB of activations.
        assert!(
            big.peak > small.peak + 5.0,
            "{o}: peak {} at 64 vs {} at 8",
            big.peak,
            small.peak
        );
    }
    let params = get(8, "sgd").params;
    assert!(params > 2_000_000, "{params}");
    let moment_mib = params as f64 * 4.0 / (1 << 20) as f64;
    for b in [8, 64] {
        let extra = get(b, "adam").baseline - get(b, "sgd").baseline;
        // Identical processes' baselines differ by up to about 0.3 MiB from run to run (thread
        // start-up, heap layout); 15% of the 8.1 MiB moment is 1.2 MiB, four times that.
        assert!(
            (extra - moment_mib).abs() < 0.15 * moment_mib,
            "batch {b}: adam's baseline exceeds sgd's by {extra:.2} MiB, expected {moment_mib:.2} MiB"
        );
    }
}

#[test]
fn memory_bench_refuses_bad_arguments_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_scadles"))
        .args(["bench", "memory", "--model", "nosuchnet", "--batch", "8"])
        .output()
        .expect("run scadles");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nosuchnet"), "{err}");
}

#[test]
fn memory_bench_skips_what_would_not_fit_one_line_per_cell() {
    // A bound of a millionth of MemAvailable (a few KiB) leaves no cell room.
    let out = Command::new(env!("CARGO_BIN_EXE_scadles"))
        .args([
            "bench",
            "memory",
            "--model",
            "tinycnn_bn",
            "--batch",
            "8,16,32",
        ])
        .args([
            "--optimizer",
            "sgd",
            "--threads",
            "1",
            "--mem-fraction",
            "0.000001",
        ])
        .output()
        .expect("run scadles");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("tinycnn_bn")),
        "{stdout}"
    );
    let skips: Vec<&str> = stderr.lines().filter(|l| l.contains("skip")).collect();
    assert_eq!(skips.len(), 3, "{stderr}");
    assert!(
        skips[0].contains("batch 8 sgd") && skips[0].contains("MemAvailable"),
        "{}",
        skips[0]
    );
}
