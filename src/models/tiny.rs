//! tinycnn: a small BatchNorm-free CNN for fast tests and demos. Without BatchNorm the gradient of
//! a union batch is exactly the weighted mean of per-shard gradients, which the data-parallel
//! correctness tests rely on.
use crate::nn::layers::{AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Relu};
use crate::nn::{ParamStore, Sequential};

/// conv3×3(3→16)-ReLU-maxpool2 → conv3×3(16→32)-ReLU-maxpool2 → conv3×3(32→64)-ReLU → global avg
/// pool → linear(64→classes).
pub fn tinycnn(ps: &mut ParamStore, num_classes: usize) -> Sequential {
    let mut s = Sequential::new();
    let mut c1 = Conv2d::new_default_init(ps, "conv1", 3, 16, 3, 1, 1);
    c1.need_dx = false;
    s.push(c1);
    s.push(Relu::new());
    s.push(MaxPool2d::new(2, 2, 0));
    s.push(Conv2d::new_default_init(ps, "conv2", 16, 32, 3, 1, 1));
    s.push(Relu::new());
    s.push(MaxPool2d::new(2, 2, 0));
    s.push(Conv2d::new_default_init(ps, "conv3", 32, 64, 3, 1, 1));
    s.push(Relu::new());
    s.push(AdaptiveAvgPool2d::new(1, 1));
    s.push(Flatten::new());
    s.push(Linear::new(ps, "fc", 64, num_classes));
    s
}
