//! Benchmarks behind `scadles bench topk` and `scadles bench exchange`.
//!
//! `bench_topk` times [`topk`] on an N(0,1) buffer (ResNet152's gradient has about 60M elements);
//! `scripts/bench_topk_torch.py` prints the same row format for `torch.topk(x.abs(), k,
//! sorted=False)` + gather, so the two can be compared line by line. The GPU top-k's timing
//! (`backend::cuda::bench::topk`) prints the same rows with `device=cuda`.
//!
//! `bench_exchange` times one dense SUM allreduce of n floats against the sparse exchanges at the
//! same compression ratio, and reports bytes from the following model (N ranks, k = k_for(n, cr),
//! 4-byte values and indices; counts and headers ignored):
//! - dense ring allreduce: per rank 2(N−1)/N · 4n, total 2(N−1) · 4n;
//! - sparse allgather of packed 8-byte (index, value) pairs (ring): per rank (N−1) · 8k, total
//!   N(N−1) · 8k (k is the same on every rank here, so no block padding);
//! - AR-Topk: broadcast of 4k index bytes to N−1 ranks plus a ring allreduce of k values: per rank
//!   (average) 3(N−1)/N · 4k, total 3(N−1) · 4k.
//!
//! These are the volumes the algorithms move, not measured wire bytes. With `dense_only` only the
//! dense allreduce is timed (Fig. 4(b)'s gradient synchronisation), which needs two gradient-sized
//! buffers per rank instead of three ([`exchange_resident_bytes`]).
use super::topk::{k_for, topk};
use crate::dist::sparse::{ar_topk_allreduce, sparse_allgather_add};
use crate::dist::World;
use crate::error::Result;
use crate::train::bench::median;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::fmt;
use std::time::Instant;

/// One top-k timing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopkBenchRow {
    pub implementation: String,
    /// `cpu` or `cuda`.
    pub device: String,
    pub n: usize,
    pub cr: f64,
    pub k: usize,
    pub reps: usize,
    /// Median seconds per call.
    pub median_s: f64,
    /// n / median_s.
    pub elems_per_s: f64,
}

impl fmt::Display for TopkBenchRow {
    /// `topk impl=<name> n=<n> cr=<cr> k=<k> reps=<r> median_s=<s> elems_per_s=<e> device=<d>`,
    /// the format `scripts/bench_topk_torch.py` prints too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topk impl={} n={} cr={} k={} reps={} median_s={:.6} elems_per_s={:.4e} device={}",
            self.implementation,
            self.n,
            self.cr,
            self.k,
            self.reps,
            self.median_s,
            self.elems_per_s,
            self.device
        )
    }
}

/// One exchange timing (all ranks return the same row).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExchangeBenchRow {
    pub ranks: usize,
    pub n: usize,
    pub cr: f64,
    pub k: usize,
    pub reps: usize,
    /// Median over reps of the slowest rank's time, seconds.
    pub dense_s: f64,
    /// `None` when only the dense allreduce was timed.
    pub sparse_s: Option<f64>,
    pub artopk_s: Option<f64>,
    /// Bytes per rank and in total, by the model in the module doc.
    pub dense_bytes_per_rank: f64,
    pub dense_bytes_total: f64,
    pub sparse_bytes_per_rank: f64,
    pub sparse_bytes_total: f64,
    pub artopk_bytes_per_rank: f64,
    pub artopk_bytes_total: f64,
}

impl fmt::Display for ExchangeBenchRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "exchange ranks={} n={} cr={} k={} reps={}",
            self.ranks, self.n, self.cr, self.k, self.reps
        )?;
        write!(
            f,
            "exchange mode=dense   median_s={:.6} bytes_per_rank={:.4e} bytes_total={:.4e}",
            self.dense_s, self.dense_bytes_per_rank, self.dense_bytes_total
        )?;
        if let Some(s) = self.sparse_s {
            write!(
                f,
                "\nexchange mode=sparse  median_s={:.6} bytes_per_rank={:.4e} bytes_total={:.4e} speedup_vs_dense={:.2}",
                s,
                self.sparse_bytes_per_rank,
                self.sparse_bytes_total,
                self.dense_s / s
            )?;
        }
        if let Some(s) = self.artopk_s {
            write!(
                f,
                "\nexchange mode=artopk  median_s={:.6} bytes_per_rank={:.4e} bytes_total={:.4e} speedup_vs_dense={:.2}",
                s,
                self.artopk_bytes_per_rank,
                self.artopk_bytes_total,
                self.dense_s / s
            )?;
        }
        Ok(())
    }
}

impl ExchangeBenchRow {
    /// The CSV header of [`ExchangeBenchRow::csv_rows`].
    pub const CSV_HEADER: &'static str = "ranks,n,bytes,mode,cr,k,reps,median_s,bytes_per_rank,bytes_total,note";

    /// One CSV line per timed mode (`dense`, then `sparse` and `artopk` when timed); `bytes` is the
    /// gradient's size, 4n. The dense line's cr and k are empty (it sends everything).
    pub fn csv_rows(&self) -> Vec<String> {
        let mut rows = vec![format!(
            "{},{},{},dense,,,{},{:.9},{:.6e},{:.6e},",
            self.ranks,
            self.n,
            4 * self.n,
            self.reps,
            self.dense_s,
            self.dense_bytes_per_rank,
            self.dense_bytes_total
        )];
        for (mode, t, per, total) in [
            ("sparse", self.sparse_s, self.sparse_bytes_per_rank, self.sparse_bytes_total),
            ("artopk", self.artopk_s, self.artopk_bytes_per_rank, self.artopk_bytes_total),
        ] {
            if let Some(t) = t {
                rows.push(format!(
                    "{},{},{},{mode},{},{},{},{t:.9},{per:.6e},{total:.6e},",
                    self.ranks,
                    self.n,
                    4 * self.n,
                    self.cr,
                    self.k,
                    self.reps
                ));
            }
        }
        rows
    }

    /// The CSV line of a size not measured: `note` says why (no commas).
    pub fn csv_skipped(ranks: usize, n: usize, note: &str) -> String {
        format!("{ranks},{n},{},dense,,,,,,,{}", 4 * n, note.replace(',', ";"))
    }
}

/// Bytes one rank of [`bench_exchange`] holds for `n` floats at compression ratio `cr` over
/// `ranks` ranks, counted generously: the gradient and the allreduce buffer (plus one more
/// gradient-sized copy for the MPI library's reduction temporary); without `dense_only` also the
/// dense accumulator, the top-k (index, value) pairs and the gathered pairs of every rank.
pub fn exchange_resident_bytes(n: usize, cr: f64, ranks: usize, dense_only: bool) -> f64 {
    let grad = 4.0 * n as f64;
    if dense_only {
        3.0 * grad
    } else {
        let k = k_for(n, cr) as f64;
        4.0 * grad + (ranks as f64 + 1.0) * 8.0 * k
    }
}

/// `n` draws from N(0,1), reproducible from `seed` (filled in parallel, fixed chunking).
pub fn random_normal(n: usize, seed: u64) -> Vec<f32> {
    const CHUNK: usize = 1 << 20;
    let mut x = vec![0f32; n];
    x.par_chunks_mut(CHUNK).enumerate().for_each(|(c, part)| {
        let mut rng = StdRng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for v in part {
            *v = StandardNormal.sample(&mut rng);
        }
    });
    x
}

/// Times `topk` on an N(0,1) buffer of `n` elements for each compression ratio: median of `reps`
/// calls (after one untimed call), elements per second = n / median.
pub fn bench_topk(n: usize, crs: &[f64], reps: usize) -> Vec<TopkBenchRow> {
    let x = random_normal(n, 42);
    let reps = reps.max(1);
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    crs.iter()
        .map(|&cr| {
            let k = k_for(n, cr);
            topk(&x, k, &mut idx, &mut val);
            let times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    topk(&x, k, &mut idx, &mut val);
                    t.elapsed().as_secs_f64()
                })
                .collect();
            let median_s = median(&times);
            TopkBenchRow {
                implementation: "scadles".into(),
                device: "cpu".into(),
                n,
                cr,
                k,
                reps,
                median_s,
                elems_per_s: n as f64 / median_s,
            }
        })
        .collect()
}

/// Runs `f` `reps` times between barriers; each rep's time is the slowest rank's.
fn time_collective(world: &World, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        world.barrier();
        let t = Instant::now();
        f()?;
        times.push(world.allreduce_max_f64(&[t.elapsed().as_secs_f64()])[0]);
    }
    Ok(median(&times))
}

/// Dense allreduce of `n` floats vs the sparse allgather exchange vs AR-Topk at `cr`, median of
/// `reps` (after one untimed round of each); with `dense_only` the dense allreduce alone. Top-k
/// selection is outside the timed region. Every rank must call it; all return the same row, which
/// the caller prints on rank 0.
pub fn bench_exchange(world: &World, n: usize, cr: f64, reps: usize, dense_only: bool) -> Result<ExchangeBenchRow> {
    let reps = reps.max(1);
    let ranks = world.size();
    let g = random_normal(n, 1000 + world.rank() as u64);
    let k = k_for(n, cr);
    let mut buf = g.clone();

    world.allreduce_sum_f32(&mut buf);
    let dense_s = time_collective(world, reps, || {
        buf.copy_from_slice(&g);
        world.allreduce_sum_f32(&mut buf);
        Ok(())
    })?;
    let (mut sparse_s, mut artopk_s) = (None, None);
    if !dense_only {
        drop(buf);
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        topk(&g, k, &mut idx, &mut val);
        let mut dense = vec![0f32; n];
        sparse_allgather_add(world, &idx, &val, &mut dense)?;
        sparse_s = Some(time_collective(world, reps, || {
            sparse_allgather_add(world, &idx, &val, &mut dense).map(|_| ())
        })?);
        let mut step = 0u64;
        ar_topk_allreduce(world, step, &idx, &g, &mut dense)?;
        artopk_s = Some(time_collective(world, reps, || {
            step += 1;
            ar_topk_allreduce(world, step, &idx, &g, &mut dense).map(|_| ())
        })?);
    }

    let (p, nf, kf) = (ranks as f64, n as f64, k as f64);
    Ok(ExchangeBenchRow {
        ranks,
        n,
        cr,
        k,
        reps,
        dense_s,
        sparse_s,
        artopk_s,
        dense_bytes_per_rank: 2.0 * (p - 1.0) / p * 4.0 * nf,
        dense_bytes_total: 2.0 * (p - 1.0) * 4.0 * nf,
        sparse_bytes_per_rank: (p - 1.0) * 8.0 * kf,
        sparse_bytes_total: p * (p - 1.0) * 8.0 * kf,
        artopk_bytes_per_rank: 3.0 * (p - 1.0) / p * 4.0 * kf,
        artopk_bytes_total: 3.0 * (p - 1.0) * 4.0 * kf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_buffer_has_unit_moments_and_is_reproducible() {
        let x = random_normal(200_000, 5);
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / x.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert_eq!(x, random_normal(200_000, 5));
    }

    #[test]
    fn exchange_rows_print_and_write_the_modes_timed() {
        let mut r = ExchangeBenchRow {
            ranks: 2,
            n: 1000,
            cr: 0.1,
            k: 100,
            reps: 3,
            dense_s: 0.5,
            sparse_s: None,
            artopk_s: None,
            dense_bytes_per_rank: 4000.0,
            dense_bytes_total: 8000.0,
            sparse_bytes_per_rank: 800.0,
            sparse_bytes_total: 1600.0,
            artopk_bytes_per_rank: 600.0,
            artopk_bytes_total: 1200.0,
        };
        assert_eq!(r.to_string().lines().count(), 2);
        assert_eq!(r.csv_rows(), vec!["2,1000,4000,dense,,,3,0.500000000,4.000000e3,8.000000e3,".to_string()]);
        r.sparse_s = Some(0.25);
        r.artopk_s = Some(0.125);
        let text = r.to_string();
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("mode=sparse  median_s=0.250000") && text.contains("speedup_vs_dense=4.00"), "{text}");
        let rows = r.csv_rows();
        assert_eq!(rows.len(), 3);
        assert!(rows[2].starts_with("2,1000,4000,artopk,0.1,100,3,0.125000000,"), "{}", rows[2]);
        let cols = ExchangeBenchRow::CSV_HEADER.split(',').count();
        assert!(rows.iter().all(|l| l.split(',').count() == cols));
        let skipped = ExchangeBenchRow::csv_skipped(4, 10, "needs 9 GiB, 5 GiB free");
        assert_eq!(skipped, "4,10,40,dense,,,,,,,needs 9 GiB; 5 GiB free");
        assert_eq!(skipped.split(',').count(), cols);
        // Dense-only holds three gradient-sized buffers; the full benchmark four plus the pairs.
        assert_eq!(exchange_resident_bytes(1000, 0.1, 4, true), 12_000.0);
        assert_eq!(exchange_resident_bytes(1000, 0.1, 4, false), 16_000.0 + 5.0 * 8.0 * 100.0);
    }

    #[test]
    fn topk_bench_rows() {
        let rows = bench_topk(50_000, &[0.1, 0.01], 3);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].k, rows[1].k), (5_000, 500));
        assert!(rows
            .iter()
            .all(|r| r.median_s > 0.0 && (r.elems_per_s * r.median_s - 50_000.0).abs() < 1e-3));
        assert!(rows[0]
            .to_string()
            .starts_with("topk impl=scadles n=50000 cr=0.1 k=5000 reps=3 "));
        assert!(rows[0].to_string().ends_with(" device=cpu"));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
