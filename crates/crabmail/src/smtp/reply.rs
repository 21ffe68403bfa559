//! Every SMTP reply this server sends, in one place: code, enhanced status code (RFC 3463) and
//! text. Texts are generic on purpose; details of a failure go to the log with the session id.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 enhanced status code, e.g. "5.1.1"; none for the greeting and EHLO.
    pub enhanced: Option<&'static str>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    fn new(code: u16, enhanced: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 421: the server closes the connection after sending it.
    pub fn closes_connection(&self) -> bool {
        self.code == 421
    }

    /// Appends the reply in wire form, multi-line replies with `code-`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(enhanced) = self.enhanced {
                out.extend_from_slice(enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

// --- connection ---

pub fn greeting(host: &str) -> Reply {
    Reply {
        code: 220,
        enhanced: None,
        lines: vec![format!("{host} ESMTP crabmail").into()],
    }
}

pub fn ehlo(host: &str, peer_name: &str, extensions: Vec<String>) -> Reply {
    let mut lines: Vec<Cow<'static, str>> = vec![format!("{host} greets {peer_name}").into()];
    lines.extend(extensions.into_iter().map(Cow::Owned));
    Reply {
        code: 250,
        enhanced: None,
        lines,
    }
}

pub fn helo(host: &str) -> Reply {
    Reply {
        code: 250,
        enhanced: None,
        lines: vec![host.to_owned().into()],
    }
}

pub fn bye() -> Reply {
    Reply::new(221, "2.0.0", "Bye")
}

pub fn too_many_connections() -> Reply {
    Reply::new(421, "4.7.0", "Too many connections, try again later")
}

pub fn timeout() -> Reply {
    Reply::new(421, "4.4.2", "Timeout exceeded, closing connection")
}

pub fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "Service shutting down, try again later")
}

pub fn too_many_errors() -> Reply {
    Reply::new(421, "4.7.0", "Too many errors, closing connection")
}

// --- general ---

pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "OK")
}

pub fn help() -> Reply {
    Reply::new(
        214,
        "2.0.0",
        "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS",
    )
}

pub fn vrfy() -> Reply {
    Reply::new(
        252,
        "2.0.0",
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.1", "Command unrecognized")
}

pub fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "Command not implemented")
}

pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long")
}

pub fn syntax(usage: &'static str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax: {usage}"))
}

pub fn bad_sequence(why: &'static str) -> Reply {
    Reply::new(503, "5.5.1", why)
}

pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
}

// --- TLS ---

pub fn ready_for_tls() -> Reply {
    Reply::new(220, "2.0.0", "Ready to start TLS")
}

pub fn tls_unavailable() -> Reply {
    Reply::new(454, "4.7.0", "TLS not available")
}

pub fn tls_active() -> Reply {
    Reply::new(503, "5.5.1", "TLS already active")
}

pub fn auth_not_enabled() -> Reply {
    Reply::new(503, "5.5.1", "Authentication not enabled on this port")
}

// --- submission ---

pub fn auth_mechanism_unsupported() -> Reply {
    Reply::new(
        504,
        "5.5.4",
        "Unrecognized authentication type; use PLAIN or LOGIN",
    )
}

/// RFC 4954: credentials only over TLS.
pub fn encryption_required() -> Reply {
    Reply::new(
        538,
        "5.7.11",
        "Encryption required for requested authentication mechanism",
    )
}

pub fn auth_challenge(text: &'static str) -> Reply {
    Reply {
        code: 334,
        enhanced: None,
        lines: vec![text.into()],
    }
}

pub fn auth_succeeded() -> Reply {
    Reply::new(235, "2.7.0", "Authentication successful")
}

pub fn auth_failed() -> Reply {
    Reply::new(535, "5.7.8", "Authentication credentials invalid")
}

pub fn auth_cancelled() -> Reply {
    Reply::new(501, "5.0.0", "Authentication cancelled")
}

pub fn auth_malformed() -> Reply {
    Reply::new(501, "5.5.2", "Cannot decode the authentication response")
}

pub fn too_many_auth_failures() -> Reply {
    Reply::new(
        421,
        "4.7.0",
        "Too many failed authentications, try again later",
    )
}

pub fn authentication_required() -> Reply {
    Reply::new(530, "5.7.0", "Authentication required")
}

pub fn already_authenticated() -> Reply {
    Reply::new(503, "5.5.1", "Already authenticated")
}

/// MAIL FROM is not an inbox of the authenticated account.
pub fn sender_not_owned() -> Reply {
    Reply::new(
        553,
        "5.7.1",
        "Sender address is not an inbox of the authenticated account",
    )
}

/// The From header names an address the account does not own.
pub fn from_header_not_owned() -> Reply {
    Reply::new(
        550,
        "5.7.1",
        "From header is not an inbox of the authenticated account",
    )
}

pub fn suppressed_recipient() -> Reply {
    Reply::new(
        550,
        "5.1.1",
        "Recipient address is on this account's suppression list",
    )
}

// --- envelope ---

pub fn sender_ok() -> Reply {
    Reply::new(250, "2.1.0", "Sender OK")
}

pub fn recipient_ok() -> Reply {
    Reply::new(250, "2.1.5", "Recipient OK")
}

pub fn bad_sender_address() -> Reply {
    Reply::new(553, "5.1.7", "Invalid sender address")
}

pub fn bad_recipient_address() -> Reply {
    Reply::new(501, "5.1.3", "Invalid recipient address")
}

pub fn utf8_needs_smtputf8() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Non-ASCII address needs the SMTPUTF8 parameter",
    )
}

/// RCPT for our domain but no such inbox.
pub fn unknown_user() -> Reply {
    Reply::new(550, "5.1.1", "Recipient address rejected: no such mailbox")
}

/// RCPT for a domain we do not host: never an open relay.
pub fn relay_denied() -> Reply {
    Reply::new(554, "5.7.1", "Relay access denied")
}

pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "Too many recipients")
}

pub fn no_valid_recipients() -> Reply {
    Reply::new(554, "5.5.1", "No valid recipients")
}

// --- data ---

pub fn start_data() -> Reply {
    Reply::new(354, "2.0.0", "End data with <CR><LF>.<CR><LF>")
}

pub fn message_too_big() -> Reply {
    Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
}

/// RFC 5321 2.3.8: lines end with CRLF. A lone CR or LF could hide a second message inside the
/// first (SMTP smuggling), so such a message is refused whole.
pub fn bare_line_ending() -> Reply {
    Reply::new(
        550,
        "5.6.0",
        "Message refused: bare CR or LF found; lines must end with CRLF (RFC 5321 2.3.8)",
    )
}

/// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets, CRLF included.
pub fn data_line_too_long(max: usize) -> Reply {
    Reply::new(
        550,
        "5.6.0",
        format!("Message refused: a line exceeds {max} octets (RFC 5321 4.5.3.1.6)"),
    )
}

pub fn chunk_received(size: usize) -> Reply {
    Reply::new(250, "2.0.0", format!("{size} octets received"))
}

/// The From domain publishes p=reject and the message failed DMARC.
/// `domain` is the From domain whose policy refused the message (kept to DNS characters: it
/// came from the message).
pub fn dmarc_reject(domain: &str) -> Reply {
    let domain: String = domain
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(253)
        .collect();
    Reply::new(
        550,
        "5.7.1",
        format!("Message rejected: it fails the DMARC policy of {domain} (p=reject)"),
    )
}

pub fn queued(id: &str) -> Reply {
    Reply::new(250, "2.0.0", format!("OK: queued as {id}"))
}

/// Accepted, and waiting for approval before it is sent.
pub fn awaiting_approval(id: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!("OK: queued as {id}; it waits for approval (GET /v1/approvals) before it is sent"),
    )
}

/// Accepted, and held by a sending quota until `release` (RFC 3339).
pub fn held(id: &str, limit: &str, release: &str) -> Reply {
    Reply::new(
        250,
        "2.0.0",
        format!("OK: queued as {id}; held by {limit} until {release}"),
    )
}

/// Over a sending quota (RFC 3463 4.7.1: not authorised now, may be later).
pub fn over_quota(limit: &str, wait_seconds: u64) -> Reply {
    Reply::new(
        451,
        "4.7.1",
        format!("Sending quota reached ({limit}); try again in {wait_seconds} seconds"),
    )
}

/// The inbox's or account's sending is paused by a circuit breaker or its owner.
pub fn sending_paused(scope: &str, reason: &str) -> Reply {
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect();
    Reply::new(
        451,
        "4.7.1",
        format!(
            "Sending is paused for this {scope} ({reason}); it must be resumed through the API"
        ),
    )
}

/// A recipient the sending account's outbound lists do not allow.
pub fn recipient_blocked() -> Reply {
    Reply::new(
        550,
        "5.7.1",
        "A recipient is not allowed by this account's outbound list (GET /v1/lists)",
    )
}

/// The recipients' lists do not accept this sender.
pub fn sender_not_accepted() -> Reply {
    Reply::new(
        550,
        "5.7.1",
        "Sender not accepted by the recipient's policy",
    )
}

/// More recipients than a day's quota takes.
pub fn over_daily_recipients(limit: u32) -> Reply {
    Reply::new(
        552,
        "5.7.1",
        format!("Too many recipients for the daily sending quota ({limit} recipients per day)"),
    )
}

/// The store could not commit: the client must keep the message and retry.
pub fn temporary_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary failure, please try again later")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_of_single_and_multi_line_replies() {
        let mut out = Vec::new();
        unknown_user().write_to(&mut out);
        assert_eq!(
            out,
            b"550 5.1.1 Recipient address rejected: no such mailbox\r\n"
        );
        let mut out = Vec::new();
        ehlo(
            "mx.test",
            "client.test",
            vec!["PIPELINING".into(), "SIZE 10".into()],
        )
        .write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "250-mx.test greets client.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }
}
