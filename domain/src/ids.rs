//! Identifiers and checked values. Each one can only be built through `parse`, so code that
//! holds one never has to check it again.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A value refused by one of the `parse` functions of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh identifier, ordered by creation time (UUIDv7).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// When the id was generated, in Unix milliseconds (UUIDv7 carries it).
            pub fn created_unix_millis(&self) -> Option<u64> {
                let (seconds, nanos) = self.0.get_timestamp()?.to_unix();
                Some(seconds * 1000 + u64::from(nanos) / 1_000_000)
            }

            /// Accepts the canonical hyphenated form only, so each id has one spelling.
            pub fn parse(text: &str) -> Result<Self, InvalidValue> {
                let id = Uuid::try_parse(text).map_err(|_| InvalidValue(concat!("not a valid ", $what)))?;
                if id.hyphenated().to_string() != text {
                    return Err(InvalidValue(concat!("not a valid ", $what)));
                }
                Ok(Self(id))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

uuid_id!(
    /// One conversion job; also the id of its `ConvertVideo` workflow.
    JobId,
    "job id"
);
impl JobId {
    /// The id named by `seed` alone (a UUIDv8 from its SHA-256): the same seed always names
    /// the same job, so a job started twice for one thing is the same job.
    pub fn derived(seed: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(Uuid::new_v8(bytes))
    }
}

uuid_id!(
    /// The jobs of one upload that carried several files.
    BatchId,
    "batch id"
);
uuid_id!(
    /// One user account.
    UserId,
    "user id"
);
uuid_id!(
    /// One endpoint a user registered to receive webhooks.
    WebhookId,
    "webhook id"
);
uuid_id!(
    /// One storage connection a user saved (an S3-compatible bucket of theirs).
    ConnectionId,
    "connection id"
);
uuid_id!(
    /// One watch: a folder of a user's bucket whose new videos are converted as they appear.
    WatchId,
    "watch id"
);
uuid_id!(
    /// One resumable (tus) upload, from its creation until its last byte starts a job.
    UploadId,
    "upload id"
);

/// An e-mail address, lower-cased. Deliberately simple: one `@`, a non-empty local part, a
/// domain with a dot, no whitespace or control characters; the mail server has the last word.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        let bad = InvalidValue("not a valid e-mail address");
        if text.is_empty() || text.len() > 254 {
            return Err(bad);
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\",;:\\()[]".contains(c))
        {
            return Err(bad);
        }
        let (local, domain) = text.split_once('@').ok_or(bad.clone())?;
        if local.is_empty() || domain.contains('@') || !domain.contains('.') {
            return Err(bad);
        }
        if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(bad);
        }
        Ok(Self(text.to_lowercase()))
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EmailAddress> for String {
    fn from(address: EmailAddress) -> String {
        address.0
    }
}

/// A key in object storage: slash-separated segments of `[A-Za-z0-9._-]`, none of them `.` or
/// `..`, so a key can never escape the storage root when the backend is a directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let bad = InvalidValue("not a valid object key");
        if text.is_empty() || text.len() > 512 {
            return Err(bad);
        }
        for segment in text.split('/') {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if segment.is_empty()
                || segment == "."
                || segment == ".."
                || !segment.chars().all(allowed)
            {
                return Err(bad);
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// Where a job's uploaded video lives.
    pub fn source(job: JobId, extension: &str) -> Self {
        Self(format!("sources/{job}.{}", sanitize_extension(extension)))
    }

    /// Where a job's MP3 lives.
    pub fn mp3(job: JobId) -> Self {
        Self::output(job, "mp3")
    }

    /// Where a job's output lives, by its format's extension: every format under `mp3/`,
    /// the one prefix of converted audio.
    pub fn output(job: JobId, extension: &str) -> Self {
        Self(format!("mp3/{job}.{}", sanitize_extension(extension)))
    }

    /// Where part `part` of a job converted in parts waits to be joined.
    pub fn part(job: JobId, part: u32) -> Self {
        Self(format!("parts/{job}/{part}.mp3"))
    }
}

fn sanitize_extension(extension: &str) -> String {
    let clean: String = extension
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    if clean.is_empty() {
        "bin".into()
    } else {
        clean.to_ascii_lowercase()
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<ObjectKey> for String {
    fn from(key: ObjectKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_refuse_other_spellings() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(&id.to_string()), Ok(id));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now.abs_diff(id.created_unix_millis().unwrap()) < 5_000);
        assert!(JobId::parse("not-a-uuid").is_err());
        assert!(JobId::parse(&id.to_string().to_uppercase()).is_err());
        assert!(JobId::parse(&id.to_string().replace('-', "")).is_err());
    }

    #[test]
    fn email_addresses_are_lowercased_and_checked() {
        assert_eq!(
            EmailAddress::parse(" Ann@Example.COM ").unwrap().as_ref(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
            "<a>@x.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn object_keys_cannot_escape_their_root() {
        for bad in [
            "",
            "../etc/passwd",
            "a/../b",
            "/abs",
            "a//b",
            "a/./b",
            "a\\b",
            "a b",
            "ä",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(ObjectKey::parse("sources/x.mp4").is_ok());
        let job = JobId::generate();
        assert_eq!(
            ObjectKey::source(job, "../M P4").as_ref(),
            format!("sources/{job}.mp4")
        );
        assert_eq!(
            ObjectKey::source(job, "").as_ref(),
            format!("sources/{job}.bin")
        );
        assert!(ObjectKey::parse(ObjectKey::mp3(job).as_ref()).is_ok());
    }

    #[test]
    fn ids_deserialize_through_parse() {
        assert!(serde_json::from_str::<JobId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<ObjectKey>("\"../x\"").is_err());
    }
}
