//! Audio in and out: decode round trips, streaming, resampling, bad files.
//!
//! References are independent: integer samples written with hound must come back as
//! exactly `i / 2^(bits-1)`; resampled sines are compared with the analytic sine at the
//! new rate computed in f64.

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

use bounce_server::Error;
use bounce_server::audio::resample::output_len;
use bounce_server::audio::{
    StemReader, probe, read_all, resample, write_flac, write_wav_f32, write_wav_int,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// Random integer samples over the full `bits` range, planar.
fn random_ints(channels: usize, n: usize, bits: u32, seed: u64) -> Vec<Vec<i32>> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    (0..channels)
        .map(|_| {
            let mut v: Vec<i32> = (0..n).map(|_| r.random_range(lo..=hi) as i32).collect();
            // Make sure the extremes are exercised.
            if n > 2 {
                v[0] = lo as i32;
                v[1] = hi as i32;
            }
            v
        })
        .collect()
}

fn write_hound_int(path: &Path, ch: &[Vec<i32>], rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: ch.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..ch[0].len() {
        for c in ch {
            if bits == 8 {
                w.write_sample(c[i] as i8).unwrap();
            } else {
                w.write_sample(c[i]).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

fn write_hound_f32(path: &Path, ch: &[Vec<f32>], rate: u32) {
    let spec = hound::WavSpec {
        channels: ch.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..ch[0].len() {
        for c in ch {
            w.write_sample(c[i]).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A minimal 64-bit float WAV (hound cannot write one).
fn write_f64_wav(path: &Path, ch: &[Vec<f64>], rate: u32) {
    let (c, n) = (ch.len() as u32, ch[0].len() as u32);
    let data_len = n * c * 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&(c as u16).to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * c * 8).to_le_bytes());
    b.extend_from_slice(&((c * 8) as u16).to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n as usize {
        for x in ch {
            b.extend_from_slice(&x[i].to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

fn expect_ints(got: &[Vec<f32>], want: &[Vec<i32>], bits: u32) {
    assert_eq!(got.len(), want.len());
    let scale = f64::from(1u32 << (bits - 1));
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            let exact = (f64::from(*b) / scale) as f32;
            assert_eq!(a.to_bits(), exact.to_bits(), "frame {i}: {a} vs {exact}");
        }
    }
}

/// Reads a whole stem through StemReader with blocks of the given sizes (cycled).
fn stream_all(path: &Path, rate: u32, blocks: &[usize]) -> Vec<Vec<f32>> {
    let mut r = StemReader::open(path, "stem", rate).unwrap();
    let c = r.channels();
    let mut out = vec![Vec::new(); c];
    let mut bufs = vec![vec![0.0f32; *blocks.iter().max().unwrap()]; c];
    let mut i = 0;
    loop {
        let b = blocks[i % blocks.len()];
        i += 1;
        let mut slices: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..b]).collect();
        let k = r.read(&mut slices).unwrap();
        if k == 0 {
            break;
        }
        for (o, s) in out.iter_mut().zip(&bufs) {
            o.extend_from_slice(&s[..k]);
        }
    }
    assert_eq!(out[0].len() as u64, r.frames());
    out
}

#[test]
fn wav_int_round_trips_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [8u16, 16, 24, 32] {
        for channels in [1usize, 2] {
            let n = 10_007;
            let want = random_ints(
                channels,
                n,
                u32::from(bits),
                u64::from(bits) + channels as u64,
            );
            let p = dir.path().join(format!("i{bits}_{channels}.wav"));
            write_hound_int(&p, &want, 44100, bits);
            let info = probe(&p, "x.wav").unwrap();
            assert_eq!(
                (info.channels, info.sample_rate, info.frames),
                (channels, 44100, n as u64)
            );
            let all = read_all(&p, "x.wav").unwrap();
            assert_eq!(all.sample_rate, 44100);
            expect_ints(&all.channels, &want, u32::from(bits));
            let streamed = stream_all(&p, 44100, &[1000, 1, 4097]);
            expect_ints(&streamed, &want, u32::from(bits));
        }
    }
}

#[test]
fn wav_float_round_trips_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng();
    let ch: Vec<Vec<f32>> = (0..2)
        .map(|_| (0..5000).map(|_| r.random_range(-1.5f32..1.5)).collect())
        .collect();
    let p = dir.path().join("f32.wav");
    write_hound_f32(&p, &ch, 48000);
    assert_eq!(read_all(&p, "f.wav").unwrap().channels, ch);
    assert_eq!(stream_all(&p, 48000, &[333]), ch);

    // Our own float writer reads back the same way.
    let p2 = dir.path().join("ours.wav");
    let refs: Vec<&[f32]> = ch.iter().map(|c| c.as_slice()).collect();
    write_wav_f32(&p2, &refs, 48000).unwrap();
    assert_eq!(read_all(&p2, "ours.wav").unwrap().channels, ch);
    let mut rd = hound::WavReader::open(&p2).unwrap();
    assert_eq!(rd.spec().sample_format, hound::SampleFormat::Float);
    let inter: Vec<f32> = rd.samples::<f32>().map(|s| s.unwrap()).collect();
    assert_eq!(inter.len(), 2 * ch[0].len());
    assert!(
        inter
            .iter()
            .enumerate()
            .all(|(i, s)| *s == ch[i % 2][i / 2])
    );
    // Six channels (hound's header becomes WAVE_FORMAT_EXTENSIBLE).
    let six: Vec<Vec<f32>> = (0..6).map(|c| vec![c as f32 * 0.1; 100]).collect();
    let refs: Vec<&[f32]> = six.iter().map(|c| c.as_slice()).collect();
    write_wav_f32(&p2, &refs, 96000).unwrap();
    let got = read_all(&p2, "six.wav").unwrap();
    assert_eq!((got.sample_rate, got.channels), (96000, six));

    // 64-bit float: converted to the nearest f32.
    let ch64: Vec<Vec<f64>> = vec![(0..3000).map(|_| r.random_range(-1.0..1.0)).collect()];
    let p3 = dir.path().join("f64.wav");
    write_f64_wav(&p3, &ch64, 48000);
    let got = read_all(&p3, "f64.wav").unwrap();
    let want: Vec<f32> = ch64[0].iter().map(|&x| x as f32).collect();
    assert_eq!(got.channels[0], want);
}

#[test]
fn our_int_wav_writer_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [16u16, 24] {
        let want = random_ints(2, 7000, u32::from(bits), 11);
        let refs: Vec<&[i32]> = want.iter().map(|c| c.as_slice()).collect();
        let p = dir.path().join(format!("w{bits}.wav"));
        write_wav_int(&p, &refs, 44100, bits).unwrap();
        let mut rd = hound::WavReader::open(&p).unwrap();
        assert_eq!(rd.spec().bits_per_sample, bits);
        let inter: Vec<i32> = rd.samples::<i32>().map(|s| s.unwrap()).collect();
        for (i, s) in inter.iter().enumerate() {
            assert_eq!(*s, want[i % 2][i / 2]);
        }
        expect_ints(
            &read_all(&p, "w.wav").unwrap().channels,
            &want,
            u32::from(bits),
        );
    }
    // A sample that does not fit is refused.
    let p = dir.path().join("bad.wav");
    assert!(write_wav_int(&p, &[&[40000i32][..]], 44100, 16).is_err());
}

#[test]
fn flac_round_trips_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [16u16, 24] {
        for channels in [1usize, 2] {
            // Random noise plus a stretch of a sine, so both verbatim and LPC frames occur.
            let mut want = random_ints(channels, 20_000, u32::from(bits), 3 + u64::from(bits));
            let amp = f64::from((1i32 << (bits - 2)) - 1);
            for c in &mut want {
                for (i, s) in c.iter_mut().enumerate().skip(5000).take(10_000) {
                    *s = (amp * (2.0 * PI * 440.0 * i as f64 / 44100.0).sin()).round() as i32;
                }
            }
            // Then silence, a full-scale square, alternating extremes and quiet noise.
            let (lo, hi) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
            let mut r = ChaCha8Rng::seed_from_u64(u64::from(bits));
            for c in &mut want {
                c.extend(std::iter::repeat_n(0, 5000));
                c.extend((0..9000).map(|i| if (i / 50) % 2 == 0 { hi } else { lo }));
                c.extend((0..5000).map(|i| if i % 2 == 0 { hi } else { lo }));
                c.extend((0..5000).map(|_| r.random_range(-3..=3)));
            }
            let n = want[0].len();
            let refs: Vec<&[i32]> = want.iter().map(|c| c.as_slice()).collect();
            let p = dir.path().join(format!("f{bits}_{channels}.flac"));
            write_flac(&p, &refs, 44100, bits).unwrap();
            let info = probe(&p, "x.flac").unwrap();
            assert_eq!(
                (info.channels, info.sample_rate, info.frames),
                (channels, 44100, n as u64)
            );
            expect_ints(
                &read_all(&p, "x.flac").unwrap().channels,
                &want,
                u32::from(bits),
            );
            expect_ints(&stream_all(&p, 44100, &[8192, 3]), &want, u32::from(bits));
        }
    }
}

#[test]
fn streaming_with_resampling_matches_whole_buffer_resampling() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng();
    let ch: Vec<Vec<f32>> = (0..2)
        .map(|_| (0..50_001).map(|_| r.random_range(-0.5f32..0.5)).collect())
        .collect();
    let p = dir.path().join("s.wav");
    write_hound_f32(&p, &ch, 44100);
    let whole = resample(&ch, 44100, 48000).unwrap();
    let rd = StemReader::open(&p, "s.wav", 48000).unwrap();
    assert_eq!(rd.frames(), output_len(50_001, 44100, 48000));
    assert_eq!(rd.frames(), 54_423); // ceil(50001 * 48000 / 44100) = ceil(54422.86)
    for blocks in [&[8192usize][..], &[1, 7, 65536, 1000]] {
        assert_eq!(stream_all(&p, 48000, blocks), whole, "blocks {blocks:?}");
    }
}

/// Error of `y` against a sine of amplitude 1 at `f` Hz sampled at `rate`, over the
/// steady middle part, in dB relative to the sine; and the fitted amplitude in dB.
fn sine_error(y: &[f32], rate: u32, f: f64) -> (f64, f64) {
    let (a, b) = (y.len() / 5, 4 * y.len() / 5);
    let (mut e, mut s2, mut sc, mut cc) = (0.0, 0.0, 0.0, 0.0);
    for (i, &v) in y.iter().enumerate().take(b).skip(a) {
        let ph = 2.0 * PI * f * i as f64 / f64::from(rate);
        let want = ph.sin();
        e += (f64::from(v) - want).powi(2);
        s2 += want * want;
        sc += f64::from(v) * ph.sin();
        cc += f64::from(v) * ph.cos();
    }
    let amp = 2.0 * (sc * sc + cc * cc).sqrt() / (b - a) as f64;
    (10.0 * (e / s2).log10(), 20.0 * amp.log10())
}

#[test]
fn resampled_sine_keeps_amplitude_and_phase() {
    for (from, to) in [(44100u32, 48000u32), (48000, 44100), (96000, 48000)] {
        let n = from as usize / 2 + 123;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * PI * 1000.0 * i as f64 / f64::from(from)).sin() as f32)
            .collect();
        let y = resample(&[x], from, to).unwrap();
        assert_eq!(
            y[0].len() as u64,
            (n as u64 * u64::from(to)).div_ceil(u64::from(from))
        );
        let (err_db, amp_db) = sine_error(&y[0], to, 1000.0);
        eprintln!("{from}->{to}: 1 kHz amplitude {amp_db:+.5} dB, error {err_db:.1} dB");
        assert!(amp_db.abs() < 0.01, "{from}->{to}: amplitude {amp_db} dB");
        assert!(err_db < -80.0, "{from}->{to}: error {err_db} dB");
    }
}

#[test]
fn tone_above_new_nyquist_is_rejected() {
    for (from, to) in [(48000u32, 44100u32), (96000, 48000)] {
        let f = 0.5 * f64::from(to) + 1000.0;
        let n = from as usize / 2;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * PI * f * i as f64 / f64::from(from)).sin() as f32)
            .collect();
        let y = resample(&[x], from, to).unwrap();
        let mid = &y[0][y[0].len() / 5..4 * y[0].len() / 5];
        let rms =
            (mid.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
        let db = 20.0 * (rms * 2f64.sqrt()).log10();
        eprintln!("{from}->{to}: {f} Hz leaks at {db:.1} dB");
        assert!(db < -80.0, "{from}->{to}: {f} Hz leaks at {db} dB");
    }
}

#[test]
fn resampling_an_impulse_keeps_it_in_place() {
    // An impulse at input frame k lands (band-limited) at output time k * to / from.
    let (from, to) = (48000u32, 96000u32);
    let mut x = vec![0.0f32; 10_000];
    x[4000] = 1.0;
    let y = resample(&[x], from, to).unwrap();
    let peak = y[0]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    assert_eq!(peak, 8000);
}

fn err_msg(r: Result<impl std::fmt::Debug, Error>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

fn assert_bad(e: &Error, msg: &str, name: &str, words: &str) {
    assert!(matches!(e, Error::BadAudio(_)), "not BadAudio: {e:?}");
    assert!(msg.contains(name), "{msg:?} does not name {name}");
    assert!(msg.contains(words), "{msg:?} does not say {words:?}");
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Empty file.
    let p = d.join("empty.wav");
    std::fs::write(&p, b"").unwrap();
    let (e, m) = err_msg(probe(&p, "stems/empty.wav"));
    assert_bad(&e, &m, "stems/empty.wav", "empty");

    // Not audio.
    let p = d.join("notes.wav");
    std::fs::write(&p, "this is a text file, not audio\n".repeat(50)).unwrap();
    let (e, m) = err_msg(StemReader::open(&p, "notes.wav", 48000));
    assert_bad(&e, &m, "notes.wav", "not a readable audio file");

    // Random bytes after a RIFF magic.
    let mut r = rng();
    let mut junk = b"RIFF\x10\x00\x00\x00WAVE".to_vec();
    junk.extend((0..2000).map(|_| r.random::<u8>()));
    let p = d.join("junk.wav");
    std::fs::write(&p, &junk).unwrap();
    let (e, m) = err_msg(read_all(&p, "junk.wav"));
    assert!(
        matches!(e, Error::BadAudio(_)) && m.contains("junk.wav"),
        "{m}"
    );

    // Zero frames.
    let p = d.join("zero.wav");
    write_hound_int(&p, &[vec![]], 44100, 16);
    let (e, m) = err_msg(probe(&p, "zero.wav"));
    assert_bad(&e, &m, "zero.wav", "0 frames");

    // Truncated WAV: header says 10000 frames, the file holds 6000.
    let p = d.join("cut.wav");
    write_hound_int(&p, &random_ints(2, 10_000, 16, 1), 44100, 16);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..44 + 6000 * 4]).unwrap();
    let (e, m) = err_msg(probe(&p, "cut.wav"));
    assert_bad(
        &e,
        &m,
        "cut.wav",
        "truncated: header says 10000 frames, found 6000",
    );
    let (e, m) = err_msg(read_all(&p, "cut.wav"));
    assert_bad(&e, &m, "cut.wav", "truncated");

    // Truncated FLAC: cut in the middle of the frames.
    let p = d.join("cut.flac");
    let ints = random_ints(2, 30_000, 16, 2);
    let refs: Vec<&[i32]> = ints.iter().map(|c| c.as_slice()).collect();
    write_flac(&p, &refs, 44100, 16).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let (e, m) = err_msg(read_all(&p, "cut.flac"));
    assert!(
        matches!(e, Error::BadAudio(_)) && m.contains("cut.flac"),
        "{m}"
    );
    let mut rd = StemReader::open(&p, "cut.flac", 44100).unwrap();
    let mut b = vec![vec![0.0f32; 8192]; 2];
    let res = loop {
        let (l, r) = b.split_at_mut(1);
        match rd.read(&mut [&mut l[0][..], &mut r[0][..]]) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    let (e, m) = err_msg(res);
    assert!(
        matches!(e, Error::BadAudio(_)) && m.contains("cut.flac"),
        "{m}"
    );

    // Six channels: fine for read_all, refused as a stem.
    let p = d.join("six.wav");
    write_hound_int(&p, &random_ints(6, 100, 16, 3), 48000, 16);
    assert_eq!(read_all(&p, "six.wav").unwrap().channels.len(), 6);
    let (e, m) = err_msg(StemReader::open(&p, "kick.wav", 48000));
    assert_eq!(m, "kick.wav: 6 channels; stems must be mono or stereo");
    assert!(matches!(e, Error::BadAudio(_)));

    // Ten channels: over the limit everywhere.
    let p = d.join("ten.wav");
    write_hound_int(&p, &random_ints(10, 100, 16, 4), 48000, 16);
    let (e, m) = err_msg(read_all(&p, "ten.wav"));
    assert!(
        matches!(e, Error::Limit(_)) && m.contains("ten.wav") && m.contains("10 channels"),
        "{m}"
    );

    // A header claiming more than 24 h (mono 16-bit at 1 kHz: 200 MB of data = 27.8 h).
    let p = d.join("long.wav");
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36u32 + 200_000_000).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), 1000, 2000, 2 | (16 << 16)] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&200_000_000u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 1000]);
    std::fs::write(&p, &b).unwrap();
    let (e, m) = err_msg(probe(&p, "long.wav"));
    assert!(
        matches!(e, Error::Limit(_)) && m.contains("long.wav") && m.contains("24 h"),
        "{m}"
    );

    // NaN and infinity in a float WAV, named by frame.
    for (val, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "infinite")] {
        let mut ch = vec![vec![0.25f32; 3000]; 2];
        ch[1][1234] = val;
        let p = d.join("nan.wav");
        write_hound_f32(&p, &ch, 48000);
        let (e, m) = err_msg(read_all(&p, "pad.wav"));
        assert_bad(&e, &m, "pad.wav", &format!("{word} sample at frame 1234"));
        let mut rd = StemReader::open(&p, "pad.wav", 44100).unwrap();
        let mut b = vec![vec![0.0f32; 8192]; 2];
        let (l, r) = b.split_at_mut(1);
        let (e, m) = err_msg(rd.read(&mut [&mut l[0][..], &mut r[0][..]]));
        assert_bad(&e, &m, "pad.wav", "frame 1234");
    }
}

#[test]
fn corrupted_files_never_panic() {
    // Flip bytes all over valid WAV and FLAC files: every outcome must be Ok or a
    // BadAudio/Limit error, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let ints = random_ints(2, 5000, 16, 9);
    let refs: Vec<&[i32]> = ints.iter().map(|c| c.as_slice()).collect();
    let wav = dir.path().join("a.wav");
    write_wav_int(&wav, &refs, 44100, 16).unwrap();
    let flac = dir.path().join("a.flac");
    write_flac(&flac, &refs, 44100, 16).unwrap();
    let mut r = rng();
    for src in [&wav, &flac] {
        let good = std::fs::read(src).unwrap();
        let ext = src.extension().unwrap().to_str().unwrap();
        for t in 0..60 {
            let mut b = good.clone();
            let hits = 1 + t % 8;
            for _ in 0..hits {
                // Mostly the header, sometimes the body.
                let lim = if t % 3 == 0 {
                    b.len()
                } else {
                    200.min(b.len())
                };
                let i = r.random_range(0..lim);
                b[i] = r.random();
            }
            if t % 5 == 0 {
                b.truncate(r.random_range(0..b.len()));
            }
            let p = dir.path().join(format!("c{t}.{ext}"));
            std::fs::write(&p, &b).unwrap();
            match read_all(&p, "c") {
                Ok(buf) => assert!(buf.channels.iter().all(|c| c.iter().all(|x| x.is_finite()))),
                Err(Error::BadAudio(m)) | Err(Error::Limit(m)) => assert!(m.contains('c')),
                Err(e) => panic!("unexpected error kind {e:?}"),
            }
        }
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn mp3_and_ogg_decode() {
    let Some(ffmpeg) = tool("ffmpeg") else {
        eprintln!("\n*** SKIP mp3_and_ogg_decode: ffmpeg is not on PATH ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.wav");
    let n = 44100 * 2 + 77;
    let x: Vec<f32> = (0..n)
        .map(|i| 0.5 * (2.0 * PI * 1000.0 * i as f64 / 44100.0).sin() as f32)
        .collect();
    write_hound_f32(&src, &[x.clone(), x], 44100);
    for (ext, codec) in [("mp3", "libmp3lame"), ("ogg", "libvorbis")] {
        let out = dir.path().join(format!("t.{ext}"));
        let st = Command::new(&ffmpeg)
            .args(["-v", "error", "-y", "-i"])
            .arg(&src)
            .args(["-c:a", codec, "-b:a", "192k"])
            .arg(&out)
            .status()
            .unwrap();
        if !st.success() {
            eprintln!("\n*** SKIP {ext}: ffmpeg has no {codec} encoder ***\n");
            continue;
        }
        let info = probe(&out, "t").unwrap();
        assert_eq!((info.channels, info.sample_rate), (2, 44100), "{ext}");
        // Reference: ffmpeg's own decoder (lossy codecs don't give the input back).
        let dec = Command::new(&ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(&out)
            .args(["-f", "f32le", "-ac", "2", "-"])
            .output()
            .unwrap();
        assert!(dec.status.success());
        let want: Vec<f32> = dec
            .stdout
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // Gapless decoding gives back the original length (encoder delay and padding removed).
        assert_eq!(info.frames, n as u64, "{ext}: frames");
        assert_eq!(want.len(), 2 * n, "{ext}: ffmpeg frames");
        let all = read_all(&out, "t").unwrap();
        assert_eq!(all.frames() as u64, info.frames);
        let (mut e, mut s2) = (0.0f64, 0.0f64);
        for (i, w) in want.chunks_exact(2).enumerate() {
            e += f64::from(all.channels[0][i] - w[0]).powi(2)
                + f64::from(all.channels[1][i] - w[1]).powi(2);
            s2 += f64::from(w[0]).powi(2) + f64::from(w[1]).powi(2);
        }
        let db = 10.0 * (e / s2).log10();
        assert!(db < -60.0, "{ext}: differs from ffmpeg's decode by {db} dB");
        let streamed = stream_all(&out, 44100, &[4096, 5]);
        assert_eq!(streamed, all.channels, "{ext}");
        let up = stream_all(&out, 48000, &[8192]);
        assert_eq!(up[0].len() as u64, output_len(info.frames, 44100, 48000));
        eprintln!("{ext}: matches ffmpeg's decode within {db:.1} dB");
    }
}

/// Decode and resample speed (run with `--ignored --nocapture`; prints, asserts nothing
/// about time).
#[test]
#[ignore]
fn decode_speed() {
    let dir = tempfile::tempdir().unwrap();
    let n = 44100 * 180;
    let ints = random_ints(2, n, 24, 5);
    let refs: Vec<&[i32]> = ints.iter().map(|c| c.as_slice()).collect();
    let p = dir.path().join("long.wav");
    write_wav_int(&p, &refs, 44100, 24).unwrap();
    let pf = dir.path().join("long.flac");
    let t = std::time::Instant::now();
    write_flac(&pf, &refs, 44100, 24).unwrap();
    eprintln!("flac encode 3 min stereo 24-bit: {:?}", t.elapsed());
    for (path, rate) in [(&p, 44100), (&p, 48000), (&pf, 44100), (&pf, 48000)] {
        let t = std::time::Instant::now();
        let mut r = StemReader::open(path, "long", rate).unwrap();
        let mut b = vec![vec![0.0f32; 65536]; 2];
        let mut total = 0;
        loop {
            let (l, rr) = b.split_at_mut(1);
            let k = r.read(&mut [&mut l[0][..], &mut rr[0][..]]).unwrap();
            if k == 0 {
                break;
            }
            total += k;
        }
        eprintln!(
            "{} -> {rate} Hz: {total} frames in {:?}",
            path.display(),
            t.elapsed()
        );
    }
    let fl: Vec<Vec<f32>> = ints
        .iter()
        .map(|c| c.iter().map(|&i| i as f32 / 8_388_608.0).collect())
        .collect();
    let t = std::time::Instant::now();
    let refs32: Vec<&[f32]> = fl.iter().map(|c| c.as_slice()).collect();
    write_wav_f32(&dir.path().join("o.wav"), &refs32, 44100).unwrap();
    eprintln!("write_wav_f32 3 min stereo: {:?}", t.elapsed());
}
