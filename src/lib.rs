//! scadles: training deep networks on data that streams into heterogeneous edge devices.
//!
//! One MPI rank per device. Each rank trains on a batch sized by its own stream rate, gradients are
//! aggregated weighted by those batch sizes (paper Eq. 4a–4c) with linear learning-rate scaling,
//! stream buffers follow the persistence or truncation policy, non-IID devices exchange samples by
//! data injection, and gradients can be sent top-k compressed under an adaptive rule.
//!
//! The map of the parts is in the README; every module holds one part.

pub mod backend;
pub mod cli;
pub mod config;
pub mod compress;
pub mod data;
pub mod dist;
pub mod error;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod optim;
pub mod report;
pub mod stream;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
