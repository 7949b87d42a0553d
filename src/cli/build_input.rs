//! Where `builder build` takes its context and Dockerfile from, as
//! `docker build` does: a context directory; a tar archive given as a
//! path or on stdin (`-`), unpacked into a temporary directory (its
//! Dockerfile read from inside it); or a Dockerfile on stdin (`-f -`,
//! or `-` when stdin holds a Dockerfile rather than an archive, which
//! builds with an empty context). Remote contexts are refused.

use super::plan_input::DockerfileText;
use crate::context::UnpackedContext;
use miette::{IntoDiagnostic as _, Result, miette};
use std::io::Read;
use std::path::{Path, PathBuf};

/// How reports name a Dockerfile read from stdin.
pub const STDIN_NAME: &str = "<stdin>";

/// The context directory and Dockerfile of a build.
#[derive(Debug)]
pub struct BuildInput {
    /// The directory the build reads its context from.
    pub context: PathBuf,
    /// The Dockerfile's path on disk, when it has one (for
    /// `<Dockerfile>.dockerignore`).
    pub dockerfile_path: Option<PathBuf>,
    /// The Dockerfile's text.
    pub dockerfile: DockerfileText,
    /// An unpacked archive context, removed when the build is done.
    _unpacked: Option<UnpackedContext>,
}

/// What the CONTEXT argument names.
#[derive(Debug, PartialEq, Eq)]
enum ContextSource {
    /// A directory.
    Dir(PathBuf),
    /// A (possibly compressed) tar file.
    ArchiveFile(PathBuf),
    /// `-`: an archive, or a Dockerfile, on stdin.
    Stdin,
    /// A URL or git address.
    Remote(String),
}

impl ContextSource {
    fn of(context: &Path) -> Self {
        let text = context.to_string_lossy();
        if text == "-" {
            Self::Stdin
        } else if is_remote(&text) {
            Self::Remote(text.into_owned())
        } else if context.is_file() {
            Self::ArchiveFile(context.to_owned())
        } else {
            Self::Dir(context.to_owned())
        }
    }
}

/// A context Docker would fetch: a URL or a git address.
fn is_remote(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "ssh://",
        "github.com/",
    ]
    .iter()
    .any(|prefix| lower.starts_with(prefix))
}

/// What `-f` asks for.
#[derive(Debug, Clone, Copy)]
enum DockerfileChoice<'a> {
    /// No `-f`: `Dockerfile` at the root of the context.
    Default,
    /// `-f PATH`: on disk, or inside an archive context.
    Path(&'a Path),
    /// `-f -`: stdin.
    Stdin,
}

impl<'a> DockerfileChoice<'a> {
    fn of(file: Option<&'a Path>) -> Self {
        match file {
            None => Self::Default,
            Some(f) if f.as_os_str() == "-" => Self::Stdin,
            Some(f) => Self::Path(f),
        }
    }
}

/// Whether both `-f -` and the context `-` ask for stdin, which can
/// hold only one of them.
pub fn both_read_stdin(context: &Path, file: Option<&Path>) -> bool {
    matches!(DockerfileChoice::of(file), DockerfileChoice::Stdin) && context.as_os_str() == "-"
}

/// What [`resolve`] says when [`both_read_stdin`].
pub const BOTH_READ_STDIN: &str =
    "-f - and the context - cannot both read stdin: give one of them a path";

/// Resolves CONTEXT and `-f` into the directory and Dockerfile of a
/// build, reading stdin when either is `-`.
pub fn resolve(context: &Path, file: Option<&Path>) -> Result<BuildInput> {
    if both_read_stdin(context, file) {
        return Err(miette!("{BOTH_READ_STDIN}"));
    }
    let choice = DockerfileChoice::of(file);
    match ContextSource::of(context) {
        ContextSource::Remote(url) => Err(miette!(
            help = "clone or download it and pass its directory or archive",
            "CONTEXT {url:?} is a remote context (git, https): not supported yet"
        )),
        ContextSource::Dir(dir) => {
            if !dir.is_dir() {
                return Err(miette!(
                    "the build context {} is not a directory or an archive",
                    dir.display()
                ));
            }
            let on_disk = |path: PathBuf| -> Result<_> {
                let text = read_dockerfile(&path)?;
                Ok((Some(path), text))
            };
            let (path, dockerfile) = match choice {
                DockerfileChoice::Stdin => (None, read_stdin_dockerfile(std::io::stdin())?),
                DockerfileChoice::Default => on_disk(dir.join("Dockerfile"))?,
                DockerfileChoice::Path(path) => on_disk(path.to_owned())?,
            };
            Ok(BuildInput {
                context: dir,
                dockerfile_path: path,
                dockerfile,
                _unpacked: None,
            })
        }
        ContextSource::ArchiveFile(path) => {
            let name = path.display().to_string();
            let archive = std::fs::File::open(&path)
                .map_err(|e| miette!("cannot open the build context {name}: {e}"))?;
            from_archive(unpack(archive, &name)?, choice)
        }
        ContextSource::Stdin => {
            let mut stdin = std::io::stdin();
            let head = read_head(&mut stdin)?;
            let rest = std::io::Cursor::new(head.clone()).chain(stdin);
            if looks_like_archive(&head) {
                return from_archive(unpack(rest, STDIN_NAME)?, choice);
            }
            // Docker's `docker build - < Dockerfile`: no context at all.
            let dockerfile = read_stdin_dockerfile(rest)?;
            let unpacked = UnpackedContext::empty(&std::env::temp_dir()).into_diagnostic()?;
            Ok(BuildInput {
                context: unpacked.path().to_owned(),
                dockerfile_path: None,
                dockerfile,
                _unpacked: Some(unpacked),
            })
        }
    }
}

fn unpack(archive: impl Read + Send, name: &str) -> Result<UnpackedContext> {
    UnpackedContext::unpack(archive, &std::env::temp_dir(), name).into_diagnostic()
}

/// The input of an unpacked archive: its Dockerfile is `-f` inside it
/// (default `Dockerfile`), or stdin.
fn from_archive(unpacked: UnpackedContext, choice: DockerfileChoice<'_>) -> Result<BuildInput> {
    let inside = match choice {
        DockerfileChoice::Stdin => None,
        DockerfileChoice::Default => Some(Path::new("Dockerfile")),
        DockerfileChoice::Path(path) => Some(path),
    };
    let (path, dockerfile) = match inside {
        None => (None, read_stdin_dockerfile(std::io::stdin())?),
        Some(inside) => {
            let bytes = unpacked.read_file(inside).map_err(|e| {
                miette!(
                    "cannot read the Dockerfile {} in the build context archive: {e}",
                    inside.display()
                )
            })?;
            let name = inside.display().to_string();
            let relative = inside.strip_prefix("/").unwrap_or(inside);
            (
                Some(unpacked.path().join(relative)),
                DockerfileText { name, bytes },
            )
        }
    };
    Ok(BuildInput {
        context: unpacked.path().to_owned(),
        dockerfile_path: path,
        dockerfile,
        _unpacked: Some(unpacked),
    })
}

fn read_dockerfile(path: &Path) -> Result<DockerfileText> {
    let name = path.display().to_string();
    let bytes = std::fs::File::open(path)
        .and_then(crate::dockerfile::read_bounded)
        .map_err(|e| miette!("cannot read the Dockerfile {name}: {e}"))?;
    Ok(DockerfileText { name, bytes })
}

/// A Dockerfile read from stdin (or what is left of it), named `<stdin>`.
fn read_stdin_dockerfile(reader: impl Read) -> Result<DockerfileText> {
    let bytes = crate::dockerfile::read_bounded(reader)
        .map_err(|e| miette!("cannot read the Dockerfile from stdin: {e}"))?;
    Ok(DockerfileText {
        name: STDIN_NAME.to_owned(),
        bytes,
    })
}

/// Up to one tar block from the start of `reader`.
fn read_head(reader: &mut impl Read) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    reader
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| miette!("cannot read stdin: {e}"))?;
    Ok(head)
}

/// Docker's test for stdin: compressed data, or a tar header.
fn looks_like_archive(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 4] = [
        &[0x1f, 0x8b],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    MAGIC.iter().any(|m| head.starts_with(m)) || head.get(257..262) == Some(b"ustar".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_git_addresses_are_remote_contexts() {
        for url in [
            "https://example.com/ctx.tar.gz",
            "git@github.com:o/r.git",
            "git://host/r",
            "github.com/o/r",
        ] {
            assert_eq!(
                ContextSource::of(Path::new(url)),
                ContextSource::Remote(url.to_owned())
            );
        }
        assert_eq!(ContextSource::of(Path::new("-")), ContextSource::Stdin);
    }

    #[test]
    fn a_dockerfile_is_not_taken_for_an_archive() {
        assert!(!looks_like_archive(b"FROM scratch\nCOPY . /\n"));
        assert!(looks_like_archive(&[0x1f, 0x8b, 8, 0]));
        let mut block = vec![0u8; 512];
        block[257..262].copy_from_slice(b"ustar");
        assert!(looks_like_archive(&block));
    }
}
