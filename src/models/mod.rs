//! The paper's networks (ResNet and VGG families, torchvision and CIFAR shapes), tinycnn and tinycnn_bn.
use crate::error::Result;
use crate::nn::{Bwd, Fwd, Layer, ParamStore, Sequential};
use crate::tensor::Tensor;

pub mod resnet;
pub mod spec;
pub mod tiny;
pub mod vgg;

pub use spec::Spec;

/// torchvision's ImageNet shape (7×7 stride-2 stem + max pool; VGG 25088→4096→4096 head), as the
/// paper ran it on 32×32 CIFAR images, or the CIFAR shape (3×3 stride-1 stem, no max pool; VGG with
/// a single linear head).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Torchvision,
    Cifar,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shape::Torchvision => "torchvision",
            Shape::Cifar => "cifar",
        })
    }
}

/// Every model name `build` accepts.
pub const MODEL_NAMES: &[&str] = &[
    "tinycnn", "tinycnn_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg13", "vgg16", "vgg19",
    "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
];

/// A network with its flat parameter store.
pub struct Model {
    pub name: String,
    pub shape: Shape,
    pub num_classes: usize,
    pub net: Box<dyn Layer>,
    pub store: ParamStore,
    ws: Vec<f32>,
}

impl Model {
    /// Forward pass on a NCHW batch; returns logits [n, classes].
    pub fn forward(&mut self, x: Tensor, train: bool, rng: &mut rand::rngs::StdRng) -> Tensor {
        let mut f = Fwd { params: &self.store.params, buffers: &mut self.store.buffers, train, ws: &mut self.ws, rng };
        self.net.forward(&mut f, x)
    }

    /// Backward pass from d(loss)/d(logits); fills `store.grads`.
    pub fn backward(&mut self, dlogits: Tensor) {
        let mut b = Bwd { params: &self.store.params, grads: &mut self.store.grads, ws: &mut self.ws };
        self.net.backward(&mut b, dlogits);
    }

    pub fn num_params(&self) -> usize {
        self.store.num_params()
    }
}

/// Builds `name` in `shape` with a `num_classes`-way head, initialised deterministically from `seed`
/// (every rank builds identical parameters).
pub fn build(name: &str, shape: Shape, num_classes: usize, seed: u64) -> Result<Model> {
    build_in(ParamStore::new(seed), name, shape, num_classes)
}

/// Number of trainable parameters of `name` in `shape` (nothing is allocated).
pub fn param_count(name: &str, shape: Shape, num_classes: usize) -> Result<usize> {
    Ok(build_in(ParamStore::counting(), name, shape, num_classes)?.num_params())
}

fn build_in(mut store: ParamStore, name: &str, shape: Shape, num_classes: usize) -> Result<Model> {
    let specs = spec::spec(name, shape, num_classes)?;
    let net: Box<dyn Layer> = Box::new(instantiate(&mut store, &specs));
    store.finish();
    Ok(Model { name: name.to_string(), shape, num_classes, net, store, ws: Vec::new() })
}

/// The CPU layers of `specs`, their parameters allocated in `ps` in the order of the tree.
pub fn instantiate(ps: &mut ParamStore, specs: &[Spec]) -> Sequential {
    use crate::nn::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Relu};
    use spec::{ConvInit, LinearInit};
    let mut s = Sequential::new();
    for l in specs {
        match l {
            Spec::Conv { name, c_in, c_out, k, stride, pad, bias, init, need_dx } => {
                let mut c = match init {
                    ConvInit::Kaiming => Conv2d::new(ps, name, *c_in, *c_out, *k, *stride, *pad, *bias),
                    ConvInit::TorchDefault => {
                        assert!(*bias, "{name}: the default-init convolution always has a bias");
                        Conv2d::new_default_init(ps, name, *c_in, *c_out, *k, *stride, *pad)
                    }
                };
                c.need_dx = *need_dx;
                s.push(c);
            }
            Spec::BatchNorm { name, c } => s.push(BatchNorm2d::new(ps, name, *c)),
            Spec::Relu => s.push(Relu::new()),
            Spec::MaxPool { k, stride, pad } => s.push(MaxPool2d::new(*k, *stride, *pad)),
            Spec::AdaptiveAvgPool { oh, ow } => s.push(AdaptiveAvgPool2d::new(*oh, *ow)),
            Spec::Flatten => s.push(Flatten::new()),
            Spec::Linear { name, in_f, out_f, init } => match init {
                LinearInit::TorchDefault => s.push(Linear::new(ps, name, *in_f, *out_f)),
                LinearInit::Normal(std) => s.push(Linear::new_normal(ps, name, *in_f, *out_f, *std)),
            },
            Spec::Dropout { p } => s.push(Dropout::new(*p)),
            Spec::Residual { main, shortcut } => {
                let main = instantiate(ps, main);
                let shortcut = shortcut.as_ref().map(|sc| instantiate(ps, sc));
                s.push(resnet::Residual::new(main, shortcut));
            }
        }
    }
    s
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_parameter_counts() {
        // Table III: torchvision shapes with a 1000-way head, as the paper's code builds them.
        assert_eq!(param_count("resnet152", Shape::Torchvision, 1000).unwrap(), 60_192_808);
        assert_eq!(param_count("vgg19_bn", Shape::Torchvision, 1000).unwrap(), 143_678_248);
        // Other torchvision counts (torchvision's published model sizes).
        assert_eq!(param_count("resnet18", Shape::Torchvision, 1000).unwrap(), 11_689_512);
        assert_eq!(param_count("resnet50", Shape::Torchvision, 1000).unwrap(), 25_557_032);
        assert_eq!(param_count("vgg16", Shape::Torchvision, 1000).unwrap(), 138_357_544);
        assert_eq!(param_count("vgg11", Shape::Torchvision, 1000).unwrap(), 132_863_336);
        // CIFAR shape: the 3×3 stem of resnet18 with 10 classes.
        assert_eq!(param_count("resnet18", Shape::Cifar, 10).unwrap(), 11_173_962);
        assert!(param_count("resnet19", Shape::Cifar, 10).is_err());
        assert!(param_count("vgg12_bn", Shape::Cifar, 10).is_err());
    }

    #[test]
    fn every_model_maps_a_32x32_batch_to_logits() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        for &name in MODEL_NAMES {
            for shape in [Shape::Torchvision, Shape::Cifar] {
                let classes = if shape == Shape::Torchvision { 1000 } else { 10 };
                let mut m = build(name, shape, classes, 1).unwrap();
                let x = Tensor::from_vec(&[2, 3, 32, 32], (0..2 * 3 * 32 * 32).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect());
                let y = m.forward(x, false, &mut rng);
                assert_eq!(y.shape(), &[2, classes], "{name} ({shape})");
                assert!(y.as_slice().iter().all(|v| v.is_finite()), "{name} ({shape}) produced non-finite logits");
                assert_eq!(m.num_params(), param_count(name, shape, classes).unwrap());
                if name.starts_with("tinycnn") {
                    break;
                }
            }
        }
    }
}
