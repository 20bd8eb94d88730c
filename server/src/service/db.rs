//! The job index and the stem ownership index: one embedded SQLite file,
//! `data_dir/bounce.db` (WAL, synchronous=FULL: a state change is on disk when the
//! call returns).
//!
//! - `jobs`: one row per job; the request protobuf once, as a BLOB, while the job
//!   can still run (cleared when it finishes).
//! - `job_stems`: which stems each job names (retention keeps those).
//! - `stems`: every verified stem in the store, its size and when it was last used.
//! - `owners`: which project uploaded which stem (proof of possession).
//!
//! One connection behind a mutex: every statement is short and indexed, and callers
//! run on blocking threads.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    error_code TEXT,
    session_name TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    queue_position INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    files TEXT NOT NULL DEFAULT '[]',
    out_bytes INTEGER NOT NULL DEFAULT 0,
    request BLOB
);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs(project, submitted_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, finished_ms);
CREATE TABLE IF NOT EXISTS job_stems (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    blake3 TEXT NOT NULL,
    PRIMARY KEY (job_id, blake3)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_stems_by_hash ON job_stems(blake3);
CREATE TABLE IF NOT EXISTS stems (
    blake3 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    used_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stems_by_use ON stems(used_ms);
CREATE TABLE IF NOT EXISTS owners (
    project TEXT NOT NULL,
    blake3 TEXT NOT NULL REFERENCES stems(blake3) ON DELETE CASCADE,
    PRIMARY KEY (project, blake3)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owners_by_hash ON owners(blake3);
";

/// States whose jobs are finished (their renders may expire).
pub(crate) const TERMINAL: &str = "('done','failed','cancelled')";

/// One row of `jobs` (the request only when asked for).
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub id: String,
    pub project: String,
    pub kind: String,
    pub state: String,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub session_name: String,
    pub submitted_ms: u64,
    pub finished_ms: Option<u64>,
    pub queue_position: u32,
    pub attempts: u32,
    pub files: Vec<String>,
    pub request: Option<Vec<u8>>,
}

/// A new job as it is first written.
pub(crate) struct NewJob<'a> {
    pub id: &'a str,
    pub project: &'a str,
    pub kind: &'a str,
    pub session_name: &'a str,
    pub submitted_ms: u64,
    pub queue_position: u32,
    pub request: &'a [u8],
    pub stems: &'a [String],
}

/// How a job ends, as written.
pub(crate) struct Finish<'a> {
    pub state: &'a str,
    pub error: Option<(&'a str, &'a str)>,
    pub files: &'a [String],
    pub out_bytes: u64,
    pub finished_ms: u64,
}

/// The database.
pub(crate) struct Db {
    conn: Mutex<Connection>,
}

fn sql(path: &str, e: rusqlite::Error) -> Error {
    Error::Io(format!("{path}: {e}"))
}

const COLS: &str = "id, project, kind, state, error, error_code, session_name, submitted_ms, finished_ms, queue_position, attempts, files";

fn row_of(r: &rusqlite::Row<'_>, with_request: bool) -> rusqlite::Result<JobRow> {
    let files: String = r.get(11)?;
    Ok(JobRow {
        id: r.get(0)?,
        project: r.get(1)?,
        kind: r.get(2)?,
        state: r.get(3)?,
        error: r.get(4)?,
        error_code: r.get(5)?,
        session_name: r.get(6)?,
        submitted_ms: r.get::<_, i64>(7)?.max(0) as u64,
        finished_ms: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
        queue_position: r.get::<_, i64>(9)?.clamp(0, u32::MAX as i64) as u32,
        attempts: r.get::<_, i64>(10)?.clamp(0, u32::MAX as i64) as u32,
        files: serde_json::from_str(&files).unwrap_or_default(),
        request: if with_request { r.get(12)? } else { None },
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Db {
    /// Opens (or creates) the database.
    pub(crate) fn open(path: &Path) -> Result<Db> {
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| sql(&name, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| sql(&name, e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| sql(&name, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(db = %name, "journal_mode is {mode}, not wal");
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| sql(&name, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| sql(&name, e))?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a new queued job, after checking in the same transaction that the
    /// project owns every stem it names. `Ok(Err(hashes))`: those are not owned.
    pub(crate) fn insert_job(
        &self,
        job: &NewJob<'_>,
    ) -> Result<std::result::Result<(), Vec<String>>> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| sql("jobs", e))?;
        let mut not_owned = Vec::new();
        {
            let mut owned = tx
                .prepare_cached("SELECT 1 FROM owners WHERE project = ?1 AND blake3 = ?2")
                .map_err(|e| sql("owners", e))?;
            for h in job.stems {
                let found = owned
                    .query_row(params![job.project, h], |_| Ok(()))
                    .optional()
                    .map_err(|e| sql("owners", e))?;
                if found.is_none() {
                    not_owned.push(h.clone());
                }
            }
        }
        if !not_owned.is_empty() {
            return Ok(Err(not_owned));
        }
        tx.execute(
            "INSERT INTO jobs (id, project, kind, state, session_name, submitted_ms, queue_position, request)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7)",
            params![
                job.id,
                job.project,
                job.kind,
                job.session_name,
                i64_of(job.submitted_ms),
                job.queue_position,
                job.request
            ],
        )
        .map_err(|e| sql("jobs", e))?;
        {
            let mut link = tx
                .prepare_cached("INSERT OR IGNORE INTO job_stems (job_id, blake3) VALUES (?1, ?2)")
                .map_err(|e| sql("job_stems", e))?;
            let mut touch = tx
                .prepare_cached("UPDATE stems SET used_ms = ?2 WHERE blake3 = ?1")
                .map_err(|e| sql("stems", e))?;
            for h in job.stems {
                link.execute(params![job.id, h])
                    .map_err(|e| sql("job_stems", e))?;
                touch
                    .execute(params![h, i64_of(job.submitted_ms)])
                    .map_err(|e| sql("stems", e))?;
            }
        }
        tx.commit().map_err(|e| sql("jobs", e))?;
        Ok(Ok(()))
    }

    /// Marks a job running and counts the attempt, before the engine starts: a
    /// crash from here on is visible at the next start. Returns the attempt count.
    pub(crate) fn mark_running(&self, id: &str) -> Result<u32> {
        let conn = self.lock();
        conn.query_row(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE id = ?1 RETURNING attempts",
            params![id],
            |r| r.get::<_, i64>(0),
        )
        .map(|a| a.clamp(0, u32::MAX as i64) as u32)
        .map_err(|e| sql("jobs", e))
    }

    /// Puts a job stopped by shutdown back in the queue; the interrupted attempt
    /// does not count (it was not the job's fault).
    pub(crate) fn checkpoint(&self, id: &str) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0) WHERE id = ?1 AND state = 'running'",
                params![id],
            )
            .map(drop)
            .map_err(|e| sql("jobs", e))
    }

    /// Re-queues a job found unfinished at start (its attempts stay counted).
    pub(crate) fn requeue(&self, id: &str) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE jobs SET state = 'queued' WHERE id = ?1",
                params![id],
            )
            .map(drop)
            .map_err(|e| sql("jobs", e))
    }

    /// Writes how a job ended; its request is no longer needed.
    pub(crate) fn finish(&self, id: &str, f: &Finish<'_>) -> Result<()> {
        let files = serde_json::to_string(f.files).unwrap_or_else(|_| "[]".into());
        self.lock()
            .execute(
                "UPDATE jobs SET state = ?2, error = ?3, error_code = ?4, files = ?5, out_bytes = ?6,
                 finished_ms = ?7, request = NULL WHERE id = ?1",
                params![
                    id,
                    f.state,
                    f.error.map(|e| e.0),
                    f.error.map(|e| e.1),
                    files,
                    i64_of(f.out_bytes),
                    i64_of(f.finished_ms)
                ],
            )
            .map(drop)
            .map_err(|e| sql("jobs", e))
    }

    /// Jobs that may still run (queued or running), with their requests, oldest first.
    pub(crate) fn unfinished(&self) -> Result<Vec<JobRow>> {
        let conn = self.lock();
        let mut st = conn
            .prepare(&format!(
                "SELECT {COLS}, request FROM jobs WHERE state NOT IN {TERMINAL} ORDER BY submitted_ms, id"
            ))
            .map_err(|e| sql("jobs", e))?;
        let rows = st
            .query_map([], |r| row_of(r, true))
            .map_err(|e| sql("jobs", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| sql("jobs", e))
    }

    /// One job of `project`, without its request.
    pub(crate) fn job(&self, project: &str, id: &str) -> Result<Option<JobRow>> {
        let conn = self.lock();
        conn.query_row(
            &format!("SELECT {COLS} FROM jobs WHERE id = ?1 AND project = ?2"),
            params![id, project],
            |r| row_of(r, false),
        )
        .optional()
        .map_err(|e| sql("jobs", e))
    }

    /// A page of the project's jobs after `(submitted_ms, id)`, oldest first, names
    /// and errors cut to `max_text` bytes by SQLite itself (so a huge name is never
    /// read whole).
    pub(crate) fn list(
        &self,
        project: &str,
        after: Option<(u64, &str)>,
        limit: usize,
        max_text: usize,
    ) -> Result<Vec<JobRow>> {
        let conn = self.lock();
        let (ms, id) = after.unwrap_or((0, ""));
        let mut st = conn
            .prepare_cached(
                "SELECT id, project, kind, state, substr(CAST(error AS BLOB), 1, ?5), error_code,
                        substr(CAST(session_name AS BLOB), 1, ?5), submitted_ms, finished_ms,
                        queue_position, attempts, '[]'
                 FROM jobs WHERE project = ?1 AND (submitted_ms > ?2 OR (submitted_ms = ?2 AND id > ?3))
                 ORDER BY submitted_ms, id LIMIT ?4",
            )
            .map_err(|e| sql("jobs", e))?;
        let rows = st
            .query_map(
                params![project, i64_of(ms), id, limit as i64, max_text as i64],
                |r| {
                    // Cut as bytes: mend a character split at the end.
                    let text = |i: usize| -> rusqlite::Result<Option<String>> {
                        let b: Option<Vec<u8>> = r.get(i)?;
                        Ok(b.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    };
                    Ok(JobRow {
                        id: r.get(0)?,
                        project: r.get(1)?,
                        kind: r.get(2)?,
                        state: r.get(3)?,
                        error: text(4)?,
                        error_code: r.get(5)?,
                        session_name: text(6)?.unwrap_or_default(),
                        submitted_ms: r.get::<_, i64>(7)?.max(0) as u64,
                        finished_ms: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
                        queue_position: r.get::<_, i64>(9)?.clamp(0, u32::MAX as i64) as u32,
                        attempts: r.get::<_, i64>(10)?.clamp(0, u32::MAX as i64) as u32,
                        files: Vec::new(),
                        request: None,
                    })
                },
            )
            .map_err(|e| sql("jobs", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| sql("jobs", e))
    }

    /// Removes a job's row (and its stem links).
    pub(crate) fn delete_job(&self, id: &str) -> Result<()> {
        self.lock()
            .execute("DELETE FROM jobs WHERE id = ?1", params![id])
            .map(drop)
            .map_err(|e| sql("jobs", e))
    }

    /// Which of `hashes` the project does not own (in the order given). Asked in
    /// batches, so 100 000 hashes are a few hundred statements, not 100 000.
    pub(crate) fn not_owned(&self, project: &str, hashes: &[String]) -> Result<Vec<String>> {
        const BATCH: usize = 500;
        let conn = self.lock();
        let mut out = Vec::new();
        for chunk in hashes.chunks(BATCH) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT blake3 FROM owners WHERE project = ? AND blake3 IN ({marks})"
                ))
                .map_err(|e| sql("owners", e))?;
            let args = std::iter::once(project).chain(chunk.iter().map(String::as_str));
            let owned: std::collections::HashSet<String> = st
                .query_map(rusqlite::params_from_iter(args), |r| r.get(0))
                .map_err(|e| sql("owners", e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| sql("owners", e))?;
            out.extend(chunk.iter().filter(|h| !owned.contains(*h)).cloned());
        }
        Ok(out)
    }

    /// True when the project owns this stem.
    pub(crate) fn owns(&self, project: &str, hash: &str) -> Result<bool> {
        Ok(self.not_owned(project, &[hash.to_string()])?.is_empty())
    }

    /// Bytes of the stems the project owns.
    pub(crate) fn owned_bytes(&self, project: &str) -> Result<u64> {
        let conn = self.lock();
        conn.query_row(
            "SELECT COALESCE(SUM(s.size), 0) FROM owners o JOIN stems s ON s.blake3 = o.blake3 WHERE o.project = ?1",
            params![project],
            |r| r.get::<_, i64>(0),
        )
        .map(|v| v.max(0) as u64)
        .map_err(|e| sql("owners", e))
    }

    /// Records a verified upload and grants `project` ownership. `place` moves the
    /// file into the store; it runs under the lock, only when the store does not
    /// hold the stem yet (so a retention sweep never races it).
    pub(crate) fn store_stem(
        &self,
        project: &str,
        hash: &str,
        size: u64,
        now_ms: u64,
        place: impl FnOnce(bool) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| sql("stems", e))?;
        let have = tx
            .query_row(
                "SELECT 1 FROM stems WHERE blake3 = ?1",
                params![hash],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| sql("stems", e))?
            .is_some();
        place(have)?;
        tx.execute(
            "INSERT INTO stems (blake3, size, used_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(blake3) DO UPDATE SET used_ms = excluded.used_ms",
            params![hash, i64_of(size), i64_of(now_ms)],
        )
        .map_err(|e| sql("stems", e))?;
        tx.execute(
            "INSERT OR IGNORE INTO owners (project, blake3) VALUES (?1, ?2)",
            params![project, hash],
        )
        .map_err(|e| sql("owners", e))?;
        tx.commit().map_err(|e| sql("stems", e))
    }
}
