//! `builder save` and `builder load` through the real binary: an image
//! saved (docker archive or OCI layout, to a file or stdout, several at
//! once, by name or ID) and loaded into a fresh store is the same image
//! (manifest, config and layers byte for byte, the same names); a damaged
//! or foreign archive is refused with the reason.

use assert_cmd::Command;
use builder::image::Reference;
use builder::image::manifest::{canonical_json, new_manifest};
use builder::store::Store;
use oci_spec::image::{Descriptor, MediaType};
use predicates::prelude::*;
use std::path::Path;

fn builder(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("builder").unwrap();
    cmd.arg("--root").arg(root).env_remove("BUILDER_ROOT");
    cmd
}

fn put(store: &Store, media_type: MediaType, bytes: &[u8]) -> Descriptor {
    let digest = store.blobs().put(bytes).unwrap();
    Descriptor::new(media_type, bytes.len() as u64, digest)
}

/// A two-layer image named `names`; returns its ID.
fn add_image(store: &Store, names: &[&str], label: &str) -> String {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z","config":{{"Labels":{{"l":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let config = put(store, MediaType::ImageConfig, config.as_bytes());
    let layers = vec![
        put(
            store,
            MediaType::ImageLayerGzip,
            format!("{label}-1").as_bytes(),
        ),
        put(store, MediaType::ImageLayerGzip, &[7u8; 3000]),
    ];
    let manifest = new_manifest(config.clone(), layers);
    let desc = put(
        store,
        MediaType::ImageManifest,
        &canonical_json(&manifest).unwrap(),
    );
    for name in names {
        store
            .refs()
            .set(&Reference::parse(name).unwrap(), desc.clone())
            .unwrap();
    }
    config.digest().to_string()
}

fn stdout(cmd: &mut Command) -> Vec<u8> {
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    output.stdout
}

/// Every name with its manifest, config and layers as bytes.
fn contents(root: &Path) -> Vec<(String, Vec<Vec<u8>>)> {
    let store = Store::open(root).unwrap();
    let blobs = store.blobs();
    store
        .refs()
        .list()
        .unwrap()
        .into_iter()
        .map(|(name, target)| {
            let manifest_bytes = blobs.read(target.digest()).unwrap();
            let manifest: oci_spec::image::ImageManifest =
                serde_json::from_slice(&manifest_bytes).unwrap();
            let mut parts = vec![
                manifest_bytes,
                blobs.read(manifest.config().digest()).unwrap(),
            ];
            parts.extend(
                manifest
                    .layers()
                    .iter()
                    .map(|l| blobs.read(l.digest()).unwrap()),
            );
            (name.to_string(), parts)
        })
        .collect()
}

#[test]
fn an_image_saved_and_loaded_into_a_fresh_store_is_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let store = Store::open(&source).unwrap();
    add_image(&store, &["app:1", "localhost:5000/team/app:2"], "a");
    let other = add_image(&store, &["tool:latest"], "b");
    let archive = dir.path().join("images.tar");
    builder(&source)
        .args(["save", "-o"])
        .arg(&archive)
        .args(["app:1", "localhost:5000/team/app:2", &other[7..19]])
        .assert()
        .success()
        .stdout("");
    let fresh = dir.path().join("fresh");
    builder(&fresh)
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .success()
        .stdout(predicate::str::contains("Loaded image: app:1\n"))
        .stdout(predicate::str::contains(
            "Loaded image: localhost:5000/team/app:2\n",
        ))
        .stdout(predicate::str::contains("Loaded image: tool:latest\n"));
    assert_eq!(contents(&fresh), contents(&source));
    // inspect shows the same in both stores.
    let inspect = |root: &Path| stdout(builder(root).args(["inspect", "app:1"]));
    assert_eq!(inspect(&fresh), inspect(&source));

    // OCI layout on stdout, read from stdin.
    let oci = stdout(builder(&source).args(["save", "--format", "oci", "tool"]));
    let third = dir.path().join("third");
    builder(&third)
        .arg("load")
        .write_stdin(oci)
        .assert()
        .success()
        .stdout("Loaded image: tool:latest\n");
    let tool = |root: &Path| {
        contents(root)
            .into_iter()
            .find(|(n, _)| n.contains("tool"))
            .unwrap()
    };
    assert_eq!(tool(&third), tool(&source));
}

#[test]
fn damaged_and_foreign_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let store = Store::open(&source).unwrap();
    add_image(&store, &["app:1"], "a");
    let archive = stdout(builder(&source).args(["save", "app:1"]));
    // A layer whose bytes no longer hash to its name.
    let mut damaged = archive.clone();
    let at = damaged
        .windows(3000)
        .position(|w| w.iter().all(|b| *b == 7))
        .unwrap();
    damaged[at + 10] = 8;
    let fresh = dir.path().join("fresh");
    builder(&fresh)
        .arg("load")
        .write_stdin(damaged)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("blob blobs/sha256/"))
        .stderr(predicate::str::contains("digest mismatch"));
    assert_eq!(stdout(builder(&fresh).args(["images", "-q"])), b"".to_vec());
    // docker's archive before docker 25: manifest.json only.
    let mut legacy = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    legacy
        .append_data(&mut header, "manifest.json", &b"[]"[..])
        .unwrap();
    builder(&fresh)
        .arg("load")
        .write_stdin(legacy.into_inner().unwrap())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("before docker 25"));
    builder(&source)
        .args(["save", "nothing:here"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such image"));
}
