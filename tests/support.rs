//! Helpers for the end-to-end tests: find the built binaries, start a real `bounced`,
//! run the real `bounce`, write seeded test stems.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The folder holding the workspace's binaries (target/debug when run by `cargo test`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-xxxx -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path to a workspace binary; fails with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo test --workspace` (it builds bounced and bounce) or `cargo build --bins`",
        p.display()
    );
    p
}

/// A running `bounced` on 127.0.0.1:0, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _data: tempfile::TempDir,
}

impl Server {
    /// Starts `bounced --listen 127.0.0.1:0 --data-dir <tmp> --backend <backend>` and waits
    /// for its "listening on ADDR" line.
    pub fn start(backend: &str) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(bin("bounced"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--backend", backend])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bounced");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(at) = line.find("listening on ") {
                    let addr = line[at + "listening on ".len()..].trim().to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
                eprintln!("[bounced] {line}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("bounced exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "bounced did not report its address"
            );
        };
        let url = if addr.starts_with("http") {
            addr
        } else {
            format!("http://{addr}")
        };
        Server {
            child,
            url,
            _data: data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bounce` with `args`; returns its output.
pub fn bounce(args: &[&str]) -> Output {
    Command::new(bin("bounce"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bounce")
}

pub use bounce_test_audio::{error_db, noise, read_wav, write_f32_wav};
