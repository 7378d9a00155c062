//! The modelled virtual clock under mpirun: with `--compute-model` and `--link-gbps` a run is a
//! pure function of its configuration and seed; evaluation on the clock (`--eval-every-s`);
//! `compare`'s DDL side is the paper's baseline; `--bn-eval average` pools the ranks' statistics.
mod common;
use common::*;
use scadles::config::BnEval;
use scadles::dist::World;
use scadles::nn::ParamView;
use std::path::Path;
use std::time::Duration;

const CHILD: &str = "SCADLES_MPI_CHILD";

fn run(np: usize, sub: &str, args: &[&str]) -> std::process::Output {
    let mut c = mpirun(np);
    c.arg(bin()).arg(sub).args(args);
    let o = run_with_limit(c, Duration::from_secs(600));
    let (so, se) = text(&o);
    assert!(
        o.status.success(),
        "{sub} {args:?} failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    o
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap()
}

/// 3 ranks with unequal rates, truncation, adaptive top-k and data injection: every random and
/// timed part of a step is on.
fn busy_run(out: &Path, compute_model: &str) {
    let o = out.to_str().unwrap();
    run(
        3,
        "train",
        &[
            "--model",
            "tinycnn",
            "--rates",
            "40,90,150",
            "--buffer",
            "truncation",
            "--compression",
            "adaptive",
            "--cr",
            "0.1",
            "--delta",
            "0.5",
            "--warmup-steps",
            "3",
            "--inject",
            "0.5,0.5",
            "--steps",
            "30",
            "--eval-every",
            "10",
            "--eval-samples",
            "300",
            "--synthetic-train",
            "3000",
            "--synthetic-test",
            "300",
            "--lr",
            "0.02",
            "--compute-model",
            compute_model,
            "--link-gbps",
            "5",
            "--out",
            o,
        ],
    );
}

#[test]
fn a_modelled_clock_makes_runs_byte_identical() {
    let (a, b) = (tmpdir("det-a"), tmpdir("det-b"));
    busy_run(&a, "linear:0.05:0.002");
    busy_run(&b, "linear:0.05:0.002");
    for f in ["steps.csv", "eval.csv"] {
        let (x, y) = (read(&a.join(f)), read(&b.join(f)));
        assert!(x.lines().count() > 3, "{f} too short:\n{x}");
        assert_eq!(
            x, y,
            "{f} differs between two runs of the same configuration"
        );
    }
    let s = json(&a.join("summary.json"));
    assert!(
        s["compute_model"]
            .as_str()
            .unwrap()
            .starts_with("linear:0.05:0.002"),
        "{s}"
    );
    assert!(
        s["link_model"].as_str().unwrap().starts_with("5 Gbit/s"),
        "{s}"
    );
    // The steps really were compressed and injected, and the compute column is the model's:
    // the slowest rank's A + C·b.
    let steps = read(&a.join("steps.csv"));
    let header: Vec<&str> = steps.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let rows: Vec<Vec<&str>> = steps
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(
        rows.iter().any(|r| r[col("compressed")] == "1"),
        "no compressed step"
    );
    assert!(
        rows.iter().any(|r| r[col("injected_bytes")] != "0"),
        "no injection"
    );
    for r in &rows {
        let bmax: f64 = r[col("b_max")].parse().unwrap();
        let compute: f64 = r[col("compute_s")].parse().unwrap();
        assert!(
            (compute - (0.05 + 0.002 * bmax)).abs() < 1e-9,
            "compute_s {compute} for b_max {bmax}"
        );
    }
    // The check can fail: with the measured compute time the clock moves between runs.
    let (c, d) = (tmpdir("det-c"), tmpdir("det-d"));
    busy_run(&c, "measured");
    busy_run(&d, "measured");
    assert_ne!(
        read(&c.join("steps.csv")),
        read(&d.join("steps.csv")),
        "measured compute times should differ between runs"
    );
}

#[test]
fn evaluation_on_the_clock_scores_both_policies_at_the_same_times() {
    let out = tmpdir("evalclock");
    let o = out.to_str().unwrap();
    run(
        2,
        "compare",
        &[
            "--model",
            "tinycnn",
            "--rates",
            "20,120",
            "--steps",
            "40",
            "--eval-every-s",
            "5",
            "--eval-samples",
            "200",
            "--synthetic-train",
            "2000",
            "--synthetic-test",
            "200",
            "--lr",
            "0.02",
            "--compute-model",
            "k80-resnet152",
            "--link-gbps",
            "5",
            "--link-params",
            "60192808",
            "--buffer",
            "truncation",
            "--compression",
            "adaptive",
            "--out",
            o,
        ],
    );
    let times = |side: &str| -> Vec<f64> {
        read(&out.join(side).join("eval.csv"))
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let (sc, ddl) = (times("scadles"), times("ddl"));
    // Every evaluation but the final one sits on a multiple of 5 clock seconds.
    for (side, t) in [("scadles", &sc), ("ddl", &ddl)] {
        assert!(t.len() >= 3, "{side}: too few evaluations {t:?}");
        for (i, v) in t[..t.len() - 1].iter().enumerate() {
            assert!(
                (v / 5.0 - (v / 5.0).round()).abs() < 1e-9,
                "{side}: eval {i} at {v} s is not on the 5 s grid"
            );
        }
    }
    // On the shared grid the two sides are scored at the same clock times (each side skips the
    // grid points inside one of its steps, so compare the points both have).
    let grid = |t: &[f64]| {
        t[..t.len() - 1]
            .iter()
            .map(|v| (v / 5.0).round() as i64)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(
        grid(&sc).intersection(&grid(&ddl)).count() >= 2,
        "{sc:?} vs {ddl:?}"
    );
    let c = json(&out.join("comparison.json"));
    assert_eq!(c["scadles"]["eval_every"], "5 clock seconds");
    let res = c["ddl"]["eval_resolution_s"].as_f64().unwrap();
    assert!(res >= 5.0, "resolution {res}");
    // With 60.2M parameters on the 5 Gbps link a dense ring allreduce of 2 ranks takes
    // 2·(1/2)·240.8 MB / 625 MB/s = 0.385 s; the DDL side communicates densely every step.
    let steps = read(&out.join("ddl").join("steps.csv"));
    let at = steps
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "comm_s")
        .unwrap();
    let comm: f64 = steps
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(at)
        .unwrap()
        .parse()
        .unwrap();
    assert!((comm - 0.385_23).abs() < 1e-3, "modelled dense comm {comm}");
}

#[test]
fn compare_runs_the_papers_baseline_unless_told_otherwise() {
    let out = tmpdir("baseline");
    let o = out.to_str().unwrap();
    let common = [
        "--model",
        "tinycnn",
        "--rates",
        "60,100",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--eval-samples",
        "100",
        "--synthetic-train",
        "1000",
        "--synthetic-test",
        "100",
        "--buffer",
        "truncation",
        "--compression",
        "adaptive",
        "--inject",
        "0.5,0.5",
    ];
    let mut args = common.to_vec();
    args.extend(["--out", o]);
    run(2, "compare", &args);
    let ddl = json(&out.join("ddl").join("config.json"));
    assert_eq!(ddl["policy"], "ddl");
    assert_eq!(ddl["buffer"], "persistence");
    assert_eq!(ddl["compression"], "none");
    assert!(ddl["inject"].is_null(), "{ddl}");
    let sc = json(&out.join("scadles").join("config.json"));
    assert_eq!(sc["buffer"], "truncation");
    assert_eq!(sc["compression"], "adaptive");
    let c = json(&out.join("comparison.json"));
    assert_eq!(c["ddl"]["buffer"], "persistence");
    assert_eq!(c["ddl"]["batch"], "fixed 64");
    assert_eq!(c["scadles"]["buffer"], "truncation");
    let ddl_steps = read(&out.join("ddl").join("steps.csv"));
    let at = ddl_steps
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "compressed")
        .unwrap();
    assert!(
        ddl_steps
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(at) == Some("0")),
        "the baseline must never compress"
    );
    // Explicit overrides reach the DDL side.
    let out2 = tmpdir("baseline2");
    let mut args = common.to_vec();
    args.extend([
        "--ddl-buffer",
        "truncation",
        "--ddl-inject",
        "0.5,0.5",
        "--out",
        out2.to_str().unwrap(),
    ]);
    run(2, "compare", &args);
    let ddl = json(&out2.join("ddl").join("config.json"));
    assert_eq!(ddl["buffer"], "truncation");
    assert_eq!(ddl["inject"], "0.5,0.5");
    assert_eq!(ddl["compression"], "none");
}

/// Child of `bn_average_pools_every_ranks_statistics`: rank r holds known running statistics.
#[test]
fn child_bn_average() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let world = World::init();
    let (r, n) = (world.rank() as f64, world.size() as f64);
    // Two BatchNorms of 2 and 1 channels: buffers [m0 m1 v0 v1 | m v].
    let stats = [
        (
            ParamView { offset: 0, len: 2 },
            ParamView { offset: 2, len: 2 },
        ),
        (
            ParamView { offset: 4, len: 1 },
            ParamView { offset: 5, len: 1 },
        ),
    ];
    let mine = |r: f64| [r, 2.0 * r + 1.0, 1.0 + r, 0.5, -r, 4.0].map(|v| v as f32);
    let mut buf = mine(r).to_vec();
    scadles::train::eval::share_bn_stats(&world, &mut buf, &stats, BnEval::Average);
    // Independent f64 reference: the union's mean and variance from each rank's (mean, var).
    let ranks: Vec<[f32; 6]> = (0..world.size()).map(|q| mine(q as f64)).collect();
    let pooled = |mi: usize, vi: usize| {
        let m = ranks.iter().map(|x| x[mi] as f64).sum::<f64>() / n;
        let v = ranks
            .iter()
            .map(|x| x[vi] as f64 + (x[mi] as f64 - m).powi(2))
            .sum::<f64>()
            / n;
        (m, v)
    };
    let mut fails = Vec::new();
    for (mi, vi) in [(0, 2), (1, 3), (4, 5)] {
        let (m, v) = pooled(mi, vi);
        if (buf[mi] as f64 - m).abs() > 1e-6 || (buf[vi] as f64 - v).abs() > 1e-5 {
            fails.push(format!(
                "channel ({mi},{vi}): got ({}, {}), want ({m}, {v})",
                buf[mi], buf[vi]
            ));
        }
    }
    // rank0: everybody ends with rank 0's values.
    let mut buf = mine(r).to_vec();
    scadles::train::eval::share_bn_stats(&world, &mut buf, &stats, BnEval::Rank0);
    if buf != mine(0.0).to_vec() {
        fails.push(format!("rank0 mode left {buf:?}"));
    }
    finish_child(&world, &fails, "CHILD-OK");
}

#[test]
fn bn_average_pools_every_ranks_statistics() {
    for np in [2, 3] {
        let mut c = mpirun(np);
        c.env(CHILD, "1");
        c.arg(std::env::current_exe().unwrap())
            .arg("--exact")
            .arg("child_bn_average")
            .arg("--nocapture")
            .arg("--test-threads=1");
        let o = run_with_limit(c, Duration::from_secs(120));
        let (so, se) = text(&o);
        assert!(
            o.status.success() && so.contains("CHILD-OK"),
            "{np} ranks\nstdout:\n{so}\nstderr:\n{se}"
        );
    }
}
