//! The clock: the one place that reads the system's wall time.
//!
//! Everything that stamps or schedules takes a `Clock`, so tests can hold time still or move it on
//! with `ManualClock`. Times are `Timestamp`s: milliseconds since the Unix epoch, stored as integers
//! in both databases and rendered as RFC 3339 in the API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration.as_millis() as i64))
    }

    /// How long from `self` until `later` (zero if `later` is not later).
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0).max(0) as u64)
    }

    /// RFC 3339 with millisecond precision, e.g. `2026-11-27T20:08:41.123Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let format = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                );
                t.format(&format).unwrap_or_default()
            }
            Err(_) => String::new(),
        }
    }

    /// RFC 5322 date, as used in `Received:` and `Date:` headers.
    pub fn to_rfc5322(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let format = time::macros::format_description!(
                    "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
                );
                t.format(&format).unwrap_or_default()
            }
            Err(_) => String::new(),
        }
    }
}

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of the current time, and a way to wait for a moment of it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: Timestamp) -> Sleep<'_>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one reader of the system clock
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(since.as_millis() as i64)
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep<'_> {
        let wait = self.now().until(at);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to; for tests. Sleepers wake when it is moved past their time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<watch::Sender<i64>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(watch::channel(start.0).0))
    }

    pub fn advance(&self, by: Duration) {
        self.0.send_modify(|t| *t += by.as_millis() as i64);
    }

    pub fn set(&self, to: Timestamp) {
        self.0.send_replace(to.0);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(*self.0.borrow())
    }

    fn sleep_until(&self, at: Timestamp) -> Sleep<'_> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // wait_for returns at once if the time has already come.
            let _ = rx.wait_for(|now| *now >= at.0).await;
        })
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_and_rfc5322() {
        let t = Timestamp(1_796_328_521_123); // 2026-12-03T20:08:41.123Z
        assert_eq!(t.to_rfc3339(), "2026-12-03T20:08:41.123Z");
        assert_eq!(t.to_rfc5322(), "Thu, 3 Dec 2026 20:08:41 +0000");
    }

    #[tokio::test]
    async fn manual_clock_moves_only_when_told_and_wakes_sleepers() {
        let clock = ManualClock::new(Timestamp(1000));
        assert_eq!(clock.now(), Timestamp(1000));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(Timestamp(3000)).await })
        };
        clock.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its time");
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), Timestamp(3000));
        clock.sleep_until(Timestamp(0)).await; // already past: returns at once
    }
}
