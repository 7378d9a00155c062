//! Training data: the CIFAR-10/100 binary readers, the Fashion-MNIST IDX reader, the synthetic
//! learnable dataset (the embedded default when no data is available), train-time augmentation and
//! the partitioners that give each rank (device) its share of the training set (IID, label-shard
//! non-IID of paper §6, Dirichlet).
//!
//! Images are kept as uint8 CHW, exactly as the CIFAR binary stores them (Fashion-MNIST's 28×28 grey
//! images are padded to 32×32 and replicated into three planes on load, see [`fashion_mnist`]);
//! [`make_batch`] turns a list of indices into a normalised f32 NCHW batch, with the paper's
//! augmentation when asked.

pub mod augment;
pub mod cifar;
pub mod fashion_mnist;
pub mod partition;
pub mod synthetic;

use std::path::Path;

pub use augment::make_batch;
pub use cifar::{read_cifar10, read_cifar100, write_cifar10, write_cifar100};
pub use fashion_mnist::{
    read_fashion_mnist, write_fashion_mnist, write_idx_images, write_idx_labels,
};
pub use partition::{class_histogram, partition, Partition};
pub use synthetic::generate as generate_synthetic;

use crate::error::Result;

/// Height and width of every image (CIFAR's 32×32).
pub const IMAGE_SIDE: usize = 32;
/// Pixels of one image plane.
pub const PLANE: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Bytes (= values) of one image: three 32×32 colour planes.
pub const IMAGE_BYTES: usize = 3 * PLANE;

/// Which dataset to train on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Generated in memory from a seed; needs no files.
    Synthetic,
    /// CIFAR-10 binary distribution (10 classes).
    Cifar10,
    /// CIFAR-100 binary distribution (100 fine classes).
    Cifar100,
    /// Fashion-MNIST IDX files, plain or gzip (10 classes; 28×28 grey padded to 32×32×3).
    #[serde(rename = "fashion-mnist")]
    #[value(name = "fashion-mnist")]
    FashionMnist,
}

/// A labelled image set. Images are uint8 CHW (R plane, G plane, B plane, as the CIFAR binary stores
/// them), `IMAGE_BYTES` per image, back to back; every label is `< num_classes`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u16>,
    pub num_classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `IMAGE_BYTES` bytes of image `i` (CHW). Panics when `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }
}

/// Per-channel normalisation applied after scaling pixels to [0, 1]: `(x - mean[c]) / std[c]`
/// (torchvision `ToTensor` then `Normalize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The constants the paper's CIFAR-10 code uses (ImageNet's).
    pub const CIFAR10: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// The constants the paper's CIFAR-100 code uses.
    pub const CIFAR100: Normalization = Normalization {
        mean: [0.5071, 0.4865, 0.4409],
        std: [0.2673, 0.2564, 0.2762],
    };

    /// Per-channel mean and (population) standard deviation of a dataset's pixels in [0, 1].
    /// A channel with zero spread gets std 1 so that normalising never divides by zero.
    pub fn of(ds: &Dataset) -> Normalization {
        use rayon::prelude::*;
        let (sum, sq) = ds
            .images
            .par_chunks(IMAGE_BYTES)
            .map(|img| {
                let mut s = [0u64; 3];
                let mut q = [0u64; 3];
                for c in 0..3 {
                    for &v in &img[c * PLANE..(c + 1) * PLANE] {
                        s[c] += v as u64;
                        q[c] += (v as u64) * (v as u64);
                    }
                }
                (s, q)
            })
            .reduce(
                || ([0u64; 3], [0u64; 3]),
                |a, b| {
                    let mut r = a;
                    for c in 0..3 {
                        r.0[c] += b.0[c];
                        r.1[c] += b.1[c];
                    }
                    r
                },
            );
        let n = (ds.len() * PLANE).max(1) as f64;
        let mut norm = Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        for c in 0..3 {
            let mean = sum[c] as f64 / n / 255.0;
            let var = (sq[c] as f64 / n / (255.0 * 255.0) - mean * mean).max(0.0);
            norm.mean[c] = mean as f32;
            norm.std[c] = if var > 1e-12 { var.sqrt() as f32 } else { 1.0 };
        }
        norm
    }
}

/// A train set, a test set and the normalisation both are fed through.
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    pub norm: Normalization,
}

/// How to generate the synthetic dataset.
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    pub num_classes: usize,
    pub train_size: usize,
    pub test_size: usize,
    pub seed: u64,
}

/// Loads the chosen dataset. CIFAR is read from `data_dir` (an error when it is `None` or missing);
/// Fashion-MNIST from `data_dir`, or [`fashion_mnist::DEFAULT_DIR`] when it is `None`. The synthetic
/// set and Fashion-MNIST are normalised by their own train-set statistics; the synthetic set is
/// generated from `synthetic`.
pub fn load(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    synthetic: &SyntheticSpec,
) -> Result<Splits> {
    match kind {
        DatasetKind::Synthetic => {
            let (train, test) = synthetic::generate(synthetic)?;
            let norm = Normalization::of(&train);
            Ok(Splits { train, test, norm })
        }
        DatasetKind::Cifar10 => {
            let Some(dir) = data_dir else {
                crate::bail!(
                    Config,
                    "dataset cifar10 needs a data directory holding the CIFAR-10 binary distribution (data_batch_1..5.bin, test_batch.bin)"
                );
            };
            let (train, test) = cifar::read_cifar10(dir)?;
            Ok(Splits {
                train,
                test,
                norm: Normalization::CIFAR10,
            })
        }
        DatasetKind::Cifar100 => {
            let Some(dir) = data_dir else {
                crate::bail!(
                    Config,
                    "dataset cifar100 needs a data directory holding the CIFAR-100 binary distribution (train.bin, test.bin)"
                );
            };
            let (train, test) = cifar::read_cifar100(dir)?;
            Ok(Splits {
                train,
                test,
                norm: Normalization::CIFAR100,
            })
        }
        DatasetKind::FashionMnist => {
            load_fashion_mnist(data_dir, Path::new(fashion_mnist::DEFAULT_DIR))
        }
    }
}

/// Fashion-MNIST from `data_dir`, else from `default_dir` (where a missing folder is met with how to
/// install it), normalised by the training set's mean and std.
fn load_fashion_mnist(data_dir: Option<&Path>, default_dir: &Path) -> Result<Splits> {
    let dir = data_dir.unwrap_or(default_dir);
    if data_dir.is_none() && !dir.is_dir() {
        crate::bail!(
            Data,
            "{} not found: install Debian's dataset-fashion-mnist (or run scripts/setup.sh), or pass --data-dir with the Fashion-MNIST IDX files",
            dir.display()
        );
    }
    let (train, test) = fashion_mnist::read_fashion_mnist(dir)?;
    let norm = Normalization::of(&train);
    Ok(Splits { train, test, norm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_of_matches_f64_reference() {
        let images: Vec<u8> = (0..2 * IMAGE_BYTES)
            .map(|i| ((i * 37 + i / 7) % 256) as u8)
            .collect();
        let ds = Dataset {
            images,
            labels: vec![0, 1],
            num_classes: 2,
        };
        let norm = Normalization::of(&ds);
        for c in 0..3 {
            let vals: Vec<f64> = (0..2)
                .flat_map(|i| ds.image(i)[c * PLANE..(c + 1) * PLANE].to_vec())
                .map(|v| v as f64 / 255.0)
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / vals.len() as f64;
            assert!(
                (norm.mean[c] as f64 - m).abs() < 1e-6,
                "mean c{c}: {} vs {m}",
                norm.mean[c]
            );
            assert!(
                (norm.std[c] as f64 - v.sqrt()).abs() < 1e-6,
                "std c{c}: {} vs {}",
                norm.std[c],
                v.sqrt()
            );
        }
    }

    #[test]
    fn load_synthetic_and_cifar_without_dir() {
        let spec = SyntheticSpec {
            num_classes: 4,
            train_size: 40,
            test_size: 12,
            seed: 3,
        };
        let s = load(DatasetKind::Synthetic, None, &spec).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (40, 12));
        assert_eq!(s.norm, Normalization::of(&s.train));
        let e = load(DatasetKind::Cifar10, None, &spec)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("config:") && e.contains("data_batch_1"),
            "{e}"
        );
        let e = load(DatasetKind::Cifar100, None, &spec)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("train.bin"), "{e}");
    }

    #[test]
    fn fashion_mnist_default_folder_missing_says_how_to_install_it() {
        let e = load_fashion_mnist(None, Path::new("/nonexistent/fashion-mnist"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("data: /nonexistent/fashion-mnist not found")
                && e.contains("dataset-fashion-mnist")
                && e.contains("scripts/setup.sh")
                && e.contains("--data-dir"),
            "{e}"
        );
        // A folder passed explicitly is reported as missing, without the install hint.
        let e = load_fashion_mnist(
            Some(Path::new("/nonexistent/fm")),
            Path::new("/nonexistent/fashion-mnist"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("/nonexistent/fm not found") && !e.contains("setup.sh"),
            "{e}"
        );
    }

    #[test]
    fn dataset_kind_is_spelled_fashion_mnist() {
        use clap::ValueEnum;
        let v = DatasetKind::FashionMnist.to_possible_value().unwrap();
        assert_eq!(v.get_name(), "fashion-mnist");
        assert_eq!(
            serde_json::to_string(&DatasetKind::FashionMnist).unwrap(),
            "\"fashion-mnist\""
        );
        let k: DatasetKind = toml::from_str::<std::collections::BTreeMap<String, DatasetKind>>(
            "dataset = \"fashion-mnist\"",
        )
        .unwrap()["dataset"];
        assert_eq!(k, DatasetKind::FashionMnist);
    }
}
