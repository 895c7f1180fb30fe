//! Webhooks as the Standard Webhooks specification (<https://www.standardwebhooks.com>) has
//! them: the events a user may subscribe to, the endpoint URLs they may register, the addresses
//! those may reach, the per-endpoint secrets and the signatures made with them.

#[cfg(feature = "resolve")]
use crate::address::Unreachable;
pub use crate::address::is_public;
use crate::{InvalidValue, JobId, JobStatus, WebhookId};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{fmt, net::IpAddr};

/// The longest endpoint URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;

/// What a webhook tells: a job ended, one way or another, or its transcode passed one of
/// [`PROGRESS_MILESTONES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WebhookEvent {
    JobCompleted,
    JobFailed,
    JobCancelled,
    JobProgress,
}

/// The percentages of a transcode that `job.progress` tells, each once.
pub const PROGRESS_MILESTONES: [u8; 3] = [25, 50, 75];

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 4] = [
        Self::JobCompleted,
        Self::JobFailed,
        Self::JobCancelled,
        Self::JobProgress,
    ];

    /// The events that tell how a job ended.
    pub const ENDINGS: [WebhookEvent; 3] =
        [Self::JobCompleted, Self::JobFailed, Self::JobCancelled];

    /// The name receivers see as the payload's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobCompleted => "job.completed",
            Self::JobFailed => "job.failed",
            Self::JobCancelled => "job.cancelled",
            Self::JobProgress => "job.progress",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == text)
            .ok_or(InvalidValue(
                "not an event: job.completed, job.failed, job.cancelled or job.progress",
            ))
    }

    /// The job's status as this event tells it: how it ended, or running.
    pub fn status(self) -> JobStatus {
        match self {
            Self::JobCompleted => JobStatus::Completed,
            Self::JobFailed => JobStatus::Failed,
            Self::JobCancelled => JobStatus::Cancelled,
            Self::JobProgress => JobStatus::Running,
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for WebhookEvent {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<WebhookEvent> for String {
    fn from(event: WebhookEvent) -> String {
        event.as_str().to_owned()
    }
}

/// An endpoint's URL: absolute `http` or `https`, with a host, without credentials or a
/// fragment. Where its host may resolve to is a separate question ([`is_public`]), asked again
/// at every delivery since DNS answers change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if text.len() > MAX_URL_LENGTH {
            return Err(InvalidValue("longer than 2048 characters"));
        }
        let url = url::Url::parse(text.trim())
            .map_err(|_| InvalidValue("not an absolute http or https URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidValue(
                "only http and https URLs can receive webhooks",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue("the URL has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue(
                "the URL must not carry credentials; verify the signature instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(InvalidValue("the URL must not have a fragment (#...)"));
        }
        Ok(Self(url))
    }

    /// The host to resolve (an IPv6 literal without its brackets).
    pub fn host(&self) -> String {
        crate::address::host(&self.0)
    }

    /// The port, the scheme's default when none is written.
    pub fn port(&self) -> u16 {
        crate::address::port(&self.0)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Why an endpoint's address may not receive webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    /// Both refusals read alike, and neither names an address: told apart, they would tell
    /// a user which internal names exist and where they point.
    #[error("{host} does not resolve to a public address that webhooks may reach")]
    Unresolved { host: String },
    #[error("{host} does not resolve to a public address that webhooks may reach")]
    Private { host: String, address: IpAddr },
}

/// The addresses `url` reaches now, all of them public unless `allow_private` (an operator's
/// choice, for receivers on their own network). A delivery connects only to these, so a DNS
/// answer that changes between this check and the connection cannot redirect it.
#[cfg(feature = "resolve")]
pub async fn resolve(
    url: &WebhookUrl,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, AddressRefusal> {
    crate::address::resolve(&url.0, allow_private)
        .await
        .map_err(|unreachable| match unreachable {
            Unreachable::Unresolved { host } => AddressRefusal::Unresolved { host },
            Unreachable::Private { host, address } => AddressRefusal::Private { host, address },
        })
}

/// An endpoint's signing secret: random bytes, shown as `whsec_` and their base64.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

const SECRET_PREFIX: &str = "whsec_";

impl WebhookSecret {
    /// Bytes drawn by the caller: 32 random ones, as the specification advises (between 24
    /// and 64). Drawing them is the store's, so that nothing here depends on chance.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| InvalidValue("not a webhook secret"))?;
        if bytes.is_empty() {
            return Err(InvalidValue("not a webhook secret"));
        }
        Ok(Self(bytes))
    }

    /// The secret as receivers configure it (`whsec_...`).
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The `webhook-signature` header: one signature per secret (during a rotation both the new
/// and the previous secret sign, so receivers can switch at their own pace), space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The id of the message telling `endpoint` of `event` on `job` (at `progress` percent, for
/// `job.progress`): the same however often it is prepared, retried or replayed, so receivers
/// can drop duplicates by it.
pub fn message_id(
    endpoint: WebhookId,
    job: JobId,
    event: WebhookEvent,
    progress: Option<u8>,
) -> String {
    let topic = match progress {
        None => format!("{endpoint}/{job}/{event}"),
        Some(percent) => format!("{endpoint}/{job}/{event}/{percent}"),
    };
    let digest = Sha256::digest(topic);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18]);
    format!("msg_{encoded}")
}

/// Checks a message id taken from a path: `msg_` and 24 URL-safe base64 characters.
pub fn parse_message_id(text: &str) -> Result<&str, InvalidValue> {
    let refused = InvalidValue("not a delivery id");
    let encoded = text.strip_prefix("msg_").ok_or(refused.clone())?;
    if encoded.len() != 24
        || !encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(refused);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specifications_example() {
        // The example of the Standard Webhooks reference libraries' tests.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            secret.expose(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "a secret reads back as it was written"
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let new = WebhookSecret::from_bytes(vec![1; 32]);
        let old = WebhookSecret::from_bytes(vec![2; 32]);
        let header = signature_header(&[&new, &old], "msg_x", 1, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("msg_x", 1, b"{}"), old.sign("msg_x", 1, b"{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_never_print() {
        let secret = WebhookSecret::from_bytes((0..32).collect());
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&secret.expose()).unwrap(), secret);
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(WebhookSecret::parse("whsec_***").is_err());
    }

    #[test]
    fn events_have_one_spelling() {
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Ok(event));
        }
        for wrong in [
            "job.progress.50",
            "JOB.COMPLETED",
            "completed",
            "",
            "job.completed ",
        ] {
            assert!(WebhookEvent::parse(wrong).is_err(), "{wrong}");
        }
        let statuses: Vec<_> = WebhookEvent::ALL.iter().map(|e| e.status()).collect();
        assert_eq!(
            statuses,
            [
                JobStatus::Completed,
                JobStatus::Failed,
                JobStatus::Cancelled,
                JobStatus::Running
            ]
        );
    }

    #[test]
    fn only_plain_http_urls_are_endpoints() {
        for good in [
            "https://hooks.example.com/audiomill",
            "http://example.com:8080/x?y=1",
            "https://[2001:4860::1]/h",
            "http://93.184.216.34/",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "example.com/hook",
            "/relative",
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "https://example.com/#frag",
            "http://",
            "",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert!(WebhookUrl::parse(&long).is_err());
        let v6 = WebhookUrl::parse("https://[::1]:9000/x").unwrap();
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.port(), 9000);
        let named = WebhookUrl::parse("https://example.com/x").unwrap();
        assert_eq!((named.host().as_str(), named.port()), ("example.com", 443));
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            // Transition and special-purpose prefixes.
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::8.8.8.8",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "100::1",
            "fec0::1",
            "3fff::1",
            "5f00::1",
            "::ffff:0:a00:1",
            "::8.8.8.8",
            "4000::1",
        ] {
            let address: IpAddr = private.parse().unwrap();
            assert!(!is_public(address), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            let address: IpAddr = public.parse().unwrap();
            assert!(is_public(address), "{public}");
        }
    }

    #[cfg(feature = "resolve")]
    #[tokio::test]
    async fn loopback_is_refused_unless_allowed_and_names_resolve() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://localhost:9/x",
        ] {
            let url = WebhookUrl::parse(url).unwrap();
            assert!(
                matches!(
                    resolve(&url, false).await,
                    Err(AddressRefusal::Private { .. })
                ),
                "{url}"
            );
            let allowed = resolve(&url, true).await.unwrap();
            assert!(
                allowed
                    .iter()
                    .all(|a| a.ip().is_loopback() && a.port() == url.port())
            );
        }
        let metadata = WebhookUrl::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(resolve(&metadata, false).await.is_err());
        let nowhere = WebhookUrl::parse("http://no-such-host.invalid/").unwrap();
        let unresolved = resolve(&nowhere, true).await.unwrap_err();
        assert!(matches!(unresolved, AddressRefusal::Unresolved { .. }));
        // A name that resolves to a private address reads like one that resolves to nothing,
        // and names no address.
        let local = WebhookUrl::parse("http://localhost:9/x").unwrap();
        let private = resolve(&local, false).await.unwrap_err().to_string();
        assert!(
            !private.contains("127.0.0.1") && !private.contains("::1"),
            "{private}"
        );
        assert_eq!(
            private.replace("localhost", "HOST"),
            unresolved
                .to_string()
                .replace("no-such-host.invalid", "HOST")
        );
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let endpoint = WebhookId::generate();
        let job = JobId::generate();
        let id = message_id(endpoint, job, WebhookEvent::JobCompleted, None);
        assert_eq!(
            id,
            message_id(endpoint, job, WebhookEvent::JobCompleted, None)
        );
        assert_ne!(id, message_id(endpoint, job, WebhookEvent::JobFailed, None));
        let half = message_id(endpoint, job, WebhookEvent::JobProgress, Some(50));
        assert_ne!(
            half,
            message_id(endpoint, job, WebhookEvent::JobProgress, Some(75))
        );
        assert_eq!(parse_message_id(&half), Ok(half.as_str()));
        assert_ne!(
            id,
            message_id(WebhookId::generate(), job, WebhookEvent::JobCompleted, None)
        );
        assert_eq!(parse_message_id(&id), Ok(id.as_str()));
        for bad in [
            "msg_",
            "msg_short",
            "x",
            &format!("{id}x"),
            "msg_aaaaaaaaaaaaaaaaaaaaaaa/",
        ] {
            assert!(parse_message_id(bad).is_err(), "{bad}");
        }
    }
}
