//! Mail addresses as this server understands them: validation of local parts and domains, and the
//! canonical form used to find an inbox.
//!
//! Local parts follow RFC 5321's dot-atom (at most 64 octets) and compare case-insensitively, so the
//! canonical address is lowercase. `+` is kept for subaddressing: `support+billing@d` reaches the
//! inbox `support@d`, which is why inbox names may not contain it.

use thiserror::Error;

/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets; DNS names are at most 253 in text form.
pub const MAX_DOMAIN: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("the local part is empty")]
    Empty,
    #[error("the local part is longer than 64 octets")]
    TooLong,
    #[error(
        "`{0}` is not allowed in a local part (letters, digits and !#$%&'*/=?^_`{{|}}~.- only)"
    )]
    BadCharacter(char),
    #[error("a local part may not start or end with a dot, or hold two dots in a row")]
    BadDot,
    #[error("`+` separates a subaddress and cannot be part of an inbox name")]
    Plus,
    #[error("`{0}` is not a valid domain name")]
    BadDomain(String),
    #[error("`{0}` is not a valid address")]
    BadAddress(String),
}

/// RFC 5322 atext, less `+` (ours: the subaddress separator).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*/=?^_`{|}~-".contains(c)
}

/// Validates an inbox name (the local part we will create) and returns it lowercased.
pub fn validate_local_part(name: &str) -> Result<String, AddressError> {
    if name.is_empty() {
        return Err(AddressError::Empty);
    }
    if name.len() > MAX_LOCAL_PART {
        return Err(AddressError::TooLong);
    }
    if name.contains('+') {
        return Err(AddressError::Plus);
    }
    if let Some(c) = name.chars().find(|&c| c != '.' && !is_name_char(c)) {
        return Err(AddressError::BadCharacter(c));
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(AddressError::BadDot);
    }
    Ok(name.to_ascii_lowercase())
}

/// Validates a domain name (LDH labels of 1 to 63 octets) and returns it lowercased, without a
/// trailing dot.
pub fn validate_domain(domain: &str) -> Result<String, AddressError> {
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    let bad = || AddressError::BadDomain(domain.to_owned());
    if trimmed.is_empty() || trimmed.len() > MAX_DOMAIN {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// The domain of an address, lower-cased: DNS names compare without case (RFC 5321 2.4), so this
/// is the one form crabmail keys, signs, routes and compares domains by. Local parts keep their
/// case except in `Mailbox`, which is how inboxes are named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// The part after the last `@`; None for an address without one or with nothing after it.
    /// Not a validity check: `Mailbox::parse` and `validate_domain` are.
    pub fn of(address: &str) -> Option<Domain> {
        let (_, domain) = address.rsplit_once('@')?;
        let domain = domain.trim_end_matches('.');
        (!domain.is_empty()).then(|| Domain(domain.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Domain {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An envelope address split into its canonical parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Lowercase local part without any `+detail`.
    pub local: String,
    /// Lowercase domain.
    pub domain: String,
}

impl Mailbox {
    /// Parses `local@domain` as given in RCPT TO. The local part may be any RFC 5321 local part
    /// (quoted strings included); only the domain must be a valid name. `+detail` is dropped.
    pub fn parse(address: &str) -> Result<Mailbox, AddressError> {
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| AddressError::BadAddress(address.to_owned()))?;
        if local.is_empty() || local.len() > MAX_LOCAL_PART {
            return Err(AddressError::BadAddress(address.to_owned()));
        }
        let domain = validate_domain(domain)?;
        let local = local.to_lowercase();
        let local = match local.split_once('+') {
            Some((base, _detail)) if !base.is_empty() => base.to_owned(),
            _ => local,
        };
        Ok(Mailbox { local, domain })
    }

    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_is_what_follows_the_last_at_sign_lower_cased() {
        let of = |a: &str| Domain::of(a).map(Domain::into_string);
        assert_eq!(of("Bob@Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(of("\"a@b\"@Example.org.").as_deref(), Some("example.org"));
        assert_eq!(of("no-at-sign"), None);
        assert_eq!(of("bob@"), None);
    }

    #[test]
    fn local_parts() {
        assert_eq!(validate_local_part("Support").unwrap(), "support");
        assert_eq!(validate_local_part("a.b_c-d").unwrap(), "a.b_c-d");
        assert_eq!(validate_local_part(""), Err(AddressError::Empty));
        assert_eq!(
            validate_local_part(&"x".repeat(65)),
            Err(AddressError::TooLong)
        );
        assert!(validate_local_part(&"x".repeat(64)).is_ok());
        assert_eq!(
            validate_local_part("a b"),
            Err(AddressError::BadCharacter(' '))
        );
        assert_eq!(
            validate_local_part("a@b"),
            Err(AddressError::BadCharacter('@'))
        );
        assert_eq!(
            validate_local_part("ü"),
            Err(AddressError::BadCharacter('ü'))
        );
        assert_eq!(validate_local_part(".a"), Err(AddressError::BadDot));
        assert_eq!(validate_local_part("a..b"), Err(AddressError::BadDot));
        assert_eq!(validate_local_part("a."), Err(AddressError::BadDot));
        assert_eq!(validate_local_part("a+b"), Err(AddressError::Plus));
    }

    #[test]
    fn domains() {
        assert_eq!(validate_domain("Example.TEST.").unwrap(), "example.test");
        assert!(validate_domain("crabmail.localhost").is_ok());
        assert!(validate_domain("-bad.test").is_err());
        assert!(validate_domain("bad..test").is_err());
        assert!(validate_domain("sp ace.test").is_err());
        assert!(validate_domain(&format!("{}.test", "a".repeat(64))).is_err());
    }

    #[test]
    fn envelope_addresses_are_canonical() {
        let m = Mailbox::parse("Support+Billing@Crabmail.Localhost").unwrap();
        assert_eq!(m.address(), "support@crabmail.localhost");
        assert_eq!(Mailbox::parse("+x@d.test").unwrap().local, "+x");
        assert!(Mailbox::parse("no-at-sign").is_err());
        assert!(Mailbox::parse("a@bad domain").is_err());
    }
}
