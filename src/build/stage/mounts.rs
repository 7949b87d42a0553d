//! `RUN --mount` set-up for one step: bound files copied out of the
//! context, a stage or an image into a throwaway directory (so `rw` writes
//! are lost and `.dockerignore` holds), persistent cache directories under
//! `<store root>/cache-mounts/` with their sharing locks, tmpfs mounts,
//! secrets (read now, handed to the sandbox in memory) and ssh agents
//! (forwarded through a socket of the step's own). The cache key records
//! each mount's spec, never a secret's value.

use super::{StepContext, StepError};
use crate::build::error::MountSetupError;
use crate::build::ssh_agent::AgentProxy;
use crate::exec::StepMounts;
use crate::exec::copy::SourceRoot;
use crate::exec::rootfs::{Node, RootfsView};
use crate::file_kind::FileKind;
use crate::plan::{self, Mount, Sharing};
use crate::sandbox::{BindMount, SecretEnv, SecretFile, TmpfsMount};
use crate::store::{CacheMountAccess, CacheMountLock};
use std::fs::File;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MountSetupError {
    let path = path.to_path_buf();
    move |source| MountSetupError::Io {
        action,
        path,
        source,
    }
}

/// What must live while the step runs: throwaway copies, lock files,
/// ssh agent forwarders.
#[derive(Default)]
pub(super) struct Held {
    dirs: Vec<tempfile::TempDir>,
    locks: Vec<CacheMountLock>,
    agents: Vec<AgentProxy>,
}

impl StepContext<'_> {
    /// The step's mounts, in `--mount` order; `workdir` resolves relative
    /// targets.
    pub(super) async fn run_mounts(
        &self,
        run: &plan::RunStep,
        workdir: &str,
    ) -> Result<(StepMounts, Held), StepError> {
        let mut mounts = StepMounts::default();
        let mut held = Held::default();
        // BuildKit numbers the default ssh targets by the step's ssh mounts.
        let mut ssh_index = 0;
        for mount in &run.mounts {
            let failed = |source: MountSetupError| StepError::Mount {
                spec: mount.spec.to_string(),
                source,
            };
            let target = |written: &str| target_path(written, workdir).map_err(failed);
            match &mount.mount {
                Mount::Bind {
                    target: written,
                    source,
                    writable,
                } => {
                    let target = target(written)?;
                    let (copy, name, digest) = self.copy_out(mount, source, &mut held).await?;
                    mounts.binds.push(BindMount {
                        source: copy,
                        target,
                        readonly: !writable,
                    });
                    mounts.keys.push(format!("{} {name} {digest}", mount.spec));
                }
                Mount::Cache {
                    target: written,
                    id,
                    sharing,
                    readonly,
                    source,
                    mode,
                    uid,
                    gid,
                } => {
                    let target = target(written)?;
                    let (new, key) = match &mount.source {
                        // BuildKit bases the cache on `from` (at `source`)
                        // and keys it by that content too.
                        Some(_) => {
                            let (copy, _, digest) = self.copy_out(mount, source, &mut held).await?;
                            let key = format!("{} from {digest}", mount.spec);
                            (NewCache::Seeded { copy, digest }, key)
                        }
                        None => (
                            NewCache::Empty {
                                mode: *mode,
                                owner: self
                                    .shared
                                    .executor
                                    .layer_owners()
                                    .on_disk(*uid, *gid)
                                    .ok_or_else(|| StepError::Mount {
                                        spec: mount.spec.to_string(),
                                        source: MountSetupError::Unmapped {
                                            uid: *uid,
                                            gid: *gid,
                                        },
                                    })?,
                            },
                            mount.spec.to_string(),
                        ),
                    };
                    let dir = self
                        .cache_dir(id, *sharing, new, &mut held)
                        .map_err(|source| StepError::Mount {
                            spec: mount.spec.to_string(),
                            source,
                        })?;
                    mounts.binds.push(BindMount {
                        source: dir,
                        target,
                        readonly: *readonly,
                    });
                    mounts.keys.push(key);
                }
                Mount::Tmpfs {
                    target: written,
                    size,
                    readonly,
                } => {
                    mounts.tmpfs.push(TmpfsMount {
                        target: target(written)?,
                        size: *size,
                        readonly: *readonly,
                    });
                    mounts.keys.push(mount.spec.to_string());
                }
                Mount::Secret(secret) => {
                    mounts.keys.push(mount.spec.to_string());
                    self.secret(secret, &mut mounts, workdir).map_err(failed)?;
                }
                Mount::Ssh(ssh) => {
                    mounts.keys.push(mount.spec.to_string());
                    let target = target(
                        &ssh.target
                            .clone()
                            .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_index}")),
                    )?;
                    if ssh_index == 0 && !run.env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
                        let socket = target.to_string_lossy().into_owned();
                        mounts.env.push(("SSH_AUTH_SOCK".to_owned(), socket));
                    }
                    ssh_index += 1;
                    if let Some(proxy) = self.ssh_agent(ssh, &mut mounts, target).map_err(failed)? {
                        held.agents.push(proxy);
                    }
                }
            }
        }
        Ok((mounts, held))
    }

    /// Copies what `path` names in `mount`'s `from=` (the context when
    /// none) to a throwaway directory held by `held`: the copy's path, which root it
    /// came from (`context` or `from`), and a digest of its content.
    async fn copy_out(
        &self,
        mount: &plan::RunMount,
        path: &str,
        held: &mut Held,
    ) -> Result<(PathBuf, &'static str, oci_spec::image::Digest), StepError> {
        let from = mount.source.as_ref().map(|source| plan::CopyFrom {
            written: String::new(),
            source: source.clone(),
        });
        let (root, keep) = self.source_root(from.as_ref()).await?;
        held.dirs.extend(keep);
        let copy = self.scratch_dir()?;
        let (view, name) = match &root {
            SourceRoot::Context(view) => (view, "context"),
            SourceRoot::Stage { view, .. } => (view, "from"),
        };
        let digest = tokio::task::block_in_place(|| materialize(view, path, copy.path())).map_err(
            |source| StepError::Mount {
                spec: mount.spec.to_string(),
                source,
            },
        )?;
        let tree = copy.path().join("root");
        held.dirs.push(copy);
        Ok((tree, name, digest))
    }

    /// A secret mount as BuildKit's Dockerfile front end makes it: the ID
    /// defaults to the target's file name, the file to
    /// `/run/secrets/<ID>` unless only `env=` is asked for. A secret the
    /// build was not given is an error when `required`, else left out.
    fn secret(
        &self,
        secret: &plan::SecretMount,
        mounts: &mut StepMounts,
        workdir: &str,
    ) -> Result<(), MountSetupError> {
        let written_target = secret.target.as_deref();
        let id = match (&secret.id, written_target) {
            (Some(id), _) => id.clone(),
            (None, Some(target)) => base_name(target).to_owned(),
            (None, None) => return Err(MountSetupError::Target(String::new())),
        };
        let Some(value) = self.shared.options.secrets.load(&id)? else {
            if secret.required {
                return Err(MountSetupError::SecretNotFound(id));
            }
            return Ok(());
        };
        let file_target = match (written_target, &secret.env) {
            (Some(written), _) => Some(written.to_owned()),
            (None, None) => Some(format!("/run/secrets/{}", base_name(&id))),
            (None, Some(_)) => None,
        };
        if let Some(written) = file_target {
            mounts.secrets.push(SecretFile {
                target: target_path(&written, workdir)?,
                data: value.clone(),
                mode: secret.mode.unwrap_or(0o400),
                uid: secret.uid.unwrap_or(0),
                gid: secret.gid.unwrap_or(0),
            });
        }
        if let Some(name) = &secret.env {
            mounts.secret_env.push(SecretEnv {
                name: name.clone(),
                value,
            });
        }
        Ok(())
    }

    /// An ssh mount: a forwarding socket bound at `target`, or nothing when
    /// the build has no agent of that ID and the mount is not `required`.
    fn ssh_agent(
        &self,
        ssh: &plan::SecretMount,
        mounts: &mut StepMounts,
        target: PathBuf,
    ) -> Result<Option<AgentProxy>, MountSetupError> {
        let id = ssh.id.as_deref().unwrap_or("default");
        let Some(agent) = self.shared.options.secrets.agent(id) else {
            if ssh.required {
                return Err(MountSetupError::SshNotForwarded(id.to_owned()));
            }
            return Ok(None);
        };
        // In the temp directory (as the sandbox's scratch), whose short path
        // keeps the socket's within the 108 bytes of a socket address.
        let tmp = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix("builder-ssh-")
            .tempdir_in(&tmp)
            .map_err(io_error("create a directory in", &tmp))?;
        let owner = (
            ssh.mode.unwrap_or(0o600),
            ssh.uid.unwrap_or(0),
            ssh.gid.unwrap_or(0),
        );
        let proxy = AgentProxy::start(agent, dir, owner)
            .map_err(io_error("forward the ssh agent", agent))?;
        mounts.binds.push(BindMount {
            source: proxy.socket().to_path_buf(),
            target,
            readonly: false,
        });
        Ok(Some(proxy))
    }

    /// The directory of cache `id` (of `id` and the seed's digest when
    /// seeded), made as `new` says when it does not exist yet, and locked
    /// as `sharing` asks for as long as `held` lives; `private` in use gets
    /// a fresh throwaway directory instead.
    fn cache_dir(
        &self,
        id: &str,
        sharing: Sharing,
        new: NewCache,
        held: &mut Held,
    ) -> Result<PathBuf, MountSetupError> {
        let access = match sharing {
            Sharing::Shared => CacheMountAccess::Shared,
            Sharing::Locked => CacheMountAccess::Exclusive,
            Sharing::Private => CacheMountAccess::TryExclusive,
        };
        let store = self.shared.store.clone();
        let name = match &new {
            NewCache::Empty { .. } => id.to_owned(),
            NewCache::Seeded { digest, .. } => format!("{id}\0from {digest}"),
        };
        let cache =
            tokio::task::block_in_place(|| store.cache_mount(&name, access)).map_err(|e| {
                MountSetupError::Io {
                    action: "open the cache",
                    path: PathBuf::from(id),
                    source: io::Error::other(e.to_string()),
                }
            })?;
        match cache.lock {
            Some(lock) => {
                held.locks.push(lock);
                if !cache.dir.exists() {
                    new.make(&cache.dir)?;
                }
                Ok(cache.dir)
            }
            None => {
                let fresh = self.scratch_dir().map_err(|e| MountSetupError::Io {
                    action: "create a private cache for",
                    path: PathBuf::from(id),
                    source: io::Error::other(e.to_string()),
                })?;
                let dir = fresh.path().join("cache");
                held.dirs.push(fresh);
                new.make(&dir)?;
                Ok(dir)
            }
        }
    }
}

/// What a cache directory starts as.
enum NewCache {
    /// Empty, with this mode (`mode=`) and on-disk owner (`uid=`, `gid=`).
    Empty { mode: u32, owner: (u32, u32) },
    /// A copy of `from=` at `source=`, with its digest.
    Seeded {
        copy: PathBuf,
        digest: oci_spec::image::Digest,
    },
}

impl NewCache {
    /// Makes the cache directory `dir` whole or not at all: it is filled
    /// beside `dir` and renamed into place, so a step sharing the cache
    /// never sees it half made, and of two steps making it at once the
    /// first one's stays.
    fn make(self, dir: &Path) -> Result<(), MountSetupError> {
        // Kept until the rename: an empty directory is filled beside `dir`.
        let mut _staging = None;
        let made = match self {
            NewCache::Empty {
                mode,
                owner: (uid, gid),
            } => {
                let parent = dir.parent().unwrap_or(Path::new("/"));
                let staging = tempfile::Builder::new()
                    .prefix(".new-")
                    .tempdir_in(parent)
                    .map_err(io_error("create a directory in", parent))?;
                let made = staging.path().join("cache");
                _staging = Some(staging);
                std::fs::create_dir(&made).map_err(io_error("create", &made))?;
                chown(&made, Some(uid), Some(gid)).map_err(io_error("set the owner of", &made))?;
                std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode))
                    .map_err(io_error("set permissions of", &made))?;
                made
            }
            // The seed is a throwaway copy in the store already.
            NewCache::Seeded { copy, .. } => copy,
        };
        match std::fs::rename(&made, dir) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => Ok(()),
            Err(e) => Err(io_error("create", dir)(e)),
        }
    }
}

/// The absolute, clean path of a mount target; relative ones are below
/// `workdir`, as BuildKit resolves them.
fn target_path(written: &str, workdir: &str) -> Result<PathBuf, MountSetupError> {
    let joined = if written.starts_with('/') {
        written.to_owned()
    } else {
        format!(
            "{}/{written}",
            if workdir.is_empty() { "/" } else { workdir }
        )
    };
    let clean = crate::ignore::clean_path(&joined);
    if clean == "/" {
        return Err(MountSetupError::Target(written.to_owned()));
    }
    Ok(PathBuf::from(clean))
}

/// The last element of a slash-separated path, as Go's `path.Base`.
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        _ if path.is_empty() => ".",
        _ if trimmed.is_empty() => "/",
        Some(last) => last,
        None => trimmed,
    }
}

/// Copies what `source` names in `view` to `<dest>/root` and returns a
/// digest of it (names, kinds, modes, owners and contents, in order).
fn materialize(
    view: &RootfsView,
    source: &str,
    dest: &Path,
) -> Result<oci_spec::image::Digest, MountSetupError> {
    let rootfs = |e: crate::exec::rootfs::RootfsError| MountSetupError::Io {
        action: "read",
        path: PathBuf::from(source),
        source: io::Error::other(e.to_string()),
    };
    let node = view
        .lookup(Path::new(source), true)
        .map_err(rootfs)?
        .ok_or_else(|| MountSetupError::SourceNotFound(source.to_owned()))?;
    let mut hasher = crate::digest::Hasher::new();
    copy_node(view, &node, &dest.join("root"), &mut hasher).map_err(|e| match e {
        CopyFailure::View(e) => rootfs(e),
        CopyFailure::Io(e) => e,
    })?;
    Ok(hasher.finish())
}

enum CopyFailure {
    View(crate::exec::rootfs::RootfsError),
    Io(MountSetupError),
}

impl From<crate::exec::rootfs::RootfsError> for CopyFailure {
    fn from(e: crate::exec::rootfs::RootfsError) -> Self {
        CopyFailure::View(e)
    }
}

impl From<MountSetupError> for CopyFailure {
    fn from(e: MountSetupError) -> Self {
        CopyFailure::Io(e)
    }
}

/// Copies `node` to `to`, feeding what identifies it to `hasher`. Devices,
/// pipes and sockets are left out (a bound tree is for reading files).
fn copy_node(
    view: &RootfsView,
    node: &Node,
    to: &Path,
    hasher: &mut crate::digest::Hasher,
) -> Result<(), CopyFailure> {
    let stat = &node.stat;
    let header = format!(
        "{}\0{:o}\0{}\0{}\0",
        node.path.display(),
        stat.mode & 0o7777,
        stat.uid,
        stat.gid
    );
    hasher.update(header.as_bytes());
    match &node.kind {
        FileKind::Dir => {
            hasher.update(b"d");
            std::fs::create_dir(to).map_err(io_error("create", to))?;
            for child in view.read_dir(node)? {
                let name = child
                    .path
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                copy_node(view, &child, &to.join(name), hasher)?;
            }
        }
        FileKind::File => {
            hasher.update(b"f");
            let mut from = view.open(node)?;
            let mut file = File::create(to).map_err(io_error("create", to))?;
            let mut tee = crate::digest::HashingWriter::new(&mut file);
            io::copy(&mut from, &mut tee).map_err(io_error("write", to))?;
            let (_, digest, _) = tee.finish();
            hasher.update(digest.to_string().as_bytes());
        }
        FileKind::Symlink { target } => {
            hasher.update(b"l");
            hasher.update(target.as_os_str().as_encoded_bytes());
            std::os::unix::fs::symlink(target, to).map_err(io_error("create", to))?;
            return Ok(());
        }
        FileKind::Special(_) | FileKind::Socket => return Ok(()),
    }
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(stat.mode & 0o7777))
        .map_err(io_error("set permissions of", to))?;
    // Owners are kept where the build may set them (as root); a rootless
    // build keeps its own.
    let _ = chown(to, Some(stat.uid), Some(stat.gid));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_follow_go() {
        assert_eq!(base_name("/root/.npmrc"), ".npmrc");
        assert_eq!(base_name("a/b/"), "b");
        assert_eq!(base_name("tok"), "tok");
        assert_eq!(base_name("///"), "/");
        assert_eq!(base_name(""), ".");
    }

    #[test]
    fn targets_are_absolute_and_clean() {
        let ok = |written: &str, workdir: &str| target_path(written, workdir).ok();
        assert_eq!(ok("/a/../b/", "/w"), Some(PathBuf::from("/b")));
        assert_eq!(ok("cache", "/app"), Some(PathBuf::from("/app/cache")));
        assert_eq!(ok("x", ""), Some(PathBuf::from("/x")));
        assert_eq!(ok("../../..", "/w"), None);
        assert_eq!(ok("", ""), None);
    }
}
