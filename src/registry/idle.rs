//! The idle timeout of registry requests: a request is given up when no
//! bytes have moved for a while (a registry that accepts a connection and
//! never answers, or stalls mid-blob), however long the whole transfer takes.

use super::error::RegistryError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a registry may send or take nothing on a connection before the
/// request is given up (and retried): long enough for a slow registry or
/// link, short enough that a stalled one does not hang a build.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Overrides [`DEFAULT_IDLE_TIMEOUT`], in seconds (`0.5` allowed); for tests.
const IDLE_TIMEOUT_ENV: &str = "BUILDER_REGISTRY_IDLE_TIMEOUT";

/// When bytes last moved for a request, for the idle timeout.
#[derive(Clone)]
pub(crate) struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    /// Bytes moved when the request starts.
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    /// Bytes moved now.
    pub(crate) fn touch(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.0.lock().map_or_else(|_| Instant::now(), |last| *last)
    }
}

/// Runs `work` until it is done, or until `activity` has seen nothing for
/// `idle` (`None`).
pub(crate) async fn unless_idle<F: std::future::Future>(
    work: F,
    activity: &Activity,
    idle: Duration,
) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            out = &mut work => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// The idle timeout: [`IDLE_TIMEOUT_ENV`] when set, else the default.
pub(crate) fn idle_timeout() -> Result<Duration, RegistryError> {
    let Some(value) = std::env::var_os(IDLE_TIMEOUT_ENV) else {
        return Ok(DEFAULT_IDLE_TIMEOUT);
    };
    value
        .to_str()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| RegistryError::InvalidIdleTimeout {
            variable: IDLE_TIMEOUT_ENV,
            value: value.to_string_lossy().into_owned(),
        })
}
