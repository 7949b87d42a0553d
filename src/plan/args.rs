//! ARG and ENV scoping as BuildKit does it:
//!
//! - ARGs before the first FROM form the global scope, seeded with the
//!   predefined platform args; `--build-arg` replaces a default, and a
//!   default is expanded with the globals declared before it.
//! - Inside a stage only re-declared ARGs are seen: a bare `ARG X` takes the
//!   global value, `--build-arg` overrides a default, and a default is
//!   expanded with the stage's variables at that point.
//! - A stage has one list of variables for expansion and for RUN, written in
//!   order by ENV and by ARGs that have a value (so `ENV X` after `ARG X`
//!   wins); only ENV reaches the image config.
//! - Proxy args given with `--build-arg` reach RUN without a declaration but
//!   never the image config or history.

use crate::dockerfile::expand::Env;
use std::collections::HashMap;

/// The default `PATH` BuildKit gives a Linux stage whose base sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The proxy variables Docker passes to RUN from `--build-arg` without an
/// ARG declaration (in either case).
const PROXY_ARGS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// The most bytes (names and values) a stage's variables may take at one
/// point: what expansion and RUN see, ENV and ARG together. A RUN step could
/// not start with more (Linux allows a process about 2 MiB of arguments and
/// environment); the limit keeps a few lines that copy a big variable under
/// new names from taking the memory of the machine.
pub const MAX_VARIABLES_BYTES: usize = 8 << 20;

/// The most bytes of variables the RUN steps of one stage may hold in all
/// (each RUN step keeps the variables it runs with): 2 000 steps with a
/// 128 KiB environment each, far more than a real Dockerfile has.
pub const MAX_STAGE_RUN_VARIABLES_BYTES: usize = 256 << 20;

/// An ordered list of variables. Setting a name again replaces its value in
/// place, as image configs keep `Env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(String, String)>,
    /// Where each name is in `vars`, so that thousands of variables are
    /// set and read in linear time.
    index: HashMap<String, usize>,
    /// The bytes of all names and values.
    bytes: usize,
}

impl EnvList {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        let &i = self.index.get(name)?;
        self.vars.get(i).map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.index.get(name).and_then(|&i| self.vars.get_mut(i)) {
            Some((_, v)) => {
                self.bytes = self.bytes - v.len() + value.len();
                value.clone_into(v);
            }
            None => {
                self.bytes += name.len() + value.len();
                self.index.insert(name.to_owned(), self.vars.len());
                self.vars.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The variables in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The bytes of all names and values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reads an image config's `Env` (`KEY=value` strings; a string without
    /// `=` sets an empty value, as BuildKit reads it).
    pub fn from_config(env: &[String]) -> EnvList {
        let mut list = EnvList::default();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            list.set(k, v);
        }
        list
    }

    /// The list as an image config's `Env`.
    pub fn to_config(&self) -> Vec<String> {
        self.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        EnvList::get(self, name)
    }
}

/// The `--build-arg` values of a build, in the order given (a later value
/// of the same name wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildArgs(EnvList);

impl BuildArgs {
    /// Reads `KEY=value` flags; a bare `KEY` takes its value from `lookup`
    /// (the process environment, as docker does) and is dropped when unset
    /// there.
    pub fn from_flags<'a>(
        flags: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> BuildArgs {
        let mut args = EnvList::default();
        for flag in flags {
            match flag.split_once('=') {
                Some((k, v)) => args.set(k, v),
                None => {
                    if let Some(v) = lookup(flag) {
                        args.set(flag, &v);
                    }
                }
            }
        }
        BuildArgs(args)
    }

    /// The value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }

    /// The names given, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The proxy variables among them, which RUN sees without an ARG.
    pub fn proxy_env(&self) -> EnvList {
        let mut env = EnvList::default();
        for (k, v) in self.0.iter() {
            if is_proxy_arg(k) {
                env.set(k, v);
            }
        }
        env
    }
}

/// Whether `name` is one of the proxy args (`http_proxy`, `NO_PROXY`, …).
pub(crate) fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// One ARG in a stage's scope: declared, with a value or without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgValue {
    /// The name.
    pub name: String,
    /// The value (`None`: declared without default, build-arg or global).
    pub value: Option<String>,
}

/// The variables of a stage at one point: what expansion and RUN see, what
/// the image config holds, and the ARGs in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageEnv {
    /// Variables for expansion and RUN: the base's env, then ENV and valued
    /// ARGs in the order written.
    pub env: EnvList,
    /// The image config's `Env`: the base's, then ENV.
    pub config_env: EnvList,
    /// The ARGs declared so far (inherited from a base stage too), in order,
    /// for the RUN history line (`RUN |1 X=y …`).
    pub args: Vec<ArgValue>,
}

impl StageEnv {
    /// The start of a stage on an image whose config has `config_env`;
    /// `PATH` is added when the image sets none, as BuildKit does on Linux.
    pub fn from_image(config_env: &[String]) -> StageEnv {
        let mut config_env = EnvList::from_config(config_env);
        if config_env.get("PATH").is_none() {
            config_env.set("PATH", DEFAULT_PATH);
        }
        StageEnv {
            env: config_env.clone(),
            config_env,
            args: Vec::new(),
        }
    }

    /// Applies `ENV key=value`.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.set(key, value);
        self.config_env.set(key, value);
    }

    /// The bytes a RUN step keeps of these variables: names and values of
    /// the variables and of the ARGs in scope, and their bookkeeping.
    pub(crate) fn run_bytes(&self) -> usize {
        // A variable's entry, and its name again in the index.
        let entry = 2 * std::mem::size_of::<(String, String)>();
        let args: usize = self
            .args
            .iter()
            .map(|a| entry + a.name.len() + a.value.as_ref().map_or(0, String::len))
            .sum();
        self.env.bytes() + self.env.vars.len() * entry + args
    }

    /// Applies an ARG declaration whose value has been resolved.
    pub(crate) fn declare_arg(&mut self, arg: ArgValue) {
        if let Some(v) = &arg.value {
            self.env.set(&arg.name, v);
        }
        self.args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_set_replaces_in_place() {
        let mut env = EnvList::from_config(&["A=1".into(), "B=2".into(), "C".into()]);
        env.set("A", "3");
        assert_eq!(env.to_config(), ["A=3", "B=2", "C="]);
    }

    #[test]
    fn bare_build_arg_reads_the_environment() {
        let args = BuildArgs::from_flags(["A=1", "HOME", "MISSING", "A=2"], |k| {
            (k == "HOME").then(|| "/root".to_owned())
        });
        assert_eq!(args.get("A"), Some("2"));
        assert_eq!(args.get("HOME"), Some("/root"));
        assert_eq!(args.get("MISSING"), None);
    }

    #[test]
    fn proxy_args_in_either_case() {
        let args = BuildArgs::from_flags(["http_proxy=h", "NO_PROXY=n", "X=1"], |_| None);
        assert_eq!(args.proxy_env().to_config(), ["http_proxy=h", "NO_PROXY=n"]);
    }

    #[test]
    fn image_start_gets_a_default_path() {
        let env = StageEnv::from_image(&["A=1".into()]);
        assert_eq!(env.env.get("PATH"), Some(DEFAULT_PATH));
        let env = StageEnv::from_image(&["PATH=/x".into()]);
        assert_eq!(env.config_env.to_config(), ["PATH=/x"]);
    }
}
