//! The local image store as a user meets it: `builder images`, `tag`, `rmi`
//! and `prune` through the real binary on a temporary `--root`, and several
//! writers and taggers sharing one root at once.

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

/// Stores a one-layer image and names it; returns the manifest descriptor.
fn add_image(store: &Store, name: &str, layer: &[u8]) -> Descriptor {
    let config = put(
        store,
        MediaType::ImageConfig,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = put(store, MediaType::ImageLayerGzip, layer);
    let manifest = new_manifest(config, vec![layer]);
    let desc = put(
        store,
        MediaType::ImageManifest,
        &canonical_json(&manifest).unwrap(),
    );
    store
        .refs()
        .set(&Reference::parse(name).unwrap(), desc.clone())
        .unwrap();
    desc
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn images_lists_nothing_in_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    builder(dir.path())
        .arg("images")
        .assert()
        .success()
        .stdout("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE      PLATFORMS\n");
}

#[test]
fn tag_images_rmi_and_prune_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    let image = add_image(&store, "app:v1", &[42u8; 5000]);
    let digest = image.digest().to_string();

    builder(&root)
        .args(["tag", "app:v1", "localhost:5000/team/app:v2"])
        .assert()
        .success()
        .stdout("");

    // BUILDER_ROOT works as --root does.
    let listing = Command::cargo_bin("builder")
        .unwrap()
        .env("BUILDER_ROOT", &root)
        .arg("images")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let listing = String::from_utf8(listing).unwrap();
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // config + 5000-byte layer + manifest, each counted once.
    let size = store.content_size(&image).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&store.blobs().read(image.digest()).unwrap()).unwrap();
    let id = config["config"]["digest"].as_str().unwrap()[7..19].to_owned();
    assert!(size > 5000);
    assert_eq!(
        lines,
        vec![
            vec![
                "REPOSITORY",
                "TAG",
                "IMAGE",
                "ID",
                "CREATED",
                "SIZE",
                "PLATFORMS"
            ],
            vec!["app", "v1", &id, "N/A", "5.48kB", "linux/amd64"],
            vec![
                "localhost:5000/team/app",
                "v2",
                &id,
                "N/A",
                "5.48kB",
                "linux/amd64"
            ],
        ],
        "{listing}"
    );

    builder(&root)
        .args(["rmi", "app:v1"])
        .assert()
        .success()
        .stdout("Untagged: app:v1\n");
    builder(&root)
        .args(["rmi", "app:v1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such image: app:v1"));

    // Still named once: prune keeps everything.
    builder(&root)
        .arg("prune")
        .assert()
        .success()
        .stdout("Total reclaimed space: 0B\n");
    assert_eq!(blob_count(&root), 3);

    builder(&root)
        .args(["rmi", "localhost:5000/team/app:v2"])
        .assert()
        .success()
        .stdout("Untagged: localhost:5000/team/app:v2\n");
    let out = builder(&root).arg("prune").assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(stdout.matches("Deleted: sha256:").count(), 3, "{stdout}");
    assert!(stdout.contains(&format!("Deleted: {digest}")), "{stdout}");
    assert!(
        stdout.ends_with("Total reclaimed space: 5.48kB\n"),
        "{stdout}"
    );
    assert_eq!(blob_count(&root), 0);
    builder(&root)
        .arg("images")
        .assert()
        .success()
        .stdout("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE      PLATFORMS\n");
}

#[test]
fn bad_references_and_missing_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    builder(dir.path())
        .args(["tag", "nothing:here", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such image: nothing:here"));
    builder(dir.path())
        .args(["tag", "App", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "repository name \"library/App\" must be lowercase",
        ));
    let store = Store::open(dir.path()).unwrap();
    add_image(&store, "app", b"layer");
    builder(dir.path())
        .args([
            "tag",
            "app",
            &format!("app@{}", builder::digest::sha256(b"x")),
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "refusing to create a tag with a digest reference",
        ));
    // rmi goes on past a failure and still fails overall.
    builder(dir.path())
        .args(["rmi", "missing", "app"])
        .assert()
        .code(1)
        .stdout("Untagged: app:latest\n")
        .stderr(predicate::str::contains("no such image: missing:latest"))
        .stderr(predicate::str::contains("could not remove 1 of 2 images"));
}

#[test]
fn prune_refuses_while_another_operation_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    builder(dir.path())
        .arg("prune")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is in use by another builder operation",
        ));
    drop(lease);
    builder(dir.path()).arg("prune").assert().success();
}

#[test]
fn concurrent_writers_and_taggers_share_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let base = add_image(&store, "base", b"base layer");

    // Threads writing distinct images (and one shared layer) and tagging them,
    // while processes tag the base image under other names.
    let mut processes: Vec<std::process::Child> = (0..6)
        .map(|i| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("builder"))
                .arg("--root")
                .arg(root)
                .args(["tag", "base", &format!("proc/{i}")])
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for i in 0..6 {
            let store = store.clone();
            s.spawn(move || {
                let mut layer = b"shared layer".to_vec();
                add_image(&store, &format!("thread/{i}:v1"), &layer);
                layer.extend(format!(" {i}").bytes());
                add_image(&store, &format!("thread/{i}:v2"), &layer);
            });
        }
    });
    for p in &mut processes {
        assert!(p.wait().unwrap().success());
    }

    let refs = store.refs().list().unwrap();
    let names: Vec<String> = refs.iter().map(|(r, _)| r.familiar()).collect();
    assert_eq!(refs.len(), 1 + 6 + 12, "{names:?}");
    for i in 0..6 {
        assert!(names.contains(&format!("proc/{i}:latest")), "{names:?}");
        assert!(names.contains(&format!("thread/{i}:v2")), "{names:?}");
    }
    for (reference, target) in &refs {
        if reference.repository().starts_with("proc/") {
            assert_eq!(target, &base);
        }
        // Every blob an image reaches is whole: reading verifies its digest.
        store.blobs().read(target.digest()).unwrap();
    }
    assert!(
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    // Nothing is unreferenced, so prune removes nothing.
    assert!(store.prune().unwrap().removed_blobs.is_empty());
}

/// Run as the parent, this test starts itself again as a child that streams
/// a blob into the store and never finishes, kills it with SIGKILL midway,
/// and checks that nothing appeared under a digest name; the leftover temp
/// file is prune's to remove.
#[test]
fn a_killed_writer_leaves_no_blob() {
    const CHILD_ROOT: &str = "BUILDER_TEST_KILLED_WRITER_ROOT";
    if let Some(root) = std::env::var_os(CHILD_ROOT) {
        let store = Store::open(root).unwrap();
        let expected = builder::store::Expected {
            digest: builder::digest::sha256(b"never completed"),
            size: Some(1 << 40),
        };
        let mut writer = store.blobs().writer(Some(expected)).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..16 {
            std::io::Write::write_all(&mut writer, &chunk).unwrap();
            std::io::Write::flush(&mut writer).unwrap();
        }
        // Wait to be killed.
        loop {
            std::thread::park();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    Store::open(root).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["a_killed_writer_leaves_no_blob", "--exact", "--nocapture"])
        .env(CHILD_ROOT, root)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child has streamed all 16 MiB into its temp file.
    let tmp = root.join("tmp");
    let mut polls = 0;
    loop {
        let written: u64 = std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if written >= 16 << 20 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the writer child exited early: {status}");
        }
        polls += 1;
        assert!(polls < 60_000, "the writer child made no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(blob_count(root), 0);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);
    // The child's locks died with it: prune runs, clears the leftover and
    // counts its 16 MiB as reclaimed.
    builder(root)
        .arg("prune")
        .assert()
        .success()
        .stdout("Removed 1 leftover temporary file(s)\nTotal reclaimed space: 16.8MB\n");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}
