//! The non-IID items (Figs. 2, 8 and 9): their smoke scripts run end to end into a temporary
//! directory and write every file that results/paper/README.md names for them, with the paper's
//! values in table.md; over the smoke Fig. 9 runs (deterministic: virtual clock with the compute
//! model) the total injected bytes strictly increase in (α, β) at every rate set and are zero
//! without injection; and the paper scale logs its runs without running them.
mod common;
use common::paper::{fresh_tmp, read, readme_files, root};
use std::collections::BTreeMap;
use std::path::Path;

const ITEMS: [&str; 3] = ["fig9", "fig8", "fig2"];

fn script(id: &str, scale: &str, out: &Path, runs: &Path) -> String {
    common::paper::script(id, scale, out, &[("PAPER_NONIID", runs)])
}

#[test]
fn smoke_scripts_write_every_file_and_injection_grows_with_alpha_beta() {
    let tmp = fresh_tmp("paper-noniid");
    let runs = tmp.join("noniid");
    let readme = read(&root().join("results/paper/README.md"));
    for id in ITEMS {
        let out = tmp.join(id);
        script(id, "smoke", &out, &runs);
        let files = readme_files(&readme, id);
        assert!(files.len() >= 5, "{id}: README row names {files:?}");
        for f in files {
            assert!(out.join(&f).is_file(), "{id}: {f} not written");
        }
        let table = read(&out.join("table.md"));
        assert!(table.contains("[P-fig]") && table.contains("paper ") && table.contains("· ours "), "{id}: {table}");
        assert!(!table.contains("not yet run"), "{id}: a smoke run is missing: {table}");
    }

    // Fig. 9: per rate set, the total injected bytes of each (alpha, beta) from the CSV.
    let csv = read(&tmp.join("fig9/fig9.csv"));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap_or_else(|| panic!("fig9.csv: no column {n}"));
    let (set, inj, total) = (col("set"), col("inject"), col("total_kb"));
    let mut totals: BTreeMap<(String, String), f64> = BTreeMap::new();
    for l in lines {
        // `inject` holds a comma ("0.5,0.5"), so the CSV quotes it.
        let f = split_csv(l);
        *totals.entry((f[set].clone(), f[inj].clone())).or_default() += f[total].parse::<f64>().unwrap();
    }
    let order = ["0.5,0.5", "0.25,0.25", "0.1,0.1", "0.05,0.05"];
    for s in ["S1", "S2", "S1p", "S2p"] {
        let t = |i: &str| *totals.get(&(s.to_string(), i.to_string())).unwrap_or_else(|| panic!("fig9.csv: no rows for {s} {i}"));
        for w in order.windows(2) {
            assert!(t(w[0]) > t(w[1]), "{s}: {} injects {} KB, not more than {}'s {} KB", w[0], t(w[0]), w[1], t(w[1]));
        }
        assert!(t("0.05,0.05") > 0.0, "{s}: (.05,.05) injects nothing");
        assert_eq!(t("none"), 0.0, "{s}: no injection injected bytes");
    }
    // Fig. 8 and Fig. 2 kept Fig. 9's runs apart: their own run directories exist.
    assert!(runs.join("scadles-S1p-none/summary.json").is_file());
    assert!(runs.join("ddl-iid-r4/summary.json").is_file());
    let _ = std::fs::remove_dir_all(&tmp);
}

fn split_csv(l: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in l.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn paper_scale_logs_the_runs_without_running_them() {
    let tmp = fresh_tmp("paper-noniid-p");
    let runs = tmp.join("noniid");
    for (id, n) in [("fig8", 5), ("fig9", 20), ("fig2", 4)] {
        let text = script(id, "paper", &tmp.join(id), &runs);
        let cmds = read(&tmp.join(format!("{id}/commands.txt")));
        assert_eq!(cmds.matches("# would run: ").count(), n, "{id}: {cmds}");
        assert!(
            cmds.contains("--model resnet152 --shape torchvision --num-classes 1000 --dataset cifar10")
                && cmds.contains("--partition label-shard"),
            "{id}: {cmds}"
        );
        assert!(text.contains("PAPER_DATA_DIR"), "{id}: {text}");
        assert!(read(&tmp.join(format!("{id}/table.md"))).contains("[P-fig]"), "{id}");
    }
    assert!(read(&tmp.join("fig2/commands.txt")).contains("--model vgg19_bn") && read(&tmp.join("fig2/commands.txt")).contains("--dataset cifar100"));
    assert!(std::fs::read_dir(&runs).unwrap().next().is_none(), "paper scale ran something");
    let _ = std::fs::remove_dir_all(&tmp);
}
