//! SGD with momentum and weight decay (PyTorch semantics), the multi-step schedule, and linear
//! learning-rate scaling for variable global batches.
use rayon::prelude::*;

/// SGD over the flat parameter buffer: d = g + wd·w; buf = μ·buf + d; w −= lr·buf (no dampening,
/// no Nesterov). Weight decay applies to every parameter, as PyTorch's default does.
pub struct Sgd {
    pub momentum: f32,
    pub weight_decay: f32,
    buf: Vec<f32>,
}

const CHUNK: usize = 1 << 16;

impl Sgd {
    pub fn new(num_params: usize, momentum: f32, weight_decay: f32) -> Self {
        Sgd { momentum, weight_decay, buf: vec![0.0; num_params] }
    }

    /// One update with this step's learning rate. The momentum buffer is not rescaled when the
    /// learning rate changes between steps (as PyTorch, and the paper's code, do).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        let (mu, wd) = (self.momentum, self.weight_decay);
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.buf.par_chunks_mut(CHUNK))
            .for_each(|((w, g), b)| {
                for i in 0..w.len() {
                    let d = g[i] + wd * w[i];
                    b[i] = mu * b[i] + d;
                    w[i] -= lr * b[i];
                }
            });
    }

    pub fn momentum_buffer(&self) -> &[f32] {
        &self.buf
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
