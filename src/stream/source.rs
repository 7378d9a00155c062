//! Where a device's samples come from. `StreamSource` is the interface a live broker consumer
//! can implement; `SimulatedSource` produces the arrivals of a rank's partition at its stream rate.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Exp1, StandardNormal};

use super::rates::{Arrival, Drift};
use crate::error::{Error, Result};

/// A stream of samples arriving at a device. Times are seconds since the stream started.
pub trait StreamSource: Send {
    /// Arrival time and sample id of the next sample, without consuming it.
    fn peek(&mut self) -> (f64, usize);
    /// Consumes the next sample.
    fn pop(&mut self) -> (f64, usize);
    /// The nominal rate (samples/s) at time t (for reporting).
    fn rate_at(&self, t: f64) -> f64;
}

/// Bounds of the random-walk multiplier relative to the base rate.
const WALK_MIN: f64 = 0.1;
const WALK_MAX: f64 = 10.0;

/// The drift of one source, with its seeded state.
#[derive(Clone, Debug)]
enum DriftPath {
    None,
    Sine {
        period: f64,
        amp: f64,
        phase: f64,
    },
    /// `levels[j]` is the multiplier on [j·interval, (j+1)·interval); `rng` continues the path.
    Walk {
        sigma: f64,
        interval: f64,
        levels: Vec<f64>,
        rng: Box<StdRng>,
    },
}

impl DriftPath {
    fn next_level(prev: f64, sigma: f64, rng: &mut StdRng) -> f64 {
        let z: f64 = rng.sample(StandardNormal);
        (prev * (sigma * z).exp()).clamp(WALK_MIN, WALK_MAX)
    }

    /// Makes sure the walk's multiplier for interval `j` exists.
    fn extend_to(&mut self, j: usize) {
        if let DriftPath::Walk {
            sigma, levels, rng, ..
        } = self
        {
            while levels.len() <= j {
                let prev = *levels.last().unwrap_or(&1.0);
                levels.push(Self::next_level(prev, *sigma, rng));
            }
        }
    }

    /// Multiplier of the base rate at time t.
    fn factor(&self, t: f64) -> f64 {
        match self {
            DriftPath::None => 1.0,
            DriftPath::Sine { period, amp, phase } => {
                1.0 + amp * (2.0 * std::f64::consts::PI * t / period + phase).sin()
            }
            DriftPath::Walk {
                sigma,
                interval,
                levels,
                rng,
            } => {
                let j = (t.max(0.0) / interval) as usize;
                if j < levels.len() {
                    return levels[j];
                }
                // Beyond the cached path: continue it on a copy of the generator, which yields the
                // same values the source will draw when it gets there.
                let mut rng = StdRng::clone(rng);
                let mut level = *levels.last().unwrap_or(&1.0);
                for _ in levels.len()..=j {
                    level = Self::next_level(level, *sigma, &mut rng);
                }
                level
            }
        }
    }
}

/// Simulated arrivals of a rank's samples.
///
/// Samples arrive in the order of `samples` (the rank's partition), cycling forever. Arrival times
/// are the points where the cumulative intensity Λ(t) = ∫₀ᵗ S(u) du reaches a target: for
/// `Arrival::Constant` the k-th arrival (k = 1, 2, …) is at Λ(t) = k, i.e. exactly k/S without drift;
/// for `Arrival::Poisson` the targets grow by independent Exp(1) steps (time rescaling of a
/// Poisson process with intensity S(t)), so inter-arrival times are exponential with mean 1/S.
#[derive(Clone, Debug)]
pub struct SimulatedSource {
    samples: Vec<usize>,
    base_rate: f64,
    arrival: Arrival,
    drift: DriftPath,
    rng: StdRng,
    /// Index into the arrival sequence of the next sample.
    next_index: u64,
    /// Λ target and arrival time of the next sample.
    next_lambda: f64,
    next_time: f64,
    /// Walk inversion cursor: the interval holding `next_time` and Λ at that interval's start.
    walk_interval: usize,
    walk_lambda_start: f64,
}

impl SimulatedSource {
    /// A source streaming `samples` in order at `rate` samples/s. `seed` drives the Poisson
    /// draws, the sine phase and the random walk (independent streams derived from it).
    pub fn new(
        samples: Vec<usize>,
        rate: f64,
        arrival: Arrival,
        drift: Drift,
        seed: u64,
    ) -> Result<Self> {
        if samples.is_empty() {
            crate::bail!(
                Config,
                "stream source: the rank's partition is empty; expected at least one sample"
            );
        }
        if !(rate.is_finite() && rate > 0.0) {
            crate::bail!(
                Config,
                "stream source: rate {rate} must be a finite number > 0"
            );
        }
        drift.validate().map_err(Error::Config)?;
        let mut seeds = StdRng::seed_from_u64(seed);
        let arrival_seed: u64 = seeds.gen();
        let drift_seed: u64 = seeds.gen();
        let path = match drift {
            Drift::None => DriftPath::None,
            Drift::Sine {
                period_s,
                amplitude,
            } => {
                let phase =
                    StdRng::seed_from_u64(drift_seed).gen::<f64>() * 2.0 * std::f64::consts::PI;
                DriftPath::Sine {
                    period: period_s,
                    amp: amplitude,
                    phase,
                }
            }
            Drift::Walk { sigma, interval_s } => DriftPath::Walk {
                sigma,
                interval: interval_s,
                levels: vec![1.0],
                rng: Box::new(StdRng::seed_from_u64(drift_seed)),
            },
        };
        let mut src = SimulatedSource {
            samples,
            base_rate: rate,
            arrival,
            drift: path,
            rng: StdRng::seed_from_u64(arrival_seed),
            next_index: 0,
            next_lambda: 0.0,
            next_time: 0.0,
            walk_interval: 0,
            walk_lambda_start: 0.0,
        };
        src.advance();
        Ok(src)
    }

    /// The base rate S0 (samples/s).
    pub fn base_rate(&self) -> f64 {
        self.base_rate
    }

    /// Λ(t) for the sine drift.
    fn sine_lambda(&self, t: f64, period: f64, amp: f64, phase: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI / period;
        self.base_rate * (t - amp / w * ((w * t + phase).cos() - phase.cos()))
    }

    /// Sets `next_time` to the time where Λ reaches the new `next_lambda`.
    fn advance(&mut self) {
        let prev_time = self.next_time;
        let prev_lambda = self.next_lambda;
        let step = match self.arrival {
            Arrival::Constant => 1.0,
            Arrival::Poisson => self.rng.sample::<f64, _>(Exp1),
        };
        self.next_lambda = prev_lambda + step;
        let target = self.next_lambda;
        self.next_time = match self.drift {
            DriftPath::None => target / self.base_rate,
            DriftPath::Sine { period, amp, phase } => {
                // Λ is increasing with slope in [S0(1−a), S0(1+a)]: bracket, then Newton with
                // bisection as the safeguard.
                let d = target - prev_lambda;
                let (mut lo, mut hi) = (
                    prev_time + d / (self.base_rate * (1.0 + amp)),
                    prev_time + d / (self.base_rate * (1.0 - amp)),
                );
                let mut t = 0.5 * (lo + hi);
                for _ in 0..100 {
                    let f = self.sine_lambda(t, period, amp, phase) - target;
                    if f.abs() <= 1e-12 * target.max(1.0) {
                        break;
                    }
                    if f > 0.0 {
                        hi = t;
                    } else {
                        lo = t;
                    }
                    let slope = self.base_rate
                        * (1.0 + amp * (2.0 * std::f64::consts::PI * t / period + phase).sin());
                    let newton = t - f / slope;
                    t = if newton > lo && newton < hi {
                        newton
                    } else {
                        0.5 * (lo + hi)
                    };
                    if hi - lo <= 1e-15 * hi.max(1.0) {
                        break;
                    }
                }
                t
            }
            DriftPath::Walk { interval, .. } => {
                // Piecewise-constant rate: walk interval by interval from the cursor.
                loop {
                    let j = self.walk_interval;
                    self.drift.extend_to(j);
                    let rate = self.base_rate * self.drift.factor(j as f64 * interval);
                    let start = j as f64 * interval;
                    let end_lambda = self.walk_lambda_start + rate * interval;
                    if target <= end_lambda {
                        break start + (target - self.walk_lambda_start) / rate;
                    }
                    self.walk_lambda_start = end_lambda;
                    self.walk_interval += 1;
                }
            }
        };
    }
}

impl StreamSource for SimulatedSource {
    fn peek(&mut self) -> (f64, usize) {
        let id = self.samples[(self.next_index % self.samples.len() as u64) as usize];
        (self.next_time, id)
    }

    fn pop(&mut self) -> (f64, usize) {
        let out = self.peek();
        self.next_index += 1;
        self.advance();
        out
    }

    fn rate_at(&self, t: f64) -> f64 {
        self.base_rate * self.drift.factor(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(rate: f64, arrival: Arrival, drift: Drift, seed: u64) -> SimulatedSource {
        SimulatedSource::new((0..10).collect(), rate, arrival, drift, seed).unwrap()
    }

    #[test]
    fn constant_arrivals_are_exactly_k_over_s() {
        for rate in [38.0, 50.0, 300.0, 7.3] {
            let mut s = src(rate, Arrival::Constant, Drift::None, 1);
            for k in 1..=5000u64 {
                let (t, _) = s.pop();
                assert_eq!(t, k as f64 / rate, "k={k} S={rate}");
            }
        }
    }

    #[test]
    fn cycles_through_the_partition_in_order() {
        let mut s =
            SimulatedSource::new(vec![7, 3, 9], 10.0, Arrival::Poisson, Drift::None, 5).unwrap();
        let ids: Vec<usize> = (0..8).map(|_| s.pop().1).collect();
        assert_eq!(ids, vec![7, 3, 9, 7, 3, 9, 7, 3]);
        let peeked = s.peek();
        assert_eq!(peeked, s.peek());
        assert_eq!(peeked, s.pop());
    }

    #[test]
    fn rejects_empty_partition_and_bad_rate() {
        assert!(SimulatedSource::new(vec![], 10.0, Arrival::Constant, Drift::None, 0).is_err());
        assert!(SimulatedSource::new(vec![1], 0.0, Arrival::Constant, Drift::None, 0).is_err());
        assert!(
            SimulatedSource::new(vec![1], f64::NAN, Arrival::Constant, Drift::None, 0).is_err()
        );
    }

    #[test]
    fn poisson_inter_arrivals_are_exponential_and_seeded() {
        let rate = 64.0;
        let n = 40000;
        let mut s = src(rate, Arrival::Poisson, Drift::None, 9);
        let mut prev = 0.0;
        let mut gaps = Vec::with_capacity(n);
        for _ in 0..n {
            let (t, _) = s.pop();
            assert!(t > prev);
            gaps.push(t - prev);
            prev = t;
        }
        let mean = gaps.iter().sum::<f64>() / n as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n as f64;
        // Exponential: mean = std = 1/S; the sample mean has relative standard error 1/√n = 0.5%.
        assert!((mean * rate - 1.0).abs() < 0.02, "mean gap {mean}");
        assert!(
            (var.sqrt() * rate - 1.0).abs() < 0.04,
            "std gap {}",
            var.sqrt()
        );
        // P(gap > 1/S) = e^-1.
        let frac = gaps.iter().filter(|&&g| g > 1.0 / rate).count() as f64 / n as f64;
        assert!((frac - (-1f64).exp()).abs() < 0.01, "{frac}");

        let a: Vec<f64> = {
            let mut s = src(rate, Arrival::Poisson, Drift::None, 9);
            (0..50).map(|_| s.pop().0).collect()
        };
        let b: Vec<f64> = {
            let mut s = src(rate, Arrival::Poisson, Drift::None, 9);
            (0..50).map(|_| s.pop().0).collect()
        };
        let c: Vec<f64> = {
            let mut s = src(rate, Arrival::Poisson, Drift::None, 10);
            (0..50).map(|_| s.pop().0).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sine_drift_changes_the_rate_as_documented() {
        let (s0, p, a) = (100.0, 20.0, 0.5);
        let mut s = src(
            s0,
            Arrival::Constant,
            Drift::Sine {
                period_s: p,
                amplitude: a,
            },
            3,
        );
        let phase = match s.drift {
            DriftPath::Sine { phase, .. } => phase,
            _ => unreachable!(),
        };
        for t in [0.0, 1.7, 5.0, 12.3] {
            let expect = s0 * (1.0 + a * (2.0 * std::f64::consts::PI * t / p + phase).sin());
            assert!((s.rate_at(t) - expect).abs() < 1e-9);
        }
        // Over whole periods the arrivals average S0: Λ(kP) = S0·kP.
        let mut count = 0;
        while s.peek().0 <= 2.0 * p + 1e-9 {
            s.pop();
            count += 1;
        }
        assert_eq!(count, (2.0 * p * s0) as usize);
        // Locally, the arrival count in a short window tracks the drifted rate: count arrivals in
        // [t0, t0 + 0.5] and compare with ∫ S(u) du over that window (within one sample).
        let mut s = src(
            s0,
            Arrival::Constant,
            Drift::Sine {
                period_s: p,
                amplitude: a,
            },
            3,
        );
        for t0 in [1.0, 6.0, 11.0, 16.0] {
            while s.peek().0 <= t0 {
                s.pop();
            }
            let mut n = 0;
            while s.peek().0 <= t0 + 0.5 {
                s.pop();
                n += 1;
            }
            let integral = s.sine_lambda(t0 + 0.5, p, a, phase) - s.sine_lambda(t0, p, a, phase);
            assert!(
                (n as f64 - integral).abs() <= 1.0,
                "t0={t0}: {n} vs {integral}"
            );
        }
        // The constant-arrival schedule satisfies Λ(t_k) = k.
        let mut s = src(
            s0,
            Arrival::Constant,
            Drift::Sine {
                period_s: p,
                amplitude: a,
            },
            3,
        );
        for k in 1..=3000 {
            let (t, _) = s.pop();
            assert!(
                (s.sine_lambda(t, p, a, phase) - k as f64).abs() < 1e-8,
                "k={k}"
            );
        }
    }

    #[test]
    fn walk_drift_is_piecewise_constant_bounded_and_seeded() {
        let (s0, sigma, iv) = (50.0, 0.5, 2.0);
        let mut s = src(
            s0,
            Arrival::Constant,
            Drift::Walk {
                sigma,
                interval_s: iv,
            },
            4,
        );
        // rate_at ahead of the arrivals equals what the source later uses.
        let ahead: Vec<f64> = (0..40).map(|j| s.rate_at(j as f64 * iv + 0.3)).collect();
        assert_eq!(ahead[0], s0);
        assert!(ahead
            .iter()
            .all(|&r| (s0 * WALK_MIN..=s0 * WALK_MAX).contains(&r)));
        assert!(ahead.windows(2).any(|w| w[0] != w[1]));
        // Arrivals in interval j number rate_j·iv (Λ is exact per interval; within one sample).
        let mut counts = vec![0usize; 40];
        loop {
            let (t, _) = s.pop();
            let j = (t / iv) as usize;
            if j >= 40 {
                break;
            }
            counts[j] += 1;
        }
        let mut lam = 0.0f64;
        for j in 0..40 {
            let before = lam.floor();
            lam += ahead[j] * iv;
            let expect = lam.floor() - before;
            assert!(
                (counts[j] as f64 - expect).abs() <= 1.0,
                "interval {j}: {} vs {expect}",
                counts[j]
            );
        }
        let again: Vec<f64> = (0..40).map(|j| s.rate_at(j as f64 * iv + 0.3)).collect();
        assert_eq!(ahead, again);
        let other = src(
            s0,
            Arrival::Constant,
            Drift::Walk {
                sigma,
                interval_s: iv,
            },
            5,
        );
        assert_ne!(
            ahead,
            (0..40)
                .map(|j| other.rate_at(j as f64 * iv + 0.3))
                .collect::<Vec<_>>()
        );
    }
}
