//! Sending quotas as stored: the limits an account set, the counts of what each inbox and account
//! sent per step of time (`outbound::quota` decides with them), and what is held for later.

use super::*;
use crate::outbound::quota::{
    self, Bucket, Ledger, LimitOverrides, Limits, OnLimit, Release, Scope,
};

/// The default limits for one message (what its account set for itself or the inbox is read
/// in the enqueue's transaction and overrides them), and what its sender wants when they are
/// reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaCheck {
    pub inbox: Limits,
    pub account: Limits,
    pub on_limit: OnLimit,
    /// The warm-up ramp of new inboxes (the store knows the inbox's age).
    pub warmup: quota::Warmup,
}

/// A message as its quotas see it: whose, when, how many recipients.
#[derive(Debug, Clone, Copy)]
pub struct QuotaSubject<'a> {
    pub inbox_id: &'a str,
    pub account_id: &'a str,
    /// The sending inbox's custom domain (None on the shared domain): it warms up too.
    pub domain: Option<&'a str>,
    /// When it is sent (or approved).
    pub at: Timestamp,
    pub recipients: usize,
    pub dry_run: bool,
}

/// What `Sending::enqueue` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Committed; it leaves at `release.at`.
    Queued(Release),
    /// Nothing written: the sender asked for a refusal, and a quota holds it until `release.at`.
    OverQuota(Release),
    /// Nothing written: no day ever takes this many recipients.
    NeverFits(quota::NeverFits),
    /// Nothing written: a dry run, and when the message would leave.
    DryRun(Release),
    /// Nothing written: the inbox's or the account's sending is paused.
    Paused(Pause),
    /// Committed, waiting for approval (nothing counted yet).
    Held,
}

/// Use of one scope's quota: its counts over the last day (and what is promised for later), and
/// the messages it holds.
#[derive(Debug, Clone, Default)]
pub struct QuotaUse {
    pub buckets: Vec<Bucket>,
    pub held: u64,
    pub next_release: Option<Timestamp>,
}

/// Whose quota: an account, or one of its inboxes.
#[derive(Debug, Clone, Copy)]
pub enum QuotaScope<'a> {
    Account(&'a str),
    Inbox {
        account_id: &'a str,
        inbox_id: &'a str,
    },
}

impl<'a> QuotaScope<'a> {
    /// The key its counts and limits are stored under.
    pub fn key(&self) -> &str {
        match self {
            QuotaScope::Account(id) => id,
            QuotaScope::Inbox { inbox_id, .. } => inbox_id,
        }
    }

    /// The account's id, borrowed for as long as the scope's.
    pub fn account_id(&self) -> &'a str {
        match *self {
            QuotaScope::Account(id) => id,
            QuotaScope::Inbox { account_id, .. } => account_id,
        }
    }
}

#[async_trait]
pub trait Quotas: Send + Sync {
    /// What the account set for this scope (all None when nothing was).
    async fn send_limits(&self, scope: QuotaScope<'_>) -> Result<LimitOverrides>;
    async fn set_send_limits(
        &self,
        scope: QuotaScope<'_>,
        limits: LimitOverrides,
        now: Timestamp,
    ) -> Result<()>;
    async fn quota_use(&self, scope: QuotaScope<'_>, now: Timestamp) -> Result<QuotaUse>;
}

/// A message's release under its quotas, from the counts of its inbox and account (read inside
/// the enqueue's transaction): `Ok` to write it, `Err` for what to answer without writing.
pub(super) fn decide(
    check: &QuotaCheck,
    message: &QuotaSubject<'_>,
    counts: &[(String, Bucket)],
    overrides: &[(String, LimitOverrides)],
    paused: Option<Pause>,
    inbox_created: Option<Timestamp>,
    domain_verified: Option<Timestamp>,
) -> std::result::Result<Release, Enqueued> {
    if let Some(pause) = paused {
        return Err(Enqueued::Paused(pause));
    }
    let limits = |key: &str, default: Limits| {
        overrides
            .iter()
            .find(|(scope, _)| scope == key)
            .map_or(default, |(_, set)| quota::merged(default, set))
    };
    let of = |key: &str| -> Vec<Bucket> {
        counts
            .iter()
            .filter(|(scope, _)| scope == key)
            .map(|(_, b)| *b)
            .collect()
    };
    let inbox = of(message.inbox_id);
    // Held mail leaves in the order it was sent (to the second): never before the inbox's
    // latest held release.
    let latest = inbox
        .iter()
        .filter(|b| b.step == quota::SECOND_STEP)
        .map(|b| b.start)
        .max()
        .unwrap_or(i64::MIN);
    // Only a hold counts: a send of the same moment committed just before this one (its
    // second may start after this message was made) must not turn this one into a hold.
    let not_before = if latest > message.at.0 + quota::SECOND_STEP {
        Timestamp(latest)
    } else {
        message.at
    };
    let mut inbox_limits = limits(message.inbox_id, check.inbox);
    if let Some(created) = inbox_created {
        inbox_limits.warmup = check.warmup.limit_at(created, message.at);
    }
    let ledgers = [
        Ledger {
            scope: Scope::Inbox,
            limits: inbox_limits,
            buckets: inbox,
        },
        Ledger {
            scope: Scope::Account,
            limits: limits(message.account_id, check.account),
            buckets: of(message.account_id),
        },
        Ledger {
            scope: Scope::Domain,
            limits: Limits {
                warmup: domain_verified.map_or(0, |at| check.warmup.limit_at(at, message.at)),
                ..Limits::default()
            },
            buckets: message
                .domain
                .map(|d| of(&quota::domain_key(d)))
                .unwrap_or_default(),
        },
    ];
    let recipients = u32::try_from(message.recipients).unwrap_or(u32::MAX);
    match quota::release(&ledgers, recipients, message.at, not_before) {
        Err(never) => Err(Enqueued::NeverFits(never)),
        Ok(release) if release.at > message.at && check.on_limit == OnLimit::Reject => {
            Err(Enqueued::OverQuota(release))
        }
        Ok(release) if message.dry_run => Err(Enqueued::DryRun(release)),
        Ok(release) => Ok(release),
    }
}

/// Whether this is the scope's first count in the current minute: the moment to drop counts older
/// than the longest window, so pruning runs about once a minute per sender.
pub(super) fn prune_due(counts: &[(String, Bucket)], scope: &str, now: Timestamp) -> bool {
    let minute = now.0.div_euclid(quota::MINUTE_STEP) * quota::MINUTE_STEP;
    !counts
        .iter()
        .any(|(s, b)| s == scope && b.step == quota::MINUTE_STEP && b.start == minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::quota::Warmup;

    #[test]
    fn a_custom_domain_warms_up_across_its_inboxes() {
        let now = Timestamp(1_800_000_000_000);
        let check = QuotaCheck {
            inbox: Limits::default(),
            account: Limits::default(),
            on_limit: OnLimit::Hold,
            warmup: Warmup {
                start: 3,
                growth: 2.0,
            },
        };
        let subject = QuotaSubject {
            inbox_id: "inb_2",
            account_id: "acc_1",
            domain: Some("brand.test"),
            at: now,
            recipients: 1,
            dry_run: false,
        };
        // Another inbox of the domain already sent to three recipients today.
        let counts: Vec<(String, Bucket)> = Bucket::of(now, 3)
            .into_iter()
            .map(|b| (quota::domain_key("brand.test"), b))
            .collect();
        let held = decide(&check, &subject, &counts, &[], None, Some(now), Some(now))
            .expect("held, not refused");
        assert_eq!(held.held_by.map(|h| h.scope), Some(Scope::Domain));
        // On the shared domain (no custom domain) the same counts hold nothing back.
        let shared = QuotaSubject {
            domain: None,
            ..subject
        };
        let free = decide(&check, &shared, &counts, &[], None, Some(now), None).expect("free");
        assert_eq!(free.held_by, None);
    }

    #[test]
    fn a_send_committed_just_before_this_one_is_not_a_hold() {
        // Under load, a message made at 10.9 s can commit after one made at 11.0 s: the
        // ledger's latest second then starts after this message was made.
        let made = Timestamp(1_800_000_010_900);
        let check = QuotaCheck {
            inbox: Limits::default(),
            account: Limits::default(),
            on_limit: OnLimit::Reject,
            warmup: Warmup::default(),
        };
        let subject = QuotaSubject {
            inbox_id: "inb_1",
            account_id: "acc_1",
            domain: None,
            at: made,
            recipients: 1,
            dry_run: false,
        };
        let counts: Vec<(String, Bucket)> = Bucket::of(Timestamp(made.0 + 100), 1)
            .into_iter()
            .map(|b| ("inb_1".to_owned(), b))
            .collect();
        let release = decide(&check, &subject, &counts, &[], None, None, None)
            .expect("not refused: nothing holds it");
        assert_eq!(release.at, made);
    }
}
