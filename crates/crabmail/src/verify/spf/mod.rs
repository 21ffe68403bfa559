//! SPF, RFC 7208's check_host(), on our resolver.
//!
//! mail-auth has an SPF evaluator, but it reads malformed records leniently (a syntax error
//! becomes neutral, or even pass), takes the first of several SPF records, treats names that
//! cannot be looked up as DNS failures (temperror), and mismatches `ptr` names with a trailing
//! dot: 138 of the 203 OpenSPF RFC 7208 tests. This module follows the RFC to the letter and is
//! measured on the same suite (tests/suites.rs). Its result feeds mail-auth's DMARC as an
//! `SpfOutput`, so alignment and policy stay mail-auth's.

mod record;

use crate::dns::{Dns, Failure, Name, RData, RecordType, dns_name};
use mail_auth::{SpfOutput, SpfResult};
use record::{MacroString, Mechanism, Piece, Qualifier, Record};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// RFC 7208 4.6.4: terms that cause DNS queries, per check.
const MAX_LOOKUPS: u32 = 10;
/// RFC 7208 4.6.4: lookups that find nothing, per check.
const MAX_VOID_LOOKUPS: u32 = 2;
/// RFC 7208 4.6.4: MX names an `mx` mechanism may have; PTR names a `ptr` looks at.
const MAX_NAMES: usize = 10;
/// RFC 7208 4.3 and 7.3: the longest name looked up.
const MAX_NAME_LEN: usize = 253;

/// Who is being checked: the client's address and what it said in HELO and MAIL FROM.
pub struct Spf<'a> {
    dns: &'a Dns,
    ip: IpAddr,
    local: String,
    sender_domain: String,
    helo: String,
    receiver: String,
    now: u64,
}

/// Lookup budgets shared by a check and everything it includes or redirects to.
#[derive(Default)]
struct Budget {
    lookups: u32,
    voids: u32,
}

impl Budget {
    fn lookup(&mut self) -> Result<(), SpfResult> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(SpfResult::PermError);
        }
        Ok(())
    }

    fn void(&mut self) -> Result<(), SpfResult> {
        self.voids += 1;
        if self.voids > MAX_VOID_LOOKUPS {
            return Err(SpfResult::PermError);
        }
        Ok(())
    }
}

type Checked = (SpfResult, Option<String>);

impl<'a> Spf<'a> {
    /// The MAIL FROM identity; for the null sender, `postmaster@HELO` (RFC 7208 2.4).
    pub fn mail_from(
        dns: &'a Dns,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        receiver: &str,
        now: u64,
    ) -> Spf<'a> {
        let (local, domain) = match mail_from.rsplit_once('@') {
            Some((local, domain)) => (local, domain),
            None if mail_from.is_empty() => ("postmaster", helo),
            None => ("postmaster", mail_from),
        };
        Spf {
            dns,
            // RFC 7208 5: an IPv4-mapped IPv6 client is an IPv4 client.
            ip: ip.to_canonical(),
            local: if local.is_empty() {
                "postmaster".to_owned()
            } else {
                local.to_owned()
            },
            sender_domain: domain.to_owned(),
            helo: helo.to_owned(),
            receiver: receiver.to_owned(),
            now,
        }
    }

    /// The HELO identity (RFC 7208 2.3): `postmaster@HELO`.
    pub fn helo(dns: &'a Dns, ip: IpAddr, helo: &str, receiver: &str, now: u64) -> Spf<'a> {
        Self::mail_from(dns, ip, helo, "", receiver, now)
    }

    /// check_host() for the identity's domain, as mail-auth's `SpfOutput` for DMARC.
    pub async fn check(&self) -> SpfOutput {
        let domain = self.sender_domain.clone();
        let (result, explanation) = self.check_host(&domain, &mut Budget::default()).await;
        let output = SpfOutput::new(domain).with_result(result);
        match explanation {
            Some(text) => output.with_explanation(text),
            None => output,
        }
    }

    fn check_host<'s>(
        &'s self,
        domain: &'s str,
        budget: &'s mut Budget,
    ) -> Pin<Box<dyn Future<Output = Checked> + Send + 's>> {
        Box::pin(async move {
            if !checkable(domain) {
                return (SpfResult::None, None);
            }
            let record = match self.record(domain).await {
                Ok(Some(record)) => record,
                Ok(None) => return (SpfResult::None, None),
                Err(result) => return (result, None),
            };
            let mut matched = None;
            for directive in &record.directives {
                if directive.mechanism.looks_up()
                    && let Err(result) = budget.lookup()
                {
                    return (result, None);
                }
                match self.matches(&directive.mechanism, domain, budget).await {
                    Ok(true) => {
                        matched = Some(directive.qualifier);
                        break;
                    }
                    Ok(false) => {}
                    Err(result) => return (result, None),
                }
            }
            let result = match matched {
                Some(Qualifier::Pass) => SpfResult::Pass,
                Some(Qualifier::Fail) => SpfResult::Fail,
                Some(Qualifier::SoftFail) => SpfResult::SoftFail,
                Some(Qualifier::Neutral) => SpfResult::Neutral,
                None => match &record.redirect {
                    // RFC 7208 6.1: the target's result (and explanation) stands for ours.
                    Some(target) => {
                        if let Err(result) = budget.lookup() {
                            return (result, None);
                        }
                        let target = self.domain(target, domain).await;
                        return match self.check_host(&target, budget).await {
                            (SpfResult::None, _) => (SpfResult::PermError, None),
                            other => other,
                        };
                    }
                    None => SpfResult::Neutral,
                },
            };
            let explanation = match (&result, &record.exp) {
                (SpfResult::Fail, Some(exp)) => self.explain(exp, domain).await,
                _ => None,
            };
            (result, explanation)
        })
    }

    /// The domain's one SPF record (RFC 7208 4.4, 4.5).
    async fn record(&self, domain: &str) -> Result<Option<Record>, SpfResult> {
        let Some(name) = dns_name(domain) else {
            return Ok(None);
        };
        let answers = match self.dns.query(&name, RecordType::TXT).await {
            Ok(answers) => answers,
            Err(Failure::NoSuchDomain) => return Ok(None),
            Err(Failure::Temporary(_)) => return Err(SpfResult::TempError),
        };
        let mut spf = answers.iter().map(txt_bytes).filter(|t| record::is_spf(t));
        let Some(first) = spf.next() else {
            return Ok(None);
        };
        if spf.next().is_some() {
            return Err(SpfResult::PermError);
        }
        record::parse(&first)
            .map(Some)
            .map_err(|_| SpfResult::PermError)
    }

    /// RFC 7208 5.4: the client is one of `target`'s MX hosts (at most `MAX_NAMES` of them),
    /// within the mechanism's prefix lengths.
    async fn mx_matches(
        &self,
        target: &str,
        v4: u8,
        v6: u8,
        budget: &mut Budget,
    ) -> Result<bool, SpfResult> {
        let Some(name) = dns_name(target) else {
            return Ok(false);
        };
        let hosts: Vec<Name> = match self.dns.query(&name, RecordType::MX).await {
            Ok(answers) => answers
                .into_iter()
                .filter_map(|r| match r {
                    RData::MX(mx) => Some(mx.exchange.clone()),
                    _ => None,
                })
                .collect(),
            Err(Failure::NoSuchDomain) => Vec::new(),
            Err(Failure::Temporary(_)) => return Err(SpfResult::TempError),
        };
        if hosts.is_empty() {
            budget.void()?;
            return Ok(false);
        }
        if hosts.len() > MAX_NAMES {
            return Err(SpfResult::PermError);
        }
        for host in hosts.iter().filter(|h| !h.is_root()) {
            let addresses = match self.dns.query(host, self.family()).await {
                Ok(answers) => answers,
                Err(Failure::NoSuchDomain) => Vec::new(),
                Err(Failure::Temporary(_)) => return Err(SpfResult::TempError),
            };
            if addresses
                .iter()
                .filter_map(address)
                .any(|a| self.within(a, v4, v6))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn matches(
        &self,
        mechanism: &Mechanism,
        domain: &str,
        budget: &mut Budget,
    ) -> Result<bool, SpfResult> {
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { network, len } => Ok(match self.ip {
                IpAddr::V4(ip) => in_v4(*network, *len, ip),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { network, len } => Ok(match self.ip {
                IpAddr::V6(ip) => in_v6(*network, *len, ip),
                IpAddr::V4(_) => false,
            }),
            Mechanism::Include(target) => {
                let target = self.domain(target, domain).await;
                match self.check_host(&target, budget).await.0 {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(SpfResult::TempError),
                    SpfResult::PermError | SpfResult::None => Err(SpfResult::PermError),
                }
            }
            Mechanism::A {
                domain: target,
                v4,
                v6,
            } => {
                let target = self.target(target.as_ref(), domain).await;
                let addresses = self.addresses(&target, self.family(), budget).await?;
                Ok(addresses.iter().any(|a| self.within(*a, *v4, *v6)))
            }
            Mechanism::Mx {
                domain: target,
                v4,
                v6,
            } => {
                let target = self.target(target.as_ref(), domain).await;
                self.mx_matches(&target, *v4, *v6, budget).await
            }
            Mechanism::Ptr(target) => {
                let target = trim(&self.target(target.as_ref(), domain).await);
                Ok(self
                    .validated_names()
                    .await
                    .iter()
                    .any(|name| is_within(name, &target)))
            }
            Mechanism::Exists(target) => {
                let target = self.domain(target, domain).await;
                // Always an A query, whatever the client's address family (RFC 7208 5.7).
                let found = self.addresses(&target, RecordType::A, budget).await?;
                Ok(!found.is_empty())
            }
        }
    }

    fn family(&self) -> RecordType {
        match self.ip {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        }
    }

    fn within(&self, address: IpAddr, v4: u8, v6: u8) -> bool {
        match (self.ip, address) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => in_v4(net, v4, ip),
            (IpAddr::V6(ip), IpAddr::V6(net)) => in_v6(net, v6, ip),
            _ => false,
        }
    }

    /// A or AAAA records of `target`; finding none is a void lookup.
    async fn addresses(
        &self,
        target: &str,
        kind: RecordType,
        budget: &mut Budget,
    ) -> Result<Vec<IpAddr>, SpfResult> {
        let Some(name) = dns_name(target) else {
            return Ok(Vec::new());
        };
        let found: Vec<IpAddr> = match self.dns.query(&name, kind).await {
            Ok(answers) => answers.iter().filter_map(address).collect(),
            Err(Failure::NoSuchDomain) => Vec::new(),
            Err(Failure::Temporary(_)) => return Err(SpfResult::TempError),
        };
        if found.is_empty() {
            budget.void()?;
        }
        Ok(found)
    }

    /// Names the client's address maps back to that map forward to it again (RFC 7208 5.5).
    async fn validated_names(&self) -> Vec<String> {
        let Some(reverse) = dns_name(&reverse_name(self.ip)) else {
            return Vec::new();
        };
        let names: Vec<Name> = match self.dns.query(&reverse, RecordType::PTR).await {
            Ok(answers) => answers
                .into_iter()
                .filter_map(|r| match r {
                    RData::PTR(ptr) => Some(ptr.0.clone()),
                    _ => None,
                })
                .take(MAX_NAMES)
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut validated = Vec::new();
        for name in names {
            if let Ok(answers) = self.dns.query(&name, self.family()).await
                && answers.iter().filter_map(address).any(|a| a == self.ip)
            {
                validated.push(trim(&name.to_ascii()));
            }
        }
        validated
    }

    /// A mechanism's domain-spec expanded, or the current domain when it has none.
    async fn target(&self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.domain(spec, domain).await,
            None => domain.to_owned(),
        }
    }

    /// A domain-spec expanded, then cut from the left to fit DNS (RFC 7208 7.3).
    async fn domain(&self, spec: &MacroString, domain: &str) -> String {
        let mut expanded = self.expand(spec, domain).await;
        while expanded.len() > MAX_NAME_LEN {
            match expanded.split_once('.') {
                Some((_, rest)) => expanded = rest.to_owned(),
                None => break,
            }
        }
        expanded
    }

    /// The explanation for a fail (RFC 7208 6.2): one TXT record, macro-expanded, ASCII.
    /// Anything wrong on the way means no explanation.
    async fn explain(&self, exp: &MacroString, domain: &str) -> Option<String> {
        let target = self.domain(exp, domain).await;
        let answers = self
            .dns
            .query(&dns_name(&target)?, RecordType::TXT)
            .await
            .ok()?;
        let [only] = answers.as_slice() else {
            return None;
        };
        let text = String::from_utf8(txt_bytes(only)).ok()?;
        if !text.is_ascii() {
            return None;
        }
        let template = record::macro_string(&text, true).ok()?;
        Some(self.expand(&template, domain).await)
    }

    /// RFC 7208 7: macros replaced, with their transformers, URL-escaped when upper case.
    async fn expand(&self, string: &MacroString, domain: &str) -> String {
        let mut out = String::new();
        for piece in &string.0 {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Macro {
                    letter,
                    escape,
                    keep,
                    reverse,
                    delimiters,
                } => {
                    let value = self.macro_value(*letter, domain).await;
                    let value = transform(&value, delimiters, *reverse, *keep);
                    if *escape {
                        out.push_str(&url_escape(&value));
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }

    async fn macro_value(&self, letter: char, domain: &str) -> String {
        match letter {
            's' => format!("{}@{}", self.local, self.sender_domain),
            'l' => self.local.clone(),
            'o' => self.sender_domain.clone(),
            'd' => domain.to_owned(),
            'i' => dotted(self.ip),
            'p' => self.validated_name(domain).await,
            'h' => self.helo.clone(),
            'c' => self.ip.to_string(),
            'r' if self.receiver.is_empty() => "unknown".to_owned(),
            'r' => self.receiver.clone(),
            't' => self.now.to_string(),
            'v' if self.ip.is_ipv4() => "in-addr".to_owned(),
            _ => "ip6".to_owned(),
        }
    }

    /// `%{p}`: a validated name, the domain itself or one under it preferred (RFC 7208 7.3).
    async fn validated_name(&self, domain: &str) -> String {
        let names = self.validated_names().await;
        let domain = trim(domain);
        names
            .iter()
            .find(|n| **n == domain)
            .or_else(|| names.iter().find(|n| is_within(n, &domain)))
            .or_else(|| names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// RFC 7208 4.3: a domain check_host() can judge at all: a multi-label name within DNS limits.
fn checkable(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    !d.is_empty()
        && d.len() <= MAX_NAME_LEN
        && d.contains('.')
        && d.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

fn txt_bytes(rdata: &RData) -> Vec<u8> {
    match rdata {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect(),
        _ => Vec::new(),
    }
}

fn address(rdata: &RData) -> Option<IpAddr> {
    match rdata {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

fn trim(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `name` is `domain` or under it.
fn is_within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

fn in_v4(network: Ipv4Addr, len: u8, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(network) & mask == u32::from(ip) & mask
}

fn in_v6(network: Ipv6Addr, len: u8, ip: Ipv6Addr) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(network) & mask == u128::from(ip) & mask
}

/// `%{i}`: dotted quad, or 32 dot-separated nibbles for IPv6.
fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .flat_map(|b| [b >> 4, b & 0x0f])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn reverse_name(ip: IpAddr) -> String {
    let mut parts: Vec<String> = dotted(ip).split('.').map(str::to_owned).collect();
    parts.reverse();
    let suffix = if ip.is_ipv4() {
        "in-addr.arpa"
    } else {
        "ip6.arpa"
    };
    format!("{}.{suffix}", parts.join("."))
}

/// Split on the delimiters, optionally reverse, keep the right-hand `keep`, join with dots.
fn transform(value: &str, delimiters: &str, reverse: bool, keep: Option<usize>) -> String {
    if delimiters.is_empty() && !reverse && keep.is_none() {
        return value.to_owned();
    }
    let split: &[char] = &if delimiters.is_empty() {
        vec!['.']
    } else {
        delimiters.chars().collect::<Vec<_>>()
    };
    let mut parts: Vec<&str> = value.split(split).collect();
    if reverse {
        parts.reverse();
    }
    if let Some(keep) = keep
        && keep < parts.len()
    {
        parts.drain(..parts.len() - keep);
    }
    parts.join(".")
}

fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_transformers_follow_rfc_7208_examples() {
        // RFC 7208 7.4, sender strong-bad@email.example.com, client 192.0.2.3.
        assert_eq!(
            transform("email.example.com", "", false, Some(4)),
            "email.example.com"
        );
        assert_eq!(
            transform("email.example.com", "", false, Some(3)),
            "email.example.com"
        );
        assert_eq!(
            transform("email.example.com", "", false, Some(2)),
            "example.com"
        );
        assert_eq!(transform("email.example.com", "", false, Some(1)), "com");
        assert_eq!(
            transform("email.example.com", "", true, None),
            "com.example.email"
        );
        assert_eq!(
            transform("email.example.com", "", true, Some(2)),
            "example.email"
        );
        assert_eq!(transform("strong-bad", "-", false, None), "strong.bad");
        assert_eq!(transform("strong-bad", "-", true, None), "bad.strong");
        assert_eq!(transform("strong-bad", "-", true, Some(1)), "strong");
        assert_eq!(
            transform(&dotted("192.0.2.3".parse().unwrap()), "", true, None),
            "3.2.0.192"
        );
        assert_eq!(
            dotted("2001:db8::cb01".parse().unwrap()),
            "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1"
        );
        assert_eq!(url_escape("jack&jill=up"), "jack%26jill%3Dup");
    }

    #[test]
    fn networks_match_by_prefix() {
        let net: Ipv4Addr = "192.0.2.0".parse().unwrap();
        assert!(in_v4(net, 24, "192.0.2.200".parse().unwrap()));
        assert!(!in_v4(net, 24, "192.0.3.1".parse().unwrap()));
        assert!(in_v4(net, 0, "10.0.0.1".parse().unwrap()));
        assert!(!in_v4(net, 32, "192.0.2.1".parse().unwrap()));
        let net6: Ipv6Addr = "2001:db8::".parse().unwrap();
        assert!(in_v6(net6, 32, "2001:db8:ffff::1".parse().unwrap()));
        assert!(!in_v6(net6, 128, "2001:db8::1".parse().unwrap()));
        assert!(is_within("mail.example.com", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
    }
}
