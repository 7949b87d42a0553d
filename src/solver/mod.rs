//! Building an image from a planned Dockerfile: the scheduler runs the
//! stages the target needs (those of one parallel group at the same time,
//! each stage's steps in order) through the executor, then writes the
//! image config and manifest into the store.
//!
//! - [`scheduler`]: the groups, the tasks, cancellation on failure;
//! - [`stage`]: one stage's steps (RUN, COPY/ADD/WORKDIR, metadata);
//! - [`failure`]: failed steps and FROMs as located reports;
//! - [`files`]: the layers COPY, ADD and WORKDIR write, cached by content;
//! - [`base`]: FROM images resolved in the store or pulled;
//! - [`unpack`]: a pulled image's layers unpacked while they download;
//! - [`image`]: the final config and manifest;
//! - [`cache_remote`]: `--cache-from` and `--cache-to` (registry, local
//!   layout, inline);
//! - [`deliver`]: names, outputs, pushes and cache exports of a built image.

mod base;
pub mod cache_remote;
mod deliver;
mod entitlements;
mod error;
mod failure;
mod files;
mod image;
mod scheduler;
pub mod secrets;
mod ssh_agent;
mod stage;
mod unpack;

pub use deliver::{DeliverError, Delivery, deliver, image_names, push_stored};
pub use entitlements::{Entitlement, EntitlementError, Entitlements};
pub use error::{BaseError, BuildError, MountSetupError, StepError};
pub use failure::{BaseFailure, Site, StepFailure};
pub use scheduler::build;
pub use secrets::BuildSecrets;

use crate::exec::ExecOptions;
use crate::image::PlatformSpec;
use crate::registry::{Client, RegistryError};
use crate::sandbox::Network;
use oci_spec::image::{Descriptor, Digest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Makes a registry client for a registry host (with the user's
/// credentials): how the build reaches registries without knowing where
/// credentials live.
pub type ClientFactory = Arc<dyn Fn(&str) -> Result<Client, RegistryError> + Send + Sync>;

/// What a build is asked to do besides the Dockerfile's plan.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile's path, for `<Dockerfile>.dockerignore`.
    pub dockerfile: Option<PathBuf>,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--no-cache-filter`: run every step of these stages (names or indexes).
    pub no_cache_stages: Vec<String>,
    /// `--pull`: fetch base images even when the store has them.
    pub pull: bool,
    /// `--network`: the network of RUN steps that do not choose one.
    pub network: Network,
    /// `--allow`: what RUN steps may be granted beyond the sandbox.
    pub entitlements: Entitlements,
    /// `SOURCE_DATE_EPOCH` and what RUN steps see.
    pub exec: ExecOptions,
    /// `--label`: set on the image after the Dockerfile's LABELs.
    pub labels: Vec<(String, String)>,
    /// `--build-context NAME=DIR`: the named local contexts by
    /// (lower-case) name; each has its own `.dockerignore` (at its root),
    /// as in BuildKit, not the main context's.
    pub named_contexts: BTreeMap<String, PathBuf>,
    /// `--secret` and `--ssh`: what `RUN --mount=type=secret|ssh` may use.
    pub secrets: BuildSecrets,
    /// `--cache-from`: remote caches whose records the build may use.
    pub cache_from: Vec<cache_remote::CacheFrom>,
    /// `--cache-to`: where the build's cache goes (inline: into the image).
    pub cache_to: Vec<cache_remote::CacheTo>,
    /// `--compression`: how layers leave the store (pushes, exports, a
    /// remote cache) where an output or cache does not say.
    pub distribution: crate::layer::distribute::Distribution,
    /// How the layers an inline cache names are compressed: as the image
    /// is sent ([`Delivery::sent_as`]), so its records name the pushed
    /// image's layers.
    pub inline_distribution: crate::layer::distribute::Distribution,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The result, in the store: the image manifest of a build for one
    /// platform, an OCI index of every platform's manifest for several.
    pub image: Descriptor,
    /// Each platform's image, in the order they were asked for.
    pub platforms: Vec<PlatformImage>,
    /// Steps that ran.
    pub steps_run: usize,
    /// Steps whose result came from the cache.
    pub steps_cached: usize,
    /// The store, fetching what only an imported cache has when read.
    pub(crate) store: crate::store::Store,
    /// The steps of the build, for `--cache-to`.
    pub(crate) steps_used: cache_remote::StepsUsed,
    /// `--cache-to`.
    pub(crate) cache_to: Vec<cache_remote::CacheTo>,
    /// `--compression`.
    pub(crate) distribution: crate::layer::distribute::Distribution,
}

impl Built {
    /// The image ID: the config digest of a one-platform image, the index
    /// digest of a multi-platform one (as buildx reports them).
    pub fn id(&self) -> &Digest {
        match self.platforms.as_slice() {
            [one] => &one.config,
            _ => self.image.digest(),
        }
    }
}

/// One platform's image of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformImage {
    /// The platform it was built for.
    pub platform: PlatformSpec,
    /// Its manifest, in the store.
    pub manifest: Descriptor,
    /// Its config blob's digest.
    pub config: Digest,
}
