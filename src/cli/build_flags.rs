//! `docker build` flags about what RUN steps see and what the image gets:
//! `--label`, `--add-host`, `--shm-size`, `--build-context` and
//! `--security-opt`. Values
//! are checked as clap parses them, so a bad one is a usage error (exit
//! code 2) naming the flag.

use crate::exec::ExtraHost;
use crate::image::Reference;
use crate::plan::NamedContext;
use crate::sandbox::seccomp::{Profile, SeccompError, SeccompFilter, SeccompPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The flags; see the module doc.
#[derive(Debug, Clone, clap::Args)]
pub struct RunAndImageFlags {
    /// Set a label on the image, over the Dockerfile's LABEL (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Add HOST to the /etc/hosts of RUN steps (repeatable; also HOST=IP;
    /// host-gateway is not supported)
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = parse_host)]
    pub add_hosts: Vec<ExtraHost>,
    /// Size of /dev/shm in RUN steps: bytes, or with a unit b, k, m, g
    /// (default 64m)
    #[arg(long = "shm-size", value_name = "SIZE", value_parser = parse_size)]
    pub shm_size: Option<u64>,
    /// A named context for FROM NAME, COPY --from=NAME and RUN
    /// --mount=from=NAME: a local directory, or docker-image://REF
    /// (repeatable)
    #[arg(long = "build-context", value_name = "NAME=PATH|docker-image://REF", value_parser = parse_build_context)]
    pub build_contexts: Vec<BuildContextArg>,
    /// The seccomp filter of RUN steps: seccomp=PROFILE.json (Docker's
    /// profile format) or seccomp=unconfined (default: Docker's profile)
    #[arg(long = "security-opt", value_name = "seccomp=PROFILE|unconfined", value_parser = parse_security_opt)]
    pub security_opt: Option<SeccompOpt>,
}

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompOpt {
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=FILE`: a profile in Docker's JSON format.
    Profile(PathBuf),
}

/// One `--build-context NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContextArg {
    /// The name the Dockerfile uses (lower-cased, as stage names are).
    pub name: String,
    /// What it is.
    pub value: BuildContextValue,
}

/// What a named context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildContextValue {
    /// A local directory.
    Dir(PathBuf),
    /// `docker-image://REF`: that image instead of the name.
    Image(Reference),
}

impl RunAndImageFlags {
    /// The named contexts as the planner sees them.
    pub fn plan_contexts(&self) -> BTreeMap<String, NamedContext> {
        self.build_contexts
            .iter()
            .map(|c| {
                let kind = match &c.value {
                    BuildContextValue::Dir(_) => NamedContext::Local,
                    BuildContextValue::Image(reference) => NamedContext::Image(reference.clone()),
                };
                (c.name.clone(), kind)
            })
            .collect()
    }

    /// The named local directories, for the build.
    pub fn context_dirs(&self) -> BTreeMap<String, PathBuf> {
        self.build_contexts
            .iter()
            .filter_map(|c| match &c.value {
                BuildContextValue::Dir(dir) => Some((c.name.clone(), dir.clone())),
                BuildContextValue::Image(_) => None,
            })
            .collect()
    }
}

/// `seccomp=VALUE` (or Docker's older `seccomp:VALUE`); the other
/// security options of `docker build` are refused.
fn parse_security_opt(value: &str) -> Result<SeccompOpt, String> {
    let Some(seccomp) = value
        .strip_prefix("seccomp=")
        .or_else(|| value.strip_prefix("seccomp:"))
    else {
        return Err("expected seccomp=PROFILE.json or seccomp=unconfined (other security options are not supported)".to_owned());
    };
    match seccomp {
        "" => Err("seccomp= needs a profile file or unconfined".to_owned()),
        "unconfined" => Ok(SeccompOpt::Unconfined),
        path => Ok(SeccompOpt::Profile(PathBuf::from(path))),
    }
}

impl RunAndImageFlags {
    /// The seccomp filter of RUN steps, with a profile file read and
    /// compiled; errors name the file.
    pub fn seccomp_policy(&self) -> miette::Result<SeccompPolicy> {
        let path = match &self.security_opt {
            None => return Ok(SeccompPolicy::DockerDefault),
            Some(SeccompOpt::Unconfined) => return Ok(SeccompPolicy::Unconfined),
            Some(SeccompOpt::Profile(path)) => path,
        };
        let fail = |reason: String| {
            miette::miette!(
                help = "a profile is Docker's seccomp JSON (as for docker run --security-opt seccomp=FILE)",
                "--security-opt seccomp={}: {reason}",
                path.display()
            )
        };
        let json = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let profile =
            Profile::from_json(&json).map_err(|e| fail(SeccompError::from(e).to_string()))?;
        SeccompFilter::compile(&profile)
            .map(SeccompPolicy::Profile)
            .map_err(|e| fail(e.to_string()))
    }
}

/// `KEY=VALUE`; `KEY` alone is an empty value, as Docker takes it.
fn parse_label(value: &str) -> Result<(String, String), String> {
    let (key, label) = value.split_once('=').unwrap_or((value, ""));
    if key.is_empty() {
        return Err("expected KEY=VALUE with a non-empty KEY".to_owned());
    }
    Ok((key.to_owned(), label.to_owned()))
}

fn parse_host(value: &str) -> Result<ExtraHost, String> {
    value
        .parse()
        .map_err(|e: crate::exec::extra_hosts::ExtraHostError| e.to_string())
}

/// Docker's sizes (go-units' `RAMInBytes`: powers of 1024); 0 is
/// Docker's "the default".
fn parse_size(value: &str) -> Result<u64, String> {
    match crate::plan::ram_in_bytes(value) {
        Some(0) => Ok(crate::sandbox::DEFAULT_SHM_SIZE),
        Some(bytes) => Ok(bytes),
        None => Err("expected a size such as 64m, 1g or a number of bytes".to_owned()),
    }
}

/// `NAME=PATH` or `NAME=docker-image://REF`; the sources buildx also
/// takes (URLs, `oci-layout://`, `target:`) are refused as not supported yet.
fn parse_build_context(value: &str) -> Result<BuildContextArg, String> {
    let Some((name, source)) = value.split_once('=') else {
        return Err("expected NAME=PATH or NAME=docker-image://REF".to_owned());
    };
    if name.is_empty() || source.is_empty() {
        return Err("expected NAME=PATH or NAME=docker-image://REF".to_owned());
    }
    let lower = source.to_ascii_lowercase();
    let value = if let Some(reference) = source.strip_prefix("docker-image://") {
        BuildContextValue::Image(Reference::parse(reference).map_err(|e| e.to_string())?)
    } else if [
        "http://",
        "https://",
        "git://",
        "git@",
        "ssh://",
        "oci-layout://",
        "target:",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
    {
        return Err(format!(
            "{source}: not supported yet (only local directories and docker-image://REF are)"
        ));
    } else {
        let dir = PathBuf::from(source);
        if !dir.is_dir() {
            return Err(format!("{source} is not a directory"));
        }
        BuildContextValue::Dir(dir)
    };
    Ok(BuildContextArg {
        name: name.to_lowercase(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sizes_and_contexts_parse_as_docker_takes_them() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_label("a"), Ok(("a".into(), String::new())));
        assert!(parse_label("=x").is_err());
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        let image = parse_build_context("base=docker-image://alpine:3").unwrap();
        assert_eq!(image.name, "base");
        assert!(matches!(image.value, BuildContextValue::Image(_)));
        let error = parse_build_context("src=https://example.com/x.git").unwrap_err();
        assert!(error.contains("supported"), "{error}");
        assert!(parse_build_context("noequals").is_err());
    }

    #[test]
    fn security_opt_takes_seccomp_only() {
        assert_eq!(
            parse_security_opt("seccomp=unconfined"),
            Ok(SeccompOpt::Unconfined)
        );
        assert_eq!(
            parse_security_opt("seccomp:/p.json"),
            Ok(SeccompOpt::Profile("/p.json".into()))
        );
        assert!(parse_security_opt("seccomp=").is_err());
        assert!(parse_security_opt("apparmor=unconfined").is_err());
    }
}
