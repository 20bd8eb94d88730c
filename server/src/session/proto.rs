//! Model ↔ `bounce.v1.Session`: stems travel by content hash, never by path.
//!
//! `from_proto` fills the defaults the proto cannot tell apart from "unset": an empty
//! output is master, an empty detector peak, an EQ q of 0 is 0.707, a deliverable's
//! sample_rate 0 the session rate, bit_depth 0 24 bits, empty format wav, empty variant
//! main, an absent ceiling −1 dBTP; a named `preset` supplies every number left
//! unset. Numbers where 0 is a real value (gains, times, tail) are taken as sent.

use bounce_proto::v1 as pb;

use super::model::*;
use super::parse::{PRESETS, deliverable_preset};
use super::validate::validate;
use crate::{Error, Result};

/// A session document off the wire: parsed by the same code as a session file, every
/// path it names resolved to the hash the client sent (`StemRef.path` None), album
/// deliverables applied when asked. Not validated: the caller builds a
/// [`ValidSession`](super::ValidSession) from it.
pub fn from_document(d: &pb::SessionDocument) -> Result<Session> {
    let src = if d.source.is_empty() {
        "session.toml"
    } else {
        d.source.as_str()
    };
    let mut session = super::parse::parse_session_toml(&d.toml, src, std::path::Path::new(""))?;
    for stem in super::stems_mut(&mut session) {
        stem.path = None;
        match d.stems.get(&stem.name) {
            Some(h) => stem.blake3 = Some(h.clone()),
            None => {
                return Err(Error::field(
                    src,
                    "stems",
                    format_args!("{:?}: the request names no hash for this file", stem.name),
                ));
            }
        }
    }
    if d.replace_deliverables {
        session.deliverables = d
            .deliverables
            .iter()
            .enumerate()
            .map(|(i, x)| {
                deliverable_from(
                    src,
                    &format!("deliverable[{i}] {:?}", x.name),
                    x,
                    session.sample_rate,
                )
            })
            .collect::<Result<Vec<_>>>()?;
    }
    Ok(session)
}

/// A first-contract proto session as the model, defaults filled (see the module docs),
/// `StemRef.path` None, then [`validate`]d: the server trusts no client. Every stem must
/// carry a hash. (Kept for clients that predate `SessionDocument`.)
pub fn from_proto(p: &pb::Session) -> Result<Session> {
    let src = p.source.as_str();
    let mut tracks = Vec::with_capacity(p.tracks.len());
    for (i, t) in p.tracks.iter().enumerate() {
        let path = format!("track[{i}] {:?}", t.name);
        let gain_points: Vec<(f64, f64)> = t
            .gain_automation
            .iter()
            .map(|a| (a.time_s, a.value))
            .collect();
        let mut automation = Automation::default();
        if !gain_points.is_empty() {
            automation.lanes.push(AutoLane {
                target: LaneTarget::GainDb,
                points: gain_points,
            });
        }
        tracks.push(Track {
            name: t.name.clone(),
            clips: vec![Clip::whole(
                stem_from(src, &format!("{path}.file"), t.stem.as_ref())?,
                t.offset_s,
            )],
            from_file: true,
            gain_db: t.gain_db,
            pan: t.pan,
            mute: t.mute,
            solo: t.solo,
            invert: t.invert,
            output: output_from(&t.output),
            channels: None,
            inserts: Vec::new(),
            eq: eq_from(src, &format!("{path}.eq"), &t.eq)?,
            compressor: t
                .compressor
                .as_ref()
                .map(|c| compressor_from(src, &format!("{path}.compressor"), c))
                .transpose()?,
            sends: t
                .sends
                .iter()
                .map(|s| Send {
                    bus: s.bus.clone(),
                    level_db: s.level_db,
                    pre_fader: s.pre_fader,
                })
                .collect(),
            automation,
            tags: t.tags.clone(),
        });
    }
    let mut buses = Vec::with_capacity(p.buses.len());
    for (i, b) in p.buses.iter().enumerate() {
        let path = format!("bus[{i}] {:?}", b.name);
        let reverb = match &b.reverb {
            Some(r) => Some(Reverb {
                ir: stem_from(src, &format!("{path}.reverb.ir"), r.ir.as_ref())?,
                predelay_ms: r.predelay_ms,
                wet_db: r.wet_db,
                dry: r.dry,
            }),
            None => None,
        };
        buses.push(Bus {
            name: b.name.clone(),
            output: output_from(&b.output),
            gain_db: b.gain_db,
            pan: 0.0,
            mute: false,
            reverb,
            inserts: Vec::new(),
            sends: Vec::new(),
            automation: Automation::default(),
        });
    }
    let master = match &p.master {
        Some(m) => Some(master_from(src, m)?),
        None => None,
    };
    let deliverables = p
        .deliverables
        .iter()
        .enumerate()
        .map(|(i, d)| {
            deliverable_from(
                src,
                &format!("deliverable[{i}] {:?}", d.name),
                d,
                p.sample_rate,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let session = Session {
        name: p.name.clone(),
        sample_rate: p.sample_rate,
        tail_s: p.tail_s,
        tempo_bpm: None,
        tracks,
        buses,
        master_bus: None,
        master,
        deliverables,
        source: p.source.clone(),
    };
    validate(&session)?;
    Ok(session)
}

/// `[master]` as proto (also used by `MasterRequest`).
pub fn master_to(m: &Master) -> pb::Master {
    pb::Master {
        eq: m.eq.iter().map(eq_to).collect(),
        multiband: m.multiband.as_ref().map(|mb| pb::Multiband {
            crossovers_hz: mb.crossovers_hz.clone(),
            bands: mb
                .bands
                .iter()
                .map(|c| pb::MultibandBand {
                    threshold_db: c.threshold_db,
                    ratio: c.ratio,
                    attack_ms: c.attack_ms,
                    release_ms: c.release_ms,
                    knee_db: c.knee_db,
                    makeup_db: c.makeup_db,
                })
                .collect(),
        }),
        width: m.width,
        limiter: m.limiter.map(|l| pb::Limiter {
            ceiling_dbtp: l.ceiling_dbtp,
            release_ms: l.release_ms,
            lookahead_ms: l.lookahead_ms,
        }),
    }
}

/// A proto `[master]` as the model (not validated: ranges depend on the session rate).
/// `src` names the file in messages.
pub fn master_from(src: &str, m: &pb::Master) -> Result<Master> {
    Ok(Master {
        eq: eq_from(src, "master.eq", &m.eq)?,
        multiband: m.multiband.as_ref().map(|mb| Multiband {
            crossovers_hz: mb.crossovers_hz.clone(),
            bands: mb
                .bands
                .iter()
                .map(|b| Compressor {
                    threshold_db: b.threshold_db,
                    ratio: b.ratio,
                    attack_ms: b.attack_ms,
                    release_ms: b.release_ms,
                    knee_db: b.knee_db,
                    makeup_db: b.makeup_db,
                    detector: Detector::Peak,
                    sidechain: None,
                })
                .collect(),
        }),
        width: m.width,
        limiter: m.limiter.map(|l| Limiter {
            ceiling_dbtp: l.ceiling_dbtp,
            release_ms: l.release_ms,
            lookahead_ms: l.lookahead_ms,
        }),
    })
}

/// A deliverable as proto (`preset` is "": the numbers are explicit).
pub fn deliverable_to(d: &Deliverable) -> pb::Deliverable {
    pb::Deliverable {
        name: d.name.clone(),
        target_lufs: d.target_lufs,
        ceiling_dbtp: d.ceiling_dbtp,
        sample_rate: d.sample_rate,
        bit_depth: d.bit_depth,
        format: d.format.ext().to_string(),
        variant: d.variant.as_str().to_string(),
        album_gain_db: d.album_gain_db,
        preset: String::new(),
        noise_shaping: d.noise_shaping,
    }
}

/// A proto deliverable as the model, defaults filled; `session_rate` fills a 0 rate.
/// `path` is the field path used in messages.
pub fn deliverable_from(
    src: &str,
    path: &str,
    d: &pb::Deliverable,
    session_rate: u32,
) -> Result<Deliverable> {
    let base = if d.preset.is_empty() {
        None
    } else {
        Some(deliverable_preset(&d.preset).ok_or_else(|| {
            Error::field(
                src,
                format!("{path}.preset"),
                format_args!("{:?} is not a preset ({})", d.preset, PRESETS.join(", ")),
            )
        })?)
    };
    let format = match d.format.as_str() {
        "" => base.as_ref().map_or(Format::Wav, |b| b.format),
        "wav" => Format::Wav,
        "flac" => Format::Flac,
        f => {
            return Err(Error::field(
                src,
                format!("{path}.format"),
                format_args!("{f:?} is not a format (wav or flac)"),
            ));
        }
    };
    let variant = match d.variant.as_str() {
        "" => Variant::Main,
        v => Variant::parse(v).ok_or_else(|| {
            Error::field(
                src,
                format!("{path}.variant"),
                format_args!("{v:?} is not a variant (main, instrumental, acappella, tv)"),
            )
        })?,
    };
    let name = if d.name.is_empty() {
        d.preset.clone()
    } else {
        d.name.clone()
    };
    Ok(Deliverable {
        name,
        target_lufs: d.target_lufs.or(base.as_ref().and_then(|b| b.target_lufs)),
        ceiling_dbtp: d
            .ceiling_dbtp
            .or(base.as_ref().and_then(|b| b.ceiling_dbtp))
            .or(Some(-1.0)),
        sample_rate: match (d.sample_rate, &base) {
            (0, Some(b)) => b.sample_rate,
            (0, None) => session_rate,
            (r, _) => r,
        },
        bit_depth: match (d.bit_depth, &base) {
            (0, Some(b)) => b.bit_depth,
            (0, None) => 24,
            (b, _) => b,
        },
        format,
        variant,
        album_gain_db: d.album_gain_db,
        noise_shaping: d.noise_shaping,
    })
}

fn stem_from(src: &str, field: &str, s: Option<&pb::Stem>) -> Result<StemRef> {
    let Some(s) = s else {
        return Err(Error::field(src, field, "missing stem"));
    };
    if s.blake3.is_empty() {
        return Err(Error::field(
            src,
            field,
            format_args!("{:?}: missing blake3 hash", s.name),
        ));
    }
    Ok(StemRef {
        name: s.name.clone(),
        path: None,
        blake3: Some(s.blake3.clone()),
    })
}

fn output_from(s: &str) -> Output {
    match s {
        "" | "master" => Output::Master,
        b => Output::Bus(b.to_string()),
    }
}

fn eq_to(b: &EqBand) -> pb::EqBand {
    pb::EqBand {
        r#type: b.kind.as_str().into(),
        freq: b.freq,
        q: b.q,
        gain_db: b.gain_db,
    }
}

fn eq_from(src: &str, path: &str, bands: &[pb::EqBand]) -> Result<Vec<EqBand>> {
    bands
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let kind = EqType::parse(&b.r#type).ok_or_else(|| {
                Error::field(
                    src,
                    format!("{path}[{j}].type"),
                    format_args!("{:?} is not an EQ type (highpass, lowpass, lowshelf, highshelf, peak, notch)", b.r#type),
                )
            })?;
            Ok(EqBand { kind, freq: b.freq, q: if b.q == 0.0 { 0.707 } else { b.q }, gain_db: b.gain_db })
        })
        .collect()
}

fn compressor_from(src: &str, path: &str, c: &pb::Compressor) -> Result<Compressor> {
    let detector = match c.detector.as_str() {
        "" | "peak" => Detector::Peak,
        "rms" => Detector::Rms,
        d => {
            return Err(Error::field(
                src,
                format!("{path}.detector"),
                format_args!("{d:?} is not a detector (peak or rms)"),
            ));
        }
    };
    Ok(Compressor {
        threshold_db: c.threshold_db,
        ratio: c.ratio,
        attack_ms: c.attack_ms,
        release_ms: c.release_ms,
        knee_db: c.knee_db,
        makeup_db: c.makeup_db,
        detector,
        sidechain: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_defaults_are_filled() {
        let p = pb::Session {
            sample_rate: 44100,
            tail_s: 1.0,
            source: "p".into(),
            tracks: vec![pb::Track {
                name: "A".into(),
                stem: Some(pb::Stem {
                    blake3: "ab".repeat(32),
                    name: "a.wav".into(),
                }),
                eq: vec![pb::EqBand {
                    r#type: "peak".into(),
                    freq: 1000.0,
                    q: 0.0,
                    gain_db: 1.0,
                }],
                compressor: Some(pb::Compressor {
                    threshold_db: -10.0,
                    ratio: 2.0,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            deliverables: vec![
                pb::Deliverable {
                    name: "d".into(),
                    ..Default::default()
                },
                pb::Deliverable {
                    preset: "cd".into(),
                    target_lufs: Some(-12.0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let s = from_proto(&p).unwrap();
        assert_eq!(s.tracks[0].output, Output::Master);
        assert_eq!(s.tracks[0].eq[0].q, 0.707);
        assert_eq!(
            s.tracks[0].compressor.as_ref().unwrap().detector,
            Detector::Peak
        );
        assert_eq!(s.tracks[0].clips[0].file.path, None);
        let d = &s.deliverables[0];
        assert_eq!(
            (
                d.sample_rate,
                d.bit_depth,
                d.format,
                d.variant,
                d.ceiling_dbtp
            ),
            (44100, 24, Format::Wav, Variant::Main, Some(-1.0))
        );
        let cd = &s.deliverables[1];
        assert_eq!(
            (
                cd.name.as_str(),
                cd.sample_rate,
                cd.bit_depth,
                cd.target_lufs
            ),
            ("cd", 44100, 16, Some(-12.0))
        );
    }

    #[test]
    fn missing_hash_is_an_error() {
        let p = pb::Session {
            sample_rate: 48000,
            source: "p".into(),
            tracks: vec![pb::Track {
                name: "A".into(),
                stem: Some(pb::Stem {
                    blake3: String::new(),
                    name: "a.wav".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = from_proto(&p).unwrap_err().to_string();
        assert_eq!(e, "p: track[0] \"A\".file: \"a.wav\": missing blake3 hash");
    }
}
