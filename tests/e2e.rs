//! End-to-end tests: the real `bounced`, the real `bounce`, real files.
//!
//! Each test writes seeded stems and a session into a temp folder, renders it through
//! the gRPC path, and checks the written mix against a float64 reference computed
//! here from CONTRACT.md's formulas.

use std::f64::consts::PI;
use std::path::Path;

use bounce_tests::{Server, bounce, error_db, noise, read_wav, write_f32_wav};

const RATE: u32 = 48_000;

fn db(x: f64) -> f64 {
    10f64.powf(x / 20.0)
}

fn mono_pan(p: f64) -> (f64, f64) {
    let th = (p + 1.0) * PI / 4.0;
    (th.cos(), th.sin())
}

fn balance(p: f64) -> (f64, f64) {
    ((1.0 - p).min(1.0), (1.0 + p).min(1.0))
}

/// Adds `src` × gain into `dst` starting at `at`.
fn mix_in(dst: &mut [f64], src: &[f32], at: usize, gain: impl Fn(usize) -> f64) {
    for (i, s) in src.iter().enumerate() {
        dst[at + i] += *s as f64 * gain(at + i);
    }
}

fn write_session(dir: &Path, toml: &str) -> String {
    let p = dir.join("song.toml");
    std::fs::write(&p, toml).expect("write session");
    p.to_string_lossy().into_owned()
}

/// `bounce render SESSION --out OUT --server URL` against a running `bounced`.
fn render_via(server: &Server, session: &str, out: &Path) -> std::process::Output {
    bounce(&[
        "render",
        session,
        "--out",
        out.to_str().expect("utf8"),
        "--server",
        &server.url,
    ])
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gain/pan/routing session of issue 2, through a separately started `bounced`:
/// the mix must match the float64 reference sum to within −90 dB of its peak.
#[test]
fn gain_pan_routing_mix_matches_reference_sum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("stems")).expect("mkdir");
    let s = |secs: f64| (secs * RATE as f64) as usize;
    let a = noise(1, s(1.0), 0.5);
    let (bl, br) = (noise(2, s(0.8), 0.4), noise(3, s(0.8), 0.4));
    let c = noise(4, s(1.0), 0.5);
    let dmuted = noise(5, s(1.5), 0.5);
    let e = noise(6, s(0.7), 0.3);
    let f = noise(7, s(0.6), 0.3);
    write_f32_wav(&d.join("stems/a.wav"), std::slice::from_ref(&a), RATE);
    write_f32_wav(&d.join("stems/b.wav"), &[bl.clone(), br.clone()], RATE);
    write_f32_wav(&d.join("stems/c.wav"), std::slice::from_ref(&c), RATE);
    write_f32_wav(&d.join("stems/d.wav"), &[dmuted], RATE);
    write_f32_wav(&d.join("stems/e.wav"), std::slice::from_ref(&e), RATE);
    write_f32_wav(&d.join("stems/f.wav"), std::slice::from_ref(&f), RATE);
    let session = write_session(
        d,
        r#"
[session]
name = "Gain and pan"
sample_rate = 48000
tail_s = 0.5

[[track]]
name = "A"
file = "stems/a.wav"
gain_db = -3
pan = 0.5

[[track]]
name = "B"
file = "stems/b.wav"
gain_db = 2.0
pan = -0.4
offset_s = 0.25
invert = true

[[track]]
name = "C"
file = "stems/c.wav"
gain_db = -6.0
pan = -1.0
output = "Sub"
automation = { gain_db = [[0.0, 0.0], [0.5, -12.0]] }

[[track]]
name = "D"
file = "stems/d.wav"
mute = true
sends = [ { bus = "Aux", level_db = 0.0 } ]

[[track]]
name = "E"
file = "stems/e.wav"
sends = [ { bus = "Aux", level_db = -6.0 } ]

[[track]]
name = "F"
file = "stems/f.wav"
pan = 0.8
gain_db = -20.0
sends = [ { bus = "Aux", level_db = -3.0, pre_fader = true } ]

[[bus]]
name = "Sub"
gain_db = -2.0

[[bus]]
name = "Aux"
gain_db = -1.0
output = "Sub"
"#,
    );

    // Reference: CONTRACT.md's strip, pan laws and bus routing, in float64.
    let total = s(1.5) + s(0.5); // the muted D is the longest stem; plus the tail
    let mut l = vec![0f64; total];
    let mut r = vec![0f64; total];
    let (al, ar) = mono_pan(0.5);
    mix_in(&mut l, &a, 0, |_| db(-3.0) * al);
    mix_in(&mut r, &a, 0, |_| db(-3.0) * ar);
    let (gl, gr) = balance(-0.4);
    mix_in(&mut l, &bl, s(0.25), |_| -db(2.0) * gl);
    mix_in(&mut r, &br, s(0.25), |_| -db(2.0) * gr);
    // C: automation linear in dB from 0 to −12 over 0.5 s, then held; into Sub (−2 dB).
    let auto = |i: usize| {
        let t = i as f64 / RATE as f64;
        let a = if t >= 0.5 { -12.0 } else { -12.0 * t / 0.5 };
        db(-6.0 + a)
    };
    let (cl, cr) = mono_pan(-1.0);
    mix_in(&mut l, &c, 0, |i| auto(i) * cl * db(-2.0));
    mix_in(&mut r, &c, 0, |i| auto(i) * cr * db(-2.0));
    // E: to master at centre, and post-fader into Aux (−6) → Sub (−1 −2).
    let (el, er) = mono_pan(0.0);
    let aux = db(-1.0) * db(-2.0);
    mix_in(&mut l, &e, 0, |_| el * (1.0 + db(-6.0) * aux));
    mix_in(&mut r, &e, 0, |_| er * (1.0 + db(-6.0) * aux));
    // F: to master at pan 0.8, −20 dB; pre-fader send at centre (−3 dB) into Aux.
    let (fl, fr) = mono_pan(0.8);
    let centre = mono_pan(0.0).0;
    mix_in(&mut l, &f, 0, |_| db(-20.0) * fl + db(-3.0) * centre * aux);
    mix_in(&mut r, &f, 0, |_| db(-20.0) * fr + db(-3.0) * centre * aux);

    let server = Server::start("cpu");
    let out = d.join("out");
    let res = render_via(&server, &session, &out);
    assert_ok(&res, "bounce render");
    let (rate, mix) = read_wav(&out.join("mix.wav"));
    assert_eq!(rate, RATE);
    assert_eq!(mix.len(), 2, "mix.wav is stereo");
    assert_eq!(
        mix[0].len(),
        total,
        "mix length = longest (offset + stem), muted included, + tail"
    );
    let el = error_db(&mix[0], &l);
    let er = error_db(&mix[1], &r);
    assert!(
        el < -90.0 && er < -90.0,
        "mix error vs reference: L {el:.1} dB, R {er:.1} dB"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["mix"]["file"], "mix.wav");
    assert!(
        report["mix"]["integrated_lufs"].is_number(),
        "report: {report}"
    );

    // Bad input answers one clear line naming the file, and the server keeps serving.
    let mut bad = a.clone();
    bad[100] = f32::NAN;
    write_f32_wav(&d.join("stems/a.wav"), &[bad], RATE);
    let res = render_via(&server, &session, &out);
    assert!(!res.status.success(), "a NaN stem must fail");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("a.wav"), "error names the file: {err}");
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    write_f32_wav(&d.join("stems/a.wav"), std::slice::from_ref(&a), RATE);
    let res = render_via(&server, &session, &out);
    assert_ok(&res, "the server still serves after a bad request");
}

/// A reverb bus (2-channel IR, predelay, wet gain, dry off) through the embedded
/// server on each backend, against a direct float64 convolution.
#[test]
fn reverb_bus_matches_direct_convolution_on_both_backends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("stems")).expect("mkdir");
    let x = noise(11, 30_000, 0.5);
    // A 0.3 s decaying stereo IR of odd length.
    let n_ir = 14_401;
    let irl: Vec<f32> = noise(12, n_ir, 0.5)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (-(i as f32) / 3000.0).exp())
        .collect();
    let irr: Vec<f32> = noise(13, n_ir, 0.5)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (-(i as f32) / 2000.0).exp())
        .collect();
    write_f32_wav(&d.join("stems/x.wav"), std::slice::from_ref(&x), RATE);
    write_f32_wav(&d.join("ir.wav"), &[irl.clone(), irr.clone()], RATE);
    let session = write_session(
        d,
        r#"
[session]
name = "Verb"
sample_rate = 48000
tail_s = 0.5

[[track]]
name = "X"
file = "stems/x.wav"
output = "Hall"

[[bus]]
name = "Hall"
gain_db = -2.0
reverb = { ir = "ir.wav", predelay_ms = 10.0, wet_db = -3.0, dry = false }
"#,
    );
    let total = 30_000 + 24_000;
    let pre = 480;
    let (c, _) = mono_pan(0.0);
    let conv = |h: &[f32]| {
        let mut y = vec![0f64; total];
        for (i, xv) in x.iter().enumerate() {
            let xv = *xv as f64 * c;
            for (j, hv) in h.iter().enumerate() {
                if let Some(o) = y.get_mut(i + j + pre) {
                    *o += xv * *hv as f64 * db(-3.0) * db(-2.0);
                }
            }
        }
        y
    };
    let (wl, wr) = (conv(&irl), conv(&irr));
    for backend in ["cpu", "gpu"] {
        let out = d.join(format!("out-{backend}"));
        let res = bounce(&[
            "render",
            &session,
            "--out",
            out.to_str().expect("utf8"),
            "--backend",
            backend,
        ]);
        if backend == "gpu"
            && !res.status.success()
            && std::env::var("BOUNCE_REQUIRE_GPU").as_deref() != Ok("1")
        {
            eprintln!(
                "SKIP: --backend gpu failed (no adapter?): {}",
                String::from_utf8_lossy(&res.stderr)
            );
            continue;
        }
        assert_ok(&res, &format!("render --backend {backend}"));
        let (_, mix) = read_wav(&out.join("mix.wav"));
        let (el, er) = (error_db(&mix[0], &wl), error_db(&mix[1], &wr));
        assert!(
            el < -90.0 && er < -90.0,
            "{backend}: reverb error L {el:.1} dB, R {er:.1} dB"
        );
    }
}

/// A new user's first command: `bounce demo --out DIR` writes the song and renders it.
#[test]
fn demo_renders_its_song() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let res = bounce(&["demo", "--out", out.to_str().expect("utf8")]);
    assert_ok(&res, "bounce demo");
    for f in [
        "session.toml",
        "mix.wav",
        "streaming.wav",
        "cd.flac",
        "report.json",
    ] {
        assert!(out.join(f).exists(), "demo wrote {f}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    let dl = report["deliverables"].as_array().expect("deliverables");
    let streaming = dl
        .iter()
        .find(|d| d["name"] == "streaming")
        .expect("streaming in report");
    let lufs = streaming["integrated_lufs"]
        .as_f64()
        .expect("integrated_lufs");
    assert!(
        (lufs + 14.0).abs() <= 0.3,
        "streaming lands at −14 LUFS ± 0.3: {lufs}"
    );
    let tp = streaming["true_peak_dbtp"]
        .as_f64()
        .expect("true_peak_dbtp");
    assert!(tp <= -1.0 + 1e-9, "streaming true peak ≤ −1 dBTP: {tp}");
}

/// ffmpeg's EBU R128 meter (`ebur128=peak=true`) on `path`: (integrated LUFS, true
/// peak dBTP) as it prints them (one decimal).
fn ffmpeg_ebur128(path: &Path) -> Option<(f64, f64)> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.rfind("Summary:")?..];
    let value = |key: &str| -> Option<f64> {
        let at = summary.find(key)? + key.len();
        summary[at..].split_whitespace().next()?.parse().ok()
    };
    Some((value("I:")?, value("Peak:")?))
}

/// Issue 4's acceptance check: `bounce render` of a session with a `[master]` chain
/// and streaming + cd deliverables, through a separately started `bounced`; each
/// file within ±0.3 LU of its target and under its −1 dBTP ceiling as an independent
/// meter (ffmpeg's ebur128 with peak=true) reads it; the QC report and plots come too.
#[test]
fn mastered_deliverables_meet_targets_by_an_independent_meter() {
    if std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: ffmpeg is not installed (apt-get install ffmpeg); .ci/run installs it");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo's session and stems (a [master] chain, streaming and cd deliverables).
    let song = dir.path().join("song");
    assert_ok(
        &bounce(&["demo", "--out", song.to_str().expect("utf8")]),
        "bounce demo",
    );
    let session = song.join("session.toml");
    let text = std::fs::read_to_string(&session).expect("session");
    assert!(text.contains("[master]") && text.contains("name = \"cd\""));
    let server = Server::start("auto");
    let out = dir.path().join("render");
    let res = render_via(&server, session.to_str().expect("utf8"), &out);
    assert_ok(&res, "bounce render");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    for (name, file) in [("streaming", "streaming.wav"), ("cd", "cd.flac")] {
        let path = out.join(file);
        let (i, tp) = ffmpeg_ebur128(&path).expect("ffmpeg's ebur128 summary");
        assert!(
            (i + 14.0).abs() <= 0.3,
            "{file}: ffmpeg reads {i} LUFS, target −14"
        );
        assert!(tp <= -1.0, "{file}: ffmpeg reads {tp} dBTP, ceiling −1");
        let png = std::fs::read(out.join(format!("{name}.png"))).expect("QC plot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is a PNG");
        let qc = report["deliverables"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == name))
            .expect("deliverable in report.json");
        for key in [
            "integrated_lufs",
            "true_peak_dbtp",
            "lra_lu",
            "short_term_max_lufs",
            "momentary_max_lufs",
        ] {
            assert!(qc[key].is_number(), "{name}: report.json has {key}");
        }
    }
}

/// `bounce album` in album loudness mode: one gain for the whole album, so the loudest
/// song meets the target and a quieter song keeps its distance below it.
#[test]
fn album_mode_gives_every_song_one_gain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let n = 3 * RATE as usize;
    for (k, (name, amp)) in [("Song One", 0.3f32), ("Song Two", 0.1)].iter().enumerate() {
        write_f32_wav(
            &d.join(format!("s{k}.wav")),
            &[noise(40 + k as u64, n, *amp)],
            RATE,
        );
        std::fs::write(
            d.join(format!("s{k}.toml")),
            format!("[session]\nname = \"{name}\"\nsample_rate = 48000\ntail_s = 0\n[[track]]\nname = \"T\"\nfile = \"s{k}.wav\"\n"),
        )
        .expect("song");
    }
    std::fs::write(
        d.join("album.toml"),
        "[album]\nname = \"Test\"\nloudness = \"album\"\nsongs = [\"s0.toml\", \"s1.toml\"]\n\
         [[deliverable]]\nname = \"streaming\"\ntarget_lufs = -16.0\nceiling_dbtp = -1.0\n",
    )
    .expect("album");
    let out = d.join("out");
    let res = bounce(&[
        "album",
        d.join("album.toml").to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_ok(&res, "bounce album");
    for f in [
        "01-song-one/streaming.wav",
        "02-song-two/streaming.wav",
        "01-song-one/report.json",
        "manifest.json",
    ] {
        assert!(out.join(f).exists(), "album wrote {f}");
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    let song = |i: usize| {
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                out.join(manifest["songs"][i]["dir"].as_str().expect("dir"))
                    .join("report.json"),
            )
            .expect("report"),
        )
        .expect("json");
        let d = r["deliverables"][0].clone();
        (
            d["integrated_lufs"].as_f64().expect("lufs"),
            d["pre_limiter_lufs"].as_f64().expect("pre"),
        )
    };
    let ((l1, p1), (l2, p2)) = (song(0), song(1));
    assert!(
        (l1 + 16.0).abs() <= 0.3,
        "the loudest song meets the target: {l1}"
    );
    // The same gain on both: the quieter song stays as far below as it was.
    assert!(
        ((l1 - l2) - (p1 - p2)).abs() <= 0.2,
        "one gain for the album: {l1} {l2} (pre {p1} {p2})"
    );
    assert!(
        l2 < -23.0,
        "the quiet song is not normalised on its own: {l2}"
    );
}
