//! ResNet-18/34/50/101/152 as torchvision builds them (v1.5: the stride sits on the 3×3 conv of a
//! bottleneck), in torchvision or CIFAR shape.
use super::Shape;
use crate::nn::layers::Relu;
use crate::nn::{Bwd, Fwd, Layer, ParamStore, Sequential};
use crate::tensor::Tensor;

/// A residual block: main branch, optional projection shortcut, ReLU after the sum.
pub struct Residual {
    main: Sequential,
    shortcut: Option<Sequential>,
    relu: Relu,
}

impl Residual {
    pub fn new(main: Sequential, shortcut: Option<Sequential>) -> Self {
        Residual { main, shortcut, relu: Relu::new() }
    }
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

/// Builds resnet{depth} ([`super::spec::resnet`]) on the CPU; None for an unknown depth.
pub fn resnet(ps: &mut ParamStore, depth: usize, shape: Shape, num_classes: usize) -> Option<Sequential> {
    super::spec::resnet(depth, shape, num_classes).map(|s| super::instantiate(ps, &s))
}
