//! The Fashion-MNIST IDX reader against small files written in the real format (plain and gzip):
//! the 28×28 → 32×32×3 conversion, the errors for every kind of bad file (each naming the file),
//! and the installed Debian package read through `data::load` with no `--data-dir`.

use std::path::{Path, PathBuf};

use scadles::config::RunConfig;
use scadles::data::{
    load, read_fashion_mnist, write_fashion_mnist, write_idx_images, write_idx_labels, DatasetKind,
    SyntheticSpec, IMAGE_BYTES,
};

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scadles-fmnist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec() -> SyntheticSpec {
    SyntheticSpec {
        num_classes: 10,
        train_size: 1,
        test_size: 1,
        seed: 0,
    }
}

/// Deterministic pseudo-random 28×28 images (pixels 1..=255, so a zero in the output can only be
/// padding) and labels 0..9.
fn make(n: usize, seed: u64) -> Split {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let pixels = (0..n * 784).map(|_| (next() % 255 + 1) as u8).collect();
    let labels = (0..n).map(|_| (next() % 10) as u8).collect();
    (pixels, labels)
}

/// 28×28 pixels back to back, and labels.
type Split = (Vec<u8>, Vec<u8>);

/// Writes a train set of 7 and a test set of 3; returns them.
fn write_set(dir: &Path, gz: bool) -> (Split, Split) {
    let train = make(7, 1);
    let test = make(3, 2);
    write_fashion_mnist(dir, (&train.0, &train.1), (&test.0, &test.1), gz).unwrap();
    (train, test)
}

/// Checks a converted image against the 28×28 source by plain index arithmetic: output plane c,
/// row y, column x holds source (y - 2, x - 2) when both are in 0..28, else 0.
fn assert_converted(out: &[u8], src: &[u8], what: &str) {
    assert_eq!(out.len(), 3 * 32 * 32);
    for c in 0..3 {
        for y in 0..32usize {
            for x in 0..32usize {
                let got = out[c * 1024 + y * 32 + x];
                let want = match (y.checked_sub(2), x.checked_sub(2)) {
                    (Some(sy), Some(sx)) if sy < 28 && sx < 28 => src[sy * 28 + sx],
                    _ => 0,
                };
                assert_eq!(got, want, "{what}: plane {c} row {y} col {x}");
            }
        }
    }
}

fn err_text<T>(r: scadles::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// The error is one line that starts by naming `file`.
fn assert_names(e: &str, file: &Path, needle: &str) {
    let prefix = format!("data: {}:", file.display());
    assert!(
        e.starts_with(&prefix) && e.contains(needle) && !e.contains('\n'),
        "expected '{prefix} …{needle}…', got: {e}"
    );
}

#[test]
fn round_trip_plain_and_gzip_pads_and_replicates() {
    for gz in [false, true] {
        let dir = temp_dir(if gz { "rt-gz" } else { "rt-plain" });
        let (train, test) = write_set(&dir, gz);
        let suffix = if gz { ".gz" } else { "" };
        assert!(dir.join(format!("{TRAIN_IMAGES}{suffix}")).is_file());
        let (rtrain, rtest) = read_fashion_mnist(&dir).unwrap();
        for (got, (pixels, labels), name) in [(&rtrain, &train, "train"), (&rtest, &test, "test")] {
            assert_eq!(got.len(), labels.len(), "{name} gz={gz}");
            assert_eq!(got.num_classes, 10);
            assert_eq!(got.images.len(), labels.len() * IMAGE_BYTES);
            let want: Vec<u16> = labels.iter().map(|&l| l as u16).collect();
            assert_eq!(got.labels, want);
            for i in 0..got.len() {
                assert_converted(
                    got.image(i),
                    &pixels[i * 784..(i + 1) * 784],
                    &format!("{name} image {i} gz={gz}"),
                );
            }
        }
        // Through `load` with --data-dir: normalised by the train set's own statistics, equal
        // for the three (replicated) planes.
        let s = load(DatasetKind::FashionMnist, Some(&dir), &spec()).unwrap();
        assert_eq!(s.train.images, rtrain.images);
        let n = (7 * 1024) as f64;
        let mean = train.0.iter().map(|&v| v as f64).sum::<f64>() / n / 255.0;
        for c in 0..3 {
            assert!(
                (s.norm.mean[c] as f64 - mean).abs() < 1e-6,
                "{:?} vs {mean}",
                s.norm
            );
            assert_eq!(s.norm.std[c], s.norm.std[0]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn plain_file_is_preferred_to_its_gz_and_the_two_may_mix() {
    let dir = temp_dir("prefer");
    write_set(&dir, true);
    // A plain train image file next to the .gz, with other content: the plain one is read.
    let other = make(7, 9);
    write_idx_images(&dir.join(TRAIN_IMAGES), &other.0, false).unwrap();
    let (rtrain, _) = read_fashion_mnist(&dir).unwrap();
    assert_converted(rtrain.image(6), &other.0[6 * 784..], "plain wins");
    // Remove the .gz labels and write them plain: one split mixes plain and gzip files.
    let test = make(3, 2);
    std::fs::remove_file(dir.join(format!("{TEST_LABELS}.gz"))).unwrap();
    write_idx_labels(&dir.join(TEST_LABELS), &test.1, false).unwrap();
    let (_, rtest) = read_fashion_mnist(&dir).unwrap();
    assert_eq!(
        rtest.labels,
        test.1.iter().map(|&l| l as u16).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_files_and_folders_are_named() {
    let dir = temp_dir("missing");
    write_set(&dir, false);
    std::fs::remove_file(dir.join(TEST_LABELS)).unwrap();
    let e = err_text(read_fashion_mnist(&dir));
    assert!(
        e.starts_with(&format!(
            "data: {} not found",
            dir.join(TEST_LABELS).display()
        )) && e.contains(".gz"),
        "{e}"
    );
    let e = err_text(load(
        DatasetKind::FashionMnist,
        Some(Path::new("/nonexistent/fmnist")),
        &spec(),
    ));
    assert!(e.contains("/nonexistent/fmnist not found"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes the set (plain or gzip), lets `spoil` change the raw (uncompressed) bytes of `victim`,
/// rewrites it the same way, and returns the error of reading the folder and the victim's path.
fn spoiled(tag: &str, gz: bool, victim: &str, spoil: impl Fn(&mut Vec<u8>)) -> (String, PathBuf) {
    let dir = temp_dir(tag);
    write_set(&dir, false);
    let plain = dir.join(victim);
    let mut bytes = std::fs::read(&plain).unwrap();
    spoil(&mut bytes);
    std::fs::write(&plain, &bytes).unwrap();
    let path = if gz {
        // Re-encode all four files as gzip so the victim is read through the decoder.
        for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
            let p = dir.join(name);
            let raw = std::fs::read(&p).unwrap();
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &raw).unwrap();
            std::fs::write(dir.join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
            std::fs::remove_file(&p).unwrap();
        }
        dir.join(format!("{victim}.gz"))
    } else {
        plain
    };
    let e = err_text(read_fashion_mnist(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    (e, path)
}

#[test]
fn bad_magic_is_rejected_by_name() {
    for gz in [false, true] {
        // The label file's magic in the image file.
        let (e, p) = spoiled(&format!("magic-{gz}"), gz, TRAIN_IMAGES, |b| b[3] = 0x01);
        assert_names(&e, &p, "IDX magic 0x00000801, expected 0x00000803");
        let (e, p) = spoiled(&format!("lmagic-{gz}"), gz, TEST_LABELS, |b| b[2] = 0x09);
        assert_names(&e, &p, "IDX magic 0x00000901, expected 0x00000801");
    }
}

#[test]
fn wrong_dimensions_are_rejected_by_name() {
    for gz in [false, true] {
        // 2 dimensions instead of 3.
        let (e, p) = spoiled(&format!("ndims-{gz}"), gz, TEST_IMAGES, |b| b[3] = 0x02);
        assert_names(&e, &p, "2 dimensions");
        // 3 × 28×28 images declared as 3 × 56×14: same length, wrong shape.
        let (e, p) = spoiled(&format!("shape-{gz}"), gz, TEST_IMAGES, |b| {
            b[8..12].copy_from_slice(&56u32.to_be_bytes());
            b[12..16].copy_from_slice(&14u32.to_be_bytes());
        });
        assert_names(&e, &p, "images are 56×14, expected 28×28");
    }
}

#[test]
fn truncated_files_are_rejected_by_name() {
    for gz in [false, true] {
        let (e, p) = spoiled(&format!("trunc-{gz}"), gz, TRAIN_IMAGES, |b| {
            b.truncate(b.len() - 5)
        });
        assert_names(&e, &p, "truncated");
        assert!(e.contains("7 items"), "{e}");
        let (e, p) = spoiled(&format!("ltrunc-{gz}"), gz, TRAIN_LABELS, |b| {
            b.truncate(10)
        });
        assert_names(&e, &p, "truncated");
        // Shorter than the header itself.
        let (e, p) = spoiled(&format!("head-{gz}"), gz, TEST_IMAGES, |b| b.truncate(9));
        assert_names(&e, &p, "header");
    }
}

#[test]
fn trailing_bytes_are_rejected_by_name() {
    for gz in [false, true] {
        let (e, p) = spoiled(&format!("trail-{gz}"), gz, TEST_IMAGES, |b| {
            b.extend_from_slice(&[0; 3])
        });
        assert_names(&e, &p, "3 trailing bytes after the 3 items");
        let (e, p) = spoiled(&format!("ltrail-{gz}"), gz, TEST_LABELS, |b| b.push(1));
        assert_names(&e, &p, "1 trailing bytes");
    }
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = temp_dir("count");
    write_set(&dir, false);
    let (_, labels) = make(6, 1);
    write_idx_labels(&dir.join(TRAIN_LABELS), &labels, false).unwrap();
    let e = err_text(read_fashion_mnist(&dir));
    let lp = dir.join(TRAIN_LABELS);
    assert_names(&e, &dir.join(TRAIN_IMAGES), "7 images but");
    assert!(
        e.contains(&format!("{} holds 6 labels", lp.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn labels_out_of_range_are_rejected_by_name() {
    for gz in [false, true] {
        let (e, p) = spoiled(&format!("label-{gz}"), gz, TEST_LABELS, |b| b[8 + 2] = 10);
        assert_names(&e, &p, "item 2 has label 10, expected 0..9");
    }
}

#[test]
fn corrupt_gzip_is_rejected_by_name() {
    let dir = temp_dir("gzip");
    write_set(&dir, true);
    let p = dir.join(format!("{TRAIN_IMAGES}.gz"));
    let good = std::fs::read(&p).unwrap();
    // A flipped byte in the middle of the deflate data (or its CRC catches it), a stream cut
    // short, a bad CRC trailer, and a file that is not gzip at all.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x5a;
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let cases: [(&str, Vec<u8>); 4] = [
        ("flipped", flipped),
        ("cut", good[..good.len() / 2].to_vec()),
        ("crc", bad_crc),
        ("not gzip", b"this is not a gzip file at all".to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let e = err_text(read_fashion_mnist(&dir));
        assert!(
            e.starts_with(&format!("data: {}: corrupt gzip stream", p.display()))
                && !e.contains('\n'),
            "{what}: {e}"
        );
    }
    std::fs::write(&p, &good).unwrap();
    read_fashion_mnist(&dir).expect("the restored file reads");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fashion_mnist_needs_no_data_dir_but_cifar_does() {
    let c = RunConfig {
        dataset: DatasetKind::FashionMnist,
        ..RunConfig::default()
    };
    c.validate(4).expect("fashion-mnist has a default folder");
    let c = RunConfig {
        dataset: DatasetKind::Cifar10,
        ..RunConfig::default()
    };
    let e = c.validate(4).unwrap_err().to_string();
    assert!(e.contains("--data-dir"), "{e}");
    let c: RunConfig = toml::from_str("dataset = \"fashion-mnist\"").unwrap();
    assert_eq!(c.dataset, DatasetKind::FashionMnist);
}

/// The Debian package `dataset-fashion-mnist` (installed by scripts/setup.sh) read with no
/// `--data-dir`: the published sizes and the balanced classes.
#[test]
fn the_installed_package_is_found_and_complete() {
    let default = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(
        default.is_dir(),
        "{} is missing: run scripts/setup.sh (it installs Debian's dataset-fashion-mnist)",
        default.display()
    );
    let t0 = std::time::Instant::now();
    let s = load(DatasetKind::FashionMnist, None, &spec())
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh to install dataset-fashion-mnist)"));
    eprintln!(
        "Fashion-MNIST loaded (decode, conversion, normalisation) in {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!((s.train.num_classes, s.test.num_classes), (10, 10));
    assert_eq!(s.train.images.len(), 60_000 * IMAGE_BYTES);
    let count = |labels: &[u16]| {
        let mut h = [0usize; 10];
        labels.iter().for_each(|&l| h[l as usize] += 1);
        h
    };
    assert_eq!(count(&s.train.labels), [6_000; 10]);
    assert_eq!(count(&s.test.labels), [1_000; 10]);
    // The published training-set statistics of the 28×28 images are mean 0.2860, std 0.3530;
    // the 2-pixel zero border scales them to mean·784/1024 and
    // sqrt((std² + mean²)·784/1024 - mean'²).
    let f = 784.0 / 1024.0;
    let mean = 0.2860 * f;
    let std = ((0.3530f64.powi(2) + 0.2860f64.powi(2)) * f - mean * mean).sqrt();
    for c in 0..3 {
        assert!(
            (s.norm.mean[c] as f64 - mean).abs() < 5e-4,
            "{:?} vs mean {mean}",
            s.norm
        );
        assert!(
            (s.norm.std[c] as f64 - std).abs() < 5e-4,
            "{:?} vs std {std}",
            s.norm
        );
    }
    // Every border pixel of every plane is background.
    for i in (0..60_000).step_by(997) {
        let img = s.train.image(i);
        for c in 0..3 {
            for y in 0..32 {
                for x in [0, 1, 30, 31] {
                    assert_eq!(img[c * 1024 + y * 32 + x], 0);
                    assert_eq!(img[c * 1024 + x * 32 + y], 0);
                }
            }
        }
        assert_eq!(img[..1024], img[1024..2048]);
        assert_eq!(img[..1024], img[2048..]);
    }
}
