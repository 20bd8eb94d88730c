//! The mixer of "Additions, 2026-12" end to end: one session using every insert kind on a
//! track and on a bus, a sidechain, automation of pan, mute, a send, a bus gain and an
//! insert parameter, clips with fades and a master bus, rendered by `bounce render`
//! through a separately started `bounced`, and compared with a float64 reference written
//! here from CONTRACT.md alone (clip placement and fades, RBJ biquads, the compressor's
//! static curve, the delay and ping-pong sums, direct convolution, the pan and balance
//! laws, per-sample lanes).
//!
//! Nonlinear processors sit where the contract fixes their output exactly: the keyed
//! compressor sees a key of constant magnitude with attack 0 (so its gain is the static
//! curve from the first sample), the gates stay open (threshold −120 dB on continuous
//! signal, starting open), saturation runs at mix 0 on the Lead and FX strips (plumbing
//! and latency compensation) and at mix 1 on a separate tone later in the song, where
//! y = output · tanh(drive · x) is checked to −100 dB (the oversampling filters may shape
//! the wet signal above 20 kHz; a 200 Hz tone has nothing there, and nothing may shift).
#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;
use std::path::Path;

use bounce_test_audio::{biquad, convolve, db, lane_at, noise, rbj, sine};
use bounce_tests::{Server, bounce, read_wav, write_f32_wav};

const RATE: u32 = 48_000;

const SESSION: &str = r#"
[session]
name = "Everything"
sample_rate = 48000
tail_s = 0.3

[[track]]
name = "Lead"
clips = [
  { file = "lead_a.wav", at_s = 0.0, start_s = 0.05, length_s = 0.7, gain_db = -2.0, fade_in_s = 0.05, fade_out_s = 0.1 },
  { file = "lead_b.wav", at_s = 0.6, length_s = 0.8, fade_in_s = 0.1, fade_out_s = 0.2 },
]
gain_db = -3.0
sends = [ { bus = "FX", level_db = -12.0 } ]
inserts = [
  { kind = "eq", bands = [ { type = "peak", freq = 1000.0, gain_db = 3.0, q = 1.0 } ] },
  { kind = "compressor", threshold_db = -18.0, ratio = 4.0, attack_ms = 0.0, release_ms = 50.0, sidechain = "Key" },
  { kind = "gate", threshold_db = -120.0, range_db = -80.0, hold_ms = 10.0 },
  { kind = "saturation", drive_db = 12.0, mix = 0.0 },
  { kind = "delay", time_ms = 50.0, feedback = 0.3, mix = 0.2 },
  { kind = "reverb", ir = "room.wav", wet_db = -6.0, dry = true },
]
automation = { pan = [[0.2, -0.6], [1.2, 0.6]], mute = [[0.0, 0.0], [1.0, 1.0], [1.1, 0.0]], "send.FX" = [[0.0, -20.0], [1.5, -6.0]], "inserts.4.mix" = [[0.0, 0.2], [1.0, 0.6]] }

[[track]]
name = "Key"
file = "key.wav"
output = "KeyBus"

[[track]]
name = "Drive"
clips = [ { file = "tone.wav", at_s = 1.6, length_s = 0.3, fade_in_s = 0.02, fade_out_s = 0.02 } ]
inserts = [ { kind = "saturation", drive_db = 6.0, output_db = -2.0 } ]

[[bus]]
name = "KeyBus"
mute = true

[[bus]]
name = "FX"
gain_db = -2.0
pan = 0.3
inserts = [
  { kind = "reverb", ir = "room.wav", wet_db = -3.0, dry = true },
  { kind = "compressor", threshold_db = 0.0, ratio = 2.0 },
  { kind = "gate", threshold_db = -120.0, hold_ms = 500.0 },
  { kind = "saturation", drive_db = 3.0, mix = 0.0 },
  { kind = "eq", bands = [ { type = "highshelf", freq = 4000.0, gain_db = 2.0, q = 0.707 } ] },
  { kind = "delay", time_ms = 30.0, feedback = 0.4, mix = 0.3, ping_pong = true },
]
automation = { gain_db = [[0.0, 0.0], [1.0, -4.0]] }

[master_bus]
gain_db = -1.0
inserts = [ { kind = "eq", bands = [ { type = "lowshelf", freq = 150.0, gain_db = 1.5, q = 0.707 } ] } ]
"#;

fn secs(s: f64) -> usize {
    (s * f64::from(RATE)).round() as usize
}

fn gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// The test's own files: two noise takes, a short decaying room IR and a tone (and,
/// written only, the key: a constant magnitude of 0.5).
struct Files {
    lead_a: Vec<f32>,
    lead_b: Vec<f32>,
    room: Vec<f32>,
    tone: Vec<f32>,
}

fn write_files(dir: &Path) -> Files {
    let lead_a = noise(1, secs(1.0), 0.3);
    let lead_b: Vec<f32> = noise(2, secs(1.0), 0.2)
        .iter()
        .zip(sine(330.0, 0.1, secs(1.0), RATE))
        .map(|(a, b)| a + b)
        .collect();
    let key: Vec<f32> = (0..secs(2.0))
        .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    let room: Vec<f32> = noise(3, 64, 0.5)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (-(i as f32) / 12.0).exp())
        .collect();
    let tone = sine(200.0, 0.3, secs(0.5), RATE);
    for (name, x) in [
        ("lead_a.wav", &lead_a),
        ("lead_b.wav", &lead_b),
        ("key.wav", &key),
        ("room.wav", &room),
        ("tone.wav", &tone),
    ] {
        write_f32_wav(&dir.join(name), std::slice::from_ref(x), RATE);
    }
    std::fs::write(dir.join("session.toml"), SESSION).unwrap();
    Files {
        lead_a,
        lead_b,
        room,
        tone,
    }
}

/// A clip on a timeline of `total` samples: file from `start` for `len`, at `at`,
/// times `g`, fade-in i/F and fade-out k/G (CONTRACT.md "Clips").
#[allow(clippy::too_many_arguments)]
fn place(
    out: &mut [f64],
    file: &[f32],
    at: usize,
    start: usize,
    len: usize,
    g: f64,
    fade_in: usize,
    fade_out: usize,
) {
    for i in 0..len {
        let mut v = f64::from(file.get(start + i).copied().unwrap_or(0.0)) * g;
        if i < fade_in {
            v *= i as f64 / fade_in as f64;
        }
        let k = len - 1 - i;
        if k < fade_out {
            v *= k as f64 / fade_out as f64;
        }
        out[at + i] += v;
    }
}

/// wet[n] = Σ_{k≥1} fb^(k−1) · x[n − kD], the repeats split by `keep(k)`.
fn echoes(x: &[f64], d: usize, fb: f64, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    (0..x.len())
        .map(|n| {
            let mut w = 0.0;
            let mut k = 1;
            while k * d <= n {
                if keep(k) {
                    w += fb.powi(k as i32 - 1) * x[n - k * d];
                }
                k += 1;
            }
            w
        })
        .collect()
}

/// `x + wet · (x ∗ h)`, truncated to x's length (a reverb insert with dry = true).
fn reverb(x: &[f64], h: &[f64], wet_db: f64) -> Vec<f64> {
    let y = convolve(x, h);
    x.iter()
        .zip(&y)
        .map(|(a, b)| a + gain(wet_db) * b)
        .collect()
}

/// The mix as CONTRACT.md defines it, in float64: [L, R].
fn reference(f: &Files, total: usize) -> [Vec<f64>; 2] {
    let room: Vec<f64> = f.room.iter().map(|&v| f64::from(v)).collect();

    // Lead: clips → eq → keyed compressor → gate (open) → saturation (mix 0) → delay
    // (mix automated) → reverb → fader → pan (automated) → mute lane; post-fader send.
    let mut lead = vec![0.0; total];
    place(
        &mut lead,
        &f.lead_a,
        0,
        secs(0.05),
        secs(0.7),
        gain(-2.0),
        secs(0.05),
        secs(0.1),
    );
    place(
        &mut lead,
        &f.lead_b,
        secs(0.6),
        0,
        secs(0.8),
        1.0,
        secs(0.1),
        secs(0.2),
    );
    let x = biquad(&lead, rbj("peak", 1000.0, 1.0, 3.0, RATE));
    // The key's peak level is 0.5 from its first sample; attack 0: the static curve.
    let key_db = db(0.5);
    let comp = gain(-18.0 + (key_db + 18.0) / 4.0 - key_db);
    let x: Vec<f64> = x.iter().map(|v| v * comp).collect();
    let d = secs(0.05);
    let wet = echoes(&x, d, 0.3, |_| true);
    let mix_lane = [(0.0, 0.2), (1.0, 0.6)];
    let x: Vec<f64> = (0..total)
        .map(|n| {
            let m = lane_at(&mix_lane, n, RATE);
            (1.0 - m) * x[n] + m * wet[n]
        })
        .collect();
    let x = reverb(&x, &room, -6.0);
    let pan_lane = [(0.2, -0.6), (1.2, 0.6)];
    let send_lane = [(0.0, -20.0), (1.5, -6.0)];
    let muted = |n: usize| (secs(1.0)..secs(1.1)).contains(&n);
    let mut out = [vec![0.0; total], vec![0.0; total]];
    let mut fx_in = [vec![0.0; total], vec![0.0; total]];
    for n in 0..total {
        if muted(n) {
            continue;
        }
        let th = (lane_at(&pan_lane, n, RATE) + 1.0) * PI / 4.0;
        let y = x[n] * gain(-3.0);
        let (l, r) = (y * th.cos(), y * th.sin());
        out[0][n] += l;
        out[1][n] += r;
        let s = gain(lane_at(&send_lane, n, RATE));
        fx_in[0][n] = l * s;
        fx_in[1][n] = r * s;
    }

    // Key → KeyBus (muted): heard nowhere.

    // Drive: tone clip → saturation (y = output · tanh(drive · x)) → centre pan.
    let mut tone = vec![0.0; total];
    place(
        &mut tone,
        &f.tone,
        secs(1.6),
        0,
        secs(0.3),
        1.0,
        secs(0.02),
        secs(0.02),
    );
    let c = (PI / 4.0).cos();
    for n in 0..total {
        let y = gain(-2.0) * (gain(6.0) * tone[n]).tanh() * c;
        out[0][n] += y;
        out[1][n] += y;
    }

    // FX bus: reverb → compressor (below threshold: unity) → gate (open) → saturation
    // (mix 0) → high shelf → ping-pong delay → gain (automated) → balance.
    let shelf = rbj("highshelf", 4000.0, 0.707, 2.0, RATE);
    let ch: Vec<Vec<f64>> = fx_in
        .iter()
        .map(|c| biquad(&reverb(c, &room, -3.0), shelf))
        .collect();
    let mono: Vec<f64> = (0..total).map(|n| (ch[0][n] + ch[1][n]) / 2.0).collect();
    let dp = secs(0.03);
    let wet_l = echoes(&mono, dp, 0.4, |k| k % 2 == 1);
    let wet_r = echoes(&mono, dp, 0.4, |k| k % 2 == 0);
    let gain_lane = [(0.0, 0.0), (1.0, -4.0)];
    for n in 0..total {
        let g = gain(-2.0 + lane_at(&gain_lane, n, RATE));
        let l = 0.7 * 0.3f64.mul_add(wet_l[n], 0.7 * ch[0][n]);
        let r = 0.3f64.mul_add(wet_r[n], 0.7 * ch[1][n]);
        out[0][n] += g * l;
        out[1][n] += g * r;
    }

    // Master bus: low shelf, then −1 dB.
    let shelf = rbj("lowshelf", 150.0, 0.707, 1.5, RATE);
    out.map(|c| biquad(&c, shelf).iter().map(|v| v * gain(-1.0)).collect())
}

/// Largest |got − want| over both channels in [from, to), relative to the window's
/// reference peak, in dB.
fn window_error_db(got: &[Vec<f32>], want: &[Vec<f64>; 2], from: usize, to: usize) -> f64 {
    let mut peak = 0f64;
    let mut err = 0f64;
    for (g, w) in got.iter().zip(want) {
        for n in from..to {
            peak = peak.max(w[n].abs());
            err = err.max((f64::from(g[n]) - w[n]).abs());
        }
    }
    assert!(
        peak > 1e-3,
        "window [{from}, {to}) is silent in the reference"
    );
    db(err / peak)
}

fn render_and_check(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    let server = Server::start(backend);
    let out = dir.path().join("out");
    let run = bounce(&[
        "render",
        dir.path().join("session.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--server",
        &server.url,
    ]);
    assert!(
        run.status.success(),
        "bounce render failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (rate, mix) = read_wav(&out.join("mix.wav"));
    assert_eq!(rate, RATE);
    let total = secs(2.0) + secs(0.3); // the key is the latest clip end; then the tail
    assert_eq!(mix.len(), 2);
    assert_eq!(mix[0].len(), total, "mix length");
    let want = reference(&files, total);

    // Everything but the driven tone: exact to float rounding.
    let a = window_error_db(&mix, &want, 0, secs(1.55));
    assert!(a < -110.0, "{backend}: 0–1.55 s off by {a:.1} dB");
    // The tone through tanh (and the echoes still decaying around it).
    let b = window_error_db(&mix, &want, secs(1.55), total);
    assert!(b < -100.0, "{backend}: 1.55 s–end off by {b:.1} dB");
    // The mute lane silences the Lead and its send; what remains there is the FX
    // bus's tails, which the reference holds too (checked above).
    eprintln!("{backend}: error {a:.1} dB before the tone, {b:.1} dB from it");
}

#[test]
fn every_insert_sidechain_lanes_and_clips_render_as_the_contract_says_cpu() {
    render_and_check("cpu");
}

#[test]
fn every_insert_sidechain_lanes_and_clips_render_as_the_contract_says_gpu() {
    if bounce_server::gpu::test_context().is_none() {
        return; // skipped loudly by test_context (fails under BOUNCE_REQUIRE_GPU=1)
    }
    render_and_check("gpu");
}
