//! The album file (CONTRACT.md, "The album file"): songs in order, album deliverables,
//! and the slug rule for each song's output folder.

use std::path::{Path, PathBuf};

use super::model::{Deliverable, Session};
use super::parse::{io_reason, parse_deliverables};
use super::reader::Doc;
use super::validate::validate_deliverables;
use crate::{Error, Result};

/// The most songs an album holds: NN in `<NN>-<slug>` is two digits.
pub const MAX_SONGS: usize = 99;

/// How loudness targets apply across an album.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlbumLoudness {
    /// One gain for the whole album, so that its loudest song meets the target.
    Album,
    /// Each song normalised on its own.
    Track,
}

/// A parsed, validated album file.
#[derive(Debug, Clone, PartialEq)]
pub struct Album {
    /// `album.name` (default "").
    pub name: String,
    /// `album.loudness` (default album).
    pub loudness: AlbumLoudness,
    /// Session files, resolved relative to the album file, in album order.
    pub songs: Vec<PathBuf>,
    /// `[[deliverable]]`s that replace every song's own; a `sample_rate` of 0 means
    /// "the song's session rate" (see [`Album::deliverables_for`]).
    pub deliverables: Vec<Deliverable>,
    /// The album file's name, for messages.
    pub source: String,
}

impl Album {
    /// The deliverables a song renders: the album's (rate 0 filled with the song's
    /// session rate), or the song's own when the album names none.
    pub fn deliverables_for(&self, song: &Session) -> Vec<Deliverable> {
        if self.deliverables.is_empty() {
            return song.deliverables.clone();
        }
        self.deliverables
            .iter()
            .map(|d| Deliverable {
                sample_rate: if d.sample_rate == 0 {
                    song.sample_rate
                } else {
                    d.sample_rate
                },
                ..d.clone()
            })
            .collect()
    }
}

/// Parses an album TOML (`songs` resolve against `base_dir`; files are not checked).
pub fn parse_album_toml(text: &str, source: &str, base_dir: &Path) -> Result<Album> {
    let doc = Doc { text, source };
    let parsed = doc.parse()?;
    let root = doc.root(&parsed);
    root.check_keys(&["album", "deliverable"])?;
    let Some(mut a) = root.table_opt("album")? else {
        return Err(Error::field(
            source,
            "album.songs",
            "required field is missing (there is no [album] table)",
        ));
    };
    a.label = "[album]".into();
    a.check_keys(&["name", "loudness", "songs"])?;
    let name = a.str_opt("name")?.unwrap_or_default();
    let loudness = match a.str_opt("loudness")?.as_deref() {
        None | Some("album") => AlbumLoudness::Album,
        Some("track") => AlbumLoudness::Track,
        Some(other) => {
            return Err(Error::field(
                source,
                "album.loudness",
                format_args!("{other:?} is not album or track"),
            ));
        }
    };
    if a.get("songs").is_none() {
        return Err(a.missing("songs"));
    }
    let names = a.strings("songs")?;
    if names.is_empty() {
        return Err(Error::field(
            source,
            "album.songs",
            "the album has no songs",
        ));
    }
    if names.len() > MAX_SONGS {
        return Err(Error::field(
            source,
            "album.songs",
            format_args!("{} songs, at most {MAX_SONGS}", names.len()),
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(Error::field(
                source,
                format!("album.songs[{i}]"),
                "must not be empty",
            ));
        }
    }
    let songs = names.iter().map(|n| base_dir.join(n)).collect();
    let deliverables = parse_deliverables(&root, 0)?;
    validate_deliverables(source, &deliverables, true)?;
    Ok(Album {
        name,
        loudness,
        songs,
        deliverables,
        source: source.to_string(),
    })
}

/// Reads, parses and validates an album file; every song file must exist.
pub fn load_album_file(path: &Path) -> Result<Album> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&source, io_reason(&e)))?;
    let album = parse_album_toml(&text, &source, path.parent().unwrap_or(Path::new("")))?;
    for (i, song) in album.songs.iter().enumerate() {
        match std::fs::metadata(song) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::field(
                    &source,
                    format!("album.songs[{i}]"),
                    format_args!("{}: is not a file", song.display()),
                ));
            }
            Err(e) => {
                return Err(Error::field(
                    &source,
                    format!("album.songs[{i}]"),
                    format_args!("{}: {}", song.display(), io_reason(&e)),
                ));
            }
        }
    }
    Ok(album)
}

/// The contract's slug: lower case, each run of characters other than a–z and 0–9
/// turned into one `-`, with none left at either end ("Night Drive" → "night-drive").
/// A name with no such characters at all gives "untitled", so a folder name is never
/// just `03-`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c);
        } else {
            pending_dash = true;
        }
    }
    if out.is_empty() {
        "untitled".to_string()
    } else {
        out
    }
}

/// A song's output folder: `<NN>-<slug>` with NN its 1-based position in two digits.
pub fn song_dir(index0: usize, name: &str) -> String {
    format!("{:02}-{}", index0 + 1, slug(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_examples() {
        assert_eq!(slug("Night Drive"), "night-drive");
        assert_eq!(slug("  Hello,  World!! "), "hello-world");
        assert_eq!(slug("AC/DC 2024"), "ac-dc-2024");
        assert_eq!(slug("Café Noir"), "caf-noir");
        assert_eq!(slug("!!!"), "untitled");
        assert_eq!(song_dir(2, "Night Drive"), "03-night-drive");
    }
}
