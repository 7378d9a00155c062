//! GPU timings behind `scadles bench topk --device cuda` and `scadles bench gemm --device cuda`
//! (the training step's is `net::bench_step`). Each kernel is checked against a host reference
//! before it is timed; timings are wall-clock between stream synchronisations, median of `reps`.
//! `scripts/bench_topk_torch.py` and `scripts/bench_gemm_torch.py` time PyTorch the same way and
//! `scripts/gpu_ratios.py` joins the lines.
use std::time::Instant;

use cudarc::driver::CudaSlice;

use super::ops::CudaBackend;
use crate::compress::bench::{random_normal, TopkBenchRow};
use crate::compress::topk::k_for;
use crate::error::Result;
use crate::train::bench::{
    gemm_sample_error, gemm_tolerance, iters_for, median, GemmBenchArgs, GemmBenchRow, GemmPrecision, TopkBenchArgs,
};

/// Seconds per call of `f`, called `iters` times back to back between two synchronisations.
fn time_calls(be: &CudaBackend, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    be.synchronize()?;
    let t = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    be.synchronize()?;
    Ok(t.elapsed().as_secs_f64() / iters.max(1) as f64)
}

/// `CudaBackend::topk` (radix select + compaction, output allocation included) on an N(0,1)
/// device buffer of `a.n` values, the same buffer as the CPU bench (seed 42). For each ratio:
/// one untimed call whose (index, value) pairs must equal the CPU top-k's, then `a.reps` timed
/// calls, each between synchronisations.
pub fn topk(a: &TopkBenchArgs, ordinal: usize) -> Result<()> {
    let be = CudaBackend::new(ordinal)?;
    let reps = a.reps.max(1);
    println!(
        "# top-k on {} ({}): radix select + compaction of {} N(0,1) f32 on the device, checked against the CPU top-k, median of {reps} synchronised calls",
        be.name()?,
        be.arch(),
        a.n
    );
    let x = random_normal(a.n, 42);
    let dx = be.upload(&x)?;
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    for &cr in &a.cr {
        let k = k_for(a.n, cr);
        let (gi, gv) = be.topk(&dx.as_view(), k)?;
        crate::compress::topk(&x, k, &mut idx, &mut val);
        let (gi, gv) = (be.download(&gi)?, be.download(&gv)?);
        if gi[..k.min(gi.len())] != idx[..] || gv[..k.min(gv.len())] != val[..] {
            let first = idx.iter().zip(&gi).position(|(c, g)| c != g);
            crate::bail!(
                Cuda,
                "bench topk: the GPU top-k of n={} k={k} differs from the CPU's (first differing index position: {first:?})",
                a.n
            );
        }
        let times = (0..reps)
            .map(|_| time_calls(&be, 1, || be.topk(&dx.as_view(), k).map(|_| ())))
            .collect::<Result<Vec<f64>>>()?;
        let median_s = median(&times);
        let row = TopkBenchRow {
            implementation: "scadles".into(),
            device: "cuda".into(),
            n: a.n,
            cr,
            k,
            reps,
            median_s,
            elems_per_s: a.n as f64 / median_s,
        };
        println!("{row}");
    }
    Ok(())
}

/// `CudaBackend::gemm` (C = A·B, row-major, no transposes, beta 0) on N(0,1) operands for each
/// size and precision: fp32 runs `gemm_simt`, tf32 `gemm_tf32` (switched with
/// `set_tensor_cores`). One untimed call is checked against an f64 host reference on sampled
/// entries; a second sizes the timing loop (`iters_for`); then `a.reps` timings of `iters`
/// back-to-back calls.
pub fn gemm(a: &GemmBenchArgs, ordinal: usize) -> Result<()> {
    let mut be = CudaBackend::new(ordinal)?;
    let reps = a.reps.max(1);
    println!(
        "# GEMM on {} ({}): C = A·B row-major, no transposes, N(0,1) operands; fp32 = gemm_simt, tf32 = gemm_tf32 (tensor cores, FP32 accumulation); median of {reps} synchronised timings",
        be.name()?,
        be.arch()
    );
    for &s in &a.sizes {
        let ha = random_normal(s.m * s.k, 1);
        let hb = random_normal(s.k * s.n, 2);
        let da = be.upload(&ha)?;
        let db = be.upload(&hb)?;
        let mut dc = be.zeros::<f32>(s.m * s.n)?;
        for &p in &a.precision {
            be.set_tensor_cores(p == GemmPrecision::Tf32);
            if p == GemmPrecision::Tf32 && !be.tensor_cores() {
                println!("# {s} tf32: skipped ({} has no TF32 tensor cores; sm_80 or newer needed)", be.arch());
                continue;
            }
            let call = |be: &CudaBackend, c: &mut CudaSlice<f32>| {
                be.gemm(false, false, s.m, s.n, s.k, 1.0, &da.as_view(), s.k, &db.as_view(), s.n, 0.0, &mut c.as_view_mut(), s.n)
            };
            call(&be, &mut dc)?;
            let hc = be.download(&dc)?;
            let max_err = gemm_sample_error(&ha, &hb, &hc, s, 256);
            if max_err > gemm_tolerance(p) {
                crate::bail!(Cuda, "bench gemm: the {p} GEMM of {s} is wrong (sampled error {max_err:.3e}, tolerance {:.0e})", gemm_tolerance(p));
            }
            let iters = iters_for(time_calls(&be, 1, || call(&be, &mut dc))?);
            let times = (0..reps).map(|_| time_calls(&be, iters, || call(&be, &mut dc))).collect::<Result<Vec<f64>>>()?;
            let row = GemmBenchRow {
                device: "cuda".into(),
                precision: p,
                shape: s,
                reps,
                iters,
                median_s: median(&times),
                max_err,
            };
            println!("{row}");
        }
    }
    Ok(())
}
