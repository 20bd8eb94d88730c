//! DAWproject import (issue 10): projects generated here from XML templates, zipped
//! with the `zip` crate, audio synthesised from seeded signals. Times, units and
//! device parameters are checked against closed forms computed here; renders against
//! a reference mix computed sample by sample from CONTRACT.md's formulas, or against
//! the same mix written by hand as a session.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bounce_server::dsp::convolution::{ConvolutionBank, CpuConvolutionBank};
use bounce_server::engine::graph::{self, render_mix};
use bounce_server::engine::strip::BLOCK;
use bounce_server::session::dawproject::{self, ImportOptions, Imported};
use bounce_server::session::{
    Detector, EqType, Insert, LaneTarget, Limits, Output, Session, StemRef, ValidSession, Variant,
    parse_session_toml, session_to_toml,
};
use rand::{Rng, SeedableRng};

const RATE: u32 = 48_000;

fn noise(seed: u64, len: usize, amp: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-amp..amp)).collect()
}

/// A 32-bit float WAV's bytes.
fn wav_bytes(rate: u32, channels: &[Vec<f32>]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..channels[0].len() {
            for c in channels {
                w.write_sample(c[i]).unwrap();
            }
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

/// Writes `dir/name` as a zip of project.xml and `files`.
fn write_project(dir: &Path, name: &str, xml: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("project.xml", opts).unwrap();
    z.write_all(xml.as_bytes()).unwrap();
    z.start_file("metadata.xml", opts).unwrap();
    z.write_all(b"<MetaData><Title>t</Title></MetaData>")
        .unwrap();
    for (n, bytes) in files {
        z.start_file(*n, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    path
}

/// A project: Transport at `bpm` (or none), `structure` inside <Structure>, `lanes`
/// inside the arrangement's top <Lanes timeUnit="beats">, `extra` after them in
/// <Arrangement> (e.g. TempoAutomation).
fn xml(bpm: Option<f64>, structure: &str, lanes: &str, extra: &str) -> String {
    let transport = match bpm {
        Some(b) => format!(
            r#"<Transport><Tempo unit="bpm" value="{b}" id="tempo"/><TimeSignature numerator="4" denominator="4"/></Transport>"#
        ),
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Project version="1.0">
  <Application name="test" version="1"/>
  {transport}
  <Structure>
{structure}
    <Track contentType="audio" id="mt" name="Master">
      <Channel role="master" audioChannels="2" id="m">
        <Volume unit="linear" value="1.0" id="mvol"/>
        <Pan unit="normalized" min="0" max="1" value="0.5" id="mpan"/>
      </Channel>
    </Track>
  </Structure>
  <Arrangement id="arr">
    <Lanes timeUnit="beats" id="top">
{lanes}
    </Lanes>
    {extra}
  </Arrangement>
</Project>
"#
    )
}

/// An audio track with one channel (stereo) routed to the master.
fn track_xml(id: &str, name: &str, inner: &str) -> String {
    format!(
        r#"    <Track contentType="audio" id="{id}" name="{name}">
      <Channel role="regular" audioChannels="2" destination="m" id="{id}c">
{inner}
      </Channel>
    </Track>"#
    )
}

fn audio_xml(path: &str, secs: f64) -> String {
    format!(
        r#"<Audio channels="2" sampleRate="48000" duration="{secs}" timeUnit="seconds"><File path="{path}"/></Audio>"#
    )
}

fn read(path: &Path) -> Imported {
    dawproject::read_project(path, &ImportOptions::default()).unwrap()
}

fn read_err(path: &Path, strict: bool) -> String {
    let opts = ImportOptions {
        sample_rate: None,
        strict,
    };
    match dawproject::read_project(path, &opts) {
        Ok(_) => panic!("expected an error for {}", path.display()),
        Err(e) => e.to_string(),
    }
}

fn import_err(path: &Path, out: &Path) -> String {
    match dawproject::import(path, out, &ImportOptions::default()) {
        Ok(_) => panic!("expected an error for {}", path.display()),
        Err(e) => e.to_string(),
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

fn err_db(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    let peak = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    let e = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs()));
    20.0 * (e / peak).log10()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-9, "{what}: {a} vs {b}");
}

#[test]
fn stereo_clip_in_beats_with_play_start_fades_and_master_volume_renders_as_computed() {
    let dir = tempfile::tempdir().unwrap();
    let l = noise(1, 4 * 48_000, 0.5);
    let r = noise(2, 4 * 48_000, 0.5);
    let structure = track_xml(
        "t1",
        "Gtr",
        r#"<Volume unit="linear" value="1.0" id="v1"/><Pan unit="normalized" min="0" max="1" value="0.5" id="p1"/>"#,
    )
    .replace(
        r#"<Volume unit="linear" value="1.0" id="mvol"/>"#,
        r#"<Volume unit="linear" value="0.5" id="mvol"/>"#,
    );
    // At 120 bpm: at 2 beats = 1 s, playStart 1 beat = 0.5 s into the file,
    // 4 beats = 2 s long, fades 0.5 beat = 0.25 s in and 1 beat = 0.5 s out.
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="2" duration="4" playStart="1" contentTimeUnit="beats" fadeTimeUnit="beats" fadeInTime="0.5" fadeOutTime="1" name="take">{}</Clip></Clips></Lanes>"#,
        audio_xml("audio/gtr.wav", 4.0)
    );
    let x = xml(Some(120.0), &structure, &lanes, "").replace(
        r#"<Volume unit="linear" value="1.0" id="mvol"/>"#,
        r#"<Volume unit="linear" value="0.5" id="mvol"/>"#,
    );
    let p = write_project(
        dir.path(),
        "song.dawproject",
        &x,
        &[("audio/gtr.wav", wav_bytes(RATE, &[l.clone(), r.clone()]))],
    );
    let out = dir.path().join("imp");
    let imp = dawproject::import(&p, &out, &ImportOptions::default()).unwrap();
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    let s = &imp.session;
    assert_eq!(s.sample_rate, 48_000);
    assert_eq!(s.tempo_bpm, Some(120.0));
    let c = &s.tracks[0].clips[0];
    close(c.at_s, 1.0, "at_s");
    close(c.start_s, 0.5, "start_s");
    close(c.length_s.unwrap(), 2.0, "length_s");
    close(c.fade_in_s, 0.25, "fade_in_s");
    close(c.fade_out_s, 0.5, "fade_out_s");
    assert_eq!(s.tracks[0].channels, Some(2));
    let mb = s.master_bus.as_ref().unwrap();
    close(mb.gain_db, -6.020599913279624, "master gain");

    // The reference mix, from the contract: fades i/F and k/G, master amplitude 0.5.
    let mix = render(s);
    let rate = f64::from(RATE);
    let (at, skip, len) = (48_000usize, 24_000usize, 96_000usize);
    let (f_in, f_out) = ((0.25 * rate) as usize, (0.5 * rate) as usize);
    let total = at + len + (2.0 * rate) as usize;
    for (ch, src) in [(0, &l), (1, &r)] {
        let mut want = vec![0f64; total];
        for i in 0..len {
            let mut g = 0.5;
            if i < f_in {
                g *= i as f64 / f_in as f64;
            }
            let k = len - 1 - i;
            if k < f_out {
                g *= k as f64 / f_out as f64;
            }
            want[at + i] = f64::from(src[skip + i]) * g;
        }
        let e = err_db(&mix[ch], &want);
        assert!(e < -100.0, "channel {ch}: {e:.1} dB");
    }

    // session.toml parses back to the same session, and renders the same bit for bit.
    let text = std::fs::read_to_string(out.join("session.toml")).unwrap();
    let back = parse_session_toml(&text, &s.source, &out).unwrap();
    assert_eq!(&back, s);
    assert_eq!(render(&back), mix);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("import.json")).unwrap()).unwrap();
    assert!(json["warnings"].as_array().unwrap().is_empty());
    assert!(!json["mapped"].as_array().unwrap().is_empty());
    assert!(out.join("audio/audio/gtr.wav").is_file());
}

#[test]
fn tempo_ramp_is_integrated_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let structure = track_xml("t1", "A", "");
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="4" duration="2" contentTimeUnit="seconds">{}</Clip></Clips></Lanes>"#,
        audio_xml("a.wav", 2.0)
    );
    let extra = r#"<TempoAutomation timeUnit="beats"><Target parameter="tempo"/><RealPoint time="0" value="100" interpolation="linear"/><RealPoint time="8" value="200" interpolation="linear"/></TempoAutomation>"#;
    let p = write_project(
        dir.path(),
        "ramp.dawproject",
        &xml(Some(100.0), &structure, &lanes, extra),
        &[],
    );
    let imp = read(&p);
    // bpm(b) = 100 + 12.5 b: seconds(b) = 60 / 12.5 · ln(1 + 12.5 b / 100).
    let secs = |b: f64| 60.0 / 12.5 * (1.0 + 12.5 * b / 100.0f64).ln();
    let c = &imp.session.tracks[0].clips[0];
    close(c.at_s, secs(4.0), "at_s");
    close(c.length_s.unwrap(), secs(6.0) - secs(4.0), "length_s");
    assert_eq!(imp.session.tempo_bpm, None);
}

#[test]
fn loops_become_one_clip_per_pass() {
    let dir = tempfile::tempdir().unwrap();
    let structure = track_xml("t1", "Loop", "");
    // 8 beats at 120 bpm = 4 s; content in seconds, looping 0.5..1.5 from playStart 0.
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="0" duration="8" contentTimeUnit="seconds" playStart="0" loopStart="0.5" loopEnd="1.5">{}</Clip></Clips></Lanes>"#,
        audio_xml("l.wav", 2.0)
    );
    let p = write_project(
        dir.path(),
        "loop.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[],
    );
    let imp = read(&p);
    let got: Vec<(f64, f64, f64)> = imp.session.tracks[0]
        .clips
        .iter()
        .map(|c| (c.at_s, c.start_s, c.length_s.unwrap()))
        .collect();
    let want = [
        (0.0, 0.0, 1.5),
        (1.5, 0.5, 1.0),
        (2.5, 0.5, 1.0),
        (3.5, 0.5, 0.5),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        close(g.0, w.0, "at");
        close(g.1, w.1, "start");
        close(g.2, w.2, "len");
    }
}

#[test]
fn nested_clips_and_play_stop_resolve_to_absolute_times() {
    let dir = tempfile::tempdir().unwrap();
    let structure = track_xml("t1", "N", "");
    // Outer at 4 beats (2 s) with playStart 1 beat; inner at 2 beats of the outer's
    // content → absolute 4 + 2 − 1 = 5 beats = 2.5 s; inner plays 0.25 s into its file
    // and stops at playStop 1.0 s (0.75 s long), inside the outer's 4-beat window.
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="4" duration="4" playStart="1" contentTimeUnit="beats"><Clips><Clip time="2" duration="8" contentTimeUnit="seconds" playStart="0.25" playStop="1.0">{}</Clip></Clips></Clip></Clips></Lanes>"#,
        audio_xml("n.wav", 3.0)
    );
    let p = write_project(
        dir.path(),
        "nested.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[],
    );
    let c = &read(&p).session.tracks[0].clips[0];
    close(c.at_s, 2.5, "at_s");
    close(c.start_s, 0.25, "start_s");
    close(c.length_s.unwrap(), 0.75, "length_s");
}

#[test]
fn units_sends_devices_and_master_map_per_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let a = track_xml(
        "ta",
        "A",
        r#"<Volume unit="decibel" value="-3" id="va"/>
        <Pan unit="percent" min="-100" max="100" value="-50" id="pa"/>
        <Sends><Send destination="fxc" type="pre" id="sa"><Volume unit="linear" value="0.5" id="sva"/></Send></Sends>"#,
    );
    let b = track_xml(
        "tb",
        "B",
        r#"<Volume unit="normalized" value="0.5" id="vb"/>
        <Pan unit="normalized" value="0.75" id="pb"/>
        <Mute value="true" id="mb"/>
        <Sends><Send destination="fxc" type="post"><Volume unit="decibel" value="-6" id="svb"/></Send></Sends>"#,
    );
    let fx = r#"    <Track contentType="audio" id="fx" name="Verb">
      <Channel role="effect" audioChannels="2" destination="m" id="fxc">
        <Devices>
          <Equalizer deviceName="EQ" deviceRole="audioFX" id="eq">
            <Band type="highPass" order="2"><Freq unit="hertz" value="80" id="f0"/><Q unit="linear" value="0.7"/></Band>
            <Band type="bell" order="0"><Freq unit="hertz" value="1000" id="f1"/><Gain unit="decibel" value="3" id="g1"/><Q unit="linear" value="2"/></Band>
            <Band type="bandPass" order="1"><Freq unit="hertz" value="200"/><Q unit="linear" value="1"/></Band>
            <Band type="notch" order="3"><Freq unit="hertz" value="60"/><Enabled value="false"/></Band>
          </Equalizer>
          <Compressor deviceName="Comp" deviceRole="audioFX" id="comp">
            <Threshold unit="decibel" value="-20" id="thr"/>
            <Ratio unit="percent" value="75"/>
            <InputGain unit="decibel" value="6"/>
            <OutputGain unit="decibel" value="2"/>
            <Attack unit="seconds" value="0.005"/>
            <Release unit="seconds" value="0.1"/>
          </Compressor>
          <NoiseGate deviceName="Gate" deviceRole="audioFX">
            <Threshold unit="decibel" value="-50"/>
            <Range unit="decibel" value="-inf"/>
            <Attack unit="seconds" value="0.002"/>
            <Release unit="seconds" value="0.2"/>
          </NoiseGate>
        </Devices>
        <Volume unit="linear" value="0.0" id="vfx"/>
      </Channel>
    </Track>"#;
    let structure = format!("{a}\n{b}\n{fx}");
    let lanes = format!(
        r#"<Lanes track="ta"><Clips><Clip time="0" duration="4">{}</Clip></Clips></Lanes>
           <Lanes track="tb"><Clips><Clip time="0" duration="4">{}</Clip></Clips></Lanes>"#,
        audio_xml("a.wav", 2.0),
        audio_xml("b.wav", 2.0)
    );
    let p = write_project(
        dir.path(),
        "mix.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[],
    );
    let imp = read(&p);
    let s = &imp.session;
    let (ta, tb) = (&s.tracks[0], &s.tracks[1]);
    assert_eq!((ta.name.as_str(), tb.name.as_str()), ("A", "B"));
    close(ta.gain_db, -3.0, "decibel volume");
    close(ta.pan, -0.5, "percent pan with min/max");
    close(
        tb.gain_db,
        20.0 * 0.5f64.log10(),
        "normalized volume as amplitude",
    );
    close(tb.pan, 0.5, "normalized pan");
    assert!(tb.mute && !ta.mute);
    assert_eq!(ta.sends.len(), 1);
    assert!(ta.sends[0].pre_fader);
    close(ta.sends[0].level_db, -6.020599913279624, "pre send");
    assert!(!tb.sends[0].pre_fader);
    close(tb.sends[0].level_db, -6.0, "post send");
    assert_eq!(ta.output, Output::Master);
    assert!(imp.mapped.iter().any(|m| m.contains("read as amplitude")));
    assert!(imp.mapped.iter().any(|m| m.contains("bandPass")));
    assert!(imp.mapped.iter().any(|m| m.contains("disabled band")));

    let bus = &s.buses[0];
    assert_eq!(bus.name, "Verb");
    assert!(bus.mute, "a static volume of silence imports as mute");
    let Insert::Eq(eq) = &bus.inserts[0] else {
        panic!("{:?}", bus.inserts[0])
    };
    let kinds: Vec<(EqType, f64, f64, f64)> = eq
        .bands
        .iter()
        .map(|b| (b.kind, b.freq, b.q, b.gain_db))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EqType::Peak, 1000.0, 2.0, 3.0),
            (EqType::Peak, 200.0, 1.0, 0.0),
            (EqType::Highpass, 80.0, 0.7, 0.0),
        ]
    );
    let Insert::Compressor(c) = &bus.inserts[1] else {
        panic!("{:?}", bus.inserts[1])
    };
    close(c.ratio, 4.0, "ratio 100 / (100 − 75)");
    close(c.threshold_db, -26.0, "threshold − input gain");
    close(c.makeup_db, 8.0, "makeup + input gain + output gain");
    close(c.attack_ms, 5.0, "attack");
    close(c.release_ms, 100.0, "release");
    assert_eq!(c.detector, Detector::Peak);
    let Insert::Gate(g) = &bus.inserts[2] else {
        panic!("{:?}", bus.inserts[2])
    };
    close(g.threshold_db, -50.0, "gate threshold");
    close(g.range_db, -120.0, "range −inf");
    close(g.attack_ms, 2.0, "gate attack");
    close(g.release_ms, 200.0, "gate release");
    let mb = s.master_bus.as_ref().unwrap();
    close(mb.gain_db, 0.0, "master");
    close(mb.pan, 0.0, "master pan");
}

#[test]
fn sends_into_an_effect_channel_with_eq_render_like_the_same_mix_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let a = noise(3, 48_000, 0.4);
    let b = noise(4, 48_000, 0.4);
    let ta = track_xml(
        "ta",
        "A",
        r#"<Volume unit="linear" value="0.7" id="va"/>
        <Sends><Send destination="fxc" type="pre"><Volume unit="decibel" value="-6" id="sva"/></Send></Sends>"#,
    )
    .replace(r#"audioChannels="2""#, r#"audioChannels="1""#);
    let tb = track_xml(
        "tb",
        "B",
        r#"<Pan unit="normalized" min="0" max="1" value="0.25"/>
        <Sends><Send destination="fxc" type="post"><Volume unit="linear" value="0.5"/></Send></Sends>"#,
    )
    .replace(r#"audioChannels="2""#, r#"audioChannels="1""#);
    let fx = r#"    <Track id="fx" name="FX"><Channel role="effect" audioChannels="2" destination="m" id="fxc">
        <Devices><Equalizer deviceName="EQ" deviceRole="audioFX">
          <Band type="bell"><Freq unit="hertz" value="2000"/><Gain unit="decibel" value="6"/><Q unit="linear" value="1.5"/></Band>
          <Band type="lowShelf"><Freq unit="hertz" value="150"/><Gain unit="decibel" value="-4"/><Q unit="linear" value="0.7"/></Band>
        </Equalizer></Devices>
        <Volume unit="decibel" value="-2"/>
      </Channel></Track>"#;
    let mono = |p: &str| audio_xml(p, 1.0).replace(r#"channels="2""#, r#"channels="1""#);
    let lanes = format!(
        r#"<Lanes track="ta"><Clips><Clip time="0" duration="2">{}</Clip></Clips></Lanes>
           <Lanes track="tb"><Clips><Clip time="1" duration="2">{}</Clip></Clips></Lanes>"#,
        mono("a.wav"),
        mono("b.wav")
    );
    let p = write_project(
        dir.path(),
        "fx.dawproject",
        &xml(Some(120.0), &format!("{ta}\n{tb}\n{fx}"), &lanes, "").replace(
            r#"<Volume unit="linear" value="1.0" id="mvol"/>"#,
            r#"<Volume unit="decibel" value="-1.5" id="mvol"/>"#,
        ),
        &[
            ("a.wav", wav_bytes(RATE, std::slice::from_ref(&a))),
            ("b.wav", wav_bytes(RATE, std::slice::from_ref(&b))),
        ],
    );
    let out = dir.path().join("imp");
    let imp = dawproject::import(&p, &out, &ImportOptions::default()).unwrap();
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
    // The same mix, written by hand from the contract's names.
    let hand = format!(
        r#"[session]
sample_rate = 48000
tempo_bpm = 120.0
[[track]]
name = "A"
channels = 1
gain_db = {ga}
clips = [ {{ file = "audio/a.wav", length_s = 1.0 }} ]
sends = [ {{ bus = "FX", level_db = -6.0, pre_fader = true }} ]
[[track]]
name = "B"
channels = 1
pan = -0.5
clips = [ {{ file = "audio/b.wav", at_s = 0.5, length_s = 1.0 }} ]
sends = [ {{ bus = "FX", level_db = {gs} }} ]
[[bus]]
name = "FX"
gain_db = -2.0
inserts = [ {{ kind = "eq", bands = [ {{ type = "peak", freq = 2000.0, gain_db = 6.0, q = 1.5 }}, {{ type = "lowshelf", freq = 150.0, gain_db = -4.0, q = 0.7 }} ] }} ]
[master_bus]
gain_db = -1.5
"#,
        ga = 20.0 * 0.7f64.log10(),
        gs = 20.0 * 0.5f64.log10(),
    );
    let hand = parse_session_toml(&hand, "hand.toml", &out).unwrap();
    let got = render(&imp.session);
    let want = render(&hand);
    for ch in 0..2 {
        let w: Vec<f64> = want[ch].iter().map(|x| f64::from(*x)).collect();
        let e = err_db(&got[ch], &w);
        assert!(e < -120.0, "channel {ch}: {e:.1} dB");
    }
}

#[test]
fn hold_and_linear_automation_become_steps_and_ramps() {
    let dir = tempfile::tempdir().unwrap();
    let structure = track_xml(
        "t1",
        "V",
        r#"<Volume unit="linear" value="1.0" id="vol"/><Pan unit="normalized" min="0" max="1" value="0.5" id="pan"/><Mute value="false" id="mute"/>"#,
    );
    let lanes = format!(
        r#"<Lanes track="t1">
          <Clips><Clip time="0" duration="16">{}</Clip></Clips>
          <Points unit="linear"><Target parameter="vol"/>
            <RealPoint time="0" value="1.0" interpolation="linear"/>
            <RealPoint time="4" value="0.5" interpolation="hold"/>
            <RealPoint time="8" value="1.0" interpolation="linear"/>
          </Points>
          <Points><Target parameter="pan"/>
            <RealPoint time="0" value="0" interpolation="hold"/>
            <RealPoint time="4" value="1" interpolation="linear"/>
            <RealPoint time="8" value="0.5" interpolation="linear"/>
          </Points>
          <Points><Target parameter="mute"/><BoolPoint time="2" value="true"/><BoolPoint time="6" value="false"/></Points>
        </Lanes>"#,
        audio_xml("v.wav", 8.0)
    );
    let p = write_project(
        dir.path(),
        "auto.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[],
    );
    let imp = read(&p);
    let t = &imp.session.tracks[0];
    assert_eq!(t.gain_db, 0.0, "volume automation replaces the fader");
    let g = t.automation.get(&LaneTarget::GainDb).unwrap();
    assert_eq!(g.first(), Some(&(0.0, 0.0)));
    let half = 20.0 * 0.5f64.log10();
    // The linear-amplitude ramp 1 → 0.5 over 0..2 s is subdivided (within 0.1 dB).
    assert!(g.len() > 4, "{g:?}");
    for w in g.windows(2).filter(|w| w[1].0 <= 2.0) {
        let tm = (w[0].0 + w[1].0) / 2.0;
        let truth = 20.0 * (1.0 - 0.5 * tm / 2.0f64).log10();
        assert!(((w[0].1 + w[1].1) / 2.0 - truth).abs() < 0.1);
    }
    // Hold at 2 s until 4 s, then a step to 0 dB.
    let tail: Vec<(f64, f64)> = g.iter().copied().filter(|p| p.0 >= 2.0).collect();
    assert_eq!(tail.len(), 3, "{tail:?}");
    close(tail[0].0, 2.0, "t");
    close(tail[0].1, half, "v");
    assert_eq!((tail[1].0, tail[2].0, tail[2].1), (4.0, 4.0, 0.0));
    close(tail[1].1, half, "held");
    let pan = t.automation.get(&LaneTarget::Pan).unwrap();
    assert_eq!(pan, &[(0.0, -1.0), (2.0, -1.0), (2.0, 1.0), (4.0, 0.0)]);
    let mute = t.automation.get(&LaneTarget::Mute).unwrap();
    assert_eq!(mute, &[(1.0, 1.0), (3.0, 1.0), (3.0, 0.0)]);
}

#[test]
fn plug_ins_are_warned_by_track_and_device_and_strict_makes_them_errors() {
    let dir = tempfile::tempdir().unwrap();
    let structure = track_xml(
        "t1",
        "Vox",
        r#"<Devices><Vst3Plugin deviceName="Pro-Q 3" deviceRole="audioFX" id="pl"><Parameters><RealParameter id="plp" unit="normalized" value="0.3"/></Parameters></Vst3Plugin></Devices>"#,
    );
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="0" duration="4">{}</Clip><Clip time="4" duration="4" enable="false" name="muted take">{}</Clip></Clips>
        <Points><Target parameter="plp"/><RealPoint time="0" value="0.1"/></Points></Lanes>"#,
        audio_xml("v.wav", 2.0),
        audio_xml("v.wav", 2.0)
    );
    let p = write_project(
        dir.path(),
        "pl.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[],
    );
    let imp = read(&p);
    assert!(
        imp.warnings
            .iter()
            .any(|w| w.contains("\"Vox\"") && w.contains("Pro-Q 3") && w.contains("Vst3Plugin")),
        "{:?}",
        imp.warnings
    );
    assert!(
        imp.warnings.iter().any(|w| w.contains("automation")),
        "{:?}",
        imp.warnings
    );
    assert_eq!(imp.session.tracks[0].clips.len(), 1);
    assert!(
        imp.mapped
            .iter()
            .any(|m| m.contains("muted take") && m.contains("disabled")),
        "{:?}",
        imp.mapped
    );
    let e = read_err(&p, true);
    assert!(
        e.contains("pl.dawproject") && e.contains("Pro-Q 3") && e.contains("--strict"),
        "{e}"
    );
    // Under --strict nothing is written.
    let out = dir.path().join("strict");
    let opts = ImportOptions {
        sample_rate: None,
        strict: true,
    };
    assert!(dawproject::import(&p, &out, &opts).is_err());
    assert!(!out.join("session.toml").exists());
}

/// The project.xml of the dawproject README (Bitwig Studio 5.0): an instrument track
/// with a CLAP plug-in, a stretched drum loop, the master.
const BITWIG: &str = r##"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Project version="1.0">
  <Application name="Bitwig Studio" version="5.0"/>
  <Transport>
    <Tempo max="666.000000" min="20.000000" unit="bpm" value="149.000000" id="id0" name="Tempo"/>
    <TimeSignature denominator="4" numerator="4" id="id1"/>
  </Transport>
  <Structure>
    <Track contentType="notes" loaded="true" id="id2" name="Bass" color="#a2eabf">
      <Channel audioChannels="2" destination="id15" role="regular" solo="false" id="id3">
        <Devices>
          <ClapPlugin deviceID="org.surge-synth-team.surge-xt" deviceName="Surge XT" deviceRole="instrument" loaded="true" id="id7" name="Surge XT">
            <Parameters/>
            <Enabled value="true" id="id8" name="On/Off"/>
            <State path="plugins/d19b1f6e-bbb6-42fe-a6c9-54b41d97a05d.clap-preset"/>
          </ClapPlugin>
        </Devices>
        <Mute value="false" id="id6" name="Mute"/>
        <Pan max="1.000000" min="0.000000" unit="normalized" value="0.500000" id="id5" name="Pan"/>
        <Volume max="2.000000" min="0.000000" unit="linear" value="0.659140" id="id4" name="Volume"/>
      </Channel>
    </Track>
    <Track contentType="audio" loaded="true" id="id9" name="Drumloop" color="#b53bba">
      <Channel audioChannels="2" destination="id15" role="regular" solo="false" id="id10">
        <Mute value="false" id="id13" name="Mute"/>
        <Pan max="1.000000" min="0.000000" unit="normalized" value="0.500000" id="id12" name="Pan"/>
        <Volume max="2.000000" min="0.000000" unit="linear" value="0.177125" id="id11" name="Volume"/>
      </Channel>
    </Track>
    <Track contentType="audio notes" loaded="true" id="id14" name="Master">
      <Channel audioChannels="2" role="master" solo="false" id="id15">
        <Mute value="false" id="id18" name="Mute"/>
        <Pan max="1.000000" min="0.000000" unit="normalized" value="0.500000" id="id17" name="Pan"/>
        <Volume max="2.000000" min="0.000000" unit="linear" value="1.000000" id="id16" name="Volume"/>
      </Channel>
    </Track>
  </Structure>
  <Arrangement id="id19">
    <Lanes timeUnit="beats" id="id20">
      <Lanes track="id2" id="id21">
        <Clips id="id22">
          <Clip time="0.0" duration="8.0" playStart="0.0">
            <Notes id="id23">
              <Note time="0.000000" duration="0.250000" channel="0" key="65" vel="0.787402" rel="0.787402"/>
              <Note time="1.000000" duration="0.250000" channel="0" key="65" vel="0.787402" rel="0.787402"/>
            </Notes>
          </Clip>
        </Clips>
      </Lanes>
      <Lanes track="id9" id="id24">
        <Clips id="id25">
          <Clip time="0.0" duration="8.00003433227539" playStart="0.0" loopStart="0.0" loopEnd="8.00003433227539" fadeTimeUnit="beats" fadeInTime="0.0" fadeOutTime="0.0" name="Drumfunk3 170bpm">
            <Clips id="id26">
              <Clip time="0.0" duration="8.00003433227539" contentTimeUnit="beats" playStart="0.0" fadeTimeUnit="beats" fadeInTime="0.0" fadeOutTime="0.0">
                <Warps contentTimeUnit="seconds" timeUnit="beats" id="id28">
                  <Audio algorithm="stretch" channels="2" duration="2.823541666666667" sampleRate="48000" id="id27">
                    <File path="audio/Drumfunk3 170bpm.wav"/>
                  </Audio>
                  <Warp time="0.0" contentTime="0.0"/>
                  <Warp time="8.00003433227539" contentTime="2.823541666666667"/>
                </Warps>
              </Clip>
            </Clips>
          </Clip>
        </Clips>
      </Lanes>
      <Lanes track="id14" id="id29">
        <Clips id="id30"/>
      </Lanes>
    </Lanes>
  </Arrangement>
  <Scenes/>
</Project>
"##;

#[test]
fn a_bitwig_export_warns_its_instrument_track_and_its_stretched_loop() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_project(dir.path(), "bitwig.dawproject", BITWIG, &[]);
    let imp = read(&p);
    let w = imp.warnings.join("\n");
    assert!(w.contains("\"Bass\"") && w.contains("Surge XT"), "{w}");
    assert!(w.contains("notes"), "{w}");
    assert!(
        w.contains("\"Drumloop\"") && w.contains("time-stretched"),
        "{w}"
    );
    assert!(imp.session.master_bus.is_some());

    // The same loop at its own tempo (8 beats = 2.8235 s at 170 bpm) is identity: it plays.
    let at170 = BITWIG.replace(
        r#"value="149.000000" id="id0""#,
        r#"value="170.0" id="id0""#,
    );
    let loop_wav = wav_bytes(RATE, &[noise(9, 135_530, 0.3), noise(10, 135_530, 0.3)]);
    let p = write_project(
        dir.path(),
        "bitwig170.dawproject",
        &at170,
        &[("audio/Drumfunk3 170bpm.wav", loop_wav)],
    );
    let out = dir.path().join("imp");
    let imp = dawproject::import(&p, &out, &ImportOptions::default()).unwrap();
    let drums = imp
        .session
        .tracks
        .iter()
        .find(|t| t.name == "Drumloop")
        .unwrap();
    close(
        drums.gain_db,
        20.0 * 0.177125f64.log10(),
        "bitwig linear volume",
    );
    assert_eq!(drums.clips.len(), 1);
    close(
        drums.clips[0].length_s.unwrap(),
        8.00003433227539 * 60.0 / 170.0,
        "loop length",
    );
    assert!(
        !imp.warnings.iter().any(|w| w.contains("Drumloop")),
        "{:?}",
        imp.warnings
    );
}

#[test]
fn rate_is_the_highest_of_the_audio_files_unless_given() {
    let dir = tempfile::tempdir().unwrap();
    let structure = format!("{}\n{}", track_xml("t1", "A", ""), track_xml("t2", "B", ""));
    let lanes = format!(
        r#"<Lanes track="t1"><Clips><Clip time="0" duration="2">{}</Clip></Clips></Lanes>
           <Lanes track="t2"><Clips><Clip time="0" duration="2">{}</Clip></Clips></Lanes>"#,
        audio_xml("a.wav", 1.0),
        audio_xml("b.wav", 1.0)
    );
    let p = write_project(
        dir.path(),
        "rates.dawproject",
        &xml(Some(120.0), &structure, &lanes, ""),
        &[
            ("a.wav", wav_bytes(44_100, &[vec![0.1; 44_100]])),
            ("b.wav", wav_bytes(96_000, &[vec![0.1; 96_000]])),
        ],
    );
    let imp = dawproject::import(&p, &dir.path().join("a"), &ImportOptions::default()).unwrap();
    assert_eq!(imp.session.sample_rate, 96_000);
    let opts = ImportOptions {
        sample_rate: Some(44_100),
        strict: false,
    };
    let imp = dawproject::import(&p, &dir.path().join("b"), &opts).unwrap();
    assert_eq!(imp.session.sample_rate, 44_100);
}

#[test]
fn bad_projects_answer_one_line_naming_file_and_element() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = |lanes: &str| xml(Some(120.0), &track_xml("t1", "A", ""), lanes, "");
    let clip = |attrs: &str, path: &str| {
        format!(
            r#"<Lanes track="t1"><Clips><Clip {attrs}>{}</Clip></Clips></Lanes>"#,
            audio_xml(path, 1.0)
        )
    };

    std::fs::write(d.join("text.dawproject"), "hello").unwrap();
    let e = read_err(&d.join("text.dawproject"), false);
    assert!(
        e.contains("text.dawproject") && e.contains("not a DAWproject"),
        "{e}"
    );

    let f = std::fs::File::create(d.join("empty.dawproject")).unwrap();
    let mut z = zip::ZipWriter::new(f);
    z.start_file("other.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"x").unwrap();
    z.finish().unwrap();
    let e = read_err(&d.join("empty.dawproject"), false);
    assert!(e.contains("no project.xml"), "{e}");

    let full = one(&clip(r#"time="0" duration="2""#, "a.wav"));
    let p = write_project(d, "trunc.dawproject", &full[..full.len() / 2], &[]);
    let e = read_err(&p, false);
    assert!(e.contains("trunc.dawproject: project.xml: line"), "{e}");

    let p = write_project(
        d,
        "id.dawproject",
        &one("").replace(r#"destination="m""#, r#"destination="nope""#),
        &[],
    );
    let e = read_err(&p, false);
    assert!(
        e.contains("<Channel id=\"t1c\">") && e.contains("\"nope\""),
        "{e}"
    );

    let p = write_project(
        d,
        "nan.dawproject",
        &one(&clip(r#"time="NaN" duration="2""#, "a.wav")),
        &[],
    );
    let e = read_err(&p, false);
    assert!(e.contains("<Clip>") && e.contains("time \"NaN\""), "{e}");

    let p = write_project(
        d,
        "neg.dawproject",
        &one(&clip(r#"time="0" duration="-2""#, "a.wav")),
        &[],
    );
    assert!(read_err(&p, false).contains("negative"));

    let p = write_project(
        d,
        "far.dawproject",
        &one(&clip(r#"time="1e9" duration="2""#, "a.wav")),
        &[],
    );
    assert!(read_err(&p, false).contains("24 h"));

    let p = write_project(
        d,
        "escape.dawproject",
        &one(&clip(r#"time="0" duration="2""#, "../../etc/passwd")),
        &[],
    );
    let e = read_err(&p, false);
    assert!(
        e.contains("<File>") && e.contains("leaves the archive"),
        "{e}"
    );

    let p = write_project(
        d,
        "missing.dawproject",
        &one(&clip(r#"time="0" duration="2""#, "gone.wav")),
        &[],
    );
    let e = import_err(&p, &d.join("out-missing"));
    assert!(
        e.contains("missing.dawproject")
            && e.contains("gone.wav")
            && e.contains("not in the archive"),
        "{e}"
    );

    let p = write_project(
        d,
        "ref.dawproject",
        &one(
            r#"<Lanes track="t1"><Clips><Clip time="0" duration="2" reference="zz"/></Clips></Lanes>"#,
        ),
        &[],
    );
    let e = read_err(&p, false);
    assert!(e.contains("reference \"zz\" names no element"), "{e}");

    let p = write_project(d, "root.dawproject", "<NotAProject/>", &[]);
    assert!(read_err(&p, false).contains("not <Project>"));
}

#[test]
fn unknown_elements_and_any_order_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // Channel children out of schema order, an unknown element, Structure after Arrangement.
    let x = format!(
        r#"<Project version="1.0"><Arrangement><Lanes timeUnit="seconds"><Lanes track="t1"><Clips><Clip time="1" duration="1">{}</Clip></Clips></Lanes><Shiny/></Lanes></Arrangement>
        <Structure><Track id="t1" name="A"><Channel id="c1" role="regular"><Volume unit="decibel" value="-1"/><Futuristic a="b"/><Mute value="false"/></Channel></Track></Structure>
        <Application name="x" version="1"/></Project>"#,
        audio_xml("a.wav", 1.0)
    );
    let p = write_project(dir.path(), "order.dawproject", &x, &[]);
    let imp = read(&p);
    let t = &imp.session.tracks[0];
    assert_eq!(t.gain_db, -1.0);
    assert_eq!(t.clips[0].at_s, 1.0);
    assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
}

#[test]
fn the_toml_writer_round_trips_every_key() {
    let text = r#"[session]
name = "Round \"trip\""
sample_rate = 44100
tail_s = 3.5
tempo_bpm = 97.25
[[track]]
name = "Kick"
file = "stems/kick.wav"
offset_s = 0.1
gain_db = -3.0
pan = 0.3
solo = true
invert = true
output = "Drums"
eq = [ { type = "highpass", freq = 30.0 }, { type = "peak", freq = 3000.0, gain_db = 2.0, q = 1.0 } ]
compressor = { threshold_db = -18.0, ratio = 4.0, detector = "rms", sidechain = "Vox" }
sends = [ { bus = "Hall", level_db = -12.0, pre_fader = true } ]
automation = { gain_db = [[0.0, 0.0], [30.0, -6.0]], "send.Hall" = [[0.0, -30.0]], "inserts.0.bands.0.gain_db" = [[1.0, 2.0]] }
inserts = [ { kind = "eq", bands = [ { type = "peak", freq = 100.0, gain_db = 1.0 } ] },
  { kind = "gate", threshold_db = -50.0 }, { kind = "saturation", drive_db = 6.0 },
  { kind = "delay", time_beats = 0.5, feedback = 0.3, ping_pong = true },
  { kind = "reverb", ir = "irs/room.wav", predelay_ms = 3.0 } ]
tags = ["drums", "x\ty"]
[[track]]
name = "Vox"
channels = 1
clips = [ { file = "v.wav", at_s = 0.1, start_s = 0.2, length_s = 0.30000000000000004, gain_db = -1e-7, fade_in_s = 0.01, fade_out_s = 0.5 }, { file = "v2.wav" } ]
[[bus]]
name = "Drums"
pan = -0.25
mute = true
inserts = [ { kind = "compressor", threshold_db = -12.0, ratio = 2.0 } ]
sends = [ { bus = "Hall" } ]
automation = { pan = [[0.0, -1.0], [8.0, 1.0]], mute = [[0.0, 0.0], [1.0, 1.0]] }
[[bus]]
name = "Hall"
reverb = { ir = "irs/hall.wav", wet_db = -3.0, dry = true }
[master_bus]
gain_db = -1.0
inserts = [ { kind = "eq", bands = [ { type = "lowshelf", freq = 100.0 } ] } ]
automation = { gain_db = [[0.0, -150.0], [1.0, 0.0]] }
[master]
eq = [ { type = "lowshelf", freq = 100.0, gain_db = 1.0, q = 0.707 } ]
multiband = { crossovers_hz = [120.0, 1000.0], bands = [ { threshold_db = -20.0, ratio = 2.0 }, { threshold_db = -18.0, ratio = 2.0 }, { threshold_db = -16.0, ratio = 3.0 } ] }
width = 1.1
limiter = { ceiling_dbtp = -1.0, release_ms = 50.0, lookahead_ms = 5.0 }
[[deliverable]]
name = "streaming"
target_lufs = -14.0
bit_depth = 16
format = "flac"
variant = "instrumental"
noise_shaping = true
[[deliverable]]
preset = "cd"
"#;
    let base = Path::new("/base");
    let s = parse_session_toml(text, "rt.toml", base).unwrap();
    let written = session_to_toml(&s);
    let back = parse_session_toml(&written, "rt.toml", base).unwrap();
    assert_eq!(back, s, "{written}");
    assert_eq!(session_to_toml(&back), written);
}
