//! What one attempt did for one recipient, and the rule that decides it: a 2xx reply delivered
//! it, a 5xx reply bounced it, a 4xx reply deferred it, and anything we cannot classify (a lost
//! connection, a timeout, a reply we do not understand) defers it too. A deferral is never final;
//! only the queue's lifetime turns it into a bounce.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Deferred,
    Bounced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The SMTP reply code, when a server answered.
    pub code: Option<u16>,
    /// RFC 3463 status, from the reply or assigned by us.
    pub enhanced: Option<String>,
    pub text: String,
    /// The host that answered (MX or relay), if one was reached.
    pub host: Option<String>,
    /// TLS version and cipher of the session, when encrypted.
    pub tls: Option<String>,
    /// For a deferral: the moment to try again, when something knows it better than the retry
    /// schedule (a paced or resting destination).
    pub retry_at: Option<crate::clock::Timestamp>,
}

impl Outcome {
    /// From a server's reply.
    pub fn from_reply(code: u16, text: &str, host: &str, tls: Option<String>) -> Outcome {
        let (enhanced, rest) = split_enhanced(text);
        Outcome {
            verdict: classify(code),
            code: Some(code),
            enhanced: enhanced.or_else(|| default_enhanced(code)),
            text: rest.to_owned(),
            host: Some(host.to_owned()),
            tls,
            retry_at: None,
        }
    }

    /// A failure of ours or of the network, with no reply to go by.
    pub fn local(verdict: Verdict, enhanced: &str, text: impl Into<String>) -> Outcome {
        Outcome {
            verdict,
            code: None,
            enhanced: Some(enhanced.to_owned()),
            text: text.into(),
            host: None,
            tls: None,
            retry_at: None,
        }
    }

    pub fn deferred(enhanced: &str, text: impl Into<String>) -> Outcome {
        Outcome::local(Verdict::Deferred, enhanced, text)
    }

    pub fn bounced(enhanced: &str, text: impl Into<String>) -> Outcome {
        Outcome::local(Verdict::Bounced, enhanced, text)
    }

    pub fn delivered_locally(text: impl Into<String>) -> Outcome {
        Outcome::local(Verdict::Delivered, "2.0.0", text)
    }

    pub fn at_host(mut self, host: &str) -> Outcome {
        self.host = Some(host.to_owned());
        self
    }

    /// The reply as a DSN's Diagnostic-Code or a log line: "550 5.1.1 no such user".
    pub fn diagnostic(&self) -> String {
        match (self.code, &self.enhanced) {
            (Some(code), Some(e)) => format!("{code} {e} {}", self.text),
            (Some(code), None) => format!("{code} {}", self.text),
            (None, _) => self.text.clone(),
        }
    }

    /// A mailbox-level permanent failure (RFC 3463 X.1.x): the address itself is bad, so it is
    /// worth suppressing.
    pub fn is_bad_mailbox(&self) -> bool {
        self.verdict == Verdict::Bounced
            && self
                .enhanced
                .as_deref()
                .is_some_and(|e| e.starts_with("5.1."))
    }
}

/// The class of the reply code decides, per RFC 5321 4.2.1.
pub fn classify(code: u16) -> Verdict {
    match code {
        200..=299 => Verdict::Delivered,
        500..=599 => Verdict::Bounced,
        _ => Verdict::Deferred,
    }
}

/// Splits "5.1.1 User unknown" into ("5.1.1", "User unknown"), if the text starts with a status.
pub fn split_enhanced(text: &str) -> (Option<String>, &str) {
    let text = text.trim();
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        (Some(first.to_owned()), rest.trim())
    } else {
        (None, text)
    }
}

fn default_enhanced(code: u16) -> Option<String> {
    Some(
        match code / 100 {
            2 => "2.0.0",
            4 => "4.0.0",
            5 => "5.0.0",
            _ => return None,
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_their_class() {
        let table = [
            (250, Verdict::Delivered),
            (251, Verdict::Delivered),
            (421, Verdict::Deferred),
            (450, Verdict::Deferred),
            (452, Verdict::Deferred),
            (550, Verdict::Bounced),
            (554, Verdict::Bounced),
            (354, Verdict::Deferred),
            (999, Verdict::Deferred),
            (0, Verdict::Deferred),
        ];
        for (code, verdict) in table {
            assert_eq!(classify(code), verdict, "{code}");
        }
    }

    #[test]
    fn enhanced_codes_are_taken_from_the_text_or_defaulted() {
        let o = Outcome::from_reply(550, "5.1.1 <x@y>: User unknown", "mx.test", None);
        assert_eq!(o.enhanced.as_deref(), Some("5.1.1"));
        assert_eq!(o.text, "<x@y>: User unknown");
        assert!(o.is_bad_mailbox());
        assert_eq!(o.diagnostic(), "550 5.1.1 <x@y>: User unknown");
        let plain = Outcome::from_reply(554, "Transaction failed", "mx.test", None);
        assert_eq!(plain.enhanced.as_deref(), Some("5.0.0"));
        assert!(!plain.is_bad_mailbox());
        let policy = Outcome::from_reply(550, "5.7.1 spam", "mx.test", None);
        assert!(
            !policy.is_bad_mailbox(),
            "a policy refusal says nothing about the address"
        );
        assert_eq!(split_enhanced("4.7.0"), (Some("4.7.0".into()), ""));
        assert_eq!(split_enhanced("1.2.3 x"), (None, "1.2.3 x"));
        assert_eq!(split_enhanced("5.1 x"), (None, "5.1 x"));
    }
}
