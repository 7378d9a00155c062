//! Gradient aggregation for one step (ARCHITECTURE "One step", 5–6): scale by r_i (Eq. 4a), then
//! either a dense allreduce SUM (Eq. 4b) or top-k with error feedback and an exact sparse exchange.
//!
//! The scaling comes first, so everything after it (the residual, the top-k, the norms of the
//! adaptive criterion, the vote) works on r_i·g, as the reference code does. Both criteria are
//! ratios of norms of r_i·g and of a residual in the same scaled units, so scaling a step's
//! gradient and residual together leaves them unchanged (exactly, for a power-of-two r_i).
use crate::compress::{
    self, AdaptivePolicy, CommAccount, Compression, Criterion, ErrorFeedback, StepComm,
};
use crate::config::{RunConfig, SparseMode};
use crate::dist::{sparse, World};
use crate::error::Result;
use crate::nn::ParamStore;
use crate::stream::LinkModel;
use std::ops::Range;

/// What one step communicated, summed over ranks (the cluster totals of Table V's counting:
/// values only in `values_total`, indices separately).
#[derive(Clone, Debug, Default)]
pub struct Sent {
    pub compressed: bool,
    pub values_total: u64,
    pub indices_total: u64,
    /// Per-rank pair counts of the sparse exchange (empty for dense steps).
    pub counts: Vec<u64>,
    /// Elements of the dense buffer.
    pub dense_len: u64,
    /// Adaptive steps only: this rank's criterion c for the step (before smoothing) and the
    /// number of ranks that voted to compress.
    pub criterion: Option<f64>,
    pub votes: Option<u64>,
}

/// Where one step's gradient and error-feedback residual live, with the data operations of the
/// aggregation on them: the host buffers ([`HostGrads`]), or the GPU's (`engine::DeviceGrads`,
/// where only the selected pairs leave the device). The decisions (dense or sparse, the vote, the
/// accounting) are [`Aggregator::aggregate_on`]'s and the same for both.
pub trait GradSide {
    /// Elements of the flat gradient.
    fn num_elements(&self) -> usize;
    /// g ← w·g (Eq. 4a).
    fn scale(&mut self, w: f32) -> Result<()>;
    /// Phase 1 of a compressed step ([`ErrorFeedback::select`]): a = g + residual (a = g with
    /// feedback off), per scope the `k_for(len, cr)` largest |a| APPENDED to `idx`/`val` as global
    /// ascending indices and signed values. g itself is left as it is. The norms that
    /// `stats`'s criterion needs are filled (the paper's: ‖a‖², ‖Topk(a)‖²; the code's:
    /// Σ‖g_s‖ of the raw g, Σ‖Topk(a_s)‖); the others, and all of them for `None`, may be left
    /// at zero.
    fn select(
        &mut self,
        scopes: &[Range<usize>],
        cr: f64,
        stats: Option<Criterion>,
        idx: &mut Vec<u32>,
        val: &mut Vec<f32>,
    ) -> Result<compress::CompressStats>;
    /// Phase 2, sparse: the entries at `sent` left; the residual keeps a without them.
    fn commit_sparse(&mut self, sent: &[u32]) -> Result<()>;
    /// Phase 2, dense: g ← a and the residual becomes zero.
    fn commit_dense(&mut self) -> Result<()>;
    /// Phase 2, dense as the reference code does it ([`ErrorFeedback::commit_dense_raw`]): g stays
    /// the raw (scaled) gradient and the residual keeps a without `selected`, this step's own
    /// selection, as after a sparse step.
    fn commit_dense_raw(&mut self, selected: &[u32]) -> Result<()>;
    /// g ← Σ_ranks g (Eq. 4b, dense).
    fn allreduce(&mut self, world: &World) -> Result<()>;
    /// g ← Σ_ranks of every rank's pairs, scattered into zeros in rank order (exact sparse
    /// exchange, [`sparse::sparse_allgather_add`]). Returns the per-rank pair counts.
    fn allgather_add(&mut self, world: &World, idx: &[u32], val: &[f32]) -> Result<Vec<u64>>;
    /// g ← AR-Topk of the accumulated gradient a with this step's root's indices
    /// ([`sparse::ar_topk_allreduce`]). Returns the indices that were sent.
    fn ar_topk(&mut self, world: &World, step: u64, idx: &[u32]) -> Result<Vec<u32>>;
}

/// The host side: the gradient in a host buffer, the residual in an [`ErrorFeedback`].
pub struct HostGrads<'a> {
    pub g: &'a mut [f32],
    pub ef: &'a mut ErrorFeedback,
    /// Output of AR-Topk (it reads the accumulated gradient while writing the aggregate).
    pub scratch: &'a mut Vec<f32>,
}

impl GradSide for HostGrads<'_> {
    fn num_elements(&self) -> usize {
        self.g.len()
    }

    fn scale(&mut self, w: f32) -> Result<()> {
        scale(self.g, w);
        Ok(())
    }

    fn select(
        &mut self,
        scopes: &[Range<usize>],
        cr: f64,
        _stats: Option<Criterion>,
        idx: &mut Vec<u32>,
        val: &mut Vec<f32>,
    ) -> Result<compress::CompressStats> {
        self.ef.select(self.g, scopes, cr, idx, val)
    }

    fn commit_sparse(&mut self, sent: &[u32]) -> Result<()> {
        self.ef.commit_sparse(sent)
    }

    fn commit_dense(&mut self) -> Result<()> {
        self.ef.commit_dense(self.g)
    }

    fn commit_dense_raw(&mut self, selected: &[u32]) -> Result<()> {
        self.ef.commit_dense_raw(selected)
    }

    fn allreduce(&mut self, world: &World) -> Result<()> {
        world.allreduce_sum_f32(self.g);
        Ok(())
    }

    fn allgather_add(&mut self, world: &World, idx: &[u32], val: &[f32]) -> Result<Vec<u64>> {
        sparse::sparse_allgather_add(world, idx, val, self.g)
    }

    fn ar_topk(&mut self, world: &World, step: u64, idx: &[u32]) -> Result<Vec<u32>> {
        self.scratch.resize(self.g.len(), 0.0);
        let j =
            sparse::ar_topk_allreduce(world, step, idx, self.ef.accumulated(self.g), self.scratch)?;
        self.g.copy_from_slice(self.scratch);
        Ok(j)
    }
}

/// The per-rank aggregation state: the adaptive policy, the accounting, and (for [`HostGrads`])
/// the error-feedback residual.
pub struct Aggregator {
    mode: Compression,
    sparse_mode: SparseMode,
    cr: f64,
    feedback: bool,
    scopes: Vec<Range<usize>>,
    /// The host residual, made at the first host step (a GPU run keeps its residual on the GPU).
    ef: Option<ErrorFeedback>,
    policy: AdaptivePolicy,
    warmup: u64,
    /// Cluster totals (each step's StepComm holds the sum over ranks).
    account: CommAccount,
    idx: Vec<u32>,
    val: Vec<f32>,
    scratch: Vec<f32>,
}

impl Aggregator {
    pub fn new(cfg: &RunConfig, store: &ParamStore) -> Result<Self> {
        let n = store.num_params();
        Ok(Aggregator {
            mode: cfg.compression,
            sparse_mode: cfg.sparse_mode,
            cr: cfg.cr,
            feedback: cfg.ef,
            scopes: compress::scope_ranges(cfg.topk_scope, &store.ranges(), n)?,
            ef: None,
            policy: AdaptivePolicy::new(cfg.criterion, cfg.delta, cfg.ewma, cfg.warmup_steps)?,
            warmup: cfg.warmup_steps,
            account: CommAccount::new(),
            idx: Vec::new(),
            val: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Whether steps may be compressed (and a residual is kept when feedback is on).
    pub fn compresses(&self) -> bool {
        self.mode != Compression::None
    }

    /// Whether unsent values carry over to the next step (error feedback).
    pub fn feedback(&self) -> bool {
        self.feedback
    }

    /// Scales `grads` by `weight` (r_i, Eq. 4a) and aggregates them across ranks in place (Eq. 4b),
    /// on the host ([`HostGrads`]); see [`Self::aggregate_on`].
    pub fn aggregate(
        &mut self,
        world: &World,
        grads: &mut [f32],
        weight: f32,
        step: u64,
        epoch: u64,
    ) -> Result<Sent> {
        let n = if self.compresses() { grads.len() } else { 0 };
        let mut ef = self
            .ef
            .take()
            .unwrap_or_else(|| ErrorFeedback::with_feedback(n, self.feedback));
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.aggregate_on(
            world,
            &mut HostGrads {
                g: grads,
                ef: &mut ef,
                scratch: &mut scratch,
            },
            weight,
            step,
            epoch,
        );
        self.ef = Some(ef);
        self.scratch = scratch;
        r
    }

    /// Scales the gradient of `side` by `weight` (r_i, Eq. 4a) and aggregates it across ranks in
    /// place (Eq. 4b). Every rank calls this every step, also with a zero weight (it then
    /// contributes zeros, or nothing on a sparse step). Dense steps allreduce; compressed steps
    /// exchange exact pairs.
    ///
    /// Adaptive steps select first (the rule needs this step's top-k), vote, then commit:
    /// - [`Criterion::Paper`]: compress when a strict majority votes so and `step` is past the
    ///   warm-up; a dense step sends a = g + residual and empties the residual.
    /// - [`Criterion::Code`] (the reference code): compress when votes ≥ ⌊N/2⌋, from the first
    ///   step on (no warm-up); a dense step sends the raw scaled g while the residual keeps
    ///   a − Topk(a).
    pub fn aggregate_on<S: GradSide>(
        &mut self,
        world: &World,
        side: &mut S,
        weight: f32,
        step: u64,
        epoch: u64,
    ) -> Result<Sent> {
        side.scale(weight)?;
        let ranks = world.size() as u64;
        let n = side.num_elements() as u64;
        let mut adaptive = None;
        let compressed = match self.mode {
            Compression::None => false,
            Compression::Topk => {
                if step > self.warmup {
                    self.select(side, None)?;
                    true
                } else {
                    false
                }
            }
            Compression::Adaptive => {
                // The rule needs this step's top-k: select first, vote, then commit either way.
                let criterion = self.policy.criterion();
                let stats = self.select(side, Some(criterion))?;
                let c = stats.criterion(criterion);
                let local = self.policy.observe(c, epoch);
                let votes = world.allreduce_sum_u64(&[u64::from(local)])[0];
                let warm = !criterion.has_warmup() || step > self.warmup;
                let go = criterion.decision(votes, ranks) && warm;
                if !go {
                    match criterion {
                        Criterion::Paper => side.commit_dense()?,
                        Criterion::Code => side.commit_dense_raw(&self.idx)?,
                    }
                }
                adaptive = Some((c, votes));
                go
            }
        };
        let mut sent = if compressed {
            match self.sparse_mode {
                SparseMode::Allgather => {
                    let counts = side.allgather_add(world, &self.idx, &self.val)?;
                    side.commit_sparse(&self.idx)?;
                    let total: u64 = counts.iter().sum();
                    Sent {
                        compressed: true,
                        values_total: total,
                        indices_total: total,
                        counts,
                        dense_len: n,
                        ..Sent::default()
                    }
                }
                SparseMode::ArTopk => {
                    let j = side.ar_topk(world, step, &self.idx)?;
                    side.commit_sparse(&j)?;
                    let k = j.len() as u64;
                    // Every rank allreduces k values; only the root's k indices travel (a broadcast).
                    Sent {
                        compressed: true,
                        values_total: k * ranks,
                        indices_total: k,
                        counts: vec![k; ranks as usize],
                        dense_len: n,
                        ..Sent::default()
                    }
                }
            }
        } else {
            side.allreduce(world)?;
            Sent {
                compressed: false,
                values_total: n * ranks,
                indices_total: 0,
                counts: Vec::new(),
                dense_len: n,
                ..Sent::default()
            }
        };
        if let Some((c, votes)) = adaptive {
            sent.criterion = Some(c);
            sent.votes = Some(votes);
        }
        let comm = if sent.compressed {
            StepComm::sparse(sent.values_total as usize, sent.indices_total as usize)
        } else {
            StepComm::dense(sent.values_total as usize)
        };
        self.account.record(comm);
        Ok(sent)
    }

    /// Top-k (with error feedback when on) of the scaled gradient into `idx`/`val`, per scope.
    fn select<S: GradSide>(
        &mut self,
        side: &mut S,
        stats: Option<Criterion>,
    ) -> Result<compress::CompressStats> {
        self.idx.clear();
        self.val.clear();
        side.select(&self.scopes, self.cr, stats, &mut self.idx, &mut self.val)
    }

    /// Communication time of `sent` under the link model: a ring allreduce for dense steps, an
    /// allgather(v) of (index, value) pairs (8 bytes each) for sparse steps.
    /// `bytes_scale` multiplies every message's size (`--link-params` over the model's parameters).
    pub fn modelled_comm_s(
        &self,
        link: &LinkModel,
        sent: &Sent,
        ranks: usize,
        bytes_scale: f64,
    ) -> f64 {
        if sent.compressed {
            let per_rank: Vec<f64> = sent
                .counts
                .iter()
                .map(|&c| c as f64 * 8.0 * bytes_scale)
                .collect();
            link.allgatherv_s(&per_rank)
        } else {
            link.allreduce_s(sent.dense_len as f64 * 4.0 * bytes_scale, ranks)
        }
    }

    /// (floats sent, indices sent, CNC ratio) so far.
    pub fn account(&self) -> (u64, u64, f64) {
        (
            self.account.floats_sent_total(),
            self.account.indices_sent_total(),
            self.account.cnc_ratio(),
        )
    }
}

fn scale(g: &mut [f32], w: f32) {
    use rayon::prelude::*;
    if w == 1.0 {
        return;
    }
    g.par_chunks_mut(1 << 16)
        .for_each(|c| c.iter_mut().for_each(|v| *v *= w));
}
