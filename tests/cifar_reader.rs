//! The CIFAR binary readers against files written in the real record format: round trips, the
//! archive subfolder layout, and the errors for truncated files, bad labels and missing data.

use std::path::{Path, PathBuf};

use scadles::data::{
    load, read_cifar10, read_cifar100, write_cifar10, write_cifar100, Dataset, DatasetKind,
    Normalization, SyntheticSpec, IMAGE_BYTES,
};

/// A fresh directory under the system temp dir, unique per test and process.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scadles-cifar-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic pseudo-random images and labels (no two images alike).
fn make(n: usize, classes: usize, seed: u64) -> Dataset {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let images = (0..n * IMAGE_BYTES).map(|_| (next() >> 24) as u8).collect();
    let labels = (0..n).map(|_| (next() % classes as u64) as u16).collect();
    Dataset {
        images,
        labels,
        num_classes: classes,
    }
}

fn concat(parts: &[Dataset]) -> Dataset {
    Dataset {
        images: parts
            .iter()
            .flat_map(|d| d.images.iter().copied())
            .collect(),
        labels: parts
            .iter()
            .flat_map(|d| d.labels.iter().copied())
            .collect(),
        num_classes: parts[0].num_classes,
    }
}

/// Writes CIFAR-10 batches of sizes 3, 1, 4, 2, 5 and a test batch of 6 into `dir`; returns (train, test).
fn write_cifar10_set(dir: &Path) -> (Dataset, Dataset) {
    let sizes = [3, 1, 4, 2, 5];
    let batches: Vec<Dataset> = sizes
        .iter()
        .enumerate()
        .map(|(b, &n)| make(n, 10, b as u64 + 1))
        .collect();
    for (b, d) in batches.iter().enumerate() {
        write_cifar10(&dir.join(format!("data_batch_{}.bin", b + 1)), d).unwrap();
    }
    let test = make(6, 10, 99);
    write_cifar10(&dir.join("test_batch.bin"), &test).unwrap();
    (concat(&batches), test)
}

fn err_text<T>(r: scadles::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn cifar10_round_trip_in_batch_order() {
    let dir = temp_dir("c10");
    let (train, test) = write_cifar10_set(&dir);
    let (rtrain, rtest) = read_cifar10(&dir).unwrap();
    assert_eq!(rtrain.len(), 15);
    assert_eq!(rtrain.images, train.images);
    assert_eq!(rtrain.labels, train.labels);
    assert_eq!(rtrain.num_classes, 10);
    assert_eq!(rtest.images, test.images);
    assert_eq!(rtest.labels, test.labels);
    // Through `load`, with the paper's CIFAR-10 normalisation.
    let spec = SyntheticSpec {
        num_classes: 10,
        train_size: 1,
        test_size: 1,
        seed: 0,
    };
    let s = load(DatasetKind::Cifar10, Some(&dir), &spec).unwrap();
    assert_eq!(s.train.labels, train.labels);
    assert_eq!(
        s.norm,
        Normalization {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225]
        }
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cifar10_inside_archive_subfolder() {
    let dir = temp_dir("c10sub");
    let sub = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    let (train, test) = write_cifar10_set(&sub);
    let (rtrain, rtest) = read_cifar10(&dir).unwrap();
    assert_eq!((rtrain.images, rtrain.labels), (train.images, train.labels));
    assert_eq!((rtest.images, rtest.labels), (test.images, test.labels));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cifar100_round_trip_fine_labels_and_subfolder() {
    let dir = temp_dir("c100");
    let train = make(9, 100, 5);
    let test = make(4, 100, 6);
    write_cifar100(&dir.join("train.bin"), &train).unwrap();
    write_cifar100(&dir.join("test.bin"), &test).unwrap();
    let (rtrain, rtest) = read_cifar100(&dir).unwrap();
    assert_eq!(
        (&rtrain.images, &rtrain.labels, rtrain.num_classes),
        (&train.images, &train.labels, 100)
    );
    assert_eq!((&rtest.images, &rtest.labels), (&test.images, &test.labels));
    let spec = SyntheticSpec {
        num_classes: 10,
        train_size: 1,
        test_size: 1,
        seed: 0,
    };
    let s = load(DatasetKind::Cifar100, Some(&dir), &spec).unwrap();
    assert_eq!(
        s.norm,
        Normalization {
            mean: [0.5071, 0.4865, 0.4409],
            std: [0.2673, 0.2564, 0.2762]
        }
    );

    let dir2 = temp_dir("c100sub");
    let sub = dir2.join("cifar-100-binary");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::rename(dir.join("train.bin"), sub.join("train.bin")).unwrap();
    std::fs::rename(dir.join("test.bin"), sub.join("test.bin")).unwrap();
    let (rtrain, _) = read_cifar100(&dir2).unwrap();
    assert_eq!(rtrain.labels, train.labels);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn truncated_files_are_rejected_by_name() {
    let dir = temp_dir("trunc");
    write_cifar10_set(&dir);
    let victim = dir.join("data_batch_3.bin");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_text(read_cifar10(&dir));
    assert_eq!(
        e,
        format!(
            "data: {}: size {} is not a multiple of the 3073-byte CIFAR-10 record (truncated or corrupt?)",
            victim.display(),
            4 * 3073 - 100
        )
    );
    std::fs::write(&victim, b"").unwrap();
    assert!(err_text(read_cifar10(&dir)).contains("size 0 is not a multiple"));

    let d100 = temp_dir("trunc100");
    write_cifar100(&d100.join("train.bin"), &make(3, 100, 1)).unwrap();
    write_cifar100(&d100.join("test.bin"), &make(3, 100, 2)).unwrap();
    let t = d100.join("test.bin");
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_text(read_cifar100(&d100));
    assert!(
        e.contains(&t.display().to_string())
            && e.contains("3074-byte CIFAR-100")
            && e.contains("truncated"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&d100).unwrap();
}

#[test]
fn out_of_range_labels_name_the_record() {
    let dir = temp_dir("badlabel");
    write_cifar10_set(&dir);
    let victim = dir.join("test_batch.bin");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[2 * 3073] = 10;
    std::fs::write(&victim, &bytes).unwrap();
    let e = err_text(read_cifar10(&dir));
    assert_eq!(
        e,
        format!(
            "data: {}: record 2 has label 10, expected 0..9",
            victim.display()
        )
    );

    let d100 = temp_dir("badlabel100");
    write_cifar100(&d100.join("train.bin"), &make(5, 100, 1)).unwrap();
    write_cifar100(&d100.join("test.bin"), &make(2, 100, 2)).unwrap();
    let t = d100.join("train.bin");
    let mut bytes = std::fs::read(&t).unwrap();
    bytes[3 * 3074 + 1] = 100;
    std::fs::write(&t, &bytes).unwrap();
    let e = err_text(read_cifar100(&d100));
    assert_eq!(
        e,
        format!(
            "data: {}: record 3 has fine label 100, expected 0..99",
            t.display()
        )
    );
    bytes[3 * 3074 + 1] = 7;
    bytes[4 * 3074] = 20;
    std::fs::write(&t, &bytes).unwrap();
    let e = err_text(read_cifar100(&d100));
    assert_eq!(
        e,
        format!(
            "data: {}: record 4 has coarse label 20, expected 0..19",
            t.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&d100).unwrap();
}

#[test]
fn missing_directory_or_file_is_an_error() {
    let nowhere =
        std::env::temp_dir().join(format!("scadles-cifar-missing-{}", std::process::id()));
    let e = err_text(read_cifar10(&nowhere));
    assert_eq!(
        e,
        format!(
            "data: {} not found (expected the CIFAR-10 binary distribution: data_batch_1..5.bin, test_batch.bin)",
            nowhere.display()
        )
    );
    assert!(err_text(read_cifar100(&nowhere)).contains("train.bin, test.bin"));
    let spec = SyntheticSpec {
        num_classes: 10,
        train_size: 1,
        test_size: 1,
        seed: 0,
    };
    assert!(load(DatasetKind::Cifar10, Some(&nowhere), &spec).is_err());

    // A directory with some batches but not all names the first missing file.
    let dir = temp_dir("partial");
    write_cifar10_set(&dir);
    std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    let e = err_text(read_cifar10(&dir));
    assert!(
        e.starts_with(&format!(
            "data: {} not found",
            dir.join("data_batch_4.bin").display()
        )),
        "{e}"
    );
    std::fs::remove_file(dir.join("data_batch_1.bin")).unwrap();
    let e = err_text(read_cifar10(&dir));
    assert!(e.contains("data_batch_1.bin not found"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
