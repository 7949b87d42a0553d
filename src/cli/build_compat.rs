//! `docker build` / `docker buildx build` flags that builder takes so that
//! scripts written for docker run unchanged, but does not act on as docker
//! does: some are harmless here and accepted (`--load`, `--builder`,
//! `--provenance=false`, `--rm`…), `--check`/`--call=check` check the
//! Dockerfile instead of building, and the rest are refused as a usage error
//! (exit code 2) that names the flag and says it is not supported yet,
//! rather than clap's bare "unexpected argument".

use clap::ArgAction;
use clap::builder::BoolishValueParser;

/// The flags; see the module doc. Those only refused are hidden from
/// `builder help build`, and those taken without effect are `_`-named:
/// nothing reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct CompatFlags {
    /// A buildx builder instance: accepted, but builder always builds here,
    /// itself (a note says so)
    #[arg(long, env = "BUILDX_BUILDER", value_name = "NAME")]
    pub builder: Option<String>,
    /// Only `false` is accepted: builder adds no provenance attestation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "false")]
    provenance: Option<String>,
    /// Only `false` is accepted: builder adds no SBOM attestation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "false")]
    sbom: Option<String>,
    /// Only `type=provenance|sbom,disabled=true` is accepted (builder adds
    /// no attestations)
    #[arg(long, value_name = "type=…,disabled=true")]
    attest: Vec<String>,
    /// Check the Dockerfile instead of building (as `builder check`)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    check: bool,
    /// What to do: build (the default) or check (as --check)
    #[arg(long, value_name = "build|check")]
    call: Option<String>,
    #[arg(long, hide = true)]
    annotation: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    squash: bool,
    #[arg(long = "cgroup-parent", hide = true)]
    cgroup_parent: Option<String>,
    #[arg(long = "memory-swap", hide = true)]
    memory_swap: Option<String>,
    #[arg(long = "cpu-shares", short = 'c', hide = true)]
    cpu_shares: Option<String>,
    #[arg(long = "cpu-period", hide = true)]
    cpu_period: Option<String>,
    #[arg(long = "cpu-quota", hide = true)]
    cpu_quota: Option<String>,
    #[arg(long = "cpuset-cpus", hide = true)]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", hide = true)]
    cpuset_mems: Option<String>,
    /// docker's legacy builder: compress the context sent to the daemon
    /// (there is none; accepted and ignored)
    #[arg(long = "compress", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    _compress: bool,
    /// docker's image verification switch (default true there; builder
    /// verifies digests only: accepted and ignored)
    #[arg(long = "disable-content-trust", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    _disable_content_trust: bool,
    /// docker's legacy builder: remove intermediate containers (there are
    /// none; accepted and ignored)
    #[arg(long = "rm", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    _rm: bool,
    /// As --rm (accepted and ignored)
    #[arg(long = "force-rm", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    _force_rm: bool,
}

/// What `builder build` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Build the image (the default).
    Build,
    /// Check the Dockerfile only (`--check`, `--call=check`).
    Check,
}

/// Go's `strconv.ParseBool` false values, which docker reads these flags with.
fn is_false(value: &str) -> bool {
    matches!(value, "0" | "f" | "F" | "false" | "FALSE" | "False")
}

impl CompatFlags {
    /// Refuses what builder does not support yet: the message of a usage
    /// error naming the flag. Otherwise the notes to show for flags taken
    /// without effect.
    pub fn validate(&self) -> Result<Vec<String>, String> {
        let refuse = |flag: &str, why: &str| Err(format!("{flag} is not supported yet: {why}"));
        if !self.annotation.is_empty() {
            return refuse("--annotation", "builder writes no annotations");
        }
        for (flag, value) in [("--provenance", &self.provenance), ("--sbom", &self.sbom)] {
            if let Some(value) = value
                && !is_false(value)
            {
                return refuse(
                    &format!("{flag}={value}"),
                    &format!("builder makes no attestations ({flag}=false is accepted)"),
                );
            }
        }
        for attest in &self.attest {
            if !attestation_disabled(attest) {
                return refuse(
                    &format!("--attest {attest}"),
                    "builder makes no attestations (type=provenance|sbom,disabled=true is accepted)",
                );
            }
        }
        self.call()?;
        if self.squash {
            return refuse("--squash", "the image keeps one layer per step");
        }
        for (flag, value) in [
            ("--cgroup-parent", &self.cgroup_parent),
            ("--memory-swap", &self.memory_swap),
            ("--cpu-shares", &self.cpu_shares),
            ("--cpu-period", &self.cpu_period),
            ("--cpu-quota", &self.cpu_quota),
            ("--cpuset-cpus", &self.cpuset_cpus),
            ("--cpuset-mems", &self.cpuset_mems),
        ] {
            if value.is_some() {
                return refuse(
                    flag,
                    "RUN steps get a pids limit and --memory only (see README, Limits of a RUN step)",
                );
            }
        }
        let mut notes = Vec::new();
        if let Some(name) = &self.builder {
            notes.push(format!(
                "--builder {name} (or BUILDX_BUILDER): builder has no builder instances; it builds here, itself"
            ));
        }
        Ok(notes)
    }

    /// What to do: `--check` or `--call=check` check, `--call=build` (or
    /// nothing) builds; buildx's other calls are refused.
    pub fn call(&self) -> Result<Call, String> {
        if self.check {
            return Ok(Call::Check);
        }
        match self.call.as_deref() {
            None | Some("build") => Ok(Call::Build),
            // buildx also takes options after the name: `check,ignore=…`.
            Some(call) if call == "check" || call.starts_with("check,") => Ok(Call::Check),
            Some(call) => Err(format!(
                "--call={call} is not supported yet: builder knows build and check"
            )),
        }
    }
}

/// Whether an `--attest` value only turns an attestation off
/// (`type=provenance,disabled=true`), which is what builder does anyway.
fn attestation_disabled(value: &str) -> bool {
    let mut kind = None;
    let mut disabled = false;
    for field in value.split(',') {
        match field.split_once('=') {
            Some(("type", t)) => kind = Some(t),
            Some(("disabled", d)) => disabled = d.eq_ignore_ascii_case("true") || d == "1",
            _ => {}
        }
    }
    disabled && matches!(kind, Some("provenance" | "sbom"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_disabling_attestations_is_accepted() {
        assert!(attestation_disabled("type=provenance,disabled=true"));
        assert!(attestation_disabled("type=sbom,disabled=true"));
        assert!(!attestation_disabled("type=sbom"));
        assert!(!attestation_disabled("type=provenance,mode=max"));
        assert!(!attestation_disabled("disabled=true"));
        assert!(is_false("false") && is_false("0") && !is_false("true"));
    }
}
