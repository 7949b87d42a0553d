//! Removing whole trees inside the store (snapshots, leftover temp
//! directories) and measuring what they take. Trees unpacked from layers or
//! left by a killed step may hold read-only directories; removal makes our
//! own directories writable and retries. Symlinks are never followed: a link
//! is removed as a link, whatever it points at.

use super::StoreError;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Removes `path` (a file, a link or a directory tree); absent is fine.
pub(super) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("inspect", path, e)),
    };
    if !metadata.is_dir() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
            _ => Ok(()),
        };
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            // Rootless with a subordinate range: what a step's other users
            // own is removed as root of the user namespace.
            if let Some(removed) = crate::userns::remove_in_namespace(path) {
                return removed
                    .map_err(|e| StoreError::io("remove", path, std::io::Error::other(e)));
            }
            make_dirs_writable(path)?;
            std::fs::remove_dir_all(path).map_err(|e| StoreError::io("remove", path, e))
        }
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Gives the owner full access to every directory of the tree at `dir`
/// (a read-only directory's entries cannot be unlinked, nor a directory
/// without `x` be walked). Links are not followed.
fn make_dirs_writable(dir: &Path) -> Result<(), StoreError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let metadata =
            std::fs::symlink_metadata(&dir).map_err(|e| StoreError::io("inspect", &dir, e))?;
        let mode = metadata.permissions().mode();
        if mode & 0o700 != 0o700 {
            // `dir` is a directory, not a link (checked without following).
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(|e| StoreError::io("make writable", &dir, e))?;
        }
        let entries =
            std::fs::read_dir(&dir).map_err(|e| StoreError::io("list directory", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list directory", &dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| StoreError::io("inspect", &entry.path(), e))?;
            if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// The bytes the files of the tree at `path` hold (links count their own
/// size and are not followed); 0 when it is absent. Unreadable parts count
/// as empty: this is a report, not a check.
pub(super) fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !metadata.is_dir() {
            total += metadata.len();
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        pending.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_read_only_trees_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"precious").unwrap();

        let tree = dir.path().join("tree");
        let locked = tree.join("a/locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), b"12345").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::set_permissions(tree.join("a"), std::fs::Permissions::from_mode(0o555)).unwrap();

        assert!(tree_size(&tree) >= 5);
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"precious");
        // Absent already: nothing to do.
        remove_tree(&tree).unwrap();
        assert_eq!(tree_size(&tree), 0);
    }

    #[test]
    fn read_only_directories_are_opened_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        for path in [&inner, &dir.path().join("a")] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        make_dirs_writable(&dir.path().join("a")).unwrap();
        let mode = std::fs::metadata(&inner).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_link_to_a_directory_is_removed_as_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("f"), b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(target.join("f").exists());
    }
}
