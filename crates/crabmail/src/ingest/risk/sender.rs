//! Who the mail claims to be from, as amplifiers: failed authentication, a display name that
//! borrows a brand or the operator's name, a domain that looks like a brand's. None of these is an
//! injection; each makes an instruction in the same message more dangerous.

use crate::account::address::Domain;
use crabmail_api::{AuthResults, Mailbox};

/// Brands often impersonated, with the domains that legitimately send as them.
const BRANDS: &[(&str, &[&str])] = &[
    ("paypal", &["paypal.com"]),
    (
        "microsoft",
        &[
            "microsoft.com",
            "outlook.com",
            "office.com",
            "live.com",
            "office365.com",
        ],
    ),
    (
        "office 365",
        &["microsoft.com", "office.com", "office365.com"],
    ),
    ("outlook", &["microsoft.com", "outlook.com"]),
    (
        "google",
        &["google.com", "gmail.com", "youtube.com", "googlemail.com"],
    ),
    ("gmail", &["google.com", "gmail.com"]),
    ("apple", &["apple.com", "icloud.com"]),
    ("icloud", &["apple.com", "icloud.com"]),
    (
        "amazon",
        &[
            "amazon.com",
            "amazon.co.uk",
            "amazon.de",
            "amazon.fr",
            "amazonaws.com",
            "amazonses.com",
            "aws",
        ],
    ),
    ("github", &["github.com"]),
    ("gitlab", &["gitlab.com"]),
    ("stripe", &["stripe.com"]),
    ("openai", &["openai.com"]),
    ("anthropic", &["anthropic.com"]),
    ("chase", &["chase.com", "jpmorgan.com"]),
    ("wells fargo", &["wellsfargo.com"]),
    ("bank of america", &["bankofamerica.com", "bofa.com"]),
    ("netflix", &["netflix.com"]),
    ("docusign", &["docusign.com", "docusign.net"]),
    ("dropbox", &["dropbox.com"]),
    ("linkedin", &["linkedin.com"]),
    (
        "facebook",
        &["facebook.com", "facebookmail.com", "meta.com"],
    ),
    ("instagram", &["instagram.com", "facebookmail.com"]),
    ("coinbase", &["coinbase.com"]),
    ("binance", &["binance.com"]),
    ("slack", &["slack.com"]),
    ("zoom", &["zoom.us", "zoom.com"]),
    ("dhl", &["dhl.com", "dhl.de"]),
    ("fedex", &["fedex.com"]),
    ("ups", &["ups.com"]),
    ("usps", &["usps.com"]),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub rule: &'static str,
    pub weight: f64,
    pub excerpt: String,
    pub location: String,
}

/// Amplifiers for a message from `from` with these verification results. `operator_names` are
/// names the agent's operator uses; mail displaying one from elsewhere is suspicious.
pub fn signals(
    from: Option<&Mailbox>,
    auth: Option<&AuthResults>,
    operator_names: &[String],
    operator_addresses: &[String],
) -> Vec<Signal> {
    let mut out: Vec<Signal> = auth.and_then(failed_authentication).into_iter().collect();
    let Some(from) = from else {
        return out;
    };
    let address = from.address.as_deref().unwrap_or("").to_ascii_lowercase();
    let domain = Domain::of(&address)
        .map(Domain::into_string)
        .unwrap_or_default();
    let name = from.name.as_deref().unwrap_or("").to_lowercase();
    let shown_name = from.name.as_deref().unwrap_or("");
    out.extend(spoofed_address(&name, &address));
    out.extend(borrowed_identity(
        &name,
        shown_name,
        &address,
        &domain,
        operator_names,
        operator_addresses,
    ));
    out.extend(lookalike_signal(&domain));
    out
}

/// The strongest authentication failure, if any: DMARC, else SPF or DKIM without a passing
/// DKIM signature.
fn failed_authentication(auth: &AuthResults) -> Option<Signal> {
    let dkim_pass = auth.dkim.iter().any(|d| d.result == "pass");
    let location = "header:Authentication-Results";
    if auth.dmarc.result == "fail" {
        Some(signal(
            "auth_failed",
            0.15,
            format!("dmarc=fail for {}", auth.dmarc.domain),
            location,
        ))
    } else if matches!(auth.spf.result.as_str(), "fail" | "softfail") && !dkim_pass {
        Some(signal(
            "auth_failed",
            0.1,
            format!("spf={} for {}", auth.spf.result, auth.spf.domain),
            location,
        ))
    } else if auth.dkim.iter().any(|d| d.result == "fail") && !dkim_pass {
        Some(signal("auth_failed", 0.1, "dkim=fail".to_owned(), location))
    } else {
        None
    }
}

/// A display name that shows an address other than the one the mail is from.
fn spoofed_address(name: &str, address: &str) -> Option<Signal> {
    let shown = name
        .split_whitespace()
        .find(|w| w.contains('@') && w.contains('.'))?;
    if shown
        .trim_matches(|c: char| !c.is_alphanumeric())
        .eq_ignore_ascii_case(address)
    {
        return None;
    }
    Some(signal(
        "display_name_spoof",
        0.3,
        format!("shows {shown} but sent from {address}"),
        "header:From",
    ))
}

/// A display name that borrows a brand (from outside the brand's domains) or the operator's
/// name (from outside the operator's addresses).
fn borrowed_identity(
    name: &str,
    shown_name: &str,
    address: &str,
    domain: &str,
    operator_names: &[String],
    operator_addresses: &[String],
) -> Vec<Signal> {
    let mut out = Vec::new();
    if BRANDS.iter().any(|(brand, domains)| {
        contains_word(name, brand) && !domains.iter().any(|d| is_within(domain, d))
    }) {
        out.push(signal(
            "brand_impersonation",
            0.3,
            format!("display name \"{shown_name}\" from {domain}"),
            "header:From",
        ));
    }
    let is_operator = operator_addresses
        .iter()
        .any(|a| a.eq_ignore_ascii_case(address));
    if !is_operator
        && operator_names.iter().any(|operator| {
            let operator = operator.to_lowercase();
            !operator.is_empty() && name.contains(&operator)
        })
    {
        out.push(signal(
            "operator_impersonation",
            0.4,
            format!("display name \"{shown_name}\" from {address}"),
            "header:From",
        ));
    }
    out
}

/// A From domain that imitates a brand's, or is written in punycode.
fn lookalike_signal(domain: &str) -> Option<Signal> {
    if let Some(brand) = lookalike(domain) {
        Some(signal(
            "lookalike_domain",
            0.35,
            format!("{domain} looks like {brand}"),
            "header:From",
        ))
    } else if domain.split('.').any(|label| label.starts_with("xn--")) {
        Some(signal(
            "lookalike_domain",
            0.2,
            format!("{domain} is an internationalised (punycode) name"),
            "header:From",
        ))
    } else {
        None
    }
}

fn signal(rule: &'static str, weight: f64, excerpt: String, location: &str) -> Signal {
    Signal {
        rule,
        weight,
        excerpt,
        location: location.to_owned(),
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn is_within(domain: &str, parent: &str) -> bool {
    domain == parent
        || (domain.len() > parent.len()
            && domain.ends_with(parent)
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.')
}

/// The brand domain that `domain` imitates: one edit away, digits for letters, or the brand's
/// name with extra words ("paypal-security.com"), without being the brand's own.
fn lookalike(domain: &str) -> Option<&'static str> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return None;
    }
    let registrable = labels[labels.len() - 2];
    for (_, domains) in BRANDS {
        for real in *domains {
            if is_within(domain, real) {
                return None;
            }
        }
    }
    let unleet: String = registrable
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '3' => 'e',
            '5' => 's',
            _ => c,
        })
        .collect();
    let unleet_m = unleet.replace("rn", "m");
    for (_, domains) in BRANDS {
        for real in *domains {
            let brand = real.split('.').next().unwrap_or(real);
            if brand.len() < 5 {
                continue;
            }
            let with_words = unleet.split('-').any(|part| part == brand) && unleet != brand;
            // Same length or longer: "mail" is not a lookalike of "gmail".
            if unleet == brand
                || (registrable.len() >= brand.len() && edit_distance(registrable, brand) == 1)
                || unleet_m == brand
                || with_words
            {
                return Some(real);
            }
        }
    }
    None
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(name: &str, address: &str) -> Mailbox {
        Mailbox {
            name: Some(name.into()),
            address: Some(address.into()),
        }
    }

    fn rules(m: &Mailbox) -> Vec<&'static str> {
        signals(
            Some(m),
            None,
            &["Dana Ops".into()],
            &["dana@corp.test".into()],
        )
        .into_iter()
        .map(|s| s.rule)
        .collect()
    }

    #[test]
    fn impersonation_and_lookalikes_are_signalled() {
        assert_eq!(
            rules(&from("PayPal Support", "help@secure-pay.test")),
            vec!["brand_impersonation"]
        );
        assert_eq!(
            rules(&from("Service", "x@paypa1.com")),
            vec!["lookalike_domain"]
        );
        assert_eq!(
            rules(&from("Service", "x@githubb.com")),
            vec!["lookalike_domain"]
        );
        assert_eq!(
            rules(&from("Service", "x@paypal-security.com")),
            vec!["lookalike_domain"]
        );
        assert_eq!(
            rules(&from("Dana Ops", "dana@gmail.com")),
            vec!["operator_impersonation"]
        );
        assert_eq!(
            rules(&from("billing@stripe.com", "x@evil.test")),
            vec!["display_name_spoof", "brand_impersonation"]
        );
    }

    #[test]
    fn the_real_senders_are_not() {
        for m in [
            from("PayPal", "service@paypal.com"),
            from("GitHub", "noreply@github.com"),
            from("Amazon.com", "auto-confirm@amazon.com"),
            from("Dana Ops", "dana@corp.test"),
            from("Chaser Mills", "chaser@mills.test"),
            from("Groups", "x@ups-and-downs.test"),
        ] {
            assert!(rules(&m).is_empty(), "{m:?}: {:?}", rules(&m));
        }
    }
}
