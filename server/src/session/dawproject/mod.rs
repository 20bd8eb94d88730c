//! DAWproject import: a `.dawproject` file (Bitwig, Studio One, Cubase …) → a
//! [`Session`] and its audio (CONTRACT.md, "DAWproject" and "Precise meanings of the
//! DAWproject mapping").
//!
//! # Brief overview
//! - [`read_project`]: the zip and its project.xml → [`Imported`] (nothing written).
//! - [`import`]: [`read_project`], then the audio written under `DIR/audio/`, the rate
//!   read from its headers, the session validated and written as `DIR/session.toml`
//!   (checked to parse back to the same session) and `DIR/import.json`.
//! - [`is_dawproject`]: by extension or zip magic.
//!
//! Every size read from the input is bounded before anything is allocated (entry count,
//! project.xml's size, each audio file's size), paths that leave the archive are
//! errors, and every error is one line naming the project file and the element.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::model::Session;
use crate::{Error, Result};

mod map;
pub mod tempo;
pub mod units;
pub mod xml;

/// Most entries a project archive may hold.
pub const MAX_ENTRIES: usize = 65_536;
/// Largest project.xml (uncompressed) read.
pub const MAX_XML_BYTES: u64 = 64 << 20;
/// Largest audio file extracted from the archive (uncompressed).
pub const MAX_AUDIO_BYTES: u64 = 4 << 30;
/// Largest total of extracted audio.
pub const MAX_AUDIO_TOTAL: u64 = 32 << 30;
/// An entry this much larger than its compressed size (and over 256 MiB) is a zip bomb.
const MAX_RATIO: u64 = 1000;

/// The session file `import` writes.
pub const SESSION_FILE: &str = "session.toml";
/// The report `import` writes beside it.
pub const IMPORT_JSON: &str = "import.json";

/// What the command line asks of an import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// `--sample-rate`: the session rate; else the highest rate among the audio files.
    pub sample_rate: Option<u32>,
    /// `--strict`: the first warning is an error.
    pub strict: bool,
}

/// Where an imported clip's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// An entry of the archive (a clean relative path).
    Zip(String),
    /// A file outside the archive, as the project names it (relative to the project's
    /// folder, or absolute).
    External(PathBuf),
}

/// One audio file the imported session uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFile {
    /// Its name in the session (`audio/…`, relative to the session file).
    pub name: String,
    /// Where it is read from.
    pub source: AudioSource,
    /// The element naming it, for messages.
    pub element: String,
}

/// An imported project.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The session (stem paths set once the audio is written).
    pub session: Session,
    /// What could not be rendered, one line each (track, device or clip, why).
    pub warnings: Vec<String>,
    /// What was mapped (tracks, buses, clips, lanes, devices) and what was left out on purpose.
    pub mapped: Vec<String>,
    /// The audio files the session's clips use.
    pub audio: Vec<AudioFile>,
}

impl Imported {
    /// `{ "warnings": [...], "mapped": [...] }`: report.json's `import` and import.json.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({ "warnings": self.warnings, "mapped": self.mapped })
    }
}

/// A `.dawproject` by its extension, or a zip (its magic) that holds project.xml.
pub fn is_dawproject(path: &Path) -> bool {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("dawproject"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    let is_zip = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04";
    is_zip
        && std::fs::File::open(path)
            .ok()
            .and_then(|f| zip::ZipArchive::new(f).ok())
            .is_some_and(|a| a.index_for_name("project.xml").is_some())
}

/// A path inside the archive, cleaned: relative, `/`-separated, no `.`/`..`/empty
/// components; `None` when it would leave the archive.
pub(crate) fn zip_path(p: &str) -> Option<String> {
    let p = p.replace('\\', "/");
    if p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => continue,
            ".." => return None,
            c if c.contains(':') => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn open_archive(path: &Path, src: &str) -> Result<zip::ZipArchive<std::fs::File>> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::io(src, super::parse::io_reason(&e)))?;
    let archive = zip::ZipArchive::new(file).map_err(|e| {
        Error::InvalidSession(format!(
            "{src}: not a DAWproject file (not a readable zip archive: {e})"
        ))
    })?;
    if archive.len() > MAX_ENTRIES {
        return Err(Error::Limit(format!(
            "{src}: {} entries in the archive, at most {MAX_ENTRIES}",
            archive.len()
        )));
    }
    Ok(archive)
}

/// Checks an entry's declared sizes against `max` and the bomb ratio.
fn check_entry(src: &str, name: &str, size: u64, compressed: u64, max: u64) -> Result<()> {
    if size > max {
        return Err(Error::Limit(format!(
            "{src}: {name}: {size} bytes uncompressed, at most {max}"
        )));
    }
    if size > (256 << 20) && size / compressed.max(1) > MAX_RATIO {
        return Err(Error::Limit(format!(
            "{src}: {name}: expands {}× ({size} bytes from {compressed}): a zip bomb?",
            size / compressed.max(1)
        )));
    }
    Ok(())
}

/// Reads and maps the project; nothing is written. The session's rate is
/// `--sample-rate` or 48000 (see [`import`] for the rate read from the audio), its
/// stems have no paths yet.
pub fn read_project(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    let src = path.display().to_string();
    let mut archive = open_archive(path, &src)?;
    let text = {
        let mut entry = archive.by_name("project.xml").map_err(|_| {
            Error::InvalidSession(format!(
                "{src}: not a DAWproject file (no project.xml in the archive)"
            ))
        })?;
        check_entry(
            &src,
            "project.xml",
            entry.size(),
            entry.compressed_size(),
            MAX_XML_BYTES,
        )?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        (&mut entry)
            .take(MAX_XML_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                Error::InvalidSession(format!("{src}: project.xml: cannot be read: {e}"))
            })?;
        if bytes.len() as u64 > MAX_XML_BYTES {
            return Err(Error::Limit(format!(
                "{src}: project.xml: more than {MAX_XML_BYTES} bytes"
            )));
        }
        String::from_utf8(bytes).map_err(|e| {
            Error::InvalidSession(format!("{src}: project.xml: not UTF-8 text ({e})"))
        })?
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let tree =
        xml::parse(text).map_err(|e| Error::InvalidSession(format!("{src}: project.xml: {e}")))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = map::Mapper::new(&tree, &src, opts.strict).run(&name)?;
    let mut session = m.session;
    session.sample_rate = opts.sample_rate.unwrap_or(48000);
    Ok(Imported {
        session,
        warnings: m.warnings,
        mapped: m.mapped,
        audio: m.audio,
    })
}

/// Imports `path` into `out`: `out/audio/…`, `out/session.toml` and `out/import.json`.
/// The session's rate is `--sample-rate`, else the highest rate among the audio files'
/// headers (48000 when there are none). Under `--strict` a warning fails before
/// anything is written. The returned session is the one `out/session.toml` parses to.
pub fn import(path: &Path, out: &Path, opts: &ImportOptions) -> Result<Imported> {
    let src = path.display().to_string();
    let mut imp = read_project(path, opts)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(out.display(), format_args!("cannot create: {e}")))?;
    let project_dir = path.parent().unwrap_or(Path::new(""));
    let mut archive = open_archive(path, &src)?;
    let mut total = 0u64;
    let mut rate = 0u32;
    for a in &imp.audio {
        let dest = out.join(&a.name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(parent.display(), format_args!("cannot create: {e}")))?;
        }
        match &a.source {
            AudioSource::Zip(entry_name) => {
                let mut entry = archive.by_name(entry_name).map_err(|_| {
                    Error::InvalidSession(format!(
                        "{src}: project.xml: {}: audio {entry_name:?} is not in the archive",
                        a.element
                    ))
                })?;
                check_entry(
                    &src,
                    entry_name,
                    entry.size(),
                    entry.compressed_size(),
                    MAX_AUDIO_BYTES,
                )?;
                total += entry.size();
                if total > MAX_AUDIO_TOTAL {
                    return Err(Error::Limit(format!(
                        "{src}: more than {MAX_AUDIO_TOTAL} bytes of audio"
                    )));
                }
                let declared = entry.size();
                let mut f = std::fs::File::create(&dest)
                    .map_err(|e| Error::io(dest.display(), format_args!("cannot write: {e}")))?;
                let n =
                    std::io::copy(&mut (&mut entry).take(declared + 1), &mut f).map_err(|e| {
                        Error::InvalidSession(format!("{src}: {entry_name}: cannot be read: {e}"))
                    })?;
                if n != declared {
                    return Err(Error::InvalidSession(format!(
                        "{src}: {entry_name}: {n} bytes where the archive declares {declared}"
                    )));
                }
                f.flush()
                    .map_err(|e| Error::io(dest.display(), format_args!("cannot write: {e}")))?;
            }
            AudioSource::External(p) => {
                let from = if p.is_absolute() {
                    p.clone()
                } else {
                    project_dir.join(p)
                };
                let meta = std::fs::metadata(&from).map_err(|e| {
                    Error::InvalidSession(format!(
                        "{src}: project.xml: {}: external audio {}: {}",
                        a.element,
                        from.display(),
                        super::parse::io_reason(&e)
                    ))
                })?;
                if !meta.is_file() {
                    return Err(Error::InvalidSession(format!(
                        "{src}: project.xml: {}: external audio {} is not a file",
                        a.element,
                        from.display()
                    )));
                }
                std::fs::copy(&from, &dest)
                    .map_err(|e| Error::io(from.display(), format_args!("cannot copy: {e}")))?;
            }
        }
        let info = crate::audio::probe(&dest, &a.name)
            .map_err(|e| Error::InvalidSession(format!("{src}: {}: {e}", a.element)))?;
        rate = rate.max(info.sample_rate);
    }
    let toml_path = out.join(SESSION_FILE);
    let s = &mut imp.session;
    s.sample_rate = opts
        .sample_rate
        .unwrap_or(if rate == 0 { 48000 } else { rate });
    s.source = toml_path.display().to_string();
    for stem in super::model::stems_mut(s) {
        stem.path = Some(out.join(&stem.name));
    }
    super::validate(s).map_err(|e| match e {
        Error::InvalidSession(m) => {
            Error::InvalidSession(format!("{src}: the imported session is not valid: {m}"))
        }
        other => other,
    })?;
    let text = super::write::session_to_toml(s);
    let back = super::parse_session_toml(&text, &s.source, out)?;
    if back != *s {
        return Err(Error::Internal(format!(
            "{src}: the session written for the import does not read back the same"
        )));
    }
    std::fs::write(&toml_path, &text)
        .map_err(|e| Error::io(toml_path.display(), format_args!("cannot write: {e}")))?;
    let json_path = out.join(IMPORT_JSON);
    let json = serde_json::to_string_pretty(&imp.report())
        .map_err(|e| Error::Internal(format!("import.json: {e}")))?;
    std::fs::write(&json_path, json)
        .map_err(|e| Error::io(json_path.display(), format_args!("cannot write: {e}")))?;
    Ok(imp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_paths() {
        assert_eq!(zip_path("audio/a.wav").as_deref(), Some("audio/a.wav"));
        assert_eq!(zip_path("./audio//a.wav").as_deref(), Some("audio/a.wav"));
        assert_eq!(zip_path("audio\\a.wav").as_deref(), Some("audio/a.wav"));
        assert_eq!(zip_path("../a.wav"), None);
        assert_eq!(zip_path("audio/../../a.wav"), None);
        assert_eq!(zip_path("/etc/passwd"), None);
        assert_eq!(zip_path("C:/x.wav"), None);
        assert_eq!(zip_path(""), None);
    }
}
