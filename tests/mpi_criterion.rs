//! The reference code's adaptive rule (`--criterion code`) through the real aggregation under
//! mpirun, at 1, 2 and 3 ranks: the decisions of a hand-worked scenario, and every step's
//! criterion, vote count, decision and aggregate against a serial re-implementation of the
//! reference (`launch/adaptive_compression.py`, spec §3.5 [C]) that simulates every rank.
//!
//! The values are small dyadic numbers and the weights r_i powers of two or 3/4, so every f32 sum
//! is exact and the aggregates must agree to the bit.
mod common;
use common::*;
use scadles::compress::{Compression, Criterion};
use scadles::config::RunConfig;
use scadles::dist::World;
use scadles::nn::{Init, ParamStore};
use scadles::train::Aggregator;
use std::ops::Range;
use std::time::Duration;

const CHILD: &str = "SCADLES_MPI_CRITERION_CHILD";
const OK_MARK: &str = "CRITERION-OK";

fn launch(np: usize) {
    let mut c = mpirun(np);
    c.env(CHILD, "1");
    c.arg(std::env::current_exe().unwrap())
        .arg("--exact")
        .arg("child_code_criterion")
        .arg("--nocapture")
        .arg("--test-threads=1");
    let o = run_with_limit(c, Duration::from_secs(300));
    let (so, se) = text(&o);
    assert!(
        o.status.success(),
        "the code criterion under {np} ranks failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    assert_eq!(
        so.matches(OK_MARK).count(),
        np,
        "every rank must report success:\n{so}\n{se}"
    );
}

#[test]
fn code_criterion_under_mpirun_with_one_two_and_three_ranks() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    for np in [1, 2, 3] {
        launch(np);
    }
}

/// A parameter store whose tensors have the given sizes (the top-k scopes of the layer scope).
fn store(sizes: &[usize]) -> ParamStore {
    let mut s = ParamStore::new(0);
    for (i, &n) in sizes.iter().enumerate() {
        s.alloc(&format!("t{i}"), &[n], Init::Const(0.0));
    }
    s.finish();
    s
}

/// r_i of each rank: dyadic, summing to 1.
fn weights(n: usize) -> Vec<f32> {
    match n {
        1 => vec![1.0],
        2 => vec![0.25, 0.75],
        3 => vec![0.25, 0.25, 0.5],
        _ => panic!("this test runs at 1 to 3 ranks"),
    }
}

/// One rank of the serial reference: its residual (`ResidualMemory`, β = 1) and its
/// `AverageMeter` (sum, count, and the epoch it was last reset in).
#[derive(Clone)]
struct RefRank {
    res: Vec<f32>,
    sum: f64,
    count: u64,
    epoch: Option<u64>,
}

struct RefStep {
    c: Vec<f64>,
    votes: u64,
    compress: bool,
    agg: Vec<f32>,
}

/// Indices of the k largest |a| (lower index first among equals), ascending.
fn ref_topk(a: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by(|&i, &j| a[j].abs().partial_cmp(&a[i].abs()).unwrap().then(i.cmp(&j)));
    let mut sel = order[..k].to_vec();
    sel.sort_unstable();
    sel
}

/// One iteration of the reference code on every rank; `scaled[r]` is rank r's r_i·g.
fn reference_step(
    ranks: &mut [RefRank],
    tensors: &[Range<usize>],
    cr: f64,
    delta: f64,
    epoch: u64,
    scaled: &[Vec<f32>],
) -> RefStep {
    let n = scaled[0].len();
    let mut cs = Vec::new();
    let mut votes = 0u64;
    let mut sparse = Vec::new();
    for (r, st) in ranks.iter_mut().enumerate() {
        let g = &scaled[r];
        let norm = |x: &[f32]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        // og_norm over the raw gradient, before compensate.
        let og: f64 = tensors.iter().map(|t| norm(&g[t.clone()])).sum();
        // compensate: a = g + residual; top-k per tensor; residual = a − decompress(top-k).
        let a: Vec<f32> = g.iter().zip(&st.res).map(|(x, y)| x + y).collect();
        let mut sel = Vec::new();
        let mut comp = 0.0f64;
        for t in tensors {
            let k = ((t.len() as f64 * cr) as usize).max(1);
            let s = ref_topk(&a[t.clone()], k);
            let vals: Vec<f32> = s.iter().map(|&i| a[t.start + i]).collect();
            comp += norm(&vals);
            sel.extend(s.iter().map(|&i| t.start + i));
        }
        let c = (og - comp).abs() / og;
        if st.epoch != Some(epoch) {
            st.epoch = Some(epoch);
            st.sum = 0.0;
            st.count = 0;
        }
        st.sum += c;
        st.count += 1;
        if st.sum / st.count as f64 <= delta {
            votes += 1;
        }
        let mut res = a.clone();
        for &i in &sel {
            res[i] = 0.0;
        }
        st.res = res;
        sparse.push(sel.iter().map(|&i| (i, a[i])).collect::<Vec<_>>());
        cs.push(c);
    }
    let compress = votes >= ranks.len() as u64 / 2;
    let mut agg = vec![0.0f32; n];
    if compress {
        for pairs in &sparse {
            for &(i, v) in pairs {
                agg[i] += v;
            }
        }
    } else {
        // The dense path sends the raw (scaled) gradient, not g + residual.
        for g in scaled {
            for i in 0..n {
                agg[i] += g[i];
            }
        }
    }
    RefStep {
        c: cs,
        votes,
        compress,
        agg,
    }
}

/// Runs `steps` (rank → raw gradient, epoch) through the aggregation on this rank and through the
/// serial reference; returns the decisions, with every disagreement pushed to `fails`.
fn run_case(
    world: &World,
    what: &str,
    sizes: &[usize],
    cfg: &RunConfig,
    steps: &[(Vec<Vec<f32>>, u64)],
    fails: &mut Vec<String>,
) -> Vec<bool> {
    let (rank, n) = (world.rank(), world.size());
    let st = store(sizes);
    let tensors = st.ranges();
    let mut agg = Aggregator::new(cfg, &st).unwrap();
    let w = weights(n);
    let len = st.num_params();
    let mut refs = vec![
        RefRank {
            res: vec![0.0; len],
            sum: 0.0,
            count: 0,
            epoch: None
        };
        n
    ];
    let mut decisions = Vec::new();
    for (s, (raw, epoch)) in steps.iter().enumerate() {
        let step = s as u64 + 1;
        let scaled: Vec<Vec<f32>> = raw
            .iter()
            .zip(&w)
            .map(|(g, &wi)| g.iter().map(|v| v * wi).collect())
            .collect();
        let want = reference_step(&mut refs, &tensors, cfg.cr, cfg.delta, *epoch, &scaled);
        let mut g = raw[rank].clone();
        let sent = agg.aggregate(world, &mut g, w[rank], step, *epoch).unwrap();
        let c = sent
            .criterion
            .expect("adaptive steps report their criterion");
        if (c - want.c[rank]).abs() > 1e-12 {
            fails.push(format!(
                "{what} step {step}: c {c} vs reference {}",
                want.c[rank]
            ));
        }
        if sent.votes != Some(want.votes) || sent.compressed != want.compress {
            fails.push(format!(
                "{what} step {step}: votes {:?}, compressed {} vs reference {} votes, compressed {}",
                sent.votes, sent.compressed, want.votes, want.compress
            ));
        }
        if g != want.agg {
            fails.push(format!(
                "{what} step {step}: aggregate {g:?} vs reference {:?}",
                want.agg
            ));
        }
        decisions.push(sent.compressed);
    }
    decisions
}

#[test]
fn child_code_criterion() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let world = World::init();
    let (rank, n) = (world.rank(), world.size());
    let mut fails = Vec::new();

    // Hand-worked: tensors of 3 and 4 values, CR 0.5 (k = 1 and 2), δ = 0.15, and the default
    // `warmup_steps` of 10, which the code form ignores. Rank 0's gradient is concentrated
    // (top-k keeps all of it), the others' spread evenly.
    let conc = vec![4.0f32, 0.0, 0.0, 4.0, -4.0, 0.0, 0.0];
    let spread = vec![1.0f32; 7];
    let cfg = RunConfig {
        compression: Compression::Adaptive,
        criterion: Criterion::Code,
        cr: 0.5,
        delta: 0.15,
        ..RunConfig::default()
    };
    assert_eq!(cfg.warmup_steps, 10);
    let with = |r0: &Vec<f32>| -> Vec<Vec<f32>> {
        (0..n)
            .map(|r| if r == 0 { r0.clone() } else { spread.clone() })
            .collect()
    };
    // Step 1 (epoch 0): rank 0 c = 0 (votes 1); a spread rank c = |√3+2 − (1+√2)|/(√3+2)
    //   = 0.35311 (votes 0). One vote: 1 ≥ ⌊2/2⌋ and 1 ≥ ⌊3/2⌋ compress — on the first step,
    //   with no warm-up.
    // Step 2 (epoch 1, means reset): all spread. Rank 0 (residual 0) c = 0.35311; a spread rank,
    //   residual [0,1,1|0,0,1,1]·r_i, keeps 2 and 2,2: c = |√3+2 − (2+2√2)|/(√3+2) = 0.29377.
    //   No votes: dense for N = 2, 3, and the aggregate is Σ r_i·spread = all ones, the raw
    //   gradient (g + residual would add the residuals). N = 1: 0 ≥ 0 compresses.
    // Step 3 (epoch 1): rank 0 concentrated again, c = 0, but its epoch mean is
    //   (0.35311 + 0)/2 = 0.17656 > δ, so it votes 0 and N = 2, 3 stay dense. Without the reset
    //   the mean would be 0.11770 ≤ δ: one vote, compress.
    // Step 4 (epoch 2, reset): rank 0 concentrated, mean 0: one vote, compress.
    let hand = vec![
        (with(&conc), 0),
        (with(&spread), 1),
        (with(&conc), 1),
        (with(&conc), 2),
    ];
    let got = run_case(&world, "hand", &[3, 4], &cfg, &hand, &mut fails);
    let want = if n == 1 {
        vec![true; 4]
    } else {
        vec![true, false, false, true]
    };
    if got != want {
        fails.push(format!("hand: decisions {got:?}, documented {want:?}"));
    }
    // Step 1's c, against the hand values.
    {
        let mut agg = Aggregator::new(&cfg, &store(&[3, 4])).unwrap();
        let mut g = with(&conc)[rank].clone();
        let sent = agg
            .aggregate(&world, &mut g, weights(n)[rank], 1, 0)
            .unwrap();
        let c = sent.criterion.unwrap();
        let hand_c = if rank == 0 { 0.0 } else { 0.3531134256058653 };
        if (c - hand_c).abs() > 1e-12 {
            fails.push(format!("hand step 1: c {c}, by hand {hand_c}"));
        }
        if sent.votes != Some(1) {
            fails.push(format!("hand step 1: {:?} votes, expected 1", sent.votes));
        }
    }
    // The paper form on step 1 (warm-up off): the same single vote is no strict majority for
    // N = 2, 3.
    if n > 1 {
        let paper = RunConfig {
            criterion: Criterion::Paper,
            warmup_steps: 0,
            ..cfg.clone()
        };
        let mut agg = Aggregator::new(&paper, &store(&[3, 4])).unwrap();
        let mut g = with(&conc)[rank].clone();
        let sent = agg
            .aggregate(&world, &mut g, weights(n)[rank], 1, 0)
            .unwrap();
        if sent.compressed || sent.votes != Some(1) {
            fails.push(format!(
                "paper step 1: compressed {} with {:?} votes; expected dense with 1",
                sent.compressed, sent.votes
            ));
        }
    }

    // Random: three tensors (5, 11, 4 values; CR 0.3 gives k = 1, 3, 1), values in steps of 1/8,
    // some ranks and steps with a few large entries; epochs change every 4 steps.
    let sizes = [5usize, 11, 4];
    let len: usize = sizes.iter().sum();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let steps: Vec<(Vec<Vec<f32>>, u64)> = (0..12u64)
        .map(|s| {
            let grads = (0..n)
                .map(|_| {
                    let spiky = next() % 2 == 0;
                    (0..len)
                        .map(|_| {
                            let small = (next() % 17) as f32 / 8.0 - 1.0;
                            if spiky && next() % 5 == 0 {
                                small * 16.0
                            } else {
                                small
                            }
                        })
                        .collect()
                })
                .collect();
            (grads, s / 4)
        })
        .collect();
    let random = RunConfig {
        cr: 0.3,
        delta: 0.1,
        ..cfg.clone()
    };
    let got = run_case(&world, "random", &sizes, &random, &steps, &mut fails);
    if rank == 0 {
        println!("random decisions at {n} ranks: {got:?}");
    }
    if n > 1 && (!got.contains(&true) || !got.contains(&false)) {
        fails.push(format!("random: decisions {got:?}; both kinds must occur"));
    }
    finish_child(&world, &fails, OK_MARK);
}
