//! Accounts, their bearer tokens, and their inboxes: who may act, and on what.
//!
//! Signing up needs no human: one call returns an account and its first token (shown once, stored
//! only hashed), subject to the signup policy. An inbox gets `name@domain` when that address is
//! free, else `name-xxxx@domain`; addresses are never recycled, so mail meant for a deleted inbox
//! can never reach a new owner.
//!
//! A token may be limited to one inbox; such a token sees only that inbox and cannot manage the
//! account. Another account's resources are reported as not found, never as forbidden.

pub mod address;
pub mod lists;
pub mod names;
pub mod scope;
pub mod token;

use crate::bounce::return_path::{self, ReturnPaths};
use crate::clock::SharedClock;
use crate::config::SignupPolicy;
use crate::id;
use crate::store::{
    InboxRecord, InboxTarget, NewAccount, NewToken, SharedStore, StoreError, TokenRecord,
};
use address::{AddressError, Mailbox};
use std::sync::Arc;

/// Local parts kept for the operator (RFC 2142 role addresses and the like).
const RESERVED: &[&str] = &[
    "postmaster",
    "abuse",
    "hostmaster",
    "webmaster",
    "mailer-daemon",
    "root",
    "noc",
    "security",
    "admin",
    "administrator",
    // Signed return paths (`bounce::return_path`) are `bounces+...`.
    "bounces",
];

/// How many random names or suffixes we try before giving up.
const NAME_ATTEMPTS: usize = 8;

/// Longest display name we keep, in characters.
const MAX_DISPLAY_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("signup is closed on this server")]
    SignupClosed,
    #[error("signup on this server needs an invite code")]
    InviteRequired,
    #[error("the invite code is unknown or already used")]
    InvalidInvite,
    #[error("invalid inbox name: {0}")]
    InvalidName(#[from] AddressError),
    #[error("invalid display name: {0}")]
    InvalidDisplayName(&'static str),
    #[error("domain `{0}` is not hosted here for this account")]
    UnknownDomain(String),
    #[error("this token is limited to one inbox and cannot do this")]
    Forbidden,
    #[error("this token's scopes ({0}) do not allow this")]
    MissingScope(String),
    #[error("{0}")]
    InvalidScopes(String),
    #[error("not found")]
    NotFound,
    #[error("no free address found; try another name")]
    NoFreeAddress,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidInvite => AccountError::InvalidInvite,
            other => AccountError::Store(other),
        }
    }
}

/// Whoever presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub token_id: String,
    /// Set when the token is limited to one inbox.
    pub inbox_scope: Option<String>,
    /// What the token may do.
    pub scopes: scope::Scopes,
}

impl Caller {
    /// Whether this caller may see the inbox (ownership is checked by the store query).
    pub fn may_see_inbox(&self, inbox_id: &str) -> bool {
        self.inbox_scope.as_deref().is_none_or(|s| s == inbox_id)
    }

    /// Account-wide actions (inbox creation, tokens) need an unscoped token.
    pub fn require_account_wide(&self) -> Result<(), AccountError> {
        match self.inbox_scope {
            None => Ok(()),
            Some(_) => Err(AccountError::Forbidden),
        }
    }
}

pub struct SignedUp {
    pub account_id: String,
    pub token_id: String,
    pub token: String,
}

pub struct MintedToken {
    pub record: TokenRecord,
    pub secret: String,
}

/// What an address leads to (`Accounts::resolve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Inbox(InboxTarget),
    /// A signed return path of ours: reports about `recipient_id` go to the inbox that sent it.
    ReturnPath {
        target: InboxTarget,
        recipient_id: String,
    },
    /// A domain we host, but no inbox of that name.
    NoSuchInbox,
    /// A domain we do not host.
    NotHosted,
    /// Not an address at all.
    Invalid,
}

#[derive(Clone)]
pub struct Accounts {
    store: SharedStore,
    clock: SharedClock,
    domain: String,
    signup: SignupPolicy,
    lists: lists::Lists,
    /// The key of signed return paths; None where nothing is sent or received (operator commands).
    return_paths: Option<Arc<ReturnPaths>>,
}

impl Accounts {
    pub fn new(store: SharedStore, clock: SharedClock, domain: &str, signup: SignupPolicy) -> Self {
        Accounts {
            lists: lists::Lists::new(store.clone()),
            store,
            clock,
            domain: domain.to_ascii_lowercase(),
            signup,
            return_paths: None,
        }
    }

    /// Reads and answers signed return paths with the installation's key.
    pub fn with_return_paths(mut self, paths: ReturnPaths) -> Self {
        self.return_paths = Some(Arc::new(paths));
        self
    }

    pub fn return_paths(&self) -> Option<&ReturnPaths> {
        self.return_paths.as_deref()
    }

    /// The accounts' allow and block lists (cached briefly; see `lists`).
    pub fn lists(&self) -> &lists::Lists {
        &self.lists
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether mail for this (lowercase) domain is ours to accept: the shared domain, or a
    /// custom domain some account has verified.
    pub async fn hosts_domain(&self, domain: &str) -> Result<bool, StoreError> {
        if domain == self.domain {
            return Ok(true);
        }
        Ok(self.store.hosted_domain(domain).await?.is_some())
    }

    /// Where an address leads, the one answer RCPT TO, the sender check and local delivery share:
    /// the inbox (postmaster of any hosted domain reaching the operator's), or why none.
    pub async fn resolve(&self, address: &str) -> Result<Resolved, AccountError> {
        let Ok(mailbox) = Mailbox::parse(address) else {
            return Ok(Resolved::Invalid);
        };
        if !self.hosts_domain(&mailbox.domain).await? {
            return Ok(Resolved::NotHosted);
        }
        let local = address.rsplit_once('@').map_or("", |(local, _)| local);
        if return_path::is_return_path(local) {
            return self.resolve_return_path(local).await;
        }
        match self.store.find_inbox(&mailbox.address()).await? {
            Some(target) => Ok(Resolved::Inbox(target)),
            // RFC 5321 4.5.1: postmaster of every domain we host reaches the operator.
            None if mailbox.local.eq_ignore_ascii_case("postmaster") => {
                Ok(Resolved::Inbox(self.ensure_postmaster().await?))
            }
            None => Ok(Resolved::NoSuchInbox),
        }
    }

    /// A signed return path leads to the inbox that sent the message, for the recipient it names;
    /// a forged or unknown one leads nowhere.
    async fn resolve_return_path(&self, local: &str) -> Result<Resolved, AccountError> {
        let Some(recipient_id) = self.return_paths().and_then(|p| p.recipient_of(local)) else {
            return Ok(Resolved::NoSuchInbox);
        };
        Ok(match self.store.return_path_owner(&recipient_id).await? {
            Some(target) => Resolved::ReturnPath {
                target,
                recipient_id,
            },
            None => Resolved::NoSuchInbox,
        })
    }

    /// The postmaster's inbox (`postmaster@` the shared domain), in an account of its own made on
    /// first start: RFC 5321 4.5.1 requires every mail domain to accept mail for postmaster, and
    /// the operator reads it (`crabmail admin postmaster` gives a token for it).
    pub async fn ensure_postmaster(&self) -> Result<InboxTarget, AccountError> {
        let address = format!("postmaster@{}", self.domain);
        if let Some(target) = self.store.find_inbox(&address).await? {
            return Ok(target);
        }
        let now = self.clock.now();
        let account_id = id::new_id(id::ACCOUNT, now);
        // The first token's secret is thrown away: the operator mints one when needed.
        let secret = token::mint();
        self.store
            .create_account(NewAccount {
                id: account_id.clone(),
                created_at: now,
                first_token: NewToken {
                    id: id::new_id(id::TOKEN, now),
                    account_id: account_id.clone(),
                    hash: secret.hash,
                    inbox_id: None,
                    name: Some("postmaster".into()),
                    created_at: now,
                    scopes: None,
                },
                invite_hash: None,
            })
            .await?;
        let inbox = InboxRecord {
            id: id::new_id(id::INBOX, now),
            account_id: account_id.clone(),
            address: address.clone(),
            display_name: Some("Postmaster".into()),
            created_at: now,
            approval_required: false,
        };
        match self.store.create_inbox(inbox.clone()).await {
            Ok(()) => Ok(InboxTarget {
                inbox_id: inbox.id,
                account_id,
                approval_required: false,
            }),
            // Another node made it first.
            Err(StoreError::Conflict) => self
                .store
                .find_inbox(&address)
                .await?
                .ok_or(AccountError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// A new token for the postmaster's account, for the operator.
    pub async fn postmaster_token(&self) -> Result<MintedToken, AccountError> {
        let target = self.ensure_postmaster().await?;
        self.mint_token(
            &Caller {
                account_id: target.account_id,
                token_id: String::new(),
                inbox_scope: None,
                scopes: scope::Scopes::ALL,
            },
            None,
            Some("postmaster".into()),
            None,
        )
        .await
    }

    pub async fn sign_up(&self, invite: Option<&str>) -> Result<SignedUp, AccountError> {
        let invite_hash = match (self.signup, invite) {
            (SignupPolicy::Closed, _) => return Err(AccountError::SignupClosed),
            (SignupPolicy::Invite, None) => return Err(AccountError::InviteRequired),
            (SignupPolicy::Invite, Some(code)) => Some(token::hash(code.trim())),
            (SignupPolicy::Open, _) => None,
        };
        let now = self.clock.now();
        let account_id = id::new_id(id::ACCOUNT, now);
        let secret = token::mint();
        let token_id = id::new_id(id::TOKEN, now);
        self.store
            .create_account(NewAccount {
                id: account_id.clone(),
                created_at: now,
                first_token: NewToken {
                    id: token_id.clone(),
                    account_id: account_id.clone(),
                    hash: secret.hash,
                    inbox_id: None,
                    name: Some("signup".into()),
                    created_at: now,
                    scopes: None,
                },
                invite_hash,
            })
            .await?;
        Ok(SignedUp {
            account_id,
            token_id,
            token: secret.secret,
        })
    }

    /// A new single-use invite code for `signup.policy = "invite"`.
    pub async fn create_invite(&self) -> Result<String, AccountError> {
        let secret = token::mint();
        let code = secret.secret.replacen(token::PREFIX, "inv_", 1);
        self.store
            .create_invite(token::hash(&code), self.clock.now())
            .await?;
        Ok(code)
    }

    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Caller>, AccountError> {
        if !bearer.starts_with(token::PREFIX) {
            return Ok(None);
        }
        let record = self.store.find_token(token::hash(bearer)).await?;
        Ok(record.map(|t| Caller {
            scopes: scope::Scopes::from_stored(t.scopes.as_deref()),
            account_id: t.account_id,
            token_id: t.id,
            inbox_scope: t.inbox_id,
        }))
    }

    pub async fn mint_token(
        &self,
        caller: &Caller,
        inbox_id: Option<String>,
        name: Option<String>,
        scopes: Option<scope::Scopes>,
    ) -> Result<MintedToken, AccountError> {
        caller.require_account_wide()?;
        // A token never makes a token that may do more than itself.
        let scopes = scopes.unwrap_or(caller.scopes);
        if !scopes.is_within(caller.scopes) {
            return Err(AccountError::InvalidScopes(format!(
                "a token with scopes {} cannot make one with {}",
                caller.scopes.stored(),
                scopes.stored()
            )));
        }
        if let Some(inbox) = &inbox_id
            && self
                .store
                .get_inbox(&caller.account_id, inbox)
                .await?
                .is_none()
        {
            return Err(AccountError::NotFound);
        }
        let now = self.clock.now();
        let secret = token::mint();
        let record = TokenRecord {
            id: id::new_id(id::TOKEN, now),
            account_id: caller.account_id.clone(),
            inbox_id,
            name,
            created_at: now,
            scopes: (scopes != scope::Scopes::ALL).then(|| scopes.stored()),
        };
        self.store
            .create_token(NewToken {
                id: record.id.clone(),
                account_id: record.account_id.clone(),
                hash: secret.hash,
                inbox_id: record.inbox_id.clone(),
                name: record.name.clone(),
                created_at: now,
                scopes: record.scopes.clone(),
            })
            .await?;
        Ok(MintedToken {
            record,
            secret: secret.secret,
        })
    }

    pub async fn create_inbox(
        &self,
        caller: &Caller,
        name: Option<&str>,
        display_name: Option<String>,
        domain: Option<&str>,
    ) -> Result<InboxRecord, AccountError> {
        caller.require_account_wide()?;
        let domain = match domain {
            None => self.domain.clone(),
            Some(d) => {
                let d = address::validate_domain(d)?;
                let ours = d == self.domain
                    || self.store.hosted_domain(&d).await?.is_some_and(|h| {
                        h.account_id.as_deref() == Some(caller.account_id.as_str())
                    });
                if !ours {
                    return Err(AccountError::UnknownDomain(d));
                }
                d
            }
        };
        let display_name = display_name.map(validate_display_name).transpose()?;
        let base = name.map(address::validate_local_part).transpose()?;
        let now = self.clock.now();
        for attempt in 0..NAME_ATTEMPTS {
            let local = match (&base, attempt) {
                (Some(base), 0) => base.clone(),
                (Some(base), _) => with_suffix(base),
                (None, _) => names::random_local_part(),
            };
            if RESERVED.contains(&local.as_str()) {
                continue;
            }
            let inbox = InboxRecord {
                id: id::new_id(id::INBOX, now),
                account_id: caller.account_id.clone(),
                address: format!("{local}@{domain}"),
                display_name: display_name.clone(),
                created_at: now,
                approval_required: false,
            };
            match self.store.create_inbox(inbox.clone()).await {
                Ok(()) => return Ok(inbox),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountError::NoFreeAddress)
    }
}

/// `name-xxxx`, shortening `name` so the result stays within 64 octets.
fn with_suffix(base: &str) -> String {
    let keep = base.len().min(address::MAX_LOCAL_PART - 5);
    let stem = base[..keep].trim_end_matches(['.', '-']);
    format!("{stem}-{}", names::random_suffix())
}

fn validate_display_name(name: String) -> Result<String, AccountError> {
    let name = name.trim().to_owned();
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(AccountError::InvalidDisplayName(
            "longer than 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountError::InvalidDisplayName(
            "control characters (such as line breaks) are not allowed",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_names_stay_valid_and_short() {
        let long = "a".repeat(64);
        let s = with_suffix(&long);
        assert_eq!(s.len(), 64);
        assert!(address::validate_local_part(&s).is_ok());
        let dotted = format!("{}.b", "a".repeat(58));
        assert!(address::validate_local_part(&with_suffix(&dotted)).is_ok());
        assert!(with_suffix("support").starts_with("support-"));
    }

    #[test]
    fn display_names_refuse_header_injection() {
        assert!(validate_display_name("Support Bot".into()).is_ok());
        assert!(validate_display_name("x\r\nBcc: a@b".into()).is_err());
        assert!(validate_display_name("y".repeat(201)).is_err());
    }
}
