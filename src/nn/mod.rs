//! Layers with forward and backward over one flat parameter buffer and one flat gradient buffer.
//!
//! Every layer holds views (offset + length) into `ParamStore::params` / `grads`: the whole
//! gradient is one contiguous buffer that packing, top-k and the collectives work on as a unit.
pub mod layers;
pub mod params;

pub use layers::{Layer, Sequential};
pub use params::{Init, ParamStore, ParamView};

/// What a forward pass may touch besides the activations.
pub struct Fwd<'a> {
    pub params: &'a [f32],
    /// Non-trained state (BatchNorm running statistics).
    pub buffers: &'a mut [f32],
    pub train: bool,
    pub ws: &'a mut Vec<f32>,
    pub rng: &'a mut rand::rngs::StdRng,
}

/// What a backward pass may touch.
pub struct Bwd<'a> {
    pub params: &'a [f32],
    pub grads: &'a mut [f32],
    pub ws: &'a mut Vec<f32>,
}
