//! Randomised data injection (paper §3.4) as a real peer-to-peer exchange over MPI.
//!
//! Each step a seeded random subset of ⌈α·N⌉ ranks are senders (the same plan on every rank: the
//! seed is shared). Each sender copies ⌊β·b_i⌋ of the samples of its current batch (its own batch
//! is unchanged) to ONE receiver drawn uniformly from the other ranks. The receiver appends them to
//! its local batch, so they count toward its b_i, its aggregation weight and the linear LR scaling.
//! Samples travel as raw bytes: a little-endian u16 label followed by the 3072 uint8 pixels.
use super::World;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Bytes one injected sample occupies on the wire.
pub const SAMPLE_WIRE_BYTES: usize = 2 + crate::data::IMAGE_BYTES;

/// One planned transfer: `count` samples from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: usize,
    pub to: usize,
    pub count: usize,
}

/// The step's injection plan, identical on every rank. `batches[r]` is rank r's batch before injection.
pub fn plan(batches: &[usize], alpha: f64, beta: f64, seed: u64, step: u64) -> Vec<Transfer> {
    let n = batches.len();
    if n < 2 {
        return Vec::new();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1_4E_EC7 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let senders_n = ((alpha * n as f64).ceil() as usize).clamp(1, n);
    let mut ranks: Vec<usize> = (0..n).collect();
    ranks.shuffle(&mut rng);
    let mut senders = ranks[..senders_n].to_vec();
    senders.sort_unstable();
    senders
        .into_iter()
        .map(|from| {
            let mut to = rng.gen_range(0..n - 1);
            if to >= from {
                to += 1;
            }
            Transfer { from, to, count: (beta * batches[from] as f64).floor() as usize }
        })
        .filter(|t| t.count > 0)
        .collect()
}

/// What this rank received: labels and raw images, plus the bytes this rank sent.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub labels: Vec<u16>,
    pub images: Vec<u8>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Runs the exchange for this rank. `batch` holds the training-set indices of the local batch.
/// Every rank must call this with the same `batches`, `seed` and `step`.
pub fn exchange(
    world: &World,
    train: &crate::data::Dataset,
    batch: &[usize],
    batches: &[usize],
    alpha: f64,
    beta: f64,
    seed: u64,
    step: u64,
) -> Received {
    let me = world.rank();
    let transfers = plan(batches, alpha, beta, seed, step);
    let mut send: Vec<Vec<u8>> = vec![Vec::new(); world.size()];
    let mut local = rand::rngs::StdRng::seed_from_u64(seed ^ (me as u64) << 32 ^ step);
    for t in transfers.iter().filter(|t| t.from == me) {
        let chosen: Vec<usize> = batch.choose_multiple(&mut local, t.count.min(batch.len())).copied().collect();
        let msg = &mut send[t.to];
        for &i in &chosen {
            msg.extend_from_slice(&train.labels[i].to_le_bytes());
            msg.extend_from_slice(train.image(i));
        }
    }
    let bytes_sent = send.iter().map(|m| m.len() as u64).sum();
    let got = world.alltoallv_bytes(&send);
    let mut r = Received { bytes_sent, ..Default::default() };
    for m in got {
        r.bytes_received += m.len() as u64;
        for s in m.chunks_exact(SAMPLE_WIRE_BYTES) {
            r.labels.push(u16::from_le_bytes([s[0], s[1]]));
            r.images.extend_from_slice(&s[2..]);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_sized() {
        let b = [40, 10, 0, 25, 8, 100, 64, 12];
        let p = plan(&b, 0.5, 0.5, 7, 3);
        assert_eq!(p, plan(&b, 0.5, 0.5, 7, 3));
        // ⌈0.5·8⌉ = 4 senders, minus those whose ⌊β·b⌋ is 0.
        let senders: Vec<usize> = p.iter().map(|t| t.from).collect();
        assert!(senders.len() <= 4);
        for t in &p {
            assert_ne!(t.from, t.to);
            assert!(t.to < b.len());
            assert_eq!(t.count, b[t.from] / 2);
        }
        let mut s = senders.clone();
        s.dedup();
        assert_eq!(s.len(), senders.len(), "a rank sends at most once per step");
        // Over many steps every rank is sometimes a sender and receivers spread over all other ranks.
        let mut sent = [0usize; 8];
        let mut recv = [0usize; 8];
        for step in 0..400 {
            for t in plan(&[10; 8], 0.25, 0.5, 7, step) {
                sent[t.from] += 1;
                recv[t.to] += 1;
                assert_eq!(t.count, 5);
            }
        }
        assert_eq!(sent.iter().sum::<usize>(), 400 * 2);
        assert!(sent.iter().all(|&c| c > 50) && recv.iter().all(|&c| c > 50), "{sent:?} {recv:?}");
        assert!(plan(&[5], 1.0, 1.0, 1, 1).is_empty());
    }
}
