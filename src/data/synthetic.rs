//! The synthetic dataset: 32×32×3 uint8 images in `num_classes` classes, made from a seed, so that
//! training runs anywhere without downloading CIFAR.
//!
//! It is meant to be learnable but not trivial, in the way natural images are: a little of the class
//! is in the average picture, most of it is in local structure at an unknown position. Each class has
//! (a) a smooth colour layout (low-frequency sinusoids and coloured Gaussian blobs per channel) and
//! (b) a texture: oriented gratings of class-specific frequency and colour. A sample is its class
//! layout shifted by a few pixels and contrast-jittered, plus its class texture at a random phase,
//! mixed at a small weight with another class's layout and texture, plus class-independent colour
//! casts and low-frequency waves, plus strong per-pixel noise, clipped to uint8. The random phase
//! averages the texture out of any pixel-wise class mean, so a nearest-class-mean classifier on raw
//! pixels is only somewhat above chance, while features that ignore position (convolutions and
//! pooling, or power spectra) separate the classes far better.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::{Dataset, SyntheticSpec, IMAGE_BYTES, IMAGE_SIDE, PLANE};
use crate::error::Result;

/// Largest shift of a sample's layout against its class layout, in pixels, each direction.
const MAX_SHIFT: usize = 4;
/// Side of the stored layout: the image plus room for the shifts.
const GRID: usize = IMAGE_SIDE + 2 * MAX_SHIFT;
/// Sinusoids and blobs per layout channel.
const LAYOUT_WAVES: usize = 3;
const LAYOUT_BLOBS: usize = 3;
/// Gratings per class texture.
const GRATINGS: usize = 2;
/// Spatial frequency range of the gratings, in cycles per image side (periods of 4.5 to 11 pixels).
const GRATING_FREQ: std::ops::Range<f32> = 3.0..7.0;
/// Pixel scale of the unit-variance layout, around mid-grey.
const LAYOUT: f32 = 0.05;
/// Pixel amplitude of a unit grating.
const TEXTURE: f32 = 0.15;
/// Standard deviation of the per-pixel noise, in [0, 1] pixel units.
const NOISE: f32 = 0.2;
/// Largest weight of the other class's layout and texture mixed into a sample (below ½, so the own
/// class always dominates).
const MAX_MIX: f32 = 0.4;
/// Largest per-channel colour cast of a sample, in pixel units.
const BRIGHTNESS: f32 = 0.08;
/// Class-independent low-frequency waves per sample and channel, and their largest amplitude.
const NUISANCE_WAVES: usize = 2;
const NUISANCE: f32 = 0.12;

/// Split tags so train and test samples come from disjoint seed streams.
const TRAIN_TAG: u64 = 0x7472_6169_6e00_0001;
const TEST_TAG: u64 = 0x7465_7374_0000_0002;
const CLASS_TAG: u64 = 0x7072_6f74_6f00_0003;

/// SplitMix64 finaliser: turns (seed, tag, index) into well-spread per-sample seeds.
fn mix(seed: u64, tag: u64, i: u64) -> u64 {
    let mut z = seed ^ tag.rotate_left(17) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Cheap approximately normal noise: SplitMix64 words, each the sum of four 16-bit uniforms
/// (Irwin–Hall, rescaled to unit variance). Pixel noise needs speed, not exact tails.
struct FastNoise(u64);

impl FastNoise {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let s = (z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48);
        // Sum of four U(0,1): mean 2, variance 1/3.
        (s as f32 / 65536.0 - 2.0) * 1.732_050_8
    }
}

/// One oriented grating of a class texture: frequency (cycles per pixel) and per-channel amplitude.
#[derive(Clone, Copy)]
struct Grating {
    fy: f32,
    fx: f32,
    amp: [f32; 3],
}

/// What defines one class.
struct Class {
    /// `3 * GRID * GRID` values, unit variance over the whole layout (channel offsets kept: they are
    /// the class's colour).
    layout: Vec<f32>,
    texture: [Grating; GRATINGS],
}

fn classes(num_classes: usize, seed: u64) -> Vec<Class> {
    let tau = std::f32::consts::TAU;
    (0..num_classes)
        .into_par_iter()
        .map(|k| {
            let mut rng = StdRng::seed_from_u64(mix(seed, CLASS_TAG, k as u64));
            let mut p = vec![0f32; 3 * GRID * GRID];
            // Blobs share a centre and size across channels and differ in colour.
            let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..LAYOUT_BLOBS)
                .map(|_| {
                    let cy = rng.gen_range(4.0..(GRID as f32 - 4.0));
                    let cx = rng.gen_range(4.0..(GRID as f32 - 4.0));
                    let sigma: f32 = rng.gen_range(3.0..7.0);
                    let col = [
                        rng.gen_range(-1.5..1.5),
                        rng.gen_range(-1.5..1.5),
                        rng.gen_range(-1.5..1.5),
                    ];
                    (cy, cx, 1.0 / (2.0 * sigma * sigma), col)
                })
                .collect();
            for c in 0..3 {
                let waves: Vec<(f32, f32, f32, f32)> = (0..LAYOUT_WAVES)
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
            let sd = (p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n)
                .sqrt()
                .max(1e-6);
            p.iter_mut().for_each(|v| *v /= sd);
            let texture = std::array::from_fn(|_| {
                let f = rng.gen_range(GRATING_FREQ) / IMAGE_SIDE as f32;
                let theta = rng.gen_range(0.0..std::f32::consts::PI);
                let amp = std::array::from_fn(|_| {
                    let a: f32 = rng.gen_range(0.3..1.0);
                    if rng.gen_bool(0.5) {
                        a
                    } else {
                        -a
                    }
                });
                Grating {
                    fy: f * theta.sin(),
                    fx: f * theta.cos(),
                    amp,
                }
            });
            Class { layout: p, texture }
        })
        .collect()
}

/// Adds one plane wave `amp * sin(2π(fy·y + fx·x) + φ)` to a 32×32 plane, computed separably
/// (sin(a + b) = sin a cos b + cos a sin b) so it costs 64 sine/cosine pairs, not 1024.
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
fn draw(classes: &[Class], n: usize, seed: u64, tag: u64) -> Dataset {
    let c = classes.len();
    let tau = std::f32::consts::TAU;
    let mut labels: Vec<u16> = (0..n).map(|i| (i % c) as u16).collect();
    labels.shuffle(&mut StdRng::seed_from_u64(mix(seed, tag, u64::MAX)));
    let mut images = vec![0u8; n * IMAGE_BYTES];
    images
        .par_chunks_mut(IMAGE_BYTES)
        .enumerate()
        .for_each(|(i, img)| {
            let mut rng = StdRng::seed_from_u64(mix(seed, tag, i as u64));
            let own = &classes[labels[i] as usize];
            let other = &classes[(labels[i] as usize + rng.gen_range(1..c)) % c];
            let (sy, sx) = (
                rng.gen_range(0..=2 * MAX_SHIFT),
                rng.gen_range(0..=2 * MAX_SHIFT),
            );
            let (oy, ox) = (
                rng.gen_range(0..=2 * MAX_SHIFT),
                rng.gen_range(0..=2 * MAX_SHIFT),
            );
            let contrast: f32 = rng.gen_range(0.6..1.4);
            let weight: f32 = rng.gen_range(0.0..MAX_MIX);
            // One random phase per grating, shared by the channels: the texture sits at an unknown position.
            let phases: [[f32; GRATINGS]; 2] =
                std::array::from_fn(|_| std::array::from_fn(|_| rng.gen_range(0.0..tau)));
            let tex_gain: f32 = TEXTURE * rng.gen_range(0.7..1.3);
            let mut noise = FastNoise(rng.gen());
            let mut field = [0f32; PLANE];
            for ch in 0..3 {
                // Class-independent smooth structure: a colour cast and low-frequency waves.
                field.fill(rng.gen_range(-BRIGHTNESS..BRIGHTNESS));
                for _ in 0..NUISANCE_WAVES {
                    let amp = rng.gen_range(0.0..NUISANCE);
                    let (fy, fx) = (rng.gen_range(-1.5f32..1.5), rng.gen_range(-1.5f32..1.5));
                    let phase = rng.gen_range(0.0..tau);
                    add_wave(
                        &mut field,
                        amp,
                        fy / IMAGE_SIDE as f32,
                        fx / IMAGE_SIDE as f32,
                        phase,
                    );
                }
                for (cls, w, ph) in [(own, 1.0 - weight, &phases[0]), (other, weight, &phases[1])] {
                    for (g, &phase) in cls.texture.iter().zip(ph) {
                        add_wave(&mut field, w * tex_gain * g.amp[ch], g.fy, g.fx, phase);
                    }
                }
                let (lo, lt) = (
                    LAYOUT * contrast * (1.0 - weight),
                    LAYOUT * contrast * weight,
                );
                for y in 0..IMAGE_SIDE {
                    let prow = &own.layout[(ch * GRID + y + sy) * GRID + sx..][..IMAGE_SIDE];
                    let qrow = &other.layout[(ch * GRID + y + oy) * GRID + ox..][..IMAGE_SIDE];
                    let frow = &field[y * IMAGE_SIDE..][..IMAGE_SIDE];
                    let out = &mut img[ch * PLANE + y * IMAGE_SIDE..][..IMAGE_SIDE];
                    for x in 0..IMAGE_SIDE {
                        let v = 0.5 + frow[x] + lo * prow[x] + lt * qrow[x] + NOISE * noise.next();
                        out[x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    }
                }
            }
        });
    Dataset {
        images,
        labels,
        num_classes: c,
    }
}

/// Generates the synthetic (train, test) pair for `spec`. Same spec, same bytes; train and test share
/// the class definitions and draw their samples from disjoint seed streams.
pub fn generate(spec: &SyntheticSpec) -> Result<(Dataset, Dataset)> {
    if spec.num_classes < 2 || spec.num_classes > u16::MAX as usize {
        crate::bail!(
            Config,
            "synthetic dataset needs 2..=65535 classes, got {}",
            spec.num_classes
        );
    }
    if spec.train_size == 0 || spec.test_size == 0 {
        crate::bail!(
            Config,
            "synthetic dataset needs non-empty train and test sets, got train {} and test {}",
            spec.train_size,
            spec.test_size
        );
    }
    let classes = classes(spec.num_classes, spec.seed);
    let train = draw(&classes, spec.train_size, spec.seed, TRAIN_TAG);
    let test = draw(&classes, spec.test_size, spec.seed, TEST_TAG);
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(c: usize, train: usize, test: usize, seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            num_classes: c,
            train_size: train,
            test_size: test,
            seed,
        }
    }

    /// Nearest-class-mean on raw pixels (f64), fitted on train, accuracy on test.
    fn ncm_accuracy(train: &Dataset, test: &Dataset) -> f64 {
        let c = train.num_classes;
        let mut means = vec![0f64; c * IMAGE_BYTES];
        let mut counts = vec![0usize; c];
        for i in 0..train.len() {
            let k = train.labels[i] as usize;
            counts[k] += 1;
            for (m, &v) in means[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES]
                .iter_mut()
                .zip(train.image(i))
            {
                *m += v as f64;
            }
        }
        for k in 0..c {
            means[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES]
                .iter_mut()
                .for_each(|m| *m /= counts[k] as f64);
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

    /// Position-free features: per channel, the DFT amplitude at frequencies |ky| <= 8, 0 <= kx <= 8
    /// (computed separably), i.e. what a conv net with global pooling can see, not where it is.
    fn spectrum(img: &[u8]) -> Vec<f64> {
        const K: i32 = 8;
        let n = IMAGE_SIDE;
        let tw: Vec<(f64, f64)> = (0..n)
            .map(|t| {
                let a = std::f64::consts::TAU * t as f64 / n as f64;
                (a.cos(), -a.sin())
            })
            .collect();
        let mut feats = Vec::new();
        for c in 0..3 {
            let plane = &img[c * PLANE..(c + 1) * PLANE];
            // Row transforms at kx = 0..=K.
            let mut rows = vec![(0f64, 0f64); n * (K as usize + 1)];
            for y in 0..n {
                for kx in 0..=K as usize {
                    let (mut re, mut im) = (0.0, 0.0);
                    for x in 0..n {
                        let (cr, ci) = tw[(kx * x) % n];
                        let v = plane[y * n + x] as f64;
                        re += v * cr;
                        im += v * ci;
                    }
                    rows[y * (K as usize + 1) + kx] = (re, im);
                }
            }
            for ky in -K..=K {
                for kx in 0..=K as usize {
                    if (ky, kx) == (0, 0) {
                        continue;
                    }
                    let (mut re, mut im) = (0.0, 0.0);
                    for y in 0..n {
                        let (cr, ci) = tw[((ky.rem_euclid(n as i32)) as usize * y) % n];
                        let (a, b) = rows[y * (K as usize + 1) + kx];
                        re += a * cr - b * ci;
                        im += a * ci + b * cr;
                    }
                    feats.push((re * re + im * im).sqrt().ln_1p());
                }
            }
        }
        feats
    }

    /// Nearest-class-mean on standardised spectral features, fitted on train, accuracy on test.
    fn spectral_ncm_accuracy(train: &Dataset, test: &Dataset) -> f64 {
        let c = train.num_classes;
        let ftr: Vec<Vec<f64>> = (0..train.len())
            .into_par_iter()
            .map(|i| spectrum(train.image(i)))
            .collect();
        let fte: Vec<Vec<f64>> = (0..test.len())
            .into_par_iter()
            .map(|i| spectrum(test.image(i)))
            .collect();
        let d = ftr[0].len();
        let mut mu = vec![0f64; d];
        let mut sd = vec![0f64; d];
        ftr.iter().for_each(|f| {
            f.iter()
                .zip(&mut mu)
                .for_each(|(v, m)| *m += v / ftr.len() as f64)
        });
        ftr.iter().for_each(|f| {
            f.iter()
                .zip(&mu)
                .zip(&mut sd)
                .for_each(|((v, m), s)| *s += (v - m).powi(2) / ftr.len() as f64)
        });
        let z = |f: &[f64]| -> Vec<f64> {
            f.iter()
                .zip(&mu)
                .zip(&sd)
                .map(|((v, m), s)| (v - m) / s.sqrt().max(1e-9))
                .collect()
        };
        let mut means = vec![vec![0f64; d]; c];
        let mut counts = vec![0f64; c];
        for (f, &l) in ftr.iter().zip(&train.labels) {
            counts[l as usize] += 1.0;
            z(f).iter()
                .zip(&mut means[l as usize])
                .for_each(|(v, m)| *m += v);
        }
        means
            .iter_mut()
            .zip(&counts)
            .for_each(|(m, n)| m.iter_mut().for_each(|v| *v /= n));
        let correct = fte
            .iter()
            .zip(&test.labels)
            .filter(|(f, &l)| {
                let zf = z(f);
                let best = (0..c)
                    .min_by(|&a, &b| {
                        let da: f64 = zf.iter().zip(&means[a]).map(|(x, m)| (x - m).powi(2)).sum();
                        let db: f64 = zf.iter().zip(&means[b]).map(|(x, m)| (x - m).powi(2)).sum();
                        da.total_cmp(&db)
                    })
                    .unwrap();
                best == l as usize
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
        assert!(tr
            .labels
            .iter()
            .enumerate()
            .any(|(i, &l)| l as usize != i % 7));
    }

    #[test]
    fn learnable_but_not_trivial() {
        let (tr, te) = generate(&spec(10, 2000, 1000, 11)).unwrap();
        // Raw-pixel class means: clearly above chance (10%), far from solved.
        let acc = ncm_accuracy(&tr, &te);
        assert!(acc > 0.2 && acc < 0.7, "nearest-class-mean accuracy {acc}");
        // Most of the class is in position-free structure: spectral features do much better.
        // (That a small CNN needs hundreds of SGD steps to learn it is checked end to end in
        // tests/mpi_train.rs.)
        let spec_acc = spectral_ncm_accuracy(&tr, &te);
        assert!(spec_acc > acc + 0.15, "spectral {spec_acc} vs raw {acc}");
        // Pixels use the range without piling up at the clip limits.
        let sat = tr.images.iter().filter(|&&v| v == 0 || v == 255).count() as f64
            / tr.images.len() as f64;
        assert!(sat < 0.05, "saturated fraction {sat}");
    }

    #[test]
    fn many_classes_stay_separable() {
        let (tr, te) = generate(&spec(100, 3000, 1000, 2)).unwrap();
        let acc = ncm_accuracy(&tr, &te);
        assert!(
            acc > 0.03 && acc < 0.7,
            "100-class nearest-class-mean accuracy {acc}"
        );
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(generate(&spec(1, 10, 10, 0))
            .err()
            .unwrap()
            .to_string()
            .starts_with("config:"));
        assert!(generate(&spec(10, 0, 10, 0)).is_err());
    }
}
