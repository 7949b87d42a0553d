//! What a step changed, as a list of [`Change`]s for the layer writer.
//!
//! Two sources: an overlay upperdir (the cheap way: it holds exactly what
//! changed, so the cost follows the change, not the image), and, where
//! overlayfs cannot be mounted, a comparison of a copy-up snapshot with its
//! parent tree. Both give the same kind of change list.
//!
//! The overlay must be mounted with `redirect_dir=off` and `metacopy=off`:
//! a renamed directory or a metadata-only copy-up would otherwise leave
//! the upperdir without the content it stands for.

use super::LayerError;
use super::error::fs_err;
use super::fsmeta::{self, Xattrs};
use super::tar::Change;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The names in a directory, sorted so output does not depend on the filesystem's order.
fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(fs_err("listing", dir))? {
        names.push(entry.map_err(fs_err("listing", dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn lstat(path: &Path) -> Result<Metadata, LayerError> {
    fs::symlink_metadata(path).map_err(fs_err("reading metadata of", path))
}

/// The change an overlay upperdir records: every path in it, with 0/0
/// character devices as whiteouts and opaque directories (`opaque=y` in
/// the trusted or user overlay namespace) marked opaque.
pub fn overlay_changes(upper: &Path) -> Result<Vec<Change>, LayerError> {
    let mut changes = Vec::new();
    overlay_dir(upper, Path::new(""), &mut changes)?;
    Ok(changes)
}

fn overlay_dir(upper: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<(), LayerError> {
    for name in sorted_names(&upper.join(rel))? {
        let path = rel.join(&name);
        let full = upper.join(&path);
        let meta = lstat(&full)?;
        if fsmeta::is_overlay_whiteout(meta.mode(), meta.rdev()) {
            out.push(Change::Whiteout(path));
        } else if meta.is_dir() {
            if fsmeta::is_opaque_dir(&full).map_err(fs_err("reading xattrs of", &full))? {
                out.push(Change::Opaque(path.clone()));
            }
            out.push(Change::Put(path.clone()));
            overlay_dir(upper, &path, out)?;
        } else {
            out.push(Change::Put(path));
        }
    }
    Ok(())
}

/// Every path under `root`: the change that creates the whole tree.
pub fn full_tree(root: &Path) -> Result<Vec<Change>, LayerError> {
    let mut changes = Vec::new();
    for name in sorted_names(root)? {
        add_subtree(root, PathBuf::from(name), &mut changes)?;
    }
    Ok(changes)
}

fn add_subtree(root: &Path, rel: PathBuf, out: &mut Vec<Change>) -> Result<(), LayerError> {
    let full = root.join(&rel);
    let is_dir = lstat(&full)?.is_dir();
    if is_dir {
        for name in sorted_names(&full)? {
            add_subtree(root, rel.join(name), out)?;
        }
    }
    out.push(Change::Put(rel));
    Ok(())
}

/// The change from the tree `parent` to the tree `current` (a copy of
/// `parent` a step then modified). An entry counts as changed when its
/// type, mode, owner, size, mtime, xattrs, symlink target or device
/// differ, or, where timestamps are too coarse to tell (no nanoseconds),
/// its content does. Directories holding a change are included, as an
/// overlay copy-up would; a directory left with none of its former
/// entries becomes opaque rather than one whiteout per entry.
pub fn tree_changes(parent: &Path, current: &Path) -> Result<Vec<Change>, LayerError> {
    let mut changes = Vec::new();
    let trees = Trees { parent, current };
    trees.diff_dir(Path::new(""), &mut changes)?;
    Ok(changes)
}

struct Trees<'a> {
    parent: &'a Path,
    current: &'a Path,
}

impl Trees<'_> {
    /// Diffs the directory `rel`; whether anything below it changed.
    fn diff_dir(&self, rel: &Path, out: &mut Vec<Change>) -> Result<bool, LayerError> {
        let current_names = sorted_names(&self.current.join(rel))?;
        let parent_names = sorted_names(&self.parent.join(rel))?;
        let mut changed = false;
        for name in &current_names {
            let path = rel.join(name);
            let now = lstat(&self.current.join(&path))?;
            let before = match fs::symlink_metadata(self.parent.join(&path)) {
                Ok(meta) => Some(meta),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(fs_err("reading metadata of", &self.parent.join(&path))(e)),
            };
            match before {
                Some(before) if before.is_dir() && now.is_dir() => {
                    let inner = self.diff_dir(&path, out)?;
                    if inner || !self.same(&path, &before, &now)? {
                        out.push(Change::Put(path));
                        changed = true;
                    }
                }
                Some(before) if self.same(&path, &before, &now)? => {}
                _ => {
                    add_subtree(self.current, path, out)?;
                    changed = true;
                }
            }
        }
        let kept: HashSet<&OsString> = current_names.iter().collect();
        let removed: Vec<&OsString> = parent_names.iter().filter(|n| !kept.contains(n)).collect();
        if !removed.is_empty() {
            changed = true;
            if removed.len() == parent_names.len() && !rel.as_os_str().is_empty() {
                out.push(Change::Opaque(rel.to_path_buf()));
            } else {
                out.extend(removed.into_iter().map(|n| Change::Whiteout(rel.join(n))));
            }
        }
        Ok(changed)
    }

    /// Whether the entry at `rel` is unchanged between the two trees.
    fn same(&self, rel: &Path, before: &Metadata, now: &Metadata) -> Result<bool, LayerError> {
        let file_type_and_owner =
            before.mode() == now.mode() && before.uid() == now.uid() && before.gid() == now.gid();
        let times = before.mtime() == now.mtime() && before.mtime_nsec() == now.mtime_nsec();
        let ft = now.file_type();
        let sized = !ft.is_dir() && before.len() != now.len();
        let device = (ft.is_char_device() || ft.is_block_device()) && before.rdev() != now.rdev();
        if !file_type_and_owner || sized || device || (!ft.is_dir() && !times) {
            return Ok(false);
        }
        let (old, new) = (self.parent.join(rel), self.current.join(rel));
        if self.xattrs(&old)? != self.xattrs(&new)? {
            return Ok(false);
        }
        if ft.is_symlink() {
            let read = |p: &Path| fs::read_link(p).map_err(fs_err("reading the symlink", p));
            return Ok(read(&old)? == read(&new)?);
        }
        if ft.is_file() && now.mtime_nsec() == 0 {
            return same_content(&old, &new);
        }
        Ok(true)
    }

    fn xattrs(&self, path: &Path) -> Result<Xattrs, LayerError> {
        let mut xattrs = fsmeta::read_xattrs(path).map_err(fs_err("reading xattrs of", path))?;
        xattrs.retain(|name, _| !fsmeta::is_overlay_xattr(name));
        Ok(xattrs)
    }
}

/// Whether two files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> Result<bool, LayerError> {
    let open = |p: &Path| fs::File::open(p).map_err(fs_err("opening", p));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(fs_err("reading", a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(fs_err("reading", b))?;
        if ba.get(..na) != bb.get(..nb) {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match file.read(rest)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
