//! End-to-end runs of the `scadles` binary under mpirun: learning, outputs, and bad input ending
//! every rank with a one-line error.
mod common;
use common::*;
use std::time::Duration;

fn train(np: usize, args: &[&str]) -> std::process::Output {
    let mut c = mpirun(np);
    c.arg(bin()).arg("train").args(args);
    run_with_limit(c, Duration::from_secs(600))
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn tinycnn_learns_synthetic_under_two_ranks_and_writes_the_run_directory() {
    let out = tmpdir("learn");
    let o = train(2, &[
        "--model", "tinycnn", "--policy", "ddl", "--rates", "200,200", "--batch", "32", "--steps", "200",
        "--lr", "0.05", "--eval-every", "50", "--synthetic-train", "6000", "--synthetic-test", "1000",
        "--milestones", "1000", "--out", out.to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s = read_json(&out.join("summary.json"));
    let top1 = s["final_top1"].as_f64().unwrap();
    // 10 classes: chance is 0.10.
    assert!(top1 > 0.35, "tinycnn should learn well above chance, got top1 {top1}");
    assert!(s["final_top5"].as_f64().unwrap() >= top1);
    assert_eq!(s["ranks"], 2);
    assert_eq!(s["steps"], 200);
    assert_eq!(s["model"], "tinycnn");
    assert!(s["images_per_s"].as_f64().unwrap() > 0.0);
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["num_classes"], 10);
    assert_eq!(cfg["batch"], 32);
    let steps = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 201, "header + one row per step");
    assert!(steps.lines().next().unwrap().starts_with("step,epoch,loss,lr,"));
    // DDL: every step has the fixed global batch 2·32.
    let row: Vec<&str> = steps.lines().nth(5).unwrap().split(',').collect();
    assert_eq!(row[5], "64");
    let evals = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    assert_eq!(evals.lines().count(), 1 + 4);
    assert!(!se.contains("panicked"), "{se}");
}

fn expect_one_line_error(np: usize, args: &[&str], needle: &str) {
    let o = train(np, args);
    let (so, se) = text(&o);
    assert!(!o.status.success(), "{args:?} should fail\nstdout:{so}\nstderr:{se}");
    let ours: Vec<&str> = se.lines().filter(|l| l.starts_with("scadles: error:")).collect();
    assert_eq!(ours.len(), 1, "exactly one error line (printed once, by rank 0) for {args:?}; stderr:\n{se}");
    assert!(ours[0].contains(needle), "error for {args:?} should mention '{needle}': {}", ours[0]);
    assert!(!se.contains("panicked"), "{se}");
}

#[test]
fn bad_input_gives_one_line_error_and_every_rank_ends() {
    let out = tmpdir("bad");
    let o = out.to_str().unwrap();
    expect_one_line_error(2, &["--model", "resnet9", "--out", o], "unknown model 'resnet9'");
    expect_one_line_error(2, &["--batch", "0", "--out", o], "--batch");
    expect_one_line_error(2, &["--lr", "-0.1", "--out", o], "--lr");
    expect_one_line_error(2, &["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar", "--out", o], "/nonexistent/cifar");
    expect_one_line_error(2, &["--dataset", "cifar10", "--out", o], "--data-dir");
    expect_one_line_error(2, &["--bogus-flag", "3"], "--bogus-flag");
    expect_one_line_error(3, &["--config", "/nonexistent/run.toml"], "/nonexistent/run.toml");
}

#[test]
fn stream_settings_are_validated_before_training() {
    let out = tmpdir("badstream");
    let o = out.to_str().unwrap();
    expect_one_line_error(4, &["--rates", "50,38,12", "--out", o], "3 rates but the job has 4 ranks");
    expect_one_line_error(2, &["--rates", "50,-3", "--out", o], "-3");
    expect_one_line_error(3, &["--b-min", "64", "--b-max", "8", "--out", o], "--b-min");
    expect_one_line_error(2, &["--cr", "0", "--out", o], "--cr");
    expect_one_line_error(2, &["--delta", "-1", "--out", o], "--delta");
    expect_one_line_error(3, &["--partition", "label-shard", "--out", o, "--rates", "40,40,40"], "label-shard");
}

#[test]
fn a_nan_loss_stops_every_rank_and_keeps_the_outputs() {
    let out = tmpdir("nan");
    let o = train(2, &[
        "--lr", "1e30", "--steps", "50", "--eval-every", "1", "--synthetic-train", "2000", "--synthetic-test", "200",
        "--rates", "100,100", "--policy", "ddl", "--batch", "16", "--out", out.to_str().unwrap(),
    ]);
    let (_, se) = text(&o);
    assert!(!o.status.success(), "{se}");
    let line = se.lines().find(|l| l.starts_with("scadles: error:")).unwrap_or_else(|| panic!("{se}"));
    assert!(line.contains("not finite"), "{line}");
    assert!(out.join("config.json").exists());
    let steps = std::fs::read_to_string(out.join("steps.csv")).expect("steps written before the failure are kept");
    assert!(steps.lines().count() >= 2, "{steps}");
}
