//! `builder inspect REF [--remote]`: print an image's manifest and config
//! as JSON, from the local store or straight from the registry.

use super::Globals;
use super::common::print_line;
use super::common::{block_on, client_for, parse_reference, resolve_image, tell_tls_notice};
use super::template::Template;
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
    /// Print this Go template of the JSON instead, e.g. '{{.id}}' or
    /// '{{json .config.config.Env}}' (`json`: the JSON on one line)
    #[arg(short, long, value_name = "TEMPLATE", value_parser = parse_format)]
    format: Option<Template>,
}

/// `--format`: a template; `json` is `{{json .}}`.
fn parse_format(text: &str) -> std::result::Result<Template, String> {
    let text = if text == "json" { "{{json .}}" } else { text };
    Template::parse(text).map_err(|e| e.to_string())
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: InspectArgs) -> Result<()> {
    let platform = match &args.platform {
        Some(p) => PlatformSpec::parse(p).into_diagnostic()?,
        None => PlatformSpec::host(),
    };
    let shown = if args.remote {
        let reference = parse_reference(&args.reference)?;
        let client = client_for(globals, reference.registry())?;
        tell_tls_notice();
        block_on(remote(&client, &reference, &platform))?
    } else {
        local(globals, &args.reference, &platform)?
    };
    match &args.format {
        Some(template) => print_line(template.render(&shown).into_diagnostic()?)?,
        None => print_line(format_args!(
            "{}",
            serde_json::to_string_pretty(&shown).into_diagnostic()?
        ))?,
    }
    Ok(())
}

/// The image a name, an image ID or an ID prefix names in the store: for
/// an index, the index, its platforms (`absent` when not pulled) and the
/// manifest and config of `platform` (or of the first platform stored).
fn local(globals: &Globals, name: &str, platform: &PlatformSpec) -> Result<Value> {
    let store = globals.open_store()?;
    let image = resolve_image(&store, name)?;
    let shown_name = image
        .reference
        .as_ref()
        .map_or_else(|| image.id.to_string(), ToString::to_string);
    let reference = shown_name.as_str();
    let top = image.target.digest().clone();
    let blobs = store.blobs();
    let top_bytes = blobs.read(&top).into_diagnostic()?;
    let mut shown = json!({
        "reference": shown_name,
        "id": image.id.to_string(),
        "digest": top.to_string(),
    });
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
            parse_json(&config, &shown_name, m.config().digest())?
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
        shown["index"] = parse_json(&top.bytes, &subject, &top.digest)?;
        let chosen = platform
            .select(index.manifests())
            .ok_or_else(|| miette!("{subject}: no manifest for platform {platform}"))?;
        client
            .get_manifest(repository, chosen.digest().as_ref(), &subject)
            .await?
    } else {
        top
    };
    shown["manifest"] = parse_json(&manifest.bytes, &subject, &manifest.digest)?;
    let image: ImageManifest = serde_json::from_slice(&manifest.bytes).into_diagnostic()?;
    let config = client
        .get_blob_bytes(repository, image.config().digest(), &subject)
        .await?;
    shown["config"] = parse_json(&config, &subject, image.config().digest())?;
    Ok(shown)
}

fn parse_json(bytes: &[u8], reference: &str, digest: &Digest) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| miette!("{reference}: {digest} is not JSON: {e}"))
}
