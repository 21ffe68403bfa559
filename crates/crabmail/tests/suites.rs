//! Published authentication test suites run through crabmail's verifier, each against a real DNS
//! server on loopback serving the suite's own zone data.
//!
//! - The OpenSPF RFC 7208 suite (pyspf's `rfc7208-tests.yml`): every test's MAIL FROM identity
//!   (postmaster@HELO when MAIL FROM is empty), as `check_host()` sees it.
//! - ValiMail's ARC validation suite: the chain validation result of every message (the shape
//!   of the chain checked by crabmail, the signatures by mail-auth).
//!
//! The fixtures are the suites converted to JSON by `fixtures/suites/convert.py`. Each test prints
//! its pass count; a case we are known to answer differently is listed by name with the reason,
//! so a regression or an improvement both fail the test until the list is brought up to date.

use crabmail::clock::SystemClock;
use crabmail::config::Config;
use crabmail::dns::Dns;
use crabmail::verify::{Verifier, spf_result};
use crabmail_testkit::Zone;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
struct SpfScenario {
    description: String,
    zone: BTreeMap<String, Vec<SpfRecord>>,
    tests: Vec<SpfTest>,
}

#[derive(Deserialize)]
struct SpfRecord {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    strings: Vec<String>,
    #[serde(default)]
    preference: u16,
    #[serde(default)]
    host: String,
}

#[derive(Deserialize)]
struct SpfTest {
    name: String,
    helo: String,
    host: String,
    mailfrom: String,
    receiver: String,
    result: Vec<String>,
    explanation: Option<String>,
}

/// The suite writes octets as characters U+0000..U+00FF; anything above is UTF-8 text.
fn octets(text: &str) -> Vec<u8> {
    if text.chars().all(|c| u32::from(c) <= 0xff) {
        text.chars().map(|c| c as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn spf_zone(records: &BTreeMap<String, Vec<SpfRecord>>) -> Zone {
    let mut zone = Zone::new().origin(".");
    for (owner, list) in records {
        zone = zone.exists(owner);
        for r in list {
            zone = match r.kind.as_str() {
                "TIMEOUT" => zone.timeout(owner),
                "NONE" => zone,
                "TXT" => {
                    let mut strings: Vec<Vec<u8>> = r.strings.iter().map(|s| octets(s)).collect();
                    if strings.is_empty() {
                        // "No strings" cannot be sent; the nearest legal record is one empty one.
                        strings.push(Vec::new());
                    }
                    zone.txt_bytes(owner, &strings)
                }
                "A" | "AAAA" => zone.a(owner, &r.value),
                "MX" => zone.mx(owner, r.preference, &r.host),
                "PTR" => zone.ptr(owner, &r.value),
                "CNAME" => zone.cname(owner, &r.value),
                other => panic!("record type {other} in the SPF suite"),
            };
        }
    }
    zone
}

fn resolver_for(addr: SocketAddr) -> Dns {
    let mut config = Config::defaults();
    config.dns.nameservers = vec![addr];
    // The suite's TIMEOUT names never answer; do not wait long for them.
    config.dns.timeout = Duration::from_millis(300);
    Dns::new(&config.dns).expect("resolver")
}

/// Where we answer differently from the suite, and why.
const SPF_KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "v-macro-ip6",
    "the suite wants %{i} of an IPv6 address in upper-case nibbles; RFC 7208 7.4's own example \
     writes them in lower case, as we do (DNS ignores the case; only explanation text differs)",
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openspf_rfc7208_suite() {
    let scenarios: Vec<SpfScenario> =
        serde_json::from_str(include_str!("fixtures/suites/spf-rfc7208.json")).unwrap();
    let config = Config::defaults();
    let known: BTreeSet<&str> = SPF_KNOWN_DIFFERENCES.iter().map(|(n, _)| *n).collect();
    let (mut total, mut passed) = (0, 0);
    let mut unexpected = Vec::new();
    for scenario in &scenarios {
        let dns_server = spf_zone(&scenario.zone).serve().await;
        let dns = resolver_for(dns_server.addr);
        for t in &scenario.tests {
            total += 1;
            let receiver = if t.receiver.is_empty() {
                "receiver.test"
            } else {
                &t.receiver
            };
            let verifier = Verifier::new(&dns, receiver, &config.verify, Arc::new(SystemClock));
            let ip = t.host.parse().expect("test IP");
            let (_, output) = verifier.spf(ip, &t.helo, &t.mailfrom).await;
            let got = spf_result(output.result());
            let mut ok = t.result.iter().any(|r| r == got);
            let mut detail = format!("got {got}, expected {:?}", t.result);
            if let (true, Some(expected), "fail") = (ok, &t.explanation, got) {
                let explained = output.explanation().unwrap_or("");
                // DEFAULT: the checker's own text, so no explanation from the record.
                let matches = if expected == "DEFAULT" {
                    explained.is_empty()
                } else {
                    explained == expected
                };
                if !matches {
                    ok = false;
                    detail = format!("explanation {explained:?}, expected {expected:?}");
                }
            }
            if ok {
                passed += 1;
            }
            if ok == known.contains(t.name.as_str()) {
                unexpected.push(format!("{} / {}: {detail}", scenario.description, t.name));
            }
        }
    }
    println!("OpenSPF RFC 7208 suite: {passed}/{total} pass");
    assert!(
        unexpected.is_empty(),
        "{} outcomes differ from what is recorded ({passed}/{total} pass):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[derive(Deserialize)]
struct ArcScenario {
    description: String,
    txt: BTreeMap<String, String>,
    tests: Vec<ArcTest>,
}

#[derive(Deserialize)]
struct ArcTest {
    name: String,
    message: String,
    cv: String,
}

/// Where we answer differently from the suite, and why.
const ARC_KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "ams_fields_c_na",
        "mail-auth refuses an AMS without c= (RFC 6376 defaults it to simple/simple)",
    ),
    (
        "ams_fields_h_empty",
        "mail-auth refuses an AMS with an empty h=, which the suite accepts",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valimail_arc_validation_suite() {
    let scenarios: Vec<ArcScenario> =
        serde_json::from_str(include_str!("fixtures/suites/arc-validation.json")).unwrap();
    let config = Config::defaults();
    let known: BTreeSet<&str> = ARC_KNOWN_DIFFERENCES.iter().map(|(n, _)| *n).collect();
    let (mut total, mut passed, mut unstated) = (0, 0, 0);
    let mut unexpected = Vec::new();
    for scenario in &scenarios {
        let mut zone = Zone::new().origin(".");
        for (owner, value) in &scenario.txt {
            zone = zone.txt(owner, value);
        }
        let dns_server = zone.serve().await;
        let dns = resolver_for(dns_server.addr);
        let verifier = Verifier::new(&dns, "receiver.test", &config.verify, Arc::new(SystemClock));
        for t in &scenario.tests {
            let got = match verifier.arc(t.message.as_bytes()).await {
                "pass" => "Pass",
                "none" => "None",
                _ => "Fail",
            };
            if t.cv.is_empty() {
                // Three cases state no expectation; they are reported, not counted.
                unstated += 1;
                println!("ARC {} (no expectation stated): {got}", t.name);
                continue;
            }
            total += 1;
            let ok = got == t.cv;
            if ok {
                passed += 1;
            }
            if ok == known.contains(t.name.as_str()) {
                unexpected.push(format!(
                    "{} / {}: got {got}, expected {}",
                    scenario.description, t.name, t.cv
                ));
            }
        }
    }
    println!(
        "ValiMail ARC validation suite: {passed}/{total} pass ({unstated} without expectation)"
    );
    assert!(
        unexpected.is_empty(),
        "{} outcomes differ from what is recorded ({passed}/{total} pass):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
