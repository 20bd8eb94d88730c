//! The 2026-12 additions in the engine, in process: clips with fades, automation of
//! pan, mute and a send, a bus with sends, the master bus strip, sidechain ducking and
//! a bus compressor — each against a float64 reference computed here from
//! CONTRACT.md's formulas (not against the engine's own earlier output).

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bounce_server::dsp::convolution::{ConvolutionBank, CpuConvolutionBank};
use bounce_server::engine::graph::{self, render_mix};
use bounce_server::engine::strip::BLOCK;
use bounce_server::session::{
    AutoLane, Automation, Bus, Clip, Compressor, Detector, Insert, LaneTarget, Limits, MasterBus,
    Output, Send, Session, StemRef, Track, ValidSession, Variant,
};
use bounce_test_audio::{error_db as err_db, noise};

const RATE: u32 = 48_000;

fn sine(f: f64, amp: f64, len: usize) -> Vec<f32> {
    bounce_test_audio::sine(f, amp, len, RATE)
}

fn write_wav(path: &Path, channels: &[Vec<f32>]) {
    bounce_test_audio::write_f32_wav(path, channels, RATE);
}

fn stem(dir: &Path, name: &str) -> StemRef {
    StemRef {
        name: name.into(),
        path: Some(dir.join(name)),
        blake3: None,
    }
}

fn track(name: &str, clips: Vec<Clip>) -> Track {
    Track {
        name: name.into(),
        clips,
        from_file: false,
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        solo: false,
        invert: false,
        output: Output::Master,
        channels: None,
        eq: vec![],
        compressor: None,
        inserts: vec![],
        sends: vec![],
        automation: Automation::default(),
        tags: vec![],
    }
}

fn bus(name: &str) -> Bus {
    Bus {
        name: name.into(),
        output: Output::Master,
        gain_db: 0.0,
        pan: 0.0,
        mute: false,
        reverb: None,
        inserts: vec![],
        sends: vec![],
        automation: Automation::default(),
    }
}

fn session(tracks: Vec<Track>, buses: Vec<Bus>, tail_s: f64) -> Session {
    Session {
        name: "t".into(),
        sample_rate: RATE,
        tail_s,
        tempo_bpm: None,
        tracks,
        buses,
        master_bus: None,
        master: None,
        deliverables: vec![],
        source: "test".into(),
    }
}

fn resolve(s: &StemRef) -> bounce_server::Result<PathBuf> {
    Ok(s.path.clone().unwrap())
}

fn render(s: &Session) -> [Vec<f32>; 2] {
    let v = ValidSession::new(s.clone(), &Limits::default()).unwrap();
    let cancel = AtomicBool::new(false);
    let plan = graph::plan(&v, &resolve, &cancel).unwrap();
    let bank = || Ok(Box::new(CpuConvolutionBank::new(BLOCK)) as Box<dyn ConvolutionBank>);
    render_mix(&v, Variant::Main, &plan, &bank, &|_, _| {}, &cancel).unwrap()
}

fn lane(target: LaneTarget, points: &[(f64, f64)]) -> AutoLane {
    AutoLane {
        target,
        points: points.to_vec(),
    }
}

const C: f64 = std::f64::consts::FRAC_1_SQRT_2;

#[test]
fn clips_with_fades_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let a = noise(1, 30_000, 0.5);
    let b = noise(2, 20_000, 0.5);
    write_wav(&dir.path().join("a.wav"), std::slice::from_ref(&a));
    write_wav(&dir.path().join("b.wav"), std::slice::from_ref(&b));
    let c1 = Clip {
        file: stem(dir.path(), "a.wav"),
        at_s: 0.1,
        start_s: 0.05,
        length_s: Some(0.3),
        gain_db: -6.0,
        fade_in_s: 0.01,
        fade_out_s: 0.05,
    };
    // Overlaps the first; its length runs past its file's end (silence there).
    let c2 = Clip {
        file: stem(dir.path(), "b.wav"),
        at_s: 0.35,
        start_s: 0.0,
        length_s: Some(0.6),
        gain_db: 0.0,
        fade_in_s: 0.0,
        fade_out_s: 0.02,
    };
    let s = session(vec![track("T", vec![c1.clone(), c2.clone()])], vec![], 0.5);
    let mix = render(&s);
    let r = f64::from(RATE);
    let total = (0.35f64 * r).round() as usize + (0.6f64 * r).round() as usize + (0.5 * r) as usize;
    let mut want = vec![0f64; total];
    for (c, src) in [(&c1, &a), (&c2, &b)] {
        let at = (c.at_s * r).round() as usize;
        let skip = (c.start_s * r).round() as usize;
        let len = (c.length_s.unwrap() * r).round() as usize;
        let f_in = (c.fade_in_s * r).round() as usize;
        let f_out = (c.fade_out_s * r).round() as usize;
        let g = 10f64.powf(c.gain_db / 20.0);
        for i in 0..len {
            let x = src.get(skip + i).map_or(0.0, |v| f64::from(*v));
            let mut gi = g;
            if i < f_in {
                gi *= i as f64 / f_in as f64;
            }
            let k = len - 1 - i;
            if k < f_out {
                gi *= k as f64 / f_out as f64;
            }
            want[at + i] += x * gi;
        }
    }
    // A mono track at centre: both sides at cos(pi/4).
    let l: Vec<f64> = want.iter().map(|x| x * C).collect();
    assert_eq!(mix[0].len(), total);
    let e = err_db(&mix[0], &l);
    assert!(e < -100.0, "clips: {e:.1} dB");
    let e = err_db(&mix[1], &l);
    assert!(e < -100.0, "clips R: {e:.1} dB");
}

#[test]
fn pan_mute_and_send_automation_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let n = 60_000;
    let x = noise(3, n, 0.5);
    write_wav(&dir.path().join("x.wav"), std::slice::from_ref(&x));
    let mut t = track("T", vec![Clip::whole(stem(dir.path(), "x.wav"), 0.0)]);
    t.automation.lanes = vec![
        lane(LaneTarget::Pan, &[(0.1, -1.0), (0.9, 1.0)]),
        lane(LaneTarget::Mute, &[(0.0, 0.0), (0.5, 1.0), (0.6, 0.0)]),
        lane(LaneTarget::Send("FX".into()), &[(0.0, -30.0), (1.0, -6.0)]),
    ];
    t.sends = vec![Send {
        bus: "FX".into(),
        level_db: 0.0,
        pre_fader: false,
    }];
    let mut fx = bus("FX");
    fx.gain_db = -3.0;
    fx.pan = 0.5;
    let s = session(vec![t], vec![fx], 0.0);
    let mix = render(&s);
    let r = f64::from(RATE);
    let lane_at = |pts: &[(f64, f64)], t: f64| -> f64 {
        if t <= pts[0].0 {
            return pts[0].1;
        }
        for w in pts.windows(2) {
            if t >= w[0].0 && t < w[1].0 {
                return w[0].1 + (w[1].1 - w[0].1) * (t - w[0].0) / (w[1].0 - w[0].0);
            }
        }
        pts[pts.len() - 1].1
    };
    let (mut wl, mut wr) = (vec![0f64; n], vec![0f64; n]);
    let bus_g = 10f64.powf(-3.0 / 20.0);
    let (bl, br) = ((1.0f64 - 0.5).min(1.0), (1.0f64 + 0.5).min(1.0));
    for i in 0..n {
        let t = i as f64 / r;
        let p = lane_at(&[(0.1, -1.0), (0.9, 1.0)], t);
        let th = (p + 1.0) * PI / 4.0;
        let muted = (0.5..0.6).contains(&t);
        let m = if muted { 0.0 } else { 1.0 };
        let (l, rr) = (
            f64::from(x[i]) * th.cos() * m,
            f64::from(x[i]) * th.sin() * m,
        );
        let send = 10f64.powf(lane_at(&[(0.0, -30.0), (1.0, -6.0)], t) / 20.0);
        wl[i] = l + l * send * bus_g * bl;
        wr[i] = rr + rr * send * bus_g * br;
    }
    let e = err_db(&mix[0], &wl);
    assert!(e < -90.0, "L: {e:.1} dB");
    let e = err_db(&mix[1], &wr);
    assert!(e < -90.0, "R: {e:.1} dB");
}

#[test]
fn master_bus_gain_pan_and_mute_lane() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let x = noise(4, n, 0.5);
    let y = noise(5, n, 0.5);
    write_wav(&dir.path().join("st.wav"), &[x.clone(), y.clone()]);
    let t = track("T", vec![Clip::whole(stem(dir.path(), "st.wav"), 0.0)]);
    let mut s = session(vec![t], vec![], 0.0);
    let mut auto = Automation::default();
    auto.lanes
        .push(lane(LaneTarget::GainDb, &[(0.0, 0.0), (0.5, -12.0)]));
    s.master_bus = Some(MasterBus {
        gain_db: -2.0,
        pan: -0.25,
        mute: false,
        inserts: vec![],
        automation: auto,
    });
    let mix = render(&s);
    let r = f64::from(RATE);
    let (bl, br) = (1.0f64, 1.0 - 0.25);
    let mut wl = vec![0f64; n];
    let mut wr = vec![0f64; n];
    for i in 0..n {
        let t = i as f64 / r;
        let db = -2.0 + if t >= 0.5 { -12.0 } else { -12.0 * t / 0.5 };
        let g = 10f64.powf(db / 20.0);
        wl[i] = f64::from(x[i]) * g * bl;
        wr[i] = f64::from(y[i]) * g * br;
    }
    assert!(err_db(&mix[0], &wl) < -90.0);
    assert!(err_db(&mix[1], &wr) < -90.0);
}

/// Level (dB, peak-equivalent) of the component at `f` over `x[from..]`, by a DFT
/// projection onto that frequency.
fn tone_db(x: &[f32], f: f64, from: usize) -> f64 {
    let (mut re, mut im) = (0f64, 0f64);
    let w = 2.0 * PI * f / f64::from(RATE);
    let n = x.len() - from;
    for (i, v) in x[from..].iter().enumerate() {
        let ph = w * (from + i) as f64;
        re += f64::from(*v) * ph.cos();
        im += f64::from(*v) * ph.sin();
    }
    20.0 * ((re * re + im * im).sqrt() * 2.0 / n as f64).log10()
}

fn comp(threshold_db: f64, ratio: f64, sidechain: Option<&str>) -> Compressor {
    Compressor {
        threshold_db,
        ratio,
        attack_ms: 5.0,
        release_ms: 50.0,
        knee_db: 0.0,
        makeup_db: 0.0,
        detector: Detector::Peak,
        sidechain: sidechain.map(str::to_string),
    }
}

#[test]
fn sidechain_ducks_on_the_static_curve() {
    let dir = tempfile::tempdir().unwrap();
    let n = RATE as usize * 2;
    // The keyed track: a −6 dBFS 1 kHz sine; the key: a 0 dBFS 200 Hz sine.
    write_wav(&dir.path().join("a.wav"), &[sine(1000.0, 0.5, n)]);
    write_wav(&dir.path().join("k.wav"), &[sine(200.0, 1.0, n)]);
    let mut a = track("A", vec![Clip::whole(stem(dir.path(), "a.wav"), 0.0)]);
    a.inserts = vec![Insert::Compressor(comp(-20.0, 4.0, Some("K")))];
    // The key listens pre-fader, so the key track itself can be far down in the mix.
    let mut k = track("K", vec![Clip::whole(stem(dir.path(), "k.wav"), 0.0)]);
    k.gain_db = -60.0;
    let s = session(vec![a, k], vec![], 0.0);
    let mix = render(&s);
    // Static curve: key at 0 dB → out = T + (L − T)/r = −15 dB: a gain of −15 dB.
    let got = tone_db(&mix[0], 1000.0, RATE as usize);
    let want = 20.0 * (0.5 * C).log10() - 15.0;
    assert!(
        (got - want).abs() < 0.5,
        "ducked tone {got:.2} dB, want {want:.2}"
    );
}

#[test]
fn bus_compressor_static_curve() {
    let dir = tempfile::tempdir().unwrap();
    let n = RATE as usize * 2;
    write_wav(&dir.path().join("a.wav"), &[sine(500.0, 1.0, n)]);
    let mut a = track("A", vec![Clip::whole(stem(dir.path(), "a.wav"), 0.0)]);
    a.output = Output::Bus("Drums".into());
    let mut b = bus("Drums");
    b.inserts = vec![Insert::Compressor(comp(-12.0, 2.0, None))];
    let s = session(vec![a], vec![b], 0.0);
    let mix = render(&s);
    // The bus input peaks at cos(pi/4) (a centred mono track): L = −3.01 dB.
    let l = 20.0 * C.log10();
    let out = -12.0 + (l + 12.0) / 2.0;
    let got = tone_db(&mix[0], 500.0, RATE as usize);
    assert!(
        (got - out).abs() < 0.5,
        "bus compressor {got:.2} dB, want {out:.2}"
    );
}

#[test]
fn saturation_latency_is_compensated_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40_000;
    let x = noise(6, n, 0.5);
    write_wav(&dir.path().join("x.wav"), std::slice::from_ref(&x));
    let mut t = track("T", vec![Clip::whole(stem(dir.path(), "x.wav"), 0.1)]);
    // mix 0: the dry path only, delayed inside by the oversampler's latency, which the
    // strip must compensate so the track does not move against the others.
    t.inserts = vec![Insert::Saturation(bounce_server::session::Saturation {
        drive_db: 12.0,
        output_db: 0.0,
        mix: 0.0,
    })];
    let s = session(vec![t], vec![], 0.2);
    let mix = render(&s);
    let at = (0.1 * f64::from(RATE)).round() as usize;
    let mut want = vec![0f64; mix[0].len()];
    for (i, v) in x.iter().enumerate() {
        want[at + i] = f64::from(*v) * C;
    }
    let e = err_db(&mix[0], &want);
    assert!(e < -100.0, "saturation at mix 0 moved the track: {e:.1} dB");
}

#[test]
fn ping_pong_delay_widens_a_mono_track() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = vec![0f32; 4800];
    x[0] = 1.0;
    write_wav(&dir.path().join("imp.wav"), &[x]);
    let mut t = track("T", vec![Clip::whole(stem(dir.path(), "imp.wav"), 0.0)]);
    t.inserts = vec![Insert::Delay(bounce_server::session::DelayFx {
        time: bounce_server::session::DelayTime::Ms(10.0),
        feedback: 0.5,
        mix: 1.0,
        ping_pong: true,
    })];
    let s = session(vec![t], vec![], 0.1);
    let mix = render(&s);
    let d = 480;
    let mut wl = vec![0f64; mix[0].len()];
    let mut wr = vec![0f64; mix[0].len()];
    // The mono strip turns stereo at the delay (both sides at −3.01 dB); the delay's
    // input is their mean; odd repeats left, even right; balance pan at 0 is unity.
    for k in 1.. {
        let at = k * d;
        if at >= wl.len() {
            break;
        }
        let a = C * 0.5f64.powi(k as i32 - 1);
        if k % 2 == 1 {
            wl[at] = a;
        } else {
            wr[at] = a;
        }
    }
    let e = err_db(&mix[0], &wl).max(err_db(&mix[1], &wr));
    assert!(e < -90.0, "ping-pong: {e:.1} dB");
}

#[test]
fn width_insert_scales_the_side_per_sample_and_names_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let (l, r) = (noise(11, n, 0.4), noise(12, n, 0.4));
    write_wav(&dir.path().join("st.wav"), &[l.clone(), r.clone()]);
    let mut t = track("St", vec![Clip::whole(stem(dir.path(), "st.wav"), 0.0)]);
    t.inserts = vec![Insert::Width(bounce_server::inserts::Width { width: 1.0 })];
    let pts = [(0.1, 0.0), (0.5, 2.0)];
    t.automation.lanes.push(lane(
        LaneTarget::Insert {
            index: 0,
            param: "width".into(),
        },
        &pts,
    ));
    let mix = render(&session(vec![t], vec![], 0.0));
    // M = (L+R)/2, S = (L−R)/2 · w(t), L' = M + S, R' = M − S; w linear per sample.
    let w = |i: usize| {
        let t = i as f64 / f64::from(RATE);
        (2.0 * (t - 0.1) / 0.4).clamp(0.0, 2.0)
    };
    let (mut wl, mut wr) = (vec![0f64; n], vec![0f64; n]);
    for i in 0..n {
        let (a, b) = (f64::from(l[i]), f64::from(r[i]));
        let (m, s) = ((a + b) / 2.0, (a - b) / 2.0 * w(i));
        wl[i] = m + s;
        wr[i] = m - s;
    }
    let (el, er) = (err_db(&mix[0], &wl), err_db(&mix[1], &wr));
    assert!(el < -110.0 && er < -110.0, "L {el:.1} dB, R {er:.1} dB");

    let toml = "[session]\nsample_rate = 48000\n[[track]]\nname = \"St\"\nfile = \"st.wav\"\ninserts = [ { kind = \"width\", width = 5.0 } ]\n";
    let s = bounce_server::session::parse_session_toml(toml, "w.toml", dir.path()).unwrap();
    let e = ValidSession::new(s, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("St") && e.contains("inserts[0]") && e.contains("width") && e.contains('5'),
        "{e}"
    );
}
