//! Gradient compression (paper §3.5): top-k selection, error-feedback residuals, the adaptive (δ)
//! rule with the cluster vote, and accounting of floats sent (Table V).
//!
//! One step of the adaptive path, on every rank (g is the flat gradient already scaled by r_i;
//! `train::grads::Aggregator::aggregate_on` is the real thing):
//! ```text
//! let stats = ef.select(&g, &scopes, cr, &mut idx, &mut val)?;     // a = g + residual, Topk(a)
//! let local = policy.observe(stats.criterion(criterion), epoch);    // c ≤ δ after smoothing
//! if adaptive::vote(&world, criterion, local) && past_warmup {      // same decision everywhere
//!     dist::sparse::sparse_allgather_add(&world, &idx, &val, &mut agg)?;
//!     ef.commit_sparse(&idx)?;                                      // residual = a − sent
//!     account.record_sparse(idx.len());
//! } else {
//!     match criterion {
//!         Criterion::Paper => ef.commit_dense(&mut g)?,             // g = a, residual = 0
//!         Criterion::Code => ef.commit_dense_raw(&idx)?,            // g raw, residual = a − Topk(a)
//!     }
//!     world.allreduce_sum_f32(&mut g);
//!     account.record_dense(g.len());
//! }
//! ```
//! `past_warmup` is `step > warmup_steps` for the paper form and always true for the code form,
//! which has no warm-up; the vote is a strict majority for the paper form and votes ≥ ⌊N/2⌋ for
//! the code form ([`Criterion`]).
//! `Compression::Topk` is the same with the sparse branch always taken (`compress_with_feedback`);
//! `Compression::None` skips `select` and the residual altogether.
pub mod accounting;
pub mod adaptive;
pub mod bench;
pub mod residual;
pub mod topk;

pub use accounting::{CommAccount, StepComm};
pub use adaptive::{
    code_vote_decision, majority, majority_decision, vote, AdaptivePolicy, Compression, Criterion,
    TopkScope,
};
pub use residual::{compress_with_feedback, scope_ranges, CompressStats, ErrorFeedback};
pub use topk::{k_for, topk};
