//! What the registry subcommands share: the async runtime, the store, a
//! client with the user's credentials, and the progress renderer.

use super::Globals;
use super::progress_arg::ProgressMode;
use crate::image::Reference;
use crate::progress::{self, ProgressSender};
use crate::registry::{Client, DockerConfig, PulledImage};
use crate::store::{ResolvedImage, Store, StoreError};
use miette::{IntoDiagnostic as _, Result, miette};
use std::future::Future;

/// Runs `f` on a multi-threaded tokio runtime.
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?
        .block_on(f)
}

/// Records a pulled image in the store's reference index: under its tag,
/// or for a pull by digest under `name@<digest>`. A name that resolved to
/// an index names the index, which holds the platforms pulled.
pub fn tag(store: &Store, reference: &Reference, pulled: &PulledImage) -> Result<()> {
    let key = match reference.tag() {
        Some(_) => reference.clone(),
        None => reference.with_digest(pulled.resolved.clone()),
    };
    store.refs().set(&key, pulled.named()).into_diagnostic()
}

/// The image `text` names in the store: a reference, an image ID or a
/// unique ID prefix (see [`Store::resolve_image`]).
pub fn resolve_image(store: &Store, text: &str) -> Result<ResolvedImage> {
    store.resolve_image(text).map_err(|error| match error {
        StoreError::RefNotFound { reference }
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) && !text.starts_with("sha256:") =>
        {
            miette!(
                help = format!("pull it first with `builder pull {text}`"),
                "{reference}: no such image in the local store"
            )
        }
        other => miette::Report::from_err(other),
    })
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

/// Writes the notice about the trusted CA roots, if there is one not yet
/// told, to stderr (for commands without a progress display).
pub fn tell_tls_notice() {
    if let Some(notice) = crate::registry::tls::take_notice() {
        eprintln!("notice: {notice}");
    }
}

/// Runs `f` with a progress sender whose events a renderer draws on stderr
/// as `mode` says; waits for the renderer to finish drawing before returning.
pub fn with_progress<T>(
    mode: ProgressMode,
    f: impl FnOnce(ProgressSender) -> Result<T>,
) -> Result<T> {
    let (sender, renderer) = progress::spawn_renderer(mode.style()?);
    if let Some(notice) = crate::registry::tls::take_notice() {
        sender.send(progress::Event::Status(format!("notice: {notice}")));
    }
    let outcome = f(sender);
    // `f` consumed the sender; once its clones are gone the renderer ends.
    let _ = renderer.join();
    outcome
}

/// Writes `text` and a newline to stdout. A reader that went away
/// (`builder images | head`) ends the output quietly instead of panicking
/// as `println!` does; other write errors are reported.
pub fn print_line(text: impl std::fmt::Display) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(miette!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}
