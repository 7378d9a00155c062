//! Gradient aggregation for one step (ARCHITECTURE "One step", 5–6): scale by r_i (Eq. 4a), then
//! either a dense allreduce SUM (Eq. 4b) or top-k with error feedback and an exact sparse exchange.
use crate::compress::{self, AdaptivePolicy, CommAccount, Compression, ErrorFeedback, StepComm};
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
}

/// The per-rank aggregation state: error-feedback residuals, the adaptive policy, the accounting.
pub struct Aggregator {
    mode: Compression,
    sparse_mode: SparseMode,
    cr: f64,
    scopes: Vec<Range<usize>>,
    ef: ErrorFeedback,
    policy: AdaptivePolicy,
    warmup: u64,
    /// Cluster totals (each step's StepComm holds the sum over ranks).
    account: CommAccount,
    idx: Vec<u32>,
    val: Vec<f32>,
    /// Output of AR-Topk (it reads the accumulated gradient while writing the aggregate).
    scratch: Vec<f32>,
}

impl Aggregator {
    pub fn new(cfg: &RunConfig, store: &ParamStore) -> Result<Self> {
        let n = store.num_params();
        Ok(Aggregator {
            mode: cfg.compression,
            sparse_mode: cfg.sparse_mode,
            cr: cfg.cr,
            scopes: compress::scope_ranges(cfg.topk_scope, &store.ranges(), n)?,
            ef: ErrorFeedback::with_feedback(if cfg.compression == Compression::None { 0 } else { n }, cfg.ef),
            policy: AdaptivePolicy::new(cfg.criterion, cfg.delta, cfg.ewma, cfg.warmup_steps)?,
            warmup: cfg.warmup_steps,
            account: CommAccount::new(),
            idx: Vec::new(),
            val: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Scales `grads` by `weight` (r_i, Eq. 4a) and aggregates them across ranks in place (Eq. 4b).
    /// Every rank calls this every step, also with a zero weight (it then contributes zeros, or
    /// nothing on a sparse step). Dense steps allreduce; compressed steps exchange exact pairs.
    pub fn aggregate(&mut self, world: &World, grads: &mut [f32], weight: f32, step: u64, epoch: u64) -> Result<Sent> {
        scale(grads, weight);
        let ranks = world.size() as u64;
        let n = grads.len() as u64;
        let compressed = match self.mode {
            Compression::None => false,
            Compression::Topk => {
                if step > self.warmup {
                    self.select(grads)?;
                    true
                } else {
                    false
                }
            }
            Compression::Adaptive => {
                // The rule needs this step's top-k: select first, vote, then commit either way.
                let stats = self.select(grads)?;
                let local = self.policy.observe(stats.criterion(self.policy.criterion()), epoch);
                let go = compress::majority(world, local) && step > self.warmup;
                if !go {
                    self.ef.commit_dense(grads)?;
                }
                go
            }
        };
        let sent = if compressed {
            match self.sparse_mode {
                SparseMode::Allgather => {
                    let counts = sparse::sparse_allgather_add(world, &self.idx, &self.val, grads)?;
                    self.ef.commit_sparse(&self.idx)?;
                    let total: u64 = counts.iter().sum();
                    Sent { compressed: true, values_total: total, indices_total: total, counts, dense_len: n }
                }
                SparseMode::ArTopk => {
                    self.scratch.resize(grads.len(), 0.0);
                    let j = sparse::ar_topk_allreduce(world, step, &self.idx, self.ef.accumulated(grads), &mut self.scratch)?;
                    grads.copy_from_slice(&self.scratch);
                    self.ef.commit_sparse(&j)?;
                    let k = j.len() as u64;
                    // Every rank allreduces k values; only the root's k indices travel (a broadcast).
                    Sent { compressed: true, values_total: k * ranks, indices_total: k, counts: vec![k; ranks as usize], dense_len: n }
                }
            }
        } else {
            world.allreduce_sum_f32(grads);
            Sent { compressed: false, values_total: n * ranks, indices_total: 0, counts: Vec::new(), dense_len: n }
        };
        let comm = if sent.compressed {
            StepComm::sparse(sent.values_total as usize, sent.indices_total as usize)
        } else {
            StepComm::dense(sent.values_total as usize)
        };
        self.account.record(comm);
        Ok(sent)
    }

    /// Top-k (with error feedback when on) of the scaled gradient into `idx`/`val`, per scope.
    fn select(&mut self, grads: &[f32]) -> Result<compress::CompressStats> {
        self.idx.clear();
        self.val.clear();
        self.ef.select(grads, &self.scopes, self.cr, &mut self.idx, &mut self.val)
    }

    /// Communication time of `sent` under the link model: a ring allreduce for dense steps, an
    /// allgather(v) of (index, value) pairs (8 bytes each) for sparse steps.
    pub fn modelled_comm_s(&self, link: &LinkModel, sent: &Sent, ranks: usize) -> f64 {
        if sent.compressed {
            let per_rank: Vec<f64> = sent.counts.iter().map(|&c| c as f64 * 8.0).collect();
            link.allgatherv_s(&per_rank)
        } else {
            link.allreduce_s(sent.dense_len as f64 * 4.0, ranks)
        }
    }

    /// (floats sent, indices sent, CNC ratio) so far.
    pub fn account(&self) -> (u64, u64, f64) {
        (self.account.floats_sent_total(), self.account.indices_sent_total(), self.account.cnc_ratio())
    }
}

fn scale(g: &mut [f32], w: f32) {
    use rayon::prelude::*;
    if w == 1.0 {
        return;
    }
    g.par_chunks_mut(1 << 16).for_each(|c| c.iter_mut().for_each(|v| *v *= w));
}
