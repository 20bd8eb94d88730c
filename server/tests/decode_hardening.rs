//! The decoder against hostile and unusual files: headers that lie, fields symphonia
//! divides by or allocates from, frame limits, and valid files with approximate frame
//! counts. Files are made here (by hand, or by sox/ffmpeg: independent encoders) and
//! every assertion is about a known fact: the frame count the tool wrote, the limit
//! given, the field that was broken.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bounce_server::Error;
use bounce_server::audio::{StemReader, probe, read_all, read_all_limited};

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs sox or ffmpeg; None (and a loud skip message) when the tool is missing.
fn run(tool_name: &str, args: &[&str], test: &str) -> Option<()> {
    let Some(t) = tool(tool_name) else {
        eprintln!("\n*** SKIP {test}: {tool_name} is not on PATH ***\n");
        return None;
    };
    let out = Command::new(t).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool_name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Reads a whole stem through StemReader in 1000-frame blocks.
fn stream_all(r: &mut StemReader) -> Result<Vec<Vec<f32>>, Error> {
    let c = r.channels();
    let mut out = vec![Vec::new(); c];
    let mut bufs = vec![vec![0.0f32; 1000]; c];
    loop {
        let mut slices: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
        let k = r.read(&mut slices)?;
        if k == 0 {
            return Ok(out);
        }
        for (o, b) in out.iter_mut().zip(&bufs) {
            o.extend_from_slice(&b[..k]);
        }
    }
}

/// A canonical 16-bit PCM WAV with the given header fields and `frames` frames of data.
fn wav_bytes(channels: u16, rate: u32, bits: u16, block_align: u16, frames: u32) -> Vec<u8> {
    let data_len = frames * u32::from(channels.max(1)) * 2;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(u32::from(block_align)).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.resize(b.len() + data_len as usize, 0x11);
    b
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// The error is BadAudio, names the file, and says `words`.
fn assert_bad(e: &Error, name: &str, words: &str) {
    let m = e.to_string();
    assert!(
        matches!(e, Error::BadAudio(_)) && m.contains(name) && m.contains(words),
        "{e:?}"
    );
    assert!(!m.contains('\n'), "one line: {m:?}");
}

/// The error is a Limit, names the file and the limit.
fn assert_limit(e: &Error, name: &str, limit: u64) {
    let m = e.to_string();
    assert!(
        matches!(e, Error::Limit(_)) && m.contains(name) && m.contains(&limit.to_string()),
        "{e:?}"
    );
}

#[test]
fn wav_with_sample_rate_zero_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rate0.wav");
    std::fs::write(&p, wav_bytes(2, 0, 16, 4, 100)).unwrap();
    let e = expect_err(probe(&p, "rate0.wav"));
    assert_bad(&e, "rate0.wav", "sample rate 0 Hz");
    let e = expect_err(read_all(&p, "rate0.wav"));
    assert_bad(&e, "rate0.wav", "sample rate 0 Hz");
    let e = expect_err(StemReader::open(&p, "rate0.wav", 48000));
    assert_bad(&e, "rate0.wav", "sample rate 0 Hz");
}

#[test]
fn wav_with_zero_or_absurd_format_fields_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("ch0.wav", wav_bytes(0, 44100, 16, 4, 100), "0 channels"),
        (
            "bits0.wav",
            wav_bytes(2, 44100, 0, 4, 100),
            "0 bits per sample",
        ),
        (
            "align0.wav",
            wav_bytes(2, 44100, 16, 0, 100),
            "block alignment 0",
        ),
        (
            "huge.wav",
            wav_bytes(2, 4_000_000_000, 16, 4, 100),
            "4000000000 Hz",
        ),
    ];
    for (name, bytes, words) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = expect_err(read_all(&p, name));
        let m = e.to_string();
        assert!(m.contains(name) && m.contains(words), "{name}: {e:?}");
        assert!(matches!(e, Error::BadAudio(_) | Error::Limit(_)), "{e:?}");
    }
}

#[test]
fn wav_list_chunk_claiming_4_gib_is_refused_before_decoding() {
    // symphonia reads a LIST/INFO value into vec![0; len] sized by the file.
    let mut b = wav_bytes(1, 44100, 16, 2, 10);
    let data_at = b.windows(4).position(|w| w == b"data").unwrap();
    let mut list = Vec::new();
    list.extend_from_slice(b"LIST");
    list.extend_from_slice(&20u32.to_le_bytes());
    list.extend_from_slice(b"INFOINAM");
    list.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    list.extend_from_slice(b"abcdefgh");
    b.splice(data_at..data_at, list);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.wav");
    std::fs::write(&p, b).unwrap();
    let e = expect_err(read_all(&p, "list.wav"));
    assert_bad(&e, "list.wav", "LIST entry");
}

/// A small FLAC made by sox: `seconds` of a 1 kHz tone, mono 44.1 kHz 16-bit.
fn sox_flac(dir: &Path, name: &str, seconds: &str, test: &str) -> Option<(PathBuf, Vec<u8>)> {
    let p = dir.join(name);
    run(
        "sox",
        &[
            "-n",
            "-r",
            "44100",
            "-c",
            "1",
            "-b",
            "16",
            s(&p),
            "synth",
            seconds,
            "sine",
            "1000",
        ],
        test,
    )?;
    let b = std::fs::read(&p).unwrap();
    assert_eq!(&b[..4], b"fLaC");
    Some((p, b))
}

/// Sets STREAMINFO's total sample count (36 bits at byte 8+13 of the file).
fn set_flac_total(b: &mut [u8], total: u64) {
    let si = 8; // "fLaC" + block header
    b[si + 13] = (b[si + 13] & 0xF0) | ((total >> 32) as u8 & 0x0F);
    b[si + 14..si + 18].copy_from_slice(&((total & 0xFFFF_FFFF) as u32).to_be_bytes());
}

#[test]
fn flac_header_claiming_24_h_at_384_khz_is_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let test = "flac_header_claiming_24_h_at_384_khz_is_refused_without_allocating";
    let p = dir.path().join("tiny.flac");
    let args = [
        "-n",
        "-r",
        "384000",
        "-c",
        "1",
        "-b",
        "16",
        s(&p),
        "synth",
        "0.01",
        "sine",
        "1000",
    ];
    if run("sox", &args, test).is_none() {
        return;
    }
    let mut b = std::fs::read(&p).unwrap();
    assert!(b.len() < 7_000, "{} bytes", b.len());
    assert_eq!(probe(&p, "tiny.flac").unwrap().frames, 3840);
    let claimed = 24 * 3600 * 384_000u64;
    set_flac_total(&mut b, claimed);
    std::fs::write(&p, &b).unwrap();
    // probe reports what the header says (an estimate)...
    let info = probe(&p, "tiny.flac").unwrap();
    assert_eq!((info.sample_rate, info.frames), (384_000, claimed));
    // ...and everything that would decode it refuses it against its limit first.
    let e = expect_err(read_all(&p, "tiny.flac"));
    assert_limit(&e, "tiny.flac", 1 << 28);
    let e = expect_err(read_all_limited(&p, "tiny.flac", 1 << 22));
    assert_limit(&e, "tiny.flac", 1 << 22);
    let e = expect_err(StemReader::open_limited(&p, "tiny.flac", 48000, 1 << 28));
    assert_limit(&e, "tiny.flac", 1 << 28);
    // Under a limit the header passes, the data is what it is: 3840 real frames,
    // then the stream is truncated against STREAMINFO's exact count.
    let e = expect_err(read_all_limited(&p, "tiny.flac", u64::MAX));
    assert_bad(&e, "tiny.flac", "found 3840");
}

#[test]
fn flac_whose_data_outgrows_its_header_stops_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let test = "flac_whose_data_outgrows_its_header_stops_at_the_limit";
    let Some((p, mut b)) = sox_flac(dir.path(), "under.flac", "1", test) else {
        return;
    };
    // sox wrote 44100 frames; the header now claims 100.
    assert_eq!(probe(&p, "under.flac").unwrap().frames, 44100);
    set_flac_total(&mut b, 100);
    std::fs::write(&p, &b).unwrap();
    assert_eq!(probe(&p, "under.flac").unwrap().frames, 100);
    // The data is trusted, not the header: all 44100 frames come out...
    let buf = read_all(&p, "under.flac").unwrap();
    assert_eq!(buf.frames(), 44100);
    let mut r = StemReader::open(&p, "under.flac", 44100).unwrap();
    assert_eq!(stream_all(&mut r).unwrap()[0].len(), 44100);
    // ...resampled: ceil(44100 * 48000 / 44100) = 48000 frames.
    let mut r = StemReader::open(&p, "under.flac", 48000).unwrap();
    assert_eq!(stream_all(&mut r).unwrap()[0].len(), 48000);
    // ...but only up to the limit, counted on the real frames.
    let e = expect_err(read_all_limited(&p, "under.flac", 10_000));
    assert_limit(&e, "under.flac", 10_000);
    let mut r = StemReader::open_limited(&p, "under.flac", 44100, 10_000).unwrap();
    assert_limit(&expect_err(stream_all(&mut r)), "under.flac", 10_000);
    let mut r = StemReader::open_limited(&p, "under.flac", 48000, 20_000).unwrap();
    assert_limit(&expect_err(stream_all(&mut r)), "under.flac", 20_000);
    // A failed reader stays failed.
    let mut l = [0.0f32; 10];
    assert!(r.read(&mut [&mut l[..]]).is_err());
}

#[test]
fn truncated_flac_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let test = "truncated_flac_is_still_an_error";
    let Some((p, mut b)) = sox_flac(dir.path(), "cut.flac", "1", test) else {
        return;
    };
    b.truncate(b.len() / 2);
    std::fs::write(&p, &b).unwrap();
    let e = expect_err(read_all(&p, "cut.flac"));
    assert_bad(&e, "cut.flac", "truncated: header says 44100 frames");
}

/// Inserts a metadata block (after STREAMINFO) into a FLAC file.
fn insert_flac_block(b: &mut Vec<u8>, kind: u8, body: &[u8]) {
    // STREAMINFO's header at 4 keeps its "last" flag clear if later blocks follow.
    let last = b[4] & 0x80;
    b[4] &= 0x7F;
    let mut blk = vec![kind | last];
    blk.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    blk.extend_from_slice(body);
    b.splice(42..42, blk);
}

#[test]
fn flac_comment_claiming_4_gib_is_refused_before_symphonia_allocates() {
    // symphonia 0.5 reads a Vorbis comment into vec![0; len] with len from the file:
    // 0xFFFFFFF0 would be a 4 GiB allocation (an abort when it fails).
    let dir = tempfile::tempdir().unwrap();
    let test = "flac_comment_claiming_4_gib_is_refused_before_symphonia_allocates";
    let Some((p, mut b)) = sox_flac(dir.path(), "comment.flac", "0.1", test) else {
        return;
    };
    let mut body = Vec::new();
    body.extend_from_slice(&4u32.to_le_bytes());
    body.extend_from_slice(b"test");
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    body.extend_from_slice(b"TITLE=x");
    insert_flac_block(&mut b, 4, &body);
    std::fs::write(&p, &b).unwrap();
    let e = expect_err(probe(&p, "comment.flac"));
    assert_bad(&e, "comment.flac", "comment block");
}

#[test]
fn flac_picture_claiming_4_gib_is_refused_before_symphonia_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let test = "flac_picture_claiming_4_gib_is_refused_before_symphonia_allocates";
    let Some((p, mut b)) = sox_flac(dir.path(), "picture.flac", "0.1", test) else {
        return;
    };
    let mut body = Vec::new();
    body.extend_from_slice(&3u32.to_be_bytes()); // front cover
    body.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes()); // MIME type length
    body.extend_from_slice(b"image/png");
    insert_flac_block(&mut b, 6, &body);
    std::fs::write(&p, &b).unwrap();
    let e = expect_err(read_all(&p, "picture.flac"));
    assert_bad(&e, "picture.flac", "picture block");
}

#[test]
fn flac_with_impossible_block_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let test = "flac_with_impossible_block_sizes_is_refused";
    let Some((p, mut b)) = sox_flac(dir.path(), "blocks.flac", "0.1", test) else {
        return;
    };
    b[8..12].copy_from_slice(&[0, 0, 0, 0]); // min and max block size 0
    std::fs::write(&p, &b).unwrap();
    let e = expect_err(read_all(&p, "blocks.flac"));
    assert_bad(&e, "blocks.flac", "block sizes");
}

#[test]
fn matroska_and_unknown_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.mka");
    std::fs::write(
        &p,
        [
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 1, 0, 0, 0, 0,
        ],
    )
    .unwrap();
    assert_bad(&expect_err(probe(&p, "x.mka")), "x.mka", "Matroska");
    let p = dir.path().join("passwd");
    std::fs::write(&p, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    assert_bad(
        &expect_err(probe(&p, "passwd")),
        "passwd",
        "not a readable audio file",
    );
}

#[test]
fn ogg_vorbis_from_sox_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let test = "ogg_vorbis_from_sox_decodes";
    let (p, raw) = (dir.path().join("x.ogg"), dir.path().join("x.f32"));
    let args = [
        "-n",
        "-r",
        "44100",
        "-c",
        "2",
        s(&p),
        "synth",
        "0.5",
        "sine",
        "440",
    ];
    run("sox", &args, test);
    // The reference: sox's own decode (libvorbisfile), interleaved f32.
    let Some(()) = run(
        "sox",
        &[s(&p), "-t", "f32", "-e", "floating-point", s(&raw)],
        test,
    ) else {
        return;
    };
    let want: Vec<f32> = std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(want.len(), 2 * 22050, "sox wrote 0.5 s = 22050 frames");
    let info = probe(&p, "x.ogg").unwrap();
    assert_eq!((info.channels, info.sample_rate), (2, 44100));
    let buf = read_all(&p, "x.ogg").unwrap();
    assert_eq!(buf.frames(), 22050);
    // Same samples as libvorbis (sox rounds its decode to 16 bits).
    let worst = (0..22050)
        .flat_map(|i| (0..2).map(move |c| (i, c)))
        .map(|(i, c)| (buf.channels[c][i] - want[2 * i + c]).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "largest difference from libvorbis {worst}");
    let mut r = StemReader::open(&p, "x.ogg", 44100).unwrap();
    assert_eq!(stream_all(&mut r).unwrap(), buf.channels);
    let mut r = StemReader::open(&p, "x.ogg", 48000).unwrap();
    assert_eq!(stream_all(&mut r).unwrap()[0].len(), 24000);
}

#[test]
fn aiff_from_ffmpeg_decodes_like_its_wav() {
    let dir = tempfile::tempdir().unwrap();
    let (aiff, wav) = (dir.path().join("x.aiff"), dir.path().join("x.wav"));
    let test = "aiff_from_ffmpeg_decodes_like_its_wav";
    for out in [&aiff, &wav] {
        let args = [
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "1",
            s(out),
        ];
        if run("ffmpeg", &args, test).is_none() {
            return;
        }
    }
    let info = probe(&aiff, "x.aiff").unwrap();
    assert_eq!(
        (info.channels, info.sample_rate, info.frames),
        (1, 44100, 44100)
    );
    let a = read_all(&aiff, "x.aiff").unwrap();
    let w = read_all(&wav, "x.wav").unwrap();
    assert_eq!(a.frames(), 44100);
    assert_eq!(a, w, "the same 16-bit samples, big-endian in AIFF");
    assert!(a.channels[0].iter().any(|x| x.abs() > 0.1));
}

#[test]
fn random_bytes_behind_known_magics_never_panic() {
    // Each container's magic followed by deterministic junk: every outcome is Ok or a
    // BadAudio/Limit error naming the file.
    let magics: [&[u8]; 7] = [
        b"RIFF\x00\x01\x00\x00WAVE",
        b"FORM\x00\x01\x00\x00AIFF",
        b"fLaC",
        b"OggS\x00\x02",
        b"ID3\x04\x00\x00\x00\x00\x00\x10",
        b"\x00\x00\x00\x20ftypM4A ",
        b"caff\x00\x01\x00\x00",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (i, m) in magics.iter().enumerate() {
        for n in [0usize, 7, 64, 700, 5000] {
            let mut b = m.to_vec();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            let p = dir.path().join(format!("junk{i}_{n}.bin"));
            std::fs::write(&p, &b).unwrap();
            match read_all_limited(&p, "junk", 1 << 16) {
                Ok(buf) => assert!(buf.frames() <= 1 << 16),
                Err(Error::BadAudio(m)) | Err(Error::Limit(m)) => assert!(m.contains("junk")),
                Err(e) => panic!("unexpected error kind {e:?}"),
            }
        }
    }
}

#[test]
fn alac_m4a_and_caf_from_ffmpeg_decode_exactly() {
    // ALAC and PCM are lossless: the samples equal those of the WAV made from the same
    // source by the same tool.
    let dir = tempfile::tempdir().unwrap();
    let test = "alac_m4a_and_caf_from_ffmpeg_decode_exactly";
    let src = "sine=frequency=440:sample_rate=44100:duration=0.5";
    let files = [
        ("x.wav", "pcm_s16le"),
        ("x.m4a", "alac"),
        ("x.caf", "pcm_s16be"),
    ];
    for (name, codec) in files {
        let p = dir.path().join(name);
        let args = [
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            src,
            "-c:a",
            codec,
            s(&p),
        ];
        if run("ffmpeg", &args, test).is_none() {
            return;
        }
    }
    let want = read_all(&dir.path().join("x.wav"), "x.wav").unwrap();
    assert_eq!(want.frames(), 22050);
    for name in ["x.m4a", "x.caf"] {
        let got = read_all(&dir.path().join(name), name).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn mp4_sample_table_claiming_4_billion_entries_is_refused() {
    // symphonia reserves Vec::with_capacity(entry_count) for stco/stsz/stts/stsc: 4G
    // entries would be a 16-48 GiB reservation.
    let dir = tempfile::tempdir().unwrap();
    let test = "mp4_sample_table_claiming_4_billion_entries_is_refused";
    let p = dir.path().join("x.m4a");
    let args = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.2",
        "-c:a",
        "alac",
        s(&p),
    ];
    if run("ffmpeg", &args, test).is_none() {
        return;
    }
    let good = std::fs::read(&p).unwrap();
    assert!(read_all(&p, "x.m4a").is_ok());
    for table in [b"stco", b"stsc", b"stts"] {
        let mut b = good.clone();
        let i = b.windows(4).position(|w| w == table).unwrap();
        b[i + 8..i + 12].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        std::fs::write(&p, &b).unwrap();
        let e = expect_err(read_all(&p, "x.m4a"));
        assert_bad(&e, "x.m4a", "entries does not fit");
    }
}

#[test]
fn caf_packet_table_claiming_too_many_packets_is_refused() {
    let mut b = b"caff\x00\x01\x00\x00".to_vec();
    b.extend_from_slice(b"desc");
    b.extend_from_slice(&32i64.to_be_bytes());
    b.extend_from_slice(&44100f64.to_be_bytes());
    b.extend_from_slice(b"aac ");
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    b.extend_from_slice(b"pakt");
    b.extend_from_slice(&24i64.to_be_bytes());
    b.extend_from_slice(&i64::MAX.to_be_bytes());
    b.extend_from_slice(&[0; 16]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.caf");
    std::fs::write(&p, &b).unwrap();
    let e = expect_err(read_all(&p, "x.caf"));
    assert_bad(&e, "x.caf", "packet table");
}

/// Found by the decode fuzz target (crash-e2980e25…): a float WAV whose samples are
/// finite but near f32::MAX came out of the resampler as infinities. Samples beyond
/// ±1e6 (+120 dBFS) are now refused at the decoder, streaming or whole.
#[test]
fn fuzz_crash_e2980e25_float_wav_with_huge_samples_is_refused_not_resampled_to_inf() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.wav");
    let mut x = bounce_test_audio::noise(5, 800, 0.5);
    x[400] = 3.0e38;
    bounce_test_audio::write_f32_wav(&p, &[x.clone(), x], 8000);
    let mut r = StemReader::open(&p, "huge.wav", 48_000).unwrap();
    let e = expect_err(stream_all(&mut r));
    assert_bad(&e, "huge.wav", "out-of-range");
    assert!(e.to_string().contains("frame 400"), "{e}");
    let e = expect_err(read_all(&p, "huge.wav"));
    assert_bad(&e, "huge.wav", "out-of-range");
}

/// Found by the decode fuzz target (oom-73790c83): a file that starts like MP3 (ID3 tag,
/// frame sync) and holds a "fLaC" marker further on, which symphonia's probe reads as
/// FLAC with a 2.5 GB comment block. The header check now validates that FLAC too.
#[test]
fn fuzz_oom_73790c83_flac_marker_inside_an_mp3_is_checked_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = include_bytes!("../../fuzz/regressions/decode-oom-73790c83");
    // The fuzz target's first byte picks the extension; the rest is the file.
    let p = dir.path().join("fz.mp3");
    std::fs::write(&p, &bytes[1..]).unwrap();
    let e = expect_err(probe(&p, "fz.mp3"));
    assert!(e.to_string().contains("fz.mp3"), "{e}");
    let e = expect_err(read_all(&p, "fz.mp3"));
    assert!(e.to_string().contains("fz.mp3"), "{e}");
}
