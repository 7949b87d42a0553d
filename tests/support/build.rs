//! End-to-end build fixtures: a temp home with its own store, the real
//! `builder` binary, contexts made from `fixtures/` or from a Dockerfile
//! text, and readers for what `--output` wrote.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// A temp directory holding the store (`store/`), docker config and
/// whatever a test writes.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A fresh home.
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp home"),
        }
    }

    /// `path` inside the home.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    /// `builder build --progress plain ARGS…` against this home's store.
    pub fn build(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("builder").expect("builder binary");
        cmd.env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("BUILDER_ROOT", self.path("store"))
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["build", "--progress", "plain"])
            .args(args);
        cmd
    }

    /// `builder build --progress plain` as uid 65534 ([`NOBODY`]) with this
    /// home and store: the test must run as root, and give the home to
    /// that user first ([`give_to_nobody`]).
    pub fn build_as_nobody(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_builder"));
        cmd.env_clear()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TMPDIR", "/tmp")
            .arg("--root")
            .arg(self.path("store"))
            .args(["build", "--progress", "plain"])
            .current_dir("/")
            .uid(NOBODY)
            .gid(NOBODY);
        cmd
    }

    /// A copy of `fixtures/hello` with `/bin/busybox` beside its Dockerfile.
    pub fn hello_context(&self) -> PathBuf {
        let dest = self.path("hello");
        std::fs::create_dir_all(&dest).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hello");
        for name in ["Dockerfile", "app.sh"] {
            std::fs::copy(fixture.join(name), dest.join(name)).unwrap();
        }
        std::fs::copy("/bin/busybox", dest.join("busybox")).unwrap();
        dest
    }

    /// A copy of `fixtures/every` with `/bin/busybox` and the
    /// `payload.tar.gz` its ADD extracts (see [`payload_tar_gz`]).
    pub fn every_context(&self) -> PathBuf {
        let dest = self.path("every");
        std::fs::create_dir_all(&dest).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/every");
        for name in ["Dockerfile", "app.sh", "config.txt"] {
            std::fs::copy(fixture.join(name), dest.join(name)).unwrap();
        }
        std::fs::copy("/bin/busybox", dest.join("busybox")).unwrap();
        std::fs::write(dest.join("payload.tar.gz"), payload_tar_gz()).unwrap();
        dest
    }

    /// A context named `name` with this Dockerfile and `/bin/busybox`.
    pub fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let dest = self.path(name);
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("Dockerfile"), dockerfile).unwrap();
        std::fs::copy("/bin/busybox", dest.join("busybox")).unwrap();
        dest
    }
}

/// The unprivileged user the rootless tests build as.
pub const NOBODY: u32 = 65534;

/// Gives every entry under `dir` (and `dir`) to uid/gid [`NOBODY`].
pub fn give_to_nobody(dir: &Path) {
    std::os::unix::fs::lchown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    if !std::fs::symlink_metadata(dir).unwrap().is_dir() {
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        give_to_nobody(&entry.unwrap().path());
    }
}

/// Whether the test may build (namespaces and overlay mounts need root);
/// prints why not.
pub fn can_build() -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED: builds need root (namespaces and overlay mounts)");
        false
    }
}

/// What the build printed on stderr (its progress and report).
pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A blob of an OCI layout directory.
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in the layout")
}

/// The image manifest and config of a single-image OCI layout directory.
pub fn layout_image(layout: &Path) -> (Value, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest: Value = serde_json::from_slice(&layout_blob(layout, &digest)).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config: Value = serde_json::from_slice(&layout_blob(layout, &config_digest)).unwrap();
    (manifest, config)
}

/// One entry of a layer tar as a test compares it: path, type, mode,
/// owner, size and link target (mtimes left out: they differ per build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub link: Option<String>,
}

/// The entries of every layer of a single-image OCI layout, layer by layer.
pub fn layout_layer_entries(layout: &Path) -> Vec<Vec<TarEntry>> {
    let (manifest, _) = layout_image(layout);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let blob = layout_blob(layout, layer["digest"].as_str().unwrap());
            let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&blob[..]));
            archive
                .entries()
                .unwrap()
                .map(|entry| {
                    let entry = entry.unwrap();
                    let header = entry.header();
                    TarEntry {
                        path: entry.path().unwrap().to_string_lossy().into_owned(),
                        kind: header.entry_type().as_byte() as char,
                        mode: header.mode().unwrap(),
                        uid: header.uid().unwrap(),
                        gid: header.gid().unwrap(),
                        size: header.size().unwrap(),
                        link: entry
                            .link_name()
                            .unwrap()
                            .map(|l| l.to_string_lossy().into_owned()),
                    }
                })
                .collect()
        })
        .collect()
}

/// Every file under `root` (relative path, type and mode, and content for
/// regular files, target for symlinks), sorted.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut listing = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            let line = if meta.file_type().is_symlink() {
                format!("{rel} -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                pending.push(path.clone());
                format!("{rel}/ {mode:o}")
            } else {
                let digest = builder::digest::sha256(&std::fs::read(&path).unwrap());
                format!("{rel} {mode:o} {digest}")
            };
            listing.push(line);
        }
    }
    listing.sort();
    listing
}

/// A gzipped tar for ADD to extract: `payload/` holding `readme.txt`
/// (0644), an executable `bin/run` (0755, owned 1000:1000) and a symlink
/// `latest -> readme.txt`.
pub fn payload_tar_gz() -> Vec<u8> {
    let mut tar = TarGz::new();
    tar.entry(tar::EntryType::Directory, "payload/", 0o755, 0, b"");
    tar.entry(
        tar::EntryType::Regular,
        "payload/readme.txt",
        0o644,
        0,
        b"read me\n",
    );
    tar.entry(tar::EntryType::Directory, "payload/bin/", 0o755, 0, b"");
    tar.entry(
        tar::EntryType::Regular,
        "payload/bin/run",
        0o755,
        1000,
        b"#!/bin/sh\necho run\n",
    );
    tar.symlink("payload/latest", "readme.txt");
    tar.finish()
}

/// A gzipped tar made entry by entry, each with a fixed mtime and one ID
/// for owner and group, for archives that ADD extracts.
pub struct TarGz(tar::Builder<Vec<u8>>);

impl TarGz {
    /// An empty archive.
    pub fn new() -> TarGz {
        TarGz(tar::Builder::new(Vec::new()))
    }

    /// Adds an entry of `kind` at `path` holding `data`, owned `owner:owner`.
    pub fn entry(&mut self, kind: tar::EntryType, path: &str, mode: u32, owner: u64, data: &[u8]) {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(owner);
        header.set_gid(owner);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        self.0.append_data(&mut header, path, data).unwrap();
    }

    /// Adds a symlink `path -> target` (0777, owned 0:0).
    pub fn symlink(&mut self, path: &str, target: &str) {
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_uid(0);
        link.set_gid(0);
        link.set_mtime(1_600_000_000);
        link.set_size(0);
        self.0.append_link(&mut link, path, target).unwrap();
    }

    /// The archive, gzipped.
    pub fn finish(self) -> Vec<u8> {
        gzip(&self.0.into_inner().unwrap())
    }
}

/// `data` gzipped.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
}

/// The step cgroups (`builder-<pid>-…`) of builder process `pid` under
/// this process's own cgroups (a builder it started makes them there), in
/// every mounted cgroup hierarchy.
pub fn step_cgroups_of(pid: u32) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split(' ').nth(4)?;
            after.starts_with("cgroup").then(|| PathBuf::from(point))
        })
        .collect();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let prefix = format!("builder-{pid}-");
    let mut found = Vec::new();
    for path in own.lines().filter_map(|line| line.splitn(3, ':').nth(2)) {
        for point in &points {
            let dir = point.join(path.trim_start_matches('/'));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            found.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path()),
            );
        }
    }
    found.sort();
    found.dedup();
    found
}
