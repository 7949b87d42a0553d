//! `builder inspect REF [--remote]`: print an image's manifest and config
//! as JSON, from the local store or straight from the registry.

use super::Globals;
use super::common::print_line;
use super::common::{block_on, client_for, parse_reference, resolve, tell_tls_notice};
use crate::image::Reference;
use crate::image::{ManifestOrIndex, PlatformSpec};
use crate::registry::Client;
use clap::Args;
use miette::{IntoDiagnostic as _, Result, miette};
use oci_spec::image::{Digest, ImageManifest};
use serde_json::{Value, json};

/// Show an image's manifest and config.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image.
    reference: String,
    /// Ask the registry instead of the local store.
    #[arg(long)]
    remote: bool,
    /// The platform to show from a multi-platform image (default: this
    /// machine's, else the first the store has).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: InspectArgs) -> Result<()> {
    let reference = parse_reference(&args.reference)?;
    let platform = match &args.platform {
        Some(p) => PlatformSpec::parse(p).into_diagnostic()?,
        None => PlatformSpec::host(),
    };
    let shown = if args.remote {
        let client = client_for(globals, reference.registry())?;
        tell_tls_notice();
        block_on(remote(&client, &reference, &platform))?
    } else {
        local(globals, &reference, &platform)?
    };
    print_line(format_args!(
        "{}",
        serde_json::to_string_pretty(&shown).into_diagnostic()?
    ))?;
    Ok(())
}

/// The stored image: for an index, the index, its platforms (`absent`
/// when not pulled) and the manifest and config of `platform` (or of the
/// first platform stored).
fn local(globals: &Globals, reference: &Reference, platform: &PlatformSpec) -> Result<Value> {
    let store = globals.open_store()?;
    let top = resolve(&store, reference)?;
    let blobs = store.blobs();
    let top_bytes = blobs.read(&top).into_diagnostic()?;
    let mut shown = json!({"reference": reference.to_string(), "digest": top.to_string()});
    let digest = match ManifestOrIndex::parse(&top_bytes, None) {
        Ok(ManifestOrIndex::Index(index)) => {
            shown["index"] = parse_json(&top_bytes, reference, &top)?;
            let entries = index.manifests();
            shown["platforms"] = entries
                .iter()
                .map(|entry| {
                    json!({
                        "platform": entry.platform().as_ref().map(|p| PlatformSpec::of(p).to_string()),
                        "digest": entry.digest().to_string(),
                        "stored": blobs.contains(entry.digest()),
                    })
                })
                .collect();
            let stored: Vec<_> = entries
                .iter()
                .filter(|e| blobs.contains(e.digest()))
                .cloned()
                .collect();
            let chosen = platform.select(&stored).or_else(|| stored.first());
            match chosen {
                Some(entry) => entry.digest().clone(),
                None => return Ok(shown),
            }
        }
        _ => top,
    };
    let manifest_bytes = blobs.read(&digest).into_diagnostic()?;
    let manifest = parse_json(&manifest_bytes, reference, &digest)?;
    let config = match serde_json::from_slice::<ImageManifest>(&manifest_bytes) {
        Ok(m) => {
            let config = blobs.read(m.config().digest()).into_diagnostic()?;
            parse_json(&config, reference, m.config().digest())?
        }
        Err(_) => Value::Null,
    };
    shown["manifest"] = manifest;
    shown["config"] = config;
    Ok(shown)
}

async fn remote(client: &Client, reference: &Reference, platform: &PlatformSpec) -> Result<Value> {
    let subject = reference.to_string();
    let wanted = reference
        .digest()
        .map(ToString::to_string)
        .or_else(|| reference.tag().map(str::to_string))
        .unwrap_or_else(|| "latest".into());
    let repository = reference.repository();
    let top = client.get_manifest(repository, &wanted, &subject).await?;
    let mut shown = json!({"reference": subject, "digest": top.digest.to_string()});
    let document = ManifestOrIndex::parse(&top.bytes, Some(&top.media_type)).into_diagnostic()?;
    let manifest = if let ManifestOrIndex::Index(index) = document {
        shown["index"] = parse_json(&top.bytes, reference, &top.digest)?;
        let chosen = platform
            .select(index.manifests())
            .ok_or_else(|| miette!("{subject}: no manifest for platform {platform}"))?;
        client
            .get_manifest(repository, chosen.digest().as_ref(), &subject)
            .await?
    } else {
        top
    };
    shown["manifest"] = parse_json(&manifest.bytes, reference, &manifest.digest)?;
    let image: ImageManifest = serde_json::from_slice(&manifest.bytes).into_diagnostic()?;
    let config = client
        .get_blob_bytes(repository, image.config().digest(), &subject)
        .await?;
    shown["config"] = parse_json(&config, reference, image.config().digest())?;
    Ok(shown)
}

fn parse_json(bytes: &[u8], reference: &Reference, digest: &Digest) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| miette!("{reference}: {digest} is not JSON: {e}"))
}
