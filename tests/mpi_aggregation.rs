//! Data-parallel correctness under mpirun, checked against one process on the union batch:
//! - 2 ranks with batch b each, after k SGD steps, hold the parameters that one process gets by
//!   training on the union batch 2b (plain average, the conventional baseline);
//! - with 3 and 4 ranks and UNEQUAL batches (one rank with b_i = 0), the weighted aggregate
//!   Σ r_i·g_i of Eq. 4 equals the gradient of the union batch, and the ScaDLES step with the
//!   linearly scaled learning rate equals one union-batch SGD step at that rate.
//!
//! The test executable itself is the MPI program: the parent launches `mpirun -np N <this test
//! binary> <child test name>` with SCADLES_MPI_CHILD set; the child exits non-zero on a mismatch.
//! tinycnn has no BatchNorm, so the union-batch gradient is exactly the weighted mean (BatchNorm's
//! batch statistics would differ per shard, as in any data-parallel SGD without SyncBN).
mod common;
use common::*;
use scadles::config::RunConfig;
use scadles::data::{self, DatasetKind, SyntheticSpec};
use scadles::dist::inject::Received;
use scadles::dist::World;
use scadles::models::{self, Shape};
use scadles::optim::{self, Sgd};
use scadles::train::{local_gradient, Aggregator};
use rand::SeedableRng;
use std::time::Duration;

const CHILD: &str = "SCADLES_MPI_CHILD";

fn launch(np: usize, test: &str, extra_env: &[(&str, &str)]) {
    let mut c = mpirun(np);
    c.env(CHILD, "1");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.arg(std::env::current_exe().unwrap()).arg("--exact").arg(test).arg("--nocapture").arg("--test-threads=1");
    let o = run_with_limit(c, Duration::from_secs(300));
    let (so, se) = text(&o);
    assert!(o.status.success(), "{test} under {np} ranks failed\nstdout:\n{so}\nstderr:\n{se}");
    assert!(so.contains("CHILD-OK") || se.contains("CHILD-OK"), "the child did not run its checks:\n{so}\n{se}");
}

fn synthetic(n: usize) -> data::Splits {
    data::load(DatasetKind::Synthetic, None, &SyntheticSpec { num_classes: 10, train_size: n, test_size: 10, seed: 5 }).unwrap()
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> (f64, usize) {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-12);
    let mut worst = (0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (*x as f64 - *y as f64).abs() / scale;
        if d > worst.0 {
            worst = (d, i);
        }
    }
    worst
}

fn batches_from_env() -> Vec<usize> {
    std::env::var("SCADLES_TEST_BATCHES").unwrap().split(',').map(|v| v.parse().unwrap()).collect()
}

/// Child: weighted aggregation with the given per-rank batches; compares the aggregated gradient
/// with the union-batch gradient, then one ScaDLES SGD step with the union-batch step.
#[test]
fn child_weighted_aggregation() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let world = World::init();
    let (rank, n) = (world.rank(), world.size());
    let b = batches_from_env();
    assert_eq!(b.len(), n);
    let splits = synthetic(512);
    let offsets: Vec<usize> = b.iter().scan(0, |s, &x| { let o = *s; *s += x; Some(o) }).collect();
    let total: usize = b.iter().sum();
    let mine: Vec<usize> = (offsets[rank]..offsets[rank] + b[rank]).collect();
    let union: Vec<usize> = (0..total).collect();
    let cfg = RunConfig::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut model = models::build("tinycnn", Shape::Cifar, 10, 3).unwrap();
    let mut reference = models::build("tinycnn", Shape::Cifar, 10, 3).unwrap();
    let mut xb = Vec::new();
    let none = Received::default();
    // Weighted aggregate (Eq. 4a–4b) across ranks.
    let (bl, _) = local_gradient(&mut model, &splits.train, &splits.norm, &mine, &none, false, &mut rng, &mut xb);
    assert_eq!(bl, b[rank]);
    let global_b = world.allreduce_sum_f64(&[bl as f64])[0] as usize;
    assert_eq!(global_b, total);
    let mut agg = Aggregator::new(&cfg, &model.store).unwrap();
    let mut grads = std::mem::take(&mut model.store.grads);
    agg.aggregate(&world, &mut grads, bl as f32 / global_b as f32, 1, 0).unwrap();
    model.store.grads = grads;
    // The union batch in this one process.
    local_gradient(&mut reference, &splits.train, &splits.norm, &union, &none, false, &mut rng, &mut xb);
    let (d, at) = max_rel_diff(&model.store.grads, &reference.store.grads);
    assert!(d < 1e-4, "rank {rank}: aggregated gradient differs from the union-batch gradient by {d:e} (relative to max) at {at}");
    // One ScaDLES step with η·Σb/B equals the union-batch step at the same rate.
    let lr = optim::scaled_lr(0.1, global_b, 64 * n) as f32;
    let mut o1 = Sgd::new(model.num_params(), 0.9, 1e-4);
    let mut o2 = Sgd::new(model.num_params(), 0.9, 1e-4);
    o1.step(&mut model.store.params, &model.store.grads, lr);
    o2.step(&mut reference.store.params, &reference.store.grads, lr);
    let (d, _) = max_rel_diff(&model.store.params, &reference.store.params);
    assert!(d < 1e-5, "parameters after the step differ by {d:e}");
    println!("CHILD-OK rank {rank} batches {b:?}");
    World::finalize();
}

/// Child: k steps of the conventional baseline (equal batch b per rank, plain average) against one
/// process training on the union batch of all ranks.
#[test]
fn child_data_parallel_steps() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let world = World::init();
    let (rank, n) = (world.rank(), world.size());
    let (b, k) = (12usize, 4u64);
    let splits = synthetic(512);
    let cfg = RunConfig::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut model = models::build("tinycnn", Shape::Cifar, 10, 9).unwrap();
    let mut reference = models::build("tinycnn", Shape::Cifar, 10, 9).unwrap();
    let mut o1 = Sgd::new(model.num_params(), 0.9, 5e-4);
    let mut o2 = Sgd::new(model.num_params(), 0.9, 5e-4);
    let mut agg = Aggregator::new(&cfg, &model.store).unwrap();
    let (mut xb, none) = (Vec::new(), Received::default());
    for step in 0..k as usize {
        let base = step * n * b;
        let mine: Vec<usize> = (base + rank * b..base + (rank + 1) * b).collect();
        let union: Vec<usize> = (base..base + n * b).collect();
        local_gradient(&mut model, &splits.train, &splits.norm, &mine, &none, false, &mut rng, &mut xb);
        let mut g = std::mem::take(&mut model.store.grads);
        agg.aggregate(&world, &mut g, 1.0 / n as f32, step as u64 + 1, 0).unwrap();
        model.store.grads = g;
        o1.step(&mut model.store.params, &model.store.grads, 0.05);
        local_gradient(&mut reference, &splits.train, &splits.norm, &union, &none, false, &mut rng, &mut xb);
        o2.step(&mut reference.store.params, &reference.store.grads, 0.05);
    }
    // Relative to the largest parameter. The Winograd convolutions round differently for a
    // 12-image and a 24-image batch (their weight gradient sums transformed tiles), which leaves
    // about 1e-5 after 4 steps; a wrong weight or a missing rank's gradient gives above 1e-3.
    let (d, at) = max_rel_diff(&model.store.params, &reference.store.params);
    assert!(d < 5e-5, "rank {rank}: after {k} steps the parameters differ from the union-batch run by {d:e} at {at}");
    println!("CHILD-OK rank {rank} max relative parameter difference {d:e}");
    World::finalize();
}

#[test]
fn two_ranks_match_one_process_on_the_union_batch() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    launch(2, "child_data_parallel_steps", &[]);
}

#[test]
fn weighted_aggregation_equals_union_gradient_with_three_and_four_ranks() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    launch(3, "child_weighted_aggregation", &[("SCADLES_TEST_BATCHES", "17,0,40")]);
    launch(4, "child_weighted_aggregation", &[("SCADLES_TEST_BATCHES", "8,33,0,64")]);
}
