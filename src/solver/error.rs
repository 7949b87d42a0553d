//! Why a build failed: which step (with its Dockerfile line) and why, or
//! what went wrong around the steps (base images, the context, the store).

use super::failure::{BaseFailure, StepFailure};
use crate::exec::rootfs::RootfsError;
use crate::exec::{CopyError, ExecError, meta::MetaError};
use crate::image::ManifestError;
use crate::layer::LayerError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Why a build failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    /// A stage could not be planned (its words do not expand).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::Error),
    /// A step failed (the report shows its lines, the cause and, for RUN,
    /// the last lines of its output).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Step(Box<StepFailure>),
    /// A base image could not be had.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Base(Box<BaseFailure>),
    /// A stage's RUN steps are for a platform this machine cannot run, not
    /// even under emulation (said before any step runs).
    #[error("{location}: stage {stage}: {reason}")]
    Platform {
        /// `Dockerfile:LINE` of the FROM.
        location: String,
        /// The stage.
        stage: String,
        /// Why its platform cannot run here.
        reason: Box<crate::sandbox::emulation::EmulationError>,
    },
    /// A step needs an entitlement the build was not given.
    #[error(transparent)]
    Entitlement(#[from] super::EntitlementError),
    /// The store failed outside any step.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A build task ended without a result (it panicked).
    /// The layers an inline cache names could not be compressed.
    #[error("--cache-to type=inline: {0}")]
    Distribute(#[from] crate::layer::distribute::DistributeError),
    #[error("a build task ended abnormally: {0}")]
    Task(String),
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// RUN failed (exit code, sandbox, store).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// COPY/ADD could not be planned or written.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A metadata instruction has an invalid value.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Reading a root filesystem failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// `.dockerignore` could not be read.
    #[error(transparent)]
    Ignore(#[from] crate::ignore::IgnoreError),
    /// `COPY --from=<image>`: the image could not be had.
    #[error("--from={reference}: {source}")]
    FromImage {
        /// The image.
        reference: String,
        /// Why.
        source: Box<BaseError>,
    },
    /// The plan names a `--build-context` the build was not given.
    #[error("no --build-context named {0:?}")]
    NoNamedContext(String),
    /// Something the executor does not do yet.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    /// The step's platform cannot run here (found only once an image's
    /// ONBUILD triggers added RUN steps to a stage).
    #[error(transparent)]
    Emulation(#[from] crate::sandbox::emulation::EmulationError),
    /// A RUN (from an ONBUILD trigger) needs an entitlement the build was
    /// not given.
    #[error(
        "{flag} needs the {entitlement} entitlement, which this build was not given; \
         pass `--allow {entitlement}` to builder build",
        flag = .0.flag(),
        entitlement = .0
    )]
    NotEntitled(super::Entitlement),
    /// A `RUN --mount` could not be set up.
    #[error("--mount={spec}: {source}")]
    Mount {
        /// The mount as written (values expanded).
        spec: String,
        /// Why.
        source: MountSetupError,
    },
}

/// Why a base image (or `COPY --from` image) could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored manifest cannot be read.
    #[error("manifest {digest}: {source}")]
    Manifest {
        /// Its digest.
        digest: String,
        /// Why.
        source: ManifestError,
    },
    /// A single-platform image for another platform than the stage's.
    #[error("the image is for {has} only, not {wanted} (it is no multi-platform index)")]
    WrongPlatform {
        /// The stage's platform.
        wanted: String,
        /// The image's.
        has: String,
    },
    /// The stored name points at an index, not one platform's manifest.
    #[error("{0} is an index in the store, not an image manifest")]
    NotAManifest(String),
    /// The config cannot be read.
    #[error("config {digest}: {source}")]
    Config {
        /// Its digest.
        digest: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The config lists a different number of layers than the manifest.
    #[error("the manifest has {layers} layers but the config {diff_ids} diff IDs")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// A diff ID that is not a digest.
    #[error("invalid diff ID {0:?} in the config")]
    DiffId(String),
    /// The pull task ended without a result.
    #[error("the pull ended abnormally: {0}")]
    Task(String),
}

/// Why a `--mount` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MountSetupError {
    /// The target is the root or has no path.
    #[error("invalid mount target {0:?}")]
    Target(String),
    /// `source=` names nothing in its root.
    #[error("source {0:?} not found")]
    SourceNotFound(String),
    /// `uid=`/`gid=` of a cache that the rootless user namespace lacks.
    #[error(
        "uid {uid} / gid {gid} are not mapped in the rootless user namespace (see /etc/subuid and /etc/subgid)"
    )]
    Unmapped {
        /// The user ID asked for.
        uid: u32,
        /// The group ID asked for.
        gid: u32,
    },
    /// A `required` secret the build was not given (`--secret`).
    #[error(
        "secret {0}: not found; pass it with --secret id={0},src=FILE or --secret id={0},env=VAR"
    )]
    SecretNotFound(String),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] super::secrets::SecretError),
    /// A `required` ssh mount whose agent the build was not given (`--ssh`).
    #[error("no SSH key {0:?} forwarded from the client; pass --ssh {0}[=SOCKET]")]
    SshNotForwarded(String),
    /// A file system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which host path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
