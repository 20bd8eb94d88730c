//! The client uploads only audio: a session naming a file that does not probe as audio
//! (a text file, `/etc/passwd`) fails locally with one line naming the track and the
//! path, and nothing at all reaches the server's store.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BOUNCE: &str = env!("CARGO_BIN_EXE_bounce");

/// A 0.2 s mono 16-bit WAV of a sine.
fn write_wav(path: &Path) {
    let sine = bounce_test_audio::sine(220.0, 0.3, 9600, 48_000);
    bounce_test_audio::write_pcm16_wav(path, &[sine], 48_000);
}

/// A folder with stems/kick.wav, notes.txt and song.toml with a good track "Kick"
/// and a track "Evil" whose file is `evil`.
fn song(evil: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stems")).unwrap();
    write_wav(&dir.path().join("stems/kick.wav"));
    std::fs::write(dir.path().join("notes.txt"), "take 3 was the keeper\n").unwrap();
    std::fs::write(
        dir.path().join("song.toml"),
        format!(
            "[session]\nname = \"Test\"\nsample_rate = 48000\ntail_s = 0.1\n\n\
             [[track]]\nname = \"Kick\"\nfile = \"stems/kick.wav\"\n\n\
             [[track]]\nname = \"Evil\"\nfile = {evil:?}\n"
        ),
    )
    .unwrap();
    dir
}

fn bounce(args: &[&str], cache: &Path) -> Output {
    Command::new(BOUNCE)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("BOUNCE_SERVER")
        .env_remove("BOUNCE_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Non-zero exit, exactly one line on stderr, containing every `needles`, no panic.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("bounce: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in: {stderr}");
    }
}

fn bounced_path() -> Option<PathBuf> {
    let p = Path::new(BOUNCE).with_file_name(format!("bounced{}", std::env::consts::EXE_SUFFIX));
    p.is_file().then_some(p)
}

struct Daemon {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_bounced(bin: &Path) -> Daemon {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--backend", "cpu", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("bounced ended before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("bounced listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Daemon {
        child,
        url: format!("http://{addr}"),
        data,
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// No file in the server's data dir holds any of these contents.
fn assert_not_stored(data: &Path, contents: &[&[u8]]) {
    for f in files_under(data) {
        let b = std::fs::read(&f).unwrap_or_default();
        for c in contents {
            assert!(b != *c, "{} holds an uploaded file", f.display());
        }
    }
}

#[test]
fn a_session_naming_non_audio_files_uploads_nothing() {
    let Some(bin) = bounced_path() else {
        eprintln!(
            "\n*** SKIP a_session_naming_non_audio_files_uploads_nothing: bounced is not built \
             next to {BOUNCE} (cargo build -p bounce-server) ***\n"
        );
        return;
    };
    let daemon = start_bounced(&bin);
    let cache = tempfile::tempdir().unwrap();
    let passwd = Path::new("/etc/passwd");
    for evil in ["/etc/passwd", "notes.txt"] {
        let dir = song(evil);
        let session = dir.path().join("song.toml");
        let out_dir = dir.path().join("out");
        let out = bounce(
            &[
                "render",
                session.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "--server",
                &daemon.url,
            ],
            cache.path(),
        );
        assert_one_line_error(&out, &["track \"Evil\"", evil, "not a readable audio file"]);
        assert!(!out_dir.join("mix.wav").exists());
        let kick = std::fs::read(dir.path().join("stems/kick.wav")).unwrap();
        let notes = std::fs::read(dir.path().join("notes.txt")).unwrap();
        let mut stored: Vec<Vec<u8>> = vec![kick, notes];
        if passwd.is_file() {
            stored.push(std::fs::read(passwd).unwrap());
        }
        let refs: Vec<&[u8]> = stored.iter().map(|v| v.as_slice()).collect();
        // Not even the good stem went up: the check comes before any upload.
        assert_not_stored(daemon.data.path(), &refs);
    }
    // The server is untouched and still answers.
    let out = bounce(&["jobs", "--json", "--server", &daemon.url], cache.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn embedded_render_and_master_refuse_a_text_file() {
    let dir = song("notes.txt");
    let cache = tempfile::tempdir().unwrap();
    let session = dir.path().join("song.toml");
    let out_dir = dir.path().join("out");
    let out = bounce(
        &[
            "render",
            session.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        cache.path(),
    );
    assert_one_line_error(&out, &["track \"Evil\"", "notes.txt", "not uploaded"]);
    let notes = dir.path().join("notes.txt");
    let out = bounce(
        &[
            "master",
            notes.to_str().unwrap(),
            "--out",
            dir.path().join("m.wav").to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_one_line_error(&out, &["notes.txt", "not a readable audio file"]);
    assert!(!dir.path().join("m.wav").exists());
}
