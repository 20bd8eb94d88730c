//! `bounce demo`: a short multitrack song synthesised from scratch (seeded, so every
//! run writes the same files), with a room impulse response and a session that uses
//! EQ, compression, pan, automation, a reverb send, a master chain and two deliverables.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RATE: u32 = 48_000;
const BPM: f64 = 120.0;
const BARS: usize = 8;

/// The demo session file, beside its stems.
const SESSION: &str = r#"# Bounce demo: written by `bounce demo`, rendered right after.
[session]
name = "Demo Song"
sample_rate = 48000
tail_s = 2.0

[[track]]
name = "Drums"
file = "stems/drums.wav"
gain_db = -3.0
eq = [
  { type = "highpass", freq = 35.0, q = 0.707 },
  { type = "peak", freq = 4000.0, gain_db = 2.0, q = 1.0 },
]
compressor = { threshold_db = -20.0, ratio = 4.0, attack_ms = 1.0, release_ms = 80.0, knee_db = 6.0, makeup_db = 2.0 }
sends = [ { bus = "Room", level_db = -14.0 } ]
tags = ["drums"]

[[track]]
name = "Bass"
file = "stems/bass.wav"
gain_db = -3.0
eq = [ { type = "lowpass", freq = 2500.0, q = 0.707 }, { type = "lowshelf", freq = 90.0, gain_db = 2.0 } ]
compressor = { threshold_db = -20.0, ratio = 3.0, attack_ms = 15.0, release_ms = 150.0, detector = "rms" }

[[track]]
name = "Chords"
file = "stems/chords.wav"
gain_db = -3.0
pan = -0.2
eq = [ { type = "highpass", freq = 180.0 }, { type = "highshelf", freq = 8000.0, gain_db = -2.0 } ]
sends = [ { bus = "Room", level_db = -8.0 } ]

[[track]]
name = "Lead"
file = "stems/lead.wav"
gain_db = -3.0
pan = 0.3
eq = [ { type = "peak", freq = 2500.0, gain_db = 1.5, q = 0.8 }, { type = "notch", freq = 6000.0, q = 4.0 } ]
compressor = { threshold_db = -22.0, ratio = 2.5, attack_ms = 10.0, release_ms = 120.0 }
sends = [ { bus = "Room", level_db = -10.0, pre_fader = false } ]
automation = { gain_db = [[0.0, -12.0], [4.0, 0.0], [14.0, 0.0], [16.0, -6.0]] }
tags = ["lead"]

[[bus]]
name = "Room"
output = "master"
gain_db = 0.0
reverb = { ir = "irs/room.wav", predelay_ms = 12.0, wet_db = 0.0, dry = false }

[master]
eq = [ { type = "lowshelf", freq = 100.0, gain_db = 1.0, q = 0.707 } ]
multiband = { crossovers_hz = [150.0, 2500.0], bands = [
  { threshold_db = -20.0, ratio = 2.0, attack_ms = 20.0, release_ms = 200.0 },
  { threshold_db = -20.0, ratio = 1.5, attack_ms = 10.0, release_ms = 150.0 },
  { threshold_db = -24.0, ratio = 2.0, attack_ms = 5.0, release_ms = 100.0 } ] }
width = 1.1
limiter = { ceiling_dbtp = -1.0, release_ms = 50.0, lookahead_ms = 5.0 }

[[deliverable]]
name = "streaming"
target_lufs = -14.0
ceiling_dbtp = -1.0
sample_rate = 48000
bit_depth = 24
format = "wav"

[[deliverable]]
name = "cd"
target_lufs = -14.0
ceiling_dbtp = -1.0
sample_rate = 44100
bit_depth = 16
format = "flac"
"#;

/// Writes the demo song into `dir` (stems/, irs/, session.toml) and returns the session path.
pub fn write_demo(dir: &Path) -> Result<PathBuf> {
    let stems = dir.join("stems");
    let irs = dir.join("irs");
    for d in [&stems, &irs] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("{}: cannot create folder", d.display()))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0xB0_0CE);
    let len = song_frames();
    write_wav(&stems.join("drums.wav"), &drums(len, &mut rng))?;
    write_wav(&stems.join("bass.wav"), &[bass(len)])?;
    write_wav(&stems.join("chords.wav"), &chords(len))?;
    write_wav(&stems.join("lead.wav"), &[lead(len)])?;
    write_wav(&irs.join("room.wav"), &room_ir(&mut rng))?;
    let session = dir.join("session.toml");
    std::fs::write(&session, SESSION)
        .with_context(|| format!("{}: cannot write", session.display()))?;
    Ok(session)
}

fn song_frames() -> usize {
    (BARS as f64 * 4.0 * 60.0 / BPM * RATE as f64) as usize
}

fn beat_frames() -> f64 {
    60.0 / BPM * RATE as f64
}

/// Chord roots and triads, two bars each: Am, F, C, G.
const CHORDS: [[f64; 3]; 4] = [
    [220.00, 261.63, 329.63],
    [174.61, 220.00, 261.63],
    [261.63, 329.63, 392.00],
    [196.00, 246.94, 293.66],
];

fn chord_at(frame: usize) -> usize {
    (frame as f64 / (beat_frames() * 8.0)) as usize % CHORDS.len()
}

fn drums(len: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let mut l = vec![0f32; len];
    let mut r = vec![0f32; len];
    let beat = beat_frames();
    let sr = RATE as f64;
    let mut hat_hp = 0.0f64;
    let mut hat_prev = 0.0f64;
    for eighth in 0..(BARS * 8) {
        let start = (eighth as f64 * beat / 2.0) as usize;
        let quarter = eighth / 2;
        let on_beat = eighth % 2 == 0;
        // Kick on 1 and 3: a pitch-dropping sine.
        if on_beat && quarter % 2 == 0 {
            let mut phase = 0.0f64;
            for i in 0..(0.35 * sr) as usize {
                let t = i as f64 / sr;
                let f = 45.0 + 110.0 * (-t * 30.0).exp();
                phase += 2.0 * PI * f / sr;
                let v = 0.55 * phase.sin() * (-t * 9.0).exp();
                add(&mut l, start + i, v);
                add(&mut r, start + i, v);
            }
        }
        // Snare on 2 and 4: a tone plus a noise burst.
        if on_beat && quarter % 2 == 1 {
            for i in 0..(0.25 * sr) as usize {
                let t = i as f64 / sr;
                let noise: f64 = rng.random_range(-1.0..1.0);
                let v = 0.35 * (2.0 * PI * 190.0 * t).sin() * (-t * 25.0).exp()
                    + 0.3 * noise * (-t * 14.0).exp();
                add(&mut l, start + i, v * 0.9);
                add(&mut r, start + i, v);
            }
        }
        // Hats on every eighth, a little right of centre.
        for i in 0..(0.06 * sr) as usize {
            let t = i as f64 / sr;
            let noise: f64 = rng.random_range(-1.0..1.0);
            // One-pole high-pass: keep the fizz.
            hat_hp = 0.8 * (hat_hp + noise - hat_prev);
            hat_prev = noise;
            let accent = if on_beat { 0.22 } else { 0.14 };
            let v = accent * hat_hp * (-t * 60.0).exp();
            add(&mut l, start + i, v * 0.7);
            add(&mut r, start + i, v);
        }
    }
    vec![l, r]
}

fn bass(len: usize) -> Vec<f32> {
    let beat = beat_frames();
    let sr = RATE as f64;
    let mut out = vec![0f32; len];
    let mut phase = 0.0f64;
    for (i, o) in out.iter_mut().enumerate() {
        let f = CHORDS[chord_at(i)][0] / 4.0;
        phase += 2.0 * PI * f / sr;
        let in_note = (i as f64 % (beat / 2.0)) / sr;
        let env = (-in_note * 4.0).exp() * (1.0 - (-in_note * 400.0).exp());
        // A sine with its second and third harmonics: warm, band-limited.
        let v = phase.sin() + 0.35 * (2.0 * phase).sin() + 0.15 * (3.0 * phase).sin();
        *o = (0.45 * env * v) as f32;
    }
    out
}

fn chords(len: usize) -> Vec<Vec<f32>> {
    let sr = RATE as f64;
    let mut l = vec![0f32; len];
    let mut r = vec![0f32; len];
    let detune = [0.997, 1.0, 1.003];
    for i in 0..len {
        let t = i as f64 / sr;
        let chord = CHORDS[chord_at(i)];
        let in_chord = (i as f64 % (beat_frames() * 8.0)) / sr;
        let env = (1.0 - (-in_chord * 6.0).exp()) * (0.6 + 0.4 * (-in_chord * 0.5).exp());
        let (mut vl, mut vr) = (0.0, 0.0);
        for (k, &f) in chord.iter().enumerate() {
            for (j, &d) in detune.iter().enumerate() {
                // Soft, band-limited "saw": five harmonics.
                let mut s = 0.0;
                for h in 1..=5 {
                    s += (2.0 * PI * f * d * h as f64 * t + (k + j) as f64).sin() / h as f64;
                }
                if j == 0 {
                    vl += s
                } else if j == 2 {
                    vr += s
                } else {
                    vl += 0.5 * s;
                    vr += 0.5 * s
                }
            }
        }
        l[i] = (0.06 * env * vl) as f32;
        r[i] = (0.06 * env * vr) as f32;
    }
    vec![l, r]
}

fn lead(len: usize) -> Vec<f32> {
    // A minor pentatonic, one note per eighth, a pattern over two bars.
    const NOTES: [f64; 16] = [
        440.0, 523.25, 587.33, 659.25, 587.33, 523.25, 440.0, 392.0, 440.0, 523.25, 659.25, 783.99,
        659.25, 587.33, 523.25, 440.0,
    ];
    let sr = RATE as f64;
    let eighth = beat_frames() / 2.0;
    let mut out = vec![0f32; len];
    let mut phase = 0.0f64;
    for (i, o) in out.iter_mut().enumerate() {
        let n = (i as f64 / eighth) as usize;
        let f = NOTES[n % NOTES.len()];
        let t = i as f64 / sr;
        let vibrato = 1.0 + 0.004 * (2.0 * PI * 5.5 * t).sin();
        phase += 2.0 * PI * f * vibrato / sr;
        let in_note = (i as f64 % eighth) / sr;
        let env = (1.0 - (-in_note * 200.0).exp()) * (-in_note * 3.0).exp();
        // Odd harmonics: a rounded square.
        let v = phase.sin() + (3.0 * phase).sin() / 3.0 + (5.0 * phase).sin() / 5.0;
        *o = (0.3 * env * v) as f32;
    }
    out
}

/// A synthetic stereo room: decorrelated noise under an exponential decay (RT60 ≈ 1.2 s),
/// with a few early reflections.
fn room_ir(rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let sr = RATE as f64;
    let len = (1.4 * sr) as usize;
    let rt60 = 1.2;
    let decay = 6.907_755 / (rt60 * sr); // ln(1000) per RT60
    let mut chans = vec![vec![0f32; len], vec![0f32; len]];
    for ch in chans.iter_mut() {
        for (i, v) in ch.iter_mut().enumerate() {
            let n: f64 = rng.random_range(-1.0..1.0);
            *v = (0.05 * n * (-decay * i as f64).exp()) as f32;
        }
        for k in 0..6 {
            let at = rng.random_range((0.004 * sr) as usize..(0.04 * sr) as usize);
            ch[at] += (0.3 / (k + 1) as f32) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        }
    }
    chans
}

fn add(buf: &mut [f32], i: usize, v: f64) {
    if let Some(s) = buf.get_mut(i) {
        *s += v as f32;
    }
}

fn write_wav(path: &Path, channels: &[Vec<f32>]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: RATE,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    let n = channels.first().map_or(0, Vec::len);
    let scale = 8_388_607.0f32;
    for i in 0..n {
        for ch in channels {
            let v = (ch[i].clamp(-1.0, 1.0) * scale).round() as i32;
            w.write_sample(v)
                .with_context(|| format!("{}: write failed", path.display()))?;
        }
    }
    w.finalize()
        .with_context(|| format!("{}: write failed", path.display()))?;
    Ok(())
}
