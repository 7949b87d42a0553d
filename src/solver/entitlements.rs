//! Entitlements (`builder build --allow NAME`): what a build may grant its
//! RUN steps beyond the sandbox, named as BuildKit names them. A step that
//! asks for one the build was not given is refused before any step runs.

use crate::dockerfile::instructions::{InstructionKind, NetworkMode, Run, SecurityMode};
use crate::plan::Graph;
use std::fmt;

/// Something a RUN step may need granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entitlement {
    /// `security.insecure`: `RUN --security=insecure` (every capability).
    SecurityInsecure,
    /// `network.host`: `RUN --network=host`.
    NetworkHost,
}

impl Entitlement {
    /// The name `--allow` takes.
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::SecurityInsecure => "security.insecure",
            Entitlement::NetworkHost => "network.host",
        }
    }

    /// The RUN flag that needs it.
    pub fn flag(self) -> &'static str {
        match self {
            Entitlement::SecurityInsecure => "RUN --security=insecure",
            Entitlement::NetworkHost => "RUN --network=host",
        }
    }

    /// Reads an `--allow` value.
    pub fn parse(name: &str) -> Result<Entitlement, EntitlementError> {
        match name {
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            "network.host" => Ok(Entitlement::NetworkHost),
            _ => Err(EntitlementError::Unknown(name.to_owned())),
        }
    }

    /// What a RUN with these flags needs, if anything.
    pub fn needed_by(
        security: Option<SecurityMode>,
        network: Option<NetworkMode>,
    ) -> impl Iterator<Item = Entitlement> {
        let insecure =
            (security == Some(SecurityMode::Insecure)).then_some(Entitlement::SecurityInsecure);
        let host = (network == Some(NetworkMode::Host)).then_some(Entitlement::NetworkHost);
        insecure.into_iter().chain(host)
    }
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The entitlements a build was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    security_insecure: bool,
    network_host: bool,
}

impl Entitlements {
    /// Grants `entitlement`.
    pub fn grant(&mut self, entitlement: Entitlement) {
        match entitlement {
            Entitlement::SecurityInsecure => self.security_insecure = true,
            Entitlement::NetworkHost => self.network_host = true,
        }
    }

    /// Whether `entitlement` was granted.
    pub fn allows(&self, entitlement: Entitlement) -> bool {
        match entitlement {
            Entitlement::SecurityInsecure => self.security_insecure,
            Entitlement::NetworkHost => self.network_host,
        }
    }

    /// The first entitlement a RUN with these flags needs and was not given.
    pub fn missing(
        &self,
        security: Option<SecurityMode>,
        network: Option<NetworkMode>,
    ) -> Option<Entitlement> {
        Entitlement::needed_by(security, network).find(|e| !self.allows(*e))
    }

    /// Checks every RUN of the stages `graph` builds, so a step that needs
    /// an entitlement the build lacks stops the build before anything
    /// runs. (ONBUILD triggers of base images are checked when they run.)
    pub fn check(&self, graph: &Graph) -> Result<(), EntitlementError> {
        let needed = graph.needed();
        let stages = graph.dockerfile.stages.iter().enumerate();
        for (_, stage) in stages.filter(|(i, _)| needed.get(*i).copied().unwrap_or(false)) {
            for instruction in &stage.instructions {
                let InstructionKind::Run(Run {
                    security, network, ..
                }) = &instruction.kind
                else {
                    continue;
                };
                if let Some(entitlement) = self.missing(*security, *network) {
                    return Err(EntitlementError::NotGranted {
                        location: format!(
                            "{}:{}",
                            graph.source().file,
                            instruction.span.start.line
                        ),
                        entitlement,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why an entitlement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntitlementError {
    /// `--allow` names no entitlement.
    #[error("unknown entitlement {0:?}: expected security.insecure or network.host")]
    Unknown(String),
    /// A step needs an entitlement the build was not given.
    #[error(
        "{location}: {flag} needs the {entitlement} entitlement, which this build was not given; \
         pass `--allow {entitlement}` to builder build",
        flag = entitlement.flag()
    )]
    NotGranted {
        /// `Dockerfile:LINE` of the RUN.
        location: String,
        /// What it needs.
        entitlement: Entitlement,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for e in [Entitlement::SecurityInsecure, Entitlement::NetworkHost] {
            assert_eq!(Entitlement::parse(e.name()), Ok(e));
        }
        assert_eq!(
            Entitlement::parse("device"),
            Err(EntitlementError::Unknown("device".into()))
        );
    }

    #[test]
    fn only_insecure_and_host_need_a_grant() {
        let mut granted = Entitlements::default();
        assert_eq!(granted.missing(Some(SecurityMode::Sandbox), None), None);
        assert_eq!(granted.missing(None, Some(NetworkMode::None)), None);
        assert_eq!(
            granted.missing(Some(SecurityMode::Insecure), Some(NetworkMode::Host)),
            Some(Entitlement::SecurityInsecure)
        );
        granted.grant(Entitlement::SecurityInsecure);
        assert_eq!(
            granted.missing(Some(SecurityMode::Insecure), Some(NetworkMode::Host)),
            Some(Entitlement::NetworkHost)
        );
        granted.grant(Entitlement::NetworkHost);
        assert_eq!(
            granted.missing(Some(SecurityMode::Insecure), Some(NetworkMode::Host)),
            None
        );
    }
}
