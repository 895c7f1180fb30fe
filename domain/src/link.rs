//! Signed download links: `BASE/download/{job_id}?signature=EXPIRES.MAC`, a URL that carries
//! its own proof, so that a person can click it in an e-mail without logging in.
//!
//! The MAC is HMAC-SHA256, under a key of its own (`DOWNLOAD_LINK_SECRET`, never the token
//! key), over a purpose label, the job id and the expiry: it opens that one job's MP3 until
//! then and is good for nothing else. The worker issues links (in the e-mail), the gateway
//! issues them too (`/jobs/{id}/link`, `/status`) and checks them; both hold the same key.
//! Nothing is stored per link, so a link dies with its job (the gateway finds no job) or at
//! its expiry, whichever comes first.

use crate::JobId;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The query parameter that carries a link's expiry and MAC.
pub const SIGNATURE_PARAM: &str = "signature";

/// Binds a MAC to this use: a MAC computed for anything else never matches.
const PURPOSE: &str = "audiomill download link v1";

/// Issues and checks download links.
#[derive(Clone)]
pub struct LinkSigner {
    key: Hmac<Sha256>,
    lifetime: Duration,
    base_url: String,
}

/// A link, and until when it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLink {
    pub url: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Why a link opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    /// Changed, cut, made for another job, or not made with our key.
    #[error("the link is not valid")]
    Forged,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

impl LinkSigner {
    /// `key`: the link secret; `lifetime`: how long an issued link works; `base_url`: the
    /// gateway as users reach it (`PUBLIC_URL`).
    pub fn new(key: &[u8], lifetime: Duration, base_url: &str) -> Self {
        Self {
            key: Hmac::new_from_slice(key).expect("HMAC takes keys of any length"),
            lifetime,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// How long an issued link works.
    /// The address links start with (the service's public base URL).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A link to `job`'s MP3 that works for the configured lifetime from now.
    pub fn issue(&self, job: JobId) -> SignedLink {
        let expires_at = unix_now().saturating_add(self.lifetime.as_secs() as i64);
        self.issue_until(job, expires_at)
    }

    /// A link to `job`'s MP3 that works until `expires_at` (Unix seconds).
    pub fn issue_until(&self, job: JobId, expires_at: i64) -> SignedLink {
        SignedLink {
            url: format!(
                "{}/download/{job}?{SIGNATURE_PARAM}={}",
                self.base_url,
                self.signature(job, expires_at)
            ),
            expires_at,
        }
    }

    /// The value of the `signature` parameter: `EXPIRES.MAC`, both URL-safe.
    pub fn signature(&self, job: JobId, expires_at: i64) -> String {
        let mac = self.mac(job, expires_at).finalize().into_bytes();
        format!("{expires_at}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Whether `signature` opens `job` at `now` (Unix seconds). The MAC is checked first,
    /// in constant time, so that only genuine links learn they expired.
    pub fn check(&self, job: JobId, signature: &str, now: i64) -> Result<(), LinkRefusal> {
        let (expires_at, mac) = signature.split_once('.').ok_or(LinkRefusal::Forged)?;
        // Only the digits we write: no sign, no spaces, no leading zeros to vary.
        if expires_at.is_empty()
            || !expires_at.bytes().all(|b| b.is_ascii_digit())
            || (expires_at.len() > 1 && expires_at.starts_with('0'))
        {
            return Err(LinkRefusal::Forged);
        }
        let expires_at: i64 = expires_at.parse().map_err(|_| LinkRefusal::Forged)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| LinkRefusal::Forged)?;
        self.mac(job, expires_at)
            .verify_slice(&mac)
            .map_err(|_| LinkRefusal::Forged)?;
        if now >= expires_at {
            return Err(LinkRefusal::Expired);
        }
        Ok(())
    }

    fn mac(&self, job: JobId, expires_at: i64) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        mac.update(format!("{PURPOSE}\n{job}\n{expires_at}").as_bytes());
        mac
    }
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("lifetime", &self.lifetime)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &str) -> LinkSigner {
        LinkSigner::new(
            key.as_bytes(),
            Duration::from_secs(72 * 3600),
            "https://mp3.example/",
        )
    }

    fn job() -> JobId {
        JobId::parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap()
    }

    fn other_job() -> JobId {
        JobId::parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c").unwrap()
    }

    fn signature_of(link: &SignedLink) -> &str {
        link.url.split_once("signature=").unwrap().1
    }

    #[test]
    fn a_link_names_its_job_and_opens_it_until_it_expires() {
        let links = signer("k".repeat(32).as_str());
        let link = links.issue_until(job(), 2_000_000_000);
        assert!(
            link.url.starts_with(&format!(
                "https://mp3.example/download/{}?signature=2000000000.",
                job()
            )),
            "{}",
            link.url
        );
        let signature = signature_of(&link);
        assert_eq!(links.check(job(), signature, 1_999_999_999), Ok(()));
        assert_eq!(
            links.check(job(), signature, 2_000_000_000),
            Err(LinkRefusal::Expired)
        );
    }

    #[test]
    fn issued_links_last_the_lifetime() {
        let links = signer("k".repeat(32).as_str());
        let link = links.issue(job());
        let lifetime = link.expires_at - unix_now();
        assert!(
            (72 * 3600 - 5..=72 * 3600).contains(&lifetime),
            "{lifetime}"
        );
    }

    #[test]
    fn changed_foreign_or_other_key_links_are_forged() {
        let links = signer("k".repeat(32).as_str());
        let link = links.issue_until(job(), 2_000_000_000);
        let signature = signature_of(&link).to_owned();
        let now = 1_900_000_000;
        assert_eq!(
            links.check(other_job(), &signature, now),
            Err(LinkRefusal::Forged)
        );
        assert_eq!(
            signer("j".repeat(32).as_str()).check(job(), &signature, now),
            Err(LinkRefusal::Forged)
        );
        // A later expiry with the same MAC.
        let extended = signature.replacen("2000000000", "2000000001", 1);
        assert_eq!(links.check(job(), &extended, now), Err(LinkRefusal::Forged));
        // Every single changed character of the MAC.
        let dot = signature.find('.').unwrap();
        for at in dot + 1..signature.len() {
            let mut bytes = signature.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(
                links.check(job(), &changed, now),
                Err(LinkRefusal::Forged),
                "{changed}"
            );
        }
        for malformed in [
            "",
            ".",
            "2000000000",
            "2000000000.",
            "-1.abc",
            " 2000000000.abc",
            "02000000000.abc",
            "99999999999999999999999.abc",
            &signature[..signature.len() - 1],
            &format!("{signature}="),
        ] {
            assert_eq!(
                links.check(job(), malformed, now),
                Err(LinkRefusal::Forged),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn an_expired_forgery_is_forged_not_expired() {
        let links = signer("k".repeat(32).as_str());
        let forged = format!("1000.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(
            links.check(job(), &forged, 2_000_000_000),
            Err(LinkRefusal::Forged)
        );
    }

    #[test]
    fn the_key_is_not_printed() {
        let links = signer("secret-secret-secret-secret-secret");
        assert!(!format!("{links:?}").contains("secret-secret"));
    }
}
