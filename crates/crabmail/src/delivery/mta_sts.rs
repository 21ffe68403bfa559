//! MTA-STS (RFC 8461): a domain's published promise that its MX hosts speak TLS with valid
//! certificates. We discover the policy by DNS (`_mta-sts.<domain>` TXT), fetch it over HTTPS
//! with a verified certificate, and cache it for its max_age.
//!
//! In `enforce` mode mail goes only to MX hosts the policy names, only over TLS with a certificate
//! valid for the host; anything else defers with the reason. `testing` and `none` change nothing
//! (failures are logged). When the policy cannot be fetched and none is cached, delivery goes on
//! as if the domain had none (RFC 8461 5).

use crate::clock::{SharedClock, Timestamp};
use crate::dns::Dns;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// RFC 8461 3.3: policy bodies are small; anything larger is refused.
const MAX_POLICY: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// RFC 8461 3.2: max_age is capped at one year.
const MAX_AGE_CAP: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut version = None;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_owned()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode `{other}`")),
                    })
                }
                "mx" => mx.push(value.to_ascii_lowercase()),
                "max_age" => max_age = value.parse::<u64>().ok(),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?.min(MAX_AGE_CAP);
        if mode != Mode::None && mx.is_empty() {
            return Err("no mx patterns".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// RFC 8461 4.1: an exact name, or `*.` matching exactly one leftmost label.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .and_then(|rest| rest.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.')),
                None => *pattern == host,
            })
    }
}

struct Cached {
    id: String,
    policy: Arc<Policy>,
    expires: Timestamp,
}

pub struct MtaSts {
    dns: Dns,
    http: reqwest::Client,
    port: u16,
    clock: SharedClock,
    cache: Mutex<HashMap<String, Cached>>,
}

impl MtaSts {
    /// `tls` is the verified client configuration delivery uses (system roots plus any CA the
    /// operator named); `port` is 443 outside tests.
    pub fn new(
        dns: Dns,
        tls: rustls::ClientConfig,
        port: u16,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(PolicyHosts(dns.clone())))
            // RFC 8461 3.3: redirects are not followed.
            .redirect(reqwest::redirect::Policy::none())
            // The policy host is fetched directly, as delivery connects to MX hosts: a proxy
            // from the environment would see every domain we send to.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .user_agent("crabmail")
            .build()
            .map_err(|e| format!("mta-sts client: {e}"))?;
        Ok(MtaSts {
            dns,
            http,
            port,
            clock,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The domain's policy in effect now, if it has one.
    pub async fn policy(&self, domain: &str) -> Option<Arc<Policy>> {
        let now = self.clock.now();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(domain)
                .filter(|c| now < c.expires)
                .map(|c| (c.id.clone(), c.policy.clone()))
        };
        let id = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => records.iter().find_map(|r| sts_id(r)),
            Err(_) => None,
        };
        let Some(id) = id else {
            // No record (or no answer): a cached policy still holds until it expires.
            return cached.map(|(_, p)| p);
        };
        if let Some((cached_id, policy)) = &cached
            && *cached_id == id
        {
            return Some(policy.clone());
        }
        match self.fetch(domain).await {
            Ok(policy) => {
                let policy = Arc::new(policy);
                let expires = now.plus(Duration::from_secs(policy.max_age));
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    domain.to_owned(),
                    Cached {
                        id,
                        policy: policy.clone(),
                        expires,
                    },
                );
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "mta-sts: cannot fetch the policy");
                cached.map(|(_, p)| p)
            }
        }
    }

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt: certificate verified, no redirects,
    /// the body read up to `MAX_POLICY` octets and refused beyond, the whole within
    /// `FETCH_TIMEOUT`.
    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let url = if self.port == 443 {
            format!("https://mta-sts.{domain}/.well-known/mta-sts.txt")
        } else {
            format!(
                "https://mta-sts.{domain}:{}/.well-known/mta-sts.txt",
                self.port
            )
        };
        let mut response = self.http.get(&url).send().await.map_err(describe)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_POLICY as u64)
        {
            return Err("policy too large".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() + chunk.len() > MAX_POLICY {
                return Err("policy too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        Policy::parse(&String::from_utf8_lossy(&body))
    }
}

/// reqwest's error with its causes: "error sending request" alone says nothing.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves policy hosts through crabmail's own resolver, so the configured DNS (and in tests
/// the loopback zone) decides where `mta-sts.<domain>` is.
struct PolicyHosts(Dns);

impl reqwest::dns::Resolve for PolicyHosts {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = dns
                .addresses(&host)
                .await
                .map_err(|e| format!("{host}: {e:?}"))?;
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(
                addrs
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// The id of a `v=STSv1; id=...` record.
fn sts_id(record: &str) -> Option<String> {
    let mut parts = record.split(';').map(str::trim);
    if parts.next()? != "v=STSv1" {
        return None;
    }
    parts.find_map(|p| p.strip_prefix("id=").map(|id| id.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_match_mx_patterns() {
        let p = Policy::parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.backup.example.test\r\nmax_age: 86400\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 86400);
        assert!(p.allows("mail.example.test"));
        assert!(p.allows("MAIL.example.test."));
        assert!(p.allows("mx1.backup.example.test"));
        assert!(
            !p.allows("a.b.backup.example.test"),
            "a wildcard is one label"
        );
        assert!(!p.allows("backup.example.test"));
        assert!(!p.allows("evil.test"));
        assert!(
            Policy::parse("version: STSv1\nmode: enforce\nmax_age: 5\n").is_err(),
            "enforce without mx"
        );
        assert!(Policy::parse("version: STSv2\nmode: none\nmax_age: 5\n").is_err());
        assert_eq!(
            Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE_CAP
        );
        assert_eq!(sts_id("v=STSv1; id=2026112701"), Some("2026112701".into()));
        assert_eq!(sts_id("v=spf1 -all"), None);
    }
}
