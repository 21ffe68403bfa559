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
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// RFC 8461 3.3: policy bodies are small; anything larger is refused.
const MAX_POLICY: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
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
    connector: TlsConnector,
    port: u16,
    clock: SharedClock,
    cache: Mutex<HashMap<String, Cached>>,
}

impl MtaSts {
    pub fn new(dns: Dns, connector: TlsConnector, port: u16, clock: SharedClock) -> Self {
        MtaSts {
            dns,
            connector,
            port,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
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

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt, certificate verified, no redirects.
    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let addrs = self
            .dns
            .addresses(&host)
            .await
            .map_err(|e| format!("{host}: {e:?}"))?;
        let addr = addrs
            .first()
            .ok_or_else(|| format!("{host} has no address"))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let fetch = async {
            let tcp = tokio::net::TcpStream::connect((*addr, self.port))
                .await
                .map_err(|e| e.to_string())?;
            let mut tls = self
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let request = format!(
                "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: crabmail\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut response = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                response.extend_from_slice(&chunk[..n]);
                if response.len() > MAX_POLICY {
                    return Err("policy too large".to_owned());
                }
            }
            Ok::<_, String>(response)
        };
        let response = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| "timed out".to_owned())??;
        // Split and de-chunk as bytes: a multi-byte character may straddle a chunk boundary.
        let split =
            memchr::memmem::find(&response, b"\r\n\r\n").ok_or("malformed HTTP response")?;
        let head = String::from_utf8_lossy(&response[..split]);
        let body = &response[split + 4..];
        let status = head.lines().next().unwrap_or("");
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(format!("HTTP status `{status}`"));
        }
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_vec()
        };
        let body = String::from_utf8_lossy(&body);
        Policy::parse(&body)
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

/// HTTP/1.1 chunked transfer coding, for servers that use it. Works on bytes: chunk sizes count
/// octets, not characters.
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(eol) = memchr::memmem::find(rest, b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        // Chunk extensions (`;name=value`) are allowed after the size.
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        let tail = &rest[eol + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    out
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
        assert_eq!(dechunk(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"), b"helloabc");
        // "é" is two octets; a chunk boundary between them must not break anything.
        let split = "mx: caf\u{e9}.test";
        let bytes = split.as_bytes();
        let cut = split.find('\u{e9}').unwrap() + 1;
        let mut chunked = format!("{cut:x}\r\n").into_bytes();
        chunked.extend_from_slice(&bytes[..cut]);
        chunked.extend_from_slice(format!("\r\n{:x}\r\n", bytes.len() - cut).as_bytes());
        chunked.extend_from_slice(&bytes[cut..]);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(dechunk(&chunked), bytes);
    }
}
