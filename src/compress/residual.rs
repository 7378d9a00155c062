//! Error feedback for top-k (the reference code's `ResidualMemory` with β = 1, §3.5 [C]).
//!
//! Each rank keeps a residual the size of its flat gradient, zero at the start and kept across
//! steps. A step works in two phases because the adaptive rule decides dense or sparse only after
//! the top-k of the step is known:
//!
//! 1. [`ErrorFeedback::select`]: a = g + residual; per scope, select Topk(a); report the norms the
//!    compression criterion needs ([`CompressStats`]). Nothing is committed yet.
//! 2. Either [`ErrorFeedback::commit_sparse`] (the selection was sent: residual = a − sent, i.e. a
//!    with the sent positions zeroed) or [`ErrorFeedback::commit_dense`] (the whole of a is sent:
//!    g is overwritten with a and the residual becomes zero, so nothing is counted twice).
//!
//! Either way Σ(sent over steps) + residual = Σ(g over steps), elementwise.
//!
//! The reference code's dense step is a third commit, [`ErrorFeedback::commit_dense_raw`]: it
//! sends the raw g although its residual was already updated to a − Topk(a) (its `compensate`
//! runs every step, before the dense/sparse decision). That step sends g and keeps a − Topk(a), so
//! the conservation above does not hold for it: sent + residual exceeds g + residual_before by
//! g − Topk(a), i.e. the unselected g_i are sent now and again later from the residual, and the
//! old residual at the selected positions is dropped.
//!
//! g is the gradient already scaled by r_i = b_i/Σb (Eq. 4a; `train::grads::Aggregator` scales it
//! before `select`), so the residual is in scaled units, as in the reference code, which also
//! compensates the scaled gradient.
//!
//! While a step is pending the residual buffer holds a itself (no second gradient-sized buffer),
//! so [`ErrorFeedback::accumulated`] is what AR-Topk reads its own values from.
// Scopes are lists of ranges; a one-element list (global scope) is intended.
#![allow(clippy::single_range_in_vec_init)]
use super::adaptive::{Criterion, TopkScope};
use super::topk::{k_for, topk};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::ops::Range;

/// Elements per task for the elementwise passes (fixed, so f64 norm sums are reproducible).
const CHUNK: usize = 1 << 16;

/// Norms of one step's raw gradient g, of its accumulated gradient a = g + residual (a = g when
/// feedback is off) and of the top-k selection of a, over the scopes that were compressed. They
/// feed the adaptive rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CompressStats {
    /// Elements compressed (the sum of the scope lengths).
    pub len: usize,
    /// Pairs selected (Σ over scopes of `k_for(scope_len, cr)`).
    pub k: usize,
    /// ‖a‖², in f64.
    pub norm_sq: f64,
    /// ‖Topk(a)‖².
    pub topk_norm_sq: f64,
    /// Σ over scopes of ‖a_s‖ (the reference code's `og_norm`: per-tensor L2 norms summed).
    pub scope_norm_sum: f64,
    /// Σ over scopes of ‖Topk(a_s)‖ (the reference code's `compression_norm`).
    pub topk_scope_norm_sum: f64,
    /// Σ over scopes of ‖g_s‖, the raw gradient before the residual is added (the reference
    /// code's `og_norm`, which it takes before `compensate`). Equals `scope_norm_sum` when
    /// feedback is off.
    pub raw_scope_norm_sum: f64,
}

impl CompressStats {
    /// The paper's criterion (§2, display 2): |‖a‖² − ‖Topk(a)‖²| / ‖a‖², the fraction of the
    /// gradient's energy that top-k leaves behind. 0 when a is all zeros (nothing is lost).
    pub fn paper_criterion(&self) -> f64 {
        ratio((self.norm_sq - self.topk_norm_sq).abs(), self.norm_sq)
    }

    /// The reference code's criterion: c = |og_norm − compression_norm| / og_norm with
    /// og_norm = Σ_l‖g_l‖ over the RAW gradient and compression_norm = Σ_l‖Topk(a_l)‖ over the
    /// selection of a = g + residual, l over scopes (per-tensor for layer scope; for global scope
    /// both are single global L2 norms). With feedback on it can exceed 1 (the residual can make
    /// the selection larger than g). 0 when g is all zeros (a rank with b_i = 0): the reference
    /// divides by zero there; here such a rank loses none of its own gradient and votes with c = 0.
    pub fn code_criterion(&self) -> f64 {
        ratio(
            (self.raw_scope_norm_sum - self.topk_scope_norm_sum).abs(),
            self.raw_scope_norm_sum,
        )
    }

    pub fn criterion(&self, c: Criterion) -> f64 {
        match c {
            Criterion::Paper => self.paper_criterion(),
            Criterion::Code => self.code_criterion(),
        }
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// The ranges that top-k is applied to: one per parameter tensor for [`TopkScope::Layer`]
/// (`layer_ranges`, which must tile `0..len` in order), or the single range `0..len` for
/// [`TopkScope::Global`].
pub fn scope_ranges(
    scope: TopkScope,
    layer_ranges: &[Range<usize>],
    len: usize,
) -> Result<Vec<Range<usize>>> {
    match scope {
        TopkScope::Global => Ok(vec![0..len]),
        TopkScope::Layer => {
            check_tiling(layer_ranges, len)?;
            Ok(layer_ranges.to_vec())
        }
    }
}

/// Scopes must tile the flat buffer exactly: an element outside every scope would never be sent by
/// a sparse step and would grow in the residual forever.
fn check_tiling(scopes: &[Range<usize>], len: usize) -> Result<()> {
    let mut next = 0usize;
    for (i, r) in scopes.iter().enumerate() {
        if r.start != next || r.end < r.start {
            return Err(Error::Other(format!(
                "top-k scope {i} is {}..{}; expected it to start at {next} (scopes must tile 0..{len} in order)",
                r.start, r.end
            )));
        }
        next = r.end;
    }
    if next != len {
        return Err(Error::Other(format!("top-k scopes end at {next}; expected them to cover the whole gradient of {len} elements")));
    }
    if len as u64 > 1u64 << 32 {
        return Err(Error::Other(format!(
            "gradient has {len} elements; sparse indices are u32 (at most 2^32)"
        )));
    }
    Ok(())
}

/// Error-feedback state of one rank: the residual (zero-initialised) and whether a step is pending.
#[derive(Debug)]
pub struct ErrorFeedback {
    len: usize,
    enabled: bool,
    /// The residual between steps; a = g + residual while a step is pending. Empty when disabled.
    residual: Vec<f32>,
    pending: bool,
    scratch_idx: Vec<u32>,
    scratch_val: Vec<f32>,
}

impl ErrorFeedback {
    /// Error feedback on, for a flat gradient of `len` elements; the residual starts at zero.
    pub fn new(len: usize) -> Self {
        Self::with_feedback(len, true)
    }

    /// `enabled = false` gives plain top-k (a = g; unsent values are dropped) through the same API.
    pub fn with_feedback(len: usize, enabled: bool) -> Self {
        ErrorFeedback {
            len,
            enabled,
            residual: if enabled { vec![0.0; len] } else { Vec::new() },
            pending: false,
            scratch_idx: Vec::new(),
            scratch_val: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The residual carried to the next step (empty when feedback is off). Between
    /// [`select`](Self::select) and a commit this is a = g + residual, not the residual.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// Sets the residual back to zero and drops a pending step.
    pub fn reset(&mut self) {
        self.residual.par_iter_mut().for_each(|r| *r = 0.0);
        self.pending = false;
    }

    /// The accumulated gradient a of the pending step: the residual buffer when feedback is on,
    /// `g` itself when it is off.
    pub fn accumulated<'a>(&'a self, g: &'a [f32]) -> &'a [f32] {
        if self.enabled {
            &self.residual
        } else {
            g
        }
    }

    /// Phase 1 of a step. `g` is this rank's flat gradient, already scaled by r_i (Eq. 4a);
    /// `scopes` tile `0..g.len()` (see [`scope_ranges`]); `cr` is the compression ratio. Forms
    /// a = g + residual, selects per scope the `k_for(scope_len, cr)` largest |a| (lower index wins
    /// ties) and APPENDS their global flat indices (ascending) and signed values to
    /// `out_idx`/`out_val`. Returns the norms for the adaptive criterion. Must be followed by
    /// exactly one commit before the next `select`.
    pub fn select(
        &mut self,
        g: &[f32],
        scopes: &[Range<usize>],
        cr: f64,
        out_idx: &mut Vec<u32>,
        out_val: &mut Vec<f32>,
    ) -> Result<CompressStats> {
        if g.len() != self.len {
            return Err(Error::Other(format!(
                "gradient has {} elements; error feedback was made for {}",
                g.len(),
                self.len
            )));
        }
        if self.pending {
            return Err(Error::Other("top-k select called again before the previous step was committed (sparse or dense)".into()));
        }
        check_tiling(scopes, self.len)?;
        let mut stats = CompressStats::default();
        for r in scopes {
            // a_s = g_s + residual_s (in place in the residual buffer), ‖a_s‖² and ‖g_s‖² in one
            // pass.
            let (norm_sq, raw_sq) = if self.enabled {
                accumulate(&mut self.residual[r.clone()], &g[r.clone()])
            } else {
                let n = norm_sq(&g[r.clone()]);
                (n, n)
            };
            let a = if self.enabled {
                &self.residual[r.clone()]
            } else {
                &g[r.clone()]
            };
            topk(
                a,
                k_for(r.len(), cr),
                &mut self.scratch_idx,
                &mut self.scratch_val,
            );
            let topk_sq: f64 = self
                .scratch_val
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum();
            stats.len += r.len();
            stats.k += self.scratch_idx.len();
            stats.norm_sq += norm_sq;
            stats.topk_norm_sq += topk_sq;
            stats.scope_norm_sum += norm_sq.sqrt();
            stats.topk_scope_norm_sum += topk_sq.sqrt();
            stats.raw_scope_norm_sum += raw_sq.sqrt();
            let base = r.start as u32;
            out_idx.extend(self.scratch_idx.iter().map(|&i| base + i));
            out_val.extend_from_slice(&self.scratch_val);
        }
        self.pending = true;
        Ok(stats)
    }

    /// Phase 2, sparse: the values of a at `sent` were communicated, so residual = a − sent (a with
    /// those positions zeroed). `sent` is the selection appended by `select`, or under AR-Topk the
    /// root's indices (see `dist::sparse::ar_topk_allreduce`).
    pub fn commit_sparse(&mut self, sent: &[u32]) -> Result<()> {
        if !self.pending {
            return Err(Error::Other(
                "sparse commit without a pending top-k select".into(),
            ));
        }
        if self.enabled {
            for &i in sent {
                match self.residual.get_mut(i as usize) {
                    Some(r) => *r = 0.0,
                    None => {
                        return Err(Error::Other(format!(
                            "sent index {i} is outside the gradient of {} elements",
                            self.len
                        )))
                    }
                }
            }
        }
        self.pending = false;
        Ok(())
    }

    /// Phase 2, dense, as the reference code does it ([`Criterion::Code`]): the RAW gradient g is
    /// sent as it is (left untouched; `select` never writes g), and the residual keeps
    /// a − Topk(a), exactly as after a sparse step; `selected` is the selection `select` appended.
    /// The reference computes the top-k and updates its residual before it decides, and its dense
    /// path then allreduces the original gradient, so the top-k part of a is dropped and the
    /// residual keeps the rest of a even though the rest of g was sent as well.
    pub fn commit_dense_raw(&mut self, selected: &[u32]) -> Result<()> {
        if !self.pending {
            return Err(Error::Other(
                "dense commit without a pending top-k select".into(),
            ));
        }
        self.commit_sparse(selected)
    }

    /// Phase 2, dense: the whole accumulated gradient is sent. Overwrites `g` with a = g + residual
    /// (the carried residual rides along with this dense step) and zeroes the residual.
    pub fn commit_dense(&mut self, g: &mut [f32]) -> Result<()> {
        if !self.pending {
            return Err(Error::Other(
                "dense commit without a pending top-k select".into(),
            ));
        }
        if g.len() != self.len {
            return Err(Error::Other(format!(
                "gradient has {} elements; error feedback was made for {}",
                g.len(),
                self.len
            )));
        }
        if self.enabled {
            g.par_chunks_mut(CHUNK)
                .zip(self.residual.par_chunks_mut(CHUNK))
                .for_each(|(gc, rc)| {
                    gc.copy_from_slice(rc);
                    rc.fill(0.0);
                });
        }
        self.pending = false;
        Ok(())
    }
}

/// Static top-k step in one call: `select` then `commit_sparse` of what it appended. Returns the
/// stats; `out_idx`/`out_val` receive the appended (global index, value) pairs.
pub fn compress_with_feedback(
    ef: &mut ErrorFeedback,
    g: &[f32],
    scopes: &[Range<usize>],
    cr: f64,
    out_idx: &mut Vec<u32>,
    out_val: &mut Vec<f32>,
) -> Result<CompressStats> {
    let start = out_idx.len();
    let stats = ef.select(g, scopes, cr, out_idx, out_val)?;
    ef.commit_sparse(&out_idx[start..])?;
    Ok(stats)
}

/// r += g elementwise; returns (Σ r² after the add, Σ g²) in f64, each summed in a fixed order.
fn accumulate(r: &mut [f32], g: &[f32]) -> (f64, f64) {
    let parts: Vec<(f64, f64)> = r
        .par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .map(|(rc, gc)| {
            let (mut s, mut sg) = (0.0f64, 0.0f64);
            for (a, &b) in rc.iter_mut().zip(gc) {
                *a += b;
                s += f64::from(*a) * f64::from(*a);
                sg += f64::from(b) * f64::from(b);
            }
            (s, sg)
        })
        .collect();
    parts
        .iter()
        .fold((0.0, 0.0), |(s, sg), &(p, pg)| (s + p, sg + pg))
}

fn norm_sq(x: &[f32]) -> f64 {
    let parts: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
        .collect();
    parts.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn decompress(len: usize, idx: &[u32], val: &[f32]) -> Vec<f64> {
        let mut d = vec![0.0f64; len];
        for (&i, &v) in idx.iter().zip(val) {
            d[i as usize] += f64::from(v);
        }
        d
    }

    /// Over 50 steps, mixing sparse and dense steps: Σ sent + residual = Σ g, elementwise.
    #[test]
    fn feedback_conserves_the_gradient() {
        let layers = [0..37usize, 37..37, 37..1000, 1000..5000, 5000..5003];
        let len = 5003;
        for scope in [TopkScope::Layer, TopkScope::Global] {
            let scopes = scope_ranges(scope, &layers, len).unwrap();
            let mut ef = ErrorFeedback::new(len);
            let mut rng = StdRng::seed_from_u64(11);
            let mut sum_in = vec![0.0f64; len];
            let mut sum_sent = vec![0.0f64; len];
            let mut sum_abs = vec![0.0f64; len];
            for step in 0..50 {
                let g: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                for i in 0..len {
                    sum_in[i] += f64::from(g[i]);
                    sum_abs[i] += f64::from(g[i].abs());
                }
                let (mut idx, mut val) = (vec![], vec![]);
                if step % 7 == 3 {
                    ef.select(&g, &scopes, 0.05, &mut idx, &mut val).unwrap();
                    let mut dense = g.clone();
                    ef.commit_dense(&mut dense).unwrap();
                    assert!(ef.residual().iter().all(|&r| r == 0.0));
                    for i in 0..len {
                        sum_sent[i] += f64::from(dense[i]);
                    }
                } else {
                    let st = compress_with_feedback(&mut ef, &g, &scopes, 0.05, &mut idx, &mut val)
                        .unwrap();
                    assert_eq!(st.k, idx.len());
                    assert!(
                        idx.windows(2).all(|w| w[0] < w[1]),
                        "global indices ascending"
                    );
                    let d = decompress(len, &idx, &val);
                    for i in 0..len {
                        sum_sent[i] += d[i];
                    }
                }
            }
            for i in 0..len {
                let got = sum_sent[i] + f64::from(ef.residual()[i]);
                let tol = 1e-4 * sum_abs[i].max(1.0);
                assert!(
                    (got - sum_in[i]).abs() <= tol,
                    "{scope:?} element {i}: sent+residual {got} vs inputs {}",
                    sum_in[i]
                );
            }
        }
    }

    /// Hand-worked step: residual accumulates what was not sent and competes next step.
    #[test]
    fn feedback_by_hand() {
        let mut ef = ErrorFeedback::new(4);
        let scopes = [0..2usize, 2..4];
        let (mut idx, mut val) = (vec![], vec![]);
        // cr 0.5: one of each pair.
        let st = compress_with_feedback(
            &mut ef,
            &[1.0, -3.0, 0.5, 0.25],
            &scopes,
            0.5,
            &mut idx,
            &mut val,
        )
        .unwrap();
        assert_eq!((idx.clone(), val.clone()), (vec![1, 2], vec![-3.0, 0.5]));
        assert_eq!(ef.residual(), &[1.0, 0.0, 0.0, 0.25]);
        assert_eq!(st.norm_sq, 1.0 + 9.0 + 0.25 + 0.0625);
        assert_eq!(st.topk_norm_sq, 9.0 + 0.25);
        assert!((st.scope_norm_sum - (10f64.sqrt() + 0.3125f64.sqrt())).abs() < 1e-12);
        assert!((st.topk_scope_norm_sum - 3.5).abs() < 1e-12);
        assert!((st.paper_criterion() - (1.0625 / 10.3125)).abs() < 1e-12);
        // Next step a = [1.5, 0.5, 0.1, 0.5]: position 0 (residual 1 + 0.5) now wins; 3 beats 2.
        idx.clear();
        val.clear();
        compress_with_feedback(
            &mut ef,
            &[0.5, 0.5, 0.1, 0.25],
            &scopes,
            0.5,
            &mut idx,
            &mut val,
        )
        .unwrap();
        assert_eq!((idx, val), (vec![0, 3], vec![1.5, 0.5]));
        assert_eq!(ef.residual(), &[0.0, 0.5, 0.1, 0.0]);
    }

    /// The reference code's rule (`--criterion code`) on two tensors, by hand.
    ///
    /// Tensors t0 = 0..3 and t1 = 3..7; CR 0.5 gives k0 = max(1, int(3·0.5)) = 1 and
    /// k1 = max(1, int(4·0.5)) = 2.
    ///
    /// Step 1, g = [3, 1, 0 | 2, 0.5, 0, 1] with a zero residual, sent sparse: t0 keeps index 0
    /// (3), t1 indices 3 and 6 (2 and 1), so the residual is [0, 1, 0 | 0, 0.5, 0, 0].
    ///
    /// Step 2, g = [0.5, 0.5, −1 | −1, 0.5, 0.5, 0]:
    /// - og_norm = ‖g_0‖ + ‖g_1‖ = √(0.25+0.25+1) + √(1+0.25+0.25) = 2√1.5 = 2.449489742783178
    /// - a = g + residual = [0.5, 1.5, −1 | −1, 1, 0.5, 0]; Topk(a_0) = {1: 1.5},
    ///   Topk(a_1) = {3: −1, 4: 1}
    /// - compression_norm = 1.5 + √(1+1) = 1.5 + √2 = 2.914213562373095
    /// - c = |og_norm − compression_norm| / og_norm = 0.464723819589917 / 2.449489742783178
    ///   = 0.18972270488542034 (the residual makes the selection larger than g here)
    /// - the paper's c on the same step: (‖a‖² − ‖Topk(a)‖²) / ‖a‖² = (5.75 − 4.25) / 5.75
    /// - a dense step sends g itself, [0.5, 0.5, −1 | −1, 0.5, 0.5, 0], and leaves the residual
    ///   a − Topk(a) = [0.5, 0, −1 | 0, 0, 0.5, 0]; the paper's dense step sends a and leaves 0.
    #[test]
    fn code_criterion_by_hand() {
        let scopes = [0..3usize, 3..7];
        let cr = 0.5;
        assert_eq!((k_for(3, cr), k_for(4, cr)), (1, 2));
        let g1 = [3.0f32, 1.0, 0.0, 2.0, 0.5, 0.0, 1.0];
        let g2 = [0.5f32, 0.5, -1.0, -1.0, 0.5, 0.5, 0.0];
        // r_i = 1, and r_i = 0.5 (the gradients pre-scaled as `Aggregator` does): a power of two,
        // so every value, norm and the ratio scale exactly.
        let mut cs = Vec::new();
        for r in [1.0f32, 0.5] {
            let sc = |g: &[f32]| -> Vec<f32> { g.iter().map(|v| v * r).collect() };
            let rf = f64::from(r);
            let mut ef = ErrorFeedback::new(7);
            let (mut idx, mut val) = (vec![], vec![]);
            compress_with_feedback(&mut ef, &sc(&g1), &scopes, cr, &mut idx, &mut val).unwrap();
            assert_eq!(idx, vec![0, 3, 6]);
            assert_eq!(ef.residual(), &sc(&[0.0, 1.0, 0.0, 0.0, 0.5, 0.0, 0.0])[..]);
            let mut ef_paper = ErrorFeedback::new(7);
            compress_with_feedback(
                &mut ef_paper,
                &sc(&g1),
                &scopes,
                cr,
                &mut vec![],
                &mut vec![],
            )
            .unwrap();

            idx.clear();
            val.clear();
            let g = sc(&g2);
            let st = ef.select(&g, &scopes, cr, &mut idx, &mut val).unwrap();
            assert_eq!(idx, vec![1, 3, 4]);
            assert_eq!(val, sc(&[1.5, -1.0, 1.0]));
            let og_norm = 2.0 * 1.5f64.sqrt() * rf;
            let compression_norm = (1.5 + 2f64.sqrt()) * rf;
            assert!((st.raw_scope_norm_sum - og_norm).abs() < 1e-12);
            assert!((st.topk_scope_norm_sum - compression_norm).abs() < 1e-12);
            let c = st.code_criterion();
            assert!((c - 0.18972270488542034).abs() < 1e-12, "code c = {c}");
            assert_eq!(c, st.criterion(Criterion::Code));
            // Not the ratio over the norms of a (the former form): (√3.5 + 1.5 − 1.5 − √2)/(√3.5 + 1.5).
            let over_a = (3.5f64.sqrt() - 2f64.sqrt()) / (3.5f64.sqrt() + 1.5);
            assert!((c - over_a).abs() > 0.05);
            assert!((st.paper_criterion() - 1.5 / 5.75).abs() < 1e-12);
            cs.push(c);

            // The reference's dense step: the buffer that goes to the allreduce is the raw
            // (scaled) g, not g + residual, and the residual is a − Topk(a).
            let mut sent = g.clone();
            ef.commit_dense_raw(&idx).unwrap();
            assert_eq!(sent, sc(&g2), "the dense buffer must be the raw gradient");
            assert_ne!(sent, sc(&[0.5, 1.5, -1.0, -1.0, 1.0, 0.5, 0.0]));
            assert_eq!(
                ef.residual(),
                &sc(&[0.5, 0.0, -1.0, 0.0, 0.0, 0.5, 0.0])[..]
            );
            // The paper's dense step on the same history: g + residual goes out, nothing is kept.
            ef_paper
                .select(&g, &scopes, cr, &mut vec![], &mut vec![])
                .unwrap();
            ef_paper.commit_dense(&mut sent).unwrap();
            assert_eq!(sent, sc(&[0.5, 1.5, -1.0, -1.0, 1.0, 0.5, 0.0]));
            assert!(ef_paper.residual().iter().all(|&v| v == 0.0));
            // A dense commit needs a pending step.
            assert!(ef.commit_dense_raw(&idx).is_err());
        }
        // Scale-invariant: the same c at r_i = 0.5 as at 1, to the last bit.
        assert_eq!(cs[0].to_bits(), cs[1].to_bits());
    }

    #[test]
    fn disabled_feedback_is_plain_topk() {
        let mut ef = ErrorFeedback::with_feedback(3, false);
        let (mut idx, mut val) = (vec![], vec![]);
        compress_with_feedback(
            &mut ef,
            &[1.0, -2.0, 0.5],
            &[0..3],
            0.34,
            &mut idx,
            &mut val,
        )
        .unwrap();
        assert_eq!((idx.clone(), val.clone()), (vec![1], vec![-2.0]));
        assert!(ef.residual().is_empty());
        idx.clear();
        val.clear();
        compress_with_feedback(
            &mut ef,
            &[1.0, -0.1, 0.5],
            &[0..3],
            0.34,
            &mut idx,
            &mut val,
        )
        .unwrap();
        assert_eq!((idx, val), (vec![0], vec![1.0]));
    }

    #[test]
    fn misuse_is_an_error() {
        let mut ef = ErrorFeedback::new(4);
        let (mut idx, mut val) = (vec![], vec![]);
        assert!(ef
            .select(&[0.0; 3], &[0..3], 0.5, &mut idx, &mut val)
            .is_err());
        assert!(ef
            .select(&[0.0; 4], &[0..3], 0.5, &mut idx, &mut val)
            .is_err());
        assert!(ef
            .select(&[0.0; 4], &[0..2, 3..4], 0.5, &mut idx, &mut val)
            .is_err());
        assert!(ef.commit_sparse(&[]).is_err());
        ef.select(&[0.0; 4], &[0..4], 0.5, &mut idx, &mut val)
            .unwrap();
        assert!(ef
            .select(&[0.0; 4], &[0..4], 0.5, &mut idx, &mut val)
            .is_err());
        assert!(ef.commit_sparse(&[4]).is_err());
        assert!(scope_ranges(TopkScope::Layer, &[0..2, 2..3], 4).is_err());
        assert_eq!(
            scope_ranges(TopkScope::Global, &[0..2], 4).unwrap(),
            vec![0..4]
        );
    }

    #[test]
    fn zero_gradient_has_zero_criterion() {
        let st = CompressStats::default();
        assert_eq!(st.paper_criterion(), 0.0);
        assert_eq!(st.code_criterion(), 0.0);
    }
}
