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
    data_dir: PathBuf,
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
                let data_dir = cache_dir();
                let mut cfg = ServerConfig::new(([127, 0, 0, 1], 0).into(), data_dir.clone());
                cfg.backend = match backend {
                    Backend::Auto => BackendChoice::Auto,
                    Backend::Gpu => BackendChoice::Gpu,
                    Backend::Cpu => BackendChoice::Cpu,
                };
                // One run, one job: old unfinished jobs in the cache are not ours to run.
                cfg.resume_jobs = false;
                let (addr, handle) = service::spawn(cfg)
                    .await
                    .map_err(|e| anyhow!("embedded server ({}): {e}", data_dir.display()))?;
                let url = format!("http://{addr}");
                let channel = connect(&url).await?;
                Ok(Conn {
                    channel,
                    token,
                    embedded: Some(Embedded { handle, data_dir }),
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
        if let Some(e) = self.embedded {
            drop(self.channel);
            e.handle
                .shutdown()
                .await
                .map_err(|e| anyhow!("embedded server: {e}"))?;
            if let Some(id) = forget_job
                && !id.is_empty()
                && !id.contains(['/', '\\', '.'])
            {
                let _ = std::fs::remove_dir_all(e.data_dir.join("jobs").join(id));
            }
        }
        Ok(())
    }
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
