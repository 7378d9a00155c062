//! The items built from the shared ScaDLES/DDL runs (Table VI, Figs. 6 and 7, Table IV): their
//! smoke scripts run end to end into a temporary directory and write every file that
//! results/paper/README.md names for them; over the smoke runs (deterministic: virtual clock with
//! the compute model) the truncation buffer is never above the persistence buffer, and is below it
//! in the cells whose iteration outlasts the one-second window (the VGG19 ones); and the paper
//! scale logs its runs without running them.
mod common;
use common::paper::{check_readme_files, read};
use std::path::Path;

const ITEMS: [&str; 4] = ["table6", "fig6", "fig7", "table4"];

fn script(id: &str, scale: &str, out: &Path, runs: &Path) -> String {
    common::paper::script(id, scale, out, &[("PAPER_RUNS", runs)])
}

#[test]
fn smoke_scripts_write_every_file_and_truncation_buffers_less() {
    let tmp = std::env::temp_dir().join(format!("scadles-paper-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let runs = tmp.join("runs");
    for id in ITEMS {
        let out = tmp.join(id);
        script(id, "smoke", &out, &runs);
        check_readme_files(&out, id);
        assert!(read(&out.join("table.md")).contains("paper "), "{id}");
    }
    // Every cell ran once: the later scripts kept the first one's runs.
    let cmds = read(&tmp.join("table4/commands.txt"));
    assert_eq!(cmds.matches("# kept: ").count(), 8, "{cmds}");

    let csv = read(&tmp.join("table4/table4.csv"));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (model, per, tru) = (
        col("model"),
        col("persistence_samples"),
        col("truncation_samples"),
    );
    let mut rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (p, t): (u64, u64) = (f[per].parse().unwrap(), f[tru].parse().unwrap());
        assert!(t <= p, "truncation above persistence: {l}");
        if f[model] == "vgg19" {
            assert!(t < p, "VGG19 iterations outlast the window, yet {l}");
        }
        rows += 1;
    }
    assert_eq!(rows, 8);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn paper_scale_logs_the_runs_without_running_them() {
    let tmp = std::env::temp_dir().join(format!("scadles-paper-runs-p-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let runs = tmp.join("runs");
    let text = script("table4", "paper", &tmp.join("table4"), &runs);
    let cmds = read(&tmp.join("table4/commands.txt"));
    assert_eq!(cmds.matches("# would run: ").count(), 16, "{cmds}");
    assert!(
        cmds.contains("--model resnet152 --shape torchvision")
            && cmds.contains("--model vgg19_bn")
            && cmds.contains("--dataset cifar100"),
        "{cmds}"
    );
    assert!(text.contains("PAPER_DATA_DIR"), "{text}");
    assert!(
        std::fs::read_dir(&runs).unwrap().next().is_none(),
        "paper scale ran something"
    );
    assert!(read(&tmp.join("table4/table.md")).contains("not yet run"));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The paper scale really runs (PAPER_EXECUTE=1): one cell of the shared runs with the paper's
/// configuration (resnet152 in torchvision shape, 1000-way head, CIFAR-10 read from PAPER_DATA_DIR,
/// the K80 compute model, the link sized as ResNet152), for two tiny steps on 2 ranks over a small
/// CIFAR-10 written in the real binary format.
#[test]
fn paper_scale_runs_a_cell_for_a_few_steps() {
    use scadles::data::cifar::write_cifar10;
    use scadles::data::Dataset;
    let tmp = common::paper::fresh_tmp("paper-runs-exec");
    let data = tmp.join("cifar").join("cifar-10-batches-bin");
    std::fs::create_dir_all(&data).unwrap();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut set = |n: usize| Dataset { images: (0..n * 3072).map(|_| (next() >> 24) as u8).collect(), labels: (0..n).map(|i| (i % 10) as u16).collect(), num_classes: 10 };
    for b in 1..=5 {
        write_cifar10(&data.join(format!("data_batch_{b}.bin")), &set(40)).unwrap();
    }
    write_cifar10(&data.join("test_batch.bin"), &set(20)).unwrap();
    let runs = tmp.join("runs");
    let args = "--steps 2 --rates 8,8 --batch 8 --eval-samples 8 --threads 1";
    common::paper::script(
        "table6",
        "paper",
        &tmp.join("table6"),
        &[("PAPER_RUNS", &runs), ("PAPER_EXECUTE", std::path::Path::new("1")), ("PAPER_CELLS", std::path::Path::new("S1-resnet152")), ("PAPER_NP", std::path::Path::new("2")), ("PAPER_DATA_DIR", &tmp.join("cifar")), ("PAPER_ARGS", std::path::Path::new(args))],
    );
    for side in ["scadles", "ddl", "persistence"] {
        let dir = runs.join("S1-resnet152").join(side);
        let v: serde_json::Value = serde_json::from_str(&read(&dir.join("summary.json"))).unwrap();
        assert_eq!(v["model"], "resnet152", "{side}");
        assert_eq!(v["params"].as_u64(), Some(60_192_808), "{side}");
        assert_eq!(v["ranks"].as_u64(), Some(2), "{side}");
        assert_eq!(v["steps"].as_u64(), Some(2), "{side}");
        assert!(v["compute_model"].as_str().unwrap().contains("k80-resnet152"), "{side}: {}", v["compute_model"]);
        let cfg: serde_json::Value = serde_json::from_str(&read(&dir.join("config.json"))).unwrap();
        assert_eq!(cfg["dataset"], "cifar10", "{side}");
    }
    let cmds = read(&runs.join("S1-resnet152").join("commands.txt"));
    assert!(cmds.contains("--shape torchvision") && cmds.contains(args), "{cmds}");
    assert!(read(&tmp.join("table6/table.md")).contains("S1"));
    let _ = std::fs::remove_dir_all(&tmp);
}
