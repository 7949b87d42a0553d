//! The wire between the parent and the re-executed helper.
//!
//! Parent → helper, on the helper's stdin: one line of JSON ([`Request`]),
//! then — only when a user namespace is made — one [`GO`] line once the
//! parent has written the uid/gid maps. Helper → parent, on [`STATUS_FD`]:
//! newline-delimited JSON [`Message`]s. The step's own stdout and stderr are
//! the helper's, so nothing of the protocol ever mixes with the step's output.

use super::spec::Spec;
pub(crate) use crate::userns::IdMapSummary;
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
    /// The step's cgroup (a directory per hierarchy) for the helper to
    /// join first; empty where steps get none.
    #[serde(default)]
    pub cgroup: Vec<std::path::PathBuf>,
    /// The slirp4netns program, for a private network (the helper has no
    /// `PATH` to find it).
    #[serde(default)]
    pub nat: Option<std::path::PathBuf>,
    /// Set up the sandbox and exit 0 instead of running the step: whether
    /// namespaces and mounts work here (see `Sandbox::probe`).
    #[serde(default)]
    pub probe: bool,
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
