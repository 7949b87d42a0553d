//! The build and target platforms of a build, and the ARGs BuildKit
//! predefines from them (`BUILDPLATFORM`, `TARGETARCH`, …).

use super::args::EnvList;
use crate::image::PlatformSpec;

/// The platform the build runs on and the one it builds for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platforms {
    /// Where the build runs (the host).
    pub build: PlatformSpec,
    /// What the image is for (`--platform`, or the host).
    pub target: PlatformSpec,
}

impl Platforms {
    /// Builds on the host for `target`, or for the host when `None`.
    pub fn for_target(target: Option<PlatformSpec>) -> Platforms {
        let build = PlatformSpec::host();
        Platforms {
            target: target.unwrap_or_else(|| build.clone()),
            build,
        }
    }

    /// The automatic platform ARGs of the global scope, plus `TARGETSTAGE`
    /// (the stage being built), as BuildKit defines them.
    pub(crate) fn predefined_args(&self, target_stage: &str) -> EnvList {
        let mut args = EnvList::default();
        for (prefix, p) in [("BUILD", &self.build), ("TARGET", &self.target)] {
            args.set(&format!("{prefix}PLATFORM"), &p.to_string());
            args.set(&format!("{prefix}OS"), p.os());
            args.set(&format!("{prefix}ARCH"), p.architecture());
            args.set(&format!("{prefix}VARIANT"), p.variant().unwrap_or(""));
        }
        args.set("TARGETSTAGE", target_stage);
        args
    }
}

/// The names [`Platforms::predefined_args`] defines.
pub(crate) const PREDEFINED_ARGS: [&str; 9] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_args_describe_both_platforms() {
        let platforms = Platforms {
            build: PlatformSpec::parse("linux/amd64").unwrap(),
            target: PlatformSpec::parse("linux/arm/v7").unwrap(),
        };
        let args = platforms.predefined_args("app");
        assert_eq!(args.get("BUILDPLATFORM"), Some("linux/amd64"));
        assert_eq!(args.get("BUILDVARIANT"), Some(""));
        assert_eq!(args.get("TARGETPLATFORM"), Some("linux/arm/v7"));
        assert_eq!(args.get("TARGETARCH"), Some("arm"));
        assert_eq!(args.get("TARGETVARIANT"), Some("v7"));
        assert_eq!(args.get("TARGETSTAGE"), Some("app"));
        let names: Vec<&str> = args.iter().map(|(k, _)| k).collect();
        assert_eq!(names, PREDEFINED_ARGS);
    }
}
