//! The Authentication-Results header (RFC 8601) written from our results, so the stored header
//! and the message JSON always say the same thing. Every value that came from the sender is
//! quoted or stripped so it cannot end the header or forge another result.

use super::Envelope;
use crabmail_api::AuthResults;
use std::fmt::Write;

/// `Authentication-Results: ...\r\n`, one result per folded line.
pub fn authentication_results(hostname: &str, envelope: &Envelope<'_>, r: &AuthResults) -> String {
    let mut out = format!("Authentication-Results: {}", value(hostname));
    let mut result = |method: &str, result: &str, reason: Option<&str>, props: &[(&str, &str)]| {
        let _ = write!(out, ";\r\n\t{method}={}", value(result));
        if let Some(reason) = reason {
            let _ = write!(out, " ({})", comment(reason));
        }
        for (name, v) in props {
            if !v.is_empty() {
                let _ = write!(out, " {name}={}", value(v));
            }
        }
    };
    if r.dkim.is_empty() {
        result("dkim", "none", None, &[]);
    }
    for d in &r.dkim {
        result(
            "dkim",
            &d.result,
            d.reason.as_deref(),
            &[
                ("header.d", &d.domain),
                ("header.s", &d.selector),
                ("header.a", &d.algorithm),
            ],
        );
    }
    let mail_from = if envelope.mail_from.is_empty() {
        format!("postmaster@{}", envelope.helo)
    } else {
        envelope.mail_from.to_owned()
    };
    result(
        "spf",
        &r.spf.result,
        r.spf.reason.as_deref(),
        &[("smtp.mailfrom", &mail_from)],
    );
    if let Some(helo) = &r.spf_helo {
        result(
            "spf",
            &helo.result,
            helo.reason.as_deref(),
            &[("smtp.helo", envelope.helo)],
        );
    }
    result("arc", &r.arc.result, r.arc.reason.as_deref(), &[]);
    let policy = format!("p={}", r.dmarc.policy);
    result(
        "dmarc",
        &r.dmarc.result,
        Some(&policy),
        &[("header.from", &r.dmarc.domain)],
    );
    out.push_str("\r\n");
    out
}

/// A property value: bare when it is a token or a plain address, else a quoted-string.
fn value(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-_+!#$%&'*/=?^`{|}~".contains(c);
    let bare = match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.chars().all(plain)
                && !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
        None => !text.is_empty() && text.chars().all(plain),
    };
    if bare {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Text for a `(comment)`: no line breaks or controls, parentheses escaped.
fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_control()) {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabmail_api::{ArcAuth, DkimAuth, DmarcAuth, SpfAuth};

    fn results() -> AuthResults {
        AuthResults {
            spf: SpfAuth {
                result: "pass".into(),
                domain: "example.org".into(),
                reason: Some("192.0.2.1 is allowed to send for example.org".into()),
            },
            spf_helo: None,
            dkim: vec![DkimAuth {
                result: "fail".into(),
                domain: "evil.test\r\nX-Injected: yes".into(),
                selector: "s1".into(),
                algorithm: "rsa-sha256".into(),
                reason: Some("body hash (mismatch)".into()),
            }],
            dmarc: DmarcAuth {
                result: "pass".into(),
                policy: "reject".into(),
                domain: "example.org".into(),
                reason: None,
            },
            arc: ArcAuth {
                result: "none".into(),
                reason: None,
            },
        }
    }

    #[test]
    fn sender_data_cannot_break_out_of_the_header() {
        let envelope = Envelope {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "mail.example.org",
            mail_from: "a\"b@example.org",
        };
        let header = authentication_results("mx.test", &envelope, &results());
        // One header: every line after the first is a continuation.
        let lines: Vec<&str> = header.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(lines[1..].iter().all(|l| l.starts_with('\t')), "{header}");
        assert!(
            header.contains("header.d=\"evil.testX-Injected: yes\""),
            "{header}"
        );
        assert!(header.contains("(body hash \\(mismatch\\))"), "{header}");
        assert!(
            header.contains("smtp.mailfrom=\"a\\\"b@example.org\""),
            "{header}"
        );
        assert!(
            header.contains("dmarc=pass (p=reject) header.from=example.org"),
            "{header}"
        );
    }
}
