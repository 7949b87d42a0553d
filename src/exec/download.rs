//! Downloading an `ADD` URL: streamed to a file with its SHA-256 taken on
//! the way and checked against `--checksum` before the file is used; the
//! file gets mode 0600 and the `Last-Modified` time, as BuildKit sets them.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::CopyError;
use crate::digest::Hasher;

/// The file name a URL's content gets: the last element of its path, or
/// `__unnamed__` when there is none (as BuildKit names it).
pub(super) fn file_name(url: &reqwest::Url) -> String {
    url.path_segments()
        .and_then(|mut segments| segments.next_back().map(str::to_owned))
        .filter(|name| !name.is_empty() && name != "." && name != "..")
        .unwrap_or_else(|| "__unnamed__".to_owned())
}

/// The URL as it may be shown: without user and password.
pub(super) fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot carry credentials at all.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Downloads `url` into `dir/<name>`, checks `checksum` (`sha256:<hex>`),
/// and returns the file's path.
pub(super) async fn fetch(
    url: &reqwest::Url,
    dir: &Path,
    name: &str,
    checksum: Option<&str>,
) -> Result<PathBuf, CopyError> {
    let expected = checksum.map(parse_checksum).transpose()?;
    let failed = |reason: String| CopyError::Download {
        url: shown(url),
        reason,
    };
    // The registries' trust: the system's roots, else the bundled ones;
    // none needed for plain HTTP.
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(crate::registry::tls::download_config())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server replied {}", response.status())));
    }
    let mtime = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .unwrap_or(0);
    let path = dir.join(name);
    let io_err = |action: &str| {
        let action = format!("{action} {}", path.display());
        move |source| CopyError::Io { action, source }
    };
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(io_err("creating"))?;
    let mut hasher = Hasher::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_err("writing"))?;
    }
    file.flush().await.map_err(io_err("writing"))?;
    drop(file);
    let actual = hasher.finish();
    if let Some(expected) = expected {
        if actual.digest() != expected {
            // The bytes are not what was asked for: never leave them to be used.
            let _ = std::fs::remove_file(&path);
            return Err(CopyError::ChecksumMismatch {
                url: shown(url),
                expected: format!("sha256:{expected}"),
                actual: actual.to_string(),
            });
        }
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io_err("setting the mode of"))?;
    let time = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(rustix::fs::CWD, &path, &times, rustix::fs::AtFlags::empty())
        .map_err(|e| io_err("setting the mtime of")(e.into()))?;
    Ok(path)
}

/// The hex of a `sha256:<64 hex>` checksum.
fn parse_checksum(checksum: &str) -> Result<String, CopyError> {
    checksum
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| CopyError::BadChecksum(checksum.to_owned()))
}

/// Seconds since the epoch of an HTTP date in the preferred IMF-fixdate
/// form (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` for anything else.
fn parse_http_date(text: &str) -> Option<i64> {
    let (_, rest) = text.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_and_names() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        let url = |s| reqwest::Url::parse(s).unwrap();
        assert_eq!(file_name(&url("http://h/a/b.tar.gz?x=1")), "b.tar.gz");
        assert_eq!(file_name(&url("http://h/")), "__unnamed__");
        assert_eq!(shown(&url("http://u:p@h/x")), "http://h/x");
        assert!(parse_checksum("sha256:abc").is_err());
    }
}
