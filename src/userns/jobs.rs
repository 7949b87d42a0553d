//! The parent side of `builder __userns`: the jobs done as root of the
//! rootless user namespace (extract a layer, copy or remove a tree, read a
//! step's change), each in this process instead where no namespace is
//! needed, and the protocol that feeds the helper its job and data.
//!
//! Protocol, on the helper's stdin and stdout: the parent sends one JSON
//! [`Request`] line; the helper makes its user namespace and answers
//! [`Reply::Ready`]; the parent writes the ID maps and sends [`GO`], then
//! (to extract) the uncompressed layer tar until EOF; the helper answers
//! with one last reply (to diff: [`Reply::Changes`], then the layer tar
//! until its stdout ends).

use super::idmap::{IdMap, IdMapError, IdMapSummary};
use super::range::{Stack, in_process_options, namespace};
use crate::layer::LayerError;
use crate::layer::extract::{ExtractReport, extract_above};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The line the parent sends once the ID maps are written.
pub(super) const GO: &str = "go";

/// What the parent asks of the helper.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    /// The parent's pid, so the helper notices if it died already.
    pub parent_pid: i32,
    /// Which inside IDs the parent maps.
    pub ids: IdMapSummary,
    /// What to do as root of the namespace.
    pub job: Job,
}

/// The helper's job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Job {
    /// Extract the tar that follows [`GO`] on stdin onto `root`.
    Extract {
        /// The directory to extract into.
        root: PathBuf,
        /// What that directory is.
        stack: Stack,
    },
    /// Remove the tree at `path` (files of subordinate IDs the user alone
    /// may not unlink).
    Remove {
        /// The tree.
        path: PathBuf,
    },
    /// Copy the tree `from` into the empty directory `to`, owners and all.
    Copy {
        /// The tree.
        from: PathBuf,
        /// Where its copy goes.
        to: PathBuf,
    },
    /// Read the change a step made (files of the step's other users may
    /// be beyond the user's reach), answer [`Reply::Changes`], then write
    /// the layer tar to stdout.
    Diff {
        /// An overlay upper directory, or the tree the step ran on.
        upper: PathBuf,
        /// The tree's parent, which the step's tree began as a copy of
        /// (`None`: `upper` is an overlay upper directory).
        parent: Option<PathBuf>,
        /// `SOURCE_DATE_EPOCH` for the tar's mtimes.
        source_date_epoch: Option<u64>,
    },
}

/// What the helper answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Reply {
    /// The user namespace exists; the parent may write the maps.
    Ready,
    /// The layer is extracted.
    Extracted(ExtractReport),
    /// The tree is removed.
    Removed,
    /// The tree is copied.
    Copied,
    /// How many paths the upper directory changes; the layer tar follows
    /// when there are any, its end is the end of stdout.
    Changes(usize),
    /// Why the job failed (the error and its causes, as text).
    Failed(String),
}

/// Why a job failed (in the rootless user namespace or in this process).
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// The job failed in this process.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The helper could not be started or talked to.
    #[error("the userns helper (builder __userns): {0}")]
    Helper(std::io::Error),
    /// The ID maps of the helper's user namespace could not be written.
    #[error("mapping the userns helper's user namespace: {0}")]
    IdMap(#[from] IdMapError),
    /// The layer stream could not be read (a corrupt compressed blob).
    #[error("reading the layer tar stream")]
    Read(#[source] std::io::Error),
    /// The helper reported a failure (of its job, or of its namespace).
    #[error("in the rootless user namespace: {0}")]
    Failed(String),
}

/// Applies the uncompressed layer tar `tar` onto `root`, keeping every owner
/// the steps can see: as root, or rootless with a subordinate range inside a
/// user namespace mapped as the steps' (the files get the host IDs it maps
/// their recorded owners to), else with the user's own IDs only.
pub fn extract_layer(
    tar: impl Read,
    root: &Path,
    stack: Stack,
) -> Result<ExtractReport, UsernsError> {
    match namespace() {
        None => Ok(extract_above(
            tar,
            root,
            &in_process_options(&stack),
            stack.lowers(),
        )?),
        Some(map) => extract_in_namespace(&map, tar, root, stack),
    }
}

/// Runs `builder __userns` to extract `tar` onto `root` as root of a user
/// namespace mapped by `map`.
fn extract_in_namespace(
    map: &IdMap,
    mut tar: impl Read,
    root: &Path,
    stack: Stack,
) -> Result<ExtractReport, UsernsError> {
    let root = std::path::absolute(root).map_err(UsernsError::Helper)?;
    let mut helper = Helper::start(map, Job::Extract { root, stack })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(UsernsError::Read(e)),
        };
        // A helper that stopped reading has failed: its reply says why.
        if helper.input()?.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    helper.close_input();
    match helper.reply()? {
        Reply::Extracted(report) => {
            helper.wait()?;
            Ok(report)
        }
        other => Err(unexpected(other)),
    }
}

/// Removes the tree at `path` as root of the rootless user namespace, where
/// the user has a subordinate range (a step's files of other owners may be
/// beyond the user's reach); `None` without a range (or as root), where the
/// user's own rights are all there is.
pub fn remove_in_namespace(path: &Path) -> Option<Result<(), UsernsError>> {
    let map = namespace()?;
    let removed = std::path::absolute(path)
        .map_err(UsernsError::Helper)
        .and_then(|path| {
            let mut helper = Helper::start(&map, Job::Remove { path })?;
            helper.close_input();
            match helper.reply()? {
                Reply::Removed => helper.wait(),
                other => Err(unexpected(other)),
            }
        });
    Some(removed)
}

/// Copies the tree `from` into the empty directory `to` keeping owners: as
/// root of the rootless user namespace where the user has a subordinate
/// range (files of other owners), else in this process.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), UsernsError> {
    let Some(map) = namespace() else {
        return Ok(crate::layer::copy::copy_tree(from, to)?);
    };
    let from = std::path::absolute(from).map_err(UsernsError::Helper)?;
    let to = std::path::absolute(to).map_err(UsernsError::Helper)?;
    let mut helper = Helper::start(&map, Job::Copy { from, to })?;
    helper.close_input();
    match helper.reply()? {
        Reply::Copied => helper.wait(),
        other => Err(unexpected(other)),
    }
}

/// A step's change read as root of the rootless user namespace, where the
/// user has a subordinate range: what the step's other users own may be
/// unreadable to the user itself. The layer records the owners the
/// namespace shows, the image's.
pub struct NamespaceDiff {
    helper: Helper,
    changes: usize,
}

impl NamespaceDiff {
    /// Starts reading the overlay upper directory `upper` (with `parent`:
    /// the tree `upper`, a modified copy of `parent`); `None` without a
    /// range (or as root), where the change is read in-process.
    pub fn start(
        upper: &Path,
        parent: Option<&Path>,
        source_date_epoch: Option<u64>,
    ) -> Option<Result<NamespaceDiff, UsernsError>> {
        let map = namespace()?;
        let started = std::path::absolute(upper)
            .and_then(|upper| Ok((upper, parent.map(std::path::absolute).transpose()?)))
            .map_err(UsernsError::Helper)
            .and_then(|(upper, parent)| {
                let job = Job::Diff {
                    upper,
                    parent,
                    source_date_epoch,
                };
                let mut helper = Helper::start(&map, job)?;
                helper.close_input();
                match helper.reply()? {
                    Reply::Changes(changes) => Ok(NamespaceDiff { helper, changes }),
                    other => Err(unexpected(other)),
                }
            });
        Some(started)
    }

    /// Whether the step changed nothing (then there is no layer).
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// Streams the layer tar into `out`.
    pub fn write_to(mut self, out: &mut dyn Write) -> Result<(), UsernsError> {
        let copied = std::io::copy(&mut self.helper.stdout, out);
        // The helper's own failure says more than the broken stream.
        self.helper.wait()?;
        copied.map(|_| ()).map_err(UsernsError::Helper)
    }
}

fn unexpected(reply: Reply) -> UsernsError {
    match reply {
        Reply::Failed(reason) => UsernsError::Failed(reason),
        other => UsernsError::Failed(format!("unexpected reply {other:?}")),
    }
}

/// A running helper; killed and reaped if dropped before it is done.
struct Helper {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Helper {
    /// Starts a helper on `job` and maps its user namespace with `map`.
    fn start(map: &IdMap, job: Job) -> Result<Helper, UsernsError> {
        let request = Request {
            parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
            ids: map.summary(),
            job,
        };
        let mut helper = Helper::spawn()?;
        let mut line = serde_json::to_vec(&request).expect("a helper request always serializes");
        line.push(b'\n');
        helper
            .input()?
            .write_all(&line)
            .map_err(UsernsError::Helper)?;
        match helper.reply()? {
            Reply::Ready => {}
            other => return Err(unexpected(other)),
        }
        map.apply_blocking(helper.pid())?;
        helper
            .input()?
            .write_all(format!("{GO}\n").as_bytes())
            .map_err(UsernsError::Helper)?;
        Ok(helper)
    }

    fn spawn() -> Result<Helper, UsernsError> {
        let mut child = Command::new("/proc/self/exe")
            .arg("__userns")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Out of builder's process group, as the sandbox helper: a ^C
            // reaches builder alone, which cancels what the helper does.
            .process_group(0)
            .spawn()
            .map_err(UsernsError::Helper)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("stdin and stdout were requested as pipes");
        };
        Ok(Helper {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn input(&mut self) -> Result<&mut std::process::ChildStdin, UsernsError> {
        self.stdin
            .as_mut()
            .ok_or_else(|| UsernsError::Helper(std::io::Error::other("its stdin is closed")))
    }

    fn close_input(&mut self) {
        self.stdin = None;
    }

    /// The next reply; a helper that ended without one is reported with
    /// what it printed on stderr (a panic, say).
    fn reply(&mut self) -> Result<Reply, UsernsError> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(UsernsError::Helper)?;
        if line.is_empty() {
            self.close_input();
            let mut stderr = String::new();
            if let Some(mut err) = self.child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            let status = self.child.wait().map_err(UsernsError::Helper)?;
            return Err(UsernsError::Failed(format!(
                "the helper ended ({status}) without a reply: {}",
                stderr.trim()
            )));
        }
        serde_json::from_str(&line)
            .map_err(|e| UsernsError::Failed(format!("unreadable reply {line:?}: {e}")))
    }

    /// Waits for the helper's end; a failure is reported with what it
    /// printed on stderr.
    fn wait(mut self) -> Result<(), UsernsError> {
        self.close_input();
        let status = self.child.wait().map_err(UsernsError::Helper)?;
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        Err(UsernsError::Failed(format!(
            "the helper ended with {status}: {}",
            stderr.trim()
        )))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
