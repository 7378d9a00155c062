//! The side-by-side report of `scadles compare`: time-to-target of ScaDLES and DDL, the speedup,
//! and a plot of accuracy against clock time.
use super::Summary;
use crate::config::RunConfig;
use crate::error::Result;
use crate::metrics::{self, plot};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Comparison<'a> {
    clock: &'a str,
    target_top1: Option<f64>,
    target_top5: Option<f64>,
    scadles_time_to_target_s: Option<f64>,
    ddl_time_to_target_s: Option<f64>,
    /// DDL time-to-target divided by ScaDLES's (the paper's speedup); null unless both reached it.
    speedup: Option<f64>,
    scadles_final_top1: f64,
    ddl_final_top1: f64,
    scadles_max_buffer_samples: u64,
    ddl_max_buffer_samples: u64,
}

/// Writes comparison.json and accuracy_vs_time.png under `root` and prints the verdict.
pub fn report(root: &Path, cfg: &RunConfig, sc: &Summary, ddl: &Summary) -> Result<()> {
    let speedup = match (sc.time_to_target_s, ddl.time_to_target_s) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    let c = Comparison {
        clock: &sc.clock,
        target_top1: cfg.target_top1,
        target_top5: cfg.target_top5,
        scadles_time_to_target_s: sc.time_to_target_s,
        ddl_time_to_target_s: ddl.time_to_target_s,
        speedup,
        scadles_final_top1: sc.final_top1,
        ddl_final_top1: ddl.final_top1,
        scadles_max_buffer_samples: sc.max_buffer_samples,
        ddl_max_buffer_samples: ddl.max_buffer_samples,
    };
    metrics::write_json(&root.join("comparison.json"), &c)?;
    let use_top5 = cfg.target_top1.is_none() && cfg.target_top5.is_some();
    let series_of = |dir: &str| -> Result<Vec<(f64, f64)>> {
        let rows = metrics::read_eval_csv(&root.join(dir).join("eval.csv"))?;
        Ok(rows.iter().map(|r| (r.clock_s, if use_top5 { r.top5 } else { r.top1 })).collect())
    };
    let (a, b) = (series_of("scadles")?, series_of("ddl")?);
    let series = [plot::Series { label: "ScaDLES", points: &a }, plot::Series { label: "DDL", points: &b }];
    let metric = if use_top5 { "top-5" } else { "top-1" };
    plot::line_plot(
        &root.join("accuracy_vs_time.png"),
        &format!("{} on {} ranks: test {metric} accuracy vs {} clock", cfg.model, sc.ranks, sc.clock),
        &format!("{} clock (s)", sc.clock),
        &format!("test {metric} accuracy"),
        &series,
        Some((0.0, 1.0)),
    )?;
    let fmt = |t: Option<f64>| t.map_or("not reached".to_string(), |t| format!("{t:.1} s"));
    println!("time to target ({} clock): ScaDLES {} | DDL {}", sc.clock, fmt(sc.time_to_target_s), fmt(ddl.time_to_target_s));
    match speedup {
        Some(s) => println!("speedup of ScaDLES over DDL: {s:.2}x"),
        None => println!("speedup: n/a (a run did not reach the target within --steps)"),
    }
    println!("run directory: {} (scadles/, ddl/, comparison.json, accuracy_vs_time.png)", root.display());
    Ok(())
}
