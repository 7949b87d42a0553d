//! The remote cache as OCI content: an image manifest whose layers are the
//! cached steps' layer blobs and whose config blob
//! (`application/vnd.builder.cache.config.v1+json`) holds the step cache
//! records, each with its key, its step position and the inputs the key
//! is the SHA-256 of (so a miss against it is explained). Any registry that
//! takes image manifests takes it. An inline cache keeps the same records
//! under [`INLINE_KEY`] in the image's own config.

use crate::image::manifest::{canonical_json, new_manifest};
use crate::store::{CacheRecord, CachedLayer};
use oci_spec::image::{Descriptor, Digest, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The media type of a cache config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.builder.cache.config.v1+json";

/// The key of an image config that holds an inline cache.
pub const INLINE_KEY: &str = "builder.cache.v1";

/// The format version this builder writes and reads.
const VERSION: u32 = 1;

/// Why a cache manifest or config is refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not JSON of the expected shape.
    #[error("its {what} is not a builder cache: {source}")]
    Json {
        /// `manifest` or `config`.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A format this builder does not read.
    #[error("its config is cache format version {0}; this builder reads version {VERSION}")]
    Version(u32),
    /// The manifest's config is neither a cache config nor an image config.
    #[error("its manifest's config is {0}, not a builder cache")]
    NotACache(String),
    /// An image without an inline cache.
    #[error("it is an image without an inline cache (build it with --cache-to type=inline)")]
    NoInlineCache,
    /// A record whose key is not the digest of its inputs.
    #[error("record {0} does not match its inputs")]
    KeyMismatch(Digest),
    /// A record or cache mount naming a layer the manifest does not list.
    #[error("{key} names layer {layer}, which its manifest does not list")]
    UnlistedLayer {
        /// The record (`record KEY`) or the mount (`cache mount "ID"`).
        key: String,
        /// The layer.
        layer: Digest,
    },
}

/// One exported step: its record, keyed, with its step position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedRecord {
    /// The step's cache key.
    pub key: Digest,
    /// Where the step is in its Dockerfile (`STAGE:INDEX`, no file path),
    /// for miss explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// A second key of the step (COPY, WORKDIR), computed from its sources
    /// and its parent layers' chain ID without reading the parent's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Digest>,
    /// The record as the local cache keeps it.
    #[serde(flatten)]
    pub record: CacheRecord,
}

/// One exported `RUN --mount=type=cache` directory (`--cache-to
/// …,mounts=true`): its content as a layer blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedMount {
    /// The mount's `id=` (its target when none was given).
    pub id: String,
    /// The name the store keeps the directory under (the id, and the
    /// seed's digest when `from=` seeds it); `sharing=` is not part of it.
    pub key: String,
    /// The directory's content, a layer blob.
    pub layer: CachedLayer,
}

/// The cache config blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// The format version.
    pub version: u32,
    /// The records, ordered by key.
    pub records: Vec<ExportedRecord>,
    /// The cache mounts, ordered by key (none unless `mounts=true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ExportedMount>,
}

impl CacheConfig {
    /// A config over `records` (deduplicated and ordered by key, so the
    /// same steps always make the same blob).
    pub fn new(records: Vec<ExportedRecord>) -> Self {
        let by_key: BTreeMap<String, ExportedRecord> = records
            .into_iter()
            .map(|r| (r.key.to_string(), r))
            .collect();
        Self {
            version: VERSION,
            records: by_key.into_values().collect(),
            mounts: Vec::new(),
        }
    }

    /// This config with `mounts` (ordered by key, so the same mounts
    /// always make the same blob).
    pub fn with_mounts(mut self, mounts: Vec<ExportedMount>) -> Self {
        let by_key: BTreeMap<String, ExportedMount> =
            mounts.into_iter().map(|m| (m.key.clone(), m)).collect();
        self.mounts = by_key.into_values().collect();
        self
    }

    /// The layers the records name, in record order, then the mounts',
    /// each once.
    pub fn layers(&self) -> Vec<Descriptor> {
        let mut seen = std::collections::HashSet::new();
        self.records
            .iter()
            .filter_map(|r| r.record.layer.as_ref())
            .chain(self.mounts.iter().map(|m| &m.layer))
            .filter(|l| seen.insert(l.digest.clone()))
            .map(|l| {
                Descriptor::new(
                    MediaType::from(l.media_type.as_str()),
                    l.size,
                    l.digest.clone(),
                )
            })
            .collect()
    }

    /// Points each record's and mount's layer at the blob `sent` gives
    /// for it (the same content otherwise stored: compressed, or named
    /// by a manifest); a layer it gives none for is left as it is.
    pub fn relink_layers(&mut self, sent: impl Fn(&CachedLayer) -> Option<Descriptor>) {
        let layers = self
            .records
            .iter_mut()
            .filter_map(|r| r.record.layer.as_mut())
            .chain(self.mounts.iter_mut().map(|m| &mut m.layer));
        for layer in layers {
            if let Some(blob) = sent(layer) {
                layer.digest = blob.digest().clone();
                layer.size = blob.size();
                layer.media_type = blob.media_type().to_string();
            }
        }
    }

    /// The config blob's bytes (canonical JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical_json(self).expect("a cache config always serializes")
    }

    /// Reads a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let config: Self = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "config",
            source,
        })?;
        config.check_version()?;
        Ok(config)
    }

    /// Reads the inline cache of an image config; `None` when it has none.
    pub fn from_image_config(bytes: &[u8]) -> Result<Option<Self>, FormatError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                what: "config",
                source,
            })?;
        let Some(inline) = value.get(INLINE_KEY) else {
            return Ok(None);
        };
        let config: Self =
            serde_json::from_value(inline.clone()).map_err(|source| FormatError::Json {
                what: "config",
                source,
            })?;
        config.check_version()?;
        Ok(Some(config))
    }

    fn check_version(&self) -> Result<(), FormatError> {
        match self.version {
            VERSION => Ok(()),
            other => Err(FormatError::Version(other)),
        }
    }

    /// Checks every record: its key is the digest of its inputs (a record
    /// cannot stand for another step) and its layer is one of `layers`
    /// (the manifest's, digest and size alike); and every mount's layer.
    pub fn check(&self, layers: &[Descriptor]) -> Result<(), FormatError> {
        let listed = |layer: &CachedLayer| {
            layers
                .iter()
                .any(|d| d.digest() == &layer.digest && d.size() == layer.size)
        };
        for exported in &self.records {
            let bytes =
                canonical_json(&exported.record.inputs).expect("a JSON value always serializes");
            if crate::digest::sha256(&bytes) != exported.key {
                return Err(FormatError::KeyMismatch(exported.key.clone()));
            }
            if let Some(layer) = exported.record.layer.as_ref().filter(|l| !listed(l)) {
                return Err(FormatError::UnlistedLayer {
                    key: format!("record {}", exported.key),
                    layer: layer.digest.clone(),
                });
            }
        }
        if let Some(mount) = self.mounts.iter().find(|m| !listed(&m.layer)) {
            return Err(FormatError::UnlistedLayer {
                key: format!("cache mount {:?}", mount.id),
                layer: mount.layer.digest.clone(),
            });
        }
        Ok(())
    }
}

/// The cache manifest over a config blob of `config_size` bytes with
/// digest `config_digest`, listing `layers`.
pub fn manifest(config_digest: Digest, config_size: u64, layers: Vec<Descriptor>) -> ImageManifest {
    let config = Descriptor::new(
        MediaType::Other(CACHE_CONFIG_MEDIA_TYPE.to_owned()),
        config_size,
        config_digest,
    );
    new_manifest(config, layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CachedLayer;

    fn exported(inputs: serde_json::Value, layer: Option<CachedLayer>) -> ExportedRecord {
        let key = crate::digest::sha256(&canonical_json(&inputs).unwrap());
        ExportedRecord {
            key,
            position: Some("0:1".into()),
            alias: None,
            record: CacheRecord {
                inputs,
                layer,
                config_change: serde_json::Value::Null,
                created: Some("2026-01-02T03:04:05Z".into()),
            },
        }
    }

    #[test]
    fn a_config_round_trips_and_checks_keys_and_layers() {
        let layer = CachedLayer {
            digest: crate::digest::sha256(b"blob"),
            size: 4,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            diff_id: crate::digest::sha256(b"tar"),
        };
        let config = CacheConfig::new(vec![
            exported(
                serde_json::json!({"kind": "RUN", "parent": "scratch"}),
                Some(layer),
            ),
            exported(serde_json::json!({"kind": "COPY"}), None),
        ]);
        let parsed = CacheConfig::parse(&config.to_bytes()).unwrap();
        assert_eq!(parsed, config);
        let layers = parsed.layers();
        assert_eq!(layers.len(), 1);
        parsed.check(&layers).unwrap();
        assert!(matches!(
            parsed.check(&[]),
            Err(FormatError::UnlistedLayer { .. })
        ));
        let mut forged = parsed.clone();
        forged.records[0].record.inputs = serde_json::json!({"kind": "RUN", "parent": "other"});
        assert!(matches!(
            forged.check(&layers),
            Err(FormatError::KeyMismatch(_))
        ));
        assert!(matches!(
            CacheConfig::parse(br#"{"version":7,"records":[]}"#),
            Err(FormatError::Version(7))
        ));
        assert!(CacheConfig::parse(b"{not json").is_err());
    }

    #[test]
    fn mounts_are_listed_layers_and_absent_when_none() {
        let config = CacheConfig::new(Vec::new());
        assert!(
            !String::from_utf8(config.to_bytes())
                .unwrap()
                .contains("mounts")
        );
        let layer = CachedLayer {
            digest: crate::digest::sha256(b"mount blob"),
            size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            diff_id: crate::digest::sha256(b"mount tar"),
        };
        let config = config.with_mounts(vec![ExportedMount {
            id: "/cache".into(),
            key: "/cache".into(),
            layer,
        }]);
        let parsed = CacheConfig::parse(&config.to_bytes()).unwrap();
        assert_eq!(parsed, config);
        let layers = parsed.layers();
        assert_eq!(layers.len(), 1);
        parsed.check(&layers).unwrap();
        let message = parsed.check(&[]).unwrap_err().to_string();
        assert!(
            message.starts_with("cache mount \"/cache\" names layer"),
            "{message}"
        );
    }
}
