//! `builder images`: the images in the store as `docker images` lists
//! them: REPOSITORY, TAG, IMAGE ID, CREATED, SIZE (and DIGEST with
//! `--digests`), `-q`, `--filter`, and `--format` (`json`, a template,
//! `table …`), newest first.

use super::Globals;
use super::common::print_line;
use super::template::Template;
use crate::image::config::parse_config;
use crate::image::{ManifestOrIndex, PlatformSpec};
use crate::store::{NamedImage, Store};
use clap::ArgAction;
use clap::builder::BoolishValueParser;
use miette::{IntoDiagnostic as _, Result};
use oci_spec::image::Descriptor;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// List the images in the store
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Only the image IDs, each once
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    quiet: bool,
    /// Show the manifest digests (a DIGEST column)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    digests: bool,
    /// Show whole image IDs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    no_trunc: bool,
    /// Only images that match: reference=PATTERN, dangling=true|false,
    /// label=KEY[=VALUE], before=IMAGE, since=IMAGE (repeatable; the
    /// references are alternatives, the rest must all hold)
    #[arg(short, long, value_name = "FILTER", value_parser = parse_filter)]
    filter: Vec<Filter>,
    /// `json` (one object per line), a Go template such as
    /// '{{.Repository}}:{{.Tag}}', or `table TEMPLATE` (columns with a header)
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<Format>,
}

/// One `--filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    /// `reference=PATTERN`: Go's `path.Match` on the name or `name:tag`.
    Reference(String),
    /// `dangling=BOOL`: rows without a tag.
    Dangling(bool),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `before=IMAGE`: created before that image.
    Before(String),
    /// `since=IMAGE`: created after that image.
    Since(String),
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err("expected KEY=VALUE (reference, dangling, label, before, since)".to_owned());
    };
    Ok(match key {
        "reference" => {
            crate::ignore::glob_match(value, "").map_err(|e| e.to_string())?;
            Filter::Reference(value.to_owned())
        }
        "dangling" => match value {
            "true" | "1" => Filter::Dangling(true),
            "false" | "0" => Filter::Dangling(false),
            _ => return Err(format!("dangling={value}: expected true or false")),
        },
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_owned(), Some(v.to_owned())),
            None => Filter::Label(value.to_owned(), None),
        },
        "before" => Filter::Before(value.to_owned()),
        "since" => Filter::Since(value.to_owned()),
        other => {
            return Err(format!(
                "unknown filter {other:?} (known: reference, dangling, label, before, since)"
            ));
        }
    })
}

/// `--format`.
#[derive(Debug, Clone, PartialEq)]
enum Format {
    /// One JSON object per line.
    Json,
    /// A template (a table when it starts with `table`).
    Template(Template),
}

fn parse_format(text: &str) -> Result<Format, String> {
    match text {
        "json" => Ok(Format::Json),
        "table" => Template::parse(&default_format(false)).map(Format::Template),
        _ => Template::parse(text).map(Format::Template),
    }
    .map_err(|e| e.to_string())
}

/// docker's default table.
fn default_format(digests: bool) -> String {
    if digests {
        "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}\\t{{.Platforms}}"
            .to_owned()
    } else {
        "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}\\t{{.Platforms}}"
            .to_owned()
    }
}

/// The column titles docker gives each field in a `table` format.
fn headers() -> Value {
    json!({
        "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
        "Containers": "CONTAINERS", "Platforms": "PLATFORMS",
    })
}

/// What a row shows of its image, read once per image.
struct ImageFacts {
    /// Seconds since the epoch, when the config says.
    created: Option<i64>,
    labels: HashMap<String, String>,
    size: u64,
    /// Its platforms, comma-separated (see [`platforms`]).
    platforms: String,
}

/// One row: a name (or a `<none>` tag) of an image.
struct Row<'a> {
    image: &'a NamedImage,
    facts: &'a ImageFacts,
    repository: String,
    tag: String,
}

/// Prints the rows as `--format` (or docker's default table) says.
pub fn run(globals: &Globals, args: ImagesArgs) -> Result<()> {
    let store = globals.open_store()?;
    let images = store.named_images().into_diagnostic()?;
    let mut facts: HashMap<String, ImageFacts> = HashMap::new();
    for image in &images {
        let key = image.target.digest().to_string();
        if let std::collections::hash_map::Entry::Vacant(entry) = facts.entry(key) {
            entry.insert(image_facts(&store, image)?);
        }
    }
    // A digest-pinned name whose repository tags the same image shows as
    // that tag's row only, as docker shows it.
    let tagged: HashSet<(String, String)> = images
        .iter()
        .filter(|i| i.reference.tag().is_some())
        .map(|i| (i.reference.name(), i.target.digest().to_string()))
        .collect();
    let mut rows = Vec::new();
    for image in &images {
        let digest = image.target.digest().to_string();
        if image.reference.tag().is_none()
            && tagged.contains(&(image.reference.name(), digest.clone()))
        {
            continue;
        }
        rows.push(Row {
            image,
            facts: &facts[&digest],
            repository: image.reference.familiar_name(),
            tag: image.reference.tag().unwrap_or("<none>").to_owned(),
        });
    }
    // Newest first, as docker lists them; images without a created time
    // (`None` sorts below every time) last; ties by name.
    rows.sort_by(|a, b| {
        b.facts
            .created
            .cmp(&a.facts.created)
            .then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)))
    });
    let created_of = |name: &str| -> Result<Option<i64>> {
        let image = super::common::resolve_image(&store, name)?;
        Ok(facts
            .get(&image.target.digest().to_string())
            .and_then(|f| f.created))
    };
    for filter in &args.filter {
        match filter {
            Filter::Before(name) | Filter::Since(name) => {
                let Some(limit) = created_of(name)? else {
                    continue;
                };
                let before = matches!(filter, Filter::Before(_));
                rows.retain(|row| {
                    row.facts
                        .created
                        .is_some_and(|c| if before { c < limit } else { c > limit })
                });
            }
            Filter::Dangling(dangling) => rows.retain(|row| (row.tag == "<none>") == *dangling),
            Filter::Label(key, value) => {
                rows.retain(|row| match (row.facts.labels.get(key), value) {
                    (Some(have), Some(want)) => have == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                })
            }
            Filter::Reference(_) => {}
        }
    }
    let patterns: Vec<&str> = args
        .filter
        .iter()
        .filter_map(|f| match f {
            Filter::Reference(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if !patterns.is_empty() {
        rows.retain(|row| {
            let full = format!("{}:{}", row.repository, row.tag);
            patterns.iter().any(|p| {
                crate::ignore::glob_match(p, &row.repository).unwrap_or(false)
                    || crate::ignore::glob_match(p, &full).unwrap_or(false)
            })
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let data: Vec<Value> = rows
        .iter()
        .map(|row| row_data(row, args.no_trunc, now))
        .collect();
    if args.quiet {
        let mut seen = HashSet::new();
        for row in &data {
            let id = row["ID"].as_str().unwrap_or_default();
            if seen.insert(id.to_owned()) {
                print_line(id)?;
            }
        }
        return Ok(());
    }
    let template = match args.format {
        Some(Format::Json) => {
            for row in &data {
                print_line(serde_json::to_string(row).into_diagnostic()?)?;
            }
            return Ok(());
        }
        Some(Format::Template(template)) => template,
        None => Template::parse(&default_format(args.digests)).into_diagnostic()?,
    };
    let mut lines = Vec::new();
    if template.table {
        lines.push(template.render(&headers()).into_diagnostic()?);
    }
    for row in &data {
        lines.push(template.render(row).into_diagnostic()?);
    }
    if template.table {
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect();
        print_line(table(&cells).trim_end())?;
    } else {
        for line in lines {
            print_line(line)?;
        }
    }
    Ok(())
}

/// The created time and labels of the config, and the image's size.
fn image_facts(store: &Store, image: &NamedImage) -> Result<ImageFacts> {
    let size = store.content_size(&image.target).into_diagnostic()?;
    let config: Value = store
        .blobs()
        .read(&image.id)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let created = config["created"].as_str().and_then(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    });
    let labels = config["config"]["Labels"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(ImageFacts {
        created,
        labels,
        size,
        platforms: platforms(store, &image.target),
    })
}

/// A row's fields under docker's names (`docker images --format json`).
fn row_data(row: &Row<'_>, no_trunc: bool, now: i64) -> Value {
    let id = row.image.id.to_string();
    let id = if no_trunc {
        id
    } else {
        row.image.id.digest().chars().take(12).collect()
    };
    let size = human_size(row.facts.size);
    let (since, at) = match row.facts.created {
        Some(created) => (
            format!("{} ago", human_duration(now.saturating_sub(created))),
            created_at(created),
        ),
        None => ("N/A".to_owned(), "N/A".to_owned()),
    };
    json!({
        "Containers": "N/A",
        "CreatedAt": at,
        "CreatedSince": since,
        "Digest": row.image.target.digest().to_string(),
        "ID": id,
        "Platforms": row.facts.platforms,
        "Repository": row.repository,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": row.tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
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

/// `2024-01-02 03:04:05 +0000 UTC`, as Go prints a UTC time.
fn created_at(seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "N/A".to_owned(),
    }
}

/// go-units' `HumanDuration`, which docker's CREATED column uses.
fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    // Go rounds to the nearest hour here.
    let hours = (seconds + 1800) / 3600;
    match () {
        () if seconds < 1 => "Less than a second".to_owned(),
        () if seconds == 1 => "1 second".to_owned(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".to_owned(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".to_owned(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// Columns padded as docker's tabwriter does (cells at least 10 wide, 3
/// spaces between columns), the last cell of a line unpadded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
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
    fn durations_read_as_docker_prints_them() {
        for (seconds, text) in [
            (0, "Less than a second"),
            (45, "45 seconds"),
            (90, "About a minute"),
            (600, "10 minutes"),
            (3_600, "About an hour"),
            (7_200, "2 hours"),
            (3 * 86_400, "3 days"),
            (21 * 86_400, "3 weeks"),
            (90 * 86_400, "3 months"),
            (800 * 86_400, "2 years"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
        assert_eq!(created_at(0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn table_pads_columns() {
        let rows = [
            vec!["A".to_owned(), "LONGER-HEADER".to_owned(), "x".to_owned()],
            vec!["busybox".to_owned(), "t".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            table(&rows),
            "A         LONGER-HEADER   x\nbusybox   t               y\n"
        );
    }
}
