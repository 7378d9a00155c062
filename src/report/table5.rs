//! Table V: adaptive top-k compression over the paper's grid, CR ∈ {0.1, 0.01} × δ ∈ {0.1, 0.2,
//! 0.3, 0.4}, under both forms of the criterion (`--criterion paper` and `code`): the CNC ratio
//! (fraction of the iterations that sent compressed gradients, over the whole run), the final
//! accuracy, and the FP32 values sent by all devices up to the target. One ScaDLES run per cell
//! (`scripts/paper/table5.sh`, `--past-target`), read from `<runs>/<model>-<criterion>-cr<CR>-d<δ>/`.
//! Also `cnc.png`: the CNC ratio against δ per CR and criterion.
use super::paper::{RUN_MODELS, TABLE5, TABLE5_GRID};
use super::runs::{vs_pending, Side};
use super::{vs, vs_text, write_csv, Cmp, Ctx, Doc, Summary, Table};
use crate::error::Result;
use crate::metrics::plot::{Legend, LinePlot, Series};
use crate::models::{param_count, Shape};
use std::path::PathBuf;

/// The two forms of the compression test, as `--criterion` names them.
pub const CRITERIA: [&str; 2] = ["paper", "code"];

/// The run directory name of one cell.
pub fn run_name(model: &str, criterion: &str, cr: f64, delta: f64) -> String {
    format!("{model}-{criterion}-cr{cr}-d{delta}")
}

/// The parameters of the paper's model a stand-in (`RUN_MODELS` name) stands for.
fn paper_params(model: &str) -> Result<u64> {
    Ok(param_count(if model == "vgg19" { "vgg19_bn" } else { "resnet152" }, Shape::Torchvision, 1000)? as u64)
}

/// `1.23×10^11`.
fn sci(x: f64) -> String {
    if x <= 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let e = x.log10().floor() as i32;
    format!("{:.2}×10^{e}", x / 10f64.powi(e))
}

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let mut t = Table::new(&["Model", "Criterion", "CR", "δ", "CNC ratio", "Accuracy (final)", "Floats sent to target"]);
    let mut csv = Vec::new();
    let mut missing = Vec::new();
    let mut not_reached = Vec::new();
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut criteria: Vec<(&str, f64, Vec<f64>)> = Vec::new();
    for (mi, (model, model_name)) in RUN_MODELS.iter().enumerate() {
        let scale_to = paper_params(model)? as f64;
        for crit in CRITERIA {
            let mut by_cr: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
            for (gi, &(cr, delta)) in TABLE5_GRID.iter().enumerate() {
                let (p_cnc, p_acc, p_floats) = &TABLE5[mi][gi];
                let name = run_name(model, crit, cr, delta);
                let side = Side::load(&ctx.runs.join(&name))?;
                let mut row = vec![model_name.to_string(), crit.to_string(), format!("{cr}"), format!("{delta}")];
                let Some(s) = side else {
                    missing.push(name);
                    row.extend([vs_pending(p_cnc), vs_pending(p_acc), vs_pending(p_floats)]);
                    t.row(row);
                    csv.push(vec![model.to_string(), crit.to_string(), format!("{cr}"), format!("{delta}"), String::new(), String::new(), String::new(), String::new(), String::new(), String::new(), String::new(), format!("{}", p_cnc.value), format!("{}", p_acc.value), format!("{}", p_floats.value)]);
                    continue;
                };
                let (floats, reached) = s.floats_to_target();
                let scaled = if s.params > 0 { floats as f64 * scale_to / s.params as f64 } else { f64::NAN };
                if !reached {
                    not_reached.push(name.clone());
                }
                by_cr[if cr == 0.1 { 0 } else { 1 }].push((delta, s.cnc_ratio));
                if mi == 0 {
                    let slot = criteria.iter().position(|(c, r, _)| *c == crit && *r == cr).unwrap_or_else(|| {
                        criteria.push((crit, cr, Vec::new()));
                        criteria.len() - 1
                    });
                    criteria[slot].2.extend(s.steps.iter().filter_map(|r| r.criterion_mean));
                }
                row.push(vs(p_cnc, s.cnc_ratio, 3, Cmp::Diff(3)));
                row.push(vs_text(p_acc, 100.0 * s.final_top5, &format!("top-5 {:.2}% (top-1 {:.2}%)", 100.0 * s.final_top5, 100.0 * s.final_top1), Cmp::Diff(2)));
                let ours_floats = format!("{}{} ({} at {model_name}'s size)", if reached { "" } else { "> " }, sci(floats as f64), sci(scaled));
                row.push(if reached { vs_text(p_floats, scaled, &ours_floats, Cmp::Ratio) } else { format!("paper {} {} · ours {ours_floats} (target not reached)", p_floats.text, p_floats.source.tag()) });
                t.row(row);
                csv.push(vec![
                    model.to_string(),
                    crit.to_string(),
                    format!("{cr}"),
                    format!("{delta}"),
                    format!("{}", s.cnc_ratio),
                    format!("{}", s.final_top1),
                    format!("{}", s.final_top5),
                    format!("{floats}"),
                    format!("{scaled:.6e}"),
                    format!("{reached}"),
                    s.step_at_target.map(|x| x.to_string()).unwrap_or_default(),
                    format!("{}", p_cnc.value),
                    format!("{}", p_acc.value),
                    format!("{}", p_floats.value),
                ]);
            }
            for (ci, cr) in ["0.1", "0.01"].iter().enumerate() {
                if !by_cr[ci].is_empty() {
                    curves.push((format!("{model_name} {crit} CR {cr}"), std::mem::take(&mut by_cr[ci])));
                }
            }
        }
    }
    // The paper's own CNC curves, for the figure.
    for (mi, (_, model_name)) in RUN_MODELS.iter().enumerate() {
        for (ci, cr) in [0.1, 0.01].iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..4).map(|j| (TABLE5_GRID[ci * 4 + j].1, TABLE5[mi][ci * 4 + j].0.value)).collect();
            curves.push((format!("paper {model_name} CR {cr}"), pts));
        }
    }
    let series: Vec<Series> = curves.iter().map(|(l, p)| Series { label: l, points: p }).collect();
    let w = LinePlot {
        title: "Table V: CNC ratio vs δ (ours: tinycnn_bn stand-ins; paper: ResNet152, VGG19)",
        x_label: "δ",
        y_label: "CNC ratio (fraction of iterations compressed)",
        series: &series,
        x_range: Some((0.05, 0.45)),
        y_range: Some((-0.02, 1.02)),
        legend: Legend::UpperLeft,
        ..Default::default()
    }
    .write(&ctx.path("cnc.png"))?;

    let mut doc = Doc::new("Table V — Communication reduction in adaptive compression");
    doc.para(&format!(
        "IID, 16 devices, S′1 rates, at --scale {}. Each cell is one ScaDLES run with Table VI's configuration \
         (batches of what arrived in the last second within [8, 1024], weighted aggregation with linear LR \
         scaling, truncation) and adaptive top-k at the cell's CR and δ, trained past the target to the same \
         number of steps. CNC ratio: the fraction of all iterations that sent compressed gradients. Accuracy: \
         the final test accuracy (the paper's is top-5; ours is given as top-5 and top-1). Floats sent: FP32 \
         gradient values sent by all devices up to the evaluation that first met the target (indices not \
         counted, as the paper's count); beside it the same count scaled to the paper's model size (× the \
         paper model's parameters ÷ the stand-in's), which is what the ratio compares. `paper` criterion: \
         c = |‖a‖² − ‖Topk(a)‖²| / ‖a‖² with an EWMA (the paper's display 2); `code`: the reference code's sum \
         of per-tensor L2 norms with a running mean reset every epoch. The paper's rows are the same for both \
         criteria (the paper states one rule).",
        ctx.scale
    ))
    .table(&t);
    let mut notes = Vec::new();
    if !missing.is_empty() {
        notes.push(format!(
            "{} of 32 cells not run at this scale ({}); `TABLE5_MODELS=\"resnet152 vgg19\" scripts/paper/table5.sh` runs \
             both stand-ins. At quick scale the VGG19 stand-in is the same network and data with VGG19's learning rate, \
             weight decay and clock, so only the ResNet152 stand-in is run by default (16 runs, ~40 min on 2 cores).",
            missing.len(),
            if missing.len() > 6 { format!("{}, …", missing[..6].join(", ")) } else { missing.join(", ") }
        ));
    }
    if !not_reached.is_empty() {
        notes.push(format!("The target was not reached in: {}; their floats are those of the whole run (`> `).", not_reached.join(", ")));
    }
    for (crit, cr, cs) in &criteria {
        if let Some(m) = Summary::of(cs) {
            notes.push(format!(
                "Criterion c of the ResNet152 stand-in's runs, `{crit}` at CR {cr} (steps.csv's criterion_mean over every step of the 4 δ runs): median {:.3}, range {:.3}–{:.3}. A device votes to compress when its smoothed c ≤ δ.",
                m.median, m.min, m.max
            ));
        }
    }
    doc.notes(&notes);
    Ok(vec![
        doc.write(&ctx.path("table.md"))?,
        write_csv(
            &ctx.path("table5.csv"),
            &["model", "criterion", "cr", "delta", "cnc_ratio", "final_top1", "final_top5", "floats_to_target", "floats_to_target_paper_size", "target_reached", "step_at_target", "paper_cnc_ratio", "paper_accuracy_top5_pct", "paper_floats_sent"],
            &csv,
        )?,
        w.png,
        w.svg,
    ])
}
