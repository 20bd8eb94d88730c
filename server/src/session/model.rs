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
    /// `[[track]]` in file order.
    pub tracks: Vec<Track>,
    /// `[[bus]]` in file order.
    pub buses: Vec<Bus>,
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
    pub file: StemRef,
    pub gain_db: f64,
    pub pan: f64,
    pub mute: bool,
    pub solo: bool,
    pub invert: bool,
    pub offset_s: f64,
    pub output: Output,
    pub eq: Vec<EqBand>,
    pub compressor: Option<Compressor>,
    pub sends: Vec<Send>,
    /// (time_s, dB added to gain_db), sorted by time as written (validation checks order).
    pub gain_automation: Vec<(f64, f64)>,
    pub tags: Vec<String>,
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
#[derive(Debug, Clone, Copy, PartialEq)]
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
    pub reverb: Option<Reverb>,
}

/// A convolution reverb on a bus.
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
