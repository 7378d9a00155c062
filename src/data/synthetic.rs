//! The synthetic dataset: 32×32×3 uint8 images in `num_classes` classes, made from a seed, so that
//! training runs anywhere without downloading CIFAR.
//!
//! It is meant to be learnable but not trivial. Each class has a smooth random prototype (low-frequency
//! sinusoids and a few coloured Gaussian blobs per channel). Each sample is its class prototype shifted
//! by a few pixels, contrast- and brightness-jittered, mixed at a small weight with another class's
//! prototype, plus strong per-pixel noise, clipped to uint8. A nearest-class-mean classifier on raw
//! pixels is well above chance but far from perfect; a CNN, which can undo the shifts, does better
//! over hundreds of SGD steps.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::{Dataset, SyntheticSpec, IMAGE_BYTES, IMAGE_SIDE, PLANE};
use crate::error::Result;

/// Largest shift of a sample against its prototype, in pixels, each direction.
const MAX_SHIFT: usize = 3;
/// Side of the stored prototype: the image plus room for the shifts.
const GRID: usize = IMAGE_SIDE + 16;
fn knob(n: &str, d: f32) -> f32 { std::env::var(n).ok().map(|v| v.parse().unwrap()).unwrap_or(d) }
/// Sinusoids and blobs per prototype channel.
const WAVES: usize = 3;
const BLOBS: usize = 3;
/// Pixel scale of a unit prototype value, around mid-grey.
const SCALE: f32 = 0.16;
/// Standard deviation of the per-pixel noise, in [0, 1] pixel units.
const NOISE: f32 = 0.22;
/// Largest weight of the other class's prototype mixed into a sample.
const MAX_MIX: f32 = 0.45;
/// Largest per-channel colour cast of a sample, in pixel units.
const BRIGHTNESS: f32 = 0.08;
/// Class-independent low-frequency waves per sample and channel, and their largest amplitude.
const NUISANCE_WAVES: usize = 2;
const NUISANCE: f32 = 0.12;

/// Split tags so train and test samples come from disjoint seed streams.
const TRAIN_TAG: u64 = 0x7472_6169_6e00_0001;
const TEST_TAG: u64 = 0x7465_7374_0000_0002;
const PROTO_TAG: u64 = 0x7072_6f74_6f00_0003;

/// SplitMix64 finaliser: turns (seed, tag, index) into well-spread per-sample seeds.
fn mix(seed: u64, tag: u64, i: u64) -> u64 {
    let mut z = seed ^ tag.rotate_left(17) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One class prototype per class, `3 * GRID * GRID` values each, zero-mean and unit-variance over
/// the whole prototype (per-channel offsets kept, they are the class's colour).
fn prototypes(num_classes: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..num_classes)
        .into_par_iter()
        .map(|k| {
            let mut rng = StdRng::seed_from_u64(mix(seed, PROTO_TAG, k as u64));
            let mut p = vec![0f32; 3 * GRID * GRID];
            let tau = std::f32::consts::TAU;
            // Blobs share a centre and size across channels and differ in colour.
            let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..BLOBS)
                .map(|_| {
                    let cy = rng.gen_range(4.0..(GRID as f32 - 4.0));
                    let cx = rng.gen_range(4.0..(GRID as f32 - 4.0));
                    let sigma: f32 = rng.gen_range(3.0..7.0);
                    let col = [rng.gen_range(-1.5..1.5), rng.gen_range(-1.5..1.5), rng.gen_range(-1.5..1.5)];
                    (cy, cx, 1.0 / (2.0 * sigma * sigma), col)
                })
                .collect();
            for c in 0..3 {
                let waves: Vec<(f32, f32, f32, f32)> = (0..WAVES)
                    .map(|_| {
                        let amp = rng.gen_range(0.3..1.0);
                        let fy = rng.gen_range(-2.0f32..2.0) / IMAGE_SIDE as f32;
                        let fx = rng.gen_range(-2.0f32..2.0) / IMAGE_SIDE as f32;
                        (amp, fy, fx, rng.gen_range(0.0..tau))
                    })
                    .collect();
                let offset: f32 = rng.gen_range(-0.6..0.6);
                for y in 0..GRID {
                    for x in 0..GRID {
                        let (yf, xf) = (y as f32, x as f32);
                        let mut v = offset;
                        for &(a, fy, fx, ph) in &waves {
                            v += a * (tau * (fy * yf + fx * xf) + ph).sin();
                        }
                        for &(cy, cx, inv, col) in &blobs {
                            let d2 = (yf - cy) * (yf - cy) + (xf - cx) * (xf - cx);
                            v += col[c] * (-d2 * inv).exp();
                        }
                        p[(c * GRID + y) * GRID + x] = v;
                    }
                }
            }
            let n = p.len() as f32;
            let mean = p.iter().sum::<f32>() / n;
            let sd = (p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt().max(1e-6);
            // Keep the mean colour offsets in the picture but bring every class to one contrast.
            p.iter_mut().for_each(|v| *v /= sd);
            p
        })
        .collect()
}

/// Adds one random plane wave `amp * sin(2π(fy·y + fx·x) + φ)` to a 32×32 plane, computed separably
/// (sin(a + b) = sin a cos b + cos a sin b) so a per-sample nuisance costs 128 sines, not 1024.
fn add_wave(plane: &mut [f32], amp: f32, fy: f32, fx: f32, phase: f32) {
    let tau = std::f32::consts::TAU;
    let mut col = [(0f32, 0f32); IMAGE_SIDE];
    for (x, c) in col.iter_mut().enumerate() {
        *c = (tau * fx * x as f32).sin_cos();
    }
    for y in 0..IMAGE_SIDE {
        let (sa, ca) = (tau * fy * y as f32 + phase).sin_cos();
        for (x, v) in plane[y * IMAGE_SIDE..][..IMAGE_SIDE].iter_mut().enumerate() {
            let (sb, cb) = col[x];
            *v += amp * (sa * cb + ca * sb);
        }
    }
}

/// Draws `n` samples of one split. Labels are balanced (each class `n / C` or one more) in shuffled order.
fn draw(protos: &[Vec<f32>], n: usize, seed: u64, tag: u64) -> Dataset {
    let c = protos.len();
    let mut labels: Vec<u16> = (0..n).map(|i| (i % c) as u16).collect();
    labels.shuffle(&mut StdRng::seed_from_u64(mix(seed, tag, u64::MAX)));
    let mut images = vec![0u8; n * IMAGE_BYTES];
    images.par_chunks_mut(IMAGE_BYTES).enumerate().for_each(|(i, img)| {
        let mut rng = StdRng::seed_from_u64(mix(seed, tag, i as u64));
        let own = labels[i] as usize;
        let other = (own + rng.gen_range(1..c)) % c;
        let ms = knob("K_SHIFT", 3.0) as usize; let base = 8 - ms;
        let (scale, noise_sd, max_mix, nuis) = (knob("K_SCALE", SCALE), knob("K_NOISE", NOISE), knob("K_MIX", MAX_MIX), knob("K_NUIS", NUISANCE));
        let (sy, sx) = (base + rng.gen_range(0..=2 * ms), base + rng.gen_range(0..=2 * ms));
        let (oy, ox) = (base + rng.gen_range(0..=2 * ms), base + rng.gen_range(0..=2 * ms));
        let contrast: f32 = rng.gen_range(0.6..1.4);
        let weight: f32 = rng.gen_range(0.0..max_mix);
        let (p, q) = (&protos[own], &protos[other]);
        let mut field = [0f32; PLANE];
        for ch in 0..3 {
            // Class-independent smooth structure: a colour cast and a low-frequency wave.
            field.fill(rng.gen_range(-BRIGHTNESS..BRIGHTNESS));
            for _ in 0..NUISANCE_WAVES {
                let amp = rng.gen_range(0.0..nuis);
                let (fy, fx) = (rng.gen_range(-1.5f32..1.5), rng.gen_range(-1.5f32..1.5));
                let phase = rng.gen_range(0.0..std::f32::consts::TAU);
                add_wave(&mut field, amp, fy / IMAGE_SIDE as f32, fx / IMAGE_SIDE as f32, phase);
            }
            for y in 0..IMAGE_SIDE {
                let prow = &p[(ch * GRID + y + sy) * GRID + sx..][..IMAGE_SIDE];
                let qrow = &q[(ch * GRID + y + oy) * GRID + ox..][..IMAGE_SIDE];
                let frow = &field[y * IMAGE_SIDE..][..IMAGE_SIDE];
                let out = &mut img[ch * PLANE + y * IMAGE_SIDE..][..IMAGE_SIDE];
                for x in 0..IMAGE_SIDE {
                    let noise: f32 = rng.sample(StandardNormal);
                    let v = 0.5
                        + frow[x]
                        + scale * contrast * ((1.0 - weight) * prow[x] + weight * qrow[x])
                        + noise_sd * noise;
                    out[x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    });
    Dataset { images, labels, num_classes: c }
}

/// Generates the synthetic (train, test) pair for `spec`. Same spec, same bytes; train and test share
/// the class prototypes and draw their samples from disjoint seed streams.
pub fn generate(spec: &SyntheticSpec) -> Result<(Dataset, Dataset)> {
    if spec.num_classes < 2 || spec.num_classes > u16::MAX as usize {
        crate::bail!(Config, "synthetic dataset needs 2..=65535 classes, got {}", spec.num_classes);
    }
    if spec.train_size == 0 || spec.test_size == 0 {
        crate::bail!(
            Config,
            "synthetic dataset needs non-empty train and test sets, got train {} and test {}",
            spec.train_size,
            spec.test_size
        );
    }
    let protos = prototypes(spec.num_classes, spec.seed);
    let train = draw(&protos, spec.train_size, spec.seed, TRAIN_TAG);
    let test = draw(&protos, spec.test_size, spec.seed, TEST_TAG);
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(c: usize, train: usize, test: usize, seed: u64) -> SyntheticSpec {
        SyntheticSpec { num_classes: c, train_size: train, test_size: test, seed }
    }

    /// Nearest-class-mean on raw pixels (f64), fitted on train, accuracy on test.
    fn ncm_accuracy(train: &Dataset, test: &Dataset) -> f64 {
        let c = train.num_classes;
        let mut means = vec![0f64; c * IMAGE_BYTES];
        let mut counts = vec![0usize; c];
        for i in 0..train.len() {
            let k = train.labels[i] as usize;
            counts[k] += 1;
            for (m, &v) in means[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES].iter_mut().zip(train.image(i)) {
                *m += v as f64;
            }
        }
        for k in 0..c {
            means[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES].iter_mut().for_each(|m| *m /= counts[k] as f64);
        }
        let correct: usize = (0..test.len())
            .into_par_iter()
            .filter(|&i| {
                let img = test.image(i);
                let best = (0..c)
                    .map(|k| {
                        let d: f64 = means[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES]
                            .iter()
                            .zip(img)
                            .map(|(m, &v)| (m - v as f64).powi(2))
                            .sum();
                        (d, k)
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .unwrap()
                    .1;
                best == test.labels[i] as usize
            })
            .count();
        correct as f64 / test.len() as f64
    }

    #[test]
    fn deterministic_per_seed() {
        let (a, at) = generate(&spec(10, 200, 50, 1)).unwrap();
        let (b, bt) = generate(&spec(10, 200, 50, 1)).unwrap();
        let (c, _) = generate(&spec(10, 200, 50, 2)).unwrap();
        assert_eq!(a.images, b.images);
        assert_eq!(a.labels, b.labels);
        assert_eq!(at.images, bt.images);
        assert_ne!(a.images, c.images);
        // Train and test are different draws.
        assert_ne!(a.images[..50 * IMAGE_BYTES], at.images[..]);
        assert_eq!(a.images.len(), 200 * IMAGE_BYTES);
    }

    #[test]
    fn labels_balanced_and_in_range() {
        let (tr, te) = generate(&spec(7, 700, 71, 5)).unwrap();
        for ds in [&tr, &te] {
            assert_eq!(ds.num_classes, 7);
            let mut h = vec![0usize; 7];
            ds.labels.iter().for_each(|&l| h[l as usize] += 1);
            let (lo, hi) = (ds.len() / 7, ds.len().div_ceil(7));
            assert!(h.iter().all(|&n| n == lo || n == hi), "{h:?}");
        }
        // Shuffled, not cycling 0,1,2,...
        assert!(tr.labels.iter().enumerate().any(|(i, &l)| l as usize != i % 7));
    }

    #[test]
    fn learnable_but_not_trivial() {
        let (tr, te) = generate(&spec(10, 2000, 1000, 11)).unwrap();
        let acc = ncm_accuracy(&tr, &te);
        eprintln!("NCM {acc}");
        assert!(acc > 0.2 && acc < 0.95, "nearest-class-mean accuracy {acc}");
        // Pixels use the range without piling up at the clip limits.
        let sat = tr.images.iter().filter(|&&v| v == 0 || v == 255).count() as f64 / tr.images.len() as f64;
        assert!(sat < 0.1, "saturated fraction {sat}");
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(generate(&spec(1, 10, 10, 0)).err().unwrap().to_string().starts_with("config:"));
        assert!(generate(&spec(10, 0, 10, 0)).is_err());
    }
}
