//! One job: its fixed identity, its mutable state, its event log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bounce_proto::v1::{self, JobEvent, job_event::Event};
use tokio::sync::watch;
use tonic::Code;

use super::super::db::JobRow;

/// Bytes of a name or error in a listing (and of a stored session name).
pub(crate) const MAX_LISTED_TEXT: usize = 1024;
/// Bytes of a stored error message.
pub(crate) const MAX_STORED_ERROR: usize = 4096;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub(crate) fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a job renders. A render holds its session validated once (at submit, or when
/// the index is loaded after a restart): the run trusts it and checks nothing again.
#[derive(Debug, Clone)]
pub(crate) enum JobRequest {
    Render {
        session: std::sync::Arc<crate::session::ValidSession>,
        /// `SubmitRequest.backend` as sent.
        backend: i32,
    },
    Master(Box<v1::MasterRequest>),
}

impl JobRequest {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            JobRequest::Render { .. } => "render",
            JobRequest::Master(_) => "master",
        }
    }
}

/// Why the service raised a running job's cancel flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    /// The owner cancelled it.
    Cancel,
    /// The server is stopping: the job goes back to the queue.
    Shutdown,
    /// It ran longer than max_job_seconds.
    Timeout(f64),
}

/// A job's mutable part.
pub(crate) struct Inner {
    pub(crate) state: JobState,
    /// (message, gRPC code name) of a failed or cancelled job.
    pub(crate) error: Option<(String, String)>,
    /// Accepted, progress and report events, in order (files and the end are
    /// produced by the follower from the state).
    pub(crate) events: Vec<JobEvent>,
    pub(crate) files: Vec<String>,
    pub(crate) progress: f64,
    pub(crate) last_progress: Option<(String, f64)>,
    pub(crate) attempts: u32,
    pub(crate) finished_ms: u64,
    pub(crate) stop: Option<Stop>,
}

/// One job.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) project: String,
    pub(crate) session_name: String,
    pub(crate) submitted_unix_ms: u64,
    /// The request, while the job may still run (finished jobs loaded from the
    /// index carry none).
    pub(crate) request: Option<JobRequest>,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) cancel: AtomicBool,
    pub(crate) inner: Mutex<Inner>,
    /// Bumped on every change, so followers wake.
    pub(crate) changed: watch::Sender<u64>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a lock is held leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn event(e: Event) -> JobEvent {
    JobEvent { event: Some(e) }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `s` cut to at most `max` bytes on a character boundary (marked when cut).
pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
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
    /// A job as the queue holds it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_live(
        id: String,
        project: String,
        session_name: String,
        submitted_unix_ms: u64,
        request: JobRequest,
        dir: std::path::PathBuf,
        queue_position: u32,
        attempts: u32,
    ) -> Job {
        Job {
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
                attempts,
                finished_ms: 0,
                stop: None,
            }),
            id,
            project,
            session_name,
            submitted_unix_ms,
            request: Some(request),
            dir,
            cancel: AtomicBool::new(false),
            changed: watch::channel(0).0,
        }
    }

    /// A finished job from the index (its report read back from its renders).
    pub(crate) fn finished(row: JobRow, dir: std::path::PathBuf) -> Job {
        let state = JobState::parse(&row.state).unwrap_or(JobState::Failed);
        let mut events = vec![event(Event::Accepted(v1::Accepted {
            job_id: row.id.clone(),
            queue_position: row.queue_position,
        }))];
        if state == JobState::Done {
            match std::fs::read_to_string(dir.join("out").join("report.json")) {
                Ok(json) => events.push(event(Event::Report(v1::Report { json }))),
                Err(e) => tracing::warn!(job = %row.id, "report.json: {e}"),
            }
        }
        Job {
            inner: Mutex::new(Inner {
                state,
                error: row
                    .error
                    .map(|m| (m, row.error_code.unwrap_or_else(|| "INTERNAL".into()))),
                events,
                files: row.files,
                progress: if state == JobState::Done { 1.0 } else { 0.0 },
                last_progress: None,
                attempts: row.attempts,
                finished_ms: row.finished_ms.unwrap_or(0),
                stop: None,
            }),
            id: row.id,
            project: row.project,
            session_name: row.session_name,
            submitted_unix_ms: row.submitted_ms,
            request: None,
            dir,
            cancel: AtomicBool::new(false),
            changed: watch::channel(0).0,
        }
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn set_state(&self, state: JobState, error: Option<(String, String)>) {
        {
            let mut inner = lock(&self.inner);
            inner.state = state;
            inner.error = error.map(|(m, c)| (bounded(&m, MAX_STORED_ERROR), c));
            if state == JobState::Done {
                inner.progress = 1.0;
            }
            if state.is_terminal() {
                inner.finished_ms = now_ms();
            }
        }
        self.notify();
    }

    /// Raises the cancel flag the engine polls, remembering why (the first reason wins).
    pub(crate) fn stop(&self, why: Stop) {
        {
            let mut inner = lock(&self.inner);
            if inner.stop.is_none() {
                inner.stop = Some(why);
            }
        }
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Engine progress: recorded when the stage changes or the fraction moved by
    /// at least 1 %, so a replay stays short.
    pub(crate) fn progress(&self, stage: &str, fraction: f64) {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        {
            let mut inner = lock(&self.inner);
            if inner.state != JobState::Running {
                return; // cancelled or checkpointed while the engine winds down
            }
            let keep = match &inner.last_progress {
                Some((s, f)) => {
                    s != stage || (fraction - f).abs() >= 0.01 || (fraction >= 1.0 && *f < 1.0)
                }
                None => true,
            };
            if !keep {
                return;
            }
            let stage = bounded(stage, MAX_LISTED_TEXT);
            inner.last_progress = Some((stage.clone(), fraction));
            inner.progress = fraction;
            inner
                .events
                .push(event(Event::Progress(v1::Progress { stage, fraction })));
        }
        self.notify();
    }

    pub(crate) fn state(&self) -> JobState {
        lock(&self.inner).state
    }

    pub(crate) fn info(&self) -> v1::JobInfo {
        let inner = lock(&self.inner);
        v1::JobInfo {
            id: self.id.clone(),
            state: inner.state.as_str().to_string(),
            error: inner
                .error
                .as_ref()
                .map(|e| bounded(&e.0, MAX_LISTED_TEXT))
                .unwrap_or_default(),
            session_name: bounded(&self.session_name, MAX_LISTED_TEXT),
            progress: inner.progress,
            submitted_unix_ms: self.submitted_unix_ms,
            attempts: inner.attempts,
            finished_unix_ms: inner.finished_ms,
        }
    }
}
