//! Data injection under mpirun (1 to 4 ranks):
//! - the exchange moves exactly the planned samples: what a rank receives is byte-equal (labels and
//!   pixels, in order) to the training samples the plan and its picks name in the senders' batches,
//!   and bytes and messages sent and received match the plan and add up across ranks; in both
//!   modes, with a rank of b = 0 and one whose β·b < 1;
//! - a short `scadles train --inject 0.5,0.5` writes the injected bytes per step and per rank that
//!   the plan's formula gives: with every rank's stream batch pinned at b (b_min = b_max = b), each
//!   rank receives min(⌈α·N⌉, N−1)·⌊β·b⌋ samples per step in `peers` mode, and ⌈α·N⌉·⌊β·b⌋ samples
//!   move in all in `senders` mode.
//!
//! The test executable is the MPI program: the parent runs `mpirun -np N <this test binary>
//! <child test>` with SCADLES_MPI_CHILD set; the child exits non-zero on a mismatch.
mod common;
use common::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use scadles::data::{self, DatasetKind, SyntheticSpec, IMAGE_BYTES};
use scadles::dist::inject::{exchange, picks, traffic, InjectMode, Injection, SAMPLE_WIRE_BYTES};
use scadles::dist::World;
use std::time::Duration;

const CHILD: &str = "SCADLES_MPI_CHILD";
const OK_MARK: &str = "MPI-INJECT-CHILD-OK";

fn launch(np: usize, test: &str, batches: &str) {
    let mut c = mpirun(np);
    c.env(CHILD, "1").env("SCADLES_TEST_BATCHES", batches);
    c.arg(std::env::current_exe().unwrap())
        .arg("--exact")
        .arg(test)
        .arg("--nocapture")
        .arg("--test-threads=1");
    let o = run_with_limit(c, Duration::from_secs(300));
    let (so, se) = text(&o);
    assert!(
        o.status.success(),
        "{test} under {np} ranks failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    assert_eq!(
        so.matches(OK_MARK).count(),
        np,
        "every rank reports its checks passed:\n{so}\n{se}"
    );
}

/// Every rank's batch at `step`: training-set indices, in a seeded shuffled order so that a
/// position in the batch is not its index; 0 and 1 stay as they are (no sample to send).
fn batches_at(base: &[usize], train_len: usize, step: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..train_len).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(99 + step));
    let mut at = 0;
    base.iter()
        .map(|&b| {
            let b = if b <= 1 { b } else { b + step as usize };
            let v = order[at..at + b].to_vec();
            at += b;
            v
        })
        .collect()
}

/// Child: several steps of each mode and (α, β); every received sample checked against the plan.
#[test]
fn child_injection_exchange() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let world = World::init();
    let (me, n) = (world.rank(), world.size());
    let base: Vec<usize> = std::env::var("SCADLES_TEST_BATCHES")
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(base.len(), n);
    let spec = SyntheticSpec {
        num_classes: 10,
        train_size: 400,
        test_size: 10,
        seed: 5,
    };
    let train = data::load(DatasetKind::Synthetic, None, &spec)
        .unwrap()
        .train;
    let cases = [
        Injection {
            mode: InjectMode::Peers,
            alpha: 0.5,
            beta: 0.5,
        },
        Injection {
            mode: InjectMode::Peers,
            alpha: 1.0,
            beta: 0.25,
        },
        Injection {
            mode: InjectMode::Peers,
            alpha: 0.25,
            beta: 0.1,
        },
        Injection {
            mode: InjectMode::Senders,
            alpha: 0.5,
            beta: 0.5,
        },
    ];
    let mut fails = Vec::new();
    let mut moved = 0u64;
    for inj in &cases {
        for step in 1..=4u64 {
            let batches = batches_at(&base, train.len(), step);
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            let got = exchange(&world, &train, &batches[me], &sizes, inj, 42, step);
            let plan = inj.plan(&sizes, 42, step);
            let what = format!("{} α {} β {} step {step}", inj.mode, inj.alpha, inj.beta);
            // What the plan says this rank receives, in source-rank order (alltoallv's order).
            let (mut want_labels, mut want_images) = (Vec::new(), Vec::new());
            for (s, batch) in batches.iter().enumerate() {
                for (t, pos) in picks(&plan, s, batch.len(), 42, step) {
                    if t.to != me {
                        continue;
                    }
                    for p in pos {
                        want_labels.push(train.labels[batch[p]]);
                        want_images.extend_from_slice(train.image(batch[p]));
                    }
                }
            }
            if got.labels != want_labels {
                fails.push(format!(
                    "{what}: labels {:?}, the plan says {want_labels:?}",
                    got.labels
                ));
            }
            if got.images != want_images {
                fails.push(format!(
                    "{what}: the received pixels are not the planned samples' ({} vs {} bytes)",
                    got.images.len(),
                    want_images.len()
                ));
            }
            let t = traffic(&plan, n)[me];
            let seen = (
                got.bytes_sent,
                got.bytes_received,
                got.messages_sent,
                got.messages_received,
            );
            let planned = (
                t.bytes_sent,
                t.bytes_received,
                t.messages_sent,
                t.messages_received,
            );
            if seen != planned {
                fails.push(format!("{what}: (sent, received, messages sent, received) {seen:?}, planned {planned:?}"));
            }
            if got.images.len() != got.labels.len() * IMAGE_BYTES
                || got.bytes_received as usize != got.labels.len() * SAMPLE_WIRE_BYTES
            {
                fails.push(format!(
                    "{what}: {} labels, {} pixel bytes, {} bytes received",
                    got.labels.len(),
                    got.images.len(),
                    got.bytes_received
                ));
            }
            if inj.mode == InjectMode::Peers && sizes.iter().all(|&b| b >= 4) {
                let k = ((inj.alpha * n as f64).ceil() as usize).min(n - 1);
                if got.messages_received as usize != k {
                    fails.push(format!(
                        "{what}: {} peers sent here, expected ⌈α·N⌉ capped at N−1 = {k}",
                        got.messages_received
                    ));
                }
            }
            let sums = world.allreduce_sum_u64(&[got.bytes_sent, got.bytes_received]);
            let planned_total = plan
                .iter()
                .map(|t| t.count * SAMPLE_WIRE_BYTES)
                .sum::<usize>() as u64;
            if sums[0] != sums[1] || sums[0] != planned_total {
                fails.push(format!(
                    "{what}: Σ sent {} and Σ received {} should both be the plan's {planned_total}",
                    sums[0], sums[1]
                ));
            }
            moved += sums[1];
        }
    }
    if n > 1 && moved == 0 {
        fails.push("no sample moved in any case: the checks above checked nothing".into());
    }
    finish_child(&world, &fails, OK_MARK);
}

#[test]
fn injection_moves_exactly_the_planned_samples() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    launch(1, "child_injection_exchange", "20");
    launch(2, "child_injection_exchange", "23,9");
    launch(3, "child_injection_exchange", "17,0,40");
    launch(4, "child_injection_exchange", "8,33,1,64");
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// steps.csv as (header, rows).
fn steps_table(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let s = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    let mut lines = s.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    (
        head,
        lines
            .map(|l| l.split(',').map(String::from).collect())
            .collect(),
    )
}

/// A short ScaDLES run with every rank's stream batch pinned at `b`; returns the run directory.
fn train_pinned(np: usize, b: usize, steps: u64, extra: &[&str]) -> std::path::PathBuf {
    let out = tmpdir(&format!("inject{np}"));
    let rates = vec!["80"; np].join(",");
    let (b, steps) = (b.to_string(), steps.to_string());
    let mut c = mpirun(np);
    c.arg(bin()).arg("train").args([
        "--model",
        "tinycnn",
        "--rates",
        &rates,
        "--b-min",
        &b,
        "--b-max",
        &b,
        "--steps",
        &steps,
        "--eval-every",
        &steps,
        "--eval-samples",
        "50",
        "--synthetic-train",
        "2000",
        "--synthetic-test",
        "100",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--inject",
        "0.5,0.5",
    ]);
    c.args(extra);
    let o = run_with_limit(c, Duration::from_secs(600));
    let (so, se) = text(&o);
    assert!(o.status.success(), "stdout:\n{so}\nstderr:\n{se}");
    out
}

fn col(head: &[String], name: &str) -> usize {
    head.iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("steps.csv has no column {name}"))
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn train_reports_the_planned_injected_bytes_per_rank() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let (b, steps, wire) = (32u64, 5u64, SAMPLE_WIRE_BYTES as u64);
    for np in [2usize, 3, 4] {
        let out = train_pinned(np, b as usize, steps, &[]);
        let n = np as u64;
        // peers: each rank receives ⌊0.5·32⌋ = 16 samples from each of min(⌈0.5·N⌉, N−1) peers.
        let k = (np as u64).div_ceil(2).min(n - 1);
        let per_rank = k * (b / 2);
        let (h, rows) = steps_table(&out);
        assert_eq!(rows.len() as u64, steps);
        for r in &rows {
            let at = |name: &str| r[col(&h, name)].parse::<f64>().unwrap();
            assert_eq!(
                at("injected_samples"),
                (n * per_rank) as f64,
                "N={np}: {r:?}"
            );
            assert_eq!(
                at("injected_bytes"),
                (n * per_rank * wire) as f64,
                "N={np}: {r:?}"
            );
            assert_eq!(at("injected_bytes_recv_max"), (per_rank * wire) as f64);
            assert_eq!(at("injected_bytes_recv_mean"), (per_rank * wire) as f64);
            assert!(
                at("injected_bytes_sent_max") >= (per_rank * wire) as f64,
                "someone sends at least the mean"
            );
            // The received samples join the batch: every rank trains on b + received.
            assert_eq!(at("b_min"), (b + per_rank) as f64);
            assert_eq!(at("b_max"), (b + per_rank) as f64);
            assert_eq!(at("global_batch"), (n * (b + per_rank)) as f64);
        }
        let s = read_json(&out.join("summary.json"));
        let recv: Vec<u64> = s["injected_bytes_per_rank"]
            .as_array()
            .unwrap()
            .iter()
            .map(u)
            .collect();
        let sent: Vec<u64> = s["injected_bytes_sent_per_rank"]
            .as_array()
            .unwrap()
            .iter()
            .map(u)
            .collect();
        assert_eq!(recv, vec![steps * per_rank * wire; np], "N={np}");
        assert_eq!(sent.len(), np);
        assert_eq!(
            sent.iter().sum::<u64>(),
            recv.iter().sum::<u64>(),
            "bytes sent and received add up"
        );
        assert_eq!(u(&s["injected_bytes_total"]), steps * n * per_rank * wire);
        assert_eq!(u(&s["injected_samples_total"]), steps * n * per_rank);
        let cfg = read_json(&out.join("config.json"));
        assert_eq!(cfg["inject_mode"], "peers");
    }
    // senders: ⌈0.5·4⌉ = 2 senders of 16 samples each per step, N/⌈α·N⌉·… less than peers.
    let out = train_pinned(4, b as usize, steps, &["--inject-mode", "senders"]);
    let (h, rows) = steps_table(&out);
    for r in &rows {
        assert_eq!(r[col(&h, "injected_samples")], "32", "{r:?}");
        assert_eq!(r[col(&h, "injected_bytes")], (32 * wire).to_string());
        assert_eq!(
            r[col(&h, "injected_bytes_sent_max")],
            (16 * wire).to_string(),
            "a sender sends once"
        );
    }
    let s = read_json(&out.join("summary.json"));
    assert_eq!(u(&s["injected_bytes_total"]), steps * 32 * wire);
    assert_eq!(
        read_json(&out.join("config.json"))["inject_mode"],
        "senders"
    );
}
