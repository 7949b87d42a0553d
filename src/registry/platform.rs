//! The platform an image is pulled for (`linux/amd64`, `linux/arm64/v8`),
//! and choosing it from an index.

use oci_spec::image::Descriptor;
use std::fmt;

/// An `os/architecture[/variant]` triple as `--platform` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// A `--platform` value that is not `os/arch[/variant]`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64")]
pub struct InvalidPlatform(pub String);

impl Platform {
    /// The platform of this machine, as Go (and so Docker) names it.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self, InvalidPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self {
                os: os.to_ascii_lowercase(),
                architecture: arch.to_ascii_lowercase(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Self {
                os: os.to_ascii_lowercase(),
                architecture: arch.to_ascii_lowercase(),
                variant: Some(variant.to_ascii_lowercase()),
            }),
            _ => Err(InvalidPlatform(s.to_string())),
        }
    }

    /// The first index entry for this platform; a wanted variant must match,
    /// an unwanted one is ignored (`linux/arm64` takes `linux/arm64/v8`).
    pub fn choose<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests.iter().find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == self.os
                    && p.architecture().to_string() == self.architecture
                    && match &self.variant {
                        None => true,
                        Some(v) => p.variant().as_deref() == Some(v.as_str()),
                    }
            })
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `linux/amd64, linux/arm64/v8` for an index's entries, for errors.
pub fn describe(manifests: &[Descriptor]) -> String {
    let names: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if names.is_empty() {
        "no platforms".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(json: &str) -> Vec<Descriptor> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parses_and_prints_platforms() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        for bad in ["linux", "", "linux//", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chooses_by_os_arch_and_wanted_variant() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let m = index(&format!(
            r#"[{{"mediaType":"m","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
               {{"mediaType":"m","digest":"{d}","size":2,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
               {{"mediaType":"m","digest":"{d}","size":3,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]"#
        ));
        let pick = |s: &str| Platform::parse(s).unwrap().choose(&m).map(|d| d.size());
        assert_eq!(pick("linux/arm/v7"), Some(2));
        assert_eq!(pick("linux/arm64"), Some(3));
        assert_eq!(pick("linux/amd64"), None);
        assert_eq!(describe(&m), "linux/arm/v6, linux/arm/v7, linux/arm64/v8");
    }
}
