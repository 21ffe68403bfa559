//! The clock: the one place that reads the system's wall time.
//!
//! Everything that stamps or schedules takes a `Clock`, so tests can hold time still or move it on
//! with `ManualClock`. Times are `Timestamp`s: milliseconds since the Unix epoch, stored as integers
//! in both databases and rendered as RFC 3339 in the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
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
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
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

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1000));
        assert_eq!(clock.now(), Timestamp(1000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp(3000));
    }
}
