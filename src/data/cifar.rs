//! Readers and writers for the CIFAR binary distributions.
//!
//! CIFAR-10: `data_batch_1.bin`..`data_batch_5.bin` and `test_batch.bin`; each record is one label byte
//! followed by 3072 pixel bytes (R, G, B planes of 32×32, row-major). CIFAR-100: `train.bin` and
//! `test.bin`; each record is a coarse label byte, a fine label byte, then the same 3072 pixels.
//! The files may sit directly in the data directory or in the folder the archive unpacks to
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`).

use std::path::{Path, PathBuf};

use super::{Dataset, IMAGE_BYTES};
use crate::error::{Error, Result};

const CIFAR10_RECORD: usize = 1 + IMAGE_BYTES;
const CIFAR100_RECORD: usize = 2 + IMAGE_BYTES;
const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const CIFAR10_TEST: &str = "test_batch.bin";
const CIFAR10_SUBDIR: &str = "cifar-10-batches-bin";
const CIFAR10_EXPECTED: &str =
    "expected the CIFAR-10 binary distribution: data_batch_1..5.bin, test_batch.bin";
const CIFAR100_TRAIN: &str = "train.bin";
const CIFAR100_TEST: &str = "test.bin";
const CIFAR100_SUBDIR: &str = "cifar-100-binary";
const CIFAR100_EXPECTED: &str = "expected the CIFAR-100 binary distribution: train.bin, test.bin";
/// CIFAR-100 has 20 superclasses; the readers validate the coarse byte but train on the fine label.
const CIFAR100_COARSE: usize = 20;

/// Picks `dir` or its archive subfolder, whichever holds `first`; errors name what is missing.
fn resolve_dir(dir: &Path, subdir: &str, first: &str, expected: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Data(format!(
            "{} not found ({expected})",
            dir.display()
        )));
    }
    if dir.join(first).is_file() {
        return Ok(dir.to_path_buf());
    }
    let sub = dir.join(subdir);
    if sub.join(first).is_file() {
        return Ok(sub);
    }
    Err(Error::Data(format!(
        "{} not found ({expected})",
        dir.join(first).display()
    )))
}

/// Reads a whole file after checking that it exists and holds a positive whole number of records.
fn read_records(path: &Path, record: usize, name: &str, expected: &str) -> Result<Vec<u8>> {
    if !path.is_file() {
        return Err(Error::Data(format!(
            "{} not found ({expected})",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(Error::Data(format!(
            "{}: size {} is not a multiple of the {record}-byte {name} record (truncated or corrupt?)",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Appends the records of one CIFAR-10 file to `ds`.
fn append_cifar10(path: &Path, ds: &mut Dataset) -> Result<()> {
    let bytes = read_records(path, CIFAR10_RECORD, "CIFAR-10", CIFAR10_EXPECTED)?;
    let n = bytes.len() / CIFAR10_RECORD;
    ds.images.reserve(n * IMAGE_BYTES);
    ds.labels.reserve(n);
    for (r, rec) in bytes.chunks_exact(CIFAR10_RECORD).enumerate() {
        let label = rec[0];
        if label as usize >= 10 {
            return Err(Error::Data(format!(
                "{}: record {r} has label {label}, expected 0..9",
                path.display()
            )));
        }
        ds.labels.push(label as u16);
        ds.images.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Reads one CIFAR-100 file (fine labels).
fn read_cifar100_file(path: &Path) -> Result<Dataset> {
    let bytes = read_records(path, CIFAR100_RECORD, "CIFAR-100", CIFAR100_EXPECTED)?;
    let n = bytes.len() / CIFAR100_RECORD;
    let mut ds = Dataset {
        images: Vec::with_capacity(n * IMAGE_BYTES),
        labels: Vec::with_capacity(n),
        num_classes: 100,
    };
    for (r, rec) in bytes.chunks_exact(CIFAR100_RECORD).enumerate() {
        let (coarse, fine) = (rec[0], rec[1]);
        if coarse as usize >= CIFAR100_COARSE {
            return Err(Error::Data(format!(
                "{}: record {r} has coarse label {coarse}, expected 0..19",
                path.display()
            )));
        }
        if fine as usize >= 100 {
            return Err(Error::Data(format!(
                "{}: record {r} has fine label {fine}, expected 0..99",
                path.display()
            )));
        }
        ds.labels.push(fine as u16);
        ds.images.extend_from_slice(&rec[2..]);
    }
    Ok(ds)
}

/// Reads the CIFAR-10 binary distribution from `dir` (or `dir/cifar-10-batches-bin/`):
/// the five training batches in order, then the test batch. Returns (train, test).
pub fn read_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    let base = resolve_dir(dir, CIFAR10_SUBDIR, CIFAR10_TRAIN[0], CIFAR10_EXPECTED)?;
    let mut train = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        num_classes: 10,
    };
    for name in CIFAR10_TRAIN {
        append_cifar10(&base.join(name), &mut train)?;
    }
    let mut test = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        num_classes: 10,
    };
    append_cifar10(&base.join(CIFAR10_TEST), &mut test)?;
    Ok((train, test))
}

/// Reads the CIFAR-100 binary distribution from `dir` (or `dir/cifar-100-binary/`), keeping the fine
/// (100-class) labels. Returns (train, test).
pub fn read_cifar100(dir: &Path) -> Result<(Dataset, Dataset)> {
    let base = resolve_dir(dir, CIFAR100_SUBDIR, CIFAR100_TRAIN, CIFAR100_EXPECTED)?;
    let train = read_cifar100_file(&base.join(CIFAR100_TRAIN))?;
    let test = read_cifar100_file(&base.join(CIFAR100_TEST))?;
    Ok((train, test))
}

fn check_writable(ds: &Dataset, max_label: usize, path: &Path) -> Result<()> {
    if ds.images.len() != ds.len() * IMAGE_BYTES {
        return Err(Error::Data(format!(
            "{}: dataset holds {} image bytes for {} labels, expected {} per image",
            path.display(),
            ds.images.len(),
            ds.len(),
            IMAGE_BYTES
        )));
    }
    if let Some((i, &l)) = ds
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= max_label)
    {
        return Err(Error::Data(format!(
            "{}: image {i} has label {l}, expected 0..{}",
            path.display(),
            max_label - 1
        )));
    }
    Ok(())
}

/// Writes `ds` as one CIFAR-10 binary file (label byte + 3072 pixels per record).
pub fn write_cifar10(path: &Path, ds: &Dataset) -> Result<()> {
    check_writable(ds, 10, path)?;
    let mut bytes = Vec::with_capacity(ds.len() * CIFAR10_RECORD);
    for i in 0..ds.len() {
        bytes.push(ds.labels[i] as u8);
        bytes.extend_from_slice(ds.image(i));
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Writes `ds` as one CIFAR-100 binary file (coarse byte, fine byte, 3072 pixels per record).
/// The dataset carries only fine labels; the coarse byte is written as `fine / 5`, which is in the
/// valid 0..19 range (the readers check it but train on the fine label).
pub fn write_cifar100(path: &Path, ds: &Dataset) -> Result<()> {
    check_writable(ds, 100, path)?;
    let mut bytes = Vec::with_capacity(ds.len() * CIFAR100_RECORD);
    for i in 0..ds.len() {
        let fine = ds.labels[i] as u8;
        bytes.push(fine / 5);
        bytes.push(fine);
        bytes.extend_from_slice(ds.image(i));
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "scadles-cifar-unit-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tiny(n: usize, classes: usize, salt: u8) -> Dataset {
        let images = (0..n * IMAGE_BYTES)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect();
        let labels = (0..n)
            .map(|i| ((i * 7 + salt as usize) % classes) as u16)
            .collect();
        Dataset {
            images,
            labels,
            num_classes: classes,
        }
    }

    #[test]
    fn record_layout_is_label_then_chw_pixels() {
        let d = temp_dir("layout");
        let ds = tiny(2, 10, 1);
        let p = d.join("x.bin");
        write_cifar10(&p, &ds).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 2 * 3073);
        assert_eq!(bytes[3073], ds.labels[1] as u8);
        assert_eq!(&bytes[3074..3074 + 3072], ds.image(1));
        let p = d.join("y.bin");
        write_cifar100(&p, &tiny(1, 100, 99)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 3074);
        assert!(bytes[0] < 20 && bytes[1] < 100 && bytes[0] == bytes[1] / 5);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writer_rejects_labels_out_of_range() {
        let d = temp_dir("badwrite");
        let ds = tiny(3, 12, 3);
        assert_eq!(ds.labels, vec![3, 10, 5]);
        let e = write_cifar10(&d.join("z.bin"), &ds)
            .err()
            .unwrap()
            .to_string();
        assert!(e.ends_with("image 1 has label 10, expected 0..9"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
