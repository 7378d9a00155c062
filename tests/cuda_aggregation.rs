//! The aggregation on the GPU (`train::device_grads`: scale, error-feedback residual, per-scope
//! radix top-k, norms, exact sparse exchange with rank-ordered scatter-add, AR-Topk, dense
//! allreduce through pinned staging, or on device memory with a CUDA-aware MPI) against the host
//! aggregation, step by step under
//! `mpirun -np 2`: the same random gradients go through both on every rank and the aggregated
//! gradients, the dense/sparse decisions and the pair counts must agree. Several steps in a row
//! check the residuals too, since each step's selection depends on the residual the last one left.
//! Adaptive steps must also agree on each rank's criterion and on the vote count, under both the
//! paper's criterion and the reference code's (`--criterion code`: norms of the raw gradient,
//! votes ≥ ⌊N/2⌋, no warm-up, dense steps that send the raw gradient); the epoch changes every
//! three steps, so the code criterion's running mean is reset too.
//! Without a GPU the test runs on the emulated GPU (`common::gpu`), its MPI ranks included.
mod common;
use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use scadles::backend::cuda::{probe, CudaBackend};
use scadles::compress::{Compression, Criterion, TopkScope};
use scadles::config::{RunConfig, SparseMode};
use scadles::dist::World;
use scadles::models::{self, Shape};
use scadles::train::device_grads::{DeviceCompression, DeviceGrads};
use scadles::train::Aggregator;
use std::time::Duration;

const CHILD: &str = "SCADLES_CUDA_AGG_CHILD";
const OK_MARK: &str = "CUDA-AGG-OK";

#[test]
fn gpu_aggregation_equals_host_aggregation_under_mpirun() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if !common::gpu::here("cuda_aggregation") {
        return;
    }
    let mut c = mpirun(2);
    c.env(CHILD, "1");
    c.arg(std::env::current_exe().unwrap())
        .arg("--exact")
        .arg("child_cuda_aggregation")
        .arg("--nocapture")
        .arg("--test-threads=1");
    let o = run_with_limit(c, Duration::from_secs(300));
    let (so, se) = text(&o);
    eprintln!("{so}\n{se}");
    assert!(
        o.status.success(),
        "the GPU aggregation check failed under 2 ranks"
    );
    assert_eq!(
        so.matches(OK_MARK).count(),
        2,
        "both ranks must report success"
    );
}

/// One configuration: `steps` steps of the same random gradients through the host and the device
/// aggregation. Returns (compressed steps, dense steps) for the coverage check.
fn check(
    world: &World,
    be: &CudaBackend,
    what: &str,
    cfg: &RunConfig,
    cuda_aware: bool,
    steps: u64,
    fails: &mut Vec<String>,
) -> (u32, u32) {
    let model = models::build(&cfg.model, Shape::Cifar, 10, 1).unwrap();
    let n = model.num_params();
    let mut host = Aggregator::new(cfg, &model.store).unwrap();
    let mut dev = Aggregator::new(cfg, &model.store).unwrap();
    let mut g_dev = be.zeros::<f32>(n).unwrap();
    let mut staging = be.pinned(n).unwrap();
    let mut comp = DeviceCompression::default();
    let rank = world.rank();
    let weight = if rank == 0 { 0.25f32 } else { 0.75 };
    let (mut sparse_steps, mut dense_steps) = (0, 0);
    for step in 1..=steps {
        // Per-tensor magnitudes that differ by orders, so per-layer and global top-k differ.
        let mut rng = StdRng::seed_from_u64(1000 * step + rank as u64);
        let mut g = vec![0.0f32; n];
        for (t, r) in model.store.ranges().into_iter().enumerate() {
            let s = 10f32.powi(t as i32 % 4 - 2);
            g[r].iter_mut()
                .for_each(|v| *v = s * (rng.gen::<f32>() - 0.5));
        }
        be.upload_into(&g, &mut g_dev.slice_mut(..)).unwrap();
        let epoch = (step - 1) / 3;
        let hs = host.aggregate(world, &mut g, weight, step, epoch).unwrap();
        let mut side = DeviceGrads {
            be,
            g: g_dev.slice_mut(..),
            staging: &mut staging,
            comp: &mut comp,
            feedback: cfg.ef,
            cuda_aware,
        };
        let ds = dev
            .aggregate_on(world, &mut side, weight, step, epoch)
            .unwrap();
        let got = be.download(&g_dev).unwrap();
        if hs.compressed != ds.compressed
            || hs.counts != ds.counts
            || hs.values_total != ds.values_total
        {
            fails.push(format!(
                "{what} step {step}: host sent {hs:?}, device {ds:?}"
            ));
        }
        // The criterion's norms are f64 sums in a different order on each side.
        let same_c = match (hs.criterion, ds.criterion) {
            (Some(h), Some(d)) => (h - d).abs() <= 1e-9 * h.abs().max(1e-300),
            (h, d) => h.is_none() && d.is_none(),
        };
        if !same_c || hs.votes != ds.votes {
            fails.push(format!(
                "{what} step {step}: host criterion {:?} with {:?} votes, device {:?} with {:?}",
                hs.criterion, hs.votes, ds.criterion, ds.votes
            ));
        }
        let scale = g.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let (at, err) = got
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0.0f32), |m, (i, e)| if e > m.1 { (i, e) } else { m });
        // The same roundings on both sides (scale, one add, top-k, rank-ordered sums); allow a
        // last-bit difference from the sums of a dense allreduce.
        if err > 1e-6 * scale {
            fails.push(format!("{what} step {step}: aggregated gradient differs by {err:e} at {at} (host {}, device {}; max {scale:e})", g[at], got[at]));
        }
        if hs.compressed {
            sparse_steps += 1;
        } else {
            dense_steps += 1;
        }
        if rank == 0 {
            println!(
                "{what} step {step}: {} max diff {err:e} (max {scale:e}), criterion {:?}, votes {:?}",
                if hs.compressed { "sparse" } else { "dense" },
                hs.criterion,
                hs.votes
            );
        }
    }
    (sparse_steps, dense_steps)
}

#[test]
fn child_cuda_aggregation() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let world = World::init();
    let devices = probe().expect("the parent saw a GPU");
    let be = CudaBackend::new(world.rank() % devices)
        .unwrap_or_else(|e| panic!("GPU found but unusable: {e}"));
    let mut fails = Vec::new();
    let base = RunConfig {
        cr: 0.05,
        warmup_steps: 2,
        ..RunConfig::default()
    };
    let cases: Vec<(&str, RunConfig)> = vec![
        (
            "dense",
            RunConfig {
                compression: Compression::None,
                ..base.clone()
            },
        ),
        (
            "topk layer ef",
            RunConfig {
                compression: Compression::Topk,
                ..base.clone()
            },
        ),
        (
            "topk global ef",
            RunConfig {
                compression: Compression::Topk,
                topk_scope: TopkScope::Global,
                ..base.clone()
            },
        ),
        (
            "topk layer no-ef",
            RunConfig {
                compression: Compression::Topk,
                ef: false,
                ..base.clone()
            },
        ),
        (
            "adaptive delta 0.3",
            RunConfig {
                compression: Compression::Adaptive,
                delta: 0.3,
                ..base.clone()
            },
        ),
        (
            "adaptive delta 0.99",
            RunConfig {
                compression: Compression::Adaptive,
                delta: 0.99,
                ..base.clone()
            },
        ),
        (
            "adaptive code delta 0.3",
            RunConfig {
                compression: Compression::Adaptive,
                criterion: Criterion::Code,
                delta: 0.3,
                ..base.clone()
            },
        ),
        (
            "adaptive code delta 0.6",
            RunConfig {
                compression: Compression::Adaptive,
                criterion: Criterion::Code,
                delta: 0.6,
                ..base.clone()
            },
        ),
        (
            "adaptive code no-ef",
            RunConfig {
                compression: Compression::Adaptive,
                criterion: Criterion::Code,
                delta: 0.6,
                ef: false,
                ..base.clone()
            },
        ),
        (
            "ar-topk ef",
            RunConfig {
                compression: Compression::Topk,
                sparse_mode: SparseMode::ArTopk,
                ..base.clone()
            },
        ),
    ];
    // resnet18's 11.2M values make a dense step's staged exchange run in three 4M-value chunks
    // (copy of one chunk overlapping the allreduce of the previous); sparse steps on it exercise
    // the segmented top-k over 62 tensors.
    let r18 = RunConfig {
        model: "resnet18".into(),
        ..base.clone()
    };
    let cases: Vec<(&str, RunConfig)> = cases
        .into_iter()
        .chain([
            (
                "resnet18 dense, chunked staging",
                RunConfig {
                    compression: Compression::None,
                    ..r18.clone()
                },
            ),
            (
                "resnet18 adaptive",
                RunConfig {
                    compression: Compression::Adaptive,
                    delta: 0.99,
                    ..r18.clone()
                },
            ),
        ])
        .collect();
    let (mut sparse, mut dense) = (0, 0);
    let (mut code_sparse, mut code_dense) = (0, 0);
    for (what, cfg) in &cases {
        let (s, d) = check(&world, &be, what, cfg, false, 6, &mut fails);
        sparse += s;
        dense += d;
        if cfg.compression == Compression::Adaptive && cfg.criterion == Criterion::Code {
            code_sparse += s;
            code_dense += d;
        }
    }
    // Dense and adaptive steps with the device buffer handed to MPI, where the library allows it,
    // and always on the emulated GPU, whose device memory is host memory that any MPI can read.
    if world.all(scadles::dist::mpi_cuda_support() || common::gpu::emulated()) {
        for (what, cfg) in cases
            .iter()
            .filter(|(w, _)| w.starts_with("dense") || w.starts_with("adaptive"))
        {
            check(
                &world,
                &be,
                &format!("{what}, CUDA-aware MPI"),
                cfg,
                true,
                6,
                &mut fails,
            );
        }
    } else if world.is_root() {
        println!("the MPI library is not CUDA-aware: dense steps were checked through pinned staging only");
    }
    if sparse == 0 || dense == 0 {
        fails.push(format!(
            "coverage: {sparse} sparse and {dense} dense steps; both kinds must run"
        ));
    }
    if code_sparse == 0 || code_dense == 0 {
        fails.push(format!(
            "coverage: {code_sparse} sparse and {code_dense} dense steps under the code criterion; both kinds must run"
        ));
    }
    common::finish_child(&world, &fails, OK_MARK);
}
