//! `--cache-from` and `--cache-to` as buildx takes them: CSV fields of
//! `key=value` (`type=registry,ref=REG/REPO:TAG,mode=max`), or a bare
//! reference (`--cache-from REG/REPO:TAG`, a registry cache).

use crate::image::{Reference, ReferenceError};
use crate::layer::compression_attrs::CompressionAttrs;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a `--cache-from`/`--cache-to` value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheSpecError {
    /// The value is empty.
    #[error("empty {flag} value")]
    Empty {
        /// The flag.
        flag: &'static str,
    },
    /// A field is not `key=value`, or a key repeats.
    #[error("{flag} {spec:?}: field {field:?} is not key=value given once")]
    Field {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        spec: String,
        /// The offending field.
        field: String,
    },
    /// A type builder does not know (or not for this flag).
    #[error("{flag} {spec:?}: unknown type {kind:?} (expected {expected})")]
    UnknownType {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        spec: String,
        /// The type given.
        kind: String,
        /// The types the flag takes.
        expected: &'static str,
    },
    /// A key the type does not take, or a bad value.
    #[error("{flag} {spec:?}: {problem}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        spec: String,
        /// What is wrong.
        problem: String,
    },
    /// `ref=` is not an image reference.
    #[error("{flag} {spec:?}: ref is not a valid reference")]
    Reference {
        /// The flag.
        flag: &'static str,
        /// The whole value.
        spec: String,
        /// Why.
        #[source]
        source: ReferenceError,
    },
}

/// How much of a build a cache export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps of the final image's layers (its stage and the stages it
    /// is built on).
    #[default]
    Min,
    /// Every step the build ran or found cached, in every stage.
    Max,
}

/// Where a remote cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An image manifest in a registry (`type=registry,ref=…`); also an
    /// image pushed with an inline cache.
    Registry(Reference),
    /// An OCI image layout directory (`type=local`), tag `latest`.
    Local(PathBuf),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registry(reference) => write!(f, "{reference}"),
            Self::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// `--cache-from`: a cache to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom(pub CacheLocation);

/// `--cache-to`: where the build's cache goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTo {
    /// A registry or a local layout.
    Remote {
        /// Where.
        location: CacheLocation,
        /// Which steps.
        mode: CacheMode,
        /// `compression=`, `compression-level=`, `force-compression=`:
        /// how the cache's layers are compressed (else as
        /// `--compression` says).
        compression: CompressionAttrs,
        /// `ignore-error=true`: a failed export is a warning.
        ignore_error: bool,
        /// `mounts=true`: the build's `RUN --mount=type=cache` directories
        /// go along, one layer blob each.
        mounts: bool,
    },
    /// `type=inline`: the records go into the image's own config.
    Inline,
}

/// Keys buildx takes that change nothing here (the cache is always an
/// OCI image manifest).
const IGNORED: &[&str] = &["oci-mediatypes", "image-manifest"];

fn fields(flag: &'static str, spec: &str) -> Result<BTreeMap<String, String>, CacheSpecError> {
    if spec.trim().is_empty() {
        return Err(CacheSpecError::Empty { flag });
    }
    let mut map = BTreeMap::new();
    for field in spec.split(',') {
        let bad = || CacheSpecError::Field {
            flag,
            spec: spec.to_owned(),
            field: field.to_owned(),
        };
        let (key, value) = field.split_once('=').ok_or_else(bad)?;
        let key = key.trim().to_ascii_lowercase();
        if map.insert(key, value.trim().to_owned()).is_some() {
            return Err(bad());
        }
    }
    Ok(map)
}

fn reference(flag: &'static str, spec: &str, value: &str) -> Result<Reference, CacheSpecError> {
    Reference::parse(value).map_err(|source| CacheSpecError::Reference {
        flag,
        spec: spec.to_owned(),
        source,
    })
}

fn invalid(flag: &'static str, spec: &str, problem: String) -> CacheSpecError {
    CacheSpecError::Invalid {
        flag,
        spec: spec.to_owned(),
        problem,
    }
}

/// The keys every remote `--cache-to` takes, after its location's.
const EXPORT_KEYS: &[&str] = &[
    "mode",
    "compression",
    "compression-level",
    "force-compression",
    "ignore-error",
    "mounts",
];

/// Refuses keys outside `allowed` (and the ignored ones).
fn check_keys(
    flag: &'static str,
    spec: &str,
    fields: &BTreeMap<String, String>,
    kind: &str,
    allowed: &[&str],
) -> Result<(), CacheSpecError> {
    for key in fields.keys() {
        if key != "type" && !allowed.contains(&key.as_str()) && !IGNORED.contains(&key.as_str()) {
            return Err(invalid(
                flag,
                spec,
                format!(
                    "type={kind} does not take {key:?} (it takes {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

impl CacheFrom {
    /// Parses a `--cache-from` value.
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        const FLAG: &str = "--cache-from";
        if !spec.contains('=') && !spec.trim().is_empty() {
            return Ok(Self(CacheLocation::Registry(reference(
                FLAG,
                spec,
                spec.trim(),
            )?)));
        }
        let fields = fields(FLAG, spec)?;
        let kind = fields.get("type").map(String::as_str).unwrap_or("registry");
        let location = match kind {
            "registry" => {
                check_keys(FLAG, spec, &fields, kind, &["ref"])?;
                let value = fields
                    .get("ref")
                    .ok_or_else(|| invalid(FLAG, spec, "type=registry needs ref=REF".into()))?;
                CacheLocation::Registry(reference(FLAG, spec, value)?)
            }
            "local" => {
                check_keys(FLAG, spec, &fields, kind, &["src", "tag"])?;
                tag_is_latest(FLAG, spec, &fields)?;
                let src = fields
                    .get("src")
                    .ok_or_else(|| invalid(FLAG, spec, "type=local needs src=DIR".into()))?;
                CacheLocation::Local(PathBuf::from(src))
            }
            other => {
                return Err(CacheSpecError::UnknownType {
                    flag: FLAG,
                    spec: spec.to_owned(),
                    kind: other.to_owned(),
                    expected: "registry or local",
                });
            }
        };
        Ok(Self(location))
    }
}

/// A local cache goes by tag `latest`, the default of BuildKit's.
fn tag_is_latest(
    flag: &'static str,
    spec: &str,
    fields: &BTreeMap<String, String>,
) -> Result<(), CacheSpecError> {
    match fields.get("tag").map(String::as_str) {
        None | Some("latest") => Ok(()),
        Some(other) => Err(invalid(
            flag,
            spec,
            format!("tag={other:?}: a local cache keeps one tag, latest"),
        )),
    }
}

fn boolean(flag: &'static str, spec: &str, key: &str, value: &str) -> Result<bool, CacheSpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(
            flag,
            spec,
            format!("{key}={value:?} is not true or false"),
        )),
    }
}

impl CacheTo {
    /// Parses a `--cache-to` value.
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        const FLAG: &str = "--cache-to";
        if !spec.contains('=') && !spec.trim().is_empty() {
            let location = CacheLocation::Registry(reference(FLAG, spec, spec.trim())?);
            return Ok(Self::Remote {
                location,
                mode: CacheMode::Min,
                compression: CompressionAttrs::default(),
                ignore_error: false,
                mounts: false,
            });
        }
        let fields = fields(FLAG, spec)?;
        let kind = fields.get("type").map(String::as_str).unwrap_or("registry");
        let location = match kind {
            "inline" => {
                check_keys(FLAG, spec, &fields, kind, &["mode"])?;
                if fields.get("mode").is_some_and(|m| m != "min") {
                    return Err(invalid(
                        FLAG,
                        spec,
                        "type=inline holds the final image's steps only (mode=min)".into(),
                    ));
                }
                return Ok(Self::Inline);
            }
            "registry" => {
                check_keys(FLAG, spec, &fields, kind, &[&["ref"], EXPORT_KEYS].concat())?;
                let value = fields
                    .get("ref")
                    .ok_or_else(|| invalid(FLAG, spec, "type=registry needs ref=REF".into()))?;
                CacheLocation::Registry(reference(FLAG, spec, value)?)
            }
            "local" => {
                let keys = [&["dest", "tag"], EXPORT_KEYS].concat();
                check_keys(FLAG, spec, &fields, kind, &keys)?;
                tag_is_latest(FLAG, spec, &fields)?;
                let dest = fields
                    .get("dest")
                    .ok_or_else(|| invalid(FLAG, spec, "type=local needs dest=DIR".into()))?;
                CacheLocation::Local(PathBuf::from(dest))
            }
            other => {
                return Err(CacheSpecError::UnknownType {
                    flag: FLAG,
                    spec: spec.to_owned(),
                    kind: other.to_owned(),
                    expected: "registry, local or inline",
                });
            }
        };
        let mode = match fields.get("mode").map(String::as_str) {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => {
                return Err(invalid(
                    FLAG,
                    spec,
                    format!("mode={other:?}: expected min or max"),
                ));
            }
        };
        let force = fields
            .get("force-compression")
            .map(|value| boolean(FLAG, spec, "force-compression", value))
            .transpose()?;
        let compression = CompressionAttrs::parse(
            fields.get("compression").map(String::as_str),
            fields.get("compression-level").map(String::as_str),
            force,
        )
        .map_err(|e| invalid(FLAG, spec, e.to_string()))?;
        let ignore_error = match fields.get("ignore-error") {
            None => false,
            Some(value) => boolean(FLAG, spec, "ignore-error", value)?,
        };
        let mounts = match fields.get("mounts") {
            None => false,
            Some(value) => boolean(FLAG, spec, "mounts", value)?,
        };
        Ok(Self::Remote {
            location,
            mode,
            compression,
            ignore_error,
            mounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layer::compress::Compression;

    #[test]
    fn buildx_forms_parse() {
        let from = CacheFrom::parse("127.0.0.1:5000/app:cache").unwrap();
        assert!(matches!(from.0, CacheLocation::Registry(r) if r.tag() == Some("cache")));
        let from = CacheFrom::parse("type=local,src=/tmp/c").unwrap();
        assert_eq!(from.0, CacheLocation::Local("/tmp/c".into()));
        let to = CacheTo::parse(
            "type=registry,ref=127.0.0.1:5000/app:cache,mode=max,compression=zstd,ignore-error=true,mounts=true",
        )
        .unwrap();
        assert!(matches!(
            to,
            CacheTo::Remote {
                mode: CacheMode::Max,
                compression: CompressionAttrs {
                    compression: Some(Compression::Zstd),
                    level: None,
                    force: None,
                },
                ignore_error: true,
                mounts: true,
                ..
            }
        ));
        assert!(matches!(
            CacheTo::parse("type=local,dest=/tmp/c").unwrap(),
            CacheTo::Remote { mounts: false, .. }
        ));
        assert_eq!(CacheTo::parse("type=inline").unwrap(), CacheTo::Inline);
    }

    #[test]
    fn bad_values_name_the_flag_and_the_problem() {
        for (spec, expected) in [
            ("type=s3,bucket=x", "unknown type \"s3\""),
            ("type=registry", "needs ref=REF"),
            ("type=registry,ref=a/b:c,mode=all", "mode=\"all\""),
            ("type=local,dest=/x,ignore-error=maybe", "not true or false"),
            (
                "type=local,dest=/x,mounts=yes",
                "mounts=\"yes\" is not true or false",
            ),
            (
                "type=registry,ref=a/b:c,colour=red",
                "does not take \"colour\"",
            ),
            (
                "type=registry,ref=a/b:c,compression=estargz",
                "compression=\"estargz\" is not supported",
            ),
            (
                "type=registry,ref=a/b:c,compression=zstd,compression-level=30",
                "compression-level=30 is out of range for zstd (0-22)",
            ),
            (
                "type=local,dest=/x,force-compression=maybe",
                "force-compression=\"maybe\" is not true or false",
            ),
        ] {
            let message = CacheTo::parse(spec).unwrap_err().to_string();
            assert!(message.starts_with("--cache-to"), "{message}");
            assert!(message.contains(expected), "{spec}: {message}");
        }
        let message = CacheFrom::parse("type=inline").unwrap_err().to_string();
        assert!(message.contains("--cache-from"), "{message}");
    }
}
