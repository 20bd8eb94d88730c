//! Following a job's event stream: a progress bar on a terminal (silence in a
//! pipe), one JSON line per event with `--json`, files written as they arrive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bounce_proto::v1::{FileChunk, JobEvent, job_event::Event};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tonic::Streaming;

use crate::conn::status_error;

/// Where the job's files go.
pub enum Dest {
    /// Every file into this folder under its own name.
    Dir(PathBuf),
    /// The one audio file to this path, its QC plot beside it (same stem, `.png`);
    /// `report.json` is not written.
    Single(PathBuf),
}

impl Dest {
    fn path_for(&self, name: &str) -> Option<PathBuf> {
        match self {
            Dest::Dir(dir) => Some(dir.join(name)),
            Dest::Single(path) => match name {
                "report.json" => None,
                n if n.ends_with(".png") => Some(path.with_extension("png")),
                _ => Some(path.clone()),
            },
        }
    }
}

/// What a finished job left.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The job id.
    pub job_id: String,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// The QC report.
    pub report: Option<serde_json::Value>,
}

/// Shows progress (terminal) or JSON lines (`--json`); quiet otherwise.
pub struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// A reporter for this process's stderr/stdout.
    pub fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {msg:24} [{bar:40}] {percent:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter { json, bar }
    }

    /// A status line (terminal only).
    pub fn status(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
    }

    /// A line printed above the bar (terminal only).
    pub fn note(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.println(msg);
        }
    }

    /// One JSON line on stdout (`--json` only).
    pub fn json(&self, value: serde_json::Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }

    fn progress(&self, stage: &str, fraction: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(stage.to_string());
            bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0).round() as u64);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A file being received: written to `<final>.part`, renamed when complete.
struct Partial {
    file: File,
    part: PathBuf,
    dest: PathBuf,
    written: u64,
}

/// Follows `stream` to the job's end, writing files into `dest`.
pub async fn follow(
    mut stream: Streaming<JobEvent>,
    dest: &Dest,
    rep: &Reporter,
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut partial: HashMap<String, Partial> = HashMap::new();
    let result = async {
        loop {
            let Some(ev) = stream.message().await.map_err(|s| {
                if outcome.job_id.is_empty() {
                    status_error(s)
                } else {
                    anyhow!(
                        "{} (job {} goes on: `bounce attach {} --out DIR`)",
                        status_error(s),
                        outcome.job_id,
                        outcome.job_id
                    )
                }
            })?
            else {
                bail!(
                    "the server ended the stream before job {} finished (`bounce attach {} --out DIR`)",
                    outcome.job_id,
                    outcome.job_id
                );
            };
            match ev.event {
                Some(Event::Accepted(a)) => {
                    outcome.job_id = a.job_id.clone();
                    rep.json(json!({"event": "accepted", "id": a.job_id, "queue_position": a.queue_position}));
                    rep.status(if a.queue_position > 0 { "queued" } else { "accepted" });
                }
                Some(Event::Progress(p)) => {
                    rep.json(json!({"event": "progress", "stage": p.stage, "fraction": p.fraction}));
                    rep.progress(&p.stage, p.fraction);
                }
                Some(Event::Report(r)) => {
                    let value: serde_json::Value =
                        serde_json::from_str(&r.json).unwrap_or(serde_json::Value::String(r.json));
                    rep.json(json!({"event": "report", "report": value}));
                    outcome.report = Some(value);
                }
                Some(Event::File(chunk)) => {
                    let name = chunk.name.clone();
                    if let Some(done) = receive(&mut partial, dest, chunk)? {
                        rep.json(json!({"event": "file", "name": name, "path": done.0.display().to_string(), "size": done.1}));
                        outcome.written.push(done.0);
                    }
                }
                Some(Event::Done(d)) => {
                    rep.json(json!({
                        "event": "done",
                        "id": outcome.job_id,
                        "files": d.files,
                        "paths": outcome.written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    }));
                    if let Some(name) = partial.keys().next() {
                        bail!("{name}: the server sent only part of this file");
                    }
                    return Ok(());
                }
                Some(Event::Error(e)) => {
                    rep.json(json!({"event": "error", "id": outcome.job_id, "message": e.message, "code": e.code}));
                    if e.code == "CANCELLED" {
                        bail!("job {} was cancelled", outcome.job_id);
                    }
                    bail!("{}", e.message);
                }
                Some(Event::Log(l)) => {
                    rep.json(json!({"event": "log", "level": l.level, "message": l.message}));
                    rep.note(&format!("{}: {}", l.level, l.message));
                }
                None => {}
            }
        }
    }
    .await;
    rep.finish();
    // Nothing half-written stays behind.
    for (_, p) in partial.drain() {
        drop(p.file);
        let _ = std::fs::remove_file(&p.part);
    }
    result.map(|()| outcome)
}

/// A plain file name the server may write: no folders, no tricks.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
}

/// Writes one chunk; returns (path, size) when the file is complete.
fn receive(
    partial: &mut HashMap<String, Partial>,
    dest: &Dest,
    chunk: FileChunk,
) -> Result<Option<(PathBuf, u64)>> {
    if !safe_name(&chunk.name) {
        bail!(
            "the server sent a file named {:?}: refused (not a plain file name)",
            chunk.name
        );
    }
    let Some(dest_path) = dest.path_for(&chunk.name) else {
        return Ok(None);
    };
    if chunk.offset == 0 && !partial.contains_key(&chunk.name) {
        let part = part_path(&dest_path);
        let file = File::create(&part).with_context(|| part.display().to_string())?;
        partial.insert(
            chunk.name.clone(),
            Partial {
                file,
                part,
                dest: dest_path,
                written: 0,
            },
        );
    }
    let Some(p) = partial.get_mut(&chunk.name) else {
        bail!(
            "{}: the server sent a chunk at offset {} of a file never started",
            chunk.name,
            chunk.offset
        );
    };
    if chunk.offset != p.written {
        bail!(
            "{}: chunk at offset {} but {} bytes written so far",
            chunk.name,
            chunk.offset,
            p.written
        );
    }
    p.file
        .write_all(&chunk.data)
        .with_context(|| p.part.display().to_string())?;
    p.written += chunk.data.len() as u64;
    if !chunk.last {
        return Ok(None);
    }
    let Some(p) = partial.remove(&chunk.name) else {
        return Ok(None);
    };
    if chunk.total_size != 0 && p.written != chunk.total_size {
        let _ = std::fs::remove_file(&p.part);
        bail!(
            "{}: received {} bytes of {}",
            chunk.name,
            p.written,
            chunk.total_size
        );
    }
    p.file
        .sync_all()
        .with_context(|| p.part.display().to_string())?;
    drop(p.file);
    std::fs::rename(&p.part, &p.dest).with_context(|| p.dest.display().to_string())?;
    Ok(Some((p.dest, p.written)))
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}
