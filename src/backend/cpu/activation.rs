//! ReLU forward and backward, elementwise over contiguous slices.
use super::for_each_piece;

/// Elements per parallel piece of an elementwise op.
const PIECE: usize = 1 << 14;

/// `y = max(x, 0)` (NaN passes through, as in PyTorch).
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "relu: x and y lengths differ");
    for_each_piece(y, PIECE, x.len(), |i, out| {
        for (o, &v) in out.iter_mut().zip(&x[i * PIECE..]) {
            *o = if v < 0.0 { 0.0 } else { v };
        }
    });
}

/// `x = max(x, 0)` in place.
pub fn relu_inplace(x: &mut [f32]) {
    let len = x.len();
    for_each_piece(x, PIECE, len, |_, out| {
        for v in out.iter_mut() {
            *v = if *v < 0.0 { 0.0 } else { *v };
        }
    });
}

/// `dx = dy` where `y > 0` (y is the ReLU output), else 0.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        y.len() == dy.len() && dy.len() == dx.len(),
        "relu_backward: y, dy, dx lengths differ"
    );
    for_each_piece(dx, PIECE, y.len(), |i, out| {
        let off = i * PIECE;
        for ((o, &g), &v) in out.iter_mut().zip(&dy[off..]).zip(&y[off..]) {
            *o = if v > 0.0 { g } else { 0.0 };
        }
    });
}

/// `dy = dy` where `y > 0`, else 0, in place.
pub fn relu_backward_inplace(y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "relu_backward: y and dy lengths differ");
    let len = y.len();
    for_each_piece(dy, PIECE, len, |i, out| {
        for (o, &v) in out.iter_mut().zip(&y[i * PIECE..]) {
            *o = if v > 0.0 { *o } else { 0.0 };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
    }

    #[test]
    fn relu_forward_backward_small_and_parallel() {
        for (len, seed) in [(37usize, 1u64), (3 * PIECE + 5, 2)] {
            let mut rng = rng(seed);
            let mut x = randv(&mut rng, len);
            // Keep finite differences away from the kink.
            x.iter_mut().filter(|v| v.abs() < 1e-3).for_each(|v| *v = 0.5);
            let x64 = to64(&x);
            let want = reference(&x64);
            let mut y = vec![f32::NAN; len];
            relu_forward(&x, &mut y);
            assert_close("relu fwd", &y, &want, 0.0, 0.0);
            let mut yi = x.clone();
            relu_inplace(&mut yi);
            assert_close("relu inplace", &yi, &want, 0.0, 0.0);

            let r = randv(&mut rng, len);
            let r64 = to64(&r);
            let mut dx = vec![f32::NAN; len];
            relu_backward(&y, &r, &mut dx);
            let mut dxi = r.clone();
            relu_backward_inplace(&y, &mut dxi);
            assert_close("relu bwd in place", &dxi, &to64(&dx), 0.0, 0.0);
            if len < 100 {
                let nd = numeric_grad(&x64, |xp| dot(&reference(xp), &r64));
                assert_close("relu bwd", &dx, &nd, 1e-6, 1e-6);
            } else {
                let want: Vec<f64> = (0..len).map(|i| if x[i] > 0.0 { r64[i] } else { 0.0 }).collect();
                assert_close("relu bwd", &dx, &want, 0.0, 0.0);
            }
        }
    }

    #[test]
    fn relu_zero_output_blocks_gradient() {
        let mut dx = [9.0f32; 3];
        relu_backward(&[0.0, 2.0, 0.0], &[1.0, 2.0, 3.0], &mut dx);
        assert_eq!(dx, [0.0, 2.0, 0.0]);
        let mut y = [0.0f32; 2];
        relu_forward(&[f32::NAN, -1.0], &mut y);
        assert!(y[0].is_nan() && y[1] == 0.0, "NaN must pass through: {y:?}");
    }
}
