//! The first phase of planning: the structure of a build. Stages with their
//! bases resolved (FROM expanded with the global args), the edges
//! `COPY --from` and `RUN --mount=from=` add, the stages a `--target` needs,
//! and which of them can run side by side.
//!
//! Nothing here depends on a base image's configuration, so the structure
//! is known before anything is pulled; the steps of each stage are expanded
//! afterwards (see [`Graph::plan_stage`](super::Graph::plan_stage)).

use super::args::{BuildArgs, EnvList, is_proxy_arg};
use super::error::{Error, ErrorKind, SourceFile};
use super::mount::MountSpec;
use super::platform::{PREDEFINED_ARGS, Platforms};
use crate::dockerfile::ast::{Span, Word};
use crate::dockerfile::expand::Lexer;
use crate::dockerfile::instructions::{Dockerfile, Instruction, InstructionKind};
use crate::image::{PlatformSpec, Reference};
use std::collections::BTreeMap;

/// What a build is asked to do, beyond the Dockerfile itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--build-arg` values.
    pub build_args: BuildArgs,
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// The build and target platforms.
    pub platforms: Platforms,
    /// `--build-context`: named contexts by (lower-case) name.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

/// What a `--build-context` name stands for, to the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, given to the build by name.
    Local,
    /// `docker-image://REF`: this image wherever the name is used.
    Image(Reference),
}

/// Where a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty file system.
    Scratch,
    /// An image from a registry (its config is known only once pulled).
    Image(Reference),
    /// An earlier stage of the same file, by index.
    Stage(usize),
    /// A named local context (`--build-context NAME=DIR`): its files are
    /// the stage's root filesystem.
    Context(String),
}

/// Where files come from for `COPY --from` or `RUN --mount=from=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image that is not a stage.
    Image(Reference),
    /// A named local context (`--build-context NAME=DIR`), by name.
    Context(String),
}

/// How a stage uses another stage or an image besides its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `COPY --from=…`
    CopyFrom,
    /// `RUN --mount=…,from=…`
    RunMount,
}

/// An edge of the graph: a stage needs `source` for one of its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// What is needed.
    pub source: Source,
    /// Which kind of step needs it.
    pub via: Via,
    /// The step's location (for an ONBUILD trigger, the trigger's in the
    /// base stage).
    pub span: Span,
}

/// One stage of the graph, before its steps are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    /// Its position in the file (what `COPY --from=<n>` counts).
    pub index: usize,
    /// Its `AS` name, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// `FROM --platform=…`, expanded and parsed.
    pub platform: Option<PlatformSpec>,
    /// What its steps (and its base stage's ONBUILD triggers) need.
    pub deps: Vec<Dependency>,
    /// The FROM line.
    pub span: Span,
}

impl StageNode {
    /// The stages this one needs to have run first: its base stage and
    /// the stages it copies or mounts from, each once, in index order.
    pub fn stage_deps(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .deps
            .iter()
            .filter_map(|d| match d.source {
                Source::Stage(i) => Some(i),
                Source::Image(_) | Source::Context(_) => None,
            })
            .chain(match self.base {
                Base::Stage(i) => Some(i),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Why a stage is not part of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The target neither builds on it nor copies or mounts from it.
    NotNeededBy {
        /// The target stage's index.
        target: usize,
    },
}

/// The structure of a build: stages, edges and the target.
#[derive(Debug, Clone)]
pub struct Graph {
    pub(crate) source: SourceFile,
    pub(crate) dockerfile: Dockerfile,
    pub(crate) lexer: Lexer,
    pub(crate) platforms: Platforms,
    pub(crate) build_args: BuildArgs,
    pub(crate) global_args: EnvList,
    named_contexts: BTreeMap<String, NamedContext>,
    stages: Vec<StageNode>,
    target: usize,
    warnings: Vec<String>,
}

impl Graph {
    /// Builds the graph of `dockerfile` (whose text is `source`).
    pub fn new(
        source: SourceFile,
        dockerfile: Dockerfile,
        options: Options,
    ) -> Result<Graph, Error> {
        let lexer = Lexer::new(dockerfile.directives.escape_char.as_char());
        let default_target = dockerfile
            .stages
            .last()
            .and_then(|s| s.from.name.as_ref())
            .map_or("", |w| w.value.as_str());
        let target_stage = options.target.as_deref().unwrap_or(default_target);
        let global_args = global_args(&source, &lexer, &dockerfile, &options, target_stage)?;
        let mut graph = Graph {
            source,
            dockerfile,
            lexer,
            platforms: options.platforms,
            build_args: options.build_args,
            global_args,
            named_contexts: options.named_contexts,
            stages: Vec::new(),
            target: 0,
            warnings: Vec::new(),
        };
        for index in 0..graph.dockerfile.stages.len() {
            let node = graph.stage_node(index)?;
            graph.stages.push(node);
        }
        for index in 0..graph.stages.len() {
            let deps = graph.stage_deps(index)?;
            if let Some(node) = graph.stages.get_mut(index) {
                node.deps = deps;
            }
        }
        graph.target = graph.resolve_target(options.target.as_deref())?;
        Ok(graph)
    }

    /// The stages, in file order.
    pub fn stages(&self) -> &[StageNode] {
        &self.stages
    }

    /// The index of the stage being built.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The global scope after the ARGs before the first FROM: predefined
    /// platform args, defaults and `--build-arg` values.
    pub fn global_args(&self) -> &EnvList {
        &self.global_args
    }

    /// The build and target platforms.
    pub fn platforms(&self) -> &Platforms {
        &self.platforms
    }

    /// The Dockerfile's name and text.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// Findings that do not stop the build (a FROM naming a stage defined
    /// later, which BuildKit takes as an image name).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How a stage is called in progress output: its name, `stage-<n>`
    /// without one, or nothing when the file has one stage (as BuildKit
    /// prints them).
    pub fn display_name(&self, index: usize) -> String {
        if self.stages.len() == 1 {
            String::new()
        } else {
            self.label(index)
        }
    }

    /// A stage's name, or `stage-<n>` without one (as errors name stages).
    pub fn label(&self, index: usize) -> String {
        match self.stages.get(index).and_then(|s| s.name.as_deref()) {
            Some(name) => name.to_owned(),
            None => format!("stage-{index}"),
        }
    }

    /// Which stages the target needs (itself included), by index.
    pub fn needed(&self) -> Vec<bool> {
        let mut needed = vec![false; self.stages.len()];
        let mut todo = vec![self.target];
        while let Some(i) = todo.pop() {
            match needed.get_mut(i) {
                Some(n) if !*n => *n = true,
                _ => continue,
            }
            if let Some(node) = self.stages.get(i) {
                todo.extend(node.stage_deps());
            }
        }
        needed
    }

    /// The indexes of the stages the target needs, in order.
    pub fn needed_stages(&self) -> Vec<usize> {
        self.needed()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.then_some(i))
            .collect()
    }

    /// The stages left out of the build, and why.
    pub fn skipped(&self) -> Vec<(usize, SkipReason)> {
        self.needed()
            .iter()
            .enumerate()
            .filter(|(_, n)| !**n)
            .map(|(i, _)| {
                (
                    i,
                    SkipReason::NotNeededBy {
                        target: self.target,
                    },
                )
            })
            .collect()
    }

    /// The needed stages in groups that can run side by side: every stage
    /// of a group depends only on stages of earlier groups.
    pub fn parallel_groups(&self) -> Vec<Vec<usize>> {
        let needed = self.needed();
        // Stages only depend on earlier ones, so one pass in file order
        // sees every dependency's level before it is needed.
        let mut level = vec![0usize; self.stages.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, node) in self.stages.iter().enumerate() {
            if !needed.get(i).copied().unwrap_or(false) {
                continue;
            }
            let l = node
                .stage_deps()
                .iter()
                .filter_map(|&d| level.get(d).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            if let Some(slot) = level.get_mut(i) {
                *slot = l;
            }
            if groups.len() <= l {
                groups.resize_with(l + 1, Vec::new);
            }
            if let Some(group) = groups.get_mut(l) {
                group.push(i);
            }
        }
        groups
    }

    /// The `--build-arg` names no needed stage or global ARG declares (the
    /// predefined platform args and proxy args always count as used), for
    /// docker's "were not consumed" warning.
    pub fn unused_build_args(&self) -> Vec<String> {
        let needed = self.needed();
        let mut declared: Vec<&str> = self
            .dockerfile
            .meta_args
            .iter()
            .flat_map(|a| &a.args)
            .map(|d| d.name.value.as_str())
            .collect();
        for (i, stage) in self.dockerfile.stages.iter().enumerate() {
            if !needed.get(i).copied().unwrap_or(false) {
                continue;
            }
            let triggers = self.triggers(i);
            for instruction in stage.instructions.iter().chain(triggers) {
                if let InstructionKind::Arg(decls) = &instruction.kind {
                    declared.extend(decls.iter().map(|d| d.name.value.as_str()));
                }
            }
        }
        let mut unused: Vec<String> = self
            .build_args
            .names()
            .filter(|n| !declared.contains(n) && !PREDEFINED_ARGS.contains(n) && !is_proxy_arg(n))
            .map(str::to_owned)
            .collect();
        unused.sort();
        unused
    }

    /// The ONBUILD triggers a stage runs first: those of its base stage.
    pub(crate) fn triggers(&self, index: usize) -> impl Iterator<Item = &Instruction> {
        let base = match self.stages.get(index).map(|s| &s.base) {
            Some(Base::Stage(b)) => self.dockerfile.stages.get(*b),
            _ => None,
        };
        base.into_iter()
            .flat_map(|s| &s.instructions)
            .filter_map(|i| match &i.kind {
                InstructionKind::Onbuild(inner) => Some(inner.as_ref()),
                _ => None,
            })
    }

    /// The stage named `name` (any case), if any.
    fn find_by_name(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.dockerfile
            .stages
            .iter()
            .position(|s| s.from.name.as_ref().is_some_and(|n| n.value == name))
    }

    /// Resolves the FROM line of stage `index`.
    fn stage_node(&mut self, index: usize) -> Result<StageNode, Error> {
        let Some(stage) = self.dockerfile.stages.get(index) else {
            return Err(Error::unlocated(
                ErrorKind::InvalidStageIndex(index as i64),
                &self.source,
            ));
        };
        let image = &stage.from.image;
        let name = self
            .lexer
            .expand_word(&image.value, &self.global_args)
            .map_err(|e| self.source.error(e, image.span))?;
        if name.is_empty() {
            return Err(self
                .source
                .error(ErrorKind::BlankBaseName(image.value.clone()), image.span));
        }
        let platform = match &stage.from.platform {
            Some(flag) => Some(self.platform_flag(flag)?),
            None => None,
        };
        // A named context takes the place of a stage of the same name.
        let named = self.named_contexts.get(&name.to_lowercase());
        let earlier = self.find_by_name(&name).filter(|&i| i < index);
        let base = match (named, earlier) {
            (Some(NamedContext::Local), _) => Base::Context(name.to_lowercase()),
            (Some(NamedContext::Image(reference)), _) => Base::Image(reference.clone()),
            (None, Some(i)) => Base::Stage(i),
            (None, None) if name == "scratch" => Base::Scratch,
            (None, None) => {
                if let Some(later) = self.find_by_name(&name) {
                    let line = self
                        .dockerfile
                        .stages
                        .get(later)
                        .map_or(0, |s| s.span.start.line);
                    self.warnings.push(format!(
                        "{}:{}: FROM {name}: a stage of that name is defined later (line {line}); \
                         FROM only builds on earlier stages, so this is the image {name}",
                        self.source.file, stage.span.start.line
                    ));
                }
                Base::Image(self.reference(&name, image.span)?)
            }
        };
        Ok(StageNode {
            index,
            name: stage.from.name.as_ref().map(|w| w.value.clone()),
            base,
            platform,
            deps: Vec::new(),
            span: stage.span,
        })
    }

    /// `FROM --platform=…`, expanded with the global args.
    fn platform_flag(&self, flag: &Word) -> Result<PlatformSpec, Error> {
        let value = self
            .lexer
            .expand_word(&flag.value, &self.global_args)
            .map_err(|e| self.source.error(e, flag.span))?;
        if value.is_empty() {
            return Err(self
                .source
                .error(ErrorKind::EmptyPlatform(flag.value.clone()), flag.span));
        }
        PlatformSpec::parse(&value).map_err(|source| {
            self.source.error(
                ErrorKind::InvalidPlatform {
                    expression: flag.value.clone(),
                    source,
                },
                flag.span,
            )
        })
    }

    /// An image name as a reference, or the error BuildKit gives.
    fn reference(&self, name: &str, span: Span) -> Result<Reference, Error> {
        Reference::parse(name).map_err(|source| {
            self.source.error(
                ErrorKind::InvalidBaseName {
                    name: name.to_owned(),
                    source,
                },
                span,
            )
        })
    }

    /// The edges of stage `index`: from its base stage's ONBUILD triggers,
    /// then from its own instructions.
    fn stage_deps(&self, index: usize) -> Result<Vec<Dependency>, Error> {
        let own = self
            .dockerfile
            .stages
            .get(index)
            .into_iter()
            .flat_map(|s| &s.instructions);
        let mut deps = Vec::new();
        for instruction in self.triggers(index).chain(own) {
            match &instruction.kind {
                InstructionKind::Copy(copy) => {
                    if let Some(from) = &copy.from {
                        deps.push(Dependency {
                            source: self.copy_source(index, from)?,
                            via: Via::CopyFrom,
                            span: instruction.span,
                        });
                    }
                }
                InstructionKind::Run(run) => {
                    for mount in &run.mounts {
                        if let Some(source) = self.mount_source(index, mount)? {
                            deps.push(Dependency {
                                source,
                                via: Via::RunMount,
                                span: instruction.span,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(deps)
    }

    /// `COPY --from=<name|index|image>` of stage `index`.
    pub(crate) fn copy_source(&self, index: usize, from: &Word) -> Result<Source, Error> {
        let error = |kind: ErrorKind| self.source.error(kind, from.span);
        let literal = self
            .lexer
            .expand_word(&from.value, &EnvList::default())
            .map_err(|e| error(e.into()))?;
        if literal != from.value {
            return Err(error(ErrorKind::CopyFromExpansion));
        }
        let stage = match go_atoi(&from.value) {
            Some(n) => match usize::try_from(n).ok().filter(|&i| i < self.stages.len()) {
                Some(i) => Some(i),
                None => return Err(error(ErrorKind::InvalidStageIndex(n))),
            },
            None => match self.named_source(&from.value) {
                Some(named) => return Ok(named),
                None => self.find_by_name(&from.value),
            },
        };
        match stage {
            Some(i) if i == index => Err(error(ErrorKind::CircularDependency(self.label(index)))),
            Some(i) if i > index => Err(error(ErrorKind::CopyFromLaterStage {
                from: from.value.clone(),
                stage: self.label(index),
            })),
            Some(i) => Ok(Source::Stage(i)),
            None => Ok(Source::Image(self.reference(&from.value, from.span)?)),
        }
    }

    /// The `from=` of a `RUN --mount` of stage `index`, if it names one.
    pub(crate) fn mount_source(&self, index: usize, mount: &Word) -> Result<Option<Source>, Error> {
        let error = |kind: ErrorKind| self.source.error(kind, mount.span);
        let spec = MountSpec::parse(&mount.value).map_err(|e| error(ErrorKind::MountCsv(e)))?;
        let Some(from) = spec.from().filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        // BuildKit refuses anything its regexp `\$.` matches.
        let dollar_then_char = from.char_indices().any(|(i, c)| {
            c == '$'
                && from
                    .get(i + 1..)
                    .and_then(|r| r.chars().next())
                    .is_some_and(|n| n != '\n')
        });
        if dollar_then_char {
            return Err(error(ErrorKind::MountFromExpansion));
        }
        if let Some(named) = self.named_source(from) {
            return Ok(Some(named));
        }
        match self.find_by_name(from) {
            Some(i) if i == index => Err(error(ErrorKind::CircularDependency(self.label(index)))),
            Some(i) if i > index => Err(error(ErrorKind::MountFromLaterStage {
                from: from.to_owned(),
                stage: self.label(index),
            })),
            Some(i) => Ok(Some(Source::Stage(i))),
            None => Ok(Some(Source::Image(self.reference(from, mount.span)?))),
        }
    }

    /// What a `--from` name means when it is a `--build-context` (which
    /// takes the place of a stage of the same name, as in BuildKit).
    fn named_source(&self, name: &str) -> Option<Source> {
        let lower = name.to_lowercase();
        match self.named_contexts.get(&lower)? {
            NamedContext::Local => Some(Source::Context(lower)),
            NamedContext::Image(reference) => Some(Source::Image(reference.clone())),
        }
    }

    /// The stage `--target` names (any case), or the last stage.
    fn resolve_target(&self, target: Option<&str>) -> Result<usize, Error> {
        let Some(target) = target else {
            return Ok(self.stages.len().saturating_sub(1));
        };
        if let Some(i) = self.find_by_name(target) {
            return Ok(i);
        }
        let names: Vec<&str> = self
            .stages
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect();
        let error = Error::unlocated(ErrorKind::TargetNotFound(target.to_owned()), &self.source);
        let help = match suggest(target, &names) {
            Some(near) => format!("did you mean {near}?"),
            None if names.is_empty() => "the Dockerfile names no stages (FROM … AS name)".into(),
            None => format!("the stages are: {}", names.join(", ")),
        };
        Err(error.with_help(help))
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits, in range.
fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The option nearest to `value` (case-insensitive edit distance), when
/// near enough to be a likely misspelling, as BuildKit suggests names.
fn suggest<'a>(value: &str, options: &[&'a str]) -> Option<&'a str> {
    let value = value.to_lowercase();
    let (distance, best) = options
        .iter()
        .map(|o| (edit_distance(&value, &o.to_lowercase()), *o))
        .min_by_key(|(d, _)| *d)?;
    let limit = (value.chars().count() / 2).max(1);
    (distance <= limit).then_some(best)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            let (left, up) = (
                row.get(j).copied().unwrap_or(0),
                row.get(j + 1).copied().unwrap_or(0),
            );
            diagonal = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = substitution.min(left + 1).min(up + 1);
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The global scope: predefined args (`--build-arg` may override them),
/// then each ARG before the first FROM.
fn global_args(
    source: &SourceFile,
    lexer: &Lexer,
    dockerfile: &Dockerfile,
    options: &Options,
    target_stage: &str,
) -> Result<EnvList, Error> {
    let mut args = EnvList::default();
    for (k, v) in options.platforms.predefined_args(target_stage).iter() {
        args.set(k, options.build_args.get(k).unwrap_or(v));
    }
    for instruction in &dockerfile.meta_args {
        for decl in &instruction.args {
            let name = &decl.name.value;
            let value = match (options.build_args.get(name), &decl.default) {
                (Some(v), _) => Some(v.to_owned()),
                (None, Some(default)) => Some(
                    lexer
                        .expand_word(&default.value, &args)
                        .map_err(|e| source.error(e, decl.name.span))?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                args.set(name, &v);
            }
        }
        let bytes = args.bytes();
        if bytes > super::args::MAX_VARIABLES_BYTES {
            return Err(source.error(ErrorKind::TooManyVariableBytes { bytes }, instruction.span));
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi("2"), Some(2));
        assert_eq!(go_atoi("+2"), Some(2));
        assert_eq!(go_atoi("-1"), Some(-1));
        assert_eq!(go_atoi("007"), Some(7));
        assert_eq!(go_atoi("2a"), None);
        assert_eq!(go_atoi(""), None);
        assert_eq!(go_atoi("99999999999999999999"), None);
    }

    #[test]
    fn suggestions_are_near_names() {
        assert_eq!(suggest("buidler", &["builder", "runtime"]), Some("builder"));
        assert_eq!(suggest("RUNTIME", &["builder", "runtime"]), Some("runtime"));
        assert_eq!(suggest("xyz", &["builder", "runtime"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
