//! Decoding with symphonia: probe, streaming stem reader, whole-file read.
//!
//! Samples are converted straight from the decoder's buffer into the caller's (or the
//! resampler's) buffers: one conversion, no interleaved staging. Integers become
//! `i / 2^(bits-1)` exactly (symphonia scales FLAC to 32 bits and keeps WAV at its
//! width, so the divisor comes from the buffer's sample type). Every decoded frame is
//! counted, and the count must match what the container declared: a truncated file is
//! an error, never a silently shorter stem.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::{AudioBufferRef, Signal};
use symphonia::core::codecs::{self, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadBytes};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::{RATE_RANGE, StreamResampler};
use crate::{Error, Result};

/// Most channels any input may have.
pub const MAX_CHANNELS: usize = 8;
/// Longest input, in seconds (24 h).
pub const MAX_SECONDS: u64 = 24 * 3600;

/// What [`probe`] finds: channels, rate and exact frame count of a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StemInfo {
    /// Channel count (1..=8).
    pub channels: usize,
    /// Sample rate of the file, Hz.
    pub sample_rate: u32,
    /// Frames in the file (at its own rate).
    pub frames: u64,
}

/// Probes a file: channels, rate, exact frame count (decodes to count when the
/// container doesn't say, e.g. some MP3/OGG). `display` is the name used in errors
/// (the path as the user wrote it). A PCM file whose data is shorter than its header
/// says is reported here already.
pub fn probe(path: &Path, display: &str) -> Result<StemInfo> {
    let src = Source::open(path, display)?;
    Ok(src.info)
}

/// Streams a stem decoded and resampled to `target_rate`, 1 or 2 channels as in the file.
pub struct StemReader {
    cursor: Cursor,
    resampler: Option<StreamResampler>,
    channels: usize,
    frames: u64,
    /// Frames still to yield.
    left: u64,
}

impl std::fmt::Debug for StemReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StemReader")
            .field("file", &self.cursor.display)
            .field("channels", &self.channels)
            .field("frames", &self.frames)
            .field("left", &self.left)
            .field("resampling", &self.resampler.is_some())
            .finish()
    }
}

impl StemReader {
    /// Opens a stem for streaming at `target_rate`. More than 2 channels is an error.
    pub fn open(path: &Path, display: &str, target_rate: u32) -> Result<Self> {
        let src = Source::open(path, display)?;
        let info = src.info;
        if info.channels > 2 {
            return Err(Error::BadAudio(format!(
                "{display}: {} channels; stems must be mono or stereo",
                info.channels
            )));
        }
        let resampler = if info.sample_rate == target_rate {
            None
        } else {
            let rs =
                StreamResampler::new(info.sample_rate, target_rate, info.channels, info.frames)
                    .map_err(|e| match e {
                        Error::Limit(m) => Error::Limit(format!("{display}: {m}")),
                        other => other,
                    })?;
            Some(rs)
        };
        let frames = match &resampler {
            Some(rs) => rs.remaining(),
            None => info.frames,
        };
        Ok(StemReader {
            cursor: src.into_cursor()?,
            resampler,
            channels: info.channels,
            frames,
            left: frames,
        })
    }

    /// Channels (1 or 2).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames this reader will yield in total: n at the file rate, ceil(n * target /
    /// file_rate) otherwise.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Fills `out[ch][..k]` with the next k frames (k = `out[0].len()` until the end);
    /// returns k; 0 at the end. Every out slice has the same length; `out.len() ==
    /// channels()`. Exactly [`frames`](Self::frames) frames in total.
    pub fn read(&mut self, out: &mut [&mut [f32]]) -> Result<usize> {
        if out.len() != self.channels || out.iter().any(|o| o.len() != out[0].len()) {
            return Err(Error::Internal(format!(
                "StemReader::read: {} output slices of unequal or wrong count for {} channels",
                out.len(),
                self.channels
            )));
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(out[0].len());
        let mut k = 0;
        match &mut self.resampler {
            None => {
                while k < want {
                    let n = self.cursor.fill(out, k, want - k)?;
                    if n == 0 {
                        break;
                    }
                    k += n;
                }
            }
            Some(rs) => {
                while k < want {
                    let n = rs.pull(&mut out[..], k)?;
                    k += n;
                    if n > 0 {
                        continue;
                    }
                    if !rs.wants_input() {
                        break;
                    }
                    let (bufs, range) = rs.input_mut();
                    let got = self.cursor.fill(bufs, range.start, range.len())?;
                    if got == 0 {
                        rs.finish();
                    } else {
                        rs.commit(got)?;
                    }
                }
            }
        }
        if k < want {
            // The cursor verified the frame count, so this is a bug, not bad input.
            return Err(Error::Internal(format!(
                "{}: stream ended {} frames early",
                self.cursor.display,
                want - k
            )));
        }
        self.left -= k as u64;
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

/// Decodes a whole file: planar channels at the file's rate, any channel count up to 8.
pub fn read_all(path: &Path, display: &str) -> Result<AudioBuffer> {
    let src = Source::open(path, display)?;
    let info = src.info;
    let n = usize::try_from(info.frames)
        .map_err(|_| Error::Limit(format!("{display}: too long for this machine")))?;
    // Grow as the data arrives rather than trusting the header's count up front: a
    // corrupt or hostile header must not make us allocate (or abort on) gigabytes.
    const STEP: usize = 1 << 18;
    let mut channels = vec![Vec::<f32>::new(); info.channels];
    let mut cursor = src.into_cursor()?;
    let mut k = 0;
    while k < n {
        let step = STEP.min(n - k);
        for c in &mut channels {
            c.try_reserve(step)
                .map_err(|_| Error::Limit(format!("{display}: {n} frames do not fit in memory")))?;
            c.resize(k + step, 0.0);
        }
        let mut filled = 0;
        while filled < step {
            let got = cursor.fill(&mut channels, k + filled, step - filled)?;
            if got == 0 {
                break;
            }
            filled += got;
        }
        k += filled;
        if filled < step {
            break;
        }
    }
    // Let the cursor see the end, which checks for frames beyond the declared count.
    if cursor.fill(&mut channels, n, 0)? != 0 || k != n {
        return Err(Error::Internal(format!(
            "{display}: decoded {k} of {n} frames"
        )));
    }
    Ok(AudioBuffer {
        sample_rate: info.sample_rate,
        channels,
    })
}

/// A file opened and probed, frame count known.
struct Source {
    format: Box<dyn FormatReader>,
    track_id: u32,
    params: CodecParameters,
    info: StemInfo,
    display: String,
}

fn bad(display: &str, what: impl std::fmt::Display) -> Error {
    Error::BadAudio(format!("{display}: {what}"))
}

fn open_format(path: &Path, display: &str) -> Result<Box<dyn FormatReader>> {
    let file = File::open(path).map_err(|e| Error::io(display, e))?;
    let len = file.metadata().map_err(|e| Error::io(display, e))?.len();
    if len == 0 {
        return Err(bad(display, "empty file (0 bytes)"));
    }
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
    Ok(probed.format)
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

impl Source {
    fn open(path: &Path, display: &str) -> Result<Self> {
        let format = open_format(path, display)?;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != codecs::CODEC_TYPE_NULL)
            .ok_or_else(|| bad(display, "no audio track"))?;
        let track_id = track.id;
        let params = track.codec_params.clone();
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
            params,
        };
        let channels = src.params.channels.map(|c| c.count());
        if let Some(c) = channels {
            src.check_channels(c)?;
        }
        match (channels, src.params.n_frames) {
            (Some(c), Some(n)) => {
                src.info.channels = c;
                src.info.frames = n;
                src.check_length()?;
                if let Some(b) = pcm_sample_bytes(src.params.codec) {
                    src = src.check_pcm_size(path, b)?;
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
                again.params.n_frames = Some(n);
                src = again;
            }
        }
        if src.info.frames == 0 {
            return Err(bad(display, "no audio (0 frames)"));
        }
        Ok(src)
    }

    /// Reopens a file whose frame count we already know (second pass after counting).
    fn open_counted(path: &Path, display: &str) -> Result<Self> {
        let format = open_format(path, display)?;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != codecs::CODEC_TYPE_NULL)
            .ok_or_else(|| bad(display, "no audio track"))?;
        Ok(Source {
            track_id: track.id,
            params: track.codec_params.clone(),
            format,
            info: StemInfo {
                channels: 0,
                sample_rate: 0,
                frames: 0,
            },
            display: display.to_string(),
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
        Ok(again)
    }

    /// Decodes everything to count frames (containers that don't say).
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
        }
        if n == 0 {
            return Err(bad(&self.display, "no audio (0 frames)"));
        }
        Ok((channels, n))
    }

    fn into_cursor(self) -> Result<Cursor> {
        let decoder = make_decoder(&self.params, &self.display)?;
        Ok(Cursor {
            format: self.format,
            decoder,
            track_id: self.track_id,
            channels: self.info.channels,
            rate: self.info.sample_rate,
            declared: self.info.frames,
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
    /// end, after checking the total against the declared count).
    fn fill<S: AsMut<[f32]>>(&mut self, dst: &mut [S], at: usize, n: usize) -> Result<usize> {
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
                let what = if d[i].is_nan() { "NaN" } else { "infinite" };
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
        let Some(packet) = next_packet(&mut *self.format, &self.display, at)? else {
            if at != self.declared {
                return Err(bad(
                    &self.display,
                    format_args!(
                        "truncated: header says {} frames, found {at}",
                        self.declared
                    ),
                ));
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
        if at + frames as u64 > self.declared {
            return Err(bad(
                &self.display,
                format_args!(
                    "header says {} frames, but the data holds more",
                    self.declared
                ),
            ));
        }
        self.pos = 0;
        self.len = frames;
        Ok(())
    }
}

/// Converts channel `ch`, frames `r`, of a decoded buffer into `dst` as f32 (integers
/// as `i / 2^(bits-1)`, exact). Returns the index of the first non-finite sample, if any
/// (only float sources can have one).
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
            return dst.iter().position(|x| !x.is_finite());
        }
        AudioBufferRef::F64(b) => {
            map(&b.chan(ch)[r], dst, |s| s as f32);
            return dst.iter().position(|x| !x.is_finite());
        }
    }
    None
}
