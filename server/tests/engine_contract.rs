//! The engine against CONTRACT.md, in process: strip order, EQ, true-stereo reverb,
//! solo and variants, timeline length and resampled stems — each against a float64
//! reference computed here from the contract's formulas.

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bounce_server::dsp::convolution::{ConvolutionBank, CpuConvolutionBank};
use bounce_server::engine::graph::{self, render_mix};
use bounce_server::engine::strip::BLOCK;
use bounce_server::session::{self, Limits, Session, StemRef, ValidSession, Variant};
use bounce_test_audio::{biquad, error_db as err_db, noise, rbj, write_f32_wav as write_wav};

const RATE: u32 = 48_000;

fn load(dir: &Path, toml: &str) -> Session {
    let s = session::parse_session_toml(toml, "test.toml", dir).unwrap();
    session::validate(&s).unwrap();
    s
}

fn resolve(s: &StemRef) -> bounce_server::Result<PathBuf> {
    Ok(s.path.clone().unwrap())
}

fn render(s: &Session, variant: Variant) -> [Vec<f32>; 2] {
    let v = ValidSession::new(s.clone(), &Limits::default()).unwrap();
    let cancel = AtomicBool::new(false);
    let plan = graph::plan(&v, &resolve, &cancel).unwrap();
    let bank = || Ok(Box::new(CpuConvolutionBank::new(BLOCK)) as Box<dyn ConvolutionBank>);
    render_mix(&v, variant, &plan, &bank, &|_, _| {}, &cancel).unwrap()
}

#[test]
fn strip_invert_eq_fader_pan_match_rbj_reference() {
    let dir = tempfile::tempdir().unwrap();
    let x = noise(1, 20_000, 0.5);
    write_wav(&dir.path().join("x.wav"), std::slice::from_ref(&x), RATE);
    let s = load(
        dir.path(),
        r#"
[session]
sample_rate = 48000
tail_s = 0.1
[[track]]
name = "X"
file = "x.wav"
invert = true
gain_db = -4.5
pan = -0.3
offset_s = 0.01
eq = [ { type = "highpass", freq = 120, q = 0.707 }, { type = "peak", freq = 2000.0, gain_db = 6.0, q = 2.0 } ]
"#,
    );
    let mix = render(&s, Variant::Main);
    let total = 480 + 20_000 + 4_800;
    assert_eq!(mix[0].len(), total);
    // EQ runs over the whole timeline: the tail after the stem carries the filters' ringing.
    let mut t = vec![0f64; total];
    for (i, v) in x.iter().enumerate() {
        t[480 + i] = -(*v as f64);
    }
    let y = biquad(
        &biquad(&t, rbj("highpass", 120.0, 0.707, 0.0, RATE)),
        rbj("peak", 2000.0, 2.0, 6.0, RATE),
    );
    let th = (-0.3 + 1.0) * PI / 4.0;
    let g = 10f64.powf(-4.5 / 20.0);
    let l: Vec<f64> = y.iter().map(|v| v * g * th.cos()).collect();
    let r: Vec<f64> = y.iter().map(|v| v * g * th.sin()).collect();
    let (el, er) = (err_db(&mix[0], &l), err_db(&mix[1], &r));
    assert!(el < -90.0 && er < -90.0, "L {el:.1} dB, R {er:.1} dB");
}

#[test]
fn true_stereo_ir_routes_ll_lr_rl_rr() {
    let dir = tempfile::tempdir().unwrap();
    let (xl, xr) = (noise(2, 9_000, 0.5), noise(3, 9_000, 0.5));
    let ir: Vec<Vec<f32>> = (0..4)
        .map(|k| {
            noise(10 + k, 2_001, 0.3)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (-(i as f32) / 500.0).exp())
                .collect()
        })
        .collect();
    write_wav(&dir.path().join("x.wav"), &[xl.clone(), xr.clone()], RATE);
    write_wav(&dir.path().join("ir.wav"), &ir, RATE);
    let s = load(
        dir.path(),
        r#"
[session]
sample_rate = 48000
tail_s = 0.05
[[track]]
name = "X"
file = "x.wav"
output = "Verb"
[[bus]]
name = "Verb"
reverb = { ir = "ir.wav", dry = true, wet_db = -6.0 }
"#,
    );
    let mix = render(&s, Variant::Main);
    let total = 9_000 + 2_400;
    let conv = |x: &[f32], h: &[f32]| {
        let mut y = vec![0f64; total];
        for (i, a) in x.iter().enumerate() {
            for (j, b) in h.iter().enumerate() {
                if i + j < total {
                    y[i + j] += *a as f64 * *b as f64;
                }
            }
        }
        y
    };
    let w = 10f64.powf(-6.0 / 20.0);
    // outL = L*LL + R*RL, outR = L*LR + R*RR, plus the dry signal.
    let (ll, lr, rl, rr) = (
        conv(&xl, &ir[0]),
        conv(&xl, &ir[1]),
        conv(&xr, &ir[2]),
        conv(&xr, &ir[3]),
    );
    let want_l: Vec<f64> = (0..total)
        .map(|i| xl.get(i).map_or(0.0, |v| *v as f64) + w * (ll[i] + rl[i]))
        .collect();
    let want_r: Vec<f64> = (0..total)
        .map(|i| xr.get(i).map_or(0.0, |v| *v as f64) + w * (lr[i] + rr[i]))
        .collect();
    let (el, er) = (err_db(&mix[0], &want_l), err_db(&mix[1], &want_r));
    assert!(el < -90.0 && er < -90.0, "L {el:.1} dB, R {er:.1} dB");
}

#[test]
fn solo_and_variants_choose_the_tracks_that_sound() {
    let dir = tempfile::tempdir().unwrap();
    for (k, name) in ["vox", "lead", "keys"].iter().enumerate() {
        write_wav(
            &dir.path().join(format!("{name}.wav")),
            &[noise(20 + k as u64, 4_800, 0.5)],
            RATE,
        );
    }
    let base = r#"
[session]
sample_rate = 48000
tail_s = 0
[[track]]
name = "Vox"
file = "vox.wav"
tags = ["vocal"]
[[track]]
name = "Lead"
file = "lead.wav"
tags = ["lead"]
[[track]]
name = "Keys"
file = "keys.wav"
"#;
    let s = load(dir.path(), base);
    let energy = |m: &[Vec<f32>; 2]| m[0].iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    let alone = |name: &str| {
        let toml = base.replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{name}\"\nsolo = true"),
        );
        energy(&render(&load(dir.path(), &toml), Variant::Main))
    };
    let (vox, lead, keys) = (alone("Vox"), alone("Lead"), alone("Keys"));
    let close = |a: f64, b: f64| (a - b).abs() <= 0.02 * b;
    // Independent noises: energies add.
    assert!(close(energy(&render(&s, Variant::Main)), vox + lead + keys));
    assert!(close(
        energy(&render(&s, Variant::Instrumental)),
        lead + keys
    ));
    assert!(close(energy(&render(&s, Variant::Acappella)), vox));
    assert!(close(energy(&render(&s, Variant::Tv)), vox + keys));
}

#[test]
fn resampled_stem_length_and_level() {
    let dir = tempfile::tempdir().unwrap();
    // 0.5 s of a 1 kHz sine at 44.1 kHz: ceil(22050 × 48000 / 44100) = 24000 frames at 48 kHz.
    let x: Vec<f32> = (0..22_050)
        .map(|i| (0.5 * (2.0 * PI * 1000.0 * i as f64 / 44_100.0).sin()) as f32)
        .collect();
    write_wav(&dir.path().join("x.wav"), &[x], 44_100);
    let s = load(
        dir.path(),
        "[session]\nsample_rate = 48000\ntail_s = 0.0001\n[[track]]\nname = \"X\"\nfile = \"x.wav\"\n",
    );
    let mix = render(&s, Variant::Main);
    assert_eq!(mix[0].len(), 24_000 + 5, "ceil(n × rate / r) + round(tail)");
    // Steady state: a centred mono sine, amplitude 0.5 × cos(π/4), at the same phase.
    let want = |i: usize| 0.5 * (PI / 4.0).cos() * (2.0 * PI * 1000.0 * i as f64 / 48_000.0).sin();
    let err = (4_000..20_000)
        .map(|i| (mix[0][i] as f64 - want(i)).abs())
        .fold(0.0, f64::max);
    assert!(
        20.0 * (err / 0.354).log10() < -60.0,
        "resampled sine error {err}"
    );
}

fn two_reverb_session(dir: &Path) -> Session {
    let x = noise(30, 40_000, 0.5);
    write_wav(&dir.join("x.wav"), std::slice::from_ref(&x), RATE);
    let ir = |seed: u64, secs: f64| -> Vec<Vec<f32>> {
        let n = (secs * RATE as f64) as usize;
        (0..2)
            .map(|k| {
                noise(seed + k, n, 0.2)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (-(i as f32) / (0.2 * n as f32)).exp())
                    .collect()
            })
            .collect()
    };
    write_wav(&dir.join("hall.wav"), &ir(40, 3.0), RATE);
    write_wav(&dir.join("room.wav"), &ir(50, 0.4), RATE);
    load(
        dir,
        r#"
[session]
sample_rate = 48000
tail_s = 3.0
[[track]]
name = "X"
file = "x.wav"
sends = [ { bus = "Hall", level_db = -6.0 }, { bus = "Room", level_db = -3.0, pre_fader = true } ]
[[bus]]
name = "Hall"
reverb = { ir = "hall.wav", predelay_ms = 20.0 }
[[bus]]
name = "Room"
output = "Hall"
reverb = { ir = "room.wav", wet_db = -2.0, dry = true }
"#,
    )
}

fn render_to(
    s: &Session,
    opts: &bounce_server::engine::RenderOptions,
    out: &Path,
) -> (Vec<Vec<f32>>, serde_json::Value) {
    let v = ValidSession::new(s.clone(), &Limits::default()).unwrap();
    let o = bounce_server::engine::render_session(
        &v,
        &resolve,
        out,
        opts,
        &|_, _| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&o.report_json).unwrap();
    let mut r = hound::WavReader::open(out.join("mix.wav")).unwrap();
    let inter: Vec<f32> = r.samples::<f32>().map(|s| s.unwrap()).collect();
    let mix = vec![
        inter.iter().step_by(2).copied().collect(),
        inter.iter().skip(1).step_by(2).copied().collect(),
    ];
    (mix, report)
}

fn max_err_db(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let peak = b.iter().flatten().fold(0f64, |m, v| m.max(v.abs() as f64));
    let e = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y))
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    20.0 * (e / peak).log10()
}

/// Issue 3's acceptance: two reverb buses (3 s and 0.4 s IRs, one feeding the other)
/// render the same mix on the GPU as on the CPU twin; a device lost mid-job still
/// yields a complete, correct render (re-rendered on the CPU, counted in the report).
#[test]
fn gpu_and_cpu_backends_agree_and_a_lost_device_falls_back() {
    use bounce_server::engine::{BackendChoice, RenderOptions};
    let Some(ctx) = bounce_server::gpu::test_context() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = two_reverb_session(dir.path());
    let cpu_opts = RenderOptions {
        backend: BackendChoice::Cpu,
        gpu: None,
        ..Default::default()
    };
    let (cpu, _) = render_to(&s, &cpu_opts, &dir.path().join("cpu"));
    let gpu_opts = RenderOptions {
        backend: BackendChoice::Gpu,
        gpu: Some(ctx),
        ..Default::default()
    };
    let (gpu, report) = render_to(&s, &gpu_opts, &dir.path().join("gpu"));
    assert!(
        report["backend"]["reverb"]
            .as_str()
            .unwrap()
            .starts_with("gpu"),
        "{report}"
    );
    let e = max_err_db(&gpu, &cpu);
    assert!(e < -90.0, "GPU vs CPU mix: {e:.1} dB");

    let lossy = bounce_server::gpu::GpuContext::new_blocking().unwrap();
    lossy.inject_failure_after(3);
    let opts = RenderOptions {
        backend: BackendChoice::Gpu,
        gpu: Some(lossy),
        ..Default::default()
    };
    let (fallback, report) = render_to(&s, &opts, &dir.path().join("lost"));
    assert_eq!(report["backend"]["gpu_fallbacks"], 1, "{report}");
    let e = max_err_db(&fallback, &cpu);
    assert!(e < -120.0, "fallback render vs CPU: {e:.1} dB");
}
