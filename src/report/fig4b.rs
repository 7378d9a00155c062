//! Fig. 4(b) — gradient synchronisation time against the gradient's size (46 MB Transformer,
//! 230 MB ResNet152, 548 MB VGG19) on 8 K80 GPUs over 5 Gbps Ethernet.
//!
//! Ours, side by side: (i) the link model the training clock charges for a dense gradient
//! allreduce ([`LinkModel::allreduce_s`] at the paper's 5 Gbps and the training default latency),
//! at 8 ranks (the paper's GPUs) and 16 (our runs' devices); (ii) the dense allreduce measured on
//! this machine by `scripts/mpirun.sh N scadles bench exchange --dense-only --csv
//! OUT/bench/exchange-npN.csv`, which `scripts/paper/fig4b.sh` runs (ranks on one host talk through
//! shared memory, not a 5 Gbps link).
use super::paper::{FIG4B, FIG4B_GBPS, FIG4B_MB, FIG4B_RANKS};
use super::{field, ours_only, read_csv, vs, write_csv, Cmp, Ctx, Doc, Scale, Table};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::metrics::plot::{LinePlot, Scale as Axis, Series};
use crate::stream::LinkModel;
use std::path::PathBuf;

/// The device count of our training runs, the second link-model column.
const OUR_RANKS: usize = 16;

/// The link the training clock uses with `--link-gbps 5` and the default latency.
pub fn link() -> Result<LinkModel> {
    LinkModel::new(FIG4B_GBPS, RunConfig::default().link_latency_ms / 1e3)
}

/// The paper's gradient sizes in floats (MB = MiB, 4-byte floats).
pub fn paper_floats() -> Vec<usize> {
    FIG4B.iter().map(|&(_, mb, _)| (mb * FIG4B_MB / 4.0).round() as usize).collect()
}

/// One measured row of `bench exchange --dense-only`: ranks, floats, median seconds (`None`
/// when skipped), the note.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub ranks: usize,
    pub n: usize,
    pub seconds: Option<f64>,
    pub note: String,
}

/// Every dense row of `OUT/bench/exchange-np*.csv`, by ranks then size.
pub fn measured(ctx: &Ctx) -> Result<Vec<Measured>> {
    let dir = ctx.path("bench");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("exchange-np") && f.ends_with(".csv"))).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for r in read_csv(&f)?.unwrap_or_default().iter().filter(|r| r.get("mode").is_some_and(|m| m == "dense")) {
            let t = r.get("median_s").filter(|v| !v.is_empty());
            out.push(Measured {
                ranks: field(r, "ranks", &f)?,
                n: field(r, "n", &f)?,
                seconds: t.map(|_| field(r, "median_s", &f)).transpose()?,
                note: r.get("note").cloned().unwrap_or_default(),
            });
        }
    }
    out.sort_by_key(|m| (m.ranks, m.n));
    Ok(out)
}

fn mib(n: usize) -> f64 {
    4.0 * n as f64 / FIG4B_MB
}

pub fn run(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let link = link()?;
    let meas = measured(ctx)?;
    let mut rank_counts: Vec<usize> = meas.iter().map(|m| m.ranks).collect();
    rank_counts.dedup();
    let mut csv = Vec::new();

    let mut header: Vec<String> = vec![
        "Gradient".into(),
        "Floats".into(),
        format!("Link model, {FIG4B_RANKS} ranks (s)"),
        format!("Link model, {OUR_RANKS} ranks (s)"),
    ];
    header.extend(rank_counts.iter().map(|r| format!("Measured here, {r} ranks (s)")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    for (&(model, mb, paper), n) in FIG4B.iter().zip(paper_floats()) {
        let bytes = 4.0 * n as f64;
        let (l8, l16) = (link.allreduce_s(bytes, FIG4B_RANKS), link.allreduce_s(bytes, OUR_RANKS));
        let mut row = vec![format!("{model}, {mb} MB"), n.to_string(), vs(&paper, l8, 3, Cmp::Ratio), ours_only(&format!("{l16:.3}"))];
        for &r in &rank_counts {
            row.push(match meas.iter().find(|m| m.ranks == r && m.n == n) {
                Some(Measured { seconds: Some(s), .. }) => vs(&paper, *s, 3, Cmp::Ratio),
                Some(m) => format!("paper {} {} · ours — ({})", paper.text, paper.source.tag(), m.note),
                None => format!("paper {} {} · ours — (not measured at this scale)", paper.text, paper.source.tag()),
            });
        }
        t.row(row);
        for (p, s) in [(FIG4B_RANKS, l8), (OUR_RANKS, l16)] {
            csv.push(vec!["link-model".into(), model.into(), format!("{mb}"), format!("{bytes}"), n.to_string(), p.to_string(), format!("{s:.9}"), String::new()]);
        }
        csv.push(vec!["paper".into(), model.into(), format!("{mb}"), format!("{bytes}"), n.to_string(), FIG4B_RANKS.to_string(), format!("{}", paper.value), format!("{} read off the figure", paper.source.tag())]);
    }
    let mut tm = Table::new(&["Ranks", "Floats", "Gradient (MB)", "Measured dense allreduce (s)", "Link model at these ranks (s)", "Note"]);
    for m in &meas {
        let bytes = 4.0 * m.n as f64;
        let model = link.allreduce_s(bytes, m.ranks);
        tm.row(vec![
            m.ranks.to_string(),
            m.n.to_string(),
            format!("{:.3}", mib(m.n)),
            m.seconds.map_or("—".into(), |s| format!("{s:.4}")),
            format!("{model:.4}"),
            m.note.clone(),
        ]);
        csv.push(vec!["measured".into(), String::new(), format!("{:.6}", mib(m.n)), format!("{bytes}"), m.n.to_string(), m.ranks.to_string(), m.seconds.map_or(String::new(), |s| format!("{s:.9}")), m.note.clone()]);
    }

    // The figure: log-log, the paper's three readings, the link model as a curve over 1..1000 MB,
    // and each measured rank count.
    let paper_pts: Vec<(f64, f64)> = FIG4B.iter().map(|&(_, mb, p)| (mb, p.value)).collect();
    let mut lo = meas.iter().filter(|m| m.seconds.is_some()).map(|m| mib(m.n)).fold(1.0f64, f64::min);
    lo = 10f64.powf(lo.log10().floor());
    let curve = |p: usize| -> Vec<(f64, f64)> {
        let steps = 48;
        (0..=steps)
            .map(|i| {
                let mb = lo * (1000.0 / lo).powf(i as f64 / steps as f64);
                (mb, link.allreduce_s(mb * FIG4B_MB, p))
            })
            .collect()
    };
    let mut owned: Vec<(String, Vec<(f64, f64)>)> = vec![
        (format!("paper, {FIG4B_RANKS} K80s over 5 Gbps [P-fig]"), paper_pts),
        (format!("link model, {FIG4B_RANKS} ranks, 5 Gbps"), curve(FIG4B_RANKS)),
        (format!("link model, {OUR_RANKS} ranks, 5 Gbps"), curve(OUR_RANKS)),
    ];
    for &r in &rank_counts {
        let pts: Vec<(f64, f64)> = meas.iter().filter(|m| m.ranks == r).filter_map(|m| m.seconds.map(|s| (mib(m.n), s))).filter(|p| p.1 > 0.0).collect();
        if !pts.is_empty() {
            owned.push((format!("measured here, {r} ranks (one host)"), pts));
        }
    }
    let series: Vec<Series> = owned.iter().map(|(l, p)| Series { label: l, points: p }).collect();
    let w = LinePlot {
        title: "Fig. 4(b): gradient synchronisation time vs gradient size",
        x_label: "gradient size (MB, log10 axis)",
        y_label: "dense allreduce (s, log10 axis)",
        series: &series,
        x_scale: Axis::Log10,
        y_scale: Axis::Log10,
        ..Default::default()
    }
    .write(&ctx.path("fig4b.png"))?;

    let mut doc = Doc::new("Fig. 4(b) — Gradient synchronisation time vs gradient size");
    doc.para(&format!(
        "The paper times the gradient synchronisation of three models on {FIG4B_RANKS} K80 GPUs over {FIG4B_GBPS} Gbps Ethernet. Ours: \
         the link model our training clock charges for a dense ring allreduce of b bytes over p ranks, 2(p−1)·latency + 2(p−1)/p · b / \
         ({FIG4B_GBPS}·10^9/8 bytes/s) with the training default latency of {} ms (`LinkModel::allreduce_s`, as `--link-gbps {FIG4B_GBPS}` \
         runs use it), at {FIG4B_RANKS} and {OUR_RANKS} ranks; and the dense MPI allreduce measured on this machine by `scadles bench exchange \
         --dense-only` (`bench/exchange-np*.csv`; median of the slowest rank's time). Scale: {}. MB are MiB (ResNet152's 60.19M floats \
         are 229.6 MiB) [I].",
        RunConfig::default().link_latency_ms,
        ctx.scale
    ))
    .table(&t);
    if !meas.is_empty() {
        doc.heading("Measured on this machine").table(&tm);
    }
    let mut notes = vec![
        format!(
            "The link model is linear in the size and nearly flat in the ranks (2(p−1)/p: {:.3} at {FIG4B_RANKS} ranks, {:.3} at {OUR_RANKS}); \
             at {FIG4B_RANKS} ranks it is {} s, ×{} the paper's readings. The paper's three points are not proportional to the size \
             ({} s for {} MB but {} s for {} MB), so no single bandwidth fits them all; the training clock's K80 presets take the ResNet152 \
             and VGG19 readings as measured (compute = Table II's iteration time minus them).",
            2.0 * (FIG4B_RANKS as f64 - 1.0) / FIG4B_RANKS as f64,
            2.0 * (OUR_RANKS as f64 - 1.0) / OUR_RANKS as f64,
            FIG4B.iter().map(|&(_, mb, _)| format!("{:.3}", link.allreduce_s(mb * FIG4B_MB, FIG4B_RANKS))).collect::<Vec<_>>().join(" / "),
            FIG4B.iter().map(|&(_, mb, p)| format!("{:.2}", link.allreduce_s(mb * FIG4B_MB, FIG4B_RANKS) / p.value)).collect::<Vec<_>>().join(" / "),
            FIG4B[1].2.value,
            FIG4B[1].1,
            FIG4B[2].2.value,
            FIG4B[2].1
        ),
        "Measured here: ranks on one host exchange through shared memory, so the times show this machine's memory bandwidth, not a \
         5 Gbps link; they grow with the size as the model does."
            .into(),
    ];
    if ctx.scale == Scale::Smoke {
        notes.push("Smoke scale measures the paper's sizes ÷ 1000 at 2 ranks only, to check the pipeline.".into());
    }
    if meas.is_empty() {
        notes.push("Nothing was measured at this scale (the quick timing was not run, or the paper scale only logged its commands: see commands.txt); the link-model cells are complete.".into());
    }
    if meas.iter().any(|m| m.seconds.is_none()) {
        notes.push("A size skipped for memory says why in its cell: the benchmark holds about three gradient-sized buffers per rank, and every rank runs on this host.".into());
    }
    doc.notes(&notes);
    Ok(vec![
        doc.write(&ctx.path("table.md"))?,
        write_csv(&ctx.path("fig4b.csv"), &["source", "model", "mb", "bytes", "floats", "ranks", "seconds", "note"], &csv)?,
        w.png,
        w.svg,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes_and_the_link_model() {
        assert_eq!(paper_floats(), vec![12_058_624, 60_293_120, 143_654_912]);
        let l = link().unwrap();
        // 230 MiB over 8 ranks at 625 MB/s: 1.75 · 241.17 MB / 625 MB/s.
        let s = l.allreduce_s(230.0 * FIG4B_MB, 8);
        assert!((s - 1.75 * 230.0 * 1_048_576.0 / 625e6).abs() < 1e-12, "{s}");
    }
}
