//! Bearer tokens: 256 random bits shown once, stored only as their SHA-256.
//!
//! Tokens are high-entropy, so a fast hash is enough (no password hashing needed) and lookup is by
//! hash. The `cm_` prefix makes a leaked token easy to recognise in logs and secret scanners.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "cm_";

/// A freshly minted token: the secret to hand out once, and the hash to store.
pub struct NewSecret {
    pub secret: String,
    pub hash: Vec<u8>,
}

pub fn mint() -> NewSecret {
    let bytes: [u8; 32] = rand::random();
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    NewSecret { secret, hash }
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_stably() {
        let a = mint();
        let b = mint();
        assert!(a.secret.starts_with(PREFIX));
        assert_eq!(a.secret.len(), PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(hash(&a.secret), a.hash);
        assert_ne!(a.hash, b.hash);
    }
}
