//! Benchmarks: a training step (forward + backward + SGD) per model, top-k selection, and the
//! sparse exchange against dense allreduce. Each prints `bench key=value ...` lines that
//! `scripts/bench_cpu.sh` joins with the PyTorch peer's lines to print ratios.
use crate::dist::World;
use crate::error::Result;
use crate::models::{self, Shape};
use crate::optim::Sgd;
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct StepBenchArgs {
    /// Models as NAME[-cifar|-torchvision] (torchvision shape when no suffix), comma-separated
    #[arg(long, value_delimiter = ',', default_value = "resnet18-cifar,resnet152,vgg19_bn")]
    pub models: Vec<String>,
    /// Batch size
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Compute threads
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed steps per model
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps per model
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Head size for torchvision-shape models (CIFAR-shape models use 10)
    #[arg(long, default_value_t = 1000)]
    pub num_classes: usize,
    /// Where the step runs: cpu, cuda (GPU 0), or auto (a GPU when one is usable)
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::backend::cuda::DeviceChoice,
    /// CPU convolution algorithm: auto (Winograd F(4x4,3x3) for 3x3 stride-1 layers, im2col
    /// elsewhere) or im2col (im2col + GEMM everywhere)
    #[arg(long, value_enum, default_value_t = crate::backend::cpu::ConvAlgo::Auto)]
    pub conv_algo: crate::backend::cpu::ConvAlgo,
}

/// Splits "resnet18-cifar" into ("resnet18", Cifar); no suffix means the torchvision shape.
pub fn parse_model_spec(s: &str) -> (String, Shape) {
    if let Some(n) = s.strip_suffix("-cifar") {
        (n.to_string(), Shape::Cifar)
    } else if let Some(n) = s.strip_suffix("-torchvision") {
        (n.to_string(), Shape::Torchvision)
    } else {
        (s.to_string(), Shape::Torchvision)
    }
}

pub fn step(a: &StepBenchArgs) -> Result<()> {
    if a.batch == 0 || a.steps == 0 || a.threads == 0 {
        crate::bail!(Config, "bench step: --batch, --steps and --threads must be positive");
    }
    if let crate::backend::cuda::Device::Cuda(i) = crate::backend::cuda::select(a.device, 0)? {
        return crate::backend::cuda::net::bench_step(a, i);
    }
    crate::train::set_threads(a.threads);
    crate::backend::cpu::set_conv_algo(a.conv_algo);
    println!(
        "# training step: forward + backward + SGD(momentum 0.9, wd 1e-4), 32x32 inputs, GEMM: {}, convolutions: {}",
        crate::backend::cpu::blas_name(),
        a.conv_algo
    );
    for spec in &a.models {
        let (name, shape) = parse_model_spec(spec);
        let classes = if shape == Shape::Cifar { 10 } else { a.num_classes };
        let mut model = models::build(&name, shape, classes, 1)?;
        let mut opt = Sgd::new(model.num_params(), 0.9, 1e-4);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let x: Vec<f32> = (0..a.batch * 3 * 32 * 32).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let labels: Vec<usize> = (0..a.batch).map(|_| rng.gen_range(0..classes)).collect();
        let (mut tf, mut tb, mut to) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..a.warmup + a.steps {
            let t0 = Instant::now();
            let logits = model.forward(Tensor::from_vec(&[a.batch, 3, 32, 32], x.clone()), true, &mut rng);
            let mut d = Tensor::zeros(&[a.batch, classes]);
            crate::backend::cpu::softmax_cross_entropy(logits.as_slice(), a.batch, classes, &labels, Some(d.as_mut_slice()));
            let t1 = Instant::now();
            model.backward(d);
            let t2 = Instant::now();
            opt.step(&mut model.store.params, &model.store.grads, 0.01);
            let t3 = Instant::now();
            if i >= a.warmup {
                tf.push((t1 - t0).as_secs_f64());
                tb.push((t2 - t1).as_secs_f64());
                to.push((t3 - t2).as_secs_f64());
            }
        }
        let total: Vec<f64> = (0..a.steps).map(|i| tf[i] + tb[i] + to[i]).collect();
        let step_s = median(&total);
        println!(
            "bench model={name} shape={shape} batch={} threads={} img_per_s={:.1} step_s={:.4} fwd_s={:.4} bwd_s={:.4} sgd_s={:.4} params={}",
            a.batch,
            a.threads,
            a.batch as f64 / step_s,
            step_s,
            median(&tf),
            median(&tb),
            median(&to),
            model.num_params()
        );
    }
    Ok(())
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { 0.5 * (s[m - 1] + s[m]) }
}

#[derive(clap::Args, Debug, Clone)]
pub struct TopkBenchArgs {
    /// Buffer length (ResNet152's gradient is 60,192,808)
    #[arg(long, default_value_t = 60_192_808)]
    pub n: usize,
    /// Fractions kept, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.01")]
    pub cr: Vec<f64>,
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub fn topk(a: &TopkBenchArgs) -> Result<()> {
    if a.cr.iter().any(|&c| !(c > 0.0 && c <= 1.0)) {
        crate::bail!(Config, "--cr values must be in (0, 1], got {:?}", a.cr);
    }
    crate::train::set_threads(a.threads);
    for row in crate::compress::bench::bench_topk(a.n, &a.cr, a.reps) {
        println!("{row}");
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExchangeBenchArgs {
    #[arg(long, default_value_t = 60_192_808)]
    pub n: usize,
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.01")]
    pub cr: Vec<f64>,
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

pub fn exchange(world: &World, a: &ExchangeBenchArgs) -> Result<()> {
    if a.cr.iter().any(|&c| !(c > 0.0 && c <= 1.0)) {
        crate::bail!(Config, "--cr values must be in (0, 1], got {:?}", a.cr);
    }
    crate::train::set_threads(crate::train::threads_per_rank(None));
    for &cr in &a.cr {
        let row = crate::compress::bench::bench_exchange(world, a.n, cr, a.reps)?;
        if world.is_root() {
            println!("{row}");
        }
    }
    Ok(())
}
