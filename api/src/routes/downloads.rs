//! Downloading a finished MP3, whole or by byte range.

use super::{ApiTags, BearerAuth, Context, ErrorJson, unavailable};
use crate::params::ApiJobId;
use crate::{
    error::{ErrorBody, ErrorCode},
    upload,
};
use audiomill_domain::JobId;
use poem::Body;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Header, Path, Query},
    payload::Payload,
    registry::MetaSchemaRef,
};

/// `/download/{job_id}` and `/download?fid=`.
pub struct DownloadsApi {
    pub(super) cx: Context,
}

/// An MP3 body, streamed.
struct Mp3(Body);

impl Payload for Mp3 {
    const CONTENT_TYPE: &'static str = "audio/mpeg";

    fn schema_ref() -> MetaSchemaRef {
        <poem_openapi::payload::Binary<Vec<u8>> as Payload>::schema_ref()
    }
}

impl poem::IntoResponse for Mp3 {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "DownloadResponse::framework_refusal")]
enum DownloadResponse {
    /// The whole MP3.
    #[oai(status = 200)]
    Ok(
        Mp3,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        Mp3,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The job id (`fid`) is missing or malformed.
    #[oai(status = 400)]
    BadRequest(ErrorJson),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// No such job (or not yours).
    #[oai(status = 404)]
    NotFound(ErrorJson),
    /// The MP3 is not ready yet.
    #[oai(status = 409)]
    NotReady(ErrorJson),
    /// The range is outside the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(ErrorJson, #[oai(header = "Content-Range")] String),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

refusal_into!(DownloadResponse);
framework_refusal!(super::job_id_refused; DownloadResponse);

#[OpenApi]
impl DownloadsApi {
    /// Download a finished MP3.
    ///
    /// Supports `Range: bytes=...`.
    #[oai(
        path = "/download/:job_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "downloadMp3"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn download(
        &self,
        auth: BearerAuth,
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
        auth: BearerAuth,
        fid: Query<ApiJobId>,
        range: Header<Option<String>>,
    ) -> DownloadResponse {
        self.serve_download(&auth, fid.0.0, range.0.as_deref())
            .await
    }
}

impl DownloadsApi {
    async fn serve_download(
        &self,
        auth: &BearerAuth,
        id: JobId,
        range: Option<&str>,
    ) -> DownloadResponse {
        let (_, job) = match self.cx.caller_job(auth, id).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let (Some(key), Some(_)) = (job.mp3_key.clone(), job.completed_at) else {
            return DownloadResponse::NotReady(ErrorBody::new(
                ErrorCode::NotReady,
                "The MP3 is not ready yet; check /status.",
            ));
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
            Err(error) => return DownloadResponse::Unavailable(unavailable("storage", error)),
        };
        let disposition = upload::content_disposition(&job.original_filename);
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
            Err(error) => return DownloadResponse::Unavailable(unavailable("storage", error)),
        };
        let length = span.end - span.start;
        crate::metrics::downloaded(length);
        match range {
            Some(r) => DownloadResponse::Partial(
                Mp3(body),
                disposition,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
                length,
            ),
            None => DownloadResponse::Ok(Mp3(body), disposition, "bytes".into(), length),
        }
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
