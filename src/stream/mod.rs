//! Streams at the edge: each device (rank) receives samples at its own rate S^(i) (paper §II-A),
//! buffers them under the persistence or truncation policy (§IV, spec §3.3), and takes a batch
//! either sized by the stream rate (ScaDLES, §3.1) or fixed (conventional DDL).
//!
//! - [`rates`]: the Table I sets, the reference code's lists, explicit lists, sampled
//!   distributions, optional drift, the arrival process.
//! - [`source`]: the `StreamSource` interface and the simulated source.
//! - [`buffer`]: the device buffer and the two takes, on the simulated clock.
//! - [`clock`]: virtual vs real clock, the link model, the virtual step time, the real-time stream.
//! - [`table2`]: the paper's Table II from Eq. 3, and Fig. 4(a)'s curve.

pub mod buffer;
pub mod clock;
pub mod rates;
pub mod source;
pub mod table2;

pub use buffer::{BufferPolicy, DeviceBuffer, Take};
pub use clock::{virtual_step_time, ClockKind, ComputeModel, LinkModel, RealTimeStream};
pub use rates::{Arrival, CodeList, Drift, RateSpec, TableSet};
pub use source::{SimulatedSource, StreamSource};
pub use table2::{render_table2, table2, Table2Cell, Table2Row};

/// A seed for one rank's stream, derived from the run seed so that ranks draw independent
/// arrivals and drifts while the whole run stays reproducible (splitmix64 finaliser over the
/// run seed and the rank).
pub fn rank_seed(run_seed: u64, rank: usize) -> u64 {
    let mut z = run_seed
        ^ (rank as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_seeds_differ_and_are_stable() {
        let seeds: Vec<u64> = (0..64).map(|r| rank_seed(1234, r)).collect();
        let mut sorted = seeds.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 64);
        assert_eq!(seeds[3], rank_seed(1234, 3));
        assert_ne!(rank_seed(1234, 0), rank_seed(1235, 0));
    }
}
