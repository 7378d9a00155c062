//! The step loop: ScaDLES (stream-rate batches, weighted aggregation, linear LR scaling) and the
//! conventional synchronous baseline, on the virtual or the real clock (README "One step"), with
//! the forward, backward and SGD update on the CPU or a GPU ([`engine`]).
use crate::config::{Policy, Resolved, RunConfig};
use crate::data::{self, Dataset, Normalization, Splits};
use crate::dist::inject::Traffic;
use crate::dist::World;
use crate::error::{Error, Result};
use crate::metrics::{self, EvalRecord, StepRecord};
use crate::models::{self, Model};
use crate::optim::{self, MultiStep};
use crate::stream::{ClockKind, LinkModel, Take};
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub mod bench;
pub mod compare;
pub mod device_grads;
pub mod engine;
pub mod eval;
pub mod grads;
pub mod source;
pub mod watchdog;

pub use engine::{Compute, Engine};
pub use eval::evaluate;
pub use grads::Aggregator;

/// The run's summary (summary.json).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub model: String,
    pub shape: String,
    pub params: usize,
    pub ranks: usize,
    pub policy: String,
    pub clock: String,
    pub rates: Vec<f64>,
    pub steps: u64,
    pub epochs: f64,
    pub samples: u64,
    pub final_top1: f64,
    pub final_top5: f64,
    pub final_loss: f64,
    /// Samples trained per second of real (wall-clock) time of the training loop.
    pub images_per_s: f64,
    pub wall_s: f64,
    /// Clock seconds at the end (virtual or real, as `clock` says).
    pub clock_s: f64,
    pub target_top1: Option<f64>,
    pub target_top5: Option<f64>,
    /// Clock seconds when the target accuracy was first reached; null if never.
    pub time_to_target_s: Option<f64>,
    pub step_at_target: Option<u64>,
    /// How evaluation was scheduled: every K steps or every T clock seconds.
    pub eval_every: String,
    /// The clock resolution of `time_to_target_s`: the evaluation interval on the clock (its
    /// largest gap when evaluating by steps), and never less than the longest step.
    pub eval_resolution_s: f64,
    /// The longest step on the clock, seconds.
    pub max_step_s: f64,
    /// Where compute times came from (`--compute-model`).
    pub compute_model: String,
    /// Where communication times came from: the link model, or `measured`.
    pub link_model: String,
    /// Whose BatchNorm statistics evaluation used (`--bn-eval`).
    pub bn_eval: String,
    pub max_buffer_samples: u64,
    pub max_buffer_bytes: u64,
    pub dropped_samples_total: u64,
    /// Injected bytes received by all ranks (= sent by all ranks), over the run.
    pub injected_bytes_total: u64,
    /// Injected bytes each rank received over the run (index = rank).
    pub injected_bytes_per_rank: Vec<u64>,
    /// Injected bytes each rank sent over the run (index = rank).
    pub injected_bytes_sent_per_rank: Vec<u64>,
    /// Injected samples received by all ranks over the run.
    pub injected_samples_total: u64,
    pub compression: String,
    /// FP32 gradient values communicated by all ranks (Table V's count; indices excluded).
    pub floats_sent_total: u64,
    /// u32 indices communicated by all ranks on compressed steps.
    pub indices_sent_total: u64,
    /// Values plus indices, both 4-byte words.
    pub words_sent_total: u64,
    pub cnc_ratio: f64,
    pub blas: String,
    /// Where rank 0 trained: `"cpu"` or `"cuda:<ordinal> (<GPU name>)"`.
    pub device: String,
    /// Every rank's device (index = rank).
    pub devices: Vec<String>,
    /// How rank 0's gradient reached MPI: host memory, pinned staging, or GPU memory.
    pub gradient_path: String,
    pub out_dir: String,
    /// `finished`, or how the run was stopped early (`stopped by SIGINT before step 40`).
    pub status: String,
}

static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM stop training at the end of the current step on every rank (the ranks
/// agree on it in the step's first collective): the outputs so far are written, summary.json says
/// the run was stopped, and the process exits non-zero.
pub fn install_stop_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores into an atomic.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Progress bar on rank 0 only; hidden elsewhere and when `quiet`.
fn progress(world: &World, steps: u64, quiet: bool) -> indicatif::ProgressBar {
    if world.rank() != 0 || quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(steps);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// How many compute threads this rank should use: `--threads`, or the node's cores shared among
/// the ranks on this node (MPI launchers export the local rank count).
pub fn threads_per_rank(cfg_threads: Option<usize>) -> usize {
    if let Some(t) = cfg_threads {
        return t;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let local = ["MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(1)
        .max(1);
    (cores / local).max(1)
}

/// Sets the rayon pool and the GEMM threads once per process, and the allocator's retention.
pub fn set_threads(n: usize) {
    crate::backend::cpu::retain_freed_memory();
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    crate::backend::cpu::set_num_threads(n);
}

/// Loads the data on every rank; if any rank fails, every rank returns an error (no hang).
pub fn load_data(cfg: &RunConfig, world: &World) -> Result<Splits> {
    let spec = data::SyntheticSpec {
        num_classes: cfg.num_classes,
        train_size: cfg.synthetic_train,
        test_size: cfg.synthetic_test,
        seed: cfg.seed,
    };
    let r = data::load(cfg.dataset, cfg.data_dir.as_deref(), &spec);
    if world.any(r.is_err()) {
        return Err(r.err().unwrap_or_else(|| Error::Data("another rank failed to load the data".into())));
    }
    let splits = r?;
    let max_label = splits.train.labels.iter().chain(&splits.test.labels).copied().max().unwrap_or(0) as usize;
    if max_label >= cfg.num_classes {
        crate::bail!(Config, "--num-classes {} is too small for the dataset's labels (largest label {max_label})", cfg.num_classes);
    }
    Ok(splits)
}

/// Everything one rank needs for a run.
pub struct Run<'a> {
    pub cfg: &'a RunConfig,
    pub res: &'a Resolved,
    pub world: &'a World,
    pub splits: &'a Splits,
    pub out: PathBuf,
    pub quiet: bool,
    /// This rank's device, opened before the run.
    pub compute: &'a Compute,
}

struct Outputs {
    steps: Vec<StepRecord>,
    evals: Vec<EvalRecord>,
}

impl Run<'_> {
    fn write_outputs(&self, o: &Outputs, summary: Option<&Summary>) -> Result<()> {
        if !self.world.is_root() {
            return Ok(());
        }
        metrics::write_atomic(&self.out.join("steps.csv"), metrics::steps_csv(&o.steps).as_bytes())?;
        metrics::write_atomic(&self.out.join("eval.csv"), metrics::eval_csv(&o.evals).as_bytes())?;
        if let Some(s) = summary {
            metrics::write_json(&self.out.join("summary.json"), s)?;
        }
        Ok(())
    }

    /// Evaluates the model as it stands, records it as the evaluation of `step` at clock time
    /// `clock_s` (eval.csv) and shows it on the progress bar.
    #[allow(clippy::too_many_arguments)]
    fn eval_record(
        &self,
        engine: &mut Engine,
        model: &mut Model,
        rng: &mut rand::rngs::StdRng,
        step: u64,
        clock_s: f64,
        out: &mut Outputs,
        pb: &indicatif::ProgressBar,
    ) -> Result<EvalRecord> {
        let mut e = engine.evaluate(self.world, model, &self.splits.test, &self.splits.norm, self.cfg.eval_samples, self.cfg.bn_eval, rng)?;
        e.step = step;
        e.clock_s = clock_s;
        out.evals.push(e.clone());
        pb.set_message(format!("loss {:.3} top1 {:.3} top5 {:.3} clock {:.1}s", e.loss, e.top1, e.top5, clock_s));
        Ok(e)
    }

    /// Trains and evaluates; rank 0 writes the run directory. Returns the summary on every rank.
    pub fn train(&self) -> Result<Summary> {
        let (cfg, world) = (self.cfg, self.world);
        let (rank, ranks) = (world.rank(), world.size());
        let train_set = &self.splits.train;
        let classes_present = train_set
            .labels
            .iter()
            .copied()
            .max()
            .map(|m| m as usize + 1)
            .unwrap_or(1);
        let parts = data::partition(
            &train_set.labels,
            classes_present,
            ranks,
            &self.res.partition,
            cfg.seed,
        )?;
        let rates = self
            .res
            .rates
            .resolve(ranks, cfg.seed, cfg.b_min, cfg.b_max)?;
        if world.is_root() && !self.quiet {
            eprintln!("{:>6} {:>9} {:>8}  class histogram", "rank", "rate/s", "samples");
            for (r, p) in parts.iter().enumerate() {
                let h = data::class_histogram(&train_set.labels, p, classes_present);
                eprintln!("{r:>6} {:>9.1} {:>8}  {}", rates[r], p.len(), histogram_line(&h));
            }
        }
        // Checked on every rank alike (all ranks hold all partitions), so every rank stops together.
        if let Some(r) = parts.iter().position(|p| p.is_empty()) {
            crate::bail!(Config, "rank {r} received no training samples from --partition {}", self.res.partition);
        }
        let mut stream = source::RankStream::new(cfg, self.res, &parts[rank], rates[rank], rank)?;

        let mut model = models::build(&cfg.model, cfg.shape, cfg.num_classes, cfg.seed)?;
        let mut engine = Engine::new(self.compute, &model, cfg.optimizer, cfg.momentum as f32, cfg.weight_decay as f32)?;
        engine.seed_dropout(cfg.seed ^ (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Device buffers go to MPI directly only when every rank trains on a GPU and its library
        // says it is CUDA-aware (a collective, so every rank asks).
        engine.set_cuda_aware_mpi(world.all(engine.on_gpu() && crate::dist::mpi_cuda_support()));
        if world.is_root() && engine.on_gpu() {
            eprintln!("gradient exchange: {}", engine.gradient_path());
        }
        let devices = world.allgather_strings(&self.compute.label());
        let sched = MultiStep { base: cfg.lr, milestones: cfg.milestones.clone(), gamma: cfg.gamma };
        let base_batch = cfg.base_batch_for(ranks);
        let mut agg = Aggregator::new(cfg, &model.store)?;
        let link = match cfg.link_gbps {
            Some(g) => Some(LinkModel::new(g, cfg.link_latency_ms / 1e3)?),
            None => None,
        };
        let scale = cfg.compute_scale.get(rank).copied().unwrap_or(1.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ (rank as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));

        let watchdog = if cfg.stall_timeout_s > 0.0 {
            let dir = watchdog::heartbeat_dir(&self.out);
            Some(watchdog::Watchdog::start(rank, ranks, cfg.stall_timeout_s, dir.clone()).map_err(|e| Error::io(&dir, e))?)
        } else {
            None
        };
        let beat = |step: u64| {
            if let Some(w) = &watchdog {
                w.progress(step);
            }
        };
        let pb = progress(world, cfg.steps, self.quiet);
        pb.set_prefix(format!("{}", cfg.policy));
        let mut out = Outputs { steps: Vec::new(), evals: Vec::new() };
        let mut clock = 0.0f64;
        let wall = Instant::now();
        let mut consumed: u64 = 0;
        let (mut max_buf, mut dropped_total) = (0u64, 0u64);
        let (mut inj_recv_rank, mut inj_sent_rank) = (vec![0u64; ranks], vec![0u64; ranks]);
        let mut inj_samples_total = 0u64;
        let mut time_to_target = None;
        let mut step_at_target = None;
        let mut last_eval = EvalRecord::default();
        let mut x_buf: Vec<f32> = Vec::new();
        let bytes_per_sample = data::IMAGE_BYTES as u64;
        let mut next_eval_s = cfg.eval_every_s.unwrap_or(f64::INFINITY);
        let mut last_flush = Instant::now();
        let mut stopped: Option<(i32, u64)> = None;
        let mut max_step_s = 0.0f64;
        // The link model charges for `--link-params` parameters instead of the model's own.
        let link_scale = cfg
            .link_params
            .map_or(1.0, |p| p as f64 / model.num_params().max(1) as f64);

        for step in 1..=cfg.steps {
            beat(step);
            let epoch = consumed / train_set.len() as u64;
            let lr_sched = sched.lr(epoch);
            // 1. Stream: this rank's batch and how long it waited for it.
            let now = if cfg.clock == ClockKind::Real { wall.elapsed().as_secs_f64() } else { clock };
            let take: Take = match cfg.policy {
                Policy::Scadles => stream.take_window(now, cfg.window, cfg.b_min, cfg.b_max),
                Policy::Ddl => stream.take_fixed(now, cfg.batch),
            };
            dropped_total += take.dropped as u64;
            // 2. Inject: a real exchange of samples between ranks.
            let mut injected = crate::dist::inject::Received::default();
            if let Some(inj) = &self.res.inject {
                let pre = world.allgather_u64(take.samples.len() as u64);
                let pre: Vec<usize> = pre.into_iter().map(|v| v as usize).collect();
                injected = crate::dist::inject::exchange(world, train_set, &take.samples, &pre, inj, cfg.seed, step);
            }
            // 4. Compute: forward, loss (mean over the local batch), backward into the flat buffer.
            let t0 = Instant::now();
            let (b_local, loss_local) = engine.local_gradient(
                &mut model,
                train_set,
                &self.splits.norm,
                &take.samples,
                &injected,
                cfg.augment,
                &mut rng,
                &mut x_buf,
            )?;
            let compute_s = self
                .res
                .compute_model
                .seconds(b_local, t0.elapsed().as_secs_f64())
                * scale;
            // 3. Agree on Σb (and the global loss, and divergence) in one collective.
            let nonfinite = if loss_local.is_finite() { 0.0 } else { 1.0 };
            let sig = STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst);
            let agreed = world.allreduce_sum_f64(&[b_local as f64, b_local as f64 * loss_local.max(0.0), nonfinite, (sig != 0) as u8 as f64]);
            if agreed[3] > 0.0 {
                // Every rank takes this branch alike, so the collective below matches up.
                let any_sig = world.allreduce_max_f64(&[sig as f64])[0] as i32;
                stopped = Some((any_sig, step));
                break;
            }
            let (global_b, loss_sum) = (agreed[0] as u64, agreed[1]);
            if agreed[2] > 0.0 {
                self.write_outputs(&out, None)?;
                crate::bail!(Diverged, "the loss is not finite at step {step} (lr {lr_sched}); outputs so far are in {}", self.out.display());
            }
            // 5–6. Weight (Eq. 4a), compress or not, aggregate (Eq. 4b).
            let weight = match cfg.policy {
                Policy::Scadles => if global_b > 0 { b_local as f64 / global_b as f64 } else { 0.0 },
                Policy::Ddl => 1.0 / ranks as f64,
            };
            let t1 = Instant::now();
            let sent = engine.aggregate(&mut agg, world, &mut model, weight as f32, step, epoch)?;
            let comm_measured = t1.elapsed().as_secs_f64();
            // The step's learning rate (Eq. 4c and the linear scaling rule).
            let lr_step = match cfg.policy {
                Policy::Scadles => optim::scaled_lr(lr_sched, global_b as usize, base_batch),
                Policy::Ddl => lr_sched,
            };
            // 8. Record: per-rank figures gathered once.
            let inj = &injected;
            let stats = world.allgather_f64s(&[
                take.wait_s, compute_s, comm_measured, take.queued as f64, b_local as f64,
                inj.bytes_sent as f64, inj.bytes_received as f64, inj.messages_sent as f64,
                inj.messages_received as f64, inj.labels.len() as f64, sent.criterion.unwrap_or(f64::NAN),
            ]);
            let col = |j: usize| stats.chunks(11).map(move |r| r[j]);
            let inj_traffic: Vec<Traffic> = stats
                .chunks(11)
                .map(|r| Traffic {
                    bytes_sent: r[5] as u64,
                    bytes_received: r[6] as u64,
                    messages_sent: r[7] as u64,
                    messages_received: r[8] as u64,
                    samples_received: r[9] as u64,
                })
                .collect();
            let waits: Vec<f64> = col(0).collect();
            let computes: Vec<f64> = col(1).collect();
            let comm = match link {
                Some(l) => agg.modelled_comm_s(&l, &sent, ranks, link_scale) + inject_comm_s(&l, &inj_traffic),
                None => col(2).fold(0.0, f64::max),
            };
            let step_time = crate::stream::virtual_step_time(&waits, &computes, comm);
            let clock_before = clock;
            clock = match cfg.clock {
                ClockKind::Virtual => clock + step_time,
                ClockKind::Real => wall.elapsed().as_secs_f64(),
            };
            max_step_s = max_step_s.max(clock - clock_before);
            // Evaluation on the clock: the parameters in force at clock time k·T are those after
            // the last step that ended by then, i.e. these, before this step's update.
            let mut reached = false;
            if let Some(every) = cfg.eval_every_s {
                if next_eval_s <= clock {
                    let at = next_eval_s;
                    while next_eval_s <= clock {
                        next_eval_s += every;
                    }
                    beat(step);
                    last_eval = self.eval_record(&mut engine, &mut model, &mut rng, step - 1, at, &mut out, &pb)?;
                    beat(step);
                    if time_to_target.is_none() && target_met(cfg, &last_eval) {
                        reached = !cfg.past_target;
                        time_to_target = Some(at);
                        step_at_target = Some(step - 1);
                    }
                }
            }
            // 7. Apply with the step's learning rate (Eq. 4c and the linear scaling rule).
            if global_b > 0 {
                engine.apply(&mut model, lr_step as f32)?;
            }
            let buf_max = col(3).fold(0.0, f64::max) as u64;
            let inj_step: u64 = inj_traffic.iter().map(|t| t.bytes_received).sum();
            let inj_recv_max = inj_traffic.iter().map(|t| t.bytes_received).max().unwrap_or(0);
            let inj_sent_max = inj_traffic.iter().map(|t| t.bytes_sent).max().unwrap_or(0);
            for (r, t) in inj_traffic.iter().enumerate() {
                inj_recv_rank[r] += t.bytes_received;
                inj_sent_rank[r] += t.bytes_sent;
                inj_samples_total += t.samples_received;
            }
            max_buf = max_buf.max(buf_max);
            consumed += global_b;
            let bs: Vec<f64> = col(4).collect();
            out.steps.push(StepRecord {
                step,
                epoch,
                loss: if global_b > 0 { loss_sum / global_b as f64 } else { f64::NAN },
                lr: lr_sched,
                lr_step,
                global_batch: global_b,
                b_min: bs.iter().cloned().fold(f64::INFINITY, f64::min) as u64,
                b_max: bs.iter().cloned().fold(0.0, f64::max) as u64,
                compute_s: computes.iter().cloned().fold(0.0, f64::max),
                comm_s: comm,
                clock_s: clock,
                wait_max_s: waits.iter().cloned().fold(0.0, f64::max),
                wait_mean_s: waits.iter().sum::<f64>() / ranks as f64,
                buffer_max: buf_max,
                buffer_sum: col(3).sum::<f64>() as u64,
                buffer_max_bytes: buf_max * bytes_per_sample,
                injected_bytes: inj_step,
                injected_bytes_recv_max: inj_recv_max,
                injected_bytes_recv_mean: inj_step as f64 / ranks as f64,
                injected_bytes_sent_max: inj_sent_max,
                injected_samples: inj_traffic.iter().map(|t| t.samples_received).sum(),
                compressed: sent.compressed,
                values_sent: sent.values_total,
                indices_sent: sent.indices_total,
                criterion_mean: sent.criterion.map(|_| col(10).sum::<f64>() / ranks as f64),
                votes: sent.votes,
            });
            pb.inc(1);
            // A killed run keeps its records up to a few seconds ago, whatever --eval-every says.
            if last_flush.elapsed().as_secs_f64() >= 5.0 {
                self.write_outputs(&out, None)?;
                last_flush = Instant::now();
            }
            if reached {
                self.write_outputs(&out, None)?;
                break;
            }
            let by_steps = cfg.eval_every_s.is_none() && step % cfg.eval_every == 0;
            if by_steps || step == cfg.steps {
                beat(step);
                last_eval = self.eval_record(&mut engine, &mut model, &mut rng, step, clock, &mut out, &pb)?;
                beat(step);
                self.write_outputs(&out, None)?;
                if time_to_target.is_none() && target_met(cfg, &last_eval) {
                    time_to_target = Some(clock);
                    step_at_target = Some(step);
                    if !cfg.past_target {
                        break;
                    }
                }
            }
        }
        pb.finish_and_clear();
        let wall_s = wall.elapsed().as_secs_f64();
        let acc = agg.account();
        let dropped_all = world.allreduce_sum_u64(&[dropped_total])[0];
        // How finely the time to target is resolved: the evaluation interval, and at least one step
        // (the parameters change only at step boundaries).
        let eval_gaps = out
            .evals
            .windows(2)
            .map(|w| w[1].clock_s - w[0].clock_s)
            .fold(out.evals.first().map_or(0.0, |e| e.clock_s), f64::max);
        let eval_resolution_s = match cfg.eval_every_s {
            Some(t) => t.max(max_step_s),
            None => eval_gaps,
        };
        let summary = Summary {
            model: cfg.model.clone(),
            shape: cfg.shape.to_string(),
            params: model.num_params(),
            ranks,
            policy: cfg.policy.to_string(),
            clock: format!("{:?}", cfg.clock).to_lowercase(),
            rates,
            steps: out.steps.len() as u64,
            epochs: consumed as f64 / train_set.len() as f64,
            samples: consumed,
            final_top1: last_eval.top1,
            final_top5: last_eval.top5,
            final_loss: last_eval.loss,
            images_per_s: consumed as f64 / wall_s.max(1e-9),
            wall_s,
            clock_s: clock,
            target_top1: cfg.target_top1,
            target_top5: cfg.target_top5,
            time_to_target_s: time_to_target,
            step_at_target,
            eval_every: match cfg.eval_every_s {
                Some(t) => format!("{t} clock seconds"),
                None => format!("{} steps", cfg.eval_every),
            },
            eval_resolution_s,
            max_step_s,
            compute_model: self.res.compute_model.to_string(),
            link_model: match link {
                Some(l) => format!(
                    "{} Gbit/s, {} ms latency, {} parameters",
                    l.gbps,
                    l.latency_s * 1e3,
                    cfg.link_params.unwrap_or(model.num_params() as u64)
                ),
                None => "measured".to_string(),
            },
            bn_eval: cfg.bn_eval.to_string(),
            max_buffer_samples: max_buf,
            max_buffer_bytes: max_buf * bytes_per_sample,
            dropped_samples_total: dropped_all,
            injected_bytes_total: inj_recv_rank.iter().sum(),
            injected_bytes_per_rank: inj_recv_rank,
            injected_bytes_sent_per_rank: inj_sent_rank,
            injected_samples_total: inj_samples_total,
            compression: format!("{:?}", cfg.compression).to_lowercase(),
            floats_sent_total: acc.0,
            indices_sent_total: acc.1,
            words_sent_total: acc.0 + acc.1,
            cnc_ratio: acc.2,
            blas: crate::backend::cpu::blas_name().to_string(),
            device: devices.first().cloned().unwrap_or_default(),
            devices,
            gradient_path: engine.gradient_path().to_string(),
            out_dir: self.out.display().to_string(),
            status: match stopped {
                Some((sig, step)) => format!("stopped by {} before step {step}", signal_name(sig)),
                None => "finished".to_string(),
            },
        };
        self.write_outputs(&out, Some(&summary))?;
        if let Some((sig, step)) = stopped {
            crate::bail!(Interrupted, "{} before step {step}; the outputs so far are in {}", signal_name(sig), self.out.display());
        }
        Ok(summary)
    }
}

/// True when `e` meets every target accuracy that is set (and at least one is).
fn target_met(cfg: &RunConfig, e: &EvalRecord) -> bool {
    let hit1 = cfg.target_top1.is_none_or(|t| e.top1 >= t);
    let hit5 = cfg.target_top5.is_none_or(|t| e.top5 >= t);
    (cfg.target_top1.is_some() || cfg.target_top5.is_some()) && hit1 && hit5
}

/// A rank's class histogram for the start-up table: every count up to 20 classes, otherwise the
/// spread (a 1000-class line helps nobody).
fn histogram_line(h: &[usize]) -> String {
    if h.len() <= 20 {
        let counts: Vec<String> = h.iter().map(|c| c.to_string()).collect();
        return format!("[{}]", counts.join(" "));
    }
    let (lo, hi) = (h.iter().min().copied().unwrap_or(0), h.iter().max().copied().unwrap_or(0));
    let present = h.iter().filter(|&&c| c > 0).count();
    format!("{present} of {} classes present, {lo}..{hi} samples per class", h.len())
}

/// Injection traffic on the link model. All transfers of the step run at once and each rank sends
/// and receives in parallel (full duplex), so rank r is busy for latency × m_r, m_r the larger of
/// its messages sent and received, plus the larger of its bytes sent and received over the
/// bandwidth; the step waits for the busiest rank:
/// max_r (latency·m_r + max(sent_r, received_r)/bandwidth). No injected bytes anywhere: 0 s.
fn inject_comm_s(l: &LinkModel, per_rank: &[Traffic]) -> f64 {
    per_rank
        .iter()
        .filter(|t| t.bytes_sent + t.bytes_received > 0)
        .map(|t| {
            let messages = t.messages_sent.max(t.messages_received) as f64;
            let bytes = t.bytes_sent.max(t.bytes_received) as f64;
            l.latency_s * messages + bytes / l.bytes_per_s()
        })
        .fold(0.0, f64::max)
}

/// Forward and backward of the local batch (stream samples plus injected ones) on the CPU model:
/// the CPU engine's step (see [`Engine`] for the GPU's). Returns the batch size and the mean loss;
/// with an empty batch the gradient is zero and the loss 0.
#[allow(clippy::too_many_arguments)]
pub fn local_gradient(
    model: &mut Model,
    train: &Dataset,
    norm: &Normalization,
    samples: &[usize],
    injected: &crate::dist::inject::Received,
    augment: bool,
    rng: &mut rand::rngs::StdRng,
    x_buf: &mut Vec<f32>,
) -> (usize, f64) {
    let b = samples.len() + injected.labels.len();
    if b == 0 {
        model.store.grads.iter_mut().for_each(|g| *g = 0.0);
        return (0, 0.0);
    }
    let labels = host_batch(train, norm, samples, injected, augment, rng, x_buf);
    let x = Tensor::from_vec(&[b, 3, data::IMAGE_SIDE, data::IMAGE_SIDE], std::mem::take(x_buf));
    let logits = model.forward(x, true, rng);
    let classes = model.num_classes;
    let mut dlogits = Tensor::zeros(&[b, classes]);
    let loss = crate::backend::cpu::softmax_cross_entropy(logits.as_slice(), b, classes, &labels, Some(dlogits.as_mut_slice()));
    model.backward(dlogits);
    (b, loss as f64)
}

/// The local batch on the host: stream samples then injected ones, normalised (and augmented when
/// asked) into `x_buf` as NCHW; returns the labels in the same order.
pub(crate) fn host_batch(
    train: &Dataset,
    norm: &Normalization,
    samples: &[usize],
    injected: &crate::dist::inject::Received,
    augment: bool,
    rng: &mut rand::rngs::StdRng,
    x_buf: &mut Vec<f32>,
) -> Vec<usize> {
    let mut labels = data::make_batch(train, samples, norm, if augment { Some(&mut *rng) } else { None }, x_buf);
    if !injected.labels.is_empty() {
        let foreign = Dataset { images: injected.images.clone(), labels: injected.labels.clone(), num_classes: train.num_classes };
        let idx: Vec<usize> = (0..foreign.len()).collect();
        let mut extra = Vec::new();
        labels.extend(data::make_batch(&foreign, &idx, norm, if augment { Some(&mut *rng) } else { None }, &mut extra));
        x_buf.extend_from_slice(&extra);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::{histogram_line, inject_comm_s, LinkModel, Traffic};

    #[test]
    fn inject_comm_is_the_busiest_ranks_messages_and_larger_direction() {
        let l = LinkModel::new(8.0, 0.5e-3).unwrap(); // 1e9 bytes/s, 0.5 ms per message
        let t = |s: u64, r: u64, ms: u64, mr: u64| Traffic {
            bytes_sent: s,
            bytes_received: r,
            messages_sent: ms,
            messages_received: mr,
            samples_received: 0,
        };
        assert_eq!(inject_comm_s(&l, &[t(0, 0, 0, 0), t(0, 0, 0, 0)]), 0.0);
        // Rank 0 sends 2e6 B in 1 message and receives 1e6 B in 3: 3·0.5 ms + 2 ms. Rank 1 sends
        // 1e6 B in 3 messages and receives 4e6 B in 1: 3·0.5 ms + 4 ms, the busiest.
        let got = inject_comm_s(&l, &[t(2_000_000, 1_000_000, 1, 3), t(1_000_000, 4_000_000, 3, 1)]);
        assert!((got - (1.5e-3 + 4e-3)).abs() < 1e-12, "{got}");
        // Sending and receiving overlap: equal bytes both ways cost one direction.
        let got = inject_comm_s(&l, &[t(3_000_000, 3_000_000, 2, 2)]);
        assert!((got - (1e-3 + 3e-3)).abs() < 1e-12, "{got}");
    }

    #[test]
    fn histogram_line_lists_few_classes_and_summarises_many() {
        assert_eq!(histogram_line(&[3, 0, 5]), "[3 0 5]");
        let mut many = vec![7usize; 100];
        many[4] = 0;
        many[9] = 12;
        assert_eq!(histogram_line(&many), "99 of 100 classes present, 0..12 samples per class");
    }
}
