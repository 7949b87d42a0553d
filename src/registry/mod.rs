//! An OCI distribution client: talks to registries (auth, manifests, blobs),
//! pulls images into the store and pushes them from it. It knows nothing of
//! terminals or Dockerfiles; it reports progress as events.

pub mod auth;
pub mod client;
pub mod credentials;
pub mod error;
mod idle;
pub mod pull;
pub mod push;
pub mod sources;
pub mod tls;
pub mod upload_check;

pub use client::{Client, Endpoint};
pub use credentials::{Credential, DockerConfig};
pub use error::RegistryError;
pub use pull::{LayerFeed, PullOptions, PulledImage, index_platforms, pull};
pub use push::{PushOptions, WrittenUpload, push, upload_written};
