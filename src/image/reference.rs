//! Image references in Docker's grammar (`[host[:port]/]path[:tag][@digest]`),
//! normalized the way `docker pull` does: `busybox` means
//! `docker.io/library/busybox:latest`.
//!
//! The grammar follows distribution/reference:
//! - the first `/`-separated component is a registry host only when it
//!   contains `.` or `:`, is `localhost`, or has an uppercase letter;
//!   otherwise the name is on Docker Hub (`docker.io`), and a one-component
//!   Hub name gets the `library/` namespace;
//! - path components are lowercase alphanumerics joined by `.`, `_`, `__` or
//!   runs of `-`;
//! - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! - a digest names a registered algorithm with the right number of
//!   lowercase hex digits;
//! - the full name (`host/path`) is at most 255 characters.
//!
//! One deliberate difference: upstream silently treats a first component that
//! looks like a host but is not a valid one (`foo_bar.com/x`) as a path
//! component; we reject it, since nothing can be pulled from such a name.

use oci_spec::image::{Digest, DigestAlgorithm};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The registry Docker Hub references are written with.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API is served from.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library/";
const NAME_MAX_LEN: usize = 255;
const TAG_MAX_LEN: usize = 128;
const DIGEST_HEX_MIN_LEN: usize = 32;

/// Why a reference string was refused, with the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {kind}")]
pub struct ReferenceError {
    /// The reference as the user wrote it.
    pub input: String,
    /// What is wrong with it.
    pub kind: ReferenceErrorKind,
}

/// The specific rule a reference breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceErrorKind {
    /// Nothing was written.
    #[error("repository name must have at least one component")]
    Empty,
    /// A URL was given where a reference was expected.
    #[error("a reference has no URL scheme: write host/path[:tag], without \"scheme://\"")]
    HasScheme,
    /// 64 hex digits alone are an image ID, which Docker refuses as a name.
    #[error("a 64-character hexadecimal string is an image ID, not a repository name")]
    LooksLikeImageId,
    /// The full name is longer than registries accept.
    #[error("repository name is {len} characters long, more than the 255 allowed")]
    NameTooLong {
        /// Length of `host/path`.
        len: usize,
    },
    /// Repository paths are lowercase only.
    #[error("repository name {path:?} must be lowercase")]
    Uppercase {
        /// The offending path.
        path: String,
    },
    /// A path component is empty (`a//b`, `a/`) or breaks the component grammar.
    #[error(
        "repository path component {component:?} is invalid (lowercase letters and digits, separated by '.', '_', '__' or '-')"
    )]
    InvalidPathComponent {
        /// The offending component.
        component: String,
    },
    /// The registry host is not a domain name, IPv4 or bracketed IPv6 address.
    #[error("registry host {host:?} is invalid")]
    InvalidHost {
        /// The offending host.
        host: String,
    },
    /// The port after the registry host is not a number.
    #[error("registry port {port:?} is invalid (digits only)")]
    InvalidPort {
        /// The offending port.
        port: String,
    },
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "tag {tag:?} is invalid (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
    )]
    InvalidTag {
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed.
    #[error("digest {digest:?} is invalid: {reason}")]
    InvalidDigest {
        /// The offending digest.
        digest: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The digest algorithm is not one we can verify.
    #[error("digest algorithm {algorithm:?} is not supported (sha256, sha384, sha512)")]
    UnsupportedDigestAlgorithm {
        /// The offending algorithm.
        algorithm: String,
    },
}

/// A normalized image reference: a registry, a repository path, and a tag,
/// a digest, or both (never neither: a bare name gets the `latest` tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    pin: Pin,
}

/// What a reference names within its repository: never nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pin {
    Tag(String),
    Digest(Digest),
    TagAndDigest(String, Digest),
}

impl Reference {
    /// Parses and normalizes a reference as `docker pull` would.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        parse(input).map_err(|kind| ReferenceError {
            input: input.to_owned(),
            kind,
        })
    }

    /// The registry host (with port) as written, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to connect to for the registry API: Docker Hub's API lives
    /// at `registry-1.docker.io`, every other registry at its own name.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference names one (always, unless only a digest was given).
    pub fn tag(&self) -> Option<&str> {
        match &self.pin {
            Pin::Tag(tag) | Pin::TagAndDigest(tag, _) => Some(tag),
            Pin::Digest(_) => None,
        }
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        match &self.pin {
            Pin::Digest(digest) | Pin::TagAndDigest(_, digest) => Some(digest),
            Pin::Tag(_) => None,
        }
    }

    /// The full repository name, `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository name as Docker prints it: without `docker.io/`, and
    /// without `library/` for official images.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        match self.repository.strip_prefix(OFFICIAL_NAMESPACE) {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => self.repository.clone(),
        }
    }

    /// The whole reference as Docker prints it (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.write_suffix(&mut out);
        out
    }

    /// The same repository with `tag` (replacing any tag and dropping any digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        check_tag(tag).map_err(|kind| ReferenceError {
            input: format!("{}:{tag}", self.name()),
            kind,
        })?;
        Ok(Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            pin: Pin::Tag(tag.to_owned()),
        })
    }

    /// The same repository pinned to `digest`, without a tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            pin: Pin::Digest(digest),
        }
    }

    fn write_suffix(&self, out: &mut String) {
        if let Some(tag) = self.tag() {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = self.digest() {
            out.push('@');
            out.push_str(digest.as_ref());
        }
    }
}

impl fmt::Display for Reference {
    /// The fully normalized form, `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.write_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceErrorKind> {
    if input.is_empty() {
        return Err(ReferenceErrorKind::Empty);
    }
    if input.len() == 64
        && input
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ReferenceErrorKind::LooksLikeImageId);
    }
    if input.contains("://") {
        return Err(ReferenceErrorKind::HasScheme);
    }

    let (name_and_tag, digest) = match input.split_once('@') {
        Some((name, digest)) => (name, Some(parse_digest(digest)?)),
        None => (input, None),
    };

    // A tag separator is a ':' after the last '/': earlier ones belong to a port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let colon = last_slash + i;
            let tag = &name_and_tag[colon + 1..];
            check_tag(tag)?;
            (&name_and_tag[..colon], Some(tag.to_owned()))
        }
        None => (name_and_tag, None),
    };

    let (registry, repository) = split_registry(name);
    check_host(&registry)?;
    check_path(&repository)?;
    let len = registry.len() + 1 + repository.len();
    if len > NAME_MAX_LEN {
        return Err(ReferenceErrorKind::NameTooLong { len });
    }

    let pin = match (tag, digest) {
        (Some(tag), Some(digest)) => Pin::TagAndDigest(tag, digest),
        (Some(tag), None) => Pin::Tag(tag),
        (None, Some(digest)) => Pin::Digest(digest),
        (None, None) => Pin::Tag(DEFAULT_TAG.to_owned()),
    };
    Ok(Reference {
        registry,
        repository,
        pin,
    })
}

/// Splits `name` into registry and repository path, applying Docker Hub's
/// defaults (`docker.io`, `library/`) and its legacy host name.
fn split_registry(name: &str) -> (String, String) {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first, rest),
        _ => (DOCKER_HUB, name),
    };
    let registry = if registry == LEGACY_DOCKER_HUB {
        DOCKER_HUB
    } else {
        registry
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}{path}")
    } else {
        path.to_owned()
    };
    (registry.to_owned(), path)
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// `host[:port]` where host is a domain name or a bracketed IPv6 address.
fn check_host(registry: &str) -> Result<(), ReferenceErrorKind> {
    let invalid_host = || ReferenceErrorKind::InvalidHost {
        host: registry.to_owned(),
    };
    let port = if let Some(rest) = registry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(invalid_host)?;
        let ip_ok = !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        if !ip_ok {
            return Err(invalid_host());
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(invalid_host)?),
        }
    } else {
        let (host, port) = match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        if !host.split('.').all(is_domain_component) {
            return Err(invalid_host());
        }
        port
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceErrorKind::InvalidPort {
                port: port.to_owned(),
            });
        }
    }
    Ok(())
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

fn check_path(path: &str) -> Result<(), ReferenceErrorKind> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceErrorKind::Uppercase {
            path: path.to_owned(),
        });
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceErrorKind::InvalidPathComponent {
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

/// Lowercase alphanumeric runs joined by one separator each: `.`, `_`, `__`,
/// or any number of `-`.
fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run = bytes[i..].iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        i += run;
        let Some(sep) = bytes.get(i) else {
            return true;
        };
        let sep_len = match sep {
            b'.' => 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => bytes[i..].iter().take_while(|b| **b == b'-').count(),
            _ => return false,
        };
        i += sep_len;
    }
}

fn check_tag(tag: &str) -> Result<(), ReferenceErrorKind> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let ok = match tag.as_bytes().split_first() {
        Some((first, rest)) => {
            word(first)
                && tag.len() <= TAG_MAX_LEN
                && rest.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ReferenceErrorKind::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

/// `algorithm:hex` with a registered algorithm and its exact lowercase hex length.
fn parse_digest(s: &str) -> Result<Digest, ReferenceErrorKind> {
    let invalid = |reason| ReferenceErrorKind::InvalidDigest {
        digest: s.to_owned(),
        reason,
    };
    let (algorithm, hex) = s
        .split_once(':')
        .ok_or_else(|| invalid("expected ALGORITHM:HEX"))?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            part.as_bytes().split_first().is_some_and(|(first, rest)| {
                first.is_ascii_alphabetic() && rest.iter().all(u8::is_ascii_alphanumeric)
            })
        });
    if !algorithm_ok {
        return Err(invalid("malformed algorithm name"));
    }
    if hex.len() < DIGEST_HEX_MIN_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("expected at least 32 hexadecimal digits"));
    }
    let expected_len = match DigestAlgorithm::from(algorithm).digest_hexlen() {
        Some(len) => len as usize,
        None => {
            return Err(ReferenceErrorKind::UnsupportedDigestAlgorithm {
                algorithm: algorithm.to_owned(),
            });
        }
    };
    if hex.len() != expected_len {
        return Err(invalid(
            "wrong number of hexadecimal digits for its algorithm",
        ));
    }
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("hexadecimal digits must be lowercase"));
    }
    Digest::from_str(s).map_err(|_| invalid("not a valid OCI digest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_F: &str =
        "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn ok(input: &str) -> Reference {
        Reference::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn err(input: &str) -> ReferenceErrorKind {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} should be refused, parsed as {r}"),
            Err(e) => e.kind,
        }
    }

    /// (input, registry, repository, tag, digest, normalized, familiar)
    type Case<'a> = (
        String,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        String,
        String,
    );

    #[test]
    fn valid_references_normalize_like_docker() {
        let d = SHA256_F;
        let sha512 = format!("sha512:{}", "f".repeat(128));
        let cases: Vec<Case> = vec![
            ("busybox".into(), "docker.io", "library/busybox", Some("latest"), None,
             "docker.io/library/busybox:latest".into(), "busybox:latest".into()),
            ("user/app".into(), "docker.io", "user/app", Some("latest"), None,
             "docker.io/user/app:latest".into(), "user/app:latest".into()),
            ("docker.io/busybox:1.36".into(), "docker.io", "library/busybox", Some("1.36"), None,
             "docker.io/library/busybox:1.36".into(), "busybox:1.36".into()),
            ("index.docker.io/library/debian".into(), "docker.io", "library/debian", Some("latest"), None,
             "docker.io/library/debian:latest".into(), "debian:latest".into()),
            ("docker.io/library/foo/bar".into(), "docker.io", "library/foo/bar", Some("latest"), None,
             "docker.io/library/foo/bar:latest".into(), "library/foo/bar:latest".into()),
            ("localhost/x".into(), "localhost", "x", Some("latest"), None,
             "localhost/x:latest".into(), "localhost/x:latest".into()),
            ("localhost:5000".into(), "docker.io", "library/localhost", Some("5000"), None,
             "docker.io/library/localhost:5000".into(), "localhost:5000".into()),
            ("127.0.0.1:5000/busybox".into(), "127.0.0.1:5000", "busybox", Some("latest"), None,
             "127.0.0.1:5000/busybox:latest".into(), "127.0.0.1:5000/busybox:latest".into()),
            (format!("test:5000/repo:tag@{d}"), "test:5000", "repo", Some("tag"), Some(d),
             format!("test:5000/repo:tag@{d}"), format!("test:5000/repo:tag@{d}")),
            (format!("test:5000/repo@{d}"), "test:5000", "repo", None, Some(d),
             format!("test:5000/repo@{d}"), format!("test:5000/repo@{d}")),
            (format!("busybox@{d}"), "docker.io", "library/busybox", None, Some(d),
             format!("docker.io/library/busybox@{d}"), format!("busybox@{d}")),
            ("test.com:5000".into(), "docker.io", "library/test.com", Some("5000"), None,
             "docker.io/library/test.com:5000".into(), "test.com:5000".into()),
            ("test_com".into(), "docker.io", "library/test_com", Some("latest"), None,
             "docker.io/library/test_com:latest".into(), "test_com:latest".into()),
            ("test_com/foo".into(), "docker.io", "test_com/foo", Some("latest"), None,
             "docker.io/test_com/foo:latest".into(), "test_com/foo:latest".into()),
            ("lowercase:Uppercase".into(), "docker.io", "library/lowercase", Some("Uppercase"), None,
             "docker.io/library/lowercase:Uppercase".into(), "lowercase:Uppercase".into()),
            ("sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(), "sub-dom1.foo.com", "bar/baz/quux",
             Some("some-long-tag"), None,
             "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
             "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into()),
            ("b.gcr.io/test.example.com/my-app:test.example.com".into(), "b.gcr.io",
             "test.example.com/my-app", Some("test.example.com"), None,
             "b.gcr.io/test.example.com/my-app:test.example.com".into(),
             "b.gcr.io/test.example.com/my-app:test.example.com".into()),
            (format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"), "xn--7o8h.com", "myimage",
             Some("xn--7o8h.com"), Some(sha512.as_str()),
             format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"),
             format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}")),
            ("192.168.1.1:5000/repo:5050".into(), "192.168.1.1:5000", "repo", Some("5050"), None,
             "192.168.1.1:5000/repo:5050".into(), "192.168.1.1:5000/repo:5050".into()),
            ("[2001:db8::1]:5000/repo:tag".into(), "[2001:db8::1]:5000", "repo", Some("tag"), None,
             "[2001:db8::1]:5000/repo:tag".into(), "[2001:db8::1]:5000/repo:tag".into()),
            ("[::1]/repo".into(), "[::1]", "repo", Some("latest"), None,
             "[::1]/repo:latest".into(), "[::1]/repo:latest".into()),
            ("Foo/bar".into(), "Foo", "bar", Some("latest"), None,
             "Foo/bar:latest".into(), "Foo/bar:latest".into()),
            ("docker---rules/dock__er".into(), "docker.io", "docker---rules/dock__er", Some("latest"), None,
             "docker.io/docker---rules/dock__er:latest".into(),
             "docker---rules/dock__er:latest".into()),
            ("docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a".into(),
             "docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
             Some("latest"), None,
             "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest".into(),
             "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest".into()),
        ];
        for (input, registry, repository, tag, digest, normalized, familiar) in cases {
            let r = ok(&input);
            assert_eq!(r.registry(), registry, "registry of {input}");
            assert_eq!(r.repository(), repository, "repository of {input}");
            assert_eq!(r.tag(), tag, "tag of {input}");
            assert_eq!(
                r.digest().map(|d| d.to_string()).as_deref(),
                digest,
                "digest of {input}"
            );
            assert_eq!(r.to_string(), normalized, "normalized {input}");
            assert_eq!(r.familiar(), familiar, "familiar {input}");
            assert_eq!(
                ok(&normalized),
                r,
                "normalized form of {input} parses back to itself"
            );
        }
    }

    #[test]
    fn invalid_references_say_why() {
        use ReferenceErrorKind as K;
        let hex64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        let cases: Vec<(String, K)> = vec![
            ("".into(), K::Empty),
            (hex64.into(), K::LooksLikeImageId),
            (
                ":justtag".into(),
                K::InvalidPathComponent {
                    component: "".into(),
                },
            ),
            (
                format!("@{SHA256_F}"),
                K::InvalidPathComponent {
                    component: "".into(),
                },
            ),
            (
                "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
                K::InvalidDigest {
                    digest: "sha256:ffffffffffffffffffffffffffffffffff".into(),
                    reason: "wrong number of hexadecimal digits for its algorithm",
                },
            ),
            (
                format!("validname@invaliddigest:{}", "f".repeat(64)),
                K::UnsupportedDigestAlgorithm {
                    algorithm: "invaliddigest".into(),
                },
            ),
            (
                format!("repo@sha256:{}", "F".repeat(64)),
                K::InvalidDigest {
                    digest: format!("sha256:{}", "F".repeat(64)),
                    reason: "hexadecimal digits must be lowercase",
                },
            ),
            (
                "repo@sha256".into(),
                K::InvalidDigest {
                    digest: "sha256".into(),
                    reason: "expected ALGORITHM:HEX",
                },
            ),
            (
                "Uppercase:tag".into(),
                K::Uppercase {
                    path: "library/Uppercase".into(),
                },
            ),
            (
                "test:5000/Uppercase/lowercase:tag".into(),
                K::Uppercase {
                    path: "Uppercase/lowercase".into(),
                },
            ),
            (
                "docker/Docker".into(),
                K::Uppercase {
                    path: "docker/Docker".into(),
                },
            ),
            (
                format!("{}a:tag", "a/".repeat(128)),
                K::NameTooLong { len: 267 },
            ),
            (
                "aa/asdf$$^/aa".into(),
                K::InvalidPathComponent {
                    component: "asdf$$^".into(),
                },
            ),
            ("https://github.com/docker/docker".into(), K::HasScheme),
            (
                "-docker".into(),
                K::InvalidPathComponent {
                    component: "-docker".into(),
                },
            ),
            (
                "-docker.io/docker/docker".into(),
                K::InvalidHost {
                    host: "-docker.io".into(),
                },
            ),
            (
                "docker///docker".into(),
                K::InvalidPathComponent {
                    component: "".into(),
                },
            ),
            (
                "docker/".into(),
                K::InvalidPathComponent {
                    component: "".into(),
                },
            ),
            (
                "docker-/docker".into(),
                K::InvalidPathComponent {
                    component: "docker-".into(),
                },
            ),
            (
                "____/____".into(),
                K::InvalidPathComponent {
                    component: "____".into(),
                },
            ),
            (
                "dock..er/docker".into(),
                K::InvalidHost {
                    host: "dock..er".into(),
                },
            ),
            (
                "dock_.er/docker".into(),
                K::InvalidHost {
                    host: "dock_.er".into(),
                },
            ),
            (
                "dock___er/docker".into(),
                K::InvalidPathComponent {
                    component: "dock___er".into(),
                },
            ),
            ("[fc00::1]".into(), K::InvalidTag { tag: "1]".into() }),
            (
                "[fc00::1]:5000".into(),
                K::InvalidPathComponent {
                    component: "[fc00::1]".into(),
                },
            ),
            (
                "fc00::1:5000/debian".into(),
                K::InvalidPort {
                    port: ":1:5000".into(),
                },
            ),
            (
                "[fe80::1%eth0]:5000/debian".into(),
                K::InvalidHost {
                    host: "[fe80::1%eth0]:5000".into(),
                },
            ),
            (
                "[2001:db8:3:4::192.0.2.33]:5000/debian".into(),
                K::InvalidHost {
                    host: "[2001:db8:3:4::192.0.2.33]:5000".into(),
                },
            ),
            (
                "foo_bar.com/x".into(),
                K::InvalidHost {
                    host: "foo_bar.com".into(),
                },
            ),
            ("host:/x".into(), K::InvalidPort { port: "".into() }),
            ("busybox:-foo".into(), K::InvalidTag { tag: "-foo".into() }),
            ("busybox:".into(), K::InvalidTag { tag: "".into() }),
            (
                format!("busybox:{}", "a".repeat(129)),
                K::InvalidTag {
                    tag: "a".repeat(129),
                },
            ),
        ];
        for (input, kind) in cases {
            assert_eq!(err(&input), kind, "error for {input:?}");
        }
    }

    #[test]
    fn length_limit_counts_the_whole_normalized_name() {
        // `docker.io/` + 245 characters is exactly 255: accepted; the tag does not count.
        let path = format!("{}a", "a/".repeat(122));
        let r = ok(&format!("{path}:tag-puts-this-over-max"));
        assert_eq!(r.name().len(), 255);
        assert_eq!(r.repository(), path);
        assert_eq!(
            err(&format!("a/{path}")),
            ReferenceErrorKind::NameTooLong { len: 257 }
        );
    }

    #[test]
    fn tag_limit_is_128() {
        let tag = "t".repeat(128);
        assert_eq!(ok(&format!("busybox:{tag}")).tag(), Some(tag.as_str()));
    }

    #[test]
    fn api_host_maps_docker_hub_only() {
        assert_eq!(ok("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(ok("docker.io/user/app").registry(), "docker.io");
        assert_eq!(ok("localhost:5000/x").api_host(), "localhost:5000");
    }

    #[test]
    fn with_tag_and_with_digest_replace_the_pin() {
        let r = ok(&format!("busybox:1@{SHA256_F}"));
        assert_eq!(
            r.with_tag("2").unwrap().to_string(),
            "docker.io/library/busybox:2"
        );
        assert!(matches!(
            r.with_tag("-bad").unwrap_err().kind,
            ReferenceErrorKind::InvalidTag { .. }
        ));
        let d = crate::digest::sha256(b"x");
        assert_eq!(
            ok("busybox").with_digest(d.clone()).to_string(),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn serde_round_trips_through_the_normalized_string() {
        let r = ok("user/app:v1");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/user/app:v1\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Reference>("\"Bad/UPPER\"").is_err());
    }

    #[test]
    fn error_message_names_input_and_rule() {
        let e = Reference::parse("docker/Docker").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference \"docker/Docker\": repository name \"docker/Docker\" must be lowercase"
        );
    }

    #[test]
    fn generated_inputs_never_panic_and_accepted_ones_round_trip() {
        const ALPHABET: &[char] = &[
            'a', 'z', 'Z', '0', '9', ':', '/', '@', '.', '-', '_', '[', ']', '%', 'é', 'f',
        ];
        // A fixed linear congruential sequence: reproducible, no extra crate.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = next() % 24;
            let input: String = (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect();
            if let Ok(r) = Reference::parse(&input) {
                accepted += 1;
                assert_eq!(ok(&r.to_string()), r, "normalized form of {input:?}");
                assert_eq!(ok(&r.familiar()), r, "familiar form of {input:?}");
            }
        }
        assert!(
            accepted > 100,
            "the generator should produce some valid references"
        );
    }
}
