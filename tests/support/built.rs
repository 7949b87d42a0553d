//! "Build this Dockerfile and context, give me the image": the real
//! `builder` exports an OCI layout, and its layers are applied here in
//! memory (whiteouts and opaque directories honoured) into a root
//! filesystem with owners, modes and contents exactly as the layers record
//! them, next to the image config. What the ported BuildKit cases
//! (`tests/buildkit_*.rs`) compare.

use super::build::{Home, layout_blob, layout_image, stderr_of};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// A base for builds without a registry: a static busybox with its applet
/// links in `/bin` (the context needs `busybox`, as [`Home::context`] gives).
pub const BUSYBOX: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// What a path of the image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with its content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// A hard link to this other path of the same layer.
    Hardlink(String),
    /// Anything else, by its tar type flag.
    Other(char),
}

/// One path of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// A built image: its config and its root filesystem.
pub struct Built {
    /// The image config document.
    pub config: Value,
    /// The image manifest.
    pub manifest: Value,
    /// Every path (relative, no leading `/`, no trailing `/`).
    pub files: BTreeMap<String, Node>,
    /// What the build printed on stderr.
    pub stderr: String,
}

impl Home {
    /// Builds `context` (with `args` before it) into an OCI layout and
    /// reads the image back; panics with the build's output if it fails.
    pub fn built(&self, context: &Path, args: &[&str]) -> Built {
        let layout = tempfile::tempdir_in(self.dir.path()).expect("temp dir for the layout");
        let dest = format!("type=oci,dest={},tar=false", layout.path().display());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", &dest, context.to_str().expect("UTF-8 context path")]);
        let output = self.build(&all).output().expect("run builder");
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "the build failed:\n{stderr}");
        read_layout(layout.path(), stderr)
    }

    /// Builds `context` and expects it to fail with exit code 1; returns
    /// what it printed on stderr.
    pub fn build_fails(&self, context: &Path, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.push(context.to_str().expect("UTF-8 context path"));
        let output = self.build(&all).output().expect("run builder");
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "expected exit 1:\n{stderr}");
        stderr
    }
}

/// Writes `files` (relative path, content) into the context `dir`,
/// making their directories.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("context directory");
        std::fs::write(&path, content).expect("context file");
    }
}

/// The image of a single-image OCI layout directory.
pub fn read_layout(layout: &Path, stderr: String) -> Built {
    let (manifest, config) = layout_image(layout);
    let mut files = BTreeMap::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let blob = layout_blob(layout, layer["digest"].as_str().expect("digest"));
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        let tar: Box<dyn Read> = if media_type.ends_with("zstd") {
            Box::new(zstd::Decoder::new(&blob[..]).expect("zstd"))
        } else if media_type.ends_with("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(&blob[..]))
        } else {
            Box::new(&blob[..])
        };
        apply_layer(&mut files, tar);
    }
    Built {
        config,
        manifest,
        files,
        stderr,
    }
}

/// Applies one layer tar onto `files`: its whiteouts remove what the
/// layers below have, then its entries are added.
fn apply_layer(files: &mut BTreeMap<String, Node>, tar: impl Read) {
    let mut archive = tar::Archive::new(tar);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("layer tar") {
        let mut entry = entry.expect("layer entry");
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        let header = entry.header().clone();
        let link = entry
            .link_name()
            .expect("link name")
            .map(|l| l.to_string_lossy().into_owned());
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).expect("file content");
                Kind::File(data)
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link.unwrap_or_default()),
            tar::EntryType::Link => Kind::Hardlink(clean(&link.unwrap_or_default())),
            other => Kind::Other(other.as_byte() as char),
        };
        let node = Node {
            kind,
            mode: header.mode().expect("mode") & 0o7777,
            uid: go_number(header.uid(), &header.as_old().uid),
            gid: go_number(header.gid(), &header.as_old().gid),
        };
        entries.push((path, node));
    }
    let below = |path: &str, dir: &str| dir.is_empty() || path.starts_with(&format!("{dir}/"));
    for (path, _) in &entries {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name == ".wh..wh..opq" {
            files.retain(|p, _| !below(p, dir));
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            };
            files.retain(|p, _| *p != gone && !below(p, &gone));
        }
    }
    for (path, node) in entries {
        let name = path.rsplit('/').next().unwrap_or(&path);
        if !name.starts_with(".wh.") && !path.is_empty() {
            files.insert(path, node);
        }
    }
}

/// A numeric header field as Go's `archive/tar` reads it (what BuildKit
/// gives): left empty (all NUL or spaces), it is 0.
fn go_number(parsed: std::io::Result<u64>, field: &[u8]) -> u64 {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        return 0;
    }
    parsed.expect("a numeric header field")
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

impl Built {
    /// The node at `path` (leading `/` allowed); panics naming the path
    /// and what is there when absent.
    pub fn node(&self, path: &str) -> &Node {
        let key = clean(path);
        self.files.get(&key).unwrap_or_else(|| {
            let near: Vec<&String> = self
                .files
                .keys()
                .filter(|p| p.starts_with(key.split('/').next().unwrap_or_default()))
                .take(20)
                .collect();
            panic!("{path} is not in the image; near it: {near:?}")
        })
    }

    /// Whether the image has `path`.
    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(&clean(path))
    }

    /// The content of the regular file at `path`, as text.
    pub fn text(&self, path: &str) -> String {
        match &self.node(path).kind {
            Kind::File(data) => String::from_utf8_lossy(data).into_owned(),
            other => panic!("{path} is not a regular file but {other:?}"),
        }
    }

    /// `(uid, gid)` of `path`.
    pub fn owner(&self, path: &str) -> (u64, u64) {
        let node = self.node(path);
        (node.uid, node.gid)
    }

    /// Permission bits of `path`.
    pub fn mode(&self, path: &str) -> u32 {
        self.node(path).mode
    }

    /// The target of the symlink at `path`.
    pub fn link(&self, path: &str) -> String {
        match &self.node(path).kind {
            Kind::Symlink(target) => target.clone(),
            other => panic!("{path} is not a symlink but {other:?}"),
        }
    }

    /// The names directly in directory `dir` (`""` or `/` for the root), sorted.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let dir = clean(dir);
        self.files
            .keys()
            .filter_map(|p| {
                let rest = if dir.is_empty() {
                    p.as_str()
                } else {
                    p.strip_prefix(&format!("{dir}/"))?
                };
                (!rest.contains('/')).then(|| rest.to_owned())
            })
            .collect()
    }

    /// The container config (`config.config`).
    pub fn runtime(&self) -> &Value {
        &self.config["config"]
    }

    /// The value of `name` in the config's `Env`, if set.
    pub fn env(&self, name: &str) -> Option<String> {
        self.runtime()["Env"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// The `created_by` of every history entry, in order.
    pub fn history(&self) -> Vec<String> {
        self.config["history"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|h| h["created_by"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
