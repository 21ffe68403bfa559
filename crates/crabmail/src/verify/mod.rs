//! Verification of inbound mail before it is accepted: SPF (HELO and MAIL FROM), DKIM (every
//! signature), ARC (the chain) and DMARC (alignment and the From domain's policy), all by
//! mail-auth on our own resolver.
//!
//! The outcome is a `Verdict`: the results as JSON for the message, an Authentication-Results
//! header (RFC 8601) to prepend to the stored copy, and what to do: deliver, quarantine
//! (p=quarantine failed) or refuse (p=reject failed, 550 5.7.1). A DNS failure is a temperror,
//! recorded as such; it never refuses mail and never passes it.

use crate::config::VerifyConfig;
use crate::dns::Dns;
use crabmail_api::{ArcAuth, AuthResults, DkimAuth, DmarcAuth, SpfAuth};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfOutput, SpfResult,
};
use std::net::IpAddr;

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

pub struct Verifier {
    authenticator: MessageAuthenticator,
    hostname: String,
    config: VerifyConfig,
}

impl Verifier {
    pub fn new(dns: &Dns, hostname: &str, config: &VerifyConfig) -> Self {
        Verifier {
            authenticator: MessageAuthenticator(dns.resolver().clone()),
            hostname: hostname.to_owned(),
            config: config.clone(),
        }
    }

    /// Checks a message as it arrived from `ip`, which said `helo` and `MAIL FROM:<mail_from>`.
    pub async fn verify(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        match tokio::time::timeout(
            self.config.timeout,
            self.check(ip, helo, mail_from, message),
        )
        .await
        {
            Ok(verdict) => verdict,
            Err(_) => {
                tracing::warn!(%ip, "verify: checks timed out; recorded as temperror");
                self.timed_out(ip, helo, mail_from)
            }
        }
    }

    async fn check(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let a = &self.authenticator;
        let host = self.hostname.as_str();
        let (helo_spf, spf) = self.spf(ip, helo, mail_from).await;
        let spf_helo = Some(SpfAuth {
            result: spf_result(helo_spf.result()).into(),
            domain: helo_spf.domain().to_owned(),
        });
        let mail_from_domain = match mail_from.rsplit_once('@') {
            Some((_, d)) => d.to_ascii_lowercase(),
            None => helo.to_ascii_lowercase(),
        };
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            let results = AuthResults {
                spf: SpfAuth {
                    result: spf_result(spf.result()).into(),
                    domain: spf.domain().to_owned(),
                },
                spf_helo,
                dkim: Vec::new(),
                dmarc: DmarcAuth {
                    result: "permerror".into(),
                    policy: "none".into(),
                    domain: String::new(),
                },
                arc: ArcAuth {
                    result: "none".into(),
                },
            };
            let header = AuthenticationResults::new(host)
                .with_spf_ehlo_result(&helo_spf, ip, helo)
                .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
                .to_header();
            return Verdict {
                results,
                header,
                action: Action::Deliver,
            };
        };
        let dkim = a.verify_dkim(&parsed).await;
        let arc = a.verify_arc(&parsed).await;
        let dmarc = a
            .verify_dmarc(DmarcParameters::new(
                &parsed,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;
        let header = AuthenticationResults::new(host)
            .with_dkim_results(&dkim, parsed.from())
            .with_spf_ehlo_result(&helo_spf, ip, helo)
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc)
            .to_header();
        let dmarc_failed = matches!(dmarc.dkim_result(), DmarcResult::Fail(_))
            && matches!(dmarc.spf_result(), DmarcResult::Fail(_));
        let action = match dmarc.policy() {
            Policy::Reject if dmarc_failed && self.config.dmarc_reject => Action::Reject,
            Policy::Reject | Policy::Quarantine if dmarc_failed && self.config.dmarc_quarantine => {
                Action::Quarantine
            }
            _ => Action::Deliver,
        };
        let results = AuthResults {
            spf: SpfAuth {
                result: spf_result(spf.result()).into(),
                domain: spf.domain().to_owned(),
            },
            spf_helo,
            dkim: dkim
                .iter()
                .map(|d| DkimAuth {
                    result: dkim_result(d.result()).into(),
                    domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
                    selector: d.signature().map(|s| s.s.clone()).unwrap_or_default(),
                })
                .collect(),
            dmarc: DmarcAuth {
                result: dmarc_result(&dmarc.result()).into(),
                policy: policy(dmarc.policy()).into(),
                domain: dmarc.domain().to_owned(),
            },
            arc: ArcAuth {
                result: dkim_result(arc.result()).into(),
            },
        };
        Verdict {
            results,
            header,
            action,
        }
    }

    /// SPF for both identities (RFC 7208 2.3, 2.4): HELO on its own, and MAIL FROM, which
    /// for the null sender is postmaster@HELO. Returns (HELO, MAIL FROM).
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> (SpfOutput, SpfOutput) {
        let a = &self.authenticator;
        let host = self.hostname.as_str();
        let helo_output = a
            .verify_spf(SpfParameters::verify_ehlo(ip, helo, host))
            .await;
        let mail_from_output = if mail_from.is_empty() {
            helo_output.clone()
        } else {
            a.verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from))
                .await
        };
        (helo_output, mail_from_output)
    }

    /// ARC chain validation alone, for a message as received. No headers at all: no chain.
    pub async fn arc(&self, message: &[u8]) -> &'static str {
        match AuthenticatedMessage::parse(message) {
            Some(parsed) => dkim_result(self.authenticator.verify_arc(&parsed).await.result()),
            None => "none",
        }
    }

    fn timed_out(&self, ip: IpAddr, helo: &str, mail_from: &str) -> Verdict {
        let domain = mail_from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(helo)
            .to_owned();
        Verdict {
            results: AuthResults {
                spf: SpfAuth {
                    result: "temperror".into(),
                    domain,
                },
                spf_helo: None,
                dkim: Vec::new(),
                dmarc: DmarcAuth {
                    result: "temperror".into(),
                    policy: "none".into(),
                    domain: String::new(),
                },
                arc: ArcAuth {
                    result: "temperror".into(),
                },
            },
            header: format!(
                "Authentication-Results: {}; spf=temperror smtp.mailfrom={mail_from}; dkim=temperror; dmarc=temperror; arc=temperror smtp.remote-ip={ip}\r\n",
                self.hostname
            ),
            action: Action::Deliver,
        }
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
        // A body that does not match its hash comes back as neutral: for a reader it failed.
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
