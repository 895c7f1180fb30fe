//! One-time secrets sent by mail (password reset links): made from 32 random bytes, kept only
//! as their SHA-256, both written URL-safe so a link carries the secret as it is.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The secret `random` makes (43 URL-safe characters).
pub fn secret_from(random: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// What a secret is stored as.
pub fn secret_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_url_safe_and_its_hash_is_not_the_secret() {
        let secret = secret_from([7; 32]);
        assert_eq!(secret.len(), 43);
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(secret_hash(&secret), secret);
        assert_eq!(secret_hash(&secret), secret_hash(&secret_from([7; 32])));
        assert_ne!(secret_hash(&secret), secret_hash(&secret_from([8; 32])));
    }
}
