//! The analytic paper items (Tables I–III, Figs. 1 and 4a): their smoke scripts run end to end and
//! write every file that results/paper/README.md names for them; the committed results are what the
//! scripts write; and the committed Table II and Fig. 4(a) cells agree with Eq. 3, computed here
//! independently of the library.
mod common;
use common::paper::{check_readme_files, fresh_tmp, read, root, script};
use std::process::Command;

const ITEMS: [&str; 5] = ["table1", "table2", "table3", "fig1", "fig4a"];

/// The cells of the data rows of the first markdown table in `md` after the line starting with
/// `header` (the header's first cell).
fn table_rows(md: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = md
        .lines()
        .skip_while(|l| !l.starts_with(&format!("| {header} |")));
    assert!(lines.next().is_some(), "no table with header '{header}'");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// A cell `paper X [TAG] · ours Y · ×R|Δ D` as (X text, tag, Y text, relation text).
fn cell(c: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = c.split(" · ").collect();
    assert_eq!(parts.len(), 3, "cell '{c}'");
    let paper = parts[0]
        .strip_prefix("paper ")
        .unwrap_or_else(|| panic!("cell '{c}'"));
    let (x, tag) = paper.rsplit_once(' ').unwrap();
    let y = parts[1]
        .strip_prefix("ours ")
        .unwrap_or_else(|| panic!("cell '{c}'"));
    (
        x.to_string(),
        tag.to_string(),
        y.to_string(),
        parts[2].to_string(),
    )
}

fn decimals(s: &str) -> i32 {
    s.split_once('.').map_or(0, |(_, f)| f.len() as i32)
}

/// |printed − exact| within half a unit of the printed number's last digit.
fn printed_matches(printed: &str, exact: f64) -> bool {
    let v: f64 = printed
        .parse()
        .unwrap_or_else(|_| panic!("'{printed}' is not a number"));
    (v - exact).abs() <= 0.5 * 10f64.powi(-decimals(printed)) + 1e-12 * exact.abs().max(1.0)
}

#[test]
fn smoke_scripts_write_every_file_their_readme_row_names() {
    let tmp = fresh_tmp("paper-analytic");
    for id in ITEMS {
        let out = tmp.join(id);
        script(id, "smoke", &out, &[]);
        for f in check_readme_files(&out, id) {
            // The committed results are what the script writes (the analytic items are
            // deterministic; commands.txt carries a date and the figures are checked above).
            if f.ends_with(".md") || f.ends_with(".csv") {
                let committed = root().join("results/paper").join(id).join(&f);
                assert_eq!(read(&out.join(&f)), read(&committed), "{id}: {f} differs from the committed {}", committed.display());
            }
        }
        let cmds = read(&out.join("commands.txt"));
        assert!(
            cmds.starts_with(&format!("# command: scripts/paper/{id}.sh --scale smoke")),
            "{cmds}"
        );
        assert!(
            cmds.contains("# commit: ") && cmds.contains("# date: "),
            "{cmds}"
        );
        assert!(cmds.contains(&format!(" report {id} --out ")), "{cmds}");
    }
    // A bad scale stops the script with a one-line error before anything runs.
    let o = Command::new("bash")
        .arg(root().join("scripts/paper/table2.sh"))
        .args(["--scale", "huge", "--out"])
        .arg(tmp.join("bad"))
        .env("SCADLES_BIN", env!("CARGO_BIN_EXE_scadles"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected smoke, quick or paper"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Table II: every cell's paper value is the published one, ours is Eq. 3 (Q = T·t·S + S samples of
/// 3072 bytes, in GiB) and the ratio is ours/paper.
#[test]
fn committed_table2_cells_follow_eq3() {
    let md = read(&root().join("results/paper/table2/table.md"));
    let rows = table_rows(&md, "Model");
    let published = [
        ("ResNet152", 1.2, 100.0, ["0.35", "3.5", "34.33"]),
        ("ResNet152", 1.2, 600.0, ["2.06", "20.6", "200.6"]),
        ("VGG19", 1.6, 100.0, ["0.47", "4.69", "46.8"]),
        ("VGG19", 1.6, 600.0, ["2.75", "27.5", "274.83"]),
    ];
    assert_eq!(rows.len(), published.len(), "{md}");
    let mut checked = 0;
    for (row, (model, t, s, cells)) in rows.iter().zip(published) {
        assert_eq!(row[0], model);
        assert_eq!(row[1].parse::<f64>().unwrap(), t);
        assert_eq!(row[2].parse::<f64>().unwrap(), s);
        for (k, (c, paper)) in row[3..6].iter().zip(cells).enumerate() {
            let iters = 10f64.powi(3 + k as i32);
            let gib = (iters * t * s + s) * 3072.0 / 1024f64.powi(3);
            let (x, tag, y, rel) = cell(c);
            assert_eq!(
                (x.as_str(), tag.as_str()),
                (paper, "[P]"),
                "{model} S={s} T={iters}"
            );
            assert!(
                printed_matches(&y, gib),
                "{model} S={s} T={iters}: ours {y}, Eq. 3 {gib}"
            );
            let r: f64 = rel
                .strip_prefix('×')
                .unwrap_or_else(|| panic!("'{rel}'"))
                .parse()
                .unwrap();
            assert!(
                (r - gib / paper.parse::<f64>().unwrap()).abs() <= 5e-4 + 1e-12,
                "{model} S={s} T={iters}: ×{r}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
    // The typo and the count of differing cells are stated.
    assert!(
        md.contains("7 of 12 cells differ") && md.contains("typo for 206.0"),
        "{md}"
    );
}

/// Fig. 4(a): log10 Q at T = 5000 is log10(5000·tS + 10), the paper's readings beside it, Δ = ours − paper.
#[test]
fn committed_fig4a_cells_follow_eq3() {
    let md = read(&root().join("results/paper/fig4a/table.md"));
    let rows = table_rows(&md, "tS");
    let readings = [
        (0.0, "1 (flat)", 1.0),
        (10.0, "≈4.7", 4.7),
        (100.0, "≈5.7", 5.7),
        (600.0, "≈6.5", 6.5),
    ];
    assert_eq!(rows.len(), readings.len(), "{md}");
    for (row, (ts, text, value)) in rows.iter().zip(readings) {
        assert_eq!(row[0].parse::<f64>().unwrap(), ts);
        let q = 5000.0 * ts + 10.0;
        let (x, tag, y, rel) = cell(&row[1]);
        assert_eq!((x.as_str(), tag.as_str()), (text, "[P-fig]"));
        assert!(
            printed_matches(&y, q.log10()),
            "tS={ts}: ours {y}, Eq. 3 {}",
            q.log10()
        );
        let d: f64 = rel
            .strip_prefix("Δ ")
            .unwrap_or_else(|| panic!("'{rel}'"))
            .parse()
            .unwrap();
        assert!(
            (d - (q.log10() - value)).abs() <= 5e-4 + 1e-12,
            "tS={ts}: Δ {d}"
        );
        // Read off a figure: within 0.05 of the curve.
        assert!(d.abs() < 0.05, "tS={ts}: Δ {d}");
        assert_eq!(row[2].parse::<f64>().unwrap(), q);
    }
    // The CSV holds the whole curves: 101 points per tS, Q = T·tS + 10.
    let csv = read(&root().join("results/paper/fig4a/fig4a.csv"));
    let mut n = 0;
    for line in csv.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v[2], v[0] * v[1] + 10.0, "{line}");
        assert!((v[3] - v[2].log10()).abs() < 1e-6, "{line}");
        n += 1;
    }
    assert_eq!(n, 4 * 101);
}
