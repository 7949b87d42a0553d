//! Step cache keys and miss explanations.
//!
//! A key is the SHA-256 of the canonical JSON of everything that decides a
//! step's result: the parent (the previous step's key, or the base image),
//! the instruction and its expanded words, its flags, the environment and
//! build args it sees, user, working directory, shell, mounts, and the
//! digest of every source file. The JSON is kept in the cache record, so a
//! miss is explained by comparing it with the last record at the same step
//! position.

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One source file of a step (COPY/ADD), as the copy module digests it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceDigest {
    /// The path as the user knows it (relative to the context or stage).
    pub path: String,
    /// Permission bits and type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Digest of the content (or link target).
    pub digest: String,
    /// Digest of the extended attributes, when it has any (absent from
    /// the key otherwise, so keys of sources without any are as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattrs: Option<String>,
}

/// Everything a step's result depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StepInputs {
    /// The previous step's key, or what the stage starts from
    /// (`scratch`, or the base image's config digest).
    pub parent: String,
    /// The instruction (`RUN`, `COPY`, …).
    pub kind: String,
    /// Its expanded words (the argv for RUN).
    pub words: Vec<String>,
    /// Flags and settings that change the result (`network`, `compression`…).
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
    /// The environment and build args the step sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// USER in effect.
    #[serde(default)]
    pub user: String,
    /// WORKDIR in effect.
    #[serde(default)]
    pub workdir: String,
    /// SHELL in effect.
    #[serde(default)]
    pub shell: Vec<String>,
    /// RUN --mount specs.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Source files (COPY/ADD), in a stable order.
    #[serde(default)]
    pub sources: Vec<SourceDigest>,
}

impl StepInputs {
    /// The inputs as the JSON value kept in the cache record.
    pub fn to_json(&self) -> serde_json::Value {
        // Strings, numbers and string-keyed maps: serializing cannot fail.
        serde_json::to_value(self).expect("step inputs always serialize")
    }

    /// The cache key: SHA-256 of the canonical JSON (compact, keys
    /// sorted), written straight into the hash: a COPY of a large context
    /// has tens of thousands of sources, too many to build a JSON tree of.
    pub fn key(&self) -> Digest {
        let mut hasher = HashWriter(crate::digest::Hasher::new());
        // Strings, numbers and string-keyed maps: serializing cannot fail.
        serde_json::to_writer(&mut hasher, &Canonical::of(self))
            .expect("step inputs always serialize");
        hasher.0.finish()
    }
}

/// [`StepInputs`] with its fields (and those of its sources) in the
/// order canonical JSON sorts them: serialized as is, it is canonical.
#[derive(Serialize)]
struct Canonical<'a> {
    env: &'a BTreeMap<String, String>,
    flags: &'a BTreeMap<String, String>,
    kind: &'a str,
    mounts: &'a [String],
    parent: &'a str,
    shell: &'a [String],
    sources: Vec<CanonicalSource<'a>>,
    user: &'a str,
    words: &'a [String],
    workdir: &'a str,
}

/// A [`SourceDigest`] with its fields in canonical order.
#[derive(Serialize)]
struct CanonicalSource<'a> {
    digest: &'a str,
    gid: u32,
    mode: u32,
    path: &'a str,
    uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    xattrs: Option<&'a str>,
}

impl<'a> Canonical<'a> {
    fn of(inputs: &'a StepInputs) -> Self {
        let StepInputs {
            parent,
            kind,
            words,
            flags,
            env,
            user,
            workdir,
            shell,
            mounts,
            sources,
        } = inputs;
        Self {
            env,
            flags,
            kind,
            mounts,
            parent,
            shell,
            sources: sources
                .iter()
                .map(|s| CanonicalSource {
                    digest: &s.digest,
                    gid: s.gid,
                    mode: s.mode,
                    path: &s.path,
                    uid: s.uid,
                    xattrs: s.xattrs.as_deref(),
                })
                .collect(),
            user,
            words,
            workdir,
        }
    }
}

/// Feeds what is written into a SHA-256.
struct HashWriter(crate::digest::Hasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn short(value: &str) -> String {
    let hex = value.rsplit(':').next().unwrap_or(value);
    match hex.get(..12) {
        Some(prefix) if hex.len() > 12 => format!("{prefix}…"),
        _ => hex.to_owned(),
    }
}

/// Why the step with `current` inputs missed the cache where the last build
/// at its position recorded `previous` (the record's JSON): one line per
/// difference, most telling first. Empty when nothing differs.
pub fn explain_miss(previous: &serde_json::Value, current: &StepInputs) -> Vec<String> {
    let Ok(previous) = serde_json::from_value::<StepInputs>(previous.clone()) else {
        return vec!["the previous cache record is of an older format".to_owned()];
    };
    let mut reasons = Vec::new();
    if previous.kind != current.kind || previous.words != current.words {
        reasons.push(format!(
            "the instruction changed (`{} {}` → `{} {}`)",
            previous.kind,
            previous.words.join(" "),
            current.kind,
            current.words.join(" ")
        ));
    }
    diff_sources(&previous.sources, &current.sources, &mut reasons);
    diff_map(
        "build setting",
        &previous.flags,
        &current.flags,
        &mut reasons,
    );
    diff_map("variable", &previous.env, &current.env, &mut reasons);
    for (what, before, now) in [
        ("USER", &previous.user, &current.user),
        ("WORKDIR", &previous.workdir, &current.workdir),
    ] {
        if before != now {
            reasons.push(format!("{what} changed (`{before}` → `{now}`)"));
        }
    }
    if previous.shell != current.shell {
        reasons.push(format!(
            "SHELL changed ({:?} → {:?})",
            previous.shell, current.shell
        ));
    }
    if previous.mounts != current.mounts {
        reasons.push(format!(
            "mounts changed ({:?} → {:?})",
            previous.mounts, current.mounts
        ));
    }
    if previous.parent != current.parent && reasons.is_empty() {
        reasons.push(format!(
            "an earlier step or the base image changed (parent {} → {})",
            short(&previous.parent),
            short(&current.parent)
        ));
    }
    reasons
}

fn diff_map(
    what: &str,
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    for (name, value) in now {
        match before.get(name) {
            None => out.push(format!("{what} `{name}` is new (`{value}`)")),
            Some(old) if old != value => {
                out.push(format!("{what} `{name}` changed (`{old}` → `{value}`)"));
            }
            Some(_) => {}
        }
    }
    for name in before.keys().filter(|name| !now.contains_key(*name)) {
        out.push(format!("{what} `{name}` was removed"));
    }
}

fn diff_sources(before: &[SourceDigest], now: &[SourceDigest], out: &mut Vec<String>) {
    let old: BTreeMap<&str, &SourceDigest> = before.iter().map(|s| (s.path.as_str(), s)).collect();
    let new: BTreeMap<&str, &SourceDigest> = now.iter().map(|s| (s.path.as_str(), s)).collect();
    for (path, source) in &new {
        let Some(previous) = old.get(path) else {
            out.push(format!("`{path}` is new"));
            continue;
        };
        if previous.digest != source.digest {
            out.push(format!(
                "`{path}` changed (sha256 {}→{})",
                short(&previous.digest),
                short(&source.digest)
            ));
        }
        if previous.mode != source.mode {
            out.push(format!(
                "`{path}` mode changed ({:o} → {:o})",
                previous.mode, source.mode
            ));
        }
        if previous.xattrs != source.xattrs {
            out.push(format!("`{path}` extended attributes changed"));
        }
        if (previous.uid, previous.gid) != (source.uid, source.gid) {
            out.push(format!(
                "`{path}` owner changed ({}:{} → {}:{})",
                previous.uid, previous.gid, source.uid, source.gid
            ));
        }
    }
    for path in old.keys().filter(|path| !new.contains_key(*path)) {
        out.push(format!("`{path}` was removed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> StepInputs {
        StepInputs {
            parent: "scratch".into(),
            kind: "COPY".into(),
            words: vec!["app.txt".into(), "/app/".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            workdir: "/".into(),
            sources: vec![SourceDigest {
                path: "app.txt".into(),
                mode: 0o100644,
                uid: 0,
                gid: 0,
                digest: format!("sha256:3f{}", "0".repeat(62)),
                xattrs: None,
            }],
            ..StepInputs::default()
        }
    }

    #[test]
    fn the_key_is_the_digest_of_the_canonical_json_of_the_inputs() {
        let mut all = inputs();
        all.flags = BTreeMap::from([("network".into(), "none".into())]);
        all.user = "1000:\"x\"".into();
        all.shell = vec!["/bin/sh".into(), "-c".into()];
        all.mounts = vec!["type=cache,target=/c".into()];
        all.sources.push(SourceDigest {
            path: "dir/é\n".into(),
            mode: 0o40755,
            uid: 7,
            gid: 8,
            digest: "dir app/dir".into(),
            xattrs: Some(format!("sha256:ab{}", "0".repeat(62))),
        });
        for inputs in [all, inputs(), StepInputs::default()] {
            let canonical = crate::image::manifest::canonical_json(&inputs.to_json()).unwrap();
            assert_eq!(inputs.key(), crate::digest::sha256(&canonical));
        }
    }

    #[test]
    fn equal_inputs_have_equal_keys_and_nothing_to_explain() {
        assert_eq!(inputs().key(), inputs().key());
        assert!(explain_miss(&inputs().to_json(), &inputs()).is_empty());
    }

    #[test]
    fn a_changed_source_is_named_with_both_digests() {
        let mut now = inputs();
        now.sources[0].digest = format!("sha256:9a{}", "1".repeat(62));
        assert_ne!(now.key(), inputs().key());
        assert_eq!(
            explain_miss(&inputs().to_json(), &now),
            ["`app.txt` changed (sha256 3f0000000000…→9a1111111111…)"]
        );
    }

    #[test]
    fn env_and_parent_changes_are_explained() {
        let mut now = inputs();
        now.env.insert("A".into(), "2".into());
        now.env.insert("B".into(), "x".into());
        assert_eq!(
            explain_miss(&inputs().to_json(), &now),
            [
                "variable `A` changed (`1` → `2`)",
                "variable `B` is new (`x`)"
            ]
        );
        let mut moved = inputs();
        moved.parent = "sha256:ab".into();
        assert_eq!(
            explain_miss(&inputs().to_json(), &moved),
            ["an earlier step or the base image changed (parent scratch → ab)"]
        );
        assert_eq!(
            explain_miss(&serde_json::json!([1]), &moved),
            ["the previous cache record is of an older format"]
        );
    }
}
