//! `builder login [-u USER] [--password-stdin] [HOST]`: check credentials
//! against the registry, then store them where Docker keeps them.

use super::Globals;
use super::common::block_on;
use super::common::print_line;
use crate::registry::{Client, Credential, DockerConfig};
use clap::Args;
use miette::{IntoDiagnostic as _, Result, miette};
use std::io::{BufRead as _, IsTerminal as _, Write as _};

/// Log in to a registry.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    host: Option<String>,
    /// The user name (asked for when absent).
    #[arg(short, long)]
    username: Option<String>,
    /// The password (insecure: it shows in the process list and the shell
    /// history; prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin instead of asking for it.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

/// The registry a login/logout argument names: `docker.io` by default, and
/// a URL reduced to its host (`https://r.example/v2/` → `r.example`).
pub fn registry_name(host: Option<&str>) -> String {
    let host = host.unwrap_or("docker.io");
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// Runs the subcommand.
pub fn run(globals: &Globals, args: LoginArgs) -> Result<()> {
    let registry = registry_name(args.host.as_deref());
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", true)?,
    };
    let password = if let Some(password) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        password
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .into_diagnostic()?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        prompt("Password: ", false)?
    };
    if username.is_empty() || password.is_empty() {
        return Err(miette!("a user name and a password are required"));
    }
    let credential = Credential::Basic { username, password };
    let client = Client::new(
        &registry,
        Some(credential.clone()),
        &globals.insecure_registries,
    )?;
    super::common::tell_tls_notice();
    block_on(async { Ok(client.ping().await?) })?;
    let mut config = DockerConfig::load_default()?;
    config.store(&registry, &credential)?;
    config.save()?;
    print_line(format_args!("Login Succeeded"))?;
    Ok(())
}

/// Asks on the terminal; the password is read with echo off.
fn prompt(question: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(miette!(
            "cannot ask for {}: stdin is not a terminal (use -u and --password-stdin)",
            question.trim_end_matches([':', ' ']).to_lowercase()
        ));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let saved = (!echo)
        .then(|| rustix::termios::tcgetattr(&stdin).ok())
        .flatten();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes -= rustix::termios::LocalModes::ECHO;
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, saved);
        eprintln!();
    }
    read.into_diagnostic()?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
