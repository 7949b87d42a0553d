//! A build that pulls its base image unpacks the layers while they
//! download, under the FROM step: the FROM shows the extraction (rawjson
//! `work.*` of kind `extract`, plain `#1 extracting …`), the RUN finds the
//! base's files (a layer without its parent directories still stacked on
//! the one below), and the image is the one a build from a stored base
//! gives. A layer whose diff ID is not the config's, or whose bytes are
//! not its digest's, fails the FROM naming it and leaves no snapshot, not
//! even a temp one; one whose download is cut is unpacked from the next
//! attempt. `builder pull` alone unpacks nothing. Builds need root
//! (and Debian's docker-registry); skipped otherwise.

mod support;

use serde_json::{Value, json};
use support::build::{Home, can_build, stderr_of};
use support::built::read_layout;
use support::http::{Response, TestServer};
use support::image::{BaseImage, busybox_rootfs_tar, host_arch};
use support::registry::Registry;

/// Bytes that do not compress: a layer of them is as big gzipped.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A layer with 2 MiB of noise in `srv/big` (past the 1 MiB from which
/// extraction is shown) and `tmp/x`, without `srv/` or `tmp/` entries.
fn big_parentless_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [("srv/big", noise(2 << 20)), ("tmp/x", b"x".to_vec())] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        tar.append_data(&mut header, path, &data[..]).unwrap();
    }
    tar.into_inner().unwrap()
}

/// The records of a rawjson log.
fn records(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// The entries of the store's `snapshots/` and of its `tmp/` (where
/// pending snapshots live).
fn store_dirs(home: &Home) -> (Vec<String>, Vec<String>) {
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(home.path(dir))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("store/snapshots"), names("store/tmp"))
}

#[test]
fn a_pulled_base_is_unpacked_under_its_from_and_its_run_sees_the_files() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox_with_layer(&registry, "unpacked", big_parentless_layer());
    let dockerfile = format!(
        "FROM {}\nRUN wc -c < /srv/big > /size && stat -c %a /tmp > /tmp-mode\n",
        base.reference
    );
    let home = Home::new();
    let context = home.context("unpacked", &dockerfile);
    let layout = home.path("layout");
    let output = support::cli::builder(home.dir.path())
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["build", "--progress", "rawjson", "-o"])
        .arg(format!("type=oci,dest={},tar=false", layout.display()))
        .arg(&context)
        .output()
        .unwrap();
    let log = stderr_of(&output);
    assert!(output.status.success(), "{log}");

    // The big layer is extracted under the FROM (#1), before it is done.
    let records = records(&log);
    let big = records
        .iter()
        .filter_map(|r| r["digest"].as_str())
        .find(|d| *d != base.layer && base.blobs[*d].len() > 1 << 20)
        .expect("the big layer's blob events")
        .to_owned();
    let from_done = records
        .iter()
        .position(|r| r["type"] == "step.finished" && r["id"] == 1)
        .expect("the FROM finished");
    let extracted = records
        .iter()
        .position(|r| {
            r["type"] == "work.finished" && r["kind"] == "extract" && r["layer"] == big.as_str()
        })
        .unwrap_or_else(|| panic!("no extraction of {big}: {log}"));
    assert_eq!(records[extracted]["id"], 1, "{log}");
    assert!(extracted < from_done, "{log}");
    assert_eq!(
        records[extracted]["done"], records[extracted]["total"],
        "{log}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["type"] == "work.started" && r["kind"] == "extract" && r["id"] != 1),
        "the RUN unpacks nothing again: {log}"
    );

    // The RUN read the base's files, /tmp as the layer below has it.
    let built = read_layout(&layout, log);
    let file = |path: &str| match &built.files[path].kind {
        support::built::Kind::File(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("{path} is {other:?}"),
    };
    assert_eq!(file("size").trim(), (2 << 20).to_string());
    assert_eq!(file("tmp-mode").trim(), "1777");
    // The base's layers, then the RUN's.
    let diff_ids = built.config["rootfs"]["diff_ids"].as_array().unwrap();
    let base_config: Value =
        serde_json::from_slice(&base.blobs[&base.configs[host_arch()]]).unwrap();
    let base_diff_ids = base_config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 3);
    assert_eq!(&diff_ids[..2], &base_diff_ids[..]);

    // The same build from a stored base (unpacked when the RUN needs it)
    // gives the same image.
    let stored = Home::new();
    let pulled = support::cli::builder(stored.dir.path())
        .args(["pull", &base.reference])
        .output()
        .unwrap();
    assert!(pulled.status.success(), "{}", stderr_of(&pulled));
    let context = stored.context("unpacked", &dockerfile);
    let again = {
        let layout = stored.path("layout");
        let output = stored
            .build(&["-o"])
            .arg(format!("type=oci,dest={},tar=false", layout.display()))
            .arg(&context)
            .env("SOURCE_DATE_EPOCH", "0")
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{stderr}");
        read_layout(&layout, stderr)
    };
    assert_eq!(again.manifest, built.manifest);
}

/// RUN steps on copies (`BUILDER_SNAPSHOTTER=copy`, as with chroot
/// isolation) assemble their rootfs from the layer blobs: the pull then
/// unpacks nothing into snapshots, which nothing would read.
#[test]
fn runs_on_copies_leave_the_pulled_base_packed() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox_with_layer(&registry, "copied", big_parentless_layer());
    let dockerfile = format!("FROM {}\nRUN wc -c < /srv/big > /size\n", base.reference);
    let home = Home::new();
    let context = home.context("copied", &dockerfile);
    let out = home.path("out");
    let output = home
        .build(&["-o", &format!("type=local,dest={}", out.display())])
        .arg(&context)
        .env("BUILDER_SNAPSHOTTER", "copy")
        .output()
        .unwrap();
    let log = stderr_of(&output);
    assert!(output.status.success(), "{log}");
    assert!(!log.contains("extracting"), "{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("size")).unwrap().trim(),
        (2 << 20).to_string()
    );
    let (snapshots, _) = store_dirs(&home);
    assert!(snapshots.is_empty(), "{snapshots:?}");
}

#[test]
fn a_pull_alone_unpacks_nothing() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let output = support::cli::builder(home.dir.path())
        .args(["pull", &base.reference])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(store_dirs(&home).0, Vec::<String>::new());
}

/// How the fake registry spoils the image it serves.
#[derive(Clone, Copy)]
enum Spoiled {
    /// The config lists another diff ID for the top layer.
    DiffId,
    /// The top layer's bytes are not its digest's (same length).
    Bytes,
    /// The first download of the top layer is cut halfway (the next is whole).
    CutOnce,
}

/// A registry serving `app:latest`: busybox's layer, then a 2 MiB one,
/// spoiled as `spoiled` says. Returns the server and the top layer's digest.
fn spoiled_registry(spoiled: Spoiled) -> (TestServer, String) {
    let gzip = |tar: &[u8]| support::build::gzip(tar);
    let bottom_tar = busybox_rootfs_tar();
    let top_tar = big_parentless_layer();
    let (bottom, top) = (gzip(&bottom_tar), gzip(&top_tar));
    let digest = |bytes: &[u8]| builder::digest::sha256(bytes).to_string();
    let top_diff_id = match spoiled {
        Spoiled::DiffId => digest(b"another layer"),
        Spoiled::Bytes | Spoiled::CutOnce => digest(&top_tar),
    };
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&bottom_tar), top_diff_id]},
    }))
    .unwrap();
    let layer = |bytes: &[u8]| {
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": digest(bytes), "size": bytes.len()})
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [layer(&bottom), layer(&top)],
    }))
    .unwrap();
    let mut served_top = top.clone();
    if let Spoiled::Bytes = spoiled {
        let middle = served_top.len() / 2;
        served_top[middle] ^= 0x55;
    }
    let top_digest = digest(&top);
    let top_path = format!("/v2/app/blobs/{top_digest}");
    let top_requests = std::sync::atomic::AtomicUsize::new(0);
    let blobs = [
        (digest(&config), config),
        (digest(&bottom), bottom),
        (top_digest.clone(), served_top),
    ];
    let server = TestServer::start(move |req| {
        let path = req.path();
        if path == "/v2/" {
            return Response::new(200);
        }
        if path == "/v2/app/manifests/latest" {
            return Response::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone());
        }
        let first = || top_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        match blobs
            .iter()
            .find(|(d, _)| path == format!("/v2/app/blobs/{d}"))
        {
            Some((_, bytes))
                if matches!(spoiled, Spoiled::CutOnce) && path == top_path && first() =>
            {
                Response::new(200)
                    .body(bytes.clone())
                    .cut_after(bytes.len() / 2)
            }
            Some((_, bytes)) => Response::new(200).body(bytes.clone()),
            None => Response::new(404).json(&json!({"errors": [{"code": "NOT_FOUND"}]})),
        }
    });
    (server, top_digest)
}

#[test]
fn a_wrong_diff_id_or_corrupt_blob_fails_the_from_and_leaves_no_snapshot() {
    if !can_build() {
        return;
    }
    for (spoiled, says) in [
        (Spoiled::DiffId, "but the image config lists"),
        (Spoiled::Bytes, "nothing was stored"),
    ] {
        let (server, top) = spoiled_registry(spoiled);
        let home = Home::new();
        let context = home.context(
            "spoiled",
            &format!("FROM {}/app:latest\nRUN true\n", server.host()),
        );
        let stderr = home.build_fails(&context, &[]);
        assert!(stderr.contains(&top), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("spoiled/Dockerfile:1"), "{stderr}");
        assert!(stderr.contains("#1 ERROR"), "{stderr}");
        let (snapshots, tmp) = store_dirs(&home);
        // The bottom layer may have been unpacked: it is sound.
        assert!(snapshots.len() <= 1, "{snapshots:?}");
        assert!(
            !tmp.iter().any(|name| name.starts_with("snapshot-")),
            "{tmp:?}"
        );
    }
}

#[test]
fn a_layer_download_cut_midway_is_unpacked_from_the_next_attempt() {
    if !can_build() {
        return;
    }
    let (server, top) = spoiled_registry(Spoiled::CutOnce);
    let home = Home::new();
    let context = home.context(
        "cut",
        &format!(
            "FROM {}/app:latest\nRUN wc -c < /srv/big > /size\n",
            server.host()
        ),
    );
    let built = home.built(&context, &[]);
    match &built.files["size"].kind {
        support::built::Kind::File(bytes) => {
            assert_eq!(String::from_utf8_lossy(bytes).trim(), (2 << 20).to_string());
        }
        other => panic!("/size is {other:?}"),
    }
    assert!(
        built
            .stderr
            .contains(&format!("#1 extracted {}", &top["sha256:".len()..][..12])),
        "{}",
        built.stderr
    );
    let (snapshots, tmp) = store_dirs(&home);
    assert_eq!(
        snapshots.len(),
        3,
        "two base layers and the RUN's: {snapshots:?}"
    );
    assert!(
        !tmp.iter().any(|name| name.starts_with("snapshot-")),
        "{tmp:?}"
    );
}
