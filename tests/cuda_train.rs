//! The GPU network against the CPU model. Always: the GPU builders' parameter layout (names,
//! shapes, offsets, counts, running-statistic counts) equals the CPU builders' for every model.
//! With a GPU: one training step (forward, softmax cross-entropy, backward, SGD) of tinycnn and
//! resnet18-cifar on the GPU equals the CPU step; without one the test prints
//! `SKIPPED (no GPU): cuda_train` and passes.
use rand::{rngs::StdRng, Rng, SeedableRng};
use scadles::backend::cpu;
use scadles::backend::cuda::net::{check_layout, describe, DeviceTensor, GpuNet};
use scadles::backend::cuda::{probe, CudaBackend};
use scadles::models::{self, resnet, tiny, vgg, Shape, MODEL_NAMES};
use scadles::nn::ParamStore;
use scadles::optim::Sgd;
use scadles::tensor::Tensor;

/// The CPU builders' parameter list for `name`, from a shape-only store (nothing allocated).
fn cpu_infos(name: &str, shape: Shape, classes: usize) -> (Vec<scadles::nn::params::ParamInfo>, usize) {
    let mut ps = ParamStore::counting();
    if name == "tinycnn" {
        tiny::tinycnn(&mut ps, classes);
    } else if let Some(d) = name.strip_prefix("resnet") {
        resnet::resnet(&mut ps, d.parse().unwrap(), shape, classes).unwrap();
    } else {
        let (base, bn) = name.strip_suffix("_bn").map_or((name, false), |b| (b, true));
        vgg::vgg(&mut ps, base["vgg".len()..].parse().unwrap(), bn, shape, classes).unwrap();
    }
    let n = ps.num_params();
    (ps.infos, n)
}

#[test]
fn gpu_layout_equals_cpu_layout_for_every_model() {
    for &name in MODEL_NAMES {
        for (shape, classes) in [(Shape::Torchvision, 1000), (Shape::Cifar, 10)] {
            let (_, layout) = describe(name, shape, classes).unwrap();
            let (infos, n) = cpu_infos(name, shape, classes);
            check_layout(&layout, &infos, n, name).unwrap_or_else(|e| panic!("{name} ({shape}): {e}"));
            assert_eq!(n, models::param_count(name, shape, classes).unwrap(), "{name} ({shape})");
            // Offsets tile the flat buffer without gaps, in allocation order.
            let mut next = 0;
            for p in &layout.params {
                assert_eq!(p.view.offset, next, "{name} ({shape}): {} leaves a gap", p.name);
                assert_eq!(p.view.len, p.shape.iter().product::<usize>(), "{name}: {}", p.name);
                next += p.view.len;
            }
            assert_eq!(next, layout.num_params);
        }
    }
    // Hand-counted: tinycnn with 10 classes = 448 + 4640 + 18496 + 650.
    assert_eq!(describe("tinycnn", Shape::Cifar, 10).unwrap().1.num_params, 24_234);
    assert!(describe("resnet19", Shape::Cifar, 10).is_err());
    assert!(describe("vgg12", Shape::Cifar, 10).is_err());
    assert!(describe("tinycnn", Shape::Cifar, 0).is_err());
}

#[test]
fn gpu_running_statistics_layout_equals_cpu() {
    // Running statistics are only laid out by an allocating store: small models only.
    for (name, shape) in [("tinycnn", Shape::Cifar), ("resnet18", Shape::Cifar), ("vgg11_bn", Shape::Cifar)] {
        let m = models::build(name, shape, 10, 1).unwrap();
        let (_, layout) = describe(name, shape, 10).unwrap();
        assert_eq!(layout.num_buffers, m.store.buffers.len(), "{name}");
    }
    // resnet18: 20 BatchNorm layers, 2 statistics per channel; 4800 channels in all.
    assert_eq!(describe("resnet18", Shape::Cifar, 10).unwrap().1.num_buffers, 2 * 4800);
}

/// Asserts |got − want| ≤ atol + rtol·|want| everywhere; lists the first 8 mismatches.
fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = Vec::new();
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        worst = worst.max(if err.is_nan() { f32::INFINITY } else { err });
        // NaN fails: the comparison is false.
        let ok = err <= atol + rtol * w.abs();
        if !ok {
            bad.push(format!("[{i}] gpu {g} cpu {w}"));
        }
    }
    assert!(bad.is_empty(), "{what}: {} mismatches (max |err| {worst}), first: {}", bad.len(), bad[..bad.len().min(8)].join(", "));
    eprintln!("{what}: ok, max |err| {worst:.3e} over {} values", got.len());
}

/// One CPU step and one GPU step from the same parameters and batch; compares loss, gradients,
/// running statistics and the parameters after SGD (FP32 kernels, TF32 off).
fn step_matches(be: &CudaBackend, name: &str, shape: Shape, batch: usize) {
    let classes = 10;
    let (lr, mu, wd) = (0.05f32, 0.9f32, 1e-4f32);
    let mut cpu_model = models::build(name, shape, classes, 3).unwrap();
    let mut net = GpuNet::new(be, &cpu_model, mu, wd).unwrap();
    assert_eq!(net.num_params(), cpu_model.num_params());
    let before = cpu_model.store.params.clone();
    assert_eq!(net.params_to_host(be).unwrap(), before, "{name}: uploaded parameters");

    let mut r = StdRng::seed_from_u64(11);
    let x: Vec<f32> = (0..batch * 3 * 32 * 32).map(|_| r.gen_range(-1.0f32..1.0)).collect();
    let labels: Vec<usize> = (0..batch).map(|_| r.gen_range(0..classes)).collect();

    // CPU reference step.
    let logits = cpu_model.forward(Tensor::from_vec(&[batch, 3, 32, 32], x.clone()), true, &mut r);
    let mut d = Tensor::zeros(&[batch, classes]);
    let cpu_loss = cpu::softmax_cross_entropy(logits.as_slice(), batch, classes, &labels, Some(d.as_mut_slice()));
    cpu_model.backward(d);
    let mut opt = Sgd::new(cpu_model.num_params(), mu, wd);
    opt.step(&mut cpu_model.store.params, &cpu_model.store.grads, lr);

    // GPU step.
    let xd = DeviceTensor { buf: std::sync::Arc::new(be.upload(&x).unwrap()), shape: vec![batch, 3, 32, 32] };
    let ld = be.upload(&labels.iter().map(|&l| l as u32).collect::<Vec<_>>()).unwrap();
    let rep = net.train_step(be, &xd, &ld, lr).unwrap();

    let rel = ((rep.loss - cpu_loss) / cpu_loss).abs();
    eprintln!("{name} ({shape}): loss gpu {} cpu {cpu_loss} (rel {rel:.2e})", rep.loss);
    assert!(rel <= 1e-3, "{name}: loss gpu {} vs cpu {cpu_loss}", rep.loss);

    let g_cpu = &cpu_model.store.grads;
    let gmax = g_cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close(&format!("{name} gradients"), &net.grads_to_host(be).unwrap(), g_cpu, 1e-3 * gmax, 1e-2);
    assert_close(&format!("{name} running statistics"), &net.buffers_to_host(be).unwrap(), &cpu_model.store.buffers, 1e-5, 1e-4);
    let after = net.params_to_host(be).unwrap();
    assert_close(&format!("{name} parameters after SGD"), &after, &cpu_model.store.params, lr * 1.1e-2 * gmax + 1e-6, 1e-5);
    // The step moved the parameters (the comparison above is not of two untouched copies).
    let moved = after.iter().zip(&before).filter(|(a, b)| a != b).count();
    assert!(moved > after.len() / 2, "{name}: only {moved} of {} parameters changed", after.len());
}

#[test]
fn gpu_training_step_equals_cpu_step() {
    if let Err(why) = probe() {
        eprintln!("SKIPPED (no GPU): cuda_train ({why})");
        return;
    }
    let mut be = CudaBackend::new(0).unwrap_or_else(|e| panic!("GPU found but unusable: {e}"));
    be.set_tensor_cores(false);
    step_matches(&be, "tinycnn", Shape::Cifar, 8);
    step_matches(&be, "resnet18", Shape::Cifar, 8);
}
