//! Table III — the networks evaluated: our models' parameter counts ([`crate::models::param_count`],
//! torchvision shape with the 1000-way head the reference code uses), the devices the paper-scale
//! runs launch, and the labels per device that our partitioner gives them.
use super::paper::{SEED, TABLE3, TABLE3_HEAD};
use super::{thousands, vs, vs_text, write_csv, Cmp, Ctx, Doc, Table};
use crate::data::partition::{class_histogram, partition, Partition};
use crate::error::Result;
use crate::models::{param_count, Shape};
use std::path::PathBuf;

/// Training-set size of CIFAR-10 and CIFAR-100.
const CIFAR_TRAIN: usize = 50_000;

/// (fewest, most) distinct labels on one device when a CIFAR-sized training set of `classes`
/// balanced classes is split over `devices` by `scheme` (seed 1234).
pub fn labels_per_device(
    classes: usize,
    devices: usize,
    scheme: &Partition,
) -> Result<(usize, usize)> {
    let labels: Vec<u16> = (0..CIFAR_TRAIN).map(|i| (i % classes) as u16).collect();
    let parts = partition(&labels, classes, devices, scheme, SEED)?;
    let counts: Vec<usize> = parts
        .iter()
        .map(|idx| {
            class_histogram(&labels, idx, classes)
                .iter()
                .filter(|&&c| c > 0)
                .count()
        })
        .collect();
    Ok((
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    ))
}

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let mut t = Table::new(&["Model", "Parameters", "Data", "Devices", "Labels/device"]);
    let mut csv = Vec::new();
    for row in &TABLE3 {
        let params = param_count(row.ours, Shape::Torchvision, TABLE3_HEAD)?;
        let devices = row.devices.value as usize;
        let scheme = if row.iid {
            Partition::Iid
        } else {
            Partition::LabelShard
        };
        let (lo, hi) = labels_per_device(row.classes, devices, &scheme)?;
        let labels = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        };
        t.row(vec![
            format!("{} (`{}`)", row.model, row.ours),
            vs_text(
                &row.params,
                params as f64,
                &thousands(params as u64),
                Cmp::Ratio,
            ),
            format!("{} (`--partition {scheme}`)", row.data),
            vs(&row.devices, devices as f64, 0, Cmp::Ratio),
            vs_text(&row.labels_per_device, lo as f64, &labels, Cmp::Ratio),
        ]);
        csv.push(vec![
            row.model.into(),
            row.ours.into(),
            params.to_string(),
            row.data.into(),
            scheme.to_string(),
            devices.to_string(),
            lo.to_string(),
            hi.to_string(),
            row.params.text.into(),
            row.labels_per_device.text.into(),
        ]);
    }
    let plain_vgg = param_count("vgg19", Shape::Torchvision, TABLE3_HEAD)?;
    let mut doc = Doc::new("Table III — Neural networks evaluated");
    doc.para(&format!(
        "Parameters: our models in torchvision's ImageNet shape with a {TABLE3_HEAD}-way head, as the reference code \
         builds them and runs them on 32×32 CIFAR [C]. Devices: the ranks the paper-scale runs launch (`mpirun -np`). \
         Labels/device: distinct labels per device when a 50,000-sample training set of balanced classes is split by \
         our partitioner (seed {SEED}); the ratio uses the fewest. Analytic: the same at every --scale."
    ))
    .table(&t)
    .notes(&[
        format!(
            "VGG19 is `vgg19_bn`, the batch-norm variant the reference code trains [C]; plain `vgg19` has {} \
             parameters, which also rounds to 143.7M.",
            thousands(plain_vgg as u64)
        ),
        "The gradient sizes the paper gives, 230 MB and 548 MB, are these counts × 4 bytes (FP32).".into(),
    ]);
    Ok(vec![
        doc.write(&ctx.path("table.md"))?,
        write_csv(
            &ctx.path("table3.csv"),
            &[
                "model",
                "ours",
                "params",
                "data",
                "partition",
                "devices",
                "labels_per_device_min",
                "labels_per_device_max",
                "paper_params",
                "paper_labels_per_device",
            ],
            &csv,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_per_device_follow_the_partition() {
        assert_eq!(
            labels_per_device(10, 16, &Partition::Iid).unwrap(),
            (10, 10)
        );
        assert_eq!(
            labels_per_device(10, 10, &Partition::LabelShard).unwrap(),
            (1, 1)
        );
        assert_eq!(
            labels_per_device(100, 25, &Partition::LabelShard).unwrap(),
            (4, 4)
        );
        assert_eq!(
            labels_per_device(100, 16, &Partition::Iid).unwrap(),
            (100, 100)
        );
    }
}
