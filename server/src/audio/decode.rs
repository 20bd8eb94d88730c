//! Decoding with symphonia: probe, streaming stem reader, whole-file read.
//!
//! Samples are converted straight from the decoder's buffer into the caller's (or the
//! resampler's) buffers: one conversion, no interleaved staging. Integers become
//! `i / 2^(bits-1)` exactly (symphonia scales FLAC to 32 bits and keeps WAV at its
//! width, so the divisor comes from the buffer's sample type).
//!
//! # Never trusting a file
//! - Headers are checked before symphonia opens the file ([`super::precheck`]): the
//!   length fields it would allocate from must lie inside the file, and the rate,
//!   channel and sample-size fields it divides by must be sane.
//! - Every call into symphonia runs under `catch_unwind`: a decoder panic becomes
//!   `Error::BadAudio("cannot decode FILE: …")`, and the panic message is kept out of
//!   the log (it is in the error instead). The release profile unwinds (no
//!   `panic = "abort"`).
//! - Frame counts from headers are estimates: [`probe`] reports them (or counts when
//!   the container gives none), but decoding counts the real frames and stops with
//!   `Error::Limit` as soon as a file passes its frame limit (the `*_limited`
//!   functions take it; the others use [`Limits::default`]). A stream that ends short
//!   of a count that its format defines as exact (PCM checked against the file size,
//!   FLAC STREAMINFO) is truncated, an error; Vorbis, MP3, AAC and the like end where
//!   their data ends.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::path::Path;

use symphonia::core::audio::{AudioBufferRef, Signal};
use symphonia::core::codecs::{self, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadBytes};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::{RATE_RANGE, StreamResampler, output_len};
use crate::session::Limits;
use crate::{Error, Result};

/// Most channels any input may have.
pub const MAX_CHANNELS: usize = 8;
/// Longest input, in seconds (24 h).
pub const MAX_SECONDS: u64 = 24 * 3600;

/// What [`probe`] finds: channels, rate and frame count of a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StemInfo {
    /// Channel count (1..=8).
    pub channels: usize,
    /// Sample rate of the file, Hz.
    pub sample_rate: u32,
    /// Frames in the file (at its own rate) as its header declares them, or as counted
    /// when it declares none. Exact for PCM (checked against the file size) and FLAC;
    /// an estimate for other codecs: decoding yields the real count.
    pub frames: u64,
}

/// Probes a file: channels, rate, frame count (decodes to count when the container
/// doesn't say, e.g. some MP3/OGG, at most 24 h). `display` is the name used in errors
/// (the path as the user wrote it). A PCM file whose data is shorter than its header
/// says is reported here already.
pub fn probe(path: &Path, display: &str) -> Result<StemInfo> {
    guarded(display, || {
        let src = Source::open(path, display, |rate| MAX_SECONDS * u64::from(rate))?;
        Ok(src.info)
    })
}

thread_local! {
    /// Set while this thread runs symphonia under [`guarded`].
    static IN_DECODER: Cell<bool> = const { Cell::new(false) };
    /// The message of a panic caught there.
    static PANIC_MSG: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f` (which calls into symphonia) so that a panic becomes a `BadAudio` error
/// naming the file; the panic's message goes into the error, not to stderr.
fn guarded<T>(display: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_DECODER.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = format!("{}{at}", panic_text(info.payload()));
                PANIC_MSG.with(|m| *m.borrow_mut() = Some(msg));
            } else {
                prev(info);
            }
        }));
    });
    let outer = IN_DECODER.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    IN_DECODER.with(|c| c.set(outer));
    match r {
        Ok(r) => r,
        Err(payload) => {
            let msg = PANIC_MSG
                .with(|m| m.borrow_mut().take())
                .unwrap_or_else(|| panic_text(&*payload));
            Err(Error::BadAudio(format!(
                "cannot decode {display}: the decoder failed on this data (panic: {msg})"
            )))
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Input frames (at `from` Hz) whose resampled length to `to` Hz stays within `max`
/// output frames: the largest n with `ceil(n * to / from) <= max`.
fn input_budget(max: u64, from: u32, to: u32) -> u64 {
    let n = u128::from(max) * u128::from(from) / u128::from(to);
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Where a frame limit applies and how to word it.
#[derive(Debug, Clone, Copy)]
struct FrameLimit {
    /// Frames allowed, at `rate`.
    max: u64,
    rate: u32,
}

impl FrameLimit {
    fn error(&self, display: &str) -> Error {
        Error::Limit(format!(
            "{display}: longer than the limit of {} frames ({:.1} s at {} Hz) for one file",
            self.max,
            self.max as f64 / f64::from(self.rate),
            self.rate
        ))
    }
}

/// Streams a stem decoded and resampled to `target_rate`, 1 or 2 channels as in the file.
pub struct StemReader {
    cursor: Cursor,
    resampler: Option<Resampling>,
    channels: usize,
    /// Frames the header leads us to expect (at the target rate).
    frames: u64,
    /// Frames yielded so far.
    yielded: u64,
    /// A read failed (the decoder's state is unknown): every later read fails.
    failed: bool,
}

struct Resampling {
    rs: StreamResampler,
    from: u32,
    to: u32,
    /// Input frames fed so far.
    fed: u64,
    /// Output frames in total, known once the input has ended.
    total: Option<u64>,
}

impl std::fmt::Debug for StemReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StemReader")
            .field("file", &self.cursor.display)
            .field("channels", &self.channels)
            .field("frames", &self.frames)
            .field("yielded", &self.yielded)
            .field("resampling", &self.resampler.is_some())
            .finish()
    }
}

impl StemReader {
    /// [`open_limited`](Self::open_limited) with `Limits::default().max_stem_frames`.
    pub fn open(path: &Path, display: &str, target_rate: u32) -> Result<Self> {
        Self::open_limited(
            path,
            display,
            target_rate,
            Limits::default().max_stem_frames,
        )
    }

    /// Opens a stem for streaming at `target_rate`. More than 2 channels is an error.
    /// `max_frames` bounds the stem's length at `target_rate` (`Limits.max_stem_frames`):
    /// a header declaring more is refused here, and data running past it stops
    /// [`read`](Self::read) with `Error::Limit` naming the file and the limit.
    pub fn open_limited(
        path: &Path,
        display: &str,
        target_rate: u32,
        max_frames: u64,
    ) -> Result<Self> {
        guarded(display, || {
            Self::open_inner(path, display, target_rate, max_frames)
        })
    }

    fn open_inner(path: &Path, display: &str, target_rate: u32, max_frames: u64) -> Result<Self> {
        if !RATE_RANGE.contains(&target_rate) {
            return Err(Error::Internal(format!(
                "StemReader::open: target rate {target_rate} Hz"
            )));
        }
        let limit = FrameLimit {
            max: max_frames,
            rate: target_rate,
        };
        let src = Source::open(path, display, |rate| {
            input_budget(max_frames, rate, target_rate).min(MAX_SECONDS * u64::from(rate))
        })?;
        let info = src.info;
        if info.channels > 2 {
            return Err(bad(
                display,
                format_args!("{} channels; stems must be mono or stereo", info.channels),
            ));
        }
        let frames = output_len(info.frames, info.sample_rate, target_rate);
        if frames > max_frames {
            return Err(limit.error(display));
        }
        let max_in = src.max_in;
        let resampler = if info.sample_rate == target_rate {
            None
        } else {
            // Sized for the most input the limit allows; the real output length is
            // fixed when the input ends.
            let rs = StreamResampler::new(info.sample_rate, target_rate, info.channels, max_in)
                .map_err(|e| match e {
                    Error::Limit(m) => Error::Limit(format!("{display}: {m}")),
                    other => other,
                })?;
            Some(Resampling {
                rs,
                from: info.sample_rate,
                to: target_rate,
                fed: 0,
                total: None,
            })
        };
        Ok(StemReader {
            cursor: src.into_cursor(limit)?,
            resampler,
            channels: info.channels,
            frames,
            yielded: 0,
            failed: false,
        })
    }

    /// Channels (1 or 2).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames this reader is expected to yield: the header's count n at the file rate,
    /// ceil(n * target / file_rate) otherwise. Exact for PCM and FLAC; for other codecs
    /// the real count is known when [`read`](Self::read) returns 0
    /// ([`frames_read`](Self::frames_read)).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames yielded so far.
    pub fn frames_read(&self) -> u64 {
        self.yielded
    }

    /// Fills `out[ch][..k]` with the next k frames (k = `out[0].len()` until the end);
    /// returns k; 0 at the end. Every out slice has the same length; `out.len() ==
    /// channels()`. In total: the real frames of the file (resampled: ceil(n * target /
    /// file_rate) for n real input frames), never more than the limit (past it:
    /// `Error::Limit`). After an error every later call fails.
    pub fn read(&mut self, out: &mut [&mut [f32]]) -> Result<usize> {
        if out.len() != self.channels || out.iter().any(|o| o.len() != out[0].len()) {
            return Err(Error::Internal(format!(
                "StemReader::read: {} output slices of unequal or wrong count for {} channels",
                out.len(),
                self.channels
            )));
        }
        if self.failed {
            return Err(bad(
                &self.cursor.display,
                "an earlier read failed; the stream cannot continue",
            ));
        }
        let display = self.cursor.display.clone();
        let r = guarded(&display, || self.read_inner(out));
        match r {
            Ok(k) => {
                self.yielded += k as u64;
                Ok(k)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn read_inner(&mut self, out: &mut [&mut [f32]]) -> Result<usize> {
        let want = out[0].len();
        let mut k = 0;
        let Some(rsm) = &mut self.resampler else {
            while k < want {
                let n = self.cursor.fill(out, k, want - k)?;
                if n == 0 {
                    break;
                }
                k += n;
            }
            return Ok(k);
        };
        while k < want {
            let room = match rsm.total {
                Some(t) => {
                    let left = t.saturating_sub(self.yielded + k as u64);
                    usize::try_from(left).unwrap_or(usize::MAX).min(want - k)
                }
                None => want - k,
            };
            if room == 0 {
                break;
            }
            let n = {
                let mut parts: [&mut [f32]; 2] = [&mut [], &mut []];
                for (p, o) in parts.iter_mut().zip(out.iter_mut()) {
                    *p = &mut o[k..k + room];
                }
                rsm.rs.pull(&mut parts[..self.channels], 0)?
            };
            k += n;
            if n > 0 {
                continue;
            }
            if !rsm.rs.wants_input() {
                break;
            }
            let (bufs, range) = rsm.rs.input_mut();
            let got = self.cursor.fill(bufs, range.start, range.len())?;
            if got == 0 {
                rsm.rs.finish();
                rsm.total = Some(output_len(rsm.fed, rsm.from, rsm.to));
            } else {
                rsm.fed += got as u64;
                rsm.rs.commit(got)?;
            }
        }
        Ok(k)
    }
}

/// Whole-file decode (IRs, `analyze`, `master`): planar channels at the file's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBuffer {
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// One vector per channel, all the same length.
    pub channels: Vec<Vec<f32>>,
}

impl AudioBuffer {
    /// Frames per channel.
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }
}

/// [`read_all_limited`] with `Limits::default().max_stem_frames` (a whole song fits).
pub fn read_all(path: &Path, display: &str) -> Result<AudioBuffer> {
    read_all_limited(path, display, Limits::default().max_stem_frames)
}

/// Decodes a whole file: planar channels at the file's rate, any channel count up to 8,
/// at most `max_frames` frames at the file's rate (`Limits.max_ir_frames` for an IR):
/// a header declaring more is refused before decoding, and data running past the limit
/// stops with `Error::Limit` naming the file and the limit. Memory grows with the data
/// as it arrives, never with what a header claims.
pub fn read_all_limited(path: &Path, display: &str, max_frames: u64) -> Result<AudioBuffer> {
    guarded(display, || read_all_inner(path, display, max_frames))
}

fn read_all_inner(path: &Path, display: &str, max_frames: u64) -> Result<AudioBuffer> {
    let src = Source::open(path, display, |rate| {
        max_frames.min(MAX_SECONDS * u64::from(rate))
    })?;
    let info = src.info;
    let limit = FrameLimit {
        max: max_frames,
        rate: info.sample_rate,
    };
    if info.frames > max_frames {
        return Err(limit.error(display));
    }
    const STEP: usize = 1 << 16;
    let mut channels = vec![Vec::<f32>::new(); info.channels];
    let mut cursor = src.into_cursor(limit)?;
    let mut k = 0;
    loop {
        for c in &mut channels {
            c.try_reserve(STEP).map_err(|_| {
                Error::Limit(format!(
                    "{display}: {} frames do not fit in memory",
                    k + STEP
                ))
            })?;
            c.resize(k + STEP, 0.0);
        }
        let mut filled = 0;
        while filled < STEP {
            let got = cursor.fill(&mut channels, k + filled, STEP - filled)?;
            if got == 0 {
                break;
            }
            filled += got;
        }
        k += filled;
        if filled < STEP {
            break;
        }
    }
    for c in &mut channels {
        c.truncate(k);
        c.shrink_to_fit();
    }
    Ok(AudioBuffer {
        sample_rate: info.sample_rate,
        channels,
    })
}

/// A file opened and probed, frame count known (or estimated).
struct Source {
    format: Box<dyn FormatReader>,
    track_id: u32,
    params: CodecParameters,
    info: StemInfo,
    display: String,
    /// `info.frames` is exact by the format's definition: a shorter stream is truncated.
    exact: bool,
    /// Most input frames decoding may yield (the caller's limit at this file's rate).
    max_in: u64,
    /// The format puts the end of the audio at `info.frames`: decoded data beyond it is
    /// padding, dropped (Ogg Vorbis: the last page's granule position; AIFF: COMM).
    ends_at_count: bool,
}

fn bad(display: &str, what: impl std::fmt::Display) -> Error {
    Error::BadAudio(format!("{display}: {what}"))
}

fn open_format(
    path: &Path,
    display: &str,
) -> Result<(Box<dyn FormatReader>, super::precheck::Header)> {
    let mut file = File::open(path).map_err(|e| Error::io(display, e))?;
    let meta = file.metadata().map_err(|e| Error::io(display, e))?;
    if !meta.is_file() {
        return Err(bad(display, "not a regular file"));
    }
    let len = meta.len();
    if len == 0 {
        return Err(bad(display, "empty file (0 bytes)"));
    }
    let header = super::precheck::check(&file, len, display)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(display, e))?;
    let mss = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &opts, &MetadataOptions::default())
        .map_err(|e| {
            bad(
                display,
                format_args!("not a readable audio file ({})", sym_msg(&e)),
            )
        })?;
    Ok((probed.format, header))
}

/// Bytes per sample for PCM codecs (to check the data length against the header).
fn pcm_sample_bytes(codec: codecs::CodecType) -> Option<u64> {
    use codecs::*;
    Some(match codec {
        CODEC_TYPE_PCM_U8 | CODEC_TYPE_PCM_S8 => 1,
        CODEC_TYPE_PCM_S16LE | CODEC_TYPE_PCM_S16BE | CODEC_TYPE_PCM_U16LE
        | CODEC_TYPE_PCM_U16BE => 2,
        CODEC_TYPE_PCM_S24LE | CODEC_TYPE_PCM_S24BE | CODEC_TYPE_PCM_U24LE
        | CODEC_TYPE_PCM_U24BE => 3,
        CODEC_TYPE_PCM_S32LE | CODEC_TYPE_PCM_S32BE | CODEC_TYPE_PCM_U32LE
        | CODEC_TYPE_PCM_U32BE | CODEC_TYPE_PCM_F32LE | CODEC_TYPE_PCM_F32BE => 4,
        CODEC_TYPE_PCM_F64LE | CODEC_TYPE_PCM_F64BE => 8,
        _ => return None,
    })
}

fn sym_msg(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "unexpected end of file".into()
        }
        other => other.to_string(),
    }
}

fn first_audio_track(format: &dyn FormatReader, display: &str) -> Result<(u32, CodecParameters)> {
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != codecs::CODEC_TYPE_NULL)
        .ok_or_else(|| bad(display, "no audio track"))?;
    Ok((track.id, track.codec_params.clone()))
}

impl Source {
    /// Opens and probes a file; `max_in(rate)` is the most frames decoding may yield
    /// at the file's rate (it bounds the counting pass too).
    fn open(path: &Path, display: &str, max_in: impl Fn(u32) -> u64) -> Result<Self> {
        let (format, header) = open_format(path, display)?;
        let (track_id, mut params) = first_audio_track(&*format, display)?;
        if let Some(n) = header.aiff_frames {
            params.n_frames = Some(n);
        }
        let sample_rate = params
            .sample_rate
            .filter(|r| *r > 0)
            .ok_or_else(|| bad(display, "no sample rate"))?;
        if !RATE_RANGE.contains(&sample_rate) {
            return Err(Error::Limit(format!(
                "{display}: sample rate {sample_rate} Hz is outside {}..={} Hz",
                RATE_RANGE.start(),
                RATE_RANGE.end()
            )));
        }
        let mut src = Source {
            format,
            track_id,
            info: StemInfo {
                channels: 0,
                sample_rate,
                frames: 0,
            },
            display: display.to_string(),
            ends_at_count: header.aiff_frames.is_some()
                || params.codec == codecs::CODEC_TYPE_VORBIS,
            params,
            exact: false,
            max_in: max_in(sample_rate),
        };
        let channels = src.params.channels.map(|c| c.count());
        if let Some(c) = channels {
            src.check_channels(c)?;
        }
        match (channels, src.params.n_frames) {
            (Some(c), Some(n)) if n > 0 => {
                src.info.channels = c;
                src.info.frames = n;
                src.check_length()?;
                if let Some(b) = pcm_sample_bytes(src.params.codec) {
                    src = src.check_pcm_size(path, b)?;
                    src.exact = true;
                } else {
                    src.exact = src.params.codec == codecs::CODEC_TYPE_FLAC;
                }
            }
            // The container doesn't say: decode once to count, then reopen.
            _ => {
                let (c, n) = src.count_frames()?;
                let mut again = Source::open_counted(path, display)?;
                again.info = StemInfo {
                    channels: c,
                    sample_rate,
                    frames: n,
                };
                again.exact = true;
                again.max_in = src.max_in;
                again.ends_at_count = false;
                src = again;
            }
        }
        if src.info.frames == 0 {
            return Err(bad(display, "no audio (0 frames)"));
        }
        Ok(src)
    }

    /// Reopens a file (second pass after counting, or after the PCM size check).
    fn open_counted(path: &Path, display: &str) -> Result<Self> {
        let (format, header) = open_format(path, display)?;
        let (track_id, mut params) = first_audio_track(&*format, display)?;
        if let Some(n) = header.aiff_frames {
            params.n_frames = Some(n);
        }
        Ok(Source {
            ends_at_count: header.aiff_frames.is_some(),
            track_id,
            params,
            format,
            info: StemInfo {
                channels: 0,
                sample_rate: 0,
                frames: 0,
            },
            display: display.to_string(),
            exact: false,
            max_in: 0,
        })
    }

    fn check_channels(&self, c: usize) -> Result<()> {
        if c == 0 {
            return Err(bad(&self.display, "0 channels"));
        }
        if c > MAX_CHANNELS {
            return Err(Error::Limit(format!(
                "{}: {c} channels; at most {MAX_CHANNELS} are accepted",
                self.display
            )));
        }
        Ok(())
    }

    fn check_length(&self) -> Result<()> {
        let max = MAX_SECONDS * u64::from(self.info.sample_rate);
        if self.info.frames > max {
            return Err(Error::Limit(format!(
                "{}: {:.1} h long; at most 24 h is accepted",
                self.display,
                self.info.frames as f64 / f64::from(self.info.sample_rate) / 3600.0
            )));
        }
        Ok(())
    }

    /// Compares the header's frame count with the bytes the file holds (PCM only).
    fn check_pcm_size(self, path: &Path, sample_bytes: u64) -> Result<Self> {
        let file_len = std::fs::metadata(path)
            .map_err(|e| Error::io(&self.display, e))?
            .len();
        let Source {
            format,
            track_id,
            params,
            info,
            display,
            max_in,
            ends_at_count,
            ..
        } = self;
        let mss = format.into_inner();
        let data_start = mss.pos();
        drop(mss);
        let frame_bytes = sample_bytes * info.channels as u64;
        let held = file_len.saturating_sub(data_start) / frame_bytes;
        if held < info.frames {
            return Err(bad(
                &display,
                format_args!(
                    "truncated: header says {} frames, found {held}",
                    info.frames
                ),
            ));
        }
        // into_inner consumed the reader: open again, positioned at the data.
        let mut again = Source::open_counted(path, &display)?;
        if again.track_id != track_id || again.params.n_frames != params.n_frames {
            return Err(Error::Internal(format!(
                "{display}: file changed while reading"
            )));
        }
        again.info = info;
        again.max_in = max_in;
        again.ends_at_count = ends_at_count;
        Ok(again)
    }

    /// Decodes everything to count frames (containers that don't say), at most
    /// `max_in` frames.
    fn count_frames(&mut self) -> Result<(usize, u64)> {
        let mut decoder = make_decoder(&self.params, &self.display)?;
        let (mut channels, mut n) = (0usize, 0u64);
        while let Some(packet) = next_packet(&mut *self.format, &self.display, n)? {
            if packet.track_id() != self.track_id {
                continue;
            }
            let buf = decoder.decode(&packet).map_err(|e| {
                bad(
                    &self.display,
                    format_args!("corrupt data near frame {n} ({})", sym_msg(&e)),
                )
            })?;
            let c = buf.spec().channels.count();
            if buf.frames() == 0 {
                continue;
            }
            if channels == 0 {
                self.check_channels(c)?;
                channels = c;
            } else if c != channels {
                return Err(bad(
                    &self.display,
                    format_args!("channel count changes near frame {n}"),
                ));
            }
            if buf.spec().rate != self.info.sample_rate {
                return Err(bad(
                    &self.display,
                    format_args!("sample rate changes near frame {n}"),
                ));
            }
            n += buf.frames() as u64;
            self.info.frames = n;
            self.check_length()?;
            if n > self.max_in {
                return Err(Error::Limit(format!(
                    "{}: longer than the limit of {} frames ({:.1} s at {} Hz) for one file",
                    self.display,
                    self.max_in,
                    self.max_in as f64 / f64::from(self.info.sample_rate),
                    self.info.sample_rate
                )));
            }
        }
        if n == 0 {
            return Err(bad(&self.display, "no audio (0 frames)"));
        }
        Ok((channels, n))
    }

    /// The decoding cursor; `limit` words the error when the data passes `max_in`.
    fn into_cursor(self, limit: FrameLimit) -> Result<Cursor> {
        let decoder = make_decoder(&self.params, &self.display)?;
        Ok(Cursor {
            format: self.format,
            decoder,
            track_id: self.track_id,
            channels: self.info.channels,
            rate: self.info.sample_rate,
            declared: self.info.frames,
            exact: self.exact,
            stop_at: self.ends_at_count.then_some(self.info.frames),
            max_in: self.max_in,
            limit,
            decoded: 0,
            pos: 0,
            len: 0,
            ended: false,
            display: self.display,
        })
    }
}

fn make_decoder(params: &CodecParameters, display: &str) -> Result<Box<dyn Decoder>> {
    symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| bad(display, format_args!("unsupported codec ({})", sym_msg(&e))))
}

/// The next packet, `None` at the end of the stream. `at` is the frame count so far
/// (for messages).
fn next_packet(
    format: &mut dyn FormatReader,
    display: &str,
    at: u64,
) -> Result<Option<symphonia::core::formats::Packet>> {
    match format.next_packet() {
        Ok(p) => Ok(Some(p)),
        // Symphonia signals the end of the stream with an UnexpectedEof I/O error; a
        // cut-off file looks the same, so the caller compares frame counts.
        Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(SymError::ResetRequired) => Err(bad(
            display,
            format_args!("stream changes format near frame {at} (unsupported)"),
        )),
        Err(e) => Err(bad(
            display,
            format_args!("corrupt data near frame {at} ({})", sym_msg(&e)),
        )),
    }
}

/// Decoder state: where we are in the last decoded packet.
struct Cursor {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    channels: usize,
    rate: u32,
    /// Frames the container declared (or that counting found).
    declared: u64,
    /// `declared` is exact: ending short of it is truncation.
    exact: bool,
    /// The audio ends here by the format's definition; decoded frames beyond are dropped.
    stop_at: Option<u64>,
    /// Most frames the data may hold (the caller's limit at the file's rate).
    max_in: u64,
    limit: FrameLimit,
    /// Frames handed out so far.
    decoded: u64,
    /// Read position and length within the decoder's last buffer.
    pos: usize,
    len: usize,
    ended: bool,
    display: String,
}

impl Cursor {
    /// Converts up to `n` frames into `dst[ch][at..at + n]`; returns how many (0 at the
    /// end, after checking the total against an exact declared count).
    fn fill<S: AsMut<[f32]>>(&mut self, dst: &mut [S], at: usize, n: usize) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        while self.pos == self.len {
            if self.ended {
                return Ok(0);
            }
            self.decode_next()?;
        }
        let k = (self.len - self.pos).min(n);
        if k == 0 {
            return Ok(0);
        }
        let buf = self.decoder.last_decoded();
        for (ch, d) in dst.iter_mut().enumerate().take(self.channels) {
            let d = &mut d.as_mut()[at..at + k];
            let r = self.pos..self.pos + k;
            if let Some(i) = convert(&buf, ch, r, d) {
                let frame = self.decoded + i as u64;
                let what = if d[i].is_nan() {
                    "NaN".to_string()
                } else if d[i].is_infinite() {
                    "infinite".to_string()
                } else {
                    format!("out-of-range ({:e}, beyond ±{MAX_FLOAT_SAMPLE:e})", d[i])
                };
                return Err(bad(
                    &self.display,
                    format_args!("{what} sample at frame {frame} (channel {})", ch + 1),
                ));
            }
        }
        self.pos += k;
        self.decoded += k as u64;
        Ok(k)
    }

    /// Decodes the next packet of our track, or marks the end (checking the count).
    fn decode_next(&mut self) -> Result<()> {
        let at = self.decoded + (self.len - self.pos) as u64;
        let packet = if self.stop_at.is_some_and(|s| at >= s) {
            None
        } else {
            next_packet(&mut *self.format, &self.display, at)?
        };
        let Some(packet) = packet else {
            if self.exact && at < self.declared {
                return Err(bad(
                    &self.display,
                    format_args!(
                        "truncated: header says {} frames, found {at}",
                        self.declared
                    ),
                ));
            }
            if at == 0 {
                return Err(bad(&self.display, "no audio (0 frames)"));
            }
            self.ended = true;
            self.pos = 0;
            self.len = 0;
            return Ok(());
        };
        if packet.track_id() != self.track_id {
            return Ok(());
        }
        let buf = self.decoder.decode(&packet).map_err(|e| {
            bad(
                &self.display,
                format_args!("corrupt data near frame {at} ({})", sym_msg(&e)),
            )
        })?;
        let spec = *buf.spec();
        let frames = buf.frames();
        if frames > 0 {
            if spec.channels.count() != self.channels {
                return Err(bad(
                    &self.display,
                    format_args!("channel count changes near frame {at}"),
                ));
            }
            if spec.rate != self.rate {
                return Err(bad(
                    &self.display,
                    format_args!("sample rate changes near frame {at}"),
                ));
            }
        }
        // Drop what lies past the format's end of the audio.
        let frames = match self.stop_at {
            Some(s) => frames.min(usize::try_from(s.saturating_sub(at)).unwrap_or(usize::MAX)),
            None => frames,
        };
        if at + frames as u64 > self.max_in {
            return Err(self.limit.error(&self.display));
        }
        self.pos = 0;
        self.len = frames;
        Ok(())
    }
}

/// The largest magnitude a float sample may have (+120 dB over full scale): past it a
/// file is not audio, and resampling or mixing it would overflow to infinity.
const MAX_FLOAT_SAMPLE: f32 = 1.0e6;

/// Converts channel `ch`, frames `r`, of a decoded buffer into `dst` as f32 (integers
/// as `i / 2^(bits-1)`, exact). Returns the index of the first sample that is not
/// finite or beyond ±[`MAX_FLOAT_SAMPLE`], if any (only float sources can have one).
fn convert(
    buf: &AudioBufferRef<'_>,
    ch: usize,
    r: std::ops::Range<usize>,
    dst: &mut [f32],
) -> Option<usize> {
    fn map<T: Copy>(src: &[T], dst: &mut [f32], f: impl Fn(T) -> f32) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f(*s);
        }
    }
    const S8: f32 = 1.0 / 128.0;
    const S16: f32 = 1.0 / 32768.0;
    const S24: f32 = 1.0 / 8_388_608.0;
    const S32: f32 = 1.0 / 2_147_483_648.0;
    match buf {
        AudioBufferRef::U8(b) => map(&b.chan(ch)[r], dst, |s| (f32::from(s) - 128.0) * S8),
        AudioBufferRef::U16(b) => map(&b.chan(ch)[r], dst, |s| (f32::from(s) - 32768.0) * S16),
        AudioBufferRef::U24(b) => map(&b.chan(ch)[r], dst, |s| {
            (s.inner() as f32 - 8_388_608.0) * S24
        }),
        AudioBufferRef::U32(b) => map(&b.chan(ch)[r], dst, |s| {
            ((i64::from(s) - 2_147_483_648) as f32) * S32
        }),
        AudioBufferRef::S8(b) => map(&b.chan(ch)[r], dst, |s| f32::from(s) * S8),
        AudioBufferRef::S16(b) => map(&b.chan(ch)[r], dst, |s| f32::from(s) * S16),
        AudioBufferRef::S24(b) => map(&b.chan(ch)[r], dst, |s| s.inner() as f32 * S24),
        AudioBufferRef::S32(b) => map(&b.chan(ch)[r], dst, |s| s as f32 * S32),
        AudioBufferRef::F32(b) => {
            dst.copy_from_slice(&b.chan(ch)[r]);
            return dst
                .iter()
                .position(|x| x.is_nan() || x.abs() > MAX_FLOAT_SAMPLE);
        }
        AudioBufferRef::F64(b) => {
            map(&b.chan(ch)[r], dst, |s| s as f32);
            return dst
                .iter()
                .position(|x| x.is_nan() || x.abs() > MAX_FLOAT_SAMPLE);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_under_guard_is_a_bad_audio_error_naming_the_file() {
        let r: Result<()> = guarded("stems/x.mka", || {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            // An out-of-bounds index, as a decoder bug would do it.
            std::hint::black_box(v[i]);
            Ok(())
        });
        let e = r.expect_err("the panic must become an error");
        let m = e.to_string();
        assert!(matches!(e, Error::BadAudio(_)), "{e:?}");
        assert!(
            m.starts_with("cannot decode stems/x.mka: the decoder failed on this data"),
            "{m}"
        );
        assert!(m.contains("index out of bounds"), "{m}");
        // The thread is fine afterwards, and panics outside the guard still panic.
        assert_eq!(guarded("y", || Ok(5)).expect("no panic"), 5);
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }

    #[test]
    fn input_budget_is_the_largest_input_within_the_limit() {
        for (max, from, to) in [
            (48000u64, 44100u32, 48000u32),
            (1000, 48000, 44100),
            (7, 3, 2),
        ] {
            let n = input_budget(max, from, to);
            assert!(output_len(n, from, to) <= max);
            assert!(output_len(n + 1, from, to) > max);
        }
    }
}
