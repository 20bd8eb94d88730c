//! Header checks run before symphonia sees a file.
//!
//! Symphonia 0.5 sizes some buffers straight from length fields in the file: a FLAC or
//! Ogg comment (`u32` length → `vec![0; len]`), a FLAC picture's MIME type, description
//! and data, a WAV `LIST`/`INFO` value. A 4 GiB length in a 7 KB file makes it allocate
//! 4 GiB before the read fails, and an allocation failure aborts the process (no unwind
//! to catch). It also divides by header fields (sample rate, block alignment). So the
//! containers we accept are recognised by their magic here, and every length field
//! symphonia would allocate from is held against the bytes that really follow it; the
//! format fields it divides by must be sane. Anything else is refused with a clear error
//! before symphonia opens it.
//!
//! Accepted: WAV (RIFF/WAVE), AIFF/AIFC, FLAC, Ogg (Vorbis, FLAC, Opus headers), MP3 and
//! ADTS AAC (frame sync, optionally behind an ID3v2 tag), MP4/M4A (ISO BMFF) and CAF.
//! Matroska/WebM and anything unrecognised are refused. MP4 sample tables and CAF
//! packet tables (symphonia reserves their entry counts up front) must fit their boxes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::decode::MAX_CHANNELS;
use super::resample::RATE_RANGE;
use crate::{Error, Result};

/// Most bytes of Ogg packet data examined for header packets.
const OGG_SCAN_BYTES: u64 = 16 << 20;

/// What the checks learnt that symphonia gets wrong.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Header {
    /// AIFF's `COMM` frame count. Symphonia 0.5 derives the count from the `SSND`
    /// chunk's length, which includes its 8-byte offset/block-size prefix (and so
    /// reports more frames than the file holds).
    pub aiff_frames: Option<u64>,
}

/// Checks the headers of an opened file of `len` bytes; `display` names it in errors.
pub(crate) fn check(file: &File, len: u64, display: &str) -> Result<Header> {
    let mut r = Reader::new(file, len, display);
    let mut at = 0u64;
    // ID3v2 tags (possibly several) in front of MP3/AAC/FLAC.
    for _ in 0..8 {
        let Some(head) = r.peek::<10>(at)? else { break };
        if &head[..3] != b"ID3" {
            break;
        }
        let size = syncsafe(&head[6..10])
            .ok_or_else(|| r.bad("ID3v2 tag with an invalid size".to_string()))?;
        let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
        at += 10 + size + footer;
        if at > len {
            return Err(r.bad("ID3v2 tag longer than the file".to_string()));
        }
    }
    let Some(m) = r.peek::<12>(at)? else {
        return Err(r.bad("too short to be an audio file".to_string()));
    };
    match (&m[..4], &m[8..12]) {
        (b"FORM", b"AIFF") | (b"FORM", b"AIFC") if at == 0 => {
            let frames = aiff(&mut r, &m[8..12] == b"AIFC")?;
            return Ok(Header {
                aiff_frames: Some(frames),
            });
        }
        (b"RIFF", b"WAVE") if at == 0 => wav(&mut r),
        (b"fLaC", _) => flac(&mut r, at + 4),
        (b"OggS", _) if at == 0 => ogg(&mut r),
        (b"caff", _) if at == 0 => caf(&mut r),
        (_, _) if &m[4..8] == b"ftyp" && at == 0 => {
            let len = r.len;
            mp4(&mut r, 0, len, 0)
        }
        (_, _) if m[0] == 0xFF && m[1] & 0xE0 == 0xE0 => {
            // symphonia's probe scans up to 1 MiB for any marker: a "fLaC" further on
            // in a file that starts like MP3 is read as FLAC, so its blocks are checked too.
            match r.find(at, 1 << 20, b"fLaC")? {
                Some(pos) => flac(&mut r, pos + 4),
                None => Ok(()),
            }
        }
        _ if m[..4] == [0x1A, 0x45, 0xDF, 0xA3] => Err(r.bad(
            "Matroska/WebM is not accepted (use WAV, AIFF, FLAC, Ogg, MP3 or M4A)".to_string(),
        )),
        _ => Err(r.bad(
            "not a readable audio file (accepted: WAV, AIFF, FLAC, Ogg, MP3, M4A, CAF)".to_string(),
        )),
    }?;
    Ok(Header::default())
}

fn syncsafe(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &x| {
        (x & 0x80 == 0).then_some((acc << 7) | u64::from(x))
    })
}

/// Positioned reads with the file's length at hand.
struct Reader<'a> {
    f: BufReader<&'a File>,
    len: u64,
    display: &'a str,
}

impl<'a> Reader<'a> {
    fn new(file: &'a File, len: u64, display: &'a str) -> Self {
        Reader {
            f: BufReader::with_capacity(8192, file),
            len,
            display,
        }
    }

    fn bad(&self, what: String) -> Error {
        Error::BadAudio(format!("{}: {what}", self.display))
    }

    /// N bytes at `at`, or None when the file ends first.
    fn peek<const N: usize>(&mut self, at: u64) -> Result<Option<[u8; N]>> {
        if at.checked_add(N as u64).is_none_or(|e| e > self.len) {
            return Ok(None);
        }
        let mut b = [0u8; N];
        self.f
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.f.read_exact(&mut b))
            .map_err(|e| Error::io(self.display, e))?;
        Ok(Some(b))
    }

    /// The first offset ≥ `from` (within `window` bytes) where `marker` starts.
    fn find(&mut self, from: u64, window: u64, marker: &[u8]) -> Result<Option<u64>> {
        let n = usize::try_from(window.min(self.len.saturating_sub(from))).unwrap_or(0);
        let mut b = vec![0u8; n];
        self.f
            .seek(SeekFrom::Start(from))
            .and_then(|_| self.f.read_exact(&mut b))
            .map_err(|e| Error::io(self.display, e))?;
        Ok(b.windows(marker.len())
            .position(|w| w == marker)
            .map(|i| from + i as u64))
    }

    /// Like [`peek`](Self::peek), but the bytes must be there.
    fn get<const N: usize>(&mut self, at: u64, what: &str) -> Result<[u8; N]> {
        self.peek(at)?
            .ok_or_else(|| self.bad(format!("file ends inside the {what}")))
    }

    /// `n` bytes at `at` (n is bounded by the caller).
    fn vec(&mut self, at: u64, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.f
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.f.read_exact(&mut b))
            .map_err(|e| Error::io(self.display, e))?;
        Ok(b)
    }
}

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn check_rate(r: &Reader<'_>, rate: f64) -> Result<()> {
    if !(rate.is_finite() && rate >= 1.0) {
        return Err(r.bad(format!("sample rate {rate} Hz in the header")));
    }
    let (lo, hi) = (f64::from(*RATE_RANGE.start()), f64::from(*RATE_RANGE.end()));
    if !(lo..=hi).contains(&rate) {
        return Err(Error::Limit(format!(
            "{}: sample rate {rate} Hz is outside {lo}..={hi} Hz",
            r.display
        )));
    }
    Ok(())
}

fn check_channels(r: &Reader<'_>, c: u64) -> Result<()> {
    if c == 0 {
        return Err(r.bad("0 channels".to_string()));
    }
    if c > MAX_CHANNELS as u64 {
        return Err(Error::Limit(format!(
            "{}: {c} channels; at most {MAX_CHANNELS} are accepted",
            r.display
        )));
    }
    Ok(())
}

/// RIFF/WAVE: every chunk before `data` lies inside the file; `fmt ` is sane; a `LIST`'s
/// sub-chunks lie inside it.
fn wav(r: &mut Reader<'_>) -> Result<()> {
    let mut at = 12u64;
    let mut seen_fmt = false;
    while let Some(h) = r.peek::<8>(at)? {
        let id = [h[0], h[1], h[2], h[3]];
        let size = u64::from(u32le(&h[4..8]));
        let body = at + 8;
        if &id == b"data" {
            if !seen_fmt {
                return Err(r.bad("data chunk before the fmt chunk".to_string()));
            }
            // Its length is checked against the file by the decoder (truncation message).
            return Ok(());
        }
        if body + size > r.len {
            return Err(r.bad(format!(
                "{:?} chunk of {size} bytes runs past the end of the file",
                String::from_utf8_lossy(&id)
            )));
        }
        match &id {
            b"fmt " => {
                if size < 16 {
                    return Err(r.bad(format!("fmt chunk of {size} bytes (at least 16)")));
                }
                let f = r.get::<16>(body, "fmt chunk")?;
                let channels = u16le(&f[2..4]);
                let rate = u32le(&f[4..8]);
                let block_align = u16le(&f[12..14]);
                let bits = u16le(&f[14..16]);
                check_channels(r, u64::from(channels))?;
                if rate == 0 {
                    return Err(r.bad("sample rate 0 Hz in the header".to_string()));
                }
                check_rate(r, f64::from(rate))?;
                if block_align == 0 {
                    return Err(r.bad("block alignment 0 in the header".to_string()));
                }
                if bits == 0 {
                    return Err(r.bad("0 bits per sample in the header".to_string()));
                }
                seen_fmt = true;
            }
            b"LIST" => {
                let end = body + size;
                let mut sub = body + 4;
                while let Some(sh) = r.peek::<8>(sub)? {
                    if sub + 8 > end {
                        break;
                    }
                    let ssize = u64::from(u32le(&sh[4..8]));
                    if sub + 8 + ssize > end {
                        return Err(
                            r.bad(format!("LIST entry of {ssize} bytes runs past its chunk"))
                        );
                    }
                    sub += 8 + ssize + (ssize & 1);
                }
            }
            _ => {}
        }
        at = body + size + (size & 1);
    }
    Err(r.bad("no data chunk".to_string()))
}

/// IEEE 754 80-bit extended (AIFF's sample rate) as f64.
fn extended(b: &[u8; 10]) -> f64 {
    let sign = if b[0] & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from(u16::from_be_bytes([b[0] & 0x7F, b[1]]));
    let mant = u64::from_be_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]);
    if exp == 0 && mant == 0 {
        return 0.0;
    }
    if exp == 0x7FFF {
        return f64::NAN;
    }
    sign * (mant as f64) * 2f64.powi(exp - 16383 - 63)
}

/// AIFF/AIFC: chunks before `SSND` inside the file; `COMM` sane. Returns COMM's
/// frame count.
fn aiff(r: &mut Reader<'_>, aifc: bool) -> Result<u64> {
    let mut at = 12u64;
    let mut seen_comm = None;
    while let Some(h) = r.peek::<8>(at)? {
        let id = [h[0], h[1], h[2], h[3]];
        let size = u64::from(u32be(&h[4..8]));
        let body = at + 8;
        if &id == b"SSND" {
            return seen_comm.ok_or_else(|| r.bad("SSND chunk before the COMM chunk".to_string()));
        }
        if body + size > r.len {
            return Err(r.bad(format!(
                "{:?} chunk of {size} bytes runs past the end of the file",
                String::from_utf8_lossy(&id)
            )));
        }
        if &id == b"COMM" {
            let need = if aifc { 22 } else { 18 };
            if size < need {
                return Err(r.bad(format!("COMM chunk of {size} bytes (at least {need})")));
            }
            let c = r.get::<18>(body, "COMM chunk")?;
            let channels = i16::from_be_bytes([c[0], c[1]]);
            let frames = u64::from(u32be(&c[2..6]));
            let bits = i16::from_be_bytes([c[6], c[7]]);
            let mut rate = [0u8; 10];
            rate.copy_from_slice(&c[8..18]);
            check_channels(r, u64::try_from(channels).unwrap_or(0))?;
            if !(1..=64).contains(&bits) {
                return Err(r.bad(format!("{bits} bits per sample in the header")));
            }
            check_rate(r, extended(&rate))?;
            seen_comm = Some(frames);
        }
        at = body + size + (size & 1);
    }
    Err(r.bad("no SSND (sound data) chunk".to_string()))
}

/// Native FLAC from `at` (just past "fLaC"): every metadata block inside the file,
/// STREAMINFO first and sane, comment and picture lengths inside their blocks.
fn flac(r: &mut Reader<'_>, mut at: u64) -> Result<()> {
    let mut first = true;
    loop {
        let h = r.get::<4>(at, "FLAC metadata")?;
        let last = h[0] & 0x80 != 0;
        let kind = h[0] & 0x7F;
        let size = u64::from(u32be(&[0, h[1], h[2], h[3]]));
        let body = at + 4;
        if body + size > r.len {
            return Err(r.bad(format!(
                "FLAC metadata block {kind} of {size} bytes runs past the end of the file"
            )));
        }
        if first && kind != 0 {
            return Err(r.bad("FLAC stream does not start with STREAMINFO".to_string()));
        }
        match kind {
            0 => {
                if size != 34 {
                    return Err(r.bad(format!("FLAC STREAMINFO of {size} bytes (34)")));
                }
                let s = r.get::<34>(body, "FLAC STREAMINFO")?;
                streaminfo(r, &s)?;
            }
            4 => {
                let n = usize::try_from(size).unwrap_or(usize::MAX);
                let b = r.vec(body, n)?;
                comments(r, &b, "FLAC comment block")?;
            }
            6 => {
                let n = usize::try_from(size).unwrap_or(usize::MAX);
                let b = r.vec(body, n)?;
                picture(r, &b)?;
            }
            127 => return Err(r.bad("invalid FLAC metadata block type 127".to_string())),
            _ => {}
        }
        first = false;
        at = body + size;
        if last {
            return Ok(());
        }
    }
}

fn streaminfo(r: &Reader<'_>, s: &[u8; 34]) -> Result<()> {
    let min_block = u16::from_be_bytes([s[0], s[1]]);
    let max_block = u16::from_be_bytes([s[2], s[3]]);
    // 20 bits rate, 3 bits channels - 1, 5 bits bits-per-sample - 1.
    let rate = (u32::from(s[10]) << 12) | (u32::from(s[11]) << 4) | (u32::from(s[12]) >> 4);
    let bps = (((s[12] & 1) << 4) | (s[13] >> 4)) + 1;
    if min_block < 16 || max_block < min_block {
        return Err(r.bad(format!(
            "FLAC block sizes {min_block}..{max_block} in STREAMINFO (16..=65535, min <= max)"
        )));
    }
    if rate == 0 {
        return Err(r.bad("sample rate 0 Hz in the header".to_string()));
    }
    check_rate(r, f64::from(rate))?;
    if bps < 4 {
        return Err(r.bad(format!("{bps} bits per sample in the header (4..=32)")));
    }
    Ok(())
}

/// A Vorbis comment structure (little-endian lengths): vendor, count, comments.
fn comments(r: &Reader<'_>, b: &[u8], what: &str) -> Result<()> {
    let err = || r.bad(format!("{what}: a length runs past its block"));
    let mut p = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(p..p.checked_add(n)?)?;
        p += n;
        Some(s)
    };
    let vendor = u32le(take(4).ok_or_else(err)?) as usize;
    take(vendor).ok_or_else(err)?;
    let count = u32le(take(4).ok_or_else(err)?) as usize;
    for _ in 0..count {
        let n = u32le(take(4).ok_or_else(err)?) as usize;
        take(n).ok_or_else(err)?;
    }
    Ok(())
}

/// A FLAC PICTURE block (big-endian lengths).
fn picture(r: &Reader<'_>, b: &[u8]) -> Result<()> {
    let err = || r.bad("FLAC picture block: a length runs past its block".to_string());
    let mut p = 4usize; // picture type
    for _ in 0..2 {
        let n = b.get(p..p + 4).map(u32be).ok_or_else(err)? as usize;
        p = p
            .checked_add(4 + n)
            .filter(|&e| e <= b.len())
            .ok_or_else(err)?;
    }
    p += 16; // width, height, depth, colours
    let n = b.get(p..p + 4).map(u32be).ok_or_else(err)? as usize;
    p.checked_add(4 + n)
        .filter(|&e| e <= b.len())
        .ok_or_else(err)?;
    Ok(())
}

/// Ogg: reassembles the first packets of each logical stream (bounded) and checks the
/// header packets symphonia parses: Vorbis/Opus comments, FLAC STREAMINFO and
/// metadata blocks.
fn ogg(r: &mut Reader<'_>) -> Result<()> {
    struct Stream {
        serial: u32,
        packets: usize,
        partial: Vec<u8>,
        flac: bool,
    }
    let mut streams: Vec<Stream> = Vec::new();
    let mut at = 0u64;
    let mut scanned = 0u64;
    while scanned < OGG_SCAN_BYTES {
        let Some(h) = r.peek::<27>(at)? else { break };
        if &h[..4] != b"OggS" {
            // symphonia resynchronises on the next page; a damaged page is its business.
            break;
        }
        let serial = u32le(&h[14..18]);
        let nseg = usize::from(h[26]);
        if at + 27 + nseg as u64 > r.len {
            break;
        }
        let segs = r.vec(at + 27, nseg)?;
        let body_len: u64 = segs.iter().map(|&s| u64::from(s)).sum();
        let body_at = at + 27 + nseg as u64;
        if body_at + body_len > r.len {
            break;
        }
        let body = r.vec(body_at, body_len as usize)?;
        scanned += body_len;
        if streams.iter().all(|s| s.serial != serial) {
            if streams.len() >= 16 {
                break;
            }
            streams.push(Stream {
                serial,
                packets: 0,
                partial: Vec::new(),
                flac: false,
            });
        }
        let Some(st) = streams.iter_mut().find(|s| s.serial == serial) else {
            break;
        };
        let mut p = 0usize;
        for &s in &segs {
            let s = usize::from(s);
            if st.packets < 64 {
                st.partial.extend_from_slice(&body[p..p + s]);
            }
            p += s;
            if s < 255 {
                let pkt = std::mem::take(&mut st.partial);
                if st.packets < 64 {
                    ogg_packet(r, &pkt, st.packets, &mut st.flac)?;
                }
                st.packets += 1;
            }
        }
        at = body_at + body_len;
        if streams.iter().all(|s| s.packets >= 64) {
            break;
        }
    }
    Ok(())
}

fn ogg_packet(r: &Reader<'_>, pkt: &[u8], index: usize, flac: &mut bool) -> Result<()> {
    if index == 0 && pkt.starts_with(b"\x7FFLAC") {
        *flac = true;
        // 0x7F "FLAC" major minor count(2) "fLaC" block header(4) STREAMINFO(34)
        let s: Option<&[u8; 34]> = pkt.get(17..51).and_then(|s| s.try_into().ok());
        let s = s.ok_or_else(|| r.bad("Ogg FLAC header too short".to_string()))?;
        return streaminfo(r, s);
    }
    if index == 0 && pkt.starts_with(b"\x01vorbis") {
        let c = pkt.get(11).copied().unwrap_or(0);
        check_channels(r, u64::from(c))?;
        let rate = pkt.get(12..16).map_or(0, u32le);
        if rate == 0 {
            return Err(r.bad("sample rate 0 Hz in the header".to_string()));
        }
        return check_rate(r, f64::from(rate));
    }
    if *flac && index > 0 && !pkt.is_empty() {
        let kind = pkt[0] & 0x7F;
        let body = pkt.get(4..).unwrap_or(&[]);
        return match kind {
            4 => comments(r, body, "Ogg FLAC comment block"),
            6 => picture(r, body),
            _ => Ok(()),
        };
    }
    if let Some(rest) = pkt.strip_prefix(b"\x03vorbis") {
        return comments(r, rest, "Vorbis comment header");
    }
    if let Some(rest) = pkt.strip_prefix(b"OpusTags") {
        return comments(r, rest, "Opus comment header");
    }
    Ok(())
}

/// ISO BMFF boxes in `start..end`: each inside its parent; the sample-table boxes whose
/// entry count symphonia reserves (`Vec::with_capacity(count)`) hold that many entries.
fn mp4(r: &mut Reader<'_>, start: u64, end: u64, depth: usize) -> Result<()> {
    let mut at = start;
    while at + 8 <= end {
        let h = r.get::<8>(at, "MP4 box header")?;
        let id = [h[4], h[5], h[6], h[7]];
        let name = String::from_utf8_lossy(&id).into_owned();
        let (size, head) = match u32be(&h[..4]) {
            0 => (end - at, 8),
            1 => (
                u64::from_be_bytes(r.get::<8>(at + 8, "MP4 box header")?),
                16,
            ),
            n => (u64::from(n), 8),
        };
        if size < head || at.checked_add(size).is_none_or(|e| e > end) {
            return Err(r.bad(format!(
                "MP4 box {name:?} of {size} bytes runs past its parent"
            )));
        }
        let body = at + head;
        let body_len = size - head;
        // (bytes before the count, bytes per entry)
        let table = match &id {
            b"stco" | b"stss" => Some((4, 4)),
            b"co64" | b"stts" | b"ctts" => Some((4, 8)),
            b"stsc" => Some((4, 12)),
            b"stsz" => {
                let f = r.get::<12>(body, "MP4 stsz box")?;
                (u32be(&f[4..8]) == 0).then_some((8, 4))
            }
            _ => None,
        };
        if let Some((skip, entry)) = table {
            let c = r.get::<4>(body + skip, "MP4 sample table")?;
            let count = u64::from(u32be(&c));
            if count * entry > body_len.saturating_sub(skip + 4) {
                return Err(r.bad(format!(
                    "MP4 {name:?} table of {count} entries does not fit its {size}-byte box"
                )));
            }
        }
        let inner = match &id {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta"
            | b"mvex" | b"moof" | b"traf" => Some(body),
            b"meta" => Some(body + 4),
            _ => None,
        };
        if let Some(inner) = inner
            && depth < 16
        {
            mp4(r, inner.min(at + size), at + size, depth + 1)?;
        }
        at += size;
    }
    Ok(())
}

/// CAF: chunks inside the file (only the audio data may run to the end), `desc` sane,
/// the packet table no longer than its chunk.
fn caf(r: &mut Reader<'_>) -> Result<()> {
    let mut at = 8u64;
    while let Some(h) = r.peek::<12>(at)? {
        let id = [h[0], h[1], h[2], h[3]];
        let name = String::from_utf8_lossy(&id).into_owned();
        let size = i64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
        let body = at + 12;
        if &id == b"data" && size == -1 {
            return Ok(());
        }
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if body.checked_add(size).is_none_or(|e| e > r.len) {
            return Err(r.bad(format!(
                "CAF chunk {name:?} of {size} bytes runs past the end of the file"
            )));
        }
        match &id {
            b"desc" => {
                let d = r.get::<32>(body, "CAF desc chunk")?;
                let rate = f64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
                check_rate(r, rate)?;
                check_channels(r, u64::from(u32be(&d[24..28])))?;
            }
            b"pakt" => {
                let p = r.get::<8>(body, "CAF packet table")?;
                let n = i64::from_be_bytes(p);
                // Every entry takes at least one byte after the 24-byte header.
                if u64::try_from(n).is_ok_and(|n| n > size.saturating_sub(24)) {
                    return Err(r.bad(format!(
                        "CAF packet table of {n} packets does not fit its {size}-byte chunk"
                    )));
                }
            }
            _ => {}
        }
        at = body + size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_rates() {
        // 44100 Hz as AIFF writes it.
        let b = [0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0];
        assert_eq!(extended(&b), 44100.0);
        assert_eq!(extended(&[0; 10]), 0.0);
    }

    #[test]
    fn syncsafe_sizes() {
        assert_eq!(syncsafe(&[0, 0, 0x02, 0x01]), Some(257));
        assert_eq!(syncsafe(&[0x80, 0, 0, 0]), None);
    }
}
