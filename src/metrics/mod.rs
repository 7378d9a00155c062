//! Per-step and per-eval records, the run summary, and atomic writers for the run directory.
use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub mod plot;

/// One training step, aggregated over ranks (one row of steps.csv).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: u64,
    /// Loss of the global batch (Σ b_i·loss_i / Σ b).
    pub loss: f64,
    /// Scheduled learning rate η(epoch).
    pub lr: f64,
    /// Learning rate applied this step (η·Σb/B for ScaDLES).
    pub lr_step: f64,
    pub global_batch: u64,
    pub b_min: u64,
    pub b_max: u64,
    /// Slowest rank's measured compute (forward, backward, packing), seconds.
    pub compute_s: f64,
    /// Communication time charged to the step (measured, or the link model's), seconds.
    pub comm_s: f64,
    /// Clock time at the end of the step (virtual or real), seconds since the stream started.
    pub clock_s: f64,
    pub wait_max_s: f64,
    pub wait_mean_s: f64,
    pub buffer_max: u64,
    pub buffer_sum: u64,
    /// Largest rank's buffer in bytes (samples × bytes per sample).
    pub buffer_max_bytes: u64,
    /// Injected bytes received by all ranks this step (= bytes sent by all ranks).
    pub injected_bytes: u64,
    /// Most injected bytes one rank received this step.
    pub injected_bytes_recv_max: u64,
    /// Injected bytes received per rank this step, mean over ranks.
    pub injected_bytes_recv_mean: f64,
    /// Most injected bytes one rank sent this step.
    pub injected_bytes_sent_max: u64,
    /// Injected samples received by all ranks this step.
    pub injected_samples: u64,
    pub compressed: bool,
    pub values_sent: u64,
    pub indices_sent: u64,
    /// Adaptive steps: the mean over ranks of the compression criterion c (before smoothing)
    /// and how many ranks voted to compress; empty otherwise.
    pub criterion_mean: Option<f64>,
    pub votes: Option<u64>,
}

/// One evaluation on the test set.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EvalRecord {
    pub step: u64,
    pub clock_s: f64,
    pub top1: f64,
    pub top5: f64,
    pub loss: f64,
}

/// Writes `contents` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, contents).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| Error::Other(format!("json: {e}")))?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

pub const STEPS_HEADER: &str = "step,epoch,loss,lr,lr_step,global_batch,b_min,b_max,compute_s,comm_s,clock_s,wait_max_s,wait_mean_s,buffer_max,buffer_sum,buffer_max_bytes,injected_bytes,injected_bytes_recv_max,injected_bytes_recv_mean,injected_bytes_sent_max,injected_samples,compressed,values_sent,indices_sent,criterion_mean,votes";

pub fn steps_csv(rows: &[StepRecord]) -> String {
    let mut s = String::with_capacity(64 + rows.len() * 120);
    s.push_str(STEPS_HEADER);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{:.6},{:.6e},{:.6e},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{},{:.1},{},{},{},{},{},{},{}",
            r.step, r.epoch, r.loss, r.lr, r.lr_step, r.global_batch, r.b_min, r.b_max, r.compute_s, r.comm_s,
            r.clock_s, r.wait_max_s, r.wait_mean_s, r.buffer_max, r.buffer_sum, r.buffer_max_bytes, r.injected_bytes,
            r.injected_bytes_recv_max, r.injected_bytes_recv_mean, r.injected_bytes_sent_max, r.injected_samples,
            r.compressed as u8, r.values_sent, r.indices_sent,
            r.criterion_mean.map_or(String::new(), |c| format!("{c:.6}")),
            r.votes.map_or(String::new(), |v| v.to_string())
        );
    }
    s
}

pub fn eval_csv(rows: &[EvalRecord]) -> String {
    let mut s = String::from("step,clock_s,top1,top5,loss\n");
    for r in rows {
        let _ = writeln!(s, "{},{:.6},{:.6},{:.6},{:.6}", r.step, r.clock_s, r.top1, r.top5, r.loss);
    }
    s
}

/// Parses an eval.csv written by `eval_csv` (for plots and comparisons).
pub fn read_eval_csv(path: &Path) -> Result<Vec<EvalRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |j: usize| -> Result<f64> {
            f.get(j)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::Data(format!("{}: line {} is not a valid eval row", path.display(), i + 1)))
        };
        out.push(EvalRecord { step: num(0)? as u64, clock_s: num(1)?, top1: num(2)?, top5: num(3)?, loss: num(4)? });
    }
    Ok(out)
}

/// `results/runs/<UTC timestamp>`, the default run directory.
pub fn default_run_dir() -> PathBuf {
    PathBuf::from("results/runs").join(utc_timestamp())
}

/// `YYYYMMDD-HHMMSS` in UTC, from the system clock.
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_csv_round_trip_and_atomic_write() {
        let rows = vec![
            EvalRecord { step: 10, clock_s: 1.5, top1: 0.25, top5: 0.75, loss: 2.0 },
            EvalRecord { step: 20, clock_s: 3.0, top1: 0.5, top5: 0.875, loss: 1.25 },
        ];
        let dir = std::env::temp_dir().join(format!("scadles-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("eval.csv");
        write_atomic(&p, eval_csv(&rows).as_bytes()).unwrap();
        let back = read_eval_csv(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].step, 20);
        assert!((back[1].top5 - 0.875).abs() < 1e-12);
        assert!(!dir.join("eval.csv.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn steps_csv_header_names_every_column_of_a_row() {
        let r = StepRecord {
            step: 3,
            injected_bytes: 6148,
            injected_bytes_recv_max: 3074,
            injected_bytes_recv_mean: 1537.0,
            injected_bytes_sent_max: 6148,
            injected_samples: 2,
            ..Default::default()
        };
        let csv = steps_csv(&[r]);
        let mut lines = csv.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(head.len(), row.len(), "{csv}");
        let at = |name: &str| row[head.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"))];
        assert_eq!(at("step"), "3");
        assert_eq!(at("injected_bytes"), "6148");
        assert_eq!(at("injected_bytes_recv_max"), "3074");
        assert_eq!(at("injected_bytes_recv_mean"), "1537.0");
        assert_eq!(at("injected_bytes_sent_max"), "6148");
        assert_eq!(at("injected_samples"), "2");
        assert_eq!(at("indices_sent"), "0");
    }

    #[test]
    fn timestamp_shape() {
        let t = utc_timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(&t[8..9], "-");
        assert!(t[..4].parse::<u32>().unwrap() >= 2024);
    }
}
