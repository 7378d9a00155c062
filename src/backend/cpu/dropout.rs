//! Inverted dropout: kept values are scaled by `1/(1−p)` so that evaluation needs no rescaling.
use rand::Rng;

fn keep_scale(p: f32) -> f32 {
    assert!(
        (0.0..1.0).contains(&p),
        "dropout: p = {p}, expected a probability in [0, 1)"
    );
    1.0 / (1.0 - p)
}

/// Drops each element with probability `p`; `mask` gets 1 where the element is kept.
pub fn dropout_forward<R: Rng>(x: &[f32], p: f32, rng: &mut R, y: &mut [f32], mask: &mut [u8]) {
    assert!(
        x.len() == y.len() && y.len() == mask.len(),
        "dropout: x, y, mask lengths differ"
    );
    let scale = keep_scale(p);
    for ((o, m), &v) in y.iter_mut().zip(mask.iter_mut()).zip(x) {
        let keep = rng.gen::<f32>() >= p;
        *m = keep as u8;
        *o = if keep { v * scale } else { 0.0 };
    }
}

/// `dx = dy·mask/(1−p)`.
pub fn dropout_backward(dy: &[f32], mask: &[u8], p: f32, dx: &mut [f32]) {
    assert!(
        dy.len() == mask.len() && mask.len() == dx.len(),
        "dropout: dy, mask, dx lengths differ"
    );
    let scale = keep_scale(p);
    for ((o, &m), &g) in dx.iter_mut().zip(mask).zip(dy) {
        *o = if m != 0 { g * scale } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    fn reference(x: &[f64], mask: &[u8], p: f64) -> Vec<f64> {
        x.iter()
            .zip(mask)
            .map(|(&v, &m)| if m == 1 { v / (1.0 - p) } else { 0.0 })
            .collect()
    }

    #[test]
    fn dropout_keeps_about_one_minus_p_and_scales() {
        let mut rng = rng(1);
        let len = 20_000;
        let x = randv(&mut rng, len);
        let (mut y, mut mask) = (vec![f32::NAN; len], vec![7u8; len]);
        dropout_forward(&x, 0.3, &mut rng, &mut y, &mut mask);
        assert!(mask.iter().all(|&m| m <= 1), "mask must be 0/1");
        let kept = mask.iter().filter(|&&m| m == 1).count() as f64 / len as f64;
        // 0.7 ± 5σ (σ = sqrt(0.21/20000) ≈ 0.0032).
        assert!((kept - 0.7).abs() < 0.017, "kept fraction {kept}, expected about 0.7");
        assert_close("dropout fwd", &y, &reference(&to64(&x), &mask, 0.3), 1e-6, 1e-6);

        // p = 0 keeps everything unscaled.
        dropout_forward(&x, 0.0, &mut rng, &mut y, &mut mask);
        assert!(mask.iter().all(|&m| m == 1));
        assert_close("dropout p=0", &y, &to64(&x), 0.0, 0.0);
    }

    #[test]
    fn dropout_backward_matches_finite_differences() {
        let mut rng = rng(2);
        let len = 50;
        let x = randv(&mut rng, len);
        let (mut y, mut mask) = (vec![0.0; len], vec![0u8; len]);
        dropout_forward(&x, 0.5, &mut rng, &mut y, &mut mask);
        let r = randv(&mut rng, len);
        let r64 = to64(&r);
        let mut dx = vec![f32::NAN; len];
        dropout_backward(&r, &mask, 0.5, &mut dx);
        let nd = numeric_grad(&to64(&x), |xp| dot(&reference(xp, &mask, 0.5), &r64));
        assert_close("dropout bwd", &dx, &nd, 1e-6, 1e-6);
    }
}
