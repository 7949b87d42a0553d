//! The images of the store as a user names them: by reference
//! (`app:1`, `app@sha256:…`), by image ID (the config digest that `build
//! -q` and `--iidfile` print, `sha256:<hex>` or bare hex), or by a unique
//! prefix of an ID, as docker resolves them. Every command that takes an
//! image goes through [`Store::resolve_image`].

use super::{Store, StoreError};
use crate::image::{ManifestOrIndex, Reference};
use oci_spec::image::{Descriptor, Digest};

/// One name of a stored image, with the image's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedImage {
    /// The name (tag or digest-pinned).
    pub reference: Reference,
    /// The manifest (or index) it points to.
    pub target: Descriptor,
    /// The image ID: the config digest (for an index, its own digest).
    pub id: Digest,
}

/// What a user's name for an image resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The manifest (or index).
    pub target: Descriptor,
    /// The image ID.
    pub id: Digest,
    /// The reference, when the image was named by one.
    pub reference: Option<Reference>,
}

/// How a user named an image, before looking it up.
#[derive(Debug)]
enum Name {
    /// A reference (the index is asked first; a hex one may still be an
    /// ID prefix).
    Reference(Reference),
    /// An ID or ID prefix (lower-case hex, `sha256:` taken off).
    Id(String),
}

/// Reads what a user typed: `sha256:HEX…` and 64 hex digits are IDs (as
/// docker reads them); anything else is a reference.
fn read_name(text: &str) -> Result<Name, StoreError> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if let Some(rest) = text.strip_prefix("sha256:")
        && hex(rest)
        && rest.len() <= 64
    {
        return Ok(Name::Id(rest.to_owned()));
    }
    if text.len() == 64 && hex(text) {
        return Ok(Name::Id(text.to_owned()));
    }
    match Reference::parse(text) {
        Ok(reference) => Ok(Name::Reference(reference)),
        Err(_) if hex(text) => Ok(Name::Id(text.to_owned())),
        Err(source) => Err(StoreError::BadImageName {
            name: text.to_owned(),
            source,
        }),
    }
}

impl Store {
    /// Every name in the reference index with its image's ID, sorted by
    /// name.
    pub fn named_images(&self) -> Result<Vec<NamedImage>, StoreError> {
        self.refs()
            .list()?
            .into_iter()
            .map(|(reference, target)| {
                let id = self.image_id(&target)?;
                Ok(NamedImage {
                    reference,
                    target,
                    id,
                })
            })
            .collect()
    }

    /// The image `text` names: a reference in the index, else an image ID
    /// or a prefix of exactly one. A prefix of several IDs is an error
    /// naming them.
    pub fn resolve_image(&self, text: &str) -> Result<ResolvedImage, StoreError> {
        let prefix = match read_name(text)? {
            Name::Reference(reference) => {
                if let Some(target) = self.refs().get(&reference)? {
                    let id = self.image_id(&target)?;
                    return Ok(ResolvedImage {
                        target,
                        id,
                        reference: Some(reference),
                    });
                }
                // `abc123` may be a name or an ID prefix: docker tries both.
                let name = text.strip_prefix("sha256:").unwrap_or(text);
                if !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(StoreError::RefNotFound {
                        reference: reference.familiar(),
                    });
                }
                name.to_owned()
            }
            Name::Id(prefix) => prefix,
        };
        let images = self.named_images()?;
        let mut ids: Vec<&Digest> = images
            .iter()
            .map(|i| &i.id)
            .filter(|id| id.digest().starts_with(&prefix))
            .collect();
        ids.sort_by_key(|id| id.to_string());
        ids.dedup();
        match ids.as_slice() {
            [] => Err(StoreError::RefNotFound {
                reference: text.to_owned(),
            }),
            [id] => {
                let image = images.iter().find(|i| &i.id == *id).ok_or_else(|| {
                    StoreError::RefNotFound {
                        reference: text.to_owned(),
                    }
                })?;
                Ok(ResolvedImage {
                    target: image.target.clone(),
                    id: image.id.clone(),
                    reference: None,
                })
            }
            many => Err(StoreError::AmbiguousImageId {
                prefix: text.to_owned(),
                matches: many.iter().map(ToString::to_string).collect(),
            }),
        }
    }
}

impl Store {
    /// Removes the names `text` names and returns them: a reference in the
    /// index removes itself (see [`super::RefStore::remove`]); an image ID
    /// or a unique prefix removes every name of that image, which without
    /// `force` must all be of one repository (as `docker rmi`).
    pub fn untag_image(&self, text: &str, force: bool) -> Result<Vec<Reference>, StoreError> {
        let image = self.resolve_image(text)?;
        if let Some(reference) = &image.reference {
            return self.refs().remove(reference);
        }
        let names: Vec<NamedImage> = self
            .named_images()?
            .into_iter()
            .filter(|n| n.id == image.id)
            .collect();
        let mut repositories: Vec<String> =
            names.iter().map(|n| n.reference.familiar_name()).collect();
        repositories.sort();
        repositories.dedup();
        if repositories.len() > 1 && !force {
            return Err(StoreError::ImageInRepositories {
                id: image.id.clone(),
                repositories,
            });
        }
        let targets = names.iter().map(|n| n.target.digest().clone()).collect();
        self.refs().remove_targets(&targets)
    }
}

impl Store {
    /// The ID of the image `target` points to: its config digest, or for
    /// an index its own digest.
    pub fn image_id(&self, target: &Descriptor) -> Result<Digest, StoreError> {
        let bytes = self.blobs().read(target.digest())?;
        let media_type = target.media_type().to_string();
        match ManifestOrIndex::parse(&bytes, Some(&media_type)) {
            Ok(ManifestOrIndex::Manifest(manifest)) => Ok(manifest.config().digest().clone()),
            Ok(ManifestOrIndex::Index(_)) => Ok(target.digest().clone()),
            Err(source) => Err(StoreError::BadDocument {
                digest: target.digest().clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_hex_names_are_read_as_docker_reads_them() {
        let full = "a".repeat(64);
        assert!(matches!(read_name(&format!("sha256:{full}")), Ok(Name::Id(p)) if p == full));
        assert!(matches!(read_name(&full), Ok(Name::Id(_))));
        assert!(matches!(read_name("sha256:ab"), Ok(Name::Id(p)) if p == "ab"));
        // A short hex word is a valid repository name first.
        assert!(matches!(read_name("abc123"), Ok(Name::Reference(_))));
        assert!(matches!(read_name("app:1"), Ok(Name::Reference(_))));
        assert!(matches!(
            read_name("Bad/Name"),
            Err(StoreError::BadImageName { .. })
        ));
    }
}
