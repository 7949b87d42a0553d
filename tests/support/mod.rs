//! Shared pieces of the integration tests: each test file includes this
//! module with `mod support;` and uses what it needs.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod schema;

use std::path::PathBuf;

pub mod build;
pub mod built;
pub mod busybox;
pub mod cli;
pub mod exec;

/// The conformance data in `../shared/conformance/<sub>` (or under
/// `$BUILDER_SHARED/conformance`), or `None` with a message on stderr saying
/// the test is skipped, so a fresh clone without `../shared` still passes.
pub fn conformance_dir(sub: &str) -> Option<PathBuf> {
    let shared = std::env::var_os("BUILDER_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("conformance").join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: conformance data {} is absent (put the shared/ folder beside the checkout, or set BUILDER_SHARED)",
            dir.display()
        );
        None
    }
}

pub mod http;
pub mod image;
pub mod refused;
pub mod registry;
pub mod subids;
pub mod token;
