//! builder: a daemonless OCI image builder for Dockerfiles.
//!
//! Data flows one way through the modules: the Dockerfile front end
//! (`dockerfile`, `ignore`) feeds the instruction graph (`plan`), which the
//! executor runs against the store and registry, which feed the outputs.
//! Nothing flows back up: the parser knows nothing of the store, and the
//! registry client knows nothing of Dockerfiles.

pub mod cli;
pub mod context;
pub mod digest;
pub mod dockerfile;
pub mod exec;
pub mod file_kind;
pub mod ignore;
pub mod image;
pub mod layer;
pub mod output;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod sandbox;
pub mod solver;
pub mod store;
pub mod terminal_text;
pub mod userns;
pub mod watched;
