//! The clock a run's times are read on (ARCHITECTURE "The clock").
//!
//! - `virtual`: nothing sleeps. Each rank's wait comes from its [`DeviceBuffer`](super::DeviceBuffer)
//!   (arrival times from the stream model), compute and communication are measured (optionally
//!   scaled, and communication optionally replaced by a [`LinkModel`]), and a synchronous step takes
//!   [`virtual_step_time`].
//! - `real`: samples are produced in real time by a [`RealTimeStream`] and ranks really wait.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::buffer::{clamp_batch, BufferPolicy, Fifo, Take};
use super::source::StreamSource;
use crate::error::{Error, Result};

/// Which clock a run's times are read on.
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
pub enum ClockKind {
    /// Simulated time: stream waits from the arrival model, nothing sleeps.
    #[default]
    Virtual,
    /// Wall-clock time: streams produced in real time, ranks really wait.
    Real,
}

/// Link model for the virtual clock (e.g. the paper's 5 Gbps Ethernet between edge devices).
///
/// - Ring allreduce of `bytes` over p ranks (reduce-scatter then allgather, 2(p−1) steps each moving
///   bytes/p): 2(p−1)·latency + 2(p−1)/p · bytes/bandwidth.
/// - Allgather(v) where rank i contributes c_i bytes, as a ring: p−1 steps, and every rank must
///   receive everything but its own part, so the slowest rank receives Σc − min c:
///   (p−1)·latency + (Σc − min c)/bandwidth.
/// - Point-to-point: latency + bytes/bandwidth.
///
/// One rank (p ≤ 1) communicates nothing: 0 s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// Bandwidth in gigabits per second (10^9 bit/s).
    pub gbps: f64,
    /// Per-message latency in seconds.
    pub latency_s: f64,
}

impl LinkModel {
    /// A link with the given bandwidth (> 0) and latency (≥ 0).
    pub fn new(gbps: f64, latency_s: f64) -> Result<Self> {
        if !(gbps.is_finite() && gbps > 0.0) {
            crate::bail!(Config, "--link-gbps {gbps} must be a finite number > 0");
        }
        if !(latency_s.is_finite() && latency_s >= 0.0) {
            crate::bail!(
                Config,
                "--link-latency {latency_s} must be a finite number >= 0 (seconds)"
            );
        }
        Ok(LinkModel { gbps, latency_s })
    }

    /// Bandwidth in bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        self.gbps * 1e9 / 8.0
    }

    /// Time of a ring allreduce of `bytes` over `p` ranks.
    pub fn allreduce_s(&self, bytes: f64, p: usize) -> f64 {
        if p <= 1 {
            return 0.0;
        }
        let steps = 2.0 * (p as f64 - 1.0);
        steps * self.latency_s + steps / p as f64 * bytes / self.bytes_per_s()
    }

    /// Time of an allgather(v) where rank i contributes `bytes_per_rank[i]` bytes.
    pub fn allgatherv_s(&self, bytes_per_rank: &[f64]) -> f64 {
        let p = bytes_per_rank.len();
        if p <= 1 {
            return 0.0;
        }
        let total: f64 = bytes_per_rank.iter().sum();
        let min = bytes_per_rank.iter().cloned().fold(f64::INFINITY, f64::min);
        (p as f64 - 1.0) * self.latency_s + (total - min) / self.bytes_per_s()
    }

    /// Time of one point-to-point message of `bytes`.
    pub fn p2p_s(&self, bytes: f64) -> f64 {
        self.latency_s + bytes / self.bytes_per_s()
    }
}

/// Where a step's compute time on the virtual clock comes from (`--compute-model`).
///
/// - `measured`: this machine's measured forward + backward + packing time.
/// - `linear:A:C`: `A + C·b` seconds for a local batch of b samples (0 for an empty batch), so a
///   run with a link model is a pure function of its configuration and seed.
/// - `k80-resnet152`, `k80-vgg19`: the paper's devices (one K80 each). Table II gives the mean
///   time of one whole iteration at batch 64 (t = 1.2 s for ResNet152, 1.6 s for VGG19), which
///   includes the gradient allreduce; Fig. 4(b) gives that allreduce on the same cluster and
///   5 Gbps network (≈1.05 s for ResNet152's 230 MB, ≈1.45 s for VGG19's 548 MB). Compute at
///   batch 64 is the difference: 0.15 s for both. The paper reports no other batch size, so the
///   presets are proportional to the batch (A = 0, C = 0.15 s / 64 = 2.34375 ms per sample); use
///   `linear:A:C` to model a fixed per-step cost.
///
/// Either way the result is multiplied by the rank's `--compute-scale` factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ComputeModel {
    Measured,
    Linear {
        a: f64,
        c: f64,
        preset: Option<&'static str>,
    },
}

/// Compute seconds at batch 64 of the paper's K80 devices: Table II's iteration time minus
/// Fig. 4(b)'s gradient synchronisation time.
pub const K80_RESNET152_COMPUTE_64: f64 = 0.15; // 1.2 s − 1.05 s
/// See [`K80_RESNET152_COMPUTE_64`]: VGG19, 1.6 s − 1.45 s.
pub const K80_VGG19_COMPUTE_64: f64 = 0.15; // 1.6 s − 1.45 s

impl ComputeModel {
    /// Compute seconds of a local batch of `b` samples; `measured_s` is this machine's time.
    pub fn seconds(&self, b: usize, measured_s: f64) -> f64 {
        match *self {
            ComputeModel::Measured => measured_s,
            ComputeModel::Linear { .. } if b == 0 => 0.0,
            ComputeModel::Linear { a, c, .. } => a + c * b as f64,
        }
    }

    /// True unless the compute time is measured (the clock then depends on no measurement).
    pub fn is_modelled(&self) -> bool {
        !matches!(self, ComputeModel::Measured)
    }
}

impl std::str::FromStr for ComputeModel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let forms = "measured | linear:A:C | k80-resnet152 | k80-vgg19";
        match s {
            "measured" => return Ok(ComputeModel::Measured),
            "k80-resnet152" => {
                return Ok(ComputeModel::Linear {
                    a: 0.0,
                    c: K80_RESNET152_COMPUTE_64 / 64.0,
                    preset: Some("k80-resnet152"),
                })
            }
            "k80-vgg19" => {
                return Ok(ComputeModel::Linear {
                    a: 0.0,
                    c: K80_VGG19_COMPUTE_64 / 64.0,
                    preset: Some("k80-vgg19"),
                })
            }
            _ => {}
        }
        let Some(rest) = s.strip_prefix("linear:") else {
            return Err(format!(
                "--compute-model: unknown model '{s}' (expected {forms})"
            ));
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let nums: Vec<f64> = parts
            .iter()
            .filter_map(|p| p.trim().parse::<f64>().ok())
            .collect();
        if parts.len() != 2 || nums.len() != 2 {
            return Err(format!("--compute-model: expected linear:A:C (seconds per step, seconds per sample), got '{s}'"));
        }
        let (a, c) = (nums[0], nums[1]);
        if !(a.is_finite() && a >= 0.0 && c.is_finite() && c >= 0.0) || a + c == 0.0 {
            return Err(format!(
                "--compute-model {s}: A and C must be finite, ≥ 0 and not both 0"
            ));
        }
        if a > 3600.0 || c > 3600.0 {
            return Err(format!("--compute-model {s}: A and C are seconds; more than an hour per step or per sample is not a device"));
        }
        Ok(ComputeModel::Linear { a, c, preset: None })
    }
}

impl std::fmt::Display for ComputeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeModel::Measured => f.write_str("measured"),
            ComputeModel::Linear {
                a,
                c,
                preset: Some(p),
            } => write!(f, "{p} (linear:{a}:{c})"),
            ComputeModel::Linear { a, c, preset: None } => write!(f, "linear:{a}:{c}"),
        }
    }
}

/// Virtual step time (ARCHITECTURE "The clock"): max over ranks of (wait_i + compute_i) + comm.
///
/// `compute` is each rank's compute time already scaled by its device speed factor; a synchronous
/// step cannot communicate before the slowest rank has its gradient. Slices of different lengths
/// count missing entries as 0.
pub fn virtual_step_time(wait: &[f64], compute: &[f64], comm: f64) -> f64 {
    let n = wait.len().max(compute.len());
    let slowest = (0..n)
        .map(|i| wait.get(i).copied().unwrap_or(0.0) + compute.get(i).copied().unwrap_or(0.0))
        .fold(0.0, f64::max);
    slowest + comm
}

struct RtState {
    source: Box<dyn StreamSource>,
    fifo: Fifo,
    stop: bool,
}

impl RtState {
    /// Moves every sample due by `elapsed` into the FIFO; returns the next arrival time.
    fn deliver_due(&mut self, elapsed: f64) -> f64 {
        while self.source.peek().0 <= elapsed {
            let (t, id) = self.source.pop();
            self.fifo.push(t, id);
        }
        self.fifo.prune(elapsed);
        self.source.peek().0
    }
}

struct Shared {
    state: Mutex<RtState>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, RtState> {
        // A panic elsewhere cannot leave the FIFO half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stream delivered in real time for `--clock real`: a background thread pops the source and
/// puts each sample into a shared FIFO at its arrival time (relative to the moment the stream was
/// created). A take first delivers whatever is already due itself, so a late-scheduled producer
/// thread never shrinks a batch. Takes have the same semantics as [`DeviceBuffer`](super::DeviceBuffer)'s, with `now`
/// being the real elapsed time, and block until the batch is there. Dropping the stream stops and
/// joins the thread.
pub struct RealTimeStream {
    shared: Arc<Shared>,
    start: Instant,
    bytes_per_sample: usize,
    producer: Option<JoinHandle<()>>,
}

impl RealTimeStream {
    /// Starts delivering `source` now.
    pub fn new(
        source: Box<dyn StreamSource>,
        policy: BufferPolicy,
        cap: Option<usize>,
        bytes_per_sample: usize,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(RtState {
                source,
                fifo: Fifo::new(policy, cap),
                stop: false,
            }),
            cv: Condvar::new(),
        });
        let start = Instant::now();
        let sh = Arc::clone(&shared);
        let producer = std::thread::Builder::new()
            .name("stream-producer".into())
            .spawn(move || {
                let mut g = sh.lock();
                while !g.stop {
                    let before = g.fifo.total_arrived;
                    let next = g.deliver_due(start.elapsed().as_secs_f64());
                    if g.fifo.total_arrived != before {
                        sh.cv.notify_all();
                    }
                    let wait = (next - start.elapsed().as_secs_f64()).max(0.0);
                    g = sh
                        .cv
                        .wait_timeout(g, Duration::from_secs_f64(wait.min(3600.0)))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            })
            .map_err(|e| Error::Other(format!("cannot start the stream producer thread: {e}")))?;
        Ok(RealTimeStream {
            shared,
            start,
            bytes_per_sample,
            producer: Some(producer),
        })
    }

    /// Seconds since the stream started.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// ScaDLES take (see `DeviceBuffer::take_window`), blocking until the batch has arrived.
    pub fn take_window(&self, window: f64, b_min: usize, b_max: usize) -> Take {
        let mut g = self.shared.lock();
        let now = self.elapsed_s();
        g.deliver_due(now);
        let arrived = g.fifo.window_count(now, window.max(0.0));
        self.take_locked(g, now, clamp_batch(arrived, b_min, b_max))
    }

    /// Conventional take of `b` samples (see `DeviceBuffer::take_fixed`), blocking until they have arrived.
    pub fn take_fixed(&self, b: usize) -> Take {
        let mut g = self.shared.lock();
        let now = self.elapsed_s();
        g.deliver_due(now);
        self.take_locked(g, now, b)
    }

    fn take_locked(&self, mut g: MutexGuard<'_, RtState>, now: f64, b: usize) -> Take {
        let queued = g.fifo.queue.len();
        let target = g.fifo.target(b);
        while g.fifo.queue.len() < target && !g.stop {
            g = self.shared.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        let wait = (self.elapsed_s() - now).max(0.0);
        g.fifo.take(target, wait, queued)
    }

    /// Samples buffered now.
    pub fn occupancy(&self) -> usize {
        let mut g = self.shared.lock();
        g.deliver_due(self.elapsed_s());
        g.fifo.queue.len()
    }

    /// Size of one sample in bytes (for reporting buffer sizes).
    pub fn bytes_per_sample(&self) -> usize {
        self.bytes_per_sample
    }

    /// Samples delivered so far.
    pub fn total_arrived(&self) -> u64 {
        self.shared.lock().fifo.total_arrived
    }

    /// Samples dropped so far, by truncation or the cap.
    pub fn total_dropped(&self) -> u64 {
        self.shared.lock().fifo.total_dropped
    }
}

impl Drop for RealTimeStream {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
        if let Some(h) = self.producer.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::rates::{Arrival, Drift};
    use crate::stream::source::SimulatedSource;

    #[test]
    fn link_model_formulas() {
        // 8 Gbps = 1e9 bytes/s, 10 µs latency.
        let l = LinkModel::new(8.0, 1e-5).unwrap();
        assert_eq!(l.bytes_per_s(), 1e9);
        // 4 ranks, 230 MB: 6 latencies + 1.5 · 0.23 s.
        let t = l.allreduce_s(230e6, 4);
        assert!((t - (6e-5 + 0.345)).abs() < 1e-12, "{t}");
        assert_eq!(l.allreduce_s(230e6, 1), 0.0);
        // 2 ranks: 2 latencies + 1 · bytes/bw.
        assert!((l.allreduce_s(1e6, 2) - (2e-5 + 1e-3)).abs() < 1e-15);
        // Allgatherv of 1, 2, 3, 4 MB: 3 latencies + (10 − 1) MB / 1e9.
        let t = l.allgatherv_s(&[1e6, 2e6, 3e6, 4e6]);
        assert!((t - (3e-5 + 9e-3)).abs() < 1e-15, "{t}");
        // A rank that sends nothing still waits for the others: min c = 0.
        let t = l.allgatherv_s(&[0.0, 5e6, 5e6]);
        assert!((t - (2e-5 + 1e-2)).abs() < 1e-15, "{t}");
        assert_eq!(l.allgatherv_s(&[3e6]), 0.0);
        assert!((l.p2p_s(3072.0) - (1e-5 + 3.072e-6)).abs() < 1e-18);
        // The paper's 5 Gbps Ethernet: a 230 MB allreduce over 8 ranks is ≥ 0.64 s of bandwidth alone.
        let eth = LinkModel::new(5.0, 0.0).unwrap();
        assert!((eth.allreduce_s(230e6, 8) - 2.0 * 7.0 / 8.0 * 230e6 / 625e6).abs() < 1e-12);
        assert!(LinkModel::new(0.0, 0.0).is_err());
        assert!(LinkModel::new(1.0, -1.0).is_err());
    }

    #[test]
    fn step_time_is_slowest_rank_plus_comm() {
        assert_eq!(
            virtual_step_time(&[0.5, 0.0, 0.2], &[1.0, 1.4, 1.1], 0.25),
            1.5 + 0.25
        );
        assert_eq!(virtual_step_time(&[0.0, 2.0], &[1.0, 0.1], 0.0), 2.1);
        assert_eq!(virtual_step_time(&[], &[], 0.3), 0.3);
        assert_eq!(virtual_step_time(&[1.0], &[0.5, 3.0], 0.0), 3.0);
    }

    fn rt(rate: f64, policy: BufferPolicy) -> RealTimeStream {
        let src =
            SimulatedSource::new((0..1000).collect(), rate, Arrival::Constant, Drift::None, 1)
                .unwrap();
        RealTimeStream::new(Box::new(src), policy, None, 3072).unwrap()
    }

    #[test]
    fn real_time_fixed_take_really_waits() {
        let s = rt(2000.0, BufferPolicy::Persistence);
        let before = s.elapsed_s();
        let t = s.take_fixed(20);
        // The 20th sample arrives at 10 ms; the producer cannot deliver early.
        assert_eq!(t.samples, (0..20).collect::<Vec<_>>());
        assert!(t.wait_s >= 0.010 - before - 1e-3, "{}", t.wait_s);
        assert!(t.wait_s < 0.25, "{}", t.wait_s);
        assert!(s.elapsed_s() >= 0.010);
        // The next 20 arrive by 20 ms.
        let t = s.take_fixed(20);
        assert_eq!(t.samples, (20..40).collect::<Vec<_>>());
        assert!(s.elapsed_s() >= 0.020);
    }

    #[test]
    fn real_time_window_take_and_truncation() {
        let s = rt(2000.0, BufferPolicy::Truncation);
        std::thread::sleep(Duration::from_millis(60));
        // About 2000 · 0.05 = 100 arrivals in the last 50 ms; b_max 40 takes the 40 oldest and
        // truncation drops the rest.
        let t = s.take_window(0.05, 8, 40);
        assert_eq!(t.samples.len(), 40);
        assert_eq!(t.samples[0], 0);
        assert!(t.queued >= 100, "{}", t.queued);
        assert_eq!(t.left, 0);
        assert_eq!(t.dropped, t.queued - 40);
        assert_eq!(s.total_dropped() as usize, t.dropped);
        // b_min above what arrives: wait for the 30th new sample, about 15 ms.
        let t = s.take_window(0.0, 30, 1024);
        assert_eq!(t.samples.len(), 30);
        assert!(t.wait_s > 0.005 && t.wait_s < 0.3, "{}", t.wait_s);
    }

    #[test]
    fn dropping_stops_the_producer_promptly() {
        // A slow stream whose next arrival is far away: drop must not wait for it.
        let s = rt(0.1, BufferPolicy::Persistence);
        let t0 = Instant::now();
        drop(s);
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn compute_models_parse_and_compute() {
        let m: ComputeModel = "linear:0.5:0.01".parse().unwrap();
        assert_eq!(m.seconds(64, 99.0), 0.5 + 0.64);
        assert_eq!(m.seconds(0, 99.0), 0.0, "an empty batch computes nothing");
        assert_eq!(m.to_string(), "linear:0.5:0.01");
        assert!(m.is_modelled());
        let k: ComputeModel = "k80-resnet152".parse().unwrap();
        // Table II's 1.2 s iteration at batch 64 less Fig. 4(b)'s 1.05 s allreduce.
        assert!(
            (k.seconds(64, 0.0) - 0.15).abs() < 1e-12,
            "{}",
            k.seconds(64, 0.0)
        );
        assert!((k.seconds(32, 0.0) - 0.075).abs() < 1e-12);
        assert!(k.to_string().starts_with("k80-resnet152 (linear:0:"), "{k}");
        let v: ComputeModel = "k80-vgg19".parse().unwrap();
        assert!((v.seconds(64, 0.0) - (1.6 - 1.45)).abs() < 1e-12);
        let me: ComputeModel = "measured".parse().unwrap();
        assert_eq!(me.seconds(64, 0.25), 0.25);
        assert!(!me.is_modelled());
        for bad in [
            "linear:1",
            "linear:a:b",
            "linear:-1:0.1",
            "linear:0:0",
            "linear:1e300:0",
            "k80",
            "linear:nan:1",
        ] {
            let e = bad.parse::<ComputeModel>().unwrap_err();
            assert!(
                e.starts_with("--compute-model") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }
}
