//! `builder prune`: free the space of content neither an image name nor
//! the build cache needs (`--all`: nor the build cache itself).

use super::Globals;
use super::common::print_line;
use super::images::human_size;
use crate::store::PruneScope;
use miette::{IntoDiagnostic as _, Result};
use std::time::Duration;

/// Remove content no image or build cache needs, and leftovers of interrupted builds
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also remove the build cache (step results), then all content no image name needs
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    all: bool,
    /// Also empty the RUN --mount=type=cache directories no build is using
    #[arg(long)]
    cache_mounts: bool,
    /// Only `until=DURATION` (e.g. 24h, 1h30m, 7d): remove the build cache not used for that long
    #[arg(long, value_name = "FILTER", value_parser = parse_filter)]
    filter: Option<Duration>,
    /// Do not ask (docker asks without it; builder never asks: accepted)
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    _force: bool,
}

/// Reads `until=DURATION`, the one filter prune knows.
fn parse_filter(text: &str) -> Result<Duration, String> {
    let Some(value) = text.strip_prefix("until=") else {
        return Err(format!(
            "unknown filter {text:?}: prune knows only until=DURATION (e.g. until=24h)"
        ));
    };
    parse_duration(value)
}

/// A duration as Docker writes them: numbers with units, largest first
/// or not (`24h`, `1h30m`, `90s`), and `d` for days.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: use numbers with units d, h, m or s, as in 24h or 1h30m"
        )
    };
    let mut seconds: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let mut units = tail.chars();
        let unit: u64 = match units.next() {
            Some('d') => 86_400,
            Some('h') => 3_600,
            Some('m') => 60,
            Some('s') => 1,
            _ => return Err(bad()),
        };
        let amount: u64 = number.parse().map_err(|_| bad())?;
        seconds = amount
            .checked_mul(unit)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(bad)?;
        rest = units.as_str();
    }
    Ok(Duration::from_secs(seconds))
}

/// Prunes the store and prints what went, as `docker builder prune` does.
pub fn run(globals: &Globals, args: PruneArgs) -> Result<()> {
    let store = globals.open_store()?;
    // As Docker's `--all --filter until=`: the filter limits what --all drops.
    let scope = match (args.filter, args.all) {
        (Some(age), _) => PruneScope::UnusedFor(age),
        (None, true) => PruneScope::All,
        (None, false) => PruneScope::Unused,
    };
    let report = store.prune_with(scope).into_diagnostic()?;
    let mut removed = report.removed_blobs;
    removed.sort_by_key(|d| d.to_string());
    for digest in &removed {
        print_line(format_args!("Deleted: {digest}"))?;
    }
    let counts = [
        (report.removed_records, "build cache record(s)"),
        (report.removed_snapshots.len(), "unpacked layer snapshot(s)"),
        (report.removed_temp_files, "leftover temporary file(s)"),
    ];
    for (count, what) in counts {
        if count > 0 {
            print_line(format_args!("Removed {count} {what}"))?;
        }
    }
    if args.cache_mounts {
        let pruned = store.prune_cache_mounts().into_diagnostic()?;
        print_line(format_args!("Removed {} cache mount(s)", pruned.removed))?;
        if pruned.in_use > 0 {
            print_line(format_args!("Kept {} cache mount(s) in use", pruned.in_use))?;
        }
    }
    print_line(format_args!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_writes_them() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "24", "h", "1x", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_until_filter_is_known() {
        assert_eq!(parse_filter("until=2h"), Ok(Duration::from_secs(7_200)));
        let err = parse_filter("label=x").unwrap_err();
        assert!(err.contains("until=DURATION"), "{err}");
    }
}
