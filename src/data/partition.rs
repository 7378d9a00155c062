//! Partitioners: which training samples each rank (edge device) streams.
//!
//! - IID: a seeded random permutation cut into near-equal contiguous shards.
//! - Label-shard (paper §6 "Non-IID"): rank t holds every sample of classes k·t … k·t+k−1, k = C/N
//!   (CIFAR-10 on 10 devices: one label each; CIFAR-100 on 25 devices: four labels each).
//! - Dirichlet(α): each class is split over the ranks by proportions drawn from Dir(α); small α gives
//!   strongly skewed, unbalanced shards.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

use crate::error::{Error, Result};

/// Draws of Dir(α) tried before the Dirichlet partitioner gives up on the minimum shard size.
pub const DIRICHLET_TRIES: usize = 10;

/// How the training set is split over the ranks.
#[derive(Clone, Debug, PartialEq)]
pub enum Partition {
    /// Uniformly random, equal shares.
    Iid,
    /// Disjoint label sets of equal size, samples kept in index order (paper §6 non-IID).
    LabelShard,
    /// Per-class proportions over ranks drawn from a symmetric Dirichlet with this concentration α > 0.
    Dirichlet(f64),
}

impl FromStr for Partition {
    type Err = String;

    /// Parses `iid`, `label-shard` or `dirichlet:ALPHA` with ALPHA a finite number > 0.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "iid" => Ok(Partition::Iid),
            "label-shard" => Ok(Partition::LabelShard),
            _ => {
                if let Some(a) = s.strip_prefix("dirichlet:") {
                    match a.parse::<f64>() {
                        Ok(alpha) if alpha.is_finite() && alpha > 0.0 => Ok(Partition::Dirichlet(alpha)),
                        _ => Err(format!(
                            "partition \"{s}\": ALPHA must be a finite number > 0 (e.g. dirichlet:0.5)"
                        )),
                    }
                } else {
                    Err(format!(
                        "unknown partition \"{s}\" (expected iid, label-shard or dirichlet:ALPHA with ALPHA > 0)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Iid => write!(f, "iid"),
            Partition::LabelShard => write!(f, "label-shard"),
            // f64's Display is the shortest text that parses back to the same value.
            Partition::Dirichlet(a) => write!(f, "dirichlet:{a}"),
        }
    }
}

/// Number of samples of each class among `labels[idx[..]]`.
pub fn class_histogram(labels: &[u16], idx: &[usize], num_classes: usize) -> Vec<usize> {
    let mut h = vec![0usize; num_classes];
    for &i in idx {
        let l = labels[i] as usize;
        if l < num_classes {
            h[l] += 1;
        }
    }
    h
}

/// Smallest shard the Dirichlet partitioner accepts: 10% of an equal share, at least one sample.
pub fn dirichlet_min_size(n: usize, ranks: usize) -> usize {
    (n / ranks / 10).max(1)
}

/// Per-rank lists of training-set indices under `scheme`, reproducible from `seed`. Every index goes
/// to exactly one rank. Lists are shuffled so a stream over them is not class-ordered, except for
/// label-shard, which keeps index order as the paper streams it.
pub fn partition(
    labels: &[u16],
    num_classes: usize,
    ranks: usize,
    scheme: &Partition,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    if ranks == 0 {
        crate::bail!(Config, "partition needs at least one rank");
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        crate::bail!(
            Data,
            "training sample {i} has label {l}, expected 0..{}",
            num_classes.saturating_sub(1)
        );
    }
    let n = labels.len();
    if n < ranks {
        crate::bail!(
            Config,
            "{scheme} partition of {n} training samples over {ranks} ranks leaves a rank empty"
        );
    }
    let mut rng = StdRng::seed_from_u64(seed);
    match scheme {
        Partition::Iid => {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut rng);
            let (base, extra) = (n / ranks, n % ranks);
            let mut out = Vec::with_capacity(ranks);
            let mut start = 0;
            for r in 0..ranks {
                let len = base + usize::from(r < extra);
                out.push(perm[start..start + len].to_vec());
                start += len;
            }
            Ok(out)
        }
        Partition::LabelShard => {
            let hist = class_histogram(labels, &(0..n).collect::<Vec<_>>(), num_classes);
            let present: Vec<usize> = (0..num_classes).filter(|&k| hist[k] > 0).collect();
            let c = present.len();
            if ranks > c || c % ranks != 0 {
                crate::bail!(
                    Config,
                    "label-shard needs the number of classes (C) divisible by the number of ranks (N), got C = {c}, N = {ranks}"
                );
            }
            let k = c / ranks;
            let mut owner = vec![usize::MAX; num_classes];
            for (pos, &class) in present.iter().enumerate() {
                owner[class] = pos / k;
            }
            let mut out = vec![Vec::new(); ranks];
            for (i, &l) in labels.iter().enumerate() {
                out[owner[l as usize]].push(i);
            }
            Ok(out)
        }
        Partition::Dirichlet(alpha) => dirichlet(labels, num_classes, ranks, *alpha, &mut rng),
    }
}

fn dirichlet(
    labels: &[u16],
    num_classes: usize,
    ranks: usize,
    alpha: f64,
    rng: &mut StdRng,
) -> Result<Vec<Vec<usize>>> {
    let gamma = Gamma::new(alpha, 1.0).map_err(|_| {
        Error::Config(format!(
            "dirichlet:{alpha}: ALPHA must be a finite number > 0"
        ))
    })?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let min_size = dirichlet_min_size(labels.len(), ranks);
    for _ in 0..DIRICHLET_TRIES {
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); ranks];
        for members in &by_class {
            if members.is_empty() {
                continue;
            }
            let mut members = members.clone();
            members.shuffle(rng);
            // Dir(α) as normalised Gamma(α, 1) draws.
            let mut p: Vec<f64> = (0..ranks).map(|_| gamma.sample(rng)).collect();
            let total: f64 = p.iter().sum();
            if !(total > 0.0 && total.is_finite()) {
                // Tiny α can underflow every draw to 0: the limit of Dir(α→0) is all mass on one rank.
                let r = *(0..ranks).collect::<Vec<_>>().choose(rng).unwrap();
                p.iter_mut()
                    .enumerate()
                    .for_each(|(j, x)| *x = f64::from(u8::from(j == r)));
            } else {
                p.iter_mut().for_each(|x| *x /= total);
            }
            // Cut points at the rounded cumulative proportions: every member lands on exactly one rank.
            let m = members.len();
            let mut cum = 0.0;
            let mut start = 0;
            for (r, pr) in p.iter().enumerate() {
                cum += pr;
                let end = if r + 1 == ranks {
                    m
                } else {
                    ((cum * m as f64).round() as usize).min(m)
                };
                let end = end.max(start);
                out[r].extend_from_slice(&members[start..end]);
                start = end;
            }
        }
        if out.iter().all(|v| v.len() >= min_size) {
            for v in &mut out {
                v.shuffle(rng);
            }
            return Ok(out);
        }
    }
    crate::bail!(
        Config,
        "dirichlet:{alpha} could not give every rank at least {min_size} samples after {DIRICHLET_TRIES} tries (raise ALPHA or use fewer ranks)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize, c: usize) -> Vec<u16> {
        // Class-ordered blocks with a ragged tail, as an unshuffled dataset might be.
        (0..n).map(|i| ((i * c) / n) as u16).collect()
    }

    fn assert_cover(parts: &[Vec<usize>], n: usize) {
        let mut seen = vec![0u8; n];
        for p in parts {
            for &i in p {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "every index exactly once");
    }

    /// Mean over ranks of the total-variation distance between the rank's label mix and the global one.
    fn skew(l: &[u16], c: usize, parts: &[Vec<usize>]) -> f64 {
        let all: Vec<usize> = (0..l.len()).collect();
        let g = class_histogram(l, &all, c);
        parts
            .iter()
            .map(|p| {
                let h = class_histogram(l, p, c);
                0.5 * (0..c)
                    .map(|k| (h[k] as f64 / p.len() as f64 - g[k] as f64 / l.len() as f64).abs())
                    .sum::<f64>()
            })
            .sum::<f64>()
            / parts.len() as f64
    }

    #[test]
    fn iid_covers_and_balances() {
        let l = labels(1003, 10);
        let parts = partition(&l, 10, 7, &Partition::Iid, 4).unwrap();
        assert_eq!(parts.len(), 7);
        assert_cover(&parts, 1003);
        let (mn, mx) = (
            parts.iter().map(Vec::len).min().unwrap(),
            parts.iter().map(Vec::len).max().unwrap(),
        );
        assert!(mx - mn <= 1, "{mn}..{mx}");
        assert_eq!(parts, partition(&l, 10, 7, &Partition::Iid, 4).unwrap());
        assert_ne!(parts, partition(&l, 10, 7, &Partition::Iid, 5).unwrap());
        // Shuffled: not a run of consecutive indices.
        assert!(parts[0].windows(2).any(|w| w[1] != w[0] + 1));
        // IID shards see every class.
        assert!(parts
            .iter()
            .all(|p| class_histogram(&l, p, 10).iter().all(|&h| h > 0)));
    }

    #[test]
    fn label_shard_gives_contiguous_label_blocks_in_index_order() {
        let l: Vec<u16> = (0..1000).map(|i| ((i * 37) % 100) as u16).collect();
        let parts = partition(&l, 100, 25, &Partition::LabelShard, 0).unwrap();
        assert_cover(&parts, 1000);
        for (t, p) in parts.iter().enumerate() {
            let h = class_histogram(&l, p, 100);
            let set: Vec<usize> = (0..100).filter(|&k| h[k] > 0).collect();
            assert_eq!(set, (4 * t..4 * t + 4).collect::<Vec<_>>());
            assert!(p.windows(2).all(|w| w[0] < w[1]), "index order");
        }
        let l10 = labels(500, 10);
        let parts = partition(&l10, 10, 10, &Partition::LabelShard, 0).unwrap();
        for (t, p) in parts.iter().enumerate() {
            assert!(p.iter().all(|&i| l10[i] as usize == t));
        }
        for bad in [3, 20] {
            let e = partition(&l10, 10, bad, &Partition::LabelShard, 0)
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.starts_with("config: label-shard needs the number of classes (C) divisible"),
                "{e}"
            );
        }
    }

    #[test]
    fn dirichlet_covers_respects_min_size_and_skews_with_small_alpha() {
        let l = labels(4000, 10);
        let ranks = 8;
        let min = dirichlet_min_size(4000, ranks);
        assert_eq!(min, 50);
        let mut skews = Vec::new();
        for alpha in [0.1, 100.0] {
            let parts = partition(&l, 10, ranks, &Partition::Dirichlet(alpha), 9).unwrap();
            assert_cover(&parts, 4000);
            assert!(parts.iter().all(|p| p.len() >= min));
            assert!(parts[0].windows(2).any(|w| w[1] != w[0] + 1), "shuffled");
            skews.push(skew(&l, 10, &parts));
        }
        assert!(skews[0] > 0.4 && skews[1] < 0.1, "skews {skews:?}");
        assert_eq!(
            partition(&l, 10, ranks, &Partition::Dirichlet(0.5), 3).unwrap(),
            partition(&l, 10, ranks, &Partition::Dirichlet(0.5), 3).unwrap()
        );
    }

    #[test]
    fn dirichlet_gives_up_after_the_retry_cap() {
        let l = labels(200, 10);
        let e = partition(&l, 10, 20, &Partition::Dirichlet(0.001), 1)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "config: dirichlet:0.001 could not give every rank at least 1 samples after 10 tries (raise ALPHA or use fewer ranks)"
        );
    }

    #[test]
    fn rejects_bad_inputs() {
        let l = labels(10, 2);
        assert!(partition(&l, 2, 0, &Partition::Iid, 0).is_err());
        assert!(partition(&l, 2, 11, &Partition::Iid, 0).is_err());
        let e = partition(&[0, 5], 2, 1, &Partition::Iid, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("data:") && e.contains("label 5"), "{e}");
    }

    #[test]
    fn from_str_display_round_trip() {
        for p in [
            Partition::Iid,
            Partition::LabelShard,
            Partition::Dirichlet(0.5),
            Partition::Dirichlet(1e-3),
            Partition::Dirichlet(0.1 + 0.2),
        ] {
            assert_eq!(p.to_string().parse::<Partition>().unwrap(), p);
        }
        assert_eq!(
            "dirichlet:0.3".parse::<Partition>().unwrap(),
            Partition::Dirichlet(0.3)
        );
        assert_eq!(Partition::Dirichlet(0.3).to_string(), "dirichlet:0.3");
        for bad in [
            "dirichlet:-1",
            "dirichlet:x",
            "foo",
            "dirichlet:0",
            "dirichlet:inf",
            "dirichlet:NaN",
            "IID",
        ] {
            let e = bad.parse::<Partition>().err().unwrap();
            assert!(!e.contains('\n') && e.contains(bad), "{e}");
        }
    }
}
