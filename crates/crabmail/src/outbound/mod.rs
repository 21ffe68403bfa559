//! Accepting mail to send, from the API or from SMTP submission: who may send as whom, to whom
//! (suppressions), how big, and the one transaction that queues it before we say yes.
//!
//! An account sends only from its own inboxes (and a token limited to one inbox, only from that
//! one). Addresses the account has suppressed are refused up front, naming the address and why.
//! `Idempotency-Key` makes a retried API call return the first answer instead of sending twice.

mod attachments;
pub mod breaker;
pub mod compose;
pub mod quota;
pub mod watch;
pub mod wire;

use crate::account::address::Domain;
use crate::account::lists;
use crate::account::{AccountError, Caller};
use crate::clock::{SharedClock, Timestamp};
use crate::config::LimitsConfig;
use crate::id;
use crate::ingest::parse;
use crate::queue::QueueHandle;
use crate::store::{Enqueued, NewRecipient, QueuedMessage, QuotaCheck, SharedStore, StoreError};
use compose::{Addressee, Draft, Invalid};
use crabmail_api::{ParsedMessage, SendMessage};
use quota::OnLimit;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Recipients (to, cc and bcc together) of one message sent through the API.
pub const MAX_API_RECIPIENTS: usize = 50;
/// How long an Idempotency-Key holds.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(
        "{address} is on this account's suppression list ({reason}); remove it with DELETE /v1/suppressions/{address}"
    )]
    Suppressed {
        field: String,
        address: String,
        reason: String,
    },
    #[error("the message is {size} octets; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    #[error("not found")]
    NotFound,
    /// The sender asked for a refusal over quota; nothing was queued.
    #[error("sending quota reached ({}); sending is possible again at {}", quota::describe(.hit.as_ref()), .release.to_rfc3339())]
    OverQuota {
        hit: Option<quota::Hit>,
        release: Timestamp,
        now: Timestamp,
    },
    /// The inbox's or the account's sending is paused (a circuit breaker, or its kill switch).
    #[error("sending is paused for this {scope} since {} ({reason}); {how}", .since.to_rfc3339())]
    Paused {
        scope: &'static str,
        reason: String,
        since: Timestamp,
        how: &'static str,
    },
    /// A recipient the account's or inbox's outbound lists do not let it write to.
    #[error("{address} is {why} by this account or inbox's outbound list; see GET /v1/lists")]
    RecipientBlocked {
        field: String,
        address: String,
        why: &'static str,
    },
    /// More recipients than a day's quota takes: no wait helps.
    #[error("{recipients} recipients; the {} quota allows {} per day", .hit.scope.as_str(), .hit.limit)]
    NeverFits { hit: quota::Hit, recipients: u32 },
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Invalid> for SubmitError {
    fn from(i: Invalid) -> Self {
        SubmitError::Invalid {
            field: i.field,
            message: i.message,
        }
    }
}

/// A send request, composed: its id, recipients (deduplicated) and bytes.
struct Composed {
    message_id: String,
    recipients: Vec<String>,
    to: Vec<Addressee>,
    cc: Vec<Addressee>,
    bytes: Vec<u8>,
    /// It answers a message scored high risk.
    replies_to_high_risk: bool,
}

/// What a send would do, from a dry run.
#[derive(Debug)]
pub struct Preview {
    /// Why it would wait for approval, if it would.
    pub approval: Option<&'static str>,
    /// Each recipient, and the suppression that would refuse it.
    pub recipients: Vec<(String, Option<String>)>,
    /// Each recipient's outbound list verdict, in the same order.
    pub lists: Vec<lists::Verdict>,
    /// The message's size as it would be sent (signed).
    pub size: usize,
    pub dkim_domain: String,
    /// Selectors it would be signed with; empty: it would go unsigned.
    pub dkim_selectors: Vec<String>,
    /// When it would leave, or the quota refusal the sender asked for.
    pub quota: Result<quota::Release, SubmitError>,
    pub now: Timestamp,
}

/// What an accepted submission is known by, and when it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    /// When the message leaves: now, or later when a quota holds it (`held_by`).
    pub release_at: Timestamp,
    pub held_by: Option<quota::Hit>,
    pub accepted_at: Timestamp,
    /// Why it waits for approval, if it does.
    pub held_for: Option<&'static str>,
}

impl Accepted {
    /// Held for later by a quota (or behind the inbox's held mail).
    pub fn is_held(&self) -> bool {
        self.release_at > self.accepted_at
    }
}

#[derive(Clone)]
pub struct Outbound {
    store: SharedStore,
    signer: Arc<crate::dkim::Signer>,
    clock: SharedClock,
    queue: QueueHandle,
    wakeups: Arc<crate::events::Wakeups>,
    max_message_size: usize,
    limits: LimitsConfig,
    /// Replies to a message scored high risk wait for approval (`approval.high_risk_replies`).
    hold_high_risk_replies: bool,
    /// Whom the account's and inbox's outbound lists let it write to.
    lists: crate::account::lists::Lists,
    /// The shared domain (lower case): not a custom domain, so no domain warm-up.
    shared_domain: String,
}

impl Outbound {
    pub fn new(
        store: SharedStore,
        signer: Arc<crate::dkim::Signer>,
        clock: SharedClock,
        queue: QueueHandle,
        wakeups: Arc<crate::events::Wakeups>,
        lists: crate::account::lists::Lists,
        config: &crate::config::Config,
    ) -> Self {
        Outbound {
            lists,
            shared_domain: config.domain.to_ascii_lowercase(),
            store,
            signer,
            clock,
            queue,
            wakeups,
            max_message_size: config.smtp.max_message_size,
            limits: config.limits.clone(),
            hold_high_risk_replies: config.approval.high_risk_replies,
        }
    }

    /// The limits a message is sent under (the defaults; the store adds what the account set).
    pub fn quota_check(&self, on_limit: OnLimit) -> QuotaCheck {
        QuotaCheck {
            inbox: self.limits.inbox,
            account: self.limits.account,
            on_limit,
            warmup: self.limits.warmup,
        }
    }

    /// Wakes the queue worker (a held message was approved).
    pub fn wake_queue(&self) {
        self.queue.wake();
    }

    /// The default limits (what `limits.*` sets), before an account's own.
    pub fn default_limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// `POST /v1/inboxes/{id}/messages`. `raw_request` is the body as sent, for idempotency.
    pub async fn send(
        &self,
        caller: &Caller,
        inbox_id: &str,
        request: SendMessage,
        idempotency_key: Option<&str>,
        raw_request: &[u8],
    ) -> Result<Accepted, SubmitError> {
        let inbox = self.own_inbox(caller, inbox_id).await?;
        let idempotency = match idempotency_key {
            Some(key) => {
                let (key, hash) = idempotency(key, inbox_id, raw_request)?;
                if let Some(previous) = self.previous(&caller.account_id, &key, &hash).await? {
                    return Ok(previous);
                }
                Some((key, hash))
            }
            None => None,
        };
        let on_limit = request.on_limit.map(OnLimit::from).unwrap_or_default();
        let composed = self.compose_request(caller, &inbox, request).await?;
        let held_for = self.approval_needed(caller, &inbox, &composed);
        self.check_suppressions(
            &caller.account_id,
            &composed.recipients,
            &composed.to,
            &composed.cc,
        )
        .await?;
        self.check_lists(&caller.account_id, &inbox.id, &composed.recipients)
            .await?;
        let message = self
            .prepare(
                &caller.account_id,
                &inbox.id,
                &inbox.address,
                composed.message_id,
                composed.recipients,
                composed.bytes,
                "api",
                idempotency.clone(),
                on_limit,
            )
            .await?;
        let message = QueuedMessage {
            held_for,
            ..message
        };
        let accepted = self.commit(message).await;
        self.settle_race(&caller.account_id, accepted, idempotency)
            .await
    }

    /// `?dry_run=true`: what sending `request` would do (suppressions, quotas, the DKIM
    /// signature, the size), with nothing queued or counted.
    pub async fn preview(
        &self,
        caller: &Caller,
        inbox_id: &str,
        request: SendMessage,
    ) -> Result<Preview, SubmitError> {
        let inbox = self.own_inbox(caller, inbox_id).await?;
        let on_limit = request.on_limit.map(OnLimit::from).unwrap_or_default();
        let composed = self.compose_request(caller, &inbox, request).await?;
        let approval = self.approval_needed(caller, &inbox, &composed);
        let lowered: Vec<String> = composed
            .recipients
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let suppressed = self
            .store
            .suppressed(&caller.account_id, lowered.clone())
            .await?;
        let recipients = composed
            .recipients
            .iter()
            .zip(&lowered)
            .map(|(address, low)| {
                let reason = suppressed
                    .iter()
                    .find(|s| s.address == *low)
                    .map(|s| s.reason.clone());
                (address.clone(), reason)
            })
            .collect();
        let list_verdicts = self
            .list_verdicts(&caller.account_id, &inbox.id, &composed.recipients)
            .await?;
        let dkim_domain = Domain::of(&inbox.address)
            .map(Domain::into_string)
            .unwrap_or_default();
        let mut message = self
            .prepare(
                &caller.account_id,
                &inbox.id,
                &inbox.address,
                composed.message_id,
                composed.recipients,
                composed.bytes,
                "api",
                None,
                on_limit,
            )
            .await?;
        message.dry_run = true;
        let size = message.bytes.len();
        let now = message.created_at;
        let quota = match self.store.enqueue(message).await?.0 {
            Enqueued::DryRun(release) => Ok(release),
            Enqueued::OverQuota(release) => Err(SubmitError::OverQuota {
                hit: release.held_by,
                release: release.at,
                now,
            }),
            Enqueued::NeverFits(never) => Err(SubmitError::NeverFits {
                hit: never.hit,
                recipients: never.recipients,
            }),
            Enqueued::Paused(pause) => Err(paused(&pause)),
            Enqueued::Queued(_) | Enqueued::Held => {
                return Err(SubmitError::Store(StoreError::Unavailable(
                    "a dry run was queued".into(),
                )));
            }
        };
        Ok(Preview {
            approval,
            lists: list_verdicts,
            recipients,
            size,
            dkim_selectors: self.signer.selectors(&dkim_domain).await?,
            dkim_domain,
            quota,
            now,
        })
    }

    /// Why this send waits for approval: a token that may only draft, an inbox that requires
    /// it, or (by setting) a reply to a message scored high risk.
    fn approval_needed(
        &self,
        caller: &Caller,
        inbox: &crate::store::InboxRecord,
        composed: &Composed,
    ) -> Option<&'static str> {
        if !caller.scopes.can_send() {
            Some("token_may_only_draft")
        } else if inbox.approval_required {
            Some("inbox_requires_approval")
        } else if self.hold_high_risk_replies && composed.replies_to_high_risk {
            Some("reply_to_high_risk_message")
        } else {
            None
        }
    }

    /// The message a send request describes, composed, with its recipients (not yet checked
    /// against the suppression list).
    async fn compose_request(
        &self,
        caller: &Caller,
        inbox: &crate::store::InboxRecord,
        request: SendMessage,
    ) -> Result<Composed, SubmitError> {
        let now = self.clock.now();
        let message_id = id::new_id(id::MESSAGE, now);
        let domain = Domain::of(&inbox.address)
            .map(Domain::into_string)
            .unwrap_or_else(|| "localhost".into());
        let mut subject = request.subject.clone().unwrap_or_default();
        let mut to = parse_list(&request.to.to_vec(), "to")?;
        let cc = parse_list(&request.cc.to_vec(), "cc")?;
        let bcc = parse_list(&request.bcc.to_vec(), "bcc")?;
        let mut threading = Threading::default();
        let mut replies_to_high_risk = false;
        if let Some(parent_id) = &request.in_reply_to {
            let parent = self.parent(caller, &inbox.id, parent_id).await?;
            replies_to_high_risk = parent.security.as_ref().is_some_and(|s| s.level == "high");
            threading = Threading::answering(&parent, request.subject.is_none(), &mut subject);
            if to.is_empty() {
                let reply_to = parent.reply_to.first().or(parent.from.as_ref());
                if let Some(address) = reply_to.and_then(|m| m.address.as_deref()) {
                    to.push(compose::parse_addressee(address, "in_reply_to")?);
                }
            }
        }
        let all: Vec<&Addressee> = to.iter().chain(&cc).chain(&bcc).collect();
        check_recipient_count(all.len())?;
        let recipients: Vec<String> = dedup(all.iter().map(|a| a.address.clone()));
        for (name, value) in &request.headers {
            compose::check_header(name, value)?;
        }
        let attachments =
            attachments::resolve(&self.store, &caller.account_id, now, &request.attachments)
                .await?;
        let bytes = compose::compose(Draft {
            from: Addressee {
                name: inbox.display_name.clone().filter(|n| !n.is_empty()),
                address: inbox.address.clone(),
            },
            to: to.clone(),
            cc: cc.clone(),
            subject,
            text: request.text,
            html: request.html,
            attachments,
            headers: request.headers.into_iter().collect(),
            in_reply_to: threading.in_reply_to,
            references: threading.references,
            message_id: format!("{message_id}@{domain}"),
            date: now.millis() / 1000,
        });
        Ok(Composed {
            message_id,
            recipients,
            to,
            cc,
            bytes,
            replies_to_high_risk,
        })
    }

    /// The caller's inbox, or NotFound (another account's inbox is not found either).
    async fn own_inbox(
        &self,
        caller: &Caller,
        inbox_id: &str,
    ) -> Result<crate::store::InboxRecord, SubmitError> {
        if !id::looks_like(id::INBOX, inbox_id) || !caller.may_see_inbox(inbox_id) {
            return Err(SubmitError::NotFound);
        }
        self.store
            .get_inbox(&caller.account_id, inbox_id)
            .await?
            .ok_or(SubmitError::NotFound)
    }

    /// Two requests with one idempotency key at once: the loser answers like a retry.
    async fn settle_race(
        &self,
        account_id: &str,
        accepted: Result<Accepted, SubmitError>,
        idempotency: Option<(String, Vec<u8>)>,
    ) -> Result<Accepted, SubmitError> {
        match (accepted, idempotency) {
            (Err(SubmitError::Store(StoreError::Conflict)), Some((key, hash))) => self
                .previous(account_id, &key, &hash)
                .await?
                .ok_or(SubmitError::IdempotencyConflict),
            (result, _) => result,
        }
    }

    /// SMTP submission: the message as the client sent it, from `return_path` (an inbox of the
    /// account, checked by the session) to `recipients`.
    pub async fn submit(
        &self,
        account_id: &str,
        inbox_id: &str,
        return_path: &str,
        recipients: Vec<String>,
        bytes: Vec<u8>,
        held_for: Option<&'static str>,
    ) -> Result<Accepted, SubmitError> {
        self.check_lists(account_id, inbox_id, &recipients).await?;
        let message_id = id::new_id(id::MESSAGE, self.clock.now());
        let message = self
            .prepare(
                account_id,
                inbox_id,
                return_path,
                message_id,
                recipients,
                bytes,
                "smtp",
                None,
                self.limits.submission_on_limit,
            )
            .await?;
        self.commit(QueuedMessage {
            held_for,
            ..message
        })
        .await
    }

    /// The suppression (if any) among `addresses`, for SMTP's RCPT.
    pub async fn suppression(
        &self,
        account_id: &str,
        address: &str,
    ) -> Result<Option<String>, StoreError> {
        let found = self
            .store
            .suppressed(account_id, vec![address.to_ascii_lowercase()])
            .await?;
        Ok(found.into_iter().next().map(|s| s.reason))
    }

    /// The message as it will be stored and sent: on the clean wire, within the size limit,
    /// parsed for its thread, signed.
    #[allow(clippy::too_many_arguments)]
    async fn prepare(
        &self,
        account_id: &str,
        inbox_id: &str,
        return_path: &str,
        message_id: String,
        recipients: Vec<String>,
        bytes: Vec<u8>,
        source: &'static str,
        idempotency: Option<(String, Vec<u8>)>,
        on_limit: OnLimit,
    ) -> Result<QueuedMessage, SubmitError> {
        // CRLF only, no NUL, no line over 998 octets: before the signature, which then covers
        // exactly what is sent.
        let bytes = wire::normalize(bytes);
        if bytes.len() > self.max_message_size {
            return Err(SubmitError::TooLarge {
                size: bytes.len(),
                limit: self.max_message_size,
            });
        }
        let now = self.clock.now();
        let parsed = parse::parse(&bytes);
        // Signed once, here: the stored bytes are what every delivery attempt sends.
        let domain = Domain::of(return_path)
            .map(Domain::into_string)
            .unwrap_or_default();
        let bytes = self.signer.sign(&domain, bytes).await?;
        let message = QueuedMessage {
            id: message_id.clone(),
            account_id: account_id.to_owned(),
            inbox_id: inbox_id.to_owned(),
            blob_id: id::new_id(id::BLOB, now),
            bytes: Arc::new(bytes),
            return_path: return_path.to_owned(),
            created_at: now,
            source,
            thread: crate::ingest::thread::keys(&parsed.view),
            summary: parsed.summary,
            parsed: parsed.view,
            recipients: recipients
                .into_iter()
                .map(|address| NewRecipient {
                    id: id::new_id(id::RECIPIENT, now),
                    domain: Domain::of(&address)
                        .map(Domain::into_string)
                        .unwrap_or_default(),
                    address,
                })
                .collect(),
            idempotency,
            quota: Some(self.quota_check(on_limit)),
            dry_run: false,
            held_for: None,
            // The shared domain is the operator's; a custom domain warms up on its own.
            custom_domain: (!domain.is_empty() && domain != self.shared_domain).then_some(domain),
        };
        Ok(message)
    }

    /// Queues a prepared message, or says which quota refuses it.
    async fn commit(&self, message: QueuedMessage) -> Result<Accepted, SubmitError> {
        let (message_id, now) = (message.id.clone(), message.created_at);
        // DURABILITY: committed before the 202 (API) or 250 (SMTP) that acknowledges it.
        let held_for = message.held_for;
        let (done, wake) = self.store.enqueue(message).await?;
        if let Some(wake) = wake {
            self.wakeups.announce_all(&[wake]);
        }
        match done {
            Enqueued::Held => Ok(Accepted {
                id: message_id,
                release_at: now,
                held_by: None,
                accepted_at: now,
                held_for,
            }),
            Enqueued::Queued(release) => {
                // Held mail too: the queue then sleeps until its release, not past it.
                self.queue.wake();
                Ok(Accepted {
                    id: message_id,
                    release_at: release.at,
                    held_by: release.held_by,
                    accepted_at: now,
                    held_for: None,
                })
            }
            Enqueued::OverQuota(release) => Err(SubmitError::OverQuota {
                hit: release.held_by,
                release: release.at,
                now,
            }),
            Enqueued::NeverFits(never) => Err(SubmitError::NeverFits {
                hit: never.hit,
                recipients: never.recipients,
            }),
            Enqueued::DryRun(_) => Err(SubmitError::Store(StoreError::Unavailable(
                "a message to send was only previewed".into(),
            ))),
            Enqueued::Paused(pause) => Err(paused(&pause)),
        }
    }

    /// The first answer for an Idempotency-Key used with the same request within the window.
    async fn previous(
        &self,
        account_id: &str,
        key: &str,
        hash: &[u8],
    ) -> Result<Option<Accepted>, SubmitError> {
        let now = self.clock.now();
        let window_start =
            crate::clock::Timestamp(now.millis() - IDEMPOTENCY_WINDOW.as_millis() as i64);
        self.store
            .expire_idempotency(account_id, key, window_start)
            .await?;
        match self.store.find_idempotency(account_id, key).await? {
            Some(record) if record.request_hash == hash => {
                let release_at = self
                    .store
                    .get_outbound(account_id, &record.message_id)
                    .await?
                    .map_or(record.created_at, |m| m.release_at);
                Ok(Some(Accepted {
                    id: record.message_id,
                    release_at,
                    held_by: None,
                    accepted_at: record.created_at,
                    held_for: None,
                }))
            }
            Some(_) => Err(SubmitError::IdempotencyConflict),
            None => Ok(None),
        }
    }

    async fn parent(
        &self,
        caller: &Caller,
        inbox_id: &str,
        parent_id: &str,
    ) -> Result<ParsedMessage, SubmitError> {
        let not_found = || SubmitError::Invalid {
            field: "in_reply_to".into(),
            message: "no message with this id was received by this inbox".into(),
        };
        if !id::looks_like(id::MESSAGE, parent_id) {
            return Err(not_found());
        }
        let record = self
            .store
            .get_message(&caller.account_id, parent_id)
            .await?
            .filter(|m| m.inbox_id == inbox_id)
            .ok_or_else(not_found)?;
        Ok(record.parsed.decode()?)
    }

    /// Every recipient must pass the account's and inbox's outbound lists.
    async fn check_lists(
        &self,
        account_id: &str,
        inbox_id: &str,
        recipients: &[String],
    ) -> Result<(), SubmitError> {
        let verdicts = self.list_verdicts(account_id, inbox_id, recipients).await?;
        match listed_out(recipients, &verdicts) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Each recipient's outbound list verdict.
    async fn list_verdicts(
        &self,
        account_id: &str,
        inbox_id: &str,
        recipients: &[String],
    ) -> Result<Vec<lists::Verdict>, SubmitError> {
        let entries = self.lists.of(account_id).await?;
        Ok(recipients
            .iter()
            .map(|a| lists::judge(&entries, inbox_id, lists::Direction::Outbound, Some(a), &[]))
            .collect())
    }

    async fn check_suppressions(
        &self,
        account_id: &str,
        recipients: &[String],
        to: &[Addressee],
        cc: &[Addressee],
    ) -> Result<(), SubmitError> {
        let lowered: Vec<String> = recipients.iter().map(|a| a.to_ascii_lowercase()).collect();
        let found = self.store.suppressed(account_id, lowered).await?;
        if let Some(s) = found.into_iter().next() {
            let field = if to
                .iter()
                .any(|a| a.address.eq_ignore_ascii_case(&s.address))
            {
                "to"
            } else if cc
                .iter()
                .any(|a| a.address.eq_ignore_ascii_case(&s.address))
            {
                "cc"
            } else {
                "bcc"
            };
            return Err(SubmitError::Suppressed {
                field: field.into(),
                address: s.address,
                reason: s.reason,
            });
        }
        Ok(())
    }
}

/// The refusal for the first recipient the outbound lists do not let through (`verdicts` in
/// the order of `recipients`).
pub fn listed_out(recipients: &[String], verdicts: &[lists::Verdict]) -> Option<SubmitError> {
    recipients
        .iter()
        .zip(verdicts)
        .enumerate()
        .find(|(_, (_, verdict))| !verdict.passes())
        .map(|(n, (address, verdict))| SubmitError::RecipientBlocked {
            field: format!("recipients[{n}]"),
            address: address.clone(),
            why: if matches!(verdict, lists::Verdict::Blocked(_)) {
                "blocked"
            } else {
                "not allowed"
            },
        })
}

/// What a refused enqueue (or approval) answers: the quota, the pause, the recipients.
pub fn refusal(refused: Enqueued, now: Timestamp) -> SubmitError {
    match refused {
        Enqueued::OverQuota(release) => SubmitError::OverQuota {
            hit: release.held_by,
            release: release.at,
            now,
        },
        Enqueued::NeverFits(never) => SubmitError::NeverFits {
            hit: never.hit,
            recipients: never.recipients,
        },
        Enqueued::Paused(pause) => paused(&pause),
        Enqueued::Queued(_) | Enqueued::Held | Enqueued::DryRun(_) => SubmitError::Store(
            StoreError::Unavailable("an accepted message was taken for a refusal".into()),
        ),
    }
}

/// The refusal for a paused inbox or account, saying how to resume it.
fn paused(pause: &crate::store::Pause) -> SubmitError {
    let inbox = id::looks_like(id::INBOX, &pause.scope);
    SubmitError::Paused {
        scope: if inbox { "inbox" } else { "account" },
        reason: pause.reason.clone(),
        since: pause.since,
        how: if inbox {
            "resume it with POST /v1/inboxes/{id}/resume"
        } else {
            "resume it with POST /v1/account/resume"
        },
    }
}

fn parse_list(list: &[String], field: &str) -> Result<Vec<Addressee>, Invalid> {
    list.iter()
        .enumerate()
        .map(|(i, a)| compose::parse_addressee(a, &format!("{field}[{i}]")))
        .collect()
}

fn dedup(addresses: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in addresses {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
            out.push(a);
        }
    }
    out
}

/// The key and the request's hash an idempotent send is remembered by.
fn idempotency(
    key: &str,
    inbox_id: &str,
    raw_request: &[u8],
) -> Result<(String, Vec<u8>), SubmitError> {
    let key = key.trim();
    if key.is_empty() || key.len() > 255 {
        return Err(SubmitError::Invalid {
            field: "Idempotency-Key".into(),
            message: "must be 1 to 255 characters".into(),
        });
    }
    let hash = Sha256::digest([inbox_id.as_bytes(), b"\n", raw_request].concat()).to_vec();
    Ok((key.to_owned(), hash))
}

fn check_recipient_count(n: usize) -> Result<(), SubmitError> {
    if n == 0 {
        return Err(SubmitError::Invalid {
            field: "to".into(),
            message: "at least one recipient is needed (to, cc or bcc)".into(),
        });
    }
    if n > MAX_API_RECIPIENTS {
        return Err(SubmitError::Invalid {
            field: "to".into(),
            message: format!("{n} recipients; at most {MAX_API_RECIPIENTS} per message"),
        });
    }
    Ok(())
}

/// The headers that thread a reply (RFC 5322 3.6.4).
#[derive(Default)]
struct Threading {
    in_reply_to: Option<String>,
    references: Vec<String>,
}

impl Threading {
    /// Answering `parent`: its Message-ID after its References; `Re:` before its subject when
    /// the sender gave none.
    fn answering(parent: &ParsedMessage, set_subject: bool, subject: &mut String) -> Threading {
        let mut threading = Threading::default();
        if let Some(mid) = &parent.message_id {
            threading.references = parent.references.clone();
            if !threading.references.contains(mid) {
                threading.references.push(mid.clone());
            }
            threading.in_reply_to = Some(mid.clone());
        }
        if set_subject {
            let original = parent.subject.clone().unwrap_or_default();
            *subject = if original.to_ascii_lowercase().starts_with("re:") {
                original
            } else {
                format!("Re: {original}")
            };
        }
        threading
    }
}
