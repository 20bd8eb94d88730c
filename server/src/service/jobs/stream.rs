//! Streaming a job's events: the log so far, new events as they come, then the
//! finished job's files in chunks read from disk. Followers come and go (a client
//! that drops can re-attach); they never cancel the job.

use std::sync::Arc;

use bounce_proto::v1::{self, JobEvent, job_event::Event};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Jobs;
use super::job::{Job, JobState, event, lock};

/// Size of the file chunks streamed back.
const FILE_CHUNK: usize = 1 << 20;

impl Jobs {
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
