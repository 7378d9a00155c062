//! Winograd F(4×4, 3×3) convolution for 3×3 stride-1 layers (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016), forward and both backward passes.
//!
//! A 6×6 input tile `d` and a 3×3 filter `g` give a 4×4 output tile `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`.
//! Summed over input channels, the element-wise product becomes 36 independent GEMMs, one per
//! position ξ of the 6×6 transformed tile: `M[ξ] = U[ξ] · V[ξ]` with `U[ξ]` the transformed filters
//! `[c_out, c_in]` and `V[ξ]` the transformed input tiles `[c_in, tiles]`. That is 36 multiplies per
//! 16 outputs instead of 144: 4× fewer than im2col + GEMM.
//!
//! The backward passes are the exact adjoints of that forward: `dM[ξ] = A·dY·Aᵀ` per output tile,
//! `dU[ξ] = dM[ξ]·V[ξ]ᵀ` then `dW = Gᵀ·dU·G`, and `dV[ξ] = U[ξ]ᵀ·dM[ξ]` then `dX = B·dV·Bᵀ`
//! scatter-added over the overlapping input tiles. In exact arithmetic all three equal the direct
//! convolution's; in f32 the transforms' constants (up to 8 in A, 5 in B) cost a few bits, which
//! the tests bound against an f64 direct reference.
//!
//! Layouts are chosen so that every parallel loop writes one contiguous block: the padded input is
//! channel-major `[c_in][images][hp][wp]`, `V` is `[c_in][ξ][tiles]` (written per channel, read by
//! the GEMMs with leading dimension 36·tiles), `U` is `[c_out][ξ][c_in]`, the GEMM outputs `M`,
//! `dU` and `dV` are ξ-major. Transforms work on 8 tiles (or 8 channels) at once in `[f32; 8]`
//! lanes, which the compiler vectorises.
use super::conv::{bias_grad, check_grad_lengths, check_lengths, Conv2dShape, DEFAULT_WS_LIMIT as WS_LIMIT};
use super::gemm::sgemm;
use rayon::prelude::*;

/// Positions of the 6×6 transformed tile.
const XI: usize = 36;
/// Tiles (or channels) transformed together.
const LANES: usize = 8;
type L = [f32; LANES];
const Z: L = [0.0; LANES];

/// Fewest input and output channels for which the Winograd path pays: below, the GEMMs are too
/// thin to amortise the transforms (the 3-channel stem stays on im2col).
pub const MIN_CHANNELS: usize = 16;

/// Whether `s` is a convolution this module computes: 3×3, stride 1, padding at most 2, at least
/// [`MIN_CHANNELS`] channels in and out, and an output of at least 4×4 (one whole tile).
pub fn applies(s: &Conv2dShape) -> bool {
    s.kh == 3
        && s.kw == 3
        && s.stride == 1
        && s.pad <= 2
        && s.c_in >= MIN_CHANNELS
        && s.c_out >= MIN_CHANNELS
        && s.h_out() >= 4
        && s.w_out() >= 4
}

// ---- 1-D transforms over lanes ---------------------------------------------------------------

/// `Bᵀ d` (6 → 6).
#[inline(always)]
fn bt(d: &[L; 6]) -> [L; 6] {
    let mut r = [Z; 6];
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        r[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        r[1][l] = -4.0 * (d1 + d2) + d3 + d4;
        r[2][l] = 4.0 * (d1 - d2) - d3 + d4;
        r[3][l] = 2.0 * (d3 - d1) - d2 + d4;
        r[4][l] = 2.0 * (d1 - d3) - d2 + d4;
        r[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    r
}

/// `B v` (6 → 6), the adjoint of [`bt`].
#[inline(always)]
fn b(v: &[L; 6]) -> [L; 6] {
    let mut r = [Z; 6];
    for l in 0..LANES {
        let (v0, v1, v2, v3, v4, v5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
        r[0][l] = 4.0 * v0;
        r[1][l] = 4.0 * (v2 - v1) + 2.0 * (v4 - v3) + 4.0 * v5;
        r[2][l] = -5.0 * v0 - 4.0 * (v1 + v2) - v3 - v4;
        r[3][l] = v1 - v2 + 2.0 * (v3 - v4) - 5.0 * v5;
        r[4][l] = v0 + v1 + v2 + v3 + v4;
        r[5][l] = v5;
    }
    r
}

/// `Aᵀ m` (6 → 4).
#[inline(always)]
fn at(m: &[L; 6]) -> [L; 4] {
    let mut r = [Z; 4];
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4, m5) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]);
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        r[0][l] = m0 + s12 + s34;
        r[1][l] = d12 + 2.0 * d34;
        r[2][l] = s12 + 4.0 * s34;
        r[3][l] = d12 + 8.0 * d34 + m5;
    }
    r
}

/// `A y` (4 → 6), the adjoint of [`at`].
#[inline(always)]
fn a(y: &[L; 4]) -> [L; 6] {
    let mut r = [Z; 6];
    for l in 0..LANES {
        let (y0, y1, y2, y3) = (y[0][l], y[1][l], y[2][l], y[3][l]);
        let (e, o) = (y0 + y2, y1 + y3);
        let (e4, o2) = (y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        r[0][l] = y0;
        r[1][l] = e + o;
        r[2][l] = e - o;
        r[3][l] = e4 + o2;
        r[4][l] = e4 - o2;
        r[5][l] = y3;
    }
    r
}

/// `G g` (3 → 6).
#[inline(always)]
fn g(w: &[L; 3]) -> [L; 6] {
    let mut r = [Z; 6];
    for l in 0..LANES {
        let (g0, g1, g2) = (w[0][l], w[1][l], w[2][l]);
        r[0][l] = 0.25 * g0;
        r[1][l] = -(g0 + g1 + g2) / 6.0;
        r[2][l] = -(g0 - g1 + g2) / 6.0;
        r[3][l] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
        r[4][l] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
        r[5][l] = g2;
    }
    r
}

/// `Gᵀ u` (6 → 3), the adjoint of [`g`].
#[inline(always)]
fn gt(u: &[L; 6]) -> [L; 3] {
    let mut r = [Z; 3];
    for l in 0..LANES {
        let (u0, u1, u2, u3, u4, u5) = (u[0][l], u[1][l], u[2][l], u[3][l], u[4][l], u[5][l]);
        let (s12, d12, s34, d34) = (u1 + u2, u2 - u1, u3 + u4, u3 - u4);
        r[0][l] = 0.25 * u0 - s12 / 6.0 + s34 / 24.0;
        r[1][l] = d12 / 6.0 + d34 / 12.0;
        r[2][l] = -s12 / 6.0 + s34 / 6.0 + u5;
    }
    r
}

/// `dst[..nl] = v[..nl]`; a whole lane group is one fixed-size copy (a variable-length
/// `copy_from_slice` of 32 bytes is a `memcpy` call).
#[inline(always)]
fn store(dst: &mut [f32], v: &L, nl: usize) {
    if nl == LANES {
        let d: &mut L = (&mut dst[..LANES]).try_into().expect("lane group");
        *d = *v;
    } else {
        dst[..nl].copy_from_slice(&v[..nl]);
    }
}

/// `src[..nl]` as lanes (the rest zero).
#[inline(always)]
fn load(src: &[f32], nl: usize) -> L {
    if nl == LANES {
        let s: &L = src[..LANES].try_into().expect("lane group");
        *s
    } else {
        let mut v = Z;
        v[..nl].copy_from_slice(&src[..nl]);
        v
    }
}

/// Column `j` of a row-major `[rows][cols]` array of lanes.
#[inline(always)]
fn col<const R: usize, const C: usize>(m: &[[L; C]; R], j: usize) -> [L; R] {
    std::array::from_fn(|i| m[i][j])
}

// ---- geometry ---------------------------------------------------------------------------------

/// Tiling of one image: `th × tw` tiles of 4×4 outputs over a zero-padded `hp × wp` input plane
/// (the input sits at row and column `pad`).
#[derive(Clone, Copy, Debug)]
struct Geo {
    th: usize,
    tw: usize,
    hp: usize,
    wp: usize,
}

impl Geo {
    fn of(s: &Conv2dShape) -> Geo {
        let (th, tw) = (s.h_out().div_ceil(4), s.w_out().div_ceil(4));
        Geo { th, tw, hp: 4 * th + 2, wp: 4 * tw + 2 }
    }
    fn tiles(&self) -> usize {
        self.th * self.tw
    }
    fn plane(&self) -> usize {
        self.hp * self.wp
    }
    /// Offset in a channel's padded block `[images][hp][wp]` of tile `t`'s top-left corner.
    #[inline(always)]
    fn tile_base(&self, t: usize) -> usize {
        let (img, r) = (t / self.tiles(), t % self.tiles());
        img * self.plane() + 4 * (r / self.tw) * self.wp + 4 * (r % self.tw)
    }
}

/// Images per chunk so that one chunk's transformed tiles (`V`, `M` or `dM`, and `dV`) and padded
/// planes stay within `limit` floats.
fn images_per_chunk(s: &Conv2dShape, geo: &Geo, limit: usize) -> usize {
    let per_image = XI * geo.tiles() * (2 * s.c_in + s.c_out) + 2 * s.c_in * geo.plane();
    (limit / per_image.max(1)).clamp(1, s.n.max(1))
}


/// Splits `ws` (grown as needed) into regions of the given lengths.
fn carve<const N: usize>(ws: &mut Vec<f32>, lens: [usize; N]) -> [&mut [f32]; N] {
    let total: usize = lens.iter().sum();
    if ws.len() < total {
        ws.resize(total, 0.0);
    }
    let mut rest = &mut ws[..total];
    lens.map(|len| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        head
    })
}

// ---- transforms -------------------------------------------------------------------------------

/// Defines `fn $name(args)` that runs its body compiled for AVX2 when the CPU has it (the lane
/// arithmetic then takes one 256-bit instruction per `[f32; 8]` instead of two 128-bit ones) and
/// for the baseline target otherwise. The body is one unit of a parallel loop: closures do not
/// inherit a `target_feature`, so the loops call these.
macro_rules! simd_fn {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        fn $name($($a: $t),*) {
            #[inline(always)]
            fn generic($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) {
                    generic($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the running CPU supports AVX2, the only feature `avx2` enables.
                    return unsafe { avx2($($a),*) };
                }
            }
            generic($($a),*)
        }
    };
}

simd_fn! {
    /// `uk[ξ][c] = (G g Gᵀ)[ξ]` for the filters `g = w[k][c]` of one output channel `k`.
    fn filter_transform_one(c_in: usize, wk: &[f32], uk: &mut [f32]) {
        for c0 in (0..c_in).step_by(LANES) {
            let nl = LANES.min(c_in - c0);
            let mut f = [[Z; 3]; 3];
            for l in 0..nl {
                let wf = &wk[(c0 + l) * 9..][..9];
                for i in 0..3 {
                    for j in 0..3 {
                        f[i][j][l] = wf[i * 3 + j];
                    }
                }
            }
            let cols: [[L; 6]; 3] = std::array::from_fn(|j| g(&col(&f, j)));
            for x in 0..6 {
                let t = g(&std::array::from_fn(|j| cols[j][x]));
                for (y, v) in t.iter().enumerate() {
                    store(&mut uk[(x * 6 + y) * c_in + c0..], v, nl);
                }
            }
        }
    }
}

/// `U[k][ξ][c] = (G g Gᵀ)[ξ]` for every filter `g = w[k][c]`.
fn filter_transform(s: &Conv2dShape, w: &[f32], u: &mut [f32]) {
    let c_in = s.c_in;
    u.par_chunks_mut(XI * c_in).enumerate().for_each(|(k, uk)| filter_transform_one(c_in, &w[k * c_in * 9..][..c_in * 9], uk));
}

simd_fn! {
    /// `dwk[c] = Gᵀ dU[·][k][c] G` for one output channel `k`, from `du [ξ][k][c]`.
    fn filter_gradient_one(c_in: usize, c_out: usize, k: usize, du: &[f32], dwk: &mut [f32]) {
        for c0 in (0..c_in).step_by(LANES) {
            let nl = LANES.min(c_in - c0);
            let mut m = [[Z; 6]; 6];
            for (xi, row) in m.iter_mut().enumerate() {
                for (yi, v) in row.iter_mut().enumerate() {
                    *v = load(&du[((xi * 6 + yi) * c_out + k) * c_in + c0..], nl);
                }
            }
            // Over ξx first, then over ξy.
            let cols: [[L; 3]; 6] = std::array::from_fn(|y| gt(&col(&m, y)));
            for i in 0..3 {
                let r = gt(&std::array::from_fn(|y| cols[y][i]));
                for (j, v) in r.iter().enumerate() {
                    for l in 0..nl {
                        dwk[(c0 + l) * 9 + i * 3 + j] = v[l];
                    }
                }
            }
        }
    }
}

/// `dW[k][c] = Gᵀ dU[·][k][c] G` from `du [ξ][k][c]`.
fn filter_gradient(s: &Conv2dShape, du: &[f32], dw: &mut [f32]) {
    let (c_in, c_out) = (s.c_in, s.c_out);
    dw.par_chunks_mut(c_in * 9).enumerate().for_each(|(k, dwk)| filter_gradient_one(c_in, c_out, k, du, dwk));
}

/// Zero-padded, channel-major copy of a chunk of images: `xp [c][img][hp][wp]`.
fn pad_input(s: &Conv2dShape, geo: &Geo, nb: usize, x: &[f32], xp: &mut [f32]) {
    let (h, w, pad, c_in) = (s.h, s.w, s.pad, s.c_in);
    xp.par_chunks_mut(nb * geo.plane()).enumerate().for_each(|(c, blk)| {
        blk.fill(0.0);
        for img in 0..nb {
            let src = &x[(img * c_in + c) * h * w..][..h * w];
            let dst = &mut blk[img * geo.plane()..][..geo.plane()];
            for y in 0..h {
                dst[(y + pad) * geo.wp + pad..][..w].copy_from_slice(&src[y * w..][..w]);
            }
        }
    });
}

simd_fn! {
    /// `vc[ξ][t] = (Bᵀ d B)[ξ]` for the 6×6 tile `d` of every tile `t` of one channel's padded
    /// block `xc [img][hp][wp]`.
    fn input_transform_one(geo: &Geo, tiles: usize, xc: &[f32], vc: &mut [f32]) {
        for t0 in (0..tiles).step_by(LANES) {
            let nl = LANES.min(tiles - t0);
            let base: [usize; LANES] = std::array::from_fn(|l| geo.tile_base(t0 + l.min(nl - 1)));
            let mut d = [[Z; 6]; 6];
            for (i, row) in d.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    for l in 0..LANES {
                        v[l] = xc[base[l] + i * geo.wp + j];
                    }
                }
            }
            let cols: [[L; 6]; 6] = std::array::from_fn(|j| bt(&col(&d, j)));
            // cols[j][x] = (Bᵀ d)[x][j]; transform each row x over j.
            for x in 0..6 {
                let r = bt(&std::array::from_fn(|j| cols[j][x]));
                for (y, val) in r.iter().enumerate() {
                    store(&mut vc[(x * 6 + y) * tiles + t0..], val, nl);
                }
            }
        }
    }
}

/// `V[c][ξ][t] = (Bᵀ d B)[ξ]` for the 6×6 tile `d` of every tile `t` of channel `c`.
fn input_transform(geo: &Geo, tiles: usize, xp: &[f32], v: &mut [f32], nb: usize) {
    let plane_blk = nb * geo.plane();
    v.par_chunks_mut(XI * tiles).enumerate().for_each(|(c, vc)| input_transform_one(geo, tiles, &xp[c * plane_blk..][..plane_blk], vc));
}

simd_fn! {
    /// `dc` (one channel's padded block) = Σ over tiles of `B dV[·][c][t] Bᵀ` placed at the tile.
    fn input_gradient_one(geo: &Geo, c_in: usize, c: usize, tiles: usize, dv: &[f32], dc: &mut [f32]) {
        dc.fill(0.0);
        for t0 in (0..tiles).step_by(LANES) {
            let nl = LANES.min(tiles - t0);
            let mut m = [[Z; 6]; 6];
            for (x, row) in m.iter_mut().enumerate() {
                for (y, val) in row.iter_mut().enumerate() {
                    *val = load(&dv[((x * 6 + y) * c_in + c) * tiles + t0..], nl);
                }
            }
            let cols: [[L; 6]; 6] = std::array::from_fn(|y| b(&col(&m, y)));
            for i in 0..6 {
                let r = b(&col(&cols, i));
                for l in 0..nl {
                    let base = geo.tile_base(t0 + l) + i * geo.wp;
                    for (j, val) in r.iter().enumerate() {
                        dc[base + j] += val[l];
                    }
                }
            }
        }
    }
}

/// `dxp[c]` = Σ over tiles of `B dV[·][c][t] Bᵀ` placed at the tile, from `dv [ξ][c][t]`.
fn input_gradient(geo: &Geo, c_in: usize, tiles: usize, dv: &[f32], dxp: &mut [f32], nb: usize) {
    dxp.par_chunks_mut(nb * geo.plane()).enumerate().for_each(|(c, dc)| input_gradient_one(geo, c_in, c, tiles, dv, dc));
}

/// `dx[img][c]` = the interior of `dxp[c][img]`.
fn unpad_gradient(s: &Conv2dShape, geo: &Geo, nb: usize, dxp: &[f32], dx: &mut [f32]) {
    let (h, w, pad, c_in) = (s.h, s.w, s.pad, s.c_in);
    dx.par_chunks_mut(h * w).enumerate().for_each(|(plane, out)| {
        let (img, c) = (plane / c_in, plane % c_in);
        let src = &dxp[(c * nb + img) * geo.plane()..][..geo.plane()];
        for y in 0..h {
            out[y * w..][..w].copy_from_slice(&src[(y + pad) * geo.wp + pad..][..w]);
        }
    });
}

/// What [`output_transform_one`] needs besides its plane.
#[derive(Clone, Copy)]
struct OutPlane<'a> {
    geo: &'a Geo,
    ho: usize,
    wo: usize,
    c_out: usize,
    tiles: usize,
    m: &'a [f32],
}

simd_fn! {
    /// `out = Aᵀ M[·][k][t] A + bias` over the tiles of output plane `(img, k)`, clipped to it.
    fn output_transform_one(p: OutPlane<'_>, img: usize, k: usize, bv: f32, out: &mut [f32]) {
        let (geo, ho, wo) = (p.geo, p.ho, p.wo);
        let tpi = geo.tiles();
        for r0 in (0..tpi).step_by(LANES) {
            let nl = LANES.min(tpi - r0);
            let t0 = img * tpi + r0;
            let mut mm = [[Z; 6]; 6];
            for (x, row) in mm.iter_mut().enumerate() {
                for (yy, val) in row.iter_mut().enumerate() {
                    *val = load(&p.m[((x * 6 + yy) * p.c_out + k) * p.tiles + t0..], nl);
                }
            }
            let cols: [[L; 4]; 6] = std::array::from_fn(|yy| at(&col(&mm, yy)));
            for i in 0..4 {
                let r = at(&col(&cols, i));
                for l in 0..nl {
                    let (ty, tx) = ((r0 + l) / geo.tw, (r0 + l) % geo.tw);
                    let oy = 4 * ty + i;
                    if oy >= ho {
                        continue;
                    }
                    for (j, val) in r.iter().enumerate() {
                        let ox = 4 * tx + j;
                        if ox < wo {
                            out[oy * wo + ox] = val[l] + bv;
                        }
                    }
                }
            }
        }
    }
}

/// `y[img][k] = Aᵀ M[·][k][t] A` over the image's tiles (clipped to the output), plus the bias.
fn output_transform(s: &Conv2dShape, geo: &Geo, tiles: usize, m: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let p = OutPlane { geo, ho: s.h_out(), wo: s.w_out(), c_out: s.c_out, tiles, m };
    y.par_chunks_mut(p.ho * p.wo).enumerate().for_each(|(plane, out)| {
        let (img, k) = (plane / p.c_out, plane % p.c_out);
        output_transform_one(p, img, k, bias.map_or(0.0, |b| b[k]), out)
    });
}

simd_fn! {
    /// `dmk[ξ][t] = (A dY Aᵀ)[ξ]` for the 4×4 tiles of output channel `k` of `dy` (zero beyond
    /// the output).
    fn output_gradient_one(p: OutPlane<'_>, k: usize, dy: &[f32], dmk: &mut [f32]) {
        let (geo, ho, wo, tiles) = (p.geo, p.ho, p.wo, p.tiles);
        let tpi = geo.tiles();
        for t0 in (0..tiles).step_by(LANES) {
            let nl = LANES.min(tiles - t0);
            let mut yv = [[Z; 4]; 4];
            for l in 0..nl {
                let t = t0 + l;
                let (img, r) = (t / tpi, t % tpi);
                let (oy0, ox0) = (4 * (r / geo.tw), 4 * (r % geo.tw));
                let plane = &dy[(img * p.c_out + k) * ho * wo..][..ho * wo];
                for (i, row) in yv.iter_mut().enumerate() {
                    let oy = oy0 + i;
                    for (j, v) in row.iter_mut().enumerate() {
                        let ox = ox0 + j;
                        v[l] = if oy < ho && ox < wo { plane[oy * wo + ox] } else { 0.0 };
                    }
                }
            }
            let cols: [[L; 6]; 4] = std::array::from_fn(|j| a(&col(&yv, j)));
            for x in 0..6 {
                let r = a(&std::array::from_fn(|j| cols[j][x]));
                for (yy, val) in r.iter().enumerate() {
                    store(&mut dmk[(x * 6 + yy) * tiles + t0..], val, nl);
                }
            }
        }
    }
}

/// `dM[k][ξ][t] = (A dY Aᵀ)[ξ]` for the 4×4 tile of `dy[img][k]` (zero beyond the output).
fn output_gradient(s: &Conv2dShape, geo: &Geo, tiles: usize, dy: &[f32], dm: &mut [f32]) {
    let p = OutPlane { geo, ho: s.h_out(), wo: s.w_out(), c_out: s.c_out, tiles, m: &[] };
    dm.par_chunks_mut(XI * tiles).enumerate().for_each(|(k, dmk)| output_gradient_one(p, k, dy, dmk));
}

fn check_applies(s: &Conv2dShape) {
    assert!(applies(s), "winograd: {s:?} is not a 3×3 stride-1 convolution it computes");
}

/// Forward: `y = conv(x, w) + bias`, as [`super::conv::conv2d_forward`]. `ws` is a reusable
/// workspace, grown as needed.
pub fn forward(s: &Conv2dShape, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], ws: &mut Vec<f32>) {
    forward_chunked(s, x, w, bias, y, ws, WS_LIMIT)
}

pub(crate) fn forward_chunked(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    ws: &mut Vec<f32>,
    limit: usize,
) {
    check_applies(s);
    check_lengths(s, x, w, y, bias.map(|b| b.len()));
    let geo = Geo::of(s);
    let nb_max = images_per_chunk(s, &geo, limit);
    let (c_in, c_out) = (s.c_in, s.c_out);
    let tiles_max = nb_max * geo.tiles();
    let [u, xp, v, m] =
        carve(ws, [XI * c_out * c_in, c_in * nb_max * geo.plane(), XI * c_in * tiles_max, XI * c_out * tiles_max]);
    filter_transform(s, w, u);
    let (img_in, img_out) = (c_in * s.h * s.w, c_out * s.h_out() * s.w_out());
    let mut start = 0;
    while start < s.n {
        let nb = nb_max.min(s.n - start);
        let tiles = nb * geo.tiles();
        let (xp, v, m) = (&mut xp[..c_in * nb * geo.plane()], &mut v[..XI * c_in * tiles], &mut m[..XI * c_out * tiles]);
        let sub = Conv2dShape { n: nb, ..*s };
        pad_input(&sub, &geo, nb, &x[start * img_in..][..nb * img_in], xp);
        input_transform(&geo, tiles, xp, v, nb);
        let (u, v) = (&*u, &*v);
        m.par_chunks_mut(c_out * tiles).enumerate().for_each(|(xi, mx)| {
            sgemm(false, false, c_out, tiles, c_in, 1.0, &u[xi * c_in..], XI * c_in, &v[xi * tiles..], XI * tiles, 0.0, mx, tiles);
        });
        output_transform(&sub, &geo, tiles, m, bias, &mut y[start * img_out..][..nb * img_out]);
        start += nb;
    }
}

/// Backward, as [`super::conv::conv2d_backward`]: writes `dw` (and `db`, `dx` when given) from
/// `dy`; `x` and `w` are the forward inputs.
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
    backward_chunked(s, x, w, dy, dx, dw, db, ws, WS_LIMIT)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_chunked(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    ws: &mut Vec<f32>,
    limit: usize,
) {
    check_applies(s);
    check_grad_lengths(s, x, w, dy, dx.as_deref(), dw, db.as_ref().map(|b| b.len()));
    let (c_in, c_out) = (s.c_in, s.c_out);
    let (ho, wo) = (s.h_out(), s.w_out());
    if let Some(db) = db {
        bias_grad(dy, s.n, c_out, ho * wo, db);
    }
    if s.n == 0 {
        // No images: nothing reaches the weights.
        dw.fill(0.0);
        return;
    }
    let geo = Geo::of(s);
    let nb_max = images_per_chunk(s, &geo, limit);
    let tiles_max = nb_max * geo.tiles();
    let want_dx = dx.is_some();
    let plane_blk = c_in * nb_max * geo.plane();
    let [u, du, xp, v, dm, dv] = carve(
        ws,
        [
            if want_dx { XI * c_out * c_in } else { 0 },
            XI * c_out * c_in,
            plane_blk,
            XI * c_in * tiles_max,
            XI * c_out * tiles_max,
            if want_dx { XI * c_in * tiles_max } else { 0 },
        ],
    );
    if want_dx {
        filter_transform(s, w, u);
    }
    let (img_in, img_out) = (c_in * s.h * s.w, c_out * ho * wo);
    let mut beta = 0.0; // the first chunk overwrites dU, later ones accumulate
    let mut start = 0;
    while start < s.n {
        let nb = nb_max.min(s.n - start);
        let tiles = nb * geo.tiles();
        let sub = Conv2dShape { n: nb, ..*s };
        let xp = &mut xp[..c_in * nb * geo.plane()];
        let (v, dm) = (&mut v[..XI * c_in * tiles], &mut dm[..XI * c_out * tiles]);
        pad_input(&sub, &geo, nb, &x[start * img_in..][..nb * img_in], xp);
        input_transform(&geo, tiles, xp, v, nb);
        output_gradient(&sub, &geo, tiles, &dy[start * img_out..][..nb * img_out], dm);
        let (u, v, dm) = (&*u, &*v, &*dm);
        let dv = &mut dv[..if want_dx { XI * c_in * tiles } else { 0 }];
        // Per ξ: dU[ξ] (+)= dM[ξ]·V[ξ]ᵀ and, for dx, dV[ξ] = U[ξ]ᵀ·dM[ξ].
        type Job<'a> = (usize, &'a mut [f32], Option<&'a mut [f32]>);
        let jobs: Vec<Job> = if want_dx {
            du.chunks_mut(c_out * c_in).zip(dv.chunks_mut(c_in * tiles)).enumerate().map(|(xi, (a, b))| (xi, a, Some(b))).collect()
        } else {
            du.chunks_mut(c_out * c_in).enumerate().map(|(xi, a)| (xi, a, None)).collect()
        };
        jobs.into_par_iter().for_each(|(xi, dux, dvx)| {
            let (dmx, vx) = (&dm[xi * tiles..], &v[xi * tiles..]);
            sgemm(false, true, c_out, c_in, tiles, 1.0, dmx, XI * tiles, vx, XI * tiles, beta, dux, c_in);
            if let Some(dvx) = dvx {
                sgemm(true, false, c_in, tiles, c_out, 1.0, &u[xi * c_in..], XI * c_in, dmx, XI * tiles, 0.0, dvx, tiles);
            }
        });
        if let Some(dx) = dx.as_deref_mut() {
            // xp is dead after the input transform: it takes the padded input gradient.
            input_gradient(&geo, c_in, tiles, dv, xp, nb);
            unpad_gradient(&sub, &geo, nb, xp, &mut dx[start * img_in..][..nb * img_in]);
        }
        beta = 1.0;
        start += nb;
    }
    filter_gradient(s, du, dw);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    fn lanes(v: &[f64]) -> Vec<L> {
        v.iter().map(|&x| [x as f32; LANES]).collect()
    }

    /// The 1-D transforms as matrices applied to the unit vectors, against Lavin & Gray's.
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn transform_matrices_and_adjoints() {
        let bt_ref = [
            [4., 0., -5., 0., 1., 0.],
            [0., -4., -4., 1., 1., 0.],
            [0., 4., -4., -1., 1., 0.],
            [0., -2., -1., 2., 1., 0.],
            [0., 2., -1., -2., 1., 0.],
            [0., 4., 0., -5., 0., 1.],
        ];
        let at_ref = [[1., 1., 1., 1., 1., 0.], [0., 1., -1., 2., -2., 0.], [0., 1., 1., 4., 4., 0.], [0., 1., -1., 8., -8., 1.]];
        let g_ref = [
            [0.25, 0., 0.],
            [-1. / 6., -1. / 6., -1. / 6.],
            [-1. / 6., 1. / 6., -1. / 6.],
            [1. / 24., 1. / 12., 1. / 6.],
            [1. / 24., -1. / 12., 1. / 6.],
            [0., 0., 1.],
        ];
        for j in 0..6 {
            let e: [L; 6] = std::array::from_fn(|i| [if i == j { 1.0 } else { 0.0 }; LANES]);
            let (r, rb) = (bt(&e), b(&e));
            let ra = at(&e);
            let rg = gt(&e);
            for i in 0..6 {
                assert_eq!(r[i][3], bt_ref[i][j] as f32, "Bᵀ[{i}][{j}]");
                assert_eq!(rb[i][5], bt_ref[j][i] as f32, "B[{i}][{j}]");
            }
            for i in 0..4 {
                assert_eq!(ra[i][0], at_ref[i][j] as f32, "Aᵀ[{i}][{j}]");
            }
            for i in 0..3 {
                assert!((rg[i][7] - g_ref[j][i] as f32).abs() < 1e-7, "Gᵀ[{i}][{j}]");
            }
        }
        for j in 0..4 {
            let e: [L; 4] = std::array::from_fn(|i| [if i == j { 1.0 } else { 0.0 }; LANES]);
            let r = a(&e);
            for i in 0..6 {
                assert_eq!(r[i][1], at_ref[j][i] as f32, "A[{i}][{j}]");
            }
        }
        for j in 0..3 {
            let e: [L; 3] = std::array::from_fn(|i| [if i == j { 1.0 } else { 0.0 }; LANES]);
            let r = g(&e);
            for i in 0..6 {
                assert!((r[i][2] - g_ref[i][j] as f32).abs() < 1e-7, "G[{i}][{j}]");
            }
        }
    }

    /// F(4, 3) in one dimension: Aᵀ[(G g) ⊙ (Bᵀ d)] is the 4-output correlation of d with g.
    #[test]
    fn one_dimensional_identity() {
        let mut rng = rng(3);
        let d64 = to64(&randv(&mut rng, 6));
        let g64 = to64(&randv(&mut rng, 3));
        let (d, gg) = (lanes(&d64), lanes(&g64));
        let (vd, ug) = (bt(&d[..].try_into().unwrap()), g(&gg[..].try_into().unwrap()));
        let prod: [L; 6] = std::array::from_fn(|i| std::array::from_fn(|l| vd[i][l] * ug[i][l]));
        let y = at(&prod);
        for o in 0..4 {
            let want: f64 = (0..3).map(|k| d64[o + k] * g64[k]).sum();
            assert!((y[o][0] as f64 - want).abs() < 1e-5, "output {o}: {} vs {want}", y[o][0]);
        }
    }

    fn shape(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, pad: usize) -> Conv2dShape {
        Conv2dShape { n, c_in, h, w, c_out, kh: 3, kw: 3, stride: 1, pad }
    }

    /// Direct-loop f64 convolution and the gradients of `Σ y·r`.
    fn reference(s: &Conv2dShape, x: &[f64], w: &[f64], r: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (ho, wo) = (s.h_out(), s.w_out());
        let mut y = vec![0.0; s.out_len()];
        let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        for n in 0..s.n {
            for co in 0..s.c_out {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let yi = ((n * s.c_out + co) * ho + oy) * wo + ox;
                        for ci in 0..s.c_in {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let iy = (oy + ki) as isize - s.pad as isize;
                                    let ix = (ox + kj) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                        continue;
                                    }
                                    let xi = ((n * s.c_in + ci) * s.h + iy as usize) * s.w + ix as usize;
                                    let wi = ((co * s.c_in + ci) * 3 + ki) * 3 + kj;
                                    y[yi] += x[xi] * w[wi];
                                    dx[xi] += w[wi] * r[yi];
                                    dw[wi] += x[xi] * r[yi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    /// Max |got − want| over max |want|: the error relative to the tensor's scale, which is what
    /// Winograd's transforms bound (element-wise relative error is unbounded near zero).
    fn scaled_err(got: &[f32], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
        got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| {
            assert!(g.is_finite(), "non-finite value {g}");
            m.max((g as f64 - w).abs())
        }) / scale
    }

    fn check(s: Conv2dShape, with_bias: bool, limit: usize, seed: u64) {
        assert!(applies(&s), "{s:?}");
        let mut rng = rng(seed);
        let x = randv(&mut rng, s.n * s.c_in * s.h * s.w);
        let w = randv(&mut rng, s.c_out * s.c_in * 9);
        let r = randv(&mut rng, s.out_len());
        let bias = with_bias.then(|| randv(&mut rng, s.c_out));
        let (x64, w64, r64) = (to64(&x), to64(&w), to64(&r));
        let (mut y64, dx64, dw64) = reference(&s, &x64, &w64, &r64);
        if let Some(bias) = &bias {
            let p = s.h_out() * s.w_out();
            for (i, v) in y64.iter_mut().enumerate() {
                *v += bias[(i / p) % s.c_out] as f64;
            }
        }
        // Stale garbage in the workspace must not leak into results.
        let mut ws = vec![f32::NAN; 11];
        let mut y = vec![f32::NAN; s.out_len()];
        forward_chunked(&s, &x, &w, bias.as_deref(), &mut y, &mut ws, limit);
        let e = scaled_err(&y, &y64);
        assert!(e < 2e-5, "winograd fwd {s:?}: scaled error {e:e}");
        let mut dx = vec![f32::NAN; x.len()];
        let mut dw = vec![f32::NAN; w.len()];
        let mut db = vec![f32::NAN; s.c_out];
        backward_chunked(&s, &x, &w, &r, Some(&mut dx), &mut dw, with_bias.then_some(&mut db[..]), &mut ws, limit);
        let (ex, ew) = (scaled_err(&dx, &dx64), scaled_err(&dw, &dw64));
        eprintln!("winograd {s:?}: scaled errors fwd {e:.1e} dx {ex:.1e} dw {ew:.1e}");
        assert!(ex < 2e-5, "winograd dx {s:?}: scaled error {ex:e}");
        assert!(ew < 2e-5, "winograd dw {s:?}: scaled error {ew:e}");
        if with_bias {
            let p = s.h_out() * s.w_out();
            let want: Vec<f64> =
                (0..s.c_out).map(|k| (0..s.n).map(|n| r64[(n * s.c_out + k) * p..][..p].iter().sum::<f64>()).sum()).collect();
            assert_close("winograd db", &db, &want, 1e-4, 1e-4);
        }
        // Without dx the weight gradient is the same.
        let mut dw2 = vec![f32::NAN; w.len()];
        backward_chunked(&s, &x, &w, &r, None, &mut dw2, None, &mut ws, limit);
        assert_eq!(dw, dw2, "dw without dx {s:?}");
    }

    #[test]
    fn matches_direct_convolution_on_whole_and_partial_tiles() {
        // 8×8: whole tiles; 7×9 and 5×6: partial edge tiles; channel counts off the lane width.
        check(shape(2, 16, 8, 8, 16, 1), true, WS_LIMIT, 1);
        check(shape(3, 17, 7, 9, 19, 1), false, WS_LIMIT, 2);
        check(shape(2, 20, 5, 6, 16, 1), true, WS_LIMIT, 3);
        // Unpadded (6×6 → 4×4: one tile) and pad 2 (output larger than the input).
        check(shape(2, 16, 6, 6, 18, 0), false, WS_LIMIT, 4);
        check(shape(1, 16, 4, 5, 16, 2), true, WS_LIMIT, 5);
    }

    #[test]
    fn chunked_images_accumulate_the_weight_gradient() {
        // One image per chunk, then two (last chunk smaller).
        let s = shape(5, 16, 8, 8, 16, 1);
        check(s, true, 1, 6);
        let geo = Geo::of(&s);
        let per_image = XI * geo.tiles() * (2 * s.c_in + s.c_out) + 2 * s.c_in * geo.plane();
        check(s, false, 2 * per_image, 7);
    }

    #[test]
    fn resnet_layer_shapes_stay_accurate() {
        // The shapes of a CIFAR ResNet's stages (channels and planes), small batches.
        check(shape(2, 64, 32, 32, 64, 1), false, WS_LIMIT, 8);
        check(shape(2, 128, 16, 16, 128, 1), false, WS_LIMIT, 9);
        check(shape(4, 512, 4, 4, 512, 1), false, WS_LIMIT, 10);
    }

    #[test]
    fn empty_batch_gives_zero_weight_gradient() {
        let s = shape(0, 16, 8, 8, 16, 1);
        let w = vec![1.0; 16 * 16 * 9];
        let (mut dw, mut db) = (vec![f32::NAN; w.len()], vec![f32::NAN; 16]);
        let mut ws = vec![f32::NAN; 3];
        forward(&s, &[], &w, None, &mut [], &mut ws);
        backward(&s, &[], &w, &[], Some(&mut []), &mut dw, Some(&mut db), &mut ws);
        assert!(dw.iter().chain(&db).all(|&v| v == 0.0));
    }

    #[test]
    fn applies_only_to_its_shapes() {
        assert!(applies(&shape(1, 64, 32, 32, 64, 1)));
        assert!(!applies(&shape(1, 3, 32, 32, 64, 1)), "stem");
        assert!(!applies(&shape(1, 64, 2, 2, 64, 1)), "output below one tile");
        assert!(!applies(&Conv2dShape { stride: 2, ..shape(1, 64, 32, 32, 64, 1) }));
        assert!(!applies(&Conv2dShape { kh: 1, kw: 1, pad: 0, ..shape(1, 64, 32, 32, 64, 1) }));
    }
}
