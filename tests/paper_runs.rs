//! The items built from the shared ScaDLES/DDL runs (Table VI, Figs. 6 and 7, Table IV): their
//! smoke scripts run end to end into a temporary directory and write every file that
//! results/paper/README.md names for them; over the smoke runs (deterministic: virtual clock with
//! the compute model) the truncation buffer is never above the persistence buffer, and is below it
//! in the cells whose iteration outlasts the one-second window (the VGG19 ones); and the paper
//! scale logs its runs without running them.
use std::path::{Path, PathBuf};
use std::process::Command;

const ITEMS: [&str; 4] = ["table6", "fig6", "fig7", "table4"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The file names in backticks in the files column of README.md's row for `scripts/paper/<id>.sh`.
fn readme_files(readme: &str, id: &str) -> Vec<String> {
    let script = format!("`scripts/paper/{id}.sh`");
    let row = readme
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&script))
        .unwrap_or_else(|| panic!("results/paper/README.md has no row for {script}"));
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    cols[3]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn script(id: &str, scale: &str, out: &Path, runs: &Path) -> String {
    let o = Command::new("bash")
        .arg(root().join(format!("scripts/paper/{id}.sh")))
        .args(["--scale", scale, "--out"])
        .arg(out)
        .env("SCADLES_BIN", env!("CARGO_BIN_EXE_scadles"))
        .env("PAPER_RUNS", runs)
        .env_remove("PAPER_CELLS")
        .env_remove("PAPER_EXECUTE")
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{id} --scale {scale}: {text}");
    text
}

#[test]
fn smoke_scripts_write_every_file_and_truncation_buffers_less() {
    let tmp = std::env::temp_dir().join(format!("scadles-paper-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let runs = tmp.join("runs");
    let readme = read(&root().join("results/paper/README.md"));
    for id in ITEMS {
        let out = tmp.join(id);
        script(id, "smoke", &out, &runs);
        for f in readme_files(&readme, id) {
            assert!(out.join(&f).is_file(), "{id}: {f} not written");
        }
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
