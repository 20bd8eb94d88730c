//! The 2026-12 keys (CONTRACT.md, "Additions, 2026-12"): a session using every new key
//! parses to the expected model, and each bad input is one line naming the file, the
//! strip, `inserts[i]` and the key.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use bounce_server::session::*;

const FULL: &str = r#"[session]
name = "Every key"
sample_rate = 48000
tempo_bpm = 120.0

[[track]]
name = "Kick"
file = "kick.wav"
offset_s = 1.5
channels = 1
output = "Drum Bus"

[[track]]
name = "Vox"
channels = 2
clips = [
  { file = "takes/vox3.wav", at_s = 12.0, start_s = 0.5, length_s = 20.0, gain_db = -2.0, fade_in_s = 0.01, fade_out_s = 0.5 },
  { file = "takes/vox1.wav", at_s = 40 },
]
compressor = { threshold_db = -20.0, ratio = 2.0, sidechain = "Kick" }
inserts = [
  { kind = "eq", bands = [ { type = "highpass", freq = 80.0 }, { type = "peak", freq = 3000.0, gain_db = 2.0, q = 1.0 } ] },
  { kind = "compressor", threshold_db = -18.0, ratio = 3.0, attack_ms = 5.0, release_ms = 100.0, sidechain = "Kick" },
  { kind = "gate", threshold_db = -50.0, range_db = -80.0, attack_ms = 1.0, hold_ms = 20.0, release_ms = 100.0 },
  { kind = "saturation", drive_db = 6.0, output_db = 0.0, mix = 1.0 },
  { kind = "delay", time_ms = 375.0, feedback = 0.35, mix = 0.25, ping_pong = false },
  { kind = "delay", time_beats = 0.5, ping_pong = true },
  { kind = "reverb", ir = "irs/room.wav", predelay_ms = 5.0, wet_db = -6.0, dry = true },
]
sends = [ { bus = "Hall", level_db = -120.0, pre_fader = true } ]
automation = { gain_db = [[0.0, 0.0], [30.0, -6.0]],
               pan = [[0.0, -1.0], [8.0, 1.0]],
               mute = [[0.0, 0.0], [16.0, 1.0], [24.0, 0.0]],
               "send.Hall" = [[0.0, -30.0], [20.0, -6.0]],
               "inserts.4.mix" = [[0.0, 0.0], [10.0, 0.5]],
               "inserts.0.bands.1.gain_db" = [[0.0, 0.0], [1.0, 3.0]],
               "inserts.0.bands.1.freq" = [[0.0, 1000.0]],
               "inserts.1.threshold_db" = [[0.0, -20.0]],
               "inserts.2.threshold_db" = [[0.0, -40.0]],
               "inserts.3.drive_db" = [[0.0, 12.0]] }

[[bus]]
name = "Drum Bus"
pan = 0.25
mute = true
inserts = [ { kind = "compressor", threshold_db = -12.0, ratio = 2.0, attack_ms = 30.0, release_ms = 200.0, sidechain = "Vox" } ]
sends = [ { bus = "Hall", level_db = -10.0 } ]
automation = { gain_db = [[0.0, -3.0]], pan = [[0.0, 0.0]], mute = [[0.0, 0.0]], "send.Hall" = [[0.0, -10.0]], "inserts.0.ratio" = [[0.0, 4.0]] }

[[bus]]
name = "Hall"
reverb = { ir = "irs/hall.wav" }

[master_bus]
gain_db = -1.0
pan = 0.1
mute = false
inserts = [ { kind = "compressor", threshold_db = -6.0, ratio = 1.5 } ]
automation = { gain_db = [[0.0, 0.0], [60.0, -150.0]], "inserts.0.makeup_db" = [[0.0, 1.0]] }
"#;

fn check(text: &str) -> bounce_server::Result<Session> {
    let s = parse_session_toml(text, "t.toml", Path::new("base"))?;
    validate(&s)?;
    Ok(s)
}

fn stem(name: &str) -> StemRef {
    StemRef {
        name: name.into(),
        path: Some(Path::new("base").join(name)),
        blake3: None,
    }
}

#[test]
fn every_new_key_parses_to_the_model() {
    let s = check(FULL).unwrap();
    assert_eq!(s.tempo_bpm, Some(120.0));

    let kick = &s.tracks[0];
    assert!(kick.from_file);
    assert_eq!(kick.clips, vec![Clip::whole(stem("kick.wav"), 1.5)]);
    assert_eq!(kick.channels, Some(1));
    assert_eq!(kick.output, Output::Bus("Drum Bus".into()));

    let vox = &s.tracks[1];
    assert!(!vox.from_file);
    assert_eq!(vox.file(), None);
    assert_eq!(vox.channels, Some(2));
    assert_eq!(
        vox.clips,
        vec![
            Clip {
                file: stem("takes/vox3.wav"),
                at_s: 12.0,
                start_s: 0.5,
                length_s: Some(20.0),
                gain_db: -2.0,
                fade_in_s: 0.01,
                fade_out_s: 0.5,
            },
            Clip::whole(stem("takes/vox1.wav"), 40.0),
        ]
    );
    assert_eq!(
        vox.compressor.as_ref().unwrap().sidechain.as_deref(),
        Some("Kick")
    );
    let kinds: Vec<&str> = vox.inserts.iter().map(Insert::kind).collect();
    assert_eq!(
        kinds,
        [
            "eq",
            "compressor",
            "gate",
            "saturation",
            "delay",
            "delay",
            "reverb"
        ]
    );
    assert_eq!(
        vox.inserts[0],
        Insert::Eq(EqInsert {
            bands: vec![
                EqBand {
                    kind: EqType::Highpass,
                    freq: 80.0,
                    q: 0.707,
                    gain_db: 0.0
                },
                EqBand {
                    kind: EqType::Peak,
                    freq: 3000.0,
                    q: 1.0,
                    gain_db: 2.0
                },
            ]
        })
    );
    assert_eq!(
        vox.inserts[1],
        Insert::Compressor(Compressor {
            threshold_db: -18.0,
            ratio: 3.0,
            attack_ms: 5.0,
            release_ms: 100.0,
            knee_db: 0.0,
            makeup_db: 0.0,
            detector: Detector::Peak,
            sidechain: Some("Kick".into()),
        })
    );
    assert_eq!(vox.inserts[1].key(), Some("Kick"));
    assert_eq!(
        vox.inserts[2],
        Insert::Gate(Gate {
            threshold_db: -50.0,
            range_db: -80.0,
            attack_ms: 1.0,
            hold_ms: 20.0,
            release_ms: 100.0,
        })
    );
    assert_eq!(
        vox.inserts[3],
        Insert::Saturation(Saturation {
            drive_db: 6.0,
            output_db: 0.0,
            mix: 1.0
        })
    );
    assert_eq!(
        vox.inserts[4],
        Insert::Delay(DelayFx {
            time: DelayTime::Ms(375.0),
            feedback: 0.35,
            mix: 0.25,
            ping_pong: false
        })
    );
    assert_eq!(
        vox.inserts[5],
        Insert::Delay(DelayFx {
            time: DelayTime::Beats(0.5),
            feedback: 0.0,
            mix: 0.5,
            ping_pong: true
        })
    );
    assert_eq!(
        vox.inserts[6],
        Insert::Reverb(Reverb {
            ir: stem("irs/room.wav"),
            predelay_ms: 5.0,
            wet_db: -6.0,
            dry: true
        })
    );
    assert_eq!(
        vox.sends,
        vec![Send {
            bus: "Hall".into(),
            level_db: -120.0,
            pre_fader: true
        }]
    );
    let a = &vox.automation;
    assert_eq!(a.lanes.len(), 10);
    assert_eq!(a.gain_db(), &[(0.0, 0.0), (30.0, -6.0)]);
    assert_eq!(
        a.get(&LaneTarget::Pan),
        Some(&[(0.0, -1.0), (8.0, 1.0)][..])
    );
    assert_eq!(
        a.get(&LaneTarget::Mute),
        Some(&[(0.0, 0.0), (16.0, 1.0), (24.0, 0.0)][..])
    );
    assert_eq!(
        a.get(&LaneTarget::Send("Hall".into())),
        Some(&[(0.0, -30.0), (20.0, -6.0)][..])
    );
    assert_eq!(
        a.get(&LaneTarget::Insert {
            index: 4,
            param: "mix".into()
        }),
        Some(&[(0.0, 0.0), (10.0, 0.5)][..])
    );
    let eq_lanes: Vec<&str> = a.of_insert(0).map(|(p, _)| p).collect();
    assert_eq!(eq_lanes.len(), 2);
    assert!(eq_lanes.contains(&"bands.1.gain_db") && eq_lanes.contains(&"bands.1.freq"));

    let drums = &s.buses[0];
    assert_eq!((drums.pan, drums.mute), (0.25, true));
    assert_eq!(drums.output, Output::Master);
    assert_eq!(drums.inserts.len(), 1);
    assert_eq!(drums.inserts[0].key(), Some("Vox"));
    assert_eq!(
        drums.sends,
        vec![Send {
            bus: "Hall".into(),
            level_db: -10.0,
            pre_fader: false
        }]
    );
    assert_eq!(drums.automation.lanes.len(), 5);
    assert_eq!(
        drums.automation.get(&LaneTarget::Insert {
            index: 0,
            param: "ratio".into()
        }),
        Some(&[(0.0, 4.0)][..])
    );
    let hall = &s.buses[1];
    assert_eq!((hall.pan, hall.mute), (0.0, false));
    assert!(hall.inserts.is_empty() && hall.sends.is_empty());

    let m = s.master_bus.as_ref().unwrap();
    assert_eq!((m.gain_db, m.pan, m.mute), (-1.0, 0.1, false));
    assert_eq!(
        m.inserts,
        vec![Insert::Compressor(Compressor {
            threshold_db: -6.0,
            ratio: 1.5,
            attack_ms: 10.0,
            release_ms: 100.0,
            knee_db: 0.0,
            makeup_db: 0.0,
            detector: Detector::Peak,
            sidechain: None,
        })]
    );
    assert_eq!(m.automation.gain_db(), &[(0.0, 0.0), (60.0, -150.0)]);

    // Every file the session names, reverb inserts included, resolves like the rest.
    let names: Vec<&str> = stems(&s).iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kick.wav",
            "takes/vox3.wav",
            "takes/vox1.wav",
            "irs/room.wav",
            "irs/hall.wav"
        ]
    );
    ValidSession::new(s, &Limits::default()).unwrap();
}

#[test]
fn unquoted_dotted_lane_keys_are_the_same_lanes() {
    let text = FULL.replacen(
        "\"inserts.3.drive_db\" = [[0.0, 12.0]]",
        "inserts.3.drive_db = [[0.0, 12.0]]",
        1,
    );
    let s = check(&text).unwrap();
    assert_eq!(
        s.tracks[1].automation.get(&LaneTarget::Insert {
            index: 3,
            param: "drive_db".into()
        }),
        Some(&[(0.0, 12.0)][..])
    );
    // The same lane written both ways is one lane written twice.
    let twice = FULL.replacen(
        "\"inserts.3.drive_db\" = [[0.0, 12.0]]",
        "\"inserts.3.drive_db\" = [[0.0, 12.0]], inserts.3.drive_db = [[1.0, 12.0]]",
        1,
    );
    match check(&twice) {
        Ok(_) => panic!("accepted a lane written twice"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("inserts.3.drive_db"), "{e}");
        }
    }
    bad_text(
        &FULL.replacen(
            "\"inserts.2.threshold_db\"",
            "\"inserts.0.bands.01.gain_db\"",
            1,
        ),
        &["the eq has no automatable parameter \"bands.01.gain_db\""],
    );
}

/// A small session: track "A" with `track` as its body, bus "Hall" then `tail`.
fn doc(track: &str, tail: &str) -> String {
    format!(
        "[session]\nsample_rate = 48000\n\n[[track]]\nname = \"A\"\n{track}\n\n[[bus]]\nname = \"Hall\"\n{tail}\n"
    )
}

const F: &str = "file = \"a.wav\"";

#[track_caller]
fn bad_text(text: &str, needles: &[&str]) {
    let msg = match check(text) {
        Ok(_) => panic!("accepted, expected an error with {needles:?}:\n{text}"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.starts_with("t.toml: ") || msg.starts_with("limit exceeded: t.toml: "),
        "no file name: {msg}"
    );
    assert!(!msg.contains('\n'), "not one line: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
}

#[track_caller]
fn bad(track: &str, tail: &str, needles: &[&str]) {
    bad_text(&doc(track, tail), needles);
}

#[track_caller]
fn good(track: &str, tail: &str) -> Session {
    let text = doc(track, tail);
    match check(&text) {
        Ok(s) => s,
        Err(e) => panic!("rejected: {e}\n{text}"),
    }
}

#[test]
fn full_session_edits_are_refused() {
    let bad_full = |from: &str, to: &str, needles: &[&str]| {
        assert!(FULL.contains(from), "test bug: {from:?}");
        bad_text(&FULL.replacen(from, to, 1), needles);
    };
    bad_full(
        "tempo_bpm = 120.0",
        "tempo_bpm = 10",
        &["t.toml: session.tempo_bpm: 10 is outside [20, 999] bpm"],
    );
    bad_full(
        "tempo_bpm = 120.0\n",
        "",
        &[
            "track[1] \"Vox\".inserts[5].time_beats",
            "a time in beats needs session.tempo_bpm",
        ],
    );
    bad_full(
        "sidechain = \"Vox\"",
        "sidechain = \"Drum Bus\"",
        &[
            "bus[0] \"Drum Bus\".inserts[0].sidechain",
            "cannot be its own sidechain key",
        ],
    );
    bad_full(
        "\"inserts.4.mix\" = [[0.0, 0.0], [10.0, 0.5]]",
        "\"inserts.7.mix\" = [[0.0, 0.0], [10.0, 0.5]]",
        &["t.toml: track[1] \"Vox\".automation.inserts.7.mix: track[1] \"Vox\" has no inserts[7]"],
    );
    bad_full(
        "\"inserts.2.threshold_db\"",
        "\"inserts.2.mix\"",
        &[
            "track[1] \"Vox\".automation.inserts.2.mix: the gate has no automatable parameter \"mix\"",
        ],
    );
    bad_full(
        "\"inserts.0.bands.1.freq\" = [[0.0, 1000.0]]",
        "\"inserts.0.bands.1.freq\" = [[0.0, 30000.0]]",
        &["track[1] \"Vox\".automation.inserts.0.bands.1.freq[0][1]: 30000 is outside"],
    );
    bad_full(
        "\"inserts.0.bands.1.gain_db\"",
        "\"inserts.0.bands.2.gain_db\"",
        &[
            "automation.inserts.0.bands.2.gain_db: the eq has no automatable parameter \"bands.2.gain_db\"",
        ],
    );
    bad_full(
        "\"inserts.4.mix\" = [[0.0, 0.0], [10.0, 0.5]]",
        "\"inserts.4.mix\" = [[0.0, 0.0], [10.0, 1.5]]",
        &["track[1] \"Vox\".automation.inserts.4.mix[1][1]: 1.5 is outside [0, 1]"],
    );
    bad_full(
        "\"inserts.0.ratio\" = [[0.0, 4.0]]",
        "\"inserts.0.ratio\" = [[0.0, 0.5]]",
        &["bus[0] \"Drum Bus\".automation.inserts.0.ratio[0][1]: 0.5 is outside [1, 1000]"],
    );
    bad_full(
        "\"inserts.0.makeup_db\" = [[0.0, 1.0]]",
        "\"send.Hall\" = [[0.0, 1.0]]",
        &["master_bus.automation.send.Hall: master_bus has no send to \"Hall\""],
    );
    bad_full(
        "[master_bus]\n",
        "[master_bus]\nwidth = 1\n",
        &["unknown key \"width\" in [master_bus]"],
    );
    bad_full(
        "gain_db = -1.0\npan = 0.1",
        "gain_db = -1.0\npan = 1.1",
        &["master_bus.pan: 1.1 is outside [-1, 1]"],
    );
    bad_full(
        "[60.0, -150.0]",
        "[60.0, -151.0]",
        &["master_bus.automation.gain_db[1][1]: -151 is outside [-150, 60] dB"],
    );
    bad_full(
        "channels = 1",
        "channels = 3",
        &["t.toml: line 10: track[0] \"Kick\".channels: 3 is not 1 or 2"],
    );
    bad_full(
        "channels = 1",
        "channels = 0",
        &["track[0] \"Kick\".channels: 0 is not 1 or 2"],
    );
    bad_full(
        "offset_s = 1.5",
        "offset_s = 1e300",
        &["limit exceeded: t.toml: track[0] \"Kick\".offset_s: 1e300 s is past the longest mix"],
    );
    bad_full(
        "offset_s = 1.5",
        "offset_s = -1",
        &["track[0] \"Kick\".offset_s: -1 s is below 0 s"],
    );
}

#[test]
fn clips_shape_and_ranges() {
    bad(
        "file = \"a.wav\"\nclips = [ { file = \"b.wav\" } ]",
        "",
        &["track[0] \"A\".clips: a track has file or clips, never both"],
    );
    bad(
        "offset_s = 1.0\nclips = [ { file = \"b.wav\" } ]",
        "",
        &["track[0] \"A\".offset_s: offset_s goes with file; with clips, give each clip its at_s"],
    );
    bad(
        "clips = []",
        "",
        &["track[0] \"A\".clips: the list is empty"],
    );
    bad("", "", &["track[0] \"A\".file: required field is missing"]);
    bad(
        "clips = [ { at_s = 1.0 } ]",
        "",
        &["track[0] \"A\".clips[0].file: required field is missing"],
    );
    bad(
        "clips = [ { file = \"b.wav\", at = 1.0 } ]",
        "",
        &["unknown key \"at\" in track[0] \"A\".clips[0] (did you mean \"at_s\"?)"],
    );
    bad(
        "clips = [ { file = \"\" } ]",
        "",
        &["track[0] \"A\".clips[0].file: must not be empty"],
    );
    let clip =
        |kv: &str| format!("clips = [ {{ file = \"b.wav\" }}, {{ file = \"b.wav\", {kv} }} ]");
    for (kv, needle) in [
        (
            "at_s = -1",
            "track[0] \"A\".clips[1].at_s: -1 s is below 0 s",
        ),
        (
            "at_s = nan",
            "track[0] \"A\".clips[1].at_s: NaN is not a finite number",
        ),
        (
            "start_s = -0.5",
            "track[0] \"A\".clips[1].start_s: -0.5 s is below 0 s",
        ),
        (
            "start_s = inf",
            "track[0] \"A\".clips[1].start_s: inf is not a finite number",
        ),
        (
            "length_s = 0",
            "track[0] \"A\".clips[1].length_s: 0 s is not above 0 s",
        ),
        (
            "length_s = -2",
            "track[0] \"A\".clips[1].length_s: -2 s is not above 0 s",
        ),
        (
            "gain_db = 61",
            "track[0] \"A\".clips[1].gain_db: 61 is outside [-60, 60] dB",
        ),
        (
            "fade_in_s = -0.1",
            "track[0] \"A\".clips[1].fade_in_s: -0.1 s is below 0 s",
        ),
        (
            "fade_out_s = nan",
            "track[0] \"A\".clips[1].fade_out_s: NaN is not a finite number",
        ),
        (
            "at_s = 1e300",
            "limit exceeded: t.toml: track[0] \"A\".clips[1].at_s",
        ),
        (
            "length_s = 1e300",
            "limit exceeded: t.toml: track[0] \"A\".clips[1].length_s",
        ),
    ] {
        bad(&clip(kv), "", &[needle]);
    }
    let s = good(
        &clip("at_s = 3, length_s = 1, fade_in_s = 0, gain_db = -60"),
        "",
    );
    assert_eq!(s.tracks[0].clips.len(), 2);
}

#[test]
fn insert_kinds_and_keys() {
    let ins = |body: &str| format!("{F}\ninserts = [ {body} ]");
    bad(
        &ins("{ kind = \"Delay\", time_ms = 10 }"),
        "",
        &[
            "track[0] \"A\".inserts[0].kind: \"Delay\" is not an insert kind (eq, compressor, gate, saturation, delay, reverb, width)",
        ],
    );
    bad(
        &ins("{ kind = \"gate\", threshold_db = -50 }, { threshold_db = -50 }"),
        "",
        &["track[0] \"A\".inserts[1].kind: required field is missing"],
    );
    bad(
        &ins("{ kind = 3 }"),
        "",
        &["track[0] \"A\".inserts[0].kind: expected a string"],
    );
    bad(
        &ins("{ kind = \"gate\", threshold_db = -50, hold = 1 }"),
        "",
        &["unknown key \"hold\" in track[0] \"A\".inserts[0] (did you mean \"hold_ms\"?)"],
    );
    bad(
        &ins("{ kind = \"saturation\", drive = 1 }"),
        "",
        &["unknown key \"drive\" in track[0] \"A\".inserts[0]"],
    );
    bad(
        &ins("{ kind = \"compressor\", threshold_db = -10, ratio = 2, side_chain = \"A\" }"),
        "",
        &["unknown key \"side_chain\" in track[0] \"A\".inserts[0] (did you mean \"sidechain\"?)"],
    );
    bad(
        &ins("{ kind = \"eq\", bands = [ { type = \"peak\", frq = 1 } ] }"),
        "",
        &["unknown key \"frq\" in track[0] \"A\".inserts[0].bands[0]"],
    );
    bad(
        &ins("{ kind = \"reverb\", ir = \"r.wav\", wet = 1 }"),
        "",
        &["unknown key \"wet\" in track[0] \"A\".inserts[0]"],
    );
    bad(
        &ins("{ kind = \"gate\" }"),
        "",
        &["track[0] \"A\".inserts[0].threshold_db: required field is missing"],
    );
    bad(
        &ins("{ kind = \"delay\" }"),
        "",
        &["track[0] \"A\".inserts[0].time_ms: required field is missing"],
    );
    bad(
        &ins("{ kind = \"delay\", time_ms = 10, time_beats = 1 }"),
        "",
        &["track[0] \"A\".inserts[0].time_ms: give time_ms or time_beats, not both"],
    );
    // The same kinds on buses and the master bus name their strip.
    bad(
        F,
        "inserts = [ { kind = \"gate\", threshold_db = -50, range = 1 } ]",
        &["unknown key \"range\" in bus[0] \"Hall\".inserts[0]"],
    );
    bad(
        F,
        "[master_bus]\ninserts = [ { kind = \"limiter\" } ]",
        &["master_bus.inserts[0].kind: \"limiter\" is not an insert kind"],
    );
}

#[test]
fn insert_ranges() {
    let ins = |body: &str| {
        format!("{F}\ninserts = [ {{ kind = \"gate\", threshold_db = -50 }}, {body} ]")
    };
    for (body, needle) in [
        (
            "{ kind = \"compressor\", threshold_db = 6, ratio = 2 }",
            "track[0] \"A\".inserts[1].threshold_db: 6 is outside [-120, 0] dB",
        ),
        (
            "{ kind = \"compressor\", threshold_db = -130, ratio = 2 }",
            "track[0] \"A\".inserts[1].threshold_db: -130 is outside [-120, 0] dB",
        ),
        (
            "{ kind = \"compressor\", threshold_db = -10, ratio = 0.5 }",
            "track[0] \"A\".inserts[1].ratio: 0.5 is below 1",
        ),
        (
            "{ kind = \"compressor\", threshold_db = -10, ratio = 2, knee_db = 49 }",
            "track[0] \"A\".inserts[1].knee_db: 49 is outside [0, 48] dB",
        ),
        (
            "{ kind = \"compressor\", threshold_db = -10, ratio = 2, attack_ms = nan }",
            "track[0] \"A\".inserts[1].attack_ms: NaN is not a finite number",
        ),
        (
            "{ kind = \"gate\", threshold_db = 1 }",
            "track[0] \"A\".inserts[1].threshold_db: 1 is outside [-120, 0] dB",
        ),
        (
            "{ kind = \"gate\", threshold_db = -50, range_db = -121 }",
            "track[0] \"A\".inserts[1].range_db: -121 is outside [-120, 0] dB",
        ),
        (
            "{ kind = \"gate\", threshold_db = -50, hold_ms = -1 }",
            "track[0] \"A\".inserts[1].hold_ms: -1 is outside [0, 10000] ms",
        ),
        (
            "{ kind = \"saturation\", drive_db = 49 }",
            "track[0] \"A\".inserts[1].drive_db: 49 is outside [0, 48] dB",
        ),
        (
            "{ kind = \"saturation\", mix = 1.5 }",
            "track[0] \"A\".inserts[1].mix: 1.5 is outside [0, 1]",
        ),
        (
            "{ kind = \"delay\", time_ms = 100, feedback = 1.0 }",
            "track[0] \"A\".inserts[1].feedback: 1 is outside [0, 0.99]",
        ),
        (
            "{ kind = \"delay\", time_ms = 100, mix = -0.1 }",
            "track[0] \"A\".inserts[1].mix: -0.1 is outside [0, 1]",
        ),
        (
            "{ kind = \"delay\", time_ms = 0.5 }",
            "track[0] \"A\".inserts[1].time_ms: 0.5 gives 0.500 ms, outside the delay's [1, 10000] ms",
        ),
        (
            "{ kind = \"delay\", time_ms = 10001 }",
            "track[0] \"A\".inserts[1].time_ms: 10001 gives",
        ),
        (
            "{ kind = \"delay\", time_ms = -5 }",
            "track[0] \"A\".inserts[1].time_ms: -5 is not a positive number",
        ),
        (
            "{ kind = \"delay\", time_beats = 1 }",
            "track[0] \"A\".inserts[1].time_beats: a time in beats needs session.tempo_bpm",
        ),
        (
            "{ kind = \"eq\", bands = [ { type = \"peak\", freq = 30000 } ] }",
            "track[0] \"A\".inserts[1].bands[0].freq: 30000 is outside (0, 24000) Hz",
        ),
        (
            "{ kind = \"eq\", bands = [ { type = \"peak\", freq = 100, gain_db = 70 } ] }",
            "track[0] \"A\".inserts[1].bands[0].gain_db: 70 is outside [-60, 60] dB",
        ),
        (
            "{ kind = \"reverb\", ir = \"r.wav\", wet_db = 70 }",
            "track[0] \"A\".inserts[1].wet_db: 70 is outside [-60, 60] dB",
        ),
        (
            "{ kind = \"reverb\", ir = \"\" }",
            "track[0] \"A\".inserts[1].ir: must not be empty",
        ),
        (
            "{ kind = \"reverb\" }",
            "track[0] \"A\".inserts[1].ir: required field is missing",
        ),
    ] {
        bad(&ins(body), "", &[needle]);
    }
    // Beats at a tempo: 2 beats at 20 bpm is 6 s (inside), 0.001 beats at 999 bpm is
    // 0.06 ms (outside).
    let tempo = |bpm: &str, beats: &str| {
        doc(
            &format!("{F}\ninserts = [ {{ kind = \"delay\", time_beats = {beats} }} ]"),
            "",
        )
        .replacen(
            "sample_rate = 48000",
            &format!("sample_rate = 48000\ntempo_bpm = {bpm}"),
            1,
        )
    };
    check(&tempo("20", "2")).unwrap();
    bad_text(
        &tempo("999", "0.001"),
        &["track[0] \"A\".inserts[0].time_beats: 0.001 gives 0.06"],
    );
    // The first contract's compressor key keeps its own ranges: threshold up to +24.
    good(
        &format!("{F}\ncompressor = {{ threshold_db = 10, ratio = 2 }}"),
        "",
    );
    bad(
        &format!("{F}\ncompressor = {{ threshold_db = 30, ratio = 2 }}"),
        "",
        &["track[0] \"A\".compressor.threshold_db: 30 is outside [-120, 24] dB"],
    );
    // Reverb inserts resolve their IR like bus reverbs.
    let s = good(
        &format!("{F}\ninserts = [ {{ kind = \"reverb\", ir = \"irs/r.wav\" }} ]"),
        "",
    );
    assert_eq!(s.tracks[0].inserts[0].file(), Some(&stem("irs/r.wav")));
}

#[test]
fn automation_lanes() {
    let auto = |lanes: &str| {
        format!(
            "{F}\nsends = [ {{ bus = \"Hall\" }} ]\ninserts = [ {{ kind = \"delay\", time_ms = 100 }} ]\nautomation = {{ {lanes} }}"
        )
    };
    let s = good(
        &auto(
            "pan = [[0, -1], [1, 1]], mute = [[0, 0], [2, 7]], \"send.Hall\" = [[0, -150], [1, 60]], \"inserts.0.feedback\" = [[0, 0.99]], gain_db = [[0, 0], [1, 0], [1, -6]]",
        ),
        "",
    );
    assert_eq!(s.tracks[0].automation.lanes.len(), 5);
    for (lanes, needle) in [
        (
            "gian_db = [[0, 0]]",
            "unknown key \"gian_db\" in track[0] \"A\".automation (did you mean \"gain_db\"?)",
        ),
        (
            "\"sends.Hall\" = [[0, 0]]",
            "unknown key \"sends.Hall\" in track[0] \"A\".automation (did you mean \"send.Hall\"?)",
        ),
        (
            "\"inserts.x.mix\" = [[0, 0]]",
            "unknown key \"inserts.x.mix\" in track[0] \"A\".automation",
        ),
        (
            "pan = []",
            "track[0] \"A\".automation.pan: a lane needs at least one",
        ),
        (
            "pan = 1",
            "track[0] \"A\".automation.pan: expected an array",
        ),
        (
            "pan = [[0, 1.5]]",
            "track[0] \"A\".automation.pan[0][1]: 1.5 is outside [-1, 1]",
        ),
        (
            "pan = [[0, 0], [1]]",
            "track[0] \"A\".automation.pan[1]: expected a [time_s, value] pair, found an array of 1",
        ),
        (
            "gain_db = [[0, -151]]",
            "track[0] \"A\".automation.gain_db[0][1]: -151 is outside [-150, 60] dB",
        ),
        (
            "gain_db = [[0, 61]]",
            "track[0] \"A\".automation.gain_db[0][1]: 61 is outside [-150, 60] dB",
        ),
        (
            "mute = [[0, nan]]",
            "track[0] \"A\".automation.mute[0][1]: NaN is not a finite number",
        ),
        (
            "mute = [[inf, 0]]",
            "track[0] \"A\".automation.mute[0][0]: inf is not a finite number",
        ),
        (
            "mute = [[-1, 0]]",
            "track[0] \"A\".automation.mute[0][0]: -1 s is below 0 s",
        ),
        (
            "mute = [[2, 0], [1, 1]]",
            "track[0] \"A\".automation.mute[1][0]: time 1 s comes before the previous point's 2 s",
        ),
        (
            "\"send.Hall\" = [[0, -151]]",
            "track[0] \"A\".automation.send.Hall[0][1]: -151 is outside [-150, 60] dB",
        ),
        (
            "\"send.Plate\" = [[0, 0]]",
            "track[0] \"A\".automation.send.Plate: \"Plate\" is not a bus name",
        ),
        (
            "\"inserts.1.mix\" = [[0, 0]]",
            "track[0] \"A\".automation.inserts.1.mix: track[0] \"A\" has no inserts[1]",
        ),
        (
            "\"inserts.0.time_ms\" = [[0, 10]]",
            "track[0] \"A\".automation.inserts.0.time_ms: the delay has no automatable parameter \"time_ms\"",
        ),
        (
            "\"inserts.0.feedback\" = [[0, 1]]",
            "track[0] \"A\".automation.inserts.0.feedback[0][1]: 1 is outside [0, 0.99]",
        ),
    ] {
        bad(&auto(lanes), "", &[needle]);
    }
    // A send lane needs a send to that bus.
    bad(
        &format!("{F}\nautomation = {{ \"send.Hall\" = [[0, 0]] }}"),
        "",
        &["track[0] \"A\".automation.send.Hall: track[0] \"A\" has no send to \"Hall\""],
    );
    // Bus lanes name the bus.
    bad(
        F,
        "automation = { pan = [[0, 2]] }",
        &["bus[0] \"Hall\".automation.pan[0][1]: 2 is outside [-1, 1]"],
    );
    bad(
        F,
        "automation = { \"inserts.0.mix\" = [[0, 0]] }",
        &["bus[0] \"Hall\".automation.inserts.0.mix: bus[0] \"Hall\" has no inserts[0]"],
    );
}

#[test]
fn sends_buses_and_routing() {
    // Static send levels take -150..+60 dB.
    let s = good(
        &format!("{F}\nsends = [ {{ bus = \"Hall\", level_db = -150 }} ]"),
        "",
    );
    assert_eq!(s.tracks[0].sends[0].level_db, -150.0);
    good(
        &format!("{F}\nsends = [ {{ bus = \"Hall\", level_db = -100 }} ]"),
        "",
    );
    bad(
        &format!("{F}\nsends = [ {{ bus = \"Hall\", level_db = -151 }} ]"),
        "",
        &["track[0] \"A\".sends[0].level_db: -151 is outside [-150, 60] dB"],
    );
    bad(
        &format!("{F}\nsends = [ {{ bus = \"Hall\" }}, {{ bus = \"Hall\", pre_fader = true }} ]"),
        "",
        &[
            "track[0] \"A\".sends[1].bus: \"Hall\" already has a send from track[0] \"A\" (sends[0]); a strip has at most one send to a bus",
        ],
    );
    bad(
        F,
        "pan = -2",
        &["bus[0] \"Hall\".pan: -2 is outside [-1, 1]"],
    );
    bad(
        F,
        "mute = 1",
        &["bus[0] \"Hall\".mute: expected true or false"],
    );
    bad(
        F,
        "sends = [ { bus = \"Plate\" } ]",
        &["bus[0] \"Hall\".sends[0].bus: \"Plate\" is not a bus name"],
    );
    bad(
        F,
        "sends = [ { bus = \"master\" } ]",
        &["bus[0] \"Hall\".sends[0].bus: \"master\" is not a bus name (sends go to buses"],
    );
    bad(
        F,
        "sends = [ { bus = \"Hall\" } ]",
        &["bus[0] \"Hall\".sends[0].bus: routing loop: bus \"Hall\" -> bus \"Hall\" (send)"],
    );
    // A send closing a loop through outputs.
    bad(
        F,
        "sends = [ { bus = \"Plate\" } ]\n[[bus]]\nname = \"Plate\"\noutput = \"Hall\"\n",
        &[
            "bus[0] \"Hall\".sends[0].bus: routing loop: bus \"Hall\" -> bus \"Plate\" (send) -> bus \"Hall\" (output)",
        ],
    );
    // The first contract's output loop keeps its message.
    bad(
        F,
        "output = \"Plate\"\n[[bus]]\nname = \"Plate\"\noutput = \"Hall\"\n",
        &["bus[0] \"Hall\".output: routing loop: bus \"Hall\" -> \"Plate\" -> \"Hall\""],
    );
    let s = good(
        F,
        "sends = [ { bus = \"Plate\", level_db = -3 } ]\n[[bus]]\nname = \"Plate\"\n",
    );
    assert_eq!(bus_order(&s).unwrap(), vec![0, 1]);
}

#[test]
fn sidechain_keys() {
    let key = |k: &str| {
        format!(
            "{F}\ninserts = [ {{ kind = \"compressor\", threshold_db = -10, ratio = 2, sidechain = \"{k}\" }} ]"
        )
    };
    good(&key("Hall"), "");
    good(&key("B"), "[[track]]\nname = \"B\"\nfile = \"b.wav\"\n");
    bad(
        &key("Nobody"),
        "",
        &["track[0] \"A\".inserts[0].sidechain: \"Nobody\" is not a track or bus name"],
    );
    bad(
        &key("A"),
        "",
        &["track[0] \"A\".inserts[0].sidechain: track[0] \"A\" cannot be its own sidechain key"],
    );
    bad(
        &format!("{F}\ncompressor = {{ threshold_db = -10, ratio = 2, sidechain = \"A\" }}"),
        "",
        &["track[0] \"A\".compressor.sidechain: track[0] \"A\" cannot be its own sidechain key"],
    );
    bad(
        &key("Hall"),
        "[[track]]\nname = \"Hall\"\nfile = \"h.wav\"\n",
        &[
            "track[0] \"A\".inserts[0].sidechain: \"Hall\" names both track[1] and bus[0]; a sidechain key must name exactly one track or bus",
        ],
    );
    // A keyed by the bus it feeds: a loop.
    bad(
        &format!("{}\noutput = \"Hall\"", key("Hall")),
        "",
        &[
            "track[0] \"A\".output: routing loop: track \"A\" -> bus \"Hall\" (output) -> track \"A\" (sidechain key)",
        ],
    );
    // Two tracks keying each other.
    bad(
        &key("B"),
        "[[track]]\nname = \"B\"\nfile = \"b.wav\"\ncompressor = { threshold_db = -10, ratio = 2, sidechain = \"A\" }\n",
        &[
            "track[1] \"B\".compressor.sidechain: routing loop: track \"A\" -> track \"B\" (sidechain key) -> track \"A\" (sidechain key)",
        ],
    );
    // A bus keyed by a track that feeds it is the usual ducking setup; no loop.
    good(
        &format!("{F}\noutput = \"Hall\""),
        "inserts = [ { kind = \"compressor\", threshold_db = -10, ratio = 2, sidechain = \"A\" } ]",
    );
    // The master bus may key on any track or bus.
    good(
        F,
        "[master_bus]\ninserts = [ { kind = \"compressor\", threshold_db = -10, ratio = 2, sidechain = \"Hall\" } ]",
    );
    bad(
        F,
        "[master_bus]\ninserts = [ { kind = \"compressor\", threshold_db = -10, ratio = 2, sidechain = \"X\" } ]",
        &["master_bus.inserts[0].sidechain: \"X\" is not a track or bus name"],
    );
}

#[test]
fn limits_are_resource_errors() {
    let limited = |text: &str, limits: Limits, needle: &str| {
        let s = parse_session_toml(text, "t.toml", Path::new("")).unwrap();
        let e = validate_with(&s, &limits).unwrap_err();
        assert!(matches!(e, bounce_server::Error::Limit(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'));
        // ValidSession applies the same limits.
        let e = ValidSession::new(s, &limits).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    };
    let two = doc(
        "clips = [ { file = \"a.wav\" }, { file = \"b.wav\", at_s = 1 } ]\ninserts = [ { kind = \"gate\", threshold_db = -50 }, { kind = \"saturation\" } ]\nautomation = { pan = [[0, 0], [1, 0]], gain_db = [[0, 0]] }\ntags = [\"drums\"]",
        "[[track]]\nname = \"B\"\nfile = \"b.wav\"\n[[deliverable]]\nname = \"d1\"\n[[deliverable]]\nname = \"d2\"\n",
    );
    check(&two).unwrap();
    let l = Limits::default;
    limited(
        &two,
        Limits {
            max_tracks: 1,
            ..l()
        },
        "limit exceeded: t.toml: track: 2 tracks, at most 1",
    );
    limited(
        &two,
        Limits {
            max_buses: 0,
            ..l()
        },
        "bus: 1 buses, at most 0",
    );
    limited(
        &two,
        Limits {
            max_clips: 2,
            ..l()
        },
        "track: 3 clips, at most 2",
    );
    limited(
        &two,
        Limits {
            max_inserts: 1,
            ..l()
        },
        "track[0] \"A\".inserts: 2 inserts, at most 1",
    );
    limited(
        &two,
        Limits {
            max_automation_points: 2,
            ..l()
        },
        "automation: 3 automation points, at most 2",
    );
    limited(
        &two,
        Limits {
            max_deliverables: 1,
            ..l()
        },
        "deliverable: 2 deliverables, at most 1",
    );
    limited(
        &two,
        Limits {
            max_name_bytes: 4,
            ..l()
        },
        "track[0] \"A\".clips[0].file: 5 bytes, at most 4",
    );
    limited(
        &doc(&format!("{F}\ntags = [\"drums-and-more\"]"), ""),
        Limits {
            max_name_bytes: 10,
            ..l()
        },
        "track[0] \"A\".tags[0]: 14 bytes, at most 10",
    );
    limited(
        &two,
        Limits {
            max_mix_frames: 40_000,
            ..l()
        },
        "track[0] \"A\".clips[1].at_s: 1 s is past the longest mix (40000 frames at 48000 Hz)",
    );
    let long = "x".repeat(2000);
    limited(
        &doc(&format!("file = \"{long}.wav\""), ""),
        l(),
        "track[0] \"A\".file: 2004 bytes, at most 1024",
    );
    limited(
        &doc(F, "").replacen("name = \"A\"", &format!("name = \"{long}\""), 1),
        l(),
        "track[0].name: 2000 bytes, at most 1024",
    );
    limited(
        &format!("{}[[deliverable]]\nname = \"{long}\"\n", doc(F, "")),
        l(),
        "deliverable[0].name: 2000 bytes, at most 1024",
    );
    limited(
        &doc(
            F,
            "reverb = { ir = \"a.wav\" }\ninserts = [ { kind = \"reverb\", ir = \"b.wav\" } ]",
        ),
        Limits { max_irs: 1, ..l() },
        "reverb: 2 impulse-response files, at most 1",
    );
}

#[test]
fn album_files_still_parse() {
    let a = parse_album_toml(
        "[album]\nsongs = [\"a.toml\"]\n[[deliverable]]\npreset = \"cd\"\n",
        "album.toml",
        Path::new(""),
    )
    .unwrap();
    assert_eq!(a.deliverables.len(), 1);
}
