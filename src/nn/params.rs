//! The flat parameter store: one contiguous buffer for all parameters and one for all gradients.
use rand::Rng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};

/// A view of one parameter tensor inside the flat buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamView {
    pub offset: usize,
    pub len: usize,
}

impl ParamView {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
    pub fn of<'a>(&self, buf: &'a [f32]) -> &'a [f32] {
        &buf[self.range()]
    }
    pub fn of_mut<'a>(&self, buf: &'a mut [f32]) -> &'a mut [f32] {
        &mut buf[self.range()]
    }
}

/// Initialisation schemes, as torchvision uses them.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Kaiming normal, fan_out mode, ReLU gain: std = sqrt(2 / fan_out).
    KaimingNormalFanOut { fan_out: usize },
    /// PyTorch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    UniformFanIn { fan_in: usize },
    Normal { std: f32 },
    Const(f32),
}

/// Metadata of one parameter tensor (name for reports, shape for layer-scoped top-k).
#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub view: ParamView,
}

/// Parameters, gradients and non-trained buffers of a model, each one flat buffer.
pub struct ParamStore {
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub buffers: Vec<f32>,
    pub infos: Vec<ParamInfo>,
    /// Every BatchNorm's (running mean, running variance) inside `buffers`, in layer order.
    pub bn_stats: Vec<(ParamView, ParamView)>,
    rng: rand::rngs::StdRng,
    /// Shape-only store: records tensors without allocating or initialising them.
    count_only: bool,
    count: usize,
}

impl ParamStore {
    pub fn new(seed: u64) -> Self {
        ParamStore {
            params: Vec::new(),
            grads: Vec::new(),
            buffers: Vec::new(),
            infos: Vec::new(),
            bn_stats: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(seed ^ 0x05CA_D1E5),
            count_only: false,
            count: 0,
        }
    }

    /// A store that only counts parameters (for listing model sizes without allocating them).
    pub fn counting() -> Self {
        ParamStore { count_only: true, ..ParamStore::new(0) }
    }

    /// Appends a parameter tensor initialised by `init` (deterministic from the seed and order).
    pub fn alloc(&mut self, name: &str, shape: &[usize], init: Init) -> ParamView {
        let len: usize = shape.iter().product();
        let offset = self.count;
        self.count += len;
        if self.count_only {
            let view = ParamView { offset, len };
            self.infos.push(ParamInfo { name: name.to_string(), shape: shape.to_vec(), view });
            return view;
        }
        self.params.reserve(len);
        match init {
            Init::KaimingNormalFanOut { fan_out } => {
                let d = Normal::new(0.0f32, (2.0 / fan_out as f32).sqrt()).expect("positive std");
                for _ in 0..len {
                    self.params.push(d.sample(&mut self.rng));
                }
            }
            Init::UniformFanIn { fan_in } => {
                let b = 1.0 / (fan_in as f32).sqrt();
                let d = Uniform::new_inclusive(-b, b);
                for _ in 0..len {
                    self.params.push(d.sample(&mut self.rng));
                }
            }
            Init::Normal { std } => {
                let d = Normal::new(0.0f32, std).expect("positive std");
                for _ in 0..len {
                    self.params.push(d.sample(&mut self.rng));
                }
            }
            Init::Const(c) => self.params.extend(std::iter::repeat_n(c, len)),
        }
        let view = ParamView { offset, len };
        self.infos.push(ParamInfo { name: name.to_string(), shape: shape.to_vec(), view });
        view
    }

    /// Appends a non-trained buffer (BatchNorm running statistics) filled with `value`.
    pub fn alloc_buffer(&mut self, len: usize, value: f32) -> ParamView {
        let offset = self.buffers.len();
        if !self.count_only {
            self.buffers.extend(std::iter::repeat_n(value, len));
        }
        ParamView { offset, len }
    }

    /// Sizes the gradient buffer once all parameters exist.
    pub fn finish(&mut self) {
        self.grads = vec![0.0; self.params.len()];
    }

    pub fn num_params(&self) -> usize {
        self.count
    }

    /// Parameter tensor ranges in the flat buffer (the "layer" scope of top-k).
    pub fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.infos.iter().map(|i| i.view.range()).collect()
    }

    /// A random number for layers that need one at build time.
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.rng
    }
}
