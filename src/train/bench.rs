//! Benchmarks: a training step (forward + backward + SGD) per model, top-k selection, GEMM, and
//! the sparse exchange against dense allreduce. Each prints `key=value ...` lines that
//! `scripts/bench_cpu.sh` (CPU) and `scripts/gpu_ratios.py` (GPU) join with the PyTorch peers'
//! lines to print ratios.
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
    /// Several batch sizes, comma-separated (one line per model and batch); replaces --batch
    #[arg(long, value_delimiter = ',', conflicts_with = "batch")]
    pub batches: Vec<usize>,
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

impl StepBenchArgs {
    /// The batch sizes to time: `--batches` when given, else `--batch`.
    pub fn batch_list(&self) -> Vec<usize> {
        if self.batches.is_empty() {
            vec![self.batch]
        } else {
            self.batches.clone()
        }
    }
}

pub fn step(a: &StepBenchArgs) -> Result<()> {
    if a.batch_list().contains(&0) || a.steps == 0 || a.threads == 0 {
        crate::bail!(Config, "bench step: --batch/--batches, --steps and --threads must be positive");
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
        for batch in a.batch_list() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let x: Vec<f32> = (0..batch * 3 * 32 * 32).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let labels: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..classes)).collect();
            let (mut tf, mut tb, mut to) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..a.warmup + a.steps {
                let t0 = Instant::now();
                let logits = model.forward(Tensor::from_vec(&[batch, 3, 32, 32], x.clone()), true, &mut rng);
                let mut d = Tensor::zeros(&[batch, classes]);
                crate::backend::cpu::softmax_cross_entropy(logits.as_slice(), batch, classes, &labels, Some(d.as_mut_slice()));
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
                batch,
                a.threads,
                batch as f64 / step_s,
                step_s,
                median(&tf),
                median(&tb),
                median(&to),
                model.num_params()
            );
        }
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
    /// Where top-k runs: cpu, cuda (GPU 0: `CudaBackend::topk` on a device buffer, checked
    /// against the CPU top-k), or auto
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::backend::cuda::DeviceChoice,
}

pub fn topk(a: &TopkBenchArgs) -> Result<()> {
    if a.cr.iter().any(|&c| !(c > 0.0 && c <= 1.0)) {
        crate::bail!(Config, "--cr values must be in (0, 1], got {:?}", a.cr);
    }
    if let crate::backend::cuda::Device::Cuda(i) = crate::backend::cuda::select(a.device, 0)? {
        return crate::backend::cuda::bench::topk(a, i);
    }
    crate::train::set_threads(a.threads);
    for row in crate::compress::bench::bench_topk(a.n, &a.cr, a.reps) {
        println!("{row}");
    }
    Ok(())
}

/// One GEMM problem, `C[m, n] = A[m, k] · B[k, n]`: `N` on the command line is N×N×N, `MxNxK`
/// any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl std::str::FromStr for GemmShape {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let dims: Vec<usize> = s
            .split('x')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&v| v > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("'{s}' is not a GEMM size: expected N or MxNxK with positive integers"))?;
        match dims[..] {
            [n] => Ok(GemmShape { m: n, n, k: n }),
            [m, n, k] => Ok(GemmShape { m, n, k }),
            _ => Err(format!("'{s}' is not a GEMM size: expected N or MxNxK with positive integers")),
        }
    }
}

impl std::fmt::Display for GemmShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.n, self.k)
    }
}

/// Which GEMM kernel: FP32 on the CUDA cores (`gemm_simt`, and the CPU sgemm) or TF32 on the
/// tensor cores with FP32 accumulation (`gemm_tf32`, sm_80 and newer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GemmPrecision {
    Fp32,
    Tf32,
}

impl std::fmt::Display for GemmPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GemmPrecision::Fp32 => "fp32",
            GemmPrecision::Tf32 => "tf32",
        })
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct GemmBenchArgs {
    /// Problem sizes, comma-separated: N (N×N×N) or MxNxK for C[M,N] = A[M,K]·B[K,N]; the
    /// default's last one is the im2col GEMM of a 256-channel 3×3 convolution on 8×8 planes at
    /// batch 64 (vgg19_bn's third block at 32×32 inputs)
    #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096,8192,256x4096x2304")]
    pub sizes: Vec<GemmShape>,
    /// Precisions, comma-separated: fp32 (FP32 kernel), tf32 (TF32 tensor-core kernel; GPU only)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32,tf32")]
    pub precision: Vec<GemmPrecision>,
    /// Timings per size and precision (the median is printed)
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// CPU compute threads
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where the GEMM runs: cpu (`cpu::sgemm`), cuda (GPU 0: `CudaBackend::gemm`), or auto
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::backend::cuda::DeviceChoice,
}

/// One GEMM timing.
#[derive(Clone, Debug)]
pub struct GemmBenchRow {
    pub device: String,
    pub precision: GemmPrecision,
    pub shape: GemmShape,
    pub reps: usize,
    /// Calls per timing (back to back between two synchronisations).
    pub iters: usize,
    /// Median seconds per call.
    pub median_s: f64,
    /// Largest sampled error against an f64 host reference, in units of the entry's natural scale
    /// (see [`gemm_sample_error`]).
    pub max_err: f64,
}

impl GemmBenchRow {
    /// 2·m·n·k / median_s, in TFLOP/s.
    pub fn tflop_s(&self) -> f64 {
        2.0 * self.shape.m as f64 * self.shape.n as f64 * self.shape.k as f64 / self.median_s / 1e12
    }
}

impl std::fmt::Display for GemmBenchRow {
    /// `gemm impl=scadles device=D precision=P m= n= k= reps= iters= median_s= tflop_s= max_err=`;
    /// `scripts/bench_gemm_torch.py` prints the same keys (without max_err).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gemm impl=scadles device={} precision={} m={} n={} k={} reps={} iters={} median_s={:.6} tflop_s={:.3} max_err={:.2e}",
            self.device,
            self.precision,
            self.shape.m,
            self.shape.n,
            self.shape.k,
            self.reps,
            self.iters,
            self.median_s,
            self.tflop_s(),
            self.max_err
        )
    }
}

/// Largest error of `samples` entries of `c = a · b` (row-major, m×k times k×n) against an f64
/// host reference, each divided by that entry's scale sqrt(Σ_p (a_ip·b_pj)²): rounding
/// (FP32 ~1e-6, TF32 inputs ~1e-3) stays far below 1 on N(0,1) operands, a wrong result is O(1).
pub fn gemm_sample_error(a: &[f32], b: &[f32], c: &[f32], s: GemmShape, samples: usize) -> f64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    (0..samples)
        .map(|_| {
            let (i, j) = (rng.gen_range(0..s.m), rng.gen_range(0..s.n));
            let (mut sum, mut sq) = (0f64, 0f64);
            for p in 0..s.k {
                let t = f64::from(a[i * s.k + p]) * f64::from(b[p * s.n + j]);
                sum += t;
                sq += t * t;
            }
            let got = f64::from(c[i * s.n + j]);
            if !got.is_finite() {
                return f64::INFINITY;
            }
            (got - sum).abs() / sq.sqrt().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}

/// Largest [`gemm_sample_error`] accepted for each precision: a wrong kernel gives errors of
/// order 1, so these only have to sit above rounding.
pub fn gemm_tolerance(p: GemmPrecision) -> f64 {
    match p {
        GemmPrecision::Fp32 => 1e-3,
        GemmPrecision::Tf32 => 2e-2,
    }
}

/// Calls per timing so that one timing lasts about 50 ms (at least 1, at most 1000), from the
/// duration of one call.
pub fn iters_for(one_call_s: f64) -> usize {
    if one_call_s > 0.0 && one_call_s.is_finite() {
        ((0.05 / one_call_s).ceil() as usize).clamp(1, 1000)
    } else {
        1
    }
}

pub fn gemm(a: &GemmBenchArgs) -> Result<()> {
    if a.reps == 0 || a.threads == 0 || a.sizes.is_empty() || a.precision.is_empty() {
        crate::bail!(Config, "bench gemm: --reps and --threads must be positive, --sizes and --precision non-empty");
    }
    if let crate::backend::cuda::Device::Cuda(i) = crate::backend::cuda::select(a.device, 0)? {
        return crate::backend::cuda::bench::gemm(a, i);
    }
    crate::train::set_threads(a.threads);
    println!(
        "# GEMM on the CPU ({}, {} threads): C = A·B row-major, N(0,1) operands, median of {} timings",
        crate::backend::cpu::blas_name(),
        a.threads,
        a.reps
    );
    for &s in &a.sizes {
        if a.precision.contains(&GemmPrecision::Tf32) {
            println!("# {s} tf32: skipped (the CPU backend has FP32 only)");
        }
        if !a.precision.contains(&GemmPrecision::Fp32) {
            continue;
        }
        let x = crate::compress::bench::random_normal(s.m * s.k, 1);
        let y = crate::compress::bench::random_normal(s.k * s.n, 2);
        let mut c = vec![0f32; s.m * s.n];
        let mut call = || crate::backend::cpu::sgemm(false, false, s.m, s.n, s.k, 1.0, &x, s.k, &y, s.n, 0.0, &mut c, s.n);
        let t = Instant::now();
        call();
        let iters = iters_for(t.elapsed().as_secs_f64());
        let times: Vec<f64> = (0..a.reps)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    call();
                }
                t.elapsed().as_secs_f64() / iters as f64
            })
            .collect();
        let max_err = gemm_sample_error(&x, &y, &c, s, 256);
        if max_err > gemm_tolerance(GemmPrecision::Fp32) {
            crate::bail!(Other, "bench gemm: the CPU sgemm of {s} is wrong (sampled error {max_err:.3e})");
        }
        let row = GemmBenchRow {
            device: "cpu".into(),
            precision: GemmPrecision::Fp32,
            shape: s,
            reps: a.reps,
            iters,
            median_s: median(&times),
            max_err,
        };
        println!("{row}");
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExchangeBenchArgs {
    /// Gradient sizes in floats, comma-separated (each timed in turn)
    #[arg(long, value_delimiter = ',', default_value = "60192808")]
    pub n: Vec<usize>,
    /// Compression ratios of the sparse exchanges, comma-separated (ignored with --dense-only)
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.01")]
    pub cr: Vec<f64>,
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Time the dense allreduce only (once per size), not the sparse exchanges
    #[arg(long)]
    pub dense_only: bool,
    /// Also write the rows as CSV (rank 0): ranks,n,bytes,mode,cr,k,reps,median_s,bytes_per_rank,bytes_total,note;
    /// a size skipped for memory has an empty median_s and says why in note
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
    /// Skip a size whose buffers, summed over the ranks on one host, exceed this fraction of MemAvailable
    #[arg(long, default_value_t = 0.8)]
    pub mem_fraction: f64,
}

/// Whether `ranks_here` ranks holding `bytes_per_rank` each fit in `fraction` of `available` bytes.
pub fn exchange_fits(bytes_per_rank: f64, ranks_here: usize, available: f64, fraction: f64) -> bool {
    bytes_per_rank * ranks_here as f64 <= fraction * available
}

/// This host's name (the kernel's), to count the ranks that share it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

pub fn exchange(world: &World, a: &ExchangeBenchArgs) -> Result<()> {
    if a.cr.iter().any(|&c| !(c > 0.0 && c <= 1.0)) {
        crate::bail!(Config, "--cr values must be in (0, 1], got {:?}", a.cr);
    }
    if a.n.is_empty() || a.n.contains(&0) || a.cr.is_empty() {
        crate::bail!(Config, "bench exchange: --n and --cr must be non-empty and positive");
    }
    if !(a.mem_fraction > 0.0 && a.mem_fraction <= 1.0) {
        crate::bail!(Config, "bench exchange: --mem-fraction must be in (0, 1], got {}", a.mem_fraction);
    }
    crate::train::set_threads(crate::train::threads_per_rank(None));
    let host = host_name();
    let ranks_here = world.allgather_strings(&host).iter().filter(|h| **h == host).count();
    let crs: &[f64] = if a.dense_only { &a.cr[..1] } else { &a.cr };
    let mut csv = vec![crate::compress::bench::ExchangeBenchRow::CSV_HEADER.to_string()];
    for &n in &a.n {
        for &cr in crs {
            let need = crate::compress::bench::exchange_resident_bytes(n, cr, world.size(), a.dense_only);
            let avail = mem_available_kib()? as f64 * 1024.0;
            let fits = exchange_fits(need, ranks_here, avail, a.mem_fraction);
            // Every rank skips when any host is short, so that the collectives still match.
            if world.allreduce_max_f64(&[if fits { 0.0 } else { 1.0 }])[0] > 0.0 {
                let note = format!(
                    "skipped: {ranks_here} rank(s) x {:.0} MiB > {:.0}% of MemAvailable {:.0} MiB on {host}",
                    need / 1048576.0,
                    a.mem_fraction * 100.0,
                    avail / 1048576.0
                );
                if world.is_root() {
                    eprintln!("bench exchange: n={n}: {note}");
                    csv.push(crate::compress::bench::ExchangeBenchRow::csv_skipped(world.size(), n, &note));
                }
                continue;
            }
            let row = crate::compress::bench::bench_exchange(world, n, cr, a.reps, a.dense_only)?;
            if world.is_root() {
                println!("{row}");
                csv.extend(row.csv_rows());
            }
        }
    }
    if let (Some(path), true) = (&a.csv, world.is_root()) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
        }
        let mut s = csv.join("\n");
        s.push('\n');
        std::fs::write(path, s).map_err(|e| crate::error::Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Step(StepBenchArgs),
        Gemm(GemmBenchArgs),
        Topk(TopkBenchArgs),
        Exchange(ExchangeBenchArgs),
    }

    fn step_args(argv: &[&str]) -> std::result::Result<StepBenchArgs, clap::Error> {
        let argv = ["bench", "step"].iter().chain(argv).copied();
        match Cli::try_parse_from(argv)?.cmd {
            Sub::Step(a) => Ok(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn batches_replace_batch_and_conflict_with_it() {
        assert_eq!(step_args(&[]).unwrap().batch_list(), vec![64]);
        assert_eq!(step_args(&["--batch", "8"]).unwrap().batch_list(), vec![8]);
        assert_eq!(step_args(&["--batches", "8,32,64"]).unwrap().batch_list(), vec![8, 32, 64]);
        assert!(step_args(&["--batch", "8", "--batches", "8,32"]).is_err());
    }

    #[test]
    fn gemm_and_topk_flags_parse() {
        let Sub::Gemm(g) = Cli::try_parse_from(["b", "gemm"]).unwrap().cmd else { unreachable!() };
        assert_eq!(g.sizes.len(), 5);
        assert_eq!(g.sizes[0], GemmShape { m: 1024, n: 1024, k: 1024 });
        assert_eq!(g.sizes[4], GemmShape { m: 256, n: 4096, k: 2304 });
        assert_eq!(g.precision, vec![GemmPrecision::Fp32, GemmPrecision::Tf32]);
        assert_eq!(g.device, crate::backend::cuda::DeviceChoice::Cpu);
        let Sub::Gemm(g) = Cli::try_parse_from(["b", "gemm", "--device", "cuda", "--precision", "tf32", "--sizes", "7x5x3"])
            .unwrap()
            .cmd
        else {
            unreachable!()
        };
        assert_eq!((g.device, g.precision, g.sizes), (crate::backend::cuda::DeviceChoice::Cuda, vec![GemmPrecision::Tf32], vec![GemmShape { m: 7, n: 5, k: 3 }]));
        let Sub::Topk(t) = Cli::try_parse_from(["b", "topk", "--device", "cuda"]).unwrap().cmd else { unreachable!() };
        assert_eq!((t.n, t.cr.clone(), t.device), (60_192_808, vec![0.1, 0.01], crate::backend::cuda::DeviceChoice::Cuda));
    }

    #[test]
    fn exchange_takes_a_size_list_dense_only_and_checks_memory() {
        let Sub::Exchange(e) = Cli::try_parse_from(["b", "exchange"]).unwrap().cmd else { unreachable!() };
        assert_eq!((e.n, e.dense_only, e.csv), (vec![60_192_808], false, None));
        let Sub::Exchange(e) = Cli::try_parse_from(["b", "exchange", "--n", "11500000,57500000", "--dense-only", "--csv", "x.csv"]).unwrap().cmd else { unreachable!() };
        assert_eq!((e.n, e.dense_only, e.csv), (vec![11_500_000, 57_500_000], true, Some("x.csv".into())));
        // 4 ranks of 1 GiB fit in 0.8 of 8 GiB, not of 4 GiB.
        let g = 1024.0 * 1048576.0;
        assert!(exchange_fits(g, 4, 8.0 * g, 0.8));
        assert!(!exchange_fits(g, 4, 4.0 * g, 0.8));
        assert!(exchange_fits(g, 1, 4.0 * g, 0.8));
    }

    #[test]
    fn gemm_shapes_parse_and_print() {
        assert_eq!("512".parse::<GemmShape>().unwrap(), GemmShape { m: 512, n: 512, k: 512 });
        assert_eq!("64x65536x576".parse::<GemmShape>().unwrap(), GemmShape { m: 64, n: 65536, k: 576 });
        assert_eq!("64x65536x576".parse::<GemmShape>().unwrap().to_string(), "64x65536x576");
        for bad in ["", "0", "12x", "1x2", "1x2x3x4", "ax2x3", "2x0x3", "-4"] {
            assert!(bad.parse::<GemmShape>().is_err(), "{bad:?} parsed");
        }
    }

    /// The sampled check passes a correct product (and one with TF32-sized input rounding) and
    /// catches a transposed operand and a single wrong entry.
    #[test]
    fn gemm_sample_error_separates_rounding_from_wrong_results() {
        let s = GemmShape { m: 33, n: 17, k: 129 };
        let a = crate::compress::bench::random_normal(s.m * s.k, 1);
        let b = crate::compress::bench::random_normal(s.k * s.n, 2);
        let mut c = vec![0f32; s.m * s.n];
        crate::backend::cpu::sgemm(false, false, s.m, s.n, s.k, 1.0, &a, s.k, &b, s.n, 0.0, &mut c, s.n);
        // Every entry sampled (with repeats) when samples >> m·n.
        let samples = 20 * s.m * s.n;
        assert!(gemm_sample_error(&a, &b, &c, s, samples) < 1e-5);
        // TF32 keeps 10 mantissa bits: round the inputs to that and the error stays below tolerance.
        let tf32 = |v: &[f32]| v.iter().map(|x| f32::from_bits((x.to_bits() + 0x1000) & !0x1fff)).collect::<Vec<_>>();
        let (at, bt) = (tf32(&a), tf32(&b));
        let mut ct = vec![0f32; s.m * s.n];
        crate::backend::cpu::sgemm(false, false, s.m, s.n, s.k, 1.0, &at, s.k, &bt, s.n, 0.0, &mut ct, s.n);
        let e = gemm_sample_error(&a, &b, &ct, s, samples);
        assert!(e > 1e-5 && e < gemm_tolerance(GemmPrecision::Tf32) / 4.0, "TF32-rounded error {e}");
        // A transposed B (k×n read as n×k) is wrong everywhere.
        let s2 = GemmShape { m: 16, n: 16, k: 16 };
        let (a2, b2) = (&a[..256], &b[..256]);
        let mut c2 = vec![0f32; 256];
        crate::backend::cpu::sgemm(false, true, 16, 16, 16, 1.0, a2, 16, b2, 16, 0.0, &mut c2, 16);
        assert!(gemm_sample_error(a2, b2, &c2, s2, 64) > gemm_tolerance(GemmPrecision::Tf32));
        // One wrong entry is found when every entry is sampled; a NaN is infinitely wrong.
        c[5 * s.n + 3] += 1.0;
        assert!(gemm_sample_error(&a, &b, &c, s, samples) > gemm_tolerance(GemmPrecision::Tf32));
        c[5 * s.n + 3] = f32::NAN;
        assert_eq!(gemm_sample_error(&a, &b, &c, s, samples), f64::INFINITY);
    }

    #[test]
    fn gemm_rows_report_tflops_and_iters_target_50ms() {
        let row = GemmBenchRow {
            device: "cuda".into(),
            precision: GemmPrecision::Tf32,
            shape: GemmShape { m: 4096, n: 4096, k: 4096 },
            reps: 5,
            iters: 20,
            median_s: 0.002,
            max_err: 1e-3,
        };
        assert!((row.tflop_s() - 2.0 * 4096f64.powi(3) / 0.002 / 1e12).abs() < 1e-9);
        assert_eq!(
            row.to_string(),
            "gemm impl=scadles device=cuda precision=tf32 m=4096 n=4096 k=4096 reps=5 iters=20 median_s=0.002000 tflop_s=68.719 max_err=1.00e-3"
        );
        assert_eq!(iters_for(0.002), 25);
        assert_eq!(iters_for(1.0), 1);
        assert_eq!(iters_for(1e-9), 1000);
        assert_eq!(iters_for(0.0), 1);
        assert_eq!(iters_for(f64::NAN), 1);
    }
}

/// `bench memory`: the peak resident memory of one training process (Fig. 3 measured on the host
/// instead of a V100), per batch size and optimiser.
#[derive(clap::Args, Debug, Clone)]
pub struct MemoryBenchArgs {
    /// Model (see `scadles models`)
    #[arg(long, default_value = "resnet18")]
    pub model: String,
    /// cifar (3×3 stem, no max-pool) or torchvision; the inputs are 32×32 either way
    #[arg(long, value_enum, default_value = "cifar")]
    pub shape: Shape,
    /// Head size
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
    /// Batch sizes, comma-separated (measured in increasing order)
    #[arg(long, value_delimiter = ',', default_value = "32,128,256,512,1024,2048")]
    pub batch: Vec<usize>,
    /// Optimisers, comma-separated: sgd, nesterov, adam (every batch with every optimiser)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sgd")]
    pub optimizer: Vec<crate::optim::OptimizerKind>,
    /// Training steps per measurement (forward, loss, backward, optimiser step)
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Compute threads (per-thread workspaces count in the peak)
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also write the measured cells as CSV: model,shape,batch,optimizer,peak_mib,baseline_mib,params
    #[arg(long, value_name = "FILE")]
    pub csv: Option<std::path::PathBuf>,
    /// Skip a cell whose estimated peak exceeds this fraction of MemAvailable
    #[arg(long, default_value_t = 0.8)]
    pub mem_fraction: f64,
    /// Internal: measure one cell in this process and print it (the parent runs each cell so)
    #[arg(long, hide = true, value_name = "BATCH:OPTIMIZER")]
    pub cell: Option<String>,
}

/// One measured cell. `baseline_kib` is VmRSS with the model and the optimiser built and before
/// any step (VmHWM there would include whatever the construction freed again); `peak_kib` is
/// VmHWM after the steps.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryCell {
    pub batch: usize,
    pub optimizer: crate::optim::OptimizerKind,
    pub peak_kib: u64,
    pub baseline_kib: u64,
    pub params: usize,
}

impl MemoryCell {
    fn line(&self) -> String {
        format!(
            "memcell batch={} optimizer={} peak_kib={} baseline_kib={} params={}",
            self.batch, self.optimizer, self.peak_kib, self.baseline_kib, self.params
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("memcell ")?;
        let kv: std::collections::HashMap<&str, &str> = rest.split_whitespace().filter_map(|t| t.split_once('=')).collect();
        Some(MemoryCell {
            batch: kv.get("batch")?.parse().ok()?,
            optimizer: clap::ValueEnum::from_str(kv.get("optimizer")?, false).ok()?,
            peak_kib: kv.get("peak_kib")?.parse().ok()?,
            baseline_kib: kv.get("baseline_kib")?.parse().ok()?,
            params: kv.get("params")?.parse().ok()?,
        })
    }
}

/// A `Key:   123 kB` field of a /proc file, in KiB.
fn proc_kib(path: &str, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::io(path, e))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .ok_or_else(|| crate::error::Error::Other(format!("{path}: no {key} field")))
}

/// This process's peak resident set (VmHWM), KiB.
pub fn peak_rss_kib() -> Result<u64> {
    proc_kib("/proc/self/status", "VmHWM")
}

/// This process's resident set now (VmRSS), KiB.
pub fn rss_kib() -> Result<u64> {
    proc_kib("/proc/self/status", "VmRSS")
}

/// Memory the kernel says can be given to a new process without swapping (MemAvailable), KiB.
pub fn mem_available_kib() -> Result<u64> {
    proc_kib("/proc/meminfo", "MemAvailable")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Measures one cell in this process: model and optimiser (baseline), then a random batch and
/// `steps` training steps (peak). Training's allocator settings apply ([`crate::train::set_threads`]).
pub fn memory_cell(a: &MemoryBenchArgs, batch: usize, kind: crate::optim::OptimizerKind, steps: usize) -> Result<MemoryCell> {
    crate::train::set_threads(a.threads);
    // Every pool thread up and running before the baseline, so that when they start does not
    // decide whether their stacks count in it.
    rayon::broadcast(|_| ());
    let mut model = models::build(&a.model, a.shape, a.num_classes, 1)?;
    let mut opt = crate::optim::Optimizer::new(kind, model.num_params(), 0.9, 1e-4);
    let baseline_kib = rss_kib()?;
    let classes = a.num_classes;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x: Vec<f32> = (0..batch * 3 * 32 * 32).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let labels: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..classes)).collect();
    for _ in 0..steps {
        let logits = model.forward(Tensor::from_vec(&[batch, 3, 32, 32], x.clone()), true, &mut rng);
        let mut d = Tensor::zeros(&[batch, classes]);
        crate::backend::cpu::softmax_cross_entropy(logits.as_slice(), batch, classes, &labels, Some(d.as_mut_slice()));
        drop(logits);
        model.backward(d);
        opt.step(&mut model.store.params, &model.store.grads, 0.01);
    }
    Ok(MemoryCell { batch, optimizer: kind, peak_kib: peak_rss_kib()?, baseline_kib, params: model.num_params() })
}

/// Runs one cell in a child process (this binary, `--cell`), since a process's peak never goes
/// down; returns the cell, or why the child failed.
fn memory_child(a: &MemoryBenchArgs, exe: &std::path::Path, batch: usize, kind: crate::optim::OptimizerKind, steps: usize) -> std::result::Result<MemoryCell, String> {
    let out = std::process::Command::new(exe)
        .args(["bench", "memory", "--model", &a.model, "--shape", &a.shape.to_string()])
        .args(["--num-classes", &a.num_classes.to_string(), "--threads", &a.threads.to_string()])
        .args(["--steps", &steps.to_string(), "--cell", &format!("{batch}:{kind}")])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(MemoryCell::parse) {
        Some(c) if out.status.success() => Ok(c),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!("{} ({})", out.status, err.lines().last().unwrap_or("no message")))
        }
    }
}

pub fn memory(a: &MemoryBenchArgs) -> Result<()> {
    use crate::optim::OptimizerKind;
    if a.batch.is_empty() || a.batch.contains(&0) || a.optimizer.is_empty() || a.steps == 0 || a.threads == 0 || a.num_classes == 0 {
        crate::bail!(Config, "bench memory: --batch, --optimizer, --steps, --threads and --num-classes must be non-empty and positive");
    }
    if !(a.mem_fraction > 0.0 && a.mem_fraction <= 1.0) {
        crate::bail!(Config, "bench memory: --mem-fraction must be in (0, 1], got {}", a.mem_fraction);
    }
    let params = models::param_count(&a.model, a.shape, a.num_classes)?;
    if let Some(cell) = &a.cell {
        let parsed = cell.split_once(':').and_then(|(b, k)| Some((b.parse().ok()?, <OptimizerKind as clap::ValueEnum>::from_str(k, false).ok()?)));
        let Some((batch, kind)) = parsed else { crate::bail!(Config, "bench memory: --cell must be BATCH:OPTIMIZER, got '{cell}'") };
        println!("{}", memory_cell(a, batch, kind, a.steps)?.line());
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| crate::error::Error::Other(format!("bench memory: own binary: {e}")))?;
    let mut batches = a.batch.clone();
    batches.sort_unstable();
    batches.dedup();
    // The estimate of a cell: a measured cell's baseline plus its peak above the baseline scaled
    // linearly with the batch (the fixed part, the gradient buffer and workspaces, scaled too, so
    // it overestimates), plus the difference in optimiser state. A first probe at a small batch
    // gives the first reference.
    let probe_b = batches[0].min(8);
    let mut reference = memory_child(a, &exe, probe_b, OptimizerKind::Sgd, 1)
        .map_err(|e| crate::error::Error::Other(format!("bench memory: the probe at batch {probe_b} failed: {e}")))?;
    println!(
        "# peak resident memory (VmHWM) of one process: {} ({}, {} classes, {params} parameters), 32x32 inputs, {} step(s), {} thread(s); baseline = VmRSS after model + optimiser",
        a.model, a.shape, a.num_classes, a.steps, a.threads
    );
    println!("{:<12} {:<12} {:>6} {:<9} {:>10} {:>13} {:>10} {:>11}", "model", "shape", "batch", "optimizer", "peak_mib", "baseline_mib", "above_mib", "params");
    let (mut rows, mut failed) = (Vec::new(), 0);
    for &kind in &a.optimizer {
        for &batch in &batches {
            let state_diff = (kind.state_per_param() as i64 - reference.optimizer.state_per_param() as i64) * params as i64 * 4 / 1024;
            let above = reference.peak_kib.saturating_sub(reference.baseline_kib) as f64;
            let est = (reference.baseline_kib as i64 + state_diff) as f64 + above * batch as f64 / reference.batch as f64;
            let avail = mem_available_kib()? as f64;
            if est > a.mem_fraction * avail {
                eprintln!(
                    "bench memory: skip {} {} batch {batch} {kind}: estimated peak {:.0} MiB > {:.0}% of MemAvailable {:.0} MiB",
                    a.model,
                    a.shape,
                    est / 1024.0,
                    a.mem_fraction * 100.0,
                    avail / 1024.0
                );
                continue;
            }
            match memory_child(a, &exe, batch, kind, a.steps) {
                Ok(c) => {
                    println!(
                        "{:<12} {:<12} {:>6} {:<9} {:>10.1} {:>13.1} {:>10.1} {:>11}",
                        a.model,
                        a.shape.to_string(),
                        c.batch,
                        c.optimizer.to_string(),
                        mib(c.peak_kib),
                        mib(c.baseline_kib),
                        mib(c.peak_kib.saturating_sub(c.baseline_kib)),
                        c.params
                    );
                    if c.batch >= reference.batch {
                        reference = c.clone();
                    }
                    rows.push(c);
                }
                Err(e) => {
                    eprintln!("bench memory: {} {} batch {batch} {kind} failed: {e}", a.model, a.shape);
                    failed += 1;
                }
            }
        }
    }
    if let Some(path) = &a.csv {
        let mut s = String::from("model,shape,batch,optimizer,peak_mib,baseline_mib,params\n");
        for c in &rows {
            s += &format!("{},{},{},{},{:.3},{:.3},{}\n", a.model, a.shape, c.batch, c.optimizer, mib(c.peak_kib), mib(c.baseline_kib), c.params);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
        }
        std::fs::write(path, s).map_err(|e| crate::error::Error::io(path, e))?;
    }
    if failed > 0 {
        crate::bail!(Other, "bench memory: {failed} cell(s) failed");
    }
    Ok(())
}
