//! VGG-11/13/16/19 (configurations A, B, D, E), with or without BatchNorm.
use super::Shape;
use crate::nn::layers::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Relu};
use crate::nn::{ParamStore, Sequential};

const M: usize = 0; // a max pool in the configuration lists

fn config(depth: usize) -> Option<&'static [usize]> {
    Some(match depth {
        11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        13 => &[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        16 => &[64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
        19 => &[64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M],
        _ => return None,
    })
}

/// Builds vgg{depth}[_bn]; None for an unknown depth. torchvision shape: adaptive 7×7 pool and the
/// 25088→4096→4096→classes head with dropout 0.5; CIFAR shape: one linear 512→classes head.
pub fn vgg(ps: &mut ParamStore, depth: usize, bn: bool, shape: Shape, num_classes: usize) -> Option<Sequential> {
    let cfg = config(depth)?;
    let mut s = Sequential::new();
    let mut cin = 3;
    let mut idx = 0;
    for &v in cfg {
        if v == M {
            s.push(MaxPool2d::new(2, 2, 0));
            idx += 1;
            continue;
        }
        let mut conv = Conv2d::new(ps, &format!("features.{idx}"), cin, v, 3, 1, 1, true);
        conv.need_dx = cin != 3;
        s.push(conv);
        idx += 1;
        if bn {
            s.push(BatchNorm2d::new(ps, &format!("features.{idx}"), v));
            idx += 1;
        }
        s.push(Relu::new());
        idx += 1;
        cin = v;
    }
    match shape {
        Shape::Torchvision => {
            s.push(AdaptiveAvgPool2d::new(7, 7));
            s.push(Flatten::new());
            s.push(Linear::new_normal(ps, "classifier.0", 512 * 7 * 7, 4096, 0.01));
            s.push(Relu::new());
            s.push(Dropout::new(0.5));
            s.push(Linear::new_normal(ps, "classifier.3", 4096, 4096, 0.01));
            s.push(Relu::new());
            s.push(Dropout::new(0.5));
            s.push(Linear::new_normal(ps, "classifier.6", 4096, num_classes, 0.01));
        }
        Shape::Cifar => {
            s.push(Flatten::new());
            s.push(Linear::new_normal(ps, "classifier", 512, num_classes, 0.01));
        }
    }
    Some(s)
}
