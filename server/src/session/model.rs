//! The session model of CONTRACT.md, after parsing and with every default filled in.
//!
//! Parsing (TOML or proto) fills these; `validate` checks them; the engine reads them.
//! Units are the contract's: dB, ms, Hz, seconds.

use std::path::PathBuf;

/// A whole session: what to mix, how, and which files to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// `session.name` (may be empty).
    pub name: String,
    /// Render rate in Hz.
    pub sample_rate: u32,
    /// Extra seconds after the last stem (reverb tails).
    pub tail_s: f64,
    /// `session.tempo_bpm`: needed only where a time is given in beats.
    pub tempo_bpm: Option<f64>,
    /// `[[track]]` in file order.
    pub tracks: Vec<Track>,
    /// `[[bus]]` in file order.
    pub buses: Vec<Bus>,
    /// `[master_bus]`: a strip on the sum of everything routed to master, before
    /// mix.wav; `None`: the plain sum.
    pub master_bus: Option<MasterBus>,
    /// `[master]`; `None` when absent (the mix passes untouched).
    pub master: Option<Master>,
    /// `[[deliverable]]` in file order.
    pub deliverables: Vec<Deliverable>,
    /// Where the session came from (a file name), for messages only.
    pub source: String,
}

/// A reference to an audio file: a stem or an impulse response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StemRef {
    /// The path exactly as written in the session file (for messages).
    pub name: String,
    /// Client side: the path resolved relative to the session file.
    pub path: Option<PathBuf>,
    /// Server side: the BLAKE3 hash (lower-case hex) of the file's bytes.
    pub blake3: Option<String>,
}

/// Where a track or bus sends its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The master bus.
    Master,
    /// A named bus.
    Bus(String),
}

/// One `[[track]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub name: String,
    /// The regions the track plays. A first-contract `file` (at `offset_s`) is one clip
    /// with `from_file` set.
    pub clips: Vec<Clip>,
    /// The track was written with `file` + `offset_s` (messages and writers say so).
    pub from_file: bool,
    pub gain_db: f64,
    pub pan: f64,
    pub mute: bool,
    pub solo: bool,
    pub invert: bool,
    pub output: Output,
    /// `channels = 1 | 2`: a fixed width; `None`: stereo when any clip is.
    pub channels: Option<u8>,
    pub eq: Vec<EqBand>,
    pub compressor: Option<Compressor>,
    pub inserts: Vec<Insert>,
    pub sends: Vec<Send>,
    pub automation: Automation,
    pub tags: Vec<String>,
}

impl Track {
    /// The first-contract `file` of a track written that way.
    pub fn file(&self) -> Option<&StemRef> {
        match (self.from_file, self.clips.first()) {
            (true, Some(c)) => Some(&c.file),
            _ => None,
        }
    }
}

/// A region of a file on a track's timeline (CONTRACT.md, "Clips").
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub file: StemRef,
    /// Where the clip starts on the timeline (s). Default 0.
    pub at_s: f64,
    /// Where in the file it starts playing (s). Default 0.
    pub start_s: f64,
    /// How long it plays (s); `None`: to the file's end.
    pub length_s: Option<f64>,
    /// Default 0.
    pub gain_db: f64,
    /// Default 0.
    pub fade_in_s: f64,
    /// Default 0.
    pub fade_out_s: f64,
}

impl Clip {
    /// A whole file at `at_s` (the first contract's `file` + `offset_s`).
    pub fn whole(file: StemRef, at_s: f64) -> Self {
        Clip {
            file,
            at_s,
            start_s: 0.0,
            length_s: None,
            gain_db: 0.0,
            fade_in_s: 0.0,
            fade_out_s: 0.0,
        }
    }
}

pub use crate::inserts::{DelayFx, DelayTime, EqInsert, Gate, Insert, Saturation};

/// What an automation lane moves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LaneTarget {
    /// dB added to the static gain.
    GainDb,
    /// Replaces the static pan.
    Pan,
    /// A step lane: muted where ≥ 0.5.
    Mute,
    /// `send.<BUS>`: the send's level in dB.
    Send(String),
    /// `inserts.<i>.<param>`: `param` as written, e.g. `bands.1.gain_db`.
    Insert { index: usize, param: String },
}

impl LaneTarget {
    /// The key as written in the session file.
    pub fn key(&self) -> String {
        match self {
            LaneTarget::GainDb => "gain_db".into(),
            LaneTarget::Pan => "pan".into(),
            LaneTarget::Mute => "mute".into(),
            LaneTarget::Send(b) => format!("send.{b}"),
            LaneTarget::Insert { index, param } => format!("inserts.{index}.{param}"),
        }
    }

    /// Parses a key of an `automation` table.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "gain_db" => LaneTarget::GainDb,
            "pan" => LaneTarget::Pan,
            "mute" => LaneTarget::Mute,
            _ => {
                if let Some(bus) = key.strip_prefix("send.") {
                    if bus.is_empty() {
                        return None;
                    }
                    LaneTarget::Send(bus.to_string())
                } else if let Some(rest) = key.strip_prefix("inserts.") {
                    let (i, param) = rest.split_once('.')?;
                    if param.is_empty() || i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    LaneTarget::Insert {
                        index: i.parse().ok()?,
                        param: param.to_string(),
                    }
                } else {
                    return None;
                }
            }
        })
    }
}

/// One automation lane: points (time_s on the session timeline, value), in the order
/// written (validation checks time order).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoLane {
    pub target: LaneTarget,
    pub points: Vec<(f64, f64)>,
}

/// A strip's automation lanes, in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Automation {
    pub lanes: Vec<AutoLane>,
}

impl Automation {
    /// The points of the lane for `target`, if any.
    pub fn get(&self, target: &LaneTarget) -> Option<&[(f64, f64)]> {
        self.lanes
            .iter()
            .find(|l| &l.target == target)
            .map(|l| l.points.as_slice())
    }

    /// The gain_db lane's points (empty when there is none).
    pub fn gain_db(&self) -> &[(f64, f64)] {
        self.get(&LaneTarget::GainDb).unwrap_or(&[])
    }

    /// The lanes of insert `index`: (param, points).
    pub fn of_insert(&self, index: usize) -> impl Iterator<Item = (&str, &[(f64, f64)])> {
        self.lanes.iter().filter_map(move |l| match &l.target {
            LaneTarget::Insert { index: i, param } if *i == index => {
                Some((param.as_str(), l.points.as_slice()))
            }
            _ => None,
        })
    }

    /// Total points over all lanes.
    pub fn points(&self) -> usize {
        self.lanes.iter().map(|l| l.points.len()).sum()
    }
}

/// `[master_bus]`: the strip on the sum of everything routed to master.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MasterBus {
    pub gain_db: f64,
    pub pan: f64,
    pub mute: bool,
    pub inserts: Vec<Insert>,
    pub automation: Automation,
}

/// RBJ cookbook filter types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EqType {
    Highpass,
    Lowpass,
    Lowshelf,
    Highshelf,
    Peak,
    Notch,
}

impl EqType {
    /// The name used in session files.
    pub fn as_str(self) -> &'static str {
        match self {
            EqType::Highpass => "highpass",
            EqType::Lowpass => "lowpass",
            EqType::Lowshelf => "lowshelf",
            EqType::Highshelf => "highshelf",
            EqType::Peak => "peak",
            EqType::Notch => "notch",
        }
    }
    /// Parses a session-file name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "highpass" => EqType::Highpass,
            "lowpass" => EqType::Lowpass,
            "lowshelf" => EqType::Lowshelf,
            "highshelf" => EqType::Highshelf,
            "peak" => EqType::Peak,
            "notch" => EqType::Notch,
            _ => return None,
        })
    }
}

/// One EQ band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EqBand {
    pub kind: EqType,
    pub freq: f64,
    /// Default 0.707.
    pub q: f64,
    /// Default 0.
    pub gain_db: f64,
}

/// Compressor level detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Peak,
    Rms,
}

/// A compressor (track strip or one multiband band).
#[derive(Debug, Clone, PartialEq)]
pub struct Compressor {
    pub threshold_db: f64,
    pub ratio: f64,
    /// Default 10.
    pub attack_ms: f64,
    /// Default 100.
    pub release_ms: f64,
    /// Default 0 (hard knee).
    pub knee_db: f64,
    /// Default 0.
    pub makeup_db: f64,
    /// Default peak.
    pub detector: Detector,
    /// `sidechain = NAME`: the detector listens to track NAME's pre-fader tap or bus
    /// NAME's summed input (strips only; never in multiband bands).
    pub sidechain: Option<String>,
}

/// A send from a track to a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    pub bus: String,
    /// Default 0.
    pub level_db: f64,
    /// Default false (post-fader).
    pub pre_fader: bool,
}

/// One `[[bus]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    pub name: String,
    /// Default master.
    pub output: Output,
    pub gain_db: f64,
    /// Balance, default 0.
    pub pan: f64,
    /// Default false.
    pub mute: bool,
    pub reverb: Option<Reverb>,
    pub inserts: Vec<Insert>,
    pub sends: Vec<Send>,
    pub automation: Automation,
}

/// A convolution reverb (a bus's `reverb` key, or a `kind = "reverb"` insert).
#[derive(Debug, Clone, PartialEq)]
pub struct Reverb {
    pub ir: StemRef,
    pub predelay_ms: f64,
    pub wet_db: f64,
    /// false: the bus passes the wet signal only.
    pub dry: bool,
}

/// `[master]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Master {
    pub eq: Vec<EqBand>,
    pub multiband: Option<Multiband>,
    /// Side gain; `None` = 1 (unchanged).
    pub width: Option<f64>,
    pub limiter: Option<Limiter>,
}

/// The multiband compressor: bands = crossovers + 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Multiband {
    pub crossovers_hz: Vec<f64>,
    pub bands: Vec<Compressor>,
}

/// `[master].limiter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limiter {
    /// Default -1.
    pub ceiling_dbtp: f64,
    /// Default 50.
    pub release_ms: f64,
    /// Default 5.
    pub lookahead_ms: f64,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            ceiling_dbtp: -1.0,
            release_ms: 50.0,
            lookahead_ms: 5.0,
        }
    }
}

/// Which tracks sound in a deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Everything.
    Main,
    /// Tracks tagged "vocal" muted.
    Instrumental,
    /// Only tracks tagged "vocal" sound.
    Acappella,
    /// Tracks tagged "lead" muted.
    Tv,
}

impl Variant {
    /// The name used in session files.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Main => "main",
            Variant::Instrumental => "instrumental",
            Variant::Acappella => "acappella",
            Variant::Tv => "tv",
        }
    }
    /// Parses a session-file name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "main" => Variant::Main,
            "instrumental" => Variant::Instrumental,
            "acappella" => Variant::Acappella,
            "tv" => Variant::Tv,
            _ => return None,
        })
    }
}

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wav,
    Flac,
}

impl Format {
    /// File extension (and session-file name).
    pub fn ext(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Flac => "flac",
        }
    }
}

/// One `[[deliverable]]`, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Deliverable {
    pub name: String,
    pub target_lufs: Option<f64>,
    /// Default -1.
    pub ceiling_dbtp: Option<f64>,
    /// Default: the session rate.
    pub sample_rate: u32,
    /// 16, 24 (integer PCM, TPDF dither) or 32 (float). Default 24.
    pub bit_depth: u32,
    pub format: Format,
    pub variant: Variant,
    /// Album mode: this fixed gain (dB) before the limiter instead of the search for
    /// `target_lufs` (`bounce album` sets it; session files do not).
    pub album_gain_db: Option<f64>,
    /// TPDF dither with 5th-order noise shaping (Lipshitz's E-weighted filter), which
    /// moves the dither noise out of the ear's most sensitive band. Default false.
    pub noise_shaping: bool,
}

/// Every audio file a session names (clips, reverb IRs), in a fixed order.
pub fn stems(s: &Session) -> Vec<&StemRef> {
    let mut out = Vec::new();
    for t in &s.tracks {
        out.extend(t.clips.iter().map(|c| &c.file));
        out.extend(insert_irs(&t.inserts));
    }
    for b in &s.buses {
        out.extend(b.reverb.as_ref().map(|r| &r.ir));
        out.extend(insert_irs(&b.inserts));
    }
    if let Some(m) = &s.master_bus {
        out.extend(insert_irs(&m.inserts));
    }
    out
}

fn insert_irs(ins: &[Insert]) -> impl Iterator<Item = &StemRef> {
    ins.iter().filter_map(Insert::file)
}

/// [`stems`], mutable (the client fills hashes, the server resolves them).
pub fn stems_mut(s: &mut Session) -> Vec<&mut StemRef> {
    let mut out = Vec::new();
    for t in &mut s.tracks {
        out.extend(t.clips.iter_mut().map(|c| &mut c.file));
        out.extend(insert_irs_mut(&mut t.inserts));
    }
    for b in &mut s.buses {
        out.extend(b.reverb.as_mut().map(|r| &mut r.ir));
        out.extend(insert_irs_mut(&mut b.inserts));
    }
    if let Some(m) = &mut s.master_bus {
        out.extend(insert_irs_mut(&mut m.inserts));
    }
    out
}

fn insert_irs_mut(ins: &mut [Insert]) -> impl Iterator<Item = &mut StemRef> {
    ins.iter_mut().filter_map(Insert::file_mut)
}
