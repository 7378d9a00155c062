//! One `RunConfig`: defaults, then a TOML file (`--config`), then command-line flags, validated
//! up front with one-line errors that name the setting.
use crate::backend::cuda::DeviceChoice;
use crate::compress::{Compression, Criterion, TopkScope};
use crate::data::{DatasetKind, Partition};
use crate::dist::inject::{InjectMode, Injection};
use crate::error::{Error, Result};
use crate::models::Shape;
use crate::stream::{Arrival, BufferPolicy, ClockKind, ComputeModel, Drift, RateSpec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which step rule trains: ScaDLES (stream-rate batches, weighted aggregation) or the conventional
/// synchronous baseline (fixed batch per rank, plain average).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Scadles,
    Ddl,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Policy::Scadles => "scadles",
            Policy::Ddl => "ddl",
        })
    }
}

/// How compressed gradients are exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SparseMode {
    /// allgather of counts + allgatherv of exact (index, value) pairs + scatter-add.
    Allgather,
    /// The AR-Topk idea: a rotating root picks indices, one allreduce of values there.
    ArTopk,
}

/// Whose BatchNorm running statistics evaluation uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BnEval {
    /// Rank 0's, broadcast to every rank (PyTorch DDP's buffer broadcast; the paper's code).
    #[default]
    Rank0,
    /// The statistics of all ranks' data pooled: mean of the means, and mean of the variances
    /// plus the variance of the means (so label-skewed ranks' differences count).
    Average,
}

impl std::fmt::Display for BnEval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BnEval::Rank0 => "rank0",
            BnEval::Average => "average",
        })
    }
}

/// The whole resolved configuration of a run; `config.json` in the run directory is this, serialised.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    // model
    pub model: String,
    pub shape: Shape,
    pub num_classes: usize,
    // data
    pub dataset: DatasetKind,
    pub data_dir: Option<PathBuf>,
    pub synthetic_train: usize,
    pub synthetic_test: usize,
    pub augment: bool,
    pub partition: String,
    // optimisation
    pub batch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub optimizer: crate::optim::OptimizerKind,
    pub milestones: Vec<u64>,
    pub gamma: f64,
    pub base_batch: Option<usize>,
    // run
    pub steps: u64,
    pub eval_every: u64,
    pub eval_samples: Option<usize>,
    pub eval_every_s: Option<f64>,
    pub bn_eval: BnEval,
    pub seed: u64,
    pub out: Option<PathBuf>,
    pub overwrite: bool,
    pub threads: Option<usize>,
    pub device: DeviceChoice,
    pub conv_algo: crate::backend::cpu::ConvAlgo,
    pub target_top1: Option<f64>,
    pub target_top5: Option<f64>,
    /// Keep training to `steps` after the target is reached (the time and step at the target are
    /// still those of the first evaluation that met it).
    pub past_target: bool,
    /// End the job when a rank has made no progress for this long (seconds; 0: never).
    pub stall_timeout_s: f64,
    // streams
    pub policy: Policy,
    pub rates: String,
    pub arrival: Arrival,
    pub drift: String,
    pub clock: ClockKind,
    pub compute_scale: Vec<f64>,
    pub link_gbps: Option<f64>,
    pub link_latency_ms: f64,
    pub link_params: Option<u64>,
    pub compute_model: String,
    pub buffer: BufferPolicy,
    pub buffer_cap: Option<usize>,
    pub window: f64,
    pub b_min: usize,
    pub b_max: usize,
    pub inject: Option<String>,
    pub inject_mode: InjectMode,
    // compression
    pub compression: Compression,
    pub cr: f64,
    pub delta: f64,
    pub ef: bool,
    pub topk_scope: TopkScope,
    /// Dense steps first, for topk and for adaptive with the paper criterion; the code criterion
    /// (the reference code) has none and ignores it.
    pub warmup_steps: u64,
    pub criterion: Criterion,
    pub ewma: f64,
    pub sparse_mode: SparseMode,
    // the DDL side of `compare` (the paper's baseline unless overridden)
    pub ddl_buffer: Option<BufferPolicy>,
    pub ddl_compression: Option<Compression>,
    pub ddl_inject: Option<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            model: "tinycnn".into(),
            shape: Shape::Cifar,
            num_classes: 10,
            dataset: DatasetKind::Synthetic,
            data_dir: None,
            synthetic_train: 20_000,
            synthetic_test: 2_000,
            augment: true,
            partition: "iid".into(),
            batch: 64,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            optimizer: crate::optim::OptimizerKind::Sgd,
            milestones: vec![75, 150, 225],
            gamma: 0.2,
            base_batch: None,
            steps: 300,
            eval_every: 50,
            eval_samples: None,
            eval_every_s: None,
            bn_eval: BnEval::Rank0,
            seed: 1234,
            out: None,
            overwrite: false,
            threads: None,
            device: DeviceChoice::Auto,
            conv_algo: crate::backend::cpu::ConvAlgo::Auto,
            target_top1: None,
            target_top5: None,
            past_target: false,
            stall_timeout_s: 300.0,
            policy: Policy::Scadles,
            rates: "S1p".into(),
            arrival: Arrival::Constant,
            drift: "none".into(),
            clock: ClockKind::Virtual,
            compute_scale: Vec::new(),
            link_gbps: None,
            link_latency_ms: 0.0,
            link_params: None,
            compute_model: "measured".into(),
            buffer: BufferPolicy::Persistence,
            buffer_cap: None,
            window: 1.0,
            b_min: 8,
            b_max: 1024,
            inject: None,
            inject_mode: InjectMode::Peers,
            compression: Compression::None,
            cr: 0.1,
            delta: 0.3,
            ef: true,
            topk_scope: TopkScope::Layer,
            warmup_steps: 10,
            criterion: Criterion::Paper,
            ewma: 0.9,
            sparse_mode: SparseMode::Allgather,
            ddl_buffer: None,
            ddl_compression: None,
            ddl_inject: None,
        }
    }
}

/// Parsed forms of the string-valued settings, produced by `RunConfig::validate`.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub partition: Partition,
    pub rates: RateSpec,
    pub drift: Drift,
    pub inject: Option<Injection>,
    pub compute_model: ComputeModel,
}

impl RunConfig {
    /// Reads a TOML file over the defaults. Unknown keys are errors (a typo is never silently ignored).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        // Every rank reads the same file, so a missing one is a configuration error on all of them.
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("--config {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            // Name the line and column of the error (1-based), as an editor shows them.
            let at = e.span().map(|sp| {
                let before = &text[..sp.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" (line {line}, column {col})")
            });
            Error::Config(format!("{}{}: {}", path.display(), at.unwrap_or_default(), msg.trim()))
        })
    }

    /// The configuration of `compare`'s DDL side: the paper's conventional baseline (fixed batch
    /// `batch` per rank, persistence, dense allreduce, no injection, the same LR schedule), each
    /// of those three overridable by `ddl_buffer`, `ddl_compression` and `ddl_inject`.
    pub fn ddl_baseline(&self) -> RunConfig {
        let inject = match self.ddl_inject.as_deref() {
            None | Some("none") => None,
            Some(s) => Some(s.to_string()),
        };
        RunConfig {
            policy: Policy::Ddl,
            buffer: self.ddl_buffer.unwrap_or(BufferPolicy::Persistence),
            compression: self.ddl_compression.unwrap_or(Compression::None),
            inject,
            ..self.clone()
        }
    }

    /// Per-rank base global batch B of the linear scaling rule (default 64·N, the paper's code).
    pub fn base_batch_for(&self, ranks: usize) -> usize {
        self.base_batch.unwrap_or(64 * ranks)
    }

    /// Checks every setting that can be checked without data, for a job of `ranks` ranks.
    pub fn validate(&self, ranks: usize) -> Result<Resolved> {
        fn pos(name: &str, v: f64) -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                crate::bail!(Config, "--{name} must be a positive number, got {v}");
            }
            Ok(())
        }
        if !crate::models::MODEL_NAMES.contains(&self.model.as_str()) {
            crate::bail!(Config, "--model: unknown model '{}' (expected one of: {})", self.model, crate::models::MODEL_NAMES.join(", "));
        }
        if self.num_classes < 1 {
            crate::bail!(Config, "--num-classes must be at least 1, got {}", self.num_classes);
        }
        if self.batch < 1 {
            crate::bail!(Config, "--batch must be a positive integer, got {}", self.batch);
        }
        pos("lr", self.lr)?;
        if !(0.0..1.0).contains(&self.momentum) {
            crate::bail!(Config, "--momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            crate::bail!(Config, "--weight-decay must be ≥ 0, got {}", self.weight_decay);
        }
        if self.device == DeviceChoice::Cuda && !self.optimizer.on_gpu() {
            crate::bail!(Config, "--optimizer {}: the GPU engine has sgd only; use --device cpu or --optimizer sgd", self.optimizer);
        }
        pos("gamma", self.gamma)?;
        if self.milestones.windows(2).any(|w| w[0] >= w[1]) {
            crate::bail!(Config, "--milestones must be strictly increasing, got {:?}", self.milestones);
        }
        if self.steps < 1 {
            crate::bail!(Config, "--steps must be at least 1, got {}", self.steps);
        }
        if self.eval_every < 1 {
            crate::bail!(Config, "--eval-every must be at least 1, got {}", self.eval_every);
        }
        // Fashion-MNIST has a default folder (Debian's dataset-fashion-mnist); CIFAR has none.
        if matches!(self.dataset, DatasetKind::Cifar10 | DatasetKind::Cifar100) && self.data_dir.is_none() {
            crate::bail!(Config, "--dataset {:?} needs --data-dir pointing at the CIFAR binary files", self.dataset);
        }
        if self.dataset == DatasetKind::Synthetic && (self.synthetic_train < ranks || self.synthetic_test < 1) {
            crate::bail!(Config, "synthetic_train ({}) must be at least the number of ranks ({ranks}) and synthetic_test at least 1", self.synthetic_train);
        }
        for (name, t) in [("target-top1", self.target_top1), ("target-top5", self.target_top5)] {
            if let Some(t) = t {
                if !(0.0..=1.0).contains(&t) {
                    crate::bail!(Config, "--{name} is a fraction in [0, 1], got {t}");
                }
            }
        }
        if self.threads == Some(0) {
            crate::bail!(Config, "--threads must be at least 1");
        }
        // streams
        pos("window", self.window)?;
        if self.b_max < 1 {
            crate::bail!(Config, "--b-max must be at least 1, got {}", self.b_max);
        }
        if self.b_min > self.b_max {
            crate::bail!(Config, "--b-min ({}) must not exceed --b-max ({})", self.b_min, self.b_max);
        }
        if self.buffer_cap == Some(0) {
            crate::bail!(Config, "--buffer-cap must be at least 1 sample");
        }
        if !(self.stall_timeout_s == 0.0 || (self.stall_timeout_s >= 2.0 && self.stall_timeout_s.is_finite())) {
            crate::bail!(Config, "--stall-timeout-s must be 0 (no watchdog) or at least 2 seconds, got {}", self.stall_timeout_s);
        }
        if self.b_min < 1 {
            crate::bail!(Config, "--b-min must be at least 1 (a step on 0 samples would train nothing and stall the clock)");
        }
        if self.eval_samples == Some(0) {
            crate::bail!(Config, "--eval-samples must be at least 1 (0 would report accuracies of 0)");
        }
        if let Some(cap) = self.buffer_cap {
            if self.policy == Policy::Ddl && cap < self.batch {
                crate::bail!(Config, "--buffer-cap {cap} is below the DDL batch --batch {} (it could never gather a batch)", self.batch);
            }
        }
        // Sizes a run could not hold: the largest batch as f32 input alone, and the synthetic set.
        let avail = available_memory_bytes();
        let biggest_batch = match self.policy {
            Policy::Ddl => self.batch,
            Policy::Scadles => self.b_max,
        } as u128;
        let per_sample = (crate::data::IMAGE_BYTES * 4) as u128;
        if let Some(avail) = avail {
            for (name, n) in [("--batch", self.batch as u128), ("--b-max", biggest_batch)] {
                if n * per_sample > avail as u128 {
                    crate::bail!(Config, "{name} {n}: one batch alone needs {} MiB of input, more than the {} MiB available", (n * per_sample) >> 20, avail >> 20);
                }
            }
            if self.dataset == DatasetKind::Synthetic && (self.synthetic_train as u128 + self.synthetic_test as u128) * crate::data::IMAGE_BYTES as u128 > avail as u128 {
                crate::bail!(Config, "--synthetic-train {} / --synthetic-test {}: the set needs more than the {} MiB available", self.synthetic_train, self.synthetic_test, avail >> 20);
            }
        }
        if !self.compute_scale.is_empty() {
            if self.compute_scale.len() != ranks {
                crate::bail!(Config, "--compute-scale lists {} factors but the job has {ranks} ranks", self.compute_scale.len());
            }
            if let Some(v) = self.compute_scale.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                crate::bail!(Config, "--compute-scale factors must be positive, got {v}");
            }
        }
        if let Some(g) = self.link_gbps {
            pos("link-gbps", g)?;
            if g < 1e-6 {
                crate::bail!(Config, "--link-gbps {g}: below 1 kbit/s one gradient would take longer than the run can count");
            }
        }
        if !(self.link_latency_ms >= 0.0 && self.link_latency_ms.is_finite()) {
            crate::bail!(Config, "--link-latency-ms must be ≥ 0, got {}", self.link_latency_ms);
        }
        if self.link_latency_ms > 60_000.0 {
            crate::bail!(Config, "--link-latency-ms {}: more than a minute per message is not a link", self.link_latency_ms);
        }
        if let Some(b) = self.base_batch {
            if b < 1 {
                crate::bail!(Config, "--base-batch must be a positive integer, got {b}");
            }
        }
        // compression
        if !(self.cr > 0.0 && self.cr <= 1.0) {
            crate::bail!(Config, "--cr is the fraction of elements kept, in (0, 1], got {}", self.cr);
        }
        if !(self.delta >= 0.0 && self.delta.is_finite()) {
            crate::bail!(Config, "--delta must be ≥ 0, got {}", self.delta);
        }
        if !(0.0..1.0).contains(&self.ewma) {
            crate::bail!(Config, "--ewma smoothing factor must be in [0, 1), got {}", self.ewma);
        }
        let partition: Partition = self.partition.parse().map_err(|e: String| Error::Config(format!("--partition: {e}")))?;
        let rates: RateSpec = self.rates.parse().map_err(|e: String| Error::Config(e))?;
        rates.resolve(ranks, self.seed, self.b_min, self.b_max)?;
        let drift: Drift = self
            .drift
            .parse()
            .map_err(|e: String| Error::Config(format!("--drift: {e}")))?;
        let inject = match self.inject.as_deref() {
            None | Some("none") => None,
            Some(s) => {
                let (alpha, beta) = parse_inject(s)?;
                Some(Injection { mode: self.inject_mode, alpha, beta })
            }
        };
        if let Some(s) = &self.ddl_inject {
            if s != "none" {
                parse_inject(s).map_err(|_| {
                    Error::Config(format!(
                        "--ddl-inject expects none or ALPHA,BETA (fractions in (0,1]), got '{s}'"
                    ))
                })?;
            }
        }
        let compute_model: ComputeModel = self.compute_model.parse().map_err(Error::Config)?;
        if compute_model.is_modelled() && self.clock == ClockKind::Real {
            crate::bail!(Config, "--compute-model {} models the virtual clock's compute; --clock real measures it (use --compute-model measured)", self.compute_model);
        }
        if let Some(t) = self.eval_every_s {
            if !(t.is_finite() && t > 0.0) {
                crate::bail!(
                    Config,
                    "--eval-every-s must be a positive number of clock seconds, got {t}"
                );
            }
        }
        if self.link_params == Some(0) {
            crate::bail!(Config, "--link-params must be at least 1");
        }
        if self.link_params.is_some() && self.link_gbps.is_none() {
            crate::bail!(
                Config,
                "--link-params sizes the link model's gradient: it needs --link-gbps"
            );
        }
        Ok(Resolved {
            partition,
            rates,
            drift,
            inject,
            compute_model,
        })
    }
}

/// MemAvailable of /proc/meminfo in bytes (None where there is no such file).
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses `ALPHA,BETA` of `--inject` (both fractions in (0, 1]).
pub fn parse_inject(s: &str) -> Result<(f64, f64)> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let bad = || Error::Config(format!("--inject expects none or ALPHA,BETA (fractions in (0,1]), got '{s}'"));
    if parts.len() != 2 {
        return Err(bad());
    }
    let a: f64 = parts[0].parse().map_err(|_| bad())?;
    let b: f64 = parts[1].parse().map_err(|_| bad())?;
    if !(a > 0.0 && a <= 1.0 && b > 0.0 && b <= 1.0) {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = RunConfig::default();
        c.validate(4).expect("defaults are valid");
        assert_eq!(c.base_batch_for(16), 1024);
    }

    #[test]
    fn only_sgd_is_accepted_with_the_gpu() {
        use crate::optim::OptimizerKind;
        let c: RunConfig = toml::from_str("optimizer = \"adam\"").unwrap();
        assert_eq!(c.optimizer, OptimizerKind::Adam);
        c.validate(1).expect("adam on auto/cpu is valid");
        let gpu = RunConfig { device: DeviceChoice::Cuda, ..c };
        let e = gpu.validate(1).unwrap_err().to_string();
        assert!(e.contains("--optimizer adam") && !e.contains('\n'), "{e}");
        RunConfig { optimizer: OptimizerKind::Sgd, ..gpu }.validate(1).expect("sgd on cuda is valid");
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let c: RunConfig = toml::from_str("model = \"resnet18\"\nbatch = 32\nmilestones = [10, 20]").unwrap();
        assert_eq!(c.model, "resnet18");
        assert_eq!(c.batch, 32);
        assert_eq!(c.milestones, vec![10, 20]);
        assert_eq!(c.lr, 0.1);
        assert!(toml::from_str::<RunConfig>("bacth = 3").is_err());
    }

    #[test]
    fn bad_settings_are_named() {
        let c = RunConfig { b_min: 100, b_max: 10, ..RunConfig::default() };
        let e = c.validate(2).unwrap_err().to_string();
        assert!(e.contains("--b-min") && e.contains("--b-max"), "{e}");
        let c = RunConfig { rates: "50,38,12".into(), ..RunConfig::default() };
        let e = c.validate(4).unwrap_err().to_string();
        assert!(e.contains("3") && e.contains("4"), "{e}");
        let c = RunConfig { rates: "50,-3".into(), ..RunConfig::default() };
        assert!(c.validate(2).is_err());
        let c = RunConfig { cr: 1.5, ..RunConfig::default() };
        assert!(c.validate(2).unwrap_err().to_string().contains("--cr"));
        let c = RunConfig { delta: -0.1, ..RunConfig::default() };
        assert!(c.validate(2).unwrap_err().to_string().contains("--delta"));
        let c = RunConfig { lr: 0.0, ..RunConfig::default() };
        assert!(c.validate(2).unwrap_err().to_string().contains("--lr"));
        let c = RunConfig { model: "resnet9".into(), ..RunConfig::default() };
        assert!(c.validate(2).unwrap_err().to_string().contains("unknown model"));
        assert!(parse_inject("0.5,0.5").is_ok());
        assert!(parse_inject("0.5").is_err());
        assert!(parse_inject("0,0.5").is_err());
    }

    #[test]
    fn clock_settings_are_validated() {
        let ok = RunConfig {
            compute_model: "k80-vgg19".into(),
            link_gbps: Some(5.0),
            link_params: Some(143_678_248),
            eval_every_s: Some(30.0),
            ..RunConfig::default()
        };
        let r = ok.validate(4).unwrap();
        assert!(r.compute_model.is_modelled());
        for (c, needle) in [
            (
                RunConfig {
                    compute_model: "linear:1".into(),
                    ..RunConfig::default()
                },
                "--compute-model",
            ),
            (
                RunConfig {
                    compute_model: "linear:0.1:0.01".into(),
                    clock: ClockKind::Real,
                    ..RunConfig::default()
                },
                "--clock real",
            ),
            (
                RunConfig {
                    eval_every_s: Some(0.0),
                    ..RunConfig::default()
                },
                "--eval-every-s",
            ),
            (
                RunConfig {
                    eval_every_s: Some(f64::NAN),
                    ..RunConfig::default()
                },
                "--eval-every-s",
            ),
            (
                RunConfig {
                    link_params: Some(1000),
                    ..RunConfig::default()
                },
                "--link-gbps",
            ),
            (
                RunConfig {
                    link_params: Some(0),
                    link_gbps: Some(5.0),
                    ..RunConfig::default()
                },
                "--link-params",
            ),
            (
                RunConfig {
                    ddl_inject: Some("half".into()),
                    ..RunConfig::default()
                },
                "--ddl-inject",
            ),
        ] {
            let e = c.validate(2).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{needle}: {e}");
        }
    }

    #[test]
    fn the_ddl_baseline_is_the_papers_unless_overridden() {
        let sc = RunConfig {
            buffer: BufferPolicy::Truncation,
            compression: Compression::Adaptive,
            inject: Some("0.5,0.5".into()),
            lr: 0.05,
            ..RunConfig::default()
        };
        let d = sc.ddl_baseline();
        assert_eq!(
            (d.policy, d.buffer, d.compression, d.inject.clone()),
            (
                Policy::Ddl,
                BufferPolicy::Persistence,
                Compression::None,
                None
            )
        );
        assert_eq!(
            (d.batch, d.lr, d.milestones.clone()),
            (sc.batch, sc.lr, sc.milestones.clone()),
            "same batch and schedule"
        );
        let o = RunConfig {
            ddl_buffer: Some(BufferPolicy::Truncation),
            ddl_compression: Some(Compression::Topk),
            ddl_inject: Some("0.25,0.25".into()),
            ..sc.clone()
        }
        .ddl_baseline();
        assert_eq!(
            (o.buffer, o.compression, o.inject.as_deref()),
            (
                BufferPolicy::Truncation,
                Compression::Topk,
                Some("0.25,0.25")
            )
        );
        let n = RunConfig {
            ddl_inject: Some("none".into()),
            ..sc
        }
        .ddl_baseline();
        assert!(n.inject.is_none());
    }

    #[test]
    fn inject_mode_defaults_to_peers_and_reaches_the_resolved_injection() {
        use crate::dist::inject::{InjectMode, Injection};
        let c = RunConfig { inject: Some("0.5,0.25".into()), ..RunConfig::default() };
        assert_eq!(c.inject_mode, InjectMode::Peers);
        assert_eq!(c.validate(4).unwrap().inject, Some(Injection { mode: InjectMode::Peers, alpha: 0.5, beta: 0.25 }));
        let c: RunConfig = toml::from_str("inject = \"0.5,0.5\"\ninject_mode = \"senders\"").unwrap();
        assert_eq!(c.validate(4).unwrap().inject.unwrap().mode, InjectMode::Senders);
        let e = toml::from_str::<RunConfig>("inject_mode = \"everyone\"").unwrap_err().to_string();
        assert!(e.contains("everyone") || e.contains("peers"), "{e}");
        assert!(RunConfig::default().validate(4).unwrap().inject.is_none());
    }

    #[test]
    fn sizes_and_settings_that_cannot_run_are_refused() {
        for (c, needle) in [
            (RunConfig { b_min: 0, ..RunConfig::default() }, "--b-min"),
            (RunConfig { eval_samples: Some(0), ..RunConfig::default() }, "--eval-samples"),
            (RunConfig { policy: Policy::Ddl, buffer_cap: Some(1), ..RunConfig::default() }, "--buffer-cap 1"),
            (RunConfig { batch: 10_000_000_000, policy: Policy::Ddl, ..RunConfig::default() }, "--batch"),
            (RunConfig { b_max: 100_000_000_000, ..RunConfig::default() }, "--b-max"),
            (RunConfig { synthetic_train: 100_000_000_000, ..RunConfig::default() }, "--synthetic-train"),
            (RunConfig { link_latency_ms: 1e300, ..RunConfig::default() }, "--link-latency-ms"),
            (RunConfig { link_gbps: Some(1e-300), ..RunConfig::default() }, "--link-gbps"),
        ] {
            let e = c.validate(2).unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{needle}: {e}");
        }
        // A ScaDLES buffer cap below the DDL batch is fine: ScaDLES takes what is there.
        RunConfig { buffer_cap: Some(16), ..RunConfig::default() }.validate(2).unwrap();
    }

    #[test]
    fn toml_syntax_errors_name_line_and_column() {
        let p = std::env::temp_dir().join(format!("scadles-syntax-{}.toml", std::process::id()));
        std::fs::write(&p, "model = \"tinycnn\"\nsteps = = 3\n").unwrap();
        let e = RunConfig::from_toml_file(&p).unwrap_err().to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(e.contains("line 2, column"), "{e}");
    }

    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let mut c = RunConfig::from_toml_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            c.data_dir.get_or_insert_with(|| "/data/cifar".into());
            c.validate(16).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn a_typo_in_a_config_file_is_named() {
        let p = std::env::temp_dir().join(format!("scadles-typo-{}.toml", std::process::id()));
        std::fs::write(&p, "modle = \"resnet18\"\n").unwrap();
        let e = RunConfig::from_toml_file(&p).unwrap_err().to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(e.contains("modle") && e.contains(p.to_str().unwrap()) && !e.contains('\n'), "{e}");
    }
}
