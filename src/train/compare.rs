//! The side-by-side report of `scadles compare`: time-to-target of ScaDLES and DDL, the speedup,
//! and a plot of accuracy against clock time.
use super::Summary;
use crate::config::RunConfig;
use crate::error::Result;
use crate::metrics::{self, plot};
use serde::Serialize;
use std::path::Path;

/// What one side of the comparison ran (the settings in which the two sides may differ).
#[derive(Serialize)]
struct Side {
    policy: String,
    /// Per-rank batch: `b_min..b_max` from the window for ScaDLES, the fixed batch for DDL.
    batch: String,
    buffer: String,
    compression: String,
    inject: Option<String>,
    steps: u64,
    eval_every: String,
    eval_resolution_s: f64,
}

impl Side {
    fn of(cfg: &RunConfig, s: &Summary) -> Side {
        Side {
            policy: cfg.policy.to_string(),
            batch: match cfg.policy {
                crate::config::Policy::Scadles => format!(
                    "stream rate x {} s window, clamped to [{}, {}]",
                    cfg.window, cfg.b_min, cfg.b_max
                ),
                crate::config::Policy::Ddl => format!("fixed {}", cfg.batch),
            },
            buffer: format!("{:?}", cfg.buffer).to_lowercase(),
            compression: match cfg.compression {
                crate::compress::Compression::None => "none".to_string(),
                c => format!(
                    "{c:?} (cr {}, delta {}, criterion {:?})",
                    cfg.cr, cfg.delta, cfg.criterion
                )
                .to_lowercase(),
            },
            inject: cfg.inject.clone(),
            steps: s.steps,
            eval_every: s.eval_every.clone(),
            eval_resolution_s: s.eval_resolution_s,
        }
    }
}

#[derive(Serialize)]
struct Comparison<'a> {
    clock: &'a str,
    compute_model: &'a str,
    link_model: &'a str,
    scadles: Side,
    ddl: Side,
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

/// Writes comparison.json and accuracy_vs_time.png / .svg under `root` and prints the verdict.
/// `cfg` is the ScaDLES side's configuration and `ddl_cfg` the DDL side's.
pub fn report(
    root: &Path,
    cfg: &RunConfig,
    ddl_cfg: &RunConfig,
    sc: &Summary,
    ddl: &Summary,
) -> Result<()> {
    let speedup = match (sc.time_to_target_s, ddl.time_to_target_s) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    let c = Comparison {
        clock: &sc.clock,
        compute_model: &sc.compute_model,
        link_model: &sc.link_model,
        scadles: Side::of(cfg, sc),
        ddl: Side::of(ddl_cfg, ddl),
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
    println!(
        "time to target ({} clock, compute {}, resolution {:.1} s / {:.1} s): ScaDLES {} | DDL {}",
        sc.clock,
        sc.compute_model,
        sc.eval_resolution_s,
        ddl.eval_resolution_s,
        fmt(sc.time_to_target_s),
        fmt(ddl.time_to_target_s)
    );
    match speedup {
        Some(s) => println!("speedup of ScaDLES over DDL: {s:.2}x"),
        None => println!("speedup: n/a (a run did not reach the target within --steps)"),
    }
    println!("run directory: {} (scadles/, ddl/, comparison.json, accuracy_vs_time.png and .svg)", root.display());
    Ok(())
}
