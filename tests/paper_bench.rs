//! The measured paper items (Fig. 3: memory, Fig. 4(b): gradient synchronisation): their smoke
//! scripts run end to end into a temporary directory and write every file that
//! results/paper/README.md names for them, with paper cells in table.md; over the smoke outputs the
//! peak memory never falls as the batch grows (at a fixed optimiser) and Adam's is at least SGD's
//! (at a fixed batch); Fig. 4(b)'s link-model rows are the training clock's ring allreduce at
//! 5 Gbps, recomputed here from the formula, and grow with the size; and the paper scale of both
//! logs what it would run without running it.
mod common;
use common::paper::{read, root};
use std::collections::HashMap;
use std::path::Path;

fn tmp(tag: &str) -> std::path::PathBuf {
    common::paper::fresh_tmp(&format!("paper-bench-{tag}"))
}

fn readme_files(id: &str) -> Vec<String> {
    common::paper::readme_files(&read(&root().join("results/paper/README.md")), id)
}

fn script(id: &str, scale: &str, out: &Path) -> String {
    common::paper::script(id, scale, out, &[])
}

/// A CSV file (unquoted fields) as records.
fn csv(p: &Path) -> Vec<HashMap<String, String>> {
    let text = read(p);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_string)).collect())
        .collect()
}

fn num(r: &HashMap<String, String>, k: &str) -> f64 {
    r[k].parse().unwrap_or_else(|_| panic!("{k} in {r:?}"))
}

fn check_files(id: &str, out: &Path) {
    for f in readme_files(id) {
        let f = f.replace("bench/*.csv", "bench/resnet152-batch.csv").replace("bench/exchange-np*.csv", "bench/exchange-np2.csv");
        assert!(out.join(&f).is_file(), "{id}: {f} not written");
    }
    let md = read(&out.join("table.md"));
    assert!(md.contains("· ours ") && md.contains("[P-fig]"), "{id}: no paper cells in\n{md}");
}

#[test]
fn fig3_smoke_memory_grows_with_the_batch_and_adam_holds_more() {
    let out = tmp("fig3");
    script("fig3", "smoke", &out);
    check_files("fig3", &out);
    let rows = csv(&out.join("fig3.csv"));
    assert!(rows.len() >= 12, "{rows:?}");
    // (paper model, panel, optimiser) -> (batch, peak) in batch order.
    let mut by: HashMap<(String, String, String), Vec<(u64, f64)>> = HashMap::new();
    for r in &rows {
        by.entry((r["paper_model"].clone(), r["panel"].clone(), r["optimizer"].clone()))
            .or_default()
            .push((num(r, "batch") as u64, num(r, "peak_mib")));
    }
    let mut checked = 0;
    for (k, v) in by.iter_mut() {
        v.sort_by_key(|x| x.0);
        for w in v.windows(2) {
            assert!(w[1].1 >= w[0].1, "{k:?}: peak falls from batch {} to {}: {v:?}", w[0].0, w[1].0);
            checked += 1;
        }
    }
    assert!(checked >= 6, "too few batch pairs: {by:?}");
    let mut pairs = 0;
    for ((m, panel, opt), v) in &by {
        if opt != "adam" {
            continue;
        }
        let sgd = &by[&(m.clone(), panel.clone(), "sgd".to_string())];
        for (b, adam) in v {
            let s = sgd.iter().find(|x| x.0 == *b).unwrap_or_else(|| panic!("{m} {panel}: no SGD at batch {b}"));
            assert!(*adam >= s.1, "{m} {panel} batch {b}: Adam {adam} MiB < SGD {} MiB", s.1);
            pairs += 1;
        }
    }
    assert!(pairs >= 4, "{by:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn fig4b_smoke_link_model_is_the_ring_allreduce_at_5_gbps() {
    let out = tmp("fig4b");
    script("fig4b", "smoke", &out);
    check_files("fig4b", &out);
    let rows = csv(&out.join("fig4b.csv"));
    let mut by_ranks: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for r in rows.iter().filter(|r| r["source"] == "link-model") {
        let (bytes, p, s) = (num(r, "bytes"), num(r, "ranks"), num(r, "seconds"));
        // Ring allreduce: 2(p−1)/p · bytes over 5·10^9/8 bytes/s (training's default latency is 0).
        let want = 2.0 * (p - 1.0) / p * bytes / (5e9 / 8.0);
        assert!((s - want).abs() <= 1e-6 * want, "{r:?}: {s} vs {want}");
        assert_eq!(num(r, "floats") * 4.0, bytes);
        by_ranks.entry(p as u64).or_default().push((bytes, s));
    }
    assert_eq!(by_ranks.keys().copied().max(), Some(16));
    assert_eq!(by_ranks[&8].len(), 3);
    // The paper's sizes in MiB: 46, 230, 548.
    let mbs: Vec<f64> = by_ranks[&8].iter().map(|x| x.0 / 1_048_576.0).collect();
    assert_eq!(mbs, vec![46.0, 230.0, 548.0]);
    for v in by_ranks.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(v.windows(2).all(|w| w[1].1 > w[0].1), "not increasing: {v:?}");
    }
    let measured: Vec<_> = rows.iter().filter(|r| r["source"] == "measured").collect();
    assert_eq!(measured.len(), 3, "{rows:?}");
    assert!(measured.iter().all(|r| r["ranks"] == "2" && num(r, "seconds") > 0.0), "{measured:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn paper_scale_logs_what_it_would_run() {
    for (id, want) in [("fig3", vec!["--model resnet152 --shape torchvision --num-classes 1000", "--model vgg19_bn --shape torchvision", "--batch 32,128,256,512,1024,2048", "--optimizer sgd,nesterov,adam"]), ("fig4b", vec!["scripts/mpirun.sh 8 ", "--dense-only --n 12058624,60293120,143654912"])] {
        let out = tmp(&format!("{id}-paper"));
        let text = script(id, "paper", &out);
        let cmds = read(&out.join("commands.txt"));
        assert!(cmds.matches("# would run: ").count() >= 1 && text.contains("# would run: "), "{id}: {cmds}");
        for w in want {
            assert!(cmds.contains(w), "{id}: '{w}' not in {cmds}");
        }
        let bench = out.join("bench");
        let ran: Vec<_> = std::fs::read_dir(&bench).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        assert!(ran.is_empty(), "{id}: paper scale measured something: {ran:?}");
        assert!(read(&out.join("table.md")).contains("easured at this scale"), "{id}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
