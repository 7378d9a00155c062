//! The shared ScaDLES/DDL runs of Table VI, Figs. 6 and 7 and Table IV, as
//! `scripts/paper/runs.sh` writes them: `<runs>/<set>-<model>/` holds `scadles/` and `ddl/` (one
//! `scadles compare`) and `persistence/` (ScaDLES with `--buffer persistence`), each with
//! `summary.json`, `eval.csv` and `steps.csv`. A cell or side that is missing loads as `None`, so
//! an item over a partial set of runs still writes every file and says which cells are pending.
use super::paper::{RUN_MODELS, RUN_SETS};
use crate::error::{Error, Result};
use std::path::Path;

/// One evaluation (a row of eval.csv).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalRow {
    pub step: u64,
    pub clock_s: f64,
    pub top1: f64,
    pub top5: f64,
}

/// The columns of steps.csv the items use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRow {
    pub step: u64,
    pub global_batch: u64,
    pub clock_s: f64,
    /// The largest buffer of any device after the step (samples).
    pub buffer_max: u64,
    /// The buffers of all devices together (samples).
    pub buffer_sum: u64,
    /// FP32 gradient values all ranks sent this step (0 where the column is absent).
    pub values_sent: u64,
    /// Whether the step sent compressed gradients.
    pub compressed: bool,
    /// Adaptive compression: the mean over ranks of the criterion c this step.
    pub criterion_mean: Option<f64>,
    /// Bytes injected in the step over all ranks (0 when the run has no such column).
    pub injected_bytes: u64,
    /// Bytes received by injection: the most any rank received, and the mean over ranks.
    pub injected_bytes_recv_max: u64,
    pub injected_bytes_recv_mean: f64,
    /// Samples injected in the step over all ranks (part of `global_batch`).
    pub injected_samples: u64,
}

/// One run directory.
#[derive(Clone, Debug)]
pub struct Side {
    pub final_top1: f64,
    pub final_top5: f64,
    /// Fraction of the steps that sent compressed gradients.
    pub cnc_ratio: f64,
    /// Trainable parameters of the network trained.
    pub params: u64,
    pub time_to_target_s: Option<f64>,
    pub step_at_target: Option<u64>,
    pub max_buffer_samples: u64,
    /// Training-set size (samples / epochs of the summary).
    pub train_size: f64,
    pub clock_s: f64,
    pub eval: Vec<EvalRow>,
    pub steps: Vec<StepRow>,
}

impl Side {
    /// Loads `dir`; `None` when it has no summary.json (not run, or not finished).
    pub fn load(dir: &Path) -> Result<Option<Side>> {
        let sp = dir.join("summary.json");
        if !sp.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&sp).map_err(|e| Error::io(&sp, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", sp.display())))?;
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let samples = num("samples").unwrap_or(0.0);
        let epochs = num("epochs").unwrap_or(0.0);
        let eval = read_rows(&dir.join("eval.csv"), |c| {
            Some(EvalRow {
                step: c.get("step")? as u64,
                clock_s: c.get("clock_s")?,
                top1: c.get("top1")?,
                top5: c.get("top5")?,
            })
        })?;
        let steps = read_rows(&dir.join("steps.csv"), |c| {
            Some(StepRow {
                step: c.get("step")? as u64,
                global_batch: c.get("global_batch")? as u64,
                clock_s: c.get("clock_s")?,
                buffer_max: c.get("buffer_max")? as u64,
                buffer_sum: c.get("buffer_sum")? as u64,
                values_sent: c.get("values_sent").unwrap_or(0.0) as u64,
                compressed: c.get("compressed").unwrap_or(0.0) != 0.0,
                criterion_mean: c.get("criterion_mean"),
                injected_bytes: c.get("injected_bytes").unwrap_or(0.0) as u64,
                injected_bytes_recv_max: c.get("injected_bytes_recv_max").unwrap_or(0.0) as u64,
                injected_bytes_recv_mean: c.get("injected_bytes_recv_mean").unwrap_or(0.0),
                injected_samples: c.get("injected_samples").unwrap_or(0.0) as u64,
            })
        })?;
        Ok(Some(Side {
            final_top1: num("final_top1").unwrap_or(f64::NAN),
            final_top5: num("final_top5").unwrap_or(f64::NAN),
            cnc_ratio: num("cnc_ratio").unwrap_or(0.0),
            params: v.get("params").and_then(|x| x.as_u64()).unwrap_or(0),
            time_to_target_s: num("time_to_target_s"),
            step_at_target: v.get("step_at_target").and_then(|x| x.as_u64()),
            max_buffer_samples: v
                .get("max_buffer_samples")
                .and_then(|x| x.as_u64())
                .unwrap_or(0),
            train_size: if epochs > 0.0 { samples / epochs } else { 0.0 },
            clock_s: num("clock_s").unwrap_or(0.0),
            eval,
            steps,
        }))
    }

    /// The per-device largest buffer at the step the target was reached, and whether it was
    /// reached (else the value at the last step).
    pub fn buffer_at_target(&self) -> Option<(u64, bool)> {
        match self.step_at_target {
            Some(s) => self
                .steps
                .iter()
                .find(|r| r.step == s)
                .or(self.steps.last())
                .map(|r| (r.buffer_max, true)),
            None => self.steps.last().map(|r| (r.buffer_max, false)),
        }
    }

    /// FP32 values sent by all ranks up to and including the step the target was reached (and
    /// whether it was; else over the whole run).
    pub fn floats_to_target(&self) -> (u64, bool) {
        let last = self.step_at_target.unwrap_or(u64::MAX);
        (self.steps.iter().filter(|r| r.step <= last).map(|r| r.values_sent).sum(), self.step_at_target.is_some())
    }

    /// (epochs, steps row) for each step: epochs = samples trained so far / training-set size.
    pub fn by_epoch(&self) -> Vec<(f64, StepRow)> {
        let mut seen = 0u64;
        self.steps
            .iter()
            .map(|r| {
                seen += r.global_batch;
                let e = if self.train_size > 0.0 {
                    seen as f64 / self.train_size
                } else {
                    r.step as f64
                };
                (e, *r)
            })
            .collect()
    }
}

impl Side {
    /// Epochs of the device's own data after each step: the samples trained so far less the
    /// injected ones (which are other devices' data), over the training-set size; the paper's
    /// epoch is a pass over the device's own loader. Equals [`Side::by_epoch`] without injection.
    pub fn own_epochs(&self) -> Vec<(u64, f64)> {
        let mut seen = 0u64;
        self.steps
            .iter()
            .map(|r| {
                seen += r.global_batch.saturating_sub(r.injected_samples);
                let e = if self.train_size > 0.0 { seen as f64 / self.train_size } else { r.step as f64 };
                (r.step, e)
            })
            .collect()
    }

    /// Each evaluation with the own-data epochs ([`Side::own_epochs`]) at its step (0 before the
    /// first step).
    pub fn eval_by_own_epoch(&self) -> Vec<(f64, EvalRow)> {
        let ep = self.own_epochs();
        self.eval
            .iter()
            .map(|e| {
                let x = ep.iter().take_while(|(s, _)| *s <= e.step).last().map_or(0.0, |p| p.1);
                (x, *e)
            })
            .collect()
    }
}

/// A row of a CSV file by column name.
pub struct Cols<'a> {
    header: &'a [&'a str],
    fields: Vec<&'a str>,
}

impl Cols<'_> {
    pub fn get(&self, name: &str) -> Option<f64> {
        let i = self.header.iter().position(|h| *h == name)?;
        self.fields.get(i)?.trim().parse().ok()
    }
}

fn read_rows<T>(path: &Path, row: impl Fn(&Cols) -> Option<T>) -> Result<Vec<T>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let c = Cols {
            header: &header,
            fields: l.split(',').collect(),
        };
        match row(&c) {
            Some(r) => out.push(r),
            None => crate::bail!(Config, "{}: line {}: unreadable row", path.display(), i + 2),
        }
    }
    Ok(out)
}

/// One (rate set, model) cell of the shared runs.
pub struct Cell {
    /// Index into [`RUN_SETS`] and [`RUN_MODELS`].
    pub set: usize,
    pub model: usize,
    pub scadles: Option<Side>,
    pub ddl: Option<Side>,
    pub persistence: Option<Side>,
}

impl Cell {
    pub fn name(&self) -> String {
        format!("{}-{}", RUN_SETS[self.set].0, RUN_MODELS[self.model].0)
    }
}

/// Every cell in the paper's order (sets outer, models inner), loaded from `runs`; missing
/// directories load as `None`.
pub fn load_all(runs: &Path) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for (si, (set, _)) in RUN_SETS.iter().enumerate() {
        for (mi, (model, _)) in RUN_MODELS.iter().enumerate() {
            let d = runs.join(format!("{set}-{model}"));
            cells.push(Cell {
                set: si,
                model: mi,
                scadles: Side::load(&d.join("scadles"))?,
                ddl: Side::load(&d.join("ddl"))?,
                persistence: Side::load(&d.join("persistence"))?,
            });
        }
    }
    Ok(cells)
}

/// The cells none of whose three runs exist, named `set-model`, for the "pending" note.
pub fn pending(cells: &[Cell]) -> Vec<String> {
    cells
        .iter()
        .filter(|c| c.scadles.is_none() || c.ddl.is_none() || c.persistence.is_none())
        .map(Cell::name)
        .collect()
}

/// The note on the runs every item adds: where they are and which are pending.
pub fn runs_note(runs: &Path, cells: &[Cell]) -> String {
    let p = pending(cells);
    let cwd = std::env::current_dir().unwrap_or_default();
    let rel = runs.strip_prefix(&cwd).unwrap_or(runs).display();
    if p.is_empty() {
        format!("All 8 cells of the shared runs are in `{rel}`.")
    } else {
        format!(
            "Runs read from `{rel}`; {} of 8 cells not yet run (quick runs pending): {}. Their cells read `ours —`.",
            p.len(),
            p.join(", ")
        )
    }
}

/// A cell with our value missing: `paper X [TAG] · ours — (not yet run)`.
pub fn vs_pending(paper: &super::paper::Published) -> String {
    format!(
        "paper {} {} · ours — (not yet run)",
        paper.text,
        paper.source.tag()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_run_loads_as_none_and_a_written_one_loads() {
        let d = std::env::temp_dir().join(format!("scadles-runs-{}", std::process::id()));
        let s = d.join("S1-resnet152/scadles");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(
            s.join("summary.json"),
            r#"{"final_top1":0.7,"time_to_target_s":30.0,"step_at_target":2,"max_buffer_samples":9,"samples":200,"epochs":0.5,"clock_s":40}"#,
        )
        .unwrap();
        std::fs::write(
            s.join("steps.csv"),
            "step,global_batch,clock_s,buffer_max,buffer_sum\n1,100,1.0,3,5\n2,100,2.0,9,12\n",
        )
        .unwrap();
        std::fs::write(
            s.join("eval.csv"),
            "step,clock_s,top1,top5,loss\n2,30,0.7,0.9,1\n",
        )
        .unwrap();
        let cells = load_all(&d).unwrap();
        assert_eq!(cells.len(), 8);
        let c = &cells[0];
        let side = c.scadles.as_ref().unwrap();
        assert_eq!(side.buffer_at_target(), Some((9, true)));
        assert_eq!(side.train_size, 400.0);
        let e = side.by_epoch();
        assert_eq!((e[0].0, e[1].0), (0.25, 0.5));
        assert!(c.ddl.is_none() && c.persistence.is_none());
        assert_eq!(pending(&cells).len(), 8);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
