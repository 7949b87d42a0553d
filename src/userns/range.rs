//! Whether this process needs the rootless user namespace for owners to
//! stay exact (rootless with a subordinate ID range), what it says when it
//! cannot have one, and how it extracts without one.

use super::idmap::IdMap;
use crate::layer::OverlayXattrs;
use crate::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a layer is applied onto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stack {
    /// An empty snapshot directory that overlayfs will stack above the lower
    /// layers' snapshots: whiteouts are kept in overlay form, and parent
    /// directories the layer leaves out take their metadata from the lowers.
    Snapshot {
        /// The lower layers' snapshot directories, topmost first.
        lowers: Vec<PathBuf>,
    },
    /// A directory already holding the lower layers: whiteouts are applied.
    Applied,
}

impl Stack {
    /// The whiteouts for this stack, in the xattr namespace overlayfs reads
    /// (trusted as root, user when rootless).
    pub(super) fn whiteouts(&self, root: bool) -> WhiteoutStyle {
        match (self, root) {
            (Stack::Applied, _) => WhiteoutStyle::Apply,
            (Stack::Snapshot { .. }, true) => WhiteoutStyle::Overlay(OverlayXattrs::Trusted),
            (Stack::Snapshot { .. }, false) => WhiteoutStyle::Overlay(OverlayXattrs::User),
        }
    }

    /// The snapshots the root is stacked above, topmost first.
    pub(super) fn lowers(&self) -> &[PathBuf] {
        match self {
            Stack::Applied => &[],
            Stack::Snapshot { lowers } => lowers,
        }
    }
}

/// The rootless user namespace layers must be unpacked in: `Some` when this
/// process is not root and `/etc/subuid`/`/etc/subgid` grant it a range
/// (with `newuidmap`/`newgidmap` installed).
pub(super) fn namespace() -> Option<IdMap> {
    if rustix::process::geteuid().is_root() {
        return None;
    }
    Some(IdMap::detect()).filter(|map| matches!(map, IdMap::Range { .. }))
}

/// Whether this process is rootless without a subordinate ID range, so
/// that only owner `0:0` (its own IDs) can be kept in snapshots and steps.
pub fn missing_range() -> bool {
    !rustix::process::geteuid().is_root() && matches!(IdMap::detect(), IdMap::Single { .. })
}

/// What a rootless build without a subordinate ID range says once, before
/// its steps: which owners it cannot keep, and how to get a range.
pub fn missing_range_notice() -> Option<String> {
    let uid = rustix::process::geteuid().as_raw();
    missing_range().then(|| {
        format!(
            "warning: rootless without a subordinate ID range (uid {uid} has none in \
             /etc/subuid and /etc/subgid, or newuidmap/newgidmap are not installed): RUN \
             steps see every file as owned by 0:0 (base-image files of other owners too), \
             steps record files they change as 0:0, and chown to any other user fails with \
             EINVAL; grant a range (e.g. `usermod --add-subuids 100000-165535 \
             --add-subgids 100000-165535 USER`) and install uidmap to keep owners"
        )
    })
}

/// How this process extracts without a user namespace: as root with the
/// recorded owners; rootless with its own IDs only (other owners are
/// reported as warnings and left the user's).
pub fn in_process_options(stack: &Stack) -> ExtractOptions {
    if rustix::process::geteuid().is_root() {
        return ExtractOptions {
            whiteouts: stack.whiteouts(true),
            ownership: Ownership::Preserve,
        };
    }
    let uid = u64::from(rustix::process::geteuid().as_raw());
    let gid = u64::from(rustix::process::getegid().as_raw());
    ExtractOptions {
        whiteouts: stack.whiteouts(false),
        ownership: Ownership::Within {
            uids: uid..uid + 1,
            gids: gid..gid + 1,
        },
    }
}

/// The on-disk owners of what this process unpacks, as one line: as
/// recorded (root), or through the rootless namespace's maps. A snapshot
/// unpacked under another mapping shows steps other owners.
pub fn owner_mapping() -> String {
    if rustix::process::geteuid().is_root() {
        return "root: owners as the layers record them".to_owned();
    }
    match IdMap::detect() {
        IdMap::Single { uid, gid } => format!("rootless: 0 is {uid}:{gid}, no other ID"),
        IdMap::Range {
            uid,
            gid,
            subuid,
            subgid,
            ..
        } => format!(
            "rootless: 0 is {uid}:{gid}, uids 1.. are {}+{}, gids 1.. are {}+{}",
            subuid.start, subuid.count, subgid.start, subgid.count
        ),
    }
}
