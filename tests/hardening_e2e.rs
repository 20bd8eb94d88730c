//! A shared box no request can knock over or read across (issue 8, service side):
//! stem ownership per project, bounded and fast RPCs, pagination, delete,
//! retention, cancel, reflection — against the service in process — and, against
//! real `bounced` processes: one server per data dir, safe listen defaults, crash
//! loops stopped after two crashes, SIGTERM grace with health NOT_SERVING.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bounce_proto::v1::render_client::RenderClient;
use bounce_proto::v1::stem_store_client::StemStoreClient;
use bounce_proto::v1::{
    self, AttachRequest, CancelRequest, DeleteRequest, ListJobsRequest, MissingRequest, Stem,
    SubmitRequest, UploadChunk, UploadHeader, job_event::Event,
};
use bounce_server::engine::BackendChoice;
use bounce_server::service::{self, ServerConfig, ServerHandle};
use bounce_tests::{bin, noise, write_f32_wav};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

// ---------- helpers ----------

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
        );
    }
    req
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// A mono 48 kHz float WAV of seeded noise, `seconds` long, as bytes.
fn stem_bytes(dir: &Path, seed: u64, seconds: f64) -> Vec<u8> {
    let path = dir.join(format!("stem-{seed}.wav"));
    write_f32_wav(
        &path,
        &[noise(seed, (48_000.0 * seconds) as usize, 0.25)],
        48_000,
    );
    std::fs::read(&path).unwrap()
}

async fn try_upload(
    store: &mut StemStoreClient<Channel>,
    token: Option<&str>,
    claimed: &str,
    data: &[u8],
) -> Result<(), tonic::Status> {
    let mut header = Some(UploadHeader {
        blake3: claimed.to_string(),
        size: data.len() as u64,
        name: "kick.wav".into(),
    });
    let mut chunks: Vec<UploadChunk> = data
        .chunks(1 << 20)
        .map(|c| UploadChunk {
            header: header.take(),
            data: c.to_vec(),
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(UploadChunk {
            header: header.take(),
            data: Vec::new(),
        });
    }
    store
        .upload(with_token(tokio_stream::iter(chunks), token))
        .await
        .map(drop)
}

async fn upload(store: &mut StemStoreClient<Channel>, token: Option<&str>, data: &[u8]) -> String {
    let h = hash(data);
    try_upload(store, token, &h, data).await.unwrap();
    h
}

/// `tracks` tracks on one stem, each with EQ and a compressor: long enough to
/// be caught running when `tracks × stem length` is large.
fn session(stem: &str, tracks: usize, name: &str) -> v1::Session {
    v1::Session {
        name: name.into(),
        sample_rate: 48_000,
        tail_s: 0.1,
        tracks: (0..tracks)
            .map(|i| v1::Track {
                name: format!("T{i}"),
                stem: Some(Stem {
                    blake3: stem.into(),
                    name: "kick.wav".into(),
                }),
                gain_db: -20.0,
                output: "master".into(),
                eq: vec![v1::EqBand {
                    r#type: "peak".into(),
                    freq: 1000.0,
                    q: 1.0,
                    gain_db: 2.0,
                }],
                compressor: Some(v1::Compressor {
                    threshold_db: -18.0,
                    ratio: 4.0,
                    attack_ms: 10.0,
                    release_ms: 100.0,
                    detector: "peak".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        source: "test.toml".into(),
        ..Default::default()
    }
}

/// Submits and returns the job id (the stream is dropped: the job goes on).
async fn submit(
    render: &mut RenderClient<Channel>,
    token: Option<&str>,
    s: v1::Session,
) -> Result<String, tonic::Status> {
    let mut stream = render
        .submit(with_token(
            SubmitRequest {
                session: Some(s),
                backend: v1::Backend::Cpu as i32,
                document: None,
            },
            token,
        ))
        .await?
        .into_inner();
    let first = stream.message().await?.unwrap();
    match first.event {
        Some(Event::Accepted(a)) => Ok(a.job_id),
        other => panic!("first event: {other:?}"),
    }
}

async fn jobs_of(render: &mut RenderClient<Channel>, token: Option<&str>) -> Vec<v1::JobInfo> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = render
            .list_jobs(with_token(
                ListJobsRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn job_of(
    render: &mut RenderClient<Channel>,
    token: Option<&str>,
    id: &str,
) -> Option<v1::JobInfo> {
    jobs_of(render, token)
        .await
        .into_iter()
        .find(|j| j.id == id)
}

/// Polls until the job is in `state` (or panics after `secs`).
async fn wait_state(
    render: &mut RenderClient<Channel>,
    token: Option<&str>,
    id: &str,
    state: &str,
    secs: u64,
) -> v1::JobInfo {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job_of(render, token, id).await;
        if let Some(j) = &j
            && j.state == state
        {
            return j.clone();
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never reached {state}: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tokens_file(dir: &Path, extra_beta: &str) -> PathBuf {
    let path = dir.join("tokens.toml");
    std::fs::write(
        &path,
        format!(
            "[[token]]\nproject = \"alpha\"\nsha256 = \"{}\"\n\n[[token]]\nproject = \"beta\"\nsha256 = \"{}\"\n{extra_beta}\n",
            service::hash_token("alpha-secret"),
            service::hash_token("beta-secret"),
        ),
    )
    .unwrap();
    path
}

struct InProc {
    url: String,
    handle: Option<ServerHandle>,
    dir: tempfile::TempDir,
}

async fn in_proc(edit: impl FnOnce(&mut ServerConfig, &Path)) -> InProc {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.backend = BackendChoice::Cpu;
    edit(&mut cfg, dir.path());
    let (addr, handle) = service::spawn(cfg).await.unwrap();
    InProc {
        url: format!("http://{addr}"),
        handle: Some(handle),
        dir,
    }
}

const A: Option<&str> = Some("alpha-secret");
const B: Option<&str> = Some("beta-secret");

// ---------- in process ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stems_belong_to_the_project_that_uploaded_them() {
    let s = in_proc(|c, d| c.tokens = Some(tokens_file(d, ""))).await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let wav = stem_bytes(s.dir.path(), 1, 0.2);
    let h = upload(&mut store, A, &wav).await;

    // B cannot see A's stem ...
    let missing = store
        .missing(with_token(
            MissingRequest {
                blake3: vec![h.clone()],
            },
            B,
        ))
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert_eq!(missing, vec![h.clone()]);
    // ... nor use it.
    let err = submit(&mut render, B, session(&h, 1, "B's"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("kick.wav")
            && err.message().contains(&h)
            && err.message().contains("not in this project's store"),
        "{}",
        err.message()
    );
    // Claiming the hash with other bytes proves nothing.
    let err = try_upload(&mut store, B, &h, b"not the bytes")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let missing = store
        .missing(with_token(
            MissingRequest {
                blake3: vec![h.clone()],
            },
            B,
        ))
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert_eq!(missing, vec![h.clone()]);

    // B uploads the same bytes: accepted, stored once, and now B's too.
    upload(&mut store, B, &wav).await;
    let stems: Vec<_> = std::fs::read_dir(s.dir.path().join("data/stems"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(stems.len(), 1, "deduplicated underneath");
    let missing = store
        .missing(with_token(
            MissingRequest {
                blake3: vec![h.clone()],
            },
            B,
        ))
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert!(missing.is_empty(), "{missing:?}");
    let id = submit(&mut render, B, session(&h, 1, "B's")).await.unwrap();
    let done = wait_state(&mut render, B, &id, "done", 60).await;
    assert_eq!(done.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_of_60000_hashes_is_fast_and_other_rpcs_stay_fast() {
    let s = in_proc(|c, _| c.service_limits.max_missing_hashes = 60_000).await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let hashes: Vec<String> = (0..60_000u32).map(|i| hash(&i.to_le_bytes())).collect();
    let t = Instant::now();
    let missing = store
        .missing(MissingRequest {
            blake3: hashes.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .blake3;
    let took = t.elapsed();
    eprintln!("Missing of 60000 hashes: {took:?}");
    assert_eq!(missing.len(), 60_000);
    assert!(took < Duration::from_millis(900), "Missing took {took:?}");

    // Three at once, and ListJobs meanwhile answers at once.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut st = store.clone();
        let hs = hashes.clone();
        calls.push(tokio::spawn(async move {
            st.missing(MissingRequest { blake3: hs }).await.unwrap();
        }));
    }
    let mut render = RenderClient::new(ch);
    let t = Instant::now();
    render.list_jobs(ListJobsRequest::default()).await.unwrap();
    let list_took = t.elapsed();
    for c in calls {
        c.await.unwrap();
    }
    assert!(
        list_took < Duration::from_millis(500),
        "ListJobs took {list_took:?}"
    );

    // One over the limit: INVALID_ARGUMENT naming it, before any look-up.
    let mut over = hashes;
    over.push(hash(b"one more"));
    let err = store
        .missing(MissingRequest { blake3: over })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("max_missing_hashes = 60000"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_pages_and_bounds_names_and_delete_removes_a_job() {
    let s = in_proc(|_, _| {}).await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, None, &stem_bytes(s.dir.path(), 2, 0.1)).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            submit(&mut render, None, session(&h, 1, &format!("song {i}")))
                .await
                .unwrap(),
        );
    }
    // A 3 MB name: accepted or refused by validation, it never breaks a listing.
    let huge = "n".repeat(3 << 20);
    match submit(&mut render, None, session(&h, 1, &huge)).await {
        Ok(id) => ids.push(id),
        Err(e) => assert_eq!(e.code(), Code::InvalidArgument, "{e:?}"),
    }

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = render
            .list_jobs(ListJobsRequest {
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.jobs.len() <= 3);
        pages.push(page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>());
        for j in &page.jobs {
            assert!(j.session_name.len() <= 1024, "{}", j.session_name.len());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let listed: Vec<String> = pages.concat();
    assert_eq!(listed, ids, "every job once, oldest first");
    assert_eq!(pages.len(), ids.len().div_ceil(3));

    let err = render
        .list_jobs(ListJobsRequest {
            page_size: 3,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Delete: a finished job and its renders go; another is not touched.
    let last = ids.last().unwrap().clone();
    wait_state(&mut render, None, &last, "done", 60).await;
    let first = ids[0].clone();
    let first_state = job_of(&mut render, None, &first).await.unwrap().state;
    assert_eq!(first_state, "done");
    let dir = s.dir.path().join("data/jobs").join(&first);
    assert!(dir.join("out/mix.wav").is_file());
    let r = render
        .delete(DeleteRequest {
            job_id: first.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.deleted && r.bytes_freed > 0, "{r:?}");
    assert!(!dir.exists());
    assert!(job_of(&mut render, None, &first).await.is_none());
    let err = render
        .attach(AttachRequest {
            job_id: first.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(job_of(&mut render, None, &ids[1]).await.is_some());
    let err = render
        .delete(DeleteRequest { job_id: first })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_job_within_a_second_and_retention_spares_live_jobs() {
    let s = in_proc(|c, _| {
        c.retention.max_age = Some(Duration::from_millis(300));
        c.retention.interval = Duration::from_millis(100);
    })
    .await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);

    // A short job finishes, then expires with its renders, then its stem.
    let short = upload(&mut store, None, &stem_bytes(s.dir.path(), 3, 0.1)).await;
    let done = submit(&mut render, None, session(&short, 1, "short"))
        .await
        .unwrap();
    wait_state(&mut render, None, &done, "done", 60).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_of(&mut render, None, &done).await.is_some()
        || s.dir.path().join("data/stems").join(&short).exists()
    {
        assert!(Instant::now() < deadline, "the finished job never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!s.dir.path().join("data/jobs").join(&done).exists());
    let missing = store
        .missing(MissingRequest {
            blake3: vec![short.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .blake3;
    assert_eq!(missing, vec![short]);

    // A long job runs and one waits behind it: retention touches neither (nor
    // their stem), however old their age limit says they are.
    let long = upload(&mut store, None, &stem_bytes(s.dir.path(), 4, 20.0)).await;
    let running = submit(&mut render, None, session(&long, 200, "long"))
        .await
        .unwrap();
    let queued = submit(&mut render, None, session(&long, 1, "next"))
        .await
        .unwrap();
    wait_state(&mut render, None, &running, "running", 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        job_of(&mut render, None, &running).await.unwrap().state,
        "running"
    );
    assert_eq!(
        job_of(&mut render, None, &queued).await.unwrap().state,
        "queued"
    );
    assert!(s.dir.path().join("data/stems").join(&long).is_file());

    // Cancel: reported at once, and the engine lets go of its slot so the
    // queued job runs.
    let t = Instant::now();
    let r = render
        .cancel(CancelRequest {
            job_id: running.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.cancelled);
    assert_eq!(r.state, "running");
    let j = wait_state(&mut render, None, &running, "cancelled", 1).await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(j.error, "cancelled");
    let next = wait_state(&mut render, None, &queued, "done", 120).await;
    assert_eq!(next.attempts, 1);
    assert!(
        !s.dir
            .path()
            .join("data/jobs")
            .join(&running)
            .join("out")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_storage_quotas_name_their_limit() {
    let s = in_proc(|c, d| {
        c.tokens = Some(tokens_file(
            d,
            "max_upload_bytes = 100000\nmax_stored_bytes = 150000",
        ))
    })
    .await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch);
    let big = vec![7u8; 100_001];
    let err = try_upload(&mut store, B, &hash(&big), &big)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("max_upload_bytes = 100000"),
        "{}",
        err.message()
    );
    // Alpha has no quota.
    upload(&mut store, A, &big).await;
    upload(&mut store, B, &vec![1u8; 90_000]).await;
    let more = vec![2u8; 90_000];
    let err = try_upload(&mut store, B, &hash(&more), &more)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("max_stored_bytes = 150000"),
        "{}",
        err.message()
    );
    // Re-uploading what B owns costs nothing more.
    upload(&mut store, B, &vec![1u8; 90_000]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_max_job_seconds_is_stopped_and_failed() {
    let s = in_proc(|c, d| c.tokens = Some(tokens_file(d, "max_job_seconds = 1"))).await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, B, &stem_bytes(s.dir.path(), 6, 20.0)).await;
    let t = Instant::now();
    let id = submit(&mut render, B, session(&h, 400, "too long"))
        .await
        .unwrap();
    let j = wait_state(&mut render, B, &id, "failed", 60).await;
    assert!(j.error.contains("max_job_seconds = 1"), "{}", j.error);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(
        !s.dir
            .path()
            .join("data/jobs")
            .join(&id)
            .join("out")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_store_cap_the_oldest_finished_renders_go_first() {
    let s = in_proc(|_, _| {}).await;
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, None, &stem_bytes(s.dir.path(), 7, 0.1)).await;
    let old = submit(&mut render, None, session(&h, 1, "old"))
        .await
        .unwrap();
    wait_state(&mut render, None, &old, "done", 60).await;
    drop(s.handle);
    // A restart sweeps once shortly after it starts (a cap of 1 byte: everything
    // not in use goes, the finished job first, then its stem).
    let dir = s.dir;
    let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.backend = BackendChoice::Cpu;
    cfg.retention.max_age = None;
    cfg.retention.max_store_bytes = Some(1);
    // Wait until the first server let go of the folder.
    let deadline = Instant::now() + Duration::from_secs(20);
    while service::data_dir_in_use(&dir.path().join("data")) {
        assert!(Instant::now() < deadline, "the first server never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (addr, _handle) = service::spawn(cfg).await.unwrap();
    let mut render = RenderClient::new(channel(&format!("http://{addr}")).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_of(&mut render, None, &old).await.is_some()
        || dir.path().join("data/stems").join(&h).exists()
    {
        assert!(Instant::now() < deadline, "nothing was swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.path().join("data/jobs").join(&old).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_serves_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1 as r1, v1alpha as ra};
    let s = in_proc(|_, _| {}).await;
    let ch = channel(&s.url).await;
    let mut c1 = r1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let req = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut resp = c1
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        msg.message_response
    else {
        panic!("{msg:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"bounce.v1.Render".to_string()), "{names:?}");

    let mut ca = ra::server_reflection_client::ServerReflectionClient::new(ch);
    let req = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ra::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut resp = ca
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(ra::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        msg.message_response
    else {
        panic!("{msg:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"bounce.v1.StemStore".to_string()),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_style_server_on_a_held_data_dir_is_refused() {
    let s = in_proc(|_, _| {}).await;
    let data = s.dir.path().join("data");
    assert!(service::data_dir_in_use(&data));
    let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), &data);
    cfg.backend = BackendChoice::Cpu;
    let err = service::spawn(cfg).await.err().unwrap();
    assert!(
        err.to_string().contains("in use by another bounced"),
        "{err}"
    );
    drop(s.handle);
}

// ---------- real processes ----------

/// A `bounced` child on a given data dir; killed (SIGKILL) on drop.
struct Bounced {
    child: Child,
    url: String,
}

fn bounced_cmd(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("bounced"));
    cmd.args(["--data-dir"])
        .arg(data)
        .args(["--backend", "cpu"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Bounced {
    fn start(data: &Path, args: &[&str]) -> Bounced {
        Bounced::start_with(data, args, None)
    }

    /// With `max_file_bytes`, no file the server writes may grow past that size (the
    /// process's RLIMIT_FSIZE, SIGXFSZ ignored): every write past it fails as on a full
    /// disk.
    fn start_with(data: &Path, args: &[&str], max_file_bytes: Option<u64>) -> Bounced {
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut cmd = bounced_cmd(data, &[listen, args].concat());
        if let Some(bytes) = max_file_bytes {
            let inner = cmd;
            cmd = Command::new("bash");
            cmd.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
                    bytes / 1024
                ))
                .arg(inner.get_program())
                .args(inner.get_args())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on ") {
                    let addr = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(addr);
                }
                eprintln!("[bounced] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("bounced did not report its address");
        Bounced {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Bounced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `bounced` that must refuse to start: (exit code, stderr).
fn refused(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bounced_cmd(data, args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_bounced_on_the_same_data_dir_and_an_open_public_listen_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Bounced::start(&data, &[]);
    let (code, err) = refused(&data, &["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("bounced:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("in use by another bounced"), "{err}");
    assert!(!err.contains("listening"), "{err}");
    drop(first);

    let other = dir.path().join("other");
    let (code, err) = refused(&other, &["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("--tokens"),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");

    // A TLS key that is not one: the file is named before anything listens.
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "not a key\n").unwrap();
    let (code, err) = refused(
        &other,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("key.pem"), "{err}");
    assert!(!err.contains("listening"), "{err}");

    // A config file with a key it does not know: the file and the key, one line.
    let conf = dir.path().join("bounced.toml");
    std::fs::write(&conf, "[limits]\nmax_mix_secs = 10\n").unwrap();
    let (code, err) = refused(&other, &["--config", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bounced.toml") && err.contains("max_mix_secs"),
        "{err}"
    );

    // On purpose, it serves.
    let open = Bounced::start(&other, &["--listen", "0.0.0.0:0", "--insecure-open"]);
    drop(open);
}

/// Uploads a long stem and submits a long job on `url`; returns its id once running.
async fn start_long_job(url: &str, dir: &Path) -> String {
    let ch = channel(url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let h = upload(&mut store, None, &stem_bytes(dir, 9, 20.0)).await;
    let id = submit(&mut render, None, session(&h, 400, "long"))
        .await
        .unwrap();
    wait_state(&mut render, None, &id, "running", 60).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_crashes_the_server_twice_is_failed_and_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Bounced::start(&data, &[]);
    let id = start_long_job(&s.url, dir.path()).await;
    s.kill9();

    // First restart: queued once more and running again (attempt 2).
    let s = Bounced::start(&data, &[]);
    let mut render = RenderClient::new(channel(&s.url).await);
    let j = wait_state(&mut render, None, &id, "running", 60).await;
    assert_eq!(j.attempts, 2, "{j:?}");
    s.kill9();

    // Second restart: failed with its reason, never started a third time.
    let s = Bounced::start(&data, &[]);
    let mut render = RenderClient::new(channel(&s.url).await);
    let j = job_of(&mut render, None, &id).await.unwrap();
    assert_eq!(j.state, "failed", "{j:?}");
    assert_eq!(j.error, "the server stopped while rendering this job twice");
    assert_eq!(j.attempts, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let j = job_of(&mut render, None, &id).await.unwrap();
    assert_eq!((j.state.as_str(), j.attempts), ("failed", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_a_grace_period_says_not_serving_and_requeues_the_job() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = Bounced::start(&data, &["--shutdown-grace-s", "2"]);
    let id = start_long_job(&s.url, dir.path()).await;
    let ch = channel(&s.url).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let check = |svc: &str| tonic_health::pb::HealthCheckRequest {
        service: svc.to_string(),
    };
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status,
        ServingStatus::Serving as i32
    );
    // An upload that stalls: the shutdown cuts it at the deadline.
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadChunk>(4);
    tx.send(UploadChunk {
        header: Some(UploadHeader {
            blake3: hash(b"never finished"),
            size: 10_000_000,
            name: "slow.wav".into(),
        }),
        data: vec![0; 1000],
    })
    .await
    .unwrap();
    let mut slow = StemStoreClient::new(ch.clone());
    let upload_call = tokio::spawn(async move {
        slow.upload(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let t = Instant::now();
    s.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // During the grace period: still answering, but not serving; no new work.
    for svc in ["", "bounce.v1.Render"] {
        assert_eq!(
            health.check(check(svc)).await.unwrap().into_inner().status,
            ServingStatus::NotServing as i32,
            "{svc:?}"
        );
    }
    let mut render = RenderClient::new(ch);
    let err = render
        .submit(SubmitRequest {
            session: Some(session(&hash(b"x"), 1, "late")),
            backend: 0,
            document: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "bounced did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stopped before its grace: {:?}",
        t.elapsed()
    );
    let cut = tokio::time::timeout(Duration::from_secs(5), upload_call)
        .await
        .unwrap()
        .unwrap();
    assert!(cut.is_err(), "the stalled upload was not cut: {cut:?}");
    drop(tx);
    assert!(
        std::fs::read_dir(data.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "its temporary file is gone"
    );

    // The next start runs it again; the interrupted attempt did not count.
    let s = Bounced::start(&data, &[]);
    let mut render = RenderClient::new(channel(&s.url).await);
    let j = wait_state(&mut render, None, &id, "running", 60).await;
    assert_eq!(j.attempts, 1, "{j:?}");
    render
        .cancel(CancelRequest { job_id: id.clone() })
        .await
        .unwrap();
}

#[test]
fn bounce_delete_and_paged_jobs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Bounced::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<String> = rt.block_on(async {
        let ch = channel(&s.url).await;
        let mut store = StemStoreClient::new(ch.clone());
        let mut render = RenderClient::new(ch);
        let h = upload(&mut store, None, &stem_bytes(dir.path(), 5, 0.1)).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                submit(&mut render, None, session(&h, 1, &format!("s{i}")))
                    .await
                    .unwrap(),
            );
        }
        for id in &ids {
            wait_state(&mut render, None, id, "done", 60).await;
        }
        ids
    });
    let jobs = |extra: &[&str]| -> Vec<serde_json::Value> {
        let out = bounce_tests::bounce(&[&["jobs", "--json", "--server", &s.url], extra].concat());
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let listed: Vec<String> = jobs(&["--page-size", "2"])
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids, "all five over three pages");

    let out = bounce_tests::bounce(&["delete", &ids[0], "--server", &s.url]);
    assert!(out.status.success(), "{out:?}");
    assert!(!data.join("jobs").join(&ids[0]).exists());
    assert_eq!(jobs(&[]).len(), 4);
    let out = bounce_tests::bounce(&["delete", &ids[0], "--server", &s.url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such job"), "{err}");

    // A token over plain http to a host that is not loopback: a warning first.
    let out = bounce_tests::bounce(&["jobs", "--server", "http://0.0.0.0:9", "--token", "t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: sending the token over plain http to 0.0.0.0"),
        "{err}"
    );
    let out = bounce_tests::bounce(&["jobs", "--server", &s.url, "--token", "t"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_cannot_write_its_outputs_fails_on_disk_cleans_up_and_is_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 3 MiB per file: a 10 s mono float stem (1.9 MB) uploads; its 10 s stereo float mix
    // (3.8 MB) cannot be written, as on a disk that fills up during the render.
    let s = Bounced::start_with(&data, &[], Some(3 << 20));
    let ch = channel(&s.url).await;
    let mut store = StemStoreClient::new(ch.clone());
    let mut render = RenderClient::new(ch);
    let big = upload(&mut store, None, &stem_bytes(dir.path(), 21, 10.0)).await;
    let id = submit(&mut render, None, session(&big, 1, "full disk"))
        .await
        .unwrap();
    let j = wait_state(&mut render, None, &id, "failed", 120).await;
    assert!(j.error.contains("mix.wav"), "{j:?}");
    assert!(!j.error.contains("panicked"), "{j:?}");
    let out = data.join("jobs").join(&id).join("out");
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "partial outputs left in {}: {left:?}",
        out.display()
    );

    // The server still serves: a small job on the same server is done.
    let small = upload(&mut store, None, &stem_bytes(dir.path(), 22, 1.0)).await;
    let ok = submit(&mut render, None, session(&small, 1, "small"))
        .await
        .unwrap();
    wait_state(&mut render, None, &ok, "done", 120).await;
    s.kill9();

    // After a restart the failed job stays failed, attempted once.
    let s = Bounced::start(&data, &[]);
    let mut render = RenderClient::new(channel(&s.url).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let j = job_of(&mut render, None, &id).await.unwrap();
    assert_eq!((j.state.as_str(), j.attempts), ("failed", 1), "{j:?}");
}
