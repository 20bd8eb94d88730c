//! Mastering: ceiling, loudness landing, multiband transparency, dither, bad input.
//! Every check measures the written file with a meter independent of the code under
//! test: an 8× oversampled float64 true-peak reference written here, and the ebur128
//! crate for loudness.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bounce_server::dsp::dither::{NoiseShaping, quantize_in_place};
use bounce_server::master::{MasterJob, analyze, apply_chain, master_deliverable};
use bounce_server::session::{
    Compressor, Deliverable, Detector, Format, Master, Multiband, Variant,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn cpu_fir(
    k: Vec<Vec<f32>>,
    b: usize,
) -> bounce_server::Result<Box<dyn bounce_server::dsp::fir::FirBank>> {
    bounce_server::dsp::fir::cpu_fir_bank(k, b)
}

fn deliverable(
    target: Option<f64>,
    ceiling: f64,
    rate: u32,
    bits: u32,
    format: Format,
) -> Deliverable {
    Deliverable {
        name: "t".into(),
        target_lufs: target,
        ceiling_dbtp: Some(ceiling),
        sample_rate: rate,
        bit_depth: bits,
        format,
        variant: Variant::Main,
        album_gain_db: None,
        noise_shaping: false,
    }
}

/// Reads a written file back (wav or flac), planar f32.
fn read(path: &Path) -> (Vec<Vec<f32>>, u32) {
    let b = bounce_server::audio::decode::read_all(path, "out").unwrap();
    (b.channels, b.sample_rate)
}

/// Independent true peak: 4× oversampling by a 256-tap Blackman-windowed sinc in
/// float64 (passband flat to ~0.46·fs), max over channels, dB.
fn reference_true_peak_db(channels: &[Vec<f32>]) -> f64 {
    const L: usize = 4;
    const HALF: isize = 32; // taps each side, per phase
    let mut peak = channels
        .iter()
        .flatten()
        .fold(0f64, |m, &v| m.max(v.abs() as f64));
    for x in channels {
        let n = x.len() as isize;
        for p in 1..L {
            let frac = p as f64 / L as f64;
            let taps: Vec<f64> = (-HALF + 1..=HALF)
                .map(|k| {
                    let t = k as f64 - frac;
                    let s = if t == 0.0 {
                        1.0
                    } else {
                        (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
                    };
                    let u = (t + HALF as f64) / (2.0 * HALF as f64);
                    let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * u).cos()
                        + 0.08 * (4.0 * std::f64::consts::PI * u).cos();
                    s * w
                })
                .collect();
            for i in 0..n {
                let mut acc = 0.0f64;
                for (j, &h) in taps.iter().enumerate() {
                    let idx = i + (j as isize - HALF + 1);
                    if idx >= 0 && idx < n {
                        acc += h * x[idx as usize] as f64;
                    }
                }
                peak = peak.max(acc.abs());
            }
        }
    }
    20.0 * peak.log10()
}

fn ebur128_figures(channels: &[Vec<f32>], rate: u32) -> (f64, f64) {
    let mut m = ebur128::EbuR128::new(
        channels.len() as u32,
        rate,
        ebur128::Mode::I | ebur128::Mode::TRUE_PEAK,
    )
    .unwrap();
    let refs: Vec<&[f32]> = channels.iter().map(Vec::as_slice).collect();
    m.add_frames_planar_f32(&refs).unwrap();
    let tp = (0..channels.len())
        .map(|c| m.true_peak(c as u32).unwrap())
        .fold(0.0, f64::max);
    (m.loudness_global().unwrap(), 20.0 * tp.log10())
}

fn master(
    mix: &[Vec<f32>],
    rate: u32,
    chain: Option<&Master>,
    d: &Deliverable,
    path: &Path,
) -> bounce_server::master::QcReport {
    let job = MasterJob {
        mix: [&mix[0], &mix[1]],
        mix_rate: rate,
        chain,
        deliverable: d,
        fir: &cpu_fir,
        gain_override_db: None,
    };
    master_deliverable(&job, path, &AtomicBool::new(false)).unwrap()
}

// ---- generated material -------------------------------------------------------

fn square(rate: u32, secs: f64, freq: f64) -> Vec<Vec<f32>> {
    let n = (secs * rate as f64) as usize;
    let x: Vec<f32> = (0..n)
        .map(|i| {
            if ((i as f64 * freq / rate as f64) % 1.0) < 0.5 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    vec![x.clone(), x]
}

fn noise(rate: u32, secs: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = (secs * rate as f64) as usize;
    (0..2)
        .map(|_| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

fn quarter_rate_45(rate: u32, secs: f64) -> Vec<Vec<f32>> {
    let n = (secs * rate as f64) as usize;
    let x: Vec<f32> = (0..n)
        .map(|i| {
            (std::f64::consts::FRAC_PI_2 * i as f64 + std::f64::consts::FRAC_PI_4).sin() as f32
        })
        .collect();
    vec![x.clone(), x]
}

/// Music-like: pink-ish noise through a slow envelope (verse/chorus), a bass line
/// and a chord, stereo-decorrelated.
fn music(rate: u32, secs: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = (secs * rate as f64) as usize;
    let mut out = vec![vec![0f32; n]; 2];
    let mut pink = [[0f64; 3]; 2];
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let section = if ((t / 8.0) as usize).is_multiple_of(2) {
            0.4
        } else {
            1.0
        };
        let bass = 0.3
            * (2.0 * std::f64::consts::PI * [55.0, 73.4, 61.7, 82.4][(t / 2.0) as usize % 4] * t)
                .sin();
        let chord: f64 = [220.0, 277.2, 329.6]
            .iter()
            .map(|f| 0.08 * (2.0 * std::f64::consts::PI * f * t).sin())
            .sum();
        for (c, o) in out.iter_mut().enumerate() {
            let w: f64 = rng.random_range(-1.0..1.0);
            let p = &mut pink[c];
            p[0] = 0.997 * p[0] + 0.03 * w;
            p[1] = 0.985 * p[1] + 0.1 * w;
            p[2] = 0.95 * p[2] + 0.3 * w;
            let hiss = (p[0] + p[1] + p[2] + 0.2 * w) * 0.25;
            o[i] = (section * (hiss + chord) + bass) as f32 * 0.5;
        }
    }
    out
}

/// Drums: a kick (pitch-swept sine) on every beat and a noise snare on 2 and 4 at
/// 120 bpm: large crest factor.
fn drums(rate: u32, secs: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = (secs * rate as f64) as usize;
    let beat = rate as usize / 2;
    let mut out = vec![vec![0f32; n]; 2];
    for i in 0..n {
        let k = i % beat;
        let tb = k as f64 / rate as f64;
        let kick = (-tb * 12.0).exp()
            * (2.0 * std::f64::consts::PI * (50.0 * tb + 60.0 * (1.0 - (-tb * 30.0).exp()) / 30.0))
                .sin();
        let snare = if (i / beat) % 2 == 1 {
            (-tb * 25.0).exp() * rng.random_range(-1.0..1.0) * 0.6
        } else {
            0.0
        };
        for (c, o) in out.iter_mut().enumerate() {
            let pan = if c == 0 { 0.9 } else { 1.0 };
            o[i] = ((kick * 0.8 + snare * pan) * 0.7) as f32;
        }
    }
    out
}

/// Sustained tones: an organ-like note, harmonics of 110 Hz (sustained material
/// must not pump).
fn tones(rate: u32, secs: f64) -> Vec<Vec<f32>> {
    let n = (secs * rate as f64) as usize;
    let fs = [110.0, 220.0, 330.0, 440.0, 550.0];
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            fs.iter()
                .map(|f| 0.12 * (2.0 * std::f64::consts::PI * f * t).sin())
                .sum::<f64>() as f32
        })
        .collect();
    vec![x.clone(), x.iter().map(|v| v * 0.9).collect()]
}

// ---- tests --------------------------------------------------------------------

#[test]
fn limiter_holds_the_ceiling_on_hostile_signals() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48000;
    let signals = [
        ("square", square(rate, 4.0, 997.0)),
        ("noise", noise(rate, 4.0, 1)),
        ("fs/4 at 45°", quarter_rate_45(rate, 4.0)),
    ];
    for (name, mix) in signals {
        for (target, ceiling) in [(None, -1.0), (Some(-6.0), -1.0), (Some(-10.0), -0.1)] {
            let d = deliverable(target, ceiling, rate, 24, Format::Wav);
            let path = dir.path().join("lim.wav");
            let r = master(&mix, rate, None, &d, &path);
            let (out, _) = read(&path);
            let tp = reference_true_peak_db(&out);
            assert!(
                tp <= ceiling,
                "{name} target {target:?}: reference true peak {tp:.3} dBTP over {ceiling}"
            );
            let (_, tp_e) = ebur128_figures(&out, rate);
            assert!(
                tp_e <= ceiling,
                "{name}: ebur128 true peak {tp_e:.3} over {ceiling}"
            );
            assert!(r.true_peak_dbtp.unwrap() <= ceiling);
        }
    }
}

#[test]
fn sustained_tone_is_not_pumped() {
    // A steady note pushed ~2 dB into the limiter: once settled, the gain must be
    // steady, so the output's 50 ms RMS stays within 0.5 dB.
    let dir = tempfile::tempdir().unwrap();
    let rate = 48000;
    let mix = tones(rate, 6.0);
    let d = deliverable(Some(-5.0), -1.0, rate, 32, Format::Wav);
    let path = dir.path().join("tone.wav");
    let r = master(&mix, rate, None, &d, &path);
    assert!(r.limiter_gain_reduction_max_db.unwrap() > 1.0, "{r:?}");
    let (out, _) = read(&path);
    let w = rate as usize / 20;
    let rms: Vec<f64> = out[0][rate as usize..out[0].len() - rate as usize]
        .chunks(w)
        .filter(|c| c.len() == w)
        .map(|c| 10.0 * (c.iter().map(|&v| (v * v) as f64).sum::<f64>() / w as f64).log10())
        .collect();
    let (lo, hi) = rms
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo < 0.5, "RMS varies {lo:.2}..{hi:.2} dB");
}

#[test]
fn loudness_lands_on_target_for_generated_mixes() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48000;
    let mixes = [
        ("music", music(rate, 16.0, 3)),
        ("drums", drums(rate, 8.0, 4)),
        ("tones", tones(rate, 6.0)),
    ];
    let deliverables = [
        deliverable(Some(-14.0), -1.0, 48000, 24, Format::Wav),
        deliverable(Some(-23.0), -1.0, 48000, 24, Format::Wav),
        deliverable(Some(-9.0), -1.0, 48000, 32, Format::Wav),
        deliverable(Some(-14.0), -1.0, 44100, 16, Format::Flac),
    ];
    for (name, mix) in &mixes {
        for d in &deliverables {
            let path = dir.path().join(format!("o.{}", d.format.ext()));
            master(mix, rate, None, d, &path);
            let (out, r) = read(&path);
            assert_eq!(r, d.sample_rate);
            let (i, tp) = ebur128_figures(&out, r);
            let t = d.target_lufs.unwrap();
            assert!(
                (i - t).abs() <= 0.3,
                "{name} → {t} LUFS @ {r}/{}: measured {i:.2}",
                d.bit_depth
            );
            assert!(tp <= -1.0, "{name} → {t}: ebur128 true peak {tp:.3}");
            let tpr = reference_true_peak_db(&out);
            assert!(tpr <= -1.0, "{name} → {t}: reference true peak {tpr:.3}");
        }
    }
}

#[test]
fn multiband_at_ratio_one_is_transparent() {
    let rate = 48000;
    let mix = music(rate, 3.0, 9);
    let band = Compressor {
        threshold_db: -30.0,
        ratio: 1.0,
        attack_ms: 5.0,
        release_ms: 50.0,
        knee_db: 0.0,
        makeup_db: 0.0,
        detector: Detector::Peak,
        sidechain: None,
    };
    let chain = Master {
        multiband: Some(Multiband {
            crossovers_hz: vec![120.0, 1000.0, 6000.0],
            bands: vec![band; 4],
        }),
        ..Default::default()
    };
    let out = apply_chain(
        [&mix[0], &mix[1]],
        rate,
        Some(&chain),
        &cpu_fir,
        &AtomicBool::new(false),
    )
    .unwrap();
    let out = out.channels.unwrap();
    let peak = mix.iter().flatten().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let err = mix
        .iter()
        .zip(&out)
        .flat_map(|(a, b)| a.iter().zip(b))
        .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    let db = 20.0 * (err / peak).log10();
    assert!(db <= -80.0, "multiband at ratio 1 differs by {db:.1} dB");
}

#[test]
fn dither_error_is_white_tpdf() {
    // A quiet sine plus a little noise, quantised to 16 bits: the error e = q − x·2^15
    // must have variance LSB²/4 (LSB²/12 rounding + LSB²/6 TPDF) and a flat spectrum.
    let rate = 48000usize;
    let n = 1 << 18;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f32> = (0..n)
        .map(|i| {
            (0.001 * (2.0 * std::f64::consts::PI * 997.0 * i as f64 / rate as f64).sin()) as f32
                + rng.random_range(-1e-5f32..1e-5)
        })
        .collect();
    // The deliverable path: codes written back in place as code / 2^15.
    let mut q = vec![x.clone()];
    let clipped = quantize_in_place(&mut q, 16, NoiseShaping::None);
    assert_eq!(clipped, 0);
    let e: Vec<f64> = q[0]
        .iter()
        .zip(&x)
        .map(|(&q, &x)| q as f64 * 32768.0 - x as f64 * 32768.0)
        .collect();
    let mean = e.iter().sum::<f64>() / n as f64;
    let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        (var - 0.25).abs() < 0.0125,
        "error variance {var:.4} LSB², want 0.25"
    );
    // Averaged periodogram (1024-point frames, Hann), 8 equal bands: each within 1 dB
    // of the mean.
    let m = 1024;
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(m);
    let mut psd = vec![0f64; m / 2 + 1];
    let win: Vec<f64> = (0..m)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / m as f64).cos())
        .collect();
    for frame in e.chunks(m).filter(|c| c.len() == m) {
        let mut buf: Vec<f64> = frame
            .iter()
            .zip(&win)
            .map(|(a, w)| (a - mean) * w)
            .collect();
        let mut spec = fft.make_output_vec();
        fft.process(&mut buf, &mut spec).unwrap();
        for (p, c) in psd.iter_mut().zip(&spec) {
            *p += c.norm_sqr();
        }
    }
    let bands: Vec<f64> = psd[1..m / 2]
        .chunks(m / 16)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let avg = bands.iter().sum::<f64>() / bands.len() as f64;
    for (b, v) in bands.iter().enumerate() {
        let d = 10.0 * (v / avg).log10();
        assert!(
            d.abs() < 1.0,
            "band {b}: {d:.2} dB from the mean: not white"
        );
    }
    // And the error does not follow the signal (independence): correlation ~ 0.
    let c: f64 = e
        .iter()
        .zip(&x)
        .map(|(a, &b)| (a - mean) * b as f64)
        .sum::<f64>()
        / (var.sqrt()
            * (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()).sqrt()
            * (n as f64).sqrt());
    assert!(c.abs() < 0.01, "error correlates with the signal: {c}");
}

#[test]
fn sixteen_bit_deliverable_holds_dithered_integers() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48000;
    let mix = music(rate, 6.0, 11);
    let d = deliverable(Some(-16.0), -1.0, rate, 16, Format::Wav);
    let path = dir.path().join("cd.wav");
    let r = master(&mix, rate, None, &d, &path);
    assert_eq!(r.bit_depth, Some(16));
    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().bits_per_sample, 16);
}

#[test]
fn bad_inputs_are_errors_or_documented() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48000;
    let mix = music(rate, 2.0, 1);
    let path = dir.path().join("x.wav");
    let fail = |d: &Deliverable| {
        let job = MasterJob {
            mix: [&mix[0], &mix[1]],
            mix_rate: rate,
            chain: None,
            deliverable: d,
            fir: &cpu_fir,
            gain_override_db: None,
        };
        master_deliverable(&job, &path, &AtomicBool::new(false))
            .unwrap_err()
            .to_string()
    };
    assert!(fail(&deliverable(Some(-3.0), -1.0, rate, 24, Format::Wav)).contains("target_lufs"));
    assert!(fail(&deliverable(Some(-45.0), -1.0, rate, 24, Format::Wav)).contains("target_lufs"));
    assert!(fail(&deliverable(Some(-14.0), 0.5, rate, 24, Format::Wav)).contains("ceiling_dbtp"));
    // Silence: no gain, a note says why; the file is written.
    let silent = vec![vec![0f32; rate as usize * 2]; 2];
    let d = deliverable(Some(-14.0), -1.0, rate, 24, Format::Wav);
    let r = master(&silent, rate, None, &d, &path);
    assert_eq!(r.gain_db, Some(0.0));
    assert!(
        r.integrated_lufs.is_none() && r.notes.iter().any(|n| n.contains("no normalising gain")),
        "{r:?}"
    );
    // Shorter than a gating block: the same.
    let short = music(rate, 0.2, 2);
    let r = master(&short, rate, None, &d, &path);
    assert_eq!(r.gain_db, Some(0.0));
    assert!(r.integrated_lufs.is_none());
    // A mix that clips before the chain is warned about.
    let loud: Vec<Vec<f32>> = mix
        .iter()
        .map(|c| c.iter().map(|v| v * 4.0).collect())
        .collect();
    let r = master(&loud, rate, None, &d, &path);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("clips before the master chain")),
        "{:?}",
        r.warnings
    );
    // Heavy limiting is warned about.
    let d9 = deliverable(Some(-6.0), -1.0, rate, 24, Format::Wav);
    let r = master(&drums(rate, 4.0, 3), rate, None, &d9, &path);
    assert!(
        r.warnings.iter().any(|w| w.contains("dB of limiting")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn analyze_reports_mono_compatibility_and_dc() {
    let rate = 48000;
    let n = rate as usize * 2;
    let lo: Vec<f32> = (0..n)
        .map(|i| 0.5 * (2.0 * std::f64::consts::PI * 60.0 * i as f64 / rate as f64).sin() as f32)
        .collect();
    let anti: Vec<f32> = lo.iter().map(|v| -v + 0.05).collect();
    let r = analyze(&[lo.clone(), anti], rate, "phase.wav").unwrap();
    assert!(r.correlation.unwrap() < -0.99);
    assert!(
        r.warnings.iter().any(|w| w.contains("not mono compatible")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("DC offset on channel 2")),
        "{:?}",
        r.warnings
    );
    let r = analyze(&[lo.clone(), lo], rate, "mono.wav").unwrap();
    assert!(r.mono_compat_drop_db.unwrap().abs() < 0.01);
}
