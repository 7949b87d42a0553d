//! Failures located in the Dockerfile — a step, or a FROM whose image
//! could not be had — as reports a user can act on: the instruction's
//! lines with a marker, the cause, and what helps next (the last lines a
//! failed RUN printed, how to log in to a registry that refused us).

use super::error::{BaseError, StepError};
use crate::dockerfile::ast::Span;
use crate::dockerfile::excerpt::Excerpt;
use crate::plan::SourceFile;
use miette::{Diagnostic, LabeledSpan, SourceCode, SourceSpan};
use std::fmt::Display;

/// Where in the Dockerfile: `FILE:LINE` for the message, and the text
/// with the instruction's span for the report's snippet.
#[derive(Debug, Clone)]
pub struct Site {
    location: String,
    text: Excerpt,
    span: SourceSpan,
}

impl Site {
    /// The instruction at `span` of `file` (a long one, such as a
    /// here-document script, is marked on its first line only).
    pub(crate) fn new(file: &SourceFile, span: Span) -> Self {
        let location = format!("{}:{}", file.file, span.start.line);
        let (text, span) = Excerpt::new(&file.file, &file.text, span.start.offset, span.end.offset);
        Self {
            location,
            text,
            span,
        }
    }

    /// `FILE:LINE` of the instruction.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn labels(&self, label: &str) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = LabeledSpan::new_with_span(Some(label.to_owned()), self.span);
        Some(Box::new(std::iter::once(label)))
    }
}

/// A step that failed: which (`[stage i/n] INSTRUCTION`), where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {step}", site.location)]
pub struct StepFailure {
    site: Site,
    step: String,
    source: StepError,
}

impl StepFailure {
    /// Step `step` (as progress shows it) at `site` failed because of `source`.
    pub(crate) fn new(site: Site, step: String, source: StepError) -> Self {
        Self { site, step, source }
    }

    /// Where in the Dockerfile.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The step as progress shows it: `[stage i/n] INSTRUCTION`.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// Why it failed.
    pub fn error(&self) -> &StepError {
        &self.source
    }
}

impl Diagnostic for StepFailure {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.site.text)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.site.labels("this step failed")
    }

    /// A failed RUN's last lines of output, or how to get at an image
    /// `COPY --from` names.
    fn help<'a>(&'a self) -> Option<Box<dyn Display + 'a>> {
        match &self.source {
            StepError::Exec(e) => e.output().map(|o| Box::new(o) as Box<dyn Display>),
            StepError::FromImage { source, .. } => base_help(source),
            _ => None,
        }
    }
}

/// A FROM whose image could not be had.
#[derive(Debug, thiserror::Error)]
#[error("{}: FROM {reference}", site.location)]
pub struct BaseFailure {
    site: Site,
    reference: String,
    source: BaseError,
}

impl BaseFailure {
    /// The FROM at `site` naming `reference` failed because of `source`.
    pub(crate) fn new(site: Site, reference: String, source: BaseError) -> Self {
        Self {
            site,
            reference,
            source,
        }
    }

    /// Where in the Dockerfile.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The image as the FROM names it (after expansion).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Why it could not be had.
    pub fn error(&self) -> &BaseError {
        &self.source
    }
}

impl Diagnostic for BaseFailure {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.site.text)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.site.labels("this image")
    }

    fn help<'a>(&'a self) -> Option<Box<dyn Display + 'a>> {
        base_help(&self.source)
    }
}

/// What the registry error behind a missing image suggests (`builder
/// login HOST` after a 401).
fn base_help(error: &BaseError) -> Option<Box<dyn Display + '_>> {
    match error {
        BaseError::Registry(e) => e.help(),
        _ => None,
    }
}
