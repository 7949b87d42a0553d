//! Which snapshots are still of use: the layer chains of named images, and
//! the chains cached steps stack up to. A cached step's snapshot is what
//! makes its cache hit instant (without it the hit unpacks its layer blob
//! again), so prune keeps every chain a build would look up when its steps
//! hit the cache, and only those.

use super::snapshots::{chain_id, chain_ids};
use super::{BlobStore, CacheRecord};
use oci_spec::image::Digest;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The part of an image config that names its layers.
#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: Rootfs,
}

#[derive(Deserialize)]
struct Rootfs {
    diff_ids: Vec<Digest>,
}

/// The chain IDs of every layer prefix of the image config `config`;
/// `None` when the config is not stored or does not parse.
pub(super) fn config_chains(blobs: &BlobStore, config: &Digest) -> Option<Vec<Digest>> {
    if !blobs.contains(config) {
        return None;
    }
    let bytes = blobs.read(config).ok()?;
    let parsed: ConfigRootfs = serde_json::from_slice(&bytes).ok()?;
    Some(chain_ids(&parsed.rootfs.diff_ids))
}

/// Where a cached step's layers end: the chain ID of its top layer, or
/// `None` for an empty stack (`FROM scratch`, nothing added yet).
type Top = Option<Digest>;

/// The chain IDs the steps of `records` (by key) produce when each stacks
/// on the step its inputs name as `parent`. A stage's first step stands on
/// `scratch` or on a base image's config digest; `base_top` gives the top
/// chain of such a base, `None` when it cannot be known (the base is no
/// longer stored), and then the steps above it count for nothing.
pub(super) fn record_chains(
    records: &HashMap<Digest, CacheRecord>,
    base_top: impl Fn(&Digest) -> Option<Top>,
) -> HashSet<Digest> {
    let mut tops: HashMap<Digest, Option<Top>> = HashMap::new();
    for key in records.keys() {
        // Walk down to a known top, then fill in the tops on the way back.
        let mut path: Vec<&Digest> = Vec::new();
        let mut key = key;
        let mut below: Option<Top> = loop {
            if let Some(top) = tops.get(key) {
                break top.clone();
            }
            if path.contains(&key) {
                break None; // a loop of parents: no real stack
            }
            path.push(key);
            let Some(parent) = records.get(key).and_then(parent_of) else {
                break None;
            };
            match parent {
                Parent::Scratch => break Some(None),
                Parent::Digest(digest) => match records.get_key_value(&digest) {
                    Some((record_key, _)) => key = record_key,
                    None => break base_top(&digest),
                },
            }
        };
        for key in path.into_iter().rev() {
            let top = match (below, records.get(key).and_then(|r| r.layer.as_ref())) {
                (Some(parent), Some(layer)) => {
                    Some(Some(chain_id(parent.as_ref(), &layer.diff_id)))
                }
                (below, _) => below,
            };
            tops.insert(key.clone(), top.clone());
            below = top;
        }
    }
    let stacked = records.iter().filter(|(_, record)| record.layer.is_some());
    stacked
        .filter_map(|(key, _)| tops.get(key).cloned().flatten().flatten())
        .collect()
}

/// What a step stands on, as its inputs say.
enum Parent {
    Scratch,
    Digest(Digest),
}

fn parent_of(record: &CacheRecord) -> Option<Parent> {
    match record.inputs.get("parent")?.as_str()? {
        "scratch" => Some(Parent::Scratch),
        other => Digest::try_from(other).ok().map(Parent::Digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CachedLayer;

    fn record(parent: &str, diff_id: Option<&Digest>) -> CacheRecord {
        CacheRecord {
            inputs: serde_json::json!({ "parent": parent }),
            layer: diff_id.map(|diff_id| CachedLayer {
                digest: crate::digest::sha256(diff_id.to_string().as_bytes()),
                size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: diff_id.clone(),
            }),
            config_change: serde_json::Value::Null,
            created: None,
        }
    }

    #[test]
    fn steps_stack_through_parents_and_empty_steps() {
        let (a, b, base) = (
            crate::digest::sha256(b"a"),
            crate::digest::sha256(b"b"),
            crate::digest::sha256(b"base-layer"),
        );
        let config = crate::digest::sha256(b"config");
        let gone = crate::digest::sha256(b"gone-config");
        let k1 = crate::digest::sha256(b"k1");
        let k2 = crate::digest::sha256(b"k2");
        let k3 = crate::digest::sha256(b"k3");
        let k4 = crate::digest::sha256(b"k4");
        let k5 = crate::digest::sha256(b"k5");
        let records = HashMap::from([
            // scratch → k1 (layer a) → k2 (no layer) → k3 (layer b)
            (k1.clone(), record("scratch", Some(&a))),
            (k2.clone(), record(k1.as_ref(), None)),
            (k3.clone(), record(k2.as_ref(), Some(&b))),
            // a known base → k4 (layer a)
            (k4.clone(), record(config.as_ref(), Some(&a))),
            // an unknown base → k5: nothing to keep
            (k5.clone(), record(gone.as_ref(), Some(&b))),
        ]);
        let chains = record_chains(&records, |d| (d == &config).then(|| Some(base.clone())));
        let expected: HashSet<Digest> =
            [a.clone(), chain_id(Some(&a), &b), chain_id(Some(&base), &a)].into();
        assert_eq!(chains, expected);
    }
}
