//! The models as backend-neutral descriptions: a tree of [`Spec`] layers that the CPU backend
//! instantiates as `nn` layers ([`super::instantiate`]) and the CUDA backend as GPU layers
//! (`backend::cuda::net::describe`). Parameters are allocated in the order of the tree (depth
//! first; a residual block's main branch before its shortcut), which fixes the flat buffer's
//! layout and the order in which initial values are drawn, identically on both backends.
use super::Shape;
use crate::error::{Error, Result};

/// How a convolution's parameters start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConvInit {
    /// torchvision: Kaiming normal (fan_out, ReLU) weights, zero bias.
    Kaiming,
    /// PyTorch's default: U(±1/sqrt(fan_in)) weights and bias (small custom models).
    TorchDefault,
}

/// How a fully connected layer's parameters start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinearInit {
    /// PyTorch's default: U(±1/sqrt(in)) weight and bias.
    TorchDefault,
    /// torchvision VGG: N(0, std) weight, zero bias.
    Normal(f32),
}

/// One layer of a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    /// 2-D convolution, weight `{name}.weight` [c_out, c_in, k, k], bias `{name}.bias` [c_out].
    /// `need_dx` is false for the first layer (the image's gradient is never used).
    Conv { name: String, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, bias: bool, init: ConvInit, need_dx: bool },
    /// BatchNorm2d (momentum 0.1, eps 1e-5): `{name}.weight`, `{name}.bias`, running statistics.
    BatchNorm { name: String, c: usize },
    Relu,
    MaxPool { k: usize, stride: usize, pad: usize },
    AdaptiveAvgPool { oh: usize, ow: usize },
    Flatten,
    /// Fully connected, weight `{name}.weight` [out_f, in_f], bias `{name}.bias` [out_f].
    Linear { name: String, in_f: usize, out_f: usize, init: LinearInit },
    Dropout { p: f32 },
    /// `relu(main(x) + shortcut(x))`, the shortcut being the identity when absent.
    Residual { main: Vec<Spec>, shortcut: Option<Vec<Spec>> },
}

/// The layers of model `name` (one of `super::MODEL_NAMES`) in `shape` with a `num_classes`-way head.
pub fn spec(name: &str, shape: Shape, num_classes: usize) -> Result<Vec<Spec>> {
    if num_classes < 1 {
        crate::bail!(Config, "--num-classes must be at least 1, got {num_classes}");
    }
    let unknown = || Error::Config(format!("--model: unknown model '{name}' (expected one of: {})", super::MODEL_NAMES.join(", ")));
    match name {
        "tinycnn" => Ok(tinycnn(num_classes)),
        "tinycnn_bn" => Ok(tinycnn_bn(num_classes)),
        n if n.starts_with("resnet") => resnet(n["resnet".len()..].parse().unwrap_or(0), shape, num_classes).ok_or_else(unknown),
        n if n.starts_with("vgg") => {
            let (base, bn) = n.strip_suffix("_bn").map_or((n, false), |b| (b, true));
            vgg(base["vgg".len()..].parse().unwrap_or(0), bn, shape, num_classes).ok_or_else(unknown)
        }
        _ => Err(unknown()),
    }
}

#[allow(clippy::too_many_arguments)]
fn conv(name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, bias: bool, init: ConvInit) -> Spec {
    Spec::Conv { name: name.to_string(), c_in, c_out, k, stride, pad, bias, init, need_dx: c_in != 3 }
}

fn batchnorm(name: &str, c: usize) -> Spec {
    Spec::BatchNorm { name: name.to_string(), c }
}

fn linear(name: &str, in_f: usize, out_f: usize, init: LinearInit) -> Spec {
    Spec::Linear { name: name.to_string(), in_f, out_f, init }
}

/// conv3×3(3→16)-ReLU-maxpool2 → conv3×3(16→32)-ReLU-maxpool2 → conv3×3(32→64)-ReLU → global avg
/// pool → linear(64→classes), PyTorch's default init throughout.
pub fn tinycnn(num_classes: usize) -> Vec<Spec> {
    let c = |name, cin, cout| conv(name, cin, cout, 3, 1, 1, true, ConvInit::TorchDefault);
    vec![
        c("conv1", 3, 16),
        Spec::Relu,
        Spec::MaxPool { k: 2, stride: 2, pad: 0 },
        c("conv2", 16, 32),
        Spec::Relu,
        Spec::MaxPool { k: 2, stride: 2, pad: 0 },
        c("conv3", 32, 64),
        Spec::Relu,
        Spec::AdaptiveAvgPool { oh: 1, ow: 1 },
        Spec::Flatten,
        linear("fc", 64, num_classes, LinearInit::TorchDefault),
    ]
}

/// tinycnn with BatchNorm: each conv3×3 (no bias, Kaiming init) is followed by BatchNorm2d, then
/// ReLU, as in the ResNet and VGG-BN models. The small stand-in for the paper's BatchNorm networks:
/// data-parallel BatchNorm (per-rank batch statistics, running statistics of one rank at
/// evaluation) is what non-IID data and small per-device batches act on.
pub fn tinycnn_bn(num_classes: usize) -> Vec<Spec> {
    let c = |name, cin, cout| conv(name, cin, cout, 3, 1, 1, false, ConvInit::Kaiming);
    vec![
        c("conv1", 3, 16),
        batchnorm("bn1", 16),
        Spec::Relu,
        Spec::MaxPool { k: 2, stride: 2, pad: 0 },
        c("conv2", 16, 32),
        batchnorm("bn2", 32),
        Spec::Relu,
        Spec::MaxPool { k: 2, stride: 2, pad: 0 },
        c("conv3", 32, 64),
        batchnorm("bn3", 64),
        Spec::Relu,
        Spec::AdaptiveAvgPool { oh: 1, ow: 1 },
        Spec::Flatten,
        linear("fc", 64, num_classes, LinearInit::TorchDefault),
    ]
}

#[allow(clippy::too_many_arguments)]
fn conv_bn(s: &mut Vec<Spec>, name: &str, bn: &str, cin: usize, cout: usize, k: usize, stride: usize) {
    s.push(conv(name, cin, cout, k, stride, k / 2, false, ConvInit::Kaiming));
    s.push(batchnorm(bn, cout));
}

fn shortcut(p: &str, cin: usize, cout: usize, stride: usize) -> Option<Vec<Spec>> {
    (stride != 1 || cin != cout).then(|| {
        let mut s = Vec::new();
        conv_bn(&mut s, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), cin, cout, 1, stride);
        s
    })
}

fn basic(p: &str, cin: usize, planes: usize, stride: usize) -> Spec {
    let mut m = Vec::new();
    conv_bn(&mut m, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, planes, 3, stride);
    m.push(Spec::Relu);
    conv_bn(&mut m, &format!("{p}.conv2"), &format!("{p}.bn2"), planes, planes, 3, 1);
    Spec::Residual { main: m, shortcut: shortcut(p, cin, planes, stride) }
}

/// torchvision's v1.5 bottleneck: the stride sits on the 3×3 convolution.
fn bottleneck(p: &str, cin: usize, planes: usize, stride: usize) -> Spec {
    let out = planes * 4;
    let mut m = Vec::new();
    conv_bn(&mut m, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, planes, 1, 1);
    m.push(Spec::Relu);
    conv_bn(&mut m, &format!("{p}.conv2"), &format!("{p}.bn2"), planes, planes, 3, stride);
    m.push(Spec::Relu);
    conv_bn(&mut m, &format!("{p}.conv3"), &format!("{p}.bn3"), planes, out, 1, 1);
    Spec::Residual { main: m, shortcut: shortcut(p, cin, out, stride) }
}

/// ResNet-18/34/50/101/152 as torchvision builds them, in torchvision shape (7×7 stride-2 stem and
/// max pool) or CIFAR shape (3×3 stride-1 stem, no pool); None for another depth.
pub fn resnet(depth: usize, shape: Shape, num_classes: usize) -> Option<Vec<Spec>> {
    let (blocks, bottle): ([usize; 4], bool) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        _ => return None,
    };
    let mut s = vec![match shape {
        Shape::Torchvision => conv("conv1", 3, 64, 7, 2, 3, false, ConvInit::Kaiming),
        Shape::Cifar => conv("conv1", 3, 64, 3, 1, 1, false, ConvInit::Kaiming),
    }];
    s.push(batchnorm("bn1", 64));
    s.push(Spec::Relu);
    if shape == Shape::Torchvision {
        s.push(Spec::MaxPool { k: 3, stride: 2, pad: 1 });
    }
    let expansion = if bottle { 4 } else { 1 };
    let mut cin = 64;
    for (li, (&n, planes)) in blocks.iter().zip([64, 128, 256, 512]).enumerate() {
        for bi in 0..n {
            let stride = if li > 0 && bi == 0 { 2 } else { 1 };
            let p = format!("layer{}.{bi}", li + 1);
            s.push(if bottle { bottleneck(&p, cin, planes, stride) } else { basic(&p, cin, planes, stride) });
            cin = planes * expansion;
        }
    }
    s.push(Spec::AdaptiveAvgPool { oh: 1, ow: 1 });
    s.push(Spec::Flatten);
    s.push(linear("fc", 512 * expansion, num_classes, LinearInit::TorchDefault));
    Some(s)
}

const M: usize = 0; // a max pool in the configuration lists

/// VGG-11/13/16/19 (configurations A, B, D, E), with or without BatchNorm; None for another depth.
/// torchvision shape: adaptive 7×7 pool and the 25088→4096→4096→classes head with dropout 0.5;
/// CIFAR shape: one linear 512→classes head.
pub fn vgg(depth: usize, bn: bool, shape: Shape, num_classes: usize) -> Option<Vec<Spec>> {
    let cfg: &[usize] = match depth {
        11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        13 => &[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        16 => &[64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
        19 => &[64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M],
        _ => return None,
    };
    let mut s = Vec::new();
    let (mut cin, mut idx) = (3, 0);
    for &v in cfg {
        if v == M {
            s.push(Spec::MaxPool { k: 2, stride: 2, pad: 0 });
            idx += 1;
            continue;
        }
        s.push(conv(&format!("features.{idx}"), cin, v, 3, 1, 1, true, ConvInit::Kaiming));
        idx += 1;
        if bn {
            s.push(batchnorm(&format!("features.{idx}"), v));
            idx += 1;
        }
        s.push(Spec::Relu);
        idx += 1;
        cin = v;
    }
    let normal = LinearInit::Normal(0.01);
    match shape {
        Shape::Torchvision => {
            s.push(Spec::AdaptiveAvgPool { oh: 7, ow: 7 });
            s.push(Spec::Flatten);
            s.push(linear("classifier.0", 512 * 7 * 7, 4096, normal));
            s.push(Spec::Relu);
            s.push(Spec::Dropout { p: 0.5 });
            s.push(linear("classifier.3", 4096, 4096, normal));
            s.push(Spec::Relu);
            s.push(Spec::Dropout { p: 0.5 });
            s.push(linear("classifier.6", 4096, num_classes, normal));
        }
        Shape::Cifar => {
            s.push(Spec::Flatten);
            s.push(linear("classifier", 512, num_classes, normal));
        }
    }
    Some(s)
}
