//! `RUN --mount` set-up for one step, in two phases. First the cache key:
//! each mount's spec and, for bound files, a digest of their content —
//! through the context digest memo for the context (an unchanged context
//! is not read), from the layers' chain ID for a stage or an image (whose
//! files the layers fix). Then, only for a step that runs: bound files
//! copied out into a throwaway directory (so `rw` writes are lost and
//! `.dockerignore` holds), persistent cache directories under
//! `<store root>/cache-mounts/` with their sharing locks, tmpfs mounts,
//! secrets (read then, handed to the sandbox in memory) and ssh agents
//! (forwarded through a socket of the step's own). The cache key never
//! records a secret's value.

use super::{SourceFiles, StepContext, StepError};
use crate::context::digest::DigestMemo;
use crate::exec::copy::SourceRoot;
use crate::exec::rootfs::{Node, RootfsView};
use crate::exec::{StepMounts, file_digest};
use crate::file_kind::FileKind;
use crate::plan::{self, Mount, Sharing};
use crate::sandbox::{BindMount, SecretEnv, SecretFile, TmpfsMount};
use crate::solver::cache_remote;
use crate::solver::error::MountSetupError;
use crate::solver::ssh_agent::AgentProxy;
use crate::store::{CacheMountAccess, CacheMountLock};
use oci_spec::image::Digest;
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

/// What a step's mounts add to its cache key, worked out before the cache
/// is asked: each mount's spec and, for bound or seeded files, a digest
/// that names their content.
pub(super) struct MountKeys {
    /// One per mount, in `--mount` order.
    pub(super) keys: Vec<String>,
    /// Per mount, the files it binds or seeds a cache from.
    files: Vec<Option<MountFiles>>,
}

/// What keying a mount learned of the files it binds or seeds a cache from.
struct MountFiles {
    /// A digest that names their content.
    digest: Digest,
    /// Their host path, when a read-only bind may show them as they are
    /// (see [`tree_digest`]); `None`: a throwaway copy is bound.
    direct: Option<PathBuf>,
}

impl StepContext<'_> {
    /// The cache keys of `run`'s mounts. Reads no file whose stat the
    /// context digest memo knows, and nothing of a stage or an image (their
    /// files are fixed by their layers); copies nothing, reads no secret.
    pub(super) async fn mount_keys(&self, run: &plan::RunStep) -> Result<MountKeys, StepError> {
        let mut keys = Vec::with_capacity(run.mounts.len());
        let mut files = Vec::with_capacity(run.mounts.len());
        for mount in &run.mounts {
            match &mount.mount {
                Mount::Bind {
                    source, writable, ..
                } => {
                    let (name, digest, host) = self.content_digest(mount, source).await?;
                    keys.push(format!("{} {name} {digest}", mount.spec));
                    files.push(Some(MountFiles {
                        digest,
                        // A writable bind is always a throwaway copy:
                        // writes must never reach the user's files.
                        direct: host.filter(|_| !writable),
                    }));
                }
                Mount::Cache { source, .. } if mount.source.is_some() => {
                    // BuildKit bases the cache on `from` (at `source`) and
                    // keys it by that content too.
                    let (_, digest, _) = self.content_digest(mount, source).await?;
                    keys.push(format!("{} from {digest}", mount.spec));
                    files.push(Some(MountFiles {
                        digest,
                        direct: None,
                    }));
                }
                _ => {
                    keys.push(mount.spec.to_string());
                    files.push(None);
                }
            }
            // Every cache mount of a step that runs or hits goes to
            // `--cache-to …,mounts=true` (never another kind of mount).
            if let Mount::Cache { id, .. } = &mount.mount {
                let seed = files.last().and_then(Option::as_ref).map(|f| &f.digest);
                if let Ok(mut used) = self.shared.mounts_used.lock() {
                    used.insert(cache_name(id, seed), id.clone());
                }
            }
        }
        Ok(MountKeys { keys, files })
    }

    /// Which root `path` of `mount`'s `from=` (the context when none) is in
    /// (`context` or `from`), and a digest of what it names there: of the
    /// files, through the digest memo, for a context; of the layers' chain
    /// ID and `path` for a stage or an image. For context files that can
    /// be bound as they are, also their host path.
    async fn content_digest(
        &self,
        mount: &plan::RunMount,
        path: &str,
    ) -> Result<(&'static str, Digest, Option<PathBuf>), StepError> {
        let from = from_of(mount);
        match self.source_files(from.as_ref()).await? {
            SourceFiles::Context(view) => {
                let (digest, host) = tokio::task::block_in_place(|| {
                    // The memo only saves reads: one left by a panicking
                    // task is still usable.
                    let mut memo = self
                        .shared
                        .memo
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    tree_digest(&view, path, &mut memo)
                })
                .map_err(|source| StepError::Mount {
                    spec: mount.spec.to_string(),
                    source,
                })?;
                Ok(("context", digest, host))
            }
            SourceFiles::Layers(layers) => {
                let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
                let chain = crate::store::chain_ids(&diff_ids)
                    .last()
                    .map(Digest::to_string)
                    .unwrap_or_default();
                let named = format!("{chain}\0{}", crate::ignore::clean_path(path));
                Ok(("from", crate::digest::sha256(named.as_bytes()), None))
            }
        }
    }

    /// Sets up `run`'s mounts in `mounts` for a step that runs (`keyed`
    /// from [`Self::mount_keys`]); `workdir` resolves relative targets.
    /// What the step needs alive while it runs is in the returned [`Held`].
    pub(super) async fn set_up_mounts(
        &self,
        run: &plan::RunStep,
        workdir: &str,
        keyed: &MountKeys,
        mounts: &mut StepMounts,
    ) -> Result<Held, StepError> {
        let mut held = Held::default();
        // BuildKit numbers the default ssh targets by the step's ssh mounts.
        let mut ssh_index = 0;
        for (mount, files) in run.mounts.iter().zip(&keyed.files) {
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
                    let direct = files.as_ref().and_then(|f| f.direct.clone());
                    let source = match direct {
                        Some(host) => host,
                        None => self.copy_out(mount, source, &mut held).await?,
                    };
                    mounts.binds.push(BindMount {
                        source,
                        target,
                        readonly: !writable,
                    });
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
                    let new = match files {
                        Some(files) => NewCache::Seeded {
                            copy: self.copy_out(mount, source, &mut held).await?,
                            digest: files.digest.clone(),
                        },
                        None => NewCache::Empty {
                            mode: *mode,
                            owner: self
                                .shared
                                .executor
                                .layer_owners()
                                .on_disk(*uid, *gid)
                                .ok_or_else(|| {
                                    failed(MountSetupError::Unmapped {
                                        uid: *uid,
                                        gid: *gid,
                                    })
                                })?,
                        },
                    };
                    let dir = self
                        .cache_dir(id, *sharing, new, &mut held)
                        .map_err(failed)?;
                    mounts.binds.push(BindMount {
                        source: dir,
                        target,
                        readonly: *readonly,
                    });
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
                }
                Mount::Secret(secret) => {
                    self.secret(secret, mounts, workdir).map_err(failed)?;
                }
                Mount::Ssh(ssh) => {
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
                    if let Some(proxy) = self.ssh_agent(ssh, mounts, target).map_err(failed)? {
                        held.agents.push(proxy);
                    }
                }
            }
        }
        Ok(held)
    }

    /// Copies what `path` names in `mount`'s `from=` (the context when
    /// none) to a throwaway directory held by `held`, and returns the
    /// copy's path.
    async fn copy_out(
        &self,
        mount: &plan::RunMount,
        path: &str,
        held: &mut Held,
    ) -> Result<PathBuf, StepError> {
        let (root, keep) = self.source_root(from_of(mount).as_ref()).await?;
        held.dirs.extend(keep);
        let copy = self.scratch_dir()?;
        let view = match &root {
            SourceRoot::Context(view) | SourceRoot::Stage { view, .. } => view,
        };
        let tree = copy.path().join("root");
        tokio::task::block_in_place(|| materialize(view, path, &tree)).map_err(|source| {
            StepError::Mount {
                spec: mount.spec.to_string(),
                source,
            }
        })?;
        held.dirs.push(copy);
        Ok(tree)
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
            // Chroot isolation moves the directory into one step's rootfs.
            Sharing::Shared if self.shared.executor.moves_mounts() => CacheMountAccess::Exclusive,
            Sharing::Shared => CacheMountAccess::Shared,
            Sharing::Locked => CacheMountAccess::Exclusive,
            Sharing::Private => CacheMountAccess::TryExclusive,
        };
        let store = self.shared.store.clone();
        let name = match &new {
            NewCache::Seeded { digest, .. } => cache_name(id, Some(digest)),
            NewCache::Empty { .. } | NewCache::Imported(_) => cache_name(id, None),
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
                let new = match self.remote_seed(&name, id, &cache.dir, held)? {
                    Some(copy) => NewCache::Imported(copy),
                    None if cache.dir.exists() => return Ok(cache.dir),
                    None => new,
                };
                new.make(&cache.dir)?;
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

    /// The content an imported cache (`--cache-from`) holds for the cache
    /// mount `name` (of `id`), copied beside `dir`, when `dir` is absent
    /// or empty (a directory the store has wins). A blob that cannot be
    /// fetched or does not match is a warning: the step gets an empty
    /// cache.
    fn remote_seed(
        &self,
        name: &str,
        id: &str,
        dir: &Path,
        held: &mut Held,
    ) -> Result<Option<PathBuf>, MountSetupError> {
        let Some(remote) = &self.shared.remote else {
            return Ok(None);
        };
        if !cache_remote::mount_is_empty(dir) {
            return Ok(None);
        }
        let parent = dir.parent().unwrap_or(Path::new("/"));
        let staging = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(parent)
            .map_err(io_error("create a directory in", parent))?;
        let copy = staging.path().join("cache");
        std::fs::create_dir(&copy).map_err(io_error("create", &copy))?;
        let store = &self.shared.store;
        match tokio::task::block_in_place(|| cache_remote::seed_mount(store, remote, name, &copy)) {
            Ok(true) => {
                self.shared
                    .notice(format!("cache mount {id:?}: seeded from --cache-from"));
                held.dirs.push(staging);
                Ok(Some(copy))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                self.shared.notice(format!(
                    "warning: cache mount {id:?}: its imported content is refused ({e}); the step starts with an empty cache"
                ));
                Ok(None)
            }
        }
    }
}

/// The name the store keeps cache `id` under (with the digest of its
/// `from=` seed when it has one): `sharing=` is not part of it.
fn cache_name(id: &str, seed: Option<&Digest>) -> String {
    match seed {
        None => id.to_owned(),
        Some(digest) => format!("{id}\0from {digest}"),
    }
}

/// What a cache directory starts as.
enum NewCache {
    /// Empty, with this mode (`mode=`) and on-disk owner (`uid=`, `gid=`).
    Empty { mode: u32, owner: (u32, u32) },
    /// A copy of `from=` at `source=`, with its digest.
    Seeded { copy: PathBuf, digest: Digest },
    /// A copy of an imported cache's content for it (`--cache-from`).
    Imported(PathBuf),
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
            NewCache::Seeded { copy, .. } | NewCache::Imported(copy) => copy,
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

/// `mount`'s `from=` as `source_root` takes it (`None`: the context).
fn from_of(mount: &plan::RunMount) -> Option<plan::CopyFrom> {
    mount.source.as_ref().map(|source| plan::CopyFrom {
        written: String::new(),
        source: source.clone(),
    })
}

fn rootfs_error(source: &str) -> impl Fn(crate::exec::rootfs::RootfsError) -> MountSetupError {
    move |e| MountSetupError::Io {
        action: "read",
        path: PathBuf::from(source),
        source: io::Error::other(e.to_string()),
    }
}

/// What `source` names in `view` (links followed), or why there is nothing.
fn source_node(view: &RootfsView, source: &str) -> Result<Node, MountSetupError> {
    view.lookup(Path::new(source), true)
        .map_err(rootfs_error(source))?
        .ok_or_else(|| MountSetupError::SourceNotFound(source.to_owned()))
}

/// A digest of what `source` names in `view` (names, kinds, modes, owners
/// and contents, in order), with file contents taken through `memo`; and
/// its host path when a read-only bind of it shows just what a copy would:
/// nothing below it is hidden by `.dockerignore`, and it holds no device,
/// pipe or socket (which a copy leaves out). Symlinks need no check: the
/// step sees them as links, resolved inside its own root.
fn tree_digest(
    view: &RootfsView,
    source: &str,
    memo: &mut DigestMemo,
) -> Result<(Digest, Option<PathBuf>), MountSetupError> {
    let node = source_node(view, source)?;
    let mut hasher = crate::digest::Hasher::new();
    let as_is =
        hash_node(view, &node, memo, &mut hasher).map_err(|e| e.for_source(source, "digest"))?;
    let host = match as_is {
        // Absolute: the sandbox opens it from a working directory of its own.
        true => {
            let host = view.host_path(&node).map_err(rootfs_error(source))?;
            Some(std::path::absolute(&host).map_err(io_error("resolve", &host))?)
        }
        false => None,
    };
    Ok((hasher.finish(), host))
}

/// Feeds what identifies `node` and everything below it to `hasher`, and
/// says whether the view shows all of it. Devices, pipes and sockets are
/// left out, as the copy leaves them out.
fn hash_node(
    view: &RootfsView,
    node: &Node,
    memo: &mut DigestMemo,
    hasher: &mut crate::digest::Hasher,
) -> Result<bool, TreeFailure> {
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
            let mut whole = !view.hides_in(node)?;
            for child in view.read_dir(node)? {
                whole &= hash_node(view, &child, memo, hasher)?;
            }
            Ok(whole)
        }
        FileKind::File => {
            hasher.update(b"f");
            let digest = file_digest(view, node, memo).map_err(TreeFailure::Content)?;
            hasher.update(digest.to_string().as_bytes());
            Ok(true)
        }
        FileKind::Symlink { target } => {
            hasher.update(b"l");
            hasher.update(target.as_os_str().as_encoded_bytes());
            Ok(true)
        }
        FileKind::Special(_) | FileKind::Socket => Ok(false),
    }
}

/// Copies what `source` names in `view` to `dest`.
fn materialize(view: &RootfsView, source: &str, dest: &Path) -> Result<(), MountSetupError> {
    let node = source_node(view, source)?;
    copy_node(view, &node, dest).map_err(|e| e.for_source(source, "read"))
}

/// Why walking a bound tree failed.
enum TreeFailure {
    View(crate::exec::rootfs::RootfsError),
    Content(crate::exec::CopyError),
    Io(MountSetupError),
}

impl TreeFailure {
    /// The mount's error for a walk of `source` that failed; `action` says
    /// what was being done to a file's content (`read`, `digest`).
    fn for_source(self, source: &str, action: &'static str) -> MountSetupError {
        match self {
            TreeFailure::View(e) => rootfs_error(source)(e),
            TreeFailure::Content(e) => MountSetupError::Io {
                action,
                path: PathBuf::from(source),
                source: io::Error::other(e.to_string()),
            },
            TreeFailure::Io(e) => e,
        }
    }
}

impl From<crate::exec::rootfs::RootfsError> for TreeFailure {
    fn from(e: crate::exec::rootfs::RootfsError) -> Self {
        TreeFailure::View(e)
    }
}

impl From<MountSetupError> for TreeFailure {
    fn from(e: MountSetupError) -> Self {
        TreeFailure::Io(e)
    }
}

/// Copies `node` to `to`. Devices, pipes and sockets are left out (a bound
/// tree is for reading files).
fn copy_node(view: &RootfsView, node: &Node, to: &Path) -> Result<(), TreeFailure> {
    let stat = &node.stat;
    match &node.kind {
        FileKind::Dir => {
            std::fs::create_dir(to).map_err(io_error("create", to))?;
            for child in view.read_dir(node)? {
                let name = child
                    .path
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                copy_node(view, &child, &to.join(name))?;
            }
        }
        FileKind::File => {
            let mut from = view.open(node)?;
            let mut file = File::create(to).map_err(io_error("create", to))?;
            io::copy(&mut from, &mut file).map_err(io_error("write", to))?;
        }
        FileKind::Symlink { target } => {
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
