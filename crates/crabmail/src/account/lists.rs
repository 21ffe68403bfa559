//! Allow and block lists, per account and per inbox, for receiving (who may write to us) and
//! for sending (whom we may write to). A pattern is an address (`bob@x.test`) or a domain
//! (`x.test`, which covers its subdomains). A block always wins; where any allow entry exists
//! for a direction, only what it allows passes.
//!
//! On receipt the sender is the From address only when its domain is authenticated (DMARC
//! passed, or SPF or DKIM passed for an aligned domain): anyone can write any From, so an
//! allow-listed From that fails authentication is not allowed. Blocks also match the unproven
//! From and the MAIL FROM, since blocking more is safe.

use crate::store::{ListEntry, SharedStore, StoreError};
use crabmail_api::AuthResults;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a node trusts its copy of an account's lists (an edit on this node is seen at once).
const CACHE_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// What the lists say about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An allow entry names it.
    Allowed,
    /// No entry names it, and there is no allow list.
    Unlisted,
    /// A block entry names it (the pattern).
    Blocked(String),
    /// There is an allow list and it is not on it (or, on receipt, not proven to be).
    NotAllowed,
}

impl Verdict {
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::Unlisted)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Unlisted => "unlisted",
            Verdict::Blocked(_) => "blocked",
            Verdict::NotAllowed => "not_allowed",
        }
    }
}

/// Whether `pattern` (address or domain) names `address`.
pub fn matches(pattern: &str, address: &str) -> bool {
    let address = address.to_ascii_lowercase();
    if pattern.contains('@') {
        return address == pattern;
    }
    let domain = address
        .rsplit_once('@')
        .map_or(address.as_str(), |(_, d)| d);
    domain == pattern || domain.ends_with(&format!(".{pattern}"))
}

/// The verdict for `direction` in `inbox_id` (its own entries and its account's), on the
/// proven address `proven` (None: nothing proven) and other addresses `unproven` that only
/// blocks look at.
pub fn judge(
    entries: &[ListEntry],
    inbox_id: &str,
    direction: Direction,
    proven: Option<&str>,
    unproven: &[&str],
) -> Verdict {
    let ours: Vec<&ListEntry> = entries
        .iter()
        .filter(|e| e.direction == direction.as_str())
        .filter(|e| e.scope == inbox_id || e.scope == e.account_id)
        .collect();
    let every = proven.into_iter().chain(unproven.iter().copied());
    for address in every {
        if let Some(block) = ours
            .iter()
            .find(|e| e.action == "block" && matches(&e.pattern, address))
        {
            return Verdict::Blocked(block.pattern.clone());
        }
    }
    let allows: Vec<&&ListEntry> = ours.iter().filter(|e| e.action == "allow").collect();
    if allows.is_empty() {
        return Verdict::Unlisted;
    }
    match proven {
        Some(address) if allows.iter().any(|e| matches(&e.pattern, address)) => Verdict::Allowed,
        _ => Verdict::NotAllowed,
    }
}

/// The From address, when authentication proves its domain: DMARC passed, or SPF or DKIM
/// passed for the same domain or one a subdomain of the other (relaxed alignment).
pub fn authenticated_from<'a>(auth: Option<&AuthResults>, from: &'a str) -> Option<&'a str> {
    let auth = auth?;
    let domain = from.rsplit_once('@')?.1.to_ascii_lowercase();
    let aligned = |d: &str| {
        let d = d.to_ascii_lowercase();
        !d.is_empty()
            && (d == domain
                || d.ends_with(&format!(".{domain}"))
                || domain.ends_with(&format!(".{d}")))
    };
    let proven = auth.dmarc.result == "pass"
        || (auth.spf.result == "pass" && aligned(&auth.spf.domain))
        || auth
            .dkim
            .iter()
            .any(|k| k.result == "pass" && aligned(&k.domain));
    proven.then_some(from)
}

/// Each account's entries, and when they were read.
type Cache = HashMap<String, (Instant, Arc<Vec<ListEntry>>)>;

/// An account's list entries, read from the store and kept for `CACHE_FOR`.
#[derive(Clone)]
pub struct Lists {
    store: SharedStore,
    cache: Arc<Mutex<Cache>>,
}

impl Lists {
    pub fn new(store: SharedStore) -> Lists {
        Lists {
            store,
            cache: Arc::default(),
        }
    }

    pub async fn of(&self, account_id: &str) -> Result<Arc<Vec<ListEntry>>, StoreError> {
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock()
            && let Some((at, entries)) = cache.get(account_id)
            && now.duration_since(*at) < CACHE_FOR
        {
            return Ok(entries.clone());
        }
        let entries = Arc::new(self.store.list_entries(account_id).await?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_FOR);
            }
            cache.insert(account_id.to_owned(), (now, entries.clone()));
        }
        Ok(entries)
    }

    /// After an edit: the next look reads the store.
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(account_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crabmail_api::{DkimAuth, DmarcAuth, SpfAuth};

    fn entry(scope: &str, direction: &str, action: &str, pattern: &str) -> ListEntry {
        ListEntry {
            id: format!("lst_{pattern}"),
            account_id: "acc_1".into(),
            scope: scope.into(),
            direction: direction.into(),
            action: action.into(),
            pattern: pattern.into(),
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn blocks_win_and_an_allow_list_admits_only_what_it_names() {
        let entries = vec![
            entry("acc_1", "inbound", "allow", "partner.test"),
            entry("inb_1", "inbound", "block", "bad@partner.test"),
            entry("inb_2", "inbound", "allow", "other.test"),
        ];
        let judge_in = |inbox, proven| judge(&entries, inbox, Direction::Inbound, proven, &[]);
        assert_eq!(
            judge_in("inb_1", Some("ceo@mail.partner.test")),
            Verdict::Allowed
        );
        assert_eq!(
            judge_in("inb_1", Some("Bad@partner.test")),
            Verdict::Blocked("bad@partner.test".into())
        );
        assert_eq!(judge_in("inb_1", Some("x@other.test")), Verdict::NotAllowed);
        assert_eq!(judge_in("inb_2", Some("x@other.test")), Verdict::Allowed);
        assert_eq!(
            judge_in("inb_1", None),
            Verdict::NotAllowed,
            "nothing proven"
        );
        assert_eq!(
            judge(
                &entries,
                "inb_1",
                Direction::Outbound,
                Some("a@b.test"),
                &[]
            ),
            Verdict::Unlisted
        );
        assert!(!matches("partner.test", "x@notpartner.test"));
    }

    #[test]
    fn only_an_aligned_pass_proves_the_from_domain() {
        let auth = |spf: &str, spf_domain: &str, dkim: Option<(&str, &str)>| AuthResults {
            spf: SpfAuth {
                result: spf.into(),
                domain: spf_domain.into(),
                ..Default::default()
            },
            dkim: dkim
                .map(|(r, d)| DkimAuth {
                    result: r.into(),
                    domain: d.into(),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            dmarc: DmarcAuth {
                result: "fail".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let from = "boss@partner.test";
        let spf_ok = auth("pass", "bounce.partner.test", None);
        assert_eq!(authenticated_from(Some(&spf_ok), from), Some(from));
        let spf_elsewhere = auth("pass", "mailer.test", Some(("fail", "partner.test")));
        assert_eq!(authenticated_from(Some(&spf_elsewhere), from), None);
        let dkim_ok = auth("fail", "x.test", Some(("pass", "partner.test")));
        assert_eq!(authenticated_from(Some(&dkim_ok), from), Some(from));
        assert_eq!(authenticated_from(None, from), None);
    }
}
