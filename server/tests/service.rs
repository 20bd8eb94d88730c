//! The gRPC service in process: `service::spawn` on 127.0.0.1:0 with a temporary
//! store, talked to with tonic clients exactly as `bounce` does.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bounce_proto::v1::render_client::RenderClient;
use bounce_proto::v1::stem_store_client::StemStoreClient;
use bounce_proto::v1::{
    self, AttachRequest, CancelRequest, ListJobsRequest, MissingRequest, Stem, SubmitRequest,
    UploadChunk, UploadHeader, job_event::Event,
};
use bounce_server::engine::BackendChoice;
use bounce_server::service::{self, ServerConfig, ServerHandle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

struct Server {
    url: String,
    handle: Option<ServerHandle>,
    dir: tempfile::TempDir,
}

impl Server {
    fn data(&self) -> &Path {
        self.dir.path()
    }
}

async fn start_in(dir: tempfile::TempDir, tokens: Option<PathBuf>) -> Server {
    let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path());
    cfg.backend = BackendChoice::Cpu;
    cfg.tokens = tokens;
    let (addr, handle) = service::spawn(cfg).await.unwrap();
    Server {
        url: format!("http://{addr}"),
        handle: Some(handle),
        dir,
    }
}

async fn start() -> Server {
    start_in(tempfile::tempdir().unwrap(), None).await
}

async fn channel(s: &Server) -> Channel {
    Channel::from_shared(s.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A 0.1 s mono 16-bit WAV of a 440 Hz sine, in memory.
fn wav_bytes() -> Vec<u8> {
    let sine = bounce_test_audio::sine(440.0, 0.25, 4800, 48_000);
    bounce_test_audio::pcm16_wav_bytes(&[sine], 48_000)
}

fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<u8>()).collect()
}

fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

fn chunks(header_hash: &str, name: &str, data: &[u8], size: u64) -> Vec<UploadChunk> {
    let mut out = Vec::new();
    let mut header = Some(UploadHeader {
        blake3: header_hash.to_string(),
        size,
        name: name.to_string(),
    });
    for part in data.chunks(64 << 10) {
        out.push(UploadChunk {
            header: header.take(),
            data: part.to_vec(),
        });
    }
    if out.is_empty() {
        out.push(UploadChunk {
            header: header.take(),
            data: Vec::new(),
        });
    }
    out
}

async fn upload(store: &mut StemStoreClient<Channel>, name: &str, data: &[u8]) -> String {
    let h = hash(data);
    let resp = store
        .upload(tokio_stream::iter(chunks(
            &h,
            name,
            data,
            data.len() as u64,
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.blake3, h);
    assert_eq!(resp.size, data.len() as u64);
    h
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn session(stem_hash: &str, gain_db: f64) -> v1::Session {
    v1::Session {
        name: "Test".into(),
        sample_rate: 48_000,
        tail_s: 0.1,
        tracks: vec![v1::Track {
            name: "Kick".into(),
            stem: Some(Stem {
                blake3: stem_hash.into(),
                name: "kick.wav".into(),
            }),
            gain_db,
            output: "master".into(),
            ..Default::default()
        }],
        source: "test.toml".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_missing_is_empty_and_the_store_holds_the_bytes() {
    let s = start().await;
    let mut store = StemStoreClient::new(channel(&s).await);
    let data = random_bytes(1, 300_000);
    let h = hash(&data);
    let other = hash(b"never uploaded");
    let missing = store
        .missing(MissingRequest {
            blake3: vec![h.clone(), other.clone(), h.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert_eq!(missing, vec![h.clone(), other.clone()]);
    upload(&mut store, "a.wav", &data).await;
    let missing = store
        .missing(MissingRequest {
            blake3: vec![h.clone(), other.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert_eq!(missing, vec![other]);
    assert_eq!(
        std::fs::read(s.data().join("stems").join(&h)).unwrap(),
        data
    );
    // A second upload of the same bytes is fine.
    upload(&mut store, "a-again.wav", &data).await;
    assert!(dir_entries(&s.data().join("tmp")).is_empty());

    // A path-like "hash" is refused, never turned into a path.
    let err = store
        .missing(MissingRequest {
            blake3: vec!["../../etc/passwd".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_or_size_mismatch_is_rejected_and_nothing_is_stored() {
    let s = start().await;
    let mut store = StemStoreClient::new(channel(&s).await);
    let data = random_bytes(2, 200_000);
    let claimed = hash(b"something else");
    let err = store
        .upload(tokio_stream::iter(chunks(
            &claimed,
            "liar.wav",
            &data,
            data.len() as u64,
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("liar.wav"), "{}", err.message());
    assert!(dir_entries(&s.data().join("stems")).is_empty());
    assert!(dir_entries(&s.data().join("tmp")).is_empty());

    // Right hash, wrong size in the header.
    let h = hash(&data);
    let err = store
        .upload(tokio_stream::iter(chunks(
            &h,
            "short.wav",
            &data,
            data.len() as u64 + 10,
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = store
        .upload(tokio_stream::iter(chunks(
            &h,
            "long.wav",
            &data,
            data.len() as u64 - 10,
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(dir_entries(&s.data().join("stems")).is_empty());
    assert!(dir_entries(&s.data().join("tmp")).is_empty());

    // No header at all.
    let err = store
        .upload(tokio_stream::iter(vec![UploadChunk {
            header: None,
            data: vec![1, 2, 3],
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Polls `cond` until it holds (a generous deadline: this is about what happens,
/// not how fast).
async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_upload_leaves_nothing_and_the_server_serves_on() {
    let s = start().await;
    let data = random_bytes(3, 512 << 10);
    let h = hash(&data);
    let tmp = s.data().join("tmp");
    {
        let mut store = StemStoreClient::new(channel(&s).await);
        let (tx, rx) = tokio::sync::mpsc::channel::<UploadChunk>(4);
        let mut all = chunks(&h, "gone.wav", &data, data.len() as u64).into_iter();
        tx.send(all.next().unwrap()).await.unwrap();
        tx.send(all.next().unwrap()).await.unwrap();
        let call = tokio::spawn(async move {
            let _ = store
                .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
        });
        // The upload is under way: its temporary file exists.
        eventually(|| !dir_entries(&tmp).is_empty(), "a temporary upload file").await;
        // The client vanishes: the call and its connection are dropped mid-stream.
        call.abort();
        let _ = call.await;
        drop(tx);
    }
    eventually(
        || dir_entries(&tmp).is_empty(),
        "the temporary file removed",
    )
    .await;
    assert!(!s.data().join("stems").join(&h).exists());

    // The server still serves, and the same upload now works.
    let mut store = StemStoreClient::new(channel(&s).await);
    upload(&mut store, "gone.wav", &data).await;
    assert!(s.data().join("stems").join(&h).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_session_names_the_field_then_a_valid_one_is_accepted() {
    let s = start().await;
    let ch = channel(&s).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, "kick.wav", &wav_bytes()).await;

    let err = render
        .submit(SubmitRequest {
            session: Some(session(&h, 999.0)),
            backend: 0,
            document: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("gain_db"), "{}", err.message());
    assert!(err.message().contains("test.toml"), "{}", err.message());

    let err = render
        .submit(SubmitRequest {
            session: None,
            backend: 0,
            document: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A stem the store lacks: FAILED_PRECONDITION naming it.
    let absent = hash(b"not uploaded");
    let err = render
        .submit(SubmitRequest {
            session: Some(session(&absent, 0.0)),
            backend: 0,
            document: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("kick.wav"), "{}", err.message());

    // The server still serves: a valid session is accepted and runs to an end.
    let mut stream = render
        .submit(SubmitRequest {
            session: Some(session(&h, -3.0)),
            backend: 0,
            document: None,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::Accepted(acc)) = first.event else {
        panic!("first event: {first:?}")
    };
    assert!(!acc.job_id.is_empty());
    let mut ended = false;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event {
            Some(Event::Done(_)) | Some(Event::Error(_)) => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    assert!(ended, "the job's stream ended without done or error");

    let jobs = render
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, acc.job_id);
    assert!(
        ["done", "failed"].contains(&jobs[0].state.as_str()),
        "{}",
        jobs[0].state
    );

    // Re-attach to the finished job: the same end again.
    let mut again = render
        .attach(AttachRequest {
            job_id: acc.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = again.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Accepted(_))));
    let mut last = None;
    while let Some(ev) = again.message().await.unwrap() {
        last = ev.event;
    }
    assert!(
        matches!(last, Some(Event::Done(_)) | Some(Event::Error(_))),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_job_ids_are_not_found() {
    let s = start().await;
    let mut render = RenderClient::new(channel(&s).await);
    let err = render
        .attach(AttachRequest {
            job_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = render
        .cancel(CancelRequest {
            job_id: "../nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_gate_every_call_and_projects_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nproject = \"alpha\"\nsha256 = \"{}\"\n\n[[token]]\nproject = \"beta\"\nsha256 = \"{}\"\nmax_queued_jobs = 5\n",
            service::hash_token("alpha-secret"),
            service::hash_token("beta-secret"),
        ),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = start_in(data, Some(tokens)).await;
    let ch = channel(&s).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch.clone());

    // No token, a wrong token: UNAUTHENTICATED, health and reflection included.
    let err = store
        .missing(MissingRequest { blake3: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = render
        .list_jobs(with_token(ListJobsRequest::default(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let err = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Alpha uploads and submits.
    let wav = wav_bytes();
    let h = hash(&wav);
    store
        .upload(with_token(
            tokio_stream::iter(chunks(&h, "kick.wav", &wav, wav.len() as u64)),
            "alpha-secret",
        ))
        .await
        .unwrap();
    let mut stream = render
        .submit(with_token(
            SubmitRequest {
                session: Some(session(&h, 0.0)),
                backend: 0,
                document: None,
            },
            "alpha-secret",
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::Accepted(acc)) = first.event else {
        panic!("first event: {first:?}")
    };
    drop(stream); // leaving does not cancel the job

    // Beta sees nothing of it.
    let jobs = render
        .list_jobs(with_token(ListJobsRequest::default(), "beta-secret"))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(jobs.is_empty(), "{jobs:?}");
    let err = render
        .attach(with_token(
            AttachRequest {
                job_id: acc.job_id.clone(),
            },
            "beta-secret",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = render
        .cancel(with_token(
            CancelRequest {
                job_id: acc.job_id.clone(),
            },
            "beta-secret",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Alpha does.
    let jobs = render
        .list_jobs(with_token(ListJobsRequest::default(), "alpha-secret"))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, acc.job_id);
    render
        .attach(with_token(
            AttachRequest {
                job_id: acc.job_id.clone(),
            },
            "alpha-secret",
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_serving() {
    let s = start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&s).await);
    for service in ["", "bounce.v1.Render", "bounce.v1.StemStore"] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart() {
    let mut s = start().await;
    let ch = channel(&s).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, "kick.wav", &wav_bytes()).await;
    let mut stream = render
        .submit(SubmitRequest {
            session: Some(session(&h, 0.0)),
            backend: 0,
            document: None,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::Accepted(acc)) = first.event else {
        panic!("first event: {first:?}")
    };
    drop(stream);
    drop(render);
    drop(store);
    s.handle.take().unwrap().shutdown().await.unwrap();

    // A new server on the same store knows the job (queued again if it had not
    // finished, or finished with its renders).
    let s2 = start_in(s.dir, None).await;
    let mut render = RenderClient::new(channel(&s2).await);
    let jobs = render
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].id, acc.job_id);
    let mut again = render
        .attach(AttachRequest {
            job_id: acc.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(ev) = again.message().await.unwrap() {
        last = ev.event;
    }
    assert!(
        matches!(last, Some(Event::Done(_)) | Some(Event::Error(_))),
        "{last:?}"
    );
}
