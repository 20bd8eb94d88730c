//! `bounce render SONG.dawproject` and `bounce import` (issue 10), end to end through
//! the real binary and its embedded server: the rendered mix equals the same mix
//! written by hand as a session, and the imported session renders the same bit for bit.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const BOUNCE: &str = env!("CARGO_BIN_EXE_bounce");

fn bounce(args: &[&str], cache: &Path) -> Output {
    Command::new(BOUNCE)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("BOUNCE_SERVER")
        .env_remove("BOUNCE_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A seeded mono noise WAV (float) of `n` frames at 48 kHz.
fn wav(seed: u32, n: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        let mut x = seed;
        for _ in 0..n {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            w.write_sample((x >> 8) as f32 / (1u32 << 24) as f32 * 0.6 - 0.3)
                .unwrap();
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

const PROJECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Project version="1.0">
  <Application name="test" version="1"/>
  <Transport><Tempo unit="bpm" value="120" id="tempo"/></Transport>
  <Structure>
    <Track id="t1" name="Keys" contentType="audio">
      <Channel role="regular" audioChannels="1" destination="m" id="c1">
        <Volume unit="linear" value="0.5" id="v1"/>
        <Pan unit="normalized" min="0" max="1" value="0.25" id="p1"/>
        <Sends><Send destination="fx" type="post"><Volume unit="decibel" value="-6"/></Send></Sends>
      </Channel>
    </Track>
    <Track id="t2" name="Plug" contentType="audio">
      <Channel role="regular" audioChannels="1" destination="m" id="c2">
        <Devices><ClapPlugin deviceName="Shiny Synth" deviceRole="instrument"/></Devices>
      </Channel>
    </Track>
    <Track id="tfx" name="Room"><Channel role="effect" audioChannels="2" destination="m" id="fx">
      <Devices><Equalizer deviceName="EQ" deviceRole="audioFX">
        <Band type="bell"><Freq unit="hertz" value="1500"/><Gain unit="decibel" value="4"/><Q unit="linear" value="1.2"/></Band>
      </Equalizer></Devices>
      <Volume unit="decibel" value="-3"/>
    </Channel></Track>
    <Track id="mt" name="Master"><Channel role="master" audioChannels="2" id="m">
      <Volume unit="linear" value="0.8" id="mv"/>
    </Channel></Track>
  </Structure>
  <Arrangement>
    <Lanes timeUnit="beats">
      <Lanes track="t1">
        <Clips><Clip time="1" duration="2" playStart="0.5" contentTimeUnit="beats" fadeTimeUnit="seconds" fadeInTime="0.05" fadeOutTime="0.1">
          <Audio channels="1" sampleRate="48000" duration="1.5"><File path="audio/keys.wav"/></Audio>
        </Clip></Clips>
        <Points><Target parameter="p1"/><RealPoint time="0" value="0.25" interpolation="hold"/><RealPoint time="2" value="0.75"/></Points>
      </Lanes>
    </Lanes>
  </Arrangement>
</Project>
"#;

fn write_project(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("project.xml", opts).unwrap();
    z.write_all(PROJECT.as_bytes()).unwrap();
    z.start_file("audio/keys.wav", opts).unwrap();
    z.write_all(&wav(7, 72_000)).unwrap();
    z.finish().unwrap();
}

fn samples(path: &Path) -> Vec<f32> {
    hound::WavReader::open(path)
        .unwrap()
        .into_samples::<f32>()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn render_of_a_dawproject_equals_the_hand_written_session_and_import_renders_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    let song = d.join("song.dawproject");
    write_project(&song);

    let out = d.join("render");
    let r = bounce(
        &[
            "render",
            song.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        &cache,
    );
    ok(&r);
    let stderr = String::from_utf8_lossy(&r.stderr);
    let warn_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Shiny Synth"))
        .collect();
    assert_eq!(warn_lines.len(), 1, "{stderr}");
    assert!(warn_lines[0].contains("\"Plug\""), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let warnings = report["import"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("Shiny Synth"))
    );
    assert!(!report["import"]["mapped"].as_array().unwrap().is_empty());
    assert!(!out.join(".import").exists());

    // The same mix by hand: at 120 bpm the clip sits at 0.5 s, plays from 0.25 s for 1 s.
    let hand_dir = d.join("hand");
    std::fs::create_dir_all(hand_dir.join("stems")).unwrap();
    std::fs::write(hand_dir.join("stems/keys.wav"), wav(7, 72_000)).unwrap();
    std::fs::write(
        hand_dir.join("hand.toml"),
        format!(
            r#"[session]
sample_rate = 48000
tempo_bpm = 120.0
[[track]]
name = "Keys"
channels = 1
gain_db = {g}
clips = [ {{ file = "stems/keys.wav", at_s = 0.5, start_s = 0.25, length_s = 1.0, fade_in_s = 0.05, fade_out_s = 0.1 }} ]
sends = [ {{ bus = "Room", level_db = -6.0 }} ]
automation = {{ pan = [[0.0, -0.5], [1.0, -0.5], [1.0, 0.5]] }}
[[bus]]
name = "Room"
gain_db = -3.0
inserts = [ {{ kind = "eq", bands = [ {{ type = "peak", freq = 1500.0, gain_db = 4.0, q = 1.2 }} ] }} ]
[master_bus]
gain_db = {m}
"#,
            g = 20.0 * 0.5f64.log10(),
            m = 20.0 * 0.8f64.log10()
        ),
    )
    .unwrap();
    let hand_out = d.join("hand-out");
    ok(&bounce(
        &[
            "render",
            hand_dir.join("hand.toml").to_str().unwrap(),
            "--out",
            hand_out.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        &cache,
    ));
    let got = samples(&out.join("mix.wav"));
    let want = samples(&hand_out.join("mix.wav"));
    assert_eq!(got.len(), want.len());
    let peak = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(peak > 0.01);
    assert!(
        err <= peak * 1e-6,
        "residual {:.1} dB",
        20.0 * (err / peak).log10()
    );

    // `bounce import` writes a session that parses and renders bit for bit the same.
    let imp = d.join("imported");
    ok(&bounce(
        &[
            "import",
            song.to_str().unwrap(),
            "--out",
            imp.to_str().unwrap(),
        ],
        &cache,
    ));
    let toml_path = imp.join("session.toml");
    bounce_server::session::load_session_file(&toml_path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(imp.join("import.json")).unwrap()).unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
    let imp_out = d.join("imported-out");
    ok(&bounce(
        &[
            "render",
            toml_path.to_str().unwrap(),
            "--out",
            imp_out.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        &cache,
    ));
    assert_eq!(
        std::fs::read(imp_out.join("mix.wav")).unwrap(),
        std::fs::read(out.join("mix.wav")).unwrap()
    );

    // --strict: the warning is the one error line, nothing written.
    let strict = d.join("strict");
    let r = bounce(
        &[
            "import",
            song.to_str().unwrap(),
            "--out",
            strict.to_str().unwrap(),
            "--strict",
        ],
        &cache,
    );
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("Shiny Synth") && stderr.contains("--strict"),
        "{stderr}"
    );
    assert!(!strict.join("session.toml").exists());
}
