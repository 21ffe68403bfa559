//! Verification of inbound mail before it is accepted: SPF (HELO and MAIL FROM), DKIM (every
//! signature), ARC (the chain) and DMARC (alignment and the From domain's policy), all by
//! mail-auth on our own resolver.
//!
//! The outcome is a `Verdict`: the results as JSON for the message, each with the reason in a
//! sentence, an Authentication-Results header (RFC 8601) to prepend to the stored copy, and what
//! to do: deliver, quarantine (p=quarantine failed) or refuse (p=reject failed, 550 5.7.1). A DNS
//! failure is a temperror, recorded as such; it never refuses mail and never passes it.

mod arc_shape;
mod header;
pub mod spf;

use crate::account::address::Domain;
use crate::clock::SharedClock;
use crate::config::VerifyConfig;
use crate::dns::Dns;
use crabmail_api::{ArcAuth, AuthResults, DkimAuth, DmarcAuth, SpfAuth};
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, MessageAuthenticator,
    SpfOutput, SpfResult,
};
use std::net::IpAddr;

pub use header::authentication_results;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// Keep it, out of the default list.
    Quarantine,
    /// Refuse it at the end of DATA.
    Reject,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub results: AuthResults,
    /// `Authentication-Results: ...\r\n`, to prepend to the stored message.
    pub header: String,
    pub action: Action,
}

/// Who sent the message, as the SMTP session saw it.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// Empty for the null sender (a bounce).
    pub mail_from: &'a str,
}

pub struct Verifier {
    authenticator: MessageAuthenticator,
    dns: Dns,
    clock: SharedClock,
    hostname: String,
    config: VerifyConfig,
}

impl Verifier {
    pub fn new(dns: &Dns, hostname: &str, config: &VerifyConfig, clock: SharedClock) -> Self {
        Verifier {
            authenticator: MessageAuthenticator(dns.resolver().clone()),
            dns: dns.clone(),
            clock,
            hostname: hostname.to_owned(),
            config: config.clone(),
        }
    }

    /// Checks a message as it arrived from `ip`, which said `helo` and `MAIL FROM:<mail_from>`.
    pub async fn verify(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let envelope = Envelope {
            ip,
            helo,
            mail_from,
        };
        let checks = tokio::time::timeout(self.config.timeout, self.check(envelope, message));
        let (results, action) = match checks.await {
            Ok((results, failed_policy)) => (results, self.action(failed_policy)),
            Err(_) => {
                tracing::warn!(%ip, "verify: checks timed out; recorded as temperror");
                (timed_out(&envelope, self.config.timeout), Action::Deliver)
            }
        };
        Verdict {
            header: authentication_results(&self.hostname, &envelope, &results),
            results,
            action,
        }
    }

    /// What the From domain's policy asks, when DMARC failed, as far as configured to follow it.
    fn action(&self, failed_policy: Option<Policy>) -> Action {
        match failed_policy {
            Some(Policy::Reject) if self.config.dmarc_reject => Action::Reject,
            Some(Policy::Reject | Policy::Quarantine) if self.config.dmarc_quarantine => {
                Action::Quarantine
            }
            _ => Action::Deliver,
        }
    }

    /// The results, and the From domain's policy when DMARC failed.
    async fn check(&self, envelope: Envelope<'_>, message: &[u8]) -> (AuthResults, Option<Policy>) {
        let Envelope {
            ip,
            helo,
            mail_from,
        } = envelope;
        let (helo_spf, spf) = self.spf(ip, helo, mail_from).await;
        let mut results = AuthResults {
            spf: spf_auth(&spf, ip),
            spf_helo: Some(spf_auth(&helo_spf, ip)),
            dkim: Vec::new(),
            dmarc: DmarcAuth {
                result: "none".into(),
                policy: "none".into(),
                domain: String::new(),
                reason: Some("the message has no header to take a From domain from".into()),
            },
            arc: ArcAuth {
                result: "none".into(),
                reason: None,
            },
        };
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return (results, None);
        };
        let a = &self.authenticator;
        let dkim = a.verify_dkim(&parsed).await;
        // RFC 8301: an rsa-sha1 signature is never valid, so it cannot carry DMARC either.
        let dkim_for_dmarc: Vec<DkimOutput<'_>> = dkim
            .iter()
            .map(|d| {
                if is_sha1_pass(d) {
                    DkimOutput::fail(mail_auth::Error::Dkim(
                        mail_auth::dkim::DkimError::UnsupportedAlgorithm,
                    ))
                } else {
                    d.clone()
                }
            })
            .collect();
        let arc = a.verify_arc(&parsed).await;
        // DMARC's SPF identity is MAIL FROM's domain, or HELO's for the null sender.
        let spf_domain = match Domain::of(mail_from) {
            Some(d) => d.into_string(),
            None => helo.to_ascii_lowercase(),
        };
        let dmarc = a
            .verify_dmarc(DmarcParameters::new(
                &parsed,
                &dkim_for_dmarc,
                &spf_domain,
                &spf,
            ))
            .await;
        results.dkim = dkim.iter().map(dkim_auth).collect();
        results.arc = match arc_shape::check(message) {
            Err(reason) => ArcAuth {
                result: "fail".into(),
                reason: Some(reason),
            },
            Ok(()) => ArcAuth {
                result: dkim_result(arc.result()).into(),
                reason: match arc.result() {
                    DkimResult::Pass => Some(format!(
                        "a chain of {} ARC sets validates",
                        arc.sets().len()
                    )),
                    DkimResult::None => None,
                    other => failure_text(other),
                },
            },
        };
        results.dmarc = dmarc_auth(&dmarc);
        // Neither identifier passes aligned, and neither failed for want of DNS.
        let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        (results, failed.then(|| dmarc.policy()))
    }

    /// SPF for both identities (RFC 7208 2.3, 2.4): HELO on its own, and MAIL FROM, which
    /// for the null sender is postmaster@HELO. Returns (HELO, MAIL FROM).
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> (SpfOutput, SpfOutput) {
        // %{t} in explanations: seconds since the epoch.
        let now = u64::try_from(self.clock.now().millis() / 1000).unwrap_or(0);
        let host = self.hostname.as_str();
        let helo_output = spf::Spf::helo(&self.dns, ip, helo, host, now).check().await;
        let mail_from_output = if mail_from.is_empty() {
            helo_output.clone()
        } else {
            spf::Spf::mail_from(&self.dns, ip, helo, mail_from, host, now)
                .check()
                .await
        };
        (helo_output, mail_from_output)
    }

    /// ARC chain validation alone, for a message as received. No headers at all: no chain.
    pub async fn arc(&self, message: &[u8]) -> &'static str {
        if arc_shape::check(message).is_err() {
            return "fail";
        }
        match AuthenticatedMessage::parse(message) {
            Some(parsed) => dkim_result(self.authenticator.verify_arc(&parsed).await.result()),
            None => "none",
        }
    }
}

fn timed_out(envelope: &Envelope<'_>, limit: std::time::Duration) -> AuthResults {
    let domain = Domain::of(envelope.mail_from)
        .map(Domain::into_string)
        .unwrap_or_else(|| envelope.helo.to_ascii_lowercase());
    let reason = Some(format!(
        "the checks did not finish within {}",
        humantime::format_duration(limit)
    ));
    AuthResults {
        spf: SpfAuth {
            result: "temperror".into(),
            domain,
            reason: reason.clone(),
        },
        spf_helo: None,
        dkim: Vec::new(),
        dmarc: DmarcAuth {
            result: "temperror".into(),
            policy: "none".into(),
            domain: String::new(),
            reason: reason.clone(),
        },
        arc: ArcAuth {
            result: "temperror".into(),
            reason,
        },
    }
}

fn spf_auth(output: &SpfOutput, ip: IpAddr) -> SpfAuth {
    let domain = output.domain();
    let reason = match output.result() {
        SpfResult::Pass => format!("{ip} is allowed to send for {domain}"),
        SpfResult::Fail => match output.explanation().filter(|e| !e.is_empty()) {
            Some(explanation) => {
                format!("{ip} is not allowed to send for {domain} ({domain} says: {explanation})")
            }
            None => format!("{ip} is not allowed to send for {domain}"),
        },
        SpfResult::SoftFail => {
            format!("{domain} says {ip} is probably not allowed to send for it (~all)")
        }
        SpfResult::Neutral => format!("{domain} makes no statement about {ip}"),
        SpfResult::None if domain.is_empty() => "no domain to check".to_owned(),
        SpfResult::None => format!("{domain} publishes no SPF record"),
        SpfResult::TempError => format!("a DNS lookup failed while checking {domain}"),
        SpfResult::PermError => {
            format!("{domain}'s SPF record is invalid or needs too many DNS lookups")
        }
    };
    SpfAuth {
        result: spf_result(output.result()).into(),
        domain: domain.to_owned(),
        reason: Some(reason),
    }
}

fn is_sha1_pass(output: &DkimOutput<'_>) -> bool {
    matches!(output.result(), DkimResult::Pass)
        && output
            .signature()
            .is_some_and(|s| s.a == mail_auth::common::crypto::Algorithm::RsaSha1)
}

fn dkim_auth(output: &DkimOutput<'_>) -> DkimAuth {
    let signature = output.signature();
    if is_sha1_pass(output) {
        // RFC 8601's "policy": the signature verifies, but we do not accept its kind.
        return DkimAuth {
            result: "policy".into(),
            domain: signature.map(|s| s.d.clone()).unwrap_or_default(),
            selector: signature.map(|s| s.s.clone()).unwrap_or_default(),
            algorithm: "rsa-sha1".into(),
            reason: Some("the signature verifies, but rsa-sha1 is not accepted (RFC 8301)".into()),
        };
    }
    DkimAuth {
        result: dkim_result(output.result()).into(),
        domain: signature.map(|s| s.d.clone()).unwrap_or_default(),
        selector: signature.map(|s| s.s.clone()).unwrap_or_default(),
        algorithm: signature
            .map(|s| match s.a {
                mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
                mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
                mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
            })
            .unwrap_or_default()
            .to_owned(),
        reason: match output.result() {
            DkimResult::Pass => signature.map(|s| format!("signature by {} verifies", s.d)),
            other => failure_text(other),
        },
    }
}

fn dmarc_auth(output: &DmarcOutput) -> DmarcAuth {
    let domain = output.domain();
    let result = output.result();
    let reason = match &result {
        DmarcResult::Pass => {
            let by = match (output.dkim_result(), output.spf_result()) {
                (DmarcResult::Pass, DmarcResult::Pass) => "DKIM and SPF",
                (DmarcResult::Pass, _) => "DKIM",
                _ => "SPF",
            };
            format!("{by} passes aligned with {domain}")
        }
        DmarcResult::Fail(_) => {
            format!("neither DKIM nor SPF passes aligned with the From domain {domain}")
        }
        DmarcResult::None if domain.is_empty() => "the message has no From domain".to_owned(),
        DmarcResult::None => format!("{domain} publishes no DMARC policy"),
        DmarcResult::TempError(e) => format!("a DNS lookup failed: {e}"),
        DmarcResult::PermError(e) => format!("{domain}'s DMARC record is invalid: {e}"),
    };
    DmarcAuth {
        result: dmarc_result(&result).into(),
        policy: policy(output.policy()).into(),
        domain: domain.to_owned(),
        reason: Some(reason),
    }
}

fn failure_text(result: &DkimResult) -> Option<String> {
    match result {
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => Some(e.to_string()),
        DkimResult::Pass | DkimResult::None => None,
    }
}

pub fn spf_result(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

pub fn dkim_result(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        // RFC 6376 6.1.3: a body that does not match its hash is a failed signature, though
        // mail-auth files it under neutral.
        DkimResult::Neutral(mail_auth::Error::Dkim(
            mail_auth::dkim::DkimError::FailedBodyHashMatch,
        ))
        | DkimResult::Neutral(mail_auth::Error::Arc(
            mail_auth::arc::ArcError::FailedBodyHashMatch,
        )) => "fail",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

pub fn dmarc_result(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}
