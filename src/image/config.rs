//! Image configs (OCI `application/vnd.oci.image.config.v1+json`, which
//! Docker's `container.image.v1` matches): reading one with the checks the
//! schema cannot express, and starting a new one for `FROM scratch`.

use super::platform::PlatformSpec;
use oci_spec::image::{Arch, ImageConfiguration, Os};

/// Why bytes are not a usable image config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not decode into a config.
    #[error("invalid image config: {0}")]
    Json(#[from] serde_json::Error),
    /// An `Env` entry is not `NAME=value`.
    #[error("invalid image config: Env entry {entry:?} is not NAME=value")]
    Env {
        /// The offending entry.
        entry: String,
    },
}

/// Parses an image config, refusing `Env` entries that are not `NAME=value`
/// (the image-spec rule `^[^=]+=.*$`).
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ConfigError> {
    let config: ImageConfiguration = serde_json::from_slice(bytes)?;
    let env = config.config().as_ref().and_then(|c| c.env().as_ref());
    let not_name_value = |entry: &&String| {
        entry
            .split_once('=')
            .is_none_or(|(name, _)| name.is_empty())
    };
    if let Some(bad) = env.into_iter().flatten().find(not_name_value) {
        return Err(ConfigError::Env { entry: bad.clone() });
    }
    Ok(config)
}

/// An empty config for `platform`: no layers, no history, no settings.
pub fn new_config(platform: &PlatformSpec) -> ImageConfiguration {
    let mut config = ImageConfiguration::default();
    config.set_os(Os::from(platform.os()));
    config.set_architecture(Arch::from(platform.architecture()));
    config.set_variant(platform.variant().map(str::to_owned));
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_entries_must_be_name_equals_value() {
        let doc = |env: &str| {
            format!(
                r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Env":{env}}}}}"#
            )
        };
        assert!(parse_config(doc(r#"["A=1","B=","C==x"]"#).as_bytes()).is_ok());
        for bad in [r#"["A"]"#, r#"["=1"]"#] {
            assert!(
                matches!(
                    parse_config(doc(bad).as_bytes()),
                    Err(ConfigError::Env { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(parse_config(b"[]"), Err(ConfigError::Json(_))));
    }

    #[test]
    fn new_config_carries_the_platform() {
        let c = new_config(&PlatformSpec::parse("linux/arm/v7").unwrap());
        let json: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(json["os"], "linux");
        assert_eq!(json["architecture"], "arm");
        assert_eq!(json["variant"], "v7");
        assert_eq!(json["rootfs"]["type"], "layers");
        assert_eq!(json["rootfs"]["diff_ids"], serde_json::json!([]));
    }
}
