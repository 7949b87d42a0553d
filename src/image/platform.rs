//! Platforms (`os/arch[/variant]`) as users write them and as indexes list
//! them, normalized and matched the way containerd's `platforms` package
//! does: `aarch64` is `arm64`, `arm64/v8` is plain `arm64`, bare `arm` is
//! `arm/v7`, and a platform can run older variants of its architecture
//! (`arm/v7` runs `arm/v6`; `arm64` runs `arm/v8`…`arm/v5`; `amd64/v3` runs
//! `amd64/v2` and `amd64`).

use oci_spec::image::{Descriptor, Platform};
use std::fmt;

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A normalized platform: the one to build for, or to pick from an index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformSpec {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl PlatformSpec {
    /// A normalized platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let (architecture, variant) = normalize_arch(
            &architecture.to_ascii_lowercase(),
            &variant.unwrap_or("").to_ascii_lowercase(),
        );
        Self {
            os,
            architecture,
            variant: Some(variant).filter(|v| !v.is_empty()),
        }
    }

    /// Parses `os/arch[/variant]`, or a lone `arch` (on Linux) as
    /// `--platform` accepts them.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        let invalid = |reason| PlatformError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split('/').collect();
        for part in &parts {
            if part.is_empty() {
                return Err(invalid("empty component"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            {
                return Err(invalid(
                    "components may hold only letters, digits, '_', '-' and '.'",
                ));
            }
        }
        let spec = match parts.as_slice() {
            [arch] => Self::new("linux", arch, None),
            [os, arch] => Self::new(os, arch, None),
            [os, arch, variant] => Self::new(os, arch, Some(variant)),
            _ => return Err(invalid("expected os/arch[/variant]")),
        };
        if !KNOWN_OS.contains(&spec.os.as_str()) {
            return Err(invalid(
                "unknown operating system (known: linux, windows, darwin, freebsd, …)",
            ));
        }
        if !KNOWN_ARCH.contains(&spec.architecture.as_str()) {
            return Err(invalid(
                "unknown architecture (known: amd64, arm64, arm, 386, ppc64le, s390x, riscv64, …)",
            ));
        }
        Ok(spec)
    }

    /// The platform of the machine builder runs on (always Linux).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Self::new("linux", arch, None)
    }

    /// The platform an index entry declares.
    pub fn of(platform: &Platform) -> Self {
        Self::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }

    /// The platform as an index entry declares it.
    pub fn to_oci(&self) -> Platform {
        let mut platform = Platform::default();
        platform.set_os(self.os.as_str().into());
        platform.set_architecture(self.architecture.as_str().into());
        platform.set_variant(self.variant.clone());
        platform
    }

    /// The operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture, in GOARCH spelling (`amd64`, `arm64`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The CPU variant (`v7`), if any after normalization.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an image for `other` runs here.
    pub fn can_run(&self, other: &PlatformSpec) -> bool {
        self.preference(other).is_some()
    }

    /// The index entry to use on this platform: the closest match (exact
    /// variant first, then older compatible ones), the first such entry when
    /// several tie. Entries without a platform never match.
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests
            .iter()
            .filter_map(|d| {
                let rank = self.preference(&Self::of(d.platform().as_ref()?))?;
                Some((rank, d))
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }

    /// Platforms this one runs, most preferred first.
    fn compatible(&self) -> Vec<PlatformSpec> {
        let same = |arch: &str, variant: Option<String>| PlatformSpec {
            os: self.os.clone(),
            architecture: arch.to_owned(),
            variant,
        };
        let level = |prefix: &str| -> Option<u32> {
            self.variant.as_deref()?.strip_prefix(prefix)?.parse().ok()
        };
        let mut out = vec![self.clone()];
        match self.architecture.as_str() {
            "amd64" => {
                let top = level("v").unwrap_or(1);
                out.extend((1..top).rev().map(|v| same("amd64", amd64_variant(v))));
            }
            "arm" => {
                let top = level("v").unwrap_or(7);
                out.extend((5..top).rev().map(|v| same("arm", Some(format!("v{v}")))));
            }
            "arm64" if self.variant.is_none() => {
                out.extend((5..=8).rev().map(|v| same("arm", Some(format!("v{v}")))));
            }
            _ => {}
        }
        out
    }

    fn preference(&self, other: &PlatformSpec) -> Option<usize> {
        self.compatible().iter().position(|p| p == other)
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Go's `GOOS` values, as containerd and BuildKit know operating systems.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Go's `GOARCH` values (after normalization).
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

fn amd64_variant(level: u32) -> Option<String> {
    (level > 1).then(|| format!("v{level}"))
}

/// GOARCH spelling and canonical variant, as containerd normalizes them.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        ("arm", "8") => ("arm", "v8"),
        (a, v) => (a, v),
    };
    (arch.to_owned(), variant.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{MediaType, PlatformBuilder};

    fn p(s: &str) -> PlatformSpec {
        PlatformSpec::parse(s).unwrap()
    }

    #[test]
    fn normalization_follows_containerd() {
        for (input, normalized) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
            ("Linux/AMD64", "linux/amd64"),
            ("arm64", "linux/arm64"),
            ("macos/arm64", "darwin/arm64"),
        ] {
            assert_eq!(p(input).to_string(), normalized, "{input}");
        }
    }

    #[test]
    fn invalid_platforms_are_refused() {
        for input in [
            "",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
            "linux/amd65",
            "plan10/amd64",
        ] {
            assert!(PlatformSpec::parse(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn host_is_linux_and_normalized() {
        let host = PlatformSpec::host();
        assert_eq!(host.os(), "linux");
        assert_eq!(PlatformSpec::parse(&host.to_string()).unwrap(), host);
    }

    #[test]
    fn compatibility_runs_older_variants_only() {
        assert!(p("linux/arm/v7").can_run(&p("linux/arm/v6")));
        assert!(!p("linux/arm/v6").can_run(&p("linux/arm/v7")));
        assert!(p("linux/arm64").can_run(&p("linux/arm/v7")));
        assert!(p("linux/amd64/v3").can_run(&p("linux/amd64")));
        assert!(!p("linux/amd64").can_run(&p("linux/amd64/v2")));
        assert!(!p("linux/amd64").can_run(&p("linux/arm64")));
        assert!(!p("linux/amd64").can_run(&p("windows/amd64")));
    }

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        let mut platform = PlatformBuilder::default()
            .os(os)
            .architecture(arch)
            .build()
            .unwrap();
        platform.set_variant(variant.map(str::to_owned));
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            u64::from(n),
            crate::digest::sha256(&[n]),
        );
        d.set_platform(Some(platform));
        d
    }

    #[test]
    fn select_prefers_the_exact_variant_and_skips_unknown_entries() {
        let manifests = vec![
            Descriptor::new(MediaType::ImageManifest, 0, crate::digest::sha256(b"none")),
            entry("unknown", "unknown", None, 1),
            entry("linux", "arm", Some("v6"), 2),
            entry("linux", "arm", Some("v7"), 3),
            entry("linux", "arm64", Some("v8"), 4),
            entry("linux", "amd64", None, 5),
        ];
        let size_of = |spec: &str| p(spec).select(&manifests).map(|d| d.size());
        assert_eq!(size_of("linux/arm/v7"), Some(3));
        assert_eq!(size_of("linux/arm/v6"), Some(2));
        assert_eq!(size_of("linux/arm64"), Some(4));
        assert_eq!(size_of("linux/amd64/v2"), Some(5));
        assert_eq!(size_of("linux/arm/v5"), None);
        assert_eq!(size_of("linux/s390x"), None);
        // Without the arm64 entry, arm64 falls back to 32-bit arm, newest first.
        assert_eq!(
            p("linux/arm64").select(&manifests[..4]).map(|d| d.size()),
            Some(3)
        );
    }
}
