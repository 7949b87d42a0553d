//! The executor: runs build steps against the store and produces layers,
//! config changes and history.
//!
//! - [`run`]: a RUN step in the sandbox on an overlay of the parent's
//!   snapshots, its upper directory becoming the new layer and snapshot;
//! - [`copy`]: COPY and ADD, which write their layer straight from their
//!   sources as a deterministic tar (no sandbox);
//! - [`mkdir`]: WORKDIR's directory, planned like a COPY;
//! - [`meta`]: what metadata instructions do to the image config, and the
//!   history entries BuildKit writes;
//! - [`cache_key`]: step cache keys and miss explanations;
//! - [`created`]: the history time of a step, kept by its cache record;
//! - [`config`]: the image config type (OCI plus Docker's extensions);
//! - [`rootfs`], [`user`]: the read-only rootfs view and user resolution
//!   RUN and COPY share.

pub mod add;
pub mod cache_key;
pub mod chmod;
pub mod config;
pub mod copy;
pub mod created;
mod download;
mod error;
pub mod extra_hosts;
mod gofmt;
pub mod meta;
pub mod mkdir;
mod plan;
pub mod rootfs;
pub mod run;
mod run_mounts;
mod sources;
pub mod tail;
pub mod user;
mod user_of;

pub use error::CopyError;
pub use extra_hosts::ExtraHost;
pub use plan::{CacheInput, CopyPlan, DefaultOwner, DestRoot, SourceRecord, file_digest};
pub use run::{
    CacheHit, ExecOptions, Executor, LayerRef, RunOutcome, RunStep, Snapshotter, StepEvent,
};
pub use run_mounts::StepMounts;
pub use tail::OutputTail;

use crate::layer::LayerError;
use crate::sandbox::SandboxError;
use crate::store::StoreError;
use std::path::PathBuf;

/// Why a step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The step's command ran and exited with a non-zero code.
    #[error("the command exited with code {code}{}", under(emulation))]
    Failed {
        /// Its exit code.
        code: i32,
        /// The emulator it ran under (`emulation of linux/arm64 by
        /// qemu-aarch64-static`), for a foreign platform's step.
        emulation: Option<String>,
        /// The last lines it printed.
        output: Box<OutputTail>,
    },
    /// The step's command was killed by a signal.
    #[error("the command was killed by signal {signal}{}", under(emulation))]
    Killed {
        /// The signal number.
        signal: i32,
        /// The emulator it ran under, as for [`ExecError::Failed`].
        emulation: Option<String>,
        /// The last lines it printed.
        output: Box<OutputTail>,
    },
    /// The step's command failed after the kernel killed it, or one of its
    /// processes, for want of memory.
    #[error("the command ran out of memory{}: the kernel killed a process of it", limit.map(|bytes| format!(" (--memory {} MiB)", bytes >> 20)).unwrap_or_default())]
    OutOfMemory {
        /// `--memory`, if given.
        limit: Option<u64>,
        /// The last lines it printed.
        output: Box<OutputTail>,
    },
    /// The store failed (blobs, snapshots, cache records).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing or reading a layer failed.
    #[error("layer: {0}")]
    Layer(#[from] LayerError),
    /// The sandbox could not run the step.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// USER names an account the image does not have.
    #[error("USER {spec}: {reason}")]
    User {
        /// The USER value.
        spec: String,
        /// Why it cannot be resolved.
        reason: String,
    },
    /// A filesystem operation of the executor itself failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A metadata instruction has an invalid value.
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    /// What a step asks for that chroot isolation cannot give.
    #[error(
        "{0} is not supported with chroot isolation (steps get no namespaces of their own); \
         build with --isolation=oci where namespaces and mounts are allowed"
    )]
    ChrootUnsupported(&'static str),
    /// Neither the sandbox nor chroot isolation can run steps here.
    #[error(
        "RUN steps cannot run here: the sandbox cannot be set up ({sandbox}), \
         nor chroot isolation ({chroot})"
    )]
    NoIsolation {
        /// What the host refused the sandbox.
        sandbox: String,
        /// What it refused chroot isolation.
        chroot: String,
    },
}

/// ` under emulation of …` after a failed command's exit, when emulated.
fn under(emulation: &Option<String>) -> String {
    emulation
        .as_ref()
        .map(|e| format!(" under {e}"))
        .unwrap_or_default()
}

impl ExecError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// The exit code of a step that ran and failed, for the CLI's report.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The last lines printed by a command that ran and failed.
    pub fn output(&self) -> Option<&OutputTail> {
        match self {
            Self::Failed { output, .. }
            | Self::Killed { output, .. }
            | Self::OutOfMemory { output, .. } => Some(output),
            _ => None,
        }
    }
}
