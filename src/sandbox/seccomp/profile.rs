//! Docker's seccomp profile format (what `docker run --security-opt
//! seccomp=FILE` reads): a default action and a list of rules, each naming
//! system calls, an action, optional argument conditions, and the
//! architectures, capabilities and kernel versions it applies to.
//! `archMap`, `architectures`, `flags` and comments are accepted and not
//! used: the filter is built for the host's own architecture.

use serde::Deserialize;

/// A parsed profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub(super) default_action: Action,
    /// The errno of an `SCMP_ACT_ERRNO` default action (EPERM if absent).
    #[serde(default)]
    pub(super) default_errno_ret: Option<u32>,
    #[serde(default)]
    pub(super) syscalls: Vec<Rule>,
}

/// Docker's default profile, as moby's `profiles/seccomp/default.json` has it.
const DOCKER_DEFAULT: &str = include_str!("default.json");

impl Profile {
    /// Reads a profile in Docker's JSON format.
    pub fn from_json(json: &[u8]) -> Result<Profile, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// Docker's default profile.
    pub fn docker_default() -> Result<Profile, serde_json::Error> {
        Profile::from_json(DOCKER_DEFAULT.as_bytes())
    }
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The older single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// All must hold (an empty list: the call always matches).
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub includes: Option<Condition>,
    #[serde(default)]
    pub excludes: Option<Condition>,
}

impl Rule {
    /// Every system call name the rule lists.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().chain(&self.name).map(String::as_str)
    }
}

/// `includes` (the rule applies only where all of these hold) or
/// `excludes` (it does not apply where any holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Condition {
    /// Go's names (`amd64`, `arm64`…).
    #[serde(default)]
    pub arches: Vec<String>,
    /// `CAP_…` names, held by the step or not.
    #[serde(default)]
    pub caps: Vec<String>,
    /// `MAJOR.MINOR` of the running kernel.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What the kernel does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(super) enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Needs a listener process; refused when compiling.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// One argument condition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

/// How an argument is compared (libseccomp's 64-bit comparisons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `(arg & value) == valueTwo`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}
