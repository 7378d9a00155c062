//! Table V (`scripts/paper/table5.sh`): the smoke script runs the 16 cells of the ResNet152
//! stand-in (CR × δ × criterion) and writes every file its README row names; over those runs
//! (deterministic: virtual clock with the compute model) the CNC ratio never falls as δ grows at a
//! fixed CR and criterion, the runs train on past the target (`--past-target`) to the same number
//! of steps, and the floats sent to the target are those of steps.csv up to the target; the paper
//! scale logs its 32 runs without running them.
mod common;
use common::paper::{check_readme_files, fresh_tmp, read, script};

#[test]
fn smoke_cnc_ratio_never_falls_with_delta_and_floats_stop_at_the_target() {
    let tmp = fresh_tmp("paper-table5");
    let out = tmp.join("table5");
    script("table5", "smoke", &out, &[]);
    check_readme_files(&out, "table5");
    let md = read(&out.join("table.md"));
    assert!(md.contains("paper 0.29 [P] · ours "), "{md}");

    let csv = read(&out.join("table5.csv"));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap_or_else(|| panic!("no column {n}"));
    let (m, crit, cr, delta, cnc, floats, at) = (col("model"), col("criterion"), col("cr"), col("delta"), col("cnc_ratio"), col("floats_to_target"), col("step_at_target"));
    let mut run = 0;
    let mut last: Option<(String, String, f64)> = None;
    let mut compressed_somewhere = false;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f[m] != "resnet152" {
            assert!(f[cnc].is_empty(), "only the ResNet152 stand-in runs at smoke scale: {l}");
            continue;
        }
        run += 1;
        let c: f64 = f[cnc].parse().unwrap();
        assert!((0.0..=1.0).contains(&c), "{l}");
        compressed_somewhere |= c > 0.0;
        // Rows come δ-ascending within (criterion, CR).
        let key = (f[crit].to_string(), f[cr].to_string());
        if let Some((k0, k1, prev)) = &last {
            if (k0, k1) == (&key.0, &key.1) {
                assert!(c >= *prev, "CNC ratio fell from {prev} to {c} as δ rose to {}: {l}", f[delta]);
            }
        }
        last = Some((key.0, key.1, c));

        // The run's own files: it trained to --steps past the target, and the floats to the
        // target are steps.csv's values_sent summed to the step at the target.
        let dir = out.join("runs").join(format!("resnet152-{}-cr{}-d{}", f[crit], f[cr], f[delta]));
        let summary: serde_json::Value = serde_json::from_str(&read(&dir.join("summary.json"))).unwrap();
        assert_eq!(summary["steps"].as_u64(), Some(24), "{}", dir.display());
        let steps = read(&dir.join("steps.csv"));
        let mut sl = steps.lines();
        let sh: Vec<&str> = sl.next().unwrap().split(',').collect();
        let (si, vi) = (sh.iter().position(|h| *h == "step").unwrap(), sh.iter().position(|h| *h == "values_sent").unwrap());
        let rows: Vec<(u64, u64)> = sl.map(|r| { let x: Vec<&str> = r.split(',').collect(); (x[si].parse().unwrap(), x[vi].parse().unwrap()) }).collect();
        assert_eq!(rows.len(), 24);
        let limit = if f[at].is_empty() { u64::MAX } else { f[at].parse().unwrap() };
        if limit != u64::MAX {
            assert!(limit < 24, "the target was met at step {limit}, yet the run trained on: {l}");
            assert_eq!(summary["step_at_target"].as_u64(), Some(limit));
        }
        let sum: u64 = rows.iter().filter(|r| r.0 <= limit).map(|r| r.1).sum();
        assert_eq!(f[floats].parse::<u64>().unwrap(), sum, "{l}");
        assert_eq!(summary["floats_sent_total"].as_u64(), Some(rows.iter().map(|r| r.1).sum()));
    }
    assert_eq!(run, 16);
    assert!(compressed_somewhere, "no smoke cell ever compressed: the δ check would be vacuous");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn paper_scale_logs_the_runs_without_running_them() {
    let tmp = fresh_tmp("paper-table5-p");
    let out = tmp.join("table5");
    let text = script("table5", "paper", &out, &[]);
    let cmds = read(&out.join("commands.txt"));
    assert_eq!(cmds.matches("# would run: ").count(), 32, "{cmds}");
    assert!(cmds.contains("--model resnet152 --shape torchvision") && cmds.contains("--model vgg19_bn") && cmds.contains("--criterion code") && cmds.contains("--past-target"), "{cmds}");
    assert!(text.contains("PAPER_DATA_DIR"), "{text}");
    assert!(std::fs::read_dir(out.join("runs")).unwrap().next().is_none(), "paper scale ran something");
    assert!(read(&out.join("table.md")).contains("not run"));
    let _ = std::fs::remove_dir_all(&tmp);
}
