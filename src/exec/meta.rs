//! Config changes and history: what each instruction does to the image
//! config, and the history entry it leaves, exactly as BuildKit's
//! Dockerfile front end writes them (`created_by` text, `empty_layer`,
//! `comment: buildkit.dockerfile.v0`).
//!
//! Values arrive expanded (variables substituted): the planner does that.

use super::config::{Empty, HealthConfig, History, ImageConfig, json_len};
use super::gofmt::{go_duration, go_quote, go_quote_rune, go_quoted_list};
use crate::image::PlatformSpec;
use crate::store::MAX_DOCUMENT_SIZE;
use std::collections::HashMap;
use std::time::Duration;

/// The `comment` of every history entry a Dockerfile step makes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// `PATH` of a container whose image sets none, as BuildKit (and runc) use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell a shell-form command runs through when no SHELL was set.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned()]
}

/// A command of CMD, ENTRYPOINT or HEALTHCHECK, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// JSON form: run as given.
    Exec(Vec<String>),
    /// Shell form: run through the stage's SHELL.
    Shell(String),
}

/// `HEALTHCHECK [options] CMD …`, expanded; `None` durations are unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckSpec {
    /// The check.
    pub command: CommandLine,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// One metadata instruction, its words expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// `ENV k=v …`
    Env(Vec<(String, String)>),
    /// `LABEL k=v …`
    Label(Vec<(String, String)>),
    /// `EXPOSE port[/proto] …`
    Expose(Vec<String>),
    /// `VOLUME path …`
    Volume(Vec<String>),
    /// `USER user[:group]`
    User(String),
    /// `WORKDIR path` (relative paths are taken from the current one)
    Workdir(String),
    /// `CMD`
    Cmd(CommandLine),
    /// `ENTRYPOINT`
    Entrypoint(CommandLine),
    /// `STOPSIGNAL signal`
    StopSignal(String),
    /// `HEALTHCHECK CMD …`, or `HEALTHCHECK NONE` as `None`
    Healthcheck(Option<HealthcheckSpec>),
    /// `SHELL ["exe", …]`
    Shell(Vec<String>),
    /// `ONBUILD instruction`, as written
    Onbuild(String),
    /// `MAINTAINER name`
    Maintainer(String),
    /// `ARG name[=value] …`, with the value each has in the build
    Arg(Vec<(String, Option<String>)>),
}

/// Why a metadata instruction cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// An EXPOSE entry that is not `[ip:][public:]port[-port][/proto]`.
    #[error("invalid EXPOSE port specification `{0}`")]
    InvalidPort(String),
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A STOPSIGNAL that names no signal.
    #[error("invalid STOPSIGNAL `{0}`: not a signal name or number")]
    InvalidSignal(String),
    /// `SHELL []`.
    #[error("SHELL requires at least one argument")]
    EmptyShell,
    /// The config grew past what an image config may be.
    #[error(
        "the image config would be {size} bytes, more than the {} MiB builder (and the stages and builds that read the image) allow",
        MAX_DOCUMENT_SIZE >> 20
    )]
    ConfigTooLarge {
        /// Its size with this step.
        size: u64,
    },
}

/// Keeps a stage's config within what an image config may be (what the
/// store reads back for `inspect` and `FROM`), step by step. It measures the
/// config only when a running bound passes the limit, so that a stage of
/// thousands of steps does not serialize its config thousands of times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigSize {
    /// At least the config's size as JSON.
    bound: u64,
}

impl ConfigSize {
    /// The size of the config a stage starts from.
    pub fn new(config: &ImageConfig) -> ConfigSize {
        ConfigSize {
            bound: config.json_len(),
        }
    }

    /// Checks `config` after a step, which left one history entry: a step
    /// adds at most twice that entry's size (its text holds the values it
    /// set) and a little more.
    pub fn check(&mut self, config: &ImageConfig) -> Result<(), MetaError> {
        let entry = config.history.last().map_or(0, json_len);
        self.bound = self.bound.saturating_add(2 * entry + 1024);
        if self.bound > MAX_DOCUMENT_SIZE {
            let size = config.json_len();
            if size > MAX_DOCUMENT_SIZE {
                return Err(MetaError::ConfigTooLarge { size });
            }
            self.bound = size;
        }
        Ok(())
    }
}

/// What the metadata of a stage remembers between its instructions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageMeta {
    /// Whether CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// Where each name is in the config's `Env`.
    env_index: EnvIndex,
}

/// Where each name is in a config's `Env` (its first entry), kept between
/// a stage's instructions so that thousands of ENV take linear time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EnvIndex {
    names: HashMap<String, usize>,
    /// The length of `Env` the index was made or kept for.
    covers: usize,
}

impl EnvIndex {
    /// Sets each `key=value` in `env`, replacing an existing entry in place.
    fn set<'a>(
        &mut self,
        env: &mut Vec<String>,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        if self.covers != env.len() {
            self.names.clear();
            for (i, e) in env.iter().enumerate() {
                let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                self.names.entry(name.to_owned()).or_insert(i);
            }
        }
        for (key, value) in pairs {
            let entry = format!("{key}={value}");
            match self.names.get(key) {
                Some(&i) => env[i] = entry,
                None => {
                    self.names.insert(key.to_owned(), env.len());
                    env.push(entry);
                }
            }
        }
        self.covers = env.len();
    }
}

/// The config a stage starts from: the base image's (`None` for scratch,
/// which gets BuildKit's empty image: WORKDIR `/` and the default PATH), with
/// PATH defaulted when the base has none.
pub fn stage_config(base: Option<ImageConfig>, platform: &PlatformSpec) -> ImageConfig {
    let mut config = match base {
        Some(base) => base,
        None => {
            let mut empty = ImageConfig {
                architecture: platform.architecture().to_owned(),
                os: platform.os().to_owned(),
                variant: platform.variant().map(str::to_owned),
                ..ImageConfig::default()
            };
            empty.config.working_dir = Some("/".to_owned());
            empty
        }
    };
    if config.env_value("PATH").is_none() {
        let env = config.config.env.get_or_insert_with(Vec::new);
        EnvIndex::default().set(env, [("PATH", DEFAULT_PATH)]);
    }
    config
}

/// The argv of a shell-form command: the stage's SHELL (or `/bin/sh -c`)
/// followed by the command.
pub fn shell_argv(config: &ImageConfig, command: &str) -> Vec<String> {
    let mut argv = config
        .config
        .shell
        .clone()
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(default_shell);
    argv.push(command.to_owned());
    argv
}

fn command_argv(config: &ImageConfig, command: &CommandLine) -> Vec<String> {
    match command {
        CommandLine::Exec(words) => words.clone(),
        CommandLine::Shell(line) => shell_argv(config, line),
    }
}

/// Applies a metadata instruction to `config` and appends its history entry
/// (no layer; ONBUILD leaves none, as in BuildKit). `created` is the
/// history timestamp (see [`timestamp`]); without one, [`finish`] fills it
/// in from the steps around it.
pub fn apply(
    config: &mut ImageConfig,
    stage: &mut StageMeta,
    change: &ConfigChange,
    created: Option<&str>,
) -> Result<(), MetaError> {
    let created_by = match change {
        ConfigChange::Env(pairs) => {
            let mut message = String::from("ENV");
            for (key, value) in pairs {
                message.push_str(&format!(" {key}={value}"));
            }
            let env = config.config.env.get_or_insert_with(Vec::new);
            stage
                .env_index
                .set(env, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            message
        }
        ConfigChange::Label(pairs) => {
            let mut message = String::from("LABEL");
            let labels = config.config.labels.get_or_insert_with(Default::default);
            for (key, value) in pairs {
                labels.insert(key.clone(), value.clone());
                message.push_str(&format!(" {key}={value}"));
            }
            message
        }
        ConfigChange::Expose(specs) => {
            let mut ports = Vec::new();
            for spec in specs {
                ports.extend(parse_port(spec)?);
            }
            let exposed = config
                .config
                .exposed_ports
                .get_or_insert_with(Default::default);
            for port in &ports {
                exposed.insert(port.clone(), Empty {});
            }
            format!("EXPOSE [{}]", ports.join(" "))
        }
        ConfigChange::Volume(paths) => {
            if paths.iter().any(String::is_empty) {
                return Err(MetaError::EmptyVolume);
            }
            let volumes = config.config.volumes.get_or_insert_with(Default::default);
            for path in paths {
                volumes.insert(path.clone(), Empty {});
            }
            format!("VOLUME [{}]", paths.join(" "))
        }
        ConfigChange::User(user) => {
            config.config.user = Some(user.clone());
            format!("USER {user}")
        }
        ConfigChange::Workdir(path) => {
            let current = config.config.working_dir.as_deref().unwrap_or("/");
            let dir = workdir_value(current, path);
            config.config.working_dir = Some(dir.clone());
            format!("WORKDIR {dir}")
        }
        ConfigChange::Cmd(command) => {
            let argv = command_argv(config, command);
            config.config.args_escaped = Some(true);
            stage.cmd_set = true;
            let message = format!("CMD {}", go_quoted_list(&argv));
            config.config.cmd = Some(argv);
            message
        }
        ConfigChange::Entrypoint(command) => {
            let argv = command_argv(config, command);
            if !stage.cmd_set {
                config.config.cmd = None;
            }
            let message = format!("ENTRYPOINT {}", go_quoted_list(&argv));
            config.config.entrypoint = Some(argv);
            message
        }
        ConfigChange::StopSignal(signal) => {
            check_signal(signal)?;
            config.config.stop_signal = Some(signal.clone());
            format!("STOPSIGNAL {signal}")
        }
        ConfigChange::Healthcheck(spec) => {
            let health = health_config(spec.as_ref());
            let message = format!("HEALTHCHECK {}", describe_health(&health));
            config.config.healthcheck = Some(health);
            message
        }
        ConfigChange::Shell(shell) => {
            if shell.is_empty() {
                return Err(MetaError::EmptyShell);
            }
            config.config.shell = Some(shell.clone());
            format!("SHELL [{}]", shell.join(" "))
        }
        ConfigChange::Onbuild(trigger) => {
            config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
            return Ok(());
        }
        ConfigChange::Maintainer(name) => {
            config.author = Some(name.clone());
            format!("MAINTAINER {name}")
        }
        ConfigChange::Arg(args) => {
            let words: Vec<String> = args
                .iter()
                .map(|(name, value)| match value {
                    Some(value) => format!("{name}={value}"),
                    None => name.clone(),
                })
                .collect();
            format!("ARG {}", words.join(" "))
        }
    };
    push_history(config, created_by, false, created);
    Ok(())
}

/// Records a step that ran (RUN, COPY, ADD, WORKDIR's directory): its
/// history entry, and its layer's diff ID when it made one. `created_by`
/// is the step's text as [`run_created_by`] or the copy module give it.
pub fn record_step(
    config: &mut ImageConfig,
    created_by: String,
    layer: Option<&oci_spec::image::Digest>,
    created: &str,
) {
    if let Some(diff_id) = layer {
        config.rootfs.diff_ids.push(diff_id.to_string());
    }
    push_history(config, created_by, layer.is_some(), Some(created));
}

/// The `created_by` of a RUN step: `RUN [|N K=V …] argv… # buildkit`, where
/// the `|N` prefix lists the build args in scope (BuildKit's format).
pub fn run_created_by(argv: &[String], build_args: &[(String, String)]) -> String {
    let mut words: Vec<String> = Vec::new();
    if !build_args.is_empty() {
        words.push(format!("|{}", build_args.len()));
        words.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(argv.iter().cloned());
    format!("RUN {} # buildkit", words.join(" "))
}

/// Sets the times of the finished image as BuildKit's exporter does: a
/// history entry without a time (a metadata step) takes that of the first
/// entry with one after the first such gap (the first new layer step; the
/// base's last entry when none follows), then of the entry before it; the
/// image's `created` is then the last entry's. `fixed`
/// (`SOURCE_DATE_EPOCH`) is the image's time instead when given. An
/// image with no time anywhere (`FROM scratch` and metadata only) has none.
pub fn finish(config: &mut ImageConfig, fixed: Option<&str>) {
    let times: Vec<Option<&String>> = config.history.iter().map(|h| h.created.as_ref()).collect();
    let mut fill = None;
    let mut gap = false;
    for time in &times {
        match time {
            Some(time) => {
                fill = Some((*time).clone());
                if gap {
                    break;
                }
            }
            None => gap = true,
        }
    }
    let mut gap = false;
    for entry in &mut config.history {
        match &entry.created {
            Some(time) if gap => fill = Some(time.clone()),
            Some(_) => {}
            None => {
                gap = true;
                entry.created.clone_from(&fill);
            }
        }
    }
    config.created = match fixed {
        Some(time) => Some(time.to_owned()),
        None => config.history.iter().rev().find_map(|h| h.created.clone()),
    };
}

/// The timestamp of history entries and the image: `SOURCE_DATE_EPOCH`
/// when given, else now, in RFC 3339 UTC.
pub fn timestamp(source_date_epoch: Option<u64>) -> String {
    match source_date_epoch {
        Some(seconds) => rfc3339(seconds, 0),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            rfc3339(now.as_secs(), now.subsec_nanos())
        }
    }
}

fn rfc3339(seconds: u64, nanos: u32) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let time = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if nanos == 0 {
        format!("{time}Z")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{time}.{}Z", fraction.trim_end_matches('0'))
    }
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn push_history(config: &mut ImageConfig, created_by: String, layer: bool, created: Option<&str>) {
    config.history.push(History {
        created: created.map(str::to_owned),
        author: None,
        created_by: Some(created_by),
        comment: Some(HISTORY_COMMENT.to_owned()),
        empty_layer: !layer,
    });
}

/// `WORKDIR`'s value in the config, as BuildKit stores it: an absolute
/// path as written (`/usr/src/` keeps its slash), a relative one joined
/// to the current directory and cleaned (Go's `path.Join`).
pub fn workdir_value(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        normalize_workdir(current, path)
    }
}

/// The working directory `path` means: relative paths join the current
/// directory; the result is cleaned as Go's `path.Clean` does.
pub fn normalize_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{current}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `port`, `port/proto`, `from-to[/proto]`, `[ip:]public:private[/proto]`
/// → the container ports as `port/proto`.
fn parse_port(spec: &str) -> Result<Vec<String>, MetaError> {
    let invalid = || MetaError::InvalidPort(spec.to_owned());
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((ports, proto)) if !proto.is_empty() => (ports, proto.to_ascii_lowercase()),
        Some(_) => return Err(invalid()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid());
    }
    // The container port is what follows the last colon.
    let container = ports.rsplit(':').next().unwrap_or(ports);
    let number = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(invalid);
    let (first, last) = match container.split_once('-') {
        Some((from, to)) => (number(from)?, number(to)?),
        None => {
            let port = number(container)?;
            (port, port)
        }
    };
    if last < first {
        return Err(invalid());
    }
    Ok((first..=last)
        .map(|port| format!("{port}/{proto}"))
        .collect())
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// A signal number, or a name with or without `SIG` (`SIGRTMIN+3` too).
fn check_signal(signal: &str) -> Result<(), MetaError> {
    if let Ok(number) = signal.parse::<u32>() {
        return if (1..=64).contains(&number) {
            Ok(())
        } else {
            Err(MetaError::InvalidSignal(signal.to_owned()))
        };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = ["RTMIN", "RTMAX"].iter().any(|base| {
        name.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(['+', '-'])
                    .and_then(|n| n.parse::<u8>().ok())
                    .is_some_and(|n| n <= 30)
        })
    });
    if realtime || SIGNALS.contains(&name) {
        Ok(())
    } else {
        Err(MetaError::InvalidSignal(signal.to_owned()))
    }
}

fn nanos(duration: Option<Duration>) -> i64 {
    duration.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn health_config(spec: Option<&HealthcheckSpec>) -> HealthConfig {
    let Some(spec) = spec else {
        return HealthConfig {
            test: vec!["NONE".to_owned()],
            ..HealthConfig::default()
        };
    };
    let test = match &spec.command {
        CommandLine::Exec(words) => std::iter::once("CMD".to_owned())
            .chain(words.iter().cloned())
            .collect(),
        CommandLine::Shell(line) => vec!["CMD-SHELL".to_owned(), line.clone()],
    };
    HealthConfig {
        test,
        interval: nanos(spec.interval),
        timeout: nanos(spec.timeout),
        start_period: nanos(spec.start_period),
        start_interval: nanos(spec.start_interval),
        retries: i64::from(spec.retries.unwrap_or(0)),
    }
}

/// Go's `%q` of a `*HealthcheckConfig`: `&{["CMD" "x"] "30s" "0s" "0s" "0s" '\x03'}`.
fn describe_health(health: &HealthConfig) -> String {
    let duration = |ns: i64| go_quote(&go_duration(ns));
    format!(
        "&{{{} {} {} {} {} {}}}",
        go_quoted_list(&health.test),
        duration(health.interval),
        duration(health.timeout),
        duration(health.start_period),
        duration(health.start_interval),
        go_quote_rune(health.retries),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ImageConfig {
        stage_config(None, &PlatformSpec::parse("linux/amd64").unwrap())
    }

    fn last_created_by(config: &ImageConfig) -> &str {
        config
            .history
            .last()
            .and_then(|h| h.created_by.as_deref())
            .unwrap()
    }

    #[test]
    fn scratch_gets_buildkits_empty_image() {
        let config = base();
        assert_eq!(config.config.working_dir.as_deref(), Some("/"));
        assert_eq!(
            config.config.env,
            Some(vec![format!("PATH={DEFAULT_PATH}")])
        );
        let with_path = stage_config(Some(config.clone()), &PlatformSpec::host());
        assert_eq!(with_path.config.env, config.config.env);
    }

    #[test]
    fn workdir_is_cleaned_and_relative_to_the_current_one() {
        assert_eq!(normalize_workdir("/", "srv/app"), "/srv/app");
        assert_eq!(normalize_workdir("/srv", "../x/./y/"), "/x/y");
        assert_eq!(normalize_workdir("/srv", "/abs"), "/abs");
        assert_eq!(normalize_workdir("/", ".."), "/");
    }

    #[test]
    fn workdir_values_keep_absolute_paths_as_written() {
        assert_eq!(workdir_value("/", "/usr/src/"), "/usr/src/");
        assert_eq!(workdir_value("/", "/x/../y/"), "/x/../y/");
        assert_eq!(workdir_value("/usr/src/", "a/"), "/usr/src/a");
        assert_eq!(workdir_value("/usr/src/", "."), "/usr/src");
        assert_eq!(workdir_value("/x/../y/", "./b/../c//"), "/y/c");
    }

    #[test]
    fn ports_are_normalized_and_bad_ones_refused() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_port("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        for bad in ["", "x", "0", "70000", "80/", "80/http", "9-8"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_or_number() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGNOPE", "0", "65", "RTMIN+99"] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
    }

    #[test]
    fn finish_fills_metadata_times_from_layer_steps_as_buildkit() {
        let times = |config: &ImageConfig| -> Vec<Option<String>> {
            config.history.iter().map(|h| h.created.clone()).collect()
        };
        let some = |t: &str| Some(t.to_owned());
        let env = ConfigChange::Env(vec![("A".into(), "1".into())]);
        let mut config = base();
        let mut stage = StageMeta::default();
        push_history(&mut config, "base".into(), true, Some("t0"));
        apply(&mut config, &mut stage, &env, None).unwrap();
        record_step(&mut config, "RUN a".into(), None, "t1");
        apply(&mut config, &mut stage, &env, None).unwrap();
        record_step(&mut config, "RUN b".into(), None, "t2");
        apply(&mut config, &mut stage, &env, None).unwrap();
        finish(&mut config, None);
        assert_eq!(
            times(&config),
            [
                some("t0"),
                some("t1"),
                some("t1"),
                some("t1"),
                some("t2"),
                some("t2")
            ]
        );
        assert_eq!(config.created, some("t2"));

        // Metadata only: the base's last time.
        let mut config = base();
        push_history(&mut config, "base".into(), true, Some("t0"));
        apply(&mut config, &mut stage, &env, None).unwrap();
        finish(&mut config, None);
        assert_eq!(times(&config), [some("t0"), some("t0")]);
        assert_eq!(config.created, some("t0"));

        // FROM scratch with metadata only: no time at all.
        let mut config = base();
        config.history.clear();
        apply(&mut config, &mut stage, &env, None).unwrap();
        finish(&mut config, None);
        assert_eq!(times(&config), [None]);
        assert_eq!(config.created, None);

        // SOURCE_DATE_EPOCH names the image's time.
        finish(&mut config, Some("t9"));
        assert_eq!(config.created, some("t9"));
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_but_not_one_set_in_the_stage() {
        let mut config = base();
        config.config.cmd = Some(vec!["inherited".into()]);
        let mut stage = StageMeta::default();
        let entrypoint = ConfigChange::Entrypoint(CommandLine::Exec(vec!["/app".into()]));
        apply(&mut config, &mut stage, &entrypoint, Some("t")).unwrap();
        assert_eq!(config.config.cmd, None);
        assert_eq!(last_created_by(&config), r#"ENTRYPOINT ["/app"]"#);

        let mut stage = StageMeta::default();
        let cmd = ConfigChange::Cmd(CommandLine::Shell("run it".into()));
        apply(&mut config, &mut stage, &cmd, Some("t")).unwrap();
        apply(&mut config, &mut stage, &entrypoint, Some("t")).unwrap();
        assert_eq!(
            config.config.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "run it".into()])
        );
    }

    #[test]
    fn run_history_lists_build_args_like_buildkit() {
        let argv = shell_argv(&base(), "echo hi");
        assert_eq!(
            run_created_by(&argv, &[]),
            "RUN /bin/sh -c echo hi # buildkit"
        );
        assert_eq!(
            run_created_by(
                &argv,
                &[("A".into(), "1".into()), ("B".into(), "x y".into())]
            ),
            "RUN |2 A=1 B=x y /bin/sh -c echo hi # buildkit"
        );
    }
}
