//! DKIM signing of outbound mail (RFC 6376; Ed25519 per RFC 8463): per-domain keys, made and
//! rotated here, kept in the store, used at enqueue so the stored message is what is sent.
//!
//! Every hosted domain signs with an RSA-2048 key, and with an Ed25519 key too when
//! `dkim.ed25519` is on. Signatures use relaxed/relaxed canonicalisation over the usual header
//! set, with From signed twice (over-signing) so no second From can be added afterwards.
//! Selectors carry the date they were made (`cm20261127t2115r`), so a rotation never reuses one.

use crate::clock::{SharedClock, Timestamp};
use crate::store::{DkimKeyRecord, SharedStore, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Header fields signed, in order; From twice (over-signed).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// How long loaded keys are trusted before the store is asked again (a rotation on another node
/// reaches this one within it).
const KEY_CACHE: Duration = Duration::from_secs(60);

pub const RSA: &str = "rsa-sha256";
pub const ED25519: &str = "ed25519-sha256";

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot make a DKIM key: {0}")]
    Generate(String),
    #[error("a stored DKIM key is unusable: {0}")]
    BadKey(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new selector: `cm` + UTC date and time to the second + `r` (RSA) or `e` (Ed25519).
pub fn selector(now: Timestamp, algorithm: &str) -> String {
    let stamp = now.to_rfc3339(); // 2026-11-27T21:15:03.000Z
    let digits: String = stamp
        .chars()
        .take(19)
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = digits.split_at(8.min(digits.len()));
    let kind = if algorithm == ED25519 { 'e' } else { 'r' };
    format!("cm{date}t{time}{kind}")
}

/// Makes the keys a domain signs with: RSA-2048, and Ed25519 when `ed25519`.
pub fn generate(
    domain_id: &str,
    now: Timestamp,
    ed25519: bool,
) -> Result<Vec<DkimKeyRecord>, DkimError> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| DkimError::Generate(e.to_string()))?;
    let private: Pkcs8V1Der<'_> = rsa
        .as_der()
        .map_err(|e| DkimError::Generate(e.to_string()))?;
    let public: PublicKeyX509Der<'_> = rsa
        .public_key()
        .as_der()
        .map_err(|e| DkimError::Generate(e.to_string()))?;
    let mut keys = vec![DkimKeyRecord {
        domain_id: domain_id.to_owned(),
        selector: selector(now, RSA),
        algorithm: RSA.to_owned(),
        private_key: private.as_ref().to_vec(),
        public_key: STANDARD.encode(public.as_ref()),
        created_at: now,
        retired_at: None,
    }];
    if ed25519 {
        let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| DkimError::Generate(e.to_string()))?;
        let key =
            Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| DkimError::Generate(e.to_string()))?;
        keys.push(DkimKeyRecord {
            domain_id: domain_id.to_owned(),
            selector: selector(now, ED25519),
            algorithm: ED25519.to_owned(),
            private_key: pkcs8,
            public_key: STANDARD.encode(key.public_key()),
            created_at: now,
            retired_at: None,
        });
    }
    Ok(keys)
}

/// The TXT record to publish at `<selector>._domainkey.<domain>`.
pub fn dns_record(key: &DkimKeyRecord) -> String {
    let k = if key.algorithm == ED25519 {
        "ed25519"
    } else {
        "rsa"
    };
    format!("v=DKIM1; k={k}; p={}", key.public_key)
}

/// One parsed signing key, ready to sign: parsing (and aws-lc's RSA key check) costs more than a
/// signature, so it happens once per cache load, not once per message.
enum KeySigner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A domain's keys, parsed, in the order they sign.
pub struct DomainSigner {
    domain: String,
    keys: Vec<KeySigner>,
    /// The selector of each key, in signing order (what a dry run reports).
    selectors: Vec<String>,
}

impl DomainSigner {
    /// Parses `keys` for `domain`; an unusable key is an error, not skipped.
    pub fn new(keys: &[DkimKeyRecord], domain: &str) -> Result<Self, DkimError> {
        let selectors = keys.iter().map(|k| k.selector.clone()).collect();
        let keys = keys
            .iter()
            .map(|key| {
                Ok(match key.algorithm.as_str() {
                    ED25519 => {
                        let pk = Ed25519Key::from_pkcs8_der(&key.private_key)
                            .map_err(|e| DkimError::BadKey(e.to_string()))?;
                        KeySigner::Ed25519(signer(DkimSigner::from_key(pk), domain, &key.selector))
                    }
                    _ => {
                        let der =
                            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.private_key.clone()));
                        let pk = RsaKey::<Sha256>::from_key_der(der)
                            .map_err(|e| DkimError::BadKey(e.to_string()))?;
                        KeySigner::Rsa(signer(DkimSigner::from_key(pk), domain, &key.selector))
                    }
                })
            })
            .collect::<Result<Vec<_>, DkimError>>()?;
        Ok(DomainSigner {
            domain: domain.to_owned(),
            keys,
            selectors,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The DKIM-Signature fields to prepend to `message`.
    pub fn headers(&self, message: &[u8]) -> Result<String, DkimError> {
        let mut headers = String::new();
        for key in &self.keys {
            let signature = match key {
                KeySigner::Rsa(s) => s.sign(message),
                KeySigner::Ed25519(s) => s.sign(message),
            }
            .map_err(|e| DkimError::Sign(format!("{}: {e}", self.domain)))?;
            headers.push_str(&signature.to_header());
        }
        Ok(headers)
    }
}

/// Signs `message` with `keys` for `domain`, returning the DKIM-Signature fields to prepend.
pub fn sign_with(
    keys: &[DkimKeyRecord],
    domain: &str,
    message: &[u8],
) -> Result<String, DkimError> {
    DomainSigner::new(keys, domain)?.headers(message)
}

fn signer<T: mail_auth::common::crypto::SigningKey>(
    from_key: DkimSigner<T, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, Done> {
    from_key
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// A domain's parsed signing keys and when they were loaded; `Err` keeps why they are unusable, so
/// a broken key is not re-parsed for every message either.
type Loaded = (Timestamp, Arc<Result<DomainSigner, String>>);

/// Signs outbound mail with the keys of the sending domain, loaded from the store, parsed once
/// and cached.
pub struct Signer {
    store: SharedStore,
    clock: SharedClock,
    cache: RwLock<HashMap<String, Loaded>>,
}

impl Signer {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        Signer {
            store,
            clock,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The message with DKIM-Signature fields for `domain` prepended. A domain without a usable
    /// key is sent unsigned (and logged): a key problem never stops mail. Only a store failure is
    /// an error, so the caller can answer "try again later".
    pub async fn sign(&self, domain: &str, message: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let loaded = self.keys(domain).await?;
        let signer = match loaded.as_ref() {
            Ok(signer) => signer,
            Err(e) => {
                tracing::warn!(domain, error = %e, "dkim: cannot load keys; sending unsigned");
                return Ok(message);
            }
        };
        if signer.is_empty() {
            tracing::warn!(domain, "dkim: no signing key; sending unsigned");
            return Ok(message);
        }
        match signer.headers(&message) {
            Ok(headers) => {
                let mut signed = headers.into_bytes();
                signed.extend_from_slice(&message);
                Ok(signed)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "dkim: signing failed; sending unsigned");
                Ok(message)
            }
        }
    }

    async fn keys(&self, domain: &str) -> Result<Arc<Result<DomainSigner, String>>, StoreError> {
        let now = self.clock.now();
        if let Some((loaded, keys)) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
            && now < loaded.plus(KEY_CACHE)
        {
            return Ok(keys.clone());
        }
        let records: Vec<DkimKeyRecord> = match self.store.hosted_domain(domain).await? {
            Some(d) => self
                .store
                .dkim_keys(&d.id)
                .await?
                .into_iter()
                .filter(|k| k.retired_at.is_none())
                .collect(),
            None => Vec::new(),
        };
        let parsed = Arc::new(DomainSigner::new(&records, domain).map_err(|e| e.to_string()));
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_owned(), (now, parsed.clone()));
        Ok(parsed)
    }

    /// Forget cached keys (after a rotation on this node).
    /// The selectors `sign` would sign `domain`'s mail with (none: it would go unsigned).
    pub async fn selectors(&self, domain: &str) -> Result<Vec<String>, StoreError> {
        let loaded = self.keys(domain).await?;
        Ok(match loaded.as_ref() {
            Ok(signer) => signer.selectors.clone(),
            Err(_) => Vec::new(),
        })
    }

    pub fn forget(&self, domain: &str) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(domain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_carry_the_date_and_the_algorithm() {
        let t = Timestamp(1_796_000_000_000); // 2026-11-30T00:53:20Z
        assert_eq!(selector(t, RSA), "cm20261130t005320r");
        assert_eq!(selector(t, ED25519), "cm20261130t005320e");
    }

    #[test]
    fn generated_keys_sign_and_publish() {
        let keys = generate("dom_1", Timestamp(1_796_000_000_000), true).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(dns_record(&keys[0]).starts_with("v=DKIM1; k=rsa; p=MII"));
        assert!(dns_record(&keys[1]).starts_with("v=DKIM1; k=ed25519; p="));
        let message = b"From: a@example.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        let headers = sign_with(&keys, "example.test", message).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2);
        assert!(headers.contains("a=rsa-sha256") && headers.contains("a=ed25519-sha256"));
        assert!(headers.contains("c=relaxed/relaxed"));
        assert!(headers.contains("d=example.test"));
        assert!(
            headers.to_ascii_lowercase().contains("from:from"),
            "From is over-signed: {headers}"
        );
    }
}
