//! Session, album and tokens files: every rejection names the file, the field and the
//! bad value; the contract's example parses to the exact model; the proto round-trips.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bounce_server::session::*;

/// A valid session every rejection test edits in one place.
const BASE: &str = r#"[session]
name = "Test"
sample_rate = 48000

[[track]]
name = "Kick"
file = "kick.wav"
output = "Hall"
eq = [ { type = "peak", freq = 1000.0, q = 1.0, gain_db = 3.0 } ]
compressor = { threshold_db = -18.0, ratio = 4.0 }
sends = [ { bus = "Hall", level_db = -6.0 } ]
automation = { gain_db = [[0.0, 0.0], [1.0, -6.0]] }

[[track]]
name = "Snare"
file = "snare.wav"

[[bus]]
name = "Hall"
reverb = { ir = "hall.wav" }

[master]
multiband = { crossovers_hz = [200.0, 2000.0], bands = [
  { threshold_db = -20.0, ratio = 2.0 },
  { threshold_db = -20.0, ratio = 2.0 },
  { threshold_db = -20.0, ratio = 2.0 } ] }
width = 1.0
limiter = { ceiling_dbtp = -1.0 }

[[deliverable]]
name = "streaming"
target_lufs = -14.0
"#;

fn check(text: &str) -> bounce_server::Result<Session> {
    let s = parse_session_toml(text, "t.toml", Path::new(""))?;
    validate(&s)?;
    Ok(s)
}

/// Replaces `from` (which must occur in BASE) with `to` and expects an error holding
/// the file name and every needle.
#[track_caller]
fn bad(from: &str, to: &str, needles: &[&str]) {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    let text = BASE.replacen(from, to, 1);
    bad_text(&text, needles);
}

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

#[test]
fn base_is_valid() {
    let s = check(BASE).unwrap();
    assert_eq!(s.tracks.len(), 2);
    assert_eq!(s.buses.len(), 1);
}

// ---- shape and types ----

#[test]
fn rejects_unknown_key_in_track_with_line_and_suggestion() {
    bad(
        "name = \"Snare\"\n",
        "name = \"Snare\"\ngian_db = 1.0\n",
        &["line 16: unknown key \"gian_db\" in [[track]] (did you mean \"gain_db\"?)"],
    );
}

#[test]
fn rejects_unknown_key_in_eq_band() {
    bad(
        "freq = 1000.0, q",
        "frq = 1000.0, q",
        &[
            "line 9",
            "unknown key \"frq\"",
            "track[0] \"Kick\".eq[0]",
            "did you mean \"freq\"",
        ],
    );
}

#[test]
fn rejects_unknown_top_level_table() {
    bad(
        "[[bus]]",
        "[[buss]]",
        &["unknown key \"buss\"", "did you mean \"bus\""],
    );
}

#[test]
fn rejects_unknown_key_in_session_master_deliverable() {
    bad(
        "sample_rate = 48000\n",
        "sample_rate = 48000\nsamplerate = 1\n",
        &["unknown key \"samplerate\" in [session]"],
    );
    bad(
        "width = 1.0",
        "widht = 1.0",
        &[
            "unknown key \"widht\" in [master]",
            "did you mean \"width\"",
        ],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nlufs = 1",
        &["unknown key \"lufs\" in [[deliverable]]"],
    );
    bad(
        "{ ceiling_dbtp = -1.0 }",
        "{ ceiling = -1.0 }",
        &["unknown key \"ceiling\" in master.limiter"],
    );
    bad(
        "{ ir = \"hall.wav\" }",
        "{ ir = \"hall.wav\", wet = 1 }",
        &["unknown key \"wet\" in bus[0] \"Hall\".reverb"],
    );
    bad(
        "level_db = -6.0 }",
        "level = -6.0 }",
        &["unknown key \"level\" in track[0] \"Kick\".sends[0]"],
    );
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, attack = 1 }",
        &["unknown key \"attack\"", "track[0] \"Kick\".compressor"],
    );
}

#[test]
fn rejects_missing_sample_rate() {
    bad(
        "sample_rate = 48000\n",
        "",
        &["session.sample_rate: required field is missing"],
    );
}

#[test]
fn rejects_missing_session_table() {
    bad(
        "[session]\nname = \"Test\"\nsample_rate = 48000\n",
        "",
        &["session.sample_rate", "missing"],
    );
}

#[test]
fn rejects_missing_track_name_and_file() {
    bad(
        "name = \"Snare\"\n",
        "",
        &["track[1].name: required field is missing"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "",
        &["track[1] \"Snare\".file: required field is missing"],
    );
}

#[test]
fn rejects_missing_eq_and_compressor_fields() {
    bad(
        "{ type = \"peak\", freq = 1000.0,",
        "{ freq = 1000.0,",
        &["track[0] \"Kick\".eq[0].type: required field is missing"],
    );
    bad(
        "type = \"peak\", freq = 1000.0,",
        "type = \"peak\",",
        &["track[0] \"Kick\".eq[0].freq: required field is missing"],
    );
    bad(
        "threshold_db = -18.0, ratio = 4.0",
        "ratio = 4.0",
        &["track[0] \"Kick\".compressor.threshold_db: required field is missing"],
    );
    bad(
        "threshold_db = -18.0, ratio = 4.0",
        "threshold_db = -18.0",
        &["track[0] \"Kick\".compressor.ratio: required field is missing"],
    );
    bad(
        "{ threshold_db = -20.0, ratio = 2.0 } ]",
        "{ threshold_db = -20.0 } ]",
        &["master.multiband.bands[2].ratio: required field is missing"],
    );
}

#[test]
fn rejects_wrong_types() {
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\ngain_db = \"loud\"\n",
        &[
            "line 17",
            "track[1] \"Snare\".gain_db: expected a number, found the string \"loud\"",
        ],
    );
    bad(
        "sample_rate = 48000",
        "sample_rate = \"48k\"",
        &["session.sample_rate: expected a whole number, found the string \"48k\""],
    );
    bad(
        "sample_rate = 48000",
        "sample_rate = 44100.5",
        &["session.sample_rate", "44100.5"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\nmute = 1\n",
        &["track[1] \"Snare\".mute: expected true or false, found the integer 1"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\ntags = \"drums\"\n",
        &["track[1] \"Snare\".tags: expected an array"],
    );
    bad(
        "[1.0, -6.0]]",
        "[1.0, -6.0, 3.0]]",
        &[
            "track[0] \"Kick\".automation.gain_db[1]: expected a [time_s, dB] pair, found an array of 3",
        ],
    );
}

#[test]
fn rejects_track_as_plain_table() {
    let text = "[session]\nsample_rate = 48000\n[track]\nname = \"A\"\nfile = \"a.wav\"\n";
    bad_text(
        text,
        &["track: expected [[track]] (an array of tables), found a table"],
    );
}

#[test]
fn rejects_invalid_toml_in_one_line() {
    bad(
        "name = \"Snare\"",
        "name = \"Snare",
        &["line 15", "invalid TOML"],
    );
    bad(
        "name = \"Snare\"\n",
        "name = \"Snare\"\nname = \"Again\"\n",
        &["line 16", "invalid TOML", "duplicate key"],
    );
}

#[test]
fn rejects_unknown_enum_names() {
    bad(
        "type = \"peak\"",
        "type = \"bell\"",
        &["track[0] \"Kick\".eq[0].type: \"bell\" is not an EQ type"],
    );
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, detector = \"vca\" }",
        &["track[0] \"Kick\".compressor.detector: \"vca\" is not a detector"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nformat = \"mp3\"",
        &["deliverable[0] \"streaming\".format: \"mp3\" is not a format"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nvariant = \"karaoke\"",
        &["deliverable[0] \"streaming\".variant: \"karaoke\" is not a variant"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\npreset = \"vinyl\"",
        &["deliverable[0] \"streaming\".preset: \"vinyl\" is not a preset"],
    );
    bad(
        "{ threshold_db = -20.0, ratio = 2.0 } ]",
        "{ threshold_db = -20.0, ratio = 2.0, detector = \"rms\" } ]",
        &["master.multiband.bands[2].detector", "\"rms\""],
    );
}

// ---- numbers and ranges ----

#[test]
fn rejects_nan_and_infinity() {
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\ngain_db = nan\n",
        &["track[1] \"Snare\".gain_db: NaN is not a finite number"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\npan = inf\n",
        &["track[1] \"Snare\".pan: inf is not a finite number"],
    );
    bad(
        "q = 1.0",
        "q = -inf",
        &["track[0] \"Kick\".eq[0].q: -inf is not a finite number"],
    );
    bad(
        "ratio = 4.0",
        "ratio = inf",
        &["track[0] \"Kick\".compressor.ratio: inf is not a finite number"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = nan",
        &["deliverable[0] \"streaming\".target_lufs: NaN"],
    );
    bad(
        "[1.0, -6.0]",
        "[nan, -6.0]",
        &["track[0] \"Kick\".automation.gain_db[1][0]: NaN"],
    );
    bad("width = 1.0", "width = nan", &["master.width: NaN"]);
}

#[test]
fn rejects_eq_freq_outside_nyquist() {
    bad(
        "freq = 1000.0",
        "freq = 30000",
        &[
            "t.toml: track[0] \"Kick\".eq[0].freq: 30000 is outside (0, 24000) Hz (the Nyquist of session.sample_rate 48000)",
        ],
    );
    bad(
        "freq = 1000.0",
        "freq = 0",
        &["track[0] \"Kick\".eq[0].freq: 0 is outside (0, 24000) Hz"],
    );
    bad(
        "freq = 1000.0",
        "freq = 24000",
        &["track[0] \"Kick\".eq[0].freq: 24000 is outside"],
    );
    bad(
        "width = 1.0",
        "width = 1.0\neq = [ { type = \"lowshelf\", freq = -5 } ]",
        &["master.eq[0].freq: -5 is outside"],
    );
}

#[test]
fn rejects_q_not_positive() {
    bad(
        "q = 1.0",
        "q = 0",
        &["track[0] \"Kick\".eq[0].q: 0 is not above 0"],
    );
    bad(
        "q = 1.0",
        "q = -0.5",
        &["track[0] \"Kick\".eq[0].q: -0.5 is not above 0"],
    );
}

#[test]
fn rejects_ratio_below_one() {
    bad(
        "ratio = 4.0",
        "ratio = 0.5",
        &["track[0] \"Kick\".compressor.ratio: 0.5 is below 1"],
    );
}

#[test]
fn rejects_attack_release_knee_out_of_range() {
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, attack_ms = 20000 }",
        &["track[0] \"Kick\".compressor.attack_ms: 20000 is outside [0, 10000] ms"],
    );
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, release_ms = -1 }",
        &["track[0] \"Kick\".compressor.release_ms: -1 is outside [0, 10000] ms"],
    );
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, knee_db = 50 }",
        &["track[0] \"Kick\".compressor.knee_db: 50 is outside [0, 48] dB"],
    );
}

#[test]
fn rejects_absurd_gains() {
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\ngain_db = 80\n",
        &["track[1] \"Snare\".gain_db: 80 is outside [-60, 60] dB"],
    );
    bad(
        "ratio = 4.0 }",
        "ratio = 4.0, makeup_db = 61 }",
        &["track[0] \"Kick\".compressor.makeup_db: 61 is outside [-60, 60] dB"],
    );
    bad(
        "gain_db = 3.0",
        "gain_db = -70",
        &["track[0] \"Kick\".eq[0].gain_db: -70 is outside [-60, 60] dB"],
    );
    bad(
        "level_db = -6.0",
        "level_db = -200",
        &["track[0] \"Kick\".sends[0].level_db: -200 is outside"],
    );
    bad(
        "name = \"Hall\"\n",
        "name = \"Hall\"\ngain_db = 99\n",
        &["bus[0] \"Hall\".gain_db: 99 is outside [-60, 60] dB"],
    );
    bad(
        "{ ir = \"hall.wav\" }",
        "{ ir = \"hall.wav\", wet_db = 70 }",
        &["bus[0] \"Hall\".reverb.wet_db: 70 is outside"],
    );
}

#[test]
fn rejects_sample_rates_out_of_range() {
    bad(
        "sample_rate = 48000",
        "sample_rate = 4000",
        &["session.sample_rate: 4000 is outside [8000, 384000] Hz"],
    );
    bad(
        "sample_rate = 48000",
        "sample_rate = 500000",
        &["session.sample_rate: 500000 is outside [8000, 384000] Hz"],
    );
    bad(
        "sample_rate = 48000",
        "sample_rate = -48000",
        &["session.sample_rate: -48000 is out of range"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nsample_rate = 1000",
        &["deliverable[0] \"streaming\".sample_rate: 1000 is outside [8000, 384000] Hz"],
    );
}

#[test]
fn rejects_tail_offset_pan_width() {
    bad(
        "sample_rate = 48000",
        "sample_rate = 48000\ntail_s = 700",
        &["session.tail_s: 700 is outside [0, 600] s"],
    );
    bad(
        "sample_rate = 48000",
        "sample_rate = 48000\ntail_s = -1",
        &["session.tail_s: -1 is outside [0, 600] s"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\noffset_s = -0.5\n",
        &["track[1] \"Snare\".offset_s: -0.5 s is below 0 s"],
    );
    bad(
        "file = \"snare.wav\"\n",
        "file = \"snare.wav\"\npan = 1.5\n",
        &["track[1] \"Snare\".pan: 1.5 is outside [-1, 1]"],
    );
    bad(
        "width = 1.0",
        "width = -1",
        &["master.width: -1 is outside [0, 4]"],
    );
    bad(
        "width = 1.0",
        "width = 5",
        &["master.width: 5 is outside [0, 4]"],
    );
}

#[test]
fn rejects_automation_order_and_negative_time() {
    bad(
        "[[0.0, 0.0], [1.0, -6.0]]",
        "[[-1.0, 0.0], [1.0, -6.0]]",
        &["track[0] \"Kick\".automation.gain_db[0][0]: -1 s is below 0 s"],
    );
    bad(
        "[[0.0, 0.0], [1.0, -6.0]]",
        "[[2.0, 0.0], [1.0, -6.0]]",
        &[
            "track[0] \"Kick\".automation.gain_db[1][0]: time 1 s comes before the previous point's 2 s",
        ],
    );
    // Two points at one time make a step: allowed.
    check(&BASE.replacen(
        "[[0.0, 0.0], [1.0, -6.0]]",
        "[[0.0, 0.0], [1.0, 0.0], [1.0, -6.0]]",
        1,
    ))
    .unwrap();
}

#[test]
fn rejects_multiband_shape() {
    bad(
        "[200.0, 2000.0]",
        "[200.0]",
        &["master.multiband.bands: 3 bands for 1 crossovers (bands must be crossovers + 1 = 2)"],
    );
    bad(
        "[200.0, 2000.0]",
        "[2000.0, 200.0]",
        &["master.multiband.crossovers_hz[1]: 200 Hz is not above the previous crossover 2000 Hz"],
    );
    bad(
        "[200.0, 2000.0]",
        "[200.0, 200.0]",
        &["master.multiband.crossovers_hz[1]: 200 Hz is not above"],
    );
    bad(
        "[200.0, 2000.0]",
        "[200.0, 25000.0]",
        &["master.multiband.crossovers_hz[1]: 25000 is outside (0, 24000) Hz"],
    );
}

#[test]
fn rejects_limiter_out_of_range() {
    bad(
        "{ ceiling_dbtp = -1.0 }",
        "{ ceiling_dbtp = 0.5 }",
        &["master.limiter.ceiling_dbtp: 0.5 is outside [-20, 0] dBTP"],
    );
    bad(
        "{ ceiling_dbtp = -1.0 }",
        "{ lookahead_ms = 200 }",
        &["master.limiter.lookahead_ms: 200 is outside [0, 100] ms"],
    );
}

// ---- names and routing ----

#[test]
fn rejects_duplicate_track_names_case_sensitively() {
    bad(
        "name = \"Snare\"",
        "name = \"Kick\"",
        &["track[1] \"Kick\".name: \"Kick\" is already the name of track[0]"],
    );
    check(&BASE.replacen("name = \"Snare\"", "name = \"kick\"", 1)).unwrap();
}

#[test]
fn rejects_duplicate_bus_names() {
    let text = format!("{BASE}\n[[bus]]\nname = \"Hall\"\n");
    bad_text(
        &text,
        &["bus[1] \"Hall\".name: \"Hall\" is already the name of bus[0]"],
    );
}

#[test]
fn rejects_bus_named_master() {
    let text = format!("{BASE}\n[[bus]]\nname = \"master\"\n");
    bad_text(&text, &["bus[1] \"master\".name", "reserved"]);
}

#[test]
fn rejects_unknown_output_and_send_buses() {
    bad(
        "output = \"Hall\"",
        "output = \"Plate\"",
        &["track[0] \"Kick\".output: \"Plate\" is not a bus name"],
    );
    bad(
        "bus = \"Hall\"",
        "bus = \"hall\"",
        &["track[0] \"Kick\".sends[0].bus: \"hall\" is not a bus name"],
    );
    bad(
        "bus = \"Hall\"",
        "bus = \"master\"",
        &["track[0] \"Kick\".sends[0].bus: \"master\" is not a bus name"],
    );
    bad(
        "name = \"Hall\"\n",
        "name = \"Hall\"\noutput = \"Nowhere\"\n",
        &["bus[0] \"Hall\".output: \"Nowhere\" is not a bus name"],
    );
}

#[test]
fn rejects_routing_loop_naming_the_cycle() {
    let text = BASE.replacen(
        "name = \"Hall\"\n",
        "name = \"Hall\"\noutput = \"Plate\"\n",
        1,
    ) + "\n[[bus]]\nname = \"Plate\"\noutput = \"Hall\"\n";
    bad_text(
        &text,
        &["bus[0] \"Hall\".output: routing loop: bus \"Hall\" -> \"Plate\" -> \"Hall\""],
    );
}

#[test]
fn rejects_a_session_with_no_tracks() {
    bad_text("[session]\nsample_rate = 48000\n", &["track", "no tracks"]);
}

// ---- deliverables ----

#[test]
fn rejects_bad_deliverable_names() {
    bad(
        "name = \"streaming\"",
        "name = \"\"",
        &["deliverable[0].name: must not be empty"],
    );
    bad(
        "name = \"streaming\"",
        "name = \"mix\"",
        &["deliverable[0] \"mix\".name: \"mix\" is taken by the mix"],
    );
    bad(
        "name = \"streaming\"",
        "name = \"out/streaming\"",
        &[
            "deliverable[0] \"out/streaming\".name",
            "not a plain file name",
        ],
    );
    bad(
        "name = \"streaming\"",
        "name = \"..\"",
        &["deliverable[0] \"..\".name", "not a plain file name"],
    );
    bad(
        "name = \"streaming\"",
        "name = 'a\\b'",
        &["not a plain file name"],
    );
    let dup = format!("{BASE}\n[[deliverable]]\nname = \"streaming\"\nformat = \"flac\"\n");
    bad_text(
        &dup,
        &["deliverable[1] \"streaming\".name: \"streaming\" is already the name of deliverable[0]"],
    );
}

#[test]
fn rejects_bad_bit_depths() {
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nbit_depth = 20",
        &["deliverable[0] \"streaming\".bit_depth: 20 is not 16, 24 or 32"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -14.0\nbit_depth = 32\nformat = \"flac\"",
        &["deliverable[0] \"streaming\".bit_depth: 32 is not available for flac"],
    );
}

#[test]
fn rejects_bad_targets_and_ceilings() {
    bad(
        "target_lufs = -14.0",
        "target_lufs = -3",
        &["deliverable[0] \"streaming\".target_lufs: -3 is outside [-40, -5] LUFS"],
    );
    bad(
        "target_lufs = -14.0",
        "target_lufs = -50",
        &["deliverable[0] \"streaming\".target_lufs: -50 is outside [-40, -5] LUFS"],
    );
    bad(
        "target_lufs = -14.0",
        "ceiling_dbtp = 1",
        &["deliverable[0] \"streaming\".ceiling_dbtp: 1 is outside [-20, 0] dBTP"],
    );
    bad(
        "target_lufs = -14.0",
        "ceiling_dbtp = -30",
        &["deliverable[0] \"streaming\".ceiling_dbtp: -30 is outside [-20, 0] dBTP"],
    );
}

// ---- files on disk ----

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn rejects_missing_stem_and_ir_files() {
    let dir = tempfile::tempdir().unwrap();
    let song = write(dir.path(), "song.toml", BASE.as_bytes());
    write(dir.path(), "snare.wav", b"x");
    write(dir.path(), "hall.wav", b"x");
    let e = load_session_file(&song).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: track[0] \"Kick\".file: kick.wav: no such file",
            song.display()
        )
    );

    write(dir.path(), "kick.wav", b"x");
    std::fs::remove_file(dir.path().join("hall.wav")).unwrap();
    std::fs::create_dir(dir.path().join("hall.wav")).unwrap();
    let e = load_session_file(&song).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: bus[0] \"Hall\".reverb.ir: hall.wav: is not a file",
            song.display()
        )
    );
}

#[test]
fn missing_session_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.toml");
    let e = load_session_file(&p).unwrap_err().to_string();
    assert_eq!(e, format!("{}: no such file", p.display()));
}

/// The example of CONTRACT.md, verbatim.
const CONTRACT_EXAMPLE: &str = r#"[session]
name = "Night Drive"
sample_rate = 48000            # render rate; stems at other rates are resampled
tail_s = 3.0                   # extra time after the last stem ends (reverb tails); default 2.0

[[track]]
name = "Kick"
file = "stems/kick.wav"        # WAV, FLAC, MP3, OGG/Vorbis: anything symphonia decodes
gain_db = -3.0                 # default 0
pan = 0.0                      # -1 left .. +1 right; default 0
mute = false                   # default false
solo = false                   # any solo -> only soloed tracks sound
invert = false                 # polarity
offset_s = 0.0                 # where the stem starts on the timeline; default 0
output = "master"              # a bus name or "master" (default)
eq = [
  { type = "highpass", freq = 30.0, q = 0.707 },
  { type = "peak", freq = 3000.0, gain_db = 2.0, q = 1.0 },
]                              # types: highpass, lowpass, lowshelf, highshelf, peak, notch
compressor = { threshold_db = -18.0, ratio = 4.0, attack_ms = 10.0, release_ms = 120.0, knee_db = 0.0, makeup_db = 0.0, detector = "peak" }
sends = [ { bus = "Hall", level_db = -12.0, pre_fader = false } ]
automation = { gain_db = [[0.0, 0.0], [30.0, -6.0]] }   # (time_s, dB added to gain_db), linear between points
tags = ["drums"]               # free labels; deliverable variants select tracks by them

[[bus]]
name = "Hall"
output = "master"
gain_db = 0.0
reverb = { ir = "irs/hall.wav", predelay_ms = 0.0, wet_db = 0.0, dry = false }

[master]                       # empty table or absent: the mix passes untouched
eq = [ { type = "lowshelf", freq = 100.0, gain_db = 1.0, q = 0.707 } ]
multiband = { crossovers_hz = [120.0, 1000.0, 6000.0], bands = [
  { threshold_db = -20.0, ratio = 2.0, attack_ms = 20.0, release_ms = 200.0 },
  { threshold_db = -18.0, ratio = 2.0, attack_ms = 10.0, release_ms = 150.0 },
  { threshold_db = -18.0, ratio = 2.0, attack_ms = 5.0,  release_ms = 100.0 },
  { threshold_db = -16.0, ratio = 2.0, attack_ms = 2.0,  release_ms = 80.0 } ] }
width = 1.0                    # side gain; 0 = mono, 1 = unchanged
limiter = { ceiling_dbtp = -1.0, release_ms = 50.0, lookahead_ms = 5.0 }

[[deliverable]]
name = "streaming"             # the output file's stem: streaming.wav
target_lufs = -14.0            # integrated loudness after mastering; absent: no normalisation
ceiling_dbtp = -1.0            # true-peak ceiling
sample_rate = 48000
bit_depth = 24                 # 16 and 24 are integer PCM with TPDF dither; 32 is float
format = "wav"                 # wav or flac
variant = "main"               # main (default); instrumental: tracks tagged "vocal" muted;
                               # acappella: only tracks tagged "vocal" sound; tv: tracks tagged "lead" muted
"#;

fn band(threshold_db: f64, attack_ms: f64, release_ms: f64) -> Compressor {
    Compressor {
        threshold_db,
        ratio: 2.0,
        attack_ms,
        release_ms,
        knee_db: 0.0,
        makeup_db: 0.0,
        detector: Detector::Peak,
        sidechain: None,
    }
}

fn contract_session(dir: &Path) -> (PathBuf, Session) {
    let song = write(dir, "song.toml", CONTRACT_EXAMPLE.as_bytes());
    write(dir, "stems/kick.wav", b"RIFF");
    write(dir, "irs/hall.wav", b"RIFF");
    let s = load_session_file(&song).unwrap();
    (song, s)
}

#[test]
fn contract_example_parses_to_the_exact_model() {
    let dir = tempfile::tempdir().unwrap();
    let (song, s) = contract_session(dir.path());
    let expected = Session {
        name: "Night Drive".into(),
        sample_rate: 48000,
        tail_s: 3.0,
        tempo_bpm: None,
        tracks: vec![Track {
            name: "Kick".into(),
            clips: vec![Clip::whole(
                StemRef {
                    name: "stems/kick.wav".into(),
                    path: Some(dir.path().join("stems/kick.wav")),
                    blake3: None,
                },
                0.0,
            )],
            from_file: true,
            gain_db: -3.0,
            pan: 0.0,
            mute: false,
            solo: false,
            invert: false,
            output: Output::Master,
            channels: None,
            eq: vec![
                EqBand {
                    kind: EqType::Highpass,
                    freq: 30.0,
                    q: 0.707,
                    gain_db: 0.0,
                },
                EqBand {
                    kind: EqType::Peak,
                    freq: 3000.0,
                    q: 1.0,
                    gain_db: 2.0,
                },
            ],
            compressor: Some(Compressor {
                threshold_db: -18.0,
                ratio: 4.0,
                attack_ms: 10.0,
                release_ms: 120.0,
                knee_db: 0.0,
                makeup_db: 0.0,
                detector: Detector::Peak,
                sidechain: None,
            }),
            inserts: vec![],
            sends: vec![Send {
                bus: "Hall".into(),
                level_db: -12.0,
                pre_fader: false,
            }],
            automation: Automation {
                lanes: vec![AutoLane {
                    target: LaneTarget::GainDb,
                    points: vec![(0.0, 0.0), (30.0, -6.0)],
                }],
            },
            tags: vec!["drums".into()],
        }],
        buses: vec![Bus {
            name: "Hall".into(),
            output: Output::Master,
            gain_db: 0.0,
            pan: 0.0,
            mute: false,
            reverb: Some(Reverb {
                ir: StemRef {
                    name: "irs/hall.wav".into(),
                    path: Some(dir.path().join("irs/hall.wav")),
                    blake3: None,
                },
                predelay_ms: 0.0,
                wet_db: 0.0,
                dry: false,
            }),
            inserts: vec![],
            sends: vec![],
            automation: Automation::default(),
        }],
        master_bus: None,
        master: Some(Master {
            eq: vec![EqBand {
                kind: EqType::Lowshelf,
                freq: 100.0,
                q: 0.707,
                gain_db: 1.0,
            }],
            multiband: Some(Multiband {
                crossovers_hz: vec![120.0, 1000.0, 6000.0],
                bands: vec![
                    band(-20.0, 20.0, 200.0),
                    band(-18.0, 10.0, 150.0),
                    band(-18.0, 5.0, 100.0),
                    band(-16.0, 2.0, 80.0),
                ],
            }),
            width: Some(1.0),
            limiter: Some(Limiter {
                ceiling_dbtp: -1.0,
                release_ms: 50.0,
                lookahead_ms: 5.0,
            }),
        }),
        deliverables: vec![Deliverable {
            name: "streaming".into(),
            target_lufs: Some(-14.0),
            ceiling_dbtp: Some(-1.0),
            sample_rate: 48000,
            bit_depth: 24,
            format: Format::Wav,
            variant: Variant::Main,
            album_gain_db: None,
            noise_shaping: false,
        }],
        source: song.display().to_string(),
    };
    assert_eq!(s, expected);
    assert_eq!(bus_order(&s).unwrap(), vec![0]);
}

#[test]
fn defaults_are_filled() {
    let text = "[session]\nsample_rate = 44100\n\
                [[track]]\nname = \"A\"\nfile = \"a.wav\"\n\
                eq = [ { type = \"notch\", freq = 50 } ]\n\
                compressor = { threshold_db = -10, ratio = 2 }\n\
                sends = [ { bus = \"B\" } ]\n\
                [[bus]]\nname = \"B\"\nreverb = { ir = \"ir.wav\" }\n\
                [master]\nlimiter = {}\nmultiband = { crossovers_hz = [], bands = [ { threshold_db = -6, ratio = 3 } ] }\n\
                [[deliverable]]\nname = \"d\"\n";
    let s = check(text).unwrap();
    assert_eq!(s.tail_s, 2.0);
    let t = &s.tracks[0];
    assert_eq!(
        t.eq[0],
        EqBand {
            kind: EqType::Notch,
            freq: 50.0,
            q: 0.707,
            gain_db: 0.0
        }
    );
    assert_eq!(
        t.compressor,
        Some(Compressor {
            threshold_db: -10.0,
            ratio: 2.0,
            attack_ms: 10.0,
            release_ms: 100.0,
            knee_db: 0.0,
            makeup_db: 0.0,
            detector: Detector::Peak,
            sidechain: None
        })
    );
    assert_eq!(
        t.sends[0],
        Send {
            bus: "B".into(),
            level_db: 0.0,
            pre_fader: false
        }
    );
    assert!(t.automation.lanes.is_empty() && t.tags.is_empty() && !t.mute && !t.solo && !t.invert);
    let b = &s.buses[0];
    assert_eq!(b.output, Output::Master);
    let r = b.reverb.as_ref().unwrap();
    assert_eq!((r.predelay_ms, r.wet_db, r.dry), (0.0, 0.0, false));
    let m = s.master.as_ref().unwrap();
    assert_eq!(
        m.limiter,
        Some(Limiter {
            ceiling_dbtp: -1.0,
            release_ms: 50.0,
            lookahead_ms: 5.0
        })
    );
    assert_eq!(m.width, None);
    assert_eq!(
        m.multiband.as_ref().unwrap().bands[0],
        Compressor {
            threshold_db: -6.0,
            ratio: 3.0,
            attack_ms: 10.0,
            release_ms: 100.0,
            knee_db: 0.0,
            makeup_db: 0.0,
            detector: Detector::Peak,
            sidechain: None
        }
    );
    assert_eq!(
        s.deliverables[0],
        Deliverable {
            name: "d".into(),
            target_lufs: None,
            ceiling_dbtp: Some(-1.0),
            sample_rate: 44100,
            bit_depth: 24,
            format: Format::Wav,
            variant: Variant::Main,
            album_gain_db: None,
            noise_shaping: false
        }
    );
}

#[test]
fn empty_master_table_is_a_pass_through() {
    let s = check(
        "[session]\nsample_rate = 48000\n[[track]]\nname = \"A\"\nfile = \"a.wav\"\n[master]\n",
    )
    .unwrap();
    assert_eq!(s.master, Some(Master::default()));
}

#[test]
fn presets_fill_and_explicit_keys_override() {
    let text = format!(
        "{BASE}\n[[deliverable]]\npreset = \"cd\"\n[[deliverable]]\npreset = \"hires\"\nname = \"hi\"\nformat = \"flac\"\n\
         [[deliverable]]\npreset = \"broadcast\"\nceiling_dbtp = -2\n[[deliverable]]\npreset = \"apple\"\n[[deliverable]]\npreset = \"podcast\"\nvariant = \"tv\"\n"
    );
    let s = check(&text).unwrap();
    let d = |i: usize| s.deliverables[i].clone();
    let mk =
        |name: &str, t: Option<f64>, c: f64, r: u32, b: u32, f: Format, v: Variant| Deliverable {
            name: name.into(),
            target_lufs: t,
            ceiling_dbtp: Some(c),
            sample_rate: r,
            bit_depth: b,
            format: f,
            variant: v,
            album_gain_db: None,
            noise_shaping: false,
        };
    assert_eq!(
        d(1),
        mk("cd", None, -1.0, 44100, 16, Format::Wav, Variant::Main)
    );
    assert_eq!(
        d(2),
        mk("hi", None, -1.0, 96000, 24, Format::Flac, Variant::Main)
    );
    assert_eq!(
        d(3),
        mk(
            "broadcast",
            Some(-23.0),
            -2.0,
            48000,
            24,
            Format::Wav,
            Variant::Main
        )
    );
    assert_eq!(
        d(4),
        mk(
            "apple",
            Some(-16.0),
            -1.0,
            48000,
            24,
            Format::Wav,
            Variant::Main
        )
    );
    assert_eq!(
        d(5),
        mk(
            "podcast",
            Some(-16.0),
            -1.0,
            48000,
            24,
            Format::Wav,
            Variant::Tv
        )
    );
    let streaming = deliverable_preset("streaming").unwrap();
    assert_eq!(
        streaming,
        mk(
            "streaming",
            Some(-14.0),
            -1.0,
            48000,
            24,
            Format::Wav,
            Variant::Main
        )
    );
}

// ---- proto ----

/// The session document a client sends: the file as written, stems by hash.
fn document(text: &str, hashes: &[(&str, String)]) -> bounce_proto::v1::SessionDocument {
    bounce_proto::v1::SessionDocument {
        toml: text.into(),
        source: "song.toml".into(),
        stems: hashes
            .iter()
            .map(|(n, h)| (n.to_string(), h.clone()))
            .collect(),
        replace_deliverables: false,
        deliverables: vec![],
    }
}

#[test]
fn document_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut s) = contract_session(dir.path());
    let kick = blake3::hash(b"kick").to_hex().to_string();
    let hall = blake3::hash(b"hall").to_hex().to_string();
    let back = from_document(&document(
        CONTRACT_EXAMPLE,
        &[
            ("stems/kick.wav", kick.clone()),
            ("irs/hall.wav", hall.clone()),
        ],
    ))
    .unwrap();
    // Server side: stems by hash, no paths.
    s.tracks[0].clips[0].file = StemRef {
        name: "stems/kick.wav".into(),
        path: None,
        blake3: Some(kick),
    };
    s.buses[0].reverb.as_mut().unwrap().ir = StemRef {
        name: "irs/hall.wav".into(),
        path: None,
        blake3: Some(hall),
    };
    s.source = "song.toml".into();
    assert_eq!(back, s);
}

#[test]
fn document_is_validated() {
    let h = "00".repeat(32);
    let text = CONTRACT_EXAMPLE.replacen("freq = 30.0", "freq = 30000.0", 1);
    let s = from_document(&document(
        &text,
        &[("stems/kick.wav", h.clone()), ("irs/hall.wav", h.clone())],
    ))
    .unwrap();
    let e = ValidSession::new(s, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("track[0] \"Kick\".eq[0].freq: 30000 is outside (0, 24000) Hz"),
        "{e}"
    );
    let s = from_document(&document(
        CONTRACT_EXAMPLE,
        &[("stems/kick.wav", "XYZ".into()), ("irs/hall.wav", h)],
    ))
    .unwrap();
    let e = ValidSession::new(s, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "track[0] \"Kick\".file: stems/kick.wav: blake3 \"XYZ\" is not 64 lower-case hex digits"
        ),
        "{e}"
    );
}

// ---- album ----

#[test]
fn album_file_parses() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "01-intro.toml", b"x");
    write(dir.path(), "02-night-drive.toml", b"x");
    let album = write(
        dir.path(),
        "album.toml",
        br#"[album]
name = "First Light"
loudness = "album"
songs = ["01-intro.toml", "02-night-drive.toml"]

[[deliverable]]
name = "streaming"
target_lufs = -14.0
ceiling_dbtp = -1.0
variant = "main"

[[deliverable]]
preset = "cd"
"#,
    );
    let a = load_album_file(&album).unwrap();
    assert_eq!(a.name, "First Light");
    assert_eq!(a.loudness, AlbumLoudness::Album);
    assert_eq!(
        a.songs,
        vec![
            dir.path().join("01-intro.toml"),
            dir.path().join("02-night-drive.toml")
        ]
    );
    assert_eq!(a.deliverables.len(), 2);
    assert_eq!(
        a.deliverables[0].sample_rate, 0,
        "album deliverable without a rate takes each song's"
    );
    assert_eq!(a.deliverables[1].sample_rate, 44100);
    assert_eq!(a.source, album.display().to_string());

    let song = check(BASE).unwrap();
    let ds = a.deliverables_for(&song);
    assert_eq!(ds[0].sample_rate, 48000);
    assert_eq!(ds[1].sample_rate, 44100);
}

#[test]
fn album_rejections_name_file_field_value() {
    let dir = tempfile::tempdir().unwrap();
    let run = |body: &str| {
        let p = write(dir.path(), "album.toml", body.as_bytes());
        let e = load_album_file(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
        e
    };
    write(dir.path(), "a.toml", b"x");
    let e = run("[album]\nsongs = [\"a.toml\", \"b.toml\"]\n");
    assert!(
        e.contains(&format!(
            "album.songs[1]: {}: no such file",
            dir.path().join("b.toml").display()
        )),
        "{e}"
    );
    let e = run("[album]\nsongs = [\"a.toml\"]\nloudness = \"loud\"\n");
    assert!(
        e.contains("album.loudness: \"loud\" is not album or track"),
        "{e}"
    );
    let e = run("[album]\nsongs = [\"a.toml\"]\nsong = 1\n");
    assert!(
        e.contains("line 3: unknown key \"song\" in [album] (did you mean \"songs\"?)"),
        "{e}"
    );
    let e = run("[album]\nname = \"x\"\n");
    assert!(e.contains("album.songs: required field is missing"), "{e}");
    let e = run("[album]\nsongs = []\n");
    assert!(e.contains("album.songs: the album has no songs"), "{e}");
    let e = run("[album]\nsongs = [\"a.toml\"]\n[[deliverable]]\nname = \"mix\"\n");
    assert!(
        e.contains("deliverable[0] \"mix\".name: \"mix\" is taken by the mix"),
        "{e}"
    );
    let e = run("[album]\nsongs = [\"a.toml\"]\n[[deliverable]]\nname = \"x\"\nbit_depth = 8\n");
    assert!(
        e.contains("deliverable[0] \"x\".bit_depth: 8 is not 16, 24 or 32"),
        "{e}"
    );
}

#[test]
fn slug_examples() {
    assert_eq!(slug("Night Drive"), "night-drive");
    assert_eq!(slug("  Hello,  World!! "), "hello-world");
    assert_eq!(slug("01 Intro"), "01-intro");
    assert_eq!(song_dir(2, "Night Drive"), "03-night-drive");
}

// ---- tokens ----

#[test]
fn tokens_file_parses() {
    let dir = tempfile::tempdir().unwrap();
    let h1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let h2 = "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752";
    let p = write(
        dir.path(),
        "tokens.toml",
        format!(
            "[[token]]\nproject = \"night-drive\"\nsha256 = \"{h1}\"\nmax_running_jobs = 2\nmax_queued_jobs = 20\n\n\
             [[token]]\nproject = \"other\"\nsha256 = \"{h2}\"\n"
        )
        .as_bytes(),
    );
    let t = load_tokens_file(&p).unwrap();
    assert_eq!(
        t,
        vec![
            TokenEntry {
                project: "night-drive".into(),
                sha256: h1.into(),
                max_running_jobs: Some(2),
                max_queued_jobs: Some(20)
            },
            TokenEntry {
                project: "other".into(),
                sha256: h2.to_lowercase(),
                max_running_jobs: None,
                max_queued_jobs: None
            },
        ]
    );
}

#[test]
fn tokens_rejections_name_file_field_value() {
    let dir = tempfile::tempdir().unwrap();
    let h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let run = |body: &str| {
        let p = write(dir.path(), "tokens.toml", body.as_bytes());
        let e = load_tokens_file(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
        e
    };
    let e = run("[[token]]\nproject = \"p\"\nsha256 = \"9f86d0\"\n");
    assert!(
        e.contains("token[0].sha256: \"9f86d0\" is not a SHA-256"),
        "{e}"
    );
    let e = run(&format!(
        "[[token]]\nproject = \"p\"\nsha256 = \"{h}\"\n[[token]]\nproject = \"q\"\nsha256 = \"{h}\"\n"
    ));
    assert!(
        e.contains("token[1].sha256: the same hash as token[0]"),
        "{e}"
    );
    let e = run(&format!(
        "[[token]]\nproject = \"p\"\nsha256 = \"{h}\"\nmax_running_jobs = 0\n"
    ));
    assert!(e.contains("token[0].max_running_jobs: 0 is below 1"), "{e}");
    let e = run(&format!(
        "[[token]]\nproject = \"p\"\nsha256 = \"{h}\"\nmax_jobs = 3\n"
    ));
    assert!(
        e.contains("line 4: unknown key \"max_jobs\" in [[token]]"),
        "{e}"
    );
    let e = run(&format!("[[token]]\nsha256 = \"{h}\"\n"));
    assert!(
        e.contains("token[0].project: required field is missing"),
        "{e}"
    );
    let e = run("");
    assert!(e.contains("token: no [[token]] entries"), "{e}");
    let e = run(&format!(
        "[[token]]\nproject = \"p\"\nsha256 = \"{h}\"\nmax_queued_jobs = -1\n"
    ));
    assert!(
        e.contains("token[0].max_queued_jobs: -1 is out of range"),
        "{e}"
    );
}
