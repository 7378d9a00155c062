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
        "--model", "tinycnn", "--policy", "ddl", "--rates", "200,200", "--batch", "32", "--steps", "300",
        "--lr", "0.05", "--eval-every", "50", "--synthetic-train", "6000", "--synthetic-test", "1000",
        "--milestones", "1000", "--out", out.to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s = read_json(&out.join("summary.json"));
    let top1 = s["final_top1"].as_f64().unwrap();
    // 10 classes: chance is 0.10. The synthetic set is learnable but not trivial: accuracy climbs
    // over hundreds of steps rather than saturating at the first evaluation.
    assert!(top1 > 0.5, "tinycnn should learn well above chance, got top1 {top1}");
    let evals = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    let first: f64 = evals.lines().nth(1).unwrap().split(',').nth(2).unwrap().parse().unwrap();
    assert!(first < 0.5 && first + 0.2 < top1, "accuracy should climb: first eval {first}, final {top1}");
    assert!(s["final_top5"].as_f64().unwrap() >= top1);
    assert_eq!(s["ranks"], 2);
    assert_eq!(s["steps"], 300);
    assert_eq!(s["model"], "tinycnn");
    assert!(s["images_per_s"].as_f64().unwrap() > 0.0);
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["num_classes"], 10);
    assert_eq!(cfg["batch"], 32);
    let steps = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 301, "header + one row per step");
    assert!(steps.lines().next().unwrap().starts_with("step,epoch,loss,lr,"));
    // DDL: every step has the fixed global batch 2·32.
    let row: Vec<&str> = steps.lines().nth(5).unwrap().split(',').collect();
    assert_eq!(row[5], "64");
    assert_eq!(evals.lines().count(), 1 + 6);
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

/// steps.csv columns by name.
fn steps_table(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let s = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    let mut lines = s.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    (head, lines.map(|l| l.split(',').map(String::from).collect()).collect())
}

fn col(head: &[String], name: &str) -> usize {
    head.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"))
}

#[test]
fn scadles_reaches_the_target_in_less_virtual_time_than_ddl() {
    let out = tmpdir("compare");
    let mut c = mpirun(4);
    c.arg(bin()).arg("compare").args([
        "--model", "tinycnn", "--rates", "24,40,64,100", "--batch", "64", "--lr", "0.03", "--milestones", "1000",
        "--synthetic-train", "8000", "--synthetic-test", "600", "--eval-every", "10", "--steps", "400",
        "--target-top1", "0.45", "--out", out.to_str().unwrap(),
    ]);
    let o = run_with_limit(c, Duration::from_secs(600));
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let cmp = read_json(&out.join("comparison.json"));
    let ts = cmp["scadles_time_to_target_s"].as_f64().expect("ScaDLES reached the target");
    let td = cmp["ddl_time_to_target_s"].as_f64().expect("DDL reached the target");
    assert!(ts < td, "ScaDLES {ts} s should beat DDL {td} s on the virtual clock");
    assert!((cmp["speedup"].as_f64().unwrap() - td / ts).abs() < 1e-9);
    assert!(so.contains("speedup of ScaDLES over DDL"), "{so}");
    let png = std::fs::read(out.join("accuracy_vs_time.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(out.join("accuracy_vs_time.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("ScaDLES") && svg.contains("DDL"));
    // Both runs' files, and the summary's streaming fields.
    for run in ["scadles", "ddl"] {
        let s = read_json(&out.join(run).join("summary.json"));
        assert_eq!(s["policy"], run);
        assert_eq!(s["clock"], "virtual");
        assert_eq!(s["rates"].as_array().unwrap().len(), 4);
        assert!(s["time_to_target_s"].as_f64().is_some());
        assert!(s["max_buffer_bytes"].as_u64().unwrap() == s["max_buffer_samples"].as_u64().unwrap() * 3072);
    }
    // ScaDLES: b_i follows the rates (the slowest rank's batch is smaller than the fastest's), the
    // applied lr is η·Σb/B with B = 64·4, and epochs count Σb globally over the 8000 samples.
    let (h, rows) = steps_table(&out.join("scadles"));
    let (gb, lr, lrs, ep, bmin, bmax) = (col(&h, "global_batch"), col(&h, "lr"), col(&h, "lr_step"), col(&h, "epoch"), col(&h, "b_min"), col(&h, "b_max"));
    let mut consumed = 0u64;
    for r in &rows {
        let g: u64 = r[gb].parse().unwrap();
        assert_eq!(r[ep].parse::<u64>().unwrap(), consumed / 8000, "epoch counts consumed samples globally");
        consumed += g;
        let want = r[lr].parse::<f64>().unwrap() * g as f64 / 256.0;
        assert!((r[lrs].parse::<f64>().unwrap() - want).abs() <= 1e-6 * want.max(1e-12), "lr_step {} vs {want}", r[lrs]);
    }
    let last = rows.last().unwrap();
    assert!(last[bmin].parse::<u64>().unwrap() < last[bmax].parse::<u64>().unwrap(), "stream-sized batches differ");
    // DDL: every rank trains on exactly 64, so Σb = 256 each step, at the scheduled lr.
    let (h, rows) = steps_table(&out.join("ddl"));
    assert!(rows.iter().all(|r| r[col(&h, "global_batch")] == "256"));
}

#[test]
fn adaptive_compression_learns_with_fewer_floats_than_dense() {
    let out = tmpdir("adaptive");
    let o = train(3, &[
        "--model", "tinycnn", "--rates", "60,60,60", "--policy", "ddl", "--batch", "32", "--steps", "300", "--lr", "0.05",
        "--milestones", "1000", "--eval-every", "50", "--synthetic-train", "6000", "--synthetic-test", "600",
        "--compression", "adaptive", "--cr", "0.1", "--delta", "0.5", "--warmup-steps", "10", "--out", out.to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s = read_json(&out.join("summary.json"));
    let params = s["params"].as_u64().unwrap();
    let dense_floats = 300 * 3 * params;
    let floats = s["floats_sent_total"].as_u64().unwrap();
    let cnc = s["cnc_ratio"].as_f64().unwrap();
    assert!(s["final_top1"].as_f64().unwrap() > 0.4, "still learns: {}", s["final_top1"]);
    assert!(cnc > 0.5 && cnc < 1.0, "warm-up is dense, most later steps compress: cnc {cnc}");
    assert!(floats < dense_floats / 2, "floats sent {floats} vs dense {dense_floats}");
    // The totals equal the per-step columns, and compressed steps send k values per rank.
    let (h, rows) = steps_table(&out);
    let (vs, cp) = (col(&h, "values_sent"), col(&h, "compressed"));
    let sum: u64 = rows.iter().map(|r| r[vs].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, floats);
    let n_comp = rows.iter().filter(|r| r[cp] == "1").count();
    assert!((cnc - n_comp as f64 / rows.len() as f64).abs() < 1e-12);
    assert!(rows[..10].iter().all(|r| r[cp] == "0" && r[vs].parse::<u64>().unwrap() == 3 * params));
    assert_eq!(s["indices_sent_total"].as_u64().unwrap() + floats, s["words_sent_total"].as_u64().unwrap());
}

#[test]
fn real_clock_really_waits_for_the_stream() {
    // 2 ranks streaming 400 samples/s each; DDL waits for 40 per step: about 0.1 s per step.
    let out = tmpdir("real");
    let t0 = std::time::Instant::now();
    let o = train(2, &[
        "--clock", "real", "--policy", "ddl", "--rates", "400,400", "--batch", "40", "--steps", "15",
        "--eval-every", "15", "--synthetic-train", "2000", "--synthetic-test", "200", "--out", out.to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["clock"], "real");
    let clock = s["clock_s"].as_f64().unwrap();
    // 15 steps × 40 samples at 400/s is 1.5 s of streaming at least.
    assert!(clock >= 1.45, "the real clock should include the stream's waits, got {clock} s");
    assert!(t0.elapsed().as_secs_f64() >= 1.45);
    // Clock times only move forward and each step consumed exactly 2·40 samples.
    let (h, rows) = steps_table(&out);
    let (c, gb) = (col(&h, "clock_s"), col(&h, "global_batch"));
    let clocks: Vec<f64> = rows.iter().map(|r| r[c].parse().unwrap()).collect();
    assert!(clocks.windows(2).all(|w| w[1] >= w[0]), "{clocks:?}");
    assert!(rows.iter().all(|r| r[gb] == "80"));
}

#[test]
fn device_cuda_without_a_gpu_stops_every_rank_with_one_line() {
    if let Ok(n) = scadles::backend::cuda::probe() {
        eprintln!("{n} GPU(s) present: the no-GPU error of --device cuda does not apply here");
        return;
    }
    let out = tmpdir("nogpu");
    let o = out.to_str().unwrap();
    expect_one_line_error(2, &["--device", "cuda", "--steps", "2", "--out", o], "--device cuda: no usable NVIDIA GPU");
    let code = train(2, &["--device", "cuda", "--steps", "2", "--out", o]).status.code();
    assert_eq!(code, Some(2), "a device error is a configuration error");
    assert!(!out.join("summary.json").exists(), "nothing trained");
}

#[test]
fn summary_names_the_device_of_every_rank() {
    let out = tmpdir("device");
    let o = train(2, &[
        "--device", "cpu", "--policy", "ddl", "--rates", "100,100", "--batch", "16", "--steps", "3", "--eval-every", "3",
        "--synthetic-train", "1000", "--synthetic-test", "200", "--out", out.to_str().unwrap(),
    ]);
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    assert!(se.lines().any(|l| l == "device: cpu (all 2 ranks)"), "rank 0 reports the devices once:\n{se}");
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["device"], "cpu");
    assert_eq!(s["devices"], serde_json::json!(["cpu", "cpu"]));
    assert_eq!(s["gradient_path"], "host memory");
    assert!(!se.contains("gradient exchange:"), "the GPU transport line is for GPU runs only:\n{se}");
}

/// `scadles devices` under mpirun: every rank reports the MPI library and whether dense GPU steps
/// would hand it device buffers; `SCADLES_CUDA_AWARE_MPI` overrides the library's answer.
#[test]
fn devices_reports_mpi_and_its_cuda_support() {
    for (env, want) in [(Some("1"), "CUDA-aware: yes"), (Some("0"), "CUDA-aware: no"), (None, "CUDA-aware: ")] {
        let mut c = mpirun(2);
        if let Some(v) = env {
            c.env("SCADLES_CUDA_AWARE_MPI", v);
        } else {
            c.env_remove("SCADLES_CUDA_AWARE_MPI");
        }
        c.arg(bin()).arg("devices");
        let o = run_with_limit(c, Duration::from_secs(120));
        let (so, se) = text(&o);
        assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
        for r in 0..2 {
            let line = so.lines().find(|l| l.starts_with(&format!("mpi: rank {r} of 2, "))).unwrap_or_else(|| panic!("rank {r} has no mpi line:\n{so}"));
            assert!(line.contains(want), "SCADLES_CUDA_AWARE_MPI={env:?}: {line}");
        }
    }
}

#[test]
fn data_errors_come_before_the_configuration_dump_and_bounds_are_checked() {
    let out = tmpdir("dataerr");
    let o = out.to_str().unwrap();
    let r = train(2, &["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fmnist", "--out", o]);
    let (_, se) = text(&r);
    assert!(!r.status.success());
    assert!(!se.contains("resolved configuration"), "the data error should come before the 70-line dump:\n{se}");
    expect_one_line_error(2, &["--b-min", "0", "--out", o], "--b-min");
    expect_one_line_error(2, &["--eval-samples", "0", "--out", o], "--eval-samples");
    expect_one_line_error(2, &["--policy", "ddl", "--buffer-cap", "1", "--out", o], "--buffer-cap");
    expect_one_line_error(2, &["--synthetic-train", "100000000000", "--out", o], "--synthetic-train");
}

#[test]
fn step_records_reach_the_disk_between_evaluations() {
    let out = tmpdir("flush");
    let mut c = mpirun(2);
    c.arg(bin()).arg("train").args([
        "--steps", "1000000", "--eval-every", "1000000", "--synthetic-train", "2000", "--synthetic-test", "100",
        "--out", out.to_str().unwrap(),
    ]);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let steps = out.join("steps.csv");
    let start = std::time::Instant::now();
    while !steps.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM to the launcher, which ends both ranks.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let text = std::fs::read_to_string(&steps).expect("steps.csv written before the first evaluation");
    assert!(text.lines().count() > 1 && text.starts_with("step,"), "{text}");
}

#[test]
fn a_run_directory_is_never_overwritten_silently_nor_shared() {
    let out = tmpdir("reuse");
    let o = out.to_str().unwrap();
    let small = ["--steps", "3", "--eval-every", "3", "--synthetic-train", "400", "--synthetic-test", "50"];
    let mut args = small.to_vec();
    args.extend(["--out", o]);
    let first = train(2, &args);
    assert!(first.status.success(), "{:?}", text(&first));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    // Reusing --out is refused and leaves the finished run as it was.
    expect_one_line_error(2, &args, "already holds a run");
    assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), summary);
    // --overwrite replaces it; a stale output of the old run does not survive.
    std::fs::write(out.join("comparison.json"), "{}").unwrap();
    let mut again = args.clone();
    again.extend(["--overwrite", "--seed", "7"]);
    let r = train(2, &again);
    assert!(r.status.success(), "{:?}", text(&r));
    assert!(!out.join("comparison.json").exists(), "a stale comparison.json survived --overwrite");
    assert!(std::fs::read_to_string(out.join("config.json")).unwrap().contains("\"seed\": 7"));
    // A second run on a directory in use is refused while the first holds it.
    let busy = tmpdir("busy");
    let b = busy.to_str().unwrap();
    let mut c = mpirun(2);
    c.arg(bin()).arg("train").args(["--steps", "1000000", "--eval-every", "1000000", "--synthetic-train", "400", "--synthetic-test", "50", "--out", b]);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut long = c.spawn().unwrap();
    let start = std::time::Instant::now();
    while !busy.join("config.json").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_one_line_error(2, &["--steps", "3", "--synthetic-train", "400", "--synthetic-test", "50", "--overwrite", "--out", b], "another run is using");
    unsafe { libc::kill(long.id() as i32, libc::SIGTERM) };
    let _ = long.wait();
}

#[test]
fn an_interrupted_run_exits_non_zero_and_says_it_was_stopped() {
    // MPICH's launcher used to exit 0 on SIGINT in about half the trials: three trials.
    for trial in 0..3 {
        let out = tmpdir(&format!("sigint{trial}"));
        let mut c = mpirun(2);
        c.arg(bin()).arg("train").args(["--steps", "1000000", "--eval-every", "1000000", "--synthetic-train", "400", "--synthetic-test", "50", "--out", out.to_str().unwrap()]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        let start = std::time::Instant::now();
        while !out.join("steps.csv").exists() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let o = child.wait_with_output().unwrap();
        let se = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "trial {trial}: the job exited 0 after SIGINT\n{se}");
        let s = read_json(&out.join("summary.json"));
        assert!(s["status"].as_str().unwrap().starts_with("stopped by SIGINT"), "trial {trial}: {s}");
        let ours: Vec<&str> = se.lines().filter(|l| l.starts_with("scadles: error:")).collect();
        assert_eq!(ours.len(), 1, "trial {trial}: {se}");
        assert!(ours[0].contains("interrupted") && ours[0].ends_with(out.to_str().unwrap()), "{}", ours[0]);
    }
}

#[test]
fn a_stopped_rank_ends_the_job_with_one_line_naming_it() {
    let out = tmpdir("stall");
    let mut c = mpirun(3);
    c.arg(bin()).arg("train").args(["--steps", "1000000", "--eval-every", "1000000", "--synthetic-train", "600", "--synthetic-test", "50", "--threads", "1", "--stall-timeout-s", "6", "--out", out.to_str().unwrap()]);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Rank 1's heartbeat names its pid; stop it once training is under way.
    let beat = out.join(".heartbeat").join("rank-1");
    let start = std::time::Instant::now();
    let mut pid = 0i32;
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(p) = std::fs::read_to_string(&beat).ok().and_then(|t| t.split_whitespace().next().and_then(|w| w.parse().ok())) {
            if out.join("steps.csv").exists() {
                pid = p;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pid > 0, "rank 1 never wrote its heartbeat");
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = std::time::Instant::now();
    // The job must end by itself: after 60 s the test kills it and fails.
    let mut child = child;
    while child.try_wait().unwrap().is_none() && stopped.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = stopped.elapsed();
    if child.try_wait().unwrap().is_none() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.kill();
    }
    let o = child.wait_with_output().unwrap();
    // The launcher ends the stopped rank; give it a moment to be reaped.
    let mut alive = true;
    for _ in 0..50 {
        alive = unsafe { libc::kill(pid, 0) } == 0 && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|t| !t.contains(") Z "));
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let se = String::from_utf8_lossy(&o.stderr);
    assert!(took < Duration::from_secs(50), "the job took {took:?} to end after rank 1 stopped\n{se}");
    assert!(!o.status.success(), "the job exited 0\n{se}");
    let ours: Vec<&str> = se.lines().filter(|l| l.starts_with("scadles: error:")).collect();
    assert_eq!(ours.len(), 1, "{se}");
    assert!(ours[0].contains("rank 1 stopped answering") && ours[0].contains("--stall-timeout-s"), "{}", ours[0]);
    assert!(!alive, "the stopped rank outlived the job");
}
