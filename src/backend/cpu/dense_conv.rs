//! Convolutions on planes smaller than the kernel (2×2 and 1×1 planes under a 3×3 kernel, as late
//! in ResNet and VGG on 32×32 inputs) lowered to one dense GEMM over the whole batch.
//!
//! Per image the convolution is a linear map from `c_in·h·w` inputs to `c_out·ho·wo` outputs. Its
//! matrix `Wd [c_out·ho·wo, c_in·h·w]` holds `w[k][c][ki][kj]` where tap `(ki, kj)` connects output
//! `o` to input `i`, zero elsewhere. Then `Y [n, c_out·ho·wo] = X [n, c_in·h·w] · Wdᵀ`, where `X` and
//! `Y` are the NCHW tensors themselves: no im2col and no permute. It costs `h·w·ho·wo` multiplies
//! per channel pair against im2col's `kh·kw·ho·wo`, which includes the taps that land in the
//! zero padding: 2.25× fewer for a padded 3×3 kernel on 2×2 planes, 9× fewer on 1×1 planes.
//! Backward: `dX = dY · Wd`, `dWd = dYᵀ · X`, folded back onto the taps.
use super::conv::{add_bias, bias_grad, check_grad_lengths, check_lengths, grow, Conv2dShape};
use super::gemm::sgemm;
use rayon::prelude::*;

/// Largest `Wd` built, in floats (64 MB).
const MAX_DENSE: usize = 16 << 20;

/// Whether `s` takes the dense lowering: input planes with fewer positions than the kernel has
/// taps, so the dense map does less work than im2col, and a `Wd` of at most [`MAX_DENSE`] floats.
pub fn applies(s: &Conv2dShape) -> bool {
    let p = s.h_out() * s.w_out();
    p > 0 && s.h * s.w < s.kh * s.kw && s.c_out * p * s.c_in * s.h * s.w <= MAX_DENSE
}

/// For output position `o` and input position `i` of one plane, the tap `ki·kw + kj` connecting
/// them, if any.
fn tap(s: &Conv2dShape, o: usize, i: usize) -> Option<usize> {
    let wo = s.w_out();
    let (oy, ox) = (o / wo, o % wo);
    let (iy, ix) = (i / s.w, i % s.w);
    let ki = (iy + s.pad).checked_sub(oy * s.stride)?;
    let kj = (ix + s.pad).checked_sub(ox * s.stride)?;
    (ki < s.kh && kj < s.kw).then_some(ki * s.kw + kj)
}

/// The (output, input) → tap table of one plane pair, `-1` where no tap connects them.
fn taps(s: &Conv2dShape) -> Vec<i32> {
    let (p, hw) = (s.h_out() * s.w_out(), s.h * s.w);
    (0..p * hw).map(|oi| tap(s, oi / hw, oi % hw).map_or(-1, |t| t as i32)).collect()
}

/// `Wd` from `w`, rows `k·P + o`, columns `c·HW + i`.
fn assemble(s: &Conv2dShape, table: &[i32], w: &[f32], wd: &mut [f32]) {
    let (p, hw, kk) = (s.h_out() * s.w_out(), s.h * s.w, s.kh * s.kw);
    let cols = s.c_in * hw;
    wd.par_chunks_mut(p * cols).enumerate().for_each(|(k, rows)| {
        for (o, row) in rows.chunks_exact_mut(cols).enumerate() {
            let t_o = &table[o * hw..][..hw];
            for (c, seg) in row.chunks_exact_mut(hw).enumerate() {
                let wf = &w[(k * s.c_in + c) * kk..][..kk];
                for (v, &t) in seg.iter_mut().zip(t_o) {
                    *v = if t >= 0 { wf[t as usize] } else { 0.0 };
                }
            }
        }
    });
}

/// `dw[k][c][t] = Σ dWd` over the (output, input) pairs tap `t` connects.
fn fold(s: &Conv2dShape, table: &[i32], dwd: &[f32], dw: &mut [f32]) {
    let (p, hw, kk) = (s.h_out() * s.w_out(), s.h * s.w, s.kh * s.kw);
    let cols = s.c_in * hw;
    dw.par_chunks_mut(s.c_in * kk).enumerate().for_each(|(k, dwk)| {
        dwk.fill(0.0);
        for o in 0..p {
            let row = &dwd[(k * p + o) * cols..][..cols];
            let t_o = &table[o * hw..][..hw];
            for (c, df) in dwk.chunks_exact_mut(kk).enumerate() {
                for (&g, &t) in row[c * hw..][..hw].iter().zip(t_o) {
                    if t >= 0 {
                        df[t as usize] += g;
                    }
                }
            }
        }
    });
}

fn check_applies(s: &Conv2dShape) {
    assert!(applies(s), "dense conv: {s:?} does not take the dense lowering");
}

/// Forward, as [`super::conv::conv2d_forward`].
pub fn forward(s: &Conv2dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], ws: &mut Vec<f32>) {
    check_applies(s);
    check_lengths(s, x, w, y, bias.map(|b| b.len()));
    let (rows, cols) = (s.c_out * s.h_out() * s.w_out(), s.c_in * s.h * s.w);
    let table = taps(s);
    grow(ws, rows * cols);
    let wd = &mut ws[..rows * cols];
    assemble(s, &table, w, wd);
    sgemm(false, true, s.n, rows, cols, 1.0, x, cols, wd, cols, 0.0, y, rows);
    if let Some(bias) = bias {
        add_bias(y, s.h_out() * s.w_out(), bias);
    }
}

/// Backward, as [`super::conv::conv2d_backward`].
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    ws: &mut Vec<f32>,
) {
    check_applies(s);
    check_grad_lengths(s, x, w, dy, dx.as_deref(), dw, db.as_ref().map(|b| b.len()));
    let p = s.h_out() * s.w_out();
    let (rows, cols) = (s.c_out * p, s.c_in * s.h * s.w);
    if let Some(db) = db {
        bias_grad(dy, s.n, s.c_out, p, db);
    }
    let table = taps(s);
    grow(ws, 2 * rows * cols);
    let (wd, dwd) = ws[..2 * rows * cols].split_at_mut(rows * cols);
    sgemm(true, false, rows, cols, s.n, 1.0, dy, rows, x, cols, 0.0, dwd, cols);
    fold(s, &table, dwd, dw);
    if let Some(dx) = dx {
        assemble(s, &table, w, wd);
        sgemm(false, false, s.n, cols, rows, 1.0, dy, rows, wd, cols, 0.0, dx, cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::conv::{conv2d_backward_chunked, conv2d_forward_chunked, DEFAULT_WS_LIMIT};
    use crate::backend::cpu::testutil::*;

    #[allow(clippy::too_many_arguments)]
    fn shape(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Conv2dShape {
        Conv2dShape { n, c_in, h, w, c_out, kh: k, kw: k, stride, pad }
    }

    /// Against the im2col path (itself checked against finite differences of a direct f64 loop).
    fn check_against_im2col(s: Conv2dShape, with_bias: bool, seed: u64) {
        assert!(applies(&s), "{s:?}");
        let mut rng = rng(seed);
        let x = randv(&mut rng, s.n * s.c_in * s.h * s.w);
        let w = randv(&mut rng, s.c_out * s.c_in * s.kh * s.kw);
        let r = randv(&mut rng, s.out_len());
        let bias = with_bias.then(|| randv(&mut rng, s.c_out));
        let mut ws = vec![f32::NAN; 5];
        let (mut y, mut y_ref) = (vec![f32::NAN; s.out_len()], vec![f32::NAN; s.out_len()]);
        forward(&s, &x, &w, bias.as_deref(), &mut y, &mut ws);
        conv2d_forward_chunked(&s, &x, &w, bias.as_deref(), &mut y_ref, &mut Vec::new(), DEFAULT_WS_LIMIT);
        assert_close(&format!("dense fwd {s:?}"), &y, &to64(&y_ref), 1e-5, 1e-4);
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; s.c_out]);
        let (mut dx_r, mut dw_r, mut db_r) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; s.c_out]);
        backward(&s, &x, &w, &r, Some(&mut dx), &mut dw, with_bias.then_some(&mut db[..]), &mut ws);
        conv2d_backward_chunked(
            &s,
            &x,
            &w,
            &r,
            Some(&mut dx_r),
            &mut dw_r,
            with_bias.then_some(&mut db_r[..]),
            &mut Vec::new(),
            DEFAULT_WS_LIMIT,
        );
        assert_close(&format!("dense dx {s:?}"), &dx, &to64(&dx_r), 1e-5, 1e-4);
        assert_close(&format!("dense dw {s:?}"), &dw, &to64(&dw_r), 1e-5, 1e-4);
        if with_bias {
            assert_close(&format!("dense db {s:?}"), &db, &to64(&db_r), 1e-5, 1e-4);
        }
    }

    #[test]
    fn matches_im2col_on_small_planes() {
        // 3×3 pad 1 on 2×2 and 1×1 planes (ResNet-152 layers 3–4, VGG's last stage on 32×32).
        check_against_im2col(shape(3, 8, 2, 2, 6, 3, 1, 1), true, 1);
        check_against_im2col(shape(4, 5, 1, 1, 7, 3, 1, 1), false, 2);
        // Stride 2 from 2×2 to 1×1 (the downsampling 3×3 of ResNet-152's last stage).
        check_against_im2col(shape(5, 6, 2, 2, 4, 3, 2, 1), true, 3);
        // Non-square 2×1 and 1×3 planes.
        check_against_im2col(shape(2, 3, 2, 1, 4, 3, 1, 1), false, 4);
        check_against_im2col(shape(2, 3, 1, 3, 4, 3, 1, 1), true, 5);
        // Large enough for the parallel assembly and split GEMMs.
        check_against_im2col(shape(16, 64, 2, 2, 96, 3, 1, 1), false, 6);
    }

    #[test]
    fn tap_table_and_selection() {
        // 2×2 plane, 3×3 pad 1: output (0,0) sees inputs (0,0),(0,1),(1,0),(1,1) through taps
        // (1,1),(1,2),(2,1),(2,2).
        let s = shape(1, 1, 2, 2, 1, 3, 1, 1);
        assert_eq!(&taps(&s)[..4], &[4, 5, 7, 8]);
        assert!(applies(&s));
        assert!(applies(&shape(1, 1, 1, 1, 1, 3, 1, 1)));
        assert!(!applies(&shape(1, 1, 3, 3, 1, 3, 1, 1)), "3×3 plane: no saving");
        assert!(!applies(&shape(1, 4, 1, 1, 4, 1, 1, 0)), "pointwise");
        assert!(!applies(&shape(1, 4096, 2, 2, 4096, 3, 1, 1)), "matrix too large");
    }
}
