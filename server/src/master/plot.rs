//! The QC picture of a deliverable: short-term loudness over time (top) and the
//! long-term average spectrum (bottom), as a PNG (plotters, bitmap backend).
//!
//! plotters is built without a font backend (it would need system fonts or a font
//! file); titles and axis labels are drawn with the public-domain 8×8 bitmap glyphs
//! of `font8x8`, pixel by pixel.
//! - Top: short-term loudness, x = time (whole file), y = −60..0 LUFS with grid
//!   lines every 6 LU; the red line is the target (when given), the blue curve the
//!   measurement; the title gives the file, integrated loudness and true peak.
//! - Bottom: long-term spectrum of (L+R)/2, x = 20 Hz..Nyquist on a log axis with
//!   grid lines at 100 Hz, 1 kHz and 10 kHz; y = −120..0 dB (a full-scale sine
//!   reads 0 dB) with grid lines every 12 dB.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use realfft::RealFftPlanner;

use super::QcReport;
use crate::{Error, Result};

const W: u32 = 1000;
const H: u32 = 700;

/// Long-term average spectrum of the channels' mean: (frequency Hz, dB) pairs,
/// 4096-point Hann frames, at most 2000 frames spread over the file.
pub fn long_term_spectrum(channels: &[&[f32]], sample_rate: u32) -> Vec<(f64, f64)> {
    const N: usize = 4096;
    let n = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    if channels.is_empty() || n < N {
        return Vec::new();
    }
    let frames = (n - N) / N + 1;
    let step = frames.div_ceil(2000).max(1);
    let window: Vec<f32> = (0..N)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos()) as f32)
        .collect();
    let wsum: f64 = window.iter().map(|&w| w as f64).sum();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N);
    let mut buf = fft.make_input_vec();
    let mut spec = fft.make_output_vec();
    let mut acc = vec![0f64; N / 2 + 1];
    let mut count = 0usize;
    let inv = 1.0 / channels.len() as f32;
    for f in (0..frames).step_by(step) {
        let s = f * N;
        for (i, b) in buf.iter_mut().enumerate() {
            let v: f32 = channels.iter().map(|c| c[s + i]).sum::<f32>() * inv;
            *b = v * window[i];
        }
        if fft.process(&mut buf, &mut spec).is_err() {
            return Vec::new();
        }
        for (a, c) in acc.iter_mut().zip(&spec) {
            *a += c.norm_sqr() as f64;
        }
        count += 1;
    }
    let scale = (2.0 / wsum).powi(2) / count.max(1) as f64;
    acc.iter()
        .enumerate()
        .skip(1)
        .map(|(k, &p)| {
            (
                k as f64 * sample_rate as f64 / N as f64,
                10.0 * (p * scale).max(1e-14).log10(),
            )
        })
        .collect()
}

/// Glyph scale: 8×8 glyphs drawn as 16×16 pixels.
const SCALE: i32 = 2;
/// Width of one character, pixels.
const CHAR_W: i32 = 8 * SCALE;
/// Room left of a chart for its y labels, above it for its title, below for x labels.
const LEFT: u32 = 72;
const TOP: u32 = 40;
const BOTTOM: u32 = 30;

/// Draws `text` with 8×8 bitmap glyphs (ASCII; anything else as '?'), top-left at
/// (x, y) in `area`'s pixels. Returns how many pixels were set.
fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    x: i32,
    y: i32,
    color: &RGBColor,
) -> std::result::Result<usize, String> {
    let mut set = 0;
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let x0 = x + i as i32 * CHAR_W;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                // Bit 0 is the leftmost pixel of the row.
                if bits >> col & 1 == 1 {
                    for dy in 0..SCALE {
                        for dx in 0..SCALE {
                            area.draw_pixel(
                                (x0 + col * SCALE + dx, y + row as i32 * SCALE + dy),
                                color,
                            )
                            .map_err(|e| e.to_string())?;
                            set += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(set)
}

/// Pixel width of `text`.
fn text_w(text: &str) -> i32 {
    text.chars().count() as i32 * CHAR_W
}

/// A time tick label: seconds, or m:ss from a minute on.
fn time_label(t: f64, long: bool) -> String {
    let s = t.round() as i64;
    if long {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn perr(png: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(png.display(), format!("plot: {e}"))
}

/// Writes the QC picture of `report` (its short-term series) and `channels`
/// (for the spectrum) to `png_path`.
pub fn write_plot(report: &QcReport, channels: &[&[f32]], png_path: &Path) -> Result<()> {
    let spectrum = long_term_spectrum(channels, report.sample_rate);
    let root = BitMapBackend::new(png_path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(png_path, e))?;
    let (top, bottom) = root.split_vertically(H / 2);
    let grid = RGBColor(200, 200, 200);

    // Top: short-term loudness over time.
    let t_end = report.duration_s.max(0.1);
    let mut c = ChartBuilder::on(&top)
        .margin_left(LEFT)
        .margin_right(20)
        .margin_top(TOP)
        .margin_bottom(BOTTOM)
        .build_cartesian_2d(0f64..t_end, -60f64..0f64)
        .map_err(|e| perr(png_path, e))?;
    let ink = RGBColor(40, 40, 40);
    let text = |area: &DrawingArea<BitMapBackend, Shift>, s: &str, x: i32, y: i32| {
        draw_text(area, s, x, y, &ink)
            .map(|_| ())
            .map_err(|e| perr(png_path, e))
    };
    for l in (-60..=0).step_by(6) {
        let l = l as f64;
        c.draw_series(LineSeries::new([(0.0, l), (t_end, l)], grid))
            .map_err(|e| perr(png_path, e))?;
        if (l as i64) % 12 == 0 {
            let (_, py) = c.backend_coord(&(0.0, l));
            let s = format!("{l:.0}");
            text(&root, &s, LEFT as i32 - 6 - text_w(&s), py - 8)?;
        }
    }
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ]
    .into_iter()
    .find(|s| t_end / s <= 8.0)
    .unwrap_or(3600.0);
    let mut t = 0.0;
    while t <= t_end + 1e-9 {
        c.draw_series(LineSeries::new([(t, -60.0), (t, 0.0)], grid))
            .map_err(|e| perr(png_path, e))?;
        let (px, py) = c.backend_coord(&(t, -60.0));
        let s = time_label(t, t_end >= 60.0);
        text(&root, &s, (px - text_w(&s) / 2).max(0), py + 10)?;
        t += step;
    }
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let title = format!(
        "{}: short-term LUFS  I {}  TP {} dBTP",
        report.file,
        num(report.integrated_lufs),
        num(report.true_peak_dbtp),
    );
    if let Some(t) = report.target_lufs {
        // The target's key, in the target line's colour, inside the chart's corner.
        let key = format!("target {t:.1}");
        let (px, py) = c.backend_coord(&(t_end, -60.0));
        draw_text(&root, &key, px - 8 - text_w(&key), py - 24, &RED)
            .map_err(|e| perr(png_path, e))?;
    }
    text(&root, &title, 8, 8)?;
    if let Some(t) = report.target_lufs {
        c.draw_series(LineSeries::new([(0.0, t), (t_end, t)], RED))
            .map_err(|e| perr(png_path, e))?;
    }
    let pts = report.short_term_series.iter().map(|&(t, l)| {
        (
            t,
            if l.is_finite() {
                l.clamp(-60.0, 0.0)
            } else {
                -60.0
            },
        )
    });
    c.draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
        .map_err(|e| perr(png_path, e))?;

    // Bottom: spectrum on a log frequency axis.
    let nyq = report.sample_rate as f64 / 2.0;
    let (lx0, lx1) = (20f64.log10(), nyq.max(40.0).log10());
    let mut c = ChartBuilder::on(&bottom)
        .margin_left(LEFT)
        .margin_right(20)
        .margin_top(TOP)
        .margin_bottom(BOTTOM)
        .build_cartesian_2d(lx0..lx1, -120f64..0f64)
        .map_err(|e| perr(png_path, e))?;
    for l in (-120..=0).step_by(12) {
        let l = l as f64;
        c.draw_series(LineSeries::new([(lx0, l), (lx1, l)], grid))
            .map_err(|e| perr(png_path, e))?;
        if (l as i64) % 24 == 0 {
            let (_, py) = c.backend_coord(&(lx0, l));
            let s = format!("{l:.0}");
            text(&root, &s, LEFT as i32 - 6 - text_w(&s), py - 8)?;
        }
    }
    for (f, label) in [(100.0f64, "100"), (1000.0, "1k"), (10000.0, "10k")] {
        if f < nyq {
            c.draw_series(LineSeries::new(
                [(f.log10(), -120.0), (f.log10(), 0.0)],
                grid,
            ))
            .map_err(|e| perr(png_path, e))?;
            let (px, py) = c.backend_coord(&(f.log10(), -120.0));
            text(&root, label, px - text_w(label) / 2, py + 10)?;
        }
    }
    let (_, py) = c.backend_coord(&(lx0, -120.0));
    text(&root, "Hz", LEFT as i32 - 6 - text_w("Hz"), py + 10)?;
    let (_, y0) = c.backend_coord(&(lx0, 0.0));
    text(
        &root,
        "Long-term spectrum of (L+R)/2, dB (full-scale sine: 0)",
        8,
        y0 - TOP as i32 + 6,
    )?;
    let pts = spectrum
        .iter()
        .filter(|(f, _)| *f >= 20.0)
        .map(|&(f, d)| (f.log10(), d.clamp(-120.0, 0.0)));
    c.draw_series(LineSeries::new(pts, BLACK))
        .map_err(|e| perr(png_path, e))?;
    root.present().map_err(|e| perr(png_path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each glyph pixel becomes a SCALE×SCALE square at the right place: "1" in an
    /// in-memory bitmap sets popcount(glyph)·SCALE² pixels, all inside its 16×16 cell.
    #[test]
    fn text_draws_the_glyph_bits_scaled() {
        let (w, h) = (64u32, 32u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let n = draw_text(&area, "1", 4, 3, &RGBColor(0, 0, 0)).unwrap();
            let bits: u32 = font8x8::legacy::BASIC_LEGACY['1' as usize]
                .iter()
                .map(|b| b.count_ones())
                .sum();
            assert_eq!(n, (bits as i32 * SCALE * SCALE) as usize);
            area.present().unwrap();
        }
        let dark: Vec<(u32, u32)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| buf[((y * w + x) * 3) as usize] < 128)
            .collect();
        assert!(!dark.is_empty());
        assert!(
            dark.iter()
                .all(|&(x, y)| (4..20).contains(&x) && (3..19).contains(&y))
        );
    }
}
