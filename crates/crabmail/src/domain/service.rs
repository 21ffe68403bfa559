//! Domain administration, one implementation for the API, the server and the CLI.

use super::records::{self, Check, Record};
use crate::account::address::validate_domain;
use crate::clock::SharedClock;
use crate::dkim;
use crate::dns::Dns;
use crate::id;
use crate::store::{DkimKeyRecord, DomainRecord, SharedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("another account has this domain verified")]
    Taken,
    #[error("this account already claims this domain")]
    Exists,
    #[error("{0} is not a hosted domain")]
    NotHosted(String),
    #[error("inboxes still use this domain; delete them first")]
    InUse,
    #[error("{0} already has keys made this second; rotate again in a moment")]
    KeysThisSecond(String),
    #[error("DKIM keys: {0}")]
    Keys(#[from] dkim::DkimError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A domain with the records it should publish.
pub struct Published {
    pub domain: DomainRecord,
    pub records: Vec<Record>,
}

/// New keys for a domain and the ones they replace.
pub struct Rotation {
    pub keys: Vec<DkimKeyRecord>,
    pub retired: Vec<DkimKeyRecord>,
}

#[derive(Clone)]
pub struct Domains {
    store: SharedStore,
    clock: SharedClock,
    dns: Dns,
    /// Our SMTP host name (what custom domains' MX records must name).
    hostname: String,
    shared: String,
    /// New domains get an Ed25519 key too.
    ed25519: bool,
}

impl Domains {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        dns: Dns,
        hostname: &str,
        shared: &str,
        ed25519: bool,
    ) -> Self {
        Domains {
            store,
            clock,
            dns,
            hostname: hostname.to_owned(),
            shared: shared.to_owned(),
            ed25519,
        }
    }

    /// Claims `name` for an account: pending until `verify` finds its records published.
    pub async fn claim(&self, account_id: &str, name: &str) -> Result<DomainRecord, DomainError> {
        let name = validate_domain(name).map_err(|e| DomainError::Invalid(e.to_string()))?;
        if let Some(why) = records::unclaimable(&name) {
            return Err(DomainError::Invalid(why.into()));
        }
        if name == self.shared || name.ends_with(&format!(".{}", self.shared)) {
            return Err(DomainError::Invalid(
                "the server's shared domain (and its subdomains) cannot be claimed".into(),
            ));
        }
        if self.store.hosted_domain(&name).await?.is_some() {
            return Err(DomainError::Taken);
        }
        let now = self.clock.now();
        let record = DomainRecord {
            id: id::new_id(id::DOMAIN, now),
            account_id: Some(account_id.to_owned()),
            name,
            created_at: now,
            verified_at: None,
        };
        let keys = dkim::generate(&record.id, now, self.ed25519)?;
        match self.store.create_domain(record.clone(), keys).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict) => Err(DomainError::Exists),
            Err(e) => Err(e.into()),
        }
    }

    /// What `domain` should publish, with its current keys.
    pub async fn published(&self, domain: DomainRecord) -> Result<Published, DomainError> {
        let keys = self.store.dkim_keys(&domain.id).await?;
        let records = records::records(
            &domain.name,
            &self.hostname,
            &keys,
            domain.created_at,
            self.clock.now(),
        );
        Ok(Published { domain, records })
    }

    /// Looks each record up live and changes nothing (the operator's console).
    pub async fn look_up(
        &self,
        domain: DomainRecord,
    ) -> Result<(DomainRecord, Vec<Check>), DomainError> {
        let Published { domain, records } = self.published(domain).await?;
        let checks = records::check(&self.dns, &records).await;
        Ok((domain, checks))
    }

    /// Looks each record up live; when the required ones are in place a pending domain becomes
    /// verified.
    pub async fn verify(
        &self,
        account_id: &str,
        domain: DomainRecord,
    ) -> Result<(DomainRecord, Vec<Check>), DomainError> {
        let Published {
            mut domain,
            records,
        } = self.published(domain).await?;
        let checks = records::check(&self.dns, &records).await;
        if domain.verified_at.is_none() && records::verified(&checks) {
            let now = self.clock.now();
            match self.store.verify_domain(account_id, &domain.id, now).await {
                Ok(_) => domain.verified_at = Some(now),
                Err(StoreError::Conflict) => return Err(DomainError::Taken),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(account = %account_id, domain = %domain.name, "domain verified");
        }
        Ok((domain, checks))
    }

    /// Gives a domain up; refused while inboxes live on it.
    pub async fn delete(&self, account_id: &str, domain_id: &str) -> Result<bool, DomainError> {
        match self.store.delete_domain(account_id, domain_id).await {
            Err(StoreError::Conflict) => Err(DomainError::InUse),
            other => Ok(other?),
        }
    }

    /// A hosted domain (verified custom or shared) by name, with what it should publish.
    pub async fn hosted(&self, name: &str) -> Result<Published, DomainError> {
        let domain = self.hosted_record(name).await?;
        self.published(domain).await
    }

    async fn hosted_record(&self, name: &str) -> Result<DomainRecord, DomainError> {
        let name = name.to_ascii_lowercase();
        self.store
            .hosted_domain(&name)
            .await?
            .ok_or(DomainError::NotHosted(name))
    }

    /// New DKIM keys for a hosted domain; servers sign with them from their next key load.
    pub async fn rotate_keys(&self, name: &str) -> Result<Rotation, DomainError> {
        let domain = self.hosted_record(name).await?;
        let retired = self.store.dkim_keys(&domain.id).await?;
        let now = self.clock.now();
        let keys = dkim::generate(&domain.id, now, self.ed25519)?;
        match self
            .store
            .rotate_dkim_keys(&domain.id, keys.clone(), now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(DomainError::KeysThisSecond(domain.name)),
            Err(e) => return Err(e.into()),
        }
        let retired = retired
            .into_iter()
            .filter(|k| k.retired_at.is_none())
            .collect();
        Ok(Rotation { keys, retired })
    }

    /// The shared domain's row and DKIM keys, made on first start (or found).
    pub async fn ensure_shared(&self) -> Result<(), DomainError> {
        if self.store.hosted_domain(&self.shared).await?.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let domain = DomainRecord {
            id: id::new_id(id::DOMAIN, now),
            account_id: None,
            name: self.shared.clone(),
            created_at: now,
            verified_at: Some(now),
        };
        let keys = dkim::generate(&domain.id, now, self.ed25519)?;
        let domain = self.store.ensure_shared_domain(domain, keys).await?;
        tracing::info!(domain = %domain.name, "dkim: keys ready for the shared domain (see `crabmail domain records`)");
        Ok(())
    }
}
