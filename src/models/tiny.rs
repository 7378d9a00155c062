//! tinycnn: a small BatchNorm-free CNN for fast tests and demos. Without BatchNorm the gradient of
//! a union batch is exactly the weighted mean of per-shard gradients, which the data-parallel
//! correctness tests rely on.
use crate::nn::{ParamStore, Sequential};

/// Builds tinycnn ([`super::spec::tinycnn`]) on the CPU.
pub fn tinycnn(ps: &mut ParamStore, num_classes: usize) -> Sequential {
    super::instantiate(ps, &super::spec::tinycnn(num_classes))
}

/// Builds tinycnn_bn ([`super::spec::tinycnn_bn`]) on the CPU.
pub fn tinycnn_bn(ps: &mut ParamStore, num_classes: usize) -> Sequential {
    super::instantiate(ps, &super::spec::tinycnn_bn(num_classes))
}
