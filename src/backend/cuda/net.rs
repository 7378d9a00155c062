//! A whole network trained on the GPU: the layer list of a CPU [`models::Model`] rebuilt as GPU
//! layers over one flat device buffer of parameters and one of gradients (each layer holds
//! offsets into them, the same offsets as the CPU `ParamStore`), activations kept on the device.
//! A training step is forward, softmax cross-entropy, backward and one SGD update over the flat
//! buffers (paper §IV: the per-device step whose gradient the ranks exchange).
//!
//! The CPU `Sequential` holds trait objects that cannot be inspected, so [`describe`] rebuilds each
//! model's layer list from the same recipe as `models::{resnet, vgg, tiny}`, allocating parameter
//! views in the same order with the same names and shapes; [`GpuNet::new`] checks the resulting
//! layout against the CPU model before uploading its parameters.
//!
//! Dropout (torchvision-shape VGG heads) is inverted dropout as on the CPU, with masks drawn on the
//! device from a hash of (seed, element) rather than from the CPU's generator: a GPU step of those
//! models is a step of the same distribution, not the same step. Every training forward of a
//! dropout layer takes the next seed of a SplitMix64 stream started at a seed that
//! [`GpuNet::new`] derives from the model, so a run's masks are reproducible.
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaSlice, CudaViewMut, PinnedHostSlice};

use super::ops::{splitmix64, CudaBackend};
use crate::backend::cpu::{Conv2dShape, Pool2dShape};
use crate::error::{Error, Result};
use crate::models::{self, Shape, Spec};
use crate::nn::ParamView;

/// One parameter tensor of a layout: its name, shape and place in the flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
    pub view: ParamView,
}

/// Where every parameter and BatchNorm running statistic of a network lives in the flat buffers,
/// allocated in the order the CPU builders allocate them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub params: Vec<ParamSlot>,
    pub num_params: usize,
    pub num_buffers: usize,
}

impl Layout {
    fn alloc(&mut self, name: &str, shape: &[usize]) -> ParamView {
        let len: usize = shape.iter().product();
        let view = ParamView { offset: self.num_params, len };
        self.num_params += len;
        self.params.push(ParamSlot { name: name.to_string(), shape: shape.to_vec(), view });
        view
    }

    fn buffer(&mut self, len: usize) -> ParamView {
        let view = ParamView { offset: self.num_buffers, len };
        self.num_buffers += len;
        view
    }
}

/// A tensor on the device: a shared buffer (layers keep their inputs for the backward pass
/// without copying) and its shape.
#[derive(Clone)]
pub struct DeviceTensor {
    pub buf: Arc<CudaSlice<f32>>,
    pub shape: Vec<usize>,
}

impl DeviceTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps a device buffer of `shape.iter().product()` values.
    pub fn new(buf: CudaSlice<f32>, shape: Vec<usize>) -> Self {
        DeviceTensor { buf: Arc::new(buf), shape }
    }
}

/// A GPU layer: its configuration, its parameter views, and what its backward needs from the
/// forward (set by a training forward, taken by the backward).
pub enum GpuLayer {
    Conv {
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        weight: ParamView,
        bias: Option<ParamView>,
        /// False for the first layer: the gradient of the input image is never used.
        need_dx: bool,
        x: Option<DeviceTensor>,
    },
    BatchNorm {
        c: usize,
        gamma: ParamView,
        beta: ParamView,
        /// Views into the flat buffer of running statistics.
        running_mean: ParamView,
        running_var: ParamView,
        momentum: f32,
        eps: f32,
        x: Option<DeviceTensor>,
        saved: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    },
    Relu {
        y: Option<DeviceTensor>,
    },
    MaxPool {
        k: usize,
        stride: usize,
        pad: usize,
        argmax: Option<CudaSlice<u32>>,
        in_shape: Vec<usize>,
    },
    AvgPool {
        oh: usize,
        ow: usize,
        in_shape: Vec<usize>,
    },
    Flatten {
        in_shape: Vec<usize>,
    },
    Linear {
        in_f: usize,
        out_f: usize,
        weight: ParamView,
        bias: Option<ParamView>,
        x: Option<DeviceTensor>,
    },
    /// Inverted dropout; the identity in evaluation mode and for p = 0.
    Dropout {
        p: f32,
        /// The kept elements (1) of the last training forward, None when it was the identity.
        mask: Option<CudaSlice<u8>>,
    },
    /// `relu(main(x) + shortcut(x))`, the shortcut being the identity when absent.
    Residual {
        main: Vec<GpuLayer>,
        shortcut: Option<Vec<GpuLayer>>,
        y: Option<DeviceTensor>,
    },
}

// ---- the models' layers on the GPU ---------------------------------------------------------------

/// The GPU layers of `specs` (`models::spec`), their parameters and running statistics laid out in
/// `l` in the order of the tree, as the CPU backend's `models::instantiate` lays them out in its
/// `ParamStore`.
fn gpu_layers(l: &mut Layout, specs: &[Spec]) -> Vec<GpuLayer> {
    specs
        .iter()
        .map(|s| match s {
            Spec::Conv { name, c_in, c_out, k, stride, pad, bias, need_dx, .. } => {
                let weight = l.alloc(&format!("{name}.weight"), &[*c_out, *c_in, *k, *k]);
                let bias = bias.then(|| l.alloc(&format!("{name}.bias"), &[*c_out]));
                GpuLayer::Conv { c_in: *c_in, c_out: *c_out, k: *k, stride: *stride, pad: *pad, weight, bias, need_dx: *need_dx, x: None }
            }
            Spec::BatchNorm { name, c } => {
                let gamma = l.alloc(&format!("{name}.weight"), &[*c]);
                let beta = l.alloc(&format!("{name}.bias"), &[*c]);
                let running_mean = l.buffer(*c);
                let running_var = l.buffer(*c);
                GpuLayer::BatchNorm { c: *c, gamma, beta, running_mean, running_var, momentum: 0.1, eps: 1e-5, x: None, saved: None }
            }
            Spec::Relu => GpuLayer::Relu { y: None },
            Spec::MaxPool { k, stride, pad } => GpuLayer::MaxPool { k: *k, stride: *stride, pad: *pad, argmax: None, in_shape: Vec::new() },
            Spec::AdaptiveAvgPool { oh, ow } => GpuLayer::AvgPool { oh: *oh, ow: *ow, in_shape: Vec::new() },
            Spec::Flatten => GpuLayer::Flatten { in_shape: Vec::new() },
            Spec::Linear { name, in_f, out_f, .. } => {
                let weight = l.alloc(&format!("{name}.weight"), &[*out_f, *in_f]);
                let bias = Some(l.alloc(&format!("{name}.bias"), &[*out_f]));
                GpuLayer::Linear { in_f: *in_f, out_f: *out_f, weight, bias, x: None }
            }
            Spec::Dropout { p } => GpuLayer::Dropout { p: *p, mask: None },
            Spec::Residual { main, shortcut } => {
                let main = gpu_layers(l, main);
                let shortcut = shortcut.as_ref().map(|sc| gpu_layers(l, sc));
                GpuLayer::Residual { main, shortcut, y: None }
            }
        })
        .collect()
}

/// The GPU layer list and parameter layout of model `name` in `shape` (any of
/// `models::MODEL_NAMES`), without touching a device.
pub fn describe(name: &str, shape: Shape, num_classes: usize) -> Result<(Vec<GpuLayer>, Layout)> {
    let specs = models::spec::spec(name, shape, num_classes)?;
    let mut l = Layout::default();
    let layers = gpu_layers(&mut l, &specs);
    Ok((layers, l))
}

// ---- forward and backward ---------------------------------------------------------------------

fn dims4(what: &str, s: &[usize]) -> Result<(usize, usize, usize, usize)> {
    match s {
        &[n, c, h, w] => Ok((n, c, h, w)),
        _ => crate::bail!(Cuda, "{what}: expected a 4-D NCHW input, got shape {s:?}"),
    }
}

fn saved<T>(what: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::Cuda(format!("{what}: backward without a training forward")))
}

/// Runs `f` on the gradient views of a weight and its optional bias (the bias is allocated right
/// after its weight, so the two never overlap).
fn with_grad_pair<R>(
    grads: &mut CudaSlice<f32>,
    w: ParamView,
    b: Option<ParamView>,
    f: impl FnOnce(&mut CudaViewMut<'_, f32>, Option<&mut CudaViewMut<'_, f32>>) -> Result<R>,
) -> Result<R> {
    match b {
        None => f(&mut grads.slice_mut(w.range()), None),
        Some(bv) => {
            if bv.offset < w.offset + w.len {
                crate::bail!(Cuda, "parameter layout: bias at {} overlaps its weight at {:?}", bv.offset, w.range());
            }
            let (mut lo, mut hi) = grads.split_at_mut(bv.offset);
            let mut dw = lo.slice_mut(w.range());
            let mut db = hi.slice_mut(..bv.len);
            f(&mut dw, Some(&mut db))
        }
    }
}

struct Fwd<'a> {
    be: &'a CudaBackend,
    params: &'a CudaSlice<f32>,
    buffers: &'a mut CudaSlice<f32>,
    train: bool,
    seeds: &'a mut DropoutSeeds,
}

/// The seeds of the dropout masks: the SplitMix64 stream started at `base`, one value per
/// training forward of a dropout layer, so that no two masks of a run share a seed.
#[derive(Clone, Copy, Debug)]
struct DropoutSeeds {
    base: u64,
    drawn: u64,
}

impl DropoutSeeds {
    fn new(base: u64) -> Self {
        DropoutSeeds { base, drawn: 0 }
    }

    fn next(&mut self) -> u64 {
        let seed = splitmix64(self.base, self.drawn);
        self.drawn += 1;
        seed
    }
}

/// A dropout seed fixed by the model: its name and a strided sample of its parameters, which the
/// model's seed determines, so a rerun with the same seed draws the same masks.
fn dropout_base_seed(model: &models::Model) -> u64 {
    let p = &model.store.params;
    let stride = (p.len() / 1024).max(1);
    let words = model.name.bytes().map(u64::from).chain(p.iter().step_by(stride).map(|v| u64::from(v.to_bits())));
    words.fold(0x5CAD_D50F_u64, |h, w| splitmix64(h ^ w, 0))
}

struct Bwd<'a> {
    be: &'a CudaBackend,
    params: &'a CudaSlice<f32>,
    grads: &'a mut CudaSlice<f32>,
}

fn forward_seq(f: &mut Fwd, layers: &mut [GpuLayer], mut x: DeviceTensor) -> Result<DeviceTensor> {
    for l in layers.iter_mut() {
        x = forward_one(f, l, x)?;
    }
    Ok(x)
}

fn forward_one(f: &mut Fwd, layer: &mut GpuLayer, x: DeviceTensor) -> Result<DeviceTensor> {
    let be = f.be;
    match layer {
        GpuLayer::Conv { c_in, c_out, k, stride, pad, weight, bias, x: keep, .. } => {
            let (n, c, h, w) = dims4("conv2d", &x.shape)?;
            if c != *c_in {
                crate::bail!(Cuda, "conv2d: input has {c} channels, expected {c_in}");
            }
            let s = Conv2dShape { n, c_in: c, h, w, c_out: *c_out, kh: *k, kw: *k, stride: *stride, pad: *pad };
            let mut y = be.output::<f32>(s.out_len())?;
            let wv = f.params.slice(weight.range());
            let bv = bias.map(|b| f.params.slice(b.range()));
            be.conv2d_forward(&s, &x.buf.as_view(), &wv, bv.as_ref(), &mut y.as_view_mut())?;
            let out = DeviceTensor::new(y, vec![n, *c_out, s.h_out(), s.w_out()]);
            *keep = f.train.then_some(x);
            Ok(out)
        }
        GpuLayer::BatchNorm { c, gamma, beta, running_mean, running_var, momentum, eps, x: keep, saved } => {
            let (n, ch, h, w) = dims4("batchnorm", &x.shape)?;
            if ch != *c {
                crate::bail!(Cuda, "batchnorm: input has {ch} channels, expected {c}");
            }
            let mut y = be.output::<f32>(x.len())?;
            let (g, b) = (f.params.slice(gamma.range()), f.params.slice(beta.range()));
            if f.train && n > 0 {
                let mut sm = be.output::<f32>(*c)?;
                let mut si = be.output::<f32>(*c)?;
                // Running variance is allocated right after the running mean.
                let (mut lo, mut hi) = f.buffers.split_at_mut(running_var.offset);
                let mut rm = lo.slice_mut(running_mean.range());
                let mut rv = hi.slice_mut(..running_var.len);
                be.batchnorm_forward_train(
                    &x.buf.as_view(), n, *c, h * w, &g, &b, *eps, *momentum, &mut rm, &mut rv,
                    &mut y.as_view_mut(), &mut sm.as_view_mut(), &mut si.as_view_mut(),
                )?;
                *saved = Some((sm, si));
                *keep = Some(x.clone());
            } else {
                let rm = f.buffers.slice(running_mean.range());
                let rv = f.buffers.slice(running_var.range());
                be.batchnorm_forward_eval(&x.buf.as_view(), n, *c, h * w, &g, &b, *eps, &rm, &rv, &mut y.as_view_mut())?;
            }
            Ok(DeviceTensor::new(y, x.shape.clone()))
        }
        GpuLayer::Relu { y: keep } => {
            let mut y = be.output::<f32>(x.len())?;
            be.relu_forward(&x.buf.as_view(), &mut y.as_view_mut())?;
            let out = DeviceTensor::new(y, x.shape.clone());
            *keep = f.train.then(|| out.clone());
            Ok(out)
        }
        GpuLayer::MaxPool { k, stride, pad, argmax, in_shape } => {
            let (n, c, h, w) = dims4("maxpool2d", &x.shape)?;
            let s = Pool2dShape { n, c, h, w, k: *k, stride: *stride, pad: *pad };
            let mut y = be.output::<f32>(s.out_len())?;
            let mut am = be.output::<u32>(s.out_len())?;
            be.maxpool_forward(&s, &x.buf.as_view(), &mut y.as_view_mut(), &mut am.as_view_mut())?;
            *argmax = Some(am);
            *in_shape = x.shape.clone();
            Ok(DeviceTensor::new(y, vec![n, c, s.h_out(), s.w_out()]))
        }
        GpuLayer::AvgPool { oh, ow, in_shape } => {
            let (n, c, h, w) = dims4("adaptive_avgpool2d", &x.shape)?;
            let mut y = be.output::<f32>(n * c * *oh * *ow)?;
            be.adaptive_avgpool_forward(n, c, h, w, *oh, *ow, &x.buf.as_view(), &mut y.as_view_mut())?;
            *in_shape = x.shape.clone();
            Ok(DeviceTensor::new(y, vec![n, c, *oh, *ow]))
        }
        GpuLayer::Flatten { in_shape } => {
            *in_shape = x.shape.clone();
            let n = x.shape.first().copied().unwrap_or(0);
            let rest = x.shape.iter().skip(1).product();
            Ok(DeviceTensor { buf: x.buf, shape: vec![n, rest] })
        }
        GpuLayer::Linear { in_f, out_f, weight, bias, x: keep } => {
            let n = x.shape.first().copied().unwrap_or(0);
            if x.shape.len() != 2 || x.shape[1] != *in_f {
                crate::bail!(Cuda, "linear: input shape {:?}, expected [n, {in_f}]", x.shape);
            }
            let mut y = be.output::<f32>(n * *out_f)?;
            let wv = f.params.slice(weight.range());
            let bv = bias.map(|b| f.params.slice(b.range()));
            be.linear_forward(n, *in_f, *out_f, &x.buf.as_view(), &wv, bv.as_ref(), &mut y.as_view_mut())?;
            *keep = f.train.then_some(x);
            Ok(DeviceTensor::new(y, vec![n, *out_f]))
        }
        GpuLayer::Dropout { p, mask } => {
            *mask = None;
            if !f.train || *p == 0.0 {
                return Ok(x);
            }
            let mut y = be.output::<f32>(x.len())?;
            let mut m = be.output::<u8>(x.len())?;
            be.dropout_forward(*p, f.seeds.next(), &x.buf.as_view(), &mut y.as_view_mut(), &mut m.as_view_mut())?;
            *mask = Some(m);
            Ok(DeviceTensor::new(y, x.shape.clone()))
        }
        GpuLayer::Residual { main, shortcut, y: keep } => {
            let identity = match shortcut {
                Some(s) => forward_seq(f, s, x.clone())?,
                None => x.clone(),
            };
            let m = forward_seq(f, main, x)?;
            if m.shape != identity.shape {
                crate::bail!(Cuda, "residual: main branch {:?} and shortcut {:?} differ", m.shape, identity.shape);
            }
            let mut y = be.output::<f32>(m.len())?;
            be.add_relu_forward(&m.buf.as_view(), &identity.buf.as_view(), &mut y.as_view_mut())?;
            let out = DeviceTensor::new(y, m.shape.clone());
            *keep = f.train.then(|| out.clone());
            Ok(out)
        }
    }
}

/// Backward through `layers`; None when the first layer was built not to produce an input gradient.
fn backward_seq(b: &mut Bwd, layers: &mut [GpuLayer], dy: DeviceTensor) -> Result<Option<DeviceTensor>> {
    let mut d = Some(dy);
    for (i, l) in layers.iter_mut().enumerate().rev() {
        let Some(g) = d.take() else {
            crate::bail!(Cuda, "backward: layer {} needs the gradient that layer {} does not produce", i, i + 1);
        };
        d = backward_one(b, l, g)?;
    }
    Ok(d)
}

fn backward_one(b: &mut Bwd, layer: &mut GpuLayer, dy: DeviceTensor) -> Result<Option<DeviceTensor>> {
    let be = b.be;
    match layer {
        GpuLayer::Conv { c_in, c_out, k, stride, pad, weight, bias, need_dx, x: keep } => {
            let x = saved("conv2d", keep.take())?;
            let (n, _, h, w) = dims4("conv2d", &x.shape)?;
            let s = Conv2dShape { n, c_in: *c_in, h, w, c_out: *c_out, kh: *k, kw: *k, stride: *stride, pad: *pad };
            let mut dx = if *need_dx { Some(be.output::<f32>(x.len())?) } else { None };
            let wv = b.params.slice(weight.range());
            let mut dxv = dx.as_mut().map(|d| d.as_view_mut());
            with_grad_pair(b.grads, *weight, *bias, |dw, db| {
                be.conv2d_backward(&s, &x.buf.as_view(), &wv, &dy.buf.as_view(), dxv.as_mut(), dw, db)
            })?;
            Ok(dx.map(|d| DeviceTensor::new(d, x.shape.clone())))
        }
        GpuLayer::BatchNorm { c, gamma, beta, x: keep, saved: stats, .. } => {
            let x = saved("batchnorm", keep.take())?;
            let (sm, si) = saved("batchnorm", stats.take())?;
            let (n, _, h, w) = dims4("batchnorm", &x.shape)?;
            let mut dx = be.output::<f32>(x.len())?;
            let g = b.params.slice(gamma.range());
            with_grad_pair(b.grads, *gamma, Some(*beta), |dg, db| {
                let db = db.ok_or_else(|| Error::Cuda("batchnorm: beta gradient view".into()))?;
                be.batchnorm_backward(
                    &x.buf.as_view(), &dy.buf.as_view(), n, *c, h * w, &g, &sm.as_view(), &si.as_view(),
                    &mut dx.as_view_mut(), dg, db,
                )
            })?;
            Ok(Some(DeviceTensor::new(dx, x.shape.clone())))
        }
        GpuLayer::Relu { y: keep } => {
            let y = saved("relu", keep.take())?;
            let mut dx = be.output::<f32>(y.len())?;
            be.relu_backward(&y.buf.as_view(), &dy.buf.as_view(), &mut dx.as_view_mut())?;
            Ok(Some(DeviceTensor::new(dx, y.shape.clone())))
        }
        GpuLayer::MaxPool { k, stride, pad, argmax, in_shape } => {
            let am = saved("maxpool2d", argmax.take())?;
            let (n, c, h, w) = dims4("maxpool2d", in_shape)?;
            let s = Pool2dShape { n, c, h, w, k: *k, stride: *stride, pad: *pad };
            let mut dx = be.output::<f32>(n * c * h * w)?;
            be.maxpool_backward(&s, &dy.buf.as_view(), &am.as_view(), &mut dx.as_view_mut())?;
            Ok(Some(DeviceTensor::new(dx, in_shape.clone())))
        }
        GpuLayer::AvgPool { oh, ow, in_shape } => {
            let (n, c, h, w) = dims4("adaptive_avgpool2d", in_shape)?;
            let mut dx = be.output::<f32>(n * c * h * w)?;
            be.adaptive_avgpool_backward(n, c, h, w, *oh, *ow, &dy.buf.as_view(), &mut dx.as_view_mut())?;
            Ok(Some(DeviceTensor::new(dx, in_shape.clone())))
        }
        GpuLayer::Flatten { in_shape } => Ok(Some(DeviceTensor { buf: dy.buf, shape: in_shape.clone() })),
        GpuLayer::Linear { in_f, out_f, weight, bias, x: keep } => {
            let x = saved("linear", keep.take())?;
            let n = x.shape[0];
            let mut dx = be.output::<f32>(x.len())?;
            let wv = b.params.slice(weight.range());
            with_grad_pair(b.grads, *weight, *bias, |dw, db| {
                be.linear_backward(n, *in_f, *out_f, &x.buf.as_view(), &wv, &dy.buf.as_view(), Some(&mut dx.as_view_mut()), dw, db)
            })?;
            Ok(Some(DeviceTensor::new(dx, x.shape.clone())))
        }
        GpuLayer::Dropout { p, mask } => match mask.take() {
            // The forward was the identity (evaluation mode or p = 0), and so is the backward.
            None => Ok(Some(dy)),
            Some(m) => {
                let mut dx = be.output::<f32>(dy.len())?;
                be.dropout_backward(*p, &m.as_view(), &dy.buf.as_view(), &mut dx.as_view_mut())?;
                Ok(Some(DeviceTensor::new(dx, dy.shape.clone())))
            }
        },
        GpuLayer::Residual { main, shortcut, y: keep } => {
            let y = saved("residual", keep.take())?;
            let mut ds = be.output::<f32>(y.len())?;
            be.relu_backward(&y.buf.as_view(), &dy.buf.as_view(), &mut ds.as_view_mut())?;
            let dsum = DeviceTensor::new(ds, y.shape.clone());
            let d_short = match shortcut {
                Some(s) => backward_seq(b, s, dsum.clone())?,
                None => Some(dsum.clone()),
            };
            let d_main = backward_seq(b, main, dsum)?;
            let (Some(dm), Some(dsh)) = (d_main, d_short) else {
                crate::bail!(Cuda, "residual: a branch produced no input gradient");
            };
            let mut dx = be.output::<f32>(dm.len())?;
            be.pack_weighted(1.0, &dm.buf.as_view(), &dsh.buf.as_view(), &mut dx.as_view_mut())?;
            Ok(Some(DeviceTensor::new(dx, dm.shape.clone())))
        }
    }
}

// ---- the network ---------------------------------------------------------------------------------

/// Seconds spent in each phase of one [`GpuNet::train_step`] (the stream is synchronised between
/// phases) and the step's loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepReport {
    pub loss: f32,
    pub fwd_s: f64,
    pub bwd_s: f64,
    pub sgd_s: f64,
}

/// A network on the GPU with its flat parameter, gradient, running-statistic and momentum buffers.
pub struct GpuNet {
    pub name: String,
    pub num_classes: usize,
    pub layout: Layout,
    layers: Vec<GpuLayer>,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    buffers: CudaSlice<f32>,
    momentum_buf: CudaSlice<f32>,
    dropout_seeds: DropoutSeeds,
    /// SGD momentum μ and weight decay (PyTorch semantics, as `optim::Sgd`).
    pub momentum: f32,
    pub weight_decay: f32,
}

impl GpuNet {
    /// Rebuilds `model` on the GPU with its current parameters and running statistics. Fails when
    /// the GPU layout differs from the CPU model's (names, shapes, offsets or counts).
    pub fn new(be: &CudaBackend, model: &models::Model, momentum: f32, weight_decay: f32) -> Result<Self> {
        let (layers, layout) = describe(&model.name, model.shape, model.num_classes)?;
        check_layout(&layout, &model.store.infos, model.num_params(), &model.name)?;
        if layout.num_buffers != model.store.buffers.len() {
            crate::bail!(
                Cuda,
                "{}: GPU layout has {} running-statistic values, the CPU model {}",
                model.name,
                layout.num_buffers,
                model.store.buffers.len()
            );
        }
        let np = layout.num_params.max(1);
        let params = be.upload(&model.store.params)?;
        let buffers = if model.store.buffers.is_empty() { be.zeros(1)? } else { be.upload(&model.store.buffers)? };
        Ok(GpuNet {
            name: model.name.clone(),
            num_classes: model.num_classes,
            layout,
            layers,
            params,
            grads: be.zeros(np)?,
            buffers,
            momentum_buf: be.zeros(np)?,
            dropout_seeds: DropoutSeeds::new(dropout_base_seed(model)),
            momentum,
            weight_decay,
        })
    }

    pub fn num_params(&self) -> usize {
        self.layout.num_params
    }

    /// Forward pass of a NCHW batch; returns the logits [n, classes]. A training forward keeps
    /// what the backward needs, updates the BatchNorm running statistics and draws new dropout
    /// masks; an evaluation forward leaves dropout out.
    pub fn forward(&mut self, be: &CudaBackend, x: &DeviceTensor, train: bool) -> Result<DeviceTensor> {
        let mut f = Fwd { be, params: &self.params, buffers: &mut self.buffers, train, seeds: &mut self.dropout_seeds };
        forward_seq(&mut f, &mut self.layers, x.clone())
    }

    /// Backward pass from d(loss)/d(logits); overwrites the gradient buffer.
    pub fn backward(&mut self, be: &CudaBackend, dlogits: DeviceTensor) -> Result<()> {
        let mut b = Bwd { be, params: &self.params, grads: &mut self.grads };
        backward_seq(&mut b, &mut self.layers, dlogits).map(|_| ())
    }

    /// One SGD update of the flat parameters with the flat gradients.
    pub fn sgd(&mut self, be: &CudaBackend, lr: f32) -> Result<()> {
        let n = self.layout.num_params;
        if n == 0 {
            return Ok(());
        }
        let g = self.grads.slice(..n);
        be.sgd_step(
            lr,
            self.momentum,
            self.weight_decay,
            &mut self.params.slice_mut(..n),
            &g,
            &mut self.momentum_buf.slice_mut(..n),
        )
    }

    /// One training step: forward, softmax cross-entropy against `labels` (n values), backward,
    /// SGD with learning rate `lr`.
    pub fn train_step(&mut self, be: &CudaBackend, x: &DeviceTensor, labels: &CudaSlice<u32>, lr: f32) -> Result<StepReport> {
        let t0 = Instant::now();
        let logits = self.forward(be, x, true)?;
        let (n, classes) = match logits.shape[..] {
            [n, c] => (n, c),
            _ => crate::bail!(Cuda, "{}: logits have shape {:?}, expected [n, classes]", self.name, logits.shape),
        };
        let mut d = be.output::<f32>(n * classes)?;
        // Waits for the stream (it downloads the loss), which closes the forward phase.
        let loss = be.softmax_cross_entropy(&logits.buf.as_view(), n, classes, &labels.as_view(), Some(&mut d.as_view_mut()))?;
        let t1 = Instant::now();
        self.backward(be, DeviceTensor::new(d, vec![n, classes]))?;
        be.synchronize()?;
        let t2 = Instant::now();
        self.sgd(be, lr)?;
        be.synchronize()?;
        let t3 = Instant::now();
        Ok(StepReport { loss, fwd_s: (t1 - t0).as_secs_f64(), bwd_s: (t2 - t1).as_secs_f64(), sgd_s: (t3 - t2).as_secs_f64() })
    }

    /// The flat gradient buffer (the last backward pass's gradient until something overwrites it:
    /// the aggregation works on it in place).
    pub fn grads_mut(&mut self) -> CudaViewMut<'_, f32> {
        self.grads.slice_mut(..self.layout.num_params)
    }

    /// The parameters, copied to the host.
    pub fn params_to_host(&self, be: &CudaBackend) -> Result<Vec<f32>> {
        be.download(&self.params.slice(..self.layout.num_params))
    }

    /// The gradients of the last backward pass, copied to the host.
    pub fn grads_to_host(&self, be: &CudaBackend) -> Result<Vec<f32>> {
        be.download(&self.grads.slice(..self.layout.num_params))
    }

    /// The BatchNorm running statistics, copied to the host.
    pub fn buffers_to_host(&self, be: &CudaBackend) -> Result<Vec<f32>> {
        if self.layout.num_buffers == 0 {
            return Ok(Vec::new());
        }
        be.download(&self.buffers.slice(..self.layout.num_buffers))
    }

    /// The gradients of the last backward pass, copied into the pinned buffer `dst` (waits until
    /// the copy is done, so the host and MPI can read it).
    pub fn stage_grads_to_host(&self, be: &CudaBackend, dst: &mut PinnedHostSlice<f32>) -> Result<()> {
        let n = self.layout.num_params;
        check_host_len(&self.name, "pinned gradient", dst.len(), n)?;
        be.stage_to_host(&self.grads.slice(..n), dst)
    }

    /// Overwrites the device gradients with the pinned buffer `src` (the aggregated gradient), for
    /// [`Self::sgd`]; the copy is queued on the stream ahead of it.
    pub fn stage_grads_from_host(&mut self, be: &CudaBackend, src: &PinnedHostSlice<f32>) -> Result<()> {
        let n = self.layout.num_params;
        check_host_len(&self.name, "pinned gradient", src.len(), n)?;
        be.stage_from_host(src, &mut self.grads.slice_mut(..n))
    }

    /// Overwrites the BatchNorm running statistics with `src` (rank 0's, before evaluation).
    pub fn set_buffers_from_host(&mut self, be: &CudaBackend, src: &[f32]) -> Result<()> {
        let n = self.layout.num_buffers;
        check_host_len(&self.name, "running-statistic", src.len(), n)?;
        be.upload_into(src, &mut self.buffers.slice_mut(..n))
    }

    /// Restarts the stream of dropout seeds at `seed`: the masks drawn from here on depend only on
    /// `seed` and the forwards that follow (e.g. a seed mixed with the rank gives each rank its own).
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.dropout_seeds = DropoutSeeds::new(seed);
    }
}

fn check_host_len(model: &str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        crate::bail!(Cuda, "{model}: host {what} buffer holds {got} values, the GPU network {want}");
    }
    Ok(())
}

/// Checks a GPU layout against the CPU store's parameter list: same names, shapes and offsets, and
/// the same total count.
pub fn check_layout(layout: &Layout, infos: &[crate::nn::params::ParamInfo], num_params: usize, model: &str) -> Result<()> {
    if layout.params.len() != infos.len() {
        crate::bail!(Cuda, "{model}: GPU layout has {} parameter tensors, the CPU model {}", layout.params.len(), infos.len());
    }
    for (g, c) in layout.params.iter().zip(infos) {
        if g.name != c.name || g.shape != c.shape || g.view != c.view {
            crate::bail!(
                Cuda,
                "{model}: GPU parameter {} {:?} at {:?} differs from the CPU's {} {:?} at {:?}",
                g.name, g.shape, g.view, c.name, c.shape, c.view
            );
        }
    }
    if layout.num_params != num_params {
        crate::bail!(Cuda, "{model}: GPU layout has {} parameters, the CPU model {num_params}", layout.num_params);
    }
    Ok(())
}

/// `bench step --device cuda`: the same synthetic batch and SGD settings as the CPU benchmark,
/// each model's step timed on GPU `ordinal` at each batch size (`--batches`, or `--batch`); prints
/// one `bench ...` line per model and batch with `device=cuda`. The step is `GpuNet::train_step`,
/// which synchronises the stream at the end of each phase (forward + loss, backward, SGD).
pub fn bench_step(a: &crate::train::bench::StepBenchArgs, ordinal: usize) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let be = CudaBackend::new(ordinal)?;
    println!(
        "# training step on {} ({}, TF32 {}): forward + backward + SGD(momentum 0.9, wd 1e-4), 32x32 inputs",
        be.name()?,
        be.arch(),
        if be.tensor_cores() { "on" } else { "off" }
    );
    for spec in &a.models {
        let (name, shape) = crate::train::bench::parse_model_spec(spec);
        let classes = if shape == Shape::Cifar { 10 } else { a.num_classes };
        let model = models::build(&name, shape, classes, 1)?;
        let mut net = GpuNet::new(&be, &model, 0.9, 1e-4)?;
        drop(model);
        for batch in a.batch_list() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let x: Vec<f32> = (0..batch * 3 * 32 * 32).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let labels: Vec<u32> = (0..batch).map(|_| rng.gen_range(0..classes as u32)).collect();
            let x = DeviceTensor::new(be.upload(&x)?, vec![batch, 3, 32, 32]);
            let labels = be.upload(&labels)?;
            let mut reps = Vec::new();
            for i in 0..a.warmup + a.steps {
                let r = net.train_step(&be, &x, &labels, 0.01)?;
                if !r.loss.is_finite() {
                    crate::bail!(Diverged, "bench step: {name} loss is {} on the GPU at batch {batch}", r.loss);
                }
                if i >= a.warmup {
                    reps.push(r);
                }
            }
            let med = |f: fn(&StepReport) -> f64| crate::train::bench::median(&reps.iter().map(f).collect::<Vec<_>>());
            let step_s = med(|r| r.fwd_s + r.bwd_s + r.sgd_s);
            println!(
                "bench model={name} shape={shape} batch={} threads={} img_per_s={:.1} step_s={:.4} fwd_s={:.4} bwd_s={:.4} sgd_s={:.4} params={} device=cuda",
                batch,
                a.threads,
                batch as f64 / step_s,
                step_s,
                med(|r| r.fwd_s),
                med(|r| r.bwd_s),
                med(|r| r.sgd_s),
                net.num_params()
            );
        }
    }
    Ok(())
}
