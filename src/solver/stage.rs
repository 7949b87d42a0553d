//! One stage: its base (scratch, an earlier stage's result, or an image),
//! then its steps in order (its base stage's ONBUILD triggers first, as
//! the planner lists them). RUN goes to the executor; COPY, ADD and
//! WORKDIR write layers through [`super::files`]; metadata instructions
//! change the config and leave history.

mod mounts;

use super::error::{BuildError, StepError};
use super::failure::{BaseFailure, Site, StepFailure};
use super::files::{self, LayerOutcome, LayerStep};
use super::scheduler::{Shared, SharedRun};
use crate::exec::config::ImageConfig;
use crate::exec::copy::{CopyFlags, CopyRequest, Source, SourceRoot, plan_copy};
use crate::exec::meta::{self, CommandLine, ConfigChange, HealthcheckSpec, StageMeta};
use crate::exec::rootfs::RootfsView;
use crate::exec::{DestRoot, LayerRef, StepEvent};
use crate::image::PlatformSpec;
use crate::plan::{self, Base, CopySource, StagePlan, StageStart, Step, StepCounter, StepKind};
use crate::progress::StepProgress;
use crate::sandbox::{Network, Security};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// What a finished stage hands to the stages built on it or copying from it.
#[derive(Debug, Clone)]
pub(super) struct StageResult {
    /// Its plan (its variables for stages built on it).
    pub plan: StagePlan,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// Its config.
    pub config: ImageConfig,
    /// The key of its last layer step (or of its base).
    pub key: String,
}

/// The state of a stage between steps.
struct State {
    layers: Vec<LayerRef>,
    config: ImageConfig,
    meta: StageMeta,
    size: meta::ConfigSize,
    key: String,
}

impl State {
    fn user(&self) -> String {
        self.config.config.user.clone().unwrap_or_default()
    }

    /// The working directory, cleaned (the config keeps it as written).
    fn workdir(&self) -> String {
        let value = self.config.config.working_dir.as_deref().unwrap_or("");
        meta::normalize_workdir("/", value)
    }
}

/// Runs stage `index`; `earlier` holds the results of the stages it needs.
pub(super) async fn run_stage(
    shared: &Shared,
    index: usize,
    earlier: &HashMap<usize, Arc<StageResult>>,
) -> Result<StageResult, BuildError> {
    let graph = &shared.graph;
    let node = graph
        .stages()
        .get(index)
        .ok_or_else(|| BuildError::Task(format!("no stage {index}")))?;
    let file = &graph.source().file;
    let platform = node
        .platform
        .clone()
        .unwrap_or_else(|| graph.platforms().target.clone());
    let mut counter = StepCounter::new(shared.stage_name(index), shown_steps(graph, index));
    let (start, layers, base_config, key) = match &node.base {
        Base::Scratch => (
            StageStart::scratch(),
            Vec::new(),
            None,
            "scratch".to_owned(),
        ),
        Base::Stage(b) => {
            let base = earlier
                .get(b)
                .ok_or_else(|| BuildError::Task(format!("stage {b} has not run")))?;
            (
                base.plan.as_base(),
                base.layers.clone(),
                Some(base.config.clone()),
                base.key.clone(),
            )
        }
        Base::Context(name) => {
            let step = format!("{} FROM {name} (build context)", counter.current());
            let (id, started) = (shared.next_id(), Instant::now());
            shared.send(StepProgress::Started {
                id,
                name: step.clone(),
            });
            let portable = format!("{}:from", graph.label(index));
            let position = format!("{file}:{portable}");
            let outcome = context_base(shared, name, &position, &platform, shared.no_cache(index))
                .await
                .map_err(|source| {
                    let site = Site::new(graph.source(), node.span);
                    BuildError::Step(Box::new(StepFailure::new(site, step, source)))
                })?;
            shared.used(index, &outcome.key, portable, None);
            shared.send(if outcome.cached {
                StepProgress::Cached { id }
            } else {
                StepProgress::Done {
                    id,
                    elapsed: started.elapsed(),
                }
            });
            (
                StageStart::scratch(),
                outcome.layer.into_iter().collect(),
                None,
                outcome.key,
            )
        }
        Base::Image(reference) => {
            let id = shared.next_id();
            let started = Instant::now();
            shared.send(StepProgress::Started {
                id,
                name: format!("{} FROM {reference}", counter.current()),
            });
            // Unpacked while pulled when a step reads its files: one of
            // the stage's own, or of a stage that builds on it or copies
            // from it (an image's triggers are not known yet). RUN steps
            // on copies read the blobs, not snapshots: then a step that
            // reads a snapshot unpacks it when it does.
            let read = (shown_steps(graph, index) > 1
                || graph
                    .stages()
                    .iter()
                    .any(|n| n.stage_deps().contains(&index)))
                && shared.executor.runs_on_snapshots();
            let unpack_for = read.then_some(id);
            let image = shared
                .image(reference, &platform, unpack_for)
                .await
                .map_err(|source| {
                    shared.send(StepProgress::Failed {
                        id,
                        elapsed: started.elapsed(),
                        message: source.to_string(),
                    });
                    let site = Site::new(graph.source(), node.span);
                    let failure = BaseFailure::new(site, reference.to_string(), source);
                    BuildError::Base(Box::new(failure))
                })?;
            // DONE whether pulled or already stored: BuildKit never
            // prints CACHED for a FROM (scripts count CACHED steps).
            shared.send(StepProgress::Done {
                id,
                elapsed: started.elapsed(),
            });
            let env = image.config.config.env.clone().unwrap_or_default();
            let triggers = image.config.config.on_build.clone().unwrap_or_default();
            (
                StageStart::image(&env).with_onbuild(&triggers),
                image.layers.clone(),
                Some(image.config.clone()),
                image.config_digest.to_string(),
            )
        }
    };
    let plan = graph.plan_stage(index, start)?;
    // An image's triggers are known only now.
    counter.set_total(StepCounter::total_of(&plan));
    // Stages an image's triggers copy from, which the graph could not know.
    let missing: Vec<usize> = plan
        .trigger_stages()
        .into_iter()
        .filter(|i| !earlier.contains_key(i))
        .collect();
    let with_missing;
    let earlier = if missing.is_empty() {
        earlier
    } else {
        with_missing = run_missing(shared, missing, earlier).await?;
        &with_missing
    };
    let mut config = meta::stage_config(base_config, &plan.platform);
    // The triggers run (the planner put them first); the image keeps none.
    config.config.on_build = None;
    let mut state = State {
        layers,
        size: meta::ConfigSize::new(&config),
        config,
        meta: StageMeta::default(),
        key,
    };
    let no_cache = shared.no_cache(index);
    for (position, step) in plan.steps.iter().enumerate() {
        let name = format!("{} {}", counter.step(&step.kind), shown(step));
        // The position without the Dockerfile's path names the step in a
        // remote cache, wherever the Dockerfile is on another machine.
        let portable = format!("{}:{position}", graph.label(index));
        let position = format!("{file}:{portable}");
        let context = StepContext {
            shared,
            earlier,
            step,
            stage: index,
            position: &position,
            platform: &plan.platform,
            portable: &portable,
            no_cache,
            id: step.kind.is_counted().then(|| shared.next_id()),
        };
        let result = if let Some(id) = context.id {
            context.run_counted(&mut state, &name, id).await
        } else {
            metadata(&mut state, step, shared).map_err(StepError::from)
        }
        .and_then(|()| state.size.check(&state.config).map_err(StepError::from));
        result.map_err(|source| {
            let site = Site::new(graph.source(), step.span);
            BuildError::Step(Box::new(StepFailure::new(site, name, source)))
        })?;
    }
    Ok(StageResult {
        plan,
        layers: state.layers,
        config: state.config,
        key: state.key,
    })
}

/// Characters of a step's text that progress and reports show.
const STEP_CHARS: usize = 1000;

/// The step as progress and reports show it: a step whose values expanded
/// to megabytes is cut, with its size.
fn shown(step: &Step) -> String {
    let text = step.to_string();
    match text.char_indices().nth(STEP_CHARS) {
        None => text,
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// Finished stages by index.
type Results = HashMap<usize, Arc<StageResult>>;

/// Runs the stages `wanted` and the stages they need that have not run
/// (in index order: a stage only needs earlier ones) and returns the
/// results so far with theirs. Boxed: it runs stages, which may call it.
fn run_missing<'a>(
    shared: &'a Shared,
    wanted: Vec<usize>,
    earlier: &'a HashMap<usize, Arc<StageResult>>,
) -> Pin<Box<dyn Future<Output = Result<Results, BuildError>> + Send + 'a>> {
    Box::pin(async move {
        let mut order = std::collections::BTreeSet::new();
        let mut pending = wanted;
        while let Some(i) = pending.pop() {
            if earlier.contains_key(&i) || !order.insert(i) {
                continue;
            }
            let node = shared
                .graph
                .stages()
                .get(i)
                .ok_or_else(|| BuildError::Task(format!("no stage {i}")))?;
            pending.extend(node.stage_deps());
        }
        let mut done = earlier.clone();
        for i in order {
            let result = run_stage(shared, i, &done).await?;
            done.insert(i, Arc::new(result));
        }
        Ok(done)
    })
}

/// The number of steps a stage shows (`n` of `[i/n]`): FROM and every
/// RUN, COPY, ADD and WORKDIR, its base stage's triggers included.
fn shown_steps(graph: &plan::Graph, index: usize) -> usize {
    use crate::dockerfile::instructions::InstructionKind;
    let own = graph
        .dockerfile
        .stages
        .get(index)
        .into_iter()
        .flat_map(|s| &s.instructions);
    1 + graph
        .triggers(index)
        .chain(own)
        .filter(|i| {
            matches!(
                i.kind,
                InstructionKind::Run(_)
                    | InstructionKind::Copy(_)
                    | InstructionKind::Add(_)
                    | InstructionKind::Workdir(_)
            )
        })
        .count()
}

/// Where the files a step reads from are, before any is read.
enum SourceFiles {
    /// A walked local context (`.dockerignore` applied).
    Context(Arc<crate::exec::rootfs::RootfsView>),
    /// The layers of a stage or an image, bottom first.
    Layers(Vec<LayerRef>),
}

/// One step being run, with what it needs from the build.
struct StepContext<'a> {
    shared: &'a Shared,
    earlier: &'a HashMap<usize, Arc<StageResult>>,
    step: &'a Step,
    /// The stage's index.
    stage: usize,
    position: &'a str,
    /// The stage's platform: what its RUN steps run as, and part of every
    /// step's cache key.
    platform: &'a PlatformSpec,
    /// `position` without the Dockerfile's path.
    portable: &'a str,
    no_cache: bool,
    /// The step's number (`#N`), when it shows as one.
    id: Option<u64>,
}

impl StepContext<'_> {
    /// Runs a step that shows as `#N`: reports it, runs it, and records
    /// its layer and history.
    async fn run_counted(&self, state: &mut State, name: &str, id: u64) -> Result<(), StepError> {
        let started = Instant::now();
        self.shared.send(StepProgress::Started {
            id,
            name: name.to_owned(),
        });
        let outcome = match &self.step.kind {
            StepKind::Run(run) => self.run(state, run, id, started).await,
            StepKind::Copy(copy) => self.copy(state, copy).await,
            StepKind::Add(add) => self.add(state, add).await,
            StepKind::Workdir(dir) => self.workdir(state, dir),
            _ => Err(StepError::Unsupported("this instruction as a layer step")),
        };
        let (outcome, created_by) = match outcome {
            Ok(done) => done,
            Err(error) => {
                self.shared.send(StepProgress::Failed {
                    id,
                    elapsed: started.elapsed(),
                    message: error.to_string(),
                });
                return Err(error);
            }
        };
        if outcome.cached {
            self.shared
                .steps_cached
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.send(StepProgress::Cached { id });
        } else {
            self.shared
                .steps_run
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !outcome.miss_reasons.is_empty() {
                self.shared.send(StepProgress::Missed {
                    id,
                    reasons: outcome.miss_reasons.clone(),
                });
            }
            self.shared.send(StepProgress::Done {
                id,
                elapsed: started.elapsed(),
            });
        }
        // SOURCE_DATE_EPOCH stamps every entry; else the step's own time.
        let created = match self.shared.options.exec.source_date_epoch {
            Some(epoch) => meta::timestamp(Some(epoch)),
            None => outcome.created,
        };
        meta::record_step(
            &mut state.config,
            created_by,
            outcome.layer.as_ref().map(|l| &l.diff_id),
            &created,
        );
        self.shared.used(
            self.stage,
            &outcome.key,
            self.portable.to_owned(),
            outcome.alias.clone(),
        );
        state.layers.extend(outcome.layer);
        state.key = outcome.key;
        Ok(())
    }

    async fn run(
        &self,
        state: &State,
        run: &plan::RunStep,
        id: u64,
        started: Instant,
    ) -> Result<(LayerOutcome, String), StepError> {
        let entitlements = &self.shared.options.entitlements;
        if let Some(missing) = entitlements.missing(run.security, run.network) {
            return Err(StepError::NotEntitled(missing));
        }
        let security = match run.security {
            Some(crate::dockerfile::instructions::SecurityMode::Insecure) => Security::Insecure,
            None | Some(crate::dockerfile::instructions::SecurityMode::Sandbox) => {
                Security::Sandbox
            }
        };
        let argv = run_argv(&state.config, run)?;
        let keyed = self.mount_keys(run).await?;
        let network = match run.network {
            None | Some(crate::dockerfile::instructions::NetworkMode::Default) => {
                self.shared.options.network
            }
            Some(crate::dockerfile::instructions::NetworkMode::None) => Network::None,
            Some(crate::dockerfile::instructions::NetworkMode::Host) => Network::Host,
        };
        let pairs = |list: &plan::EnvList| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        let mut step = crate::exec::RunStep {
            parent: state.layers.clone(),
            argv: argv.clone(),
            env: pairs(&run.env),
            proxy_env: pairs(&run.proxy_env),
            user: state.user(),
            workdir: state.workdir(),
            network,
            security,
            mounts: crate::exec::StepMounts {
                keys: keyed.keys.clone(),
                ..Default::default()
            },
            emulator: self.shared.emulator(self.platform)?,
        };
        let executor = &self.shared.executor;
        let mut inputs = step.cache_inputs(&state.key, executor.options());
        inputs
            .flags
            .insert("platform".to_owned(), self.platform.to_string());
        let shared = self.shared;
        let mut on_event = |event: StepEvent<'_>| match event {
            StepEvent::Output { line, .. } => {
                let text = String::from_utf8_lossy(line);
                shared.send(StepProgress::Output {
                    id,
                    elapsed: started.elapsed(),
                    line: text.trim_end_matches(['\n', '\r']).to_owned(),
                });
            }
            StepEvent::Notice(text) => shared.notice(format!("#{id} note: {text}")),
            StepEvent::Work(work) => shared.send(StepProgress::Work {
                id,
                work: work.clone(),
            }),
        };
        // Another platform's build of this one may have run the same step.
        let mut ran = None;
        let first = async {
            let hit = match self.no_cache {
                true => None,
                false => executor.cached(&step.parent, &inputs, self.position, &mut on_event)?,
            };
            let outcome = match hit {
                Some(hit) => crate::exec::RunOutcome {
                    layer: hit.layer,
                    cached: true,
                    miss_reasons: Vec::new(),
                    created: hit.created,
                },
                // Bound files are copied, caches locked and secrets read only
                // for a step that runs.
                None => {
                    let _held = self
                        .set_up_mounts(run, &state.workdir(), &keyed, &mut step.mounts)
                        .await?;
                    if self.no_cache {
                        let layer = executor.run(&step, &mut on_event).await?;
                        let created = files::record_run(
                            &self.shared.store,
                            &inputs,
                            self.position,
                            layer.as_ref(),
                        )?;
                        crate::exec::RunOutcome {
                            layer,
                            cached: false,
                            miss_reasons: Vec::new(),
                            created,
                        }
                    } else {
                        executor
                            .run_missed(&step, &inputs, self.position, &mut on_event)
                            .await?
                    }
                }
            };
            let result = SharedRun {
                layer: outcome.layer.clone(),
                created: outcome.created.clone(),
            };
            ran = Some(outcome);
            Ok::<_, StepError>(result)
        };
        let slot = self.shared.runs.slot(&inputs.key());
        let result = slot.get_or_try_init(|| first).await?.clone();
        let outcome = ran.unwrap_or(crate::exec::RunOutcome {
            layer: result.layer,
            cached: true,
            miss_reasons: Vec::new(),
            created: result.created,
        });
        let build_args: Vec<(String, String)> = run
            .args
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
            .collect();
        Ok((
            LayerOutcome {
                layer: outcome.layer,
                cached: outcome.cached,
                miss_reasons: outcome.miss_reasons,
                key: inputs.key().to_string(),
                created: outcome.created,
                alias: None,
            },
            meta::run_created_by(&argv, &build_args),
        ))
    }

    /// The files of `COPY --from`: a stage's or an image's root filesystem.
    async fn source_root(
        &self,
        from: Option<&plan::CopyFrom>,
    ) -> Result<(SourceRoot, Option<tempfile::TempDir>), StepError> {
        match self.source_files(from).await? {
            SourceFiles::Context(view) => Ok((SourceRoot::Context(view), None)),
            SourceFiles::Layers(layers) => self.layers_root(&layers),
        }
    }

    /// Where the files of `--from` (the context when none) are: a walked
    /// context, or the layers of a stage or an image, whose root
    /// filesystem is not made yet.
    async fn source_files(&self, from: Option<&plan::CopyFrom>) -> Result<SourceFiles, StepError> {
        let Some(from) = from else {
            return Ok(SourceFiles::Context(self.shared.context().await?));
        };
        let layers = match &from.source {
            plan::Source::Context(name) => {
                return Ok(SourceFiles::Context(self.shared.named_context(name).await?));
            }
            plan::Source::Stage(i) => {
                self.earlier
                    .get(i)
                    .map(|r| r.layers.clone())
                    .ok_or(StepError::Unsupported(
                        "COPY --from a stage that has not run",
                    ))?
            }
            plan::Source::Image(reference) => {
                let platform = self.shared.graph.platforms().target.clone();
                self.shared
                    .image(reference, &platform, self.id)
                    .await
                    .map_err(|source| StepError::FromImage {
                        reference: reference.to_string(),
                        source: Box::new(source),
                    })?
                    .layers
                    .clone()
            }
        };
        Ok(SourceFiles::Layers(layers))
    }

    /// The root filesystem of `layers`, and the empty directory that
    /// stands for it when there are none.
    fn layers_root(
        &self,
        layers: &[LayerRef],
    ) -> Result<(SourceRoot, Option<tempfile::TempDir>), StepError> {
        let store = &self.shared.store;
        let owners = self.shared.executor.layer_owners();
        tokio::task::block_in_place(|| match files::rootfs_view(store, layers)? {
            Some(view) => Ok((
                SourceRoot::Stage {
                    view: Arc::new(view),
                    owners,
                },
                None,
            )),
            None => {
                let empty = self.scratch_dir()?;
                let view = crate::exec::rootfs::RootfsView::dir(empty.path())?;
                Ok((
                    SourceRoot::Stage {
                        view: Arc::new(view),
                        owners,
                    },
                    Some(empty),
                ))
            }
        })
    }

    /// A directory under the store's `tmp/`, removed on drop.
    fn scratch_dir(&self) -> Result<tempfile::TempDir, StepError> {
        let tmp = self.shared.store.root().join("tmp");
        tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&tmp)
            .map_err(|source| {
                StepError::Copy(crate::exec::CopyError::Io {
                    action: format!("creating a directory in {}", tmp.display()),
                    source,
                })
            })
    }

    fn layer_step<'s>(
        &'s self,
        state: &'s State,
        kind: &'static str,
        words: Vec<String>,
        user: &'s str,
        workdir: &'s str,
    ) -> LayerStep<'s> {
        LayerStep {
            parent_key: &state.key,
            kind,
            words,
            user,
            workdir,
            position: self.position,
            platform: self.platform,
            no_cache: self.no_cache,
        }
    }

    async fn copy(
        &self,
        state: &State,
        copy: &plan::CopyStep,
    ) -> Result<(LayerOutcome, String), StepError> {
        let (root, _empty) = self.source_root(copy.from.as_ref()).await?;
        let request = copy_request(
            &copy.sources,
            &copy.dest,
            &state.workdir(),
            CopyFlags {
                chown: copy.chown.clone(),
                chmod: copy.chmod.clone(),
                link: copy.link,
                parents: copy.parents,
                excludes: copy.exclude.clone(),
            },
        );
        let words = words(&copy.sources, &copy.dest);
        let created_by = format!("COPY {} # buildkit", words.join(" "));
        let (user, workdir) = (state.user(), state.workdir());
        let _turn = self.layer_turn(state, &created_by).await;
        let step = self.layer_step(state, "COPY", words, &user, &workdir);
        let outcome = tokio::task::block_in_place(|| {
            self.by_alias(state, &step, |dest| plan_copy(&request, &root, dest))
        })?;
        Ok((outcome, created_by))
    }

    async fn add(
        &self,
        state: &State,
        add: &plan::AddStep,
    ) -> Result<(LayerOutcome, String), StepError> {
        let (root, _empty) = self.source_root(None).await?;
        let request = crate::exec::add::AddRequest {
            copy: copy_request(
                &add.sources,
                &add.dest,
                &state.workdir(),
                CopyFlags {
                    chown: add.chown.clone(),
                    chmod: add.chmod.clone(),
                    link: add.link,
                    parents: false,
                    excludes: add.exclude.clone(),
                },
            ),
            checksum: add.checksum.clone(),
            unpack: add.unpack,
            keep_git_dir: add.keep_git_dir,
        };
        let words = words(&add.sources, &add.dest);
        let created_by = format!("ADD {} # buildkit", words.join(" "));
        let (user, workdir) = (state.user(), state.workdir());
        let store = &self.shared.store;
        let _turn = self.layer_turn(state, &created_by).await;
        let scratch = self.scratch_dir()?;
        let view = tokio::task::block_in_place(|| files::rootfs_view(store, &state.layers))?;
        let plan = crate::exec::add::plan_add(
            &request,
            &root,
            self.dest_root(view.as_ref()),
            scratch.path(),
        )
        .await?;
        let outcome = tokio::task::block_in_place(|| {
            files::commit(
                store,
                self.shared.executor.options(),
                &self.shared.memo,
                &self.layer_step(state, "ADD", words, &user, &workdir),
                plan,
            )
        })?;
        Ok((outcome, created_by))
    }

    /// This step's turn to write its layer (see
    /// [`super::scheduler::RunOnce::layer_turn`]).
    async fn layer_turn(
        &self,
        state: &State,
        instruction: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let what = format!("{} {} {instruction}", self.platform, state.key);
        self.shared.runs.layer_turn(what).await
    }

    /// A COPY or WORKDIR through its alias (see [`files::alias`]): from
    /// the cache without reading the parent's files when the alias names
    /// a record, else committed as `plan` makes it over the parent (the
    /// alias then names its record). `plan` is asked without a parent for
    /// the alias, which is computed only where it may serve: with parent
    /// layers that only a remote cache has, or for a `--cache-to` (whose
    /// records carry it).
    fn by_alias(
        &self,
        state: &State,
        step: &LayerStep<'_>,
        plan: impl Fn(Option<DestRoot<'_>>) -> Result<crate::exec::CopyPlan, crate::exec::CopyError>,
    ) -> Result<LayerOutcome, StepError> {
        let store = &self.shared.store;
        let wanted =
            !self.shared.options.cache_to.is_empty() || !files::all_stored(store, &state.layers);
        // A plan that needs the parent (a --chown by name) has no alias.
        let alias = match wanted.then(|| plan(None)) {
            Some(Ok(plan)) => Some(files::alias(
                self.shared.executor.options(),
                &self.shared.memo,
                &state.layers,
                step,
                plan,
            )?),
            _ => None,
        };
        if let (Some(alias), false) = (&alias, self.no_cache) {
            if let Some(outcome) = files::by_alias(store, alias, self.position)? {
                return Ok(outcome);
            }
        }
        let view = files::rootfs_view(store, &state.layers)?;
        let planned = plan(self.dest_root(view.as_ref()))?;
        let mut outcome = files::commit(
            store,
            self.shared.executor.options(),
            &self.shared.memo,
            step,
            planned,
        )?;
        if let (Some(alias), Ok(key)) = (&alias, outcome.key.parse()) {
            store.cache().put_alias(alias, &key)?;
        }
        outcome.alias = alias;
        Ok(outcome)
    }

    /// The parent layers a COPY, ADD or WORKDIR writes onto, as the
    /// planner reads them.
    fn dest_root<'v>(&self, view: Option<&'v RootfsView>) -> Option<DestRoot<'v>> {
        view.map(|view| DestRoot {
            view,
            owners: self.shared.executor.layer_owners(),
        })
    }

    /// WORKDIR: the new working directory, created (as BuildKit does)
    /// when the root filesystem lacks it. The config keeps the path as
    /// BuildKit does (see [`meta::workdir_value`]).
    fn workdir(&self, state: &mut State, dir: &str) -> Result<(LayerOutcome, String), StepError> {
        let value = meta::workdir_value(&state.workdir(), dir);
        state.config.config.working_dir = Some(value.clone());
        let (user, workdir) = (state.user(), state.workdir());
        let dir = workdir.clone();
        let step = self.layer_step(state, "WORKDIR", vec![value.clone()], &user, &workdir);
        let outcome = tokio::task::block_in_place(|| {
            self.by_alias(state, &step, |dest| {
                crate::exec::mkdir::plan_workdir(&dir, &user, dest)
            })
        })?;
        Ok((outcome, format!("WORKDIR {value}")))
    }
}

/// The layer of a stage whose base is a named local context: the
/// context's files at `/`, keyed by their content like a COPY.
async fn context_base(
    shared: &Shared,
    name: &str,
    position: &str,
    platform: &PlatformSpec,
    no_cache: bool,
) -> Result<LayerOutcome, StepError> {
    let view = shared.named_context(name).await?;
    let request = copy_request(
        &[CopySource::Path(".".to_owned())],
        "/",
        "/",
        CopyFlags::default(),
    );
    let store = &shared.store;
    tokio::task::block_in_place(|| {
        let plan = plan_copy(&request, &SourceRoot::Context(view), None)?;
        files::commit(
            store,
            shared.executor.options(),
            &shared.memo,
            &LayerStep {
                parent_key: "scratch",
                kind: "FROM",
                words: vec![format!("context:{name}")],
                user: "",
                workdir: "/",
                position,
                platform,
                no_cache,
            },
            plan,
        )
    })
}

/// The argv of a RUN: the exec form as written, or the stage's SHELL with
/// the command; a command with here-documents goes to the shell with their
/// bodies (a lone `<<EOF` runs its body as the script, as BuildKit does).
fn run_argv(config: &ImageConfig, run: &plan::RunStep) -> Result<Vec<String>, StepError> {
    let command = match &run.command {
        plan::CommandLine::Exec(words) => return Ok(words.clone()),
        plan::CommandLine::Shell(command) => command,
    };
    let lone = match run.heredocs.as_slice() {
        [doc] => {
            let marker = command.trim();
            let name = marker
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'');
            marker.starts_with("<<") && name == doc.name
        }
        _ => false,
    };
    if lone {
        let body = run.heredocs.first().map(|d| d.body()).unwrap_or_default();
        if body.starts_with("#!") {
            return Err(StepError::Unsupported(
                "RUN <<EOF with a #! interpreter line",
            ));
        }
        return Ok(meta::shell_argv(config, &body));
    }
    let mut script = command.clone();
    for doc in &run.heredocs {
        script.push('\n');
        script.push_str(&doc.body());
        script.push_str(&doc.name);
    }
    Ok(meta::shell_argv(config, &script))
}

/// A COPY/ADD request from the plan's step.
fn copy_request(
    sources: &[CopySource],
    dest: &str,
    workdir: &str,
    flags: CopyFlags,
) -> CopyRequest {
    CopyRequest {
        sources: sources
            .iter()
            .map(|s| match s {
                CopySource::Path(p) => Source::Path(p.clone()),
                CopySource::Inline { name, content } => Source::Heredoc {
                    name: name.clone(),
                    content: content.clone().into_bytes(),
                },
            })
            .collect(),
        dest: dest.to_owned(),
        workdir: PathBuf::from(workdir),
        flags,
    }
}

/// The sources and destination as words (heredocs as `<<NAME`).
fn words(sources: &[CopySource], dest: &str) -> Vec<String> {
    sources
        .iter()
        .map(|s| match s {
            CopySource::Path(p) => p.clone(),
            CopySource::Inline { name, .. } => format!("<<{name}"),
        })
        .chain([dest.to_owned()])
        .collect()
}

/// Applies a metadata instruction to the config.
fn metadata(state: &mut State, step: &Step, shared: &Shared) -> Result<(), meta::MetaError> {
    let command = |c: &plan::CommandLine| match c {
        plan::CommandLine::Exec(words) => CommandLine::Exec(words.clone()),
        plan::CommandLine::Shell(line) => CommandLine::Shell(line.clone()),
    };
    let change = match &step.kind {
        StepKind::Env(pairs) => ConfigChange::Env(pairs.clone()),
        StepKind::Label(pairs) => ConfigChange::Label(pairs.clone()),
        StepKind::Arg(args) => ConfigChange::Arg(
            args.iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect(),
        ),
        StepKind::Expose(ports) => ConfigChange::Expose(ports.clone()),
        StepKind::Volume(paths) => ConfigChange::Volume(paths.clone()),
        StepKind::User(user) => ConfigChange::User(user.clone()),
        StepKind::StopSignal(signal) => ConfigChange::StopSignal(signal.clone()),
        StepKind::Maintainer(name) => ConfigChange::Maintainer(name.clone()),
        StepKind::Cmd(c) => ConfigChange::Cmd(
            c.as_ref()
                .map(command)
                .unwrap_or(CommandLine::Exec(Vec::new())),
        ),
        StepKind::Entrypoint(c) => ConfigChange::Entrypoint(
            c.as_ref()
                .map(command)
                .unwrap_or(CommandLine::Exec(Vec::new())),
        ),
        StepKind::Healthcheck(check) => ConfigChange::Healthcheck(healthcheck(check)),
        StepKind::Shell(words) => ConfigChange::Shell(words.clone()),
        StepKind::Onbuild(trigger) => ConfigChange::Onbuild(trigger.clone()),
        StepKind::Run(_) | StepKind::Copy(_) | StepKind::Add(_) | StepKind::Workdir(_) => {
            return Ok(());
        }
    };
    // Without SOURCE_DATE_EPOCH a metadata step's time is filled in from
    // the layer steps around it when the image is written (meta::finish).
    let created = shared
        .options
        .exec
        .source_date_epoch
        .map(|epoch| meta::timestamp(Some(epoch)));
    meta::apply(
        &mut state.config,
        &mut state.meta,
        &change,
        created.as_deref(),
    )
}

fn healthcheck(check: &crate::dockerfile::instructions::Healthcheck) -> Option<HealthcheckSpec> {
    use crate::dockerfile::instructions::{Command, Healthcheck};
    let Healthcheck::Check(check) = check else {
        return None;
    };
    Some(HealthcheckSpec {
        command: match &check.command {
            Command::Exec(words) => {
                CommandLine::Exec(words.iter().map(|w| w.value.clone()).collect())
            }
            Command::Shell(word) => CommandLine::Shell(word.value.clone()),
        },
        interval: check.interval,
        timeout: check.timeout,
        start_period: check.start_period,
        start_interval: check.start_interval,
        retries: check.retries,
    })
}
