//! The adaptive compression rule (paper §2 display 2, §3.5) and the cluster-wide vote.
//!
//! Each rank measures how much of its gradient top-k would leave behind (`c`, from
//! [`CompressStats`](super::residual::CompressStats)), smooths it, and votes to compress when the
//! smoothed value is at most δ. The ranks then vote so that all of them take the same path in the
//! collective that follows.
use crate::dist::World;
use crate::error::{Error, Result};

/// How gradients are communicated.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Dense allreduce every step.
    None,
    /// Top-k with error feedback every step (the reference code's static baseline, CR 0.01).
    Topk,
    /// Top-k when the adaptive rule and the majority vote say so, dense otherwise (§3.5).
    Adaptive,
}

/// What one top-k selection ranges over.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum TopkScope {
    /// k = max(1, floor(numel_l·CR)) per parameter tensor, as the reference code does.
    #[default]
    Layer,
    /// One top-k over the whole flat gradient.
    Global,
}

/// Which form of the compression test. Both vote per rank and then decide for the whole cluster
/// from the number of compress-votes, so that every rank takes the same path.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// The paper (§2 display 2): c = |‖a‖² − ‖Topk(a)‖²| / ‖a‖² with a = g + residual, smoothed by
    /// an EWMA; the cluster compresses on a strict majority of votes (2·votes > N); the first
    /// `--warmup-steps` steps are dense; a dense step sends a and empties the residual.
    #[default]
    Paper,
    /// The reference code (`launch/adaptive_compression.py`, §3.5 [C]), exactly:
    /// c = |Σ_l‖g_l‖ − Σ_l‖Topk(a_l)‖| / Σ_l‖g_l‖ with g the RAW gradient (per-tensor L2 norms
    /// summed, not squared) and a_l = g_l + residual_l, averaged arithmetically since the current
    /// epoch began (`AverageMeter`, reset at each epoch start); the cluster compresses when
    /// votes ≥ ⌊N/2⌋ (so one vote suffices for N = 2 or 3, and a single rank always compresses);
    /// there is no warm-up (`--warmup-steps` is ignored); a dense step sends the raw g while the
    /// residual still becomes a − Topk(a), as the reference's `compensate` runs every step.
    Code,
}

impl Criterion {
    /// Whether `--warmup-steps` dense steps come first under this form (the reference code has no
    /// warm-up).
    pub fn has_warmup(self) -> bool {
        self == Criterion::Paper
    }

    /// The cluster decision from `votes` compress-votes out of `ranks`: [`majority_decision`] for
    /// the paper form, [`code_vote_decision`] for the code form.
    pub fn decision(self, votes: u64, ranks: u64) -> bool {
        match self {
            Criterion::Paper => majority_decision(votes, ranks),
            Criterion::Code => code_vote_decision(votes, ranks),
        }
    }
}

/// One rank's adaptive-compression state.
///
/// - [`Criterion::Paper`]: s_1 = c_1, s_t = ewma·s_{t−1} + (1 − ewma)·c_t (`ewma` is the weight of
///   the history; 0 means no smoothing). Never reset.
/// - [`Criterion::Code`]: s_t = mean of the c observed since the current epoch began (reset
///   whenever `observe` sees a different epoch number).
///
/// The local vote is `s_t ≤ δ`, except, under the paper form only, during the first
/// `warmup_steps` observations, which vote dense (the smoother still learns from them); the code
/// form has no warm-up. A non-finite `c` votes dense and leaves the smoother untouched, so one bad
/// step cannot poison every later decision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdaptivePolicy {
    criterion: Criterion,
    delta: f64,
    ewma: f64,
    warmup_steps: u64,
    observed: u64,
    smoothed: Option<f64>,
    mean_sum: f64,
    mean_count: u64,
    epoch: Option<u64>,
}

impl AdaptivePolicy {
    /// `delta` (δ) must be finite and ≥ 0; `ewma` must lie in [0, 1). `warmup_steps` counts only
    /// under [`Criterion::Paper`] (see [`Criterion::has_warmup`]).
    pub fn new(criterion: Criterion, delta: f64, ewma: f64, warmup_steps: u64) -> Result<Self> {
        if !(delta.is_finite() && delta >= 0.0) {
            return Err(Error::Config(format!(
                "--delta is {delta}; expected a finite number >= 0"
            )));
        }
        if !(0.0..1.0).contains(&ewma) {
            return Err(Error::Config(format!(
                "--ewma is {ewma}; expected a smoothing factor in [0, 1)"
            )));
        }
        Ok(AdaptivePolicy {
            criterion,
            delta,
            ewma,
            warmup_steps: if criterion.has_warmup() {
                warmup_steps
            } else {
                0
            },
            observed: 0,
            smoothed: None,
            mean_sum: 0.0,
            mean_count: 0,
            epoch: None,
        })
    }

    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// The smoothed criterion after the last observation (`None` before the first one, or right
    /// after an epoch reset under the code rule before its first observation).
    pub fn level(&self) -> Option<f64> {
        match self.criterion {
            Criterion::Paper => self.smoothed,
            Criterion::Code => {
                (self.mean_count > 0).then(|| self.mean_sum / self.mean_count as f64)
            }
        }
    }

    /// Feeds this step's criterion `c` (taken in `epoch`) and returns the local vote: true =
    /// compress.
    pub fn observe(&mut self, c: f64, epoch: u64) -> bool {
        self.observed += 1;
        if self.criterion == Criterion::Code && self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.mean_sum = 0.0;
            self.mean_count = 0;
        }
        if !c.is_finite() {
            return false;
        }
        let level = match self.criterion {
            Criterion::Paper => {
                let s = match self.smoothed {
                    None => c,
                    Some(prev) => self.ewma * prev + (1.0 - self.ewma) * c,
                };
                self.smoothed = Some(s);
                s
            }
            Criterion::Code => {
                self.mean_sum += c;
                self.mean_count += 1;
                self.mean_sum / self.mean_count as f64
            }
        };
        self.observed > self.warmup_steps && level <= self.delta
    }
}

/// The paper form's cluster decision from `votes` compress-votes out of `ranks`: a strict
/// majority, `2·votes > ranks`.
pub fn majority_decision(votes: u64, ranks: u64) -> bool {
    2 * votes > ranks
}

/// The code form's cluster decision, the reference code's `votes >= floor(N/2)`: it compresses on
/// a tie (N = 2: one vote of two), with a minority for odd N (N = 3: one vote of three; N = 5: two of
/// five), and for a single rank whatever it voted (0 ≥ 0). This is why the paper form, the default,
/// uses a strict majority instead.
pub fn code_vote_decision(votes: u64, ranks: u64) -> bool {
    votes >= ranks / 2
}

/// Strict-majority vote through MPI (one SUM allreduce of the 1/0 votes): every rank gets the same
/// decision, [`majority_decision`]. Every rank must call it in the same step.
pub fn majority(world: &World, local: bool) -> bool {
    vote(world, Criterion::Paper, local)
}

/// The vote of `criterion` through MPI (one SUM allreduce of the 1/0 votes): every rank gets the
/// same decision, [`Criterion::decision`]. Every rank must call it in the same step.
pub fn vote(world: &World, criterion: Criterion, local: bool) -> bool {
    let votes = world.allreduce_sum_u64(&[u64::from(local)])[0];
    criterion.decision(votes, world.size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_delta_compresses_only_at_exactly_zero() {
        let mut p = AdaptivePolicy::new(Criterion::Paper, 0.0, 0.9, 0).unwrap();
        for i in 0..100 {
            assert!(!p.observe(1e-9 * (i as f64 + 1.0), 0));
        }
        let mut p = AdaptivePolicy::new(Criterion::Paper, 0.0, 0.9, 0).unwrap();
        assert!(p.observe(0.0, 0));
        let mut p = AdaptivePolicy::new(Criterion::Code, 0.0, 0.0, 0).unwrap();
        assert!(!p.observe(1e-12, 0));
        assert!(!p.observe(0.0, 0)); // mean is still above 0
        assert!(p.observe(0.0, 1)); // new epoch: mean of {0}
    }

    #[test]
    fn huge_delta_always_compresses_after_warmup() {
        let mut p = AdaptivePolicy::new(Criterion::Paper, 1e9, 0.5, 3).unwrap();
        let votes: Vec<bool> = (0..10).map(|i| p.observe(0.5 + i as f64, i / 4)).collect();
        assert_eq!(
            votes,
            [false, false, false, true, true, true, true, true, true, true]
        );
    }

    /// The reference code has no warm-up: under the code form the very first step may compress,
    /// whatever `warmup_steps` says.
    #[test]
    fn code_form_ignores_warmup() {
        assert!(Criterion::Paper.has_warmup());
        assert!(!Criterion::Code.has_warmup());
        let mut p = AdaptivePolicy::new(Criterion::Code, 1e9, 0.5, 3).unwrap();
        let votes: Vec<bool> = (0..10).map(|i| p.observe(0.5 + i as f64, i / 4)).collect();
        assert_eq!(votes, [true; 10]);
        let mut p = AdaptivePolicy::new(Criterion::Code, 0.25, 0.0, 1000).unwrap();
        assert!(p.observe(0.25, 0)); // first observation, mean 0.25 <= δ
        assert!(!p.observe(0.5, 0)); // mean 0.375
    }

    #[test]
    fn ewma_by_hand() {
        // Dyadic numbers so every sum below is exact.
        let mut p = AdaptivePolicy::new(Criterion::Paper, 0.375, 0.75, 1).unwrap();
        // s1 = 0.25 (warm-up: dense even though 0.25 <= δ)
        assert!(!p.observe(0.25, 0));
        assert_eq!(p.level(), Some(0.25));
        // s2 = 0.75*0.25 + 0.25*0.75 = 0.375 -> compress (<= δ)
        assert!(p.observe(0.75, 0));
        assert_eq!(p.level(), Some(0.375));
        // s3 = 0.75*0.375 + 0.25*1.0 = 0.53125 -> dense
        assert!(!p.observe(1.0, 5));
        assert_eq!(p.level(), Some(0.53125));
        // s4 = 0.3984375 -> dense; s5 = 0.298828125 -> compress
        assert!(!p.observe(0.0, 5));
        assert!(p.observe(0.0, 5));
        assert_eq!(p.level(), Some(0.298828125));
        // A NaN votes dense and does not move the average.
        assert!(!p.observe(f64::NAN, 5));
        assert_eq!(p.level(), Some(0.298828125));
        // ewma = 0: no smoothing.
        let mut p = AdaptivePolicy::new(Criterion::Paper, 0.5, 0.0, 0).unwrap();
        assert!(!p.observe(0.75, 0));
        assert!(p.observe(0.5, 0));
    }

    #[test]
    fn code_criterion_mean_resets_each_epoch() {
        let mut p = AdaptivePolicy::new(Criterion::Code, 0.375, 0.0, 0).unwrap();
        assert!(p.observe(0.125, 0)); // mean 0.125
        assert!(!p.observe(0.875, 0)); // mean 0.5
        assert!(!p.observe(0.5, 0)); // mean 0.5
        assert_eq!(p.level(), Some(0.5));
        assert!(p.observe(0.25, 1)); // reset: mean 0.25
        assert!(p.observe(0.5, 1)); // mean 0.375 <= δ
        assert_eq!(p.level(), Some(0.375));
        assert!(!p.observe(1.0, 1)); // mean 0.5833
        assert!(p.observe(0.0, 2)); // reset again
    }

    #[test]
    fn bad_settings_are_config_errors() {
        assert!(matches!(
            AdaptivePolicy::new(Criterion::Paper, -0.1, 0.5, 0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            AdaptivePolicy::new(Criterion::Paper, f64::NAN, 0.5, 0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            AdaptivePolicy::new(Criterion::Paper, 0.3, 1.0, 0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            AdaptivePolicy::new(Criterion::Paper, 0.3, -0.1, 0),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn strict_majority() {
        assert!(!majority_decision(0, 1));
        assert!(majority_decision(1, 1));
        assert!(!majority_decision(1, 2));
        assert!(majority_decision(2, 2));
        assert!(!majority_decision(1, 3));
        assert!(majority_decision(2, 3));
        assert!(!majority_decision(8, 16));
        assert!(majority_decision(9, 16));
    }

    /// The code form's `votes >= floor(N/2)` for N = 1..5, every vote count.
    #[test]
    fn code_vote_is_at_least_half_rounded_down() {
        // (ranks, the fewest votes that compress)
        for (n, least) in [(1u64, 0u64), (2, 1), (3, 1), (4, 2), (5, 2)] {
            for v in 0..=n {
                assert_eq!(code_vote_decision(v, n), v >= least, "{v} of {n} votes");
                assert_eq!(Criterion::Code.decision(v, n), v >= least);
                // The paper form needs a strict majority: more than n/2.
                assert_eq!(Criterion::Paper.decision(v, n), 2 * v > n, "{v} of {n}");
            }
        }
        // The quirk, spelled out: one rank compresses even when it votes dense; a tie compresses.
        assert!(code_vote_decision(0, 1));
        assert!(code_vote_decision(1, 2));
        assert!(!majority_decision(0, 1));
        assert!(!majority_decision(1, 2));
        assert!(!code_vote_decision(0, 2));
        assert!(!code_vote_decision(1, 4));
    }

    #[test]
    fn enum_names_are_lowercase() {
        assert_eq!(
            serde_json::to_string(&Compression::Adaptive).unwrap(),
            "\"adaptive\""
        );
        assert_eq!(
            serde_json::from_str::<TopkScope>("\"global\"").unwrap(),
            TopkScope::Global
        );
        assert_eq!(
            serde_json::from_str::<Criterion>("\"code\"").unwrap(),
            Criterion::Code
        );
        use clap::ValueEnum;
        assert_eq!(
            Compression::from_str("topk", false).unwrap(),
            Compression::Topk
        );
    }
}
