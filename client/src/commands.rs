//! The commands behind the CLI. [`run`] is the one entry point; every failure comes
//! back as one error whose message is the line `main` prints.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bounce_proto::v1::{
    AttachRequest, CancelRequest, DeleteRequest, JobInfo, ListJobsRequest, MasterRequest,
    MissingRequest, Stem, SubmitRequest, UploadChunk, UploadHeader,
};
use bounce_server::session::{self, Session};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::cli::{Cli, Command};
use crate::conn::{Conn, status_error};
use crate::events::{Dest, Outcome, Reporter, follow};

/// Upload chunk size.
const UPLOAD_CHUNK: usize = 256 << 10;

/// Runs one command line to completion.
pub fn run(cli: Cli) -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> Result<()> {
    let rep = Reporter::new(cli.json);
    match &cli.command {
        Command::Render {
            session,
            out,
            sample_rate,
            strict,
        } => {
            if session::dawproject::is_dawproject(session) {
                let opts = session::dawproject::ImportOptions {
                    sample_rate: *sample_rate,
                    strict: *strict,
                };
                render_dawproject(&cli, session, out, &opts, &rep).await
            } else {
                render(&cli, session, out, &rep).await
            }
        }
        Command::Import {
            project,
            out,
            sample_rate,
            strict,
        } => {
            let opts = session::dawproject::ImportOptions {
                sample_rate: *sample_rate,
                strict: *strict,
            };
            let imp = import_project(project, out, &opts)?;
            if cli.json {
                println!(
                    "{}",
                    json!({"event": "import", "session": out.join(session::dawproject::SESSION_FILE).display().to_string(), "import": imp.report()})
                );
            } else {
                rep.note(&format!(
                    "imported {} into {}",
                    project.display(),
                    out.join(session::dawproject::SESSION_FILE).display()
                ));
            }
            Ok(())
        }
        Command::Demo { out } => {
            let session = crate::demo::write_demo(out)?;
            rep.note(&format!("demo song written to {}", session.display()));
            render(&cli, &session, out, &rep).await
        }
        Command::Master {
            input,
            out,
            target_lufs,
            ceiling_dbtp,
            bit_depth,
            sample_rate,
        } => {
            let d = bounce_proto::v1::Deliverable {
                name: "master".into(),
                target_lufs: Some(*target_lufs),
                ceiling_dbtp: Some(*ceiling_dbtp),
                sample_rate: sample_rate.unwrap_or(0),
                bit_depth: *bit_depth,
                format: format_of(out)?.into(),
                variant: "main".into(),
                preset: String::new(),
                album_gain_db: None,
                noise_shaping: false,
            };
            master(&cli, input, out, d, &rep).await
        }
        Command::Analyze { audio } => analyze(audio, cli.json),
        Command::Album { album, out } => album_cmd(&cli, album, out, &rep).await,
        Command::Attach { job, out } => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("{}: cannot create", out.display()))?;
            let conn = connect(&cli).await?;
            let result = async {
                let stream = conn
                    .render()
                    .attach(AttachRequest {
                        job_id: job.clone(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                follow(stream, &Dest::Dir(out.clone()), &rep).await
            }
            .await;
            conn.close(None).await?;
            finished(&result?, &rep, cli.json);
            Ok(())
        }
        Command::Cancel { job } => {
            let conn = connect(&cli).await?;
            let result = conn
                .render()
                .cancel(CancelRequest {
                    job_id: job.clone(),
                })
                .await;
            conn.close(None).await?;
            let r = result.map_err(status_error)?.into_inner();
            if cli.json {
                println!(
                    "{}",
                    json!({"id": job, "cancelled": r.cancelled, "state": r.state})
                );
            } else if r.cancelled {
                println!("job {job}: cancel requested (was {})", r.state);
            } else {
                println!("job {job}: already {}", r.state);
            }
            Ok(())
        }
        Command::Jobs { page_size } => {
            let conn = connect(&cli).await?;
            let result = list_all_jobs(&conn, *page_size).await;
            conn.close(None).await?;
            let jobs = result?;
            if cli.json {
                let list: Vec<serde_json::Value> = jobs
                    .iter()
                    .map(|j| {
                        json!({
                            "id": j.id,
                            "state": j.state,
                            "error": if j.error.is_empty() { None } else { Some(&j.error) },
                            "session": j.session_name,
                            "progress": j.progress,
                            "submitted_unix_ms": j.submitted_unix_ms,
                            "attempts": j.attempts,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if jobs.is_empty() {
                println!("no jobs");
            } else {
                println!("{:<18} {:<10} {:>5}  SESSION", "ID", "STATE", "DONE");
                for j in &jobs {
                    let mut line = format!(
                        "{:<18} {:<10} {:>4}%  {}",
                        j.id,
                        j.state,
                        (j.progress * 100.0).round(),
                        j.session_name
                    );
                    if !j.error.is_empty() {
                        line.push_str(&format!("  ({})", j.error));
                    }
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Delete { job } => delete_job(&cli, job).await,
    }
}

async fn connect(cli: &Cli) -> Result<Conn> {
    Conn::open(cli.server.as_deref(), cli.token.as_deref(), cli.backend).await
}

/// A stem on this machine: its hash and where it is.
struct LocalStem {
    hash: String,
    path: PathBuf,
    name: String,
}

/// `render` (and `demo`): validate locally, hash, upload what the server lacks,
/// submit, follow.
async fn render(cli: &Cli, session_path: &Path, out: &Path, rep: &Reporter) -> Result<()> {
    let session = session::load_session_file(session_path).map_err(|e| anyhow!("{e}"))?;
    let doc = Document::read(session_path, None)?;
    let outcome = render_loaded(cli, session, &doc, out, rep).await?;
    finished(&outcome, rep, cli.json);
    Ok(())
}

/// `import`: the project into `out`; its warnings on stderr, one line each.
fn import_project(
    project: &Path,
    out: &Path,
    opts: &session::dawproject::ImportOptions,
) -> Result<session::dawproject::Imported> {
    let imp = session::dawproject::import(project, out, opts).map_err(|e| anyhow!("{e}"))?;
    for w in &imp.warnings {
        eprintln!("bounce: warning: {w}");
    }
    Ok(imp)
}

/// `render SONG.dawproject`: import into `DIR/.import`, render that session exactly as
/// a session file, add `import: {warnings, mapped}` to DIR/report.json, then remove the
/// import folder.
async fn render_dawproject(
    cli: &Cli,
    project: &Path,
    out: &Path,
    opts: &session::dawproject::ImportOptions,
    rep: &Reporter,
) -> Result<()> {
    let work = out.join(".import");
    let imp = import_project(project, &work, opts)?;
    let result = render(cli, &work.join(session::dawproject::SESSION_FILE), out, rep).await;
    let _ = std::fs::remove_dir_all(&work);
    result?;
    let report_path = out.join("report.json");
    let mut report: serde_json::Value = match std::fs::read_to_string(&report_path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|_| json!({})),
        Err(_) => json!({}),
    };
    if let Some(map) = report.as_object_mut() {
        map.insert("import".into(), imp.report());
    }
    let text = serde_json::to_string_pretty(&report).context("report.json")?;
    std::fs::write(&report_path, text)
        .with_context(|| format!("{}: cannot write", report_path.display()))?;
    Ok(())
}

/// A session file as sent: its text (the server parses it with the same code) and,
/// for album songs, the deliverables that replace its own.
struct Document {
    toml: String,
    source: String,
    replace: Option<Vec<session::Deliverable>>,
}

impl Document {
    fn read(path: &Path, replace: Option<Vec<session::Deliverable>>) -> Result<Self> {
        let toml = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let source = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Document {
            toml,
            source,
            replace,
        })
    }

    fn to_proto(&self, session: &Session) -> bounce_proto::v1::SessionDocument {
        let stems = session::stems(session)
            .into_iter()
            .filter_map(|s| s.blake3.clone().map(|h| (s.name.clone(), h)))
            .collect();
        bounce_proto::v1::SessionDocument {
            toml: self.toml.clone(),
            source: self.source.clone(),
            stems,
            replace_deliverables: self.replace.is_some(),
            deliverables: self
                .replace
                .iter()
                .flatten()
                .map(session::deliverable_to)
                .collect(),
        }
    }
}

/// Renders an already loaded (and validated) session into `out`.
async fn render_loaded(
    cli: &Cli,
    mut session: Session,
    doc: &Document,
    out: &Path,
    rep: &Reporter,
) -> Result<Outcome> {
    let stems = hash_session_stems(&mut session).await?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let conn = connect(cli).await?;
    let result = async {
        upload_missing(&conn, &stems, rep).await?;
        rep.status("submitting");
        let stream = conn
            .render()
            .submit(SubmitRequest {
                session: None,
                backend: 0,
                document: Some(doc.to_proto(&session)),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        follow(stream, &Dest::Dir(out.to_path_buf()), rep).await
    }
    .await;
    let job = result.as_ref().ok().map(|o| o.job_id.clone());
    conn.close(job.as_deref()).await?;
    result
}

/// `album`: every song with the album's deliverables into `DIR/NN-slug/`, then
/// `DIR/manifest.json`. In album loudness mode a first pass measures each song after
/// the master chain; each deliverable then gets one gain for the whole album (its
/// target minus the loudest song), applied to every song before its limiter.
async fn album_cmd(cli: &Cli, album_path: &Path, out: &Path, rep: &Reporter) -> Result<()> {
    let album = session::load_album_file(album_path).map_err(|e| anyhow!("{e}"))?;
    // Every song is checked before any work.
    let mut songs = Vec::with_capacity(album.songs.len());
    for path in &album.songs {
        let mut s = session::load_session_file(path).map_err(|e| anyhow!("{e}"))?;
        s.deliverables = album.deliverables_for(&s);
        session::validate(&s).map_err(|e| anyhow!("{}: {e}", album.source))?;
        songs.push(s);
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut gains: HashMap<String, f64> = HashMap::new();
    if album.loudness == session::AlbumLoudness::Album {
        let measure_dir = out.join(".album-measure");
        let mut loudest: HashMap<String, f64> = HashMap::new();
        for (i, s) in songs.iter().enumerate() {
            rep.status(&format!("measuring song {} of {}", i + 1, songs.len()));
            let doc = Document::read(&album.songs[i], Some(s.deliverables.clone()))?;
            let outcome = render_loaded(
                cli,
                s.clone(),
                &doc,
                &measure_dir.join(format!("{:02}", i + 1)),
                rep,
            )
            .await?;
            let report = outcome.report.unwrap_or_default();
            for d in report["deliverables"].as_array().into_iter().flatten() {
                if let (Some(name), Some(l)) = (d["name"].as_str(), d["pre_limiter_lufs"].as_f64())
                {
                    let e = loudest.entry(name.to_string()).or_insert(f64::NEG_INFINITY);
                    *e = e.max(l);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&measure_dir);
        for d in songs
            .first()
            .map(|s| s.deliverables.as_slice())
            .unwrap_or_default()
        {
            if let (Some(t), Some(l)) = (d.target_lufs, loudest.get(&d.name)) {
                gains.insert(d.name.clone(), t - l);
            }
        }
    }
    let mut manifest_songs = Vec::new();
    for (i, mut s) in songs.into_iter().enumerate() {
        for d in &mut s.deliverables {
            d.album_gain_db = gains.get(&d.name).copied();
        }
        let dir_name = session::song_dir(i, &s.name);
        rep.status(&format!(
            "song {} of {}: {}",
            i + 1,
            album.songs.len(),
            s.name
        ));
        let doc = Document::read(&album.songs[i], Some(s.deliverables.clone()))?;
        let outcome = render_loaded(cli, s.clone(), &doc, &out.join(&dir_name), rep).await?;
        finished(&outcome, rep, cli.json);
        let files: Vec<String> = outcome
            .written
            .iter()
            .filter_map(|p| {
                p.file_name()
                    .map(|f| format!("{dir_name}/{}", f.to_string_lossy()))
            })
            .collect();
        manifest_songs.push(json!({
            "index": i + 1,
            "name": s.name,
            "session": album.songs[i].display().to_string(),
            "dir": dir_name,
            "files": files,
            "job_id": outcome.job_id,
            "deliverables": outcome.report.as_ref().map(|r| r["deliverables"].clone()),
        }));
    }
    let manifest = json!({
        "album": album.name,
        "loudness": match album.loudness { session::AlbumLoudness::Album => "album", session::AlbumLoudness::Track => "track" },
        "album_gain_db": gains,
        "songs": manifest_songs,
    });
    let path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).context("manifest")?;
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    if cli.json {
        println!(
            "{}",
            json!({"event": "album", "manifest": path.display().to_string()})
        );
    }
    Ok(())
}

/// `master`: upload the one file, ask the Master RPC, write OUT.
async fn master(
    cli: &Cli,
    input: &Path,
    out: &Path,
    deliverable: bounce_proto::v1::Deliverable,
    rep: &Reporter,
) -> Result<()> {
    let meta = std::fs::metadata(input).with_context(|| input.display().to_string())?;
    if !meta.is_file() {
        bail!("{}: not a file", input.display());
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    let name = input.display().to_string();
    let hash = hash_file(input.to_path_buf()).await?;
    let stem = LocalStem {
        hash: hash.clone(),
        path: input.to_path_buf(),
        name: name.clone(),
    };
    let conn = connect(cli).await?;
    let result = async {
        upload_missing(&conn, std::slice::from_ref(&stem), rep).await?;
        rep.status("submitting");
        let stream = conn
            .render()
            .master(MasterRequest {
                stem: Some(Stem { blake3: hash, name }),
                deliverable: Some(deliverable),
                master: None,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        follow(stream, &Dest::Single(out.to_path_buf()), rep).await
    }
    .await;
    let job = result.as_ref().ok().map(|o| o.job_id.clone());
    conn.close(job.as_deref()).await?;
    let outcome = result?;
    if outcome.written.is_empty() {
        bail!("{}: the server sent no audio file", out.display());
    }
    finished(&outcome, rep, cli.json);
    Ok(())
}

/// After a job: where its files went (terminal), the QC warnings (unless --json,
/// where they are in the report event).
fn finished(outcome: &Outcome, rep: &Reporter, json: bool) {
    if json {
        return;
    }
    if let Some(report) = &outcome.report {
        let mut warnings = Vec::new();
        collect_warnings(report, &mut warnings);
        warnings.dedup();
        for w in warnings {
            eprintln!("bounce: warning: {w}");
        }
    }
    if std::io::stderr().is_terminal() {
        let files: Vec<String> = outcome
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        rep.finish();
        eprintln!("job {} done: {}", outcome.job_id, files.join(", "));
    }
}

fn collect_warnings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "warnings" {
                    if let Some(list) = v.as_array() {
                        let file = map.get("file").and_then(|f| f.as_str());
                        for w in list.iter().filter_map(|w| w.as_str()) {
                            let line = match file {
                                Some(f) if !w.contains(f) => format!("{f}: {w}"),
                                _ => w.to_string(),
                            };
                            if !out.contains(&line) {
                                out.push(line);
                            }
                        }
                    }
                } else {
                    collect_warnings(v, out);
                }
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| collect_warnings(v, out)),
        _ => {}
    }
}

/// Hashes every stem and IR of the session (each file once, even if used twice)
/// and writes the hashes into the session. Each file must probe as audio first: one
/// that does not (a text file, `/etc/passwd`) is an error naming the track (or bus) and
/// the path, before anything is hashed or uploaded.
async fn hash_session_stems(session: &mut Session) -> Result<Vec<LocalStem>> {
    let mut by_path: HashMap<PathBuf, String> = HashMap::new();
    let mut stems: Vec<LocalStem> = Vec::new();
    // Every file with the strip that names it, for messages.
    let mut refs: Vec<(String, &mut session::StemRef)> = Vec::new();
    for t in &mut session.tracks {
        let owner = format!("track {:?}", t.name);
        for c in &mut t.clips {
            refs.push((owner.clone(), &mut c.file));
        }
        for i in &mut t.inserts {
            if let Some(f) = i.file_mut() {
                refs.push((format!("{owner} (reverb IR)"), f));
            }
        }
    }
    for b in &mut session.buses {
        let owner = format!("bus {:?} (reverb IR)", b.name);
        if let Some(r) = &mut b.reverb {
            refs.push((owner.clone(), &mut r.ir));
        }
        for i in &mut b.inserts {
            if let Some(f) = i.file_mut() {
                refs.push((owner.clone(), f));
            }
        }
    }
    if let Some(m) = &mut session.master_bus {
        for i in &mut m.inserts {
            if let Some(f) = i.file_mut() {
                refs.push(("master_bus (reverb IR)".to_string(), f));
            }
        }
    }
    let mut checked: Vec<(String, PathBuf, &mut session::StemRef)> = Vec::new();
    for (owner, stem) in refs {
        let path = stem
            .path
            .clone()
            .ok_or_else(|| anyhow!("{owner}: {}: no local path", stem.name))?;
        check_audio(path.clone(), stem.name.clone())
            .await
            .map_err(|e| anyhow!("{owner}: {e}"))?;
        checked.push((owner, path, stem));
    }
    for (owner, path, stem) in checked {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let hash = match by_path.get(&key) {
            Some(h) => h.clone(),
            None => {
                let h = hash_bytes(path.clone())
                    .await
                    .map_err(|e| anyhow!("{owner}: {e}"))?;
                by_path.insert(key, h.clone());
                if !stems.iter().any(|s| s.hash == h) {
                    stems.push(LocalStem {
                        hash: h.clone(),
                        path: path.clone(),
                        name: stem.name.clone(),
                    });
                }
                h
            }
        };
        stem.blake3 = Some(hash);
    }
    Ok(stems)
}

/// The file must probe as audio (the same checks the server runs), on a blocking
/// thread; the error names the file as `display`.
async fn check_audio(path: PathBuf, display: String) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        bounce_server::audio::probe(&path, &display)
            .map(|_| ())
            .map_err(|e| anyhow!("{e}; not uploaded"))
    })
    .await
    .map_err(|e| anyhow!("probing: {e}"))?
}

/// BLAKE3 of an audio file, lower-case hex: the file must probe as audio first.
async fn hash_file(path: PathBuf) -> Result<String> {
    check_audio(path.clone(), path.display().to_string()).await?;
    hash_bytes(path).await
}

/// BLAKE3 of a file, lower-case hex, on a blocking thread.
async fn hash_bytes(path: PathBuf) -> Result<String> {
    tokio::task::spawn_blocking(move || -> Result<String> {
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(file)
            .with_context(|| path.display().to_string())?;
        Ok(hasher.finalize().to_hex().to_string())
    })
    .await
    .map_err(|e| anyhow!("hashing: {e}"))?
}

/// Asks which stems the server lacks and uploads only those.
async fn upload_missing(conn: &Conn, stems: &[LocalStem], rep: &Reporter) -> Result<()> {
    if stems.is_empty() {
        return Ok(());
    }
    let hashes = stems.iter().map(|s| s.hash.clone()).collect();
    let missing = conn
        .store()
        .missing(MissingRequest { blake3: hashes })
        .await
        .map_err(status_error)?
        .into_inner()
        .blake3;
    for stem in stems.iter().filter(|s| missing.contains(&s.hash)) {
        rep.status(&format!("uploading {}", stem.name));
        upload(conn, stem).await?;
    }
    Ok(())
}

/// Streams one file in chunks, the header first.
async fn upload(conn: &Conn, stem: &LocalStem) -> Result<()> {
    let size = std::fs::metadata(&stem.path)
        .with_context(|| stem.path.display().to_string())?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadChunk>(4);
    let path = stem.path.clone();
    let mut header = Some(UploadHeader {
        blake3: stem.hash.clone(),
        size,
        name: stem.name.clone(),
    });
    let reader = tokio::spawn(async move {
        let mut file = tokio::fs::File::open(&path).await?;
        loop {
            let mut buf = vec![0u8; UPLOAD_CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            if filled == 0 && header.is_none() {
                break;
            }
            let chunk = UploadChunk {
                header: header.take(),
                data: buf,
            };
            if tx.send(chunk).await.is_err() || filled < UPLOAD_CHUNK {
                break; // the server stopped listening, or that was the end
            }
        }
        Ok::<(), std::io::Error>(())
    });
    let response = conn.store().upload(ReceiverStream::new(rx)).await;
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("{}: {e}", stem.path.display()),
        Err(e) => bail!("{}: reading failed: {e}", stem.path.display()),
    }
    response.map_err(status_error)?;
    Ok(())
}

/// wav or flac, from OUT's extension.
fn format_of(out: &Path) -> Result<&'static str> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("wav") => Ok("wav"),
        Some("flac") => Ok("flac"),
        _ => bail!("{}: --out must end in .wav or .flac", out.display()),
    }
}

/// `analyze`: local, no server.
fn analyze(audio: &Path, json: bool) -> Result<()> {
    let display = audio.display().to_string();
    let buf =
        bounce_server::audio::decode::read_all(audio, &display).map_err(|e| anyhow!("{e}"))?;
    let report = bounce_server::master::analyze(&buf.channels, buf.sample_rate, &display)
        .map_err(|e| anyhow!("{e}"))?;
    let value = serde_json::to_value(&report).context("report")?;
    if json {
        println!("{value}");
        return Ok(());
    }
    print_table(&value);
    Ok(())
}

fn print_table(v: &serde_json::Value) {
    const ROWS: &[(&str, &str, &str)] = &[
        ("file", "file", ""),
        ("duration_s", "duration", " s"),
        ("sample_rate", "sample rate", " Hz"),
        ("channels", "channels", ""),
        ("integrated_lufs", "integrated loudness", " LUFS"),
        ("short_term_max_lufs", "short-term max", " LUFS"),
        ("momentary_max_lufs", "momentary max", " LUFS"),
        ("lra_lu", "loudness range", " LU"),
        ("true_peak_dbtp", "true peak", " dBTP"),
        ("sample_peak_dbfs", "sample peak", " dBFS"),
        ("plr_db", "peak to loudness", " dB"),
        ("clipped_samples", "clipped samples", ""),
        ("dc_offset", "DC offset", ""),
        ("correlation", "stereo correlation", ""),
        ("mono_compat_drop_db", "mono fold-down drop", " dB"),
        ("low_end_mono_drop_db", "low-end mono drop", " dB"),
    ];
    for (key, label, unit) in ROWS {
        let Some(value) = v.get(*key) else { continue };
        let text = match value {
            serde_json::Value::Null => "n/a".to_string(),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(i), _) => format!("{i}{unit}"),
                (None, Some(f)) => format!("{f:.2}{unit}"),
                _ => n.to_string(),
            },
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(list) => list
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map_or_else(|| x.to_string(), |f| format!("{f:.6}"))
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        println!("{label:<22} {text}");
    }
    for (key, prefix) in [("notes", "note"), ("warnings", "warning")] {
        if let Some(list) = v.get(key).and_then(|l| l.as_array()) {
            for item in list.iter().filter_map(|i| i.as_str()) {
                println!("{prefix}: {item}");
            }
        }
    }
}

/// Every job of the project, page after page (a server bounds each page).
async fn list_all_jobs(conn: &Conn, page_size: u32) -> Result<Vec<JobInfo>> {
    let mut jobs = Vec::new();
    let mut page_token = String::new();
    // A bound on pages, so a server that keeps answering with tokens cannot keep
    // the client looping.
    for _ in 0..100_000 {
        let page = conn
            .render()
            .list_jobs(ListJobsRequest {
                page_size,
                page_token: page_token.clone(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            return Ok(jobs);
        }
        page_token = page.next_page_token;
    }
    Ok(jobs)
}

/// `bounce delete JOB`.
async fn delete_job(cli: &Cli, job: &str) -> Result<()> {
    let conn = connect(cli).await?;
    let result = conn
        .render()
        .delete(DeleteRequest {
            job_id: job.to_string(),
        })
        .await;
    conn.close(None).await?;
    let r = result.map_err(status_error)?.into_inner();
    if cli.json {
        println!(
            "{}",
            json!({"id": job, "deleted": r.deleted, "state": r.state, "bytes_freed": r.bytes_freed})
        );
    } else {
        println!(
            "job {job}: deleted ({}, {} bytes freed)",
            r.state, r.bytes_freed
        );
    }
    Ok(())
}
