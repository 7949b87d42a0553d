//! Which platforms' RUN steps this machine can run: those its CPU runs
//! natively (see [`PlatformSpec::can_run`]). Other platforms' stages build
//! as long as they run nothing (FROM, COPY, ADD, metadata), as in the
//! cross-compilation idiom (`FROM --platform=$BUILDPLATFORM` stages RUN,
//! the target stage COPYs their output).
//!
//! This is the one place that decides; running foreign RUN steps under
//! emulation replaces [`check_run`]'s refusal.

use crate::image::PlatformSpec;

/// A RUN step in a stage for a platform this machine does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "RUN in a stage for {platform} needs emulation: this machine runs {host} natively \
     (use FROM --platform=$BUILDPLATFORM for stages that RUN, and COPY their output \
     into the {platform} stage)"
)]
pub struct ForeignPlatform {
    /// The stage's platform.
    pub platform: String,
    /// This machine's.
    pub host: String,
}

/// Whether a RUN step of a stage for `platform` can run here: `Ok` when
/// this machine runs it natively.
pub(super) fn check_run(platform: &PlatformSpec) -> Result<(), ForeignPlatform> {
    let host = PlatformSpec::host();
    if host.can_run(platform) {
        Ok(())
    } else {
        Err(ForeignPlatform {
            platform: platform.to_string(),
            host: host.to_string(),
        })
    }
}
