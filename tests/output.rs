//! The local outputs of a finished image, as a user meets them: an OCI
//! layout that umoci and skopeo read, a Docker archive skopeo reads as
//! `docker load` would, the final filesystem in a directory or a tar, and
//! the `--output` syntax of buildx with its errors.
//!
//! The image is made in each test directly in a temp store: two gzip layers
//! (the second removes a file, empties a directory and changes a file), a
//! config with their diff IDs, and a manifest.

mod support;

use builder::digest::sha256;
use builder::image::config::new_config;
use builder::image::manifest::{canonical_json, new_index, new_manifest};
use builder::image::{PlatformSpec, Reference};
use builder::layer::compress::Compression;
use builder::layer::compression_attrs::CompressionAttrs;
use builder::output::{Destination, Export, OciTarget, Output, OutputError, OutputSpecError};
use builder::store::{Store, StoreError};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::schema::{Doc, validator};
use tar::{EntryType, Header};

/// A tar entry for the test layers.
fn entry(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: EntryType,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
    uid: u64,
) {
    let mut header = Header::new_ustar();
    header.set_path(path).unwrap();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(uid);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

fn layer_one() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "bin/", EntryType::Directory, 0o755, b"", None, 0);
    entry(
        &mut b,
        "bin/tool",
        EntryType::Regular,
        0o755,
        b"#!/bin/sh\necho tool\n",
        None,
        0,
    );
    entry(&mut b, "etc/", EntryType::Directory, 0o755, b"", None, 0);
    entry(
        &mut b,
        "etc/hello",
        EntryType::Regular,
        0o644,
        b"hello\n",
        None,
        0,
    );
    entry(
        &mut b,
        "etc/secret",
        EntryType::Regular,
        0o600,
        b"s3cret\n",
        None,
        0,
    );
    entry(
        &mut b,
        "gone.txt",
        EntryType::Regular,
        0o644,
        b"to be removed\n",
        None,
        0,
    );
    entry(&mut b, "home/", EntryType::Directory, 0o755, b"", None, 0);
    entry(
        &mut b,
        "home/user/",
        EntryType::Directory,
        0o750,
        b"",
        None,
        1000,
    );
    entry(
        &mut b,
        "home/user/notes",
        EntryType::Regular,
        0o640,
        b"mine\n",
        None,
        1000,
    );
    entry(&mut b, "keep/", EntryType::Directory, 0o755, b"", None, 0);
    entry(
        &mut b,
        "keep/old",
        EntryType::Regular,
        0o644,
        b"old\n",
        None,
        0,
    );
    entry(
        &mut b,
        "link",
        EntryType::Symlink,
        0o777,
        b"",
        Some("etc/hello"),
        0,
    );
    b.into_inner().unwrap()
}

fn layer_two() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, ".wh.gone.txt", EntryType::Regular, 0, b"", None, 0);
    entry(
        &mut b,
        "etc/hello",
        EntryType::Regular,
        0o644,
        b"hello again\n",
        None,
        0,
    );
    entry(&mut b, "keep/", EntryType::Directory, 0o700, b"", None, 0);
    entry(
        &mut b,
        "keep/.wh..wh..opq",
        EntryType::Regular,
        0,
        b"",
        None,
        0,
    );
    entry(
        &mut b,
        "keep/new",
        EntryType::Regular,
        0o644,
        b"new\n",
        None,
        0,
    );
    b.into_inner().unwrap()
}

/// What the image's filesystem holds, as `listing` shows it.
const EXPECTED_FS: &[&str] = &[
    "bin dir 755 0:0",
    "bin/tool file 755 0:0 #!/bin/sh\necho tool\n",
    "etc dir 755 0:0",
    "etc/hello file 644 0:0 hello again\n",
    "etc/secret file 600 0:0 s3cret\n",
    "home dir 755 0:0",
    "home/user dir 750 1000:1000",
    "home/user/notes file 640 1000:1000 mine\n",
    "keep dir 700 0:0",
    "keep/new file 644 0:0 new\n",
    "link symlink etc/hello",
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn put(store: &Store, media_type: MediaType, bytes: &[u8]) -> Descriptor {
    let digest = store.blobs().put(bytes).unwrap();
    Descriptor::new(media_type, bytes.len() as u64, digest)
}

/// A temp store holding the two-layer test image.
struct TestImage {
    _dir: tempfile::TempDir,
    store: Store,
    manifest: Descriptor,
    config: Descriptor,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
}

impl TestImage {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let tars = [layer_one(), layer_two()];
        let layers: Vec<Descriptor> = tars
            .iter()
            .map(|tar| put(&store, MediaType::ImageLayerGzip, &gzip(tar)))
            .collect();
        let mut config =
            serde_json::to_value(new_config(&PlatformSpec::parse("linux/amd64").unwrap())).unwrap();
        let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t).to_string()).collect();
        config["rootfs"]["diff_ids"] = json!(diff_ids);
        config["config"] = json!({"Env": ["PATH=/bin"], "Cmd": ["/bin/tool"]});
        let config = put(
            &store,
            MediaType::ImageConfig,
            &canonical_json(&config).unwrap(),
        );
        let manifest = new_manifest(config.clone(), layers.clone());
        let manifest = put(
            &store,
            MediaType::ImageManifest,
            &canonical_json(&manifest).unwrap(),
        );
        Self {
            _dir: dir,
            store,
            manifest,
            config,
            layers,
            diff_ids,
        }
    }

    fn write(
        &self,
        export: &Export,
        tags: &[&str],
    ) -> Result<builder::output::ExportReport, OutputError> {
        let tags: Vec<Reference> = tags.iter().map(|t| Reference::parse(t).unwrap()).collect();
        export.write(&self.store, &self.manifest, &tags)
    }
}

fn export(spec: &str) -> Export {
    match Output::parse(spec).unwrap() {
        Output::Export(export) => export,
        other => panic!("{spec} is not written by this module: {other:?}"),
    }
}

/// Every path under `root` as `path kind mode uid:gid [content|target]`, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(name);
            let full = root.join(&rel);
            let meta = std::fs::symlink_metadata(&full).unwrap();
            let owner = format!("{}:{}", meta.uid(), meta.gid());
            let mode = format!("{:o}", meta.mode() & 0o7777);
            let line = if meta.is_dir() {
                format!("{} dir {mode} {owner}", rel.display())
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&full).unwrap();
                format!("{} symlink {}", rel.display(), target.display())
            } else {
                let content = std::fs::read_to_string(&full).unwrap();
                format!("{} file {mode} {owner} {content}", rel.display())
            };
            out.push(line);
            if meta.is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// One entry of a tar as read back.
struct TarEntry {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    content: Vec<u8>,
}

/// The entries of a tar, in order.
fn tar_entries(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            TarEntry {
                path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link: e.link_name().unwrap().map(|l| l.display().to_string()),
                content,
            }
        })
        .collect()
}

/// Files under `dir` (relative path → mode and content), for comparing
/// a directory with a tar of the same files.
fn dir_files(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(rel);
            } else {
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    (mode, std::fs::read(dir.join(&rel)).unwrap()),
                );
            }
        }
    }
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn oci_layout_directory_is_read_by_umoci_and_skopeo() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let spec = format!("type=oci,tar=false,dest={}", layout.display());
    image
        .write(&export(&spec), &["example.com/team/app:v1"])
        .unwrap();

    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"],
        json!([{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest.digest().to_string(),
            "size": image.manifest.size(),
            "annotations": {
                "io.containerd.image.name": "example.com/team/app:v1",
                "org.opencontainers.image.ref.name": "v1",
            },
        }])
    );
    assert_eq!(
        std::fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    if let Some((_, v)) = validator() {
        v.validate(
            Doc::Index,
            &std::fs::read(layout.join("index.json")).unwrap(),
        )
        .unwrap();
        v.validate(
            Doc::Layout,
            &std::fs::read(layout.join("oci-layout")).unwrap(),
        )
        .unwrap();
    }
    // Every blob of the image, and nothing else.
    let mut blobs: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    blobs.sort();
    let mut expected: Vec<String> = [&image.manifest, &image.config]
        .into_iter()
        .chain(&image.layers)
        .map(|d| d.digest().digest().to_owned())
        .collect();
    expected.sort();
    assert_eq!(blobs, expected);

    let inspect: Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:v1", layout.display()))))
    .unwrap();
    assert_eq!(inspect["Digest"], image.manifest.digest().to_string());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Env"], json!(["PATH=/bin"]));
    assert_eq!(
        inspect["Layers"],
        json!(
            image
                .layers
                .iter()
                .map(|l| l.digest().to_string())
                .collect::<Vec<_>>()
        )
    );

    if !is_root() {
        eprintln!("SKIPPED: umoci unpack needs root to keep owners");
        return;
    }
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    // umoci, an independent reader, unpacks the same filesystem as our local output.
    assert_eq!(listing(&bundle.join("rootfs")), EXPECTED_FS);
}

#[test]
fn oci_tar_holds_the_directory_form_and_is_reproducible() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    image
        .write(
            &export(&format!("type=oci,tar=false,dest={}", dir.display())),
            &["app:1"],
        )
        .unwrap();
    let first = work.path().join("a/first.tar");
    let second = work.path().join("second.tar");
    for path in [&first, &second] {
        image
            .write(
                &export(&format!("type=oci,dest={}", path.display())),
                &["app:1"],
            )
            .unwrap();
    }
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(&second).unwrap(),
        "same image, same bytes"
    );
    assert_eq!(
        std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Nothing but the archive is left beside it.
    assert_eq!(std::fs::read_dir(work.path().join("a")).unwrap().count(), 1);

    let entries = tar_entries(&bytes);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries are sorted");
    assert_eq!(&paths[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(&paths[paths.len() - 2..], ["index.json", "oci-layout"]);
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.path);
    }
    let from_tar: BTreeMap<String, (u32, Vec<u8>)> = entries
        .into_iter()
        .filter(|e| e.kind == EntryType::Regular)
        .map(|e| (e.path, (e.mode, e.content)))
        .collect();
    assert_eq!(from_tar, dir_files(&dir));
}

#[test]
fn oci_directory_is_added_to_not_replaced() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let spec = format!(
        "type=oci,tar=false,dest={},\"name=app:1,app:2\"",
        dir.display()
    );
    image.write(&export(&spec), &[]).unwrap();
    // Written again under one of the tags and a new one: v1 replaced, 2 kept.
    let spec = format!("type=oci,tar=false,dest={},name=app:1", dir.display());
    image.write(&export(&spec), &[]).unwrap();
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, ["2", "1"]);
    for tag in ["1", "2"] {
        run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", dir.display())));
    }

    std::fs::write(dir.join("index.json"), b"not json").unwrap();
    let err = image.write(&export(&spec), &[]).unwrap_err();
    assert!(matches!(err, OutputError::ExistingIndex { .. }), "{err:?}");
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), b"not json");
}

#[test]
fn docker_archive_is_what_docker_load_reads() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    let spec = format!("type=docker,dest={}", archive.display());
    image
        .write(&export(&spec), &["app:v1", "localhost:5000/team/app:v2"])
        .unwrap();

    let entries = tar_entries(&std::fs::read(&archive).unwrap());
    let file = |name: &str| -> Value {
        let e = entries
            .iter()
            .find(|e| e.path == name)
            .unwrap_or_else(|| panic!("no {name}"));
        serde_json::from_slice(&e.content).unwrap()
    };
    let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.digest().digest());
    assert_eq!(
        file("manifest.json"),
        json!([{
            "Config": blob(&image.config),
            "RepoTags": ["app:v1", "localhost:5000/team/app:v2"],
            "Layers": image.layers.iter().map(blob).collect::<Vec<_>>(),
        }])
    );
    let top_layer = image.layers[1].digest().digest();
    assert_eq!(
        file("repositories"),
        json!({"app": {"v1": top_layer}, "localhost:5000/team/app": {"v2": top_layer}})
    );
    let index = file("index.json");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/app:v1"
    );
    assert_eq!(
        index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
        "v2"
    );
    assert!(entries.iter().any(|e| e.path == "oci-layout"));
    // Layers as stored: gzip.
    let layer = entries
        .iter()
        .find(|e| e.path == blob(&image.layers[0]))
        .unwrap();
    assert_eq!(&layer.content[..2], [0x1f, 0x8b]);

    let inspect: Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", archive.display()))))
    .unwrap();
    // skopeo makes a Docker manifest from manifest.json: same config, and
    // layers named by their diff IDs (it reads them decompressed, as docker load does).
    let raw: Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("docker-archive:{}", archive.display()))))
    .unwrap();
    assert_eq!(raw["config"]["digest"], image.config.digest().to_string());
    assert_eq!(
        raw["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect::<Vec<_>>(),
        image.diff_ids.iter().map(|d| json!(d)).collect::<Vec<_>>()
    );
    assert_eq!(inspect["Env"], json!(["PATH=/bin"]));
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn local_output_is_the_final_filesystem() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("out/rootfs");
    let report = image
        .write(&export(&dest.display().to_string()), &[])
        .unwrap();
    if !is_root() {
        // Owners outside the user's own ids are reported, not set.
        assert!(!report.warnings.is_empty());
        return;
    }
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(listing(&dest), EXPECTED_FS);

    // Again into the same directory: the user's own files stay, what the
    // image has is replaced, and nothing of the staging is left.
    std::fs::write(dest.join("mine.txt"), b"user file").unwrap();
    std::fs::write(dest.join("etc/hello"), b"edited").unwrap();
    std::fs::remove_file(dest.join("link")).unwrap();
    std::fs::create_dir(dest.join("link")).unwrap();
    image
        .write(&export(&format!("type=local,dest={}", dest.display())), &[])
        .unwrap();
    let mut expected: Vec<String> = EXPECTED_FS.iter().map(|s| s.to_string()).collect();
    expected.push("mine.txt file 644 0:0 user file".to_owned());
    expected.sort();
    assert_eq!(listing(&dest), expected);
}

#[test]
fn tar_output_is_the_final_filesystem_as_a_tar() {
    if !is_root() {
        eprintln!("SKIPPED: the filesystem tar keeps owners only when unpacked as root");
        return;
    }
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("fs.tar");
    image
        .write(&export(&format!("type=tar,dest={}", file.display())), &[])
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let entries = tar_entries(&bytes);
    // Every entry's time is the layers' own: `etc`, changed below by the
    // second layer without an `etc/` entry, keeps the first layer's.
    let mtimes: Vec<(&str, u64)> = entries.iter().map(|e| (e.path.as_str(), e.mtime)).collect();
    let expected: Vec<(&str, u64)> = entries
        .iter()
        .map(|e| (e.path.as_str(), 1_700_000_000))
        .collect();
    assert_eq!(mtimes, expected);
    let lines: Vec<String> = entries
        .into_iter()
        .map(|e| {
            let path = e.path.trim_end_matches('/');
            let (mode, uid, gid) = (e.mode, e.uid, e.gid);
            match e.kind {
                EntryType::Directory => format!("{path} dir {mode:o} {uid}:{gid}"),
                EntryType::Symlink => format!("{path} symlink {}", e.link.unwrap()),
                _ => format!(
                    "{path} file {mode:o} {uid}:{gid} {}",
                    String::from_utf8(e.content).unwrap()
                ),
            }
        })
        .collect();
    assert_eq!(lines, EXPECTED_FS);
    let again = work.path().join("again.tar");
    image
        .write(&export(&format!("type=tar,dest={}", again.display())), &[])
        .unwrap();
    assert_eq!(
        bytes,
        std::fs::read(&again).unwrap(),
        "same image, same bytes"
    );
}

#[test]
fn a_corrupt_blob_fails_the_export_and_leaves_nothing() {
    let image = TestImage::new();
    let path = image.store.blobs().path(image.layers[1].digest()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, &bytes).unwrap();

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    for spec in [
        format!("type=oci,dest={}", archive.display()),
        format!("type=docker,dest={}", archive.display()),
    ] {
        let err = image.write(&export(&spec), &["app:1"]).unwrap_err();
        assert!(
            matches!(&err, OutputError::Corrupt { digest, .. } if digest == image.layers[1].digest()),
            "{spec}: {err:?}"
        );
    }
    let dir = work.path().join("layout");
    let err = image
        .write(
            &export(&format!("type=oci,tar=false,dest={}", dir.display())),
            &[],
        )
        .unwrap_err();
    assert!(matches!(err, OutputError::Corrupt { .. }), "{err:?}");
    assert!(
        !dir.join("blobs/sha256")
            .join(image.layers[1].digest().digest())
            .exists()
    );
    assert!(!dir.join("index.json").exists());
    // Only the layout directory was made: no archive, no temp files.
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["layout"]);
    let temps = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(temps, 0);

    // The filesystem outputs catch it as a bad layer.
    let err = image
        .write(
            &export(&format!(
                "type=local,dest={}",
                work.path().join("fs").display()
            )),
            &[],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            OutputError::Layer { .. } | OutputError::DiffIdMismatch { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_blobs_and_indexes_are_explained() {
    let image = TestImage::new();
    let work = tempfile::tempdir().unwrap();
    let absent = Descriptor::new(MediaType::ImageManifest, 10, sha256(b"absent"));
    let err = export(&format!(
        "type=oci,dest={}",
        work.path().join("x.tar").display()
    ))
    .write(&image.store, &absent, &[])
    .unwrap_err();
    assert!(
        matches!(err, OutputError::Store(StoreError::BlobNotFound { .. })),
        "{err:?}"
    );

    let wrong_size = Descriptor::new(
        MediaType::ImageManifest,
        image.manifest.size() + 1,
        image.manifest.digest().clone(),
    );
    let err = export(&format!(
        "type=oci,dest={}",
        work.path().join("x.tar").display()
    ))
    .write(&image.store, &wrong_size, &[])
    .unwrap_err();
    assert!(matches!(err, OutputError::SizeMismatch { .. }), "{err:?}");

    // An index: a layout holds it whole; a docker archive or a filesystem cannot.
    let mut entry = image.manifest.clone();
    entry.set_platform(Some(
        oci_spec::image::PlatformBuilder::default()
            .os("linux")
            .architecture("amd64")
            .build()
            .unwrap(),
    ));
    let index = put(
        &image.store,
        MediaType::ImageIndex,
        &canonical_json(&new_index(vec![entry])).unwrap(),
    );
    let layout = work.path().join("layout");
    export(&format!("type=oci,tar=false,dest={}", layout.display()))
        .write(
            &image.store,
            &index,
            &[Reference::parse("app:multi").unwrap()],
        )
        .unwrap();
    run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:multi", layout.display())));
    let spec = format!("type=docker,dest={}", work.path().join("d.tar").display());
    let err = export(&spec).write(&image.store, &index, &[]).unwrap_err();
    assert!(
        matches!(err, OutputError::NotAManifest { .. }),
        "{spec}: {err:?}"
    );
    assert!(err.to_string().contains("multi-platform index"), "{err}");
    // A filesystem output gets a directory per platform, as buildx writes it.
    let fs = work.path().join("fs");
    export(&format!("type=local,dest={}", fs.display()))
        .write(&image.store, &index, &[])
        .unwrap();
    let entries: Vec<String> = std::fs::read_dir(&fs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["linux_amd64"]);
    assert!(fs.join("linux_amd64").read_dir().unwrap().next().is_some());
}

#[test]
fn output_values_parse_as_buildx_reads_them() {
    let r = |s: &str| Reference::parse(s).unwrap();
    let file = |s: &str| Destination::File(PathBuf::from(s));
    let none = CompressionAttrs::default();
    let cases: Vec<(&str, Output)> = vec![
        ("out", Output::Export(Export::Local { dest: "out".into() })),
        (
            "./a b/c",
            Output::Export(Export::Local {
                dest: "./a b/c".into(),
            }),
        ),
        (
            "-",
            Output::Export(Export::Tar {
                dest: Destination::Stdout,
            }),
        ),
        (
            "type=local,dest=dir",
            Output::Export(Export::Local { dest: "dir".into() }),
        ),
        (
            "type=tar",
            Output::Export(Export::Tar {
                dest: Destination::Stdout,
            }),
        ),
        (
            "type=tar,dest=fs.tar",
            Output::Export(Export::Tar {
                dest: file("fs.tar"),
            }),
        ),
        (
            "type=oci,dest=x.tar",
            Output::Export(Export::Oci {
                target: OciTarget::Tar(file("x.tar")),
                names: vec![],
                compression: none,
            }),
        ),
        (
            "type=oci,dest=-,name=app:1",
            Output::Export(Export::Oci {
                target: OciTarget::Tar(Destination::Stdout),
                names: vec![r("app:1")],
                compression: none,
            }),
        ),
        (
            "type=oci,tar=false,dest=layout",
            Output::Export(Export::Oci {
                target: OciTarget::Directory("layout".into()),
                names: vec![],
                compression: none,
            }),
        ),
        (
            "TYPE=oci, Tar=0,dest=layout",
            Output::Export(Export::Oci {
                target: OciTarget::Directory("layout".into()),
                names: vec![],
                compression: none,
            }),
        ),
        (
            "type=docker,dest=x.tar,\"name=a:1,b:2\"",
            Output::Export(Export::Docker {
                dest: file("x.tar"),
                names: vec![r("a:1"), r("b:2")],
                compression: none,
            }),
        ),
        (
            "type=docker,dest=-",
            Output::Export(Export::Docker {
                dest: Destination::Stdout,
                names: vec![],
                compression: none,
            }),
        ),
        // Without dest, as buildx: loaded into docker.
        (
            "type=docker,name=app:1",
            Output::Export(Export::Docker {
                dest: Destination::DockerLoad,
                names: vec![r("app:1")],
                compression: none,
            }),
        ),
        (
            "type=image",
            Output::Image {
                names: vec![],
                push: false,
                compression: none,
            },
        ),
        (
            "type=image,name=reg.io/a:1,push=true",
            Output::Image {
                names: vec![r("reg.io/a:1")],
                push: true,
                compression: none,
            },
        ),
        (
            "type=registry",
            Output::Image {
                names: vec![],
                push: true,
                compression: none,
            },
        ),
        (
            "type=registry,push=false",
            Output::Image {
                names: vec![],
                push: false,
                compression: none,
            },
        ),
        (
            "type=registry,name=reg.io/a:1,compression=zstd,compression-level=19,force-compression=true",
            Output::Image {
                names: vec![r("reg.io/a:1")],
                push: true,
                compression: CompressionAttrs {
                    compression: Some(Compression::Zstd),
                    level: Some(19),
                    force: Some(true),
                },
            },
        ),
        (
            "type=oci,dest=x.tar,compression=uncompressed",
            Output::Export(Export::Oci {
                target: OciTarget::Tar(file("x.tar")),
                names: vec![],
                compression: CompressionAttrs {
                    compression: Some(Compression::Uncompressed),
                    ..none
                },
            }),
        ),
        (
            "type=docker,dest=x.tar,compression-level=9",
            Output::Export(Export::Docker {
                dest: file("x.tar"),
                names: vec![],
                compression: CompressionAttrs {
                    level: Some(9),
                    ..none
                },
            }),
        ),
        (
            "type=local,\"dest=with,comma\"",
            Output::Export(Export::Local {
                dest: "with,comma".into(),
            }),
        ),
        (
            "type=local,\"dest=q\"\"uote\"",
            Output::Export(Export::Local {
                dest: "q\"uote".into(),
            }),
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(Output::parse(spec).unwrap(), expected, "{spec}");
    }

    let errors: Vec<(&str, &str)> = vec![
        ("", "empty --output value"),
        (
            "type=ftp,dest=x",
            "unknown type \"ftp\" (expected one of local, tar, oci, docker, image, registry)",
        ),
        ("dest=x,name=a", "type is required"),
        ("a,b", "field \"a\" is not key=value"),
        ("type=local", "type=local needs dest=DIR"),
        ("type=local,dest=", "type=local needs dest=DIR"),
        (
            "type=local,dest=a,tar=true",
            "type=local does not take \"tar\" (it takes dest)",
        ),
        (
            "type=tar,dest=a,compression=zstd",
            "type=tar does not take \"compression\" (it takes dest)",
        ),
        (
            "type=registry,compression=estargz",
            "compression=\"estargz\" is not supported: builder writes gzip, zstd or uncompressed layers",
        ),
        (
            "type=oci,dest=a,compression=brotli",
            "compression=\"brotli\": expected gzip, zstd or uncompressed",
        ),
        (
            "type=image,compression=gzip,compression-level=12",
            "compression-level=12 is out of range for gzip (0-9)",
        ),
        (
            "type=image,compression-level=fast",
            "compression-level=\"fast\": expected a whole number",
        ),
        (
            "type=docker,dest=a,force-compression=yes",
            "force-compression=\"yes\" is not a boolean",
        ),
        (
            "type=oci,tar=maybe,dest=a",
            "tar=\"maybe\" is not a boolean",
        ),
        ("type=oci,tar=false", "type=oci needs dest=DIR"),
        (
            "type=oci,tar=false,dest=-",
            "a directory cannot be written to stdout",
        ),
        ("type=oci,dest=a,dest=b", "dest is given more than once"),
        ("type=image,name=Bad/Name", "invalid name"),
        ("type=local,\"dest=x", "unterminated quoted field"),
        ("type=local,dest=a\"b", "a quote inside an unquoted field"),
        ("type=local,\"dest=a\"b", "text after the closing quote"),
    ];
    for (spec, message) in errors {
        let err = Output::parse(spec).unwrap_err();
        assert!(err.to_string().contains(message), "{spec:?}: {err}");
        if !spec.is_empty() {
            assert!(
                err.to_string().contains(&format!("{spec:?}")),
                "{spec:?} named in: {err}"
            );
        }
    }
    let source = std::error::Error::source(&Output::parse("type=image,name=Bad/Name").unwrap_err())
        .map(ToString::to_string)
        .unwrap();
    assert!(source.contains("must be lowercase"), "{source}");
    assert!(matches!(
        Output::parse("type=x").unwrap_err(),
        OutputSpecError::UnknownType { .. }
    ));
}
