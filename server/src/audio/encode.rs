//! Encoding: WAV (hound) as 32-bit float or 16/24-bit integer PCM, and FLAC (flacenc).
//!
//! Inputs are planar channels of equal length. Integer writers take samples that are
//! already quantised (dither is the caller's job) and check that they fit `bits`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flacenc::component::BitRepr;
use flacenc::error::{SourceError, Verify};
use flacenc::source::{Fill, Source};

use crate::{Error, Result};

/// Checks the common shape of an output: 1..=8 channels of equal length, a sane rate.
fn check_shape<T>(path: &Path, channels: &[&[T]], sample_rate: u32, bytes: u64) -> Result<usize> {
    let p = path.display();
    if channels.is_empty() || channels.len() > 8 {
        return Err(Error::Internal(format!(
            "{p}: cannot write {} channels",
            channels.len()
        )));
    }
    let n = channels[0].len();
    if channels.iter().any(|c| c.len() != n) {
        return Err(Error::Internal(format!(
            "{p}: channels of different lengths"
        )));
    }
    if !(1..=768_000).contains(&sample_rate) {
        return Err(Error::Internal(format!(
            "{p}: sample rate {sample_rate} Hz"
        )));
    }
    // RIFF sizes are 32-bit.
    let data = n as u64 * channels.len() as u64 * bytes;
    if data > u64::from(u32::MAX) - 1024 {
        return Err(Error::Limit(format!(
            "{p}: {data} bytes of audio exceed the 4 GiB WAV limit"
        )));
    }
    Ok(n)
}

fn check_bits(path: &Path, channels: &[&[i32]], bits: u16) -> Result<()> {
    if bits != 16 && bits != 24 {
        return Err(Error::Unsupported(format!(
            "{}: {bits}-bit integer output (16 or 24 only)",
            path.display()
        )));
    }
    let (lo, hi) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
    for (ch, c) in channels.iter().enumerate() {
        if let Some(i) = c.iter().position(|&s| s < lo || s > hi) {
            return Err(Error::Internal(format!(
                "{}: sample {} at frame {i} (channel {}) does not fit {bits} bits",
                path.display(),
                c[i],
                ch + 1
            )));
        }
    }
    Ok(())
}

fn hound_err(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::io(path.display(), io),
        other => Error::Internal(format!("{}: {other}", path.display())),
    }
}

/// hound's header for `spec` (it picks WAVE_FORMAT_PCM, IEEE_FLOAT or EXTENSIBLE),
/// with the sizes patched for `data_len` bytes of samples. The samples are then
/// written in bulk: hound's per-sample calls cost ~6 ns a sample, this ~1.
fn wav_header(path: &Path, spec: hound::WavSpec, data_len: u64) -> Result<Vec<u8>> {
    let mut cur = std::io::Cursor::new(Vec::new());
    let w = hound::WavWriter::new(&mut cur, spec).map_err(|e| hound_err(path, e))?;
    w.finalize().map_err(|e| hound_err(path, e))?;
    let mut h = cur.into_inner();
    let len = h.len();
    if len < 44 || &h[len - 8..len - 4] != b"data" || &h[..4] != b"RIFF" {
        return Err(Error::Internal(format!(
            "{}: unexpected WAV header from hound",
            path.display()
        )));
    }
    let data = u32::try_from(data_len)
        .map_err(|_| Error::Limit(format!("{}: over 4 GiB of audio", path.display())))?;
    let riff = u32::try_from(data_len + len as u64 - 8)
        .map_err(|_| Error::Limit(format!("{}: over 4 GiB of audio", path.display())))?;
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[len - 4..].copy_from_slice(&data.to_le_bytes());
    Ok(h)
}

/// Writes a WAV: header, then `frames` frames of `nch` channels interleaved by
/// `put(buf, frame, channel)` (which appends that sample's little-endian bytes), in blocks.
fn write_wav(
    path: &Path,
    spec: hound::WavSpec,
    frames: usize,
    put: impl Fn(&mut Vec<u8>, usize, usize),
) -> Result<()> {
    let n = frames;
    let nch = usize::from(spec.channels);
    let bytes = u64::from(spec.bits_per_sample / 8);
    let header = wav_header(path, spec, n as u64 * nch as u64 * bytes)?;
    let file = File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header)
        .map_err(|e| Error::io(path.display(), e))?;
    const BLOCK: usize = 16384;
    let mut buf = Vec::with_capacity(BLOCK * nch * bytes as usize);
    for start in (0..n).step_by(BLOCK) {
        buf.clear();
        for i in start..(start + BLOCK).min(n) {
            for c in 0..nch {
                put(&mut buf, i, c);
            }
        }
        w.write_all(&buf)
            .map_err(|e| Error::io(path.display(), e))?;
    }
    w.flush().map_err(|e| Error::io(path.display(), e))
}

/// Writes 16- or 24-bit integer PCM.
fn write_wav_pcm(path: &Path, pcm: Pcm, sample_rate: u32, bits: u16) -> Result<()> {
    let spec = hound::WavSpec {
        channels: pcm.channels() as u16,
        sample_rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    if bits == 16 {
        write_wav(path, spec, pcm.frames(), |b, i, c| {
            b.extend_from_slice(&(pcm.get(c, i) as i16).to_le_bytes())
        })
    } else {
        write_wav(path, spec, pcm.frames(), |b, i, c| {
            b.extend_from_slice(&pcm.get(c, i).to_le_bytes()[..3])
        })
    }
}

/// Writes a 32-bit float WAV.
pub fn write_wav_f32(path: &Path, channels: &[&[f32]], sample_rate: u32) -> Result<()> {
    check_shape(path, channels, sample_rate, 4)?;
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    write_wav(path, spec, channels[0].len(), |b, i, c| {
        b.extend_from_slice(&channels[c][i].to_le_bytes())
    })
}

/// Writes integer PCM (16 or 24 bits) from already-quantised integer samples (dither
/// is the caller's job). A sample that does not fit `bits` is an error.
pub fn write_wav_int(path: &Path, channels: &[&[i32]], sample_rate: u32, bits: u16) -> Result<()> {
    check_bits(path, channels, bits)?;
    check_shape(path, channels, sample_rate, u64::from(bits / 8))?;
    write_wav_pcm(path, Pcm::Int(channels), sample_rate, bits)
}

/// Planar integer PCM: integers, or their codes stored in f32 as code / 2^(bits−1)
/// (exact for 16 and 24 bits), so a quantised render needs no integer copy.
#[derive(Clone, Copy)]
enum Pcm<'a> {
    Int(&'a [&'a [i32]]),
    Scaled(&'a [&'a [f32]], f32),
}

impl Pcm<'_> {
    fn channels(&self) -> usize {
        match self {
            Pcm::Int(c) => c.len(),
            Pcm::Scaled(c, _) => c.len(),
        }
    }
    fn frames(&self) -> usize {
        match self {
            Pcm::Int(c) => c.first().map_or(0, |c| c.len()),
            Pcm::Scaled(c, _) => c.first().map_or(0, |c| c.len()),
        }
    }
    #[inline]
    fn get(&self, ch: usize, i: usize) -> i32 {
        match self {
            Pcm::Int(c) => c[ch][i],
            Pcm::Scaled(c, s) => (c[ch][i] * s).round() as i32,
        }
    }
}

/// Checks that f32 codes (code / 2^(bits−1)) are whole codes that fit `bits`.
fn check_codes(path: &Path, channels: &[&[f32]], bits: u16) -> Result<f32> {
    if bits != 16 && bits != 24 {
        return Err(Error::Unsupported(format!(
            "{}: {bits}-bit integer output (16 or 24 only)",
            path.display()
        )));
    }
    let scale = (1u32 << (bits - 1)) as f32;
    let (lo, hi) = (-scale, scale - 1.0);
    for (ch, c) in channels.iter().enumerate() {
        if let Some(i) = c.iter().position(|&v| {
            let s = v * scale;
            !(lo..=hi).contains(&s) || s.fract() != 0.0
        }) {
            return Err(Error::Internal(format!(
                "{}: sample {} at frame {i} (channel {}) is not a {bits}-bit code",
                path.display(),
                c[i],
                ch + 1
            )));
        }
    }
    Ok(scale)
}

/// Writes integer PCM (16 or 24 bits) from samples already quantised to codes / 2^(bits−1)
/// (see [`crate::dsp::dither::quantize_in_place`]).
pub fn write_wav_quantized(
    path: &Path,
    channels: &[&[f32]],
    sample_rate: u32,
    bits: u16,
) -> Result<()> {
    let scale = check_codes(path, channels, bits)?;
    check_shape(path, channels, sample_rate, u64::from(bits / 8))?;
    write_wav_pcm(path, Pcm::Scaled(channels, scale), sample_rate, bits)
}

/// A flacenc source over planar channels: interleaves one block at a time.
struct PlanarSource<'a> {
    channels: Pcm<'a>,
    bits: usize,
    rate: usize,
    pos: usize,
    scratch: Vec<i32>,
}

impl Source for PlanarSource<'_> {
    fn channels(&self) -> usize {
        self.channels.channels()
    }
    fn bits_per_sample(&self) -> usize {
        self.bits
    }
    fn sample_rate(&self) -> usize {
        self.rate
    }
    fn read_samples<F: Fill>(
        &mut self,
        block_size: usize,
        dest: &mut F,
    ) -> Result<usize, SourceError> {
        let n = self.channels.frames();
        let k = block_size.min(n - self.pos);
        self.scratch.clear();
        for i in self.pos..self.pos + k {
            for c in 0..self.channels.channels() {
                self.scratch.push(self.channels.get(c, i));
            }
        }
        dest.fill_interleaved(&self.scratch)?;
        self.pos += k;
        Ok(k)
    }
    fn len_hint(&self) -> Option<usize> {
        Some(self.channels.frames())
    }
}

/// Writes FLAC (16 or 24 bits) from already-quantised integer samples.
pub fn write_flac(path: &Path, channels: &[&[i32]], sample_rate: u32, bits: u16) -> Result<()> {
    check_bits(path, channels, bits)?;
    check_shape(path, channels, sample_rate, 0)?;
    flac(path, Pcm::Int(channels), sample_rate, bits)
}

/// Writes FLAC (16 or 24 bits) from samples already quantised to codes / 2^(bits−1).
pub fn write_flac_quantized(
    path: &Path,
    channels: &[&[f32]],
    sample_rate: u32,
    bits: u16,
) -> Result<()> {
    let scale = check_codes(path, channels, bits)?;
    check_shape(path, channels, sample_rate, 0)?;
    flac(path, Pcm::Scaled(channels, scale), sample_rate, bits)
}

fn flac(path: &Path, channels: Pcm, sample_rate: u32, bits: u16) -> Result<()> {
    if sample_rate > 655_350 {
        return Err(Error::Unsupported(format!(
            "{}: FLAC cannot store {sample_rate} Hz",
            path.display()
        )));
    }
    let mut config = flacenc::config::Encoder::default();
    // flacenc 0.5.1's fixed-predictor subframes come out corrupt (and slowly) for some
    // 24-bit signals (a full-scale sine after noise); LPC covers the same ground.
    config.subframe_coding.use_fixed = false;
    let config = config
        .into_verified()
        .map_err(|(_, e)| Error::Internal(format!("flac config: {e}")))?;
    let block = config.block_size;
    let mut src = PlanarSource {
        channels,
        bits: usize::from(bits),
        rate: sample_rate as usize,
        pos: 0,
        scratch: Vec::with_capacity(block * channels.channels()),
    };
    let enc_err = |e: String| Error::Internal(format!("{}: flac encoder: {e}", path.display()));
    // Frame by frame, a batch at a time in parallel, each frame written as soon as it
    // is encoded: flacenc's whole-stream encoder keeps every frame's residuals (8
    // bytes a sample) until the end, 170 MB for a 4-minute CD master.
    let mut stream = flacenc::component::Stream::new(src.rate, src.channels(), src.bits)
        .map_err(|e| enc_err(e.to_string()))?;
    let info = stream.stream_info().clone();
    let mut ctx = flacenc::source::Context::new(src.bits, src.channels());
    let mut frames_sink = flacenc::bitsink::ByteSink::new();
    const BATCH: usize = 64;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let mut fb = flacenc::source::FrameBuf::with_size(src.channels(), block)
                .map_err(|e| enc_err(e.to_string()))?;
            let k = src
                .read_samples(block, &mut (&mut fb, &mut ctx))
                .map_err(|e| enc_err(e.to_string()))?;
            if k == 0 {
                break;
            }
            let number = ctx
                .current_frame_number()
                .ok_or_else(|| enc_err("no frame number".into()))?;
            batch.push((fb, number));
        }
        if batch.is_empty() {
            break;
        }
        let encoded: Vec<_> = {
            use rayon::prelude::*;
            batch
                .par_iter()
                .map(|(fb, number)| {
                    flacenc::encode_fixed_size_frame(&config, fb, *number, &info)
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        for frame in encoded {
            let frame = frame.map_err(enc_err)?;
            stream.stream_info_mut().update_frame_info(&frame);
            frame
                .write(&mut frames_sink)
                .map_err(|e| enc_err(format!("{e:?}")))?;
        }
    }
    let total = src.channels.frames();
    let si = stream.stream_info_mut();
    si.set_md5_digest(&ctx.md5_digest());
    si.set_total_samples(total);
    // flacenc counts the short last frame in the minimum block size; FLAC says the
    // last block is excluded, and decoders (symphonia) reject a fixed-size stream
    // whose min and max differ. State the fixed size, as the reference encoder does.
    si.set_block_sizes(block, block)
        .map_err(|e| Error::Internal(format!("{}: flac block size: {e}", path.display())))?;
    // The stream without frames is the header ("fLaC" and STREAMINFO).
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| Error::Internal(format!("{}: flac writer: {e:?}", path.display())))?;
    let mut bytes = sink.into_inner();
    bytes.extend_from_slice(frames_sink.as_slice());
    drop(frames_sink);
    let sink = bytes;
    // The encoder has had bugs: decode what it made and compare before writing.
    verify_flac(path, &sink, channels, bits)?;
    let file = File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let mut w = BufWriter::new(file);
    w.write_all(&sink)
        .map_err(|e| Error::io(path.display(), e))?;
    w.flush().map_err(|e| Error::io(path.display(), e))
}

/// Decodes an encoded FLAC stream with symphonia and checks it is bit-exact.
fn verify_flac(path: &Path, bytes: &[u8], channels: Pcm, bits: u16) -> Result<()> {
    use symphonia::core::audio::{AudioBufferRef, Signal};
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let fail = |what: String| {
        Error::Internal(format!(
            "{}: FLAC self-check failed: {what}",
            path.display()
        ))
    };
    let mss = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let mut format = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| fail(e.to_string()))?
        .format;
    let params = format
        .tracks()
        .first()
        .ok_or_else(|| fail("no track".into()))?
        .codec_params
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| fail(e.to_string()))?;
    let shift = 32 - u32::from(bits);
    let n = channels.frames();
    let mut at = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(symphonia::core::errors::Error::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let AudioBufferRef::S32(buf) = decoder.decode(&packet).map_err(|e| fail(e.to_string()))?
        else {
            return Err(fail("unexpected sample format".into()));
        };
        let k = buf.frames();
        if at + k > n {
            return Err(fail(format!("more than {n} frames")));
        }
        for ch in 0..channels.channels() {
            let got = buf.chan(ch);
            if got
                .iter()
                .enumerate()
                .any(|(i, g)| g >> shift != channels.get(ch, at + i))
            {
                return Err(fail(format!("samples differ in frames {at}..{}", at + k)));
            }
        }
        at += k;
    }
    if at != n {
        return Err(fail(format!("decoded {at} of {n} frames")));
    }
    Ok(())
}
