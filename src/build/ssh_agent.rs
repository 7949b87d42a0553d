//! `RUN --mount=type=ssh`: a socket of builder's own, with the mount's
//! mode and owner, that forwards every connection to the user's ssh-agent
//! socket for as long as the step runs. The step never sees the host's
//! socket path or its permissions (as with BuildKit's forwarded agent),
//! and the agent's traffic only passes through memory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// A forwarding socket; it stops forwarding (and its connections end)
/// when dropped.
pub(super) struct AgentProxy {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    // Removed (with the socket) after the task stops.
    _dir: tempfile::TempDir,
}

impl AgentProxy {
    /// Listens on `<dir>/agent.sock`, made `mode` and owned by `uid:gid`,
    /// forwarding to `agent`. A rootless build keeps its own owner when
    /// asked for root (root of the step's user namespace is this user).
    pub(super) fn start(
        agent: &Path,
        dir: tempfile::TempDir,
        (mode, uid, gid): (u32, u32, u32),
    ) -> std::io::Result<AgentProxy> {
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket)?;
        let as_root = rustix::process::geteuid().is_root();
        if as_root || uid != 0 || gid != 0 {
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode & 0o7777))?;
        let agent = agent.to_path_buf();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let agent = agent.clone();
                connections.spawn(async move {
                    // A failed connection ends only that client's session:
                    // the step sees its agent connection close.
                    if let Ok(mut upstream) = UnixStream::connect(&agent).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                // Reap finished sessions so a long step does not pile them up.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(AgentProxy {
            socket,
            task,
            _dir: dir,
        })
    }

    /// The socket to bind into the step.
    pub(super) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        // Dropping the task drops its JoinSet, which aborts every session.
        self.task.abort();
    }
}
