//! Session TOML → [`Session`], defaults filled in (CONTRACT.md, "The session file").
//!
//! Parsing checks shapes and types (unknown keys, missing required fields, a string
//! where a number belongs); [`validate`](super::validate) checks ranges and references.

use std::path::Path;

use super::model::*;
use super::reader::{Doc, Tbl, num};
use super::validate::validate;
use crate::{Error, Result};

/// Deliverable presets a user can name instead of numbers (issue 4).
pub const PRESETS: &[&str] = &["streaming", "apple", "cd", "broadcast", "podcast", "hires"];

/// The deliverable a preset stands for, named after it (every preset fixes its rate).
pub fn deliverable_preset(preset: &str) -> Option<Deliverable> {
    // (target LUFS, ceiling dBTP, sample rate, bit depth)
    let (target, ceiling, rate, bits) = match preset {
        "streaming" => (Some(-14.0), -1.0, 48000, 24),
        "apple" => (Some(-16.0), -1.0, 48000, 24),
        "cd" => (None, -1.0, 44100, 16),
        "broadcast" => (Some(-23.0), -1.0, 48000, 24),
        "podcast" => (Some(-16.0), -1.0, 48000, 24),
        "hires" => (None, -1.0, 96000, 24),
        _ => return None,
    };
    Some(Deliverable {
        name: preset.to_string(),
        target_lufs: target,
        ceiling_dbtp: Some(ceiling),
        sample_rate: rate,
        bit_depth: bits,
        format: Format::Wav,
        variant: Variant::Main,
        album_gain_db: None,
        noise_shaping: false,
    })
}

/// Parses a session TOML. `source` is the file name used in messages; `base_dir` is
/// where relative paths resolve (`StemRef.path = base_dir.join(name)`, `blake3 = None`).
/// Does NOT validate ranges (see [`validate`]).
pub fn parse_session_toml(text: &str, source: &str, base_dir: &Path) -> Result<Session> {
    let doc = Doc { text, source };
    let parsed = doc.parse()?;
    let root = doc.root(&parsed);
    root.check_keys(&[
        "session",
        "track",
        "bus",
        "master_bus",
        "master",
        "deliverable",
    ])?;

    let Some(mut sess) = root.table_opt("session")? else {
        return Err(Error::field(
            source,
            "session.sample_rate",
            "required field is missing (there is no [session] table)",
        ));
    };
    sess.label = "[session]".into();
    sess.check_keys(&["name", "sample_rate", "tail_s", "tempo_bpm"])?;
    let name = sess.str_opt("name")?.unwrap_or_default();
    let sample_rate = sess
        .u32_opt("sample_rate")?
        .ok_or_else(|| sess.missing("sample_rate"))?;
    let tail_s = sess.f64_or("tail_s", 2.0)?;
    let tempo_bpm = sess.f64_opt("tempo_bpm")?;

    let stem = |name: String| StemRef {
        path: Some(base_dir.join(&name)),
        name,
        blake3: None,
    };

    let mut tracks = Vec::new();
    for (i, mut t) in root.tables("track", "[[track]]")?.into_iter().enumerate() {
        // Name the track in every later message once its name is known.
        let name = t.str_opt("name")?;
        if let Some(n) = &name {
            t.set_path(format!("track[{i}] {n:?}"));
        }
        t.check_keys(&[
            "name",
            "file",
            "clips",
            "channels",
            "gain_db",
            "pan",
            "mute",
            "solo",
            "invert",
            "offset_s",
            "output",
            "eq",
            "compressor",
            "inserts",
            "sends",
            "automation",
            "tags",
        ])?;
        let name = name.ok_or_else(|| t.missing("name"))?;
        let (clips, from_file) = match (t.str_opt("file")?, t.array_opt("clips")?) {
            (Some(_), Some(_)) => {
                return Err(field_err(
                    &t,
                    "clips",
                    "a track has file or clips, never both",
                ));
            }
            (None, None) => return Err(t.missing("file")),
            (Some(file), None) => (
                vec![Clip::whole(stem(file), t.f64_or("offset_s", 0.0)?)],
                true,
            ),
            (None, Some(items)) => {
                if t.get("offset_s").is_some() {
                    return Err(field_err(
                        &t,
                        "offset_s",
                        "offset_s goes with file; with clips, give each clip its at_s",
                    ));
                }
                if items.is_empty() {
                    return Err(field_err(
                        &t,
                        "clips",
                        "the list is empty (give at least one clip, or file)",
                    ));
                }
                let mut clips = Vec::with_capacity(items.len());
                for (j, v) in items.iter().enumerate() {
                    let path = format!("{}[{j}]", t.field("clips"));
                    let c = super::reader::table(t.doc, v, path.clone(), path)?;
                    clips.push(parse_clip(&c, &stem)?);
                }
                (clips, false)
            }
        };
        let channels = match t.get("channels") {
            None => None,
            Some(v) => {
                let n = super::reader::uint(t.doc, v, &t.field("channels"))?;
                match u8::try_from(n) {
                    Ok(c @ (1 | 2)) => Some(c),
                    _ => {
                        return Err(field_err(&t, "channels", format_args!("{n} is not 1 or 2")));
                    }
                }
            }
        };
        let eq = parse_eq(&t, "eq")?;
        let compressor = match t.table_opt("compressor")? {
            Some(c) => Some(parse_compressor(&c, true, true)?),
            None => None,
        };
        let inserts = parse_inserts(&t, &stem)?;
        let sends = parse_sends(&t)?;
        let automation = parse_automation(&t)?;
        tracks.push(Track {
            clips,
            from_file,
            gain_db: t.f64_or("gain_db", 0.0)?,
            pan: t.f64_or("pan", 0.0)?,
            mute: t.bool_or("mute", false)?,
            solo: t.bool_or("solo", false)?,
            invert: t.bool_or("invert", false)?,
            output: output(t.str_opt("output")?),
            channels,
            eq,
            compressor,
            inserts,
            sends,
            automation,
            tags: t.strings("tags")?,
            name,
        });
    }

    let mut buses = Vec::new();
    for (i, mut b) in root.tables("bus", "[[bus]]")?.into_iter().enumerate() {
        let name = b.str_opt("name")?;
        if let Some(n) = &name {
            b.set_path(format!("bus[{i}] {n:?}"));
        }
        b.check_keys(&[
            "name",
            "output",
            "gain_db",
            "pan",
            "mute",
            "reverb",
            "inserts",
            "sends",
            "automation",
        ])?;
        let name = name.ok_or_else(|| b.missing("name"))?;
        let reverb = match b.table_opt("reverb")? {
            Some(r) => {
                r.check_keys(&["ir", "predelay_ms", "wet_db", "dry"])?;
                let mut rv = parse_reverb(&r)?;
                rv.ir = stem(rv.ir.name);
                Some(rv)
            }
            None => None,
        };
        let inserts = parse_inserts(&b, &stem)?;
        let sends = parse_sends(&b)?;
        let automation = parse_automation(&b)?;
        buses.push(Bus {
            name,
            output: output(b.str_opt("output")?),
            gain_db: b.f64_or("gain_db", 0.0)?,
            pan: b.f64_or("pan", 0.0)?,
            mute: b.bool_or("mute", false)?,
            reverb,
            inserts,
            sends,
            automation,
        });
    }

    let master_bus = match root.table_opt("master_bus")? {
        Some(mut m) => {
            m.label = "[master_bus]".into();
            m.check_keys(&["gain_db", "pan", "mute", "inserts", "automation"])?;
            Some(MasterBus {
                gain_db: m.f64_or("gain_db", 0.0)?,
                pan: m.f64_or("pan", 0.0)?,
                mute: m.bool_or("mute", false)?,
                inserts: parse_inserts(&m, &stem)?,
                automation: parse_automation(&m)?,
            })
        }
        None => None,
    };

    let master = match root.table_opt("master")? {
        Some(mut m) => {
            m.label = "[master]".into();
            Some(parse_master(&m)?)
        }
        None => None,
    };

    let deliverables = parse_deliverables(&root, sample_rate)?;

    Ok(Session {
        name,
        sample_rate,
        tail_s,
        tempo_bpm,
        tracks,
        buses,
        master_bus,
        master,
        deliverables,
        source: source.to_string(),
    })
}

/// Reads, parses and validates a session file, then checks that every stem and IR
/// file exists and is a file. Messages name the file as `path` was given.
pub fn load_session_file(path: &Path) -> Result<Session> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&source, io_reason(&e)))?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let session = parse_session_toml(&text, &source, base_dir)?;
    validate(&session)?;
    for (i, t) in session.tracks.iter().enumerate() {
        for (j, c) in t.clips.iter().enumerate() {
            let field = if t.from_file {
                format!("track[{i}] {:?}.file", t.name)
            } else {
                format!("track[{i}] {:?}.clips[{j}].file", t.name)
            };
            check_file(&source, &field, &c.file)?;
        }
    }
    let insert_files = |strip: &str, inserts: &[Insert]| -> Result<()> {
        for (j, ins) in inserts.iter().enumerate() {
            if let Some(f) = ins.file() {
                check_file(&source, &format!("{strip}.inserts[{j}].ir"), f)?;
            }
        }
        Ok(())
    };
    for (i, t) in session.tracks.iter().enumerate() {
        insert_files(&format!("track[{i}] {:?}", t.name), &t.inserts)?;
    }
    for (i, b) in session.buses.iter().enumerate() {
        if let Some(r) = &b.reverb {
            check_file(&source, &format!("bus[{i}] {:?}.reverb.ir", b.name), &r.ir)?;
        }
        insert_files(&format!("bus[{i}] {:?}", b.name), &b.inserts)?;
    }
    if let Some(m) = &session.master_bus {
        insert_files("master_bus", &m.inserts)?;
    }
    Ok(session)
}

/// `field: name: no such file` unless the referenced path is a readable regular file.
fn check_file(source: &str, field: &str, stem: &StemRef) -> Result<()> {
    let Some(p) = &stem.path else { return Ok(()) };
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::field(
            source,
            field,
            format_args!("{}: is not a file", stem.name),
        )),
        Err(e) => Err(Error::field(
            source,
            field,
            format_args!("{}: {}", stem.name, io_reason(&e)),
        )),
    }
}

/// A short lower-case reason for an I/O error ("no such file", "permission denied").
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn output(s: Option<String>) -> Output {
    match s {
        None => Output::Master,
        Some(s) if s == "master" => Output::Master,
        Some(s) => Output::Bus(s),
    }
}

pub(crate) fn parse_eq(t: &Tbl<'_>, key: &str) -> Result<Vec<EqBand>> {
    let Some(items) = t.array_opt(key)? else {
        return Ok(Vec::new());
    };
    let mut bands = Vec::with_capacity(items.len());
    for (j, v) in items.iter().enumerate() {
        let path = format!("{}[{j}]", t.field(key));
        let b = super::reader::table(t.doc, v, path.clone(), path)?;
        b.check_keys(&["type", "freq", "q", "gain_db"])?;
        let ty = b.str_req("type")?;
        let kind = EqType::parse(&ty).ok_or_else(|| {
            field_err(
                &b,
                "type",
                format_args!(
                    "{ty:?} is not an EQ type (highpass, lowpass, lowshelf, highshelf, peak, notch)"
                ),
            )
        })?;
        bands.push(EqBand {
            kind,
            freq: b.f64_req("freq")?,
            q: b.f64_or("q", 0.707)?,
            gain_db: b.f64_or("gain_db", 0.0)?,
        });
    }
    Ok(bands)
}

/// An error at `table.key`, on the key's line when it is present.
fn field_err(t: &Tbl<'_>, key: &str, msg: impl std::fmt::Display) -> Error {
    match t.get(key) {
        Some(v) => t.doc.err_at(&v.span(), &t.field(key), msg),
        None => t.doc.err_at(&t.span, &t.field(key), msg),
    }
}

/// One `clips` entry (keys, file required; ranges are validated later).
fn parse_clip(c: &Tbl<'_>, stem: &dyn Fn(String) -> StemRef) -> Result<Clip> {
    c.check_keys(&[
        "file",
        "at_s",
        "start_s",
        "length_s",
        "gain_db",
        "fade_in_s",
        "fade_out_s",
    ])?;
    Ok(Clip {
        file: stem(c.str_req("file")?),
        at_s: c.f64_or("at_s", 0.0)?,
        start_s: c.f64_or("start_s", 0.0)?,
        length_s: c.f64_opt("length_s")?,
        gain_db: c.f64_or("gain_db", 0.0)?,
        fade_in_s: c.f64_or("fade_in_s", 0.0)?,
        fade_out_s: c.f64_or("fade_out_s", 0.0)?,
    })
}

/// A strip's `inserts` list: each table by its `kind` through the registry; audio
/// files the inserts name (reverb IRs) resolve like every other path.
fn parse_inserts(t: &Tbl<'_>, stem: &dyn Fn(String) -> StemRef) -> Result<Vec<Insert>> {
    let Some(items) = t.array_opt("inserts")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for (j, v) in items.iter().enumerate() {
        let path = format!("{}[{j}]", t.field("inserts"));
        let it = super::reader::table(t.doc, v, path.clone(), path)?;
        let kind = it.str_opt("kind")?.ok_or_else(|| it.missing("kind"))?;
        let mut ins = match Insert::parse(&kind, &it) {
            Some(r) => r?,
            None => {
                return Err(field_err(
                    &it,
                    "kind",
                    format_args!(
                        "{kind:?} is not an insert kind ({})",
                        crate::inserts::KINDS.join(", ")
                    ),
                ));
            }
        };
        if let Some(f) = ins.file_mut() {
            *f = stem(std::mem::take(&mut f.name));
        }
        out.push(ins);
    }
    Ok(out)
}

/// A strip's `sends` list.
fn parse_sends(t: &Tbl<'_>) -> Result<Vec<Send>> {
    let mut sends = Vec::new();
    if let Some(items) = t.array_opt("sends")? {
        for (j, v) in items.iter().enumerate() {
            let path = format!("{}[{j}]", t.field("sends"));
            let s = super::reader::table(t.doc, v, path.clone(), path)?;
            s.check_keys(&["bus", "level_db", "pre_fader"])?;
            sends.push(Send {
                bus: s.str_req("bus")?,
                level_db: s.f64_or("level_db", 0.0)?,
                pre_fader: s.bool_or("pre_fader", false)?,
            });
        }
    }
    Ok(sends)
}

/// A close lane key for a typo (`gian_db`, `sends.Hall`, `insert.0.mix`).
fn lane_hint(key: &str) -> Option<String> {
    match key.split_once('.') {
        None => super::reader::did_you_mean(key, &["gain_db", "pan", "mute"]).map(str::to_string),
        Some((head, rest)) => super::reader::did_you_mean(head, &["send", "inserts"])
            .filter(|_| !rest.is_empty())
            .map(|h| format!("{h}.{rest}"))
            .filter(|h| h != key),
    }
}

/// The keys of an automation table with their values; unquoted dotted keys
/// (`inserts.0.mix = …`, nested tables in TOML) are joined back into one key.
fn lane_entries<'b>(
    t: &'b toml::de::DeTable<'b>,
    prefix: &str,
    out: &mut Vec<(String, std::ops::Range<usize>, &'b super::reader::Val<'b>)>,
) {
    for (k, v) in t.iter() {
        let key = format!("{prefix}{}", k.get_ref());
        match v.get_ref() {
            toml::de::DeValue::Table(sub) => lane_entries(sub, &format!("{key}."), out),
            _ => out.push((key, k.span(), v)),
        }
    }
}

/// A strip's `automation` table: one lane per key, points as written (validation
/// checks their order and ranges).
fn parse_automation(t: &Tbl<'_>) -> Result<Automation> {
    let mut automation = Automation::default();
    let Some(a) = t.table_opt("automation")? else {
        return Ok(automation);
    };
    let mut entries = Vec::new();
    lane_entries(a.t, "", &mut entries);
    for (key, span, v) in entries {
        let key = key.as_str();
        let Some(target) = LaneTarget::parse(key) else {
            let hint = lane_hint(key)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            return Err(t.doc.err_at(
                &span,
                "",
                format_args!(
                    "unknown key {key:?} in {}{hint}; lanes are gain_db, pan, mute, send.<BUS> and inserts.<i>.<param>",
                    a.path
                ),
            ));
        };
        let field = a.field(key);
        let unit = match target {
            LaneTarget::GainDb | LaneTarget::Send(_) => "dB",
            _ => "value",
        };
        let points = match v.get_ref() {
            toml::de::DeValue::Array(xs) => xs,
            other => {
                return Err(t.doc.err_at(
                    &v.span(),
                    &field,
                    format_args!(
                        "expected an array of [time_s, {unit}] pairs, found {}",
                        super::reader::describe(other)
                    ),
                ));
            }
        };
        let mut pts = Vec::with_capacity(points.len());
        for (j, p) in points.iter().enumerate() {
            let pf = format!("{field}[{j}]");
            let pair = match p.get_ref() {
                toml::de::DeValue::Array(xs) if xs.len() == 2 => xs,
                other => {
                    return Err(t.doc.err_at(
                        &p.span(),
                        &pf,
                        format_args!(
                            "expected a [time_s, {unit}] pair, found {}",
                            super::reader::describe(other)
                        ),
                    ));
                }
            };
            let time = num(t.doc, &pair[0], &format!("{pf}[0]"))?;
            let value = num(t.doc, &pair[1], &format!("{pf}[1]"))?;
            pts.push((time, value));
        }
        automation.lanes.push(AutoLane {
            target,
            points: pts,
        });
    }
    Ok(automation)
}

/// A reverb table's keys (`ir` as written: the caller resolves the path).
pub(crate) fn parse_reverb(r: &Tbl<'_>) -> Result<Reverb> {
    Ok(Reverb {
        ir: StemRef {
            name: r.str_req("ir")?,
            path: None,
            blake3: None,
        },
        predelay_ms: r.f64_or("predelay_ms", 0.0)?,
        wet_db: r.f64_or("wet_db", 0.0)?,
        dry: r.bool_or("dry", false)?,
    })
}

/// A `kind = "compressor"` insert: the compressor keys plus `kind` and `sidechain`.
pub(crate) fn parse_compressor_insert(c: &Tbl<'_>) -> Result<Compressor> {
    c.check_keys(&[
        "kind",
        "threshold_db",
        "ratio",
        "attack_ms",
        "release_ms",
        "knee_db",
        "makeup_db",
        "detector",
        "sidechain",
    ])?;
    let mut comp = compressor_fields(c, true)?;
    comp.sidechain = c.str_opt("sidechain")?;
    Ok(comp)
}

/// A compressor table; multiband bands (`with_detector = false`) only allow "peak";
/// a track's `compressor` key also takes `sidechain` (`with_sidechain`).
fn parse_compressor(c: &Tbl<'_>, with_detector: bool, with_sidechain: bool) -> Result<Compressor> {
    let keys: &[&str] = &[
        "threshold_db",
        "ratio",
        "attack_ms",
        "release_ms",
        "knee_db",
        "makeup_db",
        "detector",
        "sidechain",
    ];
    c.check_keys(if with_sidechain {
        keys
    } else {
        &keys[..keys.len() - 1]
    })?;
    let mut comp = compressor_fields(c, with_detector)?;
    if with_sidechain {
        comp.sidechain = c.str_opt("sidechain")?;
    }
    Ok(comp)
}

/// A compressor's fields (keys already checked).
fn compressor_fields(c: &Tbl<'_>, with_detector: bool) -> Result<Compressor> {
    let detector = match c.str_opt("detector")?.as_deref() {
        None | Some("peak") => Detector::Peak,
        Some("rms") if with_detector => Detector::Rms,
        Some("rms") => {
            return Err(field_err(
                c,
                "detector",
                "\"rms\" is not available in multiband bands (they use peak)",
            ));
        }
        Some(other) => {
            return Err(field_err(
                c,
                "detector",
                format_args!("{other:?} is not a detector (peak or rms)"),
            ));
        }
    };
    Ok(Compressor {
        threshold_db: c.f64_req("threshold_db")?,
        ratio: c.f64_req("ratio")?,
        attack_ms: c.f64_or("attack_ms", 10.0)?,
        release_ms: c.f64_or("release_ms", 100.0)?,
        knee_db: c.f64_or("knee_db", 0.0)?,
        makeup_db: c.f64_or("makeup_db", 0.0)?,
        detector,
        sidechain: None,
    })
}

fn parse_master(m: &Tbl<'_>) -> Result<Master> {
    m.check_keys(&["eq", "multiband", "width", "limiter"])?;
    let eq = parse_eq(m, "eq")?;
    let multiband = match m.table_opt("multiband")? {
        Some(mb) => {
            mb.check_keys(&["crossovers_hz", "bands"])?;
            let crossovers_hz = mb
                .numbers_opt("crossovers_hz")?
                .ok_or_else(|| mb.missing("crossovers_hz"))?;
            let items = mb.array_opt("bands")?.ok_or_else(|| mb.missing("bands"))?;
            let mut bands = Vec::with_capacity(items.len());
            for (j, v) in items.iter().enumerate() {
                let path = format!("{}[{j}]", mb.field("bands"));
                let b = super::reader::table(mb.doc, v, path.clone(), path)?;
                bands.push(parse_compressor(&b, false, false)?);
            }
            Some(Multiband {
                crossovers_hz,
                bands,
            })
        }
        None => None,
    };
    let limiter = match m.table_opt("limiter")? {
        Some(l) => {
            l.check_keys(&["ceiling_dbtp", "release_ms", "lookahead_ms"])?;
            let d = Limiter::default();
            Some(Limiter {
                ceiling_dbtp: l.f64_or("ceiling_dbtp", d.ceiling_dbtp)?,
                release_ms: l.f64_or("release_ms", d.release_ms)?,
                lookahead_ms: l.f64_or("lookahead_ms", d.lookahead_ms)?,
            })
        }
        None => None,
    };
    Ok(Master {
        eq,
        multiband,
        width: m.f64_opt("width")?,
        limiter,
    })
}

/// `[[deliverable]]` tables of a session or album. `session_rate` fills an absent
/// `sample_rate` (an album passes 0: "each song's own rate").
pub(crate) fn parse_deliverables(root: &Tbl<'_>, session_rate: u32) -> Result<Vec<Deliverable>> {
    let mut out = Vec::new();
    for (i, mut d) in root
        .tables("deliverable", "[[deliverable]]")?
        .into_iter()
        .enumerate()
    {
        let name = d.str_opt("name")?;
        let preset = d.str_opt("preset")?;
        // A preset alone names the deliverable after itself.
        let name = name.or_else(|| preset.clone());
        if let Some(n) = &name {
            d.set_path(format!("deliverable[{i}] {n:?}"));
        }
        d.check_keys(&[
            "name",
            "preset",
            "target_lufs",
            "ceiling_dbtp",
            "sample_rate",
            "bit_depth",
            "format",
            "variant",
            "noise_shaping",
        ])?;
        let name = name.ok_or_else(|| d.missing("name"))?;
        let mut del = match &preset {
            Some(p) => deliverable_preset(p).ok_or_else(|| {
                field_err(
                    &d,
                    "preset",
                    format_args!("{p:?} is not a preset ({})", PRESETS.join(", ")),
                )
            })?,
            None => Deliverable {
                name: String::new(),
                target_lufs: None,
                ceiling_dbtp: Some(-1.0),
                sample_rate: session_rate,
                bit_depth: 24,
                format: Format::Wav,
                variant: Variant::Main,
                album_gain_db: None,
                noise_shaping: false,
            },
        };
        del.name = name;
        if let Some(t) = d.f64_opt("target_lufs")? {
            del.target_lufs = Some(t);
        }
        if let Some(c) = d.f64_opt("ceiling_dbtp")? {
            del.ceiling_dbtp = Some(c);
        }
        if let Some(r) = d.u32_opt("sample_rate")? {
            del.sample_rate = r;
        }
        if let Some(b) = d.u32_opt("bit_depth")? {
            del.bit_depth = b;
        }
        if let Some(f) = d.str_opt("format")? {
            del.format = match f.as_str() {
                "wav" => Format::Wav,
                "flac" => Format::Flac,
                _ => {
                    return Err(field_err(
                        &d,
                        "format",
                        format_args!("{f:?} is not a format (wav or flac)"),
                    ));
                }
            };
        }
        del.noise_shaping = d.bool_or("noise_shaping", false)?;
        if let Some(v) = d.str_opt("variant")? {
            del.variant = Variant::parse(&v).ok_or_else(|| {
                field_err(
                    &d,
                    "variant",
                    format_args!("{v:?} is not a variant (main, instrumental, acappella, tv)"),
                )
            })?;
        }
        out.push(del);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Session> {
        parse_session_toml(text, "t.toml", Path::new("base"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_session_gets_defaults() {
        let s =
            parse("[session]\nsample_rate = 44100\n[[track]]\nname = \"A\"\nfile = \"a.wav\"\n")
                .unwrap();
        assert_eq!(s.sample_rate, 44100);
        assert_eq!(s.tail_s, 2.0);
        assert_eq!(s.name, "");
        assert_eq!(s.source, "t.toml");
        let t = &s.tracks[0];
        let f = t.file().expect("a file track");
        assert_eq!(f.path.as_deref(), Some(Path::new("base/a.wav")));
        assert_eq!(f.blake3, None);
        assert_eq!((t.gain_db, t.pan, t.clips[0].at_s), (0.0, 0.0, 0.0));
        assert_eq!(t.output, Output::Master);
        assert!(s.master.is_none());
    }

    #[test]
    fn integers_accepted_for_floats() {
        let s = parse("[session]\nsample_rate = 48000\ntail_s = 3\n[[track]]\nname = \"A\"\nfile = \"a.wav\"\ngain_db = -6\n").unwrap();
        assert_eq!(s.tail_s, 3.0);
        assert_eq!(s.tracks[0].gain_db, -6.0);
    }

    #[test]
    fn unknown_key_names_line_and_suggestion() {
        let e = err(
            "[session]\nsample_rate = 48000\n[[track]]\nname = \"A\"\nfile = \"a.wav\"\ngian_db = 1\n",
        );
        assert_eq!(
            e,
            "t.toml: line 6: unknown key \"gian_db\" in [[track]] (did you mean \"gain_db\"?)"
        );
    }

    #[test]
    fn presets_fill_and_explicit_keys_override() {
        let s = parse(
            "[session]\nsample_rate = 48000\n[[track]]\nname = \"A\"\nfile = \"a.wav\"\n\
             [[deliverable]]\npreset = \"cd\"\n[[deliverable]]\nname = \"loud\"\npreset = \"streaming\"\ntarget_lufs = -9\n",
        )
        .unwrap();
        let cd = &s.deliverables[0];
        assert_eq!(
            (
                cd.name.as_str(),
                cd.sample_rate,
                cd.bit_depth,
                cd.target_lufs
            ),
            ("cd", 44100, 16, None)
        );
        let loud = &s.deliverables[1];
        assert_eq!(
            (
                loud.name.as_str(),
                loud.sample_rate,
                loud.target_lufs,
                loud.ceiling_dbtp
            ),
            ("loud", 48000, Some(-9.0), Some(-1.0))
        );
    }

    #[test]
    fn every_preset_exists() {
        for p in PRESETS {
            assert!(deliverable_preset(p).is_some(), "{p}");
        }
        assert!(deliverable_preset("vinyl").is_none());
    }
}
