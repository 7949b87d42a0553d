//! The wire between the parent and the re-executed helper.
//!
//! Parent → helper, on the helper's stdin: one line of JSON ([`Request`]),
//! then — only when a user namespace is made — one [`GO`] line once the
//! parent has written the uid/gid maps. Helper → parent, on [`STATUS_FD`]:
//! newline-delimited JSON [`Message`]s. The step's own stdout and stderr are
//! the helper's, so nothing of the protocol ever mixes with the step's output.

use super::spec::Spec;
use serde::{Deserialize, Serialize};

/// The helper's file descriptor for [`Message`]s (stdin, stdout and stderr
/// belong to the request and the step).
pub(crate) const STATUS_FD: i32 = 3;

/// The line the parent sends once the id maps are written.
pub(crate) const GO: &str = "go";

/// What the parent sends first.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The step to run.
    pub spec: Spec,
    /// The parent's pid, so the helper notices if it died before the
    /// parent-death signal was armed.
    pub parent_pid: i32,
    /// An empty directory of the parent's for the helper's files (removed by
    /// the parent, also when it cancels the step).
    pub scratch: std::path::PathBuf,
    /// Present when the helper must make a user namespace (rootless).
    pub user_namespace: Option<IdMapSummary>,
    /// The slirp4netns program, for a private network (the helper has no
    /// `PATH` to find it).
    #[serde(default)]
    pub nat: Option<std::path::PathBuf>,
}

/// Which IDs exist inside the user namespace the parent will map: inside IDs
/// `0..uids` and `0..gids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdMapSummary {
    /// Number of mapped user IDs, starting at 0.
    pub uids: u32,
    /// Number of mapped group IDs, starting at 0.
    pub gids: u32,
    /// Whether `setgroups(2)` stays allowed (false for a single-ID map, where
    /// the kernel requires `deny` before an unprivileged gid_map write).
    pub setgroups: bool,
}

/// What the helper reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Message {
    /// The user namespace exists; the parent may write the maps now.
    UserNamespaceReady,
    /// The sandbox could not be set up; the step never ran.
    SetupFailed(String),
    /// overlayfs could not be mounted for the rootfs; the step never ran.
    OverlayUnavailable(String),
    /// The step's pid 1 exited with this code.
    Exited(i32),
    /// The step's pid 1 was killed by this signal.
    Signaled(i32),
}
