//! Secrets kept in the database sealed: AES-256-GCM with a key derived from
//! `CONNECTION_SECRET_KEY` (its SHA-256) and a fresh random nonce for each, so a copy of the
//! database alone reveals no user's storage keys. A sealed value is `v1.` and the base64 of
//! the nonce and the ciphertext.

use crate::error::StoreError;
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};
use std::sync::Arc;

const VERSION: &str = "v1.";

/// Seals and opens secrets with one key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer(Arc<LessSafeKey>);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer whose key is derived from `key` (at least 32 characters, checked by the
    /// configuration).
    pub fn new(key: &str) -> Self {
        let derived = digest(&SHA256, key.as_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("a 32-byte key");
        Self(Arc::new(LessSafeKey::new(unbound)))
    }

    pub fn seal(&self, secret: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Corrupt("no randomness for a nonce".into()))?;
        let mut sealed = secret.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| StoreError::Corrupt("could not seal a secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD_NO_PAD.encode(out)))
    }

    /// The secret `sealed` holds; an error when it was sealed with another key or changed.
    pub fn open(&self, sealed: &str) -> Result<String, StoreError> {
        let refused = || StoreError::Corrupt("a sealed secret does not open with this key".into());
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|rest| STANDARD_NO_PAD.decode(rest).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or_else(refused)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_with_its_key_and_unchanged() {
        let sealer = Sealer::new("a key of at least thirty-two characters");
        let sealed = sealer.seal("wJalrXUtnFEMI/K7MDENG").unwrap();
        assert!(!sealed.contains("wJalr"));
        assert_ne!(
            sealed,
            sealer.seal("wJalrXUtnFEMI/K7MDENG").unwrap(),
            "a fresh nonce"
        );
        assert_eq!(sealer.open(&sealed).unwrap(), "wJalrXUtnFEMI/K7MDENG");
        let other = Sealer::new("another key of at least thirty-two chars");
        assert!(other.open(&sealed).is_err());
        let mut changed = sealed.clone();
        changed.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(sealer.open(&changed).is_err());
        assert!(sealer.open("plain").is_err());
    }
}
