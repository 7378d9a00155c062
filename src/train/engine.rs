//! Where a rank's training step computes (README "One step", 4–7): on the CPU model itself, or on
//! the same network rebuilt on a GPU ([`GpuNet`]). Either way the batch is built on the host. On
//! the CPU the aggregation works on the store's gradient buffer; on the GPU the gradient, the
//! error-feedback residual and the parameters stay on the device ([`super::device_grads`]): a
//! dense step stages the gradient through pinned host memory around the allreduce, a compressed
//! step moves only its (index, value) pairs. The CPU `Model` holds the layout (with CUDA its
//! parameters stay at their initial values).
use crate::backend::cuda::net::{DeviceTensor, GpuNet};
use super::device_grads::{DeviceCompression, DeviceGrads};
use super::grads::{Aggregator, Sent};
use crate::backend::cuda::CudaBackend;
use crate::config::BnEval;
use crate::data::{self, Dataset, Normalization};
use crate::dist::inject::Received;
use crate::dist::World;
use crate::error::Result;
use crate::metrics::EvalRecord;
use crate::models::Model;
use crate::optim::{Optimizer, OptimizerKind};
use cudarc::driver::PinnedHostSlice;

/// The device a rank trains on, opened once before the run.
#[allow(clippy::large_enum_variant)] // one per process, made once: its size does not matter
pub enum Compute {
    Cpu,
    /// An opened GPU with every kernel already compiled and loaded.
    Cuda { be: CudaBackend, ordinal: usize, name: String },
}

impl Compute {
    /// Opens GPU `ordinal` and compiles every kernel, so that a missing driver or NVRTC, or a
    /// compile error, shows here rather than at the first step.
    pub fn open_cuda(ordinal: usize) -> Result<Self> {
        let be = CudaBackend::new(ordinal)?;
        be.load_all_kernels()?;
        let name = be.name()?;
        Ok(Compute::Cuda { be, ordinal, name })
    }

    /// `"cpu"`, or `"cuda:0 (NVIDIA H100 80GB HBM3)"` (summary.json's `device`).
    pub fn label(&self) -> String {
        match self {
            Compute::Cpu => "cpu".into(),
            Compute::Cuda { ordinal, name, .. } => format!("cuda:{ordinal} ({name})"),
        }
    }

    /// The label with the kernel architecture and precision, for the start-up report.
    pub fn describe(&self) -> String {
        match self {
            Compute::Cpu => self.label(),
            Compute::Cuda { be, .. } => {
                format!("{}, {}, TF32 {}", self.label(), be.arch(), if be.tensor_cores() { "on" } else { "off" })
            }
        }
    }
}

/// The per-run state of a [`Compute`]: the CPU optimiser (any of [`OptimizerKind`]), or the network on the GPU with its
/// momentum buffer, the pinned host buffer the gradient is staged through for MPI, and the
/// device buffers of compressed steps.
#[allow(clippy::large_enum_variant)] // one per run, made once: its size does not matter
pub enum Engine<'a> {
    Cpu { opt: Optimizer },
    /// Pinned memory is what the copy engines read and write directly, at full link speed; no
    /// pageable copy of the gradient is kept besides it. `staged`: `staging` holds the gradient
    /// for the host ([`Engine::host_grads`]) and [`Engine::apply`] uploads it first.
    /// `cuda_aware`: dense steps hand the device buffer to a CUDA-aware MPI instead of staging it.
    Cuda { be: &'a CudaBackend, net: GpuNet, staging: PinnedHostSlice<f32>, staged: bool, comp: DeviceCompression, cuda_aware: bool },
}

impl<'a> Engine<'a> {
    /// Sets up training of `model` (its current parameters) with `optimizer`, momentum μ (sgd,
    /// nesterov) and weight decay. The GPU has SGD only: another optimiser there is a config error.
    pub fn new(compute: &'a Compute, model: &Model, optimizer: OptimizerKind, momentum: f32, weight_decay: f32) -> Result<Self> {
        Ok(match compute {
            Compute::Cpu => Engine::Cpu { opt: Optimizer::new(optimizer, model.num_params(), momentum, weight_decay) },
            Compute::Cuda { .. } if !optimizer.on_gpu() => {
                crate::bail!(Config, "--optimizer {optimizer}: the GPU engine has sgd only; use --device cpu or --optimizer sgd")
            }
            Compute::Cuda { be, .. } => {
                let net = GpuNet::new(be, model, momentum, weight_decay)?;
                let staging = be.pinned(net.num_params())?;
                Engine::Cuda { be, net, staging, staged: false, comp: DeviceCompression::default(), cuda_aware: false }
            }
        })
    }

    /// Lets dense steps pass the GPU gradient to MPI directly; only for a CUDA-aware library, and
    /// the same on every rank. No effect on the CPU engine.
    pub fn set_cuda_aware_mpi(&mut self, on: bool) {
        if let Engine::Cuda { cuda_aware, .. } = self {
            *cuda_aware = on;
        }
    }

    /// Whether this engine trains on a GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self, Engine::Cuda { .. })
    }

    /// How the gradient reaches MPI (summary.json's `gradient_path`).
    pub fn gradient_path(&self) -> &'static str {
        match self {
            Engine::Cpu { .. } => "host memory",
            Engine::Cuda { cuda_aware: true, .. } => "GPU memory (CUDA-aware MPI); top-k pairs through the host",
            Engine::Cuda { .. } => "pinned host staging for dense steps; top-k pairs through the host",
        }
    }

    /// Seeds the GPU's dropout masks; each rank passes its own seed, as each rank's CPU generator
    /// differs. The CPU engine draws from the step's generator and ignores this.
    pub fn seed_dropout(&mut self, seed: u64) {
        if let Engine::Cuda { net, .. } = self {
            net.set_dropout_seed(seed);
        }
    }

    /// Forward and backward of the local batch (stream samples plus injected ones) into the
    /// engine's gradient buffer; returns when the gradient is complete. Returns the batch size and
    /// the mean loss over it; an empty batch gives a zero gradient and loss 0. The CPU engine is
    /// [`super::local_gradient`].
    #[allow(clippy::too_many_arguments)]
    pub fn local_gradient(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        norm: &Normalization,
        samples: &[usize],
        injected: &Received,
        augment: bool,
        rng: &mut rand::rngs::StdRng,
        x_buf: &mut Vec<f32>,
    ) -> Result<(usize, f64)> {
        let (be, net) = match self {
            Engine::Cpu { .. } => return Ok(super::local_gradient(model, train, norm, samples, injected, augment, rng, x_buf)),
            Engine::Cuda { be, net, staged, .. } => {
                *staged = false;
                (*be, net)
            }
        };
        let b = samples.len() + injected.labels.len();
        if b == 0 {
            be.fill_zero(&mut net.grads_mut())?;
            be.synchronize()?;
            return Ok((0, 0.0));
        }
        let labels = super::host_batch(train, norm, samples, injected, augment, rng, x_buf);
        let classes = model.num_classes;
        let x = DeviceTensor::new(be.upload(x_buf.as_slice())?, vec![b, 3, data::IMAGE_SIDE, data::IMAGE_SIDE]);
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let labels = be.upload(&labels)?;
        let logits = net.forward(be, &x, true)?;
        check_logits(&logits, b, classes)?;
        let mut d = be.zeros::<f32>(b * classes)?;
        let loss = be.softmax_cross_entropy(&logits.buf.as_view(), b, classes, &labels.as_view(), Some(&mut d.as_view_mut()))?;
        net.backward(be, DeviceTensor::new(d, vec![b, classes]))?;
        // The step's compute time ends when the backward has run, not when it is queued.
        be.synchronize()?;
        Ok((b, loss as f64))
    }

    /// Scales the local gradient by `weight` (r_i, Eq. 4a) and aggregates it across ranks in place
    /// (Eq. 4b) with `agg`, where the gradient lives: the CPU store's buffer, or the GPU.
    pub fn aggregate(&mut self, agg: &mut Aggregator, world: &World, model: &mut Model, weight: f32, step: u64, epoch: u64) -> Result<Sent> {
        match self {
            Engine::Cpu { .. } => agg.aggregate(world, &mut model.store.grads, weight, step, epoch),
            Engine::Cuda { be, net, staging, staged, comp, cuda_aware } => {
                upload_staged(be, net, staging, staged)?;
                let feedback = agg.feedback();
                let mut side = DeviceGrads { be, g: net.grads_mut(), staging, comp, feedback, cuda_aware: *cuda_aware };
                agg.aggregate_on(world, &mut side, weight, step, epoch)
            }
        }
    }

    /// The local (or aggregated) gradient on the host, to read or change in place before
    /// [`Self::apply`]: the CPU store's gradient buffer, or the GPU's gradient copied into the
    /// pinned staging buffer (which `apply` then uploads).
    pub fn host_grads<'m>(&'m mut self, model: &'m mut Model) -> Result<&'m mut [f32]> {
        match self {
            Engine::Cpu { .. } => Ok(&mut model.store.grads),
            Engine::Cuda { be, net, staging, staged, .. } => {
                if !*staged {
                    net.stage_grads_to_host(be, staging)?;
                    *staged = true;
                }
                be.pinned_host(staging)
            }
        }
    }

    /// One optimiser step with learning rate `lr` and the (aggregated) gradient.
    pub fn apply(&mut self, model: &mut Model, lr: f32) -> Result<()> {
        match self {
            Engine::Cpu { opt } => opt.step(&mut model.store.params, &model.store.grads, lr),
            Engine::Cuda { be, net, staging, staged, .. } => {
                upload_staged(be, net, staging, staged)?;
                net.sgd(be, lr)?;
            }
        }
        Ok(())
    }

    /// Top-1/top-5 and mean loss on the test set with the BatchNorm statistics `bn` chooses, as
    /// [`super::evaluate`] (the same chunks, the same counting, on this engine's device).
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        world: &World,
        model: &mut Model,
        test: &Dataset,
        norm: &Normalization,
        limit: Option<usize>,
        bn: BnEval,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<EvalRecord> {
        let (be, net) = match self {
            Engine::Cpu { .. } => return super::evaluate(world, model, test, norm, limit, bn, rng),
            Engine::Cuda { be, net, .. } => (*be, net),
        };
        if !model.store.buffers.is_empty() {
            let running = net.buffers_to_host(be)?;
            model.store.buffers.copy_from_slice(&running);
            super::eval::share_bn_stats(world, &mut model.store.buffers, &model.store.bn_stats, bn);
            net.set_buffers_from_host(be, &model.store.buffers)?;
        }
        let classes = model.num_classes;
        super::eval::score(world, test, norm, limit, classes, |x, b| {
            let x = DeviceTensor::new(be.upload(&x)?, vec![b, 3, data::IMAGE_SIDE, data::IMAGE_SIDE]);
            let logits = net.forward(be, &x, false)?;
            check_logits(&logits, b, classes)?;
            be.download(&*logits.buf)
        })
    }

    /// The current parameters on the host (a copy).
    pub fn params(&self, model: &Model) -> Result<Vec<f32>> {
        match self {
            Engine::Cpu { .. } => Ok(model.store.params.clone()),
            Engine::Cuda { be, net, .. } => net.params_to_host(be),
        }
    }
}

/// Puts a gradient that the host changed in the staging buffer ([`Engine::host_grads`]) back on
/// the device, once.
fn upload_staged(be: &CudaBackend, net: &mut GpuNet, staging: &PinnedHostSlice<f32>, staged: &mut bool) -> Result<()> {
    if *staged {
        net.stage_grads_from_host(be, staging)?;
        *staged = false;
    }
    Ok(())
}

fn check_logits(logits: &DeviceTensor, b: usize, classes: usize) -> Result<()> {
    if logits.shape != [b, classes] || logits.buf.len() != b * classes {
        crate::bail!(Cuda, "the GPU network returned logits of shape {:?}, expected [{b}, {classes}]", logits.shape);
    }
    Ok(())
}
