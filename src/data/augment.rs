//! Batch assembly: uint8 CHW images to normalised f32 NCHW, with the paper's train-time augmentation
//! (random 32×32 crop of the 4-pixel zero-padded image, then a horizontal flip with probability ½).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::{Dataset, Normalization, IMAGE_BYTES, IMAGE_SIDE, PLANE};

/// Zero padding on each side before the random crop (torchvision `RandomCrop(32, padding=4)`).
pub const CROP_PADDING: usize = 4;

/// One image's augmentation: the crop's top-left corner in the padded image (each in
/// `0..=2*CROP_PADDING`) and whether the crop is mirrored left–right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropFlip {
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

impl CropFlip {
    /// The identity: the centre crop, not flipped.
    pub const NONE: CropFlip = CropFlip {
        dy: CROP_PADDING,
        dx: CROP_PADDING,
        flip: false,
    };

    /// Draws a crop offset uniformly from the 9×9 positions and a fair coin for the flip.
    pub fn sample(rng: &mut StdRng) -> CropFlip {
        CropFlip {
            dy: rng.gen_range(0..=2 * CROP_PADDING),
            dx: rng.gen_range(0..=2 * CROP_PADDING),
            flip: rng.gen_bool(0.5),
        }
    }
}

/// Per-channel table of `(v/255 - mean[c]) / std[c]` for every byte value, so the hot loop is a lookup.
fn lut(norm: &Normalization) -> [[f32; 256]; 3] {
    let mut t = [[0f32; 256]; 3];
    for (c, row) in t.iter_mut().enumerate() {
        for (v, x) in row.iter_mut().enumerate() {
            *x = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    t
}

/// Writes one normalised, augmented image. The padding is zero in [0, 1] pixel units, i.e. it is
/// normalised like a black pixel (padding happens before `Normalize`, as in torchvision).
fn fill_image(src: &[u8], t: &[[f32; 256]; 3], aug: CropFlip, out: &mut [f32]) {
    let s = IMAGE_SIDE as isize;
    for c in 0..3 {
        let plane = &src[c * PLANE..(c + 1) * PLANE];
        let dst = &mut out[c * PLANE..(c + 1) * PLANE];
        let pad = t[c][0];
        for y in 0..IMAGE_SIDE {
            let sy = y as isize + aug.dy as isize - CROP_PADDING as isize;
            let row = &mut dst[y * IMAGE_SIDE..(y + 1) * IMAGE_SIDE];
            if !(0..s).contains(&sy) {
                row.fill(pad);
                continue;
            }
            let src_row = &plane[sy as usize * IMAGE_SIDE..(sy as usize + 1) * IMAGE_SIDE];
            for (x, o) in row.iter_mut().enumerate() {
                // Flipping the crop: output column x reads crop column 31 - x.
                let cx = if aug.flip { IMAGE_SIDE - 1 - x } else { x };
                let sx = cx as isize + aug.dx as isize - CROP_PADDING as isize;
                *o = if (0..s).contains(&sx) {
                    t[c][src_row[sx as usize] as usize]
                } else {
                    pad
                };
            }
        }
    }
}

/// Fills `out` (resized to `idx.len() * IMAGE_BYTES`) with the normalised f32 NCHW images of
/// `ds[idx[j]]` and returns their labels. When `augment` is given, each image gets a random crop of its
/// 4-pixel zero-padded version and a horizontal flip with probability ½ (paper's training transform:
/// `RandomHorizontalFlip`, `RandomCrop(32, padding=4)`, `Normalize`). One seed per image is drawn from
/// `augment` in order, so the batch is the same for the same generator state whatever the thread count.
/// Panics when an index is out of range (indices come from the partitioner, not from the user).
pub fn make_batch(
    ds: &Dataset,
    idx: &[usize],
    norm: &Normalization,
    augment: Option<&mut StdRng>,
    out: &mut Vec<f32>,
) -> Vec<usize> {
    let t = lut(norm);
    out.clear();
    out.resize(idx.len() * IMAGE_BYTES, 0.0);
    let seeds: Option<Vec<u64>> = augment.map(|rng| idx.iter().map(|_| rng.gen()).collect());
    out.par_chunks_mut(IMAGE_BYTES)
        .enumerate()
        .for_each(|(j, o)| {
            let aug = match &seeds {
                Some(s) => CropFlip::sample(&mut StdRng::seed_from_u64(s[j])),
                None => CropFlip::NONE,
            };
            fill_image(ds.image(idx[j]), &t, aug, o);
        });
    idx.iter().map(|&i| ds.labels[i] as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(n: usize) -> Dataset {
        let mut s = 12345u64;
        let images = (0..n * IMAGE_BYTES)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect();
        Dataset {
            images,
            labels: (0..n as u16).map(|i| i % 3).collect(),
            num_classes: 3,
        }
    }

    /// Independent f64 reference: pad to 40×40 with zeros in [0,1] units, crop at (dy,dx), flip, normalise.
    fn reference(img: &[u8], norm: &Normalization, dy: usize, dx: usize, flip: bool) -> Vec<f64> {
        let p = IMAGE_SIDE + 2 * CROP_PADDING;
        let mut out = vec![0f64; IMAGE_BYTES];
        for c in 0..3 {
            let mut padded = vec![0f64; p * p];
            for y in 0..IMAGE_SIDE {
                for x in 0..IMAGE_SIDE {
                    padded[(y + 4) * p + x + 4] =
                        img[c * PLANE + y * IMAGE_SIDE + x] as f64 / 255.0;
                }
            }
            for y in 0..IMAGE_SIDE {
                for x in 0..IMAGE_SIDE {
                    let v = padded[(y + dy) * p + x + dx];
                    let ox = if flip { IMAGE_SIDE - 1 - x } else { x };
                    out[c * PLANE + y * IMAGE_SIDE + ox] =
                        (v - norm.mean[c] as f64) / norm.std[c] as f64;
                }
            }
        }
        out
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.iter()
            .zip(b)
            .all(|(&x, &y)| (x as f64 - y).abs() <= 1e-5 + 1e-6 * y.abs())
    }

    #[test]
    fn normalisation_matches_hand_computation() {
        let mut d = ds(2);
        // Pixel (c=1, y=3, x=5) of image 1 set to 200: (200/255 - 0.456)/0.224 = 1.4656862745...
        d.images[IMAGE_BYTES + PLANE + 3 * 32 + 5] = 200;
        let norm = Normalization::CIFAR10;
        let mut out = Vec::new();
        let labels = make_batch(&d, &[1, 0], &norm, None, &mut out);
        assert_eq!(labels, vec![1, 0]);
        assert_eq!(out.len(), 2 * IMAGE_BYTES);
        let want = (200.0 / 255.0 - 0.456) / 0.224;
        assert!(
            (out[PLANE + 3 * 32 + 5] as f64 - want).abs() < 1e-6,
            "{}",
            out[PLANE + 3 * 32 + 5]
        );
        assert!((want - 1.465_686_274_509_804).abs() < 1e-12);
        assert!(close(
            &out[..IMAGE_BYTES],
            &reference(d.image(1), &norm, 4, 4, false)
        ));
        assert!(close(
            &out[IMAGE_BYTES..],
            &reference(d.image(0), &norm, 4, 4, false)
        ));
    }

    #[test]
    fn augmentation_is_some_crop_flip_of_padded_image_and_deterministic() {
        let d = ds(24);
        let norm = Normalization::CIFAR100;
        let idx: Vec<usize> = (0..24).rev().collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        make_batch(&d, &idx, &norm, Some(&mut StdRng::seed_from_u64(7)), &mut a);
        make_batch(&d, &idx, &norm, Some(&mut StdRng::seed_from_u64(7)), &mut b);
        assert_eq!(a, b, "same seed must give the same batch");
        let mut c = Vec::new();
        make_batch(&d, &idx, &norm, Some(&mut StdRng::seed_from_u64(8)), &mut c);
        assert_ne!(a, c, "another seed should give other crops");
        let (mut flips, mut shifted) = (0, 0);
        for (j, &i) in idx.iter().enumerate() {
            let got = &a[j * IMAGE_BYTES..(j + 1) * IMAGE_BYTES];
            let mut found = None;
            'search: for dy in 0..=8 {
                for dx in 0..=8 {
                    for flip in [false, true] {
                        if close(got, &reference(d.image(i), &norm, dy, dx, flip)) {
                            found = Some((dy, dx, flip));
                            break 'search;
                        }
                    }
                }
            }
            let (dy, dx, flip) =
                found.unwrap_or_else(|| panic!("image {j} is no crop/flip of its source"));
            flips += flip as usize;
            shifted += ((dy, dx) != (4, 4)) as usize;
        }
        // 24 fair coins and 24 draws of 81 offsets: all-equal outcomes are vanishingly unlikely.
        assert!(flips > 0 && flips < 24, "flips {flips}");
        assert!(shifted > 12, "shifted {shifted}");
    }
}
