//! The documents builder writes (manifest, index, config, `oci-layout`) are
//! valid against the OCI image-spec JSON Schemas, and our validator — the
//! schema plus our own typed parsing, as upstream's is the schema plus a Go
//! decode — agrees with every upstream test vector and spec example.
//!
//! Data: `../shared/conformance/image-spec-schema` (skipped when absent).

mod support;

use support::schema::{Doc, validator};

use builder::digest::sha256;
use builder::image::config::new_config;
use builder::image::layout::layout_header;
use builder::image::manifest::{canonical_json, new_index, new_manifest};
use builder::image::{PlatformSpec, media};
use oci_spec::image::{Descriptor, MediaType, PlatformBuilder};

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
