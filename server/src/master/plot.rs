//! The QC picture of a deliverable: short-term loudness over time (top) and the
//! long-term average spectrum (bottom), as a PNG (plotters, bitmap backend).
//!
//! This build of plotters has no font backend, so the picture carries no text (text
//! drawing would panic): the layout is fixed and described here instead.
//! - Top: short-term loudness, x = time (whole file), y = −60..0 LUFS with grid
//!   lines every 6 LU; the red line is the target (when given), the blue curve the
//!   measurement.
//! - Bottom: long-term spectrum of (L+R)/2, x = 20 Hz..Nyquist on a log axis with
//!   grid lines at 100 Hz, 1 kHz and 10 kHz; y = −120..0 dB (a full-scale sine
//!   reads 0 dB) with grid lines every 12 dB.

use std::path::Path;

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
        .margin(12)
        .build_cartesian_2d(0f64..t_end, -60f64..0f64)
        .map_err(|e| perr(png_path, e))?;
    for l in (-54..0).step_by(6) {
        let l = l as f64;
        c.draw_series(LineSeries::new([(0.0, l), (t_end, l)], grid))
            .map_err(|e| perr(png_path, e))?;
    }
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
        .margin(12)
        .build_cartesian_2d(lx0..lx1, -120f64..0f64)
        .map_err(|e| perr(png_path, e))?;
    for l in (-108..0).step_by(12) {
        let l = l as f64;
        c.draw_series(LineSeries::new([(lx0, l), (lx1, l)], grid))
            .map_err(|e| perr(png_path, e))?;
    }
    for f in [100.0f64, 1000.0, 10000.0] {
        if f < nyq {
            c.draw_series(LineSeries::new(
                [(f.log10(), -120.0), (f.log10(), 0.0)],
                grid,
            ))
            .map_err(|e| perr(png_path, e))?;
        }
    }
    let pts = spectrum
        .iter()
        .filter(|(f, _)| *f >= 20.0)
        .map(|&(f, d)| (f.log10(), d.clamp(-120.0, 0.0)));
    c.draw_series(LineSeries::new(pts, BLACK))
        .map_err(|e| perr(png_path, e))?;
    root.present().map_err(|e| perr(png_path, e))?;
    Ok(())
}
