//! What the registry subcommands share: the async runtime, the store, a
//! client with the user's credentials, and the progress renderer.

use super::Globals;
use crate::image::Reference;
use crate::progress::{self, ProgressSender};
use crate::registry::{Client, DockerConfig};
use crate::store::{Store, default_root};
use miette::{IntoDiagnostic as _, Result, miette};
use oci_spec::image::Digest;
use std::future::Future;

/// Runs `f` on a multi-threaded tokio runtime.
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?
        .block_on(f)
}

/// Opens the store at `--root`, `$BUILDER_ROOT` or the default place.
pub fn open_store(globals: &Globals) -> Result<Store> {
    let root = match &globals.root {
        Some(root) => root.clone(),
        None => default_root().into_diagnostic()?,
    };
    Store::open(root).into_diagnostic()
}

/// Points `reference` at `digest` in the store's reference index.
pub fn tag(_store: &Store, reference: &Reference, _digest: &Digest) -> Result<()> {
    // Wired to the store's ref index when the store branch lands it.
    Err(miette!(
        "cannot tag {reference}: the store's reference index is not available yet"
    ))
}

/// The digest `reference` names in the store's reference index.
pub fn resolve(_store: &Store, reference: &Reference) -> Result<Digest> {
    Err(miette!(
        "{reference}: the store's reference index is not available yet"
    ))
}

/// Parses an image reference given on the command line.
pub fn parse_reference(text: &str) -> Result<Reference> {
    Reference::parse(text).into_diagnostic()
}

/// A client for `registry` carrying the user's stored credentials for it.
pub fn client_for(globals: &Globals, registry: &str) -> Result<Client> {
    let credential = DockerConfig::load_default()?.get(registry)?;
    Ok(Client::new(
        registry,
        credential,
        &globals.insecure_registries,
    )?)
}

/// Runs `f` with a progress sender whose events a renderer draws on stderr;
/// waits for the renderer to finish drawing before returning.
pub fn with_progress<T>(f: impl FnOnce(ProgressSender) -> Result<T>) -> Result<T> {
    let (sender, renderer) = progress::spawn_renderer();
    let outcome = f(sender);
    // `f` consumed the sender; once its clones are gone the renderer ends.
    let _ = renderer.join();
    outcome
}
