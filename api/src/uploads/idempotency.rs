//! `Idempotency-Key` on `POST /upload`, in one place: the key as sent, its reservation before
//! the body is read, and what becomes of it when the upload is accepted (the key names the job)
//! or refused (the key is free again).

use audiomill_domain::UserId;
use audiomill_store::{Database, KeyClaim, KeyedUpload, StoreError};

/// An `Idempotency-Key` header that names no key: given twice, or not 1 to 255 visible ASCII
/// characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadKey;

/// The request's `Idempotency-Key`, if it has one, read from the raw headers: the typed header
/// parameter reads a value that is not visible ASCII, or a second one, as no key at all, and a
/// retry would then start a second job.
pub(crate) fn key_of(headers: &poem::http::HeaderMap) -> Result<Option<String>, BadKey> {
    let mut values = headers.get_all("idempotency-key").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key("idempotency-key") {
            true => Err(BadKey),
            false => Ok(None),
        };
    };
    match std::str::from_utf8(value.as_bytes()) {
        Ok(key) if is_valid(key) => Ok(Some(key.to_owned())),
        _ => Err(BadKey),
    }
}

/// 1 to 255 visible ASCII characters, as stored.
fn is_valid(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// What a key allows the upload that carries it.
pub(crate) enum Claim {
    /// No key: the upload goes ahead on its own.
    Unkeyed,
    /// The key is this upload's now; it must be [`Reservation::complete`]d or
    /// [`Reservation::release`]d.
    Reserved(Reservation),
    /// Another upload with this key is still being received.
    InProgress,
    /// An earlier upload with this key started this job.
    Used(KeyedUpload),
}

/// A key reserved for one upload.
pub(crate) struct Reservation {
    user: UserId,
    key: String,
}

/// Reserves `key` (if any) for an upload of `user`'s.
pub(crate) async fn claim(
    db: &Database,
    user: UserId,
    key: Option<String>,
) -> Result<Claim, StoreError> {
    let Some(key) = key else {
        return Ok(Claim::Unkeyed);
    };
    Ok(match db.claim_idempotency_key(user, &key).await? {
        KeyClaim::Reserved => Claim::Reserved(Reservation { user, key }),
        KeyClaim::InProgress => Claim::InProgress,
        KeyClaim::Used(earlier) => Claim::Used(earlier),
    })
}

impl Reservation {
    /// The upload was accepted as `keyed`: a retry with the key gets that job. The job runs
    /// either way; the key only stays reserved (a retry gets 409 until the reservation is
    /// abandoned) if this write fails.
    pub(crate) async fn complete(self, db: &Database, keyed: &KeyedUpload) {
        if let Err(error) = db
            .complete_idempotency_key(self.user, &self.key, keyed)
            .await
        {
            tracing::error!(%error, "could not record the upload's Idempotency-Key");
        }
    }

    /// The upload was refused: the key is free for the next attempt.
    pub(crate) async fn release(self, db: &Database) {
        if let Err(error) = db.release_idempotency_key(self.user, &self.key).await {
            tracing::error!(%error, "could not release a refused upload's Idempotency-Key");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::{HeaderMap, HeaderValue};

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("idempotency-key", HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_key_is_one_header_of_visible_ascii() {
        assert_eq!(key_of(&headers(&[])), Ok(None));
        assert_eq!(
            key_of(&headers(&[b"upload-1"])),
            Ok(Some("upload-1".into()))
        );
        for bad in [
            &[&b"a"[..], b"b"][..],
            &[b"a", b"a"],
            &["ключ".as_bytes()],
            &[b"key-\xe9"],
            &[b"two words"],
            &[b"tab\there"],
            &[b""],
        ] {
            assert_eq!(key_of(&headers(bad)), Err(BadKey), "{bad:?}");
        }
        assert_eq!(key_of(&headers(&[&[b'k'; 256]])), Err(BadKey));
    }
}
