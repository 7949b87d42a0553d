//! What a RUN step mounts besides its rootfs (`RUN --mount`), as the
//! sandbox takes it. The sandbox makes missing mount targets for the step
//! only, so they never reach the step's layer.

use crate::sandbox::{BindMount, SecretEnv, SecretFile, TmpfsMount};

/// The mounts of one RUN step, ready for the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepMounts {
    /// Host directories bound into the step (bound files, cache directories).
    pub binds: Vec<BindMount>,
    /// Fresh tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Secret files (`type=secret`), on a tmpfs of the step's own.
    pub secrets: Vec<SecretFile>,
    /// Secret environment variables (`type=secret,env=`): in the step's
    /// process only, never in the cache key, config or history.
    pub secret_env: Vec<SecretEnv>,
    /// Variables the mounts add to the step's environment
    /// (`SSH_AUTH_SOCK` for `type=ssh`); they follow from the mount specs.
    pub env: Vec<(String, String)>,
    /// What the step's cache key records of each mount: its spec and, for
    /// bound files, a digest of their content. Cache mounts record no content.
    pub keys: Vec<String>,
}
