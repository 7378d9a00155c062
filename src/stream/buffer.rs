//! The device buffer (spec §3.3) and the two ways the training loop takes a batch from it:
//! ScaDLES's stream-rate-sized batch (§3.1) and the conventional fixed batch.
//!
//! Model: arrivals up to a time are pulled from the source into a FIFO. With a cap c, when the
//! occupancy would exceed c the OLDEST samples are dropped (ring-buffer overflow) and counted. A
//! take waits (on the simulated clock) until its batch is buffered and takes the oldest samples.
//! Under **persistence** the rest stays for later takes, so over T iterations the buffer grows as
//! in Eq. 2 whenever the stream outpaces training; under **truncation** the rest is dropped at
//! every take, so nothing carries over and the occupancy is at most what streamed in since the
//! previous take.
//!
//! Times are seconds on the stream's clock. An arrival at exactly time t counts as arrived at t;
//! comparisons allow `TIME_EPS` so that exact-rate schedules (k/S) are not split by rounding.

use std::collections::VecDeque;

use super::source::StreamSource;

/// Tolerance (s) when comparing arrival times with the clock.
pub const TIME_EPS: f64 = 1e-9;

/// How long arrival times are remembered for the ScaDLES window when no longer window was asked for.
const MIN_RETENTION_S: f64 = 1.0;

/// What the buffer keeps after a take (paper §IV, "Stream Persistence" / "Stream Truncation").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BufferPolicy {
    /// Keep every sample until it is trained on: the buffer grows as Eq. 2 when t·S > b.
    Persistence,
    /// Drop what the take did not use: storage O(S) regardless of the number of iterations.
    Truncation,
}

/// The result of one take.
#[derive(Clone, Debug, PartialEq)]
pub struct Take {
    /// Ids of the samples to train on, oldest first.
    pub samples: Vec<usize>,
    /// How long the device waited for the batch (s).
    pub wait_s: f64,
    /// q: buffer occupancy at the moment of the take (at `now`, before waiting and consuming);
    /// the reference code's `bufferqueue_size`.
    pub queued: usize,
    /// Occupancy after the take.
    pub left: usize,
    /// Samples dropped by truncation at this take, plus those dropped by the cap since the previous take.
    pub dropped: usize,
}

/// FIFO bookkeeping shared by the simulated-clock buffer and the real-time stream.
#[derive(Debug)]
pub(crate) struct Fifo {
    pub(crate) policy: BufferPolicy,
    pub(crate) cap: Option<usize>,
    pub(crate) queue: VecDeque<usize>,
    /// Arrival times within the last `retention` seconds, for the ScaDLES window count.
    recent: VecDeque<f64>,
    retention: f64,
    pending_dropped: usize,
    pub(crate) total_dropped: u64,
    pub(crate) total_arrived: u64,
}

impl Fifo {
    pub(crate) fn new(policy: BufferPolicy, cap: Option<usize>) -> Self {
        Fifo {
            policy,
            // A buffer must hold at least one sample to hand anything to training.
            cap: cap.map(|c| c.max(1)),
            queue: VecDeque::new(),
            recent: VecDeque::new(),
            retention: MIN_RETENTION_S,
            pending_dropped: 0,
            total_dropped: 0,
            total_arrived: 0,
        }
    }

    /// One sample arrives at time t (non-decreasing).
    pub(crate) fn push(&mut self, t: f64, id: usize) {
        self.queue.push_back(id);
        self.total_arrived += 1;
        self.recent.push_back(t);
        if let Some(c) = self.cap {
            while self.queue.len() > c {
                self.queue.pop_front();
                self.pending_dropped += 1;
                self.total_dropped += 1;
            }
        }
    }

    /// Forgets arrival times that no window ending at or after `now` can contain.
    pub(crate) fn prune(&mut self, now: f64) {
        while self
            .recent
            .front()
            .is_some_and(|&t| t <= now - self.retention - TIME_EPS)
        {
            self.recent.pop_front();
        }
    }

    /// Number of arrivals in (now − window, now]. Arrival times are remembered for the longest
    /// window asked for so far (at least 1 s), so the window should not grow during a run.
    pub(crate) fn window_count(&mut self, now: f64, window: f64) -> usize {
        self.retention = self.retention.max(window);
        let lo = now - window + TIME_EPS;
        let hi = now + TIME_EPS;
        // `recent` is sorted: count from the back.
        self.recent
            .iter()
            .rev()
            .skip_while(|&&t| t > hi)
            .take_while(|&&t| t > lo)
            .count()
    }

    /// The number of samples a take of `b` waits for: `b`, or the cap if that is smaller.
    pub(crate) fn target(&self, b: usize) -> usize {
        self.cap.map_or(b, |c| b.min(c))
    }

    /// Takes the `n` oldest samples (n ≤ occupancy) and applies the policy to the rest.
    pub(crate) fn take(&mut self, n: usize, wait_s: f64, queued: usize) -> Take {
        let n = n.min(self.queue.len());
        let samples: Vec<usize> = self.queue.drain(..n).collect();
        let mut dropped = std::mem::take(&mut self.pending_dropped);
        if self.policy == BufferPolicy::Truncation {
            dropped += self.queue.len();
            self.total_dropped += self.queue.len() as u64;
            self.queue.clear();
        }
        Take {
            samples,
            wait_s,
            queued,
            left: self.queue.len(),
            dropped,
        }
    }
}

/// Batch size of a ScaDLES take: the window's arrivals clamped to [b_min, b_max] (b_max wins if
/// b_min > b_max).
pub(crate) fn clamp_batch(arrived: usize, b_min: usize, b_max: usize) -> usize {
    arrived.max(b_min).min(b_max)
}

/// A device's stream buffer on the simulated clock: nothing sleeps, waits are computed from the
/// arrival times the source reports.
pub struct DeviceBuffer {
    source: Box<dyn StreamSource>,
    fifo: Fifo,
    bytes_per_sample: usize,
    /// Arrivals up to this time have been pulled in.
    clock: f64,
}

impl DeviceBuffer {
    /// A buffer fed by `source`. `cap` bounds the occupancy in samples (`Some(0)` is treated as 1);
    /// `bytes_per_sample` is used only to report sizes in bytes.
    pub fn new(
        source: Box<dyn StreamSource>,
        policy: BufferPolicy,
        cap: Option<usize>,
        bytes_per_sample: usize,
    ) -> Self {
        DeviceBuffer {
            source,
            fifo: Fifo::new(policy, cap),
            bytes_per_sample,
            clock: 0.0,
        }
    }

    /// Pulls every arrival up to time t into the FIFO.
    fn pull_until(&mut self, t: f64) {
        while self.source.peek().0 <= t + TIME_EPS {
            let (at, id) = self.source.pop();
            self.fifo.push(at, id);
        }
        self.clock = self.clock.max(t);
        self.fifo.prune(self.clock);
    }

    /// Pulls arrivals one at a time until `target` samples are buffered; returns when that happened.
    fn wait_for(&mut self, now: f64, target: usize) -> f64 {
        let mut at = now;
        while self.fifo.queue.len() < target {
            let (t, id) = self.source.pop();
            self.fifo.push(t, id);
            at = at.max(t);
        }
        // Samples arriving at the same instant as the last one needed are there too.
        self.pull_until(at);
        at
    }

    /// The clock never runs backwards: a `now` before the end of the previous take means "at the end
    /// of the previous take".
    fn start(&mut self, now: f64) -> f64 {
        let now = if now.is_finite() {
            now.max(self.clock)
        } else {
            self.clock
        };
        self.pull_until(now);
        now
    }

    /// ScaDLES (spec §3.1): at time `now` the batch is b = clamp(number of samples that arrived in the
    /// window (now − window, now], b_min, b_max), counting arrivals whether or not they are still
    /// buffered. If fewer than b are buffered, wait until b are (wait_s = arrival time of the b-th
    /// buffered sample − now; with a constant rate this is (b − q)/S, the §3.3 recurrence). Take the b
    /// OLDEST buffered samples. Persistence keeps the rest; truncation drops the rest (nothing carries
    /// over to the next take). With a cap below b, the take waits for a full buffer and returns the cap.
    ///
    /// With a constant rate S, window 1 s and b_min ≤ S ≤ b_max the batch is S, the reference code's
    /// bulk simulation (batch = stream rate). With b_min = 0 and no arrivals in the window, b = 0: the
    /// take is empty and waits 0 (the rank still joins every collective).
    pub fn take_window(&mut self, now: f64, window: f64, b_min: usize, b_max: usize) -> Take {
        let now = self.start(now);
        let arrived = self.fifo.window_count(now, window.max(0.0));
        let b = clamp_batch(arrived, b_min, b_max);
        self.take_at(now, b)
    }

    /// Conventional DDL: wait until `b` samples are buffered, take the b oldest (persistence keeps the
    /// rest, truncation drops it).
    pub fn take_fixed(&mut self, now: f64, b: usize) -> Take {
        let now = self.start(now);
        self.take_at(now, b)
    }

    fn take_at(&mut self, now: f64, b: usize) -> Take {
        let queued = self.fifo.queue.len();
        let target = self.fifo.target(b);
        let at = self.wait_for(now, target);
        self.fifo.take(target, (at - now).max(0.0), queued)
    }

    /// Occupancy (samples) after advancing arrivals to time t (no take).
    pub fn occupancy_at(&mut self, t: f64) -> usize {
        self.start(t);
        self.fifo.queue.len()
    }

    /// Size of one sample in bytes (for reporting buffer sizes).
    pub fn bytes_per_sample(&self) -> usize {
        self.bytes_per_sample
    }

    /// Samples dropped so far, by truncation or the cap.
    pub fn total_dropped(&self) -> u64 {
        self.fifo.total_dropped
    }

    /// Samples that have arrived so far (up to the latest time the buffer was advanced to).
    pub fn total_arrived(&self) -> u64 {
        self.fifo.total_arrived
    }

    /// The buffer policy.
    pub fn policy(&self) -> BufferPolicy {
        self.fifo.policy
    }

    /// The time up to which arrivals have been pulled (the end of the latest take or query).
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// The source's nominal rate at time t.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.source.rate_at(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::rates::{Arrival, Drift};
    use crate::stream::source::SimulatedSource;

    fn buffer(rate: f64, policy: BufferPolicy, cap: Option<usize>) -> DeviceBuffer {
        let src = SimulatedSource::new(
            (0..100_000).collect(),
            rate,
            Arrival::Constant,
            Drift::None,
            1,
        )
        .unwrap();
        DeviceBuffer::new(Box::new(src), policy, cap, 3072)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// S = 50, window 1, b ∈ [8, 1024], iteration time 0.5 s: the batch is 50, each take finds the 25
    /// samples of the last half second and waits 0.5 s for the other 25. Both policies agree.
    #[test]
    fn scadles_fast_training_waits_half_a_second() {
        for policy in [BufferPolicy::Persistence, BufferPolicy::Truncation] {
            let mut buf = buffer(50.0, policy, None);
            let first = buf.take_window(1.0, 1.0, 8, 1024);
            assert_eq!((first.samples.len(), first.queued, first.left), (50, 50, 0));
            assert_eq!(first.samples, (0..50).collect::<Vec<_>>());
            assert_eq!(first.wait_s, 0.0);
            let mut now = 1.0 + first.wait_s + 0.5;
            let mut next_id = 50;
            for _ in 0..6 {
                let t = buf.take_window(now, 1.0, 8, 1024);
                assert_eq!(t.samples.len(), 50);
                assert_eq!(t.queued, 25);
                assert!(close(t.wait_s, 0.5), "{}", t.wait_s);
                assert_eq!((t.left, t.dropped), (0, 0));
                assert_eq!(t.samples, (next_id..next_id + 50).collect::<Vec<_>>());
                next_id += 50;
                now += t.wait_s + 0.5;
            }
            assert_eq!(buf.total_dropped(), 0);
        }
    }

    /// Iteration time 1.5 s: 75 samples stream in per step, 50 are trained on. Persistence keeps 25
    /// more every step (Eq. 2's linear growth); truncation always sees 75 and drops 25.
    #[test]
    fn scadles_slow_training_persistence_grows_truncation_drops() {
        let mut buf = buffer(50.0, BufferPolicy::Persistence, None);
        let mut now = 1.0;
        let first = buf.take_window(now, 1.0, 8, 1024);
        assert_eq!((first.queued, first.left), (50, 0));
        now += 1.5;
        for k in 1..=8 {
            let t = buf.take_window(now, 1.0, 8, 1024);
            assert_eq!(t.samples.len(), 50);
            assert_eq!(t.queued, 50 + 25 * k, "step {k}");
            assert_eq!(t.left, 25 * k);
            assert_eq!((t.wait_s, t.dropped), (0.0, 0));
            // The oldest samples go first: step k trains on ids 50k..50k+50.
            assert_eq!(t.samples[0], 50 * k);
            now += 1.5;
        }

        let mut buf = buffer(50.0, BufferPolicy::Truncation, None);
        let mut now = 1.0;
        buf.take_window(now, 1.0, 8, 1024);
        now += 1.5;
        let mut seen_next = 50;
        for k in 1..=8 {
            let t = buf.take_window(now, 1.0, 8, 1024);
            assert_eq!(
                (t.samples.len(), t.queued, t.left, t.dropped),
                (50, 75, 0, 25),
                "step {k}"
            );
            assert_eq!(t.samples[0], seen_next);
            seen_next += 75;
            now += 1.5;
        }
        assert_eq!(buf.total_dropped(), 8 * 25);
        assert_eq!(buf.total_arrived(), 50 + 8 * 75);
    }

    /// The reference code's recurrence (spec §3.3) in float64, with b = S (bulk simulation).
    fn reference(policy: BufferPolicy, s: f64, b: f64, iters: &[f64]) -> Vec<(f64, f64)> {
        let mut prev_buff = 0.0;
        let mut out = Vec::new();
        for &t in iters {
            let q = match policy {
                BufferPolicy::Persistence => s * t + prev_buff,
                BufferPolicy::Truncation => s * t,
            };
            let wait = if q >= b { 0.0 } else { (b - q) / s };
            prev_buff = if policy == BufferPolicy::Persistence && q >= b {
                q - b
            } else {
                0.0
            };
            out.push((q, wait));
        }
        out
    }

    #[test]
    fn window_take_follows_the_reference_recurrence() {
        let s = 40.0;
        // Iteration times that are whole multiples of 1/S, so q is an integer in both models.
        let iters = [
            0.5, 1.5, 2.0, 0.25, 0.75, 3.0, 0.1, 1.0, 1.25, 0.5, 2.5, 0.05,
        ];
        for policy in [BufferPolicy::Persistence, BufferPolicy::Truncation] {
            let expect = reference(policy, s, s, &iters);
            let mut buf = buffer(s, policy, None);
            // Start after a full first window: the take at t = 1 consumes exactly what arrived.
            let first = buf.take_window(1.0, 1.0, 8, 1024);
            assert_eq!(first.left, 0);
            let mut now = 1.0 + first.wait_s;
            for (k, (&t_iter, &(q, wait))) in iters.iter().zip(&expect).enumerate() {
                now += t_iter;
                let take = buf.take_window(now, 1.0, 8, 1024);
                assert_eq!(take.samples.len(), s as usize, "{policy:?} step {k}");
                assert!(
                    (take.queued as f64 - q).abs() < 1e-6,
                    "{policy:?} step {k}: q {} vs {q}",
                    take.queued
                );
                assert!(
                    (take.wait_s - wait).abs() < 1e-9,
                    "{policy:?} step {k}: wait {} vs {wait}",
                    take.wait_s
                );
                now += take.wait_s;
            }
        }
    }

    /// Conventional DDL with b = 64 on a 38 samples/s device (Table I's S1 mean).
    #[test]
    fn fixed_take_waits_b_minus_q_over_s_and_carries_over() {
        let mut p = buffer(38.0, BufferPolicy::Persistence, None);
        let mut tr = buffer(38.0, BufferPolicy::Truncation, None);
        for buf in [&mut p, &mut tr] {
            let t = buf.take_fixed(1.0, 64);
            assert_eq!((t.samples.len(), t.queued, t.left), (64, 38, 0));
            assert!(close(t.wait_s, 26.0 / 38.0), "{}", t.wait_s);
        }
        // Two seconds of training: 76 arrive.
        let now = 64.0 / 38.0 + 2.0;
        let t = p.take_fixed(now, 64);
        assert_eq!((t.queued, t.left, t.wait_s, t.dropped), (76, 12, 0.0, 0));
        let t = tr.take_fixed(now, 64);
        assert_eq!((t.queued, t.left, t.wait_s, t.dropped), (76, 0, 0.0, 12));
        // Persistence carries the 12 over; 0.5 s later only 19 more arrived: wait (64 − 31)/38.
        let now = now + 0.5;
        let t = p.take_fixed(now, 64);
        assert_eq!((t.queued, t.left), (31, 0));
        assert!(close(t.wait_s, 33.0 / 38.0), "{}", t.wait_s);
        let t = tr.take_fixed(now, 64);
        assert_eq!((t.queued, t.left), (19, 0));
        assert!(close(t.wait_s, 45.0 / 38.0), "{}", t.wait_s);
    }

    #[test]
    fn truncation_holds_at_most_one_window_when_training_keeps_up() {
        // Iteration times up to the window: occupancy never exceeds S·window at any moment.
        let s = 64.0;
        let mut buf = buffer(s, BufferPolicy::Truncation, None);
        let mut now = 1.0;
        for (k, t_iter) in [0.3, 1.0, 0.7, 0.9, 0.2, 1.0, 0.55]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            let t = buf.take_window(now, 1.0, 8, 1024);
            assert!(t.queued <= s as usize, "step {k}: {}", t.queued);
            assert_eq!(t.left, 0);
            // Mid-iteration the occupancy is what arrived since the take, below one window.
            assert!(buf.occupancy_at(now + t.wait_s + t_iter / 2.0) <= s as usize);
            now += t.wait_s + t_iter;
        }
    }

    #[test]
    fn cap_drops_the_oldest() {
        let mut buf = buffer(10.0, BufferPolicy::Persistence, Some(5));
        assert_eq!(buf.occupancy_at(1.0), 5);
        assert_eq!(buf.total_arrived(), 10);
        assert_eq!(buf.total_dropped(), 5);
        let t = buf.take_fixed(1.0, 3);
        // Ids 0..5 were overwritten; the oldest kept is 5.
        assert_eq!(t.samples, vec![5, 6, 7]);
        assert_eq!((t.queued, t.left, t.dropped), (5, 2, 5));
        // A batch larger than the cap waits for a full buffer and returns the cap.
        let t = buf.take_fixed(1.0, 8);
        assert_eq!(t.samples, vec![8, 9, 10, 11, 12]);
        assert!(close(t.wait_s, 0.3), "{}", t.wait_s);
        assert_eq!(t.dropped, 0);
    }

    #[test]
    fn b_min_above_the_arrivals_waits() {
        let mut buf = buffer(5.0, BufferPolicy::Persistence, None);
        let t = buf.take_window(1.0, 1.0, 8, 1024);
        // 5 arrived in the window, b = 8: wait for the 8th arrival at 8/5 = 1.6 s.
        assert_eq!((t.samples.len(), t.queued), (8, 5));
        assert!(close(t.wait_s, 0.6), "{}", t.wait_s);
        // b_max clamps a window with more arrivals.
        let mut buf = buffer(500.0, BufferPolicy::Persistence, None);
        let t = buf.take_window(1.0, 1.0, 8, 100);
        assert_eq!((t.samples.len(), t.left), (100, 400));
    }

    #[test]
    fn empty_window_with_zero_b_min_gives_an_empty_take() {
        // One sample per second: nothing arrives in (0.1, 0.5].
        let mut buf = buffer(1.0, BufferPolicy::Persistence, None);
        let t = buf.take_window(0.5, 0.4, 0, 1024);
        assert_eq!(
            t,
            Take {
                samples: vec![],
                wait_s: 0.0,
                queued: 0,
                left: 0,
                dropped: 0
            }
        );
        // With a sample in the window the take is that sample.
        let t = buf.take_window(1.2, 0.4, 0, 1024);
        assert_eq!((t.samples, t.wait_s), (vec![0], 0.0));
    }

    #[test]
    fn time_never_runs_backwards() {
        let mut buf = buffer(10.0, BufferPolicy::Persistence, None);
        let t = buf.take_fixed(0.0, 10);
        assert!(close(t.wait_s, 1.0));
        // Asking at an earlier time means "now": the clock is at 1.0 and nothing new has arrived.
        let t = buf.take_fixed(0.5, 5);
        assert_eq!(t.queued, 0);
        assert!(close(t.wait_s, 0.5), "{}", t.wait_s);
        assert!(close(buf.clock(), 1.5));
    }
}
