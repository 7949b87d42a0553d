//! RUN: a command in the sandbox, on an overlay of the parent layers'
//! snapshots with a fresh upper directory. What the command changed (the
//! upper directory) becomes a layer blob, written straight into the store,
//! and the upper directory itself becomes the new snapshot: it already
//! holds overlay whiteouts, so nothing is extracted again.
//!
//! A step that changes no file makes no layer (BuildKit drops empty layers
//! and marks the history entry `empty_layer`). Where overlayfs cannot be
//! mounted, the parent is assembled in a plain directory, copied, run on,
//! and compared with the copy instead; this is said once per executor.

use super::ExecError;
use super::cache_key::StepInputs;
use super::tail::OutputTail;
use crate::layer::LayerError;
use crate::layer::compress::Compression;
use crate::layer::diff::{overlay_changes, tree_changes};
use crate::layer::owners::OwnerMap;
use crate::layer::tar::{WriteOptions, write_changes};
use crate::progress::{Work, WorkKind, WorkMeter};
use crate::sandbox::emulation::Emulator;
use crate::sandbox::seccomp::SeccompPolicy;
use crate::sandbox::{
    CgroupLimits, DEFAULT_SHM_SIZE, EnvVar, Isolation, Network, Outcome, Rootfs, Sandbox,
    SandboxError, Security, Spec, Stream, Ulimit,
};
use crate::store::{CacheRecord, CachedLayer, CachedStep, Store, chain_id};
use crate::userns::{Stack, copy_tree, extract_layer};
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The hostname of every step, as BuildKit's.
pub const HOSTNAME: &str = "buildkitsandbox";

/// Nameservers used when the host's are unusable inside the step.
const DEFAULT_RESOLV_CONF: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n";

/// One layer of an image being built: its blob and its diff ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The blob in the store (media type, digest, size).
    pub blob: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

impl LayerRef {
    /// A layer stored as the plain tar blob `stored`, its digest the diff
    /// ID (what a build writes; a push or an export compresses it).
    pub fn plain(stored: crate::store::StoredBlob) -> Self {
        Self {
            diff_id: stored.digest.clone(),
            blob: Descriptor::new(
                MediaType::from(Compression::Uncompressed.media_type()),
                stored.size,
                stored.digest,
            ),
        }
    }

    fn from_cached(cached: &CachedLayer) -> Self {
        Self {
            blob: Descriptor::new(
                MediaType::from(cached.media_type.as_str()),
                cached.size,
                cached.digest.clone(),
            ),
            diff_id: cached.diff_id.clone(),
        }
    }

    fn to_cached(&self) -> CachedLayer {
        CachedLayer {
            digest: self.blob.digest().clone(),
            size: self.blob.size(),
            media_type: self.blob.media_type().to_string(),
            diff_id: self.diff_id.clone(),
        }
    }
}

/// Something a step reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEvent<'a> {
    /// A line (or piece of a long line) the command printed.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes, with their newline.
        line: &'a [u8],
    },
    /// Something the user should know about how steps run.
    Notice(&'a str),
    /// A long phase of the step that prints nothing of its own: unpacking
    /// a parent layer, writing the step's layer.
    Work(&'a Work),
}

/// How a RUN step gets its root filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Snapshotter {
    /// An overlay of the parent's snapshots with a fresh upper directory;
    /// falls back to [`Snapshotter::Copy`] where overlayfs cannot be mounted.
    #[default]
    Overlay,
    /// A full copy of the parent, compared with it after the step: slower,
    /// but needs no overlayfs (`BUILDER_SNAPSHOTTER=copy`).
    Copy,
}

/// Settings that hold for every step of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// `SOURCE_DATE_EPOCH`: clamps mtimes in new layers.
    pub source_date_epoch: Option<u64>,
    /// How RUN steps get their root filesystem (the layers are the same).
    pub snapshotter: Snapshotter,
    /// `--add-host`: lines added to every RUN step's `/etc/hosts`.
    pub extra_hosts: Vec<super::ExtraHost>,
    /// `--shm-size`: the size of every RUN step's `/dev/shm`, in bytes.
    pub shm_size: u64,
    /// `--security-opt seccomp=`: the filter of RUN steps that are not
    /// `--security=insecure`.
    pub seccomp: SeccompPolicy,
    /// The pids limit (`BUILDER_PIDS_LIMIT`) and `--memory` of every RUN
    /// step's cgroup.
    pub cgroup: CgroupLimits,
    /// `--ulimit`: RLIMITs of every RUN step over the defaults.
    pub ulimits: Vec<Ulimit>,
    /// `--isolation`: how RUN steps are kept apart from the host; `None`
    /// is the sandbox where it can be set up, else chroot (said once).
    pub isolation: Option<Isolation>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            source_date_epoch: None,
            snapshotter: Snapshotter::Overlay,
            extra_hosts: Vec::new(),
            shm_size: DEFAULT_SHM_SIZE,
            seccomp: SeccompPolicy::default(),
            cgroup: CgroupLimits::default(),
            ulimits: Vec::new(),
            isolation: None,
        }
    }
}

/// One RUN step, its words and settings already expanded by the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The layers the step runs on, bottom first.
    pub parent: Vec<LayerRef>,
    /// The command: the exec form as given, or SHELL + the shell form
    /// (see [`super::meta::shell_argv`]).
    pub argv: Vec<String>,
    /// The image's ENV plus the build args in scope (never written to the config).
    pub env: Vec<(String, String)>,
    /// Proxy build args (`HTTP_PROXY`…): passed to the command but kept out
    /// of the cache key and the history, as BuildKit does.
    pub proxy_env: Vec<(String, String)>,
    /// USER in effect (`name`, `uid`, `name:group`…); empty is root.
    pub user: String,
    /// WORKDIR in effect (absolute); created when missing.
    pub workdir: String,
    /// `RUN --network`.
    pub network: Network,
    /// `RUN --security`.
    pub security: Security,
    /// `RUN --mount`s.
    pub mounts: super::run_mounts::StepMounts,
    /// The emulator that runs it, for a platform the host does not run.
    pub emulator: Option<Emulator>,
}

impl RunStep {
    /// The cache inputs of this step after the step keyed `parent_key`.
    pub fn cache_inputs(&self, parent_key: &str, options: &ExecOptions) -> StepInputs {
        let mut flags = BTreeMap::new();
        let network = match self.network {
            Network::Private => "default",
            Network::Host => "host",
            Network::None => "none",
        };
        flags.insert("network".to_owned(), network.to_owned());
        // Only the insecure mode is recorded, so sandboxed steps keep the
        // keys they had before the flag existed.
        if self.security == Security::Insecure {
            flags.insert("security".to_owned(), "insecure".to_owned());
        }
        if let Some(epoch) = options.source_date_epoch {
            flags.insert("source-date-epoch".to_owned(), epoch.to_string());
        }
        // Only when set, so the keys of earlier builds still match.
        if !options.extra_hosts.is_empty() {
            let hosts: Vec<String> = options.extra_hosts.iter().map(|h| h.to_string()).collect();
            flags.insert("add-host".to_owned(), hosts.join(", "));
        }
        if options.shm_size != DEFAULT_SHM_SIZE {
            flags.insert("shm-size".to_owned(), options.shm_size.to_string());
        }
        if let Some(seccomp) = options.seccomp.cache_flag() {
            flags.insert("seccomp".to_owned(), seccomp);
        }
        // As BuildKit keys an ExecOp's ulimits; only when set.
        if !options.ulimits.is_empty() {
            let ulimits: Vec<String> = options.ulimits.iter().map(|u| u.to_string()).collect();
            flags.insert("ulimit".to_owned(), ulimits.join(", "));
        }
        StepInputs {
            parent: parent_key.to_owned(),
            kind: "RUN".to_owned(),
            words: self.argv.clone(),
            flags,
            env: self.env.iter().cloned().collect(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            mounts: self.mounts.keys.clone(),
            ..StepInputs::default()
        }
    }

    /// The process's environment: `HOME` is the user's home unless set
    /// (as runc under BuildKit; never written to the image config).
    fn env_vars(&self, home: &str) -> Vec<EnvVar> {
        let mut vars: Vec<EnvVar> = self
            .env
            .iter()
            .chain(&self.proxy_env)
            .chain(&self.mounts.env)
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        if !vars.iter().any(|var| var.name == "HOME") {
            vars.push(EnvVar {
                name: "HOME".to_owned(),
                value: home.to_owned(),
            });
        }
        vars
    }
}

/// How a RUN step ended successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The new layer; `None` when the command changed no file.
    pub layer: Option<LayerRef>,
    /// Whether the result came from the step cache (nothing ran).
    pub cached: bool,
    /// On a cache miss, why (compared with the last build at this position).
    pub miss_reasons: Vec<String>,
    /// When the step ran (the first time, for a hit): its history time.
    pub created: String,
}

/// What the step cache holds for a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    /// Its layer, snapshot in place; `None` when it changed no file.
    pub layer: Option<LayerRef>,
    /// When it first ran (see [`super::created`]).
    pub created: String,
}

/// Runs steps of builds against one store.
#[derive(Debug, Clone)]
pub struct Executor {
    store: Store,
    sandbox: Sandbox,
    options: ExecOptions,
    /// How owners on disk are recorded in RUN layers.
    owners: OwnerMap,
    /// Set once overlayfs failed (or with [`Snapshotter::Copy`]): every
    /// step then runs on a copy.
    overlay_unavailable: Arc<AtomicBool>,
    /// Set once the build said that steps get no cgroup.
    cgroup_noticed: Arc<AtomicBool>,
    /// The isolation of RUN steps, once decided (probed before the first
    /// step that runs, unless `--isolation` says).
    isolation: Arc<tokio::sync::OnceCell<Isolation>>,
}

impl Executor {
    /// An executor writing into `store` and running steps in `sandbox`.
    pub fn new(store: Store, sandbox: Sandbox, options: ExecOptions) -> Self {
        let owners = sandbox.layer_owners();
        let copy = options.snapshotter == Snapshotter::Copy
            || options.isolation == Some(Isolation::Chroot);
        let isolation = tokio::sync::OnceCell::new_with(options.isolation);
        // A killed build's scratch directory is then left where prune looks.
        let sandbox = sandbox.scratch_in(store.root().join("tmp"));
        Self {
            isolation: Arc::new(isolation),
            store,
            sandbox,
            options,
            owners,
            overlay_unavailable: Arc::new(AtomicBool::new(copy)),
            cgroup_noticed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The store steps write into.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How owners of files on disk (in snapshots, in a step's upper
    /// directory) are recorded in layers.
    pub fn layer_owners(&self) -> OwnerMap {
        self.owners
    }

    /// Whether RUN steps run on overlays of snapshots (else on copies
    /// assembled from the layer blobs: `BUILDER_SNAPSHOTTER=copy`, chroot
    /// isolation, or overlayfs found unusable).
    pub fn runs_on_snapshots(&self) -> bool {
        !self.overlay_unavailable.load(Ordering::Relaxed)
    }

    /// Whether RUN steps are known to run with chroot isolation, where a
    /// writable mount's source is moved into the step's rootfs (so one
    /// step at a time may have it).
    pub fn moves_mounts(&self) -> bool {
        self.isolation.get() == Some(&Isolation::Chroot)
    }

    /// The build-wide settings.
    pub fn options(&self) -> &ExecOptions {
        &self.options
    }

    /// Runs a RUN step unless the cache has its result: `inputs` (from
    /// [`RunStep::cache_inputs`]) give the key; `position` names the step's
    /// place in the build (Dockerfile, stage, index) for miss explanations.
    /// A record is written only once the layer and snapshot are committed.
    pub async fn run_cached(
        &self,
        step: &RunStep,
        inputs: &StepInputs,
        position: &str,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<RunOutcome, ExecError> {
        if let Some(hit) = self.cached(&step.parent, inputs, position, on_event)? {
            return Ok(RunOutcome {
                layer: hit.layer,
                cached: true,
                miss_reasons: Vec::new(),
                created: hit.created,
            });
        }
        self.run_missed(step, inputs, position, on_event).await
    }

    /// What the cache holds for a step keyed `inputs` on top of `parent`
    /// at `position`, with its snapshot in place; `None` when the step
    /// must run. Lets a caller decide before preparing what only a running
    /// step needs (bound copies, secrets). Unpacking a missing snapshot is
    /// told to `on_event`.
    pub fn cached(
        &self,
        parent: &[LayerRef],
        inputs: &StepInputs,
        position: &str,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<CacheHit>, ExecError> {
        let _lease = self.store.lease()?;
        let cache = self.store.cache();
        let key = inputs.key();
        let Some(record) = cache.get(&key)? else {
            return Ok(None);
        };
        let Some(layer) = self.reuse(parent, &record, on_event)? else {
            return Ok(None);
        };
        let created = super::created::of_hit(&cache, &key, position, &record)?;
        Ok(Some(CacheHit { layer, created }))
    }

    /// Runs a step that [`Executor::cached`] did not have and records it
    /// under `inputs` at `position`, with why the last step there missed.
    pub async fn run_missed(
        &self,
        step: &RunStep,
        inputs: &StepInputs,
        position: &str,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<RunOutcome, ExecError> {
        let _lease = self.store.lease()?;
        let key = inputs.key();
        let cache = self.store.cache();
        let miss_reasons = match cache.last_at(position)? {
            Some((_, previous)) => super::cache_key::explain_miss(&previous.inputs, inputs),
            None => Vec::new(),
        };
        let layer = self.run(step, on_event).await?;
        let created = super::created::now();
        let record = CacheRecord {
            inputs: inputs.to_json(),
            layer: layer.as_ref().map(LayerRef::to_cached),
            config_change: serde_json::Value::Null,
            created: Some(created.clone()),
        };
        cache.put(&key, position, &record)?;
        Ok(RunOutcome {
            layer,
            cached: false,
            miss_reasons,
            created,
        })
    }

    /// The layer a cache record promises, with its snapshot in place when
    /// its blob is stored; `None` (run the step) when its blob is gone. A
    /// blob only a remote cache has stays there until a step or an output
    /// reads it.
    fn reuse(
        &self,
        parent: &[LayerRef],
        record: &CachedStep,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<Option<LayerRef>>, ExecError> {
        let Some(cached) = &record.layer else {
            return Ok(Some(None));
        };
        let layer = LayerRef::from_cached(cached);
        let blobs = self.store.blobs();
        if !blobs.available(layer.blob.digest()) {
            return Ok(None);
        }
        let stored = parent
            .iter()
            .chain([&layer])
            .all(|l| blobs.contains(l.blob.digest()));
        if stored && !self.overlay_unavailable.load(Ordering::Relaxed) {
            let mut chain = parent.to_vec();
            chain.push(layer.clone());
            self.snapshots_of(&chain, on_event)?;
        }
        Ok(Some(Some(layer)))
    }

    /// Runs a RUN step and returns its layer (`None` when it changed no
    /// file). A non-zero exit is [`ExecError::Failed`] with the code and the
    /// last lines of output; then nothing is kept.
    pub async fn run(
        &self,
        step: &RunStep,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<LayerRef>, ExecError> {
        let _lease = self.store.lease()?;
        let isolation = self.isolation(on_event).await?;
        if isolation == Isolation::Oci && !self.overlay_unavailable.load(Ordering::Relaxed) {
            match self.run_on_overlay(step, on_event).await {
                Err(ExecError::Sandbox(SandboxError::OverlayUnavailable(reason))) => {
                    // Said once: only the first step to fail swaps the flag.
                    if !self.overlay_unavailable.swap(true, Ordering::Relaxed) {
                        let notice = format!(
                            "overlayfs cannot be mounted here ({reason}); steps run on full copies of their parent, which is slower"
                        );
                        on_event(StepEvent::Notice(&notice));
                    }
                }
                other => return other,
            }
        }
        self.run_on_copy(step, isolation, on_event).await
    }

    /// The isolation of RUN steps: `--isolation`'s, else the sandbox where
    /// [`Sandbox::probe`] sets it up, else chroot (said once, with why).
    async fn isolation(
        &self,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Isolation, ExecError> {
        let chosen = self
            .isolation
            .get_or_try_init(|| async {
                let sandbox = match self.sandbox.probe(Isolation::Oci).await {
                    Ok(()) => return Ok(Isolation::Oci),
                    Err(SandboxError::Setup(reason)) => reason,
                    Err(err) => return Err(ExecError::from(err)),
                };
                match self.sandbox.probe(Isolation::Chroot).await {
                    Ok(()) => {
                        let notice = format!(
                            "the RUN sandbox cannot be set up here ({sandbox}); steps run with \
                             --isolation=chroot: chrooted into full copies of their parent, \
                             sharing the host's network, processes and IPC (see the README)"
                        );
                        on_event(StepEvent::Notice(&notice));
                        Ok(Isolation::Chroot)
                    }
                    Err(SandboxError::Setup(chroot)) => {
                        Err(ExecError::NoIsolation { sandbox, chroot })
                    }
                    Err(err) => Err(ExecError::from(err)),
                }
            })
            .await?;
        if *chosen == Isolation::Chroot {
            self.overlay_unavailable.store(true, Ordering::Relaxed);
        }
        Ok(*chosen)
    }

    async fn run_on_overlay(
        &self,
        step: &RunStep,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<LayerRef>, ExecError> {
        let snapshots = self.store.snapshots();
        let chains = self.snapshots_of(&step.parent, on_event)?;
        let mut lower: Vec<PathBuf> = chains
            .iter()
            .rev()
            .map(|chain| snapshots.path(chain))
            .collect::<Result<_, _>>()?;
        // FROM scratch: overlayfs needs a lower directory, an empty one.
        let empty = if lower.is_empty() {
            Some(self.scratch_dir("empty-")?)
        } else {
            None
        };
        lower.extend(empty.iter().map(|dir| dir.path().to_path_buf()));
        let user = super::user_of::resolve(&lower, true, &step.user)?;
        let upper = snapshots.begin()?;
        let work = self.scratch_dir("work-")?;
        let spec = self.spec(
            step,
            user,
            Rootfs::Overlay {
                lower,
                upper: upper.path().to_path_buf(),
                work: work.path().to_path_buf(),
            },
            Isolation::Oci,
        )?;
        self.execute(&spec, step.emulator.as_ref(), on_event)
            .await?;
        let Some(layer) = self.changed_layer(upper.path(), None, on_event)? else {
            return Ok(None);
        };
        let chain = chain_id(chains.last(), &layer.diff_id);
        upper.commit(&snapshots, &chain)?;
        Ok(Some(layer))
    }

    async fn run_on_copy(
        &self,
        step: &RunStep,
        isolation: Isolation,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<LayerRef>, ExecError> {
        let parent = self.scratch_dir("parent-")?;
        self.assemble(&step.parent, parent.path())?;
        let rootfs = self.scratch_dir("rootfs-")?;
        copy_tree(parent.path(), rootfs.path())
            .map_err(|e| in_namespace("copying the step's rootfs", rootfs.path(), e))?;
        let user = super::user_of::resolve(&[parent.path().to_path_buf()], false, &step.user)?;
        let spec = self.spec(
            step,
            user,
            Rootfs::Directory(rootfs.path().to_path_buf()),
            isolation,
        )?;
        self.execute(&spec, step.emulator.as_ref(), on_event)
            .await?;
        self.changed_layer(rootfs.path(), Some(parent.path()), on_event)
    }

    /// The chain IDs of `layers`, bottom first, unpacking any snapshot
    /// that is missing from its blob (telling `on_event` how far).
    fn snapshots_of(
        &self,
        layers: &[LayerRef],
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Vec<Digest>, ExecError> {
        let snapshots = self.store.snapshots();
        let blobs = self.store.blobs();
        let mut chains: Vec<Digest> = Vec::with_capacity(layers.len());
        for layer in layers {
            let kind = WorkKind::Extract {
                layer: layer.blob.digest().clone(),
            };
            let mut meter = WorkMeter::new(kind, Some(layer.blob.size()), |work: Work| {
                on_event(StepEvent::Work(&work));
            });
            let chain = snapshots.unpack_observed(
                &blobs,
                &chains,
                &layer.blob,
                &layer.diff_id,
                &mut |done| meter.advance(done),
            )?;
            meter.finish();
            chains.push(chain);
        }
        Ok(chains)
    }

    /// Applies `layers` in order onto the empty directory `root`, with
    /// their owners (see [`extract_layer`]).
    fn assemble(&self, layers: &[LayerRef], root: &Path) -> Result<(), ExecError> {
        for layer in layers {
            let (blob, check) = self.store.blobs().open_checked(layer.blob.digest())?;
            let media_type = layer.blob.media_type().to_string();
            let report = crate::layer::compress::decompress(blob, &media_type)
                .map(|tar| extract_layer(tar, root, Stack::Applied));
            check.finish()?;
            let report = report?.map_err(|e| in_namespace("unpacking a layer", root, e))?;
            if report.diff_id != layer.diff_id {
                return Err(crate::store::StoreError::DiffIdMismatch {
                    layer: Box::new(layer.blob.digest().clone()),
                    expected: Box::new(layer.diff_id.clone()),
                    actual: Box::new(report.diff_id),
                }
                .into());
            }
        }
        Ok(())
    }

    /// A fresh directory (mode 0755) under the store's `tmp/`, removed on drop.
    fn scratch_dir(&self, prefix: &str) -> Result<ScratchDir, ExecError> {
        let tmp = self.store.root().join("tmp");
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(|e| ExecError::io("create a directory in", &tmp, e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| ExecError::io("set permissions of", dir.path(), e))?;
        Ok(ScratchDir(Some(dir)))
    }

    fn spec(
        &self,
        step: &RunStep,
        user: super::user_of::StepUser,
        rootfs: Rootfs,
        isolation: Isolation,
    ) -> Result<Spec, ExecError> {
        // Without a network namespace a step has the host's network.
        let network = match (isolation, step.network) {
            (Isolation::Oci, network) => network,
            (Isolation::Chroot, Network::None) => {
                return Err(ExecError::ChrootUnsupported(
                    "RUN --network=none (or --network none)",
                ));
            }
            (Isolation::Chroot, Network::Private | Network::Host) => Network::Host,
        };
        Ok(Spec {
            rootfs,
            mounts: step.mounts.binds.clone(),
            tmpfs: step.mounts.tmpfs.clone(),
            secrets: step.mounts.secrets.clone(),
            secret_env: step.mounts.secret_env.clone(),
            argv: step.argv.clone(),
            env: step.env_vars(&user.home),
            user: user.user,
            cwd: PathBuf::from(if step.workdir.is_empty() {
                "/"
            } else {
                &step.workdir
            }),
            network,
            hostname: HOSTNAME.to_owned(),
            hosts: hosts_file(&self.options.extra_hosts),
            resolv_conf: resolv_conf(network),
            security: step.security,
            shm_size: self.options.shm_size,
            seccomp: match step.security {
                Security::Sandbox => self.options.seccomp.filter().map_err(SandboxError::from)?,
                Security::Insecure => None,
            },
            cgroup: self.options.cgroup,
            ulimits: self.options.ulimits.clone(),
            emulation: step.emulator.as_ref().map(|e| e.registration.clone()),
            isolation,
        })
    }

    async fn execute(
        &self,
        spec: &Spec,
        emulator: Option<&Emulator>,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<(), ExecError> {
        // Said once: only the first step swaps the flag.
        if !self.cgroup_noticed.swap(true, Ordering::Relaxed) {
            if let Some(notice) = crate::sandbox::cgroup_unavailable_notice(&self.options.cgroup) {
                on_event(StepEvent::Notice(&notice));
            }
        }
        // The last lines, for the report should the command fail.
        let mut tail = OutputTail::new();
        let outcome = self
            .sandbox
            .run(spec, |stream, line| {
                tail.push(stream, line);
                on_event(StepEvent::Output { stream, line });
            })
            .await?;
        tail.finish();
        if !outcome.success() {
            hint_rootless_chown(&mut tail);
        }
        let output = Box::new(tail);
        match outcome {
            Outcome::Exited(0) => Ok(()),
            Outcome::Exited(code) => Err(ExecError::Failed {
                code,
                emulation: emulator.map(Emulator::to_string),
                output,
            }),
            Outcome::Signaled(signal) => Err(ExecError::Killed {
                signal,
                emulation: emulator.map(Emulator::to_string),
                output,
            }),
            Outcome::OutOfMemory => Err(ExecError::OutOfMemory {
                limit: self.options.cgroup.memory,
                output,
            }),
        }
    }

    /// The layer of what a step changed in the overlay upper directory
    /// `upper` (with `parent`: in the tree `upper`, a copy of `parent`);
    /// `None` when it changed nothing. Rootless with a subordinate range,
    /// the change is read as root of the user namespace (the step's other
    /// users' files may be unreadable to the user).
    fn changed_layer(
        &self,
        upper: &Path,
        parent: Option<&Path>,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<Option<LayerRef>, ExecError> {
        let epoch = self.options.source_date_epoch;
        let action = "reading the step's changes";
        if let Some(diff) = crate::userns::NamespaceDiff::start(upper, parent, epoch) {
            let diff = diff.map_err(|e| in_namespace(action, upper, e))?;
            if diff.is_empty() {
                return Ok(None);
            }
            return self
                .store_layer(
                    |out| {
                        diff.write_to(out)
                            .map_err(|e| in_namespace(action, upper, e))
                    },
                    on_event,
                )
                .map(Some);
        }
        let changes = match parent {
            None => overlay_changes(upper)?,
            Some(parent) => tree_changes(parent, upper)?,
        };
        if changes.is_empty() {
            return Ok(None);
        }
        self.write_layer(upper, changes, on_event).map(Some)
    }

    /// Writes the change found in `source` as a layer blob.
    fn write_layer(
        &self,
        source: &Path,
        changes: Vec<crate::layer::tar::Change>,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<LayerRef, ExecError> {
        let options = WriteOptions {
            source_date_epoch: self.options.source_date_epoch,
            owners: self.owners,
        };
        self.store_layer(
            |out| write_changes(source, changes, out, &options).map(|_| ()),
            on_event,
        )
    }

    /// Stores the layer tar `produce` writes as a plain tar blob (a push
    /// or an export compresses it), telling `on_event` how far it is.
    fn store_layer(
        &self,
        produce: impl FnOnce(&mut dyn std::io::Write) -> Result<(), LayerError> + Send,
        on_event: &mut (dyn FnMut(StepEvent<'_>) + Send),
    ) -> Result<LayerRef, ExecError> {
        // The blob writer hashes what it stores: one pass gives the diff ID.
        let mut writer = self.store.blobs().writer(None)?;
        let mut meter = WorkMeter::new(WorkKind::WriteLayer, None, |work: Work| {
            on_event(StepEvent::Work(&work));
        });
        produce(&mut Metered {
            inner: &mut writer,
            done: 0,
            meter: &mut meter,
        })?;
        meter.finish();
        Ok(LayerRef::plain(writer.commit()?))
    }
}

/// A writer that tells a [`WorkMeter`] how many bytes went through it.
struct Metered<'a, W: ?Sized, F: FnMut(Work)> {
    inner: &'a mut W,
    done: u64,
    meter: &'a mut WorkMeter<F>,
}

impl<W: std::io::Write + ?Sized, F: FnMut(Work)> std::io::Write for Metered<'_, W, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        self.meter.advance(self.done);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A directory under the store's `tmp/` for one step, removed when dropped:
/// rootless with a subordinate range, as root of the user namespace when
/// the step left files of its other users there that the user alone may
/// not unlink.
struct ScratchDir(Option<tempfile::TempDir>);

impl ScratchDir {
    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("a scratch directory exists until dropped")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let path = dir.path().to_path_buf();
            // What stays behind is `builder prune`'s to remove.
            if dir.close().is_err() {
                let _ = crate::userns::remove_in_namespace(&path);
            }
        }
    }
}

/// Work done in the rootless user namespace (`userns`) that failed, as the
/// layer error it stands for.
fn in_namespace(action: &'static str, path: &Path, err: crate::userns::UsernsError) -> LayerError {
    match err {
        crate::userns::UsernsError::Layer(err) => err,
        err => LayerError::Fs {
            action,
            path: path.to_path_buf(),
            source: std::io::Error::other(err),
        },
    }
}

/// A failed step whose output shows chown failing with EINVAL, in a
/// rootless build without a subordinate ID range, gets told why: the
/// step's user namespace maps no ID but root's.
fn hint_rootless_chown(tail: &mut OutputTail) {
    if tail.has_line_with(&["chown", "Invalid argument"]) && crate::userns::missing_range() {
        tail.set_hint(
            "hint: this rootless build maps only your own user (root in the step), so chown to \
             any other owner fails with EINVAL; grant your user a range in /etc/subuid and \
             /etc/subgid and install newuidmap/newgidmap (Debian: uidmap)"
                .to_owned(),
        );
    }
}

/// The step's `/etc/hosts`: loopback names and the step's hostname, then
/// the `--add-host` entries.
fn hosts_file(extra: &[super::ExtraHost]) -> String {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for host in extra {
        hosts.push_str(&format!("{host}\n"));
    }
    hosts
}

/// Where systemd-resolved lists the upstream servers behind its stub.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The step's `/etc/resolv.conf`, as BuildKit makes it: with the host's
/// network, the host's; otherwise only the nameservers the step can reach
/// (see [`resolv_conf_from`]), read through systemd-resolved's stub
/// (`127.0.0.53` alone) to the servers behind it.
fn resolv_conf(network: Network) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host = match network {
        Network::Private | Network::None if names_only_the_resolved_stub(&host) => {
            std::fs::read_to_string(RESOLVED_UPSTREAM).unwrap_or(host)
        }
        Network::Private | Network::None | Network::Host => host,
    };
    resolv_conf_from(&host, network)
}

/// systemd-resolved's stub resolver.
const RESOLVED_STUB: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));

/// Whether `resolv_conf`'s one nameserver is systemd-resolved's stub.
fn names_only_the_resolved_stub(resolv_conf: &str) -> bool {
    let mut servers = resolv_conf.lines().filter_map(nameserver);
    servers.next() == Some(Some(RESOLVED_STUB)) && servers.next().is_none()
}

/// The address of a `nameserver` line (`Some(None)` if it is not one).
fn nameserver(line: &str) -> Option<Option<std::net::IpAddr>> {
    let mut words = line.split_whitespace();
    (words.next() == Some("nameserver")).then(|| words.next().and_then(|ip| ip.parse().ok()))
}

/// `host` (a resolv.conf) without the nameservers a step on `network`
/// cannot reach: the host's loopback ones outside the host's network, and
/// IPv6 ones in a private network (slirp4netns gives it IPv4 only). Public
/// resolvers stand in if none is left.
fn resolv_conf_from(host: &str, network: Network) -> String {
    let reachable = |line: &&str| match nameserver(line) {
        None | Some(None) => true,
        Some(Some(ip)) => match network {
            Network::Host => true,
            Network::None => !ip.is_loopback(),
            Network::Private => ip.is_ipv4() && !ip.is_loopback(),
        },
    };
    let kept: Vec<&str> = host.lines().filter(reachable).collect();
    let mut text: String = kept.iter().map(|line| format!("{line}\n")).collect();
    if !kept.iter().any(|line| nameserver(line).is_some()) {
        DEFAULT_RESOLV_CONF
            .lines()
            .filter(reachable)
            .for_each(|line| text.push_str(&format!("{line}\n")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_dropped_without_the_host_network() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n";
        assert_eq!(resolv_conf_from(host, Network::Host), host);
        assert_eq!(
            resolv_conf_from(host, Network::None),
            "search lan\nnameserver 192.0.2.1\n"
        );
        assert_eq!(
            resolv_conf_from("nameserver ::1\n", Network::None),
            DEFAULT_RESOLV_CONF
        );
        assert_eq!(resolv_conf_from("", Network::Host), DEFAULT_RESOLV_CONF);
    }

    #[test]
    fn only_a_lone_resolved_stub_is_read_through() {
        assert!(names_only_the_resolved_stub(
            "# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"
        ));
        assert!(!names_only_the_resolved_stub(
            "nameserver 127.0.0.53\nnameserver 192.0.2.1\n"
        ));
        assert!(!names_only_the_resolved_stub("nameserver 127.0.0.1\n"));
    }

    #[test]
    fn a_private_network_keeps_the_ipv4_nameservers_it_reaches_by_nat() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver fd00::1\nnameserver 192.0.2.1\n";
        assert_eq!(
            resolv_conf_from(host, Network::Private),
            "search lan\nnameserver 192.0.2.1\n"
        );
        assert_eq!(
            resolv_conf_from("nameserver 127.0.0.1\noptions edns0\n", Network::Private),
            "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn hosts_name_loopback_and_the_step() {
        let hosts = hosts_file(&["db:10.0.0.7".parse().unwrap()]);
        assert!(hosts.ends_with("\n10.0.0.7\tdb\n"), "{hosts}");
        assert!(hosts.contains("127.0.0.1\tlocalhost buildkitsandbox\n"));
        assert!(hosts.contains("::1\tlocalhost ip6-localhost"));
    }
}
