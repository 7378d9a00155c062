//! Fig. 3 — GPU memory in DDL: (a) against the batch size 32..2048, (b) by optimiser (SGD,
//! Nesterov, Adam), for ResNet152 on CIFAR10 and VGG19 on CIFAR100, on a V100.
//!
//! Ours is the peak resident memory (VmHWM) of one training process on the host, measured by
//! `scadles bench memory` (each cell in its own process) for a stand-in of each model;
//! `scripts/paper/fig3.sh` writes one CSV per model and panel under `OUT/bench/`
//! (`resnet152-batch.csv`, `resnet152-optim.csv`, `vgg19-batch.csv`, `vgg19-optim.csv`). The
//! absolute sizes cannot match (other models, host instead of GPU memory), so the cells also set
//! the growth beside the paper's: memory ÷ the memory at batch 32, and each optimiser ÷ SGD.
use super::paper::{FIG3A_GB, FIG3B_GB, FIG3_BATCHES, FIG3_OPTIMIZERS, RUN_MODELS};
use super::{field, ours_only, read_csv, vs, vs_derived, write_csv, Cmp, Ctx, Doc, Published, Scale, Table};
use crate::error::Result;
use crate::metrics::plot::{DistKind, DistPlot, Group, LinePlot, Series};
use std::path::PathBuf;

/// One measured cell of `bench memory`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub model: String,
    pub shape: String,
    pub batch: usize,
    pub optimizer: String,
    pub peak_mib: f64,
    pub baseline_mib: f64,
    pub params: usize,
}

/// The cells of `OUT/bench/<name>.csv`, `None` when it was not measured.
pub fn cells(ctx: &Ctx, name: &str) -> Result<Option<Vec<Cell>>> {
    let path = ctx.path(&format!("bench/{name}.csv"));
    let Some(rows) = read_csv(&path)? else { return Ok(None) };
    rows.iter()
        .map(|r| {
            Ok(Cell {
                model: r.get("model").cloned().unwrap_or_default(),
                shape: r.get("shape").cloned().unwrap_or_default(),
                batch: field(r, "batch", &path)?,
                optimizer: r.get("optimizer").cloned().unwrap_or_default(),
                peak_mib: field(r, "peak_mib", &path)?,
                baseline_mib: field(r, "baseline_mib", &path)?,
                params: field(r, "params", &path)?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// What stands for each of the paper's models at each scale, and why (for table.md).
fn stand_in(scale: Scale, model: usize) -> &'static str {
    match (scale, model) {
        (Scale::Smoke, 0) => "tinycnn_bn (CIFAR shape, 20000-way head: 1.3M parameters, so that the optimiser's state stands out of the allocator's noise)",
        (Scale::Smoke, _) => "tinycnn (the same without batch norm)",
        (Scale::Quick, 0) => "resnet18 (CIFAR shape, 10 classes, 11.2M parameters): a residual network with batch norm like ResNet152, whose memory also grows with the activations it keeps per sample; ResNet152 itself is ~10× the compute per sample, too slow for 2 cores",
        (Scale::Quick, _) => "vgg19_bn (CIFAR shape, 100 classes, 20.0M parameters): VGG19's own convolutions at 32×32 with a CIFAR head instead of the 1000-way ImageNet one (the paper's 143.7M parameters)",
        (Scale::Paper, 0) => "resnet152 (torchvision shape, 1000 classes, 60.2M parameters), the paper's model",
        (Scale::Paper, _) => "vgg19_bn (torchvision shape, 1000 classes, 143.7M parameters), the paper's model",
    }
}

fn gib(mib: f64) -> f64 {
    mib / 1024.0
}

/// `paper X [TAG] · ours — (why)`: the paper has a value, we measured none.
fn not_measured(p: &Published, why: &str) -> String {
    format!("paper {} {} · ours — ({why})", p.text, p.source.tag())
}

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let mut csv = Vec::new();
    let mut ta = Table::new(&[
        "Model (ours)",
        "Batch",
        "Memory, GB (ours: peak RSS, GiB)",
        "÷ batch 32",
        "Ours above the baseline (MiB)",
    ]);
    let mut tb = Table::new(&["Model (ours)", "Optimiser", "Memory, GB (ours: peak RSS, GiB)", "÷ SGD", "Ours baseline: model + state (MiB)"]);
    let mut growth_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut bars: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    let mut slopes = Vec::new();
    let mut measured_any = false;
    let mut largest_missing = Vec::new();
    for (mi, &(key, name)) in RUN_MODELS.iter().enumerate() {
        // Panel (a): SGD (the figure's optimiser) at every batch measured.
        let a = cells(ctx, &format!("{key}-batch"))?;
        let ours_name = a.as_ref().and_then(|c| c.first()).map(|c| format!("{} ({})", c.model, c.shape));
        let label = format!("{name}: {}", ours_name.clone().unwrap_or_else(|| "not measured".into()));
        let sgd: Vec<&Cell> = a.iter().flatten().filter(|c| c.optimizer == "sgd").collect();
        let base = sgd.iter().min_by_key(|c| c.batch).copied();
        let mut batches: Vec<usize> = FIG3_BATCHES.to_vec();
        batches.extend(sgd.iter().map(|c| c.batch));
        batches.sort_unstable();
        batches.dedup();
        let paper_at = |b: usize| FIG3_BATCHES.iter().position(|&x| x == b).map(|i| FIG3A_GB[mi][i]);
        for &b in &batches {
            let ours = sgd.iter().find(|c| c.batch == b);
            let why = if a.is_none() { "not measured at this scale" } else { "not measured at this scale (see notes)" };
            let (abs, rel, above) = match (paper_at(b), ours) {
                (Some(p), Some(c)) => {
                    let r = base.filter(|x| x.batch == 32).map(|x| c.peak_mib / x.peak_mib);
                    let rel = match r {
                        Some(r) => vs_derived(p.value / FIG3A_GB[mi][0].value, p.source, r, 2, Cmp::Ratio),
                        None => ours_only("— (no batch 32)"),
                    };
                    (vs(&p, gib(c.peak_mib), 3, Cmp::Ratio), rel, format!("{:.1}", c.peak_mib - c.baseline_mib))
                }
                (Some(p), None) => {
                    if a.is_some() && b > sgd.iter().map(|c| c.batch).max().unwrap_or(0) {
                        largest_missing.push(format!("{name} {b}"));
                    }
                    let pr = p.value / FIG3A_GB[mi][0].value;
                    (not_measured(&p, why), format!("paper {pr:.2} {} · ours —", p.source.tag()), "—".into())
                }
                (None, Some(c)) => {
                    let r = base.map(|x| c.peak_mib / x.peak_mib).unwrap_or(f64::NAN);
                    (
                        ours_only(&format!("{:.3}", gib(c.peak_mib))),
                        ours_only(&format!("{r:.2} (÷ batch {})", base.map_or(0, |x| x.batch))),
                        format!("{:.1}", c.peak_mib - c.baseline_mib),
                    )
                }
                (None, None) => continue,
            };
            ta.row(vec![label.clone(), b.to_string(), abs, rel, above]);
        }
        growth_series.push((
            format!("paper {name} (÷ batch 32) [P-fig]"),
            FIG3_BATCHES.iter().zip(&FIG3A_GB[mi]).map(|(&b, p)| ((b as f64).log2(), p.value / FIG3A_GB[mi][0].value)).collect(),
        ));
        if let Some(base) = base {
            measured_any = true;
            let pts: Vec<(f64, f64)> = sgd.iter().map(|c| ((c.batch as f64).log2(), c.peak_mib / base.peak_mib)).collect();
            growth_series.push((format!("ours {} (÷ batch {})", ours_name.clone().unwrap_or_default(), base.batch), pts));
            if let Some(top) = sgd.iter().max_by_key(|c| c.batch).filter(|t| t.batch > base.batch) {
                slopes.push(format!(
                    "{name}: paper {:.2} GB per 1000 samples (32 → 2048) [I]; ours {:.2} GiB per 1000 samples ({} → {})",
                    (FIG3A_GB[mi][5].value - FIG3A_GB[mi][0].value) / 2016.0 * 1000.0,
                    gib(top.peak_mib - base.peak_mib) / (top.batch - base.batch) as f64 * 1000.0,
                    base.batch,
                    top.batch
                ));
            }
        }
        for c in a.iter().flatten() {
            let rel = base.filter(|_| c.optimizer == "sgd").map(|x| format!("{:.4}", c.peak_mib / x.peak_mib)).unwrap_or_default();
            csv.push(vec![name.to_string(), "a".into(), c.model.clone(), c.shape.clone(), c.params.to_string(), c.batch.to_string(), c.optimizer.clone(), format!("{:.3}", c.peak_mib), format!("{:.3}", c.baseline_mib), rel]);
        }

        // Panel (b): the three optimisers at one batch.
        let b = cells(ctx, &format!("{key}-optim"))?;
        let sgd_b = b.iter().flatten().find(|c| c.optimizer == "sgd").cloned();
        let mut paper_bars = Vec::new();
        let mut ours_bars = Vec::new();
        for (oi, &(opt, opt_name)) in FIG3_OPTIMIZERS.iter().enumerate() {
            let p = FIG3B_GB[mi][oi];
            let pr = p.value / FIG3B_GB[mi][0].value;
            let ours = b.iter().flatten().find(|c| c.optimizer == opt);
            paper_bars.push(vec![pr]);
            let (abs, rel, baseline) = match (ours, &sgd_b) {
                (Some(c), Some(s)) => {
                    ours_bars.push(vec![c.peak_mib / s.peak_mib]);
                    (
                        vs(&p, gib(c.peak_mib), 3, Cmp::Ratio),
                        vs_derived(pr, p.source, c.peak_mib / s.peak_mib, 3, Cmp::Ratio),
                        format!("{:.1} (batch {})", c.baseline_mib, c.batch),
                    )
                }
                _ => {
                    ours_bars.push(vec![]);
                    (not_measured(&p, "not measured at this scale"), format!("paper {pr:.3} {} · ours —", p.source.tag()), "—".into())
                }
            };
            let who = b.as_ref().and_then(|c| c.first()).map_or("not measured".to_string(), |c| format!("{} ({})", c.model, c.shape));
            tb.row(vec![format!("{name}: {who}"), opt_name.into(), abs, rel, baseline]);
        }
        for c in b.iter().flatten() {
            let rel = sgd_b.as_ref().map(|s| format!("{:.4}", c.peak_mib / s.peak_mib)).unwrap_or_default();
            csv.push(vec![name.to_string(), "b".into(), c.model.clone(), c.shape.clone(), c.params.to_string(), c.batch.to_string(), c.optimizer.clone(), format!("{:.3}", c.peak_mib), format!("{:.3}", c.baseline_mib), rel]);
        }
        bars.push((format!("paper {name} [P-fig]"), paper_bars));
        if b.is_some() {
            bars.push((format!("ours {}", b.as_ref().and_then(|c| c.first()).map_or(String::new(), |c| c.model.clone())), ours_bars));
        }
    }

    let series: Vec<Series> = growth_series.iter().map(|(l, p)| Series { label: l, points: p }).collect();
    let xs = growth_series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let wa = LinePlot {
        title: "Fig. 3(a): memory vs batch size, ÷ the memory at the smallest batch",
        x_label: "log2 batch size",
        y_label: "memory ÷ memory at batch 32",
        series: &series,
        x_range: Some((x0 - 0.5, x1 + 0.5)),
        ..Default::default()
    }
    .write(&ctx.path("fig3a.png"))?;
    let groups: Vec<Group> = bars.iter().map(|(l, v)| Group { label: l, values: v }).collect();
    let cats: Vec<&str> = FIG3_OPTIMIZERS.iter().map(|o| o.1).collect();
    let top = bars.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(1.0f64, f64::max);
    let wb = DistPlot {
        kind: DistKind::Bar,
        title: "Fig. 3(b): memory by optimiser, ÷ SGD",
        x_label: "optimiser",
        y_label: "memory ÷ SGD's",
        categories: &cats,
        groups: &groups,
        y_range: Some((0.0, top * 1.25)),
        ..Default::default()
    }
    .write(&ctx.path("fig3b.png"))?;

    let mut doc = Doc::new("Fig. 3 — Memory in DDL vs batch size and by optimiser");
    doc.para(&format!(
        "The paper measures GPU memory on a V100 in DDL, for ResNet152 on CIFAR10 and VGG19 on CIFAR100: (a) SGD at batches 32..2048, \
         (b) SGD, Nesterov and Adam. Ours: the peak resident memory (VmHWM) of one training process on the host (forward, loss, backward \
         and optimiser step on random 32×32 inputs), measured by `scadles bench memory`, each cell in its own process (`bench/*.csv`, \
         all cells in `fig3.csv`). Scale: {}. Stand-ins: ResNet152 → {}; VGG19 → {}. The sizes cannot match (other models, host instead \
         of device memory), so each cell also sets the growth beside the paper's: ÷ the memory at batch 32 in (a), ÷ SGD's in (b) \
         (`fig3a`: the growth against log2 batch; `fig3b`: the ratios to SGD as bars).",
        ctx.scale,
        stand_in(ctx.scale, 0),
        stand_in(ctx.scale, 1)
    ));
    doc.heading("(a) Memory vs batch size (SGD)").table(&ta);
    doc.heading("(b) Memory by optimiser").table(&tb);
    let mut notes = vec![
        "Memory is linear in the batch, not exponential: the activations kept for the backward pass grow by a fixed amount per sample \
         on top of a fixed part (weights, gradients, optimiser state, and on a GPU the CUDA context and workspaces). The paper's \
         \"near-exponential\" growth is that straight line drawn against a log2 batch axis. Per 1000 samples: "
            .to_string()
            + &if slopes.is_empty() { "not measured at this scale".to_string() } else { slopes.join("; ") }
            + ".",
        "The ratios to batch 32 grow faster in ours because our fixed part is small: the host process holds the model, its gradients and \
         the optimiser state (the baseline column of (b), 0.1–0.2 GiB at quick scale), while the paper's GPU numbers carry about 2 GB \
         that do not depend on the batch (CUDA context, cuDNN workspaces, PyTorch's cached blocks) [I]."
            .into(),
        "Optimisers: SGD with momentum and Nesterov keep one buffer per parameter and Adam two, so Adam adds 4 bytes × parameters \
         and Nesterov adds nothing over SGD (ours: equal within allocator noise). The paper's Nesterov bars are 13% (ResNet152) and \
         22% (VGG19) above SGD's; PyTorch's Nesterov keeps the same single momentum buffer, so that difference is not optimiser \
         state [I]."
            .into(),
        "No GPU was used: `bench memory` measures host memory only (it has no device option); on a GPU machine device memory would \
         be the paper's quantity and is not measured here."
            .into(),
    ];
    if ctx.scale == Scale::Quick {
        notes.push(
            "Quick scale measures batches 32..1024 and drops 2048: by the measured slope a 2048 batch needs 12–15 GiB per process \
             (more than a 24 GiB machine spares beside other work) and doubles the time. The cells were measured while other \
             training ran on the machine, which changes the time they took, not their memory."
                .into(),
        );
    }
    if !largest_missing.is_empty() {
        notes.push(format!("Not measured at this scale: {}.", largest_missing.join(", ")));
    }
    if !measured_any {
        notes.push("Nothing was measured at this scale (paper scale logs its commands in commands.txt unless PAPER_EXECUTE=1); the cells show the paper's values only.".into());
    }
    doc.notes(&notes);
    Ok(vec![
        doc.write(&ctx.path("table.md"))?,
        write_csv(
            &ctx.path("fig3.csv"),
            &["paper_model", "panel", "model", "shape", "params", "batch", "optimizer", "peak_mib", "baseline_mib", "ratio"],
            &csv,
        )?,
        wa.png,
        wa.svg,
        wb.png,
        wb.svg,
    ])
}
