//! Fig. 4(a) — "Streaming queue grows over time": the buffer Q of Eq. 3 (Q = T·t·S + S) against
//! iterations T from 0 to 5000 for the products tS ∈ {0, 10, 100, 600}, with S = 10 (the figure's
//! flat line at log10 Q = 1 for tS = 0).
use super::paper::{FIG4A_AT_T_MAX, FIG4A_RATE, FIG4A_T_MAX};
use super::{vs, write_csv, Cmp, Ctx, Doc, Table};
use crate::error::Result;
use crate::metrics::plot::{LinePlot, Scale, Series};
use crate::stream::table2::fig4a_log10_q;
use std::path::PathBuf;

/// Iterations between points of the curves.
const T_STEP: f64 = 50.0;

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let s = FIG4A_RATE.value;
    let steps = (FIG4A_T_MAX / T_STEP) as usize;
    let ts: Vec<f64> = (0..=steps).map(|k| k as f64 * T_STEP).collect();
    let mut csv = Vec::new();
    let mut curves = Vec::new();
    for &(t_s, _) in &FIG4A_AT_T_MAX {
        let pts: Vec<(f64, f64)> = ts.iter().map(|&t| (t, t * t_s + s)).collect();
        for &(t, q) in &pts {
            csv.push(vec![
                format!("{t}"),
                format!("{t_s}"),
                format!("{q}"),
                format!("{:.6}", fig4a_log10_q(t, t_s, s)),
            ]);
        }
        curves.push(pts);
    }
    let labels: Vec<String> = FIG4A_AT_T_MAX
        .iter()
        .map(|(t_s, _)| format!("tS = {t_s}"))
        .collect();
    let series: Vec<Series> = labels
        .iter()
        .zip(&curves)
        .map(|(l, p)| Series {
            label: l,
            points: p,
        })
        .collect();
    let w = LinePlot {
        title: &format!("Fig. 4(a): streaming queue Q = T·tS + S under persistence (S = {s})"),
        x_label: "iterations T",
        y_label: "Q (samples, log10 axis)",
        series: &series,
        y_scale: Scale::Log10,
        ..Default::default()
    }
    .write(&ctx.path("fig4a.png"))?;

    let mut t = Table::new(&["tS", "log10 Q at T = 5000", "Q at T = 5000 (samples)"]);
    for &(t_s, paper) in &FIG4A_AT_T_MAX {
        let ours = fig4a_log10_q(FIG4A_T_MAX, t_s, s);
        t.row(vec![
            format!("{t_s}"),
            vs(&paper, ours, 3, Cmp::Diff(3)),
            format!("{}", FIG4A_T_MAX * t_s + s),
        ]);
    }
    let mut doc = Doc::new("Fig. 4(a) — Streaming queue grows over time");
    doc.para(&format!(
        "Eq. 3: Q = T·t·S + S with the product tS per curve and S = {s} {} (the figure's flat line at log10 Q = 1 \
         for tS = 0). The figure plots log10 Q against T from 0 to {FIG4A_T_MAX}; ours is the same curve on a log10 \
         axis (`fig4a.png`, `fig4a.svg`; the points in `fig4a.csv`). Analytic: the same at every --scale.",
        FIG4A_RATE.source.tag()
    ))
    .table(&t)
    .notes(&["The queue grows linearly in T (log10 Q rises by one for each tenfold of T·tS): under persistence a \
              device whose stream outpaces its training buffers without bound."
        .into()]);
    Ok(vec![
        doc.write(&ctx.path("table.md"))?,
        write_csv(&ctx.path("fig4a.csv"), &["T", "tS", "Q", "log10_Q"], &csv)?,
        w.png,
        w.svg,
    ])
}
