//! Fig. 7: the buffer under persistence (log10 samples) against epochs, ScaDLES and DDL, both
//! models, one panel per rate set (`fig7_<set>.png`/`.svg`), from the shared runs: ScaDLES is the
//! `persistence/` run of each cell, DDL the DDL side of the compare (persistence already). The
//! buffer is steps.csv's `buffer_max` (the largest device's, as Table IV); epochs are the samples
//! trained so far ÷ the training set.
use super::paper::{FIG7_DDL_OVER_SCADLES, FIG7_END_LOG10, RUN_MODELS, RUN_SETS};
use super::runs::{load_all, runs_note, vs_pending, Side};
use super::{vs, vs_text, write_csv, Cmp, Ctx, Doc, Table};
use crate::error::Result;
use crate::metrics::plot::{Legend, LinePlot, Scale, Series};
use std::path::PathBuf;

/// The buffer of `s` at the last step whose epoch is ≤ `epoch` (samples).
fn buffer_at_epoch(s: &Side, epoch: f64) -> Option<u64> {
    s.by_epoch()
        .iter()
        .take_while(|(e, _)| *e <= epoch + 1e-12)
        .last()
        .map(|(_, r)| r.buffer_max)
}

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let cells = load_all(ctx.runs)?;
    let mut files = Vec::new();
    let mut csv = Vec::new();
    let mut t = Table::new(&[
        "Dist.",
        "Model",
        "DDL ÷ ScaDLES buffer (at the common last epoch)",
        "log10 DDL buffer, end",
        "log10 ScaDLES buffer, end",
    ]);
    for (si, (set, set_name)) in RUN_SETS.iter().enumerate() {
        let mut labels = Vec::new();
        let mut curves: Vec<Vec<(f64, f64)>> = Vec::new();
        for c in cells.iter().filter(|c| c.set == si) {
            let model = RUN_MODELS[c.model];
            for (policy, side) in [("ScaDLES", &c.persistence), ("DDL", &c.ddl)] {
                let Some(s) = side else { continue };
                let mut pts = Vec::new();
                for (e, r) in s.by_epoch() {
                    csv.push(vec![
                        set.to_string(),
                        model.0.to_string(),
                        policy.to_lowercase(),
                        r.step.to_string(),
                        format!("{e:.6}"),
                        r.buffer_max.to_string(),
                        r.buffer_sum.to_string(),
                    ]);
                    if r.buffer_max > 0 {
                        pts.push((e, r.buffer_max as f64));
                    }
                }
                labels.push(format!("{policy} ({})", model.1));
                curves.push(pts);
            }
            let ratio_paper = &FIG7_DDL_OVER_SCADLES[si][c.model];
            let end_paper = FIG7_END_LOG10[si].map(|m| m[c.model]);
            let mut row = vec![set_name.to_string(), model.1.to_string()];
            match (&c.persistence, &c.ddl) {
                (Some(sc), Some(dd)) => {
                    let end_s = sc.by_epoch().last().map(|x| x.0).unwrap_or(0.0);
                    let end_d = dd.by_epoch().last().map(|x| x.0).unwrap_or(0.0);
                    let common = end_s.min(end_d);
                    let (bs, bd) = (
                        buffer_at_epoch(sc, common).unwrap_or(0),
                        buffer_at_epoch(dd, common).unwrap_or(0),
                    );
                    let r = if bs > 0 {
                        bd as f64 / bs as f64
                    } else {
                        f64::NAN
                    };
                    row.push(vs_text(
                        ratio_paper,
                        r,
                        &format!("{r:.2}× (epoch {common:.2})"),
                        Cmp::Ratio,
                    ));
                    let l = |s: &Side| {
                        s.steps
                            .last()
                            .map(|r| (r.buffer_max.max(1) as f64).log10())
                            .unwrap_or(f64::NAN)
                    };
                    let (ld, ls) = (l(dd), l(sc));
                    match end_paper {
                        Some((pd, ps)) => {
                            row.push(vs(&pd, ld, 2, Cmp::Diff(2)));
                            row.push(vs(&ps, ls, 2, Cmp::Diff(2)));
                        }
                        None => {
                            row.push(format!("paper — · ours {ld:.2}"));
                            row.push(format!("paper — · ours {ls:.2}"));
                        }
                    }
                }
                _ => {
                    row.push(vs_pending(ratio_paper));
                    for p in [end_paper.map(|x| x.0), end_paper.map(|x| x.1)] {
                        row.push(match p {
                            Some(p) => vs_pending(&p),
                            None => "paper — · ours — (not yet run)".into(),
                        });
                    }
                }
            }
            t.row(row);
        }
        let series: Vec<Series> = labels
            .iter()
            .zip(&curves)
            .map(|(l, p)| Series {
                label: l,
                points: p,
            })
            .collect();
        let any = curves.iter().any(|c| !c.is_empty());
        let w = LinePlot {
            title: &format!("Fig. 7 ({set_name}): buffer under persistence vs epochs"),
            x_label: "epochs",
            y_label: "largest device buffer (samples, log10 axis)",
            series: &series,
            x_range: if any { None } else { Some((0.0, 1.0)) },
            y_range: if any { None } else { Some((1.0, 10.0)) },
            y_scale: Scale::Log10,
            legend: Legend::LowerRight,
            ..Default::default()
        }
        .write(&ctx.path(&format!("fig7_{set}.png")))?;
        files.push(w.png);
        files.push(w.svg);
    }
    let mut doc = Doc::new("Fig. 7 — Buffer size increases with training iterations (persistence)");
    doc.para(&format!(
        "The largest device buffer (steps.csv `buffer_max`, samples; `buffer_sum`, all devices together, is in \
         `fig7.csv` too) against epochs (samples trained ÷ the training set) under persistence, for ScaDLES \
         (a ScaDLES run with `--buffer persistence`, batch = the last second's arrivals) and DDL (fixed batch \
         64, persistence), 16 devices, IID, one panel per rate set: `fig7_S1`, `fig7_S2`, `fig7_S1p`, `fig7_S2p` \
         (.png, .svg), log10 axis. --scale {}. The ratio compares both at the last epoch both runs reached; the \
         end values are those at each run's last step. The paper's runs last 125–150 epochs, ours a few, so our \
         end values are lower.",
        ctx.scale
    ))
    .table(&t)
    .notes(&[runs_note(ctx.runs, &cells)]);
    files.insert(0, doc.write(&ctx.path("table.md"))?);
    files.insert(
        1,
        write_csv(
            &ctx.path("fig7.csv"),
            &[
                "set",
                "model",
                "policy",
                "step",
                "epoch",
                "buffer_max",
                "buffer_sum",
            ],
            &csv,
        )?,
    );
    Ok(files)
}
