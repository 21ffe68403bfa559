//! The DNS records a hosted domain publishes, and a live check of each.

use crate::clock::Timestamp;
use crate::dkim;
use crate::dns::{Dns, Failure, MailExchangers};
use crate::store::DkimKeyRecord;
use std::time::Duration;

/// How long a retired DKIM key should stay published (mail signed with it may still be in
/// flight or re-verified).
pub const DKIM_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    pub purpose: String,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    #[serde(flatten)]
    pub record: Record,
    pub status: Status,
    /// What the lookup returned (or the DNS error).
    pub found: Vec<String>,
}

/// The value of the MTA-STS policy id: changes when the domain's setup does.
pub fn mta_sts_id(created_at: Timestamp) -> String {
    created_at
        .to_rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect()
}

/// The MTA-STS policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
pub fn mta_sts_policy(hostname: &str) -> String {
    format!("version: STSv1\r\nmode: testing\r\nmx: {hostname}\r\nmax_age: 604800\r\n")
}

/// Everything `domain` should publish, for a server whose SMTP host name is `hostname`.
pub fn records(
    domain: &str,
    hostname: &str,
    keys: &[DkimKeyRecord],
    created_at: Timestamp,
    now: Timestamp,
) -> Vec<Record> {
    let record = |kind, name: String, value: String, purpose: &str, required| Record {
        kind,
        name,
        value,
        purpose: purpose.to_owned(),
        required,
    };
    let mut out = vec![
        record(
            "MX",
            domain.to_owned(),
            format!("10 {hostname}."),
            "mx",
            true,
        ),
        record(
            "TXT",
            domain.to_owned(),
            format!("v=spf1 a:{hostname} ~all"),
            "spf",
            false,
        ),
    ];
    for key in keys {
        let name = format!("{}._domainkey.{domain}", key.selector);
        match key.retired_at {
            None => out.push(record("TXT", name, dkim::dns_record(key), "dkim", true)),
            Some(retired) if now < retired.plus(DKIM_GRACE) => out.push(record(
                "TXT",
                name,
                dkim::dns_record(key),
                &format!(
                    "dkim (retired; keep until {})",
                    retired.plus(DKIM_GRACE).to_rfc3339()
                ),
                false,
            )),
            Some(_) => {}
        }
    }
    out.extend([
        record(
            "TXT",
            format!("_dmarc.{domain}"),
            "v=DMARC1; p=quarantine; adkim=r; aspf=r".into(),
            "dmarc",
            false,
        ),
        record(
            "TXT",
            format!("_mta-sts.{domain}"),
            format!("v=STSv1; id={}", mta_sts_id(created_at)),
            "mta-sts",
            false,
        ),
        record(
            "CNAME",
            format!("mta-sts.{domain}"),
            format!("{hostname}."),
            "mta-sts policy host (HTTPS)",
            false,
        ),
        record(
            "TXT",
            format!("_smtp._tls.{domain}"),
            format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
            "tls-rpt",
            false,
        ),
    ]);
    out
}

/// Looks each record up live.
pub async fn check(dns: &Dns, records: &[Record]) -> Vec<Check> {
    let mut checks = Vec::with_capacity(records.len());
    for record in records {
        let (status, found) = match record.kind {
            "MX" => check_mx(dns, record).await,
            "TXT" => check_txt(dns, record).await,
            _ => check_host(dns, record).await,
        };
        checks.push(Check {
            record: record.clone(),
            status,
            found,
        });
    }
    checks
}

/// Verified: every required record is in place.
pub fn verified(checks: &[Check]) -> bool {
    checks
        .iter()
        .filter(|c| c.record.required)
        .all(|c| c.status == Status::Ok)
}

fn trim_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn check_mx(dns: &Dns, record: &Record) -> (Status, Vec<String>) {
    let want = trim_host(record.value.split_whitespace().last().unwrap_or(""));
    match dns.mail_exchangers(&record.name).await {
        Ok(MailExchangers::Hosts(hosts)) => {
            let ok = hosts.iter().any(|h| trim_host(h) == want);
            (if ok { Status::Ok } else { Status::Mismatch }, hosts)
        }
        Ok(MailExchangers::Null) => (Status::Mismatch, vec![".".into()]),
        Ok(MailExchangers::Implicit) | Err(Failure::NoSuchDomain) => (Status::Missing, Vec::new()),
        Err(Failure::Temporary(e)) => (Status::Missing, vec![format!("DNS error: {e}")]),
    }
}

async fn check_txt(dns: &Dns, record: &Record) -> (Status, Vec<String>) {
    let found = match dns.txt(&record.name).await {
        Ok(found) => found,
        Err(Failure::Temporary(e)) => return (Status::Missing, vec![format!("DNS error: {e}")]),
        Err(Failure::NoSuchDomain) => return (Status::Missing, Vec::new()),
    };
    // Compare within the record's own kind (v=spf1, v=DKIM1...), tolerant of spacing and case.
    let tag = record
        .value
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let relevant: Vec<&String> = found
        .iter()
        .filter(|t| t.trim().to_ascii_lowercase().starts_with(&tag))
        .collect();
    if relevant.is_empty() {
        return (Status::Missing, found);
    }
    let matches = |have: &str| match record.purpose.as_str() {
        // The key must be ours; other tags may differ.
        p if p.starts_with("dkim") => tag_value(have, "p") == tag_value(&record.value, "p"),
        // A domain's own DMARC, MTA-STS or TLS-RPT choices are its business: present is fine.
        "dmarc" | "mta-sts" | "tls-rpt" => true,
        _ => normalize(have) == normalize(&record.value),
    };
    let status = if relevant.iter().any(|t| matches(t)) {
        Status::Ok
    } else {
        Status::Mismatch
    };
    (status, found)
}

async fn check_host(dns: &Dns, record: &Record) -> (Status, Vec<String>) {
    match dns.addresses(&record.name).await {
        Ok(addrs) if !addrs.is_empty() => {
            (Status::Ok, addrs.iter().map(|a| a.to_string()).collect())
        }
        Ok(_) | Err(Failure::NoSuchDomain) => (Status::Missing, Vec::new()),
        Err(Failure::Temporary(e)) => (Status::Missing, vec![format!("DNS error: {e}")]),
    }
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

fn tag_value(record: &str, tag: &str) -> String {
    record
        .split(';')
        .filter_map(|part| part.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(tag))
        .map(|(_, v)| v.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default()
}

/// The records as a zone-file snippet.
pub fn zone_snippet(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        let value = match r.kind {
            "TXT" => quote_txt(&r.value),
            _ => r.value.clone(),
        };
        out.push_str(&format!(
            "; {}{}\n",
            r.purpose,
            if r.required { " (required)" } else { "" }
        ));
        out.push_str(&format!("{}. 3600 IN {} {}\n", r.name, r.kind, value));
    }
    out
}

/// TXT values longer than 255 octets are split into several strings (RFC 1035 3.3.14).
fn quote_txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a name can never be a custom domain, if it cannot: an address literal, or a name that
/// RFC 6761 and RFC 6762 reserve for this machine or for nowhere (`localhost`, `invalid`,
/// `local`, and names under them), or a reverse-DNS name. `.test` and `.example` stay allowed:
/// test networks use them.
pub fn unclaimable(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok()
        || name
            .split('.')
            .all(|label| label.chars().all(|c| c.is_ascii_digit()))
    {
        return Some("an IP address is not a domain that can be claimed");
    }
    let last = name.rsplit('.').next().unwrap_or("");
    if matches!(last, "localhost" | "invalid" | "local" | "arpa") {
        return Some("a reserved name (localhost, invalid, local, arpa) cannot be claimed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cover_mail_signing_and_policy() {
        let keys = dkim::generate("dom_1", Timestamp(1_796_000_000_000), false).unwrap();
        let recs = records(
            "agents.test",
            "mx.crabmail.test",
            &keys,
            Timestamp(1_796_000_000_000),
            Timestamp(1_796_000_000_000),
        );
        let purposes: Vec<&str> = recs.iter().map(|r| r.purpose.as_str()).collect();
        assert_eq!(
            purposes,
            [
                "mx",
                "spf",
                "dkim",
                "dmarc",
                "mta-sts",
                "mta-sts policy host (HTTPS)",
                "tls-rpt"
            ]
        );
        assert_eq!(recs[0].value, "10 mx.crabmail.test.");
        assert!(recs[2].name.ends_with("._domainkey.agents.test"));
        let zone = zone_snippet(&recs);
        assert!(
            zone.contains("agents.test. 3600 IN MX 10 mx.crabmail.test."),
            "{zone}"
        );
        // A 2048-bit key's record is longer than 255 octets: split into strings.
        let dkim_line = zone.lines().find(|l| l.contains("_domainkey")).unwrap();
        assert!(dkim_line.matches('"').count() >= 4, "{dkim_line}");
        assert_eq!(mta_sts_id(Timestamp(1_796_000_000_000)), "20261130005320");
    }

    #[test]
    fn retired_keys_stay_listed_for_the_grace_period() {
        let mut keys = dkim::generate("dom_1", Timestamp(0), false).unwrap();
        keys[0].retired_at = Some(Timestamp(1_000));
        let during = records("a.test", "mx.test", &keys, Timestamp(0), Timestamp(2_000));
        assert!(
            during
                .iter()
                .any(|r| r.purpose.starts_with("dkim (retired") && !r.required)
        );
        let after = records(
            "a.test",
            "mx.test",
            &keys,
            Timestamp(0),
            Timestamp(1_000).plus(DKIM_GRACE),
        );
        assert!(!after.iter().any(|r| r.purpose.starts_with("dkim")));
    }

    #[test]
    fn dkim_records_compare_by_key() {
        assert_eq!(tag_value("v=DKIM1; k=rsa; p=AB CD", "p"), "ABCD");
        assert_eq!(
            normalize("v=spf1   a:mx.test  ~all"),
            "v=spf1 a:mx.test ~all"
        );
    }

    #[test]
    fn ip_literals_and_reserved_names_are_unclaimable() {
        for name in [
            "127.0.0.1",
            "[127.0.0.1]",
            "::1",
            "10.1.2.3",
            "localhost",
            "mail.localhost",
            "x.invalid",
            "printer.local",
            "1.0.0.127.in-addr.arpa",
        ] {
            assert!(unclaimable(name).is_some(), "{name}");
        }
        for name in ["example.test", "agents.example.com", "1password.com"] {
            assert!(unclaimable(name).is_none(), "{name}");
        }
    }
}
