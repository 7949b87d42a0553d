//! The image config as the executor builds it: the OCI config plus the
//! Docker extensions BuildKit writes (`Healthcheck`, `OnBuild`, `Shell`,
//! `ArgsEscaped`), which `oci_spec::image::Config` has no fields for.
//! Maps are ordered so the JSON is the same on every run; fields this
//! builder does not know are kept as they came from the base image.

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An image config document (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it (MAINTAINER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (GOARCH values).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (GOOS values).
    #[serde(default)]
    pub os: String,
    /// Architecture variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How a container of the image runs.
    #[serde(default)]
    pub config: RunConfig,
    /// The layers' diff IDs, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per build step, layers or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields kept as they came (`os.version`, vendor extensions).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `config` object: defaults for running a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// USER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// EXPOSE: `port/proto` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// ENV, as `NAME=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// VOLUME: path keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    /// WORKDIR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// LABEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// STOPSIGNAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Set by BuildKit with CMD (a Windows-only hint Docker still reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// HEALTHCHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// ONBUILD triggers, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// SHELL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields kept as they came.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `{}` value of Go's `map[string]struct{}` sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A health check (Docker's `HealthConfig`); durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Start-up time during which failures do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures in a row that make the container unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// The length of `value` as compact JSON, counted without making the text.
pub fn json_len<T: Serialize>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Counting cannot fail, and configs hold only strings, numbers and
    // string-keyed maps, which always serialize.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => u64::MAX,
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// The `rootfs` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Diff IDs, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl RootFs {
    /// The diff IDs as digests, bottom first; `Err` names the first one
    /// that is not a digest.
    pub fn digests(&self) -> Result<Vec<Digest>, String> {
        self.diff_ids
            .iter()
            .map(|d| d.parse().map_err(|_| d.clone()))
            .collect()
    }
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The step, as BuildKit writes it (`RUN /bin/sh -c … # buildkit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// `buildkit.dockerfile.v0` for our steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Set when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses a config (OCI or Docker) as stored.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The canonical JSON bytes (keys sorted, compact) whose digest names it.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Strings, numbers and maps with string keys: serializing cannot fail.
        crate::image::manifest::canonical_json(self).expect("an image config always serializes")
    }

    /// The length of [`to_canonical_json`](Self::to_canonical_json)'s
    /// bytes (sorting keys does not change it), counted without making them.
    pub fn json_len(&self) -> u64 {
        json_len(self)
    }

    /// The value of the environment variable `name` in the config's ENV.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.config
            .env
            .iter()
            .flatten()
            .filter_map(|entry| entry.split_once('='))
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_extensions_and_unknown_fields_survive_a_round_trip() {
        let doc = br#"{"architecture":"amd64","os":"linux","os.version":"x","config":{"Env":["PATH=/bin"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"OnBuild":["RUN true"],"Shell":["/bin/bash","-c"],"Custom":1},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x","empty_layer":true}]}"#;
        let config = ImageConfig::parse(doc).unwrap();
        assert_eq!(config.env_value("PATH"), Some("/bin"));
        let back: serde_json::Value = serde_json::from_slice(&config.to_canonical_json()).unwrap();
        let original: serde_json::Value = serde_json::from_slice(doc).unwrap();
        assert_eq!(back, original);
    }
}
