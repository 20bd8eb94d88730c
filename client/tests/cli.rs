//! The real `bounce` binary: exit codes, one-line errors, JSON output.
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

/// A folder with stems/kick.wav and song.toml holding `track_extra` in its track.
fn song(track_extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stems")).unwrap();
    write_wav(&dir.path().join("stems/kick.wav"));
    std::fs::write(
        dir.path().join("song.toml"),
        format!(
            "[session]\nname = \"Test\"\nsample_rate = 48000\ntail_s = 0.1\n\n[[track]]\nname = \"Kick\"\nfile = \"stems/kick.wav\"\n{track_extra}\n"
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
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

#[test]
fn a_bad_session_field_is_one_line_naming_file_and_field() {
    let dir = song("gain_db = 999.0");
    let cache = tempfile::tempdir().unwrap();
    let session = dir.path().join("song.toml");
    let out_dir = dir.path().join("out");
    let out = bounce(
        &[
            "render",
            session.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert_one_line_error(&out, &["song.toml", "gain_db", "Kick"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_key_and_a_missing_stem_are_one_line_each() {
    let cache = tempfile::tempdir().unwrap();
    let dir = song("gian_db = 1.0");
    let session = dir.path().join("song.toml");
    let out = bounce(
        &["render", session.to_str().unwrap(), "--out", "unused"],
        cache.path(),
    );
    assert_one_line_error(&out, &["song.toml", "gian_db"]);

    let dir = song("");
    std::fs::remove_file(dir.path().join("stems/kick.wav")).unwrap();
    let session = dir.path().join("song.toml");
    let out = bounce(
        &["render", session.to_str().unwrap(), "--out", "unused"],
        cache.path(),
    );
    assert_one_line_error(&out, &["song.toml", "kick.wav"]);

    let out = bounce(
        &["render", "/no/such/song.toml", "--out", "unused"],
        cache.path(),
    );
    assert_one_line_error(&out, &["song.toml"]);
}

#[test]
fn album_and_bad_urls_fail_in_one_line() {
    let cache = tempfile::tempdir().unwrap();
    let out = bounce(&["album", "a.toml", "--out", "d"], cache.path());
    assert_one_line_error(&out, &["a.toml"]);
    let out = bounce(&["jobs", "--server", "ftp://example"], cache.path());
    assert_one_line_error(&out, &["ftp://example"]);
    // Nothing listens on port 1.
    let out = bounce(&["jobs", "--server", "http://127.0.0.1:1"], cache.path());
    assert_one_line_error(&out, &["127.0.0.1:1"]);
}

#[test]
fn render_json_through_the_embedded_server_starts_with_accepted() {
    let dir = song("gain_db = -3.0\npan = 0.25");
    let cache = tempfile::tempdir().unwrap();
    let session = dir.path().join("song.toml");
    let out_dir = dir.path().join("out");
    let out = bounce(
        &[
            "render",
            session.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
            "--backend",
            "cpu",
        ],
        cache.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let first = events
        .first()
        .unwrap_or_else(|| panic!("no events; stderr: {stderr}"));
    assert_eq!(first["event"], "accepted");
    assert!(first["id"].as_str().is_some_and(|id| !id.is_empty()));
    let last = events.last().unwrap();
    if out.status.success() {
        assert_eq!(last["event"], "done");
        assert!(out_dir.join("mix.wav").is_file());
        assert!(out_dir.join("report.json").is_file());
        assert!(stderr.trim().is_empty(), "{stderr}");
    } else {
        // The engine said no: the error event, then one line on stderr.
        assert_eq!(last["event"], "error");
        assert_one_line_error(&out, &[]);
    }
    // No half-written files either way.
    for entry in std::fs::read_dir(&out_dir).unwrap().flatten() {
        assert!(!entry.file_name().to_string_lossy().ends_with(".part"));
    }
}

/// `bounced`, built next to `bounce` (cargo builds it with the workspace).
fn bounced_path() -> Option<PathBuf> {
    let p = Path::new(BOUNCE).with_file_name(format!("bounced{}", std::env::consts::EXE_SUFFIX));
    p.is_file().then_some(p)
}

struct Daemon {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
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
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Daemon {
        child,
        url: format!("http://{addr}"),
        _data: data,
    }
}

#[test]
fn jobs_json_against_bounced_is_an_array() {
    let Some(bin) = bounced_path() else {
        eprintln!("SKIPPED: bounced is not built next to {BOUNCE} (cargo build -p bounce-server)");
        return;
    };
    let daemon = start_bounced(&bin);
    let cache = tempfile::tempdir().unwrap();
    let out = bounce(&["jobs", "--json", "--server", &daemon.url], cache.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));

    // A render through it, then the job is listed with id and state.
    let dir = song("gain_db = -6.0");
    let session = dir.path().join("song.toml");
    let out_dir = dir.path().join("out");
    let out = bounce(
        &[
            "render",
            session.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
            "--server",
            &daemon.url,
        ],
        cache.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or("null")).unwrap();
    let id = first["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {stdout}"))
        .to_string();
    let out = bounce(&["jobs", "--json", "--server", &daemon.url], cache.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = v.as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], id.as_str());
    let state = jobs[0]["state"].as_str().unwrap();
    assert!(["done", "failed"].contains(&state), "{state}");
    if state == "failed" {
        assert!(jobs[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    // Unknown job: one line, the server's words.
    let out = bounce(&["cancel", "nope", "--server", &daemon.url], cache.path());
    assert_one_line_error(&out, &["nope"]);
}
