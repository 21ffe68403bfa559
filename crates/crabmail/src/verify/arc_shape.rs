//! The shape of an ARC chain (RFC 8617 4.1, 5.1.1), checked before its signatures: complete
//! sets numbered 1..N, and ARC-Seal and ARC-Message-Signature tag-lists that are well formed
//! (RFC 6376 3.2: no empty or repeated tags, names starting with a letter), carry their
//! required tags, and use an algorithm we accept (never rsa-sha1, RFC 8301).
//!
//! mail-auth validates the cryptography but reads these headers leniently; a chain that is
//! malformed here is a failed chain, whatever its signatures say.

use std::collections::{BTreeMap, HashMap};

const MAX_INSTANCE: u32 = 50;

#[derive(Default)]
struct Set {
    seal: u32,
    signature: u32,
    results: u32,
}

/// Ok when the message has no ARC headers, or a chain of the right shape.
pub fn check(message: &[u8]) -> Result<(), String> {
    let mut sets: BTreeMap<u32, Set> = BTreeMap::new();
    for (name, value) in headers(message) {
        let name = name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "arc-seal" => {
                let tags = tag_list(&value, &["a", "b", "cv", "d", "i", "s"])?;
                algorithm(&tags)?;
                let set = sets.entry(instance(&tags)?).or_default();
                &mut set.seal
            }
            "arc-message-signature" => {
                let tags = tag_list(&value, &["a", "b", "bh", "d", "h", "i", "s"])?;
                algorithm(&tags)?;
                if tags["h"]
                    .split(':')
                    .any(|h| h.trim().eq_ignore_ascii_case("arc-seal"))
                {
                    return Err("an ARC-Message-Signature signs ARC-Seal".into());
                }
                let set = sets.entry(instance(&tags)?).or_default();
                &mut set.signature
            }
            "arc-authentication-results" => {
                let i = value
                    .split(';')
                    .next()
                    .and_then(|first| first.trim().strip_prefix("i="))
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .ok_or("an ARC-Authentication-Results without i=")?;
                &mut sets.entry(i).or_default().results
            }
            _ => continue,
        };
        *slot += 1;
    }
    for (expected, (i, set)) in (1..).zip(&sets) {
        if *i != expected {
            return Err(format!("ARC set {expected} is missing"));
        }
        if (set.seal, set.signature, set.results) != (1, 1, 1) {
            return Err(format!(
                "ARC set {i} has {} seal(s), {} signature(s) and {} result(s), not one of each",
                set.seal, set.signature, set.results
            ));
        }
    }
    Ok(())
}

/// The header fields, unfolded, in order.
fn headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .split("\n\n")
        .next()
        .unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    out
}

/// A tag-list (RFC 6376 3.2) with `required` tags present.
fn tag_list(value: &str, required: &[&str]) -> Result<HashMap<String, String>, String> {
    let mut tags = HashMap::new();
    let parts: Vec<&str> = value.split(';').collect();
    for (n, part) in parts.iter().enumerate() {
        if part.trim().is_empty() {
            // Only the last may be empty: a list may end with ";".
            if n + 1 == parts.len() {
                continue;
            }
            return Err("an empty tag in an ARC header".into());
        }
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not a tag", part.trim()))?;
        let name = name.trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}` is not a tag name"));
        }
        if tags
            .insert(name.to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("the tag `{name}` appears twice"));
        }
    }
    if let Some(missing) = required.iter().find(|t| !tags.contains_key(**t)) {
        return Err(format!("an ARC header without `{missing}=`"));
    }
    Ok(tags)
}

fn algorithm(tags: &HashMap<String, String>) -> Result<(), String> {
    match tags["a"].as_str() {
        "rsa-sha256" | "ed25519-sha256" => Ok(()),
        other => Err(format!("ARC signed with `{other}`, which is not accepted")),
    }
}

fn instance(tags: &HashMap<String, String>) -> Result<u32, String> {
    match tags["i"].parse::<u32>() {
        Ok(i) if (1..=MAX_INSTANCE).contains(&i) => Ok(i),
        _ => Err(format!("`i={}` is not an ARC instance", tags["i"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: &str = "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.test; s=s; b=abc";
    const AMS: &str =
        "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.test; s=s; h=from:to; bh=x; b=y";
    const AAR: &str = "ARC-Authentication-Results: i=1; x.test; spf=pass";

    fn message(headers: &[&str]) -> Vec<u8> {
        format!("{}\r\nFrom: a@x.test\r\n\r\nbody\r\n", headers.join("\r\n")).into_bytes()
    }

    #[test]
    fn chains_must_be_complete_and_well_formed() {
        assert!(check(b"From: a@x.test\r\n\r\nno chain\r\n").is_ok());
        assert!(check(&message(&[AS, AMS, AAR])).is_ok());
        assert!(check(&message(&[AS, AAR])).is_err(), "no signature");
        assert!(check(&message(&[&AS.replace("i=1", "i=2"), AMS, AAR])).is_err());
        assert!(check(&message(&[&AS.replace("rsa-sha256", "rsa-sha1"), AMS, AAR])).is_err());
        assert!(check(&message(&[&AS.replace("s=s;", "s=s;;"), AMS, AAR])).is_err());
        assert!(check(&message(&[&AS.replace("s=s;", "s=s; _x=1;"), AMS, AAR])).is_err());
        assert!(
            check(&message(&[
                &AS.replace("d=x.test", "d=x.test; d=y.test"),
                AMS,
                AAR
            ]))
            .is_err()
        );
        assert!(
            check(&message(&[
                AS,
                &AMS.replace("h=from:to", "h=from:arc-seal"),
                AAR
            ]))
            .is_err()
        );
        assert!(
            check(&message(&[&format!("{AS};"), AMS, AAR])).is_ok(),
            "a trailing ; is fine"
        );
    }
}
