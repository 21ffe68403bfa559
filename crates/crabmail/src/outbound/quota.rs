//! Sending quotas: when a message may leave, given what its inbox and its account already sent.
//!
//! A quota never refuses by itself: every message gets a release time, now when the windows
//! allow it, later when they do not, and the queue holds it until then (the caller may prefer a
//! refusal; see `OnLimit`). Windows slide. What was sent is kept as counts per step of time (a
//! second for the minute window, a minute for the hour and day windows), and a step counts as
//! if everything in it left at its end, so a window never holds more than its limit and a held
//! message leaves at most one step later than an exact log would let it. Counts include
//! messages held for later, so two messages are never promised the same room.
//!
//! This module decides; the store keeps the counts and calls it inside the enqueue's
//! transaction, under the account's lock, so nodes sharing PostgreSQL share one quota.

use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

/// The step of the counts the minute window reads, in milliseconds.
pub const SECOND_STEP: i64 = 1_000;
/// The step of the counts the hour and day windows read, in milliseconds.
pub const MINUTE_STEP: i64 = 60_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// How far back counts are read: the longest window and one step.
pub const HORIZON: i64 = DAY + MINUTE_STEP;

/// One scope's limits; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    pub recipients_per_day: u32,
    /// A new inbox's warm-up ramp (recipients per day), from `Warmup`; never configured
    /// directly.
    #[serde(skip)]
    pub warmup: u32,
}

/// The warm-up ramp of a new inbox: `start` recipients a day on its first day, times `growth`
/// each day after, until the ramp passes the inbox's own limits (a new sender has no
/// reputation; receivers trust volume that grows).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// Recipients on day one; 0 turns the ramp off.
    pub start: u32,
    pub growth: f64,
}

impl Warmup {
    /// The ramp's recipients-per-day limit for an inbox made at `created`, at `now` (0: none).
    pub fn limit_at(&self, created: Timestamp, now: Timestamp) -> u32 {
        if self.start == 0 {
            return 0;
        }
        let days = (now.0 - created.0).max(0) / DAY;
        let limit = f64::from(self.start) * self.growth.max(1.0).powi(days.min(64) as i32);
        if limit >= 1e9 { 0 } else { limit as u32 }
    }
}

/// Whose quota: the sending inbox's or its account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Inbox,
    Account,
    /// A custom sending domain, on its warm-up ramp (all its inboxes together).
    Domain,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inbox => "inbox",
            Scope::Account => "account",
            Scope::Domain => "domain",
        }
    }
}

/// The key a custom domain's counts are kept under (never an inbox's or an account's id).
pub fn domain_key(domain: &str) -> String {
    format!("domain:{domain}")
}

/// What holds a message, as a person reads it: `inbox 60 per_minute`.
pub fn describe(hit: Option<&Hit>) -> String {
    match hit {
        Some(hit) => format!("{} {} {}", hit.scope.as_str(), hit.limit, hit.window.name()),
        None => "inbox order (its earlier held mail leaves first)".into(),
    }
}

/// One of the four windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Minute,
    Hour,
    Day,
    RecipientsDay,
    /// A new inbox's warm-up ramp: recipients per day.
    WarmUp,
}

impl Window {
    pub const ALL: [Window; 5] = [
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::RecipientsDay,
        Window::WarmUp,
    ];

    /// The setting's and the API's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "per_minute",
            Window::Hour => "per_hour",
            Window::Day => "per_day",
            Window::RecipientsDay => "recipients_per_day",
            Window::WarmUp => "warmup_recipients_per_day",
        }
    }

    pub fn length_ms(self) -> i64 {
        match self {
            Window::Minute => MINUTE,
            Window::Hour => HOUR,
            Window::Day | Window::RecipientsDay | Window::WarmUp => DAY,
        }
    }

    fn step(self) -> i64 {
        match self {
            Window::Minute => SECOND_STEP,
            _ => MINUTE_STEP,
        }
    }

    /// A day's quota used up is a different thing to tell a caller than a short burst.
    pub fn is_daily(self) -> bool {
        matches!(self, Window::Day | Window::RecipientsDay | Window::WarmUp)
    }

    pub fn limit(self, limits: &Limits) -> u32 {
        match self {
            Window::Minute => limits.per_minute,
            Window::Hour => limits.per_hour,
            Window::Day => limits.per_day,
            Window::RecipientsDay => limits.recipients_per_day,
            Window::WarmUp => limits.warmup,
        }
    }

    fn weight(self, bucket: &Bucket) -> i64 {
        match self {
            Window::RecipientsDay | Window::WarmUp => bucket.recipients,
            _ => bucket.messages,
        }
    }
}

/// What one scope sent (or will send) within one step of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// `SECOND_STEP` or `MINUTE_STEP`.
    pub step: i64,
    /// The step's start, in milliseconds since the epoch.
    pub start: i64,
    pub messages: i64,
    pub recipients: i64,
}

impl Bucket {
    /// The two buckets (one per step) a message released at `at` is counted in.
    pub fn of(at: Timestamp, recipients: i64) -> [Bucket; 2] {
        [SECOND_STEP, MINUTE_STEP].map(|step| Bucket {
            step,
            start: at.0.div_euclid(step) * step,
            messages: 1,
            recipients,
        })
    }
}

/// One scope: its limits and its counts from `now - HORIZON` on (future ones included).
#[derive(Debug, Clone)]
pub struct Ledger {
    pub scope: Scope,
    pub limits: Limits,
    pub buckets: Vec<Bucket>,
}

/// The limit that holds a message back (or would, for a caller that prefers a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub scope: Scope,
    pub window: Window,
    pub limit: u32,
}

/// When a message may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub at: Timestamp,
    /// The limit that holds it, when it leaves later than it was sent (None when only the
    /// queue order holds it: older held mail of the inbox leaves first).
    pub held_by: Option<Hit>,
}

/// A message no window can ever take: more recipients than a day allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeverFits {
    pub hit: Hit,
    pub recipients: u32,
}

/// What the sender asked for when a quota is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Accept and hold until the window allows (`"on_limit": "queue"`, the default).
    #[default]
    #[serde(rename = "queue")]
    Hold,
    /// Refuse with the time to wait (`"on_limit": "reject"`; SMTP submission's 451).
    Reject,
}

impl From<crabmail_api::OnLimit> for OnLimit {
    fn from(choice: crabmail_api::OnLimit) -> Self {
        match choice {
            crabmail_api::OnLimit::Queue => OnLimit::Hold,
            crabmail_api::OnLimit::Reject => OnLimit::Reject,
        }
    }
}

/// The earliest moment from `not_before` on (a message sent at `now` queues behind its inbox's
/// held mail) at which a message of `recipients` recipients keeps every window of every ledger
/// within its limit.
pub fn release(
    ledgers: &[Ledger],
    recipients: u32,
    now: Timestamp,
    not_before: Timestamp,
) -> Result<Release, NeverFits> {
    let mut at = now.0.max(not_before.0);
    let mut held_by = None;
    for ledger in ledgers {
        for window in Window::ALL {
            let limit = window.limit(&ledger.limits);
            if limit == 0 {
                continue;
            }
            let hit = Hit {
                scope: ledger.scope,
                window,
                limit,
            };
            let weight = match window {
                Window::RecipientsDay | Window::WarmUp => i64::from(recipients),
                _ => 1,
            };
            if weight > i64::from(limit) {
                return Err(NeverFits { hit, recipients });
            }
            // A limit that would hold it is named even when the queue order holds it as long.
            if let Some(earliest) = earliest_in(window, limit, weight, &ledger.buckets)
                && earliest > now.0
                && (earliest > at || held_by.is_none())
            {
                at = at.max(earliest);
                held_by = Some(hit);
            }
        }
    }
    Ok(Release {
        at: Timestamp(at),
        held_by,
    })
}

/// The earliest time `weight` more fits under `limit` in `window`, counting every bucket from
/// the latest back; None when it fits whenever.
fn earliest_in(window: Window, limit: u32, weight: i64, buckets: &[Bucket]) -> Option<i64> {
    let step = window.step();
    let mut ours: Vec<&Bucket> = buckets.iter().filter(|b| b.step == step).collect();
    ours.sort_unstable_by_key(|b| std::cmp::Reverse(b.start));
    let room = i64::from(limit) - weight;
    let mut seen = 0i64;
    for bucket in ours {
        seen += window.weight(bucket);
        if seen > room {
            // Everything from this bucket back must have left the window: it counts as if sent
            // at the bucket's end.
            return Some(bucket.start + step + window.length_ms());
        }
    }
    None
}

/// How much of a window is used at `now` (messages, or recipients for `RecipientsDay`).
pub fn used(window: Window, buckets: &[Bucket], now: Timestamp) -> i64 {
    let step = window.step();
    let from = now.0 - window.length_ms();
    buckets
        .iter()
        .filter(|b| b.step == step && b.start + step > from && b.start <= now.0)
        .map(|b| window.weight(b))
        .sum()
}

/// Limits in force: an override where one is set, else the default.
pub fn merged(default: Limits, overrides: &LimitOverrides) -> Limits {
    Limits {
        warmup: default.warmup,
        per_minute: overrides.per_minute.unwrap_or(default.per_minute),
        per_hour: overrides.per_hour.unwrap_or(default.per_hour),
        per_day: overrides.per_day.unwrap_or(default.per_day),
        recipients_per_day: overrides
            .recipients_per_day
            .unwrap_or(default.recipients_per_day),
    }
}

/// What an account set for itself or one of its inboxes; None keeps the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
    pub recipients_per_day: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a whole minute

    fn ledger(scope: Scope, limits: Limits, sent: &[(i64, i64)]) -> Ledger {
        let mut buckets: Vec<Bucket> = Vec::new();
        for &(at, recipients) in sent {
            for b in Bucket::of(Timestamp(at), recipients) {
                match buckets
                    .iter_mut()
                    .find(|x| x.step == b.step && x.start == b.start)
                {
                    Some(x) => {
                        x.messages += 1;
                        x.recipients += recipients;
                    }
                    None => buckets.push(b),
                }
            }
        }
        Ledger {
            scope,
            limits,
            buckets,
        }
    }

    fn per_minute(n: u32) -> Limits {
        Limits {
            per_minute: n,
            ..Limits::default()
        }
    }

    #[test]
    fn a_burst_over_a_minute_quota_leaves_a_minute_at_a_time_in_order() {
        let mut sent: Vec<(i64, i64)> = Vec::new();
        let mut releases = Vec::new();
        for _ in 0..150 {
            let l = ledger(Scope::Inbox, per_minute(60), &sent);
            let last = sent.last().map_or(T0, |s| s.0);
            let r = release(&[l], 1, Timestamp(T0), Timestamp(last)).expect("fits");
            sent.push((r.at.0, 1));
            releases.push(r);
        }
        assert!(
            releases[..60]
                .iter()
                .all(|r| r.at.0 == T0 && r.held_by.is_none())
        );
        // The first second's sixty leave the window at its end: one minute and one step later.
        assert!(releases[60..120].iter().all(|r| r.at.0 == T0 + 61_000));
        assert!(releases[120..].iter().all(|r| r.at.0 == T0 + 122_000));
        assert_eq!(
            releases[60].held_by,
            Some(Hit {
                scope: Scope::Inbox,
                window: Window::Minute,
                limit: 60
            })
        );
    }

    #[test]
    fn no_minute_ever_holds_more_than_the_limit() {
        // Sends at irregular moments; every sliding minute of the releases stays within 7.
        let mut sent: Vec<(i64, i64)> = Vec::new();
        for i in 0..200i64 {
            let now = T0 + (i * 7919) % 50_000 + i * 300;
            let l = ledger(Scope::Account, per_minute(7), &sent);
            let last = sent.iter().map(|s| s.0).max().unwrap_or(now);
            let r = release(&[l], 1, Timestamp(now), Timestamp(last)).expect("fits");
            sent.push((r.at.0, 1));
        }
        for &(start, _) in &sent {
            let within = sent
                .iter()
                .filter(|s| s.0 >= start && s.0 < start + MINUTE)
                .count();
            assert!(within <= 7, "{within} in the minute from {start}");
        }
    }

    #[test]
    fn held_messages_count_so_a_later_send_waits_behind_them() {
        // Five already promised for a minute from now fill a 5-per-hour quota.
        let later = T0 + MINUTE;
        let sent: Vec<(i64, i64)> = (0..5).map(|_| (later, 1)).collect();
        let limits = Limits {
            per_hour: 5,
            ..Limits::default()
        };
        let r = release(
            &[ledger(Scope::Account, limits, &sent)],
            1,
            Timestamp(T0),
            Timestamp(T0),
        )
        .expect("fits");
        assert_eq!(r.at.0, later + MINUTE_STEP + HOUR);
    }

    #[test]
    fn the_tighter_scope_decides_and_says_so() {
        let sent: Vec<(i64, i64)> = (0..3).map(|i| (T0 + i, 1)).collect();
        let inbox = ledger(Scope::Inbox, per_minute(10), &sent);
        let account = ledger(Scope::Account, per_minute(3), &sent);
        let r = release(&[inbox, account], 1, Timestamp(T0 + 10), Timestamp(T0)).expect("fits");
        assert_eq!(r.at.0, T0 + 61_000);
        assert_eq!(r.held_by.map(|h| h.scope), Some(Scope::Account));
    }

    #[test]
    fn recipients_per_day_weighs_each_message_by_its_recipients() {
        let limits = Limits {
            recipients_per_day: 10,
            ..Limits::default()
        };
        let sent = [(T0, 4), (T0 + 1_000, 4)];
        let now = Timestamp(T0 + 2_000);
        let fits = release(&[ledger(Scope::Inbox, limits, &sent)], 2, now, now);
        assert_eq!(fits.expect("fits").held_by, None);
        let held =
            release(&[ledger(Scope::Inbox, limits, &sent)], 3, now, now).expect("fits later");
        // The second message's 4 must leave the day: it counts as sent at its minute's end.
        assert_eq!(held.at.0, T0 + MINUTE_STEP + DAY);
        assert!(held.held_by.is_some_and(|h| h.window.is_daily()));
        let never = release(&[ledger(Scope::Inbox, limits, &[])], 11, now, now);
        assert_eq!(never.map_err(|e| e.recipients), Err(11));
    }

    #[test]
    fn use_counts_only_what_left_within_the_window() {
        let sent = [(T0 - 2 * MINUTE, 1), (T0 - 1_000, 2), (T0 + HOUR, 5)];
        let l = ledger(Scope::Inbox, Limits::default(), &sent);
        assert_eq!(used(Window::Minute, &l.buckets, Timestamp(T0)), 1);
        assert_eq!(used(Window::Hour, &l.buckets, Timestamp(T0)), 2);
        assert_eq!(used(Window::RecipientsDay, &l.buckets, Timestamp(T0)), 3);
    }

    #[test]
    fn the_warm_up_ramp_grows_daily_until_it_no_longer_binds() {
        let ramp = Warmup {
            start: 50,
            growth: 2.0,
        };
        let made = Timestamp(T0);
        assert_eq!(ramp.limit_at(made, made), 50);
        assert_eq!(ramp.limit_at(made, Timestamp(T0 + DAY - 1)), 50);
        assert_eq!(ramp.limit_at(made, Timestamp(T0 + 3 * DAY)), 400);
        assert_eq!(
            ramp.limit_at(made, Timestamp(T0 + 40 * DAY)),
            0,
            "past any limit"
        );
        let off = Warmup {
            start: 0,
            growth: 2.0,
        };
        assert_eq!(off.limit_at(made, made), 0);
        // A new inbox's 51st recipient of the day waits.
        let limits = Limits {
            warmup: 50,
            ..Limits::default()
        };
        let sent: Vec<(i64, i64)> = vec![(T0, 50)];
        let held = release(
            &[ledger(Scope::Inbox, limits, &sent)],
            1,
            Timestamp(T0),
            Timestamp(T0),
        )
        .expect("fits later");
        assert_eq!(held.held_by.map(|h| h.window), Some(Window::WarmUp));
    }

    #[test]
    fn no_limits_release_at_once() {
        let r = release(
            &[ledger(Scope::Inbox, Limits::default(), &[(T0, 100)])],
            50,
            Timestamp(T0),
            Timestamp(T0),
        );
        assert_eq!(
            r,
            Ok(Release {
                at: Timestamp(T0),
                held_by: None
            })
        );
    }
}
