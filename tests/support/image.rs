//! Fixture images built without builder: a rootfs from Debian's static
//! busybox, written as an OCI layout by the test and pushed with `skopeo
//! copy` — an independent path, so a bug in builder's push cannot hide a bug
//! in its pull.

use super::registry::Registry;
use builder::digest::sha256;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The OCI platform architecture of this machine (`amd64`, `arm64` …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An image pushed to a test registry, with every blob it consists of.
pub struct BaseImage {
    /// `127.0.0.1:PORT/busybox:latest`.
    pub reference: String,
    /// Digest of what the tag points at (a manifest, or an index).
    pub digest: String,
    /// Every blob of the image by digest: index, manifests, configs, layers.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// The busybox layer's digest (this host's, where platforms differ).
    pub layer: String,
    /// The config digest per architecture.
    pub configs: BTreeMap<String, String>,
    /// The OCI layout it was pushed from.
    pub layout: tempfile::TempDir,
}

impl BaseImage {
    /// A single-platform busybox image for this host, pushed as
    /// `<registry>/busybox:latest`.
    pub fn busybox(registry: &Registry) -> Self {
        Self::build(
            registry,
            "busybox",
            &[(host_arch(), HOST_BUSYBOX)],
            false,
            None,
            false,
        )
    }

    /// A single-platform image for this host with the busybox layer and
    /// then `tar` (uncompressed, written as is: it may hold entries no
    /// well-behaved tool would write), pushed as `<registry>/<name>:latest`.
    pub fn busybox_with_layer(registry: &Registry, name: &str, tar: Vec<u8>) -> Self {
        Self::build(
            registry,
            name,
            &[(host_arch(), HOST_BUSYBOX)],
            false,
            Some(tar),
            false,
        )
    }

    /// An OCI index over linux/<host arch> and one other architecture (which
    /// differ only in their configs), pushed as `<registry>/<name>:latest`.
    pub fn busybox_index(registry: &Registry, name: &str) -> Self {
        Self::build(
            registry,
            name,
            &[(host_arch(), HOST_BUSYBOX), (other_arch(), HOST_BUSYBOX)],
            true,
            None,
            false,
        )
    }

    /// An OCI index over linux/<host arch> and [`other_arch`], each
    /// platform's image the busybox layer and a layer of its own with
    /// `/etc/base-arch` holding its architecture, pushed as
    /// `<registry>/<name>:latest`. Only the host's busybox runs: no RUN may
    /// run in the other platform's stages.
    pub fn marked_index(registry: &Registry, name: &str) -> Self {
        Self::build(
            registry,
            name,
            &[(host_arch(), HOST_BUSYBOX), (other_arch(), HOST_BUSYBOX)],
            true,
            None,
            true,
        )
    }

    /// An OCI index over linux/amd64 (this host's busybox) and linux/arm64
    /// (Debian's arm64 busybox-static, see [`arm64_busybox`]), each a
    /// working busybox image, pushed as `<registry>/<name>:latest`; `None`
    /// (with a SKIPPED message) on a host that is not amd64 or without the
    /// arm64 package.
    pub fn busybox_amd64_arm64_index(registry: &Registry, name: &str) -> Option<Self> {
        if host_arch() != "amd64" {
            eprintln!("SKIPPED: the arm64 busybox image is made on amd64 hosts only");
            return None;
        }
        let arm64 = arm64_busybox()?;
        let arm64 = arm64.to_str().expect("UTF-8 temp path");
        Some(Self::build(
            registry,
            name,
            &[("amd64", HOST_BUSYBOX), ("arm64", arm64)],
            true,
            None,
            false,
        ))
    }

    /// `arches`: each architecture with the busybox binary its layer holds;
    /// `marked`: each platform's image gets a last layer of its own with
    /// `/etc/base-arch` naming its architecture.
    fn build(
        registry: &Registry,
        name: &str,
        arches: &[(&str, &str)],
        index: bool,
        extra: Option<Vec<u8>>,
        marked: bool,
    ) -> Self {
        let layout = tempfile::tempdir().expect("temp dir for the OCI layout");
        let mut blobs = BTreeMap::new();
        let mut layer = String::new();
        let mut configs = BTreeMap::new();
        let mut manifests = Vec::new();
        for (arch, busybox) in arches {
            let tars: Vec<Vec<u8>> = [busybox_rootfs_tar_of(Path::new(busybox))]
                .into_iter()
                .chain(extra.clone())
                .collect();
            let mut diff_ids = Vec::new();
            let mut layer_descriptors = Vec::new();
            for tar in &tars {
                diff_ids.push(sha256(tar).to_string());
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut gz, tar).expect("gzip in memory");
                let bytes = gz.finish().expect("gzip in memory");
                let size = bytes.len();
                let digest = put(&mut blobs, bytes);
                layer_descriptors.push(json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": size,
                }));
            }
            if marked {
                let tar = marker_tar(arch);
                diff_ids.push(sha256(&tar).to_string());
                let size = tar.len();
                let digest = put(&mut blobs, tar);
                layer_descriptors.push(json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest,
                    "size": size,
                }));
            }
            if *arch == host_arch() || layer.is_empty() {
                layer = layer_descriptors[0]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
            let history: Vec<Value> = (0..diff_ids.len())
                .map(|i| json!({"created_by": format!("builder test fixture: layer {i}")}))
                .collect();
            let config = json!({
                "architecture": arch,
                "os": "linux",
                "config": {
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "Cmd": ["sh"],
                },
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": history,
            });
            let config_bytes = serde_json::to_vec(&config).expect("serialize config");
            let config_size = config_bytes.len();
            let config_digest = put(&mut blobs, config_bytes);
            configs.insert(arch.to_string(), config_digest.clone());
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_size,
                },
                "layers": layer_descriptors,
            });
            let bytes = serde_json::to_vec(&manifest).expect("serialize manifest");
            let size = bytes.len();
            let digest = put(&mut blobs, bytes);
            manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let top = if index {
            let bytes = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }))
            .expect("serialize index");
            let size = bytes.len();
            let digest = put(&mut blobs, bytes);
            json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size})
        } else {
            let mut m = manifests.remove(0);
            if let Some(o) = m.as_object_mut() {
                o.remove("platform");
            }
            m
        };
        let digest = top["digest"].as_str().unwrap_or_default().to_string();
        write_layout(layout.path(), &blobs, top);
        let reference = format!("{}/{name}:latest", registry.host());
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"])
            .args(if index { &["--all"][..] } else { &[][..] })
            .arg("--dest-tls-verify=false")
            .args(registry.skopeo_creds("--dest-creds"))
            .arg(format!("oci:{}:latest", layout.path().display()))
            .arg(format!("docker://{reference}"));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {reference} failed: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            registry.log()
        );
        Self {
            reference,
            digest,
            blobs,
            layer,
            configs,
            layout,
        }
    }

    /// The OCI layout directory (`oci:` transport path for skopeo).
    pub fn layout_dir(&self) -> PathBuf {
        self.layout.path().to_path_buf()
    }
}

/// The architecture other than this host's that multi-platform fixtures
/// use: `arm64`, or `amd64` on an arm64 host.
pub fn other_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// A tar of `/etc/base-arch` holding `arch` and a newline.
fn marker_tar(arch: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let body = format!("{arch}\n");
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    root_owned(&mut header);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, "etc/", std::io::empty())
        .expect("tar in memory");
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    root_owned(&mut header);
    header.set_size(body.len() as u64);
    header.set_mtime(0);
    tar.append_data(&mut header, "etc/base-arch", body.as_bytes())
        .expect("tar in memory");
    tar.into_inner().expect("tar in memory")
}

fn put(blobs: &mut BTreeMap<String, Vec<u8>>, bytes: Vec<u8>) -> String {
    let digest = sha256(&bytes).to_string();
    blobs.insert(digest.clone(), bytes);
    digest
}

fn write_layout(dir: &Path, blobs: &BTreeMap<String, Vec<u8>>, top: Value) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).expect("create layout blob dir");
    for (digest, bytes) in blobs {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blob_dir.join(hex), bytes).expect("write layout blob");
    }
    let mut top = top;
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]}))
            .expect("serialize index.json"),
    )
    .expect("write index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

/// A deterministic tar of /bin/busybox, its applet links and a minimal
/// /etc/passwd and /etc/group.
/// Owner and group 0, written out: a fresh ustar header leaves the fields
/// empty, which Go's archive/tar reads as 0 but builder's extractor refuses.
fn root_owned(header: &mut tar::Header) {
    header.set_uid(0);
    header.set_gid(0);
}

pub fn busybox_rootfs_tar() -> Vec<u8> {
    busybox_rootfs_tar_of(Path::new(HOST_BUSYBOX))
}

/// This host's static busybox (Debian's busybox-static).
const HOST_BUSYBOX: &str = "/bin/busybox";

/// Where `.ci/install` leaves the foreign-architecture packages tests read
/// (they run offline).
pub const TEST_DEBS: &str = "/var/cache/builder-tests";

/// Debian's arm64 static busybox, unpacked once per test process from
/// `TEST_DEBS/busybox-static_arm64.deb`; `None` (with a SKIPPED message)
/// when `.ci/install` has not fetched it.
pub fn arm64_busybox() -> Option<PathBuf> {
    static UNPACKED: std::sync::OnceLock<Option<tempfile::TempDir>> = std::sync::OnceLock::new();
    let deb = Path::new(TEST_DEBS).join("busybox-static_arm64.deb");
    let dir = UNPACKED.get_or_init(|| {
        if !deb.is_file() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for the arm64 busybox");
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.path())
            .output()
            .expect("run dpkg-deb");
        assert!(
            out.status.success(),
            "dpkg-deb -x {}: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    });
    match dir {
        Some(dir) => Some(dir.path().join("bin/busybox")),
        None => {
            eprintln!(
                "SKIPPED: {} is absent (`.ci/install` fetches it: apt-get download busybox-static:arm64)",
                deb.display()
            );
            None
        }
    }
}

/// The busybox rootfs tar with `busybox` (of any architecture) as
/// `/bin/busybox`; the applet links are this host's busybox's (same
/// Debian version).
pub fn busybox_rootfs_tar_of(busybox: &Path) -> Vec<u8> {
    let busybox = std::fs::read(busybox).expect("read the static busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .expect("run busybox --list-full");
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    let mut tar = tar::Builder::new(Vec::new());
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        root_owned(&mut h);
        tar.append_data(&mut h, path, std::io::empty())
            .expect("append dir");
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        root_owned(&mut h);
        tar.append_data(&mut h, path, data).expect("append file");
    };
    for d in [
        "bin", "etc", "root", "sbin", "tmp", "usr", "usr/bin", "usr/sbin",
    ] {
        dir(&mut tar, d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    file(&mut tar, "bin/busybox", 0o755, &busybox);
    for applet in &applets {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        root_owned(&mut h);
        tar.append_link(&mut h, applet, "/bin/busybox")
            .expect("append applet link");
    }
    file(
        &mut tar,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    file(
        &mut tar,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    );
    tar.into_inner().expect("finish tar")
}

/// `security.capability` granting `cap_net_raw` (revision 2, effective).
pub const NET_RAW: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A crafted layer for a busybox base: its `etc` claims overlayfs' opaque
/// markers (`trusted.` and `user.`, which would hide the base's `etc` in an
/// overlay) and its `etc/tool` a redirect, beside file capabilities.
pub fn overlay_xattr_layer() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, xattrs: &[(&str, &[u8])]| {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        layer
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        layer
            .append_data(&mut header, name, std::io::empty())
            .unwrap();
    };
    add(
        "etc",
        tar::EntryType::Directory,
        &[
            ("trusted.overlay.opaque", b"y"),
            ("user.overlay.opaque", b"y"),
        ],
    );
    add(
        "etc/tool",
        tar::EntryType::Regular,
        &[
            ("trusted.overlay.redirect", b"/etc/passwd"),
            ("security.capability", NET_RAW),
        ],
    );
    layer.into_inner().unwrap()
}
