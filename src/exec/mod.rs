//! The executor's steps. So far: `COPY` and `ADD`, which write their layer
//! straight from their sources as a deterministic tar (no sandbox), and the
//! pieces they share with `RUN` (user resolution, the read-only rootfs view).

pub mod add;
pub mod chmod;
pub mod copy;
mod download;
mod error;
mod plan;
pub mod rootfs;
mod sources;
pub mod user;

pub use error::CopyError;
pub use plan::{CacheInput, CopyPlan, DefaultOwner, SourceRecord};
