//! The layers: each keeps what its backward needs from the forward (inputs, masks, argmax).
use super::{Bwd, Fwd, Init, ParamStore, ParamView};
use crate::backend::cpu as ops;
use crate::tensor::Tensor;

/// A differentiable layer. `backward` writes parameter gradients into `Bwd::grads` (overwriting)
/// and returns the gradient with respect to the input (empty when the layer was built not to need it).
pub trait Layer: Send {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor;
    fn backward(&mut self, b: &mut Bwd, dy: Tensor) -> Tensor;
}

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }
    pub fn push(&mut self, l: impl Layer + 'static) {
        self.layers.push(Box::new(l));
    }
}

impl Layer for Sequential {
    fn forward(&mut self, f: &mut Fwd, mut x: Tensor) -> Tensor {
        for l in self.layers.iter_mut() {
            x = l.forward(f, x);
        }
        x
    }
    fn backward(&mut self, b: &mut Bwd, mut dy: Tensor) -> Tensor {
        for l in self.layers.iter_mut().rev() {
            dy = l.backward(b, dy);
        }
        dy
    }
}

/// 2-D convolution, weight [c_out, c_in, k, k], optional bias.
pub struct Conv2d {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub weight: ParamView,
    pub bias: Option<ParamView>,
    /// False for the first layer: the gradient of the input image is never used.
    pub need_dx: bool,
    x: Option<Tensor>,
}

impl Conv2d {
    /// torchvision init: Kaiming normal (fan_out, ReLU) weights, zero bias.
    #[allow(clippy::too_many_arguments)]
    pub fn new(ps: &mut ParamStore, name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, bias: bool) -> Self {
        let weight = ps.alloc(&format!("{name}.weight"), &[c_out, c_in, k, k], Init::KaimingNormalFanOut { fan_out: c_out * k * k });
        let bias = bias.then(|| ps.alloc(&format!("{name}.bias"), &[c_out], Init::Const(0.0)));
        Conv2d { c_in, c_out, k, stride, pad, weight, bias, need_dx: true, x: None }
    }

    /// The same layer with PyTorch's default (fan-in uniform) init, as small custom models use.
    pub fn new_default_init(ps: &mut ParamStore, name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        let fan_in = c_in * k * k;
        let weight = ps.alloc(&format!("{name}.weight"), &[c_out, c_in, k, k], Init::UniformFanIn { fan_in });
        let bias = Some(ps.alloc(&format!("{name}.bias"), &[c_out], Init::UniformFanIn { fan_in }));
        Conv2d { c_in, c_out, k, stride, pad, weight, bias, need_dx: true, x: None }
    }

    fn shape(&self, x: &Tensor) -> ops::Conv2dShape {
        ops::Conv2dShape {
            n: x.dim(0),
            c_in: self.c_in,
            h: x.dim(2),
            w: x.dim(3),
            c_out: self.c_out,
            kh: self.k,
            kw: self.k,
            stride: self.stride,
            pad: self.pad,
        }
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor {
        let s = self.shape(&x);
        let mut y = Tensor::zeros(&[s.n, s.c_out, s.h_out(), s.w_out()]);
        let bias = self.bias.map(|b| b.of(f.params));
        ops::conv2d_forward(&s, x.as_slice(), self.weight.of(f.params), bias, y.as_mut_slice(), f.ws);
        if f.train {
            self.x = Some(x);
        }
        y
    }
    fn backward(&mut self, b: &mut Bwd, dy: Tensor) -> Tensor {
        let x = self.x.take().expect("conv2d backward without a training forward");
        let s = self.shape(&x);
        let mut dx = if self.need_dx { Tensor::zeros(x.shape()) } else { Tensor::zeros(&[0]) };
        let (dw, db) = split_grads(b.grads, self.weight, self.bias);
        let dxs = if self.need_dx { Some(dx.as_mut_slice()) } else { None };
        ops::conv2d_backward(&s, x.as_slice(), self.weight.of(b.params), dy.as_slice(), dxs, dw, db, b.ws);
        dx
    }
}

/// Mutable gradient slices of a weight and an optional bias, which never overlap.
fn split_grads(grads: &mut [f32], w: ParamView, b: Option<ParamView>) -> (&mut [f32], Option<&mut [f32]>) {
    match b {
        None => (w.of_mut(grads), None),
        Some(bv) => {
            debug_assert!(bv.offset >= w.offset + w.len, "bias is allocated after its weight");
            let (lo, hi) = grads.split_at_mut(bv.offset);
            (&mut lo[w.range()], Some(&mut hi[..bv.len]))
        }
    }
}

/// BatchNorm2d with PyTorch semantics (momentum 0.1, eps 1e-5, unbiased running variance).
pub struct BatchNorm2d {
    pub c: usize,
    pub gamma: ParamView,
    pub beta: ParamView,
    running_mean: ParamView,
    running_var: ParamView,
    pub momentum: f32,
    pub eps: f32,
    x: Option<Tensor>,
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
}

impl BatchNorm2d {
    pub fn new(ps: &mut ParamStore, name: &str, c: usize) -> Self {
        let gamma = ps.alloc(&format!("{name}.weight"), &[c], Init::Const(1.0));
        let beta = ps.alloc(&format!("{name}.bias"), &[c], Init::Const(0.0));
        let running_mean = ps.alloc_buffer(c, 0.0);
        let running_var = ps.alloc_buffer(c, 1.0);
        ps.bn_stats.push((running_mean, running_var));
        BatchNorm2d {
            c,
            gamma,
            beta,
            running_mean,
            running_var,
            momentum: 0.1,
            eps: 1e-5,
            x: None,
            save_mean: vec![0.0; c],
            save_invstd: vec![0.0; c],
        }
    }
}

impl Layer for BatchNorm2d {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor {
        let (n, c, hw) = (x.dim(0), x.dim(1), x.dim(2) * x.dim(3));
        let mut y = Tensor::zeros(x.shape());
        let (g, bt) = (self.gamma.of(f.params), self.beta.of(f.params));
        if f.train && n > 0 {
            let (lo, hi) = f.buffers.split_at_mut(self.running_var.offset);
            let rm = &mut lo[self.running_mean.range()];
            let rv = &mut hi[..self.running_var.len];
            ops::batchnorm2d_forward_train(
                x.as_slice(), n, c, hw, g, bt, self.eps, self.momentum, rm, rv,
                y.as_mut_slice(), &mut self.save_mean, &mut self.save_invstd,
            );
            self.x = Some(x);
        } else {
            let rm = self.running_mean.of(f.buffers);
            let rv = self.running_var.of(f.buffers);
            ops::batchnorm2d_forward_eval(x.as_slice(), n, c, hw, g, bt, self.eps, rm, rv, y.as_mut_slice());
        }
        y
    }
    fn backward(&mut self, b: &mut Bwd, dy: Tensor) -> Tensor {
        let x = self.x.take().expect("batchnorm backward without a training forward");
        let (n, c, hw) = (x.dim(0), x.dim(1), x.dim(2) * x.dim(3));
        let mut dx = Tensor::zeros(x.shape());
        let (dg, db) = split_grads(b.grads, self.gamma, Some(self.beta));
        ops::batchnorm2d_backward(
            x.as_slice(), dy.as_slice(), n, c, hw, self.gamma.of(b.params),
            &self.save_mean, &self.save_invstd, dx.as_mut_slice(), dg, db.expect("beta"),
        );
        dx
    }
}

/// ReLU, in place; keeps its output for the backward mask.
#[derive(Default)]
pub struct Relu {
    y: Option<Tensor>,
}

impl Relu {
    pub fn new() -> Self {
        Relu { y: None }
    }
}

impl Layer for Relu {
    fn forward(&mut self, f: &mut Fwd, mut x: Tensor) -> Tensor {
        ops::relu_inplace(x.as_mut_slice());
        if f.train {
            self.y = Some(x.clone());
        }
        x
    }
    fn backward(&mut self, _b: &mut Bwd, mut dy: Tensor) -> Tensor {
        let y = self.y.take().expect("relu backward without a training forward");
        ops::relu_backward_inplace(y.as_slice(), dy.as_mut_slice());
        dy
    }
}

/// Max pooling with -inf padding.
pub struct MaxPool2d {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    argmax: Vec<u32>,
    in_shape: Vec<usize>,
}

impl MaxPool2d {
    pub fn new(k: usize, stride: usize, pad: usize) -> Self {
        MaxPool2d { k, stride, pad, argmax: Vec::new(), in_shape: Vec::new() }
    }
    fn shape(&self, s: &[usize]) -> ops::Pool2dShape {
        ops::Pool2dShape { n: s[0], c: s[1], h: s[2], w: s[3], k: self.k, stride: self.stride, pad: self.pad }
    }
}

impl Layer for MaxPool2d {
    fn forward(&mut self, _f: &mut Fwd, x: Tensor) -> Tensor {
        let s = self.shape(x.shape());
        let mut y = Tensor::zeros(&[s.n, s.c, s.h_out(), s.w_out()]);
        self.argmax.resize(s.out_len(), 0);
        ops::maxpool2d_forward(&s, x.as_slice(), y.as_mut_slice(), &mut self.argmax);
        self.in_shape = x.shape().to_vec();
        y
    }
    fn backward(&mut self, _b: &mut Bwd, dy: Tensor) -> Tensor {
        let s = self.shape(&self.in_shape);
        let mut dx = Tensor::zeros(&self.in_shape);
        ops::maxpool2d_backward(&s, dy.as_slice(), &self.argmax, dx.as_mut_slice());
        dx
    }
}

/// Adaptive average pooling to a fixed output size (1×1 global, or VGG's 7×7).
pub struct AdaptiveAvgPool2d {
    pub oh: usize,
    pub ow: usize,
    in_shape: Vec<usize>,
}

impl AdaptiveAvgPool2d {
    pub fn new(oh: usize, ow: usize) -> Self {
        AdaptiveAvgPool2d { oh, ow, in_shape: Vec::new() }
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn forward(&mut self, _f: &mut Fwd, x: Tensor) -> Tensor {
        let s = x.shape();
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let mut y = Tensor::zeros(&[n, c, self.oh, self.ow]);
        ops::adaptive_avgpool2d_forward(n, c, h, w, self.oh, self.ow, x.as_slice(), y.as_mut_slice());
        self.in_shape = s.to_vec();
        y
    }
    fn backward(&mut self, _b: &mut Bwd, dy: Tensor) -> Tensor {
        let s = &self.in_shape;
        let mut dx = Tensor::zeros(s);
        ops::adaptive_avgpool2d_backward(s[0], s[1], s[2], s[3], self.oh, self.ow, dy.as_slice(), dx.as_mut_slice());
        dx
    }
}

/// [n, c, h, w] → [n, c·h·w].
#[derive(Default)]
pub struct Flatten {
    in_shape: Vec<usize>,
}

impl Flatten {
    pub fn new() -> Self {
        Flatten { in_shape: Vec::new() }
    }
}

impl Layer for Flatten {
    fn forward(&mut self, _f: &mut Fwd, x: Tensor) -> Tensor {
        self.in_shape = x.shape().to_vec();
        let n = self.in_shape[0];
        let rest = x.len().checked_div(n).unwrap_or_else(|| self.in_shape[1..].iter().product());
        x.reshape(&[n, rest])
    }
    fn backward(&mut self, _b: &mut Bwd, dy: Tensor) -> Tensor {
        dy.reshape(&self.in_shape)
    }
}

/// Fully connected layer, weight [out, in].
pub struct Linear {
    pub in_f: usize,
    pub out_f: usize,
    pub weight: ParamView,
    pub bias: Option<ParamView>,
    x: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default init: U(±1/sqrt(in)) for weight and bias.
    pub fn new(ps: &mut ParamStore, name: &str, in_f: usize, out_f: usize) -> Self {
        let weight = ps.alloc(&format!("{name}.weight"), &[out_f, in_f], Init::UniformFanIn { fan_in: in_f });
        let bias = Some(ps.alloc(&format!("{name}.bias"), &[out_f], Init::UniformFanIn { fan_in: in_f }));
        Linear { in_f, out_f, weight, bias, x: None }
    }
    /// torchvision VGG init: N(0, 0.01) weight, zero bias.
    pub fn new_normal(ps: &mut ParamStore, name: &str, in_f: usize, out_f: usize, std: f32) -> Self {
        let weight = ps.alloc(&format!("{name}.weight"), &[out_f, in_f], Init::Normal { std });
        let bias = Some(ps.alloc(&format!("{name}.bias"), &[out_f], Init::Const(0.0)));
        Linear { in_f, out_f, weight, bias, x: None }
    }
}

impl Layer for Linear {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor {
        let n = x.dim(0);
        let mut y = Tensor::zeros(&[n, self.out_f]);
        let b = self.bias.map(|b| b.of(f.params));
        ops::linear_forward(n, self.in_f, self.out_f, x.as_slice(), self.weight.of(f.params), b, y.as_mut_slice());
        if f.train {
            self.x = Some(x);
        }
        y
    }
    fn backward(&mut self, b: &mut Bwd, dy: Tensor) -> Tensor {
        let x = self.x.take().expect("linear backward without a training forward");
        let n = x.dim(0);
        let mut dx = Tensor::zeros(x.shape());
        let (dw, db) = split_grads(b.grads, self.weight, self.bias);
        ops::linear_backward(n, self.in_f, self.out_f, x.as_slice(), self.weight.of(b.params), dy.as_slice(), Some(dx.as_mut_slice()), dw, db);
        dx
    }
}

/// Inverted dropout (identity in eval mode).
pub struct Dropout {
    pub p: f32,
    mask: Vec<u8>,
    active: bool,
}

impl Dropout {
    pub fn new(p: f32) -> Self {
        Dropout { p, mask: Vec::new(), active: false }
    }
}

impl Layer for Dropout {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor {
        self.active = f.train && self.p > 0.0;
        if !self.active {
            return x;
        }
        let mut y = Tensor::zeros(x.shape());
        self.mask.resize(x.len(), 0);
        ops::dropout_forward(x.as_slice(), self.p, f.rng, y.as_mut_slice(), &mut self.mask);
        y
    }
    fn backward(&mut self, _b: &mut Bwd, dy: Tensor) -> Tensor {
        if !self.active {
            return dy;
        }
        let mut dx = Tensor::zeros(dy.shape());
        ops::dropout_backward(dy.as_slice(), &self.mask, self.p, dx.as_mut_slice());
        dx
    }
}
