//! Settings whose values are more than text, parsed once when the configuration loads: a bad
//! value stops the server at start with the setting's name, and the code that uses them gets the
//! type, never the string.

use serde::Deserialize;

/// A CIDR network such as `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Network {
    base: std::net::IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: std::net::IpAddr = addr.trim().parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Network { base, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(text: String) -> Result<Network, String> {
        Network::parse(&text).ok_or_else(|| {
            format!(
                "`{text}` is not a CIDR network (submission.trusted_networks, api.metrics_from)"
            )
        })
    }
}

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

/// `delivery.relay`: empty means deliver by MX.
pub(super) fn optional_relay<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Relay>, D::Error> {
    let url = String::deserialize(d)?;
    if url.is_empty() {
        return Ok(None);
    }
    Relay::parse(&url)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("delivery.relay: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_what_their_prefix_says() {
        let cases = [
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("192.168.0.0/16", "::ffff:192.168.4.5", true),
            ("::1/128", "::1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "127.0.0.1", false),
        ];
        for (net, ip, want) in cases {
            let net = Network::parse(net).unwrap();
            assert_eq!(net.contains(ip.parse().unwrap()), want, "{net:?} {ip}");
        }
        for bad in ["", "nonsense", "10.0.0.0/33", "::/129", "1.2.3.4/x"] {
            assert!(Network::parse(bad).is_none(), "{bad}");
        }
    }

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
