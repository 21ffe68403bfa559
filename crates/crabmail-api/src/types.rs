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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCreated {
    pub id: String,
    /// Shown only this once.
    pub token: String,
    pub inbox_id: Option<String>,
    pub name: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub inbox_id: Option<String>,
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
    #[serde(flatten)]
    pub content: SummaryContent,
}

/// The parsed part of a summary, computed once at ingest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SummaryContent {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub subject: Option<String>,
    /// About the first 200 characters of the text body, whitespace collapsed.
    pub preview: String,
    pub has_attachments: bool,
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
}

/// `GET /v1/messages/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Message {
    pub id: String,
    pub inbox_id: String,
    pub received_at: String,
    pub size: i64,
    pub envelope: Envelope,
    #[serde(flatten)]
    pub parsed: ParsedMessage,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_json`, `unauthorized`, `not_found`, `invalid_request`...
    pub code: String,
    /// For people and agents; may change.
    pub message: String,
}
