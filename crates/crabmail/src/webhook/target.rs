//! Where a webhook may point. A URL is http or https with a host; unless the operator allows it
//! (`webhooks.allow_private`), no address it reaches may be loopback, private, link-local (cloud
//! metadata lives there), shared or otherwise not public: a webhook must not become a way to
//! probe the operator's own network. Names are checked when created and again at every connection
//! (the resolver below), so a name that later resolves inward is still refused.

use crate::dns::Dns;
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a URL is refused (the API's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a URL: {0}")]
    Malformed(String),
    #[error("the URL must be http or https")]
    Scheme,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error(
        "{0} is not a public address; webhooks may not reach loopback, private or link-local networks"
    )]
    Private(String),
    #[error("the URL is longer than {MAX_URL} characters")]
    TooLong,
}

/// The longest webhook URL accepted.
pub const MAX_URL: usize = 2048;

/// Checks a URL as written (scheme, credentials, IP literals and local names).
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, TargetError> {
    if text.len() > MAX_URL {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(text).map_err(|e| TargetError::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if allow_private {
        return Ok(url);
    }
    match url.host() {
        None => Err(TargetError::Malformed("no host".into())),
        Some(url::Host::Ipv4(ip)) => public(IpAddr::V4(ip)).map(|_| url.clone()),
        Some(url::Host::Ipv6(ip)) => public(IpAddr::V6(ip)).map(|_| url.clone()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let local = ["localhost", "local", "internal", "localdomain", "home.arpa"];
            if !name.contains('.')
                || local
                    .iter()
                    .any(|l| name == *l || name.ends_with(&format!(".{l}")))
            {
                return Err(TargetError::Private(name));
            }
            Ok(url.clone())
        }
    }
}

/// The address, if it is one a webhook may reach.
pub fn public(ip: IpAddr) -> Result<IpAddr, TargetError> {
    let refused = match ip {
        IpAddr::V4(v4) => !public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => !public_v4(v4),
            None => !public_v6(v6),
        },
    };
    if refused {
        Err(TargetError::Private(ip.to_string()))
    } else {
        Ok(ip)
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // shared address space (RFC 6598) and the IETF and benchmarking blocks
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0xdb8)
        // NAT64 (64:ff9b::/96) leads wherever its embedded IPv4 address does
        || (first == 0x64 && ip.segments()[1] == 0xff9b))
}

/// Resolves webhook hosts through crabmail's resolver and drops every address a webhook may not
/// reach (unless allowed); a name left with none fails the connection.
pub struct WebhookHosts {
    pub dns: Dns,
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for WebhookHosts {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.dns.clone();
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = dns
                .addresses(&host)
                .await
                .map_err(|e| format!("{host}: {e:?}"))?;
            let usable: Vec<SocketAddr> = found
                .iter()
                .filter(|ip| allow_private || public(**ip).is_ok())
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if usable.is_empty() {
                let why = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    TargetError::Private(host).to_string()
                };
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_http_targets_pass_by_default() {
        for ok in [
            "https://hooks.example.com/in",
            "http://93.184.216.34:8080/x",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("ftp://example.com/", TargetError::Scheme),
            ("https://u:p@example.com/", TargetError::Credentials),
            (
                "http://127.0.0.1:9/",
                TargetError::Private("127.0.0.1".into()),
            ),
            ("http://10.1.2.3/", TargetError::Private("10.1.2.3".into())),
            (
                "http://169.254.169.254/latest/meta-data",
                TargetError::Private("169.254.169.254".into()),
            ),
            ("http://[::1]/", TargetError::Private("::1".into())),
            (
                "http://[::ffff:192.168.1.1]/",
                TargetError::Private("::ffff:192.168.1.1".into()),
            ),
            ("http://[fd00::1]/", TargetError::Private("fd00::1".into())),
            (
                "http://localhost:8080/",
                TargetError::Private("localhost".into()),
            ),
            (
                "http://api.localhost/",
                TargetError::Private("api.localhost".into()),
            ),
            ("http://intranet/", TargetError::Private("intranet".into())),
            (
                "http://100.64.0.1/",
                TargetError::Private("100.64.0.1".into()),
            ),
        ] {
            assert_eq!(check_url(bad, false).map(|_| ()), Err(why), "{bad}");
        }
        assert!(matches!(
            check_url("not a url", false),
            Err(TargetError::Malformed(_))
        ));
        // The operator may allow private targets; the scheme rule still holds.
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
        assert_eq!(
            check_url("file:///etc/passwd", true).map(|_| ()),
            Err(TargetError::Scheme)
        );
    }
}
