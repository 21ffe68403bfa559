//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is `whsec_` and
//! the base64 of its key; a delivery is signed as `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! and while a rotated secret is still honoured both signatures go out, space-separated.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "whsec_";
/// 24 random bytes, as the reference libraries generate.
const KEY_LEN: usize = 24;

/// A new random secret.
pub fn new_secret() -> String {
    let key: [u8; KEY_LEN] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header's value for one delivery, signed with every secret given.
pub fn signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| key_of(secret))
        .map(|key| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(id.as_bytes());
            ctx.update(b".");
            ctx.update(timestamp.to_string().as_bytes());
            ctx.update(b".");
            ctx.update(body);
            format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key a secret stands for; None for text we did not make.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_specification_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let signed = signature(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one() {
        let (old, new) = (new_secret(), new_secret());
        assert!(new.starts_with("whsec_") && key_of(&new).is_some_and(|k| k.len() == KEY_LEN));
        let both = signature(&[&new, &old], "evt_1", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[&new], "evt_1", 1, b"{}"));
        assert_eq!(parts[1], signature(&[&old], "evt_1", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }
}
