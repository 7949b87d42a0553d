//! `builder images`: the table of images in the store, like `docker images`.

use super::Globals;
use super::common::print_line;
use crate::image::config::parse_config;
use crate::image::{ManifestOrIndex, PlatformSpec};
use crate::store::Store;
use miette::{IntoDiagnostic as _, Result};
use oci_spec::image::Descriptor;
use std::collections::HashSet;

/// List the images in the store
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {}

/// Prints REPOSITORY TAG DIGEST SIZE PLATFORMS, one row per tag, plus a
/// `<none>` row for each digest-pinned image its repository has no tag for.
pub fn run(globals: &Globals, _args: ImagesArgs) -> Result<()> {
    let store = globals.open_store()?;
    let entries = store.refs().list().into_diagnostic()?;
    let tagged: HashSet<(String, String)> = entries
        .iter()
        .filter(|(r, _)| r.tag().is_some())
        .map(|(r, d)| (r.name(), d.digest().to_string()))
        .collect();
    let mut rows = vec![[
        "REPOSITORY".to_owned(),
        "TAG".to_owned(),
        "DIGEST".to_owned(),
        "SIZE".to_owned(),
        "PLATFORMS".to_owned(),
    ]];
    for (reference, target) in &entries {
        let digest = target.digest().to_string();
        if reference.tag().is_none() && tagged.contains(&(reference.name(), digest.clone())) {
            continue;
        }
        let size = store.content_size(target).into_diagnostic()?;
        rows.push([
            reference.familiar_name(),
            reference.tag().unwrap_or("<none>").to_owned(),
            digest,
            human_size(size),
            platforms(&store, target),
        ]);
    }
    print_line(table(&rows).trim_end())?;
    Ok(())
}

/// The platforms of an image: its config's for one manifest, each entry's
/// for an index (those not pulled marked `(absent)`), comma-separated;
/// `-` when the store cannot say.
fn platforms(store: &Store, target: &Descriptor) -> String {
    let blobs = store.blobs();
    let media_type = target.media_type().to_string();
    let document = blobs
        .read(target.digest())
        .ok()
        .and_then(|bytes| ManifestOrIndex::parse(&bytes, Some(&media_type)).ok());
    let listed = match document {
        Some(ManifestOrIndex::Index(index)) => index
            .manifests()
            .iter()
            .filter_map(|entry| {
                let platform = PlatformSpec::of(entry.platform().as_ref()?);
                Some(match blobs.contains(entry.digest()) {
                    true => platform.to_string(),
                    false => format!("{platform} (absent)"),
                })
            })
            .collect(),
        Some(ManifestOrIndex::Manifest(manifest)) => blobs
            .read(manifest.config().digest())
            .ok()
            .and_then(|bytes| parse_config(&bytes).ok())
            .filter(|c| !c.architecture().to_string().is_empty())
            .map(|c| {
                let variant = c.variant().as_deref();
                let platform =
                    PlatformSpec::new(&c.os().to_string(), &c.architecture().to_string(), variant);
                vec![platform.to_string()]
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if listed.is_empty() {
        "-".to_owned()
    } else {
        listed.join(",")
    }
}

/// Columns padded as docker's tabwriter does (cells at least 10 wide, 3
/// spaces between columns), the last column unpadded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let width = (widths[i] + 3).max(10);
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A size as docker prints it: decimal units, three significant digits
/// (`4.26MB`, `512B`, `1.2kB`).
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        for (bytes, text) in [
            (0, "0B"),
            (512, "512B"),
            (1000, "1kB"),
            (1200, "1.2kB"),
            (12_345, "12.3kB"),
            (123_456, "123kB"),
            (4_261_234, "4.26MB"),
            (1_500_000_000, "1.5GB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn table_pads_columns() {
        let rows = [
            ["A".to_owned(), "LONGER-HEADER".to_owned(), "x".to_owned()],
            ["busybox".to_owned(), "t".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            table(&rows),
            "A         LONGER-HEADER   x\nbusybox   t               y\n"
        );
    }
}
