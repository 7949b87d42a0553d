//! `builder __userns`: the re-executed, single-threaded helper that makes a
//! user namespace, waits for the parent to map it, and extracts a layer (or
//! copies or removes a tree, or writes a step's layer) there as its root
//! (see the protocol in `jobs`).

use super::jobs::{GO, Job, Reply, Request};
use crate::layer::LayerError;
use crate::layer::copy::copy_tree;
use crate::layer::diff::{overlay_changes, tree_changes};
use crate::layer::extract::{ExtractOptions, Ownership, extract_above};
use crate::layer::owners::OwnerMap;
use crate::layer::tar::{WriteOptions, write_changes};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Entry point of `builder __userns`; the outcome goes to stdout as a reply
/// (after a layer tar, only the exit code and stderr can tell it).
pub(crate) fn main() -> ExitCode {
    let mut input = std::io::stdin().lock();
    let reply = match run(&mut input) {
        Ok(None) => return ExitCode::SUCCESS,
        Ok(Some(reply)) => reply,
        Err(reason) => {
            eprintln!("{reason}");
            let _ = send(&Reply::Failed(reason));
            return ExitCode::FAILURE;
        }
    };
    match send(&reply) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("builder __userns is run by builder itself: {err}");
            ExitCode::FAILURE
        }
    }
}

fn send(reply: &Reply) -> Result<(), String> {
    let mut line = serde_json::to_vec(reply).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing to the parent: {e}"))
}

/// Carries out the request; `None` when the job already wrote its output.
fn run(input: &mut impl BufRead) -> Result<Option<Reply>, String> {
    let by_hand = |why: String| format!("builder __userns is run by builder itself: {why}");
    if std::io::stdin().is_terminal() {
        return Err(by_hand(
            "its request comes on stdin, not from a terminal".into(),
        ));
    }
    let request: Request = serde_json::from_str(&read_line(input).map_err(by_hand)?)
        .map_err(|e| by_hand(format!("reading its request: {e}")))?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| format!("arming the parent-death signal: {e}"))?;
    let parent = rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get());
    if parent != request.parent_pid {
        return Err("the parent exited before the job started".into());
    }
    // SAFETY: CLONE_NEWUSER shares no file descriptor table with other
    // threads (what makes unshare unsafe in rustix's terms), and the helper
    // is single-threaded, as the kernel requires for a new user namespace.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
        .map_err(|e| format!("unsharing the user namespace: {e}"))?;
    send(&Reply::Ready)?;
    if read_line(input)? != GO {
        return Err("the parent did not confirm the user namespace's id maps".into());
    }
    match request.job {
        Job::Extract { root, stack } => {
            let options = ExtractOptions {
                whiteouts: stack.whiteouts(false),
                ownership: Ownership::Within {
                    uids: 0..u64::from(request.ids.uids),
                    gids: 0..u64::from(request.ids.gids),
                },
            };
            extract_above(input, &root, &options, stack.lowers())
                .map(|report| Some(Reply::Extracted(report)))
                .map_err(|e| with_causes(&e))
        }
        Job::Remove { path } => match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(Some(Reply::Removed)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(Reply::Removed)),
            Err(e) => Err(format!("removing {}: {e}", path.display())),
        },
        Job::Copy { from, to } => copy_tree(&from, &to)
            .map(|()| Some(Reply::Copied))
            .map_err(|e| with_causes(&e)),
        Job::Diff {
            upper,
            parent,
            source_date_epoch,
        } => {
            let changes = match &parent {
                None => overlay_changes(&upper),
                Some(parent) => tree_changes(parent, &upper),
            }
            .map_err(|e| with_causes(&e))?;
            send(&Reply::Changes(changes.len()))?;
            if changes.is_empty() {
                return Ok(None);
            }
            // Seen from inside, owners are the image's already.
            let options = WriteOptions {
                source_date_epoch,
                owners: OwnerMap::Identity,
            };
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            write_changes(&upper, changes, out, &options)
                .and_then(|mut out| {
                    out.flush().map_err(|source| LayerError::Write {
                        action: "the layer tar to the parent",
                        source,
                    })
                })
                .map_err(|e| with_causes(&e))?;
            Ok(None)
        }
    }
}

fn read_line(input: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading from the parent: {e}"))?;
    if line.is_empty() {
        return Err("the parent closed the request pipe".into());
    }
    Ok(line.trim_end_matches('\n').to_string())
}

/// An error and its causes on one line, as the parent's report shows them.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
