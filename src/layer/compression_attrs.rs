//! buildx's compression attributes of an output or a cache export
//! (`compression=`, `compression-level=`, `force-compression=`), and how
//! they combine with `--compression`: each attribute given replaces that
//! part of the flag's setting, for that output only.

use super::compress::{Codec, Compression, LevelError};
use super::distribute::Distribution;

/// Why a compression attribute cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionAttrError {
    /// A compression BuildKit knows and builder does not write.
    #[error("compression={0:?} is not supported: builder writes gzip, zstd or uncompressed layers")]
    Unsupported(String),
    /// A compression nobody knows.
    #[error("compression={0:?}: expected gzip, zstd or uncompressed")]
    Unknown(String),
    /// A level that is not a whole number from 0.
    #[error("compression-level={0:?}: expected a whole number (gzip 0-9, zstd 0-22)")]
    NotALevel(String),
    /// A level outside what the compression takes.
    #[error("compression-level={0}")]
    Level(LevelError),
}

/// The compression attributes of one output: each `None` unless given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionAttrs {
    /// `compression=`.
    pub compression: Option<Compression>,
    /// `compression-level=`, on buildx's scale (see [`Codec::with_level`]).
    pub level: Option<u32>,
    /// `force-compression=`.
    pub force: Option<bool>,
}

impl CompressionAttrs {
    /// The attributes from the values of `compression=` and
    /// `compression-level=` (`force`: `force-compression=` as the caller
    /// reads booleans). A level is checked against the compression given
    /// beside it; without one, by [`Self::resolve`].
    pub fn parse(
        compression: Option<&str>,
        level: Option<&str>,
        force: Option<bool>,
    ) -> Result<Self, CompressionAttrError> {
        let compression = compression
            .map(|value| match value {
                "gzip" => Ok(Compression::Gzip),
                "zstd" => Ok(Compression::Zstd),
                "uncompressed" => Ok(Compression::Uncompressed),
                "estargz" | "nydus" => Err(CompressionAttrError::Unsupported(value.to_owned())),
                other => Err(CompressionAttrError::Unknown(other.to_owned())),
            })
            .transpose()?;
        let level = level
            .map(|value| {
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| CompressionAttrError::NotALevel(value.to_owned()))
            })
            .transpose()?;
        if let (Some(compression), Some(level)) = (compression, level) {
            Codec::with_level(compression, level).map_err(CompressionAttrError::Level)?;
        }
        Ok(Self {
            compression,
            level,
            force,
        })
    }

    /// What an output with these attributes sends: `default` (what
    /// `--compression` says) with each attribute given in its place; a
    /// compression given without a level is at its pinned level. An
    /// error when the level is out of the range of the compression.
    pub fn resolve(self, default: Distribution) -> Result<Distribution, CompressionAttrError> {
        let compression = self
            .compression
            .unwrap_or_else(|| default.codec.compression());
        let codec = match self.level {
            Some(level) => {
                Codec::with_level(compression, level).map_err(CompressionAttrError::Level)?
            }
            None if compression == default.codec.compression() => default.codec,
            None => Codec::pinned(compression),
        };
        Ok(Distribution {
            codec,
            force: self.force.unwrap_or(default.force),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(c: Option<&str>, l: Option<&str>) -> Result<CompressionAttrs, String> {
        CompressionAttrs::parse(c, l, None).map_err(|e| e.to_string())
    }

    #[test]
    fn attributes_override_the_flag_one_by_one() {
        let zstd_flag = Distribution {
            codec: Codec::pinned(Compression::Zstd),
            force: false,
        };
        let none = CompressionAttrs::default();
        assert_eq!(none.resolve(zstd_flag), Ok(zstd_flag));
        let level = parse(None, Some("19")).unwrap().resolve(zstd_flag).unwrap();
        assert_eq!(
            level.codec,
            Codec::with_level(Compression::Zstd, 19).unwrap()
        );
        let gzip = parse(Some("gzip"), None)
            .unwrap()
            .resolve(zstd_flag)
            .unwrap();
        assert_eq!(gzip.codec, Codec::pinned(Compression::Gzip));
        let forced = CompressionAttrs {
            force: Some(true),
            ..none
        };
        assert!(forced.resolve(zstd_flag).unwrap().force);
        // A level the flag's compression does not take.
        let err = parse(None, Some("15"))
            .unwrap()
            .resolve(Distribution::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "compression-level=15 is out of range for gzip (0-9)"
        );
    }

    #[test]
    fn bad_values_name_the_attribute() {
        for (c, l, expected) in [
            (
                Some("estargz"),
                None,
                "compression=\"estargz\" is not supported",
            ),
            (
                Some("lz4"),
                None,
                "compression=\"lz4\": expected gzip, zstd",
            ),
            (
                Some("gzip"),
                Some("10"),
                "compression-level=10 is out of range for gzip (0-9)",
            ),
            (
                Some("zstd"),
                Some("23"),
                "compression-level=23 is out of range for zstd (0-22)",
            ),
            (
                Some("zstd"),
                Some("-1"),
                "compression-level=\"-1\": expected a whole number",
            ),
            (
                None,
                Some("high"),
                "compression-level=\"high\": expected a whole number",
            ),
        ] {
            let message = parse(c, l).unwrap_err();
            assert!(message.starts_with(expected), "{c:?} {l:?}: {message}");
        }
        assert!(parse(Some("uncompressed"), Some("22")).is_ok());
    }

    #[test]
    fn zstd_levels_map_as_buildkit_maps_them() {
        let native = |level| Codec::with_level(Compression::Zstd, level).unwrap().level();
        assert_eq!(
            (0..=22).map(native).collect::<Vec<_>>(),
            [
                1, 1, 1, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11
            ]
        );
        assert_eq!(
            Codec::with_level(Compression::Zstd, 4).unwrap(),
            Codec::pinned(Compression::Zstd)
        );
        assert_eq!(Codec::pinned(Compression::Zstd).variant_name(), "zstd3");
        assert_eq!(
            Codec::with_level(Compression::Gzip, 9)
                .unwrap()
                .variant_name(),
            "gzip9m"
        );
        assert_eq!(
            Codec::with_level(Compression::Gzip, 5)
                .unwrap()
                .variant_name(),
            "gzip5m"
        );
    }
}
