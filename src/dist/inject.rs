//! Randomised data injection (paper §3.4) as a real peer-to-peer exchange over MPI.
//!
//! Each step every rank computes the same plan (seeded by the run seed and the step) from every
//! rank's stream batch b_r before injection. Two plans ([`InjectMode`]):
//! - `peers` (the default): every rank RECEIVES from ⌈α·N⌉ distinct random peers (never itself, at
//!   most N−1), ⌊β·b_peer⌋ samples from each. This is the reference's per-device volume: there each
//!   device pulls β·b samples of each of ⌈α·C⌉ foreign labels per iteration, and the paper's Fig. 9
//!   (150–2000 KB per iteration) matches (α·D)·(β·S̄)·3 KB per device.
//! - `senders`: ⌈α·N⌉ random ranks are senders; each copies ⌊β·b_i⌋ samples to ONE random peer
//!   (about N× less traffic than the reference).
//!
//! A sender copies samples of its current batch (its own batch is unchanged); which ones is drawn
//! without replacement within a transfer by an RNG seeded from the run seed, the step and the
//! sender, so any rank can tell which samples a transfer carries ([`picks`]). Receivers append them
//! to their local batch, so they count toward b_i, the aggregation weight and the linear LR scaling.
//! The exchange is one alltoallv of raw bytes: per sample a little-endian u16 label followed by the
//! 3072 uint8 pixels. A transfer whose count is 0 (β·b < 1) is no message.
use super::World;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Bytes one injected sample occupies on the wire.
pub const SAMPLE_WIRE_BYTES: usize = 2 + crate::data::IMAGE_BYTES;

/// Who sends to whom (`--inject-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InjectMode {
    /// Every rank receives ⌊β·b_peer⌋ samples from each of ⌈α·N⌉ random peers.
    #[default]
    Peers,
    /// ⌈α·N⌉ random ranks each send ⌊β·b_i⌋ samples to one random peer.
    Senders,
}

impl std::fmt::Display for InjectMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InjectMode::Peers => "peers",
            InjectMode::Senders => "senders",
        })
    }
}

/// The injection settings of a run: `--inject ALPHA,BETA` and `--inject-mode`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Injection {
    pub mode: InjectMode,
    pub alpha: f64,
    pub beta: f64,
}

/// One planned transfer: `count` samples from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: usize,
    pub to: usize,
    pub count: usize,
}

/// Products such as 0.3·10 are 3.0000000000000004 in floating point; ⌈·⌉ and ⌊·⌋ of them take
/// the integer they stand for.
const ROUNDING: f64 = 1e-9;

/// ⌈α·n⌉, at least 1 (α > 0).
pub fn fanout(alpha: f64, n: usize) -> usize {
    ((alpha * n as f64 - ROUNDING).ceil().max(1.0)) as usize
}

/// ⌊β·b⌋, at most b.
pub fn share(beta: f64, b: usize) -> usize {
    ((beta * b as f64 + ROUNDING).floor().max(0.0) as usize).min(b)
}

fn step_rng(seed: u64, step: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed ^ 0x0014_EEC7 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl Injection {
    /// The step's plan, identical on every rank. `batches[r]` is rank r's batch before injection.
    /// Transfers are ordered by (from, to) in `peers` mode and by sender in `senders` mode; no pair
    /// appears twice and none has count 0.
    pub fn plan(&self, batches: &[usize], seed: u64, step: u64) -> Vec<Transfer> {
        match self.mode {
            InjectMode::Peers => plan_peers(batches, self.alpha, self.beta, seed, step),
            InjectMode::Senders => plan_senders(batches, self.alpha, self.beta, seed, step),
        }
    }
}

/// `peers`: each receiver draws min(⌈α·N⌉, N−1) distinct peers other than itself and gets
/// ⌊β·b_peer⌋ samples from each.
pub fn plan_peers(batches: &[usize], alpha: f64, beta: f64, seed: u64, step: u64) -> Vec<Transfer> {
    let n = batches.len();
    if n < 2 {
        return Vec::new();
    }
    let mut rng = step_rng(seed ^ 0x9EE5, step);
    let k = fanout(alpha, n).min(n - 1);
    let mut out = Vec::with_capacity(n * k);
    for to in 0..n {
        let others: Vec<usize> = (0..n).filter(|&r| r != to).collect();
        for &from in others.choose_multiple(&mut rng, k) {
            let count = share(beta, batches[from]);
            if count > 0 {
                out.push(Transfer { from, to, count });
            }
        }
    }
    out.sort_unstable_by_key(|t| (t.from, t.to));
    out
}

/// `senders`: ⌈α·N⌉ random ranks each send ⌊β·b_i⌋ samples to one receiver drawn uniformly from
/// the other ranks.
pub fn plan_senders(
    batches: &[usize],
    alpha: f64,
    beta: f64,
    seed: u64,
    step: u64,
) -> Vec<Transfer> {
    let n = batches.len();
    if n < 2 {
        return Vec::new();
    }
    let mut rng = step_rng(seed, step);
    let senders_n = fanout(alpha, n).min(n);
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
            Transfer {
                from,
                to,
                count: share(beta, batches[from]),
            }
        })
        .filter(|t| t.count > 0)
        .collect()
}

/// Which samples rank `from` sends in each of its transfers of `plan`, in plan order: positions in
/// its batch of `b_from` samples, distinct within a transfer. Any rank can compute it.
pub fn picks(
    plan: &[Transfer],
    from: usize,
    b_from: usize,
    seed: u64,
    step: u64,
) -> Vec<(Transfer, Vec<usize>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((from as u64) << 32) ^ step);
    plan.iter()
        .filter(|t| t.from == from)
        .map(|t| {
            (
                *t,
                rand::seq::index::sample(&mut rng, b_from, t.count.min(b_from)).into_vec(),
            )
        })
        .collect()
}

/// Per-rank traffic of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub samples_received: u64,
}

/// What each of `n` ranks sends and receives under `plan`.
pub fn traffic(plan: &[Transfer], n: usize) -> Vec<Traffic> {
    let mut t = vec![Traffic::default(); n];
    for x in plan {
        let bytes = (x.count * SAMPLE_WIRE_BYTES) as u64;
        t[x.from].bytes_sent += bytes;
        t[x.from].messages_sent += 1;
        t[x.to].bytes_received += bytes;
        t[x.to].messages_received += 1;
        t[x.to].samples_received += x.count as u64;
    }
    t
}

/// What this rank received: labels and raw images, and the traffic it saw.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub labels: Vec<u16>,
    pub images: Vec<u8>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Non-empty messages sent and received.
    pub messages_sent: u64,
    pub messages_received: u64,
}

/// Runs the exchange for this rank. `batch` holds the training-set indices of the local batch.
/// Every rank must call this with the same `batches`, `inj`, `seed` and `step` (a rank with an
/// empty batch still joins the collective).
pub fn exchange(
    world: &World,
    train: &crate::data::Dataset,
    batch: &[usize],
    batches: &[usize],
    inj: &Injection,
    seed: u64,
    step: u64,
) -> Received {
    let (me, n) = (world.rank(), world.size());
    assert_eq!(batches.len(), n, "inject: one batch size per rank");
    assert_eq!(
        batches[me],
        batch.len(),
        "inject: this rank's batch size differs from the agreed one"
    );
    if n < 2 {
        return Received::default();
    }
    let transfers = inj.plan(batches, seed, step);
    let mut send: Vec<Vec<u8>> = vec![Vec::new(); n];
    for (t, positions) in picks(&transfers, me, batch.len(), seed, step) {
        let msg = &mut send[t.to];
        msg.reserve(positions.len() * SAMPLE_WIRE_BYTES);
        for p in positions {
            let i = batch[p];
            msg.extend_from_slice(&train.labels[i].to_le_bytes());
            msg.extend_from_slice(train.image(i));
        }
    }
    let mut r = Received {
        bytes_sent: send.iter().map(|m| m.len() as u64).sum(),
        messages_sent: send.iter().filter(|m| !m.is_empty()).count() as u64,
        ..Default::default()
    };
    let got = world.alltoallv_bytes(&send);
    for m in got {
        if m.is_empty() {
            continue;
        }
        r.bytes_received += m.len() as u64;
        r.messages_received += 1;
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

    fn peers(alpha: f64, beta: f64) -> Injection {
        Injection {
            mode: InjectMode::Peers,
            alpha,
            beta,
        }
    }

    #[test]
    fn fanout_and_share_round_as_the_fractions_say() {
        assert_eq!(fanout(0.25, 10), 3);
        assert_eq!(fanout(0.3, 10), 3, "0.3·10 is 3, not 4");
        assert_eq!(fanout(0.01, 4), 1);
        assert_eq!(fanout(1.0, 7), 7);
        assert_eq!(share(0.25, 64), 16);
        assert_eq!(share(0.29, 100), 29, "0.29·100 is 29, not 28");
        assert_eq!(share(0.5, 1), 0);
        assert_eq!(share(1.0, 5), 5);
    }

    #[test]
    fn peers_each_receiver_gets_distinct_other_peers_with_their_share() {
        let b = [40, 10, 3, 25, 8, 100, 64, 12, 9, 70];
        for (alpha, want_k) in [
            (0.25, 3),
            (0.5, 5),
            (0.1, 1),
            (0.05, 1),
            (1.0, 9),
            (0.95, 9),
        ] {
            for step in 1..20 {
                let p = peers(alpha, 0.5).plan(&b, 7, step);
                for to in 0..b.len() {
                    let mut from: Vec<usize> =
                        p.iter().filter(|t| t.to == to).map(|t| t.from).collect();
                    assert_eq!(
                        from.len(),
                        want_k,
                        "α {alpha}: receiver {to} has peers {from:?}"
                    );
                    assert!(!from.contains(&to), "a rank never sends to itself");
                    from.dedup();
                    assert_eq!(
                        from.len(),
                        want_k,
                        "distinct peers (sorted by from within a receiver)"
                    );
                }
                for t in &p {
                    assert_eq!(
                        t.count,
                        b[t.from] / 2,
                        "count is ⌊β·b_peer⌋ of the SENDER's batch"
                    );
                }
                assert!(
                    p.windows(2)
                        .all(|w| (w[0].from, w[0].to) < (w[1].from, w[1].to)),
                    "ordered, no pair twice"
                );
            }
        }
    }

    #[test]
    fn peers_plan_is_deterministic_and_changes_with_the_step_and_seed() {
        let b = [64; 10];
        let inj = peers(0.25, 0.25);
        assert_eq!(inj.plan(&b, 7, 3), inj.plan(&b, 7, 3));
        assert_ne!(inj.plan(&b, 7, 3), inj.plan(&b, 7, 4));
        assert_ne!(inj.plan(&b, 7, 3), inj.plan(&b, 8, 3));
        // Over many steps the peers of a receiver spread over all other ranks.
        let mut seen = [[0usize; 10]; 10];
        for step in 0..300 {
            for t in inj.plan(&b, 7, step) {
                seen[t.to][t.from] += 1;
            }
        }
        for (to, row) in seen.iter().enumerate() {
            for (from, &c) in row.iter().enumerate() {
                assert!(
                    if from == to { c == 0 } else { c > 40 },
                    "{to} <- {from}: {c}"
                );
            }
        }
    }

    #[test]
    fn peers_volume_is_the_references_per_device_volume() {
        // N = 10, α = 0.25, β = 0.25, b = 64: each device receives from ⌈2.5⌉ = 3 peers ⌊16⌋ = 16
        // samples each, 48 samples = 48·3074 bytes; every device also sends 48 on average.
        let b = [64; 10];
        let p = peers(0.25, 0.25).plan(&b, 11, 5);
        let t = traffic(&p, 10);
        for r in &t {
            assert_eq!(r.samples_received, 48);
            assert_eq!(r.bytes_received, 48 * SAMPLE_WIRE_BYTES as u64);
            assert_eq!(r.messages_received, 3);
        }
        let sent: u64 = t.iter().map(|r| r.bytes_sent).sum();
        assert_eq!(sent, 10 * 48 * SAMPLE_WIRE_BYTES as u64);
        // Against `senders` (3 senders × 16 samples in all): N× more.
        let s = Injection {
            mode: InjectMode::Senders,
            ..peers(0.25, 0.25)
        }
        .plan(&b, 11, 5);
        assert_eq!(s.iter().map(|t| t.count).sum::<usize>(), 48);
    }

    #[test]
    fn peers_edge_cases() {
        // One rank: nothing to exchange.
        assert!(peers(1.0, 1.0).plan(&[50], 1, 1).is_empty());
        // α = 1: all N−1 peers.
        let p = peers(1.0, 0.5).plan(&[10, 20, 30, 40], 1, 1);
        assert_eq!(p.len(), 12);
        // A rank with b = 0 or β·b < 1 sends nothing, but still receives.
        let b = [0, 1, 30, 40];
        for step in 0..10 {
            let p = peers(1.0, 0.5).plan(&b, 3, step);
            assert!(p.iter().all(|t| t.from >= 2 && t.count > 0), "{p:?}");
            for to in 0..4 {
                let want = [2usize, 3].iter().filter(|&&f| f != to).count();
                assert_eq!(p.iter().filter(|t| t.to == to).count(), want);
            }
        }
        assert!(peers(0.5, 0.5).plan(&[1, 1, 1], 3, 1).is_empty());
    }

    #[test]
    fn picks_are_distinct_positions_in_the_senders_batch() {
        let b = [40, 10, 30, 25];
        let p = peers(1.0, 0.75).plan(&b, 9, 2);
        for (from, &bf) in b.iter().enumerate() {
            let picked = picks(&p, from, bf, 9, 2);
            assert_eq!(picked.len(), 3);
            for (t, pos) in &picked {
                assert_eq!(pos.len(), t.count);
                assert!(pos.iter().all(|&i| i < bf));
                let mut s = pos.clone();
                s.sort_unstable();
                s.dedup();
                assert_eq!(s.len(), pos.len(), "without replacement within a transfer");
            }
            assert_eq!(picked, picks(&p, from, bf, 9, 2));
        }
    }

    /// The `senders` plan is the one this crate used before `peers` existed.
    #[test]
    fn senders_plan_is_deterministic_and_sized() {
        let plan = |b: &[usize], a, be, seed, step| {
            Injection {
                mode: InjectMode::Senders,
                alpha: a,
                beta: be,
            }
            .plan(b, seed, step)
        };
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
        assert!(
            sent.iter().all(|&c| c > 50) && recv.iter().all(|&c| c > 50),
            "{sent:?} {recv:?}"
        );
        assert!(plan(&[5], 1.0, 1.0, 1, 1).is_empty());
    }

    /// The `senders` plan and its sample picks, pinned to what the previous implementation drew
    /// (its RNG streams, transcribed), so that option stays exactly the old exchange.
    #[test]
    fn senders_plan_matches_the_previous_implementation() {
        fn old_plan(
            batches: &[usize],
            alpha: f64,
            beta: f64,
            seed: u64,
            step: u64,
        ) -> Vec<Transfer> {
            let n = batches.len();
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                seed ^ 0x0014_EEC7 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
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
                    Transfer {
                        from,
                        to,
                        count: (beta * batches[from] as f64).floor() as usize,
                    }
                })
                .filter(|t| t.count > 0)
                .collect()
        }
        for n in 2..9 {
            let b: Vec<usize> = (0..n).map(|r| 5 + 13 * r).collect();
            for step in 1..30 {
                for (a, be) in [(0.5, 0.5), (0.25, 0.25), (1.0, 1.0)] {
                    let new = Injection {
                        mode: InjectMode::Senders,
                        alpha: a,
                        beta: be,
                    }
                    .plan(&b, 42, step);
                    assert_eq!(new, old_plan(&b, a, be, 42, step));
                    for t in &new {
                        let batch: Vec<usize> = (1000..1000 + b[t.from]).collect();
                        let mut local =
                            rand::rngs::StdRng::seed_from_u64(42 ^ ((t.from as u64) << 32) ^ step);
                        let old: Vec<usize> = batch
                            .choose_multiple(&mut local, t.count)
                            .copied()
                            .collect();
                        let (_, pos) = &picks(&new, t.from, b[t.from], 42, step)[0];
                        let now: Vec<usize> = pos.iter().map(|&p| batch[p]).collect();
                        assert_eq!(now, old);
                    }
                }
            }
        }
    }
}
