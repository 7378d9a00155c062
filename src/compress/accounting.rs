//! Communication accounting: floats sent and the CNC ratio (paper §2 display 3, Table V).
//!
//! Counts are per rank and count what this rank CONTRIBUTES to a collective, independent of the
//! collective's algorithm:
//! - a dense step sends the full gradient buffer: `len` FP32 values, no indices (the ring
//!   allreduce's 2(N−1)/N wire factor is not included);
//! - a sparse step sends its own k (index, value) pairs: k FP32 values and k indices (under AR-Topk,
//!   k values, plus k indices on the rank that was root for the step).
//!
//! The training loop records CLUSTER totals in one `CommAccount` per rank (each `StepComm` it
//! records holds the sum over ranks: N·len on a dense step, Σ k_r on a sparse one), so the
//! summary's `floats_sent_total` is what the whole cluster sent, as Table V counts it.
//!
//! "Floats sent" in Table V counts FP32 values only, so [`CommAccount::floats_sent_total`] does too;
//! [`CommAccount::floats_plus_indices`] adds the 4-byte indices. Cluster totals are the SUM over
//! ranks of these counters.

/// What one rank sent in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepComm {
    pub compressed: bool,
    /// FP32 gradient values this rank contributed.
    pub values_sent: u64,
    /// u32 indices this rank contributed.
    pub indices_sent: u64,
}

impl StepComm {
    /// A dense step over a buffer of `len` elements.
    pub fn dense(len: usize) -> Self {
        StepComm {
            compressed: false,
            values_sent: len as u64,
            indices_sent: 0,
        }
    }

    /// A sparse step with `values` values and `indices` indices.
    pub fn sparse(values: usize, indices: usize) -> Self {
        StepComm {
            compressed: true,
            values_sent: values as u64,
            indices_sent: indices as u64,
        }
    }
}

/// Running totals of one rank's communication.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommAccount {
    steps_dense: u64,
    steps_compressed: u64,
    floats_sent_total: u64,
    indices_sent_total: u64,
}

impl CommAccount {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one step.
    pub fn record(&mut self, s: StepComm) -> StepComm {
        if s.compressed {
            self.steps_compressed += 1;
        } else {
            self.steps_dense += 1;
        }
        self.floats_sent_total += s.values_sent;
        self.indices_sent_total += s.indices_sent;
        s
    }

    /// Adds a dense step over `len` elements.
    pub fn record_dense(&mut self, len: usize) -> StepComm {
        self.record(StepComm::dense(len))
    }

    /// Adds a sparse allgather step of `k` (index, value) pairs.
    pub fn record_sparse(&mut self, k: usize) -> StepComm {
        self.record(StepComm::sparse(k, k))
    }

    pub fn steps(&self) -> u64 {
        self.steps_dense + self.steps_compressed
    }

    pub fn steps_compressed(&self) -> u64 {
        self.steps_compressed
    }

    pub fn steps_dense(&self) -> u64 {
        self.steps_dense
    }

    /// Cumulative FP32 values sent (Table V's "Floats sent", per rank).
    pub fn floats_sent_total(&self) -> u64 {
        self.floats_sent_total
    }

    pub fn indices_sent_total(&self) -> u64 {
        self.indices_sent_total
    }

    /// Values plus indices (both 4 bytes), i.e. bytes contributed / 4.
    pub fn floats_plus_indices(&self) -> u64 {
        self.floats_sent_total + self.indices_sent_total
    }

    /// CNC ratio = T_compressed / (T_compressed + T_uncompressed); 0 before any step.
    pub fn cnc_ratio(&self) -> f64 {
        if self.steps() == 0 {
            0.0
        } else {
            self.steps_compressed as f64 / self.steps() as f64
        }
    }

    /// The four counters in a fixed order (dense steps, compressed steps, floats, indices), e.g.
    /// for a SUM allreduce into cluster totals.
    pub fn counters(&self) -> [u64; 4] {
        [
            self.steps_dense,
            self.steps_compressed,
            self.floats_sent_total,
            self.indices_sent_total,
        ]
    }

    /// The inverse of [`counters`](Self::counters).
    pub fn from_counters(c: [u64; 4]) -> Self {
        CommAccount {
            steps_dense: c[0],
            steps_compressed: c[1],
            floats_sent_total: c[2],
            indices_sent_total: c[3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::topk::k_for;

    #[test]
    fn hand_counted_run() {
        // 10 steps of a 1000-element gradient at CR 0.1: steps 0..3 dense (warm-up), then 7 sparse
        // with k = 100 each, one of which (step 6) went dense by vote.
        let mut a = CommAccount::new();
        assert_eq!(a.cnc_ratio(), 0.0);
        for step in 0..10 {
            if step < 3 || step == 6 {
                assert_eq!(
                    a.record_dense(1000),
                    StepComm {
                        compressed: false,
                        values_sent: 1000,
                        indices_sent: 0
                    }
                );
            } else {
                a.record_sparse(k_for(1000, 0.1));
            }
        }
        assert_eq!(a.steps(), 10);
        assert_eq!(a.steps_dense(), 4);
        assert_eq!(a.steps_compressed(), 6);
        assert_eq!(a.cnc_ratio(), 0.6);
        assert_eq!(a.floats_sent_total(), 4 * 1000 + 6 * 100);
        assert_eq!(a.indices_sent_total(), 6 * 100);
        assert_eq!(a.floats_plus_indices(), 4 * 1000 + 12 * 100);
        assert_eq!(CommAccount::from_counters(a.counters()), a);
        // An AR-Topk non-root step: values only.
        a.record(StepComm::sparse(100, 0));
        assert_eq!(a.floats_sent_total(), 4 * 1000 + 7 * 100);
        assert_eq!(a.indices_sent_total(), 600);
        assert!((a.cnc_ratio() - 7.0 / 11.0).abs() < 1e-15);
    }
}
