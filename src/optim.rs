//! The optimisers over the flat parameter buffer with PyTorch semantics (SGD with momentum,
//! Nesterov, Adam; weight decay as an L2 term added to the gradient), the multi-step schedule,
//! and linear learning-rate scaling for variable global batches.
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which update rule trains (config key `optimizer`, flag `--optimizer`); Fig. 3(b) compares the
/// three. The GPU engine has `sgd` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// torch.optim.SGD(momentum=μ, weight_decay=wd)
    #[default]
    Sgd,
    /// torch.optim.SGD(momentum=μ, weight_decay=wd, nesterov=True)
    Nesterov,
    /// torch.optim.Adam(betas=(0.9, 0.999), eps=1e-8, weight_decay=wd); ignores the momentum
    Adam,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Nesterov => "nesterov",
            OptimizerKind::Adam => "adam",
        })
    }
}

impl OptimizerKind {
    /// Whether the GPU engine implements it (only `sgd`).
    pub fn on_gpu(self) -> bool {
        self == OptimizerKind::Sgd
    }

    /// f32 values of optimiser state per parameter: the momentum buffer, or Adam's two moments.
    pub fn state_per_param(self) -> usize {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Nesterov => 1,
            OptimizerKind::Adam => 2,
        }
    }
}

/// A zero-filled state buffer whose pages are written now, so that it is resident from the start
/// (a zeroed allocation is otherwise mapped lazily and would not count in the process's memory
/// until the first step; the memory benchmark's baseline counts the optimiser's state).
fn resident_zeros(n: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    // black_box: the compiler may not drop stores of zero into memory it knows is zero.
    std::hint::black_box(v.as_mut_slice()).fill(0.0);
    v
}

/// One of the optimisers, as the CPU engine holds it.
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    /// `momentum` is μ for sgd and nesterov; Adam uses its own betas.
    pub fn new(kind: OptimizerKind, num_params: usize, momentum: f32, weight_decay: f32) -> Self {
        match kind {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd::new(num_params, momentum, weight_decay)),
            OptimizerKind::Nesterov => Optimizer::Sgd(Sgd::nesterov(num_params, momentum, weight_decay)),
            OptimizerKind::Adam => Optimizer::Adam(Adam::new(num_params, weight_decay)),
        }
    }

    pub fn kind(&self) -> OptimizerKind {
        match self {
            Optimizer::Sgd(s) if s.nesterov => OptimizerKind::Nesterov,
            Optimizer::Sgd(_) => OptimizerKind::Sgd,
            Optimizer::Adam(_) => OptimizerKind::Adam,
        }
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        match self {
            Optimizer::Sgd(s) => s.step(params, grads, lr),
            Optimizer::Adam(a) => a.step(params, grads, lr),
        }
    }

    /// f32 values of state held (1× or 2× the parameters).
    pub fn state_len(&self) -> usize {
        match self {
            Optimizer::Sgd(s) => s.buf.len(),
            Optimizer::Adam(a) => a.m.len() + a.v.len(),
        }
    }
}

/// SGD over the flat parameter buffer: d = g + wd·w; buf = μ·buf + d; w −= lr·buf (no dampening).
/// With `nesterov`, PyTorch's form: buf as above, then w −= lr·(d + μ·buf). Weight decay applies
/// to every parameter, as PyTorch's default does.
pub struct Sgd {
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    buf: Vec<f32>,
}

const CHUNK: usize = 1 << 16;

impl Sgd {
    pub fn new(num_params: usize, momentum: f32, weight_decay: f32) -> Self {
        Sgd { momentum, weight_decay, nesterov: false, buf: resident_zeros(num_params) }
    }

    /// Nesterov momentum (torch.optim.SGD(nesterov=True)). PyTorch refuses μ = 0 here; this
    /// allows it, and it is then plain SGD.
    pub fn nesterov(num_params: usize, momentum: f32, weight_decay: f32) -> Self {
        Sgd { nesterov: true, ..Sgd::new(num_params, momentum, weight_decay) }
    }

    /// One update with this step's learning rate. The momentum buffer is not rescaled when the
    /// learning rate changes between steps (as PyTorch, and the paper's code, do).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        let (mu, wd, nesterov) = (self.momentum, self.weight_decay, self.nesterov);
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.buf.par_chunks_mut(CHUNK))
            .for_each(|((w, g), b)| {
                for i in 0..w.len() {
                    let d = g[i] + wd * w[i];
                    b[i] = mu * b[i] + d;
                    w[i] -= lr * if nesterov { d + mu * b[i] } else { b[i] };
                }
            });
    }

    pub fn momentum_buffer(&self) -> &[f32] {
        &self.buf
    }
}

/// Adam (torch.optim.Adam, amsgrad off) with L2 weight decay: d = g + wd·w;
/// m = β1·m + (1−β1)·d; v = β2·v + (1−β2)·d²; w −= lr·(m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps),
/// t counting from 1, β = (0.9, 0.999), eps = 1e-8. Both moments start at zero.
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    t: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub fn new(num_params: usize, weight_decay: f32) -> Self {
        Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, t: 0, m: resident_zeros(num_params), v: resident_zeros(num_params) }
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.t += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        // The bias corrections in f64, as PyTorch computes them on the host in Python floats.
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        let step_size = (lr as f64 / (1.0 - (b1 as f64).powi(t))) as f32;
        let bc2_sqrt = (1.0 - (b2 as f64).powi(t)).sqrt() as f32;
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK).zip(self.v.par_chunks_mut(CHUNK)))
            .for_each(|((w, g), (m, v))| {
                for i in 0..w.len() {
                    let d = g[i] + wd * w[i];
                    m[i] = b1 * m[i] + (1.0 - b1) * d;
                    v[i] = b2 * v[i] + (1.0 - b2) * d * d;
                    w[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
                }
            });
    }

    /// Steps taken (t of the bias corrections).
    pub fn steps(&self) -> u64 {
        self.t
    }
}

/// Multi-step schedule: lr = base · gamma^(number of milestones ≤ epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStep {
    pub base: f64,
    pub milestones: Vec<u64>,
    pub gamma: f64,
}

impl MultiStep {
    pub fn lr(&self, epoch: u64) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
        self.base * self.gamma.powi(passed as i32)
    }
}

/// Linear scaling rule (paper, unnumbered display after Eq. 4): η_step = η(epoch) · Σb / B.
pub fn scaled_lr(scheduled: f64, global_batch: usize, base_batch: usize) -> f64 {
    scheduled * global_batch as f64 / base_batch as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_matches_pytorch_update_by_hand() {
        // Two steps of torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01), worked by hand:
        // step 1: d = 0.5 + 0.01*1.0 = 0.51; buf = 0.51; w = 1 - 0.051 = 0.949
        // step 2: d = -0.2 + 0.01*0.949 = -0.19051; buf = 0.9*0.51 - 0.19051 = 0.26849; w = 0.949 - 0.026849
        let mut opt = Sgd::new(1, 0.9, 0.01);
        let mut w = vec![1.0f32];
        opt.step(&mut w, &[0.5], 0.1);
        assert!((w[0] - 0.949).abs() < 1e-6, "{}", w[0]);
        opt.step(&mut w, &[-0.2], 0.1);
        assert!((opt.momentum_buffer()[0] - 0.26849).abs() < 1e-6);
        assert!((w[0] - (0.949 - 0.026849)).abs() < 1e-6, "{}", w[0]);
    }

    /// Independent f64 reference of the three rules (PyTorch's formulas, written out again).
    fn reference(kind: OptimizerKind, w0: &[f64], grads: &[Vec<f64>], lr: f64, mu: f64, wd: f64) -> Vec<f64> {
        let n = w0.len();
        let mut w = w0.to_vec();
        let (mut buf, mut m, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..n {
                let d = g[i] + wd * w[i];
                match kind {
                    OptimizerKind::Sgd | OptimizerKind::Nesterov => {
                        buf[i] = mu * buf[i] + d;
                        let step = if kind == OptimizerKind::Nesterov { d + mu * buf[i] } else { buf[i] };
                        w[i] -= lr * step;
                    }
                    OptimizerKind::Adam => {
                        m[i] = 0.9 * m[i] + 0.1 * d;
                        v[i] = 0.999 * v[i] + 0.001 * d * d;
                        let mh = m[i] / (1.0 - 0.9f64.powi(t));
                        let vh = v[i] / (1.0 - 0.999f64.powi(t));
                        w[i] -= lr * mh / (vh.sqrt() + 1e-8);
                    }
                }
            }
        }
        w
    }

    #[test]
    fn each_optimizer_matches_an_f64_reference_over_three_steps() {
        let n = 1000;
        let w0: Vec<f64> = (0..n).map(|i| ((i * 37 % 101) as f64 - 50.0) / 50.0).collect();
        let grads: Vec<Vec<f64>> =
            (0..3).map(|s| (0..n).map(|i| (((i * 13 + s * 7) % 89) as f64 - 44.0) / 40.0).collect()).collect();
        for (kind, lr) in [(OptimizerKind::Sgd, 0.1), (OptimizerKind::Nesterov, 0.1), (OptimizerKind::Adam, 0.01)] {
            let (mu, wd) = (0.9, 5e-4);
            let want = reference(kind, &w0, &grads, lr, mu, wd);
            let mut opt = Optimizer::new(kind, n, mu as f32, wd as f32);
            assert_eq!(opt.kind(), kind);
            let mut w: Vec<f32> = w0.iter().map(|&x| x as f32).collect();
            for g in &grads {
                let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
                opt.step(&mut w, &g, lr as f32);
            }
            for i in 0..n {
                // f32 arithmetic over three steps of O(1) values: a few ulps of 1.
                assert!((w[i] as f64 - want[i]).abs() < 2e-6, "{kind} param {i}: {} vs {}", w[i], want[i]);
            }
        }
    }

    #[test]
    fn adam_matches_pytorch_update_by_hand() {
        // torch.optim.Adam(lr=0.1, weight_decay=0.01), w = 1, two steps, worked by hand:
        // step 1: d = 0.5 + 0.01*1 = 0.51; m = 0.051; v = 0.001*0.2601 = 0.0002601;
        //   m̂ = 0.051/0.1 = 0.51; v̂ = 0.0002601/0.001 = 0.2601; sqrt = 0.51; w = 1 - 0.1*0.51/0.51 = 0.9
        // step 2: d = -0.2 + 0.01*0.9 = -0.191; m = 0.0459 - 0.0191 = 0.0268;
        //   v = 0.999*0.0002601 + 0.001*0.036481 = 0.0002963209; m̂ = 0.0268/0.19 = 0.1410526;
        //   v̂ = 0.0002963209/0.001999 = 0.1482346; sqrt = 0.3850124; w = 0.9 - 0.1*0.1410526/0.3850124 = 0.8633641
        let mut opt = Adam::new(1, 0.01);
        let mut w = vec![1.0f32];
        opt.step(&mut w, &[0.5], 0.1);
        assert!((w[0] - 0.9).abs() < 1e-6, "{}", w[0]);
        opt.step(&mut w, &[-0.2], 0.1);
        assert_eq!(opt.steps(), 2);
        assert!((w[0] - 0.8633641).abs() < 1e-6, "{}", w[0]);
    }

    #[test]
    fn nesterov_without_momentum_is_sgd() {
        let n = 300;
        let mut a = Optimizer::new(OptimizerKind::Sgd, n, 0.0, 1e-4);
        let mut b = Optimizer::new(OptimizerKind::Nesterov, n, 0.0, 1e-4);
        let mut wa: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut wb = wa.clone();
        for s in 0..3 {
            let g: Vec<f32> = (0..n).map(|i| ((i + s) as f32 * 0.11).cos()).collect();
            a.step(&mut wa, &g, 0.05);
            b.step(&mut wb, &g, 0.05);
        }
        assert_eq!(wa, wb);
    }

    #[test]
    fn optimizer_state_sizes() {
        let n = 1234;
        for (kind, per) in [(OptimizerKind::Sgd, 1), (OptimizerKind::Nesterov, 1), (OptimizerKind::Adam, 2)] {
            assert_eq!(Optimizer::new(kind, n, 0.9, 0.0).state_len(), per * n, "{kind}");
            assert_eq!(kind.state_per_param(), per);
        }
        assert!(OptimizerKind::Sgd.on_gpu() && !OptimizerKind::Nesterov.on_gpu() && !OptimizerKind::Adam.on_gpu());
    }

    #[test]
    fn multistep_schedule() {
        let s = MultiStep { base: 0.1, milestones: vec![75, 150, 225], gamma: 0.2 };
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(74), 0.1);
        assert!((s.lr(75) - 0.02).abs() < 1e-12);
        assert!((s.lr(150) - 0.004).abs() < 1e-12);
        assert!((s.lr(1000) - 0.0008).abs() < 1e-12);
    }

    #[test]
    fn linear_scaling_arithmetic() {
        // 16 devices, B = 64·16 = 1024; a step whose global batch is 1536 gets 1.5× the scheduled lr.
        assert!((scaled_lr(0.1, 1536, 1024) - 0.15).abs() < 1e-12);
        assert!((scaled_lr(0.01, 256, 1024) - 0.0025).abs() < 1e-12);
        assert_eq!(scaled_lr(0.1, 0, 1024), 0.0);
    }
}
