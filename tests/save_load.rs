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
    // A docker archive listing nothing, and a tar that is no archive.
    let mut legacy = tar::Builder::new(Vec::new());
    append(&mut legacy, "manifest.json", b"[]");
    builder(&fresh)
        .arg("load")
        .write_stdin(legacy.into_inner().unwrap())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "manifest.json in the archive is unreadable: it lists no image",
        ));
    let mut foreign = tar::Builder::new(Vec::new());
    append(&mut foreign, "hello.txt", b"hi");
    builder(&fresh)
        .arg("load")
        .write_stdin(foreign.into_inner().unwrap())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no index.json or manifest.json"));
    builder(&source)
        .args(["save", "nothing:here"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such image"));
}

fn append(archive: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, path, bytes).unwrap();
}

fn symlink(archive: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    archive.append_link(&mut header, path, target).unwrap();
}

/// A docker archive as docker before 25 wrote it, of the image `name` in
/// `root`: `<id>/{VERSION,json,layer.tar}` per layer (the layers
/// uncompressed; `link` makes the last directory's `layer.tar` a symlink
/// to the first's, as docker writes a repeated layer), `<config hex>.json`,
/// `manifest.json` and `repositories`; `damage` changes one byte of the
/// last layer.
fn legacy_archive(root: &Path, name: &str, link: bool, damage: bool) -> (Vec<u8>, Vec<String>) {
    let store = Store::open(root).unwrap();
    let blobs = store.blobs();
    let target = store
        .refs()
        .get(&Reference::parse(name).unwrap())
        .unwrap()
        .unwrap();
    let manifest: oci_spec::image::ImageManifest =
        serde_json::from_slice(&blobs.read(target.digest()).unwrap()).unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    let mut paths = Vec::new();
    let count = manifest.layers().len();
    for (i, layer) in manifest.layers().iter().enumerate() {
        let id = format!("{i:064x}");
        let path = format!("{id}/layer.tar");
        append(&mut archive, &format!("{id}/VERSION"), b"1.0");
        append(&mut archive, &format!("{id}/json"), b"{}");
        if link && i + 1 == count {
            symlink(&mut archive, &path, &format!("../{:064x}/layer.tar", 0));
        } else {
            // Built layers are stored as plain tars (compressed only for a
            // push or an export); a pulled one may be gzipped.
            let stored = blobs.read(layer.digest()).unwrap();
            let mut tar = Vec::new();
            if layer.media_type().to_string().ends_with("gzip") {
                std::io::Read::read_to_end(
                    &mut flate2::read::MultiGzDecoder::new(&stored[..]),
                    &mut tar,
                )
                .unwrap();
            } else {
                tar = stored;
            }
            if damage && i + 1 == count {
                tar[600] ^= 1;
            }
            append(&mut archive, &path, &tar);
        }
        paths.push(path);
    }
    let config = manifest.config().digest().digest().to_owned();
    let mut config_bytes = blobs.read(manifest.config().digest()).unwrap();
    let config_name = if link {
        // The config lists the first layer again at the end.
        let mut doc: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
        let first = doc["rootfs"]["diff_ids"][0].clone();
        let ids = doc["rootfs"]["diff_ids"].as_array_mut().unwrap();
        *ids.last_mut().unwrap() = first;
        config_bytes = serde_json::to_vec(&doc).unwrap();
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&config_bytes))
    } else {
        config
    };
    append(&mut archive, &format!("{config_name}.json"), &config_bytes);
    let entry = serde_json::json!([{
        "Config": format!("{config_name}.json"),
        "RepoTags": [name],
        "Layers": paths,
    }]);
    append(&mut archive, "manifest.json", entry.to_string().as_bytes());
    let (repository, tag) = name.split_once(':').unwrap();
    let repositories = serde_json::json!({repository: {tag: format!("{:064x}", count - 1)}});
    append(
        &mut archive,
        "repositories",
        repositories.to_string().as_bytes(),
    );
    (archive.into_inner().unwrap(), paths)
}

#[test]
fn docker_archives_from_before_docker_25_load_with_their_layers_checked() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("a"), "first file\n").unwrap();
    std::fs::write(context.join("b"), "second file\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY a /a\nCOPY b /b\nCMD [\"/a\"]\n",
    )
    .unwrap();
    let built = stdout(
        builder(&source)
            .args(["build", "-q", "-t", "app:1"])
            .arg(&context),
    );
    let built = String::from_utf8(built).unwrap().trim().to_owned();
    let (archive, paths) = legacy_archive(&source, "app:1", false, false);

    let fresh = dir.path().join("fresh");
    builder(&fresh)
        .arg("load")
        .write_stdin(archive)
        .assert()
        .success()
        .stdout("Loaded image: app:1\n");
    // The same image ID (config), its layers stored as uncompressed OCI tars.
    let inspect = |format: &str| {
        String::from_utf8(stdout(
            builder(&fresh).args(["inspect", "-f", format, "app:1"]),
        ))
        .unwrap()
    };
    assert_eq!(inspect("{{.id}}"), format!("{built}\n"));
    assert_eq!(
        inspect("{{range .manifest.layers}}{{.mediaType}} {{end}}"),
        "application/vnd.oci.image.layer.v1.tar application/vnd.oci.image.layer.v1.tar \n"
    );
    assert_eq!(
        inspect("{{range .manifest.layers}}{{.digest}} {{end}}"),
        inspect("{{range .config.rootfs.diff_ids}}{{.}} {{end}}")
    );
    // And it saves again (docker's current format) to the same image.
    let again = stdout(builder(&fresh).args(["save", "app:1"]));
    let third = dir.path().join("third");
    builder(&third)
        .arg("load")
        .write_stdin(again)
        .assert()
        .success();
    assert_eq!(contents(&third), contents(&fresh));

    // A repeated layer written as a symlink to the first.
    let (linked, _) = legacy_archive(&source, "app:1", true, false);
    let linked_root = dir.path().join("linked");
    builder(&linked_root)
        .arg("load")
        .write_stdin(linked)
        .assert()
        .success();
    let layers = String::from_utf8(stdout(builder(&linked_root).args([
        "inspect",
        "-f",
        "{{range .manifest.layers}}{{.digest}} {{end}}",
        "app:1",
    ])))
    .unwrap();
    let layers: Vec<&str> = layers.split_whitespace().collect();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0], layers[1]);

    // A layer whose bytes are not the config's diff_id is refused, by name.
    let (damaged, paths_damaged) = legacy_archive(&source, "app:1", false, true);
    assert_eq!(paths_damaged, paths);
    let refused = dir.path().join("refused");
    builder(&refused)
        .arg("load")
        .write_stdin(damaged)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{} in the archive does not match",
            paths[1]
        )))
        .stderr(predicate::str::contains("(the config's rootfs.diff_ids)"));
    assert_eq!(
        stdout(builder(&refused).args(["images", "-q"])),
        b"".to_vec()
    );
    // A layer manifest.json names but the archive lacks.
    let (full, _) = legacy_archive(&source, "app:1", false, false);
    let mut truncated = tar::Builder::new(Vec::new());
    let mut reader = tar::Archive::new(&full[..]);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path != paths[0] {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            append(&mut truncated, &path, &bytes);
        }
    }
    builder(&refused)
        .arg("load")
        .write_stdin(truncated.into_inner().unwrap())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "manifest.json names {}, which is not in the archive",
            paths[0]
        )));
}
