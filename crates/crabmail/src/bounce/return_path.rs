//! Signed return paths (VERP): every recipient of a message we send to another server gets an
//! envelope sender of its own, `bounces+<recipient>-<mac>@<sending domain>`, so whatever comes
//! back to it (a bounce, a late DSN, an auto-reply that answers the return path, a complaint)
//! belongs to exactly one recipient of one message.
//!
//! The MAC is HMAC-SHA256 under a key the installation makes once and every node shares
//! (`Domains::server_secret`), cut to 64 bits: without the key a stranger cannot make an address
//! that links to a recipient, and a recipient's own address says nothing about another's. The
//! local part is lower-case hex so a server that folds case keeps it valid, and 57 octets, within
//! RFC 5321's 64.

use aws_lc_rs::{constant_time, hmac};

/// The local part every signed return path starts with (the inbox name `bounces` is reserved).
pub const PREFIX: &str = "bounces+";
/// Hex digits of the MAC kept in the address.
const MAC_HEX: usize = 16;
/// A recipient id is `rcpt_` and 32 hex digits (`id::RECIPIENT`).
const ID_HEX: usize = 32;

pub struct ReturnPaths {
    key: hmac::Key,
}

impl std::fmt::Debug for ReturnPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReturnPaths { .. }")
    }
}

impl ReturnPaths {
    pub fn new(secret: &[u8]) -> ReturnPaths {
        ReturnPaths {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The return path for `recipient_id` of a message whose sender is `sender` (an inbox of
    /// ours): same domain, so SPF and DMARC alignment are unchanged. None for the null sender
    /// (nothing may answer it) or an id of another shape.
    pub fn for_recipient(&self, recipient_id: &str, sender: &str) -> Option<String> {
        let hex = recipient_hex(recipient_id)?;
        let (_, domain) = sender.rsplit_once('@')?;
        if domain.is_empty() {
            return None;
        }
        Some(format!("{PREFIX}{hex}-{}@{domain}", self.mac(hex)))
    }

    /// The recipient a return path's local part (as a client wrote it, any case) names, if
    /// its MAC is ours.
    pub fn recipient_of(&self, local_part: &str) -> Option<String> {
        let local = local_part.to_ascii_lowercase();
        let rest = local.strip_prefix(PREFIX)?;
        let (hex, mac) = rest.split_once('-')?;
        if hex.len() != ID_HEX || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let expected = self.mac(hex);
        constant_time::verify_slices_are_equal(expected.as_bytes(), mac.as_bytes()).ok()?;
        Some(format!("{}_{hex}", crate::id::RECIPIENT))
    }

    fn mac(&self, hex: &str) -> String {
        let tag = hmac::sign(&self.key, hex.as_bytes());
        let mut out = String::with_capacity(MAC_HEX);
        for b in &tag.as_ref()[..MAC_HEX / 2] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Whether an address's local part is a return path's (whatever its MAC).
pub fn is_return_path(local_part: &str) -> bool {
    local_part
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

fn recipient_hex(recipient_id: &str) -> Option<&str> {
    let hex = recipient_id
        .strip_prefix(crate::id::RECIPIENT)?
        .strip_prefix('_')?;
    (hex.len() == ID_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    #[test]
    fn a_return_path_names_its_recipient_and_nothing_else() {
        let paths = ReturnPaths::new(b"installation key");
        let id = crate::id::new_id(crate::id::RECIPIENT, Timestamp(1_700_000_000_000));
        let address = paths.for_recipient(&id, "agent@Agents.Example").unwrap();
        let (local, domain) = address.rsplit_once('@').unwrap();
        assert_eq!(domain, "Agents.Example");
        assert!(local.len() <= 64, "{local}");
        assert!(is_return_path(local));
        assert_eq!(paths.recipient_of(local).as_deref(), Some(id.as_str()));
        // A server that upper-cases the local part does not break the link.
        assert_eq!(
            paths.recipient_of(&local.to_ascii_uppercase()).as_deref(),
            Some(id.as_str())
        );
    }

    #[test]
    fn forged_or_foreign_return_paths_name_no_one() {
        let paths = ReturnPaths::new(b"installation key");
        let id = crate::id::new_id(crate::id::RECIPIENT, Timestamp(1_700_000_000_000));
        let address = paths.for_recipient(&id, "agent@agents.example").unwrap();
        let local = address.split('@').next().unwrap();
        // Another installation's key, a changed id, a cut MAC, no MAC.
        assert_eq!(ReturnPaths::new(b"other key").recipient_of(local), None);
        let (hex, mac) = local.trim_start_matches(PREFIX).split_once('-').unwrap();
        let mut other = hex.to_owned().into_bytes();
        other[31] = if other[31] == b'0' { b'1' } else { b'0' };
        let other = String::from_utf8(other).unwrap();
        assert_eq!(paths.recipient_of(&format!("{PREFIX}{other}-{mac}")), None);
        assert_eq!(
            paths.recipient_of(&format!("{PREFIX}{hex}-{}", &mac[..8])),
            None
        );
        assert_eq!(paths.recipient_of(&format!("{PREFIX}{hex}")), None);
        assert_eq!(paths.recipient_of("bob"), None);
        // The null sender gets no return path, nor does an id of another kind.
        assert_eq!(paths.for_recipient(&id, ""), None);
        assert_eq!(paths.for_recipient("msg_0123", "a@b.example"), None);
    }
}
