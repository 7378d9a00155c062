//! Whole models under `--conv-algo auto` (Winograd on 3×3 stride-1 layers, one dense GEMM on planes
//! smaller than the kernel, im2col elsewhere) against `--conv-algo im2col`: the same loss and
//! logits, and the same gradient in every parameter tensor. The op-level tests check each
//! algorithm against a direct f64 convolution; this one checks that the models route every layer
//! shape through them consistently.
//!
//! Tolerances. The logits agree to ~1e-5 of their scale. Gradients are compared where they are
//! well conditioned: a training step of a freshly initialised network with BatchNorm over few
//! values (a batch of 4 on the 2×2 and 1×1 planes of torchvision-shape models on 32×32 inputs)
//! is chaotic: uniform noise of 1e-5 on the input moves resnet50's loss by 3e-3 and some
//! gradients by 70%, whichever algorithm runs. So the torchvision ResNet is compared on its
//! evaluation forward (running statistics), and gradients on resnet18-cifar and vgg11 (no
//! BatchNorm, the dense path on 2×2 planes). There an activation whose sign flips under a tiny
//! change still flips a ReLU: 1e-5 input noise moves resnet18's gradients by up to 1.5e-2
//! (relative L2) and auto vs im2col differs by 1e-2, while a wrongly computed or routed layer is
//! off by O(1); the bound per tensor is 5e-2.
//!
//! The algorithm is a process-wide setting, so this file holds a single test (one process).
mod common;
use common::rel_l2;
use rand::{Rng, SeedableRng};
use scadles::backend::cpu::{self, ConvAlgo};
use scadles::models::{self, Shape};
use scadles::tensor::Tensor;

/// Loss, logits and gradient of one training forward/backward under `algo`.
fn step(name: &str, shape: Shape, classes: usize, n: usize, algo: ConvAlgo, train: bool) -> (f32, Vec<f32>, Vec<f32>) {
    cpu::set_conv_algo(algo);
    let mut model = models::build(name, shape, classes, 5).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let x: Vec<f32> = (0..n * 3 * 32 * 32).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let labels: Vec<usize> = (0..n).map(|i| (i * 7) % classes).collect();
    // Dropout draws from this rng; both runs start it from the same seed.
    let mut drng = rand::rngs::StdRng::seed_from_u64(3);
    let logits = model.forward(Tensor::from_vec(&[n, 3, 32, 32], x), train, &mut drng);
    let mut d = Tensor::zeros(&[n, classes]);
    let loss = cpu::softmax_cross_entropy(logits.as_slice(), n, classes, &labels, Some(d.as_mut_slice()));
    if train {
        model.backward(d);
    }
    (loss, logits.as_slice().to_vec(), model.store.grads.clone())
}

/// Max |a − b| over max |b|.
fn scaled_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)).max(1e-30);
    a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
        assert!(x.is_finite(), "non-finite value");
        m.max((x as f64 - y as f64).abs())
    }) / scale
}

#[test]
fn auto_and_im2col_give_the_same_step() {
    // resnet18-cifar: Winograd on 32×32 … 4×4 planes. vgg11 (torchvision shape): Winograd down to
    // 4×4, dense on 2×2, the dropout head. resnet50 (torchvision shape, evaluation forward):
    // Winograd on 8×8 and 4×4, dense on 2×2 and 1×1, incl. the stride-2 3×3 from 2×2 to 1×1.
    for (name, shape, classes, train) in
        [("resnet18", Shape::Cifar, 10, true), ("vgg11", Shape::Torchvision, 100, true), ("resnet50", Shape::Torchvision, 100, false)]
    {
        let n = 4;
        let (l_ref, y_ref, g_ref) = step(name, shape, classes, n, ConvAlgo::Im2col, train);
        let (l, y, g) = step(name, shape, classes, n, ConvAlgo::Auto, train);
        let dy = scaled_diff(&y, &y_ref);
        assert!(((l - l_ref) / l_ref).abs() < 1e-4, "{name}: loss {l} vs {l_ref}");
        assert!(dy < 1e-4, "{name}: logits differ by {dy:e} (scaled)");
        if !train {
            println!("{name} ({shape}), evaluation forward: loss {l} vs {l_ref}, logits {dy:.1e} (scaled)");
            continue;
        }
        let infos = models::build(name, shape, classes, 5).unwrap().store.infos;
        let mut worst = (0.0f64, String::new());
        for info in &infos {
            let r = info.view.offset..info.view.offset + info.view.len;
            let (a, b) = (&g[r.clone()], &g_ref[r]);
            assert!(a.iter().all(|v| v.is_finite()), "{name}: {} has a non-finite gradient", info.name);
            // Every tensor's gradient is non-zero, so agreement is not vacuous.
            assert!(b.iter().any(|&v| v != 0.0), "{name}: {} has a zero gradient", info.name);
            let e = rel_l2(a, b);
            assert!(e < 5e-2, "{name}: the gradient of {} {:?} differs by {e:.2e} (relative L2)", info.name, info.shape);
            if e > worst.0 {
                worst = (e, info.name.clone());
            }
        }
        println!("{name} ({shape}): loss {l} vs {l_ref}, logits {dy:.1e} (scaled), worst gradient {} {:.1e} (relative L2)", worst.1, worst.0);
    }
    cpu::set_conv_algo(ConvAlgo::Auto);
}
