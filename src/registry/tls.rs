//! What registry clients trust over TLS: the system's CA certificates
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` replace them, as in OpenSSL), else the
//! Mozilla roots built into builder; plus a registry's own CAs and client
//! certificate from docker's `certs.d/HOST[:PORT]/` directories. The roots
//! are read on the first TLS handshake, so plain-HTTP registries need none.

use super::credentials::DockerConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A registry's certificate files that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file or directory under `certs.d` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `.crt`, `.cert` or `.key` file without a usable PEM item.
    #[error("{}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    /// A `NAME.key` without `NAME.cert`, or the other way round.
    #[error("{} has no {} beside it", have.display(), missing.display())]
    Unpaired { have: PathBuf, missing: PathBuf },
    /// rustls refused the client certificate and key.
    #[error("client certificate {}: {reason}", cert.display())]
    ClientAuth { cert: PathBuf, reason: String },
}

/// The `certs.d` directories read for a registry, in order:
/// `$DOCKER_CONFIG/certs.d` (default `~/.docker/certs.d`), then
/// `/etc/docker/certs.d`.
pub fn certs_d_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = DockerConfig::default_dir()
        .map(|dir| dir.join("certs.d"))
        .into_iter()
        .collect();
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    dirs
}

/// Whether a registry asked for a client certificate that builder did not
/// have (one without a certificate in `certs.d`); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CertRequests(Option<Arc<UnansweredRequest>>);

impl CertRequests {
    /// A server asked for a client certificate and got none.
    pub fn unanswered(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|r| r.asked.load(Ordering::Relaxed))
    }
}

/// The client-certificate resolver of a client without one: remembers
/// being asked.
#[derive(Debug, Default)]
struct UnansweredRequest {
    asked: AtomicBool,
}

impl rustls::client::ResolvesClientCert for UnansweredRequest {
    fn resolve(
        &self,
        _acceptable_issuers: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The rustls configuration for a client of `registry` (`host[:port]`):
/// the trusted roots plus the registry's `certs.d` CAs, and its client
/// certificate if one is there (else a record of requests for one).
pub fn client_config(registry: &str) -> Result<(rustls::ClientConfig, CertRequests), TlsError> {
    let own = RegistryCerts::load(registry, &certs_d_dirs())?;
    let builder = trusting(own.cas);
    let (mut config, requests) = match own.client {
        Some(client) => (
            builder
                .with_client_auth_cert(client.chain, client.key)
                .map_err(|e| TlsError::ClientAuth {
                    cert: client.path,
                    reason: e.to_string(),
                })?,
            CertRequests::default(),
        ),
        None => {
            let unanswered = Arc::new(UnansweredRequest::default());
            (
                builder.with_client_cert_resolver(unanswered.clone()),
                CertRequests(Some(unanswered)),
            )
        }
    };
    config.alpn_protocols = alpn();
    Ok((config, requests))
}

/// The rustls configuration for other downloads (`ADD <url>`): the
/// trusted roots, no client certificate.
pub fn download_config() -> rustls::ClientConfig {
    let mut config = trusting(Vec::new()).with_no_client_auth();
    config.alpn_protocols = alpn();
    config
}

/// A configuration checking servers against the roots and `extra` CAs.
fn trusting(
    extra: Vec<CertificateDer<'static>>,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Verifier {
        extra,
        provider: Arc::clone(&provider),
        inner: OnceLock::new(),
    });
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
}

/// What reqwest offers with its own TLS set-up and HTTP/2 on.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// Loads the trusted roots now (a client of an HTTPS registry does, so
/// that [`take_notice`] can tell about them before the first request).
pub fn load_roots() {
    roots();
}

/// What to tell the user about the trusted roots, once per process: that
/// the system has no CA certificates and the bundled ones are used.
/// `None` after the first call, and while no roots were loaded yet.
pub fn take_notice() -> Option<String> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let notice = ROOTS.get()?.notice.as_ref()?;
    (!TAKEN.swap(true, Ordering::Relaxed)).then(|| notice.clone())
}

/// A certificate problem in words, for a refused TLS handshake.
pub fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "its certificate is signed by a certificate authority builder does not trust \
             (UnknownIssuer)"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(problem) => {
            format!("its certificate is refused: {problem}")
        }
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// The CA roots every client starts from, and the notice about them.
struct Roots {
    store: RootCertStore,
    notice: Option<String>,
}

static ROOTS: OnceLock<Roots> = OnceLock::new();

fn roots() -> &'static Roots {
    ROOTS.get_or_init(|| Roots::from_system(rustls_native_certs::load_native_certs()))
}

impl Roots {
    /// The system's certificates as loaded, or the bundled Mozilla roots
    /// (with a notice) when none could be used.
    fn from_system(loaded: rustls_native_certs::CertificateResult) -> Self {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(loaded.certs);
        if !store.is_empty() {
            return Self {
                store,
                notice: None,
            };
        }
        store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        let looked = match (
            std::env::var_os("SSL_CERT_FILE"),
            std::env::var_os("SSL_CERT_DIR"),
        ) {
            (None, None) => "in /etc/ssl/certs and the other usual places".to_owned(),
            (file, dir) => {
                let named = [("SSL_CERT_FILE", file), ("SSL_CERT_DIR", dir)]
                    .into_iter()
                    .filter_map(|(name, value)| {
                        value.map(|v| format!("{name}={}", Path::new(&v).display()))
                    })
                    .collect::<Vec<_>>();
                format!("in {}", named.join(" and "))
            }
        };
        let why = loaded
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let notice = format!(
            "no CA certificates found {looked}{why}: registries are checked against the {} \
             Mozilla root certificates built into builder instead (install ca-certificates, \
             or set SSL_CERT_FILE, to choose them)",
            store.len()
        );
        Self {
            store,
            notice: Some(notice),
        }
    }
}

/// A client certificate and its key from `certs.d`.
struct ClientCert {
    path: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What a registry's `certs.d/HOST[:PORT]/` directories hold: `*.crt`
/// CAs trusted besides the roots, and `NAME.cert` with `NAME.key` (the
/// first pair by name) as the client certificate, as docker reads them.
#[derive(Default)]
struct RegistryCerts {
    cas: Vec<CertificateDer<'static>>,
    client: Option<ClientCert>,
}

impl RegistryCerts {
    fn load(registry: &str, dirs: &[PathBuf]) -> Result<Self, TlsError> {
        let mut certs = Self::default();
        for dir in dirs {
            let dir = dir.join(registry);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(TlsError::Read { path: dir, source }),
            };
            let mut files = entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| TlsError::Read {
                    path: dir.clone(),
                    source,
                })?;
            files.sort();
            for path in &files {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("crt") => certs.cas.extend(read_certs(path)?),
                    Some("cert") => {
                        let key = path.with_extension("key");
                        if !files.contains(&key) {
                            return Err(TlsError::Unpaired {
                                have: path.clone(),
                                missing: key,
                            });
                        }
                        if certs.client.is_none() {
                            certs.client = Some(ClientCert {
                                chain: read_certs(path)?,
                                key: read_key(&key)?,
                                path: path.clone(),
                            });
                        }
                    }
                    Some("key") if !files.contains(&path.with_extension("cert")) => {
                        return Err(TlsError::Unpaired {
                            have: path.clone(),
                            missing: path.with_extension("cert"),
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(certs)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&read_file(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read_file(path)?).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: format!("no usable PEM private key in it ({e})"),
    })
}

/// WebPKI verification against the roots and a registry's own CAs, built
/// on the first handshake.
#[derive(Debug)]
struct Verifier {
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<Arc<WebPkiServerVerifier>, rustls::Error>>,
}

impl Verifier {
    fn inner(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let mut store = roots().store.clone();
                store.add_parsable_certificates(self.extra.iter().cloned());
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(store),
                    Arc::clone(&self.provider),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_system_store_falls_back_to_the_bundled_roots_with_a_notice() {
        let roots = Roots::from_system(rustls_native_certs::CertificateResult::default());
        assert_eq!(
            roots.store.len(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        let notice = roots.notice.expect("a notice");
        assert!(notice.starts_with("no CA certificates found"), "{notice}");
        assert!(
            notice.contains("Mozilla root certificates built into builder"),
            "{notice}"
        );
    }

    #[test]
    fn a_key_without_its_certificate_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg.example:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("client.key"), "").unwrap();
        let err = RegistryCerts::load("reg.example:5000", &[dir.path().to_owned()])
            .err()
            .expect("an error");
        assert_eq!(
            err.to_string(),
            format!(
                "{} has no {} beside it",
                host.join("client.key").display(),
                host.join("client.cert").display()
            )
        );
    }

    #[test]
    fn a_crt_without_a_certificate_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg.example");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "not pem").unwrap();
        let err = RegistryCerts::load("reg.example", &[dir.path().to_owned()])
            .err()
            .expect("an error");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no PEM certificate in it",
                host.join("ca.crt").display()
            )
        );
    }
}
