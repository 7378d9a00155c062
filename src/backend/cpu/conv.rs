//! 2-D convolution (cross-correlation, PyTorch `Conv2d` semantics) lowered to GEMM.
//!
//! Forward: im2col over a chunk of `b` images gives `cols [c_in·kh·kw, b·ho·wo]`, one GEMM
//! `W [c_out, K] · cols` gives `[c_out, b·ho·wo]`, and a parallel permute writes NCHW. Batching the
//! images into one GEMM keeps its `n` dimension wide when the planes are tiny (8×8 … 1×1 late in
//! ResNet/VGG on 32×32 inputs). Backward mirrors it: `dY' = dY` permuted to `[c_out, b·ho·wo]`,
//! `dW = dY'·colsᵀ` (accumulated over chunks), `dcols = Wᵀ·dY'`, col2im. 1×1 stride-1 unpadded
//! convolutions skip im2col: their cols are the input itself, up to the permute.
use super::for_each_piece;
use super::gemm::sgemm;
use rayon::prelude::*;

/// Shape of a 2-D convolution: input `[n, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// symmetric zero padding `pad`, equal stride on both axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2dShape {
    /// Output height `(h + 2·pad − kh) / stride + 1` (0 when the kernel does not fit).
    pub fn h_out(&self) -> usize {
        out_size(self.h, self.kh, self.stride, self.pad)
    }
    /// Output width `(w + 2·pad − kw) / stride + 1` (0 when the kernel does not fit).
    pub fn w_out(&self) -> usize {
        out_size(self.w, self.kw, self.stride, self.pad)
    }
    /// Elements of the output, `n·c_out·h_out·w_out`.
    pub fn out_len(&self) -> usize {
        self.n * self.c_out * self.h_out() * self.w_out()
    }
    fn in_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }
    /// Rows of the im2col matrix, `c_in·kh·kw`.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
}

fn out_size(len: usize, k: usize, stride: usize, pad: usize) -> usize {
    let padded = len + 2 * pad;
    if padded < k || stride == 0 {
        0
    } else {
        (padded - k) / stride + 1
    }
}

/// Workspace cap in floats (256 MB) on a chunk of images.
pub(crate) const DEFAULT_WS_LIMIT: usize = 64 << 20;

/// Images per GEMM so that cols and the permuted output of a chunk fit in `ws_limit` floats.
/// GEMM columns (`images · ho·wo`) a chunk is batched up to. Each batch part (one per thread)
/// runs single-threaded GEMMs; on 2 cores 16384 columns lifted the 64-channel 32×32 backward from
/// about 74 to 103 GFLOP/s against 4096 and one image per GEMM was 2–8× slower at 4×4 … 1×1.
const COLS_TARGET: usize = 16384;

/// Images per GEMM: enough for [`COLS_TARGET`] columns, capped so that cols and the permuted
/// output of a chunk fit in `ws_limit` floats.
fn images_per_chunk(s: &Conv2dShape, ws_limit: usize) -> usize {
    let p = s.h_out() * s.w_out();
    let per_image = (s.k() + s.c_out) * p;
    (ws_limit / per_image.max(1))
        .min(COLS_TARGET.div_ceil(p.max(1)))
        .clamp(1, s.n.max(1))
}

pub(crate) fn grow(ws: &mut Vec<f32>, len: usize) {
    if ws.len() < len {
        ws.resize(len, 0.0);
    }
}

/// Output positions `[lo, hi)` along one axis whose input index `o·stride + off − pad` lies in
/// `[0, in_len)`.
#[inline]
fn valid_range(out_len: usize, in_len: usize, stride: usize, off: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > off { (pad - off).div_ceil(stride) } else { 0 };
    let hi = if in_len + pad > off {
        ((in_len - 1 + pad - off) / stride + 1).min(out_len)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Fills `cols [K, b·P]` from the `b` images of `x` (P = ho·wo); row `(ci, ki, kj)`, column
/// `(image, oy, ox)`.
fn im2col(s: &Conv2dShape, b: usize, x: &[f32], cols: &mut [f32]) {
    let (ho, wo) = (s.h_out(), s.w_out());
    let p = ho * wo;
    let (h, w, st, pad) = (s.h, s.w, s.stride, s.pad);
    let hw = h * w;
    for_each_piece(cols, b * p, cols.len(), |r, row| {
        let ci = r / (s.kh * s.kw);
        let ki = (r / s.kw) % s.kh;
        let kj = r % s.kw;
        let (ylo, yhi) = valid_range(ho, h, st, ki, pad);
        let (xlo, xhi) = valid_range(wo, w, st, kj, pad);
        for (img, out) in row.chunks_exact_mut(p).enumerate() {
            let plane = &x[(img * s.c_in + ci) * hw..][..hw];
            out[..ylo * wo].fill(0.0);
            out[yhi * wo..].fill(0.0);
            for oy in ylo..yhi {
                let irow = &plane[(oy * st + ki - pad) * w..][..w];
                let orow = &mut out[oy * wo..][..wo];
                orow[..xlo].fill(0.0);
                orow[xhi..].fill(0.0);
                if st == 1 && xlo < xhi {
                    orow[xlo..xhi].copy_from_slice(&irow[xlo + kj - pad..xhi + kj - pad]);
                } else if st > 1 {
                    for ox in xlo..xhi {
                        orow[ox] = irow[ox * st + kj - pad];
                    }
                }
            }
        }
    });
}

/// Adjoint of [`im2col`]: writes (not accumulates) `dx` for the `b` images from `dcols [K, b·P]`.
fn col2im(s: &Conv2dShape, b: usize, dcols: &[f32], dx: &mut [f32]) {
    let (ho, wo) = (s.h_out(), s.w_out());
    let p = ho * wo;
    let cn = b * p;
    let (h, w, st, pad) = (s.h, s.w, s.stride, s.pad);
    for_each_piece(dx, h * w, dcols.len(), |plane_idx, plane| {
        let (img, ci) = (plane_idx / s.c_in, plane_idx % s.c_in);
        plane.fill(0.0);
        for ki in 0..s.kh {
            let (ylo, yhi) = valid_range(ho, h, st, ki, pad);
            for kj in 0..s.kw {
                let (xlo, xhi) = valid_range(wo, w, st, kj, pad);
                let r = (ci * s.kh + ki) * s.kw + kj;
                let row = &dcols[r * cn + img * p..][..p];
                for oy in ylo..yhi {
                    let drow = &row[oy * wo..][..wo];
                    let prow = &mut plane[(oy * st + ki - pad) * w..][..w];
                    if st == 1 && xlo < xhi {
                        let dst = &mut prow[xlo + kj - pad..xhi + kj - pad];
                        for (d, &g) in dst.iter_mut().zip(&drow[xlo..xhi]) {
                            *d += g;
                        }
                    } else if st > 1 {
                        for ox in xlo..xhi {
                            prow[ox * st + kj - pad] += drow[ox];
                        }
                    }
                }
            }
        }
    });
}

/// `[b, c, P]` (NCHW) to `[c, b·P]`.
fn nchw_to_cnp(src: &[f32], b: usize, c: usize, p: usize, dst: &mut [f32]) {
    for_each_piece(dst, b * p, dst.len(), |ch, row| {
        for (img, out) in row.chunks_exact_mut(p).enumerate() {
            out.copy_from_slice(&src[(img * c + ch) * p..][..p]);
        }
    });
}

/// `[c, b·P]` to `[b, c, P]` (NCHW), adding `bias[c]` when given.
fn cnp_to_nchw(src: &[f32], b: usize, c: usize, p: usize, bias: Option<&[f32]>, dst: &mut [f32]) {
    let cn = b * p;
    for_each_piece(dst, c * p, dst.len(), |img, out| {
        for (ch, plane) in out.chunks_exact_mut(p).enumerate() {
            let row = &src[ch * cn + img * p..][..p];
            match bias {
                Some(bias) => {
                    let bv = bias[ch];
                    for (o, &v) in plane.iter_mut().zip(row) {
                        *o = v + bv;
                    }
                }
                None => plane.copy_from_slice(row),
            }
        }
    });
}

/// `y[img][c] += bias[c]` over planes of `p` values.
pub(crate) fn add_bias(y: &mut [f32], p: usize, bias: &[f32]) {
    let c = bias.len();
    for_each_piece(y, p, y.len(), |plane_idx, plane| {
        let bv = bias[plane_idx % c];
        plane.iter_mut().for_each(|v| *v += bv);
    });
}

/// Checks the forward operands (and the bias or bias-gradient length) against the shape; every
/// convolution lowering calls it.
pub(crate) fn check_lengths(s: &Conv2dShape, x: &[f32], w: &[f32], y_or_dy: &[f32], bias_len: Option<usize>) {
    assert!(s.stride > 0, "conv2d: stride must be positive");
    assert_eq!(x.len(), s.in_len(), "conv2d: x length for {s:?}");
    assert_eq!(w.len(), s.weight_len(), "conv2d: weight length for {s:?}");
    assert_eq!(y_or_dy.len(), s.out_len(), "conv2d: output length for {s:?}");
    if let Some(l) = bias_len {
        assert_eq!(l, s.c_out, "conv2d: bias length for {s:?}");
    }
}

/// [`check_lengths`] for a backward pass, plus the weight and input gradients.
pub(crate) fn check_grad_lengths(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&[f32]>,
    dw: &[f32],
    db_len: Option<usize>,
) {
    check_lengths(s, x, w, dy, db_len);
    assert_eq!(dw.len(), s.weight_len(), "conv2d: dw length for {s:?}");
    if let Some(dx) = dx {
        assert_eq!(dx.len(), s.in_len(), "conv2d: dx length for {s:?}");
    }
}

/// How convolutions are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgo {
    /// Winograd F(4×4, 3×3) for the 3×3 stride-1 layers it covers ([`super::winograd::applies`]),
    /// one dense GEMM for planes smaller than the kernel ([`super::dense_conv::applies`]), and
    /// im2col + GEMM for every other layer.
    #[default]
    Auto,
    /// im2col + GEMM for every layer.
    Im2col,
}

impl std::fmt::Display for ConvAlgo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvAlgo::Auto => "auto",
            ConvAlgo::Im2col => "im2col",
        })
    }
}

/// The process-wide algorithm choice (0 = auto, 1 = im2col).
static ALGO: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets how every later convolution of this process is computed.
pub fn set_conv_algo(a: ConvAlgo) {
    ALGO.store(a as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The algorithm set by [`set_conv_algo`] (default [`ConvAlgo::Auto`]).
pub fn conv_algo() -> ConvAlgo {
    match ALGO.load(std::sync::atomic::Ordering::Relaxed) {
        1 => ConvAlgo::Im2col,
        _ => ConvAlgo::Auto,
    }
}

fn use_winograd(s: &Conv2dShape) -> bool {
    conv_algo() == ConvAlgo::Auto && super::winograd::applies(s)
}

fn use_dense(s: &Conv2dShape) -> bool {
    conv_algo() == ConvAlgo::Auto && super::dense_conv::applies(s)
}

/// Convolution forward: `y = conv(x, w) + bias`; weight `[c_out, c_in, kh, kw]`, `y [n, c_out, ho, wo]`.
/// `ws` is a reusable workspace, grown as needed. The algorithm follows [`set_conv_algo`].
pub fn conv2d_forward(s: &Conv2dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], ws: &mut Vec<f32>) {
    if use_winograd(s) {
        return super::winograd::forward(s, x, w, bias, y, ws);
    }
    if use_dense(s) {
        return super::dense_conv::forward(s, x, w, bias, y, ws);
    }
    let parts = batch_parts(s);
    if parts <= 1 {
        return conv2d_forward_chunked(s, x, w, bias, y, ws, DEFAULT_WS_LIMIT);
    }
    check_lengths(s, x, w, y, bias.map(|b| b.len()));
    let per = s.n.div_ceil(parts);
    let (img_in, img_out) = (s.c_in * s.h * s.w, s.c_out * s.h_out() * s.w_out());
    x.par_chunks(per * img_in).zip(y.par_chunks_mut(per * img_out)).for_each(|(xc, yc)| {
        let sub = Conv2dShape { n: xc.len() / img_in, ..*s };
        PART_WS.with(|ws| conv2d_forward_chunked(&sub, xc, w, bias, yc, &mut ws.borrow_mut(), DEFAULT_WS_LIMIT / parts));
    });
}

thread_local! {
    /// Workspace of a batch part running on a rayon worker.
    static PART_WS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Parts the batch is split into, one per thread: each part runs im2col and single-threaded GEMMs
/// on its own images. On 2 cores this beat one multi-threaded GEMM per chunk by 1.3–1.6× on the
/// 64-channel 32×32 layers (a GEMM of 64 rows splits poorly). 1 when called inside the pool.
fn batch_parts(s: &Conv2dShape) -> usize {
    let t = super::gemm::num_threads();
    if t <= 1 || s.n < 2 {
        1
    } else {
        t.min(s.n)
    }
}

/// [`conv2d_forward`] with the workspace cap (in floats) that sets the chunk of images per GEMM.
pub(crate) fn conv2d_forward_chunked(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    ws: &mut Vec<f32>,
    ws_limit: usize,
) {
    check_lengths(s, x, w, y, bias.map(|b| b.len()));
    let p = s.h_out() * s.w_out();
    if y.is_empty() {
        return;
    }
    let k = s.k();
    let nb = images_per_chunk(s, ws_limit);
    let (img_in, img_out) = (s.c_in * s.h * s.w, s.c_out * p);
    let mut start = 0;
    while start < s.n {
        let b = nb.min(s.n - start);
        let xc = &x[start * img_in..(start + b) * img_in];
        let yc = &mut y[start * img_out..(start + b) * img_out];
        let cn = b * p;
        if b == 1 {
            // A single image's product [c_out, P] already is its NCHW output.
            if s.pointwise() {
                sgemm(false, false, s.c_out, p, k, 1.0, w, k, xc, p, 0.0, yc, p);
            } else {
                grow(ws, k * p);
                im2col(s, 1, xc, &mut ws[..k * p]);
                sgemm(false, false, s.c_out, p, k, 1.0, w, k, &ws[..k * p], p, 0.0, yc, p);
            }
            if let Some(bias) = bias {
                add_bias(yc, p, bias);
            }
        } else {
            grow(ws, (k + s.c_out) * cn);
            let (cols, out) = ws[..(k + s.c_out) * cn].split_at_mut(k * cn);
            if s.pointwise() {
                nchw_to_cnp(xc, b, s.c_in, p, cols);
            } else {
                im2col(s, b, xc, cols);
            }
            sgemm(false, false, s.c_out, cn, k, 1.0, w, k, cols, cn, 0.0, out, cn);
            cnp_to_nchw(out, b, s.c_out, p, bias, yc);
        }
        start += b;
    }
}

/// Convolution backward. Writes `dw` (and `db`, `dx` when given) from `dy [n, c_out, ho, wo]`;
/// `x` and `w` are the forward inputs. `ws` is a reusable workspace, grown as needed.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    ws: &mut Vec<f32>,
) {
    if use_winograd(s) {
        return super::winograd::backward(s, x, w, dy, dx, dw, db, ws);
    }
    if use_dense(s) {
        return super::dense_conv::backward(s, x, w, dy, dx, dw, db, ws);
    }
    let parts = batch_parts(s);
    if parts <= 1 {
        return conv2d_backward_chunked(s, x, w, dy, dx, dw, db, ws, DEFAULT_WS_LIMIT);
    }
    check_lengths(s, x, w, dy, db.as_ref().map(|b| b.len()));
    let per = s.n.div_ceil(parts);
    let (img_in, img_out, wl) = (s.c_in * s.h * s.w, s.c_out * s.h_out() * s.w_out(), s.weight_len());
    let nparts = s.n.div_ceil(per);
    // Each part writes its own dW (and db) partial; the partials are summed afterwards.
    let mut pw = vec![0f32; nparts * wl];
    let mut pb = vec![0f32; if db.is_some() { nparts * s.c_out } else { 0 }];
    let mut jobs = Vec::with_capacity(nparts);
    let (mut xr, mut dyr, mut dxr) = (x, dy, dx);
    let (mut pwr, mut pbr) = (&mut pw[..], &mut pb[..]);
    for p in 0..nparts {
        let nb = per.min(s.n - p * per);
        let (xc, xt) = xr.split_at(nb * img_in);
        let (dyc, dyt) = dyr.split_at(nb * img_out);
        let dxc = match dxr.take() {
            Some(d) => {
                let (a, b) = d.split_at_mut(nb * img_in);
                dxr = Some(b);
                Some(a)
            }
            None => None,
        };
        let (pwc, pwt) = std::mem::take(&mut pwr).split_at_mut(wl);
        let blen = if pbr.is_empty() { 0 } else { s.c_out };
        let (pbc, pbt) = std::mem::take(&mut pbr).split_at_mut(blen);
        jobs.push((Conv2dShape { n: nb, ..*s }, xc, dyc, dxc, pwc, pbc));
        (xr, dyr, pwr, pbr) = (xt, dyt, pwt, pbt);
    }
    jobs.into_par_iter().for_each(|(sub, xc, dyc, dxc, pwc, pbc)| {
        let dbc = if pbc.is_empty() { None } else { Some(pbc) };
        PART_WS.with(|ws| {
            conv2d_backward_chunked(&sub, xc, w, dyc, dxc, pwc, dbc, &mut ws.borrow_mut(), DEFAULT_WS_LIMIT / parts)
        });
    });
    sum_partials(&pw, nparts, dw);
    if let Some(db) = db {
        sum_partials(&pb, nparts, db);
    }
}

/// out[i] = Σ_p partials[p·len + i], in part order (deterministic).
fn sum_partials(partials: &[f32], parts: usize, out: &mut [f32]) {
    let len = out.len();
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(ci, o)| {
        let base = ci << 14;
        for (j, v) in o.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for p in 0..parts {
                acc += partials[p * len + base + j];
            }
            *v = acc;
        }
    });
}

/// [`conv2d_backward`] with the workspace cap (in floats) that sets the chunk of images per GEMM.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward_chunked(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    ws: &mut Vec<f32>,
    ws_limit: usize,
) {
    check_grad_lengths(s, x, w, dy, dx.as_deref(), dw, db.as_ref().map(|b| b.len()));
    let p = s.h_out() * s.w_out();
    if let Some(db) = db {
        bias_grad(dy, s.n, s.c_out, p, db);
    }
    if dy.is_empty() {
        // No output positions: nothing reaches the weights or the input.
        dw.fill(0.0);
        if let Some(dx) = dx {
            dx.fill(0.0);
        }
        return;
    }
    let k = s.k();
    let nb = images_per_chunk(s, ws_limit);
    let (img_in, img_out) = (s.c_in * s.h * s.w, s.c_out * p);
    let mut beta = 0.0; // the first chunk overwrites dw, later ones accumulate
    let mut start = 0;
    while start < s.n {
        let b = nb.min(s.n - start);
        let xc = &x[start * img_in..(start + b) * img_in];
        let dyc = &dy[start * img_out..(start + b) * img_out];
        let dxc = dx.as_deref_mut().map(|d| &mut d[start * img_in..(start + b) * img_in]);
        let cn = b * p;
        if b == 1 {
            // A single image's dY is already [c_out, P].
            if s.pointwise() {
                sgemm(false, true, s.c_out, k, p, 1.0, dyc, p, xc, p, beta, dw, k);
                if let Some(dxc) = dxc {
                    sgemm(true, false, k, p, s.c_out, 1.0, w, k, dyc, p, 0.0, dxc, p);
                }
            } else {
                grow(ws, k * p);
                let cols = &mut ws[..k * p];
                im2col(s, 1, xc, cols);
                sgemm(false, true, s.c_out, k, p, 1.0, dyc, p, cols, p, beta, dw, k);
                if let Some(dxc) = dxc {
                    sgemm(true, false, k, p, s.c_out, 1.0, w, k, dyc, p, 0.0, cols, p);
                    col2im(s, 1, cols, dxc);
                }
            }
        } else {
            grow(ws, (k + s.c_out) * cn);
            let (cols, dyp) = ws[..(k + s.c_out) * cn].split_at_mut(k * cn);
            nchw_to_cnp(dyc, b, s.c_out, p, dyp);
            if s.pointwise() {
                nchw_to_cnp(xc, b, s.c_in, p, cols);
            } else {
                im2col(s, b, xc, cols);
            }
            sgemm(false, true, s.c_out, k, cn, 1.0, dyp, cn, cols, cn, beta, dw, k);
            if let Some(dxc) = dxc {
                // cols is dead after dW: reuse it for dcols.
                sgemm(true, false, k, cn, s.c_out, 1.0, w, k, dyp, cn, 0.0, cols, cn);
                if s.pointwise() {
                    cnp_to_nchw(cols, b, s.c_in, p, None, dxc);
                } else {
                    col2im(s, b, cols, dxc);
                }
            }
        }
        beta = 1.0;
        start += b;
    }
}

/// `db[c] = Σ_{n, p} dy[n, c, p]`.
pub(crate) fn bias_grad(dy: &[f32], n: usize, c: usize, p: usize, db: &mut [f32]) {
    let per_channel = |ch: usize| -> f32 {
        let mut acc = 0.0f64;
        for img in 0..n {
            acc += dy[(img * c + ch) * p..][..p].iter().sum::<f32>() as f64;
        }
        acc as f32
    };
    if dy.len() < super::PAR_MIN_ELEMS {
        db.iter_mut().enumerate().for_each(|(ch, d)| *d = per_channel(ch));
    } else {
        db.par_iter_mut().enumerate().for_each(|(ch, d)| *d = per_channel(ch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    /// Direct-loop f64 convolution.
    fn reference(s: &Conv2dShape, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let (ho, wo) = (s.h_out(), s.w_out());
        let mut y = vec![0.0; s.out_len()];
        for n in 0..s.n {
            for co in 0..s.c_out {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = bias.map_or(0.0, |b| b[co]);
                        for ci in 0..s.c_in {
                            for ki in 0..s.kh {
                                for kj in 0..s.kw {
                                    let iy = (oy * s.stride + ki) as isize - s.pad as isize;
                                    let ix = (ox * s.stride + kj) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * s.c_in + ci) * s.h + iy as usize) * s.w + ix as usize];
                                    acc += xv * w[((co * s.c_in + ci) * s.kh + ki) * s.kw + kj];
                                }
                            }
                        }
                        y[((n * s.c_out + co) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    fn shape(
        n: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Conv2dShape {
        Conv2dShape {
            n,
            c_in,
            h,
            w,
            c_out,
            kh: k,
            kw: k,
            stride,
            pad,
        }
    }

    /// Forward against the f64 reference and backward against central differences of it, at
    /// workspace cap `ws_limit`.
    fn check(s: Conv2dShape, with_bias: bool, ws_limit: usize, seed: u64) {
        let mut rng = rng(seed);
        let x = randv(&mut rng, s.in_len());
        let w = randv(&mut rng, s.weight_len());
        let bias = with_bias.then(|| randv(&mut rng, s.c_out));
        let mut y = vec![f32::NAN; s.out_len()];
        // A workspace with stale garbage must not leak into results.
        let mut ws = vec![f32::NAN; 7];
        conv2d_forward_chunked(&s, &x, &w, bias.as_deref(), &mut y, &mut ws, ws_limit);
        let (x64, w64) = (to64(&x), to64(&w));
        let b64 = bias.as_deref().map(to64);
        let want = reference(&s, &x64, &w64, b64.as_deref());
        assert_close(&format!("conv fwd {s:?}"), &y, &want, 1e-4, 1e-4);

        let r = randv(&mut rng, s.out_len());
        let r64 = to64(&r);
        let mut dx = vec![f32::NAN; s.in_len()];
        let mut dw = vec![f32::NAN; s.weight_len()];
        let mut db = vec![f32::NAN; s.c_out];
        conv2d_backward_chunked(
            &s,
            &x,
            &w,
            &r,
            Some(&mut dx),
            &mut dw,
            with_bias.then_some(&mut db[..]),
            &mut ws,
            ws_limit,
        );
        let ndx = numeric_grad(&x64, |xp| dot(&reference(&s, xp, &w64, b64.as_deref()), &r64));
        let ndw = numeric_grad(&w64, |wp| dot(&reference(&s, &x64, wp, b64.as_deref()), &r64));
        assert_close(&format!("conv dx {s:?}"), &dx, &ndx, 1e-3, 1e-3);
        assert_close(&format!("conv dw {s:?}"), &dw, &ndw, 1e-3, 1e-3);
        if let Some(b64) = &b64 {
            let ndb = numeric_grad(b64, |bp| dot(&reference(&s, &x64, &w64, Some(bp)), &r64));
            assert_close(&format!("conv db {s:?}"), &db, &ndb, 1e-3, 1e-3);
        }
        // Without dx the weight gradient is unchanged.
        let mut dw2 = vec![f32::NAN; s.weight_len()];
        conv2d_backward_chunked(&s, &x, &w, &r, None, &mut dw2, None, &mut ws, ws_limit);
        assert_close(&format!("conv dw (no dx) {s:?}"), &dw2, &to64(&dw), 1e-6, 1e-6);
    }

    #[test]
    fn conv_3x3_pad1_odd_sizes_with_and_without_bias() {
        check(shape(2, 3, 7, 6, 4, 3, 1, 1), true, DEFAULT_WS_LIMIT, 1);
        check(shape(3, 2, 5, 5, 3, 3, 1, 1), false, DEFAULT_WS_LIMIT, 2);
    }

    #[test]
    fn conv_stride2_and_unpadded() {
        check(shape(2, 3, 9, 8, 5, 3, 2, 1), true, DEFAULT_WS_LIMIT, 3);
        check(shape(2, 2, 6, 7, 3, 2, 2, 0), false, DEFAULT_WS_LIMIT, 4);
    }

    #[test]
    fn conv_7x7_stride2_pad3_stem() {
        check(shape(2, 3, 11, 10, 4, 7, 2, 3), false, DEFAULT_WS_LIMIT, 5);
        // Input smaller than the kernel: most taps fall in the padding.
        check(shape(2, 2, 2, 1, 3, 7, 2, 3), true, DEFAULT_WS_LIMIT, 15);
    }

    #[test]
    fn conv_pointwise_and_strided_1x1() {
        check(shape(3, 5, 4, 3, 6, 1, 1, 0), true, DEFAULT_WS_LIMIT, 6);
        check(shape(2, 4, 5, 5, 3, 1, 2, 0), false, DEFAULT_WS_LIMIT, 7);
        // 1×1 planes, as in the last ResNet stage on 32×32 inputs.
        check(shape(4, 6, 1, 1, 5, 1, 1, 0), false, DEFAULT_WS_LIMIT, 8);
        check(shape(3, 4, 1, 1, 5, 3, 1, 1), true, DEFAULT_WS_LIMIT, 9);
    }

    #[test]
    fn conv_chunked_batches_match() {
        // Cap of one image per chunk, then two images per chunk (last chunk smaller), for both
        // the im2col and the pointwise paths; dW accumulates over chunks.
        let s = shape(5, 3, 6, 5, 4, 3, 1, 1);
        let per_image = (s.k() + s.c_out) * s.h_out() * s.w_out();
        check(s, true, 1, 10);
        check(s, true, 2 * per_image, 11);
        let s = shape(5, 4, 3, 3, 3, 1, 1, 0);
        let per_image = (s.k() + s.c_out) * s.h_out() * s.w_out();
        check(s, false, 1, 12);
        check(s, false, 2 * per_image + 1, 13);
        let s = shape(3, 2, 7, 7, 3, 7, 2, 3);
        check(s, false, 1, 14);
    }

    /// Direct-loop f64 gradients of `Σ y·r` (the adjoint of [`reference`]), for shapes too large
    /// for finite differences.
    fn reference_grads(s: &Conv2dShape, x: &[f64], w: &[f64], r: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (ho, wo) = (s.h_out(), s.w_out());
        let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        for n in 0..s.n {
            for co in 0..s.c_out {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let g = r[((n * s.c_out + co) * ho + oy) * wo + ox];
                        for ci in 0..s.c_in {
                            for ki in 0..s.kh {
                                for kj in 0..s.kw {
                                    let iy = (oy * s.stride + ki) as isize - s.pad as isize;
                                    let ix = (ox * s.stride + kj) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                        continue;
                                    }
                                    let xi = ((n * s.c_in + ci) * s.h + iy as usize) * s.w + ix as usize;
                                    let wi = ((co * s.c_in + ci) * s.kh + ki) * s.kw + kj;
                                    dx[xi] += w[wi] * g;
                                    dw[wi] += x[xi] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw)
    }

    #[test]
    fn conv_parallel_sizes_match_direct_loops() {
        // Large enough for the rayon paths of im2col, col2im and the permutes.
        for (s, seed) in [
            (shape(4, 8, 12, 12, 16, 3, 1, 1), 20u64),
            (shape(6, 16, 6, 6, 24, 3, 2, 1), 21),
            (shape(32, 64, 4, 4, 72, 1, 1, 0), 22),
        ] {
            let mut rng = rng(seed);
            let x = randv(&mut rng, s.in_len());
            let w = randv(&mut rng, s.weight_len());
            let r = randv(&mut rng, s.out_len());
            let mut ws = Vec::new();
            let mut y = vec![f32::NAN; s.out_len()];
            conv2d_forward(&s, &x, &w, None, &mut y, &mut ws);
            let (x64, w64, r64) = (to64(&x), to64(&w), to64(&r));
            assert_close(
                &format!("conv fwd {s:?}"),
                &y,
                &reference(&s, &x64, &w64, None),
                1e-4,
                1e-4,
            );
            let (mut dx, mut dw, mut db) = (
                vec![f32::NAN; x.len()],
                vec![f32::NAN; w.len()],
                vec![f32::NAN; s.c_out],
            );
            conv2d_backward(&s, &x, &w, &r, Some(&mut dx), &mut dw, Some(&mut db), &mut ws);
            let (ndx, ndw) = reference_grads(&s, &x64, &w64, &r64);
            assert_close(&format!("conv dx {s:?}"), &dx, &ndx, 1e-4, 1e-4);
            assert_close(&format!("conv dw {s:?}"), &dw, &ndw, 1e-4, 1e-4);
            let p = s.h_out() * s.w_out();
            let ndb: Vec<f64> = (0..s.c_out)
                .map(|co| {
                    (0..s.n)
                        .map(|n| r64[(n * s.c_out + co) * p..][..p].iter().sum::<f64>())
                        .sum()
                })
                .collect();
            assert_close(&format!("conv db {s:?}"), &db, &ndb, 1e-4, 1e-4);
        }
    }

    #[test]
    fn conv_shapes() {
        let s = shape(2, 3, 32, 32, 64, 7, 2, 3);
        assert_eq!((s.h_out(), s.w_out(), s.out_len()), (16, 16, 2 * 64 * 256));
        let s = shape(1, 1, 2, 2, 1, 3, 1, 0);
        assert_eq!(s.out_len(), 0);
        assert_eq!(valid_range(4, 4, 1, 0, 1), (1, 4));
        assert_eq!(valid_range(4, 4, 1, 2, 1), (0, 3));
        assert_eq!(valid_range(3, 5, 2, 0, 3), (2, 3));
    }
}
