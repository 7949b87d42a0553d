//! The layers of COPY, ADD and WORKDIR: planned from their sources, keyed
//! by every source's content (through [`StepInputs`], the key scheme RUN
//! uses), and on a miss written as a plain tar blob and only then recorded
//! in the step cache. A step is first looked up by its stat alias (see
//! [`commit`]), which an unchanged rebuild finds without a digest per
//! source. Their snapshots are unpacked when a later step reads the files
//! (a RUN, a COPY --chown by name, a WORKDIR), not before.

use super::error::StepError;
use crate::exec::cache_key::{SourceDigest, StepInputs, explain_miss};
use crate::exec::created;
use crate::exec::rootfs::RootfsView;
use crate::exec::{CacheInput, CopyError, CopyPlan, ExecOptions, LayerRef};
use crate::layer::LayerError;
use crate::layer::tar::WriteOptions;
use crate::store::{CacheRecord, CachedLayer, CachedStep, Store};
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a layer step ended.
#[derive(Debug, Clone)]
pub(super) struct LayerOutcome {
    /// The new layer; `None` when the step changed nothing.
    pub layer: Option<LayerRef>,
    /// Whether it came from the cache.
    pub cached: bool,
    /// On a miss after an earlier build at this position, why.
    pub miss_reasons: Vec<String>,
    /// The step's cache key (the parent of the next step's).
    pub key: String,
    /// When the step ran (the first time, for a hit): its history time.
    pub created: String,
    /// Its key by sources (see [`alias`]), when computed.
    pub alias: Option<Digest>,
}

/// The snapshot directories of `layers`, topmost first, unpacking any that
/// is missing.
pub(super) fn snapshot_dirs(store: &Store, layers: &[LayerRef]) -> Result<Vec<PathBuf>, StepError> {
    let snapshots = store.snapshots();
    let descriptors: Vec<Descriptor> = layers.iter().map(|l| l.blob.clone()).collect();
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = snapshots.unpack_all(&store.blobs(), &descriptors, &diff_ids)?;
    Ok(chains
        .iter()
        .rev()
        .map(|chain| snapshots.path(chain))
        .collect::<Result<_, _>>()?)
}

/// The root filesystem of `layers` as a view; `None` when there are none.
pub(super) fn rootfs_view(
    store: &Store,
    layers: &[LayerRef],
) -> Result<Option<RootfsView>, StepError> {
    if layers.is_empty() {
        return Ok(None);
    }
    Ok(Some(RootfsView::layers(&snapshot_dirs(store, layers)?)?))
}

/// What identifies a layer step besides its sources.
pub(super) struct LayerStep<'a> {
    /// The previous step's key, or what the stage starts from.
    pub parent_key: &'a str,
    /// `COPY`, `ADD` or `WORKDIR`.
    pub kind: &'static str,
    /// The instruction's expanded words.
    pub words: Vec<String>,
    /// USER in effect.
    pub user: &'a str,
    /// WORKDIR in effect.
    pub workdir: &'a str,
    /// The step's place in the build, for miss explanations.
    pub position: &'a str,
    /// The stage's platform: a layer of one platform never serves another.
    pub platform: &'a crate::image::PlatformSpec,
    /// Run it even when the cache has it.
    pub no_cache: bool,
}

/// The step's cache inputs from the plan's record of its sources.
fn step_inputs(step: &LayerStep<'_>, input: CacheInput, options: &ExecOptions) -> StepInputs {
    let mut flags: BTreeMap<String, String> = input.options;
    if let Some(epoch) = options.source_date_epoch {
        flags.insert("source-date-epoch".to_owned(), epoch.to_string());
    }
    flags.insert("platform".to_owned(), step.platform.to_string());
    let sources = input
        .sources
        .into_iter()
        .map(|record| {
            let digest = record
                .content
                .unwrap_or_else(|| format!("{} {}", record.kind, record.dest));
            SourceDigest {
                xattrs: record.xattrs,
                path: if record.source.is_empty() {
                    record.dest
                } else {
                    record.source
                },
                mode: record.mode,
                uid: record.uid,
                gid: record.gid,
                digest,
            }
        })
        .collect();
    StepInputs {
        parent: step.parent_key.to_owned(),
        kind: step.kind.to_owned(),
        words: step.words.clone(),
        flags,
        user: step.user.to_owned(),
        workdir: step.workdir.to_owned(),
        sources,
        ..StepInputs::default()
    }
}

/// Commits the layer `plan` (its step's parent named by the step's key):
/// from the cache when it has the step, else written and recorded.
///
/// The step's [`stat_alias`] is looked up first: when an earlier build
/// recorded the same plan with the same stat identities, its key is this
/// one's and no source digest is looked up.
pub(super) fn commit(
    store: &Store,
    options: &ExecOptions,
    memo: &std::sync::Mutex<crate::context::digest::DigestMemo>,
    step: &LayerStep<'_>,
    plan: CopyPlan,
) -> Result<LayerOutcome, StepError> {
    let cache = store.cache();
    let stat_alias = stat_alias(step, options, &plan);
    let aliased = cache.alias(&stat_alias)?;
    if let (Some(key), false) = (&aliased, step.no_cache) {
        if let Some(outcome) = hit(store, key, step.position)? {
            return Ok(outcome);
        }
    }
    let input = {
        // The memo only saves reads: one left by a panicking task is still usable.
        let mut memo = memo.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        plan.cache_input(&mut memo)?
    };
    let inputs = step_inputs(step, input, options);
    let key = inputs.key();
    if aliased.as_ref() != Some(&key) {
        // Before the record is written: an alias naming no record misses.
        cache.put_alias(&stat_alias, &key)?;
    }
    if !step.no_cache {
        if let Some(outcome) = hit(store, &key, step.position)? {
            return Ok(outcome);
        }
    }
    let miss_reasons = match cache.last_at(step.position)? {
        Some((_, previous)) if !step.no_cache => explain_miss(&previous.inputs, &inputs),
        _ => Vec::new(),
    };
    let layer = if plan.paths().is_empty() {
        None
    } else {
        // Its snapshot is unpacked when a later step reads the files (see
        // `snapshot_dirs`), so a last `COPY . .` writes its files once.
        Some(write(store, options, plan)?)
    };
    let created = created::now();
    let record = CacheRecord {
        inputs: inputs.to_json(),
        layer: layer.as_ref().map(cached_layer),
        config_change: serde_json::Value::Null,
        created: Some(created.clone()),
    };
    cache.put(&key, step.position, &record)?;
    Ok(LayerOutcome {
        layer,
        cached: false,
        miss_reasons,
        key: key.to_string(),
        created,
        alias: None,
    })
}

/// A second key of a layer step, computed without reading its parent's
/// files: the step, its sources as planned without a destination, and the
/// chain ID of its parent layers (their content, known from their digests).
/// It names the step's record (see [`by_alias`]), so a step cached on top
/// of layers only a remote cache has is a hit without fetching them.
pub(super) fn alias(
    options: &ExecOptions,
    memo: &std::sync::Mutex<crate::context::digest::DigestMemo>,
    parent: &[LayerRef],
    step: &LayerStep<'_>,
    plan: CopyPlan,
) -> Result<Digest, StepError> {
    let input = {
        let mut memo = memo.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        plan.cache_input(&mut memo)?
    };
    let mut inputs = step_inputs(step, input, options);
    let diff_ids: Vec<Digest> = parent.iter().map(|l| l.diff_id.clone()).collect();
    let chain = crate::store::chain_ids(&diff_ids)
        .last()
        .map_or_else(|| "scratch".to_owned(), ToString::to_string);
    inputs
        .flags
        .insert("alias-of-parent-chain".to_owned(), chain);
    Ok(inputs.key())
}

/// Another key of a layer step: the step without its sources, and its
/// plan with the stat identity of each source file in place of its
/// content (the plan's `Hash`, see [`crate::exec::CopyPlan`]). Equal stat
/// aliases mean equal cache inputs as far as the digest memo can tell, so
/// it names the step's record and an unchanged rebuild finds its key
/// without a digest lookup per source file.
fn stat_alias(step: &LayerStep<'_>, options: &ExecOptions, plan: &CopyPlan) -> Digest {
    let step = step_inputs(step, CacheInput::default(), options);
    crate::digest::sha256_of_hash(&("layer step by stat identities", step, plan))
}

/// The cached result of the step whose [`alias`] is `alias`, if the cache
/// has it; no parent file is read.
pub(super) fn by_alias(
    store: &Store,
    alias: &Digest,
    position: &str,
) -> Result<Option<LayerOutcome>, StepError> {
    let Some(key) = store.cache().alias(alias)? else {
        return Ok(None);
    };
    Ok(hit(store, &key, position)?.map(|outcome| LayerOutcome {
        alias: Some(alias.clone()),
        ..outcome
    }))
}

/// The cached result of the step with key `key` at `position`, if the
/// cache has its record and layer.
fn hit(store: &Store, key: &Digest, position: &str) -> Result<Option<LayerOutcome>, StepError> {
    let cache = store.cache();
    let Some(record) = cache.get(key)? else {
        return Ok(None);
    };
    let Some(layer) = reuse(store, &record)? else {
        return Ok(None);
    };
    let created = created::of_hit(&cache, key, position, &record)?;
    Ok(Some(LayerOutcome {
        layer,
        cached: true,
        miss_reasons: Vec::new(),
        key: key.to_string(),
        created,
        alias: None,
    }))
}

/// Whether every layer of `layers` is in the store (none only a remote
/// cache has).
pub(super) fn all_stored(store: &Store, layers: &[LayerRef]) -> bool {
    let blobs = store.blobs();
    layers.iter().all(|l| blobs.contains(l.blob.digest()))
}

/// The layer a cache record promises; `None` (do the step) when its blob
/// is gone. Its snapshot is unpacked when a later step reads the files,
/// and a blob only a remote cache has stays there until something reads it.
fn reuse(store: &Store, record: &CachedStep) -> Result<Option<Option<LayerRef>>, StepError> {
    let Some(cached) = &record.layer else {
        return Ok(Some(None));
    };
    let blobs = store.blobs();
    if !blobs.available(&cached.digest) {
        return Ok(None);
    }
    let layer = LayerRef {
        blob: Descriptor::new(
            MediaType::from(cached.media_type.as_str()),
            cached.size,
            cached.digest.clone(),
        ),
        diff_id: cached.diff_id.clone(),
    };
    Ok(Some(Some(layer)))
}

fn cached_layer(layer: &LayerRef) -> CachedLayer {
    CachedLayer {
        digest: layer.blob.digest().clone(),
        size: layer.blob.size(),
        media_type: layer.blob.media_type().to_string(),
        diff_id: layer.diff_id.clone(),
    }
}

/// Writes the planned layer as a plain tar blob into the store.
fn write(store: &Store, options: &ExecOptions, plan: CopyPlan) -> Result<LayerRef, StepError> {
    // The blob writer hashes what it stores: one pass gives the diff ID.
    let mut writer = store.blobs().writer(None)?;
    let write_options = WriteOptions {
        source_date_epoch: options.source_date_epoch,
        ..WriteOptions::default()
    };
    plan.write_layer(&mut writer, &write_options)
        .map_err(|e| match e {
            CopyError::Layer(layer) => layer,
            other => LayerError::Write {
                action: "the files of the step",
                source: std::io::Error::other(other.to_string()),
            },
        })?;
    Ok(LayerRef::plain(writer.commit()?))
}

/// Records a RUN step run without the cache (`--no-cache`), so the next
/// build can reuse and explain it as `run_cached` would have; returns the
/// time it records (the step's history time).
pub(super) fn record_run(
    store: &Store,
    inputs: &StepInputs,
    position: &str,
    layer: Option<&LayerRef>,
) -> Result<String, StepError> {
    let created = created::now();
    let record = CacheRecord {
        inputs: inputs.to_json(),
        layer: layer.map(cached_layer),
        config_change: serde_json::Value::Null,
        created: Some(created.clone()),
    };
    store.cache().put(&inputs.key(), position, &record)?;
    Ok(created)
}
