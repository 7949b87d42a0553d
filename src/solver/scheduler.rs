//! Runs the stages a target needs: the graph's parallel groups in order,
//! the stages of one group as concurrent tokio tasks. The first failure
//! cancels the stages still running (their sandboxes are killed) and ends
//! the build; nothing of a failed step is kept or recorded.

use super::base::{self, ImageBase};
use super::cache_remote::{self, CacheTo, StepsUsed, UsedStep};
use super::error::{BaseError, BuildError};
use super::stage::{StageResult, run_stage};
use super::{BuildOptions, Built, ClientFactory};
use crate::context::digest::DigestMemo;
use crate::exec::Executor;
use crate::exec::rootfs::RootfsView;
use crate::image::{PlatformSpec, Reference};
use crate::plan::Graph;
use crate::progress::{Event, ProgressSender, StepProgress};
use crate::sandbox::Sandbox;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;

/// What every stage task of one build shares.
pub(super) struct Shared {
    pub graph: Arc<Graph>,
    pub store: Store,
    pub executor: Executor,
    clients: ClientFactory,
    pub options: BuildOptions,
    progress: ProgressSender,
    next_id: AtomicU64,
    pub steps_run: AtomicUsize,
    pub steps_cached: AtomicUsize,
    /// The build context after `.dockerignore`, walked on first use.
    context: tokio::sync::OnceCell<Arc<RootfsView>>,
    /// Content digests of context files, kept between builds.
    pub memo: Mutex<DigestMemo>,
    /// Named local contexts walked so far, by name.
    named_contexts: tokio::sync::Mutex<HashMap<String, Arc<RootfsView>>>,
    /// Images resolved so far, by reference.
    images: tokio::sync::Mutex<HashMap<String, Arc<ImageBase>>>,
    /// The steps that ran or hit, for `--cache-to`.
    used: Mutex<Vec<UsedStep>>,
}

impl Shared {
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

    /// The build context as a root filesystem, `.dockerignore` applied.
    pub async fn context(&self) -> Result<Arc<RootfsView>, super::StepError> {
        self.context
            .get_or_try_init(|| async {
                let dir = &self.options.context;
                let ignore =
                    crate::ignore::IgnoreFile::for_build(dir, self.options.dockerfile.as_deref())?;
                let matcher = ignore.as_ref().map(|f| f.matcher()).transpose()?;
                let entries =
                    tokio::task::block_in_place(|| crate::context::walk(dir, matcher.as_ref()))?;
                Ok(Arc::new(RootfsView::context(dir, &entries)?))
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
        let view = Arc::new(RootfsView::context(dir, &entries)?);
        walked.insert(name.to_owned(), Arc::clone(&view));
        Ok(view)
    }

    /// The image `reference` for `platform`, resolved once per build.
    pub async fn image(
        &self,
        reference: &Reference,
        platform: &PlatformSpec,
    ) -> Result<Arc<ImageBase>, BaseError> {
        let mut images = self.images.lock().await;
        let key = format!("{reference} {platform}");
        if let Some(image) = images.get(&key) {
            return Ok(Arc::clone(image));
        }
        let clients = Arc::clone(&self.clients);
        let image = base::resolve(
            &self.store,
            || Ok(clients(reference.registry())?),
            reference,
            platform,
            self.options.pull,
            &self.progress,
        )
        .await?;
        let image = Arc::new(image);
        images.insert(key, Arc::clone(&image));
        Ok(image)
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

/// Runs every stage the target needs, group by group; the first failure
/// cancels the others.
async fn run_stages(
    graph: &Graph,
    shared: &Arc<Shared>,
) -> Result<HashMap<usize, Arc<StageResult>>, BuildError> {
    let mut done: HashMap<usize, Arc<StageResult>> = HashMap::new();
    for group in graph.parallel_groups() {
        let earlier = Arc::new(done.clone());
        let mut tasks = JoinSet::new();
        for index in group {
            let shared = Arc::clone(shared);
            let earlier = Arc::clone(&earlier);
            tasks.spawn(async move { (index, run_stage(&shared, index, &earlier).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let failure = match joined {
                Ok((index, Ok(result))) => {
                    done.insert(index, Arc::new(result));
                    continue;
                }
                Ok((_, Err(error))) => error,
                Err(error) => BuildError::Task(error.to_string()),
            };
            // Cancel the other stages and wait until their sandboxes are gone.
            tasks.shutdown().await;
            return Err(failure);
        }
    }
    Ok(done)
}

/// Builds the target of `graph` into `store`: runs the stages, then
/// stores the image config and manifest. Steps run in `sandbox`; base
/// images come from the store or through `clients`; progress goes to
/// `progress`. Holds a store lease for the whole build. Must run on a
/// multi-threaded tokio runtime (file work runs in `block_in_place`).
pub async fn build(
    graph: Arc<Graph>,
    store: Store,
    sandbox: Sandbox,
    clients: ClientFactory,
    options: BuildOptions,
    progress: ProgressSender,
) -> Result<Built, BuildError> {
    options.entitlements.check(&graph)?;
    let _lease = store.lease()?;
    let host = PlatformSpec::host();
    let target = &graph.platforms().target;
    if !host.can_run(target) {
        return Err(BuildError::Platform {
            location: graph.source().file.clone(),
            stage: graph.label(graph.target()),
            platform: target.to_string(),
            host: host.to_string(),
        });
    }
    let (store, remote) = cache_remote::import_all(
        &store,
        &options.cache_from,
        &clients,
        &progress,
        &graph.source().file,
    )
    .await;
    if let Some(notice) = crate::userns::missing_range_notice() {
        progress.send(Event::Status(notice));
    }
    let mut first_id = 0;
    let (shared, done) = loop {
        let memo = DigestMemo::load(&store.root().join("cache").join("context-digests"));
        let shared = Arc::new(Shared {
            executor: Executor::new(store.clone(), sandbox.clone(), options.exec.clone()),
            graph: Arc::clone(&graph),
            store: store.clone(),
            clients: Arc::clone(&clients),
            options: options.clone(),
            progress: progress.clone(),
            next_id: AtomicU64::new(first_id),
            steps_run: AtomicUsize::new(0),
            steps_cached: AtomicUsize::new(0),
            context: tokio::sync::OnceCell::new(),
            memo: Mutex::new(memo),
            named_contexts: tokio::sync::Mutex::new(HashMap::new()),
            images: tokio::sync::Mutex::new(HashMap::new()),
            used: Mutex::new(Vec::new()),
        });
        match run_stages(&graph, &shared).await {
            Ok(done) => break (shared, done),
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
                    first_id = shared.next_id.load(Ordering::Relaxed);
                }
                _ => return Err(error),
            },
        }
    };
    if let Ok(mut memo) = shared.memo.lock() {
        if let Err(e) = memo.save() {
            shared.notice(format!(
                "warning: the context digest memo was not saved: {e}"
            ));
        }
    }
    let result = done
        .get(&graph.target())
        .ok_or_else(|| BuildError::Task("the target stage did not run".to_owned()))?;
    let steps_used = StepsUsed {
        steps: shared
            .used
            .lock()
            .map(|used| used.clone())
            .unwrap_or_default(),
        final_stages: final_stages(&graph),
    };
    let inline = shared
        .options
        .cache_to
        .contains(&CacheTo::Inline)
        .then(|| cache_remote::inline_value(&store, &steps_used));
    let (manifest, config) = super::image::write(
        &store,
        result,
        &shared.options.labels,
        shared.options.exec.source_date_epoch,
        inline,
    )?;
    let built = Built {
        manifest,
        config,
        steps_run: shared.steps_run.load(Ordering::Relaxed),
        steps_cached: shared.steps_cached.load(Ordering::Relaxed),
        store,
        steps_used,
        cache_to: shared.options.cache_to.clone(),
        compression: shared.options.exec.compression,
    };
    Ok(built)
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
