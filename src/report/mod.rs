//! `scadles report <ID> --out DIR [--scale smoke|quick|paper]`: regenerates one of the paper's
//! tables or figures into DIR, with the paper's published value beside ours in every cell.
//!
//! Each item writes its data as CSV, its figure as PNG and SVG (through [`crate::metrics::plot`])
//! and `table.md`. `scripts/paper/<id>.sh` runs it and adds `commands.txt`. The pieces every item
//! uses live here:
//! - [`Doc`]: the `table.md` writer (title, paragraphs, [`Table`]s, notes, and the legend of the
//!   cell format);
//! - [`vs`] / [`vs_text`]: one cell, `paper X [TAG] · ours Y · ×R` (ratio ours/paper) or `· Δ D`
//!   (difference ours − paper); [`ours_only`] where the paper has no value;
//! - [`write_csv`]: a CSV file (RFC 4180 quoting);
//! - [`Summary`]: n, mean, sample std, min, median, max of a list;
//! - [`paper`]: the published values with their source tags.
//!
//! An item is a function from [`Ctx`] (output directory, scale) to the files it wrote, listed in
//! [`ITEMS`]. The analytic items (Tables I–III, Figs. 1 and 4a) are the same at every scale.
use crate::error::{Error, Result};
use paper::Published;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub mod fig1;
pub mod fig2;
pub mod fig3;
pub mod fig4a;
pub mod fig4b;
pub mod fig6;
pub mod fig7;
pub mod fig8;
pub mod fig9;
pub mod paper;
pub mod runs;
pub mod table1;
pub mod table2;
pub mod table3;
pub mod table4;
pub mod table5;
pub mod table6;

/// How large a reproduction runs: `smoke` (seconds, end to end), `quick` (a 2-core machine),
/// `paper` (the paper's own configuration, on a cluster).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    Smoke,
    #[default]
    Quick,
    Paper,
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scale::Smoke => "smoke",
            Scale::Quick => "quick",
            Scale::Paper => "paper",
        })
    }
}

/// What one item gets: where to write, at which scale, and where the shared ScaDLES/DDL runs are
/// (Table IV, Table VI, Figs. 6 and 7).
pub struct Ctx<'a> {
    pub out: &'a Path,
    pub scale: Scale,
    pub runs: &'a Path,
}

impl Ctx<'_> {
    /// `out/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// An item: writes its files under `ctx.out` and returns their paths.
pub type Item = fn(&Ctx) -> Result<Vec<PathBuf>>;

/// Every item `scadles report` knows: id, what it reproduces, the function.
pub const ITEMS: &[(&str, &str, Item)] = &[
    (
        "table1",
        "Table I: the rate sets drawn for 16 devices, and the reference code's lists",
        table1::run,
    ),
    (
        "table2",
        "Table II: data accumulated under persistence, Eq. 3",
        table2::run,
    ),
    (
        "table3",
        "Table III: models, parameters, devices, labels per device",
        table3::run,
    ),
    (
        "fig1",
        "Fig. 1: latency to collect 64/128/256/512 samples per rate set",
        fig1::run,
    ),
    (
        "fig3",
        "Fig. 3: peak memory vs batch size and by optimiser (OUT/bench/*.csv from `scadles bench memory`)",
        fig3::run,
    ),
    ("fig4a", "Fig. 4(a): log10(Q) vs T from Eq. 3", fig4a::run),
    (
        "fig4b",
        "Fig. 4(b): gradient synchronisation time vs size, link model and OUT/bench/exchange-np*.csv",
        fig4b::run,
    ),
    (
        "table4",
        "Table IV: ScaDLES buffer under persistence vs truncation at the target (shared runs)",
        table4::run,
    ),
    (
        "table5",
        "Table V: adaptive compression, CR × δ, both criteria: CNC ratio, accuracy, floats sent to the target",
        table5::run,
    ),
    (
        "table6",
        "Table VI: ScaDLES vs the paper's DDL: accuracy drop, buffer reduction, speedup (shared runs)",
        table6::run,
    ),
    (
        "fig6",
        "Fig. 6: accuracy vs clock hours, ScaDLES vs DDL, per rate set (shared runs)",
        fig6::run,
    ),
    (
        "fig7",
        "Fig. 7: log10 buffer samples vs epochs under persistence, both policies (shared runs)",
        fig7::run,
    ),
    (
        "fig2",
        "Fig. 2: IID vs non-IID accuracy in conventional DDL (non-IID runs)",
        fig2::run,
    ),
    (
        "fig8",
        "Fig. 8: non-IID accuracy vs epochs per data-injection setting (α, β) (non-IID runs)",
        fig8::run,
    ),
    (
        "fig9",
        "Fig. 9: KB injected per iteration per (α, β) and rate set (non-IID runs)",
        fig9::run,
    ),
];

/// `scadles report` arguments.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The table or figure: table1, table2, table3, table4, table5, table6, fig1, fig2, fig3, fig4a, fig4b,
    /// fig6, fig7, fig8, fig9
    pub id: String,
    /// Output directory [default: results/paper/<ID>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The shared runs of table4, table6, fig6, fig7 (scripts/paper/runs.sh), or the non-IID runs
    /// of fig2, fig8, fig9 (results/paper/noniid; the scripts pass it) [default: results/paper/runs
    /// at quick scale, results/paper/<SCALE>/runs otherwise]
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// smoke (seconds), quick (a 2-core machine) or paper (the paper's configuration)
    #[arg(long, value_enum, default_value_t = Scale::Quick)]
    pub scale: Scale,
}

/// The shared runs' default directory at `scale`.
pub fn default_runs(scale: Scale) -> PathBuf {
    match scale {
        Scale::Quick => PathBuf::from("results/paper/runs"),
        s => PathBuf::from(format!("results/paper/{s}/runs")),
    }
}

/// Runs the item `id` into `out` (created if missing); returns the files written. The items built
/// from the shared runs read them from [`default_runs`].
pub fn run(id: &str, out: &Path, scale: Scale) -> Result<Vec<PathBuf>> {
    run_with_runs(id, out, scale, &default_runs(scale))
}

/// [`run`] with the shared runs read from `runs`.
pub fn run_with_runs(id: &str, out: &Path, scale: Scale, runs: &Path) -> Result<Vec<PathBuf>> {
    let Some(&(_, _, item)) = ITEMS.iter().find(|(name, _, _)| *name == id) else {
        let known: Vec<&str> = ITEMS.iter().map(|i| i.0).collect();
        crate::bail!(
            Config,
            "report: unknown item '{id}'; expected one of {}",
            known.join(", ")
        );
    };
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    item(&Ctx { out, scale, runs })
}

/// `scadles report`: runs the item and prints each file written.
pub fn main(a: &ReportArgs) -> Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/paper").join(&a.id));
    let runs = a.runs.clone().unwrap_or_else(|| default_runs(a.scale));
    for f in run_with_runs(&a.id, &out, a.scale, &runs)? {
        println!("{}", f.display());
    }
    Ok(())
}

/// How a cell sets ours against the paper's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `×R`, R = ours / paper (3 decimals).
    Ratio,
    /// `Δ D`, D = ours − paper, with the given decimals.
    Diff(usize),
}

/// A cell: `paper X [TAG] · ours Y · ×R` or `… · Δ D`, with ours printed to `decimals`.
pub fn vs(paper: &Published, ours: f64, decimals: usize, cmp: Cmp) -> String {
    vs_text(paper, ours, &format!("{ours:.decimals$}"), cmp)
}

/// [`vs`] with ours already formatted as `ours_text` (the comparison still uses `ours`).
pub fn vs_text(paper: &Published, ours: f64, ours_text: &str, cmp: Cmp) -> String {
    cell(paper.text, paper.value, paper.source, ours, ours_text, cmp)
}

/// [`vs`] for a paper value derived from published ones (a ratio of two readings, say): `value`
/// printed to `decimals` with the tag of `source`, ours to the same decimals.
pub fn vs_derived(value: f64, source: paper::Source, ours: f64, decimals: usize, cmp: Cmp) -> String {
    cell(&format!("{value:.decimals$}"), value, source, ours, &format!("{ours:.decimals$}"), cmp)
}

fn cell(paper_text: &str, paper_value: f64, source: paper::Source, ours: f64, ours_text: &str, cmp: Cmp) -> String {
    let c = match cmp {
        Cmp::Ratio if paper_value != 0.0 => format!("×{:.3}", ours / paper_value),
        Cmp::Ratio => "×—".to_string(),
        Cmp::Diff(d) => format!("Δ {:+.d$}", ours - paper_value),
    };
    format!("paper {paper_text} {} · ours {ours_text} · {c}", source.tag())
}

/// A cell where the paper gives no value: `paper — · ours Y`.
pub fn ours_only(ours_text: &str) -> String {
    format!("paper — · ours {ours_text}")
}

/// An integer with thousands separators: 60192808 → `60,192,808`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A markdown table: a header and rows of cells (`|` in a cell is escaped).
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }

    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| -> String {
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut s = line(&self.header);
        s.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

/// The `table.md` writer: a title, then paragraphs, tables and notes in the order added. The legend
/// of the cell format follows the title.
pub struct Doc {
    text: String,
}

/// What the cells of every `table.md` mean.
pub const CELL_LEGEND: &str = "Each cell: `paper X [TAG] · ours Y · ×R` (R = ours/paper) or `· Δ D` (D = ours − paper); \
`paper —` where the paper gives no value. Tags: [P] stated in the paper, [P-fig] read off a figure by eye \
(about ±5% of the axis range), [C] the authors' code, [I] inferred.";

impl Doc {
    pub fn new(title: &str) -> Self {
        Doc {
            text: format!("# {title}\n\n{CELL_LEGEND}\n"),
        }
    }

    pub fn para(&mut self, p: &str) -> &mut Self {
        let _ = write!(self.text, "\n{p}\n");
        self
    }

    pub fn heading(&mut self, h: &str) -> &mut Self {
        let _ = write!(self.text, "\n## {h}\n");
        self
    }

    pub fn table(&mut self, t: &Table) -> &mut Self {
        let _ = write!(self.text, "\n{}", t.markdown());
        self
    }

    /// A bulleted list under "Notes".
    pub fn notes(&mut self, notes: &[String]) -> &mut Self {
        if !notes.is_empty() {
            self.text.push_str("\nNotes:\n");
            for n in notes {
                let _ = writeln!(self.text, "- {n}");
            }
        }
        self
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Writes the document to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        crate::metrics::write_atomic(path, self.text.as_bytes())?;
        Ok(path.to_path_buf())
    }
}

/// Writes a CSV file atomically: the header, then one line per row; a field holding a comma, a
/// quote or a line break is quoted (quotes doubled).
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<PathBuf> {
    let field = |f: &str| -> String {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut s = String::new();
    let line = |s: &mut String, cells: Vec<String>| {
        s.push_str(&cells.join(","));
        s.push('\n');
    };
    line(&mut s, header.iter().map(|h| field(h)).collect());
    for r in rows {
        line(&mut s, r.iter().map(|c| field(c)).collect());
    }
    crate::metrics::write_atomic(path, s.as_bytes())?;
    Ok(path.to_path_buf())
}

/// One CSV record: the header's names to the fields.
pub type Record = std::collections::HashMap<String, String>;

/// Reads a CSV file of unquoted fields (as `scadles bench` writes them) into records, `None` when
/// the file does not exist. A line with another number of fields than the header is an error.
pub fn read_csv(path: &Path) -> Result<Option<Vec<Record>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != header.len() {
                crate::bail!(Other, "{}: line {}: {} fields, the header has {}", path.display(), i + 2, f.len(), header.len());
            }
            Ok(header.iter().zip(f).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        })
        .collect::<Result<Vec<Record>>>()
        .map(Some)
}

/// The field `key` of `r` parsed as `T`, or an error naming the file.
pub fn field<T: std::str::FromStr>(r: &Record, key: &str, path: &Path) -> Result<T> {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Other(format!("{}: field '{key}' missing or not a number in {r:?}", path.display())))
}

/// Summary statistics of a list; the standard deviation is the sample one (n − 1), 0 for n < 2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty list.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let ss = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
        let std = if n > 1 {
            (ss / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        };
        Some(Summary {
            n,
            mean,
            std,
            min: s[0],
            median,
            max: s[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paper::Source;

    #[test]
    fn cells_show_paper_ours_and_their_relation() {
        let p = Published {
            value: 0.35,
            text: "0.35",
            source: Source::P,
        };
        assert_eq!(
            vs(&p, 0.343_6, 4, Cmp::Ratio),
            "paper 0.35 [P] · ours 0.3436 · ×0.982"
        );
        let f = Published {
            value: 4.7,
            text: "≈4.7",
            source: Source::PFig,
        };
        assert_eq!(
            vs(&f, 4.699, 3, Cmp::Diff(3)),
            "paper ≈4.7 [P-fig] · ours 4.699 · Δ -0.001"
        );
        let z = Published {
            value: 0.0,
            text: "0",
            source: Source::I,
        };
        assert_eq!(
            vs_text(&z, 1.0, "1", Cmp::Ratio),
            "paper 0 [I] · ours 1 · ×—"
        );
        assert_eq!(ours_only("7"), "paper — · ours 7");
        assert_eq!(vs_derived(1.25, Source::PFig, 1.5, 2, Cmp::Ratio), "paper 1.25 [P-fig] · ours 1.50 · ×1.200");
        assert_eq!(thousands(60_192_808), "60,192,808");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }

    #[test]
    fn markdown_csv_and_summary() {
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["1".into(), "x|y".into()]);
        assert_eq!(t.markdown(), "| a | b |\n|---|---|\n| 1 | x\\|y |\n");
        let mut d = Doc::new("T");
        d.para("p").table(&t).notes(&["n1".into()]);
        assert!(d.as_str().starts_with("# T\n\nEach cell:"));
        assert!(d.as_str().ends_with("\nNotes:\n- n1\n"), "{}", d.as_str());
        let dir = std::env::temp_dir().join(format!("scadles-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = write_csv(
            &dir.join("x.csv"),
            &["k", "v"],
            &[vec!["a,b".into(), "say \"hi\"".into()]],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "k,v\n\"a,b\",\"say \"\"hi\"\"\"\n"
        );
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(
            (s.n, s.mean, s.min, s.median, s.max),
            (8, 5.0, 2.0, 4.5, 9.0)
        );
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(Summary::of(&[3.0]).unwrap().std, 0.0);
        assert!(Summary::of(&[]).is_none());
        std::fs::write(dir.join("r.csv"), "a,b\n1,x\n\n2,y\n").unwrap();
        let r = read_csv(&dir.join("r.csv")).unwrap().unwrap();
        assert_eq!((r.len(), r[1]["b"].as_str()), (2, "y"));
        assert_eq!(field::<u32>(&r[0], "a", &dir).unwrap(), 1);
        assert!(field::<u32>(&r[0], "b", &dir).is_err());
        assert!(read_csv(&dir.join("none.csv")).unwrap().is_none());
        std::fs::write(dir.join("bad.csv"), "a,b\n1\n").unwrap();
        assert!(read_csv(&dir.join("bad.csv")).unwrap_err().to_string().contains("line 2: 1 fields"));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = run("nope", &dir, Scale::Quick).unwrap_err().to_string();
        assert!(
            e.contains("unknown item 'nope'") && e.contains("table1, table2"),
            "{e}"
        );
    }
}
