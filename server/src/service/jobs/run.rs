//! Running a job: the attempt is counted in the index before the engine starts;
//! the engine runs on a blocking thread (a panic fails that job only); outputs are
//! fsynced before the job is `done`; a failed job's partial outputs are removed.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bounce_proto::v1::{self, job_event::Event};

use super::job::{Job, JobRequest, JobState, Stop, code_name, event, lock, now_ms};
use super::request::{master_parts, stem_path};
use super::{Jobs, dir_bytes};
use crate::engine::{self, BackendChoice, RenderOptions, RenderOutput};
use crate::service::db::Finish;
use crate::service::status_code;
use crate::session::StemRef;
use crate::{Error, Result};

impl Jobs {
    pub(super) fn start(self: &Arc<Self>, job: Arc<Job>) {
        // The attempt shows with the running state; the index's count (written
        // before the engine starts) replaces it below.
        lock(&job.inner).attempts += 1;
        job.set_state(JobState::Running, None);
        tracing::info!(job = %job.id, project = %job.project, "job started");
        let jobs = self.clone();
        let max_seconds = self
            .limits_of(&job.project)
            .max_job_seconds
            .or(self.service_limits.max_job_seconds);
        tokio::spawn(async move {
            let (j, js) = (job.clone(), jobs.clone());
            let task = tokio::task::spawn_blocking(move || {
                // Cancelled or checkpointed between the pick and here: not an attempt.
                if j.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(Error::Cancelled);
                }
                let attempts = js.db.mark_running(&j.id)?;
                lock(&j.inner).attempts = attempts;
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| js.run_engine(&j)))
                    .unwrap_or_else(|panic| {
                        Err(Error::Internal(format!(
                            "the render panicked: {}",
                            panic_message(panic.as_ref())
                        )))
                    })?;
                sync_outputs(&j.dir.join("out"), &result.files)?;
                Ok(result)
            });
            tokio::pin!(task);
            let joined = match max_seconds {
                Some(secs) => {
                    tokio::select! {
                        r = &mut task => r,
                        _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {
                            job.stop(Stop::Timeout(secs));
                            task.await
                        }
                    }
                }
                None => task.await,
            };
            let result = joined
                .unwrap_or_else(|e| Err(Error::Internal(format!("the render task failed: {e}"))));
            let (j, js) = (job.clone(), jobs.clone());
            let _ = tokio::task::spawn_blocking(move || js.finish(&j, result)).await;
            lock(&jobs.sched).release(&job.project);
            jobs.ended.notify_waiters();
            jobs.wake.notify_one();
        });
    }

    /// Records how a job ended (in memory and in the index). Blocking.
    fn finish(&self, job: &Job, result: Result<RenderOutput>) {
        let out_dir = job.dir.join("out");
        let stop = lock(&job.inner).stop;
        if stop == Some(Stop::Shutdown) {
            // Already written back as queued by the shutdown; the next start runs it.
            return;
        }
        let outcome = match (stop, result) {
            (Some(Stop::Cancel), _) => {
                // Marked cancelled when the cancel came in; written again in case
                // the engine's start raced it.
                remove_outputs(&out_dir);
                Some((
                    JobState::Cancelled,
                    Some(("cancelled".to_string(), "CANCELLED".to_string())),
                ))
            }
            (Some(Stop::Timeout(secs)), r) if r.is_err() => {
                remove_outputs(&out_dir);
                Some((
                    JobState::Failed,
                    Some((
                        format!("the job ran longer than max_job_seconds = {secs} and was stopped"),
                        "RESOURCE_EXHAUSTED".to_string(),
                    )),
                ))
            }
            (_, Ok(out)) => {
                {
                    let mut inner = lock(&job.inner);
                    inner.events.push(event(Event::Report(v1::Report {
                        json: out.report_json,
                    })));
                    inner.files = out.files;
                }
                Some((JobState::Done, None))
            }
            (_, Err(e)) => {
                remove_outputs(&out_dir);
                let code = code_name(status_code(&e)).to_string();
                tracing::warn!(job = %job.id, "job failed: {e}");
                Some((JobState::Failed, Some((e.to_string(), code))))
            }
        };
        if let Some((state, error)) = outcome {
            let files = lock(&job.inner).files.clone();
            let out_bytes = if state == JobState::Done {
                dir_bytes(&out_dir)
            } else {
                0
            };
            job.set_state(state, error);
            let error = lock(&job.inner).error.clone();
            let written = self.db.finish(
                &job.id,
                &Finish {
                    state: state.as_str(),
                    error: error.as_ref().map(|(m, c)| (m.as_str(), c.as_str())),
                    files: &files,
                    out_bytes,
                    finished_ms: now_ms(),
                },
            );
            match written {
                Ok(()) => tracing::info!(job = %job.id, "job {}", state.as_str()),
                Err(e) => tracing::error!(job = %job.id, "cannot record the job's end: {e}"),
            }
        }
        lock(&self.live).remove(&job.id);
    }

    /// Runs on a blocking thread.
    fn run_engine(&self, job: &Job) -> Result<RenderOutput> {
        let out = job.dir.join("out");
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        }
        std::fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        let check = || {
            if job.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                Err(Error::Cancelled)
            } else {
                Ok(())
            }
        };
        check()?;
        let progress = |stage: &str, fraction: f64| job.progress(stage, fraction);
        let resolve = |stem: &StemRef| {
            // The engine asks between stages: a good place to honour a cancel too.
            check()?;
            stem_path(&self.stems_dir, stem)
        };
        let request = job
            .request
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("job {}: no request", job.id)))?;
        match request {
            JobRequest::Render { session, backend } => {
                let opts = self.options_for(&job.project, *backend, session.sample_rate);
                engine::render_session(session, &resolve, &out, &opts, &progress, &job.cancel)
            }
            JobRequest::Master(req) => {
                let (input, master, mut deliverable) = master_parts(req)?;
                let path = stem_path(&self.stems_dir, &input)?;
                if deliverable.sample_rate == 0 {
                    // No rate asked for: keep the input's.
                    deliverable.sample_rate =
                        crate::audio::decode::probe(&path, &input.name)?.sample_rate;
                }
                let opts = self.options_for(&job.project, 0, deliverable.sample_rate);
                engine::master_file(
                    &path,
                    &input.name,
                    master.as_ref(),
                    &deliverable,
                    &out,
                    &opts,
                    &progress,
                    &job.cancel,
                )
            }
        }
    }

    /// The server's render options for one job: a client's backend hint applied (a
    /// CPU request is always honoured; a GPU one only when the server holds a GPU),
    /// and the mix length bounded by max_mix_seconds at the job's rate.
    pub(crate) fn options_for(&self, project: &str, hint: i32, rate: u32) -> RenderOptions {
        let mut opts = self.opts.clone();
        match v1::Backend::try_from(hint) {
            Ok(v1::Backend::Cpu) => {
                opts.backend = BackendChoice::Cpu;
                opts.gpu = None;
            }
            Ok(v1::Backend::Gpu) if opts.gpu.is_some() => opts.backend = BackendChoice::Gpu,
            _ => {}
        }
        let secs = self
            .limits_of(project)
            .max_mix_seconds
            .or(self.service_limits.max_mix_seconds);
        if let Some(secs) = secs {
            let frames = (secs * f64::from(rate)).floor();
            if frames.is_finite() && frames >= 0.0 {
                opts.limits.max_mix_frames = opts.limits.max_mix_frames.min(frames as u64);
            }
        }
        opts
    }
}

/// fsyncs every output and the folder, so `done` in the index means on disk.
fn sync_outputs(dir: &Path, files: &[String]) -> Result<()> {
    for name in files {
        let path = dir.join(name);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(path.display(), e))?;
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir.display(), e))
}

fn remove_outputs(dir: &Path) {
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        tracing::warn!(dir = %dir.display(), "cannot remove partial outputs: {e}");
    }
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
