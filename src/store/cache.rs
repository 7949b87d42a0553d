//! Step cache records: `cache/<key-hex>.json` says what a step produced
//! (its layer, if any, its config change and when it first ran): all a
//! cache hit reads. `cache/inputs/<key-hex>.json` keeps the inputs its key
//! was computed from, so a later miss can be explained by comparing
//! inputs; a COPY of a large context lists every file there, megabytes
//! that a hit need not parse. Records of builds from before the split hold
//! their inputs inline (`"inputs"` in the record file): they still serve
//! hits and explain misses. `cache/positions/<hex>.json` remembers, per
//! step position (Dockerfile, stage, step index), the key last recorded
//! there: the record to compare with on a miss.
//!
//! Files are written to a temp file and renamed, so a reader sees a whole
//! file or none; the inputs are written before the record, and a record is
//! only written after the step's layer and snapshot are committed, so a
//! failed or interrupted step leaves none.
//! The store does not interpret the inputs (the executor does), except
//! that prune follows their `parent` member (the key of the step below, or
//! what the stage starts from) to know which snapshots cached steps stack on.

use super::{Layout, StoreError};
use oci_spec::image::{Digest, DigestAlgorithm};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A layer a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Digest of the (compressed) blob in the store.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the uncompressed tar (what the image config lists).
    pub diff_id: Digest,
}

/// What a step produced: enough to reuse it without running it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The inputs the key is the SHA-256 of (canonical JSON).
    pub inputs: serde_json::Value,
    /// The step's layer; `None` when it changed no file.
    pub layer: Option<CachedLayer>,
    /// The step's change to the image config, as the executor records it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config_change: serde_json::Value,
    /// When the step first ran (RFC 3339): the time of its history entry
    /// on every later hit, so an unchanged rebuild names the same image.
    /// Absent in records of builds from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// What a cache hit needs of a record: the record file without the inputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CachedStep {
    /// The step's layer; `None` when it changed no file.
    pub layer: Option<CachedLayer>,
    /// The step's change to the image config, as the executor records it.
    #[serde(default)]
    pub config_change: serde_json::Value,
    /// When the step first ran (RFC 3339), as in [`CacheRecord::created`].
    #[serde(default)]
    pub created: Option<String>,
}

/// A record file as written now: the record without its inputs, which
/// have a file of their own. `inputs` is written as `null`, so that a
/// builder from before the split still reads the record (as one whose
/// inputs it cannot compare).
#[derive(Serialize)]
struct RecordFile<'a> {
    inputs: (),
    layer: &'a Option<CachedLayer>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    config_change: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: &'a Option<String>,
}

/// A record file as read whole: its inputs are inline in records of
/// builds from before they had a file of their own, `null` in others.
#[derive(Deserialize)]
struct StoredRecord {
    #[serde(default)]
    inputs: Option<serde_json::Value>,
    #[serde(flatten)]
    step: CachedStep,
}

/// Why a record cannot be read.
fn corrupt(path: &Path, source: serde_json::Error) -> StoreError {
    StoreError::CorruptCacheRecord {
        path: path.to_owned(),
        source,
    }
}

/// The step cache of one store root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheStore {
    layout: Arc<Layout>,
}

impl CacheStore {
    pub(super) fn new(layout: Arc<Layout>) -> Self {
        Self { layout }
    }

    fn record_path(&self, key: &Digest) -> Result<PathBuf, StoreError> {
        match key.algorithm() {
            DigestAlgorithm::Sha256 => Ok(self.layout.cache.join(format!("{}.json", key.digest()))),
            _ => Err(StoreError::UnsupportedDigest {
                digest: key.clone(),
            }),
        }
    }

    fn inputs_path(&self, key: &Digest) -> Result<PathBuf, StoreError> {
        let record = self.record_path(key)?;
        let name = record
            .file_name()
            .map(ToOwned::to_owned)
            .unwrap_or_default();
        Ok(self.layout.cache.join("inputs").join(name))
    }

    /// Writes the inputs file, then the record file, of `key`.
    fn write_record(&self, key: &Digest, record: &CacheRecord) -> Result<(), StoreError> {
        // Plain data with string keys: serializing cannot fail.
        let inputs = serde_json::to_vec(&record.inputs).expect("cache inputs always serialize");
        write_atomically(
            &self.layout.cache.join("inputs"),
            &self.inputs_path(key)?,
            &inputs,
        )?;
        let file = RecordFile {
            inputs: (),
            layer: &record.layer,
            config_change: &record.config_change,
            created: &record.created,
        };
        let bytes = serde_json::to_vec(&file).expect("a cache record always serializes");
        write_atomically(&self.layout.cache, &self.record_path(key)?, &bytes)
    }

    fn position_path(&self, position: &str) -> PathBuf {
        let name = crate::digest::sha256(position.as_bytes());
        self.layout
            .cache
            .join("positions")
            .join(format!("{}.json", name.digest()))
    }

    /// What a hit on `key` needs of its record, if one was written (its
    /// inputs are not read). Marks it used now (its file's mtime), so
    /// `prune` can tell records in use from stale ones.
    pub fn get(&self, key: &Digest) -> Result<Option<CachedStep>, StoreError> {
        let path = self.record_path(key)?;
        let Some(bytes) = read_if_present(&path)? else {
            return Ok(None);
        };
        // An old record's inline inputs are skipped, not built.
        let step: CachedStep = serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?;
        self.touch(key);
        Ok(Some(step))
    }

    /// Marks the record of `key` used now. Advisory: a record that cannot
    /// be marked only looks older to `prune --filter until=`, and is still
    /// used.
    fn touch(&self, key: &Digest) {
        if let Ok(path) = self.record_path(key) {
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(std::time::SystemTime::now()));
        }
    }

    /// The whole record of `key`, inputs included, without marking it
    /// used. A record whose inputs file is missing is corrupt.
    pub fn peek(&self, key: &Digest) -> Result<Option<CacheRecord>, StoreError> {
        let path = self.record_path(key)?;
        let Some(bytes) = read_if_present(&path)? else {
            return Ok(None);
        };
        let stored: StoredRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?;
        let inputs = match stored.inputs {
            Some(inputs) => inputs,
            None => {
                let inputs_path = self.inputs_path(key)?;
                let bytes = read_if_present(&inputs_path)?.ok_or_else(|| {
                    let missing = <serde_json::Error as serde::de::Error>::custom(
                        "the record's inputs file is missing",
                    );
                    corrupt(&inputs_path, missing)
                })?;
                serde_json::from_slice(&bytes).map_err(|e| corrupt(&inputs_path, e))?
            }
        };
        Ok(Some(CacheRecord {
            inputs,
            layer: stored.step.layer,
            config_change: stored.step.config_change,
            created: stored.step.created,
        }))
    }

    /// When the record of `key` was last written or used; `None` when it
    /// is absent or the filesystem keeps no such time.
    pub(super) fn last_used(&self, key: &Digest) -> Option<std::time::SystemTime> {
        let path = self.record_path(key).ok()?;
        std::fs::metadata(path).ok()?.modified().ok()
    }

    /// Writes the record of `key` atomically and makes it the last record
    /// of `position` (any string naming where the step is in its build).
    pub fn put(
        &self,
        key: &Digest,
        position: &str,
        record: &CacheRecord,
    ) -> Result<(), StoreError> {
        self.write_record(key, record)?;
        let position_path = self.position_path(position);
        let entry = PositionEntry {
            position: position.to_owned(),
            key: key.clone(),
        };
        let bytes = serde_json::to_vec(&entry).expect("a position entry always serializes");
        write_atomically(&self.layout.cache.join("positions"), &position_path, &bytes)
    }

    /// Adds a record from elsewhere (a remote cache): written unless the
    /// store has one for `key` (a local record names local blobs), and
    /// made the last record of `position` unless a local build already
    /// recorded one there. Returns whether the record was written.
    pub fn import(
        &self,
        key: &Digest,
        position: Option<&str>,
        record: &CacheRecord,
    ) -> Result<bool, StoreError> {
        if self.peek(key).ok().flatten().is_some() {
            return Ok(false);
        }
        self.write_record(key, record)?;
        if let Some(position) = position {
            let position_path = self.position_path(position);
            if !position_path.exists() {
                let entry = PositionEntry {
                    position: position.to_owned(),
                    key: key.clone(),
                };
                let bytes = serde_json::to_vec(&entry).expect("a position entry always serializes");
                write_atomically(&self.layout.cache.join("positions"), &position_path, &bytes)?;
            }
        }
        Ok(true)
    }

    /// Makes `alias` (another key of a step: one computed without reading
    /// its parent's files, or from its sources' stat identities) name the
    /// record `key`.
    pub fn put_alias(&self, alias: &Digest, key: &Digest) -> Result<(), StoreError> {
        let path = self.alias_path(alias)?;
        write_atomically(
            &self.layout.cache.join("aliases"),
            &path,
            key.to_string().as_bytes(),
        )
    }

    /// The key `alias` names, if any.
    pub fn alias(&self, alias: &Digest) -> Result<Option<Digest>, StoreError> {
        let path = self.alias_path(alias)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    fn alias_path(&self, alias: &Digest) -> Result<PathBuf, StoreError> {
        let record = self.record_path(alias)?;
        let name = record
            .file_name()
            .map(ToOwned::to_owned)
            .unwrap_or_default();
        Ok(self.layout.cache.join("aliases").join(name))
    }

    /// The record last written for `position`, if any is still there.
    pub fn last_at(&self, position: &str) -> Result<Option<(Digest, CacheRecord)>, StoreError> {
        let path = self.position_path(position);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let entry: PositionEntry = serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?;
        if entry.position != position {
            return Ok(None);
        }
        let record = self.peek(&entry.key)?;
        if record.is_some() {
            self.touch(&entry.key);
        }
        Ok(record.map(|record| (entry.key, record)))
    }
}

impl CacheStore {
    /// The keys of every record file (whether or not it parses).
    pub(super) fn keys(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = &self.layout.cache;
        let mut keys = Vec::new();
        for path in json_files(dir)? {
            let key = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|hex| Digest::try_from(format!("sha256:{hex}")).ok());
            keys.extend(key);
        }
        Ok(keys)
    }

    /// Removes the record of `key` and its inputs (absent is fine). A
    /// position naming it then finds nothing, as [`CacheStore::last_at`]
    /// allows.
    pub(super) fn remove(&self, key: &Digest) -> Result<(), StoreError> {
        remove_file(&self.record_path(key)?)?;
        remove_file(&self.inputs_path(key)?)
    }

    /// Removes the aliases that name no record `kept` keeps (and the
    /// unreadable ones): every build whose sources changed leaves one, and
    /// one naming a removed record can only miss.
    pub(super) fn prune_aliases(&self, kept: impl Fn(&Digest) -> bool) -> Result<(), StoreError> {
        for path in json_files(&self.layout.cache.join("aliases"))? {
            let key: Option<Digest> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            if !key.is_some_and(|key| kept(&key)) {
                remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Forgets which key each step position last recorded.
    pub(super) fn clear_positions(&self) -> Result<(), StoreError> {
        for path in json_files(&self.layout.cache.join("positions"))? {
            remove_file(&path)?;
        }
        Ok(())
    }

    /// Removes the temp files of record writes that never finished; returns
    /// how many and their bytes. Only safe while no build runs.
    pub(super) fn clear_temp_files(&self) -> Result<(usize, u64), StoreError> {
        let (mut count, mut bytes) = (0, 0);
        for dir in [
            self.layout.cache.clone(),
            self.layout.cache.join("positions"),
            self.layout.cache.join("aliases"),
            self.layout.cache.join("inputs"),
        ] {
            for entry in read_dir(&dir)? {
                let is_temp = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(".record-"));
                if is_temp {
                    let path = entry.path();
                    bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    remove_file(&path)?;
                    count += 1;
                }
            }
        }
        Ok((count, bytes))
    }
}

/// The bytes of `path`; `None` when it does not exist.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list directory", dir, e)),
    };
    entries
        .map(|entry| entry.map_err(|e| StoreError::io("list directory", dir, e)))
        .collect()
}

/// The regular `*.json` files directly in `dir`.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect())
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove", path, e))
        }
        _ => Ok(()),
    }
}

/// One step position's last key.
#[derive(Debug, Serialize, Deserialize)]
struct PositionEntry {
    position: String,
    key: Digest,
}

fn write_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".record-")
        .tempfile_in(dir)
        .map_err(|e| StoreError::io("create temp file in", dir, e))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| StoreError::io("write", temp.path(), e))?;
    temp.persist(dest)
        .map_err(|e| StoreError::io("rename into place", dest, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn records_round_trip_and_positions_find_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap().cache();
        let key = crate::digest::sha256(b"inputs");
        assert!(cache.get(&key).unwrap().is_none());
        assert!(cache.last_at("Dockerfile/0/1").unwrap().is_none());
        let record = CacheRecord {
            inputs: serde_json::json!({"kind": "RUN"}),
            layer: Some(CachedLayer {
                digest: crate::digest::sha256(b"blob"),
                size: 4,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: crate::digest::sha256(b"tar"),
            }),
            config_change: serde_json::Value::Null,
            created: Some("2026-01-02T03:04:05Z".into()),
        };
        cache.put(&key, "Dockerfile/0/1", &record).unwrap();
        assert_eq!(cache.peek(&key).unwrap(), Some(record.clone()));
        let hit = cache.get(&key).unwrap().unwrap();
        assert_eq!(
            (hit.layer, hit.created),
            (record.layer.clone(), record.created.clone())
        );
        // A hit reads a record file without the inputs, which have their own.
        let record_file = dir
            .path()
            .join("cache")
            .join(format!("{}.json", key.digest()));
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record_file).unwrap()).unwrap();
        assert_eq!(file["inputs"], serde_json::Value::Null);
        assert_eq!(
            cache.last_at("Dockerfile/0/1").unwrap(),
            Some((key, record))
        );
        assert!(cache.last_at("Dockerfile/0/2").unwrap().is_none());
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap().cache();
        let key = crate::digest::sha256(b"k");
        std::fs::write(
            dir.path()
                .join("cache")
                .join(format!("{}.json", key.digest())),
            b"{not json",
        )
        .unwrap();
        let err = cache.get(&key).unwrap_err();
        assert!(err.to_string().contains(key.digest()), "{err}");
    }

    #[test]
    fn a_record_with_inline_inputs_serves_hits_and_explanations() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap().cache();
        let key = crate::digest::sha256(b"old");
        let old = br#"{"inputs":{"kind":"COPY","parent":"scratch"},"layer":null,"created":"2026-01-02T03:04:05Z"}"#;
        std::fs::create_dir_all(dir.path().join("cache/positions")).unwrap();
        std::fs::write(
            dir.path()
                .join("cache")
                .join(format!("{}.json", key.digest())),
            old,
        )
        .unwrap();
        let hit = cache.get(&key).unwrap().unwrap();
        assert_eq!(hit.created.as_deref(), Some("2026-01-02T03:04:05Z"));
        let record = cache.peek(&key).unwrap().unwrap();
        assert_eq!(record.inputs["kind"], "COPY");
        // Rewritten (as a hit stamping its time does), it takes the new form.
        cache.put(&key, "Dockerfile/0/1", &record).unwrap();
        let (_, again) = cache.last_at("Dockerfile/0/1").unwrap().unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn a_record_without_its_inputs_file_is_corrupt_but_still_hits() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap().cache();
        let key = crate::digest::sha256(b"k");
        let record = CacheRecord {
            inputs: serde_json::json!({"kind": "RUN"}),
            layer: None,
            config_change: serde_json::Value::Null,
            created: None,
        };
        cache.put(&key, "p", &record).unwrap();
        std::fs::remove_file(
            dir.path()
                .join("cache/inputs")
                .join(format!("{}.json", key.digest())),
        )
        .unwrap();
        assert!(cache.get(&key).unwrap().is_some());
        let err = cache.peek(&key).unwrap_err();
        assert!(err.to_string().contains("inputs file is missing"), "{err}");
    }

    #[test]
    fn a_record_of_an_older_build_has_no_created_time() {
        let old = br#"{"inputs":{"kind":"RUN"},"layer":null}"#;
        let record: CacheRecord = serde_json::from_slice(old).unwrap();
        assert_eq!(record.created, None);
        assert!(
            !String::from_utf8(serde_json::to_vec(&record).unwrap())
                .unwrap()
                .contains("created")
        );
    }
}
