//! Where a recipient's mail goes: into one of our own inboxes, to the configured smart host, or to
//! the MX hosts of its domain; and, for the last two, which addresses to try in which order.
//!
//! DNS answers decide permanence (RFC 5321 5.1, RFC 7505): a domain that does not exist or that
//! publishes a null MX bounces; a lookup that fails or times out defers.

use super::outcome::Outcome;
use crate::config::Relay;
use crate::dns::{Dns, Failure, MailExchangers};
use std::net::SocketAddr;

/// How a recipient domain is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A domain we host: straight into the inbox, through ingest, with no SMTP hop.
    Local,
    /// Everything remote goes to the smart host.
    Relay,
    /// The domain's MX hosts.
    Mx(String),
    /// Test mode: `simulator.crabmail.test` answers without any network (`simulator.rs`).
    Simulator,
}

impl Route {
    /// Deliveries sharing a key share the per-destination connection cap.
    pub fn key(&self) -> String {
        match self {
            Route::Local => "local".into(),
            Route::Relay => "relay".into(),
            Route::Mx(domain) => domain.clone(),
            Route::Simulator => "simulator".into(),
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
