//! Test-set evaluation, split across ranks: the BatchNorm statistics are made the same on every rank
//! first (`--bn-eval`: rank 0's broadcast, as DDP's buffer broadcast does, or all ranks' pooled),
//! each rank scores every N-th test chunk, and the counts are summed.
use crate::config::BnEval;
use crate::data::{self, Dataset, Normalization};
use crate::dist::World;
use crate::error::Result;
use crate::metrics::EvalRecord;
use crate::models::Model;
use crate::tensor::Tensor;

const EVAL_BATCH: usize = 250;

/// Top-1/top-5 accuracy (fractions) and mean loss on the first `limit` test samples (all by default).
pub fn evaluate(
    world: &World,
    model: &mut Model,
    test: &Dataset,
    norm: &Normalization,
    limit: Option<usize>,
    bn: BnEval,
    rng: &mut rand::rngs::StdRng,
) -> Result<EvalRecord> {
    share_bn_stats(world, &mut model.store.buffers, &model.store.bn_stats, bn);
    let classes = model.num_classes;
    score(world, test, norm, limit, classes, |x, b| {
        let x = Tensor::from_vec(&[b, 3, data::IMAGE_SIDE, data::IMAGE_SIDE], x);
        Ok(model.forward(x, false, rng).into_vec())
    })
}

/// Makes the BatchNorm running statistics in `buffers` the same on every rank (a collective):
/// rank 0's ([`BnEval::Rank0`]), or the pooled statistics of all ranks ([`BnEval::Average`]): per
/// channel the mean of the ranks' means m̄ = Σm_r/N and the variance of the union,
/// Σv_r/N + Σm_r²/N − m̄² (each rank's variance plus the spread of the means, which matters when
/// ranks see different labels).
pub fn share_bn_stats(
    world: &World,
    buffers: &mut [f32],
    bn_stats: &[(crate::nn::ParamView, crate::nn::ParamView)],
    bn: BnEval,
) {
    if buffers.is_empty() {
        return;
    }
    match bn {
        BnEval::Rank0 => world.broadcast_f32(buffers),
        BnEval::Average => {
            // One allreduce of [means | variances | squared means] per BatchNorm, in f64.
            let mut sums: Vec<f64> = Vec::new();
            for (m, v) in bn_stats {
                sums.extend(m.of(buffers).iter().map(|&x| x as f64));
                sums.extend(v.of(buffers).iter().map(|&x| x as f64));
                sums.extend(m.of(buffers).iter().map(|&x| x as f64 * x as f64));
            }
            let sums = world.allreduce_sum_f64(&sums);
            let n = world.size() as f64;
            let mut at = 0;
            for (m, v) in bn_stats {
                let c = m.len;
                let (ms, rest) = sums[at..at + 3 * c].split_at(c);
                let (vs, m2s) = rest.split_at(c);
                for j in 0..c {
                    let mean = ms[j] / n;
                    buffers[m.offset + j] = mean as f32;
                    buffers[v.offset + j] = (vs[j] / n + m2s[j] / n - mean * mean).max(0.0) as f32;
                }
                at += 3 * c;
            }
        }
    }
}

/// The scoring loop of [`evaluate`] for any device: `logits(x, b)` maps a normalised NCHW batch of
/// `b` test images to its `[b, classes]` logits on the host. Every rank must call this (it ends in
/// a collective).
pub fn score(
    world: &World,
    test: &Dataset,
    norm: &Normalization,
    limit: Option<usize>,
    classes: usize,
    mut logits: impl FnMut(Vec<f32>, usize) -> Result<Vec<f32>>,
) -> Result<EvalRecord> {
    let n = limit.map_or(test.len(), |l| l.min(test.len()));
    let (mut c1, mut c5, mut loss_sum, mut count) = (0usize, 0usize, 0f64, 0usize);
    let mut x_buf = Vec::new();
    let chunks: Vec<usize> = (0..n).step_by(EVAL_BATCH).collect();
    for (ci, &start) in chunks.iter().enumerate() {
        if ci % world.size() != world.rank() {
            continue;
        }
        let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
        let labels = data::make_batch(test, &idx, norm, None, &mut x_buf);
        let b = idx.len();
        let out = logits(std::mem::take(&mut x_buf), b)?;
        let l = out.as_slice();
        if l.len() != b * classes {
            crate::bail!(Other, "evaluation: {} logits for a batch of {b} with {classes} classes", l.len());
        }
        loss_sum += crate::backend::cpu::softmax_cross_entropy(l, b, classes, &labels, None) as f64 * b as f64;
        c1 += crate::backend::cpu::topk_correct(l, b, classes, &labels, 1);
        c5 += crate::backend::cpu::topk_correct(l, b, classes, &labels, 5.min(classes));
        count += b;
    }
    let s = world.allreduce_sum_f64(&[c1 as f64, c5 as f64, loss_sum, count as f64]);
    let total = s[3].max(1.0);
    Ok(EvalRecord { step: 0, clock_s: 0.0, top1: s[0] / total, top5: s[1] / total, loss: s[2] / total })
}
