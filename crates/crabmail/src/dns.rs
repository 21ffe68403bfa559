//! DNS for delivery: MX lookups (with RFC 5321's implicit MX and RFC 7505's null MX) and address
//! lookups, through hickory on the nameservers the configuration names (the system's by default;
//! a DNS server on loopback in tests).
//!
//! Answers are classified for the queue: a domain that does not exist is permanent; a server
//! failure or a timeout is temporary. Nothing here decides what to do about either.

use crate::config::DnsConfig;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
pub use hickory_resolver::proto::rr::{Name, RData, RecordType};
use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
}

/// Why a lookup gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// NXDOMAIN: the name does not exist.
    NoSuchDomain,
    /// SERVFAIL, timeout, refused...: try again later.
    Temporary(String),
}

/// Where mail for a domain goes, by DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailExchangers {
    /// MX hosts in order of preference (equal preferences keep the server's order).
    Hosts(Vec<String>),
    /// No MX records: the domain itself is the host (RFC 5321 5.1).
    Implicit,
    /// RFC 7505: the domain accepts no mail.
    Null,
}

#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    pub fn new(config: &DnsConfig) -> Result<Dns, DnsError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = 2;
        let builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| DnsError::Setup(e.to_string()))?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let resolver_config = ResolverConfig::from_parts(None, vec![], servers);
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
        };
        let resolver = builder
            .with_options(opts)
            .build()
            .map_err(|e| DnsError::Setup(e.to_string()))?;
        Ok(Dns { resolver })
    }

    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    pub async fn mail_exchangers(&self, domain: &str) -> Result<MailExchangers, Failure> {
        let name = fqdn(domain);
        match self.resolver.lookup(name.as_str(), RecordType::MX).await {
            Ok(lookup) => {
                let mut hosts: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                if hosts.is_empty() {
                    return Ok(MailExchangers::Implicit);
                }
                // RFC 7505: a single MX with the root as its exchange.
                if hosts.len() == 1 && (hosts[0].1 == "." || hosts[0].1.is_empty()) {
                    return Ok(MailExchangers::Null);
                }
                hosts.sort_by_key(|(pref, _)| *pref);
                Ok(MailExchangers::Hosts(
                    hosts
                        .into_iter()
                        .filter(|(_, h)| h != ".")
                        .map(|(_, h)| h.trim_end_matches('.').to_ascii_lowercase())
                        .collect(),
                ))
            }
            Err(e) if e.is_nx_domain() => Err(Failure::NoSuchDomain),
            Err(e) if e.is_no_records_found() => Ok(MailExchangers::Implicit),
            Err(e) => Err(Failure::Temporary(e.to_string())),
        }
    }

    /// IPv4 and IPv6 addresses of a host; empty when it has none. One family failing does not
    /// hide the other's answer.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        let name = fqdn(host);
        let mut out = Vec::new();
        let mut failure = None;
        for kind in [RecordType::A, RecordType::AAAA] {
            match self.resolver.lookup(name.as_str(), kind).await {
                Ok(lookup) => out.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })),
                Err(e) if e.is_nx_domain() => failure = Some(Failure::NoSuchDomain),
                Err(e) if e.is_no_records_found() => {}
                Err(e) => failure = failure.or(Some(Failure::Temporary(e.to_string()))),
            }
        }
        match failure {
            Some(failure) if out.is_empty() => Err(failure),
            _ => Ok(out),
        }
    }
}

impl Dns {
    /// The TXT strings at `name`, each record's strings joined; empty when there are none.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, Failure> {
        match self
            .resolver
            .lookup(fqdn(name).as_str(), RecordType::TXT)
            .await
        {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(Failure::Temporary(e.to_string())),
        }
    }
}

impl Dns {
    /// The records of `kind` at `name`, as the server gave them (CNAMEs followed): empty when
    /// the name exists without such records, `NoSuchDomain` when it does not exist.
    pub async fn query(&self, name: &Name, kind: RecordType) -> Result<Vec<RData>, Failure> {
        match self.resolver.lookup(name.clone(), kind).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == kind)
                .map(|r| r.data.clone())
                .collect()),
            Err(e) if e.is_nx_domain() => Err(Failure::NoSuchDomain),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(Failure::Temporary(e.to_string())),
        }
    }
}

/// A name built from untrusted text (SPF macros), as DNS carries it: labels of 1 to 63 octets
/// of anything (RFC 2181 11), 253 characters in all. None when it cannot be a DNS name.
pub fn dns_name(text: &str) -> Option<Name> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() || text.len() > 253 {
        return None;
    }
    let labels: Vec<&[u8]> = text.split('.').map(str::as_bytes).collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Names are looked up as absolute: no search domains from the system configuration.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}
