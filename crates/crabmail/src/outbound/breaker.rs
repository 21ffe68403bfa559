//! Circuit breakers: an inbox (or a whole account) that hard-bounces too much, or whose mail is
//! being deferred in a storm, stops taking new mail to send until someone resumes it, before the
//! domain's reputation pays for it. This module decides from the figures; the store keeps them
//! and the pause, and the queue asks after every round that bounced or deferred something.
//!
//! Hard bounces are Sisimai's "hard": the address itself is bad (RFC 3463 X.1.x); a refusal for
//! policy, content or reputation is not counted. Mail already queued keeps going; only new sends
//! are refused (HTTP 423 `sending_paused`, SMTP 451 4.7.1).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The thresholds (`breaker.*` settings); a rate of 0 turns its breaker off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// How far back recipients count for the hard-bounce rate (by when their message left).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Recipients with a final outcome in the window before the rate means anything.
    pub min_recipients: u64,
    pub hard_bounce_rate: f64,
    /// How far back delivery attempts count for a deferral storm.
    #[serde(with = "humantime_serde")]
    pub deferral_window: Duration,
    pub min_attempts: u64,
    pub deferral_rate: f64,
}

/// One scope's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Recipients of mail sent in the window that were delivered, bounced or expired.
    pub recipients: u64,
    /// Of those, bounced because the address is bad (X.1.x).
    pub hard_bounces: u64,
    /// Delivery attempts in the deferral window, and how many were deferred.
    pub attempts: u64,
    pub deferrals: u64,
}

/// Why a breaker tripped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trip {
    /// `hard_bounce_rate` or `deferral_storm`.
    pub reason: &'static str,
    pub rate: f64,
    pub threshold: f64,
}

/// The breaker that trips on `metrics`, if any.
pub fn trips(config: &BreakerConfig, metrics: &Metrics) -> Option<Trip> {
    let rate = |part: u64, whole: u64| part as f64 / whole.max(1) as f64;
    let bounces = rate(metrics.hard_bounces, metrics.recipients);
    if config.hard_bounce_rate > 0.0
        && metrics.recipients >= config.min_recipients
        && bounces >= config.hard_bounce_rate
    {
        return Some(Trip {
            reason: "hard_bounce_rate",
            rate: bounces,
            threshold: config.hard_bounce_rate,
        });
    }
    let deferrals = rate(metrics.deferrals, metrics.attempts);
    if config.deferral_rate > 0.0
        && metrics.attempts >= config.min_attempts
        && deferrals >= config.deferral_rate
    {
        return Some(Trip {
            reason: "deferral_storm",
            rate: deferrals,
            threshold: config.deferral_rate,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(86_400),
            min_recipients: 20,
            hard_bounce_rate: 0.10,
            deferral_window: Duration::from_secs(3600),
            min_attempts: 20,
            deferral_rate: 0.5,
        }
    }

    #[test]
    fn a_high_hard_bounce_rate_trips_once_there_is_enough_mail() {
        let m = |recipients, hard_bounces| Metrics {
            recipients,
            hard_bounces,
            ..Metrics::default()
        };
        assert_eq!(
            trips(&config(), &m(19, 10)),
            None,
            "too little mail to judge"
        );
        assert_eq!(trips(&config(), &m(22, 2)), None, "9% is under 10%");
        let trip = trips(&config(), &m(25, 5)).expect("20% trips");
        assert_eq!(trip.reason, "hard_bounce_rate");
        assert!((trip.rate - 0.2).abs() < 1e-9);
        let off = BreakerConfig {
            hard_bounce_rate: 0.0,
            ..config()
        };
        assert_eq!(trips(&off, &m(25, 25)), None);
    }

    #[test]
    fn a_deferral_storm_trips() {
        let m = Metrics {
            attempts: 40,
            deferrals: 30,
            ..Metrics::default()
        };
        assert_eq!(
            trips(&config(), &m).map(|t| t.reason),
            Some("deferral_storm")
        );
        let calm = Metrics { deferrals: 10, ..m };
        assert_eq!(trips(&config(), &calm), None);
    }
}
