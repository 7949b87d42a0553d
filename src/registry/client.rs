//! The HTTP side of the OCI distribution protocol for one registry: the
//! `/v2/` ping, manifests, blobs, uploads and mounts, with authentication,
//! manual redirects (credentials never leave the registry's own origin) and
//! retries with backoff on 429, 5xx and dropped connections.

use super::auth::{Authenticator, Scope};
use super::credentials::Credential;
use super::error::{ErrorCodes, RegistryError, error_chain, tls_error};
use super::idle::{Activity, idle_timeout, unless_idle};
use super::upload_check::UploadCheck;
use crate::digest::sha256;
use crate::image::media::MANIFEST_ACCEPT;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use oci_spec::image::Digest;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;
/// Attempts per request before a transient failure is final.
const ATTEMPTS: u32 = 5;
/// Redirects followed per request.
const MAX_REDIRECTS: u32 = 10;
/// Read buffer when streaming a file body.
const FILE_CHUNK: usize = 1 << 20;

/// Where a registry's API lives: `docker.io` is served from
/// `registry-1.docker.io`; loopback hosts and those named insecure speak
/// plain HTTP, everything else HTTPS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    name: String,
    base: Url,
}

impl Endpoint {
    /// The endpoint of `registry` (`host[:port]` as written in references).
    pub fn new(registry: &str, insecure: &[String]) -> Result<Self, RegistryError> {
        let api_host = match registry {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        };
        let scheme = if is_plain_http(registry, insecure) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .ok()
            .filter(|u| u.host().is_some() && u.path() == "/")
            .ok_or_else(|| RegistryError::InvalidRegistry(registry.to_string()))?;
        Ok(Self {
            name: registry.to_string(),
            base,
        })
    }

    /// The registry name as the user wrote it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `scheme://host[:port]/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|_| RegistryError::InvalidRegistry(self.name.clone()))
    }
}

/// Whether `registry` is spoken to over plain HTTP: loopback addresses and
/// `localhost` (as Docker does), and registries named in `insecure`
/// (`host` or `host:port`).
pub fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|i| i == registry) {
        return true;
    }
    let host = host_part(registry);
    if insecure.iter().any(|i| i == host) {
        return true;
    }
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host` of `host:port`, `[::1]` of `[::1]:5000`.
fn host_part(registry: &str) -> &str {
    if let Some(end) = registry.find(']') {
        return &registry[..=end];
    }
    match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// A stream of bytes sent as a body once (see [`Body::Stream`]).
pub type OnceStream = Arc<Mutex<Option<BoxStream<'static, std::io::Result<Bytes>>>>>;

/// A request body that can be rebuilt for every attempt, but a stream.
#[derive(Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// Bytes in memory (manifests, small blobs).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, streamed; `progress` hears the
    /// absolute position in the file as bytes go out; `check` hashes them.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
        check: Option<Arc<UploadCheck>>,
    },
    /// Bytes as a stream yields them (a blob being made), of a length not
    /// known ahead: sent once; an attempt after the first (a retry, a
    /// second answer to an auth challenge) fails.
    Stream(OnceStream),
}

impl Body {
    /// The store's error for a file body found damaged while it was sent.
    fn corrupt(&self) -> Option<crate::store::StoreError> {
        match self {
            Body::File {
                check: Some(check), ..
            } => check.corrupt(),
            _ => None,
        }
    }

    /// Adds the body to `rb`; bytes of a file body going out count as
    /// `activity`.
    async fn attach(
        &self,
        rb: reqwest::RequestBuilder,
        subject: &str,
        activity: &Activity,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        Ok(match self {
            Body::Empty => rb.header(CONTENT_LENGTH, 0),
            Body::Bytes(b) => rb.body(b.clone()),
            Body::Stream(stream) => {
                let taken = stream.lock().ok().and_then(|mut s| s.take());
                let Some(stream) = taken else {
                    return Err(RegistryError::Protocol {
                        subject: subject.to_string(),
                        reason: "a blob streamed as it is made cannot be sent twice".to_owned(),
                    });
                };
                let activity = activity.clone();
                rb.body(reqwest::Body::wrap_stream(stream.inspect(move |_| {
                    activity.touch();
                })))
            }
            Body::File {
                path,
                offset,
                len,
                progress,
                check,
            } => {
                let io_err = |source| RegistryError::Io {
                    subject: subject.to_string(),
                    context: format!("reading {}", path.display()),
                    source,
                };
                let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
                file.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(io_err)?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*len), FILE_CHUNK);
                let (progress, check) = (progress.clone(), check.clone());
                let activity = activity.clone();
                let mut position = *offset;
                let stream = stream.map(move |chunk| {
                    activity.touch();
                    let chunk = chunk?;
                    if let Some(check) = &check {
                        check.feed(position, &chunk)?;
                    }
                    position += chunk.len() as u64;
                    if let Some(p) = &progress {
                        p(position);
                    }
                    Ok::<_, std::io::Error>(chunk)
                });
                rb.header(CONTENT_LENGTH, *len)
                    .body(reqwest::Body::wrap_stream(stream))
            }
        })
    }
}

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// From the body's `mediaType`, else the `Content-Type` header.
    pub media_type: String,
    /// The exact bytes (their digest is the manifest's identity).
    pub bytes: Bytes,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// What a mount attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob from the other repository.
    Mounted,
    /// It did not; an upload session was opened at this URL instead.
    Upload(Url),
}

/// A client for one registry with its credentials; cheap to share (`Arc`)
/// between parallel blob transfers.
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// Whether the registry asked for a client certificate we lack.
    cert_requests: super::tls::CertRequests,
    auth: Authenticator,
    idle: Duration,
}

struct Req<'a> {
    method: Method,
    url: Url,
    scope: &'a Scope,
    headers: HeaderMap,
    body: Body,
    subject: &'a str,
    /// What the request does, for errors (`fetching blob sha256:…`).
    phase: String,
}

impl<'a> Req<'a> {
    /// A request with no headers of its own and no body.
    fn bare(method: Method, url: Url, scope: &'a Scope, subject: &'a str, phase: String) -> Self {
        Self {
            method,
            url,
            scope,
            headers: HeaderMap::new(),
            body: Body::Empty,
            subject,
            phase,
        }
    }
}

/// A reply body read chunk by chunk, given up when the registry sends
/// nothing for the idle timeout.
pub struct BodyReader<'a> {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    client: &'a Client,
    subject: &'a str,
    phase: String,
}

impl BodyReader<'_> {
    /// The next chunk, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, RegistryError>> {
        let registry = self.client.endpoint.name.clone();
        match tokio::time::timeout(self.client.idle, self.stream.next()).await {
            Err(_) => Some(Err(RegistryError::Stalled {
                subject: self.subject.to_string(),
                registry,
                phase: self.phase.clone(),
                idle: self.client.idle,
            })),
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some(Ok(chunk)),
            Ok(Some(Err(e))) => Some(Err(RegistryError::Unreachable {
                subject: self.subject.to_string(),
                registry,
                reason: format!("{} broke off: {}", self.phase, error_chain(&e)),
            })),
        }
    }
}

impl Client {
    /// A client for `registry` (`host[:port]`), with optional credentials;
    /// `insecure` lists registries to reach over plain HTTP.
    pub fn new(
        registry: &str,
        credential: Option<Credential>,
        insecure: &[String],
    ) -> Result<Self, RegistryError> {
        static PROVIDER: Once = Once::new();
        PROVIDER.call_once(|| {
            // Another part of the process may have installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let endpoint = Endpoint::new(registry, insecure)?;
        let (tls, cert_requests) =
            super::tls::client_config(registry).map_err(|source| RegistryError::Tls {
                registry: registry.to_string(),
                source,
            })?;
        if endpoint.base.scheme() == "https" {
            // Now, so that the notice about them comes before the requests.
            super::tls::load_roots();
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("builder/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                subject: registry.to_string(),
                registry: registry.to_string(),
                reason: format!("cannot set up HTTP: {}", error_chain(&e)),
            })?;
        Ok(Self {
            http,
            endpoint,
            cert_requests,
            auth: Authenticator::new(registry, credential),
            idle: idle_timeout()?,
        })
    }

    /// The registry this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Reads the body of `resp` whole, refusing more than `limit` bytes.
    async fn read_limited(
        &self,
        resp: Response,
        limit: usize,
        subject: &str,
        phase: String,
    ) -> Result<Bytes, RegistryError> {
        let too_large = || RegistryError::Protocol {
            subject: subject.to_string(),
            reason: format!("reply larger than {limit} bytes"),
        };
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(too_large());
        }
        let mut body = self.body(resp, subject, phase);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.into())
    }

    /// Reads the body of `resp` (a reply to a request that was `phase`)
    /// chunk by chunk, under the idle timeout.
    pub fn body<'a>(&'a self, resp: Response, subject: &'a str, phase: String) -> BodyReader<'a> {
        BodyReader {
            stream: resp.bytes_stream().boxed(),
            client: self,
            subject,
            phase,
        }
    }

    /// The error for a TLS handshake with `url` that `problem` ended.
    fn certificate_error(
        &self,
        url: &Url,
        subject: &str,
        problem: &rustls::Error,
    ) -> RegistryError {
        let registry = url_authority(url);
        let dirs = self.certs_d_paths("ca.crt");
        RegistryError::Certificate {
            subject: subject.to_string(),
            problem: super::tls::describe(problem),
            help: format!(
                "to trust a private CA for this registry, put its certificate (PEM) in {dirs}, \
                 or name a bundle with SSL_CERT_FILE (which replaces the system's CAs)"
            ),
            registry,
        }
    }

    /// `file` in each `certs.d` directory of this registry, `A or B`.
    fn certs_d_paths(&self, file: &str) -> String {
        super::tls::certs_d_dirs()
            .iter()
            .map(|d| d.join(&self.endpoint.name).join(file).display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// `GET /v2/`: checks the registry answers and that our credentials (if
    /// any) are accepted.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let subject = self.endpoint.name.clone();
        self.send_expecting(
            Req::bare(
                Method::GET,
                self.endpoint.url("v2/")?,
                &Scope::registry(),
                &subject,
                "checking the API (GET /v2/)".to_owned(),
            ),
            |s| s.is_success(),
        )
        .await?;
        Ok(())
    }

    /// Fetches the manifest or index `reference` (a tag or a digest) of
    /// `repository`; a digest reference is verified against the bytes.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        subject: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let resp = self
            .send_expecting(
                Req {
                    headers,
                    ..Req::bare(
                        Method::GET,
                        self.endpoint
                            .url(&format!("v2/{repository}/manifests/{reference}"))?,
                        &Scope::pull(repository),
                        subject,
                        format!("resolving manifest {reference}"),
                    )
                },
                |s| s == StatusCode::OK,
            )
            .await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let phase = format!("resolving manifest {reference}");
        let bytes = self
            .read_limited(resp, MAX_MANIFEST, subject, phase)
            .await?;
        let digest = sha256(&bytes);
        if reference.contains(':') && digest.to_string() != reference {
            let expected = reference
                .parse()
                .map_err(|_| RegistryError::InvalidManifest {
                    subject: subject.to_string(),
                    reason: format!("{reference:?} is not a digest"),
                })?;
            return Err(RegistryError::DigestMismatch {
                subject: subject.to_string(),
                expected,
                actual: digest,
            });
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
        }
        let media_type = serde_json::from_slice::<Probe>(&bytes)
            .ok()
            .and_then(|p| p.media_type)
            .or(content_type)
            .ok_or_else(|| RegistryError::InvalidManifest {
                subject: subject.to_string(),
                reason: "no media type in the body or the Content-Type".into(),
            })?;
        Ok(FetchedManifest {
            media_type,
            bytes,
            digest,
        })
    }

    /// Stores a manifest under `reference` (tag or digest); returns the
    /// digest the registry computed.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        subject: &str,
    ) -> Result<(), RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::InvalidManifest {
                subject: subject.to_string(),
                reason: format!("media type {media_type:?} cannot be sent"),
            })?,
        );
        let req = Req {
            method: Method::PUT,
            url: self
                .endpoint
                .url(&format!("v2/{repository}/manifests/{reference}"))?,
            scope: &Scope::push(repository),
            headers,
            body: Body::Bytes(bytes),
            subject,
            phase: format!("pushing manifest {reference}"),
        };
        self.send_expecting(req, |s| s.is_success()).await?;
        Ok(())
    }

    /// Whether the registry has blob `digest` in `repository` (HEAD).
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
        scope: &Scope,
        subject: &str,
    ) -> Result<bool, RegistryError> {
        let resp = self
            .send(Req {
                method: Method::HEAD,
                url: self
                    .endpoint
                    .url(&format!("v2/{repository}/blobs/{digest}"))?,
                scope,
                headers: HeaderMap::new(),
                body: Body::Empty,
                subject,
                phase: format!("checking for blob {digest}"),
            })
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, subject).await),
        }
    }

    /// Starts downloading blob `digest`; the caller streams and verifies the
    /// body. Redirects (to a CDN) are followed without our credentials.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        subject: &str,
    ) -> Result<Response, RegistryError> {
        self.send_expecting(
            Req::bare(
                Method::GET,
                self.endpoint
                    .url(&format!("v2/{repository}/blobs/{digest}"))?,
                &Scope::pull(repository),
                subject,
                format!("fetching blob {digest}"),
            ),
            |s| s == StatusCode::OK,
        )
        .await
    }

    /// Downloads a small blob (a config) into memory, verifying its digest.
    pub async fn get_blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        subject: &str,
    ) -> Result<Bytes, RegistryError> {
        let resp = self.get_blob(repository, digest, subject).await?;
        let phase = format!("fetching blob {digest}");
        let bytes = self
            .read_limited(resp, MAX_MANIFEST * 8, subject, phase)
            .await?;
        let actual = sha256(&bytes);
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                subject: subject.to_string(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Asks the registry to link `digest` from repository `from` into
    /// `repository` (cross-repository mount); 201 means done, 202 means it
    /// opened an ordinary upload instead.
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
        subject: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let mut url = self
            .endpoint
            .url(&format!("v2/{repository}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_ref())
            .append_pair("from", from);
        let resp = self
            .send(Req::bare(
                Method::POST,
                url,
                &Scope::mount(repository, from),
                subject,
                format!("mounting blob {digest} from {from}"),
            ))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::Upload(self.location(&resp, subject)?)),
            _ => Err(self.status_error(resp, subject).await),
        }
    }

    /// Opens an upload session in `repository`; returns its URL.
    pub async fn start_upload(
        &self,
        repository: &str,
        subject: &str,
    ) -> Result<Url, RegistryError> {
        let resp = self
            .send_expecting(
                Req::bare(
                    Method::POST,
                    self.endpoint
                        .url(&format!("v2/{repository}/blobs/uploads/"))?,
                    &Scope::push(repository),
                    subject,
                    "starting a blob upload".to_owned(),
                ),
                |s| s == StatusCode::ACCEPTED,
            )
            .await?;
        self.location(&resp, subject)
    }

    /// Sends bytes `start..start+len` of an upload (`PATCH` with
    /// `Content-Range`); returns the session URL for the next request.
    pub async fn upload_chunk(
        &self,
        repository: &str,
        session: &Url,
        start: u64,
        body: Body,
        len: u64,
        subject: &str,
    ) -> Result<Url, RegistryError> {
        let mut headers = octet_stream();
        let end = (start + len).saturating_sub(1);
        headers.insert(
            "Content-Range",
            HeaderValue::from_str(&format!("{start}-{end}"))
                .expect("two integers and a dash are a valid header value"),
        );
        let req = Req {
            method: Method::PATCH,
            url: session.clone(),
            scope: &Scope::push(repository),
            headers,
            body,
            subject,
            phase: format!("pushing blob bytes {start}-{end}"),
        };
        let resp = self
            .send_expecting(req, |s| s == StatusCode::ACCEPTED)
            .await?;
        self.location(&resp, subject)
    }

    /// Sends the bytes of an upload as one stream of unannounced length
    /// (`PATCH` without `Content-Range`, docker's stream upload); returns
    /// the session URL for the closing `PUT`.
    pub async fn upload_stream(
        &self,
        repository: &str,
        session: &Url,
        body: Body,
        subject: &str,
    ) -> Result<Url, RegistryError> {
        let req = Req {
            method: Method::PATCH,
            url: session.clone(),
            scope: &Scope::push(repository),
            headers: octet_stream(),
            body,
            subject,
            phase: "pushing blob bytes as they are made".to_owned(),
        };
        let resp = self
            .send_expecting(req, |s| s == StatusCode::ACCEPTED)
            .await?;
        self.location(&resp, subject)
    }

    /// Closes an upload session with `PUT ?digest=`, sending `body` (all of
    /// the blob for a monolithic upload, nothing after chunks).
    pub async fn finish_upload(
        &self,
        repository: &str,
        session: &Url,
        digest: &Digest,
        body: Body,
        subject: &str,
    ) -> Result<(), RegistryError> {
        let mut url = session.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let headers = octet_stream();
        let req = Req {
            method: Method::PUT,
            url,
            scope: &Scope::push(repository),
            headers,
            body,
            subject,
            phase: format!("pushing blob {digest}"),
        };
        self.send_expecting(req, |s| s == StatusCode::CREATED)
            .await?;
        Ok(())
    }

    /// The `Location` of a reply, resolved against the request URL (it may
    /// be relative or absolute).
    fn location(&self, resp: &Response, subject: &str) -> Result<Url, RegistryError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                subject: subject.to_string(),
                reason: format!("{} without a Location header", resp.status()),
            })?;
        resp.url().join(loc).map_err(|e| RegistryError::Protocol {
            subject: subject.to_string(),
            reason: format!("Location {loc:?} is not a URL: {e}"),
        })
    }

    /// Sends `req` and returns the reply when `expected` accepts its status,
    /// else the error for the reply.
    async fn send_expecting(
        &self,
        req: Req<'_>,
        expected: impl FnOnce(StatusCode) -> bool,
    ) -> Result<Response, RegistryError> {
        let subject = req.subject;
        let resp = self.send(req).await?;
        if expected(resp.status()) {
            Ok(resp)
        } else {
            Err(self.status_error(resp, subject).await)
        }
    }

    /// Sends a request: authenticates (answering one 401 challenge), follows
    /// redirects by hand, retries transient failures with backoff.
    async fn send(&self, req: Req<'_>) -> Result<Response, RegistryError> {
        let mut auth_header = self.auth.cached_header(req.scope);
        let mut answered_challenge = false;
        let mut attempt = 0;
        let mut redirects = 0;
        let mut url = req.url.clone();
        loop {
            let own_origin = same_origin(&url, &self.endpoint.base);
            let mut rb = self
                .http
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let (true, Some(h)) = (own_origin, &auth_header) {
                rb = rb.header(AUTHORIZATION, h.clone());
            }
            let activity = Activity::new();
            let rb = req.body.attach(rb, req.subject, &activity).await?;
            let Some(sent) = unless_idle(rb.send(), &activity, self.idle).await else {
                if attempt + 1 < ATTEMPTS {
                    backoff(attempt, None).await;
                    attempt += 1;
                    continue;
                }
                return Err(RegistryError::Stalled {
                    subject: req.subject.to_string(),
                    registry: url_authority(&url),
                    phase: req.phase.clone(),
                    idle: self.idle,
                });
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    if let Some(corrupt) = req.body.corrupt() {
                        // Sending again would send the same damaged bytes.
                        return Err(RegistryError::Store {
                            subject: req.subject.to_string(),
                            source: Box::new(corrupt),
                        });
                    }
                    if let Some(problem) = tls_error(&e) {
                        return Err(self.certificate_error(&url, req.subject, problem));
                    }
                    if self.cert_requests.unanswered() {
                        // TLS 1.3 servers refuse a missing client
                        // certificate after the handshake, by closing.
                        return Err(RegistryError::Unreachable {
                            subject: req.subject.to_string(),
                            registry: url_authority(&url),
                            reason: format!(
                                "{} (the registry asked for a client certificate and builder \
                                 has none for it: put NAME.cert and NAME.key in {})",
                                error_chain(&e),
                                self.certs_d_paths("")
                            ),
                        });
                    }
                    // Refused connections and DNS failures are not worth
                    // retrying; resets and timeouts are.
                    if !e.is_connect() && attempt + 1 < ATTEMPTS {
                        backoff(attempt, None).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(RegistryError::Unreachable {
                        subject: req.subject.to_string(),
                        registry: url_authority(&url),
                        reason: error_chain(&e),
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && own_origin && !answered_challenge {
                answered_challenge = true;
                let www = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let answer =
                    self.auth
                        .respond(&self.http, www.as_deref(), req.scope, auth_header.as_ref());
                let Some(answer) = unless_idle(answer, &Activity::new(), self.idle).await else {
                    return Err(RegistryError::Stalled {
                        subject: req.subject.to_string(),
                        registry: self.endpoint.name.clone(),
                        phase: format!("getting a token for {}", req.phase),
                        idle: self.idle,
                    });
                };
                if let Some(h) = answer? {
                    auth_header = Some(h);
                    continue;
                }
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok());
                if let Some(next) = next {
                    if redirects >= MAX_REDIRECTS {
                        return Err(RegistryError::Protocol {
                            subject: req.subject.to_string(),
                            reason: format!("more than {MAX_REDIRECTS} redirects"),
                        });
                    }
                    redirects += 1;
                    url = next;
                    continue;
                }
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt + 1 < ATTEMPTS
            {
                let retry_after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                backoff(attempt, retry_after).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// The error for an unexpected reply, with the registry's error codes
    /// and, for 401/403, how to log in.
    async fn status_error(&self, resp: Response, subject: &str) -> RegistryError {
        let status = resp.status();
        let body = self
            .read_limited(resp, 64 << 10, subject, "reading an error reply".to_owned())
            .await
            .unwrap_or_default();
        let help = match status {
            StatusCode::UNAUTHORIZED => Some(if self.auth.has_credential() {
                format!(
                    "the registry refused the credentials; log in again with `builder login {}`",
                    self.endpoint.name
                )
            } else {
                format!("run `builder login {}` first", self.endpoint.name)
            }),
            StatusCode::FORBIDDEN => Some(format!(
                "the account lacks access; check it with `builder login {}`",
                self.endpoint.name
            )),
            _ => None,
        };
        RegistryError::Status {
            subject: subject.to_string(),
            status,
            codes: ErrorCodes::parse(&body),
            help,
        }
    }
}

/// The headers of a request that sends blob bytes.
fn octet_stream() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers
}

/// Waits before retry `attempt`: 250 ms doubling up to 8 s, or what the
/// registry's `Retry-After` asks (capped at 30 s).
async fn backoff(attempt: u32, retry_after: Option<u64>) {
    let wait = match retry_after {
        Some(secs) => Duration::from_secs(secs.min(30)),
        None => Duration::from_millis(250u64 << attempt.min(5)),
    };
    tokio::time::sleep(wait).await;
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn url_authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_named_insecure_hosts_use_plain_http() {
        let none: Vec<String> = Vec::new();
        for r in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_plain_http(r, &none), "{r}");
        }
        for r in [
            "docker.io",
            "reg.example:5000",
            "10.0.0.1:5000",
            "localhost.example",
        ] {
            assert!(!is_plain_http(r, &none), "{r}");
        }
        let insecure = vec!["reg.example:5000".to_string(), "lan-reg".to_string()];
        assert!(is_plain_http("reg.example:5000", &insecure));
        assert!(!is_plain_http("reg.example:6000", &insecure));
        assert!(is_plain_http("lan-reg:443", &insecure));
    }

    #[test]
    fn docker_hub_maps_to_its_api_host() {
        let e = Endpoint::new("docker.io", &[]).unwrap();
        assert_eq!(e.base().as_str(), "https://registry-1.docker.io/");
        assert!(Endpoint::new("bad host/x", &[]).is_err());
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Url::parse("https://r.example/v2/").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://r.example:443/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://cdn.example/x").unwrap()
        ));
        assert!(!same_origin(&a, &Url::parse("http://r.example/x").unwrap()));
    }
}
