//! The second phase of planning: a stage's steps, expanded with the
//! variables the stage has at each point. A stage starts from its base's
//! variables: an earlier stage's final ones, an image config's `Env` (known
//! only once the executor has pulled it), or nothing for `scratch`. So the
//! executor plans each stage when its base is known, without replanning the
//! rest.

use super::args::{
    ArgValue, EnvList, MAX_STAGE_RUN_VARIABLES_BYTES, MAX_VARIABLES_BYTES, StageEnv,
};
use super::error::{Error, ErrorKind};
use super::graph::{Base, Graph};
use super::mount::MountSpec;
use super::step::{
    AddStep, CommandLine, CopyFrom, CopySource, CopyStep, RunMount, RunStep, Step, StepKind,
};
use crate::dockerfile::ast::{Heredoc, Span, Word};
use crate::dockerfile::expand::Lexer;
use crate::dockerfile::instructions::{
    ArgDecl, Command, Instruction, InstructionKind, Pair, Source,
};
use crate::image::PlatformSpec;

/// What a stage starts from: its base's variables and platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageStart {
    env: StageEnv,
    platform: Option<PlatformSpec>,
    resolved: bool,
    /// The base image's ONBUILD triggers, as its config has them.
    triggers: Vec<String>,
}

impl StageStart {
    /// `FROM scratch`: no variables but the default `PATH`.
    pub fn scratch() -> StageStart {
        StageStart::image(&[])
    }

    /// An image whose config `Env` is `config_env` (`KEY=value` strings).
    pub fn image(config_env: &[String]) -> StageStart {
        StageStart {
            env: StageEnv::from_image(config_env),
            platform: None,
            resolved: true,
            triggers: Vec::new(),
        }
    }

    /// The same start with the base image's ONBUILD triggers (its config's
    /// `OnBuild`): each is planned as a one-instruction Dockerfile and runs
    /// before the stage's own steps, as BuildKit runs them.
    pub fn with_onbuild(self, triggers: &[String]) -> StageStart {
        StageStart {
            triggers: triggers.to_vec(),
            ..self
        }
    }

    /// An image whose config is not known (a dry run has no registry
    /// access): planned as if it set only `PATH`, and marked unresolved.
    pub fn unresolved_image() -> StageStart {
        StageStart {
            resolved: false,
            ..StageStart::scratch()
        }
    }
}

/// A stage with its steps expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// Its position in the file.
    pub index: usize,
    /// Its `AS` name, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// The platform it runs for: its base stage's, its `--platform`, or
    /// the target platform.
    pub platform: PlatformSpec,
    /// False when the base image's environment was not known at planning
    /// time (steps were expanded without it).
    pub base_env_resolved: bool,
    /// The steps (its base stage's ONBUILD triggers first).
    pub steps: Vec<Step>,
    /// The variables after the last step.
    pub env: StageEnv,
}

impl StagePlan {
    /// The variables visible after the last step (what a RUN there sees).
    pub fn final_env(&self) -> &EnvList {
        &self.env.env
    }

    /// The earlier stages its ONBUILD trigger steps copy or mount from: for
    /// a registry image's triggers, edges the graph could not know before
    /// the image was pulled.
    pub fn trigger_stages(&self) -> Vec<usize> {
        let mut stages: Vec<usize> = self
            .steps
            .iter()
            .filter(|s| s.onbuild)
            .flat_map(|s| match &s.kind {
                StepKind::Copy(CopyStep {
                    from: Some(from), ..
                }) => vec![&from.source],
                StepKind::Run(run) => run
                    .mounts
                    .iter()
                    .filter_map(|m| m.source.as_ref())
                    .collect(),
                _ => Vec::new(),
            })
            .filter_map(|source| match source {
                super::graph::Source::Stage(i) => Some(*i),
                super::graph::Source::Image(_) | super::graph::Source::Context(_) => None,
            })
            .collect();
        stages.sort_unstable();
        stages.dedup();
        stages
    }

    /// The start of a stage built on this one.
    pub fn as_base(&self) -> StageStart {
        StageStart {
            env: self.env.clone(),
            platform: Some(self.platform.clone()),
            resolved: self.base_env_resolved,
            // A stage's own ONBUILD instructions reach the stages built on
            // it through the graph (see `Graph::triggers`).
            triggers: Vec::new(),
        }
    }
}

impl Graph {
    /// Plans stage `index` from `start` (which must match its base: the
    /// base stage's [`StagePlan::as_base`], the pulled image's env, or
    /// [`StageStart::scratch`]).
    pub fn plan_stage(&self, index: usize, start: StageStart) -> Result<StagePlan, Error> {
        let (Some(node), Some(stage)) =
            (self.stages().get(index), self.dockerfile.stages.get(index))
        else {
            return Err(Error::unlocated(
                ErrorKind::InvalidStageIndex(i64::try_from(index).unwrap_or(i64::MAX)),
                &self.source,
            ));
        };
        let platform = start
            .platform
            .or_else(|| node.platform.clone())
            .unwrap_or_else(|| self.platforms.target.clone());
        let mut planner = StagePlanner {
            graph: self,
            index,
            env: start.env,
            run_bytes: 0,
        };
        let image_triggers = self.image_triggers(stage, &start.triggers)?;
        let triggers: Vec<&Instruction> = if start.triggers.is_empty() {
            self.triggers(index).collect()
        } else {
            image_triggers.iter().collect()
        };
        let triggers = triggers.into_iter().map(|i| (i, true));
        let own = stage.instructions.iter().map(|i| (i, false));
        let mut steps = Vec::new();
        for (instruction, onbuild) in triggers.chain(own) {
            steps.push(Step {
                kind: planner.step(instruction)?,
                span: instruction.span,
                original: instruction.original.clone(),
                onbuild,
            });
        }
        Ok(StagePlan {
            index,
            name: node.name.clone(),
            base: node.base.clone(),
            platform,
            base_env_resolved: start.resolved,
            steps,
            env: planner.env,
        })
    }

    /// The base image's ONBUILD `triggers` as instructions, each parsed as
    /// a one-instruction Dockerfile (with the checks an ONBUILD line gets:
    /// no FROM, MAINTAINER or nested ONBUILD), located at the stage's FROM.
    fn image_triggers(
        &self,
        stage: &crate::dockerfile::instructions::Stage,
        triggers: &[String],
    ) -> Result<Vec<Instruction>, Error> {
        triggers
            .iter()
            .map(|trigger| {
                let invalid = |reason: String| {
                    self.source.error(
                        ErrorKind::InvalidImageTrigger {
                            trigger: trigger.clone(),
                            reason,
                        },
                        stage.span,
                    )
                };
                let text = format!("FROM scratch\nONBUILD {trigger}\n");
                let file = crate::dockerfile::load("ONBUILD", text.as_bytes())
                    .map_err(|e| invalid(e.to_string()))?;
                let instructions = match file.stages.as_slice() {
                    [only] => only.instructions.as_slice(),
                    _ => &[],
                };
                match instructions {
                    [
                        Instruction {
                            kind: InstructionKind::Onbuild(inner),
                            ..
                        },
                    ] => Ok(Instruction {
                        span: stage.span,
                        ..inner.as_ref().clone()
                    }),
                    _ => Err(invalid("it is not a single instruction".to_owned())),
                }
            })
            .collect()
    }

    /// Plans the stages `indexes` (in file order, each stage's base stage
    /// among them or before), taking an image base's config `Env` from
    /// `image_env` (`None`: not known, planned unresolved).
    pub fn plan_stages(
        &self,
        indexes: &[usize],
        image_env: &mut dyn FnMut(&crate::image::Reference) -> Option<Vec<String>>,
    ) -> Result<Vec<StagePlan>, Error> {
        let mut plans: Vec<StagePlan> = Vec::new();
        for &index in indexes {
            let Some(node) = self.stages().get(index) else {
                continue;
            };
            let start = match &node.base {
                Base::Scratch | Base::Context(_) => StageStart::scratch(),
                Base::Image(reference) => match image_env(reference) {
                    Some(env) => StageStart::image(&env),
                    None => StageStart::unresolved_image(),
                },
                Base::Stage(b) => match plans.iter().find(|p| p.index == *b) {
                    Some(base) => base.as_base(),
                    None => StageStart::unresolved_image(),
                },
            };
            plans.push(self.plan_stage(index, start)?);
        }
        Ok(plans)
    }
}

/// Expands one stage's instructions in order, tracking its variables.
struct StagePlanner<'a> {
    graph: &'a Graph,
    index: usize,
    env: StageEnv,
    /// The bytes of variables the RUN steps planned so far hold.
    run_bytes: usize,
}

impl StagePlanner<'_> {
    fn lexer(&self) -> &Lexer {
        &self.graph.lexer
    }

    /// `word` expanded with the stage's variables.
    fn word(&self, word: &Word) -> Result<String, Error> {
        self.text(&word.value, word.span)
    }

    fn text(&self, text: &str, span: Span) -> Result<String, Error> {
        self.lexer()
            .expand_word(text, &self.env.env)
            .map_err(|e| self.graph.source.error(e, span))
    }

    fn words(&self, words: &[Word]) -> Result<Vec<String>, Error> {
        words.iter().map(|w| self.word(w)).collect()
    }

    fn optional(&self, word: Option<&Word>) -> Result<Option<String>, Error> {
        word.map(|w| self.word(w)).transpose()
    }

    fn pairs(&self, pairs: &[Pair]) -> Result<Vec<(String, String)>, Error> {
        pairs
            .iter()
            .map(|p| Ok((self.word(&p.key)?, self.word(&p.value)?)))
            .collect()
    }

    /// Refuses variables grown past [`MAX_VARIABLES_BYTES`] by the
    /// instruction at `span`.
    fn check_variables(&self, span: Span) -> Result<(), Error> {
        let bytes = self.env.env.bytes();
        if bytes > MAX_VARIABLES_BYTES {
            return Err(self
                .graph
                .source
                .error(ErrorKind::TooManyVariableBytes { bytes }, span));
        }
        Ok(())
    }

    /// Counts the variables a RUN step at `span` keeps against
    /// [`MAX_STAGE_RUN_VARIABLES_BYTES`].
    fn hold_run_variables(&mut self, span: Span) -> Result<(), Error> {
        let step_bytes = self.env.run_bytes();
        self.run_bytes = self.run_bytes.saturating_add(step_bytes);
        if self.run_bytes > MAX_STAGE_RUN_VARIABLES_BYTES {
            return Err(self
                .graph
                .source
                .error(ErrorKind::TooManyRunVariableBytes { step_bytes }, span));
        }
        Ok(())
    }

    /// The step of one instruction; ENV and ARG change the variables for
    /// the instructions after them.
    fn step(&mut self, instruction: &Instruction) -> Result<StepKind, Error> {
        if matches!(instruction.kind, InstructionKind::Run(_)) {
            self.hold_run_variables(instruction.span)?;
        }
        Ok(match &instruction.kind {
            InstructionKind::Run(run) => StepKind::Run(RunStep {
                command: command_line(&run.command),
                heredocs: run.heredocs.clone(),
                mounts: run
                    .mounts
                    .iter()
                    .map(|m| self.mount(m))
                    .collect::<Result<_, _>>()?,
                network: run.network,
                security: run.security,
                env: self.env.env.clone(),
                args: self.env.args.clone(),
                proxy_env: self.graph.build_args.proxy_env(),
            }),
            InstructionKind::Copy(copy) => StepKind::Copy(CopyStep {
                sources: self.sources(&copy.sources)?,
                dest: self.word(&copy.dest)?,
                from: match &copy.from {
                    Some(from) => Some(CopyFrom {
                        written: from.value.clone(),
                        source: self.graph.copy_source(self.index, from)?,
                    }),
                    None => None,
                },
                chown: self.optional(copy.chown.as_ref())?,
                chmod: self.optional(copy.chmod.as_ref())?,
                link: copy.link,
                parents: copy.parents,
                exclude: self.words(&copy.exclude)?,
            }),
            InstructionKind::Add(add) => StepKind::Add(AddStep {
                sources: self.sources(&add.sources)?,
                dest: self.word(&add.dest)?,
                chown: self.optional(add.chown.as_ref())?,
                chmod: self.optional(add.chmod.as_ref())?,
                link: add.link,
                checksum: self.optional(add.checksum.as_ref())?,
                keep_git_dir: add.keep_git_dir,
                exclude: self.words(&add.exclude)?,
                unpack: add.unpack,
            }),
            InstructionKind::Env(pairs) => {
                // Every pair sees the variables from before the
                // instruction: `ENV a=1 b=$a` takes the old `a`.
                let pairs = self.pairs(pairs)?;
                for (k, v) in &pairs {
                    self.env.set_env(k, v);
                }
                self.check_variables(instruction.span)?;
                StepKind::Env(pairs)
            }
            InstructionKind::Label(pairs) => StepKind::Label(self.pairs(pairs)?),
            InstructionKind::Arg(decls) => {
                let mut values = Vec::new();
                for decl in decls {
                    let arg = self.arg(decl)?;
                    self.env.declare_arg(arg.clone());
                    values.push(arg);
                }
                self.check_variables(instruction.span)?;
                StepKind::Arg(values)
            }
            InstructionKind::Expose(ports) => StepKind::Expose(self.words(ports)?),
            InstructionKind::Volume(paths) => {
                let paths = self.words(paths)?;
                if paths.iter().any(String::is_empty) {
                    return Err(self
                        .graph
                        .source
                        .error(ErrorKind::EmptyVolume, instruction.span));
                }
                StepKind::Volume(paths)
            }
            InstructionKind::User(user) => StepKind::User(self.word(user)?),
            InstructionKind::Workdir(dir) => StepKind::Workdir(self.word(dir)?),
            InstructionKind::StopSignal(signal) => StepKind::StopSignal(self.word(signal)?),
            InstructionKind::Maintainer(name) => StepKind::Maintainer(name.value.clone()),
            InstructionKind::Cmd(command) => StepKind::Cmd(command.as_ref().map(command_line)),
            InstructionKind::Entrypoint(command) => {
                StepKind::Entrypoint(command.as_ref().map(command_line))
            }
            InstructionKind::Healthcheck(check) => StepKind::Healthcheck(check.clone()),
            InstructionKind::Shell(words) => {
                StepKind::Shell(words.iter().map(|w| w.value.clone()).collect())
            }
            InstructionKind::Onbuild(inner) => StepKind::Onbuild(inner.original.clone()),
        })
    }

    /// An ARG declaration's value: `--build-arg`, else the default expanded
    /// now, else (for a bare name) the global value, else none.
    fn arg(&self, decl: &ArgDecl) -> Result<ArgValue, Error> {
        let name = &decl.name.value;
        let value = match (self.graph.build_args.get(name), &decl.default) {
            (Some(v), _) => Some(v.to_owned()),
            (None, Some(default)) => Some(self.text(&default.value, decl.name.span)?),
            (None, None) => self.graph.global_args.get(name).map(str::to_owned),
        };
        Ok(ArgValue {
            name: name.clone(),
            value,
        })
    }

    /// A `--mount` with its field values expanded and its source resolved.
    fn mount(&self, mount: &Word) -> Result<RunMount, Error> {
        let source = self.graph.mount_source(self.index, mount)?;
        let mut spec = MountSpec::parse(&mount.value)
            .map_err(|e| self.graph.source.error(ErrorKind::MountCsv(e), mount.span))?;
        for field in &mut spec.fields {
            if let Some(value) = &field.value {
                field.value = Some(self.text(value, mount.span)?);
            }
        }
        let mount = super::run_mount::Mount::from_spec(&spec)
            .map_err(|e| self.graph.source.error(e, mount.span))?;
        Ok(RunMount {
            spec,
            mount,
            source,
        })
    }

    /// COPY/ADD sources: paths expanded; heredoc bodies expanded (with `\`
    /// as escape and quotes kept, as BuildKit does) unless the delimiter
    /// was quoted.
    fn sources(&self, sources: &[Source]) -> Result<Vec<CopySource>, Error> {
        sources
            .iter()
            .map(|source| match source {
                Source::Path(word) => Ok(CopySource::Path(self.word(word)?)),
                Source::Heredoc(doc) => Ok(CopySource::Inline {
                    name: doc.name.clone(),
                    content: self.heredoc(doc)?,
                }),
            })
            .collect()
    }

    fn heredoc(&self, doc: &Heredoc) -> Result<String, Error> {
        if !doc.expand {
            return Ok(doc.body());
        }
        let expanded = Lexer::new('\\')
            .skip_process_quotes(true)
            .expand_word(&doc.content, &self.env.env)
            .map_err(|e| self.graph.source.error(e, doc.span))?;
        Ok(Heredoc {
            content: expanded,
            ..doc.clone()
        }
        .body())
    }
}

fn command_line(command: &Command) -> CommandLine {
    match command {
        Command::Exec(words) => CommandLine::Exec(words.iter().map(|w| w.value.clone()).collect()),
        Command::Shell(word) => CommandLine::Shell(word.value.clone()),
    }
}
