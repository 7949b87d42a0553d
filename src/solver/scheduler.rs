//! Runs the stages a target needs: the graph's parallel groups in order,
//! the stages of one group as concurrent tokio tasks. The first failure
//! cancels the stages still running (their sandboxes are killed) and ends
//! the build; nothing of a failed step is kept or recorded.

use super::base::{self, ImageBase};
use super::cache_remote::{self, CacheTo, StepsUsed, UsedStep};
use super::error::{BaseError, BuildError};
use super::stage::{StageResult, run_stage};
use super::{BuildOptions, Built, ClientFactory, PlatformImage};
use crate::context::digest::DigestMemo;
use crate::exec::rootfs::RootfsView;
use crate::exec::{Executor, LayerRef};
use crate::image::{PlatformSpec, Reference};
use crate::plan::{Graph, StepKind};
use crate::progress::plain::human_bytes;
use crate::progress::{Event, InternalState, ProgressSender, StepProgress};
use crate::sandbox::Sandbox;
use crate::sandbox::emulation::{EmulationError, Emulator, Execution};
use crate::store::Store;
use oci_spec::image::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;

/// What every stage task of one platform's build holds: that platform's
/// plan, and what all platforms of the build share (the store, the context
/// walk, resolved images, counters, RUN steps by key).
#[derive(Clone)]
pub(super) struct Shared {
    /// This platform's plan.
    pub graph: Arc<Graph>,
    /// Put before stage names in progress (`linux/arm64 `) when the build
    /// has several platforms; empty otherwise.
    prefix: String,
    pub store: Store,
    pub executor: Executor,
    clients: ClientFactory,
    pub options: Arc<BuildOptions>,
    progress: ProgressSender,
    next_id: Arc<AtomicU64>,
    pub steps_run: Arc<AtomicUsize>,
    pub steps_cached: Arc<AtomicUsize>,
    /// The build context after `.dockerignore`, walked on first use.
    context: Arc<tokio::sync::OnceCell<Arc<RootfsView>>>,
    /// Content digests of context files, kept between builds.
    pub memo: Arc<Mutex<DigestMemo>>,
    /// Named local contexts walked so far, by name.
    named_contexts: Arc<tokio::sync::Mutex<HashMap<String, Arc<RootfsView>>>>,
    /// Images resolved so far, by reference and platform.
    images: Arc<Mutex<HashMap<String, ImageCell>>>,
    /// RUN steps of this build by cache key.
    pub runs: Arc<RunOnce>,
    /// How each platform's RUN steps run (`None`: natively), decided once.
    emulators: Arc<Mutex<HashMap<PlatformSpec, Option<Emulator>>>>,
    /// The steps that ran or hit, for `--cache-to`.
    used: Arc<Mutex<Vec<UsedStep>>>,
    /// The imported caches' blobs (`--cache-from`), which seed cache
    /// mounts the store does not have.
    pub remote: Option<Arc<cache_remote::RemoteBlobs>>,
    /// The cache mounts the steps that ran used, for `--cache-to
    /// …,mounts=true`.
    pub mounts_used: Arc<Mutex<cache_remote::MountsUsed>>,
}

/// An image of the build, resolved by the first stage that needs it.
type ImageCell = Arc<tokio::sync::OnceCell<Arc<ImageBase>>>;

/// A RUN step's result as the other builds of the same key take it.
#[derive(Debug, Clone)]
pub(super) struct SharedRun {
    /// Its layer, if it changed files.
    pub layer: Option<LayerRef>,
    /// When it ran.
    pub created: String,
}

/// Steps several platforms' builds share (those of a
/// `FROM --platform=$BUILDPLATFORM` stage that reads no TARGET* arg), so
/// that each runs once per build: a RUN by its cache key, even with
/// `--no-cache` (the first to reach it runs it, the others wait and take
/// its layer); a COPY, ADD or WORKDIR one at a time per instruction and
/// parent, so the second finds the first's cache record.
#[derive(Default)]
pub(super) struct RunOnce {
    runs: Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<SharedRun>>>>,
    layers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RunOnce {
    /// The slot of the RUN step with cache key `key`.
    pub fn slot(&self, key: &Digest) -> Arc<tokio::sync::OnceCell<SharedRun>> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(runs.entry(key.clone()).or_default())
    }

    /// Waits until no other build of this one writes the layer step that
    /// `what` names (its stage's platform, parent key and instruction).
    pub async fn layer_turn(&self, what: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(layers.entry(what).or_default())
        };
        lock.lock_owned().await
    }
}

impl Shared {
    /// The same build's state for the platform `graph` plans.
    fn for_graph(&self, graph: Arc<Graph>, several: bool) -> Shared {
        let prefix = if several {
            graph.platforms().target.to_string()
        } else {
            String::new()
        };
        Shared {
            graph,
            prefix,
            ..self.clone()
        }
    }

    /// How progress names stage `index`: its name (or nothing for an
    /// unnamed stage), after the platform in a multi-platform build.
    pub fn stage_name(&self, index: usize) -> String {
        let name = self.graph.display_name(index);
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name,
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{} {name}", self.prefix),
        }
    }

    /// The next step number (`#N`).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reports step progress.
    pub fn send(&self, progress: StepProgress) {
        self.progress.send(Event::Step(progress));
    }

    /// Reports a notice.
    pub fn notice(&self, text: String) {
        self.progress.send(Event::Status(text));
    }

    /// Runs `work` as the phase `name` the tty view shows as buildx's
    /// `[internal] NAME`; `detail` says what it moved.
    fn phase<T, E>(
        &self,
        name: &str,
        work: impl FnOnce() -> Result<T, E>,
        detail: impl FnOnce(&T) -> Option<String>,
    ) -> Result<T, E> {
        let event = |state| Event::Internal {
            name: name.to_owned(),
            state,
        };
        self.progress.send(event(InternalState::Started));
        let outcome = work();
        self.progress.send(event(match &outcome {
            Ok(value) => InternalState::Done {
                detail: detail(value),
            },
            Err(_) => InternalState::Failed,
        }));
        outcome
    }

    /// The build context as a root filesystem, `.dockerignore` applied.
    pub async fn context(&self) -> Result<Arc<RootfsView>, super::StepError> {
        self.context
            .get_or_try_init(|| async {
                let dir = &self.options.context;
                let dockerfile = self.options.dockerfile.as_deref();
                let ignore = self.phase(
                    "load .dockerignore",
                    || crate::ignore::IgnoreFile::for_build(dir, dockerfile),
                    |_| None,
                )?;
                let matcher = ignore.as_ref().map(|f| f.matcher()).transpose()?;
                let walk = || crate::context::walk(dir, matcher.as_ref());
                let entries = self.phase(
                    "load build context",
                    || tokio::task::block_in_place(walk),
                    |entries| {
                        let bytes = entries.iter().map(|e| e.size).sum();
                        Some(format!("transferring context: {}", human_bytes(bytes)))
                    },
                )?;
                Ok(Arc::new(RootfsView::context(dir, entries)?))
            })
            .await
            .cloned()
    }

    /// The named local context `name` (`--build-context`) as a root
    /// filesystem, walked once per build with its own `.dockerignore`
    /// (as BuildKit loads a named local context; the main context's
    /// ignore files do not apply to it).
    pub async fn named_context(&self, name: &str) -> Result<Arc<RootfsView>, super::StepError> {
        let mut walked = self.named_contexts.lock().await;
        if let Some(view) = walked.get(name) {
            return Ok(Arc::clone(view));
        }
        let dir = self
            .options
            .named_contexts
            .get(name)
            .ok_or_else(|| super::StepError::NoNamedContext(name.to_owned()))?;
        let ignore = crate::ignore::IgnoreFile::for_build(dir, None)?;
        let matcher = ignore.as_ref().map(|f| f.matcher()).transpose()?;
        let entries = tokio::task::block_in_place(|| crate::context::walk(dir, matcher.as_ref()))?;
        let view = Arc::new(RootfsView::context(dir, entries)?);
        walked.insert(name.to_owned(), Arc::clone(&view));
        Ok(view)
    }

    /// The image `reference` for `platform`, resolved once per build; a
    /// pull of it unpacks its layers meanwhile for step `unpack_for` (see
    /// [`base::resolve`]).
    pub async fn image(
        &self,
        reference: &Reference,
        platform: &PlatformSpec,
        unpack_for: Option<u64>,
    ) -> Result<Arc<ImageBase>, BaseError> {
        // One cell per image: images pulled by different stages (and
        // unpacked meanwhile) do not wait for each other.
        let cell = {
            let mut images = self.images.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(images.entry(format!("{reference} {platform}")).or_default())
        };
        let clients = Arc::clone(&self.clients);
        let image = cell
            .get_or_try_init(|| async {
                let image = base::resolve(
                    &self.store,
                    || Ok(clients(reference.registry())?),
                    reference,
                    platform,
                    self.options.pull,
                    &self.progress,
                    unpack_for,
                )
                .await?;
                Ok::<_, BaseError>(Arc::new(image))
            })
            .await?;
        Ok(Arc::clone(image))
    }

    /// The emulator of `platform`'s RUN steps (`None` when the host runs
    /// them), decided on first use and said once in the log.
    pub fn emulator(&self, platform: &PlatformSpec) -> Result<Option<Emulator>, EmulationError> {
        let mut emulators = self
            .emulators
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = emulators.get(platform) {
            return Ok(known.clone());
        }
        let emulator = match Execution::for_platform(platform)? {
            Execution::Native => None,
            Execution::Emulated(emulator) => {
                self.notice(emulator.notice());
                Some(emulator)
            }
        };
        emulators.insert(platform.clone(), emulator.clone());
        Ok(emulator)
    }

    /// Notes a step that ran or hit (`key` as the step's outcome has it),
    /// for `--cache-to`.
    pub fn used(
        &self,
        stage: usize,
        key: &str,
        position: String,
        alias: Option<oci_spec::image::Digest>,
    ) {
        let Ok(key) = key.parse() else {
            return;
        };
        if let Ok(mut used) = self.used.lock() {
            used.push(UsedStep {
                stage,
                key,
                position,
                alias,
            });
        }
    }

    /// Whether the stage at `index` runs without the cache.
    pub fn no_cache(&self, index: usize) -> bool {
        self.options.no_cache
            || self.options.no_cache_stages.iter().any(|s| {
                s.eq_ignore_ascii_case(&self.graph.label(index)) || *s == index.to_string()
            })
    }
}

/// Builds the target of each graph (one per target platform, planned
/// from the same Dockerfile) into `store`: runs the stages, then stores
/// each platform's image config and manifest and, for several platforms,
/// an OCI index of them. The platforms' stages run side by side; what they
/// share (the context walk, base images, RUN steps of equal keys) is done
/// once. Steps run in `sandbox`; base images come from the store or
/// through `clients`; progress goes to `progress`. Holds a store lease for
/// the whole build. Must run on a multi-threaded tokio runtime (file work
/// runs in `block_in_place`).
pub async fn build(
    graphs: Vec<Arc<Graph>>,
    store: Store,
    sandbox: Sandbox,
    clients: ClientFactory,
    options: BuildOptions,
    progress: ProgressSender,
) -> Result<Built, BuildError> {
    let Some(first) = graphs.first() else {
        return Err(BuildError::Task("no platform to build for".to_owned()));
    };
    for graph in &graphs {
        options.entitlements.check(graph)?;
    }
    let _lease = store.lease()?;
    let (store, remote) = cache_remote::import_all(
        &store,
        &options.cache_from,
        &clients,
        &progress,
        &first.source().file,
    )
    .await;
    if let Some(notice) = crate::userns::missing_range_notice() {
        progress.send(Event::Status(notice));
    }
    let options = Arc::new(options);
    let mut first_id = 0;
    let (common, builds, done) = loop {
        let memo = DigestMemo::load(&store.root().join("cache").join("context-digests"));
        let common = Shared {
            executor: Executor::new(store.clone(), sandbox.clone(), options.exec.clone()),
            graph: Arc::clone(first),
            prefix: String::new(),
            store: store.clone(),
            clients: Arc::clone(&clients),
            options: Arc::clone(&options),
            progress: progress.clone(),
            next_id: Arc::new(AtomicU64::new(first_id)),
            steps_run: Arc::new(AtomicUsize::new(0)),
            steps_cached: Arc::new(AtomicUsize::new(0)),
            context: Arc::new(tokio::sync::OnceCell::new()),
            memo: Arc::new(Mutex::new(memo)),
            named_contexts: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            images: Arc::default(),
            runs: Arc::new(RunOnce::default()),
            emulators: Arc::new(Mutex::new(HashMap::new())),
            used: Arc::new(Mutex::new(Vec::new())),
            remote: remote.clone(),
            mounts_used: Arc::new(Mutex::new(Default::default())),
        };
        let several = graphs.len() > 1;
        let builds: Vec<Shared> = graphs
            .iter()
            .map(|graph| common.for_graph(Arc::clone(graph), several))
            .collect();
        for shared in &builds {
            check_platforms(shared)?;
        }
        match run_groups(&builds).await {
            Ok(done) => break (common, builds, done),
            // A cache layer that did not match its digest is refused (the
            // source no longer offers it): the build starts again, and the
            // steps whose layer it was run.
            Err(error) => match remote.as_ref().map(|r| r.take_refused()) {
                Some(refused) if !refused.is_empty() => {
                    for (digest, reason) in refused {
                        progress.send(Event::Status(format!(
                            "warning: refused cache layer {digest} ({reason}); the steps that made it run again"
                        )));
                    }
                    first_id = common.next_id.load(Ordering::Relaxed);
                }
                _ => return Err(error),
            },
        }
    };
    if let Ok(mut memo) = common.memo.lock() {
        if let Err(e) = memo.save() {
            common.notice(format!(
                "warning: the context digest memo was not saved: {e}"
            ));
        }
    }
    let steps_used = StepsUsed {
        steps: common
            .used
            .lock()
            .map(|used| used.clone())
            .unwrap_or_default(),
        final_stages: final_stages(first),
        mounts: common
            .mounts_used
            .lock()
            .map(|used| used.clone())
            .unwrap_or_default(),
    };
    let inline = options
        .cache_to
        .contains(&CacheTo::Inline)
        .then(|| {
            cache_remote::inline_value(&store, &steps_used, options.inline_distribution, &progress)
        })
        .transpose()?;
    let mut platforms = Vec::with_capacity(builds.len());
    for (shared, done) in builds.iter().zip(&done) {
        let result = done
            .get(&shared.graph.target())
            .ok_or_else(|| BuildError::Task("the target stage did not run".to_owned()))?;
        let (manifest, config) = super::image::write(
            &store,
            result,
            &options.labels,
            options.exec.source_date_epoch,
            inline.clone(),
        )?;
        platforms.push(PlatformImage {
            platform: shared.graph.platforms().target.clone(),
            manifest,
            config,
        });
    }
    let image = match platforms.as_slice() {
        [one] => one.manifest.clone(),
        several => super::image::write_index(&store, several)?,
    };
    Ok(Built {
        image,
        platforms,
        steps_run: common.steps_run.load(Ordering::Relaxed),
        steps_cached: common.steps_cached.load(Ordering::Relaxed),
        store,
        steps_used,
        cache_to: options.cache_to.clone(),
        distribution: options.distribution,
    })
}

/// Runs every platform's stages: the parallel groups in lockstep (group
/// `i` of every platform once all platforms' earlier groups are done: each
/// platform's groups are in dependency order, and their stages run side by
/// side). Returns each platform's finished stages by index.
async fn run_groups(
    builds: &[Shared],
) -> Result<Vec<HashMap<usize, Arc<StageResult>>>, BuildError> {
    let groups: Vec<Vec<Vec<usize>>> = builds.iter().map(|b| b.graph.parallel_groups()).collect();
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mut done: Vec<HashMap<usize, Arc<StageResult>>> = vec![HashMap::new(); builds.len()];
    for round in 0..rounds {
        let mut tasks = JoinSet::new();
        for (n, shared) in builds.iter().enumerate() {
            let Some(group) = groups[n].get(round) else {
                continue;
            };
            let earlier = Arc::new(done[n].clone());
            for &index in group {
                let shared = shared.clone();
                let earlier = Arc::clone(&earlier);
                tasks.spawn(async move { (n, index, run_stage(&shared, index, &earlier).await) });
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let failure = match joined {
                Ok((n, index, Ok(result))) => {
                    done[n].insert(index, Arc::new(result));
                    continue;
                }
                Ok((_, _, Err(error))) => error,
                Err(error) => BuildError::Task(error.to_string()),
            };
            // Cancel the other stages and wait until their sandboxes are gone.
            tasks.shutdown().await;
            return Err(failure);
        }
    }
    Ok(done)
}

/// Decides, before any step runs, how the RUN steps of every needed stage
/// run, so that a platform this machine cannot run stops the build first.
/// (Steps an image's ONBUILD triggers add are decided when they run.)
fn check_platforms(shared: &Shared) -> Result<(), BuildError> {
    let graph = &shared.graph;
    let needed = graph.needed_stages();
    // Planned without base images' environments: what matters here (the
    // platform, the kinds of steps) does not depend on them. A stage that
    // does not plan now fails with its own error when it runs.
    let Ok(plans) = graph.plan_stages(&needed, &mut |_| None) else {
        return Ok(());
    };
    for plan in plans {
        if !plan
            .steps
            .iter()
            .any(|s| matches!(s.kind, StepKind::Run(_)))
        {
            continue;
        }
        shared
            .emulator(&plan.platform)
            .map_err(|reason| BuildError::Platform {
                location: format!(
                    "{}:{}",
                    graph.source().file,
                    graph
                        .stages()
                        .get(plan.index)
                        .map_or(0, |node| node.span.start.line)
                ),
                stage: graph.label(plan.index),
                reason: Box::new(reason),
            })?;
    }
    Ok(())
}

/// The target stage and the stages it is built on (`FROM <stage>`): the
/// stages whose steps make the final image's layers.
fn final_stages(graph: &Graph) -> std::collections::HashSet<usize> {
    let mut stages = std::collections::HashSet::new();
    let mut index = graph.target();
    while stages.insert(index) {
        match graph.stages().get(index).map(|node| &node.base) {
            Some(crate::plan::Base::Stage(base)) => index = *base,
            _ => break,
        }
    }
    stages
}
