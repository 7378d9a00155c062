//! Max pooling (window `k`, stride, −∞ padding, floor mode) and adaptive average pooling with
//! PyTorch's window rule, over (n, c) planes.
use super::{min_pieces, PAR_MIN_ELEMS};
use rayon::prelude::*;

/// Shape of a max pooling: input `[n, c, h, w]`, square window `k`, equal stride, padding `pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pool2dShape {
    /// Output height `(h + 2·pad − k) / stride + 1` (0 when the window does not fit).
    pub fn h_out(&self) -> usize {
        out_size(self.h, self.k, self.stride, self.pad)
    }
    /// Output width `(w + 2·pad − k) / stride + 1` (0 when the window does not fit).
    pub fn w_out(&self) -> usize {
        out_size(self.w, self.k, self.stride, self.pad)
    }
    /// Elements of the output, `n·c·h_out·w_out`.
    pub fn out_len(&self) -> usize {
        self.n * self.c * self.h_out() * self.w_out()
    }
}

fn out_size(len: usize, k: usize, stride: usize, pad: usize) -> usize {
    if len + 2 * pad < k || stride == 0 {
        0
    } else {
        (len + 2 * pad - k) / stride + 1
    }
}

/// Runs `f(plane, a_piece, b_piece)` over two slices cut into planes of `ca` and `cb` elements.
fn for_each_plane2<A: Send, B: Send, F>(a: &mut [A], ca: usize, b: &mut [B], cb: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [A], &mut [B]) + Sync + Send,
{
    if ca == 0 || cb == 0 {
        return;
    }
    if work < PAR_MIN_ELEMS {
        a.chunks_mut(ca)
            .zip(b.chunks_mut(cb))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    } else {
        a.par_chunks_mut(ca)
            .zip(b.par_chunks_mut(cb))
            .with_min_len(min_pieces(ca + cb))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// Input range `[start, end)` of output position `o` (clipped to the input).
#[inline]
fn window(o: usize, k: usize, stride: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = (o * stride).saturating_sub(pad);
    let end = (o * stride + k).saturating_sub(pad).min(len);
    (start, end)
}

/// Max pooling forward. Padding is −∞ (never selected); `argmax` gets the flat index within the
/// (n, c) input plane of each maximum (the first one on ties; a NaN wins, as in PyTorch).
pub fn maxpool2d_forward(s: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    assert!(s.stride > 0, "maxpool2d: stride must be positive");
    assert_eq!(x.len(), s.n * s.c * s.h * s.w, "maxpool2d: x length for {s:?}");
    assert!(
        y.len() == s.out_len() && argmax.len() == y.len(),
        "maxpool2d: y/argmax length for {s:?}"
    );
    assert!(
        s.h * s.w <= u32::MAX as usize,
        "maxpool2d: plane too large for u32 indices"
    );
    let (ho, wo, hw) = (s.h_out(), s.w_out(), s.h * s.w);
    for_each_plane2(y, ho * wo, argmax, ho * wo, x.len(), |plane, yp, ap| {
        let xp = &x[plane * hw..][..hw];
        for oy in 0..ho {
            let (y0, y1) = window(oy, s.k, s.stride, s.pad, s.h);
            for ox in 0..wo {
                let (x0, x1) = window(ox, s.k, s.stride, s.pad, s.w);
                let mut best = f32::NEG_INFINITY;
                let mut idx = y0 * s.w + x0;
                for iy in y0..y1 {
                    let row = &xp[iy * s.w + x0..iy * s.w + x1];
                    for (j, &v) in row.iter().enumerate() {
                        // PyTorch's rule: a larger value or a NaN takes the slot.
                        if v > best || v.is_nan() {
                            best = v;
                            idx = iy * s.w + x0 + j;
                        }
                    }
                }
                yp[oy * wo + ox] = best;
                ap[oy * wo + ox] = idx as u32;
            }
        }
    });
}

/// Max pooling backward: each `dy` goes to its argmax position; `dx` is overwritten.
pub fn maxpool2d_backward(s: &Pool2dShape, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    assert_eq!(dx.len(), s.n * s.c * s.h * s.w, "maxpool2d: dx length for {s:?}");
    assert!(
        dy.len() == s.out_len() && argmax.len() == dy.len(),
        "maxpool2d: dy/argmax length for {s:?}"
    );
    let (op, hw) = (s.h_out() * s.w_out(), s.h * s.w);
    super::for_each_piece(dx, hw, dx.len() + dy.len(), |plane, dxp| {
        dxp.fill(0.0);
        if op == 0 {
            return;
        }
        let (g, a) = (&dy[plane * op..][..op], &argmax[plane * op..][..op]);
        for (&gv, &i) in g.iter().zip(a) {
            dxp[i as usize] += gv;
        }
    });
}

/// PyTorch's adaptive window along one axis: `[⌊i·len/out⌋, ⌈(i+1)·len/out⌉)`.
#[inline]
fn adaptive_window(i: usize, len: usize, out: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

#[allow(clippy::too_many_arguments)]
fn check_adaptive(n: usize, c: usize, h: usize, w: usize, oh: usize, ow: usize, x_len: usize, y_len: usize) {
    assert_eq!(
        x_len,
        n * c * h * w,
        "adaptive_avgpool2d: input length for n={n} c={c} h={h} w={w}"
    );
    assert_eq!(
        y_len,
        n * c * oh * ow,
        "adaptive_avgpool2d: output length for {oh}x{ow}"
    );
}

/// Adaptive average pooling to `oh × ow` (global pooling is `1 × 1`; an output larger than the
/// input replicates, e.g. 1×1 → 7×7).
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avgpool2d_forward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    x: &[f32],
    y: &mut [f32],
) {
    check_adaptive(n, c, h, w, oh, ow, x.len(), y.len());
    if h == 0 || w == 0 {
        y.fill(0.0);
        return;
    }
    let hw = h * w;
    super::for_each_piece(y, oh * ow, x.len() + y.len(), |plane, yp| {
        let xp = &x[plane * hw..][..hw];
        for i in 0..oh {
            let (y0, y1) = adaptive_window(i, h, oh);
            for j in 0..ow {
                let (x0, x1) = adaptive_window(j, w, ow);
                let mut acc = 0.0f32;
                for iy in y0..y1 {
                    acc += xp[iy * w + x0..iy * w + x1].iter().sum::<f32>();
                }
                yp[i * ow + j] = acc / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
    });
}

/// Adaptive average pooling backward: each `dy` spread evenly over its window; `dx` is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avgpool2d_backward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    dy: &[f32],
    dx: &mut [f32],
) {
    check_adaptive(n, c, h, w, oh, ow, dx.len(), dy.len());
    let op = oh * ow;
    super::for_each_piece(dx, h * w, dx.len() + dy.len(), |plane, dxp| {
        dxp.fill(0.0);
        if op == 0 {
            return;
        }
        let g = &dy[plane * op..][..op];
        for i in 0..oh {
            let (y0, y1) = adaptive_window(i, h, oh);
            for j in 0..ow {
                let (x0, x1) = adaptive_window(j, w, ow);
                let share = g[i * ow + j] / ((y1 - y0) * (x1 - x0)) as f32;
                for iy in y0..y1 {
                    dxp[iy * w + x0..iy * w + x1].iter_mut().for_each(|d| *d += share);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    /// Direct f64 max pooling over the padded window, padding −∞.
    fn max_reference(s: &Pool2dShape, x: &[f64]) -> Vec<f64> {
        let (ho, wo) = (s.h_out(), s.w_out());
        let mut y = vec![0.0; s.out_len()];
        for p in 0..s.n * s.c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut m = f64::NEG_INFINITY;
                    for ki in 0..s.k {
                        for kj in 0..s.k {
                            let iy = (oy * s.stride + ki) as isize - s.pad as isize;
                            let ix = (ox * s.stride + kj) as isize - s.pad as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w {
                                m = m.max(x[p * s.h * s.w + iy as usize * s.w + ix as usize]);
                            }
                        }
                    }
                    y[(p * ho + oy) * wo + ox] = m;
                }
            }
        }
        y
    }

    fn check_max(s: Pool2dShape, seed: u64) {
        let mut rng = rng(seed);
        let x = randv(&mut rng, s.n * s.c * s.h * s.w);
        let x64 = to64(&x);
        let (mut y, mut am) = (vec![f32::NAN; s.out_len()], vec![u32::MAX; s.out_len()]);
        maxpool2d_forward(&s, &x, &mut y, &mut am);
        assert_close(&format!("maxpool fwd {s:?}"), &y, &max_reference(&s, &x64), 0.0, 0.0);
        let hw = s.h * s.w;
        for (i, (&a, &v)) in am.iter().zip(&y).enumerate() {
            let plane = i / (s.h_out() * s.w_out());
            assert_eq!(
                x[plane * hw + a as usize],
                v,
                "argmax {i} does not point at the maximum"
            );
        }
        let r = randv(&mut rng, s.out_len());
        let r64 = to64(&r);
        let mut dx = vec![f32::NAN; x.len()];
        maxpool2d_backward(&s, &r, &am, &mut dx);
        let nd = numeric_grad(&x64, |xp| dot(&max_reference(&s, xp), &r64));
        assert_close(&format!("maxpool bwd {s:?}"), &dx, &nd, 1e-6, 1e-6);
    }

    #[test]
    fn maxpool_forward_backward() {
        // ResNet stem pooling (3, 2, 1) on odd and even sizes, and VGG's (2, 2, 0).
        check_max(
            Pool2dShape {
                n: 2,
                c: 3,
                h: 7,
                w: 6,
                k: 3,
                stride: 2,
                pad: 1,
            },
            1,
        );
        check_max(
            Pool2dShape {
                n: 2,
                c: 2,
                h: 8,
                w: 8,
                k: 3,
                stride: 2,
                pad: 1,
            },
            2,
        );
        check_max(
            Pool2dShape {
                n: 3,
                c: 2,
                h: 5,
                w: 4,
                k: 2,
                stride: 2,
                pad: 0,
            },
            3,
        );
        check_max(
            Pool2dShape {
                n: 2,
                c: 2,
                h: 2,
                w: 2,
                k: 3,
                stride: 2,
                pad: 1,
            },
            4,
        );
        // Overlapping windows with stride 1: one input feeds several outputs.
        check_max(
            Pool2dShape {
                n: 2,
                c: 2,
                h: 5,
                w: 5,
                k: 3,
                stride: 1,
                pad: 1,
            },
            5,
        );
    }

    #[test]
    fn maxpool_ties_and_nan_by_hand() {
        // Ties keep the first maximum; a NaN takes the slot (PyTorch).
        let s = Pool2dShape {
            n: 1,
            c: 1,
            h: 2,
            w: 4,
            k: 2,
            stride: 2,
            pad: 0,
        };
        let x = [1.0f32, 3.0, f32::NAN, 0.0, 3.0, 2.0, 5.0, 1.0];
        let (mut y, mut am) = ([0.0f32; 2], [0u32; 2]);
        maxpool2d_forward(&s, &x, &mut y, &mut am);
        assert_eq!(y[0], 3.0);
        assert_eq!(am[0], 1);
        assert!(y[1].is_nan());
        assert_eq!(am[1], 2);
        let mut dx = [9.0f32; 8];
        maxpool2d_backward(&s, &[1.0, 2.0], &am, &mut dx);
        assert_eq!(dx, [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn maxpool_shapes() {
        let s = Pool2dShape {
            n: 1,
            c: 1,
            h: 16,
            w: 16,
            k: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!((s.h_out(), s.w_out()), (8, 8));
        let s = Pool2dShape {
            n: 2,
            c: 3,
            h: 1,
            w: 1,
            k: 2,
            stride: 2,
            pad: 0,
        };
        assert_eq!(s.out_len(), 0);
    }

    fn avg_reference(n: usize, c: usize, h: usize, w: usize, oh: usize, ow: usize, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; n * c * oh * ow];
        for p in 0..n * c {
            for i in 0..oh {
                // Written from the definition: floor(i·h/oh), ceil((i+1)·h/oh).
                let y0 = ((i * h) as f64 / oh as f64).floor() as usize;
                let y1 = (((i + 1) * h) as f64 / oh as f64).ceil() as usize;
                for j in 0..ow {
                    let x0 = ((j * w) as f64 / ow as f64).floor() as usize;
                    let x1 = (((j + 1) * w) as f64 / ow as f64).ceil() as usize;
                    let mut acc = 0.0;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            acc += x[p * h * w + iy * w + ix];
                        }
                    }
                    y[(p * oh + i) * ow + j] = acc / ((y1 - y0) * (x1 - x0)) as f64;
                }
            }
        }
        y
    }

    fn check_avg(n: usize, c: usize, h: usize, w: usize, oh: usize, ow: usize, seed: u64) {
        let mut rng = rng(seed);
        let x = randv(&mut rng, n * c * h * w);
        let x64 = to64(&x);
        let mut y = vec![f32::NAN; n * c * oh * ow];
        adaptive_avgpool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
        let what = format!("adaptive avgpool {h}x{w}->{oh}x{ow}");
        assert_close(&what, &y, &avg_reference(n, c, h, w, oh, ow, &x64), 1e-5, 1e-5);
        let r = randv(&mut rng, y.len());
        let r64 = to64(&r);
        let mut dx = vec![f32::NAN; x.len()];
        adaptive_avgpool2d_backward(n, c, h, w, oh, ow, &r, &mut dx);
        let nd = numeric_grad(&x64, |xp| dot(&avg_reference(n, c, h, w, oh, ow, xp), &r64));
        assert_close(&format!("{what} bwd"), &dx, &nd, 1e-5, 1e-5);
    }

    #[test]
    fn adaptive_avgpool_forward_backward() {
        check_avg(2, 3, 3, 3, 2, 2, 1); // overlapping windows
        check_avg(2, 2, 1, 1, 7, 7, 2); // replicate 1×1 → 7×7
        check_avg(2, 3, 5, 4, 1, 1, 3); // global
        check_avg(2, 2, 2, 3, 7, 7, 4); // smaller than 7×7 on both axes
        check_avg(2, 2, 9, 8, 7, 7, 5);
    }

    #[test]
    fn adaptive_avgpool_by_hand() {
        // 3×3 → 2×2: windows rows/cols [0,2) and [1,3).
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut y = [0.0f32; 4];
        adaptive_avgpool2d_forward(1, 1, 3, 3, 2, 2, &x, &mut y);
        assert_eq!(y, [3.0, 4.0, 6.0, 7.0]);
    }
}
