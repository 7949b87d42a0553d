//! Where blobs in the store came from (`registry repository` per blob), so
//! that a push to the same registry can ask it to mount the blob from that
//! repository instead of uploading it again.
//!
//! One small file per blob under `<store>/registry-sources/sha256/<hex>`,
//! one line per source, appended with `O_APPEND` so concurrent processes
//! never interleave partial lines. Losing it only costs a mount.

use oci_spec::image::{Digest, DigestAlgorithm};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The source record of one store.
#[derive(Debug, Clone)]
pub struct Sources {
    dir: PathBuf,
}

impl Sources {
    /// The record kept beside the store at `store_root`.
    pub fn new(store_root: &Path) -> Self {
        Self {
            dir: store_root.join("registry-sources").join("sha256"),
        }
    }

    fn file(&self, digest: &Digest) -> Option<PathBuf> {
        let hex = digest.digest();
        let ok = *digest.algorithm() == DigestAlgorithm::Sha256
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| self.dir.join(hex))
    }

    /// Remembers that `registry` has `digest` in `repository`. Best effort:
    /// a failure here never fails a pull or push.
    pub fn record(&self, digest: &Digest, registry: &str, repository: &str) {
        if self
            .repositories(digest, registry)
            .iter()
            .any(|r| r == repository)
        {
            return;
        }
        let Some(file) = self.file(digest) else {
            return;
        };
        let _ = std::fs::create_dir_all(&self.dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = f.write_all(format!("{registry} {repository}\n").as_bytes());
        }
    }

    /// The repositories of `registry` known to hold `digest`.
    pub fn repositories(&self, digest: &Digest, registry: &str) -> Vec<String> {
        let Some(text) = self
            .file(digest)
            .and_then(|f| std::fs::read_to_string(f).ok())
        else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(r, _)| *r == registry)
            .map(|(_, repo)| repo.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sources_per_registry_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sources::new(dir.path());
        let d = crate::digest::sha256(b"layer");
        assert!(s.repositories(&d, "r:5000").is_empty());
        s.record(&d, "r:5000", "lib/a");
        s.record(&d, "r:5000", "lib/a");
        s.record(&d, "other", "lib/b");
        assert_eq!(s.repositories(&d, "r:5000"), vec!["lib/a".to_string()]);
        assert_eq!(s.repositories(&d, "other"), vec!["lib/b".to_string()]);
    }
}
