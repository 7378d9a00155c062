//! VGG-11/13/16/19 (configurations A, B, D, E), with or without BatchNorm.
use super::Shape;
use crate::nn::{ParamStore, Sequential};

/// Builds vgg{depth}[_bn] ([`super::spec::vgg`]) on the CPU; None for an unknown depth.
pub fn vgg(ps: &mut ParamStore, depth: usize, bn: bool, shape: Shape, num_classes: usize) -> Option<Sequential> {
    super::spec::vgg(depth, bn, shape, num_classes).map(|s| super::instantiate(ps, &s))
}
