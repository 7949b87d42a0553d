//! Manifests and indexes: reading either from bytes and a content type
//! (OCI or Docker schema 2, which share one shape and map onto oci-spec's
//! types), building new ones, and serializing them canonically.

use super::media::{self, DocumentKind};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;
use serde::de::IgnoredAny;

/// Why bytes are not a manifest or index we can use.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The media type is not a manifest or index type.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type given.
        media_type: String,
    },
    /// Docker schema 1 is long deprecated; registries convert on request.
    #[error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); push the image again with a current client"
    )]
    Schema1,
    /// The declared content type and the document's own `mediaType` disagree.
    #[error("content type {declared:?} does not match the document's mediaType {document:?}")]
    MediaTypeMismatch {
        /// From the `Content-Type` header or descriptor.
        declared: String,
        /// From the document.
        document: String,
    },
    /// Nothing says what the document is and its shape does not tell either.
    #[error("cannot tell whether the document is a manifest or an index: it has no mediaType")]
    UnknownKind,
    /// Only schema version 2 exists.
    #[error("unsupported schemaVersion {0} (expected 2)")]
    SchemaVersion(u32),
    /// The JSON does not decode into the document type.
    #[error("invalid {kind}: {source}")]
    Json {
        /// "manifest" or "index".
        kind: &'static str,
        /// The decoding error (with line and column).
        source: serde_json::Error,
    },
}

/// A parsed top-level document: one platform's manifest, or an index of them.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestOrIndex {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An image index (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
}

impl ManifestOrIndex {
    /// Parses a manifest or index. `content_type` is the registry's
    /// `Content-Type` or a descriptor's media type, when known; generic
    /// JSON types are ignored and the document's own `mediaType` (or, lacking
    /// that, its shape) decides.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        let declared = content_type
            .map(media::essence)
            .filter(|t| !is_generic(t))
            .map(|t| classify(t).map(|kind| (t, kind)))
            .transpose()?;

        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            kind: "manifest",
            source,
        })?;
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let from_document = match &probe.media_type {
            Some(t) => Some((t.as_str(), classify(t)?)),
            None => None,
        };
        let kind = match (declared, from_document) {
            (Some((declared, a)), Some((document, b))) if a != b => {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: declared.to_owned(),
                    document: document.to_owned(),
                });
            }
            (Some((_, kind)), _) | (None, Some((_, kind))) => kind,
            (None, None) => match (probe.manifests.is_some(), probe.config.is_some()) {
                (true, false) => DocumentKind::Index,
                (false, true) => DocumentKind::Manifest,
                _ => return Err(ManifestError::UnknownKind),
            },
        };

        let parsed = match kind {
            DocumentKind::Manifest => {
                let m: ImageManifest =
                    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                        kind: "manifest",
                        source,
                    })?;
                Self::Manifest(Box::new(m))
            }
            DocumentKind::Index => {
                let i: ImageIndex =
                    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                        kind: "index",
                        source,
                    })?;
                Self::Index(Box::new(i))
            }
        };
        match parsed.schema_version() {
            2 => Ok(parsed),
            v => Err(ManifestError::SchemaVersion(v)),
        }
    }

    /// The descriptors this document points at: an index's manifests, or a
    /// manifest's config and layers (and, for either, its subject).
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Self::Manifest(m) => std::iter::once(m.config())
                .chain(m.layers())
                .chain(m.subject())
                .collect(),
            Self::Index(i) => i.manifests().iter().chain(i.subject()).collect(),
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::Manifest(m) => m.schema_version(),
            Self::Index(i) => i.schema_version(),
        }
    }
}

/// The fields that tell a manifest from an index without decoding either.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<IgnoredAny>,
    config: Option<IgnoredAny>,
}

fn classify(media_type: &str) -> Result<DocumentKind, ManifestError> {
    match media::essence(media_type) {
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1),
        t => media::document_kind(t).ok_or_else(|| ManifestError::UnsupportedMediaType {
            media_type: t.to_owned(),
        }),
    }
}

/// Content types that say "JSON" without saying which document.
fn is_generic(content_type: &str) -> bool {
    matches!(
        content_type,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    )
}

/// A new OCI image manifest for `config` and `layers` (base layer first).
pub fn new_manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .expect("every required manifest field is set")
}

/// A new OCI image index over `manifests`.
pub fn new_index(manifests: Vec<Descriptor>) -> ImageIndex {
    let mut i = ImageIndex::default();
    i.set_schema_version(2);
    i.set_media_type(Some(MediaType::ImageIndex));
    i.set_manifests(manifests);
    i
}

/// The canonical JSON bytes of a document: compact, object keys sorted, so
/// the same document always has the same digest (oci-spec keeps maps such as
/// annotations in hash maps, whose order varies between runs).
pub fn canonical_json<T: Serialize>(document: &T) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json::Value keeps objects in a BTreeMap: converting sorts keys.
    let value = serde_json::to_value(document)?;
    serde_json::to_vec(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    const D: &str = "sha256:c86f7763873b6c0aae22d963bab59b4f5debbed6685761b5951584f6efb0633b";

    fn docker_manifest() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":7023,"digest":"{D}"}},"layers":[{{"mediaType":"{}","size":32654,"digest":"{D}"}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP
        )
    }

    #[test]
    fn docker_schema2_manifest_maps_onto_oci_types() {
        let doc = docker_manifest();
        let ManifestOrIndex::Manifest(m) =
            ManifestOrIndex::parse(doc.as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap()
        else {
            panic!("expected a manifest")
        };
        assert_eq!(m.config().size(), 7023);
        assert_eq!(
            m.layers()[0].media_type().to_string(),
            media::DOCKER_LAYER_GZIP
        );
    }

    #[test]
    fn kind_comes_from_content_type_document_or_shape() {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":1,"digest":"{D}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media::OCI_MANIFEST
        );
        for ct in [Some(media::OCI_INDEX), Some("application/json"), None] {
            let parsed = ManifestOrIndex::parse(index.as_bytes(), ct).unwrap();
            assert!(matches!(parsed, ManifestOrIndex::Index(_)), "{ct:?}");
            assert_eq!(parsed.children().len(), 1);
        }
        let doc = docker_manifest();
        let parsed = ManifestOrIndex::parse(doc.as_bytes(), None).unwrap();
        assert_eq!(parsed.children().len(), 2);
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        let doc = docker_manifest();
        assert!(matches!(
            ManifestOrIndex::parse(doc.as_bytes(), Some(media::OCI_INDEX)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            ManifestOrIndex::parse(doc.as_bytes(), Some(media::OCI_CONFIG)),
            Err(ManifestError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            ManifestOrIndex::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            ManifestOrIndex::parse(b"{}", Some(media::DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            ManifestOrIndex::parse(b"{}", None),
            Err(ManifestError::UnknownKind)
        ));
        assert!(matches!(
            ManifestOrIndex::parse(b"not json", None),
            Err(ManifestError::Json { .. })
        ));
        let bad_digest = doc.replace(&D[7..], "abc");
        assert!(matches!(
            ManifestOrIndex::parse(bad_digest.as_bytes(), None),
            Err(ManifestError::Json { .. })
        ));
        let v3 = doc.replace("\"schemaVersion\":2", "\"schemaVersion\":3");
        assert!(matches!(
            ManifestOrIndex::parse(v3.as_bytes(), None),
            Err(ManifestError::SchemaVersion(3))
        ));
    }

    #[test]
    fn canonical_json_is_stable_and_round_trips() {
        let config = Descriptor::new(MediaType::ImageConfig, 2, sha256(b"{}"));
        let mut layer = Descriptor::new(MediaType::ImageLayerGzip, 3, sha256(b"abc"));
        layer.set_annotations(Some(
            (0..20)
                .map(|i| (format!("k{i}"), format!("v{i}")))
                .collect(),
        ));
        let m = new_manifest(config, vec![layer]);
        let bytes = canonical_json(&m).unwrap();
        for _ in 0..5 {
            let again = new_manifest(m.config().clone(), m.layers().clone());
            assert_eq!(canonical_json(&again).unwrap(), bytes);
        }
        let parsed = ManifestOrIndex::parse(&bytes, Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(parsed, ManifestOrIndex::Manifest(Box::new(m)));
    }
}
