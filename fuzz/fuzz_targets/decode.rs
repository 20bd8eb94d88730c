//! Bytes → a file → probe, whole-file decode and streaming decode (with resampling)
//! through the public audio API, with tight frame limits. Every outcome must be a value
//! or a BadAudio/Limit/Io error: no panic, no abort, no huge allocation, no other kind.
//! The first byte picks the file extension (symphonia's hint); the rest is the file.
//!
//! FUZZ_SAVE_PANICS=DIR saves inputs whose decoder panic was caught (they become
//! regression tests even though the API already turns them into errors).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bounce_server::Error;
use bounce_server::audio::{StemReader, probe, read_all_limited};
use libfuzzer_sys::fuzz_target;

const EXTS: [&str; 8] = ["wav", "flac", "ogg", "mp3", "aiff", "m4a", "caf", "bin"];
const MAX_FRAMES: u64 = 1 << 16;

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("bounce-fuzz-decode-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fn check<T>(r: Result<T, Error>, input: &[u8]) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::BadAudio(m)) | Err(Error::Limit(m)) | Err(Error::Io(m)) => {
            assert!(m.contains("fz"), "error does not name the file: {m}");
            if m.contains("the decoder failed on this data")
                && let Some(d) = std::env::var_os("FUZZ_SAVE_PANICS")
            {
                let name = format!("panic-{:016x}", fxhash(input));
                let _ = std::fs::create_dir_all(&d);
                let _ = std::fs::write(Path::new(&d).join(name), input);
            }
            None
        }
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let path = dir().join(format!("fz.{}", EXTS[usize::from(sel) % EXTS.len()]));
    if std::fs::write(&path, body).is_err() {
        return;
    }
    if let Some(info) = check(probe(&path, "fz"), data) {
        assert!((1..=8).contains(&info.channels));
        assert!(info.sample_rate > 0);
    }
    if let Some(buf) = check(read_all_limited(&path, "fz", MAX_FRAMES), data) {
        assert!(buf.frames() as u64 <= MAX_FRAMES);
        assert!(buf.channels.iter().all(|c| c.len() == buf.frames()));
        assert!(buf.channels.iter().flatten().all(|x| x.is_finite()));
    }
    // A rate that forces resampling for most inputs.
    if let Some(mut r) = check(
        StemReader::open_limited(&path, "fz", 48_000, MAX_FRAMES),
        data,
    ) {
        let c = r.channels();
        let mut bufs = vec![vec![0.0f32; 4096]; c];
        let mut total = 0u64;
        loop {
            let mut slices: Vec<&mut [f32]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
            match check(r.read(&mut slices), data) {
                Some(0) | None => break,
                Some(k) => {
                    total += k as u64;
                    assert!(total <= MAX_FRAMES, "{total} frames past the limit");
                    assert!(bufs.iter().all(|b| b[..k].iter().all(|x| x.is_finite())));
                }
            }
        }
    }
});
