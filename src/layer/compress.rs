//! Layer compression with its digests taken in the same pass, and
//! decompression by media type.
//!
//! Writing runs the tar producer on its own thread, joined to the
//! compressor by a bounded channel; the producer hashes the uncompressed
//! bytes (the diff ID) and the compressor's output is hashed on its way
//! to the caller's writer (the blob digest and size). Both compressors
//! deflate on all cores (gzip in deterministic blocks, see
//! [`super::gzip`]; zstd with its own workers). The compressors, default
//! levels and gzip block size are pinned: changing them changes every
//! layer digest, so treat that as a cache-breaking change. A [`Codec`]
//! names another level (`compression-level=`); the output is as
//! deterministic at any level.

use super::LayerError;
use super::gzip::BlockGzip;
use crate::digest::HashingWriter;
use oci_spec::image::Digest;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

pub use super::gzip::GZIP_LEVEL;
/// The pinned zstd level.
pub const ZSTD_LEVEL: i32 = 3;

/// The highest gzip level buildx's `compression-level` takes.
pub const GZIP_MAX_LEVEL: u32 = 9;
/// The highest zstd level buildx's `compression-level` takes.
pub const ZSTD_MAX_LEVEL: u32 = 22;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip: what every registry and runtime reads; the default.
    Gzip,
    /// zstd: faster and smaller, for runtimes that read it.
    Zstd,
    /// A plain tar.
    Uncompressed,
}

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

impl Compression {
    /// The name buildx's `compression=` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Uncompressed => "uncompressed",
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Gzip => OCI_LAYER_GZIP,
            Self::Zstd => OCI_LAYER_ZSTD,
            Self::Uncompressed => OCI_LAYER,
        }
    }

    /// The compression a layer media type (OCI or Docker, distributable or
    /// not) declares; `Ok(None)` when a layer media type leaves it open
    /// (`application/octet-stream`, an unknown `tar` variant) and the
    /// bytes must tell; an error for a media type that is not a layer.
    pub fn from_media_type(media_type: &str) -> Result<Option<Self>, LayerError> {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        if essence.ends_with("+gzip") || essence.ends_with(".tar.gzip") {
            Ok(Some(Self::Gzip))
        } else if essence.ends_with("+zstd") || essence.ends_with(".tar.zstd") {
            Ok(Some(Self::Zstd))
        } else if essence.ends_with(".tar")
            && essence.starts_with("application/vnd.oci.image.layer.")
        {
            Ok(Some(Self::Uncompressed))
        } else if essence == "application/octet-stream"
            || essence.is_empty()
            || essence.contains("tar")
        {
            Ok(None)
        } else {
            Err(LayerError::UnsupportedMediaType(media_type.to_owned()))
        }
    }

    /// The compression a stream's first bytes show (gzip and zstd magic
    /// numbers); anything else is taken as a plain tar.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::Uncompressed
        }
    }
}

/// A compression at a level: how a layer blob is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    compression: Compression,
    /// The compressor's own level (gzip 0–9, libzstd's); 0 for a plain tar.
    level: u32,
}

/// A `compression-level` outside what the compression takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{level} is out of range for {compression} (0-{max})", compression = .compression.name())]
pub struct LevelError {
    /// The compression.
    pub compression: Compression,
    /// The level given.
    pub level: u32,
    /// The highest level it takes.
    pub max: u32,
}

impl Codec {
    /// `compression` at its pinned level ([`GZIP_LEVEL`], [`ZSTD_LEVEL`]).
    pub fn pinned(compression: Compression) -> Self {
        let level = match compression {
            Compression::Gzip => GZIP_LEVEL,
            Compression::Zstd => ZSTD_LEVEL.unsigned_abs(),
            Compression::Uncompressed => 0,
        };
        Self { compression, level }
    }

    /// `compression` at `level` as BuildKit reads `compression-level`:
    /// gzip 0–9 as zlib's levels; zstd 0–22 mapped as BuildKit's zstd
    /// encoder maps them onto its four speeds, each the libzstd level
    /// it matches (0–2: 1, 3–5: 3, 6–9: 7, 10–22: 11), so a level gives
    /// the size and speed it gives with BuildKit; ignored for a plain tar.
    pub fn with_level(compression: Compression, level: u32) -> Result<Self, LevelError> {
        let out_of_range = |max| LevelError {
            compression,
            level,
            max,
        };
        let native = match compression {
            Compression::Gzip if level > GZIP_MAX_LEVEL => {
                return Err(out_of_range(GZIP_MAX_LEVEL));
            }
            Compression::Gzip => level,
            Compression::Zstd => match level {
                0..=2 => 1,
                3..=5 => 3,
                6..=9 => 7,
                10..=ZSTD_MAX_LEVEL => 11,
                _ => return Err(out_of_range(ZSTD_MAX_LEVEL)),
            },
            Compression::Uncompressed => 0,
        };
        Ok(Self {
            compression,
            level: native,
        })
    }

    /// The compression.
    pub fn compression(self) -> Compression {
        self.compression
    }

    /// The compressor's own level (what [`Self::with_level`] mapped to).
    pub fn level(self) -> u32 {
        self.level
    }

    /// A name for the bytes this writes, for a memo of compressed blobs:
    /// the compression with its level and, for gzip, the writer's
    /// [`FORMAT`](super::gzip::FORMAT) (`gzip5m`, `zstd11`), or
    /// `uncompressed`; ASCII letters and digits. Entries of earlier gzip
    /// writers (a bare `gzip`, whose bytes varied from run to run, then
    /// `gzip5`, one zlib-rs member) are never read.
    pub fn variant_name(self) -> String {
        match self.compression {
            Compression::Uncompressed => self.compression.name().to_owned(),
            Compression::Gzip => format!("gzip{}{}", self.level, super::gzip::FORMAT),
            Compression::Zstd => format!("zstd{}", self.level),
        }
    }
}

impl From<Compression> for Codec {
    fn from(compression: Compression) -> Self {
        Self::pinned(compression)
    }
}

/// The identities of a layer written in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// SHA-256 of the uncompressed tar (what the image config lists).
    pub diff_id: Digest,
    /// SHA-256 of the blob as written (what the manifest lists).
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// The uncompressed layer tar read from a blob of `media_type`. The
/// compression comes from the media type, or from the first bytes where
/// the media type leaves it open.
pub fn decompress<'a, R: Read + Send + 'a>(
    reader: R,
    media_type: &str,
) -> Result<Box<dyn Read + Send + 'a>, LayerError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let compression = match Compression::from_media_type(media_type)? {
        Some(known) => known,
        None => {
            let head = reader.fill_buf().map_err(|source| LayerError::ReadTar {
                after: String::new(),
                source,
            })?;
            Compression::sniff(head)
        }
    };
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(
            |source| LayerError::ReadTar {
                after: String::new(),
                source,
            },
        )?),
        Compression::Uncompressed => Box::new(reader),
    })
}

/// A stream decompressed as its first bytes say: gzip, bzip2, xz, zstd,
/// or as is. What ADD and a tar build context accept, as Docker does.
pub fn decompress_sniffed<'a, R: Read + Send + 'a>(
    reader: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut reader = BufReader::new(reader);
    let head = reader.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(reader))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

/// How many bytes the producer hands over at a time, and how many such
/// chunks may wait: enough to keep both threads busy, little memory.
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Writes a layer to `out`: `produce` writes the uncompressed tar (on its
/// own thread) and the stream is compressed as `codec` says (a
/// [`Compression`] alone: at its pinned level). Returns `out` and the
/// layer's digests.
pub fn write_compressed<W, F>(
    out: W,
    codec: impl Into<Codec>,
    produce: F,
) -> Result<(W, LayerDigests), LayerError>
where
    W: Write,
    F: FnOnce(&mut dyn Write) -> Result<(), LayerError> + Send,
{
    let (sender, receiver) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut tar = HashingWriter::new(ChunkWriter::new(sender));
            produce(&mut tar)?;
            tar.flush().map_err(|source| LayerError::Write {
                action: "handing the tar to the compressor",
                source,
            })?;
            let (_, diff_id, _) = tar.finish();
            Ok::<_, LayerError>(diff_id)
        });
        let compressed = compress_chunks(receiver, out, codec.into());
        let produced = match producer.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // A compressor failure makes the producer fail too (broken pipe);
        // report the cause, not the echo.
        let (out, digest, size) = compressed?;
        let diff_id = produced?;
        Ok((
            out,
            LayerDigests {
                diff_id,
                digest,
                size,
            },
        ))
    })
}

/// Compresses the chunks as they arrive; the receiver is dropped on return,
/// which stops a producer still sending after an error here.
fn compress_chunks<W: Write>(
    chunks: Receiver<Vec<u8>>,
    out: W,
    codec: Codec,
) -> Result<(W, Digest, u64), LayerError> {
    let write_err = |source| LayerError::Write {
        action: "compressing",
        source,
    };
    let hashed = HashingWriter::new(out);
    let hashed = match codec.compression {
        Compression::Gzip => BlockGzip::pinned()
            .with_level(codec.level)
            .compress(chunks, hashed)
            .map_err(write_err)?,
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(
                hashed,
                i32::try_from(codec.level).unwrap_or(ZSTD_LEVEL),
            )
            .map_err(write_err)?;
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            encoder
                .multithread(u32::try_from(workers).unwrap_or(1))
                .map_err(write_err)?;
            for chunk in chunks {
                encoder.write_all(&chunk).map_err(write_err)?;
            }
            encoder.finish().map_err(write_err)?
        }
        Compression::Uncompressed => {
            let mut hashed = hashed;
            for chunk in chunks {
                hashed.write_all(&chunk).map_err(write_err)?;
            }
            hashed
        }
    };
    let (mut out, digest, size) = hashed.finish();
    out.flush().map_err(write_err)?;
    Ok((out, digest, size))
}

/// The producer's end of the bounded pipe: bytes are gathered into chunks
/// and sent; a full channel blocks the producer until the compressor catches up.
struct ChunkWriter {
    sender: SyncSender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn new(sender: SyncSender<Vec<u8>>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = buf.len().min(room);
        self.buffer
            .extend_from_slice(buf.get(..taken).unwrap_or(buf));
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
