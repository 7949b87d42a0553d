//! Extended attributes and the overlayfs conventions built on them and on
//! special files, shared by the extractor, the differ and the copier.

use rustix::fd::AsFd;
use rustix::fs::{self as rfs, XattrFlags};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Extended attributes by name, in name order (so output is deterministic).
pub(crate) type Xattrs = BTreeMap<String, Vec<u8>>;

/// The overlayfs attribute namespaces; attributes in them are overlay
/// bookkeeping, never image content.
const OVERLAY_XATTR_PREFIXES: [&str; 2] = ["trusted.overlay.", "user.overlay."];

/// Whether `name` is overlayfs bookkeeping rather than content.
pub(crate) fn is_overlay_xattr(name: &str) -> bool {
    OVERLAY_XATTR_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether an image may carry xattr `name`: not overlay bookkeeping
/// (which would change what an overlay of the snapshot shows) and not in
/// the `trusted.` or `security.` namespaces (kernel and LSM state), except
/// `security.capability`, the file capabilities images legitimately ship.
/// BuildKit writes no other `security.` xattr into a layer either.
pub(crate) fn is_image_xattr(name: &str) -> bool {
    const KERNEL_NAMESPACES: [&str; 2] = ["trusted.", "security."];
    name == "security.capability"
        || !(is_overlay_xattr(name) || KERNEL_NAMESPACES.iter().any(|p| name.starts_with(p)))
}

fn not_supported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

/// The extended attributes of `path` itself (a symlink's own, not its
/// target's); none where the filesystem has no xattr support.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Xattrs> {
    let mut xattrs = Xattrs::new();
    let size = match rfs::llistxattr_query(path) {
        Ok(0) => return Ok(xattrs),
        Ok(n) => n,
        Err(e) if not_supported(e) => return Ok(xattrs),
        Err(e) => return Err(e.into()),
    };
    let mut list = vec![0u8; size];
    let n = rfs::llistxattr(path, &mut list[..])?;
    for name in list.get(..n).unwrap_or_default().split(|b| *b == 0) {
        if name.is_empty() {
            continue;
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "xattr name is not UTF-8"))?;
        match read_xattr(path, name)? {
            Some(value) => {
                xattrs.insert(name.to_owned(), value);
            }
            None => continue,
        }
    }
    Ok(xattrs)
}

/// The value of one attribute of `path` itself; `None` if it is not set.
pub(crate) fn read_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let size = match rfs::lgetxattr_query(path, name) {
        Ok(n) => n,
        Err(Errno::NODATA) => return Ok(None),
        Err(e) if not_supported(e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut value = vec![0u8; size];
    let n = rfs::lgetxattr(path, name, &mut value[..])?;
    value.truncate(n);
    Ok(Some(value))
}

/// Sets one attribute on an open file or directory.
pub(crate) fn set_xattr(fd: impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(rfs::fsetxattr(fd, name, value, XattrFlags::empty())?)
}

/// Sets one attribute on a path itself (used for symlinks, which cannot be opened).
pub(crate) fn set_xattr_nofollow(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(rfs::lsetxattr(path, name, value, XattrFlags::empty())?)
}

/// Which xattr namespace overlayfs uses for its opaque-directory marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`: overlayfs mounted by real root.
    Trusted,
    /// `user.overlay.*`: overlayfs mounted with `userxattr` (rootless).
    User,
}

impl OverlayXattrs {
    /// The attribute that marks a directory opaque (value `y`).
    pub fn opaque_name(self) -> &'static str {
        match self {
            Self::Trusted => "trusted.overlay.opaque",
            Self::User => "user.overlay.opaque",
        }
    }
}

/// Whether `path` is a directory overlayfs marks opaque in either namespace.
pub(crate) fn is_opaque_dir(path: &Path) -> io::Result<bool> {
    for ns in [OverlayXattrs::Trusted, OverlayXattrs::User] {
        if read_xattr(path, ns.opaque_name())?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a file of this mode and device number is an overlay whiteout (a 0/0 char device).
pub(crate) fn is_overlay_whiteout(mode: u32, rdev: u64) -> bool {
    mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0
}
