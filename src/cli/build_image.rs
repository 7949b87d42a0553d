//! `builder build` without `--dry-run`: parses the flags, runs the build,
//! has the solver deliver it (names, `-o` outputs, pushes, `--cache-to`;
//! see [`crate::solver::deliver`]), and writes `--iidfile` and
//! `--metadata-file` as docker buildx does.
//!
//! Progress goes to stderr as `--progress` says (see [`crate::progress`]),
//! ending with a summary, so `-o -` can stream a tar on stdout; `-q` shows
//! none and prints only the image ID on stdout.
//! A failed step is reported with its Dockerfile line and, for RUN, its
//! exit code; the process then exits with code 1. SIGINT and SIGTERM stop
//! the build cleanly (same exit code).

use super::Globals;
use super::build::usage_error;
use super::build_flags::RunAndImageFlags;
use super::build_input::BuildInput;
use super::common::block_on;
use super::common::print_line;
use super::progress_arg::ProgressMode;
use crate::exec::{ExecOptions, Snapshotter};
use crate::image::Reference;
use crate::layer::compress::{Codec, Compression};
use crate::layer::distribute::Distribution;
use crate::output::{Destination, Export, Output};
use crate::plan::Graph;
use crate::progress::{self, Event, Style, Summary};
use crate::registry::{Client, DockerConfig};
use crate::sandbox::{Isolation, Network, Sandbox};
use crate::solver::cache_remote::{CacheFrom, CacheTo};
use crate::solver::secrets::{SecretFlag, SshFlag};
use crate::solver::{
    BuildOptions, ClientFactory, Delivery, Entitlement, Entitlements, build, deliver, image_names,
};
use clap::ArgAction;
use clap::builder::BoolishValueParser;
use miette::{IntoDiagnostic as _, Result, miette};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// How the layers the store keeps uncompressed leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// gzip (the default; every registry and runtime reads it).
    Gzip,
    /// zstd (smaller and faster; needs a recent runtime).
    Zstd,
    /// Plain tars (larger; for registries and runtimes on one host).
    Uncompressed,
}

impl From<CompressionArg> for Distribution {
    fn from(arg: CompressionArg) -> Self {
        let compression = match arg {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Uncompressed => Compression::Uncompressed,
        };
        Distribution {
            codec: Codec::pinned(compression),
            force: false,
        }
    }
}

/// The network of RUN steps that do not choose one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// A network namespace of the step's own with outbound NAT (slirp4netns),
    /// as BuildKit's default.
    Default,
    /// The host's network.
    Host,
    /// Loopback only.
    None,
}

/// `--isolation`: how RUN steps are kept apart from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationArg {
    /// The sandbox where it can be set up, else chroot (said once).
    Default,
    /// The sandbox (namespaces, mounts) only: fail where it cannot be set up.
    Oci,
    /// Chrooted steps without namespaces or mounts, for unprivileged
    /// containers (Kubernetes pods, hosted CI runners); isolates less.
    Chroot,
}

/// The flags of a real build.
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// Name the image NAME[:TAG] in the local store (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]", value_parser = parse_tag)]
    tags: Vec<Reference>,
    /// Where the result goes: type=local,dest=DIR | type=tar,dest=FILE |
    /// type=oci[,dest=…][,tar=false] | type=docker,dest=FILE |
    /// type=image[,name=…][,push=true] | type=registry | DIR | -; oci,
    /// docker, image and registry also take compression=gzip|zstd|uncompressed,
    /// compression-level=N, force-compression=true (repeatable)
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = parse_output)]
    outputs: Vec<Output>,
    /// Push every -t name to its registry (without -t: the names of -o
    /// type=image,name=…)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    push: bool,
    /// Also load the image into docker (as -o type=docker) when a docker CLI
    /// is on PATH; the image is in builder's store either way
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    load: bool,
    /// Write the image ID (the config digest, sha256:…) to FILE
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write the build result metadata (buildx's keys) to FILE as JSON
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Do not use the step cache
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    no_cache: bool,
    /// Do not use the step cache for this stage (repeatable)
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    no_cache_filter: Vec<String>,
    /// Pull base images even when the local store has them
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    pull: bool,
    /// Compression of the layers pushed or exported (`--push`,
    /// `-o type=image|registry|oci|docker`, `--cache-to`) where the output
    /// sets no compression=; the store keeps them uncompressed
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
    /// Network of RUN steps without --network (`host` also grants the
    /// network.host entitlement, as buildx does)
    #[arg(long, value_enum, default_value_t = NetworkArg::Default)]
    network: NetworkArg,
    /// How RUN steps are kept apart from the host: oci (the sandbox's
    /// namespaces and mounts), chroot (none: for unprivileged containers),
    /// default (oci where it can be set up, else chroot)
    #[arg(long, value_enum, default_value_t = IsolationArg::Default)]
    isolation: IsolationArg,
    /// Grant an entitlement to RUN steps: security.insecure
    /// (RUN --security=insecure) or network.host (RUN --network=host)
    /// (repeatable)
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = parse_entitlement)]
    allow: Vec<Entitlement>,
    /// Progress output on stderr (auto: tty on a terminal, else plain;
    /// default: $BUILDKIT_PROGRESS, else auto)
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
    /// Show no progress; print only the image ID (sha256:…) on stdout
    #[arg(short = 'q', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    quiet: bool,
    /// A secret for RUN --mount=type=secret, from a file or a variable;
    /// id=ID alone reads variable ID if set, else file ID (repeatable)
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|,env=VAR]", value_parser = parse_secret)]
    secrets: Vec<SecretFlag>,
    /// An ssh-agent socket for RUN --mount=type=ssh; `default` alone is
    /// $SSH_AUTH_SOCK (repeatable)
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET]", value_parser = parse_ssh)]
    ssh: Vec<SshFlag>,
    /// Import a build cache: REF, type=registry,ref=REF or
    /// type=local,src=DIR (repeatable)
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Export the build cache: type=registry,ref=REF | type=local,dest=DIR |
    /// type=inline, with [,mode=min|max][,ignore-error=true][,compression=…]
    /// [,compression-level=N][,force-compression=true] (repeatable)
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Vec<String>,
}

/// `-t NAME[:TAG]`: a reference without a digest.
fn parse_tag(value: &str) -> Result<Reference, String> {
    let reference = Reference::parse(value).map_err(|e| e.to_string())?;
    if reference.digest().is_some() {
        return Err("a tag names NAME[:TAG], not a digest".to_owned());
    }
    Ok(reference)
}

fn parse_output(value: &str) -> Result<Output, String> {
    Output::parse(value).map_err(|e| e.to_string())
}

fn parse_entitlement(value: &str) -> Result<Entitlement, String> {
    Entitlement::parse(value).map_err(|e| e.to_string())
}

fn parse_secret(value: &str) -> Result<SecretFlag, String> {
    SecretFlag::parse(value).map_err(|e| e.to_string())
}

fn parse_ssh(value: &str) -> Result<SshFlag, String> {
    SshFlag::parse(value).map_err(|e| e.to_string())
}

impl ImageArgs {
    /// The first flag that delivers the image somewhere (`-o`, `--push`,
    /// `--load`), which a dry run cannot honour.
    pub fn delivery_flag(&self) -> Option<&'static str> {
        [
            (!self.outputs.is_empty(), "--output"),
            (self.push, "--push"),
            (self.load, "--load"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// The entitlements `--allow` (and `--network host`) grant.
fn entitlements(args: &ImageArgs) -> Result<Entitlements> {
    let mut granted = Entitlements::default();
    for entitlement in &args.allow {
        granted.grant(*entitlement);
    }
    if args.network == NetworkArg::Host {
        granted.grant(Entitlement::NetworkHost);
    }
    Ok(granted)
}

/// Builds `graphs` (one per target platform) and delivers the image, or
/// the index of the platforms' images, as `args` say.
pub fn build_image(
    globals: &Globals,
    input: &BuildInput,
    flags: &RunAndImageFlags,
    graphs: Vec<Graph>,
    args: ImageArgs,
) -> Result<()> {
    let started = Instant::now();
    let tags = args.tags.clone();
    let mut outputs = args.outputs.clone();
    let loads = |o: &Output| {
        matches!(
            o,
            Output::Export(Export::Docker {
                dest: Destination::DockerLoad,
                ..
            })
        )
    };
    let docker = crate::output::docker_cli();
    if args.load && !outputs.iter().any(loads) {
        match docker {
            Some(_) => outputs.push(Output::Export(Export::Docker {
                dest: Destination::DockerLoad,
                names: Vec::new(),
                compression: Default::default(),
            })),
            None => eprintln!(
                "note: --load: no docker CLI on PATH to load into; the image is in builder's store (builder images)"
            ),
        }
    }
    if docker.is_none() && outputs.iter().any(loads) {
        usage_error(
            "--output type=docker without dest loads into docker, and there is no docker CLI on PATH: give dest=FILE",
        );
    }
    // As buildx: -q with a --progress that shows something is a contradiction.
    if let (true, Some(mode @ (ProgressMode::Tty | ProgressMode::Plain | ProgressMode::RawJson))) =
        (args.quiet, args.progress)
    {
        usage_error(&format!(
            "-q (--quiet) cannot be used with --progress={}",
            clap::ValueEnum::to_possible_value(&mode)
                .map_or_else(String::new, |v| v.get_name().to_owned())
        ));
    }
    match outputs.iter().filter(|o| o.writes_stdout()).count() {
        0 => {}
        1 if args.quiet => usage_error(
            "-q prints the image ID on stdout, where an -o output writes its tar: drop one of them",
        ),
        1 => {}
        _ => usage_error("only one -o output can write to stdout"),
    }
    if args.push && image_names(&tags, &outputs).is_empty() {
        usage_error("--push has no name to push: add -t NAME[:TAG] (or -o type=image,name=NAME)");
    }
    if tags.is_empty()
        && outputs
            .iter()
            .any(|o| matches!(o, Output::Image { names, .. } if names.is_empty()))
    {
        usage_error(
            "--output type=image (or type=registry) needs name=… or a -t name to name the image",
        );
    }
    if graphs.len() > 1 && outputs.iter().any(Output::holds_one_platform) {
        usage_error(
            "-o type=docker holds one platform's image, and --platform names several: \
             use -o type=oci (an index of every platform), or build one --platform",
        );
    }
    let Some(graph) = graphs.first() else {
        return Err(miette!("no platform to build for"));
    };
    let cache_from = args
        .cache_from
        .iter()
        .map(|spec| CacheFrom::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| usage_error(&e.to_string()));
    let cache_to = args
        .cache_to
        .iter()
        .map(|spec| CacheTo::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| usage_error(&e.to_string()));
    let distribution = Distribution::from(args.compression);
    check_compression(&outputs, &cache_to, distribution);
    let store = globals.open_store()?;
    let source_date_epoch = graph
        .global_args()
        .get("SOURCE_DATE_EPOCH")
        .map(str::to_owned)
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| miette!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))
        })
        .transpose()?;
    let entitlements = entitlements(&args)?;
    let names = image_names(&tags, &outputs);
    let delivery = Delivery {
        tags,
        outputs,
        push: args.push,
    };
    let options = BuildOptions {
        context: input.context.clone(),
        dockerfile: input.dockerfile_path.clone(),
        no_cache: args.no_cache,
        no_cache_stages: args.no_cache_filter.clone(),
        pull: args.pull,
        network: match args.network {
            NetworkArg::Default => Network::Private,
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        entitlements,
        exec: ExecOptions {
            source_date_epoch,
            snapshotter: snapshotter_from_env()?,
            extra_hosts: flags.add_hosts.clone(),
            shm_size: flags.shm_size.unwrap_or(crate::sandbox::DEFAULT_SHM_SIZE),
            seccomp: flags.seccomp_policy()?,
            cgroup: crate::sandbox::CgroupLimits {
                pids: pids_limit_from_env()?,
                memory: flags.memory,
            },
            ulimits: flags.ulimits.clone(),
            isolation: match args.isolation {
                IsolationArg::Default => None,
                IsolationArg::Oci => Some(Isolation::Oci),
                IsolationArg::Chroot => Some(Isolation::Chroot),
            },
        },
        labels: flags.labels.clone(),
        named_contexts: flags.context_dirs(),
        secrets: super::secrets::build_secrets(&args.secrets, &args.ssh),
        cache_from,
        cache_to,
        distribution,
        inline_distribution: delivery
            .sent_as(distribution)
            .unwrap_or_else(|e| usage_error(&format!("--output: {e}"))),
    };
    let style = if args.quiet {
        Style::Quiet
    } else {
        ProgressMode::chosen(args.progress, "build").style()?
    };
    let (sender, renderer) = progress::spawn_renderer(style);
    sender.send(definition_loaded(&input.dockerfile));
    let insecure = globals.insecure_registries.clone();
    // Weak: the factory lives on in the built image's store (its blob
    // source fetches what only an imported cache has), and the renderer
    // ends only when every strong sender is gone.
    let notices = sender.downgrade();
    let clients: ClientFactory = Arc::new(move |registry: &str| {
        let credential = DockerConfig::load_default()?.get(registry)?;
        let client = Client::new(registry, credential, &insecure)?;
        if let Some(notice) = crate::registry::tls::take_notice() {
            notices
                .upgrade()
                .send(Event::Status(format!("notice: {notice}")));
        }
        Ok(client)
    });
    let work = async {
        let mapping = crate::userns::owner_mapping();
        let removed = store.snapshots().claim(&mapping).into_diagnostic()?;
        if removed > 0 {
            sender.send(Event::Status(format!(
                "removed {removed} unpacked layer snapshot(s) made with other owners than this \
                 build's ({mapping}); their layers are unpacked again"
            )));
        }
        // Until the image is named and exported, only this lease keeps a
        // concurrent prune from taking its manifest and config.
        let _lease = store.lease().into_diagnostic()?;
        let built = build(
            graphs.into_iter().map(Arc::new).collect(),
            store.clone(),
            Sandbox::new(),
            Arc::clone(&clients),
            options,
            sender.clone(),
        )
        .await
        .map_err(|error| miette::Report::new(error).wrap_err("the build failed"))?;
        let sent = deliver(&built, &delivery, &clients, &sender)
            .await
            .map_err(miette::Report::new)?;
        Ok((built, sent))
    };
    // On SIGINT or SIGTERM the build is dropped, not killed: its steps'
    // sandboxes are killed and their scratch directories removed, and no
    // record of an unfinished step is written.
    let outcome = block_on(async {
        tokio::select! {
            // The handlers are installed before the build starts.
            biased;
            signal = interrupted() => Err(miette!(
                "the build was interrupted by {signal}; the unfinished steps left nothing behind"
            )),
            outcome = work => outcome,
        }
    });
    if let Ok((built, sent)) = &outcome {
        sender.send(Event::Summary(Summary {
            steps_run: built.steps_run,
            steps_cached: built.steps_cached,
            elapsed: started.elapsed(),
            manifest: sent.as_ref().unwrap_or(&built.image).digest().clone(),
            id: built.id().clone(),
            names: names.iter().map(ToString::to_string).collect(),
        }));
    }
    drop(clients);
    drop(sender);
    let _ = renderer.join();
    let (built, sent) = outcome?;
    // What a push or an export sent (its layers compressed) is the image
    // others see, as buildx reports it; else the one the store keeps.
    let image = sent.as_ref().unwrap_or(&built.image);
    if args.quiet {
        print_line(format_args!("{}", built.id()))?;
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, built.id().to_string())
            .map_err(|e| miette!("cannot write --iidfile {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let mut metadata = serde_json::json!({
            "containerimage.digest": image.digest().to_string(),
            "containerimage.descriptor": image,
            "image.name": names.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        });
        // As buildx: a multi-platform result has no one config.
        if let [one] = built.platforms.as_slice() {
            metadata["containerimage.config.digest"] = one.config.to_string().into();
        }
        let text = serde_json::to_string_pretty(&metadata).into_diagnostic()?;
        std::fs::write(path, text)
            .map_err(|e| miette!("cannot write --metadata-file {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Exits with a usage error when an output's or a cache's
/// `compression-level` is out of the range of the compression it gets
/// from `--compression` (a level beside `compression=` is checked when
/// the value is parsed).
fn check_compression(outputs: &[Output], cache_to: &[CacheTo], default: Distribution) {
    let outputs = outputs.iter().filter_map(|output| match output {
        Output::Export(export) => export.compression(),
        Output::Image { compression, .. } => Some(*compression),
    });
    for attrs in outputs {
        if let Err(e) = attrs.resolve(default) {
            usage_error(&format!(
                "--output: {e} (the output's compression comes from --compression; set compression= on it)"
            ));
        }
    }
    for cache in cache_to {
        if let CacheTo::Remote {
            location,
            compression,
            ..
        } = cache
            && let Err(e) = compression.resolve(default)
        {
            usage_error(&format!(
                "--cache-to {location}: {e} (the cache's compression comes from --compression; set compression= on it)"
            ));
        }
    }
}

/// Resolves with the signal's name when the user interrupts the build
/// (SIGINT, SIGTERM); never, when the handlers cannot be installed (the
/// signals then keep their default action).
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// The Dockerfile was read (before the progress began), as buildx's
/// first line says: `[internal] load build definition from Dockerfile`.
fn definition_loaded(dockerfile: &super::plan_input::DockerfileText) -> Event {
    let path = std::path::Path::new(&dockerfile.name);
    let name = path.file_name().map_or(dockerfile.name.clone(), |name| {
        name.to_string_lossy().into_owned()
    });
    Event::Internal {
        name: format!("load build definition from {name}"),
        state: progress::InternalState::Done {
            detail: Some(format!(
                "transferring dockerfile: {}",
                progress::plain::human_bytes(dockerfile.bytes.len() as u64)
            )),
        },
    }
}

/// `BUILDER_SNAPSHOTTER`: `overlay` (the default) or `copy` (RUN steps on
/// full copies of their parent, as where overlayfs cannot be mounted).
fn snapshotter_from_env() -> Result<Snapshotter> {
    match std::env::var("BUILDER_SNAPSHOTTER") {
        Err(std::env::VarError::NotPresent) => Ok(Snapshotter::Overlay),
        Ok(value) if value.is_empty() || value == "overlay" => Ok(Snapshotter::Overlay),
        Ok(value) if value == "copy" => Ok(Snapshotter::Copy),
        Ok(value) => Err(miette!(
            "BUILDER_SNAPSHOTTER={value:?}: expected \"overlay\" or \"copy\""
        )),
        Err(std::env::VarError::NotUnicode(value)) => Err(miette!(
            "BUILDER_SNAPSHOTTER={value:?}: expected \"overlay\" or \"copy\""
        )),
    }
}

/// The pids limit of each RUN step's cgroup: `BUILDER_PIDS_LIMIT` (a
/// number, or `max` for none), else the default.
fn pids_limit_from_env() -> Result<Option<u64>> {
    let bad = |value: &dyn std::fmt::Debug| {
        miette!("BUILDER_PIDS_LIMIT={value:?}: expected a number of processes or \"max\"")
    };
    match std::env::var("BUILDER_PIDS_LIMIT") {
        Err(std::env::VarError::NotPresent) => Ok(Some(crate::sandbox::DEFAULT_PIDS_LIMIT)),
        Ok(value) if value.is_empty() => Ok(Some(crate::sandbox::DEFAULT_PIDS_LIMIT)),
        Ok(value) if value == "max" => Ok(None),
        Ok(value) => match value.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(bad(&value)),
        },
        Err(std::env::VarError::NotUnicode(value)) => Err(bad(&value)),
    }
}
