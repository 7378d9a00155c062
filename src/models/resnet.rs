//! ResNet-18/34/50/101/152 as torchvision builds them (v1.5: the stride sits on the 3×3 conv of a
//! bottleneck), in torchvision or CIFAR shape.
use super::Shape;
use crate::nn::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Relu};
use crate::nn::{Bwd, Fwd, Layer, ParamStore, Sequential};
use crate::tensor::Tensor;

/// A residual block: main branch, optional projection shortcut, ReLU after the sum.
pub struct Residual {
    main: Sequential,
    shortcut: Option<Sequential>,
    relu: Relu,
}

impl Layer for Residual {
    fn forward(&mut self, f: &mut Fwd, x: Tensor) -> Tensor {
        let identity = match &mut self.shortcut {
            Some(s) => s.forward(f, x.clone()),
            None => x.clone(),
        };
        let mut y = self.main.forward(f, x);
        for (a, b) in y.as_mut_slice().iter_mut().zip(identity.as_slice()) {
            *a += *b;
        }
        self.relu.forward(f, y)
    }
    fn backward(&mut self, b: &mut Bwd, dy: Tensor) -> Tensor {
        let dsum = self.relu.backward(b, dy);
        let d_short = match &mut self.shortcut {
            Some(s) => s.backward(b, dsum.clone()),
            None => dsum.clone(),
        };
        let mut dx = self.main.backward(b, dsum);
        for (a, b) in dx.as_mut_slice().iter_mut().zip(d_short.as_slice()) {
            *a += *b;
        }
        dx
    }
}

fn conv_bn(ps: &mut ParamStore, s: &mut Sequential, name: &str, bn: &str, cin: usize, cout: usize, k: usize, stride: usize) {
    s.push(Conv2d::new(ps, name, cin, cout, k, stride, k / 2, false));
    s.push(BatchNorm2d::new(ps, bn, cout));
}

fn shortcut(ps: &mut ParamStore, p: &str, cin: usize, cout: usize, stride: usize) -> Option<Sequential> {
    (stride != 1 || cin != cout).then(|| {
        let mut s = Sequential::new();
        conv_bn(ps, &mut s, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), cin, cout, 1, stride);
        s
    })
}

fn basic(ps: &mut ParamStore, p: &str, cin: usize, planes: usize, stride: usize) -> Residual {
    let mut m = Sequential::new();
    conv_bn(ps, &mut m, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, planes, 3, stride);
    m.push(Relu::new());
    conv_bn(ps, &mut m, &format!("{p}.conv2"), &format!("{p}.bn2"), planes, planes, 3, 1);
    Residual { main: m, shortcut: shortcut(ps, p, cin, planes, stride), relu: Relu::new() }
}

fn bottleneck(ps: &mut ParamStore, p: &str, cin: usize, planes: usize, stride: usize) -> Residual {
    let out = planes * 4;
    let mut m = Sequential::new();
    conv_bn(ps, &mut m, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, planes, 1, 1);
    m.push(Relu::new());
    conv_bn(ps, &mut m, &format!("{p}.conv2"), &format!("{p}.bn2"), planes, planes, 3, stride);
    m.push(Relu::new());
    conv_bn(ps, &mut m, &format!("{p}.conv3"), &format!("{p}.bn3"), planes, out, 1, 1);
    Residual { main: m, shortcut: shortcut(ps, p, cin, out, stride), relu: Relu::new() }
}

/// Builds resnet{depth}; None for an unknown depth.
pub fn resnet(ps: &mut ParamStore, depth: usize, shape: Shape, num_classes: usize) -> Option<Sequential> {
    let (blocks, bottle): ([usize; 4], bool) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        _ => return None,
    };
    let mut s = Sequential::new();
    let mut stem = match shape {
        Shape::Torchvision => Conv2d::new(ps, "conv1", 3, 64, 7, 2, 3, false),
        Shape::Cifar => Conv2d::new(ps, "conv1", 3, 64, 3, 1, 1, false),
    };
    stem.need_dx = false;
    s.push(stem);
    s.push(BatchNorm2d::new(ps, "bn1", 64));
    s.push(Relu::new());
    if shape == Shape::Torchvision {
        s.push(MaxPool2d::new(3, 2, 1));
    }
    let expansion = if bottle { 4 } else { 1 };
    let mut cin = 64;
    for (li, (&n, planes)) in blocks.iter().zip([64, 128, 256, 512]).enumerate() {
        for bi in 0..n {
            let stride = if li > 0 && bi == 0 { 2 } else { 1 };
            let p = format!("layer{}.{bi}", li + 1);
            let block = if bottle { bottleneck(ps, &p, cin, planes, stride) } else { basic(ps, &p, cin, planes, stride) };
            s.push(block);
            cin = planes * expansion;
        }
    }
    s.push(AdaptiveAvgPool2d::new(1, 1));
    s.push(Flatten::new());
    s.push(Linear::new(ps, "fc", 512 * expansion, num_classes));
    Some(s)
}
