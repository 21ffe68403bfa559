//! Hosted domains and their DKIM keys.

use super::*;

/// A hosted domain: the shared one (`account_id` None) or an account's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub id: String,
    pub account_id: Option<String>,
    pub name: String,
    pub created_at: Timestamp,
    pub verified_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKeyRecord {
    pub domain_id: String,
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// Base64 of the public key, as published in the `p=` tag.
    pub public_key: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

#[async_trait]
pub trait Domains: Send + Sync {
    /// A custom domain claim with its first keys. `Conflict` when the account already claims it.
    async fn create_domain(&self, domain: DomainRecord, keys: Vec<DkimKeyRecord>) -> Result<()>;
    /// The shared domain's row (created, with `keys`, on first start).
    async fn ensure_shared_domain(
        &self,
        domain: DomainRecord,
        keys: Vec<DkimKeyRecord>,
    ) -> Result<DomainRecord>;
    async fn list_domains(&self, account_id: &str) -> Result<Vec<DomainRecord>>;
    async fn get_domain(&self, account_id: &str, domain_id: &str) -> Result<Option<DomainRecord>>;
    /// Marks a claim verified; `Conflict` when another account has the name verified.
    async fn verify_domain(
        &self,
        account_id: &str,
        domain_id: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// `Conflict` while inboxes live on the domain.
    async fn delete_domain(&self, account_id: &str, domain_id: &str) -> Result<bool>;
    /// The verified domain (custom or shared) of this name, if we host it.
    async fn hosted_domain(&self, name: &str) -> Result<Option<DomainRecord>>;
    /// A domain's keys, newest first, retired ones included.
    async fn dkim_keys(&self, domain_id: &str) -> Result<Vec<DkimKeyRecord>>;
    /// Adds keys for a domain and retires its older ones (rotation), in one transaction.
    async fn rotate_dkim_keys(
        &self,
        domain_id: &str,
        keys: Vec<DkimKeyRecord>,
        now: Timestamp,
    ) -> Result<()>;
    /// The installation's secret `name` (hex): `candidate` if none was kept yet, else the one the
    /// first node kept (every node then holds the same).
    async fn server_secret(&self, name: &str, candidate: &str, now: Timestamp) -> Result<String>;
}
