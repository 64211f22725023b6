//! Wall-clock time as the running set sees it, injectable so tests drive time instead of
//! sleeping. A leaf: the engine, the scheduler, chat timers and connectors (through
//! `SyncContext`) all read the one [`Clock`] they are given, never `Utc::now()` directly.

use chrono::{DateTime, Utc};

/// Wall-clock time as the engine sees it.
///
/// [`Clock::system`] reads the system clock. [`Clock::tokio`] derives wall time from tokio's
/// clock, so tests under `tokio::time::pause()` move cron schedules with `advance`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Option<(tokio::time::Instant, DateTime<Utc>)>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { base: None }
    }

    /// A clock that reads `start` now and advances with tokio's (pausable) clock.
    pub fn tokio(start: DateTime<Utc>) -> Clock {
        Clock {
            base: Some((tokio::time::Instant::now(), start)),
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.base {
            None => Utc::now(),
            Some((instant, at)) => {
                let elapsed = chrono::Duration::from_std(instant.elapsed())
                    .expect("elapsed time fits a chrono duration");
                at + elapsed
            }
        }
    }

    /// The tokio instant at which wall-clock time `at` is reached (now if it has passed).
    pub fn instant_at(&self, at: DateTime<Utc>) -> tokio::time::Instant {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        tokio::time::Instant::now() + wait
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}
