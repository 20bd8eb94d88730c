//! Retention: finished jobs' renders, and stems that no remaining job names, expire
//! after a configured age, and when the store passes its size cap the oldest go
//! first (finished renders by finish time, unreferenced stems by last use). Jobs
//! that are queued or running, and the stems they name, are never touched.
//!
//! A sweep runs on a blocking thread, in the background (a start never waits for
//! it). Stem rows and files are removed under the index's lock, the same lock an
//! upload holds while it moves a stem into place, so the two never race.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::config::Retention;
use super::db::{Db, TERMINAL};
use super::jobs::{self, Jobs};
use crate::{Error, Result};

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    pub jobs: u64,
    pub stems: u64,
    pub bytes: u64,
}

fn sql(e: rusqlite::Error) -> Error {
    Error::Io(format!("retention: {e}"))
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Records stems found on disk without a row (from an older server) and drops rows
/// whose file is gone. Cheap: one directory listing.
pub(crate) fn reconcile(db: &Db, stems_dir: &Path) -> Result<()> {
    let now = jobs::now_ms() as i64;
    let mut on_disk = std::collections::HashSet::new();
    if let Ok(rd) = std::fs::read_dir(stems_dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if super::is_blake3_hex(&name) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                on_disk.insert((name, size));
            }
        }
    }
    let mut conn = db.lock();
    let tx = conn.transaction().map_err(sql)?;
    {
        let mut add = tx
            .prepare("INSERT OR IGNORE INTO stems (blake3, size, used_ms) VALUES (?1, ?2, ?3)")
            .map_err(sql)?;
        for (h, size) in &on_disk {
            add.execute(params![h, i64::try_from(*size).unwrap_or(i64::MAX), now])
                .map_err(sql)?;
        }
        let rows: Vec<String> = {
            let mut st = tx.prepare("SELECT blake3 FROM stems").map_err(sql)?;
            st.query_map([], |r| r.get(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?
        };
        let names: std::collections::HashSet<&str> =
            on_disk.iter().map(|(h, _)| h.as_str()).collect();
        let mut del = tx
            .prepare("DELETE FROM stems WHERE blake3 = ?1")
            .map_err(sql)?;
        for h in rows.iter().filter(|h| !names.contains(h.as_str())) {
            del.execute(params![h]).map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

/// One sweep at `now_ms`.
pub(crate) fn sweep(
    jobs: &Jobs,
    stems_dir: &Path,
    policy: &Retention,
    now_ms: u64,
) -> Result<Swept> {
    let db: &Arc<Db> = jobs.db();
    let mut swept = Swept::default();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    if let Some(age) = policy.max_age {
        let cutoff = now.saturating_sub(ms(age));
        let old: Vec<(String, i64)> = {
            let conn = db.lock();
            let mut st = conn
                .prepare(&format!(
                    "SELECT id, out_bytes FROM jobs WHERE state IN {TERMINAL} AND COALESCE(finished_ms, submitted_ms) < ?1"
                ))
                .map_err(sql)?;
            st.query_map(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?
        };
        for (id, _) in old {
            swept.bytes += remove_job(jobs, &id)?;
            swept.jobs += 1;
        }
        while let Some((hash, _, size)) = oldest_unreferenced_stem(db, Some(cutoff))? {
            remove_stem(db, stems_dir, &hash)?;
            swept.stems += 1;
            swept.bytes += size;
        }
    }
    if let Some(cap) = policy.max_store_bytes {
        // Bounded: each round removes one item; a store of millions is swept over
        // several runs rather than in one long pass.
        for _ in 0..100_000 {
            let total = store_bytes(db)?;
            if total <= cap {
                break;
            }
            let job = oldest_finished_job(db)?;
            let stem = oldest_unreferenced_stem(db, None)?;
            match (job, stem) {
                (Some((id, finished, _)), Some((_, used, ..))) if finished <= used => {
                    swept.bytes += remove_job(jobs, &id)?;
                    swept.jobs += 1;
                }
                (Some((id, ..)), None) => {
                    swept.bytes += remove_job(jobs, &id)?;
                    swept.jobs += 1;
                }
                (_, Some((hash, _, size))) => {
                    remove_stem(db, stems_dir, &hash)?;
                    swept.stems += 1;
                    swept.bytes += size;
                }
                (None, None) => {
                    tracing::warn!(
                        total,
                        cap,
                        "the store is over its cap but everything in it is in use"
                    );
                    break;
                }
            }
        }
    }
    if swept != Swept::default() {
        tracing::info!(
            jobs = swept.jobs,
            stems = swept.stems,
            bytes = swept.bytes,
            "retention sweep"
        );
    }
    Ok(swept)
}

fn store_bytes(db: &Db) -> Result<u64> {
    let conn = db.lock();
    let stems: i64 = conn
        .query_row("SELECT COALESCE(SUM(size), 0) FROM stems", [], |r| r.get(0))
        .map_err(sql)?;
    let outs: i64 = conn
        .query_row(
            &format!("SELECT COALESCE(SUM(out_bytes), 0) FROM jobs WHERE state IN {TERMINAL}"),
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    Ok(stems.max(0) as u64 + outs.max(0) as u64)
}

/// (id, finished_ms, out_bytes) of the oldest finished job.
fn oldest_finished_job(db: &Db) -> Result<Option<(String, i64, i64)>> {
    let conn = db.lock();
    conn.query_row(
        &format!(
            "SELECT id, COALESCE(finished_ms, submitted_ms), out_bytes FROM jobs WHERE state IN {TERMINAL}
             ORDER BY COALESCE(finished_ms, submitted_ms), id LIMIT 1"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(sql)
}

/// The least recently used stem no job names (optionally: used before `before`).
fn oldest_unreferenced_stem(db: &Db, before: Option<i64>) -> Result<Option<(String, i64, u64)>> {
    let conn = db.lock();
    conn.query_row(
        "SELECT s.blake3, s.used_ms, s.size FROM stems s
         WHERE s.used_ms < ?1 AND NOT EXISTS (SELECT 1 FROM job_stems j WHERE j.blake3 = s.blake3)
         ORDER BY s.used_ms, s.blake3 LIMIT 1",
        params![before.unwrap_or(i64::MAX)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64)),
    )
    .optional()
    .map_err(sql)
}

fn remove_job(jobs: &Jobs, id: &str) -> Result<u64> {
    if jobs.is_live(id) {
        return Ok(0); // finished a moment ago and still being wound down
    }
    let freed = jobs::remove_job_files(&jobs.jobs_dir().join(id));
    jobs.db().delete_job(id)?;
    tracing::info!(job = %id, bytes = freed, "expired");
    Ok(freed)
}

/// Drops a stem's row (and every project's ownership of it) and its file, under
/// the index's lock.
fn remove_stem(db: &Db, stems_dir: &Path, hash: &str) -> Result<()> {
    if !super::is_blake3_hex(hash) {
        return Err(Error::Internal(format!(
            "retention: {hash:?} is not a hash"
        )));
    }
    let conn = db.lock();
    conn.execute("DELETE FROM stems WHERE blake3 = ?1", params![hash])
        .map_err(sql)?;
    let path = stems_dir.join(hash);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path.display(), e)),
    }
    tracing::info!(blake3 = %hash, "stem expired");
    Ok(())
}
