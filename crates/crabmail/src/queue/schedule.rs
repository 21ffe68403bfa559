//! When to try again: the retry arithmetic of the queue, as a pure function.
//!
//! After the n-th failed attempt the delay is the n-th entry of `queue.retry` (the last entry
//! repeats), stretched by up to `queue.jitter` of itself so retries of many messages spread out.
//! No attempt is scheduled past the message's lifetime: the last one happens when the lifetime
//! ends, and a failure then expires the recipient (which bounces with the last reason).

use crate::clock::Timestamp;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub retry: Vec<Duration>,
    pub lifetime: Duration,
    pub jitter: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(Timestamp),
    Expire,
}

impl Schedule {
    /// After failed attempt number `attempts` (1 for the first) made at `now`, of a message queued
    /// at `queued_at`. `sample` is uniform in [0, 1) and chooses the jitter.
    pub fn after_failure(
        &self,
        attempts: u32,
        queued_at: Timestamp,
        now: Timestamp,
        sample: f64,
    ) -> Next {
        let expires = queued_at.plus(self.lifetime);
        if now >= expires {
            return Next::Expire;
        }
        let index = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        let base = self
            .retry
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(3600));
        let stretch = 1.0 + self.jitter * sample.clamp(0.0, 1.0);
        let delay = base.mul_f64(stretch);
        Next::RetryAt(now.plus(delay).min(expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn default_schedule(jitter: f64) -> Schedule {
        Schedule {
            retry: [1, 5, 15, 30, 60, 120, 240]
                .iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            lifetime: Duration::from_secs(5 * 24 * 3600),
            jitter,
        }
    }

    #[test]
    fn the_default_schedule_without_jitter() {
        let s = default_schedule(0.0);
        let q = Timestamp(0);
        let table = [
            (1, 0, Next::RetryAt(Timestamp(MIN))),
            (2, MIN, Next::RetryAt(Timestamp(6 * MIN))),
            (3, 6 * MIN, Next::RetryAt(Timestamp(21 * MIN))),
            (4, 21 * MIN, Next::RetryAt(Timestamp(51 * MIN))),
            (5, 51 * MIN, Next::RetryAt(Timestamp(111 * MIN))),
            (6, 111 * MIN, Next::RetryAt(Timestamp(231 * MIN))),
            (7, 231 * MIN, Next::RetryAt(Timestamp(471 * MIN))),
            // The last delay repeats.
            (8, 471 * MIN, Next::RetryAt(Timestamp(711 * MIN))),
            (40, 100 * HOUR, Next::RetryAt(Timestamp(104 * HOUR))),
            // Never past the lifetime (120 h): the last attempt is at its end ...
            (41, 118 * HOUR, Next::RetryAt(Timestamp(120 * HOUR))),
            // ... and a failure then (or later) expires.
            (42, 120 * HOUR, Next::Expire),
            (43, 130 * HOUR, Next::Expire),
        ];
        for (attempts, now, want) in table {
            assert_eq!(
                s.after_failure(attempts, q, Timestamp(now), 0.5),
                want,
                "attempt {attempts}"
            );
        }
    }

    #[test]
    fn jitter_stretches_within_its_fraction() {
        let s = default_schedule(0.1);
        let q = Timestamp(0);
        assert_eq!(s.after_failure(1, q, q, 0.0), Next::RetryAt(Timestamp(MIN)));
        assert_eq!(
            s.after_failure(1, q, q, 0.5),
            Next::RetryAt(Timestamp(63_000))
        );
        assert_eq!(
            s.after_failure(1, q, q, 0.999_999),
            Next::RetryAt(Timestamp(65_999))
        );
        assert_eq!(
            s.after_failure(1, q, q, 7.0),
            Next::RetryAt(Timestamp(66_000)),
            "sample is clamped"
        );
    }

    #[test]
    fn a_short_lifetime_expires_early() {
        let s = Schedule {
            retry: vec![Duration::from_secs(600)],
            lifetime: Duration::from_secs(900),
            jitter: 0.0,
        };
        let q = Timestamp(1_000_000);
        assert_eq!(
            s.after_failure(1, q, q, 0.0),
            Next::RetryAt(q.plus(Duration::from_secs(600)))
        );
        assert_eq!(
            s.after_failure(2, q, q.plus(Duration::from_secs(600)), 0.0),
            Next::RetryAt(q.plus(Duration::from_secs(900)))
        );
        assert_eq!(
            s.after_failure(3, q, q.plus(Duration::from_secs(900)), 0.0),
            Next::Expire
        );
    }
}
