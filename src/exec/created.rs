//! When a cached step was made: the time of its history entry. A step
//! that runs is stamped now and its record keeps the time; a hit reuses
//! it, so an unchanged rebuild writes the same history and config and
//! names the same image, as BuildKit (whose history times are the layers'
//! creation times) does.

use super::meta::timestamp;
use crate::store::{CacheRecord, CacheStore, CachedStep, StoreError};
use oci_spec::image::Digest;

/// The time to record for a step that runs now (RFC 3339 UTC).
pub fn now() -> String {
    timestamp(None)
}

/// The time of a cache hit on `step` (keyed `key`, at `position`). A
/// record from a build before times were kept gets one now, written back
/// so that later rebuilds are stable from this one on.
pub fn of_hit(
    cache: &CacheStore,
    key: &Digest,
    position: &str,
    step: &CachedStep,
) -> Result<String, StoreError> {
    if let Some(created) = &step.created {
        return Ok(created.clone());
    }
    let created = now();
    if let Some(record) = cache.peek(key)? {
        let stamped = CacheRecord {
            created: Some(created.clone()),
            ..record
        };
        cache.put(key, position, &stamped)?;
    }
    Ok(created)
}
