use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Needed when the server's signup policy is `invite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccountCreated {
    pub account_id: String,
    pub token_id: String,
    /// The bearer token. It is shown only this once; the server keeps only its hash.
    pub token: String,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Limit the token to this inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<String>,
    /// A label for your own bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it may do: `send`, `draft` (sends wait for approval), `read`, `admin`; at most the
    /// calling token's own. Absent: the calling token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCreated {
    pub id: String,
    /// Shown only this once.
    pub token: String,
    pub inbox_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub name: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub inbox_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub name: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `POST /v1/inboxes`. Every field is optional: `{}` gives a readable random address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInbox {
    /// Wanted local part; `name-xxxx` is given when `name` is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A domain hosted for this account; the server's shared domain when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Inbox {
    pub id: String,
    pub address: String,
    pub display_name: Option<String>,
    pub created_at: String,
    /// `required`: mail it sends waits for approval (`GET /v1/approvals`); `none`: it is sent.
    #[serde(default)]
    pub approval: String,
    /// Set while the inbox's sending is paused (a circuit breaker tripped): new sends are refused
    /// with 423 until `POST /v1/inboxes/{id}/resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
}

/// `PATCH /v1/inboxes/{id}`: an inbox's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateInbox {
    /// `required` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// `GET /v1/approvals`: mail waiting for a token with `send` (or `admin`) to approve or reject.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApprovalList {
    pub messages: Vec<Message>,
}

/// Why and since when sending is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Paused {
    /// `hard_bounce_rate`, `deferral_storm`, or the reason given to the account's kill switch.
    pub reason: String,
    pub since: String,
    /// The figures that tripped the breaker: rate, threshold, recipients, hard_bounces,
    /// attempts, deferrals.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metrics: Option<serde_json::Value>,
}

/// `POST /v1/account/pause`: the kill switch; every inbox of the account stops sending.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PauseAccount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InboxList {
    pub inboxes: Vec<Inbox>,
}

/// A name and address from a header such as From or To.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// What a message list shows of each message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MessageSummary {
    pub id: String,
    pub inbox_id: String,
    pub received_at: String,
    /// Size of the raw message in octets.
    pub size: i64,
    /// Held out of the default list because DMARC said quarantine (seen with
    /// `include=quarantined`).
    #[serde(default)]
    pub quarantined: bool,
    /// The conversation this message belongs to (`GET /v1/threads/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// What it reports about mail this account sent: `bounce`, `complaint` or `auto_reply`
    /// (the list filters on it with `report=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(flatten)]
    pub content: SummaryContent,
}

/// The parsed part of a summary, computed once at ingest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(default)]
pub struct SummaryContent {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub subject: Option<String>,
    /// About the first 200 characters of the text body, whitespace collapsed.
    pub preview: String,
    pub has_attachments: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<Extracted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MessageList {
    pub messages: Vec<MessageSummary>,
    /// Pass as `after` to get what comes next; unchanged when the page is empty.
    pub next_cursor: String,
}

/// The SMTP envelope and connection the message arrived with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Envelope {
    /// MAIL FROM (empty for bounces).
    pub return_path: String,
    /// The RCPT TO address that reached this inbox.
    pub recipient: String,
    pub remote_ip: String,
    pub helo: String,
    pub tls: bool,
}

/// One header field, value unfolded and decoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Attachment {
    /// Position for `GET /v1/messages/{id}/attachments/{index}`.
    pub index: usize,
    pub filename: Option<String>,
    pub content_type: String,
    /// Decoded size in octets.
    pub size: usize,
    pub content_id: Option<String>,
}

/// The parsed view of a message, computed once at ingest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ParsedMessage {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: Option<String>,
    /// The Date header, as RFC 3339.
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub headers: Vec<Header>,
    /// Problems met while parsing; the raw message is kept as received regardless.
    pub parse_warnings: Vec<String>,
    /// Received mail: injection risk with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// Received mail: verification codes and action links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<Extracted>,
    /// Received mail: the text an LLM should read (see `?view=safe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_text: Option<String>,
    /// Received mail: text hidden from a person's view, removed from `safe_text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_content: Vec<HiddenContent>,
    /// The new part of a reply, without quoted history or signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_text: Option<String>,
    /// Received mail that is a bounce another server wrote: each recipient's fate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce: Option<MailReport>,
    /// Received mail that is a complaint (an RFC 5965 feedback report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaint: Option<MailReport>,
    /// Received mail that is an automatic reply (out of office, vacation): never a bounce.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_reply: bool,
}

/// What a bounce or complaint says (`crabmail check bounce` prints the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MailReport {
    /// How it was read: `dsn` (RFC 3464), `dsn_text`, `arf` (RFC 5965) or `text` (a notice in
    /// words).
    pub path: String,
    pub reporting_mta: Option<String>,
    /// The Message-ID of the message it is about, when it says.
    pub original_message_id: Option<String>,
    /// Complaints: abuse, fraud, virus, other...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    pub recipients: Vec<ReportedRecipient>,
    /// The message this account sent that the report is about (`GET /v1/messages/{id}` shows
    /// its delivery), when crabmail linked it: by the signed return path it came to, or by the
    /// returned Message-ID and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_message_id: Option<String>,
    /// The recipient of that message it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportedRecipient {
    pub address: String,
    /// Enhanced status code (`5.1.1`).
    pub status: Option<String>,
    pub smtp_code: Option<u16>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
    /// failed, delayed, delivered, relayed, expanded or complained.
    pub action: String,
    /// The failure is final (a delay is not).
    pub permanent: bool,
    /// The address itself is bad (user or host unknown, moved, accepts no mail).
    pub hard: bool,
    /// userunknown, mailboxfull, hostunknown, blocked, spamdetected, expired, ... (Sisimai's
    /// taxonomy).
    pub reason: String,
}

/// `GET /v1/messages/{id}`: a message an inbox received, or one it sent (with `delivery`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Message {
    pub id: String,
    pub inbox_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// When crabmail accepted it: from the network, or from you for sending.
    pub received_at: String,
    pub size: i64,
    pub envelope: Envelope,
    /// For sent messages: each recipient's status and attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryState>,
    /// For received mail: SPF, DKIM, DMARC and ARC as verified on arrival (absent for mail that
    /// never crossed the network, such as local deliveries and bounce reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthResults>,
    /// Held out of the default list: DMARC said quarantine, or the inbox's lists did not accept
    /// the sender.
    #[serde(default)]
    pub quarantined: bool,
    /// Received mail, when the inbox (or its account) has inbound allow or block lists: what
    /// they say of the sender and of the Reply-To (`GET /v1/messages/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_lists: Option<SenderLists>,
    /// The conversation this message belongs to (`GET /v1/threads/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(flatten)]
    pub parsed: ParsedMessage,
}

/// What an inbox's inbound lists say of a received message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SenderLists {
    /// The From address as checked.
    pub from: Option<String>,
    /// Whether authentication (DMARC, or an aligned SPF or DKIM pass) proves the From domain;
    /// an unproven From is never allowed.
    pub from_authenticated: bool,
    /// `allowed`, `unlisted`, `blocked` or `not_allowed`.
    pub verdict: String,
    /// The Reply-To's verdict when the message has one: an allowed sender must not redirect the
    /// agent's reply elsewhere, so anything but `allowed`/`unlisted` is a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The Reply-To points outside what the lists allow.
    pub reply_to_outside: bool,
}

/// An allow or block list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ListEntry {
    pub id: String,
    /// Set for an inbox's own entry; absent: the whole account.
    pub inbox_id: Option<String>,
    /// `inbound` (who may write to us) or `outbound` (whom we may write to).
    pub direction: String,
    /// `allow` or `block`.
    pub action: String,
    /// An address (`bob@x.test`) or a domain (`x.test`, subdomains included).
    pub pattern: String,
    pub created_at: String,
}

/// `POST /v1/lists`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateListEntry {
    pub direction: String,
    pub action: String,
    pub pattern: String,
    /// Only this inbox; absent: every inbox of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ListEntries {
    pub entries: Vec<ListEntry>,
}

/// A webhook endpoint (`/v1/webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// The event types delivered; empty: every type.
    pub event_types: Vec<String>,
    /// Only this inbox's events; absent: every inbox's.
    pub inbox_id: Option<String>,
    /// `active` or `disabled` (`disabled_reason` says why; `replay` enables it again).
    pub status: String,
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_...`), in the answers to creating and rotating only: keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The event seq the endpoint has been given everything up to.
    pub cursor: i64,
    /// When the next attempt is due, while an event is being retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Failed attempts at the next event.
    pub failed_attempts: i64,
    pub created_at: String,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http or https; a public address unless the operator allows private ones.
    pub url: String,
    /// Event types as in `GET /v1/events`; omitted or empty: every type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only this inbox's events.
    #[serde(default)]
    pub inbox_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// `POST /v1/webhooks/{id}/replay`: deliver again from this event on (by `seq` or `event_id`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookDelivery {
    pub event_id: String,
    pub event_seq: i64,
    /// 1 for the first try.
    pub attempt: i64,
    pub at: String,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// What went wrong (with the start of the endpoint's answer).
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` (the last retry failed; the event was passed) or
    /// `disabled` (the endpoint answered 410).
    pub outcome: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookDeliveries {
    /// Newest first; kept 7 days.
    pub deliveries: Vec<WebhookDelivery>,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_json`, `unauthorized`, `not_found`, `invalid_request`...
    pub code: String,
    /// For people and agents; may change.
    pub message: String,
    /// The request field at fault, for validation errors (`to[1]`, `attachments[0].filename`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One address or several: `"a@x.test"` or `["a@x.test", "Bo <b@y.test>"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(untagged)]
pub enum AddressList {
    #[default]
    #[serde(skip)]
    None,
    One(String),
    Many(Vec<String>),
}

impl AddressList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            AddressList::None => Vec::new(),
            AddressList::One(a) => vec![a.clone()],
            AddressList::Many(list) => list.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.to_vec().is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingAttachment {
    /// Required with `content_base64`; with `upload_id`, the upload's name when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filename: String,
    /// Defaults to the upload's type, else application/octet-stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The content, base64; or give `upload_id` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// An upload of this account (`POST /v1/uploads`), instead of `content_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

/// `POST /v1/uploads`: bytes kept for 24 hours, to attach by `upload_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Upload {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    /// Octets received.
    pub size: u64,
    /// Hex SHA-256 of the bytes received.
    pub sha256: String,
    pub expires_at: String,
}

/// `POST /v1/inboxes/{id}/messages`: a message from this inbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Required unless `in_reply_to` is given (then the original sender is used).
    #[serde(default, skip_serializing_if = "AddressList::is_empty")]
    pub to: AddressList,
    #[serde(default, skip_serializing_if = "AddressList::is_empty")]
    pub cc: AddressList,
    /// Recipients not shown in the message.
    #[serde(default, skip_serializing_if = "AddressList::is_empty")]
    pub bcc: AddressList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<OutgoingAttachment>,
    /// Extra header fields (X-..., List-Unsubscribe...); structural ones are refused.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Id of a message this inbox received: sets In-Reply-To, References and a "Re:" subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// Over a sending quota: `queue` (default) accepts and holds the message until the quota
    /// allows (`status: throttled`, `release_at`); `reject` answers 429 and queues nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limit: Option<OnLimit>,
}

/// What to do with a send over a sending quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    Queue,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Sent {
    pub id: String,
    /// `queued` (it leaves now), `throttled` (a sending quota holds it until `release_at`) or
    /// `pending_approval` (it waits in `GET /v1/approvals`; `approval` says why).
    pub status: String,
    /// Why it waits for approval: `token_may_only_draft`, `inbox_requires_approval` or
    /// `reply_to_high_risk_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// When it leaves (RFC 3339).
    #[serde(default)]
    pub release_at: String,
    /// The limit that holds it, when `throttled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<QuotaHit>,
}

/// `POST /v1/inboxes/{id}/messages?dry_run=true`: what the send would do; nothing is queued or
/// counted. A request a real send would refuse as invalid gets the same error instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DryRun {
    pub dry_run: bool,
    /// `queued` (it would leave now), `throttled` (held until `release_at`),
    /// `pending_approval`, or `refused`
    /// (`refusal` says why: a suppressed recipient, or a quota with `on_limit: reject`).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<ErrorDetail>,
    /// Why it would wait for approval (then `outcome` is `pending_approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    pub release_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<QuotaHit>,
    pub recipients: Vec<DryRunRecipient>,
    /// The domain whose DKIM key would sign it, and the selectors (none: it would go unsigned).
    pub dkim_domain: String,
    pub dkim_selectors: Vec<String>,
    /// Octets as it would be sent, signature included.
    pub size: u64,
    /// The inbox's quota as it stands (the dry run is not counted).
    pub inbox_quota: Quota,
    pub account_quota: Quota,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DryRunRecipient {
    pub address: String,
    /// Why the suppression list would refuse it; null: allowed.
    pub suppressed: Option<String>,
    /// What the outbound allow and block lists say: `allowed`, `unlisted`, `blocked` or
    /// `not_allowed` (the last two refuse it).
    #[serde(default)]
    pub list: String,
}

/// A sending quota that holds (or refused) a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QuotaHit {
    /// `inbox` or `account`.
    pub scope: String,
    /// `per_minute`, `per_hour`, `per_day` or `recipients_per_day`.
    pub window: String,
    pub limit: u32,
}

/// Sending limits of an account or an inbox; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QuotaLimits {
    pub per_minute: u32,
    pub per_hour: u32,
    pub per_day: u32,
    pub recipients_per_day: u32,
    /// A new inbox's warm-up ramp today (recipients; 0: the ramp no longer binds, or off).
    #[serde(default)]
    pub warmup_recipients_per_day: u32,
}

/// `PUT /v1/quota`, `PUT /v1/inboxes/{id}/quota`: limits an account sets for itself or an inbox,
/// at most the server's defaults; a field left out or null goes back to the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_day: Option<u32>,
}

/// `GET /v1/quota`, `GET /v1/inboxes/{id}/quota`: limits in force, what the sliding windows hold
/// now, and the messages held for later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Quota {
    /// `account` or `inbox`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<String>,
    pub limits: QuotaLimits,
    /// Messages (recipients for `recipients_per_day`) sent within each window up to now.
    pub used: QuotaLimits,
    /// Left in each window now (0 where the limit is reached; the limit's own 0 means none).
    pub remaining: QuotaLimits,
    /// Messages accepted and held until a window allows them.
    pub held: u64,
    /// Set while this scope's sending is paused (a breaker, or the account's kill switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
    /// When the first held message leaves.
    pub next_release_at: Option<String>,
}

/// One delivery attempt for one recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryAttempt {
    pub at: String,
    /// The MX host or relay that answered, if one was reached.
    pub host: Option<String>,
    pub code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub text: String,
    /// TLS version and cipher, when the session was encrypted.
    pub tls: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecipientState {
    /// The recipient's id (`rcpt_...`): a report about it names it as `recipient_id`.
    #[serde(default)]
    pub id: String,
    pub address: String,
    /// throttled (held by a sending quota until `release_at`), queued, deferred, delivered,
    /// bounced, expired or cancelled.
    pub status: String,
    pub attempts: Vec<DeliveryAttempt>,
    pub next_attempt_at: Option<String>,
}

/// Where a sent message stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryState {
    /// pending_approval (waits in `GET /v1/approvals`), throttled (held by a sending quota until
    /// `release_at`), pending (some recipient not
    /// final), delivered (all), failed (none), or partial.
    pub status: String,
    /// When it leaves or left: later than it was sent when a quota held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at: Option<String>,
    pub recipients: Vec<RecipientState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Suppression {
    pub address: String,
    pub reason: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
}

/// Something that happened to the account's mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    /// Unique among all accounts (`evt_<account>_<seq>`): the `webhook-id` of the event's webhook
    /// deliveries, for receivers that drop duplicates.
    #[serde(default)]
    pub id: String,
    /// The event's place in the account's log: a cursor for `after`, and the `id:` of the
    /// event stream (`Last-Event-ID`).
    pub seq: i64,
    /// message.received, message.delivered, message.deferred, message.bounced (detail.late when
    /// another server reported it after delivery), message.complained, message.cancelled;
    /// message.throttled (a quota holds it: detail.release_at), message.held, message.approved,
    /// message.rejected; sending.paused, sending.resumed (detail.scope, reason, metrics).
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    pub message_id: Option<String>,
    pub inbox_id: Option<String>,
    pub recipient: Option<String>,
    /// For delivery events: status, host, code, enhanced_code, text, tls.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventList {
    pub events: Vec<Event>,
    pub next_cursor: String,
}

/// What the receiving server found about who sent a message (RFC 8601 vocabulary: pass, fail,
/// softfail, neutral, none, temperror, permerror).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuthResults {
    /// SPF for the MAIL FROM identity (postmaster@HELO for a bounce); DMARC aligns with this one.
    pub spf: SpfAuth,
    /// SPF for the HELO identity, checked on its own (RFC 7208 2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf_helo: Option<SpfAuth>,
    pub dkim: Vec<DkimAuth>,
    pub dmarc: DmarcAuth,
    pub arc: ArcAuth,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SpfAuth {
    pub result: String,
    /// The domain checked: of MAIL FROM, or of HELO for bounces.
    pub domain: String,
    /// Why, in a sentence: "192.0.2.1 is not allowed to send for example.com".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DkimAuth {
    pub result: String,
    pub domain: String,
    pub selector: String,
    /// `rsa-sha256`, `ed25519-sha256` (or `rsa-sha1`, which never passes DMARC alone here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DmarcAuth {
    pub result: String,
    /// The From domain's published policy: none, quarantine or reject.
    pub policy: String,
    /// The RFC 5322 From domain the policy is for.
    #[serde(default)]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ArcAuth {
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/domains`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    pub name: String,
}

/// A DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DnsRecord {
    /// MX, TXT or CNAME.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
    /// mx, spf, dkim, dmarc, mta-sts, tls-rpt...
    pub purpose: String,
    /// Needed for the domain to be verified; the others are recommended.
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Domain {
    pub id: String,
    pub name: String,
    /// pending or verified.
    pub status: String,
    pub created_at: String,
    pub verified_at: Option<String>,
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DomainList {
    pub domains: Vec<Domain>,
}

/// One record as looked up live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecordCheck {
    #[serde(flatten)]
    pub record: DnsRecord,
    /// ok, missing or mismatch.
    pub status: String,
    /// What DNS returned (or the lookup error).
    pub found: Vec<String>,
}

/// `POST /v1/domains/{id}/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DomainVerification {
    pub domain: Domain,
    pub checks: Vec<RecordCheck>,
}

// --- agent safety: injection risk, safe view, extraction, threads ---

/// How likely a received message is to carry instructions aimed at an AI reader, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Security {
    /// 0.0 (nothing found) to 1.0 (certain).
    pub injection_risk: f64,
    /// `low` (< 0.4), `medium` (< 0.7) or `high`.
    pub level: String,
    /// The distinct rules that fired, strongest first.
    pub flags: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// One finding: the rule, what matched, and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Evidence {
    pub rule: String,
    /// The sentence or value that matched (at most about 200 characters).
    pub excerpt: String,
    /// `subject`, `text`, `html`, `hidden_html`, `attachment:NAME` or `header:NAME`.
    pub location: String,
}

/// Text a person reading the message would not see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HiddenContent {
    /// `hidden_html`, `text` (invisible Unicode) or `attachment:NAME`.
    pub location: String,
    /// How it was hidden: `display:none`, `html comment`, `unicode tag characters`, ...
    pub reason: String,
    pub text: String,
}

/// Verification codes and action links found in a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Extracted {
    /// Most likely first.
    pub codes: Vec<ExtractedCode>,
    pub links: Vec<ExtractedLink>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExtractedCode {
    pub value: String,
    /// 0.0 to 1.0.
    pub confidence: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExtractedLink {
    pub url: String,
    /// `verify`, `magic_login`, `reset`, `unsubscribe` or `other`.
    pub kind: String,
    /// The text the link is shown with, when it came from HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// What ingest derives for agents from a received message, stored with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Insights {
    pub security: Security,
    pub extracted: Extracted,
}

/// `GET /v1/messages/{id}?view=safe`: what an LLM should read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SafeView {
    pub id: String,
    pub inbox_id: String,
    pub thread_id: Option<String>,
    pub security: Security,
    /// The message wrapped in untrusted-content boundaries: hidden content removed, invisible
    /// characters stripped, forged boundaries and chat-template tokens neutralised.
    pub safe_text: String,
    /// What was removed because a person would not have seen it.
    pub hidden_content: Vec<HiddenContent>,
    pub extracted: Extracted,
}

/// `GET /v1/inboxes/{id}/wait` when nothing matched in time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimedOut {
    pub timed_out: bool,
}

/// `GET /v1/inboxes/{id}/wait`: the first new message that matched, or `{"timed_out": true}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(untagged)]
pub enum WaitResult {
    Message(Box<Message>),
    TimedOut(TimedOut),
}

/// A conversation: messages linked by References / In-Reply-To, or by subject and participants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ThreadSummary {
    pub id: String,
    pub inbox_id: String,
    /// The subject without Re:/Fwd: prefixes, from the first message.
    pub subject: Option<String>,
    /// Addresses that wrote or were written to, lower-cased.
    pub participants: Vec<String>,
    pub message_count: i64,
    pub first_at: String,
    pub last_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ThreadList {
    pub threads: Vec<ThreadSummary>,
}

/// One message of a thread, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ThreadMessage {
    pub id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub at: String,
    pub from: Option<Mailbox>,
    pub subject: Option<String>,
    /// The new part of a reply: no quoted history, no signature.
    pub reply_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Thread {
    #[serde(flatten)]
    pub summary: ThreadSummary,
    pub messages: Vec<ThreadMessage>,
}
