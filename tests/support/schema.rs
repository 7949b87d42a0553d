//! The OCI image-spec JSON Schemas as a validator for the documents tests
//! read or write: the schema check plus our own typed parse of the same
//! bytes (as upstream's validator is the schema plus a Go decode).

use builder::image::config::parse_config;
use builder::image::{ManifestOrIndex, media};
use jsonschema::{Draft, Retrieve, Uri, Validator};
use oci_spec::image::{Descriptor, OciLayout};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The kinds of document the image-spec has a root schema for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Doc {
    Descriptor,
    Manifest,
    Index,
    Layout,
    Config,
}

impl Doc {
    pub fn schema_file(self) -> &'static str {
        match self {
            Doc::Descriptor => "content-descriptor.json",
            Doc::Manifest => "image-manifest-schema.json",
            Doc::Index => "image-index-schema.json",
            Doc::Layout => "image-layout-schema.json",
            Doc::Config => "config-schema.json",
        }
    }

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.descriptor.v1+json" => Some(Doc::Descriptor),
            media::OCI_MANIFEST => Some(Doc::Manifest),
            media::OCI_INDEX => Some(Doc::Index),
            "application/vnd.oci.layout.header.v1+json" => Some(Doc::Layout),
            media::OCI_CONFIG => Some(Doc::Config),
            _ => None,
        }
    }

    /// Upstream's Go test validator names (`ValidatorMediaTypeImageConfig`…).
    pub fn from_go_validator(name: &str) -> Option<Self> {
        match name {
            "ValidatorMediaTypeDescriptor" => Some(Doc::Descriptor),
            "ValidatorMediaTypeManifest" => Some(Doc::Manifest),
            "ValidatorMediaTypeImageIndex" => Some(Doc::Index),
            "ValidatorMediaTypeLayoutHeader" => Some(Doc::Layout),
            "ValidatorMediaTypeImageConfig" => Some(Doc::Config),
            _ => None,
        }
    }
}

/// Resolves every `$ref` by its file name in the schema folder, whatever
/// base URL the schemas' `id`s put in front of it; never touches the network.
pub struct LocalSchemas {
    dir: PathBuf,
}

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri.path().as_str();
        let name = path.rsplit('/').next().unwrap_or(path);
        if !name.ends_with(".json") || name.contains("..") {
            return Err(format!("no local schema for {}", uri.as_str()).into());
        }
        let text = std::fs::read_to_string(self.dir.join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

pub struct OciValidator {
    schemas: HashMap<Doc, Validator>,
}

impl OciValidator {
    pub fn new(dir: &Path) -> Self {
        let docs = [
            Doc::Descriptor,
            Doc::Manifest,
            Doc::Index,
            Doc::Layout,
            Doc::Config,
        ];
        let schemas = docs
            .into_iter()
            .map(|doc| {
                let text = std::fs::read_to_string(dir.join(doc.schema_file())).unwrap();
                let schema: Value = serde_json::from_str(&text).unwrap();
                let validator = jsonschema::options()
                    .with_draft(Draft::Draft4)
                    .should_validate_formats(true)
                    .with_retriever(LocalSchemas {
                        dir: dir.to_owned(),
                    })
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("{}: {e}", doc.schema_file()));
                (doc, validator)
            })
            .collect();
        Self { schemas }
    }

    /// Schema check, then our typed parse of the same bytes.
    pub fn validate(&self, doc: Doc, bytes: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("JSON: {e}"))?;
        let errors: Vec<String> = self.schemas[&doc]
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Err(format!("schema: {}", errors.join("; ")));
        }
        let typed = match doc {
            Doc::Descriptor => serde_json::from_slice::<Descriptor>(bytes)
                .map_err(|e| e.to_string())
                .and_then(|d| embedded_data_is_base64(&d)),
            Doc::Manifest => match ManifestOrIndex::parse(bytes, Some(media::OCI_MANIFEST)) {
                Ok(ManifestOrIndex::Manifest(_)) => Ok(()),
                Ok(ManifestOrIndex::Index(_)) => Err("parsed as an index".to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Doc::Index => match ManifestOrIndex::parse(bytes, Some(media::OCI_INDEX)) {
                Ok(ManifestOrIndex::Index(_)) => Ok(()),
                Ok(ManifestOrIndex::Manifest(_)) => Err("parsed as a manifest".to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Doc::Layout => serde_json::from_slice::<OciLayout>(bytes)
                .map(drop)
                .map_err(|e| e.to_string()),
            Doc::Config => parse_config(bytes).map(drop).map_err(|e| e.to_string()),
        };
        typed.map_err(|e| format!("typed: {e}"))
    }
}

/// Go decodes a descriptor's `data` into bytes, so invalid base64 fails
/// there; oci-spec keeps it a string, so check it the same way.
fn embedded_data_is_base64(descriptor: &Descriptor) -> Result<(), String> {
    use base64::Engine as _;
    match descriptor.data() {
        Some(data) => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(drop)
            .map_err(|e| format!("data is not base64: {e}")),
        None => Ok(()),
    }
}

/// The validator over `../shared/conformance/image-spec-schema` and that
/// folder, or `None` (with a SKIPPED message) when the data is absent.
pub fn validator() -> Option<(PathBuf, OciValidator)> {
    let dir = super::conformance_dir("image-spec-schema")?;
    let validator = OciValidator::new(&dir);
    Some((dir, validator))
}
