//! Pacing per destination: at most `delivery.rate_per_destination` messages a minute to one
//! destination (a recipient domain, or the relay), and an adaptive slowdown when a receiver says
//! it is being sent too much (421, or a 4.7.x deferral: "rate limited", "try later"): the
//! destination then rests for a backoff (`delivery.throttle_backoff`, doubling at each new
//! throttle up to `delivery.throttle_backoff_max`), and recovers at its first success.
//!
//! A job that may not go yet is not sent; its recipients are deferred to the moment the
//! destination is free, with the reason in their delivery state. State is per node, in memory,
//! on the server's clock.

use crate::clock::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Messages a destination may receive at once before the per-minute pace applies.
const BURST: f64 = 10.0;
/// Destinations remembered at most (idle ones are forgotten first).
const MAX_TRACKED: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Destination {
    /// When the pace lets the next message go (GCRA's theoretical arrival time), in ms.
    next_at: i64,
    /// Rests until then after a throttling answer.
    resting_until: i64,
    /// The rest the next throttle imposes.
    backoff: Duration,
}

/// Why a job must wait, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub until: Timestamp,
    pub reason: String,
}

pub struct Pacer {
    per_minute: u32,
    backoff: Duration,
    backoff_max: Duration,
    destinations: Mutex<HashMap<String, Destination>>,
}

impl Pacer {
    pub fn new(per_minute: u32, backoff: Duration, backoff_max: Duration) -> Pacer {
        Pacer {
            per_minute,
            backoff,
            backoff_max: backoff_max.max(backoff),
            destinations: Mutex::new(HashMap::new()),
        }
    }

    /// Whether one message may go to `destination` now; counts it if so.
    pub fn admit(&self, destination: &str, now: Timestamp) -> Result<(), Wait> {
        let mut all = self.lock();
        let d = self.state(&mut all, destination, now);
        if d.resting_until > now.0 {
            return Err(Wait {
                until: Timestamp(d.resting_until),
                reason: format!(
                    "{destination} asked us to slow down; resting until then (adaptive slowdown)"
                ),
            });
        }
        if self.per_minute == 0 {
            return Ok(());
        }
        let interval = 60_000.0 / f64::from(self.per_minute);
        let tolerance = (interval * (BURST - 1.0)) as i64;
        let next_at = d.next_at.max(now.0);
        if next_at - now.0 > tolerance {
            return Err(Wait {
                until: Timestamp(next_at - tolerance),
                reason: format!(
                    "paced: at most {} messages a minute to {destination}",
                    self.per_minute
                ),
            });
        }
        d.next_at = next_at + interval as i64;
        Ok(())
    }

    /// A throttling answer from `destination`: it rests for the backoff, which doubles for the
    /// next one. Returns when it may be tried again.
    pub fn throttled(&self, destination: &str, now: Timestamp) -> Timestamp {
        let mut all = self.lock();
        let d = self.state(&mut all, destination, now);
        // Several deliveries in flight may all meet the throttle: one rest, not one each.
        if d.resting_until <= now.0 {
            d.resting_until = now.plus(d.backoff).0;
            d.backoff = (d.backoff * 2).min(self.backoff_max);
        }
        Timestamp(d.resting_until)
    }

    /// A delivery got through: the destination has recovered, and the next throttle starts
    /// from the first backoff again.
    pub fn succeeded(&self, destination: &str) {
        if let Some(d) = self.lock().get_mut(destination) {
            d.backoff = self.backoff;
        }
    }

    /// A destination's state, fresh when it is new.
    fn state<'a>(
        &self,
        all: &'a mut HashMap<String, Destination>,
        destination: &str,
        now: Timestamp,
    ) -> &'a mut Destination {
        all.entry(destination.to_owned())
            .or_insert_with(|| Destination {
                next_at: now.0,
                resting_until: 0,
                backoff: self.backoff,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Destination>> {
        let mut all = match self.destinations.lock() {
            Ok(all) => all,
            Err(poisoned) => poisoned.into_inner(),
        };
        if all.len() > MAX_TRACKED {
            all.retain(|_, d| d.resting_until > 0 || d.backoff != self.backoff);
        }
        all
    }
}

/// Whether a deferral means "you are sending too much": 421 (the server is closing the
/// channel), or a 4.7.x status (RFC 3463: security or policy, where rate limits live).
pub fn is_throttling(code: Option<u16>, enhanced: Option<&str>) -> bool {
    code == Some(421)
        || (code.is_some_and(|c| (400..500).contains(&c))
            && enhanced.is_some_and(|e| e.starts_with("4.7.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn a_pace_lets_a_burst_through_then_one_per_interval() {
        let pacer = Pacer::new(60, Duration::from_secs(60), Duration::from_secs(1800));
        for _ in 0..10 {
            assert!(pacer.admit("x.test", T0).is_ok());
        }
        let wait = pacer.admit("x.test", T0).unwrap_err();
        assert_eq!(wait.until, Timestamp(T0.0 + 1_000));
        assert!(
            pacer.admit("y.test", T0).is_ok(),
            "destinations are separate"
        );
        assert!(pacer.admit("x.test", Timestamp(T0.0 + 1_000)).is_ok());
    }

    #[test]
    fn a_throttle_rests_the_destination_and_doubles_until_a_success() {
        let pacer = Pacer::new(0, Duration::from_secs(60), Duration::from_secs(150));
        assert!(pacer.admit("x.test", T0).is_ok());
        assert_eq!(pacer.throttled("x.test", T0), Timestamp(T0.0 + 60_000));
        // A second answer from the same burst does not extend the rest.
        assert_eq!(pacer.throttled("x.test", T0), Timestamp(T0.0 + 60_000));
        assert!(pacer.admit("x.test", Timestamp(T0.0 + 59_999)).is_err());
        let later = Timestamp(T0.0 + 60_000);
        assert!(pacer.admit("x.test", later).is_ok());
        assert_eq!(
            pacer.throttled("x.test", later),
            Timestamp(later.0 + 120_000)
        );
        let again = Timestamp(later.0 + 120_000);
        assert_eq!(
            pacer.throttled("x.test", again),
            Timestamp(again.0 + 150_000),
            "capped"
        );
        pacer.succeeded("x.test");
        let fresh = Timestamp(again.0 + 150_000);
        assert_eq!(
            pacer.throttled("x.test", fresh),
            Timestamp(fresh.0 + 60_000)
        );
        assert!(is_throttling(Some(421), None));
        assert!(is_throttling(Some(451), Some("4.7.0")));
        assert!(!is_throttling(Some(451), Some("4.3.0")));
        assert!(!is_throttling(Some(550), Some("5.7.1")));
    }
}
