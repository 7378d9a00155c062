//! Command-line flags of `scadles train` / `scadles compare`: every flag overrides the same key of
//! the TOML file given by `--config`, which overrides the built-in defaults shown in `--help`.
use crate::backend::cuda::DeviceChoice;
use crate::compress::{Compression, Criterion, TopkScope};
use crate::config::{BnEval, Policy, RunConfig, SparseMode};
use crate::data::DatasetKind;
use crate::dist::inject::InjectMode;
use crate::error::Result;
use crate::models::Shape;
use crate::stream::{Arrival, BufferPolicy, ClockKind};
use clap::Args;
use std::path::PathBuf;

fn parse_on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, got '{s}'")),
    }
}

/// Flags shared by `train` and `compare`. Defaults are those of `RunConfig::default()`.
#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// TOML file with any of the settings below (keys in snake_case); flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model: tinycnn, tinycnn_bn, resnet18|34|50|101|152, vgg11|13|16|19[_bn]  [default: tinycnn]
    #[arg(long, allow_negative_numbers = true)]
    pub model: Option<String>,
    /// torchvision (ImageNet stem/head, as the paper) or cifar (3×3 stem)  [default: cifar]
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// Size of the classifier head  [default: 10]
    #[arg(long, allow_negative_numbers = true)]
    pub num_classes: Option<usize>,
    /// Training data  [default: synthetic]
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetKind>,
    /// Folder with the CIFAR binary files or the Fashion-MNIST IDX files (plain or .gz)  [fashion-mnist: /usr/share/datasets/fashion-mnist]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Synthetic training-set size  [default: 20000]
    #[arg(long, allow_negative_numbers = true)]
    pub synthetic_train: Option<usize>,
    /// Synthetic test-set size  [default: 2000]
    #[arg(long, allow_negative_numbers = true)]
    pub synthetic_test: Option<usize>,
    /// Random crop + flip augmentation: on|off  [default: on]
    #[arg(long, value_parser = parse_on_off)]
    pub augment: Option<bool>,
    /// iid | label-shard | dirichlet:ALPHA  [default: iid]
    #[arg(long, allow_negative_numbers = true)]
    pub partition: Option<String>,
    /// Per-rank batch of the ddl policy  [default: 64]
    #[arg(long, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Base learning rate η  [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum  [default: 0.9]
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// SGD weight decay  [default: 0.0001]
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// sgd (momentum) | nesterov | adam (betas 0.9, 0.999, eps 1e-8; ignores --momentum); the GPU
    /// engine has sgd only, and with --device auto another one trains on the CPU  [default: sgd]
    #[arg(long, value_enum)]
    pub optimizer: Option<crate::optim::OptimizerKind>,
    /// Epochs at which the lr is multiplied by gamma, comma-separated  [default: 75,150,225]
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub milestones: Option<Vec<u64>>,
    /// Multi-step lr factor  [default: 0.2]
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// Base global batch B of the linear scaling rule  [default: 64 × ranks]
    #[arg(long, allow_negative_numbers = true)]
    pub base_batch: Option<usize>,
    /// Step limit  [default: 300]
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<u64>,
    /// Evaluate every K steps  [default: 50]
    #[arg(long, allow_negative_numbers = true)]
    pub eval_every: Option<u64>,
    /// Evaluate on the first N test samples only  [default: all]
    #[arg(long, allow_negative_numbers = true)]
    pub eval_samples: Option<usize>,
    /// Evaluate every T seconds of clock time instead of every K steps: both policies of `compare`
    /// are then scored at the same clock times, with the parameters in force at each
    #[arg(long, allow_negative_numbers = true, value_name = "T")]
    pub eval_every_s: Option<f64>,
    /// BatchNorm statistics for evaluation: rank0 (broadcast, as DDP) or average (pooled over ranks)  [default: rank0]
    #[arg(long, value_enum)]
    pub bn_eval: Option<BnEval>,
    /// Seed of everything random  [default: 1234]
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Run directory  [default: results/runs/<UTC timestamp>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the run in --out (its outputs are removed first); without it a directory holding a
    /// run is refused
    #[arg(long)]
    pub overwrite: bool,
    /// Compute threads per rank  [default: cores / ranks on the node]
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// auto | cpu | cuda  [default: auto]
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// CPU convolutions: auto (Winograd F(4x4,3x3) for 3x3 stride-1 layers, one dense GEMM on
    /// planes smaller than the kernel, im2col + GEMM elsewhere) or im2col (everywhere)  [default: auto]
    #[arg(long, value_enum)]
    pub conv_algo: Option<crate::backend::cpu::ConvAlgo>,
    /// Stop once test top-1 reaches this fraction
    #[arg(long, allow_negative_numbers = true)]
    pub target_top1: Option<f64>,
    /// Stop once test top-5 reaches this fraction
    #[arg(long, allow_negative_numbers = true)]
    pub target_top5: Option<f64>,
    /// Train on to --steps after the target is reached (the time to the target is still recorded)  [default: off]
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub past_target: Option<bool>,
    /// End the job with a one-line error naming the rank that stopped answering when no step has
    /// progressed for this many seconds; 0 turns the watchdog off. Raise it where one step or one
    /// evaluation can take longer (a large model on a CPU)  [default: 300]
    #[arg(long, allow_negative_numbers = true)]
    pub stall_timeout_s: Option<f64>,
    /// scadles (stream-rate batches, weighted aggregation) or ddl (fixed batch, plain average)  [default: scadles]
    #[arg(long, value_enum)]
    pub policy: Option<Policy>,
    /// Stream rates: S1|S2|S1p|S2p, code-uniform-s1|code-uniform-s2|code-normal-s1|code-vgg25, a list 50,38,12,
    /// uniform:LO:HI, normal:MEAN:STD, exp:MEAN  [default: S1p]
    #[arg(long, allow_negative_numbers = true)]
    pub rates: Option<String>,
    /// Arrival process  [default: constant]
    #[arg(long, value_enum)]
    pub arrival: Option<Arrival>,
    /// Rate drift: none | sine:PERIOD_S:AMPLITUDE | walk:SIGMA:INTERVAL_S  [default: none]
    #[arg(long, allow_negative_numbers = true)]
    pub drift: Option<String>,
    /// virtual (simulated waits, measured compute) or real (producers in real time)  [default: virtual]
    #[arg(long, value_enum)]
    pub clock: Option<ClockKind>,
    /// Per-rank compute-time factors for the virtual clock, comma-separated  [default: all 1]
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub compute_scale: Option<Vec<f64>>,
    /// Link bandwidth of the communication model (virtual clock), Gbit/s  [default: measured comm]
    #[arg(long, allow_negative_numbers = true)]
    pub link_gbps: Option<f64>,
    /// Per-message latency of the link model, ms  [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub link_latency_ms: Option<f64>,
    /// Gradient size (parameters) the link model charges for, so a small model's steps cost what
    /// the paper's model's would (e.g. 60192808 for ResNet152)  [default: the model's own]
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub link_params: Option<u64>,
    /// Compute time on the virtual clock: measured | linear:A:C (A + C·b seconds) |
    /// k80-resnet152 | k80-vgg19 (the paper's devices)  [default: measured]
    #[arg(long, allow_negative_numbers = true)]
    pub compute_model: Option<String>,
    /// Stream buffer policy  [default: persistence]
    #[arg(long, value_enum)]
    pub buffer: Option<BufferPolicy>,
    /// Buffer capacity in samples; the oldest samples are dropped beyond it  [default: unbounded]
    #[arg(long, allow_negative_numbers = true)]
    pub buffer_cap: Option<usize>,
    /// ScaDLES window in seconds: the batch is what arrived in it  [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    pub window: Option<f64>,
    /// Smallest ScaDLES batch  [default: 8]
    #[arg(long, allow_negative_numbers = true)]
    pub b_min: Option<usize>,
    /// Largest ScaDLES batch  [default: 1024]
    #[arg(long, allow_negative_numbers = true)]
    pub b_max: Option<usize>,
    /// Data injection: none, or ALPHA,BETA: each rank receives ⌊β·b_peer⌋ samples from each of ⌈α·N⌉ random
    /// peers per step (--inject-mode peers)  [default: off]
    #[arg(long, allow_negative_numbers = true)]
    pub inject: Option<String>,
    /// Who sends injected samples: peers (every rank receives from ⌈α·N⌉ peers) or senders (⌈α·N⌉
    /// ranks each send ⌊β·b_i⌋ samples to one random peer)  [default: peers]
    #[arg(long, value_enum)]
    pub inject_mode: Option<InjectMode>,
    /// none | topk (static) | adaptive  [default: none]
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Fraction of elements kept by top-k, in (0, 1]  [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    pub cr: Option<f64>,
    /// Adaptive threshold δ  [default: 0.3]
    #[arg(long, allow_negative_numbers = true)]
    pub delta: Option<f64>,
    /// Error feedback: on|off  [default: on]
    #[arg(long, value_parser = parse_on_off)]
    pub ef: Option<bool>,
    /// Top-k per parameter tensor (layer) or over the whole buffer (global)  [default: layer]
    #[arg(long, value_enum)]
    pub topk_scope: Option<TopkScope>,
    /// Dense steps before any compression (topk, and adaptive with the paper criterion; the code criterion has no warm-up and ignores it)  [default: 10]
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_steps: Option<u64>,
    /// Adaptive criterion: paper (squared norms of g+residual, EWMA, strict-majority vote, warm-up) or code (the reference code: raw-gradient layer norms summed, epoch mean, compress if votes >= floor(N/2), no warm-up, dense steps send the raw gradient)  [default: paper]
    #[arg(long, value_enum)]
    pub criterion: Option<Criterion>,
    /// EWMA factor of the paper criterion  [default: 0.9]
    #[arg(long, allow_negative_numbers = true)]
    pub ewma: Option<f64>,
    /// Sparse exchange: allgather (exact pairs) or ar-topk (root's indices, one allreduce)  [default: allgather]
    #[arg(long, value_enum)]
    pub sparse_mode: Option<SparseMode>,
    /// Buffer policy of compare's DDL side  [default: persistence, the paper's baseline]
    #[arg(long, value_enum)]
    pub ddl_buffer: Option<BufferPolicy>,
    /// Compression of compare's DDL side  [default: none, the paper's baseline]
    #[arg(long, value_enum)]
    pub ddl_compression: Option<Compression>,
    /// Data injection of compare's DDL side: none or ALPHA,BETA  [default: none, the paper's baseline]
    #[arg(long, allow_negative_numbers = true)]
    pub ddl_inject: Option<String>,
}

macro_rules! apply {
    ($cfg:ident, $a:ident; $($f:ident),* ; $($o:ident),*) => {
        $( if let Some(v) = $a.$f.clone() { $cfg.$f = v; } )*
        $( if let Some(v) = $a.$o.clone() { $cfg.$o = Some(v); } )*
    };
}

impl TrainArgs {
    /// Defaults, then the TOML file, then the flags.
    pub fn resolve(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(p) => RunConfig::from_toml_file(p)?,
            None => RunConfig::default(),
        };
        let a = self;
        apply!(c, a;
            model, shape, num_classes, dataset, synthetic_train, synthetic_test, augment, partition, batch, lr,
            momentum, weight_decay, optimizer, milestones, gamma, steps, eval_every, seed, device, conv_algo, policy, rates, arrival,
            drift, clock, compute_scale, link_latency_ms, compute_model, buffer, window, b_min, b_max, inject_mode, compression, cr,
            delta, ef, topk_scope, warmup_steps, criterion, ewma, sparse_mode, bn_eval, past_target, stall_timeout_s;
            data_dir, base_batch, eval_samples, eval_every_s, out, threads, target_top1, target_top5, link_gbps, link_params,
            buffer_cap, inject, ddl_buffer, ddl_compression, ddl_inject);
        if a.overwrite {
            c.overwrite = true;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        a: TrainArgs,
    }

    /// Every `[default: X]` in --help states the value `RunConfig::default()` really has.
    #[test]
    fn help_defaults_match_the_config_defaults() {
        let defaults = serde_json::to_value(RunConfig::default()).unwrap();
        let cmd = Wrap::command();
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(start) = help.find("[default: ") else { continue };
            let shown = &help[start + 10..help[start..].find(']').unwrap() + start];
            let key = arg.get_id().as_str().to_string();
            let v = &defaults[&key];
            let expected = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::Bool(b) => (if *b { "on" } else { "off" }).to_string(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Array(a) if a.is_empty() => continue,
                serde_json::Value::Array(a) => a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","),
                other => panic!("{key}: unexpected default {other}"),
            };
            let same = shown == expected || matches!((shown.parse::<f64>(), expected.parse::<f64>()), (Ok(a), Ok(b)) if a == b);
            assert!(same, "--{key}: help says [default: {shown}] but the default is {expected}");
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} defaults checked");
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let p = std::env::temp_dir().join(format!("scadles-cli-{}.toml", std::process::id()));
        std::fs::write(&p, "batch = 16\nlr = 0.5\n").unwrap();
        let a = TrainArgs { config: Some(p.clone()), lr: Some(0.01), ..Default::default() };
        let c = a.resolve().unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(c.batch, 16);
        assert_eq!(c.lr, 0.01);
        assert_eq!(c.momentum, RunConfig::default().momentum);
    }
}
