//! The job queue: records on disk, a fair scheduler, the engine run, event logs.
//!
//! Every job is written to `jobs/<id>/job.json` (state and the encoded request)
//! before it is queued, and on every change of state, so a restarted server finds
//! each job again: queued or running ones are queued again, finished ones keep
//! their renders in `jobs/<id>/out/`. The scheduler takes projects in turn
//! (round-robin), honouring each project's running limit and the server's
//! `max_concurrent_jobs`. A job runs on a blocking thread; an error or a panic in
//! the engine fails that job only.
//!
//! Each job keeps a log of its events (accepted, progress, report); a follower
//! replays the log, waits for more, and when the job is done streams its files
//! from disk. Followers come and go (a client that drops can re-attach); they never
//! cancel the job.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bounce_proto::v1::{self, JobEvent, job_event::Event};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::auth::Limits;
use super::status_code;
use crate::engine::{self, BackendChoice, RenderOptions, RenderOutput};
use crate::session::{self, Deliverable, Master, StemRef};
use crate::{Error, Result};

/// Size of the file chunks streamed back.
const FILE_CHUNK: usize = 1 << 20;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
    fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a job renders.
#[derive(Debug, Clone)]
pub(crate) enum JobRequest {
    Render(v1::SubmitRequest),
    Master(v1::MasterRequest),
}

/// `job.json`.
#[derive(Serialize, Deserialize)]
struct JobRecord {
    id: String,
    project: String,
    /// "render" or "master".
    kind: String,
    state: JobState,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    session_name: String,
    submitted_unix_ms: u64,
    #[serde(default)]
    queue_position: u32,
    #[serde(default)]
    files: Vec<String>,
    /// The request, protobuf-encoded, in hex.
    request_hex: String,
}

/// A job's mutable part.
struct Inner {
    state: JobState,
    /// (message, gRPC code name) of a failed or cancelled job.
    error: Option<(String, String)>,
    /// Accepted, progress and report events, in order (files and the end are
    /// produced by the follower from the state).
    events: Vec<JobEvent>,
    files: Vec<String>,
    progress: f64,
    last_progress: Option<(String, f64)>,
    queue_position: u32,
}

/// One job.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) project: String,
    session_name: String,
    submitted_unix_ms: u64,
    request: JobRequest,
    dir: PathBuf,
    cancel: AtomicBool,
    inner: Mutex<Inner>,
    /// Bumped on every change, so followers wake.
    changed: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock is held leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn event(e: Event) -> JobEvent {
    JobEvent { event: Some(e) }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The canonical gRPC name of a code, as JobError.code carries it.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Job {
    fn record(&self) -> JobRecord {
        let inner = lock(&self.inner);
        let (kind, bytes) = match &self.request {
            JobRequest::Render(r) => ("render", r.encode_to_vec()),
            JobRequest::Master(r) => ("master", r.encode_to_vec()),
        };
        JobRecord {
            id: self.id.clone(),
            project: self.project.clone(),
            kind: kind.to_string(),
            state: inner.state,
            error: inner.error.as_ref().map(|e| e.0.clone()),
            error_code: inner.error.as_ref().map(|e| e.1.clone()),
            session_name: self.session_name.clone(),
            submitted_unix_ms: self.submitted_unix_ms,
            queue_position: inner.queue_position,
            files: inner.files.clone(),
            request_hex: hex::encode(bytes),
        }
    }

    /// Writes `job.json` atomically (temp file + rename).
    fn persist(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.record())
            .map_err(|e| Error::Internal(format!("job {}: {e}", self.id)))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(self.dir.display(), e))?;
        let tmp = self.dir.join("job.json.tmp");
        let path = self.dir.join("job.json");
        std::fs::write(&tmp, json).map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display(), e))
    }

    fn persist_logged(&self) {
        if let Err(e) = self.persist() {
            tracing::error!(job = %self.id, "cannot write job record: {e}");
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn set_state(&self, state: JobState, error: Option<(String, String)>) {
        {
            let mut inner = lock(&self.inner);
            inner.state = state;
            inner.error = error;
            if state == JobState::Done {
                inner.progress = 1.0;
            }
        }
        self.notify();
    }

    /// Engine progress: recorded when the stage changes or the fraction moved by
    /// at least 1 %, so a replay stays short.
    fn progress(&self, stage: &str, fraction: f64) {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        {
            let mut inner = lock(&self.inner);
            let keep = match &inner.last_progress {
                Some((s, f)) => {
                    s != stage || (fraction - f).abs() >= 0.01 || (fraction >= 1.0 && *f < 1.0)
                }
                None => true,
            };
            if !keep {
                return;
            }
            inner.last_progress = Some((stage.to_string(), fraction));
            inner.progress = fraction;
            inner.events.push(event(Event::Progress(v1::Progress {
                stage: stage.to_string(),
                fraction,
            })));
        }
        self.notify();
    }

    pub(crate) fn state(&self) -> JobState {
        lock(&self.inner).state
    }

    fn info(&self) -> v1::JobInfo {
        let inner = lock(&self.inner);
        v1::JobInfo {
            id: self.id.clone(),
            state: inner.state.as_str().to_string(),
            error: inner
                .error
                .as_ref()
                .map(|e| e.0.clone())
                .unwrap_or_default(),
            session_name: self.session_name.clone(),
            progress: inner.progress,
            submitted_unix_ms: self.submitted_unix_ms,
        }
    }
}

#[derive(Default)]
struct Sched {
    queues: HashMap<String, VecDeque<Arc<Job>>>,
    /// Projects with queued jobs, in turn order.
    order: VecDeque<String>,
    running: usize,
    running_by: HashMap<String, usize>,
}

impl Sched {
    fn enqueue(&mut self, job: Arc<Job>) {
        let project = job.project.clone();
        self.queues
            .entry(project.clone())
            .or_default()
            .push_back(job);
        if !self.order.contains(&project) {
            self.order.push_back(project);
        }
    }
    fn queued_total(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

/// The job table and its scheduler.
pub(crate) struct Jobs {
    jobs_dir: PathBuf,
    stems_dir: PathBuf,
    opts: RenderOptions,
    max_concurrent: usize,
    limits: HashMap<String, Limits>,
    table: Mutex<HashMap<String, Arc<Job>>>,
    sched: Mutex<Sched>,
    wake: Notify,
    closing: watch::Sender<bool>,
}

impl Jobs {
    /// Opens the job folder, loading every job record found there.
    pub(crate) fn open(
        jobs_dir: PathBuf,
        stems_dir: PathBuf,
        opts: RenderOptions,
        max_concurrent: usize,
        limits: HashMap<String, Limits>,
        resume: bool,
    ) -> Result<Arc<Jobs>> {
        let jobs = Arc::new(Jobs {
            jobs_dir,
            stems_dir,
            opts,
            max_concurrent,
            limits,
            table: Mutex::new(HashMap::new()),
            sched: Mutex::new(Sched::default()),
            wake: Notify::new(),
            closing: watch::channel(false).0,
        });
        jobs.load(resume)?;
        Ok(jobs)
    }

    fn load(&self, resume: bool) -> Result<()> {
        let entries =
            std::fs::read_dir(&self.jobs_dir).map_err(|e| Error::io(self.jobs_dir.display(), e))?;
        let mut loaded: Vec<Arc<Job>> = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            match load_job(&dir) {
                Ok(Some(job)) => loaded.push(Arc::new(job)),
                Ok(None) => {}
                Err(e) => tracing::warn!(dir = %dir.display(), "skipping a job record: {e}"),
            }
        }
        loaded.sort_by(|a, b| {
            a.submitted_unix_ms
                .cmp(&b.submitted_unix_ms)
                .then(a.id.cmp(&b.id))
        });
        let mut table = lock(&self.table);
        let mut sched = lock(&self.sched);
        for job in loaded {
            let state = job.state();
            if !state.is_terminal() {
                if resume {
                    lock(&job.inner).state = JobState::Queued;
                    job.persist_logged();
                    tracing::info!(job = %job.id, "re-queued a job left {}", state.as_str());
                    sched.enqueue(job.clone());
                } else {
                    job.set_state(
                        JobState::Failed,
                        Some((
                            "interrupted: the server stopped before this job finished".into(),
                            "ABORTED".into(),
                        )),
                    );
                    job.persist_logged();
                }
            }
            table.insert(job.id.clone(), job);
        }
        Ok(())
    }

    /// Starts the task that feeds queued jobs to the engine.
    pub(crate) fn start_dispatcher(self: &Arc<Self>) {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut closing = jobs.closing.subscribe();
            loop {
                if *closing.borrow() {
                    return;
                }
                while let Some(job) = jobs.pick() {
                    jobs.start(job);
                }
                tokio::select! {
                    _ = jobs.wake.notified() => {}
                    _ = closing.changed() => {}
                }
            }
        });
    }

    /// Stops: no new job starts, followers end, running jobs are interrupted and
    /// stay "running" on disk (a restart queues them again).
    pub(crate) fn close(&self) {
        if self.closing.send_replace(true) {
            return;
        }
        for job in lock(&self.table).values() {
            if job.state() == JobState::Running {
                job.cancel.store(true, Ordering::SeqCst);
            }
        }
    }

    fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// The next job to run: projects in turn, each within its running limit.
    fn pick(&self) -> Option<Arc<Job>> {
        if self.is_closing() {
            return None;
        }
        let mut s = lock(&self.sched);
        if s.running >= self.max_concurrent {
            return None;
        }
        for _ in 0..s.order.len() {
            let project = s.order.pop_front()?;
            let limit = self.limits.get(&project).and_then(|l| l.0);
            let running = s.running_by.get(&project).copied().unwrap_or(0);
            let queued = s.queues.get(&project).is_some_and(|q| !q.is_empty());
            if !queued {
                continue; // dropped from the rotation until it queues again
            }
            s.order.push_back(project.clone());
            if limit.is_some_and(|l| running >= l) {
                continue;
            }
            let job = s.queues.get_mut(&project).and_then(VecDeque::pop_front)?;
            s.running += 1;
            *s.running_by.entry(project).or_default() += 1;
            return Some(job);
        }
        None
    }

    fn start(self: &Arc<Self>, job: Arc<Job>) {
        job.set_state(JobState::Running, None);
        job.persist_logged();
        tracing::info!(job = %job.id, project = %job.project, "job started");
        let jobs = self.clone();
        tokio::spawn(async move {
            let (j, js) = (job.clone(), jobs.clone());
            let joined = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(AssertUnwindSafe(|| js.run_engine(&j)))
            })
            .await;
            let result = match joined {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(Error::Internal(format!(
                    "the render panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Err(e) => Err(Error::Internal(format!("the render task failed: {e}"))),
            };
            jobs.finish(&job, result);
            {
                let mut s = lock(&jobs.sched);
                s.running = s.running.saturating_sub(1);
                if let Some(n) = s.running_by.get_mut(&job.project) {
                    *n = n.saturating_sub(1);
                }
            }
            jobs.wake.notify_one();
        });
    }

    fn finish(&self, job: &Job, result: Result<RenderOutput>) {
        match result {
            Ok(out) => {
                {
                    let mut inner = lock(&job.inner);
                    inner.events.push(event(Event::Report(v1::Report {
                        json: out.report_json,
                    })));
                    inner.files = out.files;
                }
                job.set_state(JobState::Done, None);
                tracing::info!(job = %job.id, "job done");
            }
            Err(Error::Cancelled) if self.is_closing() => {
                // Interrupted by shutdown: job.json still says running, so a
                // restart renders it again.
                tracing::info!(job = %job.id, "job interrupted by shutdown");
                return;
            }
            Err(Error::Cancelled) => {
                job.set_state(
                    JobState::Cancelled,
                    Some(("cancelled".into(), "CANCELLED".into())),
                );
                tracing::info!(job = %job.id, "job cancelled");
            }
            Err(e) => {
                let code = code_name(status_code(&e)).to_string();
                tracing::warn!(job = %job.id, "job failed: {e}");
                job.set_state(JobState::Failed, Some((e.to_string(), code)));
            }
        }
        job.persist_logged();
    }

    /// Runs on a blocking thread.
    fn run_engine(&self, job: &Job) -> Result<RenderOutput> {
        let out = job.dir.join("out");
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        }
        std::fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        if job.cancel.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        let progress = |stage: &str, fraction: f64| job.progress(stage, fraction);
        let resolve = |stem: &StemRef| stem_path(&self.stems_dir, stem);
        match &job.request {
            JobRequest::Render(req) => {
                let session = session_of(req, &session::Limits::default())?;
                let opts = self.options_for(req.backend);
                engine::render_session(&session, &resolve, &out, &opts, &progress, &job.cancel)
            }
            JobRequest::Master(req) => {
                let (input, master, mut deliverable) = master_parts(req)?;
                let path = stem_path(&self.stems_dir, &input)?;
                if deliverable.sample_rate == 0 {
                    // No rate asked for: keep the input's.
                    deliverable.sample_rate =
                        crate::audio::decode::probe(&path, &input.name)?.sample_rate;
                }
                engine::master_file(
                    &path,
                    &input.name,
                    master.as_ref(),
                    &deliverable,
                    &out,
                    &self.opts,
                    &progress,
                    &job.cancel,
                )
            }
        }
    }

    /// The server's render options with a client's hint applied: a CPU request is
    /// always honoured; a GPU request only when the server holds a GPU.
    fn options_for(&self, hint: i32) -> RenderOptions {
        let mut opts = self.opts.clone();
        match v1::Backend::try_from(hint) {
            Ok(v1::Backend::Cpu) => {
                opts.backend = BackendChoice::Cpu;
                opts.gpu = None;
            }
            Ok(v1::Backend::Gpu) if opts.gpu.is_some() => opts.backend = BackendChoice::Gpu,
            _ => {}
        }
        opts
    }

    /// Queues a new job for `project`, written to disk first.
    pub(crate) fn submit(
        &self,
        project: &str,
        request: JobRequest,
        session_name: String,
    ) -> Result<Arc<Job>, Status> {
        if self.is_closing() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        let mut sched = lock(&self.sched);
        let queued = sched.queues.get(project).map_or(0, VecDeque::len);
        if let Some(max) = self.limits.get(project).and_then(|l| l.1)
            && queued >= max
        {
            return Err(Status::resource_exhausted(format!(
                "project {project:?} already has {queued} queued jobs (max_queued_jobs = {max})"
            )));
        }
        let submitted_unix_ms = now_ms();
        let id = format!(
            "{:010x}{:06x}",
            submitted_unix_ms & 0xff_ffff_ffff,
            rand::random::<u32>() & 0xff_ffff
        );
        let queue_position = sched.queued_total() as u32;
        let job = Arc::new(Job {
            dir: self.jobs_dir.join(&id),
            id: id.clone(),
            project: project.to_string(),
            session_name,
            submitted_unix_ms,
            request,
            cancel: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                state: JobState::Queued,
                error: None,
                events: vec![event(Event::Accepted(v1::Accepted {
                    job_id: id.clone(),
                    queue_position,
                }))],
                files: Vec::new(),
                progress: 0.0,
                last_progress: None,
                queue_position,
            }),
            changed: watch::channel(0).0,
        });
        job.persist().map_err(Status::from)?;
        lock(&self.table).insert(id, job.clone());
        sched.enqueue(job.clone());
        drop(sched);
        self.wake.notify_one();
        tracing::info!(job = %job.id, project, "job queued");
        Ok(job)
    }

    /// A job of `project` by id; another project's job is NOT_FOUND, like no job.
    pub(crate) fn get(&self, project: &str, id: &str) -> Result<Arc<Job>, Status> {
        match lock(&self.table).get(id) {
            Some(job) if job.project == project => Ok(job.clone()),
            _ => Err(Status::not_found(format!("job {id:?}: no such job"))),
        }
    }

    /// The project's jobs, oldest first.
    pub(crate) fn list(&self, project: &str) -> Vec<v1::JobInfo> {
        let mut jobs: Vec<Arc<Job>> = lock(&self.table)
            .values()
            .filter(|j| j.project == project)
            .cloned()
            .collect();
        jobs.sort_by(|a, b| {
            a.submitted_unix_ms
                .cmp(&b.submitted_unix_ms)
                .then(a.id.cmp(&b.id))
        });
        jobs.iter().map(|j| j.info()).collect()
    }

    /// Cancels a job: a queued one at once, a running one at the engine's next check.
    pub(crate) fn cancel(&self, project: &str, id: &str) -> Result<v1::CancelResponse, Status> {
        let job = self.get(project, id)?;
        let removed = {
            let mut s = lock(&self.sched);
            match s.queues.get_mut(&job.project) {
                Some(q) => {
                    let before = q.len();
                    q.retain(|j| j.id != job.id);
                    q.len() != before
                }
                None => false,
            }
        };
        if removed {
            job.cancel.store(true, Ordering::SeqCst);
            job.set_state(
                JobState::Cancelled,
                Some(("cancelled".into(), "CANCELLED".into())),
            );
            job.persist_logged();
            return Ok(v1::CancelResponse {
                cancelled: true,
                state: "cancelled".into(),
            });
        }
        let state = job.state();
        if state.is_terminal() {
            return Ok(v1::CancelResponse {
                cancelled: false,
                state: state.as_str().into(),
            });
        }
        job.cancel.store(true, Ordering::SeqCst);
        Ok(v1::CancelResponse {
            cancelled: true,
            state: state.as_str().into(),
        })
    }

    /// A stream of the job's events: the log so far, then new ones as they come;
    /// when the job is done its files, then `Done`; when it failed, `JobError`.
    pub(crate) fn follow(&self, job: Arc<Job>) -> ReceiverStream<Result<JobEvent, Status>> {
        let (tx, rx) = mpsc::channel(16);
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            let mut changed = job.changed.subscribe();
            let mut next = 0usize;
            loop {
                let (batch, state, files, error) = {
                    let inner = lock(&job.inner);
                    (
                        inner
                            .events
                            .get(next..)
                            .map(<[JobEvent]>::to_vec)
                            .unwrap_or_default(),
                        inner.state,
                        inner.files.clone(),
                        inner.error.clone(),
                    )
                };
                next += batch.len();
                for ev in batch {
                    if tx.send(Ok(ev)).await.is_err() {
                        return; // the client went away; the job goes on
                    }
                }
                match state {
                    JobState::Done => {
                        if send_files(&job, &files, &tx).await {
                            let _ = tx.send(Ok(event(Event::Done(v1::Done { files })))).await;
                        }
                        return;
                    }
                    JobState::Failed | JobState::Cancelled => {
                        let (message, code) =
                            error.unwrap_or_else(|| ("failed".into(), "INTERNAL".into()));
                        let _ = tx
                            .send(Ok(event(Event::Error(v1::JobError { message, code }))))
                            .await;
                        return;
                    }
                    JobState::Queued | JobState::Running => {}
                }
                let closed = tokio::select! {
                    r = changed.changed() => {
                        if r.is_err() {
                            return;
                        }
                        false
                    }
                    _ = closing.wait_for(|c| *c) => true,
                };
                if closed {
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "the server is shutting down; the job resumes when it is back",
                        )))
                        .await;
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Streams the finished job's files in chunks; false when the stream ended early.
async fn send_files(
    job: &Job,
    files: &[String],
    tx: &mpsc::Sender<Result<JobEvent, Status>>,
) -> bool {
    let out = job.dir.join("out");
    for name in files {
        let path = out.join(name);
        let opened = async {
            let file = tokio::fs::File::open(&path).await?;
            let len = file.metadata().await?.len();
            Ok::<_, std::io::Error>((file, len))
        }
        .await;
        let (mut file, total_size) = match opened {
            Ok(v) => v,
            Err(e) => {
                let _ = tx
                    .send(Err(Status::internal(format!(
                        "job {}: {name}: {e}",
                        job.id
                    ))))
                    .await;
                return false;
            }
        };
        let mut offset: u64 = 0;
        loop {
            let mut buf = vec![0u8; FILE_CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "job {}: {name}: {e}",
                                job.id
                            ))))
                            .await;
                        return false;
                    }
                }
            }
            buf.truncate(filled);
            let last = filled < FILE_CHUNK || offset + filled as u64 >= total_size;
            let chunk = v1::FileChunk {
                name: name.clone(),
                offset,
                data: buf,
                last,
                total_size,
            };
            offset += filled as u64;
            if tx.send(Ok(event(Event::File(chunk)))).await.is_err() {
                return false;
            }
            if last {
                break;
            }
        }
    }
    true
}

fn load_job(dir: &Path) -> Result<Option<Job>> {
    let path = dir.join("job.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
    let rec: JobRecord = serde_json::from_slice(&text).map_err(|e| Error::io(path.display(), e))?;
    let bytes = hex::decode(&rec.request_hex)
        .map_err(|e| Error::io(path.display(), format!("request_hex: {e}")))?;
    let request = match rec.kind.as_str() {
        "render" => JobRequest::Render(
            v1::SubmitRequest::decode(bytes.as_slice())
                .map_err(|e| Error::io(path.display(), format!("request: {e}")))?,
        ),
        "master" => JobRequest::Master(
            v1::MasterRequest::decode(bytes.as_slice())
                .map_err(|e| Error::io(path.display(), format!("request: {e}")))?,
        ),
        other => {
            return Err(Error::io(
                path.display(),
                format!("kind: unknown {other:?}"),
            ));
        }
    };
    let mut events = vec![event(Event::Accepted(v1::Accepted {
        job_id: rec.id.clone(),
        queue_position: rec.queue_position,
    }))];
    if rec.state == JobState::Done {
        match std::fs::read_to_string(dir.join("out").join("report.json")) {
            Ok(json) => events.push(event(Event::Report(v1::Report { json }))),
            Err(e) => tracing::warn!(job = %rec.id, "report.json: {e}"),
        }
    }
    Ok(Some(Job {
        id: rec.id.clone(),
        project: rec.project,
        session_name: rec.session_name,
        submitted_unix_ms: rec.submitted_unix_ms,
        request,
        dir: dir.to_path_buf(),
        cancel: AtomicBool::new(false),
        inner: Mutex::new(Inner {
            state: rec.state,
            error: rec
                .error
                .map(|m| (m, rec.error_code.unwrap_or_else(|| "INTERNAL".into()))),
            events,
            files: rec.files,
            progress: if rec.state == JobState::Done {
                1.0
            } else {
                0.0
            },
            last_progress: None,
            queue_position: rec.queue_position,
        }),
        changed: watch::channel(0).0,
    }))
}

/// Where the store keeps a stem: only ever a validated hash joined to the folder.
fn stem_path(stems_dir: &Path, stem: &StemRef) -> Result<PathBuf> {
    let hash = stem.blake3.as_deref().unwrap_or_default();
    if !super::is_blake3_hex(hash) {
        return Err(Error::InvalidSession(format!(
            "{}: no valid blake3 hash",
            stem.name
        )));
    }
    let path = stems_dir.join(hash);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::InvalidSession(format!(
            "{}: stem {hash} is not in the store",
            stem.name
        )))
    }
}

/// The session of a submit request, parsed and validated once: the session document
/// when the client sent one, else the first contract's proto model.
pub(crate) fn session_of(
    req: &v1::SubmitRequest,
    limits: &session::Limits,
) -> Result<session::ValidSession> {
    let session = match (&req.document, &req.session) {
        (Some(doc), _) => {
            if doc.toml.len() > limits.max_session_bytes {
                return Err(Error::Limit(format!(
                    "session document of {} bytes, more than the {} allowed",
                    doc.toml.len(),
                    limits.max_session_bytes
                )));
            }
            session::from_document(doc)?
        }
        (None, Some(proto)) => session::from_proto(proto)?,
        (None, None) => return Err(Error::InvalidSession("session: missing".into())),
    };
    // The server trusts no client: the same validation as the client's.
    session::ValidSession::new(session, limits)
}

/// Every stem a session names (clips, reverbs' IRs), each once.
pub(crate) fn session_stems(s: &session::Session) -> Vec<StemRef> {
    let mut out: Vec<StemRef> = Vec::new();
    for stem in session::stems(s) {
        if !out.iter().any(|o| o.blake3 == stem.blake3) {
            out.push(stem.clone());
        }
    }
    out
}

/// A master request's parts in the session model, checked by the session's own
/// validation: the request is wrapped in a one-track session. A deliverable
/// sample rate of 0 stays 0 ("the input's rate").
pub(crate) fn master_parts(
    req: &v1::MasterRequest,
) -> Result<(StemRef, Option<Master>, Deliverable)> {
    let stem = req
        .stem
        .clone()
        .ok_or_else(|| Error::InvalidSession("master: stem: missing".into()))?;
    let proto_deliverable = req
        .deliverable
        .clone()
        .ok_or_else(|| Error::InvalidSession("master: deliverable: missing".into()))?;
    let rate = if proto_deliverable.sample_rate == 0 {
        48_000
    } else {
        proto_deliverable.sample_rate
    };
    let wrapper = v1::Session {
        name: "master".into(),
        sample_rate: rate,
        tail_s: 0.0,
        tracks: vec![v1::Track {
            name: "input".into(),
            stem: Some(stem),
            output: "master".into(),
            ..Default::default()
        }],
        buses: Vec::new(),
        master: req.master.clone(),
        deliverables: vec![proto_deliverable.clone()],
        source: "master".into(),
    };
    let mut s = session::from_proto(&wrapper)?;
    let input = s
        .tracks
        .pop()
        .and_then(|t| t.clips.into_iter().next())
        .map(|c| c.file)
        .ok_or_else(|| Error::Internal("master: the input track vanished".into()))?;
    let mut deliverable = s
        .deliverables
        .pop()
        .ok_or_else(|| Error::Internal("master: the deliverable vanished".into()))?;
    if proto_deliverable.sample_rate == 0 {
        deliverable.sample_rate = 0;
    }
    Ok((input, s.master, deliverable))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
