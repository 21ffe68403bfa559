//! Where a recipient's mail goes: into one of our own inboxes, to the configured smart host, or to
//! the MX hosts of its domain; and, for the last two, which addresses to try in which order.
//!
//! DNS answers decide permanence (RFC 5321 5.1, RFC 7505): a domain that does not exist or that
//! publishes a null MX bounces; a lookup that fails or times out defers.

use super::outcome::Outcome;
use crate::dns::{Dns, Failure, MailExchangers};
use std::net::SocketAddr;

/// A smart host: `smtp://user:pass@host:587` (STARTTLS) or `smtps://user:pass@host:465`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub implicit_tls: bool,
    pub credentials: Option<(String, String)>,
}

impl Relay {
    pub fn parse(url: &str) -> Result<Relay, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "expected smtp://host:port or smtps://host:port".to_owned())?;
        let implicit_tls = match scheme {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("unknown scheme `{other}` (smtp or smtps)")),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u
                    .split_once(':')
                    .ok_or_else(|| "credentials must be user:password".to_owned())?;
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
            None => None,
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?)
            }
            _ => (hostport, if implicit_tls { 465 } else { 587 }),
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(Relay {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            implicit_tls,
            credentials,
        })
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in `{text}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8"))
}

/// How a recipient domain is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A domain we host: straight into the inbox, through ingest, with no SMTP hop.
    Local,
    /// Everything remote goes to the smart host.
    Relay,
    /// The domain's MX hosts.
    Mx(String),
}

impl Route {
    /// Deliveries sharing a key share the per-destination connection cap.
    pub fn key(&self) -> String {
        match self {
            Route::Local => "local".into(),
            Route::Relay => "relay".into(),
            Route::Mx(domain) => domain.clone(),
        }
    }
}

/// One address to try, with the name it is known by (for logs, the DSN and TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
}

/// The addresses to try for `domain`'s MX hosts, in order, or why there are none.
pub async fn mx_targets(dns: &Dns, domain: &str, port: u16) -> Result<Vec<Target>, Outcome> {
    let hosts = match dns.mail_exchangers(domain).await {
        Ok(MailExchangers::Hosts(hosts)) => hosts,
        Ok(MailExchangers::Implicit) => vec![domain.to_owned()],
        Ok(MailExchangers::Null) => {
            return Err(Outcome::bounced(
                "5.1.10",
                format!("{domain} does not accept mail (null MX, RFC 7505)"),
            ));
        }
        Err(Failure::NoSuchDomain) => {
            return Err(Outcome::bounced(
                "5.1.2",
                format!("domain {domain} does not exist"),
            ));
        }
        Err(Failure::Temporary(e)) => {
            return Err(Outcome::deferred(
                "4.4.3",
                format!("DNS lookup for {domain} failed: {e}"),
            ));
        }
    };
    resolve_hosts(dns, &hosts, port, domain).await
}

/// The addresses of the relay host.
pub async fn relay_targets(dns: &Dns, relay: &Relay) -> Result<Vec<Target>, Outcome> {
    // A relay that cannot be found is our configuration's problem, never the recipient's.
    resolve_hosts(
        dns,
        std::slice::from_ref(&relay.host),
        relay.port,
        &relay.host,
    )
    .await
    .map_err(|mut o| {
        o.verdict = super::outcome::Verdict::Deferred;
        o.enhanced = Some("4.4.3".into());
        o
    })
}

async fn resolve_hosts(
    dns: &Dns,
    hosts: &[String],
    port: u16,
    domain: &str,
) -> Result<Vec<Target>, Outcome> {
    let mut targets = Vec::new();
    let mut temporary = None;
    for host in hosts {
        match dns.addresses(host).await {
            Ok(addrs) => targets.extend(addrs.into_iter().map(|ip| Target {
                host: host.clone(),
                addr: SocketAddr::new(ip, port),
            })),
            Err(Failure::Temporary(e)) => temporary = Some(e),
            Err(Failure::NoSuchDomain) => {}
        }
    }
    if !targets.is_empty() {
        return Ok(targets);
    }
    Err(match temporary {
        Some(e) => Outcome::deferred(
            "4.4.3",
            format!("cannot resolve the mail hosts of {domain}: {e}"),
        ),
        None => Outcome::bounced("5.1.2", format!("no mail host of {domain} has an address")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls() {
        assert_eq!(
            Relay::parse("smtp://bot%40d.test:cm_x@relay.test:2587").unwrap(),
            Relay {
                host: "relay.test".into(),
                port: 2587,
                implicit_tls: false,
                credentials: Some(("bot@d.test".into(), "cm_x".into())),
            }
        );
        let implicit = Relay::parse("smtps://relay.test").unwrap();
        assert_eq!(
            (implicit.port, implicit.implicit_tls, implicit.credentials),
            (465, true, None)
        );
        assert_eq!(Relay::parse("smtp://[::1]:25").unwrap().host, "::1");
        assert!(Relay::parse("http://relay.test").is_err());
        assert!(Relay::parse("relay.test:25").is_err());
        assert!(Relay::parse("smtp://user@relay.test").is_err());
        assert!(Relay::parse("smtp://relay.test:99999").is_err());
    }
}
