//! Line plots written as PNG with no system libraries: an RGB raster with anti-aliased lines, a built-in
//! 5×7 bitmap font, and a small PNG encoder (stored deflate blocks, CRC-32, Adler-32). Used for
//! `accuracy_vs_time.png`, test accuracy of ScaDLES and the DDL baseline against clock seconds.
use crate::error::Result;
use std::path::Path;

/// One curve: a legend label and its (x, y) points, drawn in the given order. Non-finite points are skipped.
pub struct Series<'a> {
    pub label: &'a str,
    pub points: &'a [(f64, f64)],
}

type Rgb = [u8; 3];
const W: usize = 900;
const H: usize = 560;
/// Font scale: each 5×7 glyph pixel becomes an S×S block; glyphs advance 6·S and lines are 8·S tall.
const S: usize = 2;
const TOP: usize = 44;
const BOTTOM: usize = 72;
const RIGHT: usize = 40;
/// Gap between the axes frame and the data, so markers at the range ends are not cut.
const PAD: f64 = 8.0;
const BG: Rgb = [255, 255, 255];
const INK: Rgb = [0, 0, 0];
const GRID: Rgb = [228, 228, 228];
/// Ten well-separated colours (the tab10 cycle); series beyond ten reuse them with another marker.
const PALETTE: [Rgb; 10] = [
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

/// Writes a line plot of `series` to `path` as a PNG (atomically). The x axis runs from 0 to the largest
/// finite x; the y axis uses `y_range`, or the data's range padded by 5% when `None`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<()> {
    let (canvas, _) = render(title, x_label, y_label, series, y_range)?;
    super::write_atomic(path, &encode_png(canvas.w, canvas.h, &canvas.px))
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    #[cfg(test)]
    fn get(&self, x: usize, y: usize) -> Rgb {
        let i = 3 * (y * self.w + x);
        [self.px[i], self.px[i + 1], self.px[i + 2]]
    }
    /// Mixes colour `c` with coverage `a` ∈ [0, 1] into the pixel; off-canvas pixels are ignored.
    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f64) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 || a <= 0.0 {
            return;
        }
        let i = 3 * (y as usize * self.w + x as usize);
        let a = a.min(1.0);
        for (p, &ck) in self.px[i..i + 3].iter_mut().zip(&c) {
            *p = (*p as f64 * (1.0 - a) + ck as f64 * a).round() as u8;
        }
    }
    /// Fills the half-open rectangle [x0, x1) × [y0, y1).
    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, c, 1.0);
            }
        }
    }
    /// Draws `s` with its bounding box's top-left at (x, y); `vertical` turns it 90° anticlockwise so it
    /// reads bottom to top (the y-axis label).
    fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb, vertical: bool) {
        let len = text_width(s) as i64;
        for (ci, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (gy, row) in g.iter().enumerate() {
                for gx in 0..5 {
                    if row >> (4 - gx) & 1 == 0 {
                        continue;
                    }
                    let (u, v) = ((ci * 6 + gx) * S, gy * S);
                    for dy in 0..S {
                        for dx in 0..S {
                            let (u, v) = ((u + dx) as i64, (v + dy) as i64);
                            if vertical {
                                self.blend(x + v, y + len - 1 - u, c, 1.0);
                            } else {
                                self.blend(x + u, y + v, c, 1.0);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Pixel width of `s` in the built-in font (no trailing gap); the height is 7·S.
fn text_width(s: &str) -> usize {
    (s.chars().count() * 6 * S).saturating_sub(S)
}

/// Maps data coordinates to continuous pixel coordinates (pixel (i, j) covers [i, i+1) × [j, j+1)).
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Plot area in whole pixels: columns [left, right), rows [top, bottom); the frame lies just outside.
    left: usize,
    right: usize,
    top: usize,
    bottom: usize,
    xmax: f64,
    ylo: f64,
    yhi: f64,
}

impl Frame {
    fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let (x0, x1) = (self.left as f64 + PAD, self.right as f64 - PAD);
        let (y0, y1) = (self.top as f64 + PAD, self.bottom as f64 - PAD);
        (x0 + x / self.xmax * (x1 - x0), y1 - (y - self.ylo) / (self.yhi - self.ylo) * (y1 - y0))
    }
}

/// Where things went, for the pixel checks in the tests.
#[cfg_attr(not(test), allow(dead_code))]
struct Layout {
    frame: Frame,
    /// Legend box [x0, x1) × [y0, y1), if any series was given.
    legend: Option<(i64, i64, i64, i64)>,
    title_at: (i64, i64),
}

/// "Nice" tick values covering [lo, hi] with a step of 1, 2 or 5 × 10^k giving about `target` intervals,
/// and their labels (enough decimals to tell neighbouring ticks apart).
fn nice_ticks(lo: f64, hi: f64, target: f64) -> Vec<(f64, String)> {
    let rough = (hi - lo) / target;
    let mag = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= rough * (1.0 - 1e-9)).unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let sci = !(1e-4..1e6).contains(&step);
    let (k0, k1) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (k0..=k1)
        .map(|k| {
            let v = k as f64 * step;
            let label = if k == 0 {
                if sci || decimals == 0 { "0".to_string() } else { format!("{:.*}", decimals, 0.0) }
            } else if sci {
                format!("{v:.1e}")
            } else {
                format!("{v:.decimals$}")
            };
            (v, label)
        })
        .collect()
}

/// Distance from point p to the segment a–b.
fn seg_dist(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let l2 = dx * dx + dy * dy;
    let t = if l2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

/// Raises `cov` (a coverage mask over the plot area) to cover a 2 px wide segment, anti-aliased.
fn cover_segment(cov: &mut [f32], f: &Frame, a: (f64, f64), b: (f64, f64)) {
    let half = 1.0;
    let pw = f.right - f.left;
    let x0 = (a.0.min(b.0) - 2.0).floor().max(f.left as f64) as usize;
    let x1 = (a.0.max(b.0) + 2.0).ceil().min(f.right as f64).max(x0 as f64) as usize;
    let y0 = (a.1.min(b.1) - 2.0).floor().max(f.top as f64) as usize;
    let y1 = (a.1.max(b.1) + 2.0).ceil().min(f.bottom as f64).max(y0 as f64) as usize;
    for y in y0..y1 {
        for x in x0..x1 {
            let d = seg_dist((x as f64 + 0.5, y as f64 + 0.5), a, b);
            let c = &mut cov[(y - f.top) * pw + x - f.left];
            *c = c.max((half + 0.5 - d).clamp(0.0, 1.0) as f32);
        }
    }
}

/// Raises `cov` to cover a marker at `c`: circle, square or diamond by `shape`.
fn cover_marker(cov: &mut [f32], f: &Frame, c: (f64, f64), shape: usize) {
    let r = 3.5;
    let pw = f.right - f.left;
    for y in (c.1 - 5.0).floor() as i64..=(c.1 + 5.0).ceil() as i64 {
        for x in (c.0 - 5.0).floor() as i64..=(c.0 + 5.0).ceil() as i64 {
            if x < f.left as i64 || x >= f.right as i64 || y < f.top as i64 || y >= f.bottom as i64 {
                continue;
            }
            let (dx, dy) = ((x as f64 + 0.5 - c.0).abs(), (y as f64 + 0.5 - c.1).abs());
            let d = match shape % 3 {
                0 => dx.hypot(dy),
                1 => dx.max(dy) * 1.1,
                _ => (dx + dy) / 1.2,
            };
            let v = &mut cov[(y as usize - f.top) * pw + x as usize - f.left];
            *v = v.max((r + 0.5 - d).clamp(0.0, 1.0) as f32);
        }
    }
}

fn render(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<(Canvas, Layout)> {
    let finite = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let xmax = finite().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let xmax = if xmax.is_finite() && xmax > 0.0 { xmax } else { 1.0 };
    let (ylo, yhi) = match y_range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
        Some((lo, hi)) => crate::bail!(Config, "plot y range ({lo}, {hi}) is invalid; expected finite low < high"),
        None => {
            let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.1), h.max(p.1)));
            if lo > hi {
                (0.0, 1.0)
            } else if hi - lo <= 1e-12 * lo.abs().max(1.0) {
                let m = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
                (lo - m, hi + m)
            } else {
                (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
            }
        }
    };
    let yticks = nice_ticks(ylo, yhi, 6.0);
    let xticks = nice_ticks(0.0, xmax, 7.0);
    let label_w = yticks.iter().map(|t| text_width(&t.1)).max().unwrap_or(0);
    let left = 12 + 7 * S + 14 + label_w + 10;
    let f = Frame { left, right: W - RIGHT, top: TOP, bottom: H - BOTTOM, xmax, ylo, yhi };
    let mut cv = Canvas { w: W, h: H, px: vec![255; W * H * 3] };
    let (l, r, t, b) = (f.left as i64, f.right as i64, f.top as i64, f.bottom as i64);

    // Grid first, so the curves lie on top of it.
    for (v, _) in &xticks {
        let x = f.map(*v, ylo).0.floor() as i64;
        cv.fill(x, t, x + 1, b, GRID);
    }
    for (v, _) in &yticks {
        let y = f.map(0.0, *v).1.floor() as i64;
        cv.fill(l, y, r, y + 1, GRID);
    }

    // Curves: one coverage mask per series, so overlapping segments of a curve do not darken its joints.
    let (pw, ph) = (f.right - f.left, f.bottom - f.top);
    let mut ink = vec![false; pw * ph];
    for (si, s) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).map(|p| f.map(p.0, p.1)).collect();
        let mut cov = vec![0f32; pw * ph];
        for w in pts.windows(2) {
            cover_segment(&mut cov, &f, w[0], w[1]);
        }
        // At most about 40 markers per curve, so dense curves stay readable.
        let every = pts.len().div_ceil(40).max(1);
        for p in pts.iter().step_by(every) {
            cover_marker(&mut cov, &f, *p, si / PALETTE.len() + si);
        }
        let c = PALETTE[si % PALETTE.len()];
        for (i, a) in cov.iter().enumerate() {
            if *a > 0.0 {
                cv.blend((f.left + i % pw) as i64, (f.top + i / pw) as i64, c, *a as f64);
                ink[i] = true;
            }
        }
    }

    // Frame, ticks and tick labels.
    cv.fill(l - 1, t - 1, r + 1, t, INK);
    cv.fill(l - 1, b, r + 1, b + 1, INK);
    cv.fill(l - 1, t - 1, l, b + 1, INK);
    cv.fill(r, t - 1, r + 1, b + 1, INK);
    for (v, s) in &xticks {
        let x = f.map(*v, ylo).0.floor() as i64;
        cv.fill(x, b + 1, x + 1, b + 6, INK);
        cv.text(x - text_width(s) as i64 / 2, b + 10, s, INK, false);
    }
    for (v, s) in &yticks {
        let y = f.map(0.0, *v).1.floor() as i64;
        cv.fill(l - 6, y, l - 1, y + 1, INK);
        cv.text(l - 10 - text_width(s) as i64, y - (7 * S / 2) as i64, s, INK, false);
    }

    // Axis labels and title.
    cv.text((l + r - text_width(x_label) as i64) / 2, b + 10 + 8 * S as i64 + 10, x_label, INK, false);
    cv.text(12, (t + b - text_width(y_label) as i64) / 2, y_label, INK, true);
    let title_at = (((W - text_width(title).min(W)) / 2) as i64, 14);
    cv.text(title_at.0, title_at.1, title, INK, false);

    // Legend in the inside corner that hides the fewest curve pixels.
    let mut legend = None;
    if !series.is_empty() {
        let row = (8 * S + 6) as i64;
        let lw = 12 + 36 + 10 + series.iter().map(|s| text_width(s.label)).max().unwrap_or(0) as i64 + 12;
        let lh = 8 + series.len() as i64 * row + 2;
        let corners = [(r - lw - 12, t + 12), (r - lw - 12, b - lh - 12), (l + 12, t + 12), (l + 12, b - lh - 12)];
        let hidden = |&(x0, y0): &(i64, i64)| -> usize {
            (y0.max(t)..(y0 + lh).min(b))
                .flat_map(|y| (x0.max(l)..(x0 + lw).min(r)).map(move |x| (x, y)))
                .filter(|&(x, y)| ink[(y - t) as usize * pw + (x - l) as usize])
                .count()
        };
        let &(x0, y0) = corners.iter().min_by_key(|c| hidden(c)).unwrap_or(&corners[0]);
        cv.fill(x0 - 1, y0 - 1, x0 + lw + 1, y0 + lh + 1, [160, 160, 160]);
        cv.fill(x0, y0, x0 + lw, y0 + lh, BG);
        for (si, s) in series.iter().enumerate() {
            let c = PALETTE[si % PALETTE.len()];
            let yc = y0 + 8 + si as i64 * row + (7 * S / 2) as i64;
            let mut cov = vec![0f32; pw * ph];
            let (a, e) = ((x0 as f64 + 12.0, yc as f64 + 0.5), (x0 as f64 + 48.0, yc as f64 + 0.5));
            cover_segment(&mut cov, &f, a, e);
            cover_marker(&mut cov, &f, ((a.0 + e.0) / 2.0, a.1), si / PALETTE.len() + si);
            for (i, v) in cov.iter().enumerate() {
                cv.blend((f.left + i % pw) as i64, (f.top + i / pw) as i64, c, *v as f64);
            }
            cv.text(x0 + 58, yc - (7 * S / 2) as i64, s.label, INK, false);
        }
        legend = Some((x0, y0, x0 + lw, y0 + lh));
    }
    Ok((cv, Layout { frame: f, legend, title_at }))
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes.iter().fold(!0u32, |c, &b| TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// Adler-32, the zlib stream checksum.
fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the most bytes whose sums cannot overflow u32 before the modulo.
    for block in bytes.chunks(5552) {
        for &x in block {
            a += x as u32;
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

/// 8-bit RGB PNG: filter type 0 on every row, zlib stream of stored (uncompressed) deflate blocks.
fn encode_png(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(h * (1 + 3 * w));
    for row in rgb.chunks(3 * w) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = Vec::with_capacity(raw.len() + raw.len() / 65_535 * 5 + 16);
    z.extend_from_slice(&[0x78, 0x01]);
    let n = raw.len().div_ceil(65_535).max(1);
    for (i, block) in raw.chunks(65_535).enumerate() {
        z.push((i + 1 == n) as u8);
        z.extend_from_slice(&(block.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    for (ty, data) in [(b"IHDR", &ihdr), (b"IDAT", &z), (b"IEND", &Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(ty);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

/// The 5×7 glyph of a printable ASCII character (one byte per row, bit 4 = leftmost column); others map to '?'.
fn glyph(c: char) -> &'static [u8; 7] {
    let i = c as usize;
    if (32..127).contains(&i) { &FONT[i - 32] } else { &FONT[(b'?' - 32) as usize] }
}

#[rustfmt::skip]
const FONT: [[u8; 7]; 95] = [
    [0x00,0x00,0x00,0x00,0x00,0x00,0x00], [0x04,0x04,0x04,0x04,0x04,0x00,0x04], // space !
    [0x0A,0x0A,0x0A,0x00,0x00,0x00,0x00], [0x0A,0x0A,0x1F,0x0A,0x1F,0x0A,0x0A], // " #
    [0x04,0x0F,0x14,0x0E,0x05,0x1E,0x04], [0x18,0x19,0x02,0x04,0x08,0x13,0x03], // $ %
    [0x0C,0x12,0x14,0x08,0x15,0x12,0x0D], [0x0C,0x04,0x08,0x00,0x00,0x00,0x00], // & '
    [0x02,0x04,0x08,0x08,0x08,0x04,0x02], [0x08,0x04,0x02,0x02,0x02,0x04,0x08], // ( )
    [0x00,0x04,0x15,0x0E,0x15,0x04,0x00], [0x00,0x04,0x04,0x1F,0x04,0x04,0x00], // * +
    [0x00,0x00,0x00,0x00,0x0C,0x04,0x08], [0x00,0x00,0x00,0x1F,0x00,0x00,0x00], // , -
    [0x00,0x00,0x00,0x00,0x00,0x0C,0x0C], [0x00,0x01,0x02,0x04,0x08,0x10,0x00], // . /
    [0x0E,0x11,0x13,0x15,0x19,0x11,0x0E], [0x04,0x0C,0x04,0x04,0x04,0x04,0x0E], // 0 1
    [0x0E,0x11,0x01,0x02,0x04,0x08,0x1F], [0x1F,0x02,0x04,0x02,0x01,0x11,0x0E], // 2 3
    [0x02,0x06,0x0A,0x12,0x1F,0x02,0x02], [0x1F,0x10,0x1E,0x01,0x01,0x11,0x0E], // 4 5
    [0x06,0x08,0x10,0x1E,0x11,0x11,0x0E], [0x1F,0x01,0x02,0x04,0x08,0x08,0x08], // 6 7
    [0x0E,0x11,0x11,0x0E,0x11,0x11,0x0E], [0x0E,0x11,0x11,0x0F,0x01,0x02,0x0C], // 8 9
    [0x00,0x0C,0x0C,0x00,0x0C,0x0C,0x00], [0x00,0x0C,0x0C,0x00,0x0C,0x04,0x08], // : ;
    [0x02,0x04,0x08,0x10,0x08,0x04,0x02], [0x00,0x00,0x1F,0x00,0x1F,0x00,0x00], // < =
    [0x08,0x04,0x02,0x01,0x02,0x04,0x08], [0x0E,0x11,0x01,0x02,0x04,0x00,0x04], // > ?
    [0x0E,0x11,0x01,0x0D,0x15,0x15,0x0E], [0x0E,0x11,0x11,0x11,0x1F,0x11,0x11], // @ A
    [0x1E,0x11,0x11,0x1E,0x11,0x11,0x1E], [0x0E,0x11,0x10,0x10,0x10,0x11,0x0E], // B C
    [0x1C,0x12,0x11,0x11,0x11,0x12,0x1C], [0x1F,0x10,0x10,0x1E,0x10,0x10,0x1F], // D E
    [0x1F,0x10,0x10,0x1E,0x10,0x10,0x10], [0x0E,0x11,0x10,0x17,0x11,0x11,0x0F], // F G
    [0x11,0x11,0x11,0x1F,0x11,0x11,0x11], [0x0E,0x04,0x04,0x04,0x04,0x04,0x0E], // H I
    [0x07,0x02,0x02,0x02,0x02,0x12,0x0C], [0x11,0x12,0x14,0x18,0x14,0x12,0x11], // J K
    [0x10,0x10,0x10,0x10,0x10,0x10,0x1F], [0x11,0x1B,0x15,0x15,0x11,0x11,0x11], // L M
    [0x11,0x11,0x19,0x15,0x13,0x11,0x11], [0x0E,0x11,0x11,0x11,0x11,0x11,0x0E], // N O
    [0x1E,0x11,0x11,0x1E,0x10,0x10,0x10], [0x0E,0x11,0x11,0x11,0x15,0x12,0x0D], // P Q
    [0x1E,0x11,0x11,0x1E,0x14,0x12,0x11], [0x0F,0x10,0x10,0x0E,0x01,0x01,0x1E], // R S
    [0x1F,0x04,0x04,0x04,0x04,0x04,0x04], [0x11,0x11,0x11,0x11,0x11,0x11,0x0E], // T U
    [0x11,0x11,0x11,0x11,0x11,0x0A,0x04], [0x11,0x11,0x11,0x15,0x15,0x15,0x0A], // V W
    [0x11,0x11,0x0A,0x04,0x0A,0x11,0x11], [0x11,0x11,0x11,0x0A,0x04,0x04,0x04], // X Y
    [0x1F,0x01,0x02,0x04,0x08,0x10,0x1F], [0x0E,0x08,0x08,0x08,0x08,0x08,0x0E], // Z [
    [0x00,0x10,0x08,0x04,0x02,0x01,0x00], [0x0E,0x02,0x02,0x02,0x02,0x02,0x0E], // \ ]
    [0x04,0x0A,0x11,0x00,0x00,0x00,0x00], [0x00,0x00,0x00,0x00,0x00,0x00,0x1F], // ^ _
    [0x08,0x04,0x02,0x00,0x00,0x00,0x00], [0x00,0x00,0x0E,0x01,0x0F,0x11,0x0F], // ` a
    [0x10,0x10,0x16,0x19,0x11,0x11,0x1E], [0x00,0x00,0x0E,0x10,0x10,0x11,0x0E], // b c
    [0x01,0x01,0x0D,0x13,0x11,0x11,0x0F], [0x00,0x00,0x0E,0x11,0x1F,0x10,0x0E], // d e
    [0x06,0x09,0x08,0x1C,0x08,0x08,0x08], [0x00,0x0F,0x11,0x11,0x0F,0x01,0x0E], // f g
    [0x10,0x10,0x16,0x19,0x11,0x11,0x11], [0x04,0x00,0x0C,0x04,0x04,0x04,0x0E], // h i
    [0x02,0x00,0x06,0x02,0x02,0x12,0x0C], [0x10,0x10,0x12,0x14,0x18,0x14,0x12], // j k
    [0x0C,0x04,0x04,0x04,0x04,0x04,0x0E], [0x00,0x00,0x1A,0x15,0x15,0x11,0x11], // l m
    [0x00,0x00,0x16,0x19,0x11,0x11,0x11], [0x00,0x00,0x0E,0x11,0x11,0x11,0x0E], // n o
    [0x00,0x00,0x1E,0x11,0x1E,0x10,0x10], [0x00,0x00,0x0D,0x13,0x0F,0x01,0x01], // p q
    [0x00,0x00,0x16,0x19,0x10,0x10,0x10], [0x00,0x00,0x0E,0x10,0x0E,0x01,0x1E], // r s
    [0x08,0x08,0x1C,0x08,0x08,0x09,0x06], [0x00,0x00,0x11,0x11,0x11,0x13,0x0D], // t u
    [0x00,0x00,0x11,0x11,0x11,0x0A,0x04], [0x00,0x00,0x11,0x11,0x15,0x15,0x0A], // v w
    [0x00,0x00,0x11,0x0A,0x04,0x0A,0x11], [0x00,0x00,0x11,0x11,0x0F,0x01,0x0E], // x y
    [0x00,0x00,0x1F,0x02,0x04,0x08,0x1F], [0x02,0x04,0x04,0x08,0x04,0x04,0x02], // z {
    [0x04,0x04,0x04,0x04,0x04,0x04,0x04], [0x08,0x04,0x04,0x02,0x04,0x04,0x08], // | }
    [0x00,0x00,0x08,0x15,0x02,0x00,0x00],                                       // ~
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time CRC-32, independent of the table-driven one.
    fn crc_ref(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            }
        }
        !c
    }

    /// Checks the signature, every chunk's CRC, IHDR and the zlib framing; returns (width, height, raw).
    fn parse_png(png: &[u8]) -> (usize, usize, Vec<u8>) {
        assert_eq!(&png[..8], &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        let (mut i, mut dims, mut idat, mut types) = (8, (0, 0), Vec::new(), Vec::new());
        while i < png.len() {
            let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
            let body = &png[i + 4..i + 8 + len];
            let crc = u32::from_be_bytes(png[i + 8 + len..i + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc_ref(body), "chunk CRC");
            let (ty, data) = (&body[..4], &body[4..]);
            types.push(String::from_utf8(ty.to_vec()).unwrap());
            if ty == b"IHDR" {
                let be = |k: usize| u32::from_be_bytes(data[k..k + 4].try_into().unwrap()) as usize;
                dims = (be(0), be(4));
                assert_eq!(&data[8..], &[8, 2, 0, 0, 0], "8-bit RGB, no interlace");
            } else if ty == b"IDAT" {
                idat.extend_from_slice(data);
            }
            i += 12 + len;
        }
        assert_eq!(types.first().map(String::as_str), Some("IHDR"));
        assert_eq!(types.last().map(String::as_str), Some("IEND"));
        assert_eq!((idat[0] as u32 * 256 + idat[1] as u32) % 31, 0, "zlib header check");
        assert_eq!(idat[0] & 0x0F, 8, "deflate");
        let (mut p, mut raw) = (2, Vec::new());
        loop {
            let hdr = idat[p];
            assert_eq!((hdr >> 1) & 3, 0, "stored block");
            let len = u16::from_le_bytes([idat[p + 1], idat[p + 2]]);
            let nlen = u16::from_le_bytes([idat[p + 3], idat[p + 4]]);
            assert_eq!(len, !nlen);
            raw.extend_from_slice(&idat[p + 5..p + 5 + len as usize]);
            p += 5 + len as usize;
            if hdr & 1 == 1 {
                break;
            }
        }
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &raw {
            a = (a + x as u64) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(u32::from_be_bytes(idat[p..p + 4].try_into().unwrap()) as u64, (b << 16) | a, "Adler-32");
        assert_eq!(p + 4, idat.len());
        (dims.0, dims.1, raw)
    }

    #[test]
    fn checksums_match_published_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let long: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8 | 0x80).collect();
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + x as u64) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&long) as u64, (b << 16) | a);
        assert_eq!(crc32(&long), crc_ref(&long));
    }

    #[test]
    fn png_frames_and_pixels_round_trip() {
        let pts = [(0.0, 0.1), (5.0, 0.5), (10.0, 0.9)];
        let (cv, _) = render("t", "x", "y", &[Series { label: "a", points: &pts }], None).unwrap();
        let (w, h, raw) = parse_png(&encode_png(cv.w, cv.h, &cv.px));
        assert_eq!((w, h), (W, H));
        assert_eq!(raw.len(), h * (1 + 3 * w));
        for (y, row) in raw.chunks(1 + 3 * w).enumerate() {
            assert_eq!(row[0], 0, "filter type of row {y}");
            assert_eq!(&row[1..], &cv.px[y * 3 * w..(y + 1) * 3 * w], "row {y}");
        }
    }

    #[test]
    fn curves_have_their_colour_and_empty_space_is_background() {
        let rising = [(0.0, 0.0), (10.0, 1.0)];
        let flat = [(0.0, 0.3), (10.0, 0.3)];
        let series = [Series { label: "rising", points: &rising }, Series { label: "flat", points: &flat }];
        let (cv, lay) = render("T", "x", "y", &series, Some((0.0, 1.0))).unwrap();
        let f = lay.frame;
        // In the middle column of the rising line (no marker there), the pixel whose centre is within half a
        // pixel of the line is fully the first colour.
        let (a, b) = (f.map(0.0, 0.0), f.map(10.0, 1.0));
        let xc = f.map(5.0, 0.5).0.floor() + 0.5;
        let yl = a.1 + (xc - a.0) * (b.1 - a.1) / (b.0 - a.0);
        assert_eq!(cv.get(xc as usize, yl as usize), PALETTE[0]);
        let (x, y) = f.map(7.3, 0.3);
        assert_eq!(cv.get(x as usize, y as usize), PALETTE[1]);
        // Data points at x=1 and y=0.9 lie off the grid (ticks every 2 in x and 0.2 in y), far from both lines.
        let (x, y) = f.map(1.0, 0.9);
        let (lx0, ly0, lx1, ly1) = lay.legend.unwrap();
        assert!(!((lx0..lx1).contains(&(x as i64)) && (ly0..ly1).contains(&(y as i64))));
        assert_eq!(cv.get(x as usize, y as usize), BG);
        // Beyond the 2 px line plus anti-aliasing (4 px away vertically) is background again.
        let (x, y) = f.map(7.3, 0.3);
        assert_eq!(cv.get(x as usize, y as usize - 4), BG);
        // The legend sits where it hides no curve: the rising line leaves the lower-right corner free.
        assert!(lx0 > f.left as i64 + (f.right - f.left) as i64 / 2 && ly1 > f.top as i64 + (f.bottom - f.top) as i64 / 2);
    }

    #[test]
    fn title_is_drawn_as_font_pixels() {
        let pts = [(1.0, 1.0), (2.0, 2.0)];
        let title = "Acc (%) vs t";
        let (cv, lay) = render(title, "x", "y", &[Series { label: "s", points: &pts }], None).unwrap();
        let (tx, ty) = lay.title_at;
        // Every font pixel of the title is ink and every other pixel of its box is background.
        for (ci, ch) in title.chars().enumerate() {
            for gy in 0..7 {
                for gx in 0..6 {
                    let on = gx < 5 && glyph(ch)[gy] >> (4 - gx) & 1 == 1;
                    let (x, y) = (tx as usize + (ci * 6 + gx) * S, ty as usize + gy * S);
                    assert_eq!(cv.get(x, y), if on { INK } else { BG }, "'{ch}' at ({gx}, {gy})");
                }
            }
        }
        // Title band outside the text is empty.
        assert!((0..tx as usize - 1).all(|x| cv.get(x, ty as usize + 6) == BG));
    }

    #[test]
    fn ticks_are_nice_numbers() {
        let t = nice_ticks(0.0, 1.0, 6.0);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = nice_ticks(0.0, 1234.0, 7.0);
        assert_eq!(t.iter().map(|t| t.0).collect::<Vec<_>>(), [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0]);
        assert_eq!(t[3].1, "600");
        let t = nice_ticks(-0.37, 0.12, 6.0);
        assert_eq!(t.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["-0.3", "-0.2", "-0.1", "0.0", "0.1"]);
        let t = nice_ticks(0.0, 3.0e7, 6.0);
        assert_eq!(t[1].1, "5.0e6");
    }

    #[test]
    fn degenerate_inputs_still_plot() {
        let dir = std::env::temp_dir().join(format!("scadles-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = [(3.0, 0.5)];
        let flat = [(0.0, 2.0), (f64::NAN, 1.0), (4.0, 2.0), (5.0, f64::INFINITY)];
        let cases: [&[Series]; 4] = [
            &[],
            &[Series { label: "empty", points: &[] }],
            &[Series { label: "one", points: &one }],
            &[Series { label: "flat", points: &flat }],
        ];
        for (i, s) in cases.iter().enumerate() {
            let p = dir.join(format!("case{i}.png"));
            line_plot(&p, "title", "x", "y", s, None).unwrap();
            let (w, h, raw) = parse_png(&std::fs::read(&p).unwrap());
            assert_eq!(raw.len(), h * (1 + 3 * w));
        }
        // All-equal y gets a non-empty range around the value, which is drawn inside it.
        let (cv, lay) = render("", "", "", cases[3], None).unwrap();
        assert!(lay.frame.ylo < 2.0 && lay.frame.yhi > 2.0);
        let (x, y) = lay.frame.map(2.0, 2.0);
        assert_eq!(cv.get(x as usize, y as usize), PALETTE[0]);
        let (cv, lay) = render("", "", "", cases[2], None).unwrap();
        let (x, y) = lay.frame.map(3.0, 0.5);
        assert_eq!(cv.get(x as usize, y as usize), PALETTE[0], "single point marker");
        assert!(line_plot(&dir.join("bad.png"), "", "", "", cases[2], Some((1.0, 1.0))).is_err());
        assert!(line_plot(&dir.join("bad.png"), "", "", "", cases[2], Some((0.0, f64::NAN))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn accuracy_vs_time_example() {
        let curve = |tau: f64, top: f64, n: usize, dt: f64| -> Vec<(f64, f64)> {
            (0..n).map(|i| (i as f64 * dt, top * (1.0 - (-(i as f64 * dt) / tau).exp()) + 10.0)).collect()
        };
        let (a, b) = (curve(300.0, 80.0, 30, 40.0), curve(700.0, 78.0, 25, 48.0));
        let series = [Series { label: "ScaDLES", points: &a }, Series { label: "DDL baseline", points: &b }];
        let p = std::env::temp_dir().join(format!("scadles-plot-example-{}.png", std::process::id()));
        let (title, xl, yl) = ("ResNet152 on CIFAR10: test accuracy vs time", "clock time (s)", "top-1 accuracy (%)");
        line_plot(&p, title, xl, yl, &series, Some((0.0, 100.0))).unwrap();
        let (w, h, raw) = parse_png(&std::fs::read(&p).unwrap());
        std::fs::remove_file(&p).unwrap();
        assert_eq!((w, h), (W, H));
        // The file holds exactly the rendered raster.
        let (cv, _) = render(title, xl, yl, &series, Some((0.0, 100.0))).unwrap();
        assert!(raw.chunks(1 + 3 * w).zip(cv.px.chunks(3 * w)).all(|(r, c)| &r[1..] == c));
    }
}
