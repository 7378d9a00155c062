//! Multi-rank checks of the sparse exchange, AR-Topk and the compression vote under `mpirun`.
//!
//! The parent tests launch `mpirun -np N <this test binary> child_sparse_mpi --exact`, with
//! `SCADLES_MPI_CHILD=1` selecting child mode; without it `child_sparse_mpi` returns at once. Each
//! child checks its results against a float64 reference built from every rank's inputs (which all
//! ranks can regenerate), the ranks agree on whether any check failed, and all exit non-zero if
//! one did. Each child prints a marker on success so that a run that selected no test cannot pass.
mod common;
use scadles::compress::bench::random_normal;
use scadles::compress::{majority, majority_decision, topk};
use scadles::dist::sparse::{ar_topk_allreduce, sparse_allgather_add};
use scadles::dist::World;
use std::process::Command;

const CHILD_ENV: &str = "SCADLES_MPI_CHILD";
const OK_MARK: &str = "MPI-SPARSE-CHILD-OK";

fn run_mpi(np: usize) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let out = Command::new("timeout")
        .args(["180", "mpirun", "-np", &np.to_string()])
        .arg(&exe)
        .args([
            "child_sparse_mpi",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("mpirun (MPICH) must be on PATH to run the multi-rank tests");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "mpirun -np {np} failed ({}):\n{text}",
        out.status
    );
    let marks = text.matches(OK_MARK).count();
    assert_eq!(marks, np, "expected {np} ranks to report success:\n{text}");
}

#[test]
fn sparse_exchange_np2() {
    run_mpi(2);
}

#[test]
fn sparse_exchange_np3() {
    run_mpi(3);
}

#[test]
fn child_sparse_mpi() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let world = World::init();
    let mut fails = Vec::new();
    check_handmade(&world, &mut fails);
    check_topk_random(&world, &mut fails);
    check_errors_agree(&world, &mut fails);
    check_ar_topk(&world, &mut fails);
    check_majority(&world, &mut fails);
    common::finish_child(&world, &fails, OK_MARK);
}

/// Every rank's (idx, val) in the hand-made cases; every rank can rebuild every other rank's.
fn handmade_pairs(case: usize, r: usize, n: usize) -> (Vec<u32>, Vec<f32>) {
    match case {
        // Collisions across ranks at 0, 5 and 36; the last rank sends nothing.
        0 if r + 1 == n => (vec![], vec![]),
        0 => (
            vec![0, 3, 5, 36],
            vec![1.0, 2.0 * (r + 1) as f32, -4.0, 8.0],
        ),
        // Every rank sends index 0 and index 36; rank r also r+1.
        1 => (
            vec![0, r as u32 + 1, 36],
            vec![16.0, 32.0 + r as f32, -(r as f32) - 0.5],
        ),
        // Unsorted, with a duplicate inside one rank (the sequential scatter path).
        _ => (vec![5, 0, 5, 2], vec![1.0, 1.0, 1.0, r as f32]),
    }
}

fn f64_reference(n: usize, len: usize, pairs: impl Fn(usize) -> (Vec<u32>, Vec<f32>)) -> Vec<f64> {
    let mut want = vec![0.0f64; len];
    for r in 0..n {
        // Decompress rank r's tensor, then add it (dense aggregation of decompressed tensors).
        let (idx, val) = pairs(r);
        let mut d = vec![0.0f64; len];
        for (&i, &v) in idx.iter().zip(&val) {
            d[i as usize] += f64::from(v);
        }
        for (w, x) in want.iter_mut().zip(d) {
            *w += x;
        }
    }
    want
}

/// Ranks must end with identical aggregates: compare a checksum of the bits.
fn same_on_all_ranks(world: &World, x: &[f32]) -> bool {
    let h = x.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3)
    });
    let all = world.allgather_u64(h);
    all.iter().all(|&a| a == all[0])
}

fn check_handmade(world: &World, fails: &mut Vec<String>) {
    let (n, r) = (world.size(), world.rank());
    let len = 37;
    for case in 0..3 {
        let (idx, val) = handmade_pairs(case, r, n);
        let mut dense = vec![f32::NAN; len]; // must be zeroed by the exchange
        let counts = match sparse_allgather_add(world, &idx, &val, &mut dense) {
            Ok(c) => c,
            Err(e) => {
                fails.push(format!("case {case}: {e}"));
                continue;
            }
        };
        let want_counts: Vec<u64> = (0..n)
            .map(|q| handmade_pairs(case, q, n).0.len() as u64)
            .collect();
        if counts != want_counts {
            fails.push(format!(
                "case {case}: counts {counts:?}, expected {want_counts:?}"
            ));
        }
        let want = f64_reference(n, len, |q| handmade_pairs(case, q, n));
        // Small integers and halves: the f32 sums are exact.
        for i in 0..len {
            if f64::from(dense[i]) != want[i] {
                fails.push(format!(
                    "case {case}: element {i} is {}, expected {}",
                    dense[i], want[i]
                ));
            }
        }
        if !same_on_all_ranks(world, &dense) {
            fails.push(format!("case {case}: ranks disagree on the aggregate"));
        }
    }
}

fn topk_pairs(r: usize, len: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let mut g = random_normal(len, 77 + r as u64);
    g[0] = 100.0 + r as f32; // every rank picks index 0
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    topk(&g, k, &mut idx, &mut val);
    (idx, val)
}

/// Large enough for the parallel scatter; 15% of independent normals collide a lot across ranks.
fn check_topk_random(world: &World, fails: &mut Vec<String>) {
    let (n, r) = (world.size(), world.rank());
    let (len, k) = (300_000usize, 45_000usize);
    let (idx, val) = topk_pairs(r, len, k);
    let mut dense = vec![0f32; len];
    if let Err(e) = sparse_allgather_add(world, &idx, &val, &mut dense) {
        fails.push(format!("random: {e}"));
        return;
    }
    let want = f64_reference(n, len, |q| topk_pairs(q, len, k));
    let mut collisions = 0usize;
    let (mut s, mut counted) = (std::collections::HashSet::new(), 0usize);
    for q in 0..n {
        for &i in &topk_pairs(q, len, k).0 {
            counted += 1;
            if !s.insert(i) {
                collisions += 1;
            }
        }
    }
    if n > 1 && collisions < 1000 {
        fails.push(format!("random: only {collisions} of {counted} indices collide; the case does not test accumulation"));
    }
    let bad: Vec<usize> = (0..len)
        .filter(|&i| (f64::from(dense[i]) - want[i]).abs() > 1e-6 * (1.0 + want[i].abs()))
        .collect();
    if let Some(&i) = bad.first() {
        fails.push(format!(
            "random: {} mismatches, first at {i}: {} vs {}",
            bad.len(),
            dense[i],
            want[i]
        ));
    }
    if !same_on_all_ranks(world, &dense) {
        fails.push("random: ranks disagree on the aggregate".into());
    }
}

/// A bad input on one rank errors on every rank, and the next exchange still lines up.
fn check_errors_agree(world: &World, fails: &mut Vec<String>) {
    let (n, r) = (world.size(), world.rank());
    let mut dense = vec![0f32; 10];
    let (idx, val): (Vec<u32>, Vec<f32>) = if r == 0 {
        (vec![1, 2], vec![1.0])
    } else {
        (vec![3], vec![1.0])
    };
    if sparse_allgather_add(world, &idx, &val, &mut dense).is_ok() {
        fails.push("length mismatch on rank 0 was not reported".into());
    }
    let (idx, val): (Vec<u32>, Vec<f32>) = if r + 1 == n {
        (vec![10], vec![1.0])
    } else {
        (vec![9], vec![1.0])
    };
    if sparse_allgather_add(world, &idx, &val, &mut dense).is_ok() {
        fails.push("index 10 of a 10-element buffer was not reported".into());
    }
    match sparse_allgather_add(world, &[9], &[2.0], &mut dense) {
        Ok(_) if dense[9] == 2.0 * n as f32 && dense[..9].iter().all(|&v| v == 0.0) => {}
        Ok(_) => fails.push(format!("exchange after errors gave {dense:?}")),
        Err(e) => fails.push(format!("exchange after errors failed: {e}")),
    }
}

fn check_ar_topk(world: &World, fails: &mut Vec<String>) {
    let (n, r) = (world.size(), world.rank());
    let (len, k) = (1000usize, 100usize);
    let acc_of = |q: usize| random_normal(len, 500 + q as u64);
    let idx_of = |q: usize| {
        let (mut i, mut v) = (Vec::new(), Vec::new());
        topk(&acc_of(q), k, &mut i, &mut v);
        i
    };
    let acc = acc_of(r);
    let mine = idx_of(r);
    for step in 0..(n as u64 + 1) {
        let root = (step % n as u64) as usize;
        let mut dense = vec![f32::NAN; len];
        let chosen = match ar_topk_allreduce(world, step, &mine, &acc, &mut dense) {
            Ok(c) => c,
            Err(e) => {
                fails.push(format!("AR-Topk step {step}: {e}"));
                continue;
            }
        };
        if chosen != idx_of(root) {
            fails.push(format!(
                "AR-Topk step {step}: indices are not root {root}'s top-k"
            ));
        }
        let mut want = vec![0.0f64; len];
        for &j in &chosen {
            want[j as usize] = (0..n).map(|q| f64::from(acc_of(q)[j as usize])).sum();
        }
        if let Some(i) =
            (0..len).find(|&i| (f64::from(dense[i]) - want[i]).abs() > 1e-5 * (1.0 + want[i].abs()))
        {
            fails.push(format!(
                "AR-Topk step {step}: element {i} is {}, expected {}",
                dense[i], want[i]
            ));
        }
    }
}

fn check_majority(world: &World, fails: &mut Vec<String>) {
    let (n, r) = (world.size(), world.rank());
    type Vote = fn(usize) -> bool;
    let cases: [(&str, Vote); 4] = [
        ("all", |_| true),
        ("none", |_| false),
        ("even ranks", |q| q % 2 == 0),
        ("rank 0 only", |q| q == 0),
    ];
    for (name, vote) in cases.iter() {
        let decision = majority(world, vote(r));
        let votes = (0..n).filter(|&q| vote(q)).count() as u64;
        let want = 2 * votes > n as u64;
        if decision != want || majority_decision(votes, n as u64) != want {
            fails.push(format!(
                "majority ({name}): got {decision} with {votes}/{n} votes, expected {want}"
            ));
        }
        let all = world.allgather_u64(u64::from(decision));
        if all.iter().any(|&d| d != all[0]) {
            fails.push(format!("majority ({name}): ranks disagree: {all:?}"));
        }
    }
}
