//! Talking to a server: a remote one by URL, or an embedded one started on loopback
//! for this one command. Both are reached over gRPC the same way.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use bounce_proto::v1::render_client::RenderClient;
use bounce_proto::v1::stem_store_client::StemStoreClient;
use bounce_server::engine::BackendChoice;
use bounce_server::service::{self, ServerConfig, ServerHandle};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::cli::Backend;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct TokenInterceptor(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel with the token attached.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

/// An open connection (and, in embedded mode, the server behind it).
pub struct Conn {
    channel: Channel,
    token: TokenInterceptor,
    embedded: Option<Embedded>,
    /// What the user called the server, for messages.
    pub url: String,
}

struct Embedded {
    handle: ServerHandle,
    /// A private folder used because the shared cache was held by another run:
    /// removed when this run ends.
    scratch: Option<PathBuf>,
}

impl Conn {
    /// Connects to `server`, or starts an embedded server when it is `None`.
    pub async fn open(server: Option<&str>, token: Option<&str>, backend: Backend) -> Result<Conn> {
        let token = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| anyhow!("--token: not a valid header value"))?,
            ),
            None => None,
        };
        if token.is_some()
            && let Some(url) = server
            && let Some(host) = plain_remote_host(url)
        {
            eprintln!(
                "warning: sending the token over plain http to {host}: anyone on the network path can read it; use https://"
            );
        }
        let token = TokenInterceptor(token);
        match server {
            Some(url) => {
                let channel = connect(url).await?;
                Ok(Conn {
                    channel,
                    token,
                    embedded: None,
                    url: url.to_string(),
                })
            }
            None => {
                let shared = cache_dir();
                // One server per data dir: when another embedded run holds the
                // cache, this one uses a private folder of its own.
                let scratch = service::data_dir_in_use(&shared).then(|| {
                    shared.join(format!("run-{}-{:x}", std::process::id(), rand_suffix()))
                });
                let data_dir = scratch.clone().unwrap_or(shared);
                let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), data_dir.clone());
                cfg.backend = match backend {
                    Backend::Auto => BackendChoice::Auto,
                    Backend::Gpu => BackendChoice::Gpu,
                    Backend::Cpu => BackendChoice::Cpu,
                };
                // One run, one job: old unfinished jobs in the cache are not ours to run.
                cfg.resume_jobs = false;
                // Nothing runs when it stops (the one job was delivered).
                cfg.shutdown_grace = std::time::Duration::from_secs(1);
                let (addr, handle) = service::spawn(cfg)
                    .await
                    .map_err(|e| anyhow!("embedded server ({}): {e}", data_dir.display()))?;
                let url = format!("http://{addr}");
                let channel = connect(&url).await?;
                Ok(Conn {
                    channel,
                    token,
                    embedded: Some(Embedded { handle, scratch }),
                    url,
                })
            }
        }
    }

    /// The stem store.
    pub fn store(&self) -> StemStoreClient<AuthChannel> {
        StemStoreClient::with_interceptor(self.channel.clone(), self.token.clone())
    }

    /// The render service.
    pub fn render(&self) -> RenderClient<AuthChannel> {
        RenderClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(8 << 20)
    }

    /// True for the embedded server.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops an embedded server; `forget_job` removes that job's folder from the
    /// cache (its files were delivered).
    pub async fn close(self, forget_job: Option<&str>) -> Result<()> {
        if self.embedded.is_some()
            && let Some(id) = forget_job.filter(|id| !id.is_empty())
        {
            // Through the server, so its index forgets the job with its files.
            let _ = self
                .render()
                .delete(bounce_proto::v1::DeleteRequest {
                    job_id: id.to_string(),
                })
                .await;
        }
        if let Some(e) = self.embedded {
            drop(self.channel);
            e.handle
                .shutdown()
                .await
                .map_err(|e| anyhow!("embedded server: {e}"))?;
            if let Some(dir) = e.scratch {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }
}

/// The host of an `http://` URL when it is not a loopback address (None for
/// https, loopback, or what is not a URL).
pub fn plain_remote_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then(|| host.to_string())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `$XDG_CACHE_HOME/bounce`, else `~/.cache/bounce`, else a folder in the temp dir.
fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("bounce");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache").join("bounce");
    }
    std::env::temp_dir().join("bounce-cache")
}

async fn connect(url: &str) -> Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_string()).map_err(|_| {
        anyhow!("--server {url:?}: not a URL (expected http://HOST:PORT or https://HOST:PORT)")
    })?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        // A private CA (a studio's own certificate), as a PEM file.
        if let Some(ca) = std::env::var_os("BOUNCE_CA_CERT") {
            let pem = std::fs::read(&ca)
                .with_context(|| format!("BOUNCE_CA_CERT {}", PathBuf::from(&ca).display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| anyhow!("--server {url}: TLS: {}", chain(&e)))?;
    } else if !url.starts_with("http://") {
        bail!("--server {url:?}: expected http://HOST:PORT or https://HOST:PORT");
    }
    endpoint
        .connect()
        .await
        .map_err(|e| anyhow!("cannot connect to {url}: {}", chain(&e)))
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

/// A gRPC status as the user should read it: the server's message, verbatim.
pub fn status_error(status: Status) -> anyhow::Error {
    let msg = status.message().trim();
    if msg.is_empty() {
        anyhow!("{}", status.code().description())
    } else {
        anyhow!("{msg}")
    }
}
