//! Test audio for every crate's tests (server, client, end to end): seeded signals, WAV
//! files written and read with hound (an implementation independent of the server's
//! decoder and encoder), and the error measure the tests compare in dB.
//!
//! Everything here panics on failure: it is only ever called from tests.

use std::f64::consts::PI;
use std::io::Cursor;
use std::path::Path;

use rand::{Rng, SeedableRng};

/// Seeded white noise, uniform in (−amp, amp).
pub fn noise(seed: u64, len: usize, amp: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-amp..amp)).collect()
}

/// `amp · sin(2π f n / rate)`, computed in f64.
pub fn sine(f: f64, amp: f64, len: usize, rate: u32) -> Vec<f32> {
    (0..len)
        .map(|i| (amp * (2.0 * PI * f * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

fn spec(channels: usize, rate: u32, bits: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels: u16::try_from(channels).expect("channel count"),
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if bits == 32 {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

fn write_frames<W: std::io::Write + std::io::Seek>(
    mut w: hound::WavWriter<W>,
    channels: &[Vec<f32>],
    bits: u16,
) {
    let frames = channels.first().map_or(0, Vec::len);
    assert!(
        channels.iter().all(|c| c.len() == frames),
        "ragged channels"
    );
    for i in 0..frames {
        for c in channels {
            if bits == 32 {
                w.write_sample(c[i]).expect("write sample");
            } else {
                let v = (f64::from(c[i]) * 32767.0).round().clamp(-32768.0, 32767.0);
                w.write_sample(v as i16).expect("write sample");
            }
        }
    }
    w.finalize().expect("finalize wav");
}

/// Planar channels as a 32-bit float WAV (exact).
pub fn write_f32_wav(path: &Path, channels: &[Vec<f32>], rate: u32) {
    let w = hound::WavWriter::create(path, spec(channels.len(), rate, 32)).expect("create wav");
    write_frames(w, channels, 32);
}

/// Planar channels as a 16-bit PCM WAV (rounded, clamped).
pub fn write_pcm16_wav(path: &Path, channels: &[Vec<f32>], rate: u32) {
    let w = hound::WavWriter::create(path, spec(channels.len(), rate, 16)).expect("create wav");
    write_frames(w, channels, 16);
}

/// Planar channels as the bytes of a 16-bit PCM WAV file.
pub fn pcm16_wav_bytes(channels: &[Vec<f32>], rate: u32) -> Vec<u8> {
    let mut cur = Cursor::new(Vec::new());
    let w = hound::WavWriter::new(&mut cur, spec(channels.len(), rate, 16)).expect("wav writer");
    write_frames(w, channels, 16);
    cur.into_inner()
}

/// Any WAV as (rate, planar f32): float WAVs exactly, integers scaled by 2^(bits−1).
pub fn read_wav(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let n = usize::from(spec.channels);
    let inter: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("sample") as f32 / scale)
                .collect()
        }
    };
    let mut ch = vec![Vec::with_capacity(inter.len() / n.max(1)); n];
    for (i, s) in inter.into_iter().enumerate() {
        ch[i % n].push(s);
    }
    (spec.sample_rate, ch)
}

/// `20·log10(x)`.
pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Largest |got − want| relative to the peak of `want`, in dB (−inf when equal).
pub fn error_db(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length differs");
    let peak = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs()));
    db(err / peak)
}

/// RBJ audio-EQ-cookbook biquad coefficients, written out independently of the server
/// in float64: `[b0, b1, b2, a1, a2] / a0`. `kind`: peak, highpass, lowpass, lowshelf,
/// highshelf, notch (shelves use Q, as the contract says).
pub fn rbj(kind: &str, f0: f64, q: f64, gain_db: f64, rate: u32) -> [f64; 5] {
    let w0 = 2.0 * PI * f0 / f64::from(rate);
    let (c, s) = (w0.cos(), w0.sin());
    let alpha = s / (2.0 * q);
    let a = 10f64.powf(gain_db / 40.0);
    let sa = 2.0 * a.sqrt() * alpha;
    let (b0, b1, b2, a0, a1, a2) = match kind {
        "peak" => (
            1.0 + alpha * a,
            -2.0 * c,
            1.0 - alpha * a,
            1.0 + alpha / a,
            -2.0 * c,
            1.0 - alpha / a,
        ),
        "highpass" => (
            (1.0 + c) / 2.0,
            -(1.0 + c),
            (1.0 + c) / 2.0,
            1.0 + alpha,
            -2.0 * c,
            1.0 - alpha,
        ),
        "lowpass" => (
            (1.0 - c) / 2.0,
            1.0 - c,
            (1.0 - c) / 2.0,
            1.0 + alpha,
            -2.0 * c,
            1.0 - alpha,
        ),
        "notch" => (1.0, -2.0 * c, 1.0, 1.0 + alpha, -2.0 * c, 1.0 - alpha),
        "lowshelf" => (
            a * ((a + 1.0) - (a - 1.0) * c + sa),
            2.0 * a * ((a - 1.0) - (a + 1.0) * c),
            a * ((a + 1.0) - (a - 1.0) * c - sa),
            (a + 1.0) + (a - 1.0) * c + sa,
            -2.0 * ((a - 1.0) + (a + 1.0) * c),
            (a + 1.0) + (a - 1.0) * c - sa,
        ),
        "highshelf" => (
            a * ((a + 1.0) + (a - 1.0) * c + sa),
            -2.0 * a * ((a - 1.0) + (a + 1.0) * c),
            a * ((a + 1.0) + (a - 1.0) * c - sa),
            (a + 1.0) - (a - 1.0) * c + sa,
            2.0 * ((a - 1.0) - (a + 1.0) * c),
            (a + 1.0) - (a - 1.0) * c - sa,
        ),
        other => panic!("rbj: unknown band type {other}"),
    };
    [b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0]
}

/// A biquad over `x` in float64, direct form I, state zero at the start.
pub fn biquad(x: &[f64], k: [f64; 5]) -> Vec<f64> {
    let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
    x.iter()
        .map(|&x0| {
            let y0 = k[0] * x0 + k[1] * x1 + k[2] * x2 - k[3] * y1 - k[4] * y2;
            (x2, x1, y2, y1) = (x1, x0, y1, y0);
            y0
        })
        .collect()
}

/// Direct (time-domain) convolution in float64, `x.len() + h.len() - 1` long.
pub fn convolve(x: &[f64], h: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len() + h.len().max(1) - 1];
    for (i, &a) in x.iter().enumerate() {
        if a != 0.0 {
            for (j, &b) in h.iter().enumerate() {
                y[i + j] += a * b;
            }
        }
    }
    y
}

/// A breakpoint lane (time_s, value) at sample `n`: linear between points, the first and
/// last values held outside, the later point winning at a step (the contract's reading).
pub fn lane_at(points: &[(f64, f64)], n: usize, rate: u32) -> f64 {
    let t = n as f64 / f64::from(rate);
    let (first, last) = (points[0], points[points.len() - 1]);
    if t < first.0 {
        return first.1;
    }
    if t >= last.0 {
        return last.1;
    }
    // The last segment [p, q) with p.0 <= t < q.0.
    let mut v = first.1;
    for w in points.windows(2) {
        let (p, q) = (w[0], w[1]);
        if p.0 <= t && t < q.0 {
            v = p.1 + (q.1 - p.1) * (t - p.0) / (q.0 - p.0);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_wav_round_trips_exactly_and_pcm16_within_half_a_step() {
        let dir = std::env::temp_dir().join(format!("bounce-test-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let x = vec![noise(1, 1000, 0.9), sine(1000.0, 0.5, 1000, 48_000)];
        write_f32_wav(&dir.join("f.wav"), &x, 48_000);
        assert_eq!(read_wav(&dir.join("f.wav")), (48_000, x.clone()));
        write_pcm16_wav(&dir.join("i.wav"), &x, 44_100);
        let (rate, y) = read_wav(&dir.join("i.wav"));
        assert_eq!(rate, 44_100);
        for (a, b) in x.iter().flatten().zip(y.iter().flatten()) {
            assert!((a * 32767.0 / 32768.0 - b).abs() <= 0.5 / 32768.0 + 1e-7);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rbj_peak_has_its_gain_at_its_centre_and_unity_far_away() {
        let rate = 48_000;
        let k = rbj("peak", 1000.0, 1.0, 6.0, rate);
        let h = |f: f64| {
            let w = 2.0 * PI * f / f64::from(rate);
            let z1 = (w.cos(), -w.sin());
            let z2 = ((2.0 * w).cos(), -(2.0 * w).sin());
            let num = (k[0] + k[1] * z1.0 + k[2] * z2.0, k[1] * z1.1 + k[2] * z2.1);
            let den = (1.0 + k[3] * z1.0 + k[4] * z2.0, k[3] * z1.1 + k[4] * z2.1);
            db((num.0.hypot(num.1)) / den.0.hypot(den.1))
        };
        assert!((h(1000.0) - 6.0).abs() < 1e-9);
        assert!(h(20.0).abs() < 0.01);
        let hs = rbj("highshelf", 4000.0, 0.707, 3.0, rate);
        let dc: f64 = (hs[0] + hs[1] + hs[2]) / (1.0 + hs[3] + hs[4]);
        assert!(db(dc).abs() < 1e-9, "shelf above: DC untouched");
    }

    #[test]
    fn lane_at_interpolates_holds_and_steps() {
        let pts = [(0.5, 1.0), (1.0, 3.0), (1.0, 10.0), (2.0, 10.0)];
        assert_eq!(lane_at(&pts, 0, 1000), 1.0);
        assert!((lane_at(&pts, 750, 1000) - 2.0).abs() < 1e-12);
        assert_eq!(lane_at(&pts, 1000, 1000), 10.0);
        assert_eq!(lane_at(&pts, 5000, 1000), 10.0);
    }

    #[test]
    fn error_db_of_a_known_error() {
        let want = [1.0, -0.5, 0.25];
        let got = [1.0f32, -0.5, 0.25 + 0.001];
        assert!((error_db(&got, &want) - db(0.001)).abs() < 1e-3);
    }
}
