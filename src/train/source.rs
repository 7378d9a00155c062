//! This rank's stream: the simulated source behind a virtual-clock buffer, or a real-time producer.
use crate::config::{Resolved, RunConfig};
use crate::error::Result;
use crate::stream::{self, ClockKind, DeviceBuffer, RealTimeStream, SimulatedSource, Take};

pub enum RankStream {
    Virtual(DeviceBuffer),
    Real(RealTimeStream),
}

impl RankStream {
    /// The rank's stream over its partition `samples` at `rate` samples/s.
    pub fn new(cfg: &RunConfig, res: &Resolved, samples: &[usize], rate: f64, rank: usize) -> Result<Self> {
        let seed = stream::rank_seed(cfg.seed, rank);
        let src = SimulatedSource::new(samples.to_vec(), rate, cfg.arrival, res.drift.clone(), seed)?;
        let bytes = crate::data::IMAGE_BYTES;
        Ok(match cfg.clock {
            ClockKind::Virtual => RankStream::Virtual(DeviceBuffer::new(Box::new(src), cfg.buffer, cfg.buffer_cap, bytes)),
            ClockKind::Real => RankStream::Real(RealTimeStream::new(Box::new(src), cfg.buffer, cfg.buffer_cap, bytes)?),
        })
    }

    /// ScaDLES take at `now` (virtual) or right away (real: the producer's own clock).
    pub fn take_window(&mut self, now: f64, window: f64, b_min: usize, b_max: usize) -> Take {
        match self {
            RankStream::Virtual(b) => b.take_window(now, window, b_min, b_max),
            RankStream::Real(r) => r.take_window(window, b_min, b_max),
        }
    }

    /// Conventional DDL take of exactly `b` samples.
    pub fn take_fixed(&mut self, now: f64, b: usize) -> Take {
        match self {
            RankStream::Virtual(buf) => buf.take_fixed(now, b),
            RankStream::Real(r) => r.take_fixed(b),
        }
    }
}
