//! What a RUN step mounts besides its rootfs (`RUN --mount`), as the
//! sandbox takes it. The sandbox makes missing mount targets for the step
//! only, so they never reach the step's layer.

use crate::sandbox::{BindMount, TmpfsMount};

/// The mounts of one RUN step, ready for the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepMounts {
    /// Host directories bound into the step (bound files, cache directories).
    pub binds: Vec<BindMount>,
    /// Fresh tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// What the step's cache key records of each mount: its spec and, for
    /// bound files, a digest of their content. Cache mounts record no content.
    pub keys: Vec<String>,
}
