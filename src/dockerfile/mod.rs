//! The Dockerfile front end: text → syntax tree ([`parse`]) → typed
//! instructions ([`instructions::lower`]), plus shell-word expansion
//! ([`expand`]) that the plan module applies later. Nothing here touches the
//! file system.
//!
//! The grammar the parser follows is `grammar/dockerfile.md`; the parser
//! reproduces BuildKit's, so a file means here what it means to
//! `docker build`.

pub mod ast;
pub mod directives;
pub mod dump;
mod duration;
pub mod error;
pub mod excerpt;
pub mod expand;
pub mod heredoc;
pub mod instructions;
mod json;
pub mod parser;
mod source;

pub use ast::SyntaxTree;
pub use error::{Error, ErrorKind};
pub use instructions::{Dockerfile, load, lower};
pub use parser::{parse, parse_bytes, read_bounded};
