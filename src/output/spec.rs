//! Parsing buildx's `--output` syntax into an [`Output`]: CSV fields of
//! `key=value` (`type=oci,dest=out.tar`), or the short forms `-o DIR`
//! (the filesystem into a directory) and `-o -` (the filesystem as a tar
//! on stdout).

use crate::image::{Reference, ReferenceError};
use crate::layer::compression_attrs::{CompressionAttrError, CompressionAttrs};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why an `--output` value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputSpecError {
    /// The value is empty.
    #[error("empty --output value")]
    Empty,
    /// A quote where CSV does not allow one, or one that is never closed.
    #[error("--output {spec:?}: {problem}")]
    Quote {
        /// The whole value.
        spec: String,
        /// What is wrong with the quoting.
        problem: &'static str,
    },
    /// A field is not `key=value`.
    #[error("--output {spec:?}: field {field:?} is not key=value")]
    NotKeyValue {
        /// The whole value.
        spec: String,
        /// The offending field.
        field: String,
    },
    /// A key is given twice.
    #[error("--output {spec:?}: {key} is given more than once")]
    DuplicateKey {
        /// The whole value.
        spec: String,
        /// The repeated key.
        key: String,
    },
    /// No `type=` field.
    #[error("--output {spec:?}: type is required (one of {})", KNOWN_TYPES.join(", "))]
    MissingType {
        /// The whole value.
        spec: String,
    },
    /// A type builder does not know.
    #[error("--output {spec:?}: unknown type {kind:?} (expected one of {})", KNOWN_TYPES.join(", "))]
    UnknownType {
        /// The whole value.
        spec: String,
        /// The type given.
        kind: String,
    },
    /// A key the type does not take.
    #[error("--output {spec:?}: type={kind} does not take {key:?} (it takes {})", allowed.join(", "))]
    UnknownKey {
        /// The whole value.
        spec: String,
        /// The output type.
        kind: &'static str,
        /// The key given.
        key: String,
        /// The keys the type takes.
        allowed: &'static [&'static str],
    },
    /// A type that needs `dest=` lacks it.
    #[error("--output {spec:?}: type={kind} needs dest={what}")]
    MissingDest {
        /// The whole value.
        spec: String,
        /// The output type.
        kind: &'static str,
        /// What the destination is (`DIR`, `FILE`).
        what: &'static str,
    },
    /// A boolean key with a value that is not a boolean.
    #[error("--output {spec:?}: {key}={value:?} is not a boolean (true or false)")]
    NotABool {
        /// The whole value.
        spec: String,
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A bad `compression=`, `compression-level=` or `force-compression=`.
    #[error("--output {spec:?}: {source}")]
    Compression {
        /// The whole value.
        spec: String,
        /// What is wrong.
        source: CompressionAttrError,
    },
    /// A directory output cannot go to stdout.
    #[error(
        "--output {spec:?}: a directory cannot be written to stdout (dest=-); use tar=true or dest=DIR"
    )]
    DirectoryToStdout {
        /// The whole value.
        spec: String,
    },
    /// A `name=` entry that is not an image reference.
    #[error("--output {spec:?}: invalid name")]
    InvalidName {
        /// The whole value.
        spec: String,
        /// Why the name is invalid.
        #[source]
        source: ReferenceError,
    },
}

/// The output types builder knows, as buildx spells them.
const KNOWN_TYPES: &[&str] = &["local", "tar", "oci", "docker", "image", "registry"];

/// Where a stream (a tar) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output (`dest=-`, or no `dest` where that means stdout).
    Stdout,
    /// A file, replaced whole once the stream is complete.
    File(PathBuf),
    /// `docker load`'s stdin (`type=docker` without `dest`, and `--load`,
    /// as buildx loads into docker); needs a docker CLI on `PATH`.
    DockerLoad,
}

impl Destination {
    fn parse(dest: &str) -> Self {
        if dest == "-" {
            Self::Stdout
        } else {
            Self::File(PathBuf::from(dest))
        }
    }
}

/// How an OCI image layout is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciTarget {
    /// As a tar stream (`tar=true`, the default, as buildx does).
    Tar(Destination),
    /// As a directory (`tar=false`); an existing layout there is added to.
    Directory(PathBuf),
}

/// An output builder writes itself from an image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// `type=local`: the image's final filesystem in a directory.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// `type=tar` (and `-o -`): the image's final filesystem as a tar.
    Tar {
        /// Where the tar goes.
        dest: Destination,
    },
    /// `type=oci`: an OCI image layout.
    Oci {
        /// Tar stream or directory.
        target: OciTarget,
        /// The names from `name=` (empty: the build's tags are used).
        names: Vec<Reference>,
        /// How its layers are compressed, over `--compression`.
        compression: CompressionAttrs,
    },
    /// `type=docker`: an archive `docker load` reads.
    Docker {
        /// Where the archive goes.
        dest: Destination,
        /// The names from `name=` (empty: the build's tags are used).
        names: Vec<Reference>,
        /// How its layers are compressed, over `--compression`.
        compression: CompressionAttrs,
    },
}

impl Export {
    /// The compression attributes of an export that writes layer blobs
    /// (`type=oci`, `type=docker`); `None` for a filesystem export.
    pub fn compression(&self) -> Option<CompressionAttrs> {
        match self {
            Export::Oci { compression, .. } | Export::Docker { compression, .. } => {
                Some(*compression)
            }
            Export::Local { .. } | Export::Tar { .. } => None,
        }
    }
}

/// One `--output` of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Written by this module: see [`Export::write`](super::Export::write).
    Export(Export),
    /// `type=image` / `type=registry`: the image kept in the store under its
    /// names and, with `push`, pushed; the caller does both.
    Image {
        /// The names from `name=` (empty: the build's tags are used).
        names: Vec<Reference>,
        /// Whether to push (`push=true`; always for `type=registry`).
        push: bool,
        /// How the pushed layers are compressed, over `--compression`.
        compression: CompressionAttrs,
    },
}

impl Output {
    /// Whether this output holds one platform's image only (`type=docker`:
    /// `docker load` takes no index).
    pub fn holds_one_platform(&self) -> bool {
        matches!(self, Output::Export(Export::Docker { .. }))
    }

    /// Whether this output streams to standard output (`-o -`, `dest=-`).
    pub fn writes_stdout(&self) -> bool {
        let dest = match self {
            Output::Export(Export::Tar { dest } | Export::Docker { dest, .. }) => dest,
            Output::Export(Export::Oci {
                target: OciTarget::Tar(dest),
                ..
            }) => dest,
            Output::Export(_) | Output::Image { .. } => return false,
        };
        *dest == Destination::Stdout
    }

    /// Parses one `--output` value as buildx does.
    pub fn parse(spec: &str) -> Result<Self, OutputSpecError> {
        if spec.is_empty() {
            return Err(OutputSpecError::Empty);
        }
        let fields = split_csv(spec)?;
        // buildx: a lone value that is not `type=…` is a short form.
        if fields.len() == 1
            && fields.first().is_some_and(|f| f == spec)
            && !spec.starts_with("type=")
        {
            return Ok(Self::Export(if spec == "-" {
                Export::Tar {
                    dest: Destination::Stdout,
                }
            } else {
                Export::Local {
                    dest: PathBuf::from(spec),
                }
            }));
        }
        let mut attrs = Attrs::parse(spec, fields)?;
        let kind = attrs
            .take("type")
            .ok_or_else(|| OutputSpecError::MissingType {
                spec: spec.to_owned(),
            })?;
        let output = match kind.as_str() {
            "local" => {
                attrs.only("local", &["dest"])?;
                let dest = attrs.dest("local", "DIR")?;
                Self::Export(Export::Local {
                    dest: PathBuf::from(dest),
                })
            }
            "tar" => {
                attrs.only("tar", &["dest"])?;
                Self::Export(Export::Tar {
                    dest: attrs.stream_dest(),
                })
            }
            "oci" => {
                attrs.only(
                    "oci",
                    &[
                        "dest",
                        "tar",
                        "name",
                        "compression",
                        "compression-level",
                        "force-compression",
                    ],
                )?;
                let names = attrs.names()?;
                let compression = attrs.compression()?;
                let target = if attrs.bool("tar")?.unwrap_or(true) {
                    OciTarget::Tar(attrs.stream_dest())
                } else {
                    match attrs.dest("oci", "DIR")?.as_str() {
                        "-" => {
                            return Err(OutputSpecError::DirectoryToStdout {
                                spec: spec.to_owned(),
                            });
                        }
                        dir => OciTarget::Directory(PathBuf::from(dir)),
                    }
                };
                Self::Export(Export::Oci {
                    target,
                    names,
                    compression,
                })
            }
            "docker" => {
                attrs.only(
                    "docker",
                    &[
                        "dest",
                        "name",
                        "compression",
                        "compression-level",
                        "force-compression",
                    ],
                )?;
                let names = attrs.names()?;
                let compression = attrs.compression()?;
                // buildx loads into the Docker daemon without dest.
                let dest = attrs
                    .take("dest")
                    .filter(|d| !d.is_empty())
                    .map_or(Destination::DockerLoad, |d| Destination::parse(&d));
                Self::Export(Export::Docker {
                    dest,
                    names,
                    compression,
                })
            }
            // `registry` is `image` with push=true unless told otherwise.
            image @ ("image" | "registry") => {
                let registry = image == "registry";
                attrs.only(
                    if registry { "registry" } else { "image" },
                    &[
                        "name",
                        "push",
                        "compression",
                        "compression-level",
                        "force-compression",
                    ],
                )?;
                Self::Image {
                    names: attrs.names()?,
                    push: attrs.bool("push")?.unwrap_or(registry),
                    compression: attrs.compression()?,
                }
            }
            _ => {
                return Err(OutputSpecError::UnknownType {
                    spec: spec.to_owned(),
                    kind,
                });
            }
        };
        Ok(output)
    }
}

/// The `key=value` fields of one value; keys lower-cased and trimmed as buildx does.
struct Attrs<'s> {
    spec: &'s str,
    map: BTreeMap<String, String>,
}

impl<'s> Attrs<'s> {
    fn parse(spec: &'s str, fields: Vec<String>) -> Result<Self, OutputSpecError> {
        let mut map = BTreeMap::new();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(OutputSpecError::NotKeyValue {
                    spec: spec.to_owned(),
                    field,
                });
            };
            let key = key.trim().to_lowercase();
            if map.insert(key.clone(), value.to_owned()).is_some() {
                return Err(OutputSpecError::DuplicateKey {
                    spec: spec.to_owned(),
                    key,
                });
            }
        }
        Ok(Self { spec, map })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    /// Refuses keys the type does not take.
    fn only(
        &self,
        kind: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<(), OutputSpecError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(OutputSpecError::UnknownKey {
                spec: self.spec.to_owned(),
                kind,
                key: key.clone(),
                allowed,
            }),
            None => Ok(()),
        }
    }

    fn dest(&mut self, kind: &'static str, what: &'static str) -> Result<String, OutputSpecError> {
        self.take("dest")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| OutputSpecError::MissingDest {
                spec: self.spec.to_owned(),
                kind,
                what,
            })
    }

    /// A stream's destination: stdout when absent, as buildx does.
    fn stream_dest(&mut self) -> Destination {
        self.take("dest")
            .filter(|d| !d.is_empty())
            .map_or(Destination::Stdout, |d| Destination::parse(&d))
    }

    /// `name=a,b`: comma-separated references (quote the field in the CSV).
    fn names(&mut self) -> Result<Vec<Reference>, OutputSpecError> {
        let Some(names) = self.take("name") else {
            return Ok(Vec::new());
        };
        names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                Reference::parse(n).map_err(|source| OutputSpecError::InvalidName {
                    spec: self.spec.to_owned(),
                    source,
                })
            })
            .collect()
    }

    /// `compression=`, `compression-level=`, `force-compression=`.
    fn compression(&mut self) -> Result<CompressionAttrs, OutputSpecError> {
        let force = self.bool("force-compression")?;
        let compression = self.take("compression");
        let level = self.take("compression-level");
        CompressionAttrs::parse(compression.as_deref(), level.as_deref(), force).map_err(|source| {
            OutputSpecError::Compression {
                spec: self.spec.to_owned(),
                source,
            }
        })
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    fn bool(&mut self, key: &'static str) -> Result<Option<bool>, OutputSpecError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            _ => Err(OutputSpecError::NotABool {
                spec: self.spec.to_owned(),
                key,
                value,
            }),
        }
    }
}

/// Splits one CSV record as Go's `encoding/csv` does: fields separated by
/// commas; a field that starts with `"` is quoted, with `""` for a quote
/// inside it; a quote anywhere else is an error, as in Go.
fn split_csv(spec: &str) -> Result<Vec<String>, OutputSpecError> {
    let quote_error = |problem| OutputSpecError::Quote {
        spec: spec.to_owned(),
        problem,
    };
    let mut fields = Vec::new();
    let mut chars = spec.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(quote_error("unterminated quoted field")),
                }
            }
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err(quote_error("text after the closing quote of a field"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                if c == '"' {
                    return Err(quote_error("a quote inside an unquoted field"));
                }
                field.push(c);
            }
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}
