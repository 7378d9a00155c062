//! Top-k selection by magnitude (paper §3.5, the `Topk(g)` of the adaptive rule).
//!
//! The k largest |x| are found without sorting: the magnitude of an f32 read as the u32 of its bits
//! with the sign cleared orders exactly like the magnitude itself (IEEE-754 is monotone in its bit
//! pattern for non-negative values). On large inputs two streaming passes do the work:
//! 1. a 1/128 sample brackets the k-th largest key in a narrow key range; one pass builds 64-lane
//!    bit masks (packed compares), counts per block the keys above the range and collects the few
//!    keys inside it; a select-nth over those candidates gives the exact threshold key `t` (the
//!    bracket is verified by the counts, and an exact histogram route takes over when it misses or
//!    when ties make the range wide);
//! 2. a parallel compaction writes each block's selected elements into its own pre-sized output
//!    window, walking the set bits of the masks, so the result comes out in ascending index order.
//!
//! Ties in magnitude are broken by the lower index, so the selection is a pure function of the input
//! (every rank and every run picks the same set). NaN keys order above +inf, so a non-finite
//! gradient is always selected and never silently dropped.
use rayon::prelude::*;

/// Inputs up to this length use a select-nth over packed (key, index) words.
const SMALL: usize = 1 << 12;
/// Elements per task in the histogram passes.
const HIST_CHUNK: usize = 1 << 20;
/// Elements per block in the compaction (each block's output slot is known before writing); a
/// multiple of 64 so that every block but the last scans whole 64-lane masks.
const BLOCK: usize = 1 << 16;
/// Bins of the first pass: the high 15 bits of a key (the sign bit is always clear).
const HI_BINS: usize = 1 << 15;
/// Bins of the second pass: the low 16 bits of a key.
const LO_BINS: usize = 1 << 16;

/// The magnitude of `v` as an order-preserving u32.
#[inline(always)]
fn key(v: f32) -> u32 {
    v.to_bits() & 0x7fff_ffff
}

/// Lanes per bit mask in the scanning passes.
const LANES: usize = 64;

/// Bits j of the two masks are set when `p(key(c[j]))` and `q(key(c[j]))` hold, for
/// `c.len() ≤ 64`. Keys have the sign bit clear, so comparing them as i32 is exact and lets the
/// compiler use packed signed compares on full 64-lane groups.
#[inline(always)]
fn masks(c: &[f32], p: impl Fn(i32) -> bool, q: impl Fn(i32) -> bool) -> (u64, u64) {
    if let Ok(c) = <&[f32; LANES]>::try_from(c) {
        // 0/1 flags in bytes vectorise as packed compares; 8 flags then fold into 8 mask bits by
        // one multiply (byte i lands in bit 56 + i).
        let (mut fp, mut fq) = ([0u8; LANES], [0u8; LANES]);
        for j in 0..LANES {
            let kk = key(c[j]) as i32;
            fp[j] = u8::from(p(kk));
            fq[j] = u8::from(q(kk));
        }
        (pack_flags(&fp), pack_flags(&fq))
    } else {
        let (mut mp, mut mq) = (0u64, 0u64);
        for (j, &v) in c.iter().enumerate() {
            let kk = key(v) as i32;
            mp |= u64::from(p(kk)) << j;
            mq |= u64::from(q(kk)) << j;
        }
        (mp, mq)
    }
}

/// 64 bytes of 0/1 into a 64-bit mask (bit j = byte j).
#[inline(always)]
fn pack_flags(f: &[u8; LANES]) -> u64 {
    let mut m = 0u64;
    for g in 0..LANES / 8 {
        let w = u64::from_le_bytes(f[g * 8..g * 8 + 8].try_into().unwrap());
        m |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (g * 8);
    }
    m
}

/// The first `r` set bits of `m` (all of them when `r ≥ popcount(m)`).
#[inline(always)]
fn lowest_bits(mut m: u64, r: usize) -> u64 {
    if r >= m.count_ones() as usize {
        return m;
    }
    let mut out = 0u64;
    for _ in 0..r {
        let low = m & m.wrapping_neg();
        out |= low;
        m ^= low;
    }
    out
}

/// The number of elements top-k keeps from a tensor of `len` elements at compression ratio `cr`
/// (CR = compressed size / original size, §3.5): `max(1, floor(len·cr))`, capped at `len`; 0 for an
/// empty tensor. This is the reference code's `max(1, int(numel × CR))`, including its rounding
/// (e.g. 100 × 0.29 is 28.999… in binary floating point and gives 28). A non-positive or NaN `cr`
/// gives 1 and a `cr` ≥ 1 gives `len`.
pub fn k_for(len: usize, cr: f64) -> usize {
    if len == 0 {
        return 0;
    }
    // `as` saturates: NaN and negatives become 0, +inf becomes usize::MAX.
    let k = ((len as f64) * cr).floor() as usize;
    k.clamp(1, len)
}

/// Indices (ascending u32, relative to the slice) and signed values of the `k` largest |x|, `k`
/// capped at `x.len()`. Ties in magnitude are broken by the lower index. `idx` and `val` are cleared
/// first and hold exactly `min(k, x.len())` entries afterwards.
///
/// O(n) time with no sort of the input; large inputs use every rayon thread.
///
/// # Panics
/// If `x.len()` exceeds 2³², which u32 indices cannot address.
pub fn topk(x: &[f32], k: usize, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    idx.clear();
    val.clear();
    let n = x.len();
    assert!(
        n as u64 <= 1u64 << 32,
        "top-k input has {n} elements; u32 indices address at most 2^32"
    );
    let k = k.min(n);
    if k == 0 {
        return;
    }
    if k == n {
        idx.extend((0..n).map(|i| i as u32));
        val.extend_from_slice(x);
        return;
    }
    if n <= SMALL {
        topk_small(x, k, idx, val);
        return;
    }
    let (t, counts) = threshold(x, k);
    compact(x, k, t, &counts, idx, val);
}

/// Select-nth over words `(!key << 32) | index`: ascending word order is descending magnitude, then
/// ascending index, a total order, so the first k words are exactly the selection.
fn topk_small(x: &[f32], k: usize, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    let mut words: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| (u64::from(!key(v)) << 32) | i as u64)
        .collect();
    words.select_nth_unstable(k - 1);
    let chosen = &mut words[..k];
    for w in chosen.iter_mut() {
        *w &= 0xffff_ffff;
    }
    chosen.sort_unstable();
    idx.extend(chosen.iter().map(|&w| w as u32));
    val.extend(chosen.iter().map(|&w| x[w as usize]));
}

fn histogram<F: Fn(u32) -> Option<usize> + Sync>(x: &[f32], bins: usize, bin_of: F) -> Vec<u64> {
    x.par_chunks(HIST_CHUNK)
        .fold(
            || vec![0u32; bins],
            |mut h, chunk| {
                for &v in chunk {
                    if let Some(b) = bin_of(key(v)) {
                        h[b] += 1;
                    }
                }
                h
            },
        )
        .fold(
            || vec![0u64; bins],
            |mut a, h| {
                for (x, y) in a.iter_mut().zip(h) {
                    *x += u64::from(y);
                }
                a
            },
        )
        .reduce(
            || vec![0u64; bins],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        )
}

/// Walks `hist` from the top bin down; returns (bin holding the `need`-th largest, how many of that
/// bin are still needed).
fn find_bin(hist: &[u64], need: u64) -> (usize, u64) {
    let mut above = 0u64;
    for b in (0..hist.len()).rev() {
        if above + hist[b] >= need {
            return (b, need - above);
        }
        above += hist[b];
    }
    unreachable!("histogram holds fewer than k elements")
}

/// Per compaction block: (elements with key > t, elements with key == t that are taken).
type BlockCounts = Vec<(usize, usize)>;

/// The k-th largest key `t` and, per block, how many elements it contributes: all keys above `t`,
/// plus the elements equal to `t` that the selection needs, lowest indices first.
///
/// Fast path: a 1/16 sample brackets the k-th largest key in a narrow key range [lo, hi]; one pass
/// counts per block the keys above `hi` and collects the few keys inside the range, and `t` is a
/// select-nth over those candidates. If the bracket misses (it is checked exactly, never trusted),
/// a histogram of the high 15 key bits gives an exact bracket (one bin) instead; when that bin is
/// a large share of the data (heavy ties), a second histogram over the low 16 bits gives `t`
/// directly and a counting pass the per-block counts.
fn threshold(x: &[f32], k: usize) -> (u32, BlockCounts) {
    let found = sample_bracket(x, k).and_then(|(lo, hi)| bracket_select(x, k, lo, hi));
    let (t, counts) = match found {
        Some(r) => r,
        None => {
            let hist = histogram(x, HI_BINS, |kk| Some((kk >> 16) as usize));
            let (hb, need) = find_bin(&hist, k as u64);
            let (lo, hi) = ((hb as u32) << 16, ((hb as u32) << 16) | 0xffff);
            if hist[hb] as usize <= x.len() / 8 {
                bracket_select(x, k, lo, hi)
                    .expect("the histogram bin brackets the k-th largest key")
            } else {
                let hb32 = hb as u32;
                let low = histogram(x, LO_BINS, |kk| {
                    if kk >> 16 == hb32 {
                        Some((kk & 0xffff) as usize)
                    } else {
                        None
                    }
                });
                let (lb, _) = find_bin(&low, need);
                let t = lo | lb as u32;
                let ti = t as i32;
                let counts: Vec<(usize, usize)> = x
                    .par_chunks(BLOCK)
                    .map(|b| {
                        b.chunks(LANES).fold((0usize, 0usize), |(gt, eq), c| {
                            let (g, e) = masks(c, |kk| kk > ti, |kk| kk == ti);
                            (gt + g.count_ones() as usize, eq + e.count_ones() as usize)
                        })
                    })
                    .collect();
                (t, counts)
            }
        }
    };
    // Ties go to the lowest indices: earlier blocks take their equal elements first.
    let mut left = k - counts.iter().map(|c| c.0).sum::<usize>();
    let counts = counts
        .into_iter()
        .map(|(gt, eq)| {
            let q = eq.min(left);
            left -= q;
            (gt, q)
        })
        .collect();
    debug_assert_eq!(left, 0);
    (t, counts)
}

/// A key range [lo, hi] that very likely holds the k-th largest key, from every 128th group of 64
/// elements: the sample's order statistics around rank k·m/n, widened by six binomial standard
/// deviations plus a margin. `None` when the input is too short to sample or the range would hold
/// more than 1/8 of the data (ties), where the histogram route is cheaper.
fn sample_bracket(x: &[f32], k: usize) -> Option<(u32, u32)> {
    const STRIDE: usize = 128;
    if x.len() < (1 << 18) {
        return None;
    }
    let mut sample: Vec<u32> = x
        .chunks(LANES * STRIDE)
        .flat_map(|c| c[..LANES.min(c.len())].iter().map(|&v| key(v)))
        .collect();
    let m = sample.len();
    // Rank counted from the top (1 = largest) that the k-th largest has in the sample.
    let r = (k as f64) * (m as f64) / (x.len() as f64);
    let spread = 6.0 * (r * (1.0 - r / m as f64)).max(0.0).sqrt() + 64.0;
    let r_hi = ((r - spread).floor().max(1.0) as usize).min(m);
    let r_lo = ((r + spread).ceil() as usize).clamp(r_hi, m);
    let desc = |a: &u32, b: &u32| b.cmp(a);
    let (_, &mut hi, rest) = sample.select_nth_unstable_by(r_hi - 1, desc);
    // The sample's r_lo-th largest lies in the part after the r_hi-th.
    let lo = if r_lo == r_hi {
        hi
    } else {
        *rest.select_nth_unstable_by(r_lo - r_hi - 1, desc).1
    };
    let hi = if r_hi == 1 { u32::MAX } else { hi };
    let lo = if r_lo == m { 0 } else { lo };
    let inside = sample.iter().filter(|&&s| s >= lo && s <= hi).count();
    (inside <= m / 8).then_some((lo, hi))
}

/// One pass: per block, the keys above `hi` (counted) and the keys in [lo, hi] (collected). If
/// fewer than k lie above `hi` and at least k at or above `lo`, the k-th largest is among the
/// candidates: returns it and the per-block (above t, equal to t) counts. Otherwise `None`.
fn bracket_select(x: &[f32], k: usize, lo: u32, hi: u32) -> Option<(u32, BlockCounts)> {
    let (lo_i, hi_i) = (
        lo.min(i32::MAX as u32) as i32,
        hi.min(i32::MAX as u32) as i32,
    );
    let per_block: Vec<(usize, Vec<u32>)> = x
        .par_chunks(BLOCK)
        .map(|b| {
            let mut above = 0usize;
            let mut cand = Vec::new();
            for c in b.chunks(LANES) {
                let (gt_hi, ge_lo) = masks(c, |kk| kk > hi_i, |kk| kk >= lo_i);
                above += gt_hi.count_ones() as usize;
                let mut inside = ge_lo & !gt_hi;
                while inside != 0 {
                    let j = inside.trailing_zeros() as usize;
                    cand.push(key(c[j]));
                    inside &= inside - 1;
                }
            }
            (above, cand)
        })
        .collect();
    let above: usize = per_block.iter().map(|b| b.0).sum();
    let inside: usize = per_block.iter().map(|b| b.1.len()).sum();
    if above >= k || above + inside < k {
        return None;
    }
    let mut all: Vec<u32> = per_block.iter().flat_map(|b| b.1.iter().copied()).collect();
    let (_, &mut t, _) = all.select_nth_unstable_by(k - above - 1, |a, b| b.cmp(a));
    let counts = per_block
        .iter()
        .map(|(above, cand)| {
            let gt = cand.iter().filter(|&&c| c > t).count();
            let eq = cand.iter().filter(|&&c| c == t).count();
            (above + gt, eq)
        })
        .collect();
    Some((t, counts))
}

/// Writes, per block and in index order, every element with key > t and the first `q` elements
/// with key == t (`counts[b] = (above, q)`).
fn compact(
    x: &[f32],
    k: usize,
    t: u32,
    counts: &[(usize, usize)],
    idx: &mut Vec<u32>,
    val: &mut Vec<f32>,
) {
    debug_assert_eq!(counts.iter().map(|c| c.0 + c.1).sum::<usize>(), k);
    idx.resize(k, 0);
    val.resize(k, 0.0);
    // Hand each block its own disjoint output window.
    let mut jobs = Vec::with_capacity(counts.len());
    let (mut ri, mut rv) = (&mut idx[..], &mut val[..]);
    for (bi, &(gt, q)) in counts.iter().enumerate() {
        let total = gt + q;
        let (oi, rest_i) = ri.split_at_mut(total);
        let (ov, rest_v) = rv.split_at_mut(total);
        ri = rest_i;
        rv = rest_v;
        if total > 0 {
            jobs.push((bi, q, oi, ov));
        }
    }
    jobs.into_par_iter().for_each(|(bi, q, oi, ov)| {
        let base = bi * BLOCK;
        let block = &x[base..(base + BLOCK).min(x.len())];
        let ti = t as i32;
        let mut o = 0usize;
        let mut eq_left = q;
        for (g, c) in block.chunks(LANES).enumerate() {
            let (gt, eq) = masks(c, |kk| kk > ti, |kk| kk == ti);
            let taken_eq = lowest_bits(eq, eq_left);
            eq_left -= taken_eq.count_ones() as usize;
            let mut sel = gt | taken_eq;
            while sel != 0 {
                let j = sel.trailing_zeros() as usize;
                oi[o] = (base + g * LANES + j) as u32;
                ov[o] = c[j];
                o += 1;
                sel &= sel - 1;
            }
        }
        let total = oi.len();
        debug_assert_eq!(o, total);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Reference order: full sort by (|x| desc, index asc).
    fn reference_order(x: &[f32]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&a, &b| x[b].abs().partial_cmp(&x[a].abs()).unwrap().then(a.cmp(&b)));
        order
    }

    /// topk against the first k of the reference order, indices re-sorted.
    fn check_with(x: &[f32], order: &[usize], k: usize) {
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        topk(x, k, &mut idx, &mut val);
        let mut want: Vec<u32> = order[..k.min(x.len())].iter().map(|&i| i as u32).collect();
        want.sort_unstable();
        assert_eq!(idx.len(), want.len(), "n={} k={}", x.len(), k);
        if let Some(p) = idx.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "n={} k={}: first mismatch at {p}: got index {} want {}",
                x.len(),
                k,
                idx[p],
                want[p]
            );
        }
        for (&i, &v) in idx.iter().zip(&val) {
            assert_eq!(
                v.to_bits(),
                x[i as usize].to_bits(),
                "value at {i} must keep its sign and bits"
            );
        }
    }

    fn check(x: &[f32], k: usize) {
        check_with(x, &reference_order(x), k);
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| r.gen_range(-1.0f32..1.0) * 10f32.powi(r.gen_range(-3..3)))
            .collect()
    }

    /// Values from a small integer set, both signs: almost every magnitude is tied.
    fn ties(n: usize, seed: u64) -> Vec<f32> {
        let mut r = StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.gen_range(-3i32..=3) as f32).collect()
    }

    #[test]
    fn k_for_rounds_down_with_floor_of_one() {
        assert_eq!(k_for(0, 0.1), 0);
        assert_eq!(k_for(1, 0.1), 1);
        assert_eq!(k_for(9, 0.1), 1);
        assert_eq!(k_for(10, 0.1), 1);
        assert_eq!(k_for(29, 0.1), 2);
        assert_eq!(k_for(1000, 0.01), 10);
        assert_eq!(k_for(100, 0.29), 28); // int(100 * 0.29) in Python: 28.999999999999996
        assert_eq!(k_for(60_192_808, 0.1), 6_019_280);
        assert_eq!(k_for(50, 1.0), 50);
        assert_eq!(k_for(50, 7.0), 50);
        assert_eq!(k_for(50, 0.0), 1);
        assert_eq!(k_for(50, -0.5), 1);
        assert_eq!(k_for(50, f64::NAN), 1);
        assert_eq!(k_for(50, f64::INFINITY), 50);
    }

    #[test]
    fn small_inputs_match_sort_reference() {
        for (s, n) in [1usize, 2, 3, 7, 64, 1000, SMALL].into_iter().enumerate() {
            let (x, y) = (random(n, s as u64), ties(n, 100 + s as u64));
            let (ox, oy) = (reference_order(&x), reference_order(&y));
            for k in [1, 2, n / 3, n / 2, n.saturating_sub(1), n, n + 5] {
                check_with(&x, &ox, k);
                check_with(&y, &oy, k);
            }
        }
    }

    #[test]
    fn large_inputs_match_sort_reference() {
        // Above SMALL, several histogram chunks and many compaction blocks.
        let n = 3 * HIST_CHUNK / 2 + 12345;
        let x = random(n, 7);
        let order = reference_order(&x);
        for k in [1, 17, n / 100, n / 10, n - 1] {
            check_with(&x, &order, k);
        }
    }

    #[test]
    fn mid_size_inputs_match_sort_reference() {
        // Between SMALL and the sampling cut-off: the histogram route.
        let x = random(100_003, 8);
        let order = reference_order(&x);
        for k in [1, 999, 10_000, 100_002] {
            check_with(&x, &order, k);
        }
    }

    #[test]
    fn misleading_sample_falls_back_to_exact_route() {
        // The sampled groups (every 128th group of 64) hold only small values, so the sample's
        // bracket misses the true k-th largest and the histogram route must take over.
        let n = 1 << 20;
        let mut r = StdRng::seed_from_u64(4);
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if (i / LANES) % 128 == 0 {
                    r.gen_range(-1.0f32..1.0)
                } else {
                    r.gen_range(-1e3f32..1e3)
                }
            })
            .collect();
        let order = reference_order(&x);
        for k in [n / 2, n / 10, n - n / 200] {
            assert!(sample_bracket(&x, k)
                .is_some_and(|(lo, hi)| bracket_select(&x, k, lo, hi).is_none()));
            check_with(&x, &order, k);
        }
    }

    #[test]
    fn heavy_ties_break_by_lower_index() {
        let n = 5 * BLOCK + 77;
        let x = ties(n, 9);
        let order = reference_order(&x);
        for k in [1, 3, BLOCK, n / 7, 2 * n / 7 + 1, n / 2, n - 2] {
            check_with(&x, &order, k);
        }
        // About 500 copies of each magnitude: the sampled bracket route, with ties at t.
        let mut r = StdRng::seed_from_u64(12);
        let x: Vec<f32> = (0..1usize << 19)
            .map(|_| r.gen_range(-500i32..=500) as f32 * 0.25)
            .collect();
        let order = reference_order(&x);
        for k in [100, 5_000, 1 << 17, (1 << 19) - 3] {
            check_with(&x, &order, k);
        }
        assert!(sample_bracket(&x, 1 << 17)
            .and_then(|(lo, hi)| bracket_select(&x, 1 << 17, lo, hi))
            .is_some());
        // All equal magnitudes, mixed signs: the selection is exactly the first k indices.
        let x: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { -2.5 } else { 2.5 })
            .collect();
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        topk(&x, 1000, &mut idx, &mut val);
        assert_eq!(idx, (0..1000u32).collect::<Vec<_>>());
        assert_eq!(val[0], -2.5);
        assert_eq!(val[1], 2.5);
    }

    #[test]
    fn zeros_signed_zeros_and_infinities() {
        let mut x = vec![0.0f32; SMALL * 3];
        x[5] = -0.0;
        x[100] = f32::NEG_INFINITY;
        x[9000] = 1e-40; // subnormal still beats zero
        x[11000] = -3.0;
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        topk(&x, 4, &mut idx, &mut val);
        assert_eq!(idx, vec![0, 100, 9000, 11000]);
        assert_eq!(val[1], f32::NEG_INFINITY);
        assert_eq!(val[3], -3.0);
        check(&x, 10);
    }

    #[test]
    fn k_equal_len_and_len_one() {
        let x = random(SMALL * 2, 3);
        let (mut idx, mut val) = (vec![9u32; 3], vec![1.0f32; 3]);
        topk(&x, x.len(), &mut idx, &mut val);
        assert_eq!(idx.len(), x.len());
        assert!(idx.iter().enumerate().all(|(i, &j)| i as u32 == j));
        assert_eq!(val, x);
        topk(&[-4.0], 1, &mut idx, &mut val);
        assert_eq!(
            (idx.as_slice(), val.as_slice()),
            (&[0u32][..], &[-4.0f32][..])
        );
        topk(&[-4.0], 0, &mut idx, &mut val);
        assert!(idx.is_empty() && val.is_empty());
        topk(&[], 3, &mut idx, &mut val);
        assert!(idx.is_empty() && val.is_empty());
    }
}
