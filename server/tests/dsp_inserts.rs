//! The 2026-12 insert processors against CONTRACT.md ("Precise meanings of the
//! 2026-12 additions"): delay, saturation, gate, compressor sidechain and automation,
//! EQ automation. Every expected value is computed here in f64 from the contract's
//! formulas (never from the code's own output); every processor is also run with
//! block sizes 1, 64 and 4096 and after `reset`, which must give identical output.

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;

use bounce_server::dsp::automation::{Lane, Param};
use bounce_server::dsp::biquad::{BandSpec, EqAutomation, EqChain, FilterKind, design};
use bounce_server::dsp::compressor::{
    Compressor, CompressorAutomation, CompressorParams, DetectorKind,
};
use bounce_server::dsp::echo::{Echo, EchoParams};
use bounce_server::dsp::gate::{Gate, GateParams};
use bounce_server::dsp::saturation::{Saturation, SaturationParams};
use bounce_server::dsp::{ProcessCtx, ProcessSpec, Processor};
use bounce_test_audio::{db, noise};

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

const FS: f64 = 48_000.0;

fn sine(f: f64, amp: f64, n: usize, fs: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * f * i as f64 / fs).sin()) as f32)
        .collect()
}

/// Prepares `p` for `input`'s width and runs it over `input` in blocks of `block`
/// frames at timeline frame 0, with an optional sidechain key.
fn run_with(
    p: &mut dyn Processor,
    input: &[Vec<f32>],
    key: Option<&[Vec<f32>]>,
    block: usize,
    fs: f64,
) -> Vec<Vec<f32>> {
    p.prepare(&ProcessSpec {
        sample_rate: fs,
        max_block: block,
        channels: input.len(),
    })
    .unwrap();
    process_all(p, input, key, block)
}

/// Runs an already prepared `p` (after `reset` for instance).
fn process_all(
    p: &mut dyn Processor,
    input: &[Vec<f32>],
    key: Option<&[Vec<f32>]>,
    block: usize,
) -> Vec<Vec<f32>> {
    let mut out = input.to_vec();
    let n = out[0].len();
    let mut at = 0;
    while at < n {
        let k = block.min(n - at);
        let keys: Vec<&[f32]> = key
            .map(|ks| ks.iter().map(|c| &c[at..at + k]).collect())
            .unwrap_or_default();
        let ctx = ProcessCtx {
            start: at as u64,
            key: key.map(|_| &keys[..]),
        };
        let mut b: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[at..at + k]).collect();
        p.process(&mut b, &ctx);
        at += k;
    }
    out
}

fn run(p: &mut dyn Processor, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    run_with(p, input, None, block, FS)
}

/// Block sizes 1, 64 and 4096 and a run after `reset` give the same output as the
/// first 4096-frame run; returns that output.
fn check_blocks_and_reset(
    make: impl Fn() -> Box<dyn Processor>,
    input: &[Vec<f32>],
    key: Option<&[Vec<f32>]>,
    what: &str,
) -> Vec<Vec<f32>> {
    let mut p = make();
    let first = run_with(p.as_mut(), input, key, 4096, FS);
    p.reset();
    let again = process_all(p.as_mut(), input, key, 4096);
    assert!(first == again, "{what}: reset repeats the first run");
    for block in [1usize, 64] {
        let mut q = make();
        let y = run_with(q.as_mut(), input, key, block, FS);
        assert!(first == y, "{what}: block size {block}");
    }
    first
}

/// The contract's lane reading, written out here: linear between points, holding
/// outside, the later of equal-time points from its time on.
fn lane_value(pts: &[(f64, f64)], n: u64, fs: f64) -> f64 {
    let t = n as f64 / fs;
    if t < pts[0].0 {
        return pts[0].1;
    }
    let mut i = 0;
    while i + 1 < pts.len() && pts[i + 1].0 <= t {
        i += 1;
    }
    if i + 1 == pts.len() {
        return pts[i].1;
    }
    let ((t0, v0), (t1, v1)) = (pts[i], pts[i + 1]);
    v0 + (v1 - v0) * (t - t0) / (t1 - t0)
}

/// Largest |a − b| over all channels, relative to `scale`, in dB.
fn worst_db(a: &[Vec<f32>], b: &[Vec<f64>], scale: f64) -> f64 {
    let mut worst = 0f64;
    for (ca, cb) in a.iter().zip(b) {
        for (&x, &y) in ca.iter().zip(cb) {
            worst = worst.max((x as f64 - y).abs());
        }
    }
    db(worst / scale)
}

// ---------------------------------------------------------------- delay (echo)

fn echo(d: usize, fb: Param, mix: Param, ping_pong: bool) -> Echo {
    Echo::new(EchoParams {
        delay_samples: d,
        feedback: fb,
        mix,
        ping_pong,
    })
}

/// wet(t) = Σ_{k≥1} fb^(k−1)·x(t − kD), summed directly; `parity` Some(1) keeps odd
/// k only, Some(0) even k only.
fn echo_reference(x: &[f64], d: usize, fb: f64, parity: Option<usize>) -> Vec<f64> {
    (0..x.len())
        .map(|n| {
            let mut s = 0.0;
            let mut k = 1;
            while k * d <= n {
                if parity.is_none_or(|p| k % 2 == p) {
                    s += fb.powi(k as i32 - 1) * x[n - k * d];
                }
                k += 1;
            }
            s
        })
        .collect()
}

#[test]
fn echo_impulse_follows_the_formula() {
    let (d, fb, mix) = (480usize, 0.6, 0.35);
    let n = 12 * d;
    let mut l = vec![0f32; n];
    let mut r = vec![0f32; n];
    l[7] = 1.0;
    r[100] = -0.5;
    r[2000] = 0.25;
    let input = vec![l, r];
    let out = check_blocks_and_reset(
        || Box::new(echo(d, Param::Fixed(fb), Param::Fixed(mix), false)),
        &input,
        None,
        "echo",
    );
    let want: Vec<Vec<f64>> = input
        .iter()
        .map(|c| {
            let x: Vec<f64> = c.iter().map(|&v| v as f64).collect();
            let w = echo_reference(&x, d, fb, None);
            x.iter()
                .zip(&w)
                .map(|(a, b)| (1.0 - mix) * a + mix * b)
                .collect()
        })
        .collect();
    let e = worst_db(&out, &want, 1.0);
    assert!(e <= -90.0, "echo impulse error {e} dB");
    // The first echo is at D exactly, the second at 2D with fb.
    assert!((out[0][7 + d] as f64 - mix).abs() < 1e-7);
    assert!((out[0][7 + 2 * d] as f64 - mix * fb).abs() < 1e-7);
    assert_eq!(out[0][7 + d - 1], 0.0);
}

#[test]
fn ping_pong_alternates_odd_left_even_right() {
    let (d, fb, mix) = (300usize, 0.7, 0.5);
    let n = 10 * d;
    // Stereo input: the delay hears (L+R)/2; the dry path keeps L and R.
    let mut l = noise(1, n, 0.3);
    let r = noise(2, n, 0.3);
    l[5] += 1.0;
    let input = vec![l, r];
    let out = check_blocks_and_reset(
        || Box::new(echo(d, Param::Fixed(fb), Param::Fixed(mix), true)),
        &input,
        None,
        "ping-pong",
    );
    let s: Vec<f64> = (0..n)
        .map(|i| (input[0][i] as f64 + input[1][i] as f64) / 2.0)
        .collect();
    let odd = echo_reference(&s, d, fb, Some(1));
    let even = echo_reference(&s, d, fb, Some(0));
    let want = vec![
        (0..n)
            .map(|i| (1.0 - mix) * input[0][i] as f64 + mix * odd[i])
            .collect::<Vec<_>>(),
        (0..n)
            .map(|i| (1.0 - mix) * input[1][i] as f64 + mix * even[i])
            .collect(),
    ];
    let e = worst_db(&out, &want, 1.0);
    assert!(e <= -90.0, "ping-pong error {e} dB");

    // A mono strip widened by the chain: both sides x·0.7071; an impulse's repeats
    // land left at D, 3D, … and right at 2D, 4D, ….
    let p = echo(d, Param::Fixed(fb), Param::Fixed(1.0), true);
    assert_eq!(p.output_channels(1), 2);
    assert_eq!(p.output_channels(2), 2);
    assert_eq!(
        echo(d, Param::Fixed(fb), Param::Fixed(1.0), false).output_channels(1),
        1
    );
    let g = std::f32::consts::FRAC_1_SQRT_2;
    let mut x = vec![0f32; n];
    x[0] = g;
    let mut p = p;
    let out = run(&mut p, &[x.clone(), x], 64);
    for k in 1..8usize {
        let (on, off) = if k % 2 == 1 { (0, 1) } else { (1, 0) };
        let want = g as f64 * fb.powi(k as i32 - 1);
        assert!((out[on][k * d] as f64 - want).abs() < 1e-6, "repeat {k}");
        assert_eq!(out[off][k * d], 0.0, "repeat {k} on the other side");
    }
    let nonzero: usize = out.iter().flatten().filter(|v| **v != 0.0).count();
    assert_eq!(nonzero, 9, "only the repeats sound, one side each");
}

#[test]
fn automated_feedback_follows_the_recursion() {
    let d = 96usize;
    let n = 48_000;
    let pts = [(0.0, 0.0), (0.4, 0.95), (0.6, 0.95), (0.6, 0.2), (1.0, 0.5)];
    let mix_pts = [(0.0, 1.0), (0.9, 0.3)];
    let x = noise(9, n, 0.5);
    let make = || -> Box<dyn Processor> {
        Box::new(echo(
            d,
            Param::Auto(Lane::linear(&pts, FS)),
            Param::Auto(Lane::linear(&mix_pts, FS)),
            false,
        ))
    };
    let out = check_blocks_and_reset(make, std::slice::from_ref(&x), None, "automated echo");
    // w[n] = x[n − D] + fb[n]·w[n − D]; out = (1 − mix[n])·x + mix[n]·w.
    let mut w = vec![0f64; n];
    let mut want = vec![0f64; n];
    for i in 0..n {
        if i >= d {
            w[i] = x[i - d] as f64 + lane_value(&pts, i as u64, FS) * w[i - d];
        }
        let m = lane_value(&mix_pts, i as u64, FS);
        want[i] = (1.0 - m) * x[i] as f64 + m * w[i];
    }
    let e = worst_db(&out, &[want], 1.0);
    assert!(e <= -90.0, "automated feedback error {e} dB");
}

// ---------------------------------------------------------------- saturation

fn saturation(drive_db: f64, output_db: f64, mix: f64) -> Saturation {
    Saturation::new(SaturationParams {
        drive_db: Param::Fixed(drive_db),
        output_db: Param::Fixed(output_db),
        mix: Param::Fixed(mix),
    })
}

/// Amplitude of the component at `f` Hz over `y[start..start + len]` (whole cycles).
fn amplitude(y: &[f32], f: f64, start: usize, len: usize, fs: f64) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for (i, &v) in y[start..start + len].iter().enumerate() {
        let ph = 2.0 * PI * f * i as f64 / fs;
        s += v as f64 * ph.sin();
        c += v as f64 * ph.cos();
    }
    2.0 * s.hypot(c) / len as f64
}

/// Sine-series coefficients b_k of tanh(a·sin θ), from a dense grid over one period
/// in f64 (the function is odd and half-wave symmetric: only odd k are non-zero).
fn tanh_harmonics(a: f64, kmax: usize) -> Vec<f64> {
    let m = 1 << 16;
    let y: Vec<f64> = (0..m)
        .map(|i| (a * (2.0 * PI * i as f64 / m as f64).sin()).tanh())
        .collect();
    (0..=kmax)
        .map(|k| {
            let s: f64 = y
                .iter()
                .enumerate()
                .map(|(i, v)| v * (2.0 * PI * (k * i) as f64 / m as f64).sin())
                .sum();
            2.0 * s / m as f64
        })
        .collect()
}

#[test]
fn saturation_harmonics_match_analytic_tanh() {
    let (f0, amp) = (100.0, 0.5);
    for (drive_db, output_db) in [(12.0, -3.0), (6.0, 0.0), (24.0, -12.0)] {
        let mut p = saturation(drive_db, output_db, 1.0);
        let n = 72_000;
        let out = run(&mut p, &[sine(f0, amp, n, FS)], 4096);
        let lat = p.latency();
        let b = tanh_harmonics(amp * 10f64.powf(drive_db / 20.0), 11);
        let g = 10f64.powf(output_db / 20.0);
        // One second (100 whole cycles) from 0.25 s on, shifted back by the latency.
        let start = 12_000 + lat;
        for k in [1usize, 3, 5, 7, 9, 11] {
            let want = g * b[k].abs();
            if db(want / (g * b[1].abs())) < -80.0 {
                continue;
            }
            let got = amplitude(&out[0], k as f64 * f0, start, 48_000, FS);
            let e = db(got / want);
            assert!(
                e.abs() <= 0.3,
                "drive {drive_db} dB, harmonic {k}: {got} vs {want} ({e:+.3} dB)"
            );
        }
    }
}

#[test]
fn saturation_dry_and_wet_stay_aligned() {
    // mix 0.5: the fundamental is 0.5·a + 0.5·b1 only if dry and wet are in phase.
    let (f0, amp) = (1000.0, 0.5);
    let mut p = saturation(12.0, 0.0, 0.5);
    let out = run(&mut p, &[sine(f0, amp, 60_000, FS)], 512);
    let b1 = tanh_harmonics(amp * 10f64.powf(12.0 / 20.0), 1)[1];
    let want = 0.5 * amp + 0.5 * b1;
    let got = amplitude(&out[0], f0, 10_000, 48_000, FS);
    assert!(db(got / want).abs() < 0.05, "{got} vs {want}");
    // mix 0: the input delayed by the latency, exactly.
    let x = noise(4, 20_000, 0.9);
    let mut p = saturation(30.0, 0.0, 0.0);
    let out = run(&mut p, std::slice::from_ref(&x), 333);
    let lat = p.latency();
    assert!(out[0][..lat].iter().all(|v| *v == 0.0));
    assert!(
        out[0][lat..] == x[..x.len() - lat],
        "mix 0 is the delayed input"
    );
}

#[test]
fn saturation_latency_is_the_measured_impulse_delay() {
    for fs in [44_100.0, 48_000.0, 96_000.0, 8_000.0, 192_000.0, 384_000.0] {
        let mut p = saturation(0.0, 0.0, 1.0);
        let mut x = vec![0f32; 4096];
        x[100] = 1e-3; // small: tanh is linear there
        let out = run_with(&mut p, &[x], None, 64, fs);
        let lat = p.latency();
        let peak = out[0]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        eprintln!("saturation latency at {fs} Hz: {lat} samples");
        assert_eq!(peak, 100 + lat, "{fs} Hz");
        // Unity gain at low frequencies: the impulse response sums to the impulse.
        let sum: f64 = out[0].iter().map(|&v| v as f64).sum();
        assert!(
            (sum / 1e-3 - 1.0).abs() < 1e-3,
            "{fs} Hz: DC gain {}",
            sum / 1e-3
        );
    }
}

/// Worst component other than the input's harmonics below Nyquist, relative to the
/// fundamental, in dB, for a 0 dBFS sine at `f0` and `drive_db`, on a 1 s
/// steady-state window (integer f0: whole cycles, every harmonic on a bin).
fn aliasing_db(fs: f64, f0: f64, drive_db: f64) -> f64 {
    let len = fs as usize;
    let mut p = saturation(drive_db, 0.0, 1.0);
    let n = len + len / 2;
    let out = run_with(&mut p, &[sine(f0, 1.0, n, fs)], None, 4096, fs);
    let start = n - len;
    let mut buf: Vec<Complex<f64>> = out[0][start..]
        .iter()
        .map(|&v| Complex::new(v as f64, 0.0))
        .collect();
    FftPlanner::new().plan_fft_forward(len).process(&mut buf);
    let fund = buf[f0 as usize].norm();
    let mut worst = 0f64;
    for (bin, c) in buf.iter().enumerate().take(len / 2 + 1) {
        let f = bin as f64; // 1 Hz bins
        let harmonic = f > 0.0 && (f / f0).fract() == 0.0;
        if !harmonic {
            worst = worst.max(c.norm());
        }
    }
    db(worst / fund)
}

#[test]
fn saturation_aliases_stay_60_db_down() {
    for fs in [48_000.0, 44_100.0, 96_000.0] {
        let a = aliasing_db(fs, 7000.0, 12.0);
        eprintln!("aliasing, 0 dBFS 7 kHz at {fs} Hz, drive 12 dB: {a:.1} dB");
        assert!(a <= -60.0, "{fs} Hz: aliasing at {a} dB");
    }
}

#[test]
fn saturation_blocks_reset_and_automation() {
    let x = vec![sine(440.0, 0.8, 30_000, FS), noise(5, 30_000, 0.5)];
    let make = || -> Box<dyn Processor> {
        Box::new(Saturation::new(SaturationParams {
            drive_db: Param::Auto(Lane::linear(&[(0.0, 0.0), (0.5, 24.0)], FS)),
            output_db: Param::Auto(Lane::linear(&[(0.1, 0.0), (0.3, -6.0)], FS)),
            mix: Param::Auto(Lane::linear(&[(0.0, 0.0), (0.6, 1.0)], FS)),
        }))
    };
    let out = check_blocks_and_reset(make, &x, None, "saturation");
    assert!(out.iter().flatten().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------- gate

fn gate(threshold_db: Param, range_db: f64, attack: f64, hold: f64, release: f64) -> Gate {
    Gate::new(GateParams {
        threshold_db,
        range_db,
        attack_ms: attack,
        hold_ms: hold,
        release_ms: release,
    })
}

#[test]
fn gate_steady_state_gains_open_and_closed() {
    let n = 48_000;
    // Open: a −20 dBFS sine over a −30 dB threshold passes unchanged (the hold
    // bridges the zero crossings).
    let x = sine(1000.0, 0.1, n, FS);
    let mut g = gate(Param::Fixed(-30.0), -60.0, 1.0, 10.0, 100.0);
    let out = run(&mut g, std::slice::from_ref(&x), 4096);
    assert!(out[0] == x, "open gate is transparent");
    // Closed: a −40 dBFS sine under a −30 dB threshold settles at range (−60 dB).
    for range in [-60.0, -80.0, -12.0] {
        let x = sine(1000.0, 0.01, n, FS);
        let mut g = gate(Param::Fixed(-30.0), range, 1.0, 10.0, 100.0);
        let out = run(&mut g, std::slice::from_ref(&x), 4096);
        let got = db(amplitude(&out[0], 1000.0, 24_000, 24_000, FS) / 0.01);
        assert!(
            (got - range).abs() < 0.01,
            "closed at {got} dB, range {range}"
        );
    }
    // Linked: the louder channel opens both.
    let x = vec![sine(1000.0, 0.2, n, FS), sine(300.0, 0.001, n, FS)];
    let mut g = gate(Param::Fixed(-30.0), -60.0, 1.0, 10.0, 100.0);
    let out = run(&mut g, &x, 4096);
    assert!(out == x, "linked");
}

#[test]
fn gate_hold_and_ramps_take_their_times() {
    let (range, attack, hold, release) = (-60.0, 5.0, 10.0, 100.0);
    let thr_db = -30.0;
    // Level steps: loud (0.5) → quiet (0.001, under threshold) → loud → quiet.
    let seg = [
        (4_800, 0.5f32),
        (14_400, 0.001),
        (4_800, 0.5),
        (9_600, 0.001),
    ];
    let x: Vec<f32> = seg
        .iter()
        .flat_map(|&(k, v)| std::iter::repeat_n(v, k))
        .collect();
    let out = check_blocks_and_reset(
        || Box::new(gate(Param::Fixed(thr_db), range, attack, hold, release)),
        std::slice::from_ref(&x),
        None,
        "gate",
    );
    let gain_db: Vec<f64> = x
        .iter()
        .zip(&out[0])
        .map(|(a, b)| db(*b as f64 / *a as f64))
        .collect();
    // Reference in dB: a straight line at range/attack or range/release dB per
    // sample towards the target; the target is open while the level is at or above
    // threshold and for round(hold·fs) samples after the last such sample.
    let thr = 10f64.powf(thr_db / 20.0);
    let h = (hold * 1e-3 * FS).round() as i64;
    let (up, down) = (
        -range / (attack * 1e-3 * FS),
        -range / (release * 1e-3 * FS),
    );
    let mut g = 0.0f64;
    // "It starts open": as if the level was at threshold just before frame 0.
    let mut last: i64 = -1;
    let mut worst = 0f64;
    for (i, &v) in x.iter().enumerate() {
        let i = i as i64;
        if v as f64 >= thr {
            last = i;
        }
        g = if i - last <= h {
            (g + up).min(0.0)
        } else {
            (g - down).max(range)
        };
        worst = worst.max((gain_db[i as usize] - g).abs());
    }
    assert!(
        worst < 1e-5,
        "gate gain vs straight-line reference: {worst} dB"
    );
    // The times, read off the output: closing starts hold after the last loud sample
    // and takes release; opening takes attack.
    let last_loud = 4_800 - 1;
    let first_closing = (last_loud..).find(|&i| gain_db[i] < -1e-9).unwrap();
    assert_eq!(first_closing - last_loud, h as usize + 1);
    let closed = (first_closing..)
        .find(|&i| gain_db[i] <= range + 1e-4)
        .unwrap();
    let t = (closed + 1 - first_closing) as f64 / FS * 1e3;
    assert!((t - release).abs() <= 1000.0 / FS, "release took {t} ms");
    let reopen = 4_800 + 14_400;
    let open = (reopen..).find(|&i| gain_db[i] >= -1e-9).unwrap();
    let t = (open + 1 - reopen) as f64 / FS * 1e3;
    assert!((t - attack).abs() <= 1000.0 / FS, "attack took {t} ms");
    assert_eq!(out[0][open], x[open], "fully open is exactly unity");
}

#[test]
fn gate_threshold_automation_is_read_every_64_frames() {
    // A constant −30 dBFS level; the threshold steps from −20 (closed) to −40 (open)
    // at 0.25 s, which is frame 12000 (a multiple of 64 is 12032).
    let n = 24_000;
    let x = vec![0.031_622_78f32; n];
    let pts = [(0.0, -20.0), (0.25, -20.0), (0.25, -40.0)];
    let out = check_blocks_and_reset(
        || {
            Box::new(gate(
                Param::Auto(Lane::linear(&pts, FS)),
                -40.0,
                0.0,
                0.0,
                0.0,
            ))
        },
        std::slice::from_ref(&x),
        None,
        "gate automation",
    );
    let g: Vec<f64> = out[0].iter().map(|&v| db(v as f64 / x[0] as f64)).collect();
    // Instant ramps: closed (−40 dB) from frame 0, open from the first 64-frame cell
    // whose start reads −40 dB.
    let switch = 12_000usize.div_ceil(64) * 64;
    assert!(g[..switch].iter().all(|v| (v + 40.0).abs() < 1e-9));
    assert!(out[0][switch..].iter().all(|v| *v == x[0]));
}

// ---------------------------------------------------------------- compressor

fn comp_params(threshold_db: f64, ratio: f64, detector: DetectorKind) -> CompressorParams {
    CompressorParams {
        threshold_db,
        ratio,
        attack_ms: 10.0,
        release_ms: 100.0,
        knee_db: 0.0,
        makeup_db: 0.0,
        detector,
    }
}

/// The first contract's hard-knee static curve, output level for level l.
fn curve(l: f64, t: f64, r: f64, makeup: f64) -> f64 {
    (if l > t { t + (l - t) / r } else { l }) + makeup
}

#[test]
fn sidechain_ducks_on_the_static_curve() {
    let n = 96_000;
    let (t, r) = (-20.0, 4.0);
    for det in [DetectorKind::Peak, DetectorKind::Rms] {
        // The strip: a quiet 300 Hz sine (−30 dBFS peak), under the threshold itself.
        let a = 10f64.powf(-30.0 / 20.0);
        let strip = vec![sine(300.0, a, n, FS), sine(300.0, a, n, FS)];
        for key_db in [-6.0, -12.0, -25.0] {
            // Key at a known detector level: peak, or RMS (a sine's peak + 3.01 dB).
            let ka = match det {
                DetectorKind::Peak => 10f64.powf(key_db / 20.0),
                DetectorKind::Rms => 10f64.powf(key_db / 20.0) * 2f64.sqrt(),
            };
            let want = curve(key_db, t, r, 0.0) - key_db;
            // A stereo key, its right side quieter: linked by the larger channel; and
            // a mono key as it is.
            let keys = [
                vec![sine(1000.0, ka, n, FS), sine(1000.0, ka * 0.1, n, FS)],
                vec![sine(1000.0, ka, n, FS)],
            ];
            for key in &keys {
                let mut c = Compressor::new(comp_params(t, r, det));
                let out = run_with(&mut c, &strip, Some(key), 4096, FS);
                for ch in &out {
                    let got = db(amplitude(ch, 300.0, 48_000, 48_000, FS) / a);
                    assert!(
                        (got - want).abs() <= 0.5,
                        "{det:?} key {key_db} dB ({} ch): gain {got} vs {want}",
                        key.len()
                    );
                }
            }
        }
    }
    // Mono strip with a stereo key; blocks and reset.
    let key = vec![sine(1000.0, 0.5, 20_000, FS), noise(3, 20_000, 0.2)];
    let strip = vec![noise(4, 20_000, 0.05)];
    check_blocks_and_reset(
        || Box::new(Compressor::new(comp_params(-20.0, 4.0, DetectorKind::Rms))),
        &strip,
        Some(&key),
        "sidechain rms",
    );
    check_blocks_and_reset(
        || Box::new(Compressor::new(comp_params(-20.0, 4.0, DetectorKind::Peak))),
        &strip,
        Some(&key),
        "sidechain peak",
    );
}

#[test]
fn compressor_automation_steps_every_64_frames() {
    // DC at −6.02 dBFS with instant attack/release: the gain is the static curve at
    // every sample, with the parameters read at the start of each 64-frame cell.
    let n = 48_000;
    let level = 0.5f32;
    let x = vec![vec![level; n]];
    let tp = [(0.0, -30.0), (1.0, -3.0)];
    let rp = [(0.1, 2.0), (0.7, 8.0)];
    let mp = [(0.0, 0.0), (0.5, 6.0), (0.5, -2.0)];
    let mut p = comp_params(0.0, 1.0, DetectorKind::Peak);
    p.attack_ms = 0.0;
    p.release_ms = 0.0;
    let make = || -> Box<dyn Processor> {
        Box::new(Compressor::automated(
            p,
            CompressorAutomation {
                threshold_db: Some(Lane::linear(&tp, FS)),
                ratio: Some(Lane::linear(&rp, FS)),
                makeup_db: Some(Lane::linear(&mp, FS)),
            },
        ))
    };
    let out = check_blocks_and_reset(make, &x, None, "compressor automation");
    let l = db(level as f64);
    let mut worst = 0f64;
    for (i, &y) in out[0].iter().enumerate() {
        let c = (i / 64 * 64) as u64;
        let (t, r, m) = (
            lane_value(&tp, c, FS),
            lane_value(&rp, c, FS),
            lane_value(&mp, c, FS),
        );
        let want = curve(l, t, r, m) - l;
        worst = worst.max((db(y as f64 / level as f64) - want).abs());
    }
    assert!(worst < 1e-3, "automation vs stepped reference: {worst} dB");

    // Lanes holding the static values give the plain compressor's output bit for bit,
    // and `automated` with no lanes is the plain compressor.
    let x = vec![noise(7, 30_000, 0.9), noise(8, 30_000, 0.4)];
    let q = comp_params(-18.0, 3.0, DetectorKind::Rms);
    let plain = run(&mut Compressor::new(q), &x, 4096);
    let flat = CompressorAutomation {
        threshold_db: Some(Lane::linear(&[(0.0, -18.0)], FS)),
        ratio: Some(Lane::linear(&[(0.0, 3.0)], FS)),
        makeup_db: None,
    };
    assert!(run(&mut Compressor::automated(q, flat), &x, 100) == plain);
    let none = CompressorAutomation::default();
    assert!(run(&mut Compressor::automated(q, none), &x, 4096) == plain);
}

// ---------------------------------------------------------------- EQ

/// One biquad step in f64, direct form I (written here, not the library's).
fn biquad_f64(c: &bounce_server::dsp::biquad::Coeffs, s: &mut [f64; 4], x: f64) -> f64 {
    let y = c.b0 * x + c.b1 * s[0] + c.b2 * s[1] - c.a1 * s[2] - c.a2 * s[3];
    *s = [x, s[0], y, s[2]];
    y
}

#[test]
fn eq_automation_redesigns_every_64_frames() {
    let n = 48_000;
    let bands = [
        BandSpec {
            kind: FilterKind::Peak,
            freq: 1000.0,
            q: 1.0,
            gain_db: 0.0,
        },
        BandSpec {
            kind: FilterKind::Highpass,
            freq: 40.0,
            q: 0.707,
            gain_db: 0.0,
        },
        BandSpec {
            kind: FilterKind::Highshelf,
            freq: 6000.0,
            q: 0.707,
            gain_db: 3.0,
        },
    ];
    let gp = [(0.0, -12.0), (1.0, 12.0)];
    let fp = [(0.0, 500.0), (0.8, 4000.0)];
    let sp = [(0.2, 3.0), (0.2, -9.0)];
    let autos = || {
        vec![
            EqAutomation {
                band: 0,
                gain_db: Some(Lane::linear(&gp, FS)),
                freq: Some(Lane::linear(&fp, FS)),
            },
            EqAutomation {
                band: 2,
                gain_db: Some(Lane::linear(&sp, FS)),
                freq: None,
            },
        ]
    };
    let x = vec![noise(11, n, 0.5), noise(12, n, 0.5)];
    let out = check_blocks_and_reset(
        || Box::new(EqChain::automated(&bands, autos())),
        &x,
        None,
        "eq automation",
    );
    let want: Vec<Vec<f64>> = x
        .iter()
        .map(|ch| {
            let mut st = [[0f64; 4]; 3];
            let mut coeffs = [
                design(&bands[0], FS),
                design(&bands[1], FS),
                design(&bands[2], FS),
            ];
            ch.iter()
                .enumerate()
                .map(|(i, &v)| {
                    if i % 64 == 0 {
                        let c = i as u64;
                        let mut b0 = bands[0];
                        b0.gain_db = lane_value(&gp, c, FS);
                        b0.freq = lane_value(&fp, c, FS);
                        coeffs[0] = design(&b0, FS);
                        let mut b2 = bands[2];
                        b2.gain_db = lane_value(&sp, c, FS);
                        coeffs[2] = design(&b2, FS);
                    }
                    let mut y = v as f64;
                    for (c, s) in coeffs.iter().zip(st.iter_mut()) {
                        y = biquad_f64(c, s, y);
                    }
                    y
                })
                .collect()
        })
        .collect();
    let e = worst_db(&out, &want, 0.5);
    assert!(e <= -100.0, "eq automation error {e} dB");

    // No lanes: the plain chain, bit for bit.
    let plain = run(&mut EqChain::new(&bands), &x, 4096);
    assert!(run(&mut EqChain::automated(&bands, Vec::new()), &x, 4096) == plain);
    let bogus = vec![EqAutomation {
        band: 7,
        gain_db: Some(Lane::linear(&gp, FS)),
        freq: None,
    }];
    assert!(run(&mut EqChain::automated(&bands, bogus), &x, 64) == plain);
}
