//! The job queue: records in the index ([`super::db`]), a fair scheduler
//! ([`sched`]), the engine run ([`run`]), event streams ([`stream`]), request →
//! session ([`request`]).
//!
//! Every job is written to the index before it is queued, and on every change of
//! state, so a restarted server finds each job again: queued ones are queued again,
//! a running one is re-queued once more after a crash and failed after a second,
//! finished ones keep their renders in `jobs/<id>/out/` until retention removes
//! them. Only unfinished jobs are held in memory; finished ones are read from the
//! index when asked for.

mod job;
mod request;
mod run;
mod sched;
mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bounce_proto::v1;
use prost::Message;
use tokio::sync::{Notify, watch};
use tonic::Status;

use super::auth::Limits;
use super::config::ServiceLimits;
use super::db::{Db, Finish, JobRow, NewJob};
use crate::engine::RenderOptions;
use crate::session::StemRef;
use crate::{Error, Result};

pub(crate) use job::now_ms;
pub(crate) use job::{Job, JobRequest, JobState};
use job::{MAX_LISTED_TEXT, Stop, bounded, lock};
pub(crate) use request::{master_parts, session_of, session_stems};
use sched::Sched;

/// Jobs per ListJobs page unless the client asks otherwise, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// What a crash twice over a job leaves in its record.
pub(crate) const CRASHED_TWICE: &str = "the server stopped while rendering this job twice";

/// The job table and its scheduler.
pub(crate) struct Jobs {
    jobs_dir: PathBuf,
    stems_dir: PathBuf,
    db: Arc<Db>,
    opts: RenderOptions,
    max_concurrent: usize,
    limits: HashMap<String, Limits>,
    service_limits: ServiceLimits,
    /// Queued and running jobs (and, briefly, ones finishing).
    live: Mutex<HashMap<String, Arc<Job>>>,
    sched: Mutex<Sched>,
    wake: Notify,
    /// Shutdown has begun: nothing new is accepted or started.
    draining: watch::Sender<bool>,
    /// The shutdown deadline passed: followers end.
    closing: watch::Sender<bool>,
    /// Fires when a running job ends.
    ended: Notify,
    /// The last submit time handed out: strictly increasing, so listing order
    /// (submitted_ms, id) is submission order.
    last_submit_ms: Mutex<u64>,
}

fn internal(e: Error) -> Status {
    Status::from(e)
}

impl Jobs {
    /// Opens the queue over the index, loading the jobs that may still run.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        jobs_dir: PathBuf,
        stems_dir: PathBuf,
        db: Arc<Db>,
        opts: RenderOptions,
        max_concurrent: usize,
        limits: HashMap<String, Limits>,
        service_limits: ServiceLimits,
        resume: bool,
    ) -> Result<Arc<Jobs>> {
        let jobs = Arc::new(Jobs {
            jobs_dir,
            stems_dir,
            db,
            opts,
            max_concurrent,
            limits,
            service_limits,
            live: Mutex::new(HashMap::new()),
            sched: Mutex::new(Sched::default()),
            wake: Notify::new(),
            draining: watch::channel(false).0,
            closing: watch::channel(false).0,
            ended: Notify::new(),
            last_submit_ms: Mutex::new(0),
        });
        jobs.load(resume)?;
        Ok(jobs)
    }

    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.db
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.jobs_dir.join(id)
    }

    fn load(&self, resume: bool) -> Result<()> {
        let rows = self.db.unfinished()?;
        let mut live = lock(&self.live);
        let mut sched = lock(&self.sched);
        for row in rows {
            let id = row.id.clone();
            let fail = |msg: &str| {
                tracing::warn!(job = %id, "{msg}");
                self.db.finish(
                    &id,
                    &Finish {
                        state: "failed",
                        error: Some((msg, "ABORTED")),
                        files: &[],
                        out_bytes: 0,
                        finished_ms: now_ms(),
                    },
                )
            };
            if !resume {
                fail("interrupted: the server stopped before this job finished")?;
                continue;
            }
            if row.state == "running" && row.attempts >= 2 {
                fail(CRASHED_TWICE)?;
                continue;
            }
            let request = match self.decode_request(&row) {
                Ok(r) => r,
                Err(e) => {
                    fail(&format!("the stored request cannot be read: {e}"))?;
                    continue;
                }
            };
            if row.state == "running" {
                tracing::warn!(job = %id, attempts = row.attempts, "the server stopped while this job ran; queued once more");
                self.db.requeue(&id)?;
            }
            let job = Arc::new(Job::new_live(
                row.id.clone(),
                row.project.clone(),
                row.session_name.clone(),
                row.submitted_ms,
                request,
                self.job_dir(&row.id),
                row.queue_position,
                row.attempts,
            ));
            sched.enqueue(job.clone());
            live.insert(job.id.clone(), job);
        }
        Ok(())
    }

    /// Starts the task that feeds queued jobs to the engine.
    pub(crate) fn start_dispatcher(self: &Arc<Self>) {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut draining = jobs.draining.subscribe();
            loop {
                if *draining.borrow() {
                    return;
                }
                while let Some(job) = jobs.pick() {
                    jobs.start(job);
                }
                tokio::select! {
                    _ = jobs.wake.notified() => {}
                    _ = draining.changed() => {}
                }
            }
        });
    }

    fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    fn pick(&self) -> Option<Arc<Job>> {
        if self.is_draining() {
            return None;
        }
        lock(&self.sched).pick(self.max_concurrent, |p| {
            self.limits.get(p).and_then(|l| l.max_running)
        })
    }

    fn running(&self) -> usize {
        lock(&self.sched).running
    }

    /// A project's limits (defaults when its tokens set none).
    pub(crate) fn limits_of(&self, project: &str) -> Limits {
        self.limits.get(project).cloned().unwrap_or_default()
    }

    pub(crate) fn service_limits(&self) -> &ServiceLimits {
        &self.service_limits
    }

    /// Shutdown, step 1: no new job is accepted or started; running ones go on.
    pub(crate) fn drain(&self) {
        self.draining.send_replace(true);
        self.wake.notify_waiters();
    }

    /// Waits until no job runs, or `deadline`. True when none runs.
    pub(crate) async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let ended = self.ended.notified();
            if self.running() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), ended).await;
        }
    }

    /// Shutdown, step 2 (the grace period is over): running jobs are stopped and
    /// written back as queued (the interrupted attempt does not count); followers end.
    pub(crate) fn checkpoint_running(&self) {
        let running: Vec<Arc<Job>> = lock(&self.live)
            .values()
            .filter(|j| j.state() == JobState::Running)
            .cloned()
            .collect();
        for job in running {
            job.stop(Stop::Shutdown);
            match self.db.checkpoint(&job.id) {
                Ok(()) => {
                    tracing::info!(job = %job.id, "stopped by shutdown; queued for the next start")
                }
                Err(e) => tracing::error!(job = %job.id, "cannot checkpoint: {e}"),
            }
            let mut inner = lock(&job.inner);
            inner.state = JobState::Queued;
            inner.attempts = inner.attempts.saturating_sub(1);
        }
        self.closing.send_replace(true);
    }

    /// Queues a new job for `project`: written to the index first, after checking
    /// (in the same transaction) that the project owns every stem it names.
    /// Runs on a blocking thread.
    pub(crate) fn submit(
        &self,
        project: &str,
        request: JobRequest,
        stored: &[u8],
        session_name: &str,
        stems: &[StemRef],
    ) -> Result<Arc<Job>, Status> {
        if self.is_draining() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        let hashes: Vec<String> = stems
            .iter()
            .map(|s| s.blake3.clone().unwrap_or_default())
            .collect();
        if let Some(s) = stems
            .iter()
            .find(|s| !s.blake3.as_deref().is_some_and(super::is_blake3_hex))
        {
            return Err(Status::invalid_argument(format!(
                "stem {}: no valid blake3 hash",
                s.name
            )));
        }
        let mut sched = lock(&self.sched);
        let queued = sched.queued_of(project);
        if let Some(max) = self.limits.get(project).and_then(|l| l.max_queued)
            && queued >= max
        {
            return Err(Status::resource_exhausted(format!(
                "project {project:?} already has {queued} queued jobs (max_queued_jobs = {max})"
            )));
        }
        let total = sched.queued_total();
        if total >= self.service_limits.max_queued_total {
            return Err(Status::resource_exhausted(format!(
                "the server already has {total} queued jobs (max_queued_total = {})",
                self.service_limits.max_queued_total
            )));
        }
        let submitted_unix_ms = {
            let mut last = lock(&self.last_submit_ms);
            *last = now_ms().max(*last + 1);
            *last
        };
        let id = format!(
            "{:010x}{:06x}",
            submitted_unix_ms & 0xff_ffff_ffff,
            rand::random::<u32>() & 0xff_ffff
        );
        let queue_position = u32::try_from(total).unwrap_or(u32::MAX);
        let session_name = bounded(session_name, MAX_LISTED_TEXT);
        let written = self
            .db
            .insert_job(&NewJob {
                id: &id,
                project,
                kind: request.kind(),
                session_name: &session_name,
                submitted_ms: submitted_unix_ms,
                queue_position,
                request: stored,
                stems: &hashes,
            })
            .map_err(internal)?;
        if let Err(not_owned) = written {
            let named: Vec<String> = not_owned
                .iter()
                .map(|h| {
                    let name = stems
                        .iter()
                        .find(|s| s.blake3.as_deref() == Some(h.as_str()))
                        .map_or("?", |s| s.name.as_str());
                    format!("stem {name} ({h})")
                })
                .collect();
            return Err(Status::failed_precondition(format!(
                "{} not in this project's store; upload {}",
                named.join(", ") + if named.len() == 1 { " is" } else { " are" },
                if named.len() == 1 { "it" } else { "them" }
            )));
        }
        let job = Arc::new(Job::new_live(
            id.clone(),
            project.to_string(),
            session_name,
            submitted_unix_ms,
            request,
            self.job_dir(&id),
            queue_position,
            0,
        ));
        lock(&self.live).insert(id, job.clone());
        sched.enqueue(job.clone());
        drop(sched);
        self.wake.notify_one();
        tracing::info!(job = %job.id, project, "job queued");
        Ok(job)
    }

    /// A job of `project` by id; another project's job is NOT_FOUND, like no job.
    /// May read the index: call from a blocking thread.
    pub(crate) fn get(&self, project: &str, id: &str) -> Result<Arc<Job>, Status> {
        let not_found = || Status::not_found(format!("job {:?}: no such job", bounded(id, 80)));
        if !valid_id(id) {
            return Err(not_found());
        }
        if let Some(job) = lock(&self.live).get(id) {
            return if job.project == project {
                Ok(job.clone())
            } else {
                Err(not_found())
            };
        }
        match self.db.job(project, id).map_err(internal)? {
            Some(row) => Ok(Arc::new(Job::finished(row, self.job_dir(id)))),
            None => Err(not_found()),
        }
    }

    /// A page of the project's jobs, oldest first. Blocking (reads the index).
    pub(crate) fn list(
        &self,
        project: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<v1::ListJobsResponse, Status> {
        let size = match page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(parse_token(page_token).ok_or_else(|| {
                Status::invalid_argument("page_token: not a token this server gave")
            })?)
        };
        let rows = self
            .db
            .list(
                project,
                after.as_ref().map(|(ms, id)| (*ms, id.as_str())),
                size + 1,
                MAX_LISTED_TEXT,
            )
            .map_err(internal)?;
        let more = rows.len() > size;
        let live = lock(&self.live);
        let jobs: Vec<v1::JobInfo> = rows
            .into_iter()
            .take(size)
            .map(|row| match live.get(&row.id) {
                Some(job) => job.info(),
                None => info_of(row),
            })
            .collect();
        let next_page_token = match (more, jobs.last()) {
            (true, Some(last)) => format!("{}.{}", last.submitted_unix_ms, last.id),
            _ => String::new(),
        };
        Ok(v1::ListJobsResponse {
            jobs,
            next_page_token,
        })
    }

    /// Cancels a job: a queued one at once; a running one is marked cancelled at
    /// once and its engine stops at its next check. Blocking (writes the index).
    pub(crate) fn cancel(&self, project: &str, id: &str) -> Result<v1::CancelResponse, Status> {
        let job = self.get(project, id)?;
        let was = job.state();
        if was.is_terminal() {
            return Ok(v1::CancelResponse {
                cancelled: false,
                state: was.as_str().into(),
            });
        }
        let removed = lock(&self.sched).remove(&job.project, &job.id);
        job.stop(Stop::Cancel);
        job.set_state(
            JobState::Cancelled,
            Some(("cancelled".into(), "CANCELLED".into())),
        );
        self.db
            .finish(
                &job.id,
                &Finish {
                    state: "cancelled",
                    error: Some(("cancelled", "CANCELLED")),
                    files: &[],
                    out_bytes: 0,
                    finished_ms: now_ms(),
                },
            )
            .map_err(internal)?;
        if removed {
            lock(&self.live).remove(&job.id);
        }
        tracing::info!(job = %job.id, "cancelled (was {})", was.as_str());
        Ok(v1::CancelResponse {
            cancelled: true,
            state: was.as_str().into(),
        })
    }

    /// Deletes a finished job and its renders. Blocking.
    pub(crate) fn delete(&self, project: &str, id: &str) -> Result<v1::DeleteResponse, Status> {
        let job = self.get(project, id)?;
        let state = job.state();
        if !state.is_terminal() || lock(&self.live).contains_key(&job.id) {
            return Err(Status::failed_precondition(format!(
                "job {id} is {}: cancel it first, or wait until it ends",
                state.as_str()
            )));
        }
        let freed = remove_job_files(&job.dir);
        self.db.delete_job(&job.id).map_err(internal)?;
        tracing::info!(job = %job.id, bytes = freed, "deleted");
        Ok(v1::DeleteResponse {
            deleted: true,
            state: state.as_str().into(),
            bytes_freed: freed,
        })
    }

    /// True when the job may not be touched by retention (queued or running here).
    pub(crate) fn is_live(&self, id: &str) -> bool {
        lock(&self.live).contains_key(id)
    }

    pub(crate) fn jobs_dir(&self) -> &Path {
        &self.jobs_dir
    }

    /// A stored request as the job holds it: a render's session validated again here
    /// (once per load), under the limits the server has now.
    fn decode_request(&self, row: &JobRow) -> Result<JobRequest> {
        let bytes = row
            .request
            .as_deref()
            .ok_or_else(|| Error::Internal("no request stored".into()))?;
        match row.kind.as_str() {
            "render" => {
                let req = v1::SubmitRequest::decode(bytes)
                    .map_err(|e| Error::Internal(format!("request: {e}")))?;
                let session = session_of(&req, |rate| {
                    self.options_for(&row.project, req.backend, rate).limits
                })?;
                Ok(JobRequest::Render {
                    session: Arc::new(session),
                    backend: req.backend,
                })
            }
            "master" => v1::MasterRequest::decode(bytes)
                .map(|r| JobRequest::Master(Box::new(r)))
                .map_err(|e| Error::Internal(format!("request: {e}"))),
            other => Err(Error::Internal(format!("kind: unknown {other:?}"))),
        }
    }
}

/// Removes a job's folder; the bytes it held.
pub(crate) fn remove_job_files(dir: &Path) -> u64 {
    let bytes = dir_bytes(dir);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        tracing::warn!(dir = %dir.display(), "cannot remove: {e}");
    }
    bytes
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Job ids are the hex the server makes; anything else is no job (and never a path).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parse_token(t: &str) -> Option<(u64, String)> {
    if t.len() > 100 {
        return None;
    }
    let (ms, id) = t.split_once('.')?;
    let ms = ms.parse().ok()?;
    valid_id(id).then(|| (ms, id.to_string()))
}

fn info_of(row: JobRow) -> v1::JobInfo {
    v1::JobInfo {
        progress: if row.state == "done" { 1.0 } else { 0.0 },
        id: row.id,
        state: row.state,
        error: row.error.unwrap_or_default(),
        session_name: row.session_name,
        submitted_unix_ms: row.submitted_ms,
        attempts: row.attempts,
        finished_unix_ms: row.finished_ms.unwrap_or(0),
    }
}
