//! `RUN --mount=type=ssh`: a socket of builder's own, with the mount's
//! mode and owner, that serves the step as a read-only view of the user's
//! ssh-agent for as long as the step runs. As BuildKit's forwarded agent,
//! it passes on only listing keys and signing; adding, removing, locking
//! and extensions are answered with failure, so a step cannot change the
//! user's agent. The step never sees the host's socket path or its
//! permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
                    // A failed session ends only that client's connection.
                    let _ = serve(&mut client, &agent).await;
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

/// `SSH_AGENTC_REQUEST_IDENTITIES`.
const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENTC_SIGN_REQUEST`.
const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENT_FAILURE`.
const FAILURE: u8 = 5;
/// The largest message passed on (Go's agent package allows as much).
const MAX_MESSAGE: usize = 16 << 20;

/// One client session: each request that only reads is passed to the
/// agent and its answer back; any other is answered with failure.
async fn serve(client: &mut UnixStream, agent: &Path) -> std::io::Result<()> {
    let mut upstream = UnixStream::connect(agent).await?;
    while let Some(request) = read_message(client).await? {
        match request.first() {
            Some(&(REQUEST_IDENTITIES | SIGN_REQUEST)) => {
                write_message(&mut upstream, &request).await?;
                let Some(reply) = read_message(&mut upstream).await? else {
                    return Ok(());
                };
                write_message(client, &reply).await?;
            }
            _ => write_message(client, &[FAILURE]).await?,
        }
    }
    Ok(())
}

/// One length-prefixed agent message; `None` at a clean end of stream.
async fn read_message(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match from.read_exact(&mut length).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("ssh-agent message of {length} bytes is too large"),
        ));
    }
    let mut message = vec![0; length];
    from.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_message(to: &mut (impl AsyncWrite + Unpin), message: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(message.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "message too large"))?;
    to.write_all(&length.to_be_bytes()).await?;
    to.write_all(message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_listing_and_signing_reach_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // The agent answers every request with its type plus 100.
        let seen = tokio::spawn(async move {
            let mut types = Vec::new();
            let (mut conn, _) = agent.accept().await.unwrap();
            while let Some(message) = read_message(&mut conn).await.unwrap() {
                types.push(message[0]);
                write_message(&mut conn, &[message[0] + 100]).await.unwrap();
            }
            types
        });
        let scratch = tempfile::tempdir().unwrap();
        let proxy = AgentProxy::start(&agent_path, scratch, (0o600, 0, 0)).unwrap();
        let mut stream = UnixStream::connect(proxy.socket()).await.unwrap();
        for (sent, answer) in [
            (vec![REQUEST_IDENTITIES], REQUEST_IDENTITIES + 100),
            (vec![19], FAILURE),
            (vec![SIGN_REQUEST, 1, 2], SIGN_REQUEST + 100),
            (vec![17, 0], FAILURE),
            (vec![], FAILURE),
        ] {
            write_message(&mut stream, &sent).await.unwrap();
            let reply = read_message(&mut stream).await.unwrap().unwrap();
            assert_eq!(reply, [answer], "{sent:?}");
        }
        drop(stream);
        assert_eq!(
            seen.await.unwrap(),
            [REQUEST_IDENTITIES, SIGN_REQUEST],
            "removing and adding never reach the agent"
        );
    }
}
