//! 2-D batch normalisation over NCHW (PyTorch `BatchNorm2d` semantics): per-channel statistics over
//! `(n, h, w)`, the biased variance normalises, the unbiased one feeds the running variance, and
//! `running = (1 − momentum)·running + momentum·batch`.
//!
//! Statistics are one pass of sums shifted by the channel's first value (which keeps
//! `E[(x−k)²] − E[x−k]²` free of cancellation for data far from zero), summed in f32 lanes over
//! short blocks and in f64 across blocks.
use super::{for_each_piece, PAR_MIN_ELEMS};
use rayon::prelude::*;

/// Block length summed in f32 before promotion to f64.
const BLOCK: usize = 256;

/// f32 lanes of the block sums: 16 lanes keep four SSE (two AVX) accumulators in flight.
const LANES: usize = 16;

/// `(Σ(x−k), Σ(x−k)²)` over `x`.
fn shifted_sums(x: &[f32], k: f32) -> (f64, f64) {
    let (mut s, mut ss) = (0.0f64, 0.0f64);
    if x.len() < LANES {
        // Tiny planes (4×4 … 1×1 late in the networks): lane set-up would cost more than the sums.
        for &v in x {
            let d = (v - k) as f64;
            s += d;
            ss += d * d;
        }
        return (s, ss);
    }
    for block in x.chunks(BLOCK) {
        let (mut a, mut b) = ([0.0f32; LANES], [0.0f32; LANES]);
        let mut it = block.chunks_exact(LANES);
        for c in &mut it {
            let c: &[f32; LANES] = c.try_into().expect("exact chunk");
            for l in 0..LANES {
                let d = c[l] - k;
                a[l] += d;
                b[l] += d * d;
            }
        }
        for &v in it.remainder() {
            let d = v - k;
            a[0] += d;
            b[0] += d * d;
        }
        s += a.iter().sum::<f32>() as f64;
        ss += b.iter().sum::<f32>() as f64;
    }
    (s, ss)
}

/// `(Σ dy, Σ dy·(x − mean))` over a plane.
fn grad_sums(x: &[f32], dy: &[f32], mean: f32) -> (f64, f64) {
    let (mut s, mut sx) = (0.0f64, 0.0f64);
    if x.len() < LANES {
        for (&v, &g) in x.iter().zip(dy) {
            s += g as f64;
            sx += g as f64 * (v - mean) as f64;
        }
        return (s, sx);
    }
    for (xb, gb) in x.chunks(BLOCK).zip(dy.chunks(BLOCK)) {
        let (mut a, mut b) = ([0.0f32; LANES], [0.0f32; LANES]);
        let (mut xi, mut gi) = (xb.chunks_exact(LANES), gb.chunks_exact(LANES));
        for (xc, gc) in (&mut xi).zip(&mut gi) {
            let xc: &[f32; LANES] = xc.try_into().expect("exact chunk");
            let gc: &[f32; LANES] = gc.try_into().expect("exact chunk");
            for l in 0..LANES {
                a[l] += gc[l];
                b[l] += gc[l] * (xc[l] - mean);
            }
        }
        for (&xv, &g) in xi.remainder().iter().zip(gi.remainder()) {
            a[0] += g;
            b[0] += g * (xv - mean);
        }
        s += a.iter().sum::<f32>() as f64;
        sx += b.iter().sum::<f32>() as f64;
    }
    (s, sx)
}

/// Runs `f(channel, a, b)` over the pairs of per-channel slices, in parallel when `work` is large.
fn per_channel<F>(a: &mut [f32], b: &mut [f32], work: usize, f: F)
where
    F: Fn(usize, &mut f32, &mut f32) + Sync + Send,
{
    if work < PAR_MIN_ELEMS {
        a.iter_mut()
            .zip(b.iter_mut())
            .enumerate()
            .for_each(|(ch, (a, b))| f(ch, a, b));
    } else {
        a.par_iter_mut()
            .zip(b.par_iter_mut())
            .enumerate()
            .for_each(|(ch, (a, b))| f(ch, a, b));
    }
}

/// `y = a_c·x + b_c` plane by plane, with `(a_c, b_c) = coef(c)`.
fn affine_planes(x: &[f32], y: &mut [f32], c: usize, hw: usize, coef: impl Fn(usize) -> (f32, f32) + Sync + Send) {
    // Once per channel, not per plane: planes of 4 or 1 values are common late in the networks.
    let coefs: Vec<(f32, f32)> = (0..c).map(coef).collect();
    for_each_piece(y, hw, x.len(), |plane, out| {
        let (a, b) = coefs[plane % c];
        for (o, &v) in out.iter_mut().zip(&x[plane * hw..][..hw]) {
            *o = a * v + b;
        }
    });
}

fn check_lengths(x: &[f32], n: usize, c: usize, hw: usize, gamma: &[f32], beta_or_mean: &[f32], y: &[f32]) {
    assert_eq!(x.len(), n * c * hw, "batchnorm2d: x length for n={n} c={c} hw={hw}");
    assert_eq!(y.len(), x.len(), "batchnorm2d: output length");
    assert_eq!(gamma.len(), c, "batchnorm2d: gamma length");
    assert_eq!(beta_or_mean.len(), c, "batchnorm2d: per-channel length");
}

/// Training-mode forward: normalises with the batch statistics, saves the batch mean and
/// `1/sqrt(var + eps)` for the backward, and updates the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_forward_train(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
) {
    check_lengths(x, n, c, hw, gamma, beta, y);
    assert!(
        running_mean.len() == c && running_var.len() == c,
        "batchnorm2d: running statistics length"
    );
    assert!(
        save_mean.len() == c && save_invstd.len() == c,
        "batchnorm2d: saved statistics length"
    );
    let m = n * hw;
    if m == 0 {
        return;
    }
    // Batch mean and biased variance per channel; save_invstd holds the variance until the
    // running update below has read it.
    per_channel(save_mean, save_invstd, x.len(), |ch, mean_out, var_out| {
        let k = x[ch * hw];
        let (mut s, mut ss) = (0.0, 0.0);
        for img in 0..n {
            let (a, b) = shifted_sums(&x[(img * c + ch) * hw..][..hw], k);
            s += a;
            ss += b;
        }
        let md = s / m as f64;
        *mean_out = (k as f64 + md) as f32;
        *var_out = (ss / m as f64 - md * md).max(0.0) as f32;
    });
    let mom = momentum as f64;
    for ch in 0..c {
        let var = save_invstd[ch] as f64;
        let unbiased = if m > 1 { var * m as f64 / (m - 1) as f64 } else { var };
        running_mean[ch] = ((1.0 - mom) * running_mean[ch] as f64 + mom * save_mean[ch] as f64) as f32;
        running_var[ch] = ((1.0 - mom) * running_var[ch] as f64 + mom * unbiased) as f32;
        save_invstd[ch] = (1.0 / (var + eps as f64).sqrt()) as f32;
    }
    affine_planes(x, y, c, hw, |ch| {
        let a = gamma[ch] * save_invstd[ch];
        (a, beta[ch] - save_mean[ch] * a)
    });
}

/// Evaluation-mode forward: normalises with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_forward_eval(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    check_lengths(x, n, c, hw, gamma, beta, y);
    assert!(
        running_mean.len() == c && running_var.len() == c,
        "batchnorm2d: running statistics length"
    );
    affine_planes(x, y, c, hw, |ch| {
        let a = gamma[ch] / (running_var[ch] + eps).sqrt();
        (a, beta[ch] - running_mean[ch] * a)
    });
}

/// Training-mode backward from the saved batch statistics:
/// `dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_backward(
    x: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    check_lengths(x, n, c, hw, gamma, save_mean, dx);
    assert_eq!(dy.len(), x.len(), "batchnorm2d: dy length");
    assert!(
        save_invstd.len() == c && dgamma.len() == c && dbeta.len() == c,
        "batchnorm2d: per-channel length"
    );
    let m = n * hw;
    if m == 0 {
        dgamma.fill(0.0);
        dbeta.fill(0.0);
        return;
    }
    per_channel(dgamma, dbeta, x.len(), |ch, dg, db| {
        let (mut s, mut sx) = (0.0, 0.0);
        for img in 0..n {
            let off = (img * c + ch) * hw;
            let (a, b) = grad_sums(&x[off..][..hw], &dy[off..][..hw], save_mean[ch]);
            s += a;
            sx += b;
        }
        *db = s as f32;
        *dg = (sx * save_invstd[ch] as f64) as f32;
    });
    // dx = k1·dy + a·x + b, folding the per-channel means into a and b.
    let coefs: Vec<(f32, f32, f32)> = (0..c)
        .map(|ch| {
            let inv = save_invstd[ch] as f64;
            let k1 = gamma[ch] as f64 * inv;
            let mdy = dbeta[ch] as f64 / m as f64;
            let mdyx = dgamma[ch] as f64 / m as f64; // mean(dy·x̂)
            let a = -k1 * inv * mdyx;
            let b = -k1 * mdy - a * save_mean[ch] as f64;
            (k1 as f32, a as f32, b as f32)
        })
        .collect();
    for_each_piece(dx, hw, 2 * x.len(), |plane, out| {
        let (k1, a, b) = coefs[plane % c];
        let off = plane * hw;
        for ((o, &g), &v) in out.iter_mut().zip(&dy[off..][..hw]).zip(&x[off..][..hw]) {
            *o = k1 * g + a * v + b;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    /// f64 train-mode forward; returns (y, mean, biased var).
    fn reference(
        x: &[f64],
        n: usize,
        c: usize,
        hw: usize,
        g: &[f64],
        b: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let m = (n * hw) as f64;
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        for ch in 0..c {
            for img in 0..n {
                for i in 0..hw {
                    mean[ch] += x[(img * c + ch) * hw + i];
                }
            }
            mean[ch] /= m;
            for img in 0..n {
                for i in 0..hw {
                    var[ch] += (x[(img * c + ch) * hw + i] - mean[ch]).powi(2);
                }
            }
            var[ch] /= m;
        }
        let mut y = vec![0.0; x.len()];
        for img in 0..n {
            for ch in 0..c {
                for i in 0..hw {
                    let j = (img * c + ch) * hw + i;
                    y[j] = (x[j] - mean[ch]) / (var[ch] + eps).sqrt() * g[ch] + b[ch];
                }
            }
        }
        (y, mean, var)
    }

    fn check_train(n: usize, c: usize, hw: usize, offset: f32, seed: u64) {
        let mut rng = rng(seed);
        let x: Vec<f32> = randv(&mut rng, n * c * hw).iter().map(|v| v * 2.0 + offset).collect();
        let gamma: Vec<f32> = randv(&mut rng, c).iter().map(|v| v + 1.5).collect();
        let beta = randv(&mut rng, c);
        let (eps, mom) = (1e-5f32, 0.1f32);
        let rm0 = randv(&mut rng, c);
        let rv0: Vec<f32> = randv(&mut rng, c).iter().map(|v| v + 2.0).collect();
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let mut y = vec![f32::NAN; x.len()];
        let (mut sm, mut si) = (vec![0.0; c], vec![0.0; c]);
        batchnorm2d_forward_train(
            &x, n, c, hw, &gamma, &beta, eps, mom, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
        );
        let (x64, g64, b64) = (to64(&x), to64(&gamma), to64(&beta));
        let (want, mean, var) = reference(&x64, n, c, hw, &g64, &b64, eps as f64);
        assert_close("bn train fwd", &y, &want, 1e-4, 1e-4);
        let m = (n * hw) as f64;
        let want_rm: Vec<f64> = (0..c).map(|ch| 0.9 * rm0[ch] as f64 + 0.1 * mean[ch]).collect();
        let want_rv: Vec<f64> = (0..c)
            .map(|ch| 0.9 * rv0[ch] as f64 + 0.1 * var[ch] * m / (m - 1.0))
            .collect();
        assert_close("bn running mean", &rm, &want_rm, 1e-5, 1e-5);
        assert_close("bn running var (unbiased)", &rv, &want_rv, 1e-5, 1e-5);
        assert_close("bn saved mean", &sm, &mean, 1e-5, 1e-5);
        let want_inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
        assert_close("bn saved invstd", &si, &want_inv, 1e-5, 1e-5);

        let r = randv(&mut rng, x.len());
        let r64 = to64(&r);
        let (mut dx, mut dg, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; c], vec![f32::NAN; c]);
        batchnorm2d_backward(&x, &r, n, c, hw, &gamma, &sm, &si, &mut dx, &mut dg, &mut db);
        let e = eps as f64;
        let ndx = numeric_grad(&x64, |xp| dot(&reference(xp, n, c, hw, &g64, &b64, e).0, &r64));
        let ndg = numeric_grad(&g64, |gp| dot(&reference(&x64, n, c, hw, gp, &b64, e).0, &r64));
        let ndb = numeric_grad(&b64, |bp| dot(&reference(&x64, n, c, hw, &g64, bp, e).0, &r64));
        assert_close("bn dx", &dx, &ndx, 1e-3, 1e-3);
        assert_close("bn dgamma", &dg, &ndg, 1e-3, 1e-3);
        assert_close("bn dbeta", &db, &ndb, 1e-3, 1e-3);
    }

    #[test]
    fn batchnorm_train_forward_backward_running_stats() {
        check_train(3, 4, 5, 0.0, 1);
        check_train(2, 3, 1, 0.5, 2); // 1×1 planes
        check_train(2, 5, 37, 0.0, 3); // plane longer than a lane block remainder
    }

    #[test]
    fn batchnorm_statistics_survive_a_large_offset() {
        // Data centred far from zero: a naive E[x²] − E[x]² in f32 would lose the variance.
        let (n, c, hw) = (2, 2, 300);
        let mut rng = rng(4);
        let x: Vec<f32> = randv(&mut rng, n * c * hw).iter().map(|v| v * 0.01 + 1000.0).collect();
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        let (mut sm, mut si, mut y) = (vec![0.0; c], vec![0.0; c], vec![0.0; x.len()]);
        batchnorm2d_forward_train(
            &x, n, c, hw, &[1.0; 2], &[0.0; 2], 1e-5, 0.1, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
        );
        let (_, mean, var) = reference(&to64(&x), n, c, hw, &[1.0; 2], &[0.0; 2], 1e-5);
        assert_close("bn offset mean", &sm, &mean, 1e-4, 1e-6);
        let want_inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        assert_close("bn offset invstd", &si, &want_inv, 1e-3, 1e-3);
    }

    #[test]
    fn batchnorm_eval_uses_running_stats() {
        let (n, c, hw) = (2, 3, 4);
        let mut rng = rng(5);
        let x = randv(&mut rng, n * c * hw);
        let gamma = randv(&mut rng, c);
        let beta = randv(&mut rng, c);
        let rm = randv(&mut rng, c);
        let rv: Vec<f32> = randv(&mut rng, c).iter().map(|v| v + 1.5).collect();
        let mut y = vec![f32::NAN; x.len()];
        batchnorm2d_forward_eval(&x, n, c, hw, &gamma, &beta, 1e-5, &rm, &rv, &mut y);
        let want: Vec<f64> = (0..x.len())
            .map(|j| {
                let ch = (j / hw) % c;
                (x[j] as f64 - rm[ch] as f64) / (rv[ch] as f64 + 1e-5).sqrt() * gamma[ch] as f64 + beta[ch] as f64
            })
            .collect();
        assert_close("bn eval", &y, &want, 1e-5, 1e-5);
    }

    #[test]
    fn batchnorm_parallel_size_matches_reference() {
        // Large enough to take the rayon path.
        let (n, c, hw) = (4, 8, 1100);
        let mut rng = rng(6);
        let x = randv(&mut rng, n * c * hw);
        let g = randv(&mut rng, c);
        let b = randv(&mut rng, c);
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        let (mut sm, mut si, mut y) = (vec![0.0; c], vec![0.0; c], vec![0.0; x.len()]);
        batchnorm2d_forward_train(
            &x, n, c, hw, &g, &b, 1e-5, 0.1, &mut rm, &mut rv, &mut y, &mut sm, &mut si,
        );
        let (want, _, _) = reference(&to64(&x), n, c, hw, &to64(&g), &to64(&b), 1e-5);
        assert_close("bn parallel fwd", &y, &want, 1e-4, 1e-4);
    }
}
