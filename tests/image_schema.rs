//! The documents builder writes (manifest, index, config, `oci-layout`) are
//! valid against the OCI image-spec JSON Schemas, and our validator — the
//! schema plus our own typed parsing, as upstream's is the schema plus a Go
//! decode — agrees with every upstream test vector and spec example.
//!
//! Data: `../shared/conformance/image-spec-schema` (skipped when absent).

mod support;

use builder::digest::sha256;
use builder::image::config::{new_config, parse_config};
use builder::image::layout::layout_header;
use builder::image::manifest::{canonical_json, new_index, new_manifest};
use builder::image::{ManifestOrIndex, PlatformSpec, media};
use jsonschema::{Draft, Retrieve, Uri, Validator};
use oci_spec::image::{Descriptor, MediaType, OciLayout, PlatformBuilder};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The kinds of document the image-spec has a root schema for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Doc {
    Descriptor,
    Manifest,
    Index,
    Layout,
    Config,
}

impl Doc {
    fn schema_file(self) -> &'static str {
        match self {
            Doc::Descriptor => "content-descriptor.json",
            Doc::Manifest => "image-manifest-schema.json",
            Doc::Index => "image-index-schema.json",
            Doc::Layout => "image-layout-schema.json",
            Doc::Config => "config-schema.json",
        }
    }

    fn from_media_type(media_type: &str) -> Option<Self> {
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
    fn from_go_validator(name: &str) -> Option<Self> {
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
struct LocalSchemas {
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

struct OciValidator {
    schemas: HashMap<Doc, Validator>,
}

impl OciValidator {
    fn new(dir: &Path) -> Self {
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
    fn validate(&self, doc: Doc, bytes: &[u8]) -> Result<(), String> {
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

fn validator() -> Option<(PathBuf, OciValidator)> {
    let dir = support::conformance_dir("image-spec-schema")?;
    let validator = OciValidator::new(&dir);
    Some((dir, validator))
}

/// The documents in a vector file. Each file should hold one Go raw string,
/// but the extraction sometimes ran past its closing backtick into the next
/// test case (TestDescriptor_28, TestManifest_06): Go source, then the next
/// case's raw string. A raw string cannot contain a backtick, so the
/// documents are the even-numbered backtick-separated pieces; the vector's
/// expectation holds for the file when it holds for each document (in both
/// such files the label belongs to the last one, and the earlier one passes).
fn go_raw_strings(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|b| *b == b'`').step_by(2).collect()
}

/// Upstream's rewrite of Docker v2.2 media types to OCI ones, applied to
/// the backwards-compatibility vectors before validating.
fn docker_to_oci(text: &str) -> String {
    text.replace(media::DOCKER_MANIFEST_LIST, media::OCI_INDEX)
        .replace(media::DOCKER_MANIFEST, media::OCI_MANIFEST)
        .replace(media::DOCKER_LAYER_GZIP, media::OCI_LAYER_GZIP)
        .replace(media::DOCKER_CONFIG, media::OCI_CONFIG)
}

#[test]
fn documents_builder_writes_are_schema_valid() {
    let Some((_, v)) = validator() else { return };

    let platform = PlatformSpec::parse("linux/arm64").unwrap();
    let config = new_config(&platform);
    let config_bytes = canonical_json(&config).unwrap();
    v.validate(Doc::Config, &config_bytes).unwrap();

    let config_desc = Descriptor::new(
        MediaType::ImageConfig,
        config_bytes.len() as u64,
        sha256(&config_bytes),
    );
    let layer = b"pretend this is a gzipped tar";
    let layer_desc = Descriptor::new(MediaType::ImageLayerGzip, layer.len() as u64, sha256(layer));
    v.validate(Doc::Descriptor, &canonical_json(&layer_desc).unwrap())
        .unwrap();

    let manifest = new_manifest(config_desc, vec![layer_desc]);
    let manifest_bytes = canonical_json(&manifest).unwrap();
    v.validate(Doc::Manifest, &manifest_bytes).unwrap();

    let mut manifest_desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        sha256(&manifest_bytes),
    );
    manifest_desc.set_platform(Some(
        PlatformBuilder::default()
            .os(platform.os())
            .architecture(platform.architecture())
            .build()
            .unwrap(),
    ));
    let index_bytes = canonical_json(&new_index(vec![manifest_desc])).unwrap();
    v.validate(Doc::Index, &index_bytes).unwrap();

    v.validate(Doc::Layout, &canonical_json(&layout_header()).unwrap())
        .unwrap();
}

#[test]
fn validator_rejects_what_the_schema_or_typed_parse_forbids() {
    let Some((_, v)) = validator() else { return };
    let config = Descriptor::new(MediaType::ImageConfig, 2, sha256(b"{}"));
    let layer = Descriptor::new(MediaType::ImageLayerGzip, 1, sha256(b"l"));

    let good = canonical_json(&new_manifest(config.clone(), vec![layer])).unwrap();
    v.validate(Doc::Manifest, &good).unwrap();

    // The schema wants at least one layer.
    let empty = canonical_json(&new_manifest(config, vec![])).unwrap();
    let err = v.validate(Doc::Manifest, &empty).unwrap_err();
    assert!(err.starts_with("schema:"), "{err}");

    // The schema's digest pattern allows any length; the typed parse does not.
    let text = String::from_utf8(good).unwrap();
    let hex = sha256(b"l").digest().to_owned();
    let short = text.replace(&hex, &hex[..60]);
    let err = v.validate(Doc::Manifest, short.as_bytes()).unwrap_err();
    assert!(err.starts_with("typed:"), "{err}");
}

#[test]
fn upstream_test_vectors_pass_or_fail_as_expected() {
    let Some((dir, v)) = validator() else { return };
    let cases = dir.join("testcases");
    let index = std::fs::read_to_string(cases.join("INDEX.tsv")).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in index.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, _test, go_validator, expect, expected_digest, comment] = cols[..] else {
            panic!("malformed INDEX.tsv line: {line}");
        };
        let doc = Doc::from_go_validator(go_validator)
            .unwrap_or_else(|| panic!("unknown validator {go_validator}"));
        let raw = std::fs::read(cases.join(file)).unwrap();
        let outcome = go_raw_strings(&raw).into_iter().try_for_each(|bytes| {
            if expected_digest.is_empty() {
                v.validate(doc, bytes)
            } else {
                assert_eq!(sha256(bytes).to_string(), expected_digest, "{file}");
                let text = String::from_utf8(bytes.to_vec()).unwrap();
                v.validate(doc, docker_to_oci(&text).as_bytes())
            }
        });
        let passed = outcome.is_ok();
        if passed != (expect == "pass") {
            wrong.push(format!(
                "{file} ({comment}): expected {expect}, got {outcome:?}"
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, 69, "INDEX.tsv lists 69 vectors");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn spec_examples_are_valid() {
    let Some((dir, v)) = validator() else { return };
    let examples = dir.join("examples");
    let index = std::fs::read_to_string(examples.join("INDEX.tsv")).unwrap();
    let mut checked = 0;
    for line in index.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, _md, media_type, _title] = cols[..] else {
            panic!("malformed INDEX.tsv line: {line}");
        };
        let doc = Doc::from_media_type(media_type)
            .unwrap_or_else(|| panic!("unknown media type {media_type}"));
        let bytes = std::fs::read(examples.join(file)).unwrap();
        if let Err(e) = v.validate(doc, &bytes) {
            panic!("{file}: {e}");
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
}
