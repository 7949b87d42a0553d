//! What can go wrong talking to a registry, each error naming the image or
//! registry it concerns and, for HTTP failures, the status and the
//! registry's own error codes.

use super::credentials::CredentialsError;
use oci_spec::image::Digest;
use reqwest::StatusCode;
use serde::Deserialize;
use std::fmt;

/// One entry of a registry's `{"errors": [...]}` body (distribution spec).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RegistryErrorCode {
    /// `MANIFEST_UNKNOWN`, `DENIED`, `UNAUTHORIZED` …
    #[serde(default)]
    pub code: String,
    /// The registry's human-readable message.
    #[serde(default)]
    pub message: String,
}

/// The error codes a registry sent, shown as `(CODE: message; …)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCodes(pub Vec<RegistryErrorCode>);

impl ErrorCodes {
    /// Reads the codes from an error body; anything unparsable yields none.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryErrorCode>,
        }
        Self(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }
}

impl fmt::Display for ErrorCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" (")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => write!(f, "{}: {}", e.code, e.message)?,
                (false, true) => f.write_str(&e.code)?,
                _ => f.write_str(&e.message)?,
            }
        }
        f.write_str(")")
    }
}

/// Errors of the registry client, pull and push.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// The registry answered with an unexpected HTTP status.
    #[error("{subject}: registry answered {status}{codes}")]
    Status {
        /// The image, blob or registry the request was about.
        subject: String,
        status: StatusCode,
        codes: ErrorCodes,
        /// For 401/403: how to log in.
        #[help]
        help: Option<String>,
    },
    /// No HTTP answer at all: refused, reset, DNS, TLS.
    #[error("{subject}: cannot reach registry {registry}: {reason}")]
    Unreachable {
        subject: String,
        registry: String,
        reason: String,
    },
    /// The TLS handshake refused the registry's certificate (or failed).
    #[error("{subject}: cannot reach registry {registry} over TLS: {problem}")]
    Certificate {
        subject: String,
        registry: String,
        /// What was wrong, in words ([`super::tls::describe`]).
        problem: String,
        /// Where a CA for this registry goes.
        #[help]
        help: String,
    },
    /// The registry's `certs.d` files cannot be used.
    #[error("registry {registry}: {source}")]
    Tls {
        registry: String,
        source: super::tls::TlsError,
    },
    /// The registry sent (or took) nothing for the idle timeout, on every
    /// attempt.
    #[error(
        "{subject}: registry {registry} sent nothing for {} while {phase}",
        humane(*idle)
    )]
    #[diagnostic(help(
        "the registry or the network to it stalled; try again later, or check the registry"
    ))]
    Stalled {
        subject: String,
        registry: String,
        /// What the request was doing (`fetching blob sha256:…`).
        phase: String,
        idle: std::time::Duration,
    },
    /// A bad value for the idle timeout's environment variable.
    #[error("{variable}={value:?} is not a number of seconds greater than 0")]
    InvalidIdleTimeout {
        variable: &'static str,
        value: String,
    },
    /// A blob whose bytes hash to something other than its digest.
    #[error("{subject}: blob {expected} from the registry has digest {actual}; nothing was stored")]
    DigestMismatch {
        subject: String,
        expected: Digest,
        actual: Digest,
    },
    /// A blob longer or shorter than its descriptor says.
    #[error(
        "{subject}: blob {digest} from the registry is {actual} bytes, its descriptor says {expected}; nothing was stored"
    )]
    SizeMismatch {
        subject: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// The registry's auth challenge or token server failed us.
    #[error("{registry}: authentication failed: {reason}")]
    #[diagnostic(help("check the credentials with `builder login {registry}`"))]
    Auth { registry: String, reason: String },
    /// A manifest or index we cannot read.
    #[error("{subject}: invalid manifest: {reason}")]
    InvalidManifest { subject: String, reason: String },
    /// An index without a manifest for the wanted platform.
    #[error("{subject}: no manifest for platform {platform} (the index has: {available})")]
    NoMatchingPlatform {
        subject: String,
        platform: String,
        available: String,
    },
    /// A stored index some of whose platforms were not pulled.
    #[error("{subject}: the stored index lists {platform}, which is not in the store")]
    #[diagnostic(help(
        "pull every platform first with `builder pull --all-platforms`, or push one platform's image"
    ))]
    IncompleteIndex { subject: String, platform: String },
    /// Credentials could not be read or written.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A local file (a blob being pushed, a store file) failed.
    #[error("{subject}: {context}: {source}")]
    Io {
        subject: String,
        context: String,
        source: std::io::Error,
    },
    /// The local store failed.
    #[error("{subject}: {source}")]
    Store {
        subject: String,
        source: Box<crate::store::StoreError>,
    },
    /// A registry name that cannot form a URL.
    #[error("invalid registry address {0:?}")]
    InvalidRegistry(String),
    /// The registry sent a reply that breaks the protocol.
    #[error("{subject}: unexpected registry reply: {reason}")]
    Protocol { subject: String, reason: String },
}

impl RegistryError {
    /// Whether retrying the same request may succeed (5xx, 429, resets).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            RegistryError::Unreachable { .. } | RegistryError::Stalled { .. } => true,
            _ => false,
        }
    }
}

/// The rustls error somewhere in `err`'s causes (hyper-rustls wraps it in
/// `io::Error`s, whose own `source` skips what they wrap).
pub(crate) fn tls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        if let Some(tls) = tls_error(inner) {
            return Some(tls);
        }
    }
    err.source().and_then(tls_error)
}

/// `60 s`, `1.5 s`: a timeout as people write it.
fn humane(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// The whole chain of an error's causes, `a: b: c`, deduplicated (reqwest
/// and hyper repeat themselves).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_names_subject_status_and_codes() {
        let e = RegistryError::Status {
            subject: "127.0.0.1:5000/app:latest".into(),
            status: StatusCode::NOT_FOUND,
            codes: ErrorCodes::parse(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"latest"}}]}"#,
            ),
            help: None,
        };
        assert_eq!(
            e.to_string(),
            "127.0.0.1:5000/app:latest: registry answered 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)"
        );
    }

    #[test]
    fn unparsable_error_bodies_add_nothing() {
        assert_eq!(ErrorCodes::parse(b"<html>").to_string(), "");
        assert_eq!(ErrorCodes::parse(b"").to_string(), "");
    }
}
