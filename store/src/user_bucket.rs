//! A user's own bucket, reached through their saved connection: an object read as a stream,
//! an MP3 written from a file. Every address the endpoint's host resolves to must be public
//! (unless an operator allows private ones), checked by the client's own resolver at each
//! new connection, so the connection goes only to addresses checked; an endpoint written as
//! an address is checked before the client is made. Trouble is said in a sentence for the
//! user: what trying again cannot mend is [`BucketTrouble::Refused`].

use crate::sources::Connection;
use audiomill_domain::address::{is_public, resolve};
use aws_sdk_s3::{
    Client,
    config::{
        BehaviorVersion, Credentials, Region, http::HttpResponse, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
};
use aws_smithy_http_client::{Builder, tls};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use bytes::Bytes;
use futures::Stream;
use std::{net::IpAddr, path::Path, time::Duration};

/// Why the bucket could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketTrouble {
    /// The keys, the bucket, the object or the address are at fault: trying again cannot help.
    Refused(String),
    /// The server could not be reached, failed or was too slow: worth trying again.
    Unreachable(String),
}

impl BucketTrouble {
    /// The sentence that says what went wrong.
    pub fn sentence(self) -> String {
        match self {
            Self::Refused(sentence) | Self::Unreachable(sentence) => sentence,
        }
    }
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    /// Changes when the object is written again; empty when the server names none.
    pub etag: String,
    pub size: u64,
    /// When it was last written (Unix ms), if the server says.
    pub modified_ms: Option<i64>,
}

impl ListedObject {
    /// What tells this version of the object from another: its ETag, else its size and
    /// time of writing.
    pub fn version(&self) -> String {
        match self.etag.as_str() {
            "" => format!(
                "size:{};modified:{}",
                self.size,
                self.modified_ms.unwrap_or(0)
            ),
            etag => etag.to_owned(),
        }
    }
}

/// A connection's bucket, ready to use.
pub struct UserBucket {
    client: Client,
    bucket: String,
    host: String,
}

/// Resolves names for the bucket's client, refusing any that reaches a private address.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allow_private: bool,
}

impl ResolveDns for CheckedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let allow_private = self.allow_private;
        DnsFuture::new(async move {
            let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveDnsError::new)?
                .map(|address| address.ip())
                .collect();
            if !allow_private && found.iter().any(|address| !is_public(*address)) {
                return Err(ResolveDnsError::new(format!(
                    "{name} does not resolve to a public address"
                )));
            }
            Ok(found)
        })
    }
}

impl UserBucket {
    /// A client of `connection`'s bucket with its `secret` key, once its endpoint's address
    /// is allowed.
    pub async fn open(
        connection: &Connection,
        secret: &str,
        allow_private: bool,
    ) -> Result<Self, BucketTrouble> {
        let credentials =
            Credentials::new(&connection.access_key_id, secret, None, None, "connection");
        let http = Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_with_resolver(CheckedResolver { allow_private });
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .build();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(connection.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .timeout_config(timeouts)
            // Temporal retries the step; the client tries once.
            .retry_config(RetryConfig::disabled());
        let host = match &connection.endpoint {
            Some(endpoint) => {
                // A name is checked by the resolver at each connection; checked here too, so
                // that a refusal reads as one rather than as a failed connection.
                resolve(endpoint.as_url(), allow_private)
                    .await
                    .map_err(|refusal| {
                        BucketTrouble::Refused(format!(
                            "{refusal}, so the connection may not reach it."
                        ))
                    })?;
                config = config
                    .endpoint_url(endpoint.as_str())
                    .force_path_style(true);
                endpoint.host()
            }
            None => format!("s3.{}.amazonaws.com", connection.region),
        };
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: connection.bucket.clone(),
            host,
        })
    }

    /// The host that serves the bucket, for sentences.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Object `key`: its length, and its bytes as they arrive.
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<
        (
            Option<u64>,
            impl Stream<Item = Result<Bytes, String>> + Send + use<>,
        ),
        BucketTrouble,
    > {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| self.trouble(&error, Some(key)))?;
        let length = object.content_length().and_then(|n| u64::try_from(n).ok());
        let body = futures::stream::unfold(object.body, |mut body: ByteStream| async move {
            match body.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), body)),
                Some(Err(error)) => Some((Err(error.to_string()), body)),
                None => None,
            }
        });
        Ok((length, body))
    }

    /// Writes the file at `path` as object `key`; its size.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<u64, BucketTrouble> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|error| {
                BucketTrouble::Unreachable(format!("The MP3 could not be read: {error}."))
            })?
            .len();
        let body = ByteStream::from_path(path).await.map_err(|error| {
            BucketTrouble::Unreachable(format!("The MP3 could not be read: {error}."))
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|error| self.trouble(&error, None))?;
        Ok(size)
    }

    /// Up to `max` objects under `prefix`, in key order, after `after` when named.
    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ListedObject>, BucketTrouble> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(after.map(str::to_owned))
            .max_keys(i32::try_from(max).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| self.trouble(&error, None))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|object| {
                Some(ListedObject {
                    key: object.key()?.to_owned(),
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    modified_ms: object.last_modified().and_then(|at| at.to_millis().ok()),
                })
            })
            .collect())
    }

    /// The sentence for a failed request, about object `key` when there is one.
    fn trouble<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        error: &SdkError<E, HttpResponse>,
        key: Option<&str>,
    ) -> BucketTrouble {
        let (host, bucket) = (&self.host, &self.bucket);
        match error {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or_default();
                match (code, status) {
                    ("NoSuchKey", _) | (_, 404) if key.is_some() && code != "NoSuchBucket" => {
                        BucketTrouble::Refused(format!(
                            "The bucket {bucket} has no object {}.",
                            key.unwrap_or_default()
                        ))
                    }
                    ("NoSuchBucket", _) | (_, 404) => BucketTrouble::Refused(format!(
                        "The bucket {bucket} does not exist at {host}."
                    )),
                    (_, 401 | 403) => BucketTrouble::Refused(format!(
                        "{host} refused the connection's keys for the bucket {bucket} ({}).",
                        if code.is_empty() {
                            "403 Forbidden"
                        } else {
                            code
                        }
                    )),
                    (_, 500..) => BucketTrouble::Unreachable(format!(
                        "{host} could not answer now ({status})."
                    )),
                    _ => BucketTrouble::Refused(format!(
                        "{host} refused the request ({}).",
                        if code.is_empty() {
                            status.to_string()
                        } else {
                            code.to_owned()
                        }
                    )),
                }
            }
            SdkError::TimeoutError(_) => {
                BucketTrouble::Unreachable(format!("{host} did not answer in time."))
            }
            SdkError::DispatchFailure(_) => {
                let cause = chain(error);
                if cause.contains("does not resolve to a public address") {
                    BucketTrouble::Refused(format!(
                        "{host} does not resolve to a public address, so the connection may not reach it."
                    ))
                } else if cause.to_ascii_lowercase().contains("certificate") {
                    BucketTrouble::Refused(format!(
                        "{host}'s TLS certificate could not be verified."
                    ))
                } else {
                    BucketTrouble::Unreachable(format!("{host} could not be reached."))
                }
            }
            _ => BucketTrouble::Unreachable(format!("The request to {host} failed.")),
        }
    }
}

/// An error and its causes, as one text.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
