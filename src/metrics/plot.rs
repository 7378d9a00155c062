//! Plots written twice, side by side: `NAME.png` (plotters' bitmap backend, encoded with real
//! deflate compression) and `NAME.svg` (plotters' SVG backend), each atomically (temporary file,
//! then rename).
//!
//! - [`LinePlot`]: labelled series, axis labels, a title, an optional fixed range per axis, linear
//!   or log10 axes, a legend. [`line_plot`] is the short form used for `accuracy_vs_time`.
//! - [`DistPlot`]: box or violin plots with categories on x (e.g. batch sizes 64/128/256/512) and
//!   one or more groups per category (e.g. rate sets S1 vs S2), a legend, linear or log10 y.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (`assets/fonts/`, with its licence) and
//! registered with plotters' `ab_glyph` font backend: no system font, font-kit or fontconfig is
//! needed at run time. The SVG names the family `sans-serif` and leaves text rendering to the viewer.
use crate::error::{Error, Result};
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Size of every plot in pixels (the SVG uses the same user units).
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 560;

/// DejaVu Sans 2.37 (assets/fonts/LICENSE-DejaVu.txt).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Ten well-separated colours (the tab10 cycle); groups and series beyond ten reuse them.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series with at most this many points also get a marker at each point.
const MARKER_MAX: usize = 60;

/// One curve: a legend label and its (x, y) points, drawn in the given order. Non-finite points
/// are skipped.
pub struct Series<'a> {
    pub label: &'a str,
    pub points: &'a [(f64, f64)],
}

/// How an axis maps values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    #[default]
    Linear,
    /// log10: every plotted value must be > 0.
    Log10,
}

/// Where the legend goes, inside the plotting area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Legend {
    #[default]
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
}

/// The two files a plot writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// `path` with its extension replaced by `.png` and by `.svg`.
pub fn outputs(path: &Path) -> Written {
    Written {
        png: path.with_extension("png"),
        svg: path.with_extension("svg"),
    }
}

/// A line plot. Axis ranges: the given one, else linear x from min(0, data) to the largest x,
/// linear y the data's range padded by 5%, log axes the data's range padded by 5% of its decades.
#[derive(Default)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series<'a>],
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub legend: Legend,
}

/// Writes a line plot of `series` to `path` with a `.png` and an `.svg` extension (atomically).
/// The x axis runs from 0 to the largest finite x; the y axis uses `y_range`, or the data's range
/// padded by 5% when `None`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<Written> {
    LinePlot {
        title,
        x_label,
        y_label,
        series,
        y_range,
        ..Default::default()
    }
    .write(path)
}

/// Box plot (quartile box, median, whiskers at the most extreme values within 1.5 IQR, the rest as
/// outliers) or violin plot (Gaussian kernel density with Scott's bandwidth between the extremes,
/// each violin scaled to its slot; the quartiles as a bar and the median as a dot), or bars (one
/// bar from the bottom of the y axis to the mean of the values: a bar chart when each slot holds
/// one value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DistKind {
    #[default]
    Box,
    Violin,
    Bar,
}

/// One group of a [`DistPlot`]: a legend label and, per category, the values (same order and
/// number as the plot's categories; an empty list leaves that slot empty). Non-finite values are
/// skipped.
pub struct Group<'a> {
    pub label: &'a str,
    pub values: &'a [Vec<f64>],
}

/// Distributions per category and group: categories side by side on x, the groups of a category
/// side by side within its slot, each group in its own colour.
#[derive(Default)]
pub struct DistPlot<'a> {
    pub kind: DistKind,
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub categories: &'a [&'a str],
    pub groups: &'a [Group<'a>],
    pub y_range: Option<(f64, f64)>,
    pub y_scale: Scale,
    pub legend: Legend,
}

impl LinePlot<'_> {
    /// Writes `path` as `.png` and `.svg`; returns both paths.
    pub fn write(&self, path: &Path) -> Result<Written> {
        let what = format!("plot '{}'", self.title);
        for s in self.series {
            for &(x, y) in finite(s.points) {
                check_log(&what, "x", self.x_scale, x, || {
                    format!("series '{}' at y = {y}", s.label)
                })?;
                check_log(&what, "y", self.y_scale, y, || {
                    format!("series '{}' at x = {x}", s.label)
                })?;
            }
        }
        let xs = self
            .series
            .iter()
            .flat_map(|s| finite(s.points).map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| finite(s.points).map(|p| p.1));
        let x = axis_range(
            &what,
            "x",
            self.x_range,
            self.x_scale,
            xs,
            AutoRange::FromZero,
        )?;
        let y = axis_range(
            &what,
            "y",
            self.y_range,
            self.y_scale,
            ys,
            AutoRange::Padded,
        )?;
        write_both(path, &LineFigure { p: self, x, y })
    }
}

impl DistPlot<'_> {
    /// Writes `path` as `.png` and `.svg`; returns both paths.
    pub fn write(&self, path: &Path) -> Result<Written> {
        let what = format!("plot '{}'", self.title);
        if self.categories.is_empty() {
            return Err(Error::Other(format!("{what}: no categories to plot")));
        }
        for g in self.groups {
            if g.values.len() != self.categories.len() {
                return Err(Error::Other(format!(
                    "{what}: group '{}' has {} value lists for {} categories",
                    g.label,
                    g.values.len(),
                    self.categories.len()
                )));
            }
            for (c, vals) in self.categories.iter().zip(g.values) {
                for &v in vals.iter().filter(|v| v.is_finite()) {
                    check_log(&what, "y", self.y_scale, v, || {
                        format!("group '{}' category '{c}'", g.label)
                    })?;
                }
            }
        }
        let ys = self
            .groups
            .iter()
            .flat_map(|g| g.values.iter().flatten().copied().filter(|v| v.is_finite()));
        let y = axis_range(
            &what,
            "y",
            self.y_range,
            self.y_scale,
            ys,
            AutoRange::Padded,
        )?;
        write_both(path, &DistFigure { p: self, y })
    }
}

fn finite<'a>(points: &'a [(f64, f64)]) -> impl Iterator<Item = &'a (f64, f64)> + 'a {
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// A log axis takes only values > 0: one line naming the plot, the axis, the value and where it is.
fn check_log(what: &str, axis: &str, scale: Scale, v: f64, at: impl Fn() -> String) -> Result<()> {
    if scale == Scale::Log10 && v <= 0.0 {
        return Err(Error::Other(format!(
            "{what}: log10 {axis} axis needs values > 0, got {v} ({})",
            at()
        )));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum AutoRange {
    /// Linear: from min(0, data) to the data's maximum, unpadded (time axes).
    FromZero,
    /// The data's range padded by 5% on each side.
    Padded,
}

/// The plotted range of one axis: the given one (validated) or one from the data.
fn axis_range(
    what: &str,
    axis: &str,
    given: Option<(f64, f64)>,
    scale: Scale,
    data: impl Iterator<Item = f64>,
    auto: AutoRange,
) -> Result<(f64, f64)> {
    if let Some((lo, hi)) = given {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::Other(format!(
                "{what}: {axis} range [{lo}, {hi}] must be finite with low < high"
            )));
        }
        if scale == Scale::Log10 && lo <= 0.0 {
            return Err(Error::Other(format!(
                "{what}: log10 {axis} axis needs a range above 0, got [{lo}, {hi}]"
            )));
        }
        return Ok((lo, hi));
    }
    let (mut lo, mut hi) = data.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo > hi {
        // No data: a unit range (one decade on a log axis).
        return Ok(if scale == Scale::Log10 {
            (1.0, 10.0)
        } else {
            (0.0, 1.0)
        });
    }
    match scale {
        Scale::Linear => {
            if auto == AutoRange::FromZero {
                lo = lo.min(0.0);
                if hi <= lo {
                    hi = lo + 1.0;
                }
                return Ok((lo, hi));
            }
            let pad = if hi > lo {
                0.05 * (hi - lo)
            } else {
                (0.1 * hi.abs()).max(0.5)
            };
            Ok((lo - pad, hi + pad))
        }
        Scale::Log10 => {
            let (a, b) = (lo.log10(), hi.log10());
            let pad = if b > a { 0.05 * (b - a) } else { 0.5 };
            Ok((10f64.powf(a - pad), 10f64.powf(b + pad)))
        }
    }
}

/// Something drawn on any plotters backend (the bitmap and the SVG one).
trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Registers the embedded font with plotters once per process.
fn font() -> Result<()> {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *OK.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(Error::Other(
            "plot: the embedded font could not be loaded".into(),
        ))
    }
}

mod raster {
    use super::FONT;
    use plotters::prelude::{BitMapBackend, DrawingBackend};
    use plotters_backend::text_anchor::{HPos, VPos};
    use plotters_backend::{
        BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
    };

    /// The bitmap backend with its text drawn here. plotters 0.3.7's `ab_glyph` text drops each glyph's
    /// left side bearing (a "1" sits left of its place, so "16" reads "1 6"); this wrapper forwards
    /// everything to [`BitMapBackend`] but `draw_text`, which places each glyph at its own bounds
    /// (plotters' vertical placement and layout box are kept, so the layout does not move).
    pub(super) struct Raster<'a>(pub(super) BitMapBackend<'a>);

    fn glyph_font() -> &'static ab_glyph::FontRef<'static> {
        static F: std::sync::OnceLock<ab_glyph::FontRef<'static>> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            ab_glyph::FontRef::try_from_slice(FONT)
                .expect("the embedded font parses (checked by font())")
        })
    }

    impl<'a> DrawingBackend for Raster<'a> {
        type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

        fn get_size(&self) -> (u32, u32) {
            self.0.get_size()
        }
        fn ensure_prepared(
            &mut self,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.ensure_prepared()
        }
        fn present(&mut self) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.present()
        }
        fn draw_pixel(
            &mut self,
            p: BackendCoord,
            c: BackendColor,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.draw_pixel(p, c)
        }
        fn draw_line<S: BackendStyle>(
            &mut self,
            from: BackendCoord,
            to: BackendCoord,
            style: &S,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.draw_line(from, to, style)
        }
        fn draw_rect<S: BackendStyle>(
            &mut self,
            upper_left: BackendCoord,
            bottom_right: BackendCoord,
            style: &S,
            fill: bool,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.draw_rect(upper_left, bottom_right, style, fill)
        }
        fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            path: I,
            style: &S,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.draw_path(path, style)
        }
        fn draw_circle<S: BackendStyle>(
            &mut self,
            center: BackendCoord,
            radius: u32,
            style: &S,
            fill: bool,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.draw_circle(center, radius, style, fill)
        }
        fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            vert: I,
            style: &S,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.fill_polygon(vert, style)
        }
        fn blit_bitmap(
            &mut self,
            pos: BackendCoord,
            size: (u32, u32),
            src: &[u8],
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.0.blit_bitmap(pos, size, src)
        }

        fn draw_text<T: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &T,
            pos: BackendCoord,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            use ab_glyph::{Font, ScaleFont};
            let color = style.color();
            if color.alpha == 0.0 {
                return Ok(());
            }
            let ((min_x, min_y), (max_x, max_y)) = style
                .layout_box(text)
                .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
            let (width, height) = (max_x - min_x, max_y - min_y);
            let dx = match style.anchor().h_pos {
                HPos::Left => 0,
                HPos::Right => -width,
                HPos::Center => -width / 2,
            };
            let dy = match style.anchor().v_pos {
                VPos::Top => 0,
                VPos::Center => -height / 2,
                VPos::Bottom => -height,
            };
            let trans = style.transform();
            let size = style.size() as f32;
            let font = glyph_font();
            let scaled = font.as_scaled(size);
            let mut caret = 0f32;
            let mut prev = None;
            let mut px = Vec::new();
            for ch in text.chars() {
                let id = font.glyph_id(ch);
                if let Some(p) = prev {
                    caret += scaled.kern(p, id);
                }
                if let Some(g) = font
                    .outline_glyph(id.with_scale_and_position(size, ab_glyph::point(caret, 0.0)))
                {
                    let b = g.px_bounds();
                    // Baseline at size/2 below the top, as plotters places it.
                    let (x0, y0) = (b.min.x.round() as i32, (size / 2.0 + b.min.y) as i32);
                    g.draw(|x, y, cov| px.push((x0 + x as i32, y0 + y as i32, cov)));
                }
                caret += scaled.h_advance(id);
                prev = Some(id);
            }
            for (x, y, cov) in px {
                let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
                let c = BackendColor {
                    alpha: color.alpha * cov as f64,
                    rgb: color.rgb,
                };
                self.0.draw_pixel((pos.0 + x, pos.1 + y), c)?;
            }
            Ok(())
        }
    }
}
use raster::Raster;

/// Renders `fig` to an RGB raster and to SVG text, then writes `NAME.png` and `NAME.svg`.
fn write_both(path: &Path, fig: &impl Figure) -> Result<Written> {
    font()?;
    let out = outputs(path);
    let fail = |e: String| Error::Other(format!("plot {}: {e}", path.display()));
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area =
            Raster(BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT))).into_drawing_area();
        fig.draw(&area).map_err(fail)?;
        area.present().map_err(|e| fail(draw_err(e)))?;
    }
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        fig.draw(&area).map_err(fail)?;
        area.present().map_err(|e| fail(draw_err(e)))?;
    }
    super::write_atomic(&out.png, &encode_png(WIDTH, HEIGHT, &rgb).map_err(fail)?)?;
    super::write_atomic(&out.svg, svg.as_bytes())?;
    Ok(out)
}

/// An 8-bit RGB PNG at the best deflate level, with adaptive row filters.
fn encode_png(w: u32, h: u32, rgb: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut wr = enc.write_header().map_err(|e| e.to_string())?;
    wr.write_image_data(rgb).map_err(|e| e.to_string())?;
    wr.finish().map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// A tick label: up to 4 decimals with trailing zeros dropped, scientific outside [1e-3, 1e6).
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        return "0".into();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if (1e-3..1e6).contains(&a) {
        trim(format!("{v:.4}"))
    } else {
        let e = a.log10().floor();
        let m = v / 10f64.powf(e);
        format!("{}e{e}", trim(format!("{m:.3}")))
    }
}

/// A log-axis tick label: 10ⁿ at powers of ten, else [`tick_label`].
fn log_tick_label(v: f64) -> String {
    let e = v.log10();
    if (e - e.round()).abs() < 1e-9 {
        const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        let n = e.round() as i64;
        let digits: String = n
            .unsigned_abs()
            .to_string()
            .chars()
            .map(|d| SUP[d as usize - '0' as usize])
            .collect();
        format!("10{}{digits}", if n < 0 { "⁻" } else { "" })
    } else {
        tick_label(v)
    }
}

fn label_fn(scale: Scale) -> fn(&f64) -> String {
    match scale {
        Scale::Linear => |v| tick_label(*v),
        Scale::Log10 => |v| log_tick_label(*v),
    }
}

fn legend_pos(l: Legend) -> SeriesLabelPosition {
    match l {
        Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
        Legend::UpperRight => SeriesLabelPosition::UpperRight,
        Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
        Legend::LowerRight => SeriesLabelPosition::LowerRight,
    }
}

/// The chart frame shared by both kinds: white background, title, margins, label areas.
fn builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &'b str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.margin(18).x_label_area_size(56).y_label_area_size(80);
    if !title.is_empty() {
        b.caption(title, (FAMILY, 22));
    }
    b
}

struct LineFigure<'a> {
    p: &'a LinePlot<'a>,
    x: (f64, f64),
    y: (f64, f64),
}

impl Figure for LineFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(draw_err)?;
        let ((x0, x1), (y0, y1)) = (self.x, self.y);
        match (self.p.x_scale, self.p.y_scale) {
            (Scale::Linear, Scale::Linear) => self.lines(area, x0..x1, y0..y1),
            (Scale::Linear, Scale::Log10) => self.lines(area, x0..x1, (y0..y1).log_scale()),
            (Scale::Log10, Scale::Linear) => self.lines(area, (x0..x1).log_scale(), y0..y1),
            (Scale::Log10, Scale::Log10) => {
                self.lines(area, (x0..x1).log_scale(), (y0..y1).log_scale())
            }
        }
        .map_err(draw_err)
    }
}

impl LineFigure<'_> {
    fn lines<DB, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let p = self.p;
        let mut chart = builder(area, p.title).build_cartesian_2d(x, y)?;
        let (xf, yf) = (label_fn(p.x_scale), label_fn(p.y_scale));
        chart
            .configure_mesh()
            .x_desc(p.x_label)
            .y_desc(p.y_label)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()?;
        for (i, s) in p.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = finite(s.points).copied().collect();
            let style = color.stroke_width(2);
            let anno = chart.draw_series(LineSeries::new(pts.iter().copied(), style))?;
            if !s.label.is_empty() {
                anno.label(s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
            }
            if pts.len() <= MARKER_MAX {
                chart.draw_series(pts.iter().map(|&q| Circle::new(q, 3, color.filled())))?;
            }
        }
        if p.series.iter().any(|s| !s.label.is_empty()) {
            chart
                .configure_series_labels()
                .position(legend_pos(p.legend))
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        Ok(())
    }
}

struct DistFigure<'a> {
    p: &'a DistPlot<'a>,
    y: (f64, f64),
}

impl Figure for DistFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(draw_err)?;
        let (y0, y1) = self.y;
        match self.p.y_scale {
            Scale::Linear => self.dists(area, y0..y1),
            Scale::Log10 => self.dists(area, (y0..y1).log_scale()),
        }
        .map_err(draw_err)
    }
}

/// The x axis of a [`DistPlot`]: category i centred at x = i over [−0.5, n − 0.5], one tick per
/// category (labelled by the mesh's formatter).
struct CategoryAxis {
    n: usize,
}

impl Ranged for CategoryAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.n as f64 - 0.5
    }

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v + 0.5) / self.n as f64;
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.n).map(|i| i as f64).collect()
        }
    }
}

/// Quartiles by linear interpolation between order statistics (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let (i, f) = (h.floor() as usize, h - h.floor());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

impl DistFigure<'_> {
    fn dists<DB, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y: Y,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let p = self.p;
        let n = p.categories.len();
        let x = CategoryAxis { n };
        let mut chart = builder(area, p.title).build_cartesian_2d(x, y)?;
        let cats = p.categories;
        let xf = |v: &f64| {
            cats.get(v.round().max(0.0) as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        let yf = label_fn(p.y_scale);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(p.x_label)
            .y_desc(p.y_label)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()?;
        let g_n = p.groups.len().max(1) as f64;
        let slot = 0.8 / g_n;
        let width = slot * 0.8;
        let log = p.y_scale == Scale::Log10;
        for (gi, g) in p.groups.iter().enumerate() {
            let color = PALETTE[gi % PALETTE.len()];
            let fill = color.mix(0.35).filled();
            let edge = color.stroke_width(2);
            let mut shapes: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut lines: Vec<(Vec<(f64, f64)>, ShapeStyle)> = Vec::new();
            let mut dots: Vec<((f64, f64), ShapeStyle)> = Vec::new();
            for (ci, vals) in g.values.iter().enumerate() {
                let mut v: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
                if v.is_empty() {
                    continue;
                }
                v.sort_by(f64::total_cmp);
                let xc = ci as f64 - 0.4 + slot * (gi as f64 + 0.5);
                let (l, r) = (xc - width / 2.0, xc + width / 2.0);
                let (q1, med, q3) = (quantile(&v, 0.25), quantile(&v, 0.5), quantile(&v, 0.75));
                match p.kind {
                    DistKind::Box => {
                        let iqr = q3 - q1;
                        let lo = v
                            .iter()
                            .copied()
                            .find(|&x| x >= q1 - 1.5 * iqr)
                            .unwrap_or(q1);
                        let hi = v
                            .iter()
                            .rev()
                            .copied()
                            .find(|&x| x <= q3 + 1.5 * iqr)
                            .unwrap_or(q3);
                        shapes.push(vec![(l, q1), (r, q1), (r, q3), (l, q3)]);
                        lines.push((vec![(l, med), (r, med)], BLACK.stroke_width(2)));
                        let cap = width / 4.0;
                        lines.push((vec![(xc, q3), (xc, hi)], edge));
                        lines.push((vec![(xc, q1), (xc, lo)], edge));
                        lines.push((vec![(xc - cap, hi), (xc + cap, hi)], edge));
                        lines.push((vec![(xc - cap, lo), (xc + cap, lo)], edge));
                        for &o in v.iter().filter(|&&x| x < lo || x > hi) {
                            dots.push(((xc, o), color.stroke_width(1)));
                        }
                    }
                    DistKind::Bar => {
                        let mean = v.iter().sum::<f64>() / v.len() as f64;
                        shapes.push(vec![(l, self.y.0), (r, self.y.0), (r, mean), (l, mean)]);
                    }
                    DistKind::Violin => {
                        let outline = violin(&v, xc, width / 2.0, log);
                        if outline.len() > 2 {
                            shapes.push(outline);
                        } else {
                            lines.push((vec![(l, v[0]), (r, v[0])], edge));
                        }
                        lines.push((vec![(xc, q1), (xc, q3)], BLACK.stroke_width(4)));
                        dots.push(((xc, med), WHITE.filled()));
                    }
                }
            }
            let anno = chart.draw_series(shapes.iter().map(|s| Polygon::new(s.clone(), fill)))?;
            if !g.label.is_empty() {
                anno.label(g.label)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill));
            }
            chart.draw_series(shapes.iter().map(|s| {
                let mut closed = s.clone();
                closed.push(s[0]);
                PathElement::new(closed, edge)
            }))?;
            chart.draw_series(lines.into_iter().map(|(pts, st)| PathElement::new(pts, st)))?;
            chart.draw_series(dots.into_iter().map(|(c, st)| Circle::new(c, 3, st)))?;
        }
        if p.groups.iter().any(|g| !g.label.is_empty()) {
            chart
                .configure_series_labels()
                .position(legend_pos(p.legend))
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        Ok(())
    }
}

/// Outline of one violin centred at `xc` with half-width `half` at the density's peak: a Gaussian
/// kernel density (Scott's bandwidth, in log10 space when `log`) from the smallest to the largest
/// value. Fewer than 3 points when the values are all equal (the caller draws a line).
fn violin(sorted: &[f64], xc: f64, half: f64, log: bool) -> Vec<(f64, f64)> {
    let t: Vec<f64> = sorted
        .iter()
        .map(|&v| if log { v.log10() } else { v })
        .collect();
    let n = t.len() as f64;
    let mean = t.iter().sum::<f64>() / n;
    let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let (lo, hi) = (t[0], t[t.len() - 1]);
    if !(hi > lo && sd > 0.0) {
        return Vec::new();
    }
    let bw = sd * n.powf(-0.2);
    const K: usize = 64;
    let grid: Vec<f64> = (0..=K)
        .map(|k| lo + (hi - lo) * k as f64 / K as f64)
        .collect();
    let dens: Vec<f64> = grid
        .iter()
        .map(|&g| {
            t.iter()
                .map(|&v| (-0.5 * ((g - v) / bw).powi(2)).exp())
                .sum()
        })
        .collect();
    let peak = dens.iter().copied().fold(0.0, f64::max);
    let back = |v: f64| if log { 10f64.powf(v) } else { v };
    let left = grid
        .iter()
        .zip(&dens)
        .map(|(&g, &d)| (xc - half * d / peak, back(g)));
    let right = grid
        .iter()
        .zip(&dens)
        .rev()
        .map(|(&g, &d)| (xc + half * d / peak, back(g)));
    left.chain(right).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scadles-plot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The PNG signature and the IHDR chunk's width and height; the file is under 200 KB.
    fn check_png(path: &Path) {
        let b = std::fs::read(path).unwrap();
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
        assert_eq!(&b[12..16], b"IHDR");
        let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!((be(16), be(20)), (WIDTH, HEIGHT));
        assert_eq!(b[24..26], [8, 2], "8-bit RGB");
        assert!(b.len() < 200_000, "{}: {} bytes", path.display(), b.len());
        assert_eq!(&b[b.len() - 8..b.len() - 4], b"IEND");
    }

    /// An SVG document of the plot's size that contains every string of `texts` as text.
    fn check_svg(path: &Path, texts: &[&str]) -> String {
        let s = std::fs::read_to_string(path).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{}",
            &s[..s.len().min(200)]
        );
        assert!(
            s.contains(&format!("width=\"{WIDTH}\""))
                && s.contains(&format!("height=\"{HEIGHT}\""))
        );
        assert_eq!(s.matches("<text").count(), s.matches("</text>").count());
        let shown = svg_texts(&s);
        for t in texts {
            assert!(
                shown.iter().any(|s| s == t),
                "no text '{t}' in {}: {shown:?}",
                path.display()
            );
        }
        s
    }

    /// The contents of every `<text>` element, trimmed.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                Some(
                    t.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn line_plot_writes_png_and_svg_with_labels_and_legend() {
        let dir = temp("line");
        let curve = |tau: f64, top: f64, n: usize, dt: f64| -> Vec<(f64, f64)> {
            (0..n)
                .map(|i| {
                    (
                        i as f64 * dt,
                        top * (1.0 - (-(i as f64 * dt) / tau).exp()) + 0.1,
                    )
                })
                .collect()
        };
        let (a, b) = (curve(300.0, 0.8, 30, 40.0), curve(700.0, 0.78, 25, 48.0));
        let series = [
            Series {
                label: "ScaDLES",
                points: &a,
            },
            Series {
                label: "DDL baseline",
                points: &b,
            },
        ];
        let w = line_plot(
            &dir.join("accuracy_vs_time.png"),
            "accuracy vs time",
            "clock (s)",
            "top-1 accuracy",
            &series,
            Some((0.0, 1.0)),
        )
        .unwrap();
        assert_eq!(
            w,
            Written {
                png: dir.join("accuracy_vs_time.png"),
                svg: dir.join("accuracy_vs_time.svg")
            }
        );
        check_png(&w.png);
        check_svg(
            &w.svg,
            &[
                "accuracy vs time",
                "clock (s)",
                "top-1 accuracy",
                "ScaDLES",
                "DDL baseline",
                "0.4",
            ],
        );
        assert!(
            !dir.join("accuracy_vs_time.png.tmp").exists()
                && !dir.join("accuracy_vs_time.svg.tmp").exists()
        );
        // The curves are drawn in their colours: the raster holds tab10 blue and orange pixels.
        let png = std::fs::read(&w.png).unwrap();
        let mut dec = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut px = vec![0u8; dec.output_buffer_size()];
        dec.next_frame(&mut px).unwrap();
        for c in &PALETTE[..2] {
            assert!(
                px.chunks(3).any(|p| p == [c.0, c.1, c.2]),
                "no pixel of {c:?}"
            );
        }
        // Real compression: a plot is tens of KB, not the raw raster's 1.5 MB.
        assert!(std::fs::metadata(&w.png).unwrap().len() < 100_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_axes_plot_positive_data_and_reject_the_rest() {
        let dir = temp("log");
        let t: Vec<f64> = (0..=100).map(|i| i as f64 * 50.0).collect();
        let q: Vec<Vec<(f64, f64)>> = [0.0, 10.0, 100.0, 600.0]
            .iter()
            .map(|ts| t.iter().map(|&x| (x, x * ts + 10.0)).collect())
            .collect();
        let series: Vec<Series> = ["tS = 0", "tS = 10", "tS = 100", "tS = 600"]
            .iter()
            .zip(&q)
            .map(|(l, p)| Series {
                label: l,
                points: p,
            })
            .collect();
        let p = LinePlot {
            title: "queue",
            x_label: "T",
            y_label: "Q (samples)",
            series: &series,
            y_scale: Scale::Log10,
            ..Default::default()
        };
        let w = p.write(&dir.join("q")).unwrap();
        check_png(&w.png);
        let svg = check_svg(&w.svg, &["queue", "Q (samples)", "tS = 600", "10³"]);
        assert!(
            !svg_texts(&svg).iter().any(|t| t == "100000"),
            "powers of ten are written 10ⁿ"
        );
        // Log x too, with positive x.
        let pos: Vec<(f64, f64)> = (1..50).map(|i| (i as f64, (i * i) as f64)).collect();
        let s = [Series {
            label: "x²",
            points: &pos,
        }];
        let w = LinePlot {
            title: "log-log",
            series: &s,
            x_scale: Scale::Log10,
            y_scale: Scale::Log10,
            ..Default::default()
        }
        .write(&dir.join("loglog.png"))
        .unwrap();
        check_svg(&w.svg, &["log-log", "x²"]);
        // Zero or negative values on a log axis: one line that names the axis, the value and the series.
        let zero = [(1.0, 5.0), (2.0, 0.0)];
        let s = [Series {
            label: "flat",
            points: &zero,
        }];
        let e = LinePlot {
            title: "bad",
            series: &s,
            y_scale: Scale::Log10,
            ..Default::default()
        }
        .write(&dir.join("bad"))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "plot 'bad': log10 y axis needs values > 0, got 0 (series 'flat' at x = 2)"
        );
        let neg = [(-1.0, 5.0)];
        let s = [Series {
            label: "n",
            points: &neg,
        }];
        let e = LinePlot {
            title: "bad",
            series: &s,
            x_scale: Scale::Log10,
            ..Default::default()
        }
        .write(&dir.join("bad"))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("log10 x axis needs values > 0, got -1") && !e.contains('\n'),
            "{e}"
        );
        let e = LinePlot {
            title: "bad",
            series: &series,
            y_scale: Scale::Log10,
            y_range: Some((0.0, 10.0)),
            ..Default::default()
        }
        .write(&dir.join("bad"))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a range above 0"), "{e}");
        let g = [Group {
            label: "g",
            values: &[vec![1.0, 0.0]],
        }];
        let e = DistPlot {
            title: "d",
            categories: &["64"],
            groups: &g,
            y_scale: Scale::Log10,
            ..Default::default()
        }
        .write(&dir.join("bad"))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "plot 'd': log10 y axis needs values > 0, got 0 (group 'g' category '64')"
        );
        assert!(
            !dir.join("bad.png").exists() && !dir.join("bad.svg").exists(),
            "nothing written for a rejected plot"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn box_and_violin_plots_write_png_and_svg_with_categories_and_legend() {
        let dir = temp("dist");
        let rates_a: Vec<f64> = (0..16).map(|i| 8.0 + 4.5 * i as f64).collect();
        let rates_b: Vec<f64> = (0..16).map(|i| 110.0 + 24.0 * i as f64).collect();
        let cats = ["64", "128", "256", "512"];
        let lat = |r: &[f64]| -> Vec<Vec<f64>> {
            cats.iter()
                .map(|b| r.iter().map(|s| b.parse::<f64>().unwrap() / s).collect())
                .collect()
        };
        let (a, b) = (lat(&rates_a), lat(&rates_b));
        let groups = [
            Group {
                label: "S1",
                values: &a,
            },
            Group {
                label: "S2",
                values: &b,
            },
        ];
        for (kind, name) in [(DistKind::Box, "box"), (DistKind::Violin, "violin"), (DistKind::Bar, "bar")] {
            for scale in [Scale::Linear, Scale::Log10] {
                let p = DistPlot {
                    kind,
                    title: "latency",
                    x_label: "batch size",
                    y_label: "latency (s)",
                    categories: &cats,
                    groups: &groups,
                    y_scale: scale,
                    ..Default::default()
                };
                let w = p.write(&dir.join(format!("{name}-{scale:?}.png"))).unwrap();
                check_png(&w.png);
                let svg = check_svg(
                    &w.svg,
                    &[
                        "latency",
                        "batch size",
                        "latency (s)",
                        "64",
                        "128",
                        "256",
                        "512",
                        "S1",
                        "S2",
                    ],
                );
                assert!(svg.contains("<polygon"), "{name}: filled shapes");
            }
        }
        // Degenerate inputs still plot: equal values, one value, an empty slot, one category.
        let odd = [vec![2.0; 5], vec![3.0], vec![], vec![1.0, 2.0, f64::NAN]];
        let g = [Group {
            label: "odd",
            values: &odd,
        }];
        for kind in [DistKind::Box, DistKind::Violin, DistKind::Bar] {
            let w = DistPlot {
                kind,
                categories: &cats,
                groups: &g,
                ..Default::default()
            }
            .write(&dir.join("odd"))
            .unwrap();
            check_png(&w.png);
        }
        let e = DistPlot {
            categories: &cats[..2],
            groups: &g,
            ..Default::default()
        }
        .write(&dir.join("x"))
        .unwrap_err()
        .to_string();
        assert!(e.contains("4 value lists for 2 categories"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn degenerate_line_inputs_still_plot() {
        let dir = temp("degenerate");
        let one = [(3.0, 0.5)];
        let flat = [
            (0.0, 2.0),
            (f64::NAN, 1.0),
            (4.0, 2.0),
            (5.0, f64::INFINITY),
        ];
        let cases: [&[Series]; 4] = [
            &[],
            &[Series {
                label: "empty",
                points: &[],
            }],
            &[Series {
                label: "one",
                points: &one,
            }],
            &[Series {
                label: "flat",
                points: &flat,
            }],
        ];
        for (i, s) in cases.iter().enumerate() {
            let w = line_plot(
                &dir.join(format!("case{i}.png")),
                "title",
                "x",
                "y",
                s,
                None,
            )
            .unwrap();
            check_png(&w.png);
        }
        assert!(line_plot(&dir.join("bad.png"), "", "", "", cases[2], Some((1.0, 1.0))).is_err());
        assert!(line_plot(
            &dir.join("bad.png"),
            "",
            "",
            "",
            cases[2],
            Some((0.0, f64::NAN))
        )
        .is_err());
        // Ranges: flat data gets a non-empty range around its value; time axes start at 0.
        assert_eq!(
            axis_range(
                "",
                "x",
                None,
                Scale::Linear,
                [3.0].into_iter(),
                AutoRange::FromZero
            )
            .unwrap(),
            (0.0, 3.0)
        );
        let (lo, hi) = axis_range(
            "",
            "y",
            None,
            Scale::Linear,
            [2.0, 2.0].into_iter(),
            AutoRange::Padded,
        )
        .unwrap();
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = axis_range(
            "",
            "y",
            None,
            Scale::Log10,
            [10.0, 1000.0].into_iter(),
            AutoRange::Padded,
        )
        .unwrap();
        assert!((lo.log10() - 0.9).abs() < 1e-12 && (hi.log10() - 3.1).abs() < 1e-12);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tick_labels_are_short() {
        let l: Vec<String> = [
            0.0,
            0.2,
            0.4000000000000001,
            1.0,
            600.0,
            1234.5,
            5.0e6,
            -0.1,
            2.5e-5,
        ]
        .iter()
        .map(|&v| tick_label(v))
        .collect();
        assert_eq!(
            l,
            ["0", "0.2", "0.4", "1", "600", "1234.5", "5e6", "-0.1", "2.5e-5"]
        );
        let l: Vec<String> = [1.0, 10.0, 1e6, 0.01, 200.0]
            .iter()
            .map(|&v| log_tick_label(v))
            .collect();
        assert_eq!(l, ["10⁰", "10¹", "10⁶", "10⁻²", "200"]);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[7.0], 0.75), 7.0);
    }
}
