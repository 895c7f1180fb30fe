//! Downloading a finished MP3, whole or by byte range, with a token or a signed link; and
//! issuing signed links.
//!
//! A signed link (`/download/{job_id}?signature=...`, see [`audiomill_domain::link`]) opens one
//! job's MP3 without logging in, so that it works when clicked in an e-mail. With S3 and
//! `DOWNLOAD_REDIRECT`, an authorised download is answered with a redirect to a short-lived
//! presigned URL of the object, and the bucket serves the bytes (ranges included).

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, rfc3339, store_down};
use crate::params::ApiJobId;
use crate::{
    error::{ErrorBody, ErrorCode},
    uploads::file,
};
use audiomill_domain::{
    JobId,
    link::{LinkRefusal, SignedLink, unix_now},
};
use audiomill_store::{Job, time::now_millis};
use poem::Body;
use poem_openapi::{
    Object, OpenApi, SecurityScheme,
    auth::ApiKey,
    param::{Header, Path, Query},
    payload::Json,
    types::Example,
};

/// `/download/{job_id}`, `/download?fid=` and `/jobs/{job_id}/link`.
pub struct DownloadsApi {
    pub(super) cx: Context,
}

/// A signed link's `signature` parameter, as `GET /jobs/{job_id}/link` and the e-mail hand
/// it out: it opens that job's MP3 until it expires, with no other credentials.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "signature", key_in = "query")]
struct LinkSignature(ApiKey);

/// Who may download: the owner or an admin with an access token, or anyone with a signed link.
#[derive(SecurityScheme)]
enum DownloadAuth {
    Bearer(BearerAuth),
    Link(LinkSignature),
}

/// A signed download link.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub(super) struct DownloadLink {
    /// Opens the MP3 with no other credentials (`GET`, ranges supported) until `expires_at`.
    url: String,
    /// RFC 3339, UTC.
    expires_at: String,
}

impl From<SignedLink> for DownloadLink {
    fn from(link: SignedLink) -> Self {
        Self {
            url: link.url,
            expires_at: rfc3339(link.expires_at.saturating_mul(1000)),
        }
    }
}

impl Example for DownloadLink {
    fn example() -> Self {
        Self {
            url: format!(
                "https://audiomill.example.com/download/{}?signature=1795531500.hQ3...",
                ApiJobId::example().0
            ),
            expires_at: "2026-11-24T14:45:00Z".into(),
        }
    }
}

/// A job's audio, streamed, with its format's `Content-Type` (`audio/mpeg`, `audio/mp4`,
/// `audio/ogg`, `audio/flac` or `audio/wav`).
struct Audio(Body, &'static str);

impl poem_openapi::payload::Payload for Audio {
    const CONTENT_TYPE: &'static str = "audio/*";

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        <poem_openapi::payload::Binary<Vec<u8>> as poem_openapi::payload::Payload>::schema_ref()
    }
}

impl poem::IntoResponse for Audio {
    fn into_response(self) -> poem::Response {
        poem::Response::builder().content_type(self.1).body(self.0)
    }
}

api_response! {
    #[oai(bad_request_handler = "DownloadResponse::framework_refusal")]
    enum DownloadResponse {
        /// The whole MP3.
        #[oai(status = 200)]
        Ok(
            Audio,
            #[oai(header = "Content-Disposition")] String,
            #[oai(header = "Accept-Ranges")] String,
            #[oai(header = "Content-Length")] u64,
        ),
        /// `DOWNLOAD_REDIRECT` with S3: the MP3 is at `Location`, a presigned URL that works for
        /// `DOWNLOAD_REDIRECT_SECONDS` and answers with the same headers (send the `Range` there).
        #[oai(status = 302)]
        Redirect(
            #[oai(header = "Location")] String,
            #[oai(header = "Cache-Control")] String,
        ),
        /// The requested byte range.
        #[oai(status = 206)]
        Partial(
            Audio,
            #[oai(header = "Content-Disposition")] String,
            #[oai(header = "Content-Range")] String,
            #[oai(header = "Content-Length")] u64,
        ),
        /// The job id (`fid`) is missing or malformed.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        /// Neither a valid access token nor a signed link.
        #[oai(status = 401)]
        Unauthorized(ErrorJson),
        /// The signed link is not valid (changed, cut short, or made for another job), or its
        /// owner's account is disabled; or the credential lacks `jobs:read`.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        @job_not_found,
        @mp3_not_ready,
        /// The signed link has expired, or its job has been deleted since it was made, or the job
        /// has expired (`RETENTION_HOURS` after it ended) and its MP3 is removed.
        #[oai(status = 410)]
        Gone(ErrorJson),
        /// The range is outside the file.
        #[oai(status = 416)]
        RangeNotSatisfiable(ErrorJson, #[oai(header = "Content-Range")] String),
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::job_id_refusal")]
    enum LinkResponse {
        /// A fresh link to the MP3.
        #[oai(status = 200)]
        Ok(Json<DownloadLink>),
        @bad_job_id,
        @unauthorized,
        @forbidden,
        @job_not_found,
        @mp3_not_ready,
        /// The job has expired and its MP3 is removed.
        #[oai(status = 410)]
        Gone(ErrorJson),
        @unavailable,
    }
}

impl DownloadResponse {
    /// As [`super::context::job_id_refusal`], with a 401 that names both ways in.
    fn framework_refusal(error: poem::Error) -> Self {
        if error.status() == poem::http::StatusCode::UNAUTHORIZED {
            Self::Unauthorized(ErrorBody::new(
                ErrorCode::Unauthorized,
                "A valid access token or a signed download link is required.",
            ))
        } else {
            super::context::job_id_refusal(error)
        }
    }
}

/// The answer for a job past its retention.
fn expired(job: &Job) -> ErrorJson {
    let when = job
        .expires_at
        .map(|at| format!(" on {}", rfc3339(at)))
        .unwrap_or_default();
    ErrorBody::new(
        ErrorCode::Gone,
        format!("This job expired{when}: its MP3 has been removed, as the retention policy says."),
    )
}

fn not_ready() -> ErrorJson {
    ErrorBody::new(
        ErrorCode::NotReady,
        "The MP3 is not ready yet; check /status.",
    )
}

#[OpenApi]
impl DownloadsApi {
    /// Download a finished MP3.
    ///
    /// With an access token (the owner or an admin), or with no credentials through a signed
    /// link (`?signature=`, from `GET /jobs/{job_id}/link`, `/status` or the e-mail). Supports
    /// `Range: bytes=...`. A browser (`Accept: text/html`) is answered errors as a page.
    #[oai(
        path = "/download/:job_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "downloadMp3"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn download(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: DownloadAuth,
        job_id: Path<ApiJobId>,
        range: Header<Option<String>>,
    ) -> DownloadResponse {
        self.serve_download(&auth, job_id.0.0, range.0.as_deref())
            .await
    }

    /// Download a finished MP3 by `fid` (the job id).
    ///
    /// The older form of `/download/{job_id}`.
    #[oai(
        path = "/download",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "downloadMp3ByFid"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %fid.0))]
    async fn download_by_fid(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: DownloadAuth,
        fid: Query<ApiJobId>,
        range: Header<Option<String>>,
    ) -> DownloadResponse {
        self.serve_download(&auth, fid.0.0, range.0.as_deref())
            .await
    }

    /// A fresh signed link to a finished MP3.
    ///
    /// The link opens the MP3 with no other credentials until `expires_at`
    /// (`DOWNLOAD_LINK_HOURS` from now), or until the job is deleted. Share it with care.
    #[oai(
        path = "/jobs/:job_id/link",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "getDownloadLink"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn link(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        job_id: Path<ApiJobId>,
    ) -> LinkResponse {
        let (_, job) = or_refuse!(self.cx.caller_job(&auth, Scope::JobsRead, job_id.0.0).await);
        if job.is_expired(now_millis()) {
            return LinkResponse::Gone(expired(&job));
        }
        if job.finished_mp3().is_none() {
            return LinkResponse::NotReady(not_ready());
        }
        LinkResponse::Ok(Json(self.cx.gw().links.issue(job.id).into()))
    }
}

/// A link to a completed job's MP3, for its `/status`; none once it expired.
pub(super) fn link_for(cx: &Context, job: &Job) -> Option<DownloadLink> {
    if job.is_expired(now_millis()) {
        return None;
    }
    job.finished_mp3()
        .map(|_| cx.gw().links.issue(job.id).into())
}

impl DownloadsApi {
    /// The job `id`, if the bearer may see it or the signed link is its.
    async fn job_of(&self, auth: &DownloadAuth, id: JobId) -> Result<Job, DownloadResponse> {
        match auth {
            DownloadAuth::Bearer(bearer) => self
                .cx
                .caller_job(bearer, Scope::JobsRead, id)
                .await
                .map(|(_, job)| job)
                .map_err(super::context::Refusal::answer),
            DownloadAuth::Link(LinkSignature(signature)) => {
                self.linked_job(id, &signature.key).await
            }
        }
    }

    async fn serve_download(
        &self,
        auth: &DownloadAuth,
        id: JobId,
        range: Option<&str>,
    ) -> DownloadResponse {
        let job = match self.job_of(auth, id).await {
            Ok(job) => job,
            Err(refused) => return refused,
        };
        if job.is_expired(now_millis()) {
            return DownloadResponse::Gone(expired(&job));
        }
        let Some(key) = job.finished_mp3().cloned() else {
            return DownloadResponse::NotReady(not_ready());
        };
        let objects = &self.cx.gw().objects;
        let size = match objects.size(&key).await {
            Ok(Some(size)) => size,
            Ok(None) => {
                return DownloadResponse::NotFound(ErrorBody::new(
                    ErrorCode::NotFound,
                    "The MP3 has been deleted.",
                ));
            }
            Err(error) => return DownloadResponse::Unavailable(store_down(error)),
        };
        let format = job.options.format;
        let disposition = file::content_disposition(&job.original_filename, format);
        if let Some(lifetime) = self.cx.gw().download_redirect {
            match objects
                .presigned_get(&key, format.content_type(), &disposition, lifetime)
                .await
            {
                Ok(Some(url)) => {
                    crate::metrics::download_redirected();
                    // The URL expires: a cache must not hand it out later.
                    return DownloadResponse::Redirect(url, "no-store".into());
                }
                Ok(None) => {} // Files: only the gateway can serve them.
                Err(error) => return DownloadResponse::Unavailable(store_down(error)),
            }
        }
        let range = match range.map(|r| parse_range(r, size)) {
            None => None,
            Some(Ok(range)) => range,
            Some(Err(())) => {
                return DownloadResponse::RangeNotSatisfiable(
                    ErrorBody::new(
                        ErrorCode::RangeNotSatisfiable,
                        format!("The requested range is outside the file ({size} bytes)."),
                    ),
                    format!("bytes */{size}"),
                );
            }
        };
        let span = range.clone().unwrap_or(0..size);
        let body = match objects.read_range(&key, span.clone()).await {
            Ok(stream) => Body::from_bytes_stream(stream),
            Err(error) => return DownloadResponse::Unavailable(store_down(error)),
        };
        let length = span.end - span.start;
        crate::metrics::downloaded(length);
        match range {
            Some(r) => DownloadResponse::Partial(
                Audio(body, format.content_type()),
                disposition,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
                length,
            ),
            None => DownloadResponse::Ok(
                Audio(body, format.content_type()),
                disposition,
                "bytes".into(),
                length,
            ),
        }
    }
}

impl DownloadsApi {
    /// The job a signed link opens: checked without the database first (a forged or expired
    /// link costs no query), then the job must still exist and its owner be enabled.
    async fn linked_job(&self, id: JobId, signature: &str) -> Result<Job, DownloadResponse> {
        let gw = self.cx.gw();
        match gw.links.check(id, signature, unix_now()) {
            Ok(()) => {}
            Err(LinkRefusal::Forged) => {
                return Err(DownloadResponse::Forbidden(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "This download link is not valid: it was changed or cut short. \
                     Copy the whole link, or ask for a new one.",
                )));
            }
            Err(LinkRefusal::Expired) => {
                return Err(DownloadResponse::Gone(ErrorBody::new(
                    ErrorCode::Gone,
                    "This download link has expired; sign in to Audiomill for a new one.",
                )));
            }
        }
        let job = gw
            .db
            .job(id)
            .await
            .map_err(|error| DownloadResponse::Unavailable(store_down(error)))?
            .ok_or_else(|| {
                DownloadResponse::Gone(ErrorBody::new(
                    ErrorCode::Gone,
                    "This job has been deleted, and its MP3 with it.",
                ))
            })?;
        let owner_enabled = gw
            .db
            .user_by_id(job.user_id)
            .await
            .map_err(|error| DownloadResponse::Unavailable(store_down(error)))?
            .is_some_and(|owner| owner.active);
        if !owner_enabled {
            return Err(DownloadResponse::Forbidden(ErrorBody::new(
                ErrorCode::Forbidden,
                "The account this link belongs to is disabled.",
            )));
        }
        Ok(job)
    }
}

/// The one `bytes=` range to send of a file of `size`, as RFC 9110 says: `Ok(None)` means
/// ignore the header and send the whole file (a malformed range, another unit, or several
/// ranges, which this server does not combine); `Err` means a well-formed range that misses
/// the file (416).
fn parse_range(header: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    use http_range_header::RangeUnsatisfiableError;
    let Ok(parsed) = http_range_header::parse_range_header(header.trim()) else {
        return Ok(None);
    };
    match parsed.validate(size).as_deref() {
        Ok([one]) => Ok(Some(*one.start()..one.end() + 1)),
        Ok(_) => Ok(None),
        Err(RangeUnsatisfiableError::Unsatisfiable) => Err(()),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_parsed_against_the_size() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Ok(None), "invalid: ignored");
        assert_eq!(parse_range("bytes=abc", 1000), Ok(None), "invalid: ignored");
        assert_eq!(parse_range("bytes=1-x", 1000), Ok(None), "invalid: ignored");
        assert_eq!(parse_range("bytes=-", 1000), Ok(None), "invalid: ignored");
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some(0..1000)));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 1000),
            Ok(Some(0..1000))
        );
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
    }
}
