//! Shared pieces of the layer tests: hand-made tars (raw names, so
//! malicious ones can be written), root checks and overlay mounts.
#![allow(dead_code)] // each test binary uses a different part of it

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Whether the test runs as root; prints why it is skipped when not.
pub fn root_or_skip(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED: {test} needs root (mknod, chown, trusted.* xattrs or mounts)");
    }
    root
}

/// A tar archive built entry by entry, with names written raw into the header.
pub struct TarBuf {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuf {
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: EntryType, mode: u32) -> Header {
        let mut header = Header::new_ustar();
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(0);
        header
    }

    fn push(&mut self, mut header: Header, data: &[u8]) -> &mut Self {
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// A regular file, mode 0644, owned by root.
    pub fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
        self.push(Self::header(name, EntryType::Regular, 0o644), content)
    }

    /// A regular file with the given mode, owner and mtime.
    pub fn file_with(
        &mut self,
        name: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut header = Self::header(name, EntryType::Regular, mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(mtime);
        self.push(header, content)
    }

    /// A regular file (mode 0644) whose uid, gid and mtime header fields
    /// are left empty: all `blank` bytes (NUL or space), as some tools write.
    pub fn file_with_blank_numbers(&mut self, name: &str, content: &[u8], blank: u8) -> &mut Self {
        let mut header = Self::header(name, EntryType::Regular, 0o644);
        let fields = header.as_old_mut();
        fields.uid.fill(blank);
        fields.gid.fill(blank);
        fields.mtime.fill(blank);
        self.push(header, content)
    }

    /// A directory, mode 0755.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.push(Self::header(name, EntryType::Directory, 0o755), b"")
    }

    /// A directory with the given mode and mtime.
    pub fn dir_with(&mut self, name: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut header = Self::header(name, EntryType::Directory, mode);
        header.set_mtime(mtime);
        self.push(header, b"")
    }

    /// A symlink.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(name, EntryType::Symlink, 0o777);
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(header, b"")
    }

    /// A hardlink.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(name, EntryType::Link, 0o644);
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(header, b"")
    }

    /// A character device.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = Self::header(name, EntryType::Char, 0o666);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.push(header, b"")
    }

    /// A fifo.
    pub fn fifo(&mut self, name: &str) -> &mut Self {
        self.push(Self::header(name, EntryType::Fifo, 0o644), b"")
    }

    /// A file with PAX xattr records.
    pub fn file_with_xattrs(
        &mut self,
        name: &str,
        content: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(name, content)
    }

    /// A directory (mode 0755) with PAX xattr records.
    pub fn dir_with_xattrs(&mut self, name: &str, xattrs: &[(&str, &[u8])]) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.dir(name)
    }

    /// The finished archive.
    pub fn finish(&mut self) -> Vec<u8> {
        self.builder.finish().unwrap();
        self.builder.get_ref().clone()
    }
}

/// A temp dir holding `root/` (the extraction root) and nothing else, so a
/// test can check that nothing was written beside the root.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Names beside `root/` in the sandbox: anything here escaped.
    pub fn outside(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "root")
            .collect();
        names.sort();
        names
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Every path under `root`, sorted, as `path kind` lines (`kind`: `dir`,
/// `file:<content>`, `link-><target>`, `chr:<maj>:<min>`, `fifo`).
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out.sort();
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        let meta = std::fs::symlink_metadata(root.join(&rel)).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir".to_owned()
        } else if ft.is_symlink() {
            format!(
                "link->{}",
                std::fs::read_link(root.join(&rel)).unwrap().display()
            )
        } else if ft.is_char_device() {
            format!(
                "chr:{}:{}",
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev())
            )
        } else if ft.is_fifo() {
            "fifo".to_owned()
        } else {
            format!(
                "file:{}",
                String::from_utf8_lossy(&std::fs::read(root.join(&rel)).unwrap())
            )
        };
        out.push(format!("{} {kind}", rel.display()));
        if ft.is_dir() {
            walk(root, &rel, out);
        }
    }
}

/// An overlay mount, unmounted on drop.
pub struct OverlayMount {
    pub merged: PathBuf,
}

impl OverlayMount {
    /// Mounts an overlay of `lowers` (uppermost first) with an optional
    /// upper/work pair on `merged`, with redirect_dir and metacopy off; `None`
    /// with a message when the kernel refuses.
    pub fn mount(lowers: &[&Path], upper: Option<(&Path, &Path)>, merged: &Path) -> Option<Self> {
        let lower = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut data = format!("lowerdir={lower}");
        if let Some((upper, work)) = upper {
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        data.push_str(",redirect_dir=off,metacopy=off,index=off");
        let options = std::ffi::CString::new(data.clone()).unwrap();
        match rustix::mount::mount(
            "overlay",
            merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(options.as_c_str()),
        ) {
            Ok(()) => Some(Self {
                merged: merged.to_path_buf(),
            }),
            Err(e) => {
                eprintln!("SKIPPED: cannot mount overlayfs ({e}) with {data}");
                None
            }
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The value of xattr `name` on `path` itself, if set.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}
