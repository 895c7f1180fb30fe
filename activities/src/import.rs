//! `import_source`: a job's video fetched from the link it was given, into storage at its
//! source key, where `fetch_source` then finds it as it finds an upload.
//!
//! The address rules are the webhooks' at their strictest: every address the host resolves
//! to must be public (unless `IMPORT_ALLOW_PRIVATE`), the connection goes only to those, and
//! each redirect is read by hand and checked again. The body streams into storage under the
//! user's size limit and the room their quota leaves, is refused unless its first bytes are a
//! container we convert (so a playlist, a concatenation list or a web page never reaches a
//! demuxer), and must keep up a minimum pace. Every way a fetch fails ends in a sentence for
//! the user that names the server but never the link's credentials; what can pass (a server
//! error, a timeout) is retried by Temporal, what cannot (404, too large, not a video) is not.

use crate::buckets::ConnectionAccess;
use crate::convert::keep_alive;
use crate::failures::{database_down, fatal, storage_down};
use audiomill_domain::address::is_public;
use audiomill_domain::{
    JobId, ObjectKey,
    address::Unreachable,
    container::Container,
    contract::{FailureKind, ImportPlan, ImportSourceInput, ImportedSource, activity},
    import::{self, ImportUrl, MAX_REDIRECTS},
};
use audiomill_store::{BucketTrouble, Connection, Database, ObjectStore, OverQuota, PutError};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::{
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use temporalio_common::error::ApplicationFailure;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// How imports reach the network.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Fetch from loopback and private addresses too (`IMPORT_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// How long a server may send nothing, before the headers or between two reads.
    pub idle_timeout: Duration,
    /// The slowest average pace accepted, in bytes per second, once [`PACE_GRACE`] has passed.
    pub min_bytes_per_second: u64,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            idle_timeout: Duration::from_secs(30),
            min_bytes_per_second: 8 * 1024,
        }
    }
}

/// How long a fetch runs before its average pace is held to the minimum: a server may start
/// slowly.
const PACE_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ImportActivities {
    db: Database,
    objects: ObjectStore,
    settings: Arc<ImportSettings>,
    fetcher: Arc<Fetcher>,
    access: ConnectionAccess,
}

/// Which addresses a fetch may connect to.
type Permits = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Reaches a link's video: redirects followed by hand, every address checked.
pub(crate) struct Fetcher {
    permits: Permits,
    idle_timeout: Duration,
}

/// What the Temporal Web UI shows of an import under way.
#[derive(Serialize)]
struct ImportProgress {
    bytes: u64,
    /// The length the server announced, when it did.
    total: Option<u64>,
}

/// Why an import (or an upload to a link) stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Trying again cannot help: the sentence says why.
    Refused(String),
    /// The server or the network may do better on another attempt.
    Unreachable(String),
    /// The video is larger than the storage the user's quota leaves.
    OverQuota { limit: u64, used: u64 },
    /// Our storage failed: retried, like any step's storage outage.
    Storage(audiomill_store::StoreError),
}

#[activities]
impl ImportActivities {
    /// Fetches the job's video from its link into storage and records its size. A job whose
    /// video is in already (an attempt that ended after recording it) answers with that size.
    #[activity(definition = activity::ImportSource)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn import_source(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ImportSourceInput,
    ) -> Result<ImportedSource, ActivityError> {
        let job = self.db.job(input.job_id).await.map_err(database_down)?;
        let Some(job) = job else {
            return Err(fatal(
                FailureKind::SourceMissing,
                "The job no longer exists.",
            ));
        };
        let Some(source) = self.source(job.id).await? else {
            return Ok(ImportedSource {
                size: job.source_size,
            });
        };
        let limit = self.limit(job.user_id, &input.plan).await?;
        let received = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let server = RwLock::new(String::new());
        let fetching = async {
            let opened = self.open(&source).await?;
            *server.write().expect("not poisoned") = opened.server.clone();
            self.store_opened(opened, &job.source_key, limit, &received, &total)
                .await
        };
        let progress = || ImportProgress {
            bytes: received.load(Ordering::Relaxed),
            total: Some(total.load(Ordering::Relaxed)).filter(|t| *t > 0),
        };
        let fetched = match keep_alive(&ctx, fetching, progress).await {
            Some(fetched) => fetched,
            None => {
                self.discard(&job.source_key).await;
                return Err(ActivityError::cancelled());
            }
        };
        let server = server.into_inner().expect("not poisoned");
        let size = match fetched {
            Ok(size) => size,
            Err(stop) => return Err(self.stopped(job.id, &job.source_key, &server, stop).await),
        };
        let recorded = self.db.record_import(job.id, size, &input.plan.quota).await;
        match recorded.map_err(database_down)? {
            Ok(()) => {
                tracing::info!(size, host = server, "video imported");
                metrics::counter!("audiomill_imports_total", "outcome" => "imported").increment(1);
                Ok(ImportedSource { size })
            }
            Err(OverQuota::Storage { limit, used } | OverQuota::JobsPerDay { limit, used }) => {
                let stop = Stop::OverQuota { limit, used };
                Err(self.stopped(job.id, &job.source_key, &server, stop).await)
            }
        }
    }
}

impl ImportActivities {
    pub fn new(
        db: Database,
        objects: ObjectStore,
        settings: ImportSettings,
        access: ConnectionAccess,
    ) -> Self {
        let fetcher = Fetcher::new(settings.allow_private, settings.idle_timeout);
        Self {
            db,
            objects,
            settings: Arc::new(settings),
            fetcher: Arc::new(fetcher),
            access,
        }
    }

    /// Where job `job`'s video is still to be fetched from; `None` once it is in storage.
    async fn source(&self, job: JobId) -> Result<Option<Source>, ActivityError> {
        if let Some(url) = self.db.import_url(job).await.map_err(database_down)? {
            return Ok(Some(Source::Link(url)));
        }
        let bucket = self.db.bucket_import(job).await.map_err(database_down)?;
        Ok(bucket.map(|(connection, key)| Source::Bucket(connection.map(Box::new), key)))
    }

    /// The most bytes the video may have: the user's size limit, or less when their storage
    /// quota leaves less room now.
    async fn limit(
        &self,
        user: audiomill_domain::UserId,
        plan: &ImportPlan,
    ) -> Result<u64, ActivityError> {
        let Some(quota) = plan.quota.storage_bytes else {
            return Ok(plan.max_bytes);
        };
        let now = audiomill_store::time::now_millis();
        let usage = self.db.usage(user, now).await.map_err(database_down)?;
        Ok(plan
            .max_bytes
            .min(quota.saturating_sub(usage.storage_bytes)))
    }

    /// The failure an import ends with, once what it stored is removed.
    async fn stopped(
        &self,
        job: JobId,
        key: &ObjectKey,
        server: &str,
        stop: Stop,
    ) -> ActivityError {
        self.discard(key).await;
        tracing::warn!(%job, host = server, ?stop, "import stopped");
        let outcome = match stop {
            Stop::Unreachable(_) | Stop::Storage(_) => "unreachable",
            Stop::Refused(_) | Stop::OverQuota { .. } => "refused",
        };
        metrics::counter!("audiomill_imports_total", "outcome" => outcome).increment(1);
        match stop {
            Stop::Refused(why) => fatal(FailureKind::ImportRefused, why),
            Stop::OverQuota { limit, used } => fatal(
                FailureKind::ImportRefused,
                format!(
                    "The video is larger than the {} your storage quota leaves ({} of {} used).",
                    megabytes(limit.saturating_sub(used)),
                    megabytes(used),
                    megabytes(limit)
                ),
            ),
            Stop::Storage(error) => storage_down(error),
            Stop::Unreachable(why) => ActivityError::application(
                ApplicationFailure::builder(why)
                    .type_name(FailureKind::ImportUnreachable.name().to_owned())
                    .build(),
            ),
        }
    }

    async fn discard(&self, key: &ObjectKey) {
        if let Err(error) = self.objects.delete(key).await {
            tracing::warn!(%error, %key, "could not remove a stopped import");
        }
    }

    /// Opens the job's video where it is: the response of its link (redirects followed, each
    /// checked), or the object of a connection's bucket.
    async fn open(&self, source: &Source) -> Result<Opened, Stop> {
        match source {
            Source::Link(url) => {
                let response = self.fetcher.follow(url).await?;
                let server = url_host(response.url());
                let media_type = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .map(|value| {
                        value
                            .split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_owned()
                    });
                let (said, idle) = (server.clone(), self.settings.idle_timeout);
                Ok(Opened {
                    length: response.content_length(),
                    media_type,
                    body: response
                        .bytes_stream()
                        .map_err(move |error| request_failure(&said, &error, idle))
                        .boxed(),
                    server,
                })
            }
            Source::Bucket(connection, key) => {
                let bucket = self
                    .access
                    .open(connection.as_deref())
                    .await
                    .map_err(stop_for)?;
                let (length, body) = bucket.get(key).await.map_err(stop_for)?;
                Ok(Opened {
                    server: bucket.host().to_owned(),
                    length,
                    media_type: None,
                    body: body.boxed(),
                })
            }
        }
    }

    /// Streams the opened video into storage at `key`, under `limit`; its size.
    async fn store_opened(
        &self,
        opened: Opened,
        key: &ObjectKey,
        limit: u64,
        received: &AtomicU64,
        total: &AtomicU64,
    ) -> Result<u64, Stop> {
        if let Some(length) = opened.length {
            if length > limit {
                return Err(too_large(limit, Some(length)));
            }
            total.store(length, Ordering::Relaxed);
        }
        let server = opened.server;
        let min_rate = self.settings.min_bytes_per_second;
        let body = checked_body(opened.body, limit, received, min_rate);
        match self.objects.put_stream(key, Box::pin(body)).await {
            Ok(size) => Ok(size),
            Err(PutError::Source(BodyStop::NotVideo)) => {
                Err(not_video(opened.media_type.as_deref()))
            }
            Err(PutError::Source(BodyStop::Empty)) => {
                Err(Stop::Refused(format!("{server} sent an empty file.")))
            }
            Err(PutError::Source(BodyStop::TooLarge)) => Err(too_large(limit, None)),
            Err(PutError::Source(BodyStop::TooSlow)) => Err(Stop::Unreachable(format!(
                "{server} sent the video too slowly (under {} KiB/s).",
                min_rate / 1024
            ))),
            Err(PutError::Source(BodyStop::Broken(why))) => Err(Stop::Unreachable(why)),
            Err(PutError::Storage(error)) => Err(Stop::Storage(error)),
        }
    }
}

/// Where a job's video is to be fetched from.
enum Source {
    Link(ImportUrl),
    /// A connection's bucket (`None`: the connection was deleted since) and the object's key.
    Bucket(Option<Box<Connection>>, String),
}

/// A video opened where it is, not yet read.
struct Opened {
    /// Who sends it, for sentences.
    server: String,
    length: Option<u64>,
    media_type: Option<String>,
    body: BoxStream<'static, Result<Bytes, String>>,
}

/// What trouble with a user's bucket means for the import.
fn stop_for(trouble: BucketTrouble) -> Stop {
    match trouble {
        BucketTrouble::Refused(why) => Stop::Refused(why),
        BucketTrouble::Unreachable(why) => Stop::Unreachable(why),
    }
}

impl Fetcher {
    /// A fetcher that reaches public addresses only, unless `allow_private`.
    pub(crate) fn new(allow_private: bool, idle_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(move |address| allow_private || is_public(address)),
            idle_timeout,
        }
    }

    /// The response that carries the video: redirects followed by hand (at most
    /// [`MAX_REDIRECTS`]), each new address resolved and checked before it is reached.
    async fn follow(&self, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
        let mut current = url.clone();
        let mut visited = vec![current.as_url().clone()];
        for _ in 0..=MAX_REDIRECTS {
            let response = self.request(&current).await?;
            let status = response.status();
            if !status.is_redirection() {
                return answer(response, &current);
            }
            let server = current.host();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    Stop::Refused(format!(
                        "{server} answered {status} without saying where to."
                    ))
                })?;
            let next = current.redirected(location).map_err(|why| {
                Stop::Refused(format!(
                    "{server} redirected to an address that cannot be imported: {why}."
                ))
            })?;
            if visited.contains(next.as_url()) {
                return Err(Stop::Refused(format!("{server} redirects in a loop.")));
            }
            visited.push(next.as_url().clone());
            current = next;
        }
        Err(Stop::Refused(format!(
            "The link redirects more than {MAX_REDIRECTS} times."
        )))
    }

    /// One `GET` of `url`, connecting only to the addresses its host resolves to now, all
    /// allowed ones; no redirect followed, no proxy.
    async fn request(&self, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
        let server = url.host();
        self.client_for(url, "imported from")
            .await?
            .get(url.as_url().clone())
            .send()
            .await
            .map_err(|error| classify(&server, &error, self.idle_timeout))
    }

    /// Writes the file at `path` to `url` with one `PUT` (a presigned upload link), checked and
    /// pinned as a fetch is; no redirect followed.
    pub(crate) async fn put_file(
        &self,
        url: &ImportUrl,
        path: &std::path::Path,
    ) -> Result<(), Stop> {
        let server = url.host();
        let client = self.client_for(url, "written to").await?;
        let unreadable = |error: std::io::Error| {
            Stop::Unreachable(format!("The MP3 could not be read: {error}."))
        };
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
        let response = client
            .put(url.as_url().clone())
            .header(reqwest::header::CONTENT_TYPE, "audio/mpeg")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file))
            .send()
            .await
            .map_err(|error| classify(&server, &error, self.idle_timeout))?;
        let status = response.status();
        let said = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        let said = said.trim();
        match status.as_u16() {
            200..=299 => Ok(()),
            300..=399 => Err(Stop::Refused(format!(
                "{server} answered {said}; an upload follows no redirect."
            ))),
            401 | 403 => Err(Stop::Refused(format!(
                "{server} refused the upload ({said}); the link may have expired."
            ))),
            408 | 429 | 500..=599 => Err(Stop::Unreachable(format!(
                "{server} could not take the MP3 now ({said})."
            ))),
            _ => Err(Stop::Refused(format!(
                "{server} refused the upload ({said})."
            ))),
        }
    }

    /// A client that connects to `url`'s host only at the addresses it resolves to now, all
    /// of them allowed; no redirect followed, no proxy. `doing` says in a refusal what was
    /// to be done there.
    async fn client_for(&self, url: &ImportUrl, doing: &str) -> Result<reqwest::Client, Stop> {
        let server = url.host();
        let addresses = import::resolve(url, true)
            .await
            .map_err(|refusal| Stop::Unreachable(format!("{refusal}.")))?;
        if !addresses.iter().all(|address| (self.permits)(address.ip())) {
            let refusal = Unreachable::Private {
                host: server.clone(),
                address: addresses[0].ip(),
            };
            return Err(Stop::Refused(format!(
                "{refusal}, so it may not be {doing}."
            )));
        }
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(self.idle_timeout)
            .resolve_to_addrs(&server, &addresses)
            .user_agent(concat!("Audiomill/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Stop::Unreachable(format!("No HTTP client: {error}.")))
    }
}

/// The response if it carries the video (2xx); the refusal its status means otherwise.
fn answer(response: reqwest::Response, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
    let status = response.status();
    let server = url.host();
    let said = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    let said = said.trim();
    match status.as_u16() {
        200..=299 => Ok(response),
        401 | 403 => Err(Stop::Refused(format!(
            "{server} refused access to the video ({said})."
        ))),
        404 | 410 => Err(Stop::Refused(format!(
            "{server} has no video at this link ({said})."
        ))),
        408 | 429 | 500..=599 => Err(Stop::Unreachable(format!(
            "{server} could not send the video now ({said})."
        ))),
        _ => Err(Stop::Refused(format!(
            "{server} would not send the video ({said})."
        ))),
    }
}

/// Why the body stopped on its way into storage.
#[derive(Debug)]
enum BodyStop {
    NotVideo,
    Empty,
    TooLarge,
    TooSlow,
    /// The body broke off: why, in a sentence.
    Broken(String),
}

/// The response's body, checked as it streams: its first bytes a container we convert, no
/// more than `limit` bytes, and a pace of at least `min_rate` bytes a second on average once
/// [`PACE_GRACE`] has passed.
fn checked_body<'a>(
    body: BoxStream<'static, Result<Bytes, String>>,
    limit: u64,
    received: &'a AtomicU64,
    min_rate: u64,
) -> impl futures::Stream<Item = Result<Bytes, BodyStop>> + Send + 'a {
    let started = Instant::now();
    let mut head: Vec<u8> = Vec::with_capacity(Container::SNIFFED);
    let mut held: Vec<Bytes> = Vec::new();
    let body = body.map_err(BodyStop::Broken);
    // Chunks are held back until the head is sniffed, then released together.
    let checked = body.map(move |chunk| -> Result<Vec<Bytes>, BodyStop> {
        let chunk = chunk?;
        let seen = received.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if seen > limit {
            return Err(BodyStop::TooLarge);
        }
        let elapsed = started.elapsed();
        if elapsed > PACE_GRACE && seen < min_rate.saturating_mul(elapsed.as_secs()) {
            return Err(BodyStop::TooSlow);
        }
        if head.len() >= Container::SNIFFED {
            return Ok(vec![chunk]);
        }
        let missing = Container::SNIFFED - head.len();
        head.extend_from_slice(&chunk[..missing.min(chunk.len())]);
        held.push(chunk);
        if head.len() < Container::SNIFFED {
            return Ok(Vec::new());
        }
        match Container::sniff(&head) {
            Some(_) => Ok(std::mem::take(&mut held)),
            None => Err(BodyStop::NotVideo),
        }
    });
    sniffed_to_the_end(checked, received)
}

/// The chunks, flattened; a body that ended before its head could be sniffed is refused
/// (empty, or too short to be a video).
fn sniffed_to_the_end<'a>(
    checked: impl futures::Stream<Item = Result<Vec<Bytes>, BodyStop>> + Send + 'a,
    received: &'a AtomicU64,
) -> impl futures::Stream<Item = Result<Bytes, BodyStop>> + Send + 'a {
    checked
        .chain(futures::stream::once(async move {
            match received.load(Ordering::Relaxed) {
                0 => Err(BodyStop::Empty),
                n if (n as usize) < Container::SNIFFED => Err(BodyStop::NotVideo),
                _ => Ok(Vec::new()),
            }
        }))
        .map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
        .try_flatten()
}

/// The host a response came from, for sentences.
fn url_host(url: &url::Url) -> String {
    audiomill_domain::address::host(url)
}

/// The refusal of a video over `limit`, with the length the server announced, if it did.
fn too_large(limit: u64, announced: Option<u64>) -> Stop {
    let announced = announced
        .map(|size| format!(" (the server announced {})", megabytes(size)))
        .unwrap_or_default();
    Stop::Refused(format!(
        "The video is larger than the {} you may import{announced}.",
        megabytes(limit)
    ))
}

fn not_video(media_type: Option<&str>) -> Stop {
    let sent = media_type
        .filter(|t| !t.is_empty())
        .map(|t| format!(" (the server sent {t})"))
        .unwrap_or_default();
    Stop::Refused(format!(
        "The link does not lead to a video: its content is not MP4, MOV, AVI, MKV or WebM{sent}."
    ))
}

/// A sentence for a request that got no answer, naming the server.
fn classify(server: &str, error: &reqwest::Error, idle: Duration) -> Stop {
    if is_certificate_problem(error) {
        return Stop::Refused(format!(
            "{server}'s TLS certificate could not be verified, so the video was not fetched."
        ));
    }
    Stop::Unreachable(request_failure(server, error, idle))
}

fn request_failure(server: &str, error: &reqwest::Error, idle: Duration) -> String {
    if error.is_timeout() {
        format!("{server} sent nothing for {} s.", idle.as_secs())
    } else if error.is_connect() {
        format!("{server} could not be reached.")
    } else {
        format!("The connection to {server} broke off.")
    }
}

/// Whether the error's causes name a certificate the TLS handshake refused.
fn is_certificate_problem(error: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("unknownissuer") {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Bytes as people read a limit: MB (of 1024 KiB, as `MAX_FILE_SIZE` counts them), with
/// one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering each path with a fixed head (and no body); its base URL.
    async fn server(routes: &'static [(&'static str, &'static str)]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let head = routes
                        .iter()
                        .find(|(route, _)| *route == path)
                        .map_or("HTTP/1.1 404 Not Found", |(_, head)| head);
                    let answer =
                        format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        base
    }

    /// A fetcher that may reach 127.0.0.1 and nothing else.
    fn fetcher() -> Fetcher {
        let only = IpAddr::from([127, 0, 0, 1]);
        Fetcher {
            permits: Arc::new(move |address| address == only),
            idle_timeout: Duration::from_secs(5),
        }
    }

    async fn stop_at(base: &str, path: &str) -> Stop {
        let url = ImportUrl::parse(&format!("{base}{path}")).unwrap();
        fetcher().follow(&url).await.expect_err("refused")
    }

    #[tokio::test]
    async fn every_redirect_is_checked_before_it_is_reached() {
        static ROUTES: &[(&str, &str)] = &[
            (
                "/elsewhere",
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/secret",
            ),
            (
                "/metadata",
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/latest/meta-data/",
            ),
            (
                "/file",
                "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd",
            ),
            ("/a", "HTTP/1.1 302 Found\r\nLocation: /b"),
            ("/b", "HTTP/1.1 302 Found\r\nLocation: /a"),
            ("/1", "HTTP/1.1 302 Found\r\nLocation: /2"),
            ("/2", "HTTP/1.1 302 Found\r\nLocation: /3"),
            ("/3", "HTTP/1.1 302 Found\r\nLocation: /4"),
            ("/4", "HTTP/1.1 302 Found\r\nLocation: /5"),
            ("/5", "HTTP/1.1 302 Found\r\nLocation: /6"),
            ("/6", "HTTP/1.1 302 Found\r\nLocation: /7"),
            ("/nowhere", "HTTP/1.1 302 Found"),
            ("/busy", "HTTP/1.1 503 Service Unavailable"),
            ("/secret", "HTTP/1.1 403 Forbidden"),
        ];
        let base = server(ROUTES).await;
        for path in ["/elsewhere", "/metadata"] {
            let Stop::Refused(why) = stop_at(&base, path).await else {
                panic!("{path} was not refused");
            };
            assert!(
                why.contains("does not resolve to a public address"),
                "{why}"
            );
        }

        let Stop::Refused(why) = stop_at(&base, "/file").await else {
            panic!()
        };
        assert!(why.contains("only http and https"), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/a").await else {
            panic!()
        };
        assert!(why.ends_with("redirects in a loop."), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/1").await else {
            panic!()
        };
        assert_eq!(why, "The link redirects more than 5 times.");
        let Stop::Refused(why) = stop_at(&base, "/nowhere").await else {
            panic!()
        };
        assert!(why.contains("without saying where to"), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/missing").await else {
            panic!()
        };
        assert_eq!(why, "127.0.0.1 has no video at this link (404 Not Found).");
        let Stop::Refused(why) = stop_at(&base, "/secret").await else {
            panic!()
        };
        assert!(why.contains("refused access"), "{why}");
        let Stop::Unreachable(why) = stop_at(&base, "/busy").await else {
            panic!()
        };
        assert!(why.contains("503"), "{why}");
    }

    #[tokio::test]
    async fn a_server_that_cannot_be_reached_is_tried_again() {
        let url = ImportUrl::parse("http://127.0.0.1:9/video.mp4").unwrap();
        let Err(Stop::Unreachable(why)) = fetcher().follow(&url).await else {
            panic!("not unreachable");
        };
        assert_eq!(why, "127.0.0.1 could not be reached.");
    }
}
