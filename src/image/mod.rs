//! Image names and documents: references in Docker's grammar, media types,
//! manifests, indexes and configs.

pub mod reference;

pub use reference::{Reference, ReferenceError, ReferenceErrorKind};
