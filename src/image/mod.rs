//! Image names and documents: references in Docker's grammar, media types,
//! manifests, indexes, configs, and platform matching.

pub mod config;
pub mod layout;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;

pub use manifest::{ManifestError, ManifestOrIndex};
pub use platform::PlatformSpec;
pub use reference::{Reference, ReferenceError, ReferenceErrorKind};
