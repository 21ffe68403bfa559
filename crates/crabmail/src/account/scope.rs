//! Token scopes: what a bearer token may do. `read` reads mail, events and settings; `send`
//! sends and approves held mail; `draft` may only create mail that waits for approval; `admin`
//! changes the account (tokens, inboxes, domains, limits, pauses, deleting mail). A token made
//! without scopes has all four, as every token had before scopes existed.
//!
//! Which scope a request needs is decided here, from its method and path, for every endpoint at
//! once (`needed`), so a new endpoint cannot forget to ask.

use axum::http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

const SEND: u8 = 1;
const DRAFT: u8 = 2;
const READ: u8 = 4;
const ADMIN: u8 = 8;
const NAMES: [(&str, u8); 4] = [
    ("send", SEND),
    ("draft", DRAFT),
    ("read", READ),
    ("admin", ADMIN),
];

/// What a request needs: one of these scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Admin,
    /// Sending: `send`, or `draft` (the message then waits for approval).
    SendOrDraft,
    /// Approving or rejecting held mail.
    SendOrAdmin,
}

impl Scopes {
    pub const ALL: Scopes = Scopes(SEND | DRAFT | READ | ADMIN);

    /// From the API's list; an unknown name is an error naming it.
    pub fn parse(names: &[String]) -> Result<Scopes, String> {
        let mut bits = 0;
        for name in names {
            let Some((_, bit)) = NAMES.iter().find(|(n, _)| n == name) else {
                return Err(format!(
                    "unknown scope `{name}`; scopes are send, draft, read and admin"
                ));
            };
            bits |= bit;
        }
        if bits == 0 {
            return Err("at least one scope is needed".into());
        }
        Ok(Scopes(bits))
    }

    /// As stored (NULL reads as all four).
    pub fn from_stored(text: Option<&str>) -> Scopes {
        match text {
            None => Scopes::ALL,
            Some(text) => Scopes(
                text.split_whitespace()
                    .filter_map(|n| NAMES.iter().find(|(name, _)| *name == n))
                    .fold(0, |bits, (_, bit)| bits | bit),
            ),
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(name, _)| *name)
            .collect()
    }

    pub fn stored(self) -> String {
        self.names().join(" ")
    }

    pub fn can_send(self) -> bool {
        self.0 & SEND != 0
    }

    pub fn is_within(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn allows(self, need: Need) -> bool {
        match need {
            Need::Read => self.0 & READ != 0,
            Need::Admin => self.0 & ADMIN != 0,
            Need::SendOrDraft => self.0 & (SEND | DRAFT) != 0,
            Need::SendOrAdmin => self.0 & (SEND | ADMIN) != 0,
        }
    }
}

/// The scope a request needs: reads need `read`; sending (and uploading what it attaches) `send`
/// or `draft`; approving `send` or
/// `admin`; every other change `admin`.
pub fn needed(method: &Method, path: &str) -> Need {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if *method == Method::GET || *method == Method::HEAD {
        return Need::Read;
    }
    match (method, parts.as_slice()) {
        (&Method::POST, ["", "v1", "inboxes", _, "messages"] | ["", "v1", "uploads"]) => {
            Need::SendOrDraft
        }
        (&Method::POST, ["", "v1", "messages", _, "approve" | "reject"]) => Need::SendOrAdmin,
        _ => Need::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_needs_its_scope() {
        let draft = Scopes::parse(&["draft".into(), "read".into()]).unwrap();
        assert!(draft.allows(needed(&Method::GET, "/v1/inboxes/inb_1/messages")));
        assert!(draft.allows(needed(&Method::POST, "/v1/inboxes/inb_1/messages")));
        assert!(draft.allows(needed(&Method::POST, "/v1/uploads")));
        assert!(!draft.can_send());
        assert!(!draft.allows(needed(&Method::POST, "/v1/messages/msg_1/approve")));
        assert!(!draft.allows(needed(&Method::DELETE, "/v1/messages/msg_1")));
        assert!(!draft.allows(needed(&Method::POST, "/v1/tokens")));
        let reader = Scopes::parse(&["read".into()]).unwrap();
        assert!(!reader.allows(needed(&Method::POST, "/v1/inboxes/inb_1/messages")));
        assert!(Scopes::ALL.allows(needed(&Method::PUT, "/v1/quota")));
        assert!(draft.is_within(Scopes::ALL) && !Scopes::ALL.is_within(draft));
        assert_eq!(Scopes::from_stored(Some(&draft.stored())), draft);
        assert_eq!(Scopes::from_stored(None), Scopes::ALL);
        assert!(Scopes::parse(&["root".into()]).is_err());
    }
}
