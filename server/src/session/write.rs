//! [`Session`] → session TOML: the inverse of [`parse_session_toml`](super::parse_session_toml).
//!
//! Every key is written explicitly (defaults included), floats with Rust's shortest
//! round-trip form, so that parsing the text again gives an equal [`Session`] (with the
//! same `source`, and stem paths resolved against the same base folder). Audio files
//! are written by their `name` (the path as it appears in the session file).

use std::fmt::Write as _;

use super::model::*;
use crate::inserts::Insert;

/// The session as TOML text that [`parse_session_toml`](super::parse_session_toml)
/// reads back to an equal session. Album-only fields (`album_gain_db`) are not written.
pub fn session_to_toml(s: &Session) -> String {
    let mut out = String::new();
    out.push_str("[session]\n");
    kv_str(&mut out, "name", &s.name);
    let _ = writeln!(out, "sample_rate = {}", s.sample_rate);
    kv_f(&mut out, "tail_s", s.tail_s);
    if let Some(bpm) = s.tempo_bpm {
        kv_f(&mut out, "tempo_bpm", bpm);
    }
    for t in &s.tracks {
        out.push_str("\n[[track]]\n");
        kv_str(&mut out, "name", &t.name);
        match (t.from_file, t.clips.as_slice()) {
            (true, [c]) => {
                kv_str(&mut out, "file", &c.file.name);
                kv_f(&mut out, "offset_s", c.at_s);
            }
            (_, clips) => {
                out.push_str("clips = [\n");
                for c in clips {
                    let _ = writeln!(out, "  {},", clip(c));
                }
                out.push_str("]\n");
            }
        }
        if let Some(ch) = t.channels {
            let _ = writeln!(out, "channels = {ch}");
        }
        kv_f(&mut out, "gain_db", t.gain_db);
        kv_f(&mut out, "pan", t.pan);
        let _ = writeln!(out, "mute = {}", t.mute);
        let _ = writeln!(out, "solo = {}", t.solo);
        let _ = writeln!(out, "invert = {}", t.invert);
        kv_str(&mut out, "output", output(&t.output));
        if !t.eq.is_empty() {
            let _ = writeln!(out, "eq = {}", bands(&t.eq));
        }
        if let Some(c) = &t.compressor {
            let _ = writeln!(out, "compressor = {}", compressor(c, true));
        }
        inserts(&mut out, &t.inserts);
        sends(&mut out, &t.sends);
        automation(&mut out, &t.automation);
        if !t.tags.is_empty() {
            let tags: Vec<String> = t.tags.iter().map(|x| string(x)).collect();
            let _ = writeln!(out, "tags = [{}]", tags.join(", "));
        }
    }
    for b in &s.buses {
        out.push_str("\n[[bus]]\n");
        kv_str(&mut out, "name", &b.name);
        kv_str(&mut out, "output", output(&b.output));
        kv_f(&mut out, "gain_db", b.gain_db);
        kv_f(&mut out, "pan", b.pan);
        let _ = writeln!(out, "mute = {}", b.mute);
        if let Some(r) = &b.reverb {
            let _ = writeln!(out, "reverb = {{ {} }}", reverb_keys(r));
        }
        inserts(&mut out, &b.inserts);
        sends(&mut out, &b.sends);
        automation(&mut out, &b.automation);
    }
    if let Some(m) = &s.master_bus {
        out.push_str("\n[master_bus]\n");
        kv_f(&mut out, "gain_db", m.gain_db);
        kv_f(&mut out, "pan", m.pan);
        let _ = writeln!(out, "mute = {}", m.mute);
        inserts(&mut out, &m.inserts);
        automation(&mut out, &m.automation);
    }
    if let Some(m) = &s.master {
        out.push_str("\n[master]\n");
        if !m.eq.is_empty() {
            let _ = writeln!(out, "eq = {}", bands(&m.eq));
        }
        if let Some(mb) = &m.multiband {
            let xs: Vec<String> = mb.crossovers_hz.iter().map(|x| float(*x)).collect();
            let bs: Vec<String> = mb.bands.iter().map(|c| compressor(c, false)).collect();
            let _ = writeln!(
                out,
                "multiband = {{ crossovers_hz = [{}], bands = [\n  {},\n] }}",
                xs.join(", "),
                bs.join(",\n  ")
            );
        }
        if let Some(w) = m.width {
            kv_f(&mut out, "width", w);
        }
        if let Some(l) = &m.limiter {
            let _ = writeln!(
                out,
                "limiter = {{ ceiling_dbtp = {}, release_ms = {}, lookahead_ms = {} }}",
                float(l.ceiling_dbtp),
                float(l.release_ms),
                float(l.lookahead_ms)
            );
        }
    }
    for d in &s.deliverables {
        out.push_str("\n[[deliverable]]\n");
        kv_str(&mut out, "name", &d.name);
        if let Some(t) = d.target_lufs {
            kv_f(&mut out, "target_lufs", t);
        }
        if let Some(c) = d.ceiling_dbtp {
            kv_f(&mut out, "ceiling_dbtp", c);
        }
        let _ = writeln!(out, "sample_rate = {}", d.sample_rate);
        let _ = writeln!(out, "bit_depth = {}", d.bit_depth);
        kv_str(&mut out, "format", d.format.ext());
        kv_str(&mut out, "variant", d.variant.as_str());
        let _ = writeln!(out, "noise_shaping = {}", d.noise_shaping);
    }
    out
}

/// An f64 as a TOML float that parses back to the same bits: Rust's shortest
/// round-trip form (`{:?}` always has a `.` or an exponent), `nan`/`inf` spelled as TOML does.
pub fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

/// A TOML basic string, quoted and escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kv_str(out: &mut String, key: &str, v: &str) {
    let _ = writeln!(out, "{key} = {}", string(v));
}

fn kv_f(out: &mut String, key: &str, v: f64) {
    let _ = writeln!(out, "{key} = {}", float(v));
}

fn output(o: &Output) -> &str {
    match o {
        Output::Master => "master",
        Output::Bus(b) => b,
    }
}

fn clip(c: &Clip) -> String {
    let mut s = format!(
        "{{ file = {}, at_s = {}, start_s = {}",
        string(&c.file.name),
        float(c.at_s),
        float(c.start_s)
    );
    if let Some(l) = c.length_s {
        let _ = write!(s, ", length_s = {}", float(l));
    }
    let _ = write!(
        s,
        ", gain_db = {}, fade_in_s = {}, fade_out_s = {} }}",
        float(c.gain_db),
        float(c.fade_in_s),
        float(c.fade_out_s)
    );
    s
}

pub(crate) fn bands(bs: &[EqBand]) -> String {
    let items: Vec<String> = bs
        .iter()
        .map(|b| {
            format!(
                "{{ type = {}, freq = {}, q = {}, gain_db = {} }}",
                string(b.kind.as_str()),
                float(b.freq),
                float(b.q),
                float(b.gain_db)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A compressor as an inline table; `detector` is left out in multiband bands (they
/// only know peak).
fn compressor(c: &Compressor, with_detector: bool) -> String {
    format!("{{ {} }}", compressor_keys(c, with_detector))
}

/// A compressor's keys (no braces).
pub(crate) fn compressor_keys(c: &Compressor, with_detector: bool) -> String {
    let mut s = format!(
        "threshold_db = {}, ratio = {}, attack_ms = {}, release_ms = {}, knee_db = {}, makeup_db = {}",
        float(c.threshold_db),
        float(c.ratio),
        float(c.attack_ms),
        float(c.release_ms),
        float(c.knee_db),
        float(c.makeup_db)
    );
    if with_detector {
        let d = match c.detector {
            Detector::Peak => "peak",
            Detector::Rms => "rms",
        };
        let _ = write!(s, ", detector = {}", string(d));
    }
    if let Some(sc) = &c.sidechain {
        let _ = write!(s, ", sidechain = {}", string(sc));
    }
    s
}

pub(crate) fn reverb_keys(r: &Reverb) -> String {
    format!(
        "ir = {}, predelay_ms = {}, wet_db = {}, dry = {}",
        string(&r.ir.name),
        float(r.predelay_ms),
        float(r.wet_db),
        r.dry
    )
}

fn insert(i: &Insert) -> String {
    // Each kind writes its own keys (inserts/<kind>.rs): a new kind needs no line here.
    format!("{{ kind = {}, {} }}", string(i.kind()), i.toml_keys())
}

fn inserts(out: &mut String, ins: &[Insert]) {
    if ins.is_empty() {
        return;
    }
    out.push_str("inserts = [\n");
    for i in ins {
        let _ = writeln!(out, "  {},", insert(i));
    }
    out.push_str("]\n");
}

fn sends(out: &mut String, ss: &[Send]) {
    if ss.is_empty() {
        return;
    }
    let items: Vec<String> = ss
        .iter()
        .map(|s| {
            format!(
                "{{ bus = {}, level_db = {}, pre_fader = {} }}",
                string(&s.bus),
                float(s.level_db),
                s.pre_fader
            )
        })
        .collect();
    let _ = writeln!(out, "sends = [{}]", items.join(", "));
}

fn automation(out: &mut String, a: &Automation) {
    if a.lanes.is_empty() {
        return;
    }
    let lanes: Vec<String> = a
        .lanes
        .iter()
        .map(|l| {
            let pts: Vec<String> = l
                .points
                .iter()
                .map(|(t, v)| format!("[{}, {}]", float(*t), float(*v)))
                .collect();
            format!("{} = [{}]", string(&l.target.key()), pts.join(", "))
        })
        .collect();
    let _ = writeln!(out, "automation = {{ {} }}", lanes.join(", "));
}
