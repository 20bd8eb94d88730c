//! Band-limited sample-rate conversion (rubato's FFT resampler), whole-buffer and streaming.
//!
//! Design: rubato's `FftFixedInOut` filters each chunk with a Blackman-Harris²-windowed
//! sinc as long as the chunk (≥ [`MIN_FILTER_LEN`] taps at the lower rate), so the
//! transition band is narrow (flat to > 0.97 of the lower Nyquist, alias rejection far
//! beyond 90 dB). It works for any rational pair: the chunk is a multiple of
//! `from / gcd` input frames. Its delay is exactly half an output chunk when both chunk
//! sizes are even (we make them so); [`StreamResampler`] discards that many leading
//! frames and flushes with zeros at the end, so the output is aligned with the input
//! and exactly `ceil(n * to / from)` frames long.

use rubato::{FftFixedInOut, Resampler};

use crate::{Error, Result};

/// Minimum filter length, in frames at the lower of the two rates. 2048 keeps the
/// passband flat within 0.01 dB to 0.95 of the lower Nyquist (measured in the tests).
pub const MIN_FILTER_LEN: usize = 2048;

/// Lowest and highest sample rates the resampler accepts (beyond them: `Error::Limit`).
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 1000..=768_000;

/// Output frames for `n` input frames converted `from` → `to`: `ceil(n * to / from)`.
pub fn output_len(n: u64, from: u32, to: u32) -> u64 {
    if from == to || n == 0 {
        return n;
    }
    let num = u128::from(n) * u128::from(to);
    let den = u128::from(from.max(1));
    // Fits: n < 2^64 and to/from ≤ 768, and callers limit n to 24 h anyway.
    u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn check_rates(from: u32, to: u32) -> Result<()> {
    for r in [from, to] {
        if !RATE_RANGE.contains(&r) {
            return Err(Error::Limit(format!(
                "sample rate {r} Hz is outside {}..={} Hz",
                RATE_RANGE.start(),
                RATE_RANGE.end()
            )));
        }
    }
    Ok(())
}

/// Streaming resampler with delay compensation and an exact output length.
///
/// Feed input by writing into [`input_mut`](Self::input_mut) and calling
/// [`commit`](Self::commit); call [`finish`](Self::finish) after the last input frame;
/// pull output with [`pull`](Self::pull). Memory is fixed at construction (one input
/// and one output chunk per channel plus rubato's state).
pub struct StreamResampler {
    inner: FftFixedInOut<f32>,
    chunk_in: usize,
    in_buf: Vec<Vec<f32>>,
    in_fill: usize,
    out_buf: Vec<Vec<f32>>,
    out_pos: usize,
    out_len: usize,
    /// Leading output frames still to drop (the filter's delay).
    skip: usize,
    /// Output frames still to hand out.
    remaining: u64,
    input_done: bool,
}

impl StreamResampler {
    /// A resampler for `channels` channels of `in_frames` frames in total, `from` → `to` Hz.
    pub fn new(from: u32, to: u32, channels: usize, in_frames: u64) -> Result<Self> {
        check_rates(from, to)?;
        if channels == 0 {
            return Err(Error::Internal("resampler with 0 channels".into()));
        }
        let g = gcd(u64::from(from), u64::from(to));
        let (a, b) = ((u64::from(from) / g) as usize, (u64::from(to) / g) as usize);
        // An even number of unit chunks, long enough for a sharp filter: both chunk
        // sizes even makes the delay exactly chunk_out / 2 output frames.
        let min_unit = a.min(b);
        let mut m = MIN_FILTER_LEN.div_ceil(min_unit).max(2);
        m += m % 2;
        let chunk_in = m * a;
        let inner = FftFixedInOut::<f32>::new(from as usize, to as usize, chunk_in, channels)
            .map_err(|e| Error::Internal(format!("resampler {from}->{to}: {e}")))?;
        if inner.input_frames_next() != chunk_in || inner.output_frames_next() != m * b {
            return Err(Error::Internal(format!(
                "resampler {from}->{to}: unexpected chunk sizes {}/{}",
                inner.input_frames_next(),
                inner.output_frames_next()
            )));
        }
        let chunk_out = m * b;
        Ok(StreamResampler {
            skip: inner.output_delay(),
            inner,
            chunk_in,
            in_buf: vec![vec![0.0; chunk_in]; channels],
            in_fill: 0,
            out_buf: vec![vec![0.0; chunk_out]; channels],
            out_pos: 0,
            out_len: 0,
            remaining: output_len(in_frames, from, to),
            input_done: false,
        })
    }

    /// Output frames still to come (in total, including those buffered).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether every output frame has been pulled.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Whether the resampler can take more input now (its output buffer is drained and
    /// more output is due).
    pub fn wants_input(&self) -> bool {
        !self.input_done && self.out_pos == self.out_len && self.remaining > 0
    }

    /// Free space in the input chunk, per channel: write up to `len()` frames at the
    /// front of each slice, then [`commit`](Self::commit) them.
    pub fn input_mut(&mut self) -> (&mut [Vec<f32>], std::ops::Range<usize>) {
        (&mut self.in_buf, self.in_fill..self.chunk_in)
    }

    /// Marks `n` more input frames as written; runs the filter when the chunk is full.
    pub fn commit(&mut self, n: usize) -> Result<()> {
        self.in_fill = (self.in_fill + n).min(self.chunk_in);
        if self.in_fill == self.chunk_in {
            self.run_chunk()?;
        }
        Ok(())
    }

    /// Signals the end of the input: the rest is flushed with zeros as output is pulled.
    pub fn finish(&mut self) {
        self.input_done = true;
    }

    fn run_chunk(&mut self) -> Result<()> {
        for ch in &mut self.in_buf {
            ch[self.in_fill..].fill(0.0);
        }
        let (_, produced) = self
            .inner
            .process_into_buffer(&self.in_buf, &mut self.out_buf, None)
            .map_err(|e| Error::Internal(format!("resampler: {e}")))?;
        self.in_fill = 0;
        let drop = self.skip.min(produced);
        self.skip -= drop;
        self.out_pos = drop;
        self.out_len = produced;
        Ok(())
    }

    /// Copies up to `out[ch].len() - at` output frames into `out[ch][at..]`; returns how
    /// many. Returns 0 when more input is needed ([`wants_input`](Self::wants_input)) or
    /// when done.
    pub fn pull<S: AsMut<[f32]>>(&mut self, out: &mut [S], at: usize) -> Result<usize> {
        loop {
            if self.remaining == 0 {
                return Ok(0);
            }
            if self.out_pos == self.out_len {
                if !self.input_done {
                    return Ok(0);
                }
                // Flush: the filter's tail comes out of zero-padded chunks.
                self.run_chunk()?;
                continue;
            }
            let space = out
                .first_mut()
                .map_or(0, |o| o.as_mut().len().saturating_sub(at));
            let n = (self.out_len - self.out_pos)
                .min(space)
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            for (o, b) in out.iter_mut().zip(&self.out_buf) {
                o.as_mut()[at..at + n].copy_from_slice(&b[self.out_pos..self.out_pos + n]);
            }
            self.out_pos += n;
            self.remaining -= n as u64;
            return Ok(n);
        }
    }
}

/// Band-limited resampling of whole channels: output length `ceil(n * to / from)`,
/// unity passband gain, no delay (the resampler's delay is compensated), flat to
/// ≥ 0.9·min(from,to)/2 within 0.1 dB, alias rejection ≥ 90 dB. `from == to` returns a
/// copy. All channels must have the same length.
pub fn resample(channels: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>> {
    if from == to || channels.is_empty() {
        return Ok(channels.to_vec());
    }
    let n = channels[0].len();
    if channels.iter().any(|c| c.len() != n) {
        return Err(Error::Internal(
            "resample: channels of different lengths".into(),
        ));
    }
    resample_from(channels.len(), n, from, to, |start, bufs| {
        for (b, c) in bufs.iter_mut().zip(channels) {
            let k = b.len();
            b.copy_from_slice(&c[start..start + k]);
        }
    })
}

/// [`resample`] of `n` frames of `channels` channels that `fill(start, bufs)` supplies
/// piece by piece: it writes frames `start..start + bufs[c].len()` of every channel c.
/// The input is never held whole, so a caller can compute it on the fly (the
/// mastering gain and limiter) without a full-length copy at the source rate.
pub fn resample_from(
    channels: usize,
    n: usize,
    from: u32,
    to: u32,
    mut fill: impl FnMut(usize, &mut [&mut [f32]]),
) -> Result<Vec<Vec<f32>>> {
    let mut rs = StreamResampler::new(from, to, channels, n as u64)?;
    let total = usize::try_from(rs.remaining())
        .map_err(|_| Error::Limit(format!("resample: {n} frames is too long")))?;
    let mut out = vec![vec![0.0f32; total]; channels];
    let (mut read, mut written) = (0usize, 0usize);
    while written < total {
        let k = rs.pull(&mut out, written)?;
        written += k;
        if k > 0 {
            continue;
        }
        if rs.wants_input() {
            if read == n {
                rs.finish();
                continue;
            }
            let (bufs, range) = rs.input_mut();
            let k = range.len().min(n - read);
            let mut views: Vec<&mut [f32]> = bufs
                .iter_mut()
                .map(|b| &mut b[range.start..range.start + k])
                .collect();
            fill(read, &mut views);
            read += k;
            rs.commit(k)?;
        } else if rs.is_done() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    /// Amplitude of `freq` in `x` by least-squares fit of sin/cos over the middle part.
    fn tone_amp(x: &[f32], rate: u32, freq: f64) -> f64 {
        let (a, b) = (x.len() / 4, 3 * x.len() / 4);
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate().take(b).skip(a) {
            let ph = 2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate);
            s += f64::from(v) * ph.sin();
            c += f64::from(v) * ph.cos();
        }
        2.0 * (s * s + c * c).sqrt() / (b - a) as f64
    }

    #[test]
    fn lengths_are_exact() {
        for (from, to) in [
            (44100, 48000),
            (48000, 44100),
            (96000, 48000),
            (8000, 44100),
            (44100, 44101),
        ] {
            for n in [0usize, 1, 7, 1000, 12345] {
                let x = vec![vec![0.5f32; n]; 2];
                let y = resample(&x, from, to).unwrap();
                assert_eq!(
                    y[0].len() as u64,
                    output_len(n as u64, from, to),
                    "{from}->{to} n={n}"
                );
                assert_eq!(y[1].len(), y[0].len());
            }
        }
        assert_eq!(output_len(441, 44100, 48000), 480);
        assert_eq!(output_len(442, 44100, 48000), 482); // 481.08 -> 482
    }

    #[test]
    fn passband_flat_and_stopband_rejected() {
        // Passband: 0.9 of the lower Nyquist within 0.1 dB; stopband: beyond the new Nyquist ≥ 90 dB.
        for (from, to) in [
            (44100u32, 48000u32),
            (48000, 44100),
            (96000, 48000),
            (32000, 44100),
        ] {
            let lo = f64::from(from.min(to)) / 2.0;
            let n = from as usize; // 1 s
            for f in [100.0, 1000.0, 0.5 * lo, 0.9 * lo] {
                let y = resample(&[sine(from, f, n)], from, to).unwrap();
                let db = 20.0 * tone_amp(&y[0], to, f).log10();
                assert!(db.abs() < 0.1, "{from}->{to} {f} Hz: {db} dB");
            }
            if to < from {
                let f = 1.05 * f64::from(to) / 2.0;
                let y = resample(&[sine(from, f, n)], from, to).unwrap();
                let alias = f64::from(to) - f;
                let db = 20.0 * tone_amp(&y[0], to, alias).log10();
                assert!(db < -90.0, "{from}->{to}: alias of {f} Hz at {db} dB");
            }
        }
    }
}
