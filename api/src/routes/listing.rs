//! `GET /jobs`: the caller's jobs (an admin's: everyone's, or one user's), newest first, a page
//! at a time.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, rfc3339, store_down};
use super::jobs::JobState;
use crate::{
    error::{ErrorBody, ErrorCode},
    params::{ApiBatchId, ApiJobId},
    uploads::choices::FormatName,
};
use audiomill_domain::{EmailAddress, JobId, JobStatus, UserId};
use audiomill_store::{Job, JobFilter, PageAfter};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json, types::Example};

/// Jobs per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 20;

/// How many running jobs' states are asked of Temporal at once for one page.
const DESCRIBES_AT_ONCE: usize = 8;

/// `GET /jobs`.
pub struct ListingApi {
    pub(super) cx: Context,
}

/// Which jobs to list by where they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
enum StatusFilter {
    /// Queued or running.
    InProgress,
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One job, as listed.
#[derive(Object)]
struct JobSummary {
    job_id: ApiJobId,
    status: JobState,
    filename: String,
    /// The uploaded file's size.
    size_bytes: u64,
    created_at: String,
    /// What the job makes: `mp3`, `m4a`, `opus`, `flac` or `wav`. Always sent; a client reads
    /// its absence (a server without formats) as `mp3`.
    #[oai(skip_serializing_if_is_none)]
    format: Option<FormatName>,
    /// When the output was stored.
    #[oai(nullable)]
    completed_at: Option<String>,
    /// The output's size (of any format; the name is kept for clients).
    #[oai(nullable)]
    mp3_bytes: Option<u64>,
    /// The output's length.
    #[oai(nullable)]
    audio_seconds: Option<f64>,
    /// A failed job's failure type (`CorruptMedia`, ...); `/status/{job_id}` has its sentence.
    #[oai(nullable)]
    failure_type: Option<String>,
    /// The batch the job was uploaded in (`/batches/{batch_id}`); `null` for a single file.
    #[oai(nullable)]
    batch_id: Option<ApiBatchId>,
}

#[derive(Object)]
#[oai(example)]
struct JobPage {
    /// Newest first.
    jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; `null` on the last one. A cursor stays valid while
    /// new jobs arrive (they come before it). With `status=queued` or `running` a page may hold
    /// fewer than `limit` jobs before the last.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for JobPage {
    fn example() -> Self {
        JobPage {
            jobs: vec![JobSummary {
                job_id: ApiJobId::example(),
                status: JobState::Completed,
                filename: "talk.mp4".into(),
                size_bytes: 48_213_557,
                created_at: "2026-11-24T18:30:00.000Z".into(),
                format: Some(FormatName::Mp3),
                completed_at: Some("2026-11-24T18:30:41.250Z".into()),
                mp3_bytes: Some(5_771_049),
                audio_seconds: Some(1_442.6),
                failure_type: None,
                batch_id: None,
            }],
            next_cursor: Some(
                "MTc2NDAwOTAwMDAwMC4wMTlhOWYzYy01YjJlLTdjNDEtOWQ4ZS0yZjZhNGIxYzBkM2U".into(),
            ),
        }
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum ListResponse {
        /// A page of jobs.
        #[oai(status = 200)]
        Ok(Json<JobPage>),
        /// A parameter is invalid: `limit` outside 1-100, an unknown `status`, a cursor this
        /// service did not give, a malformed time or user.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        /// The credential lacks `jobs:read`, or asks for `user` without `admin`.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        /// The database is unavailable.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

// The framework's own sentence names the parameter that did not parse.

fn bad_request(message: &str) -> ListResponse {
    ListResponse::BadRequest(ErrorBody::new(ErrorCode::BadRequest, message))
}

#[OpenApi]
impl ListingApi {
    /// List jobs, newest first.
    ///
    /// The caller's own; an admin's list holds everyone's, or one user's with `user` (an id or
    /// an e-mail address). Page with `limit` (1-100) and the `next_cursor` of the page before.
    #[oai(
        path = "/jobs",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "listJobs"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        /// Jobs per page, 1-100 (20 when left out).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the page before.
        cursor: Query<Option<String>>,
        /// Only jobs that stand so; `in_progress` is queued or running.
        status: Query<Option<StatusFilter>>,
        /// Only jobs created at or after this time.
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only jobs created before this time.
        created_before: Query<Option<DateTime<Utc>>>,
        /// Admins only: whose jobs (a user id or an e-mail address).
        user: Query<Option<String>>,
    ) -> ListResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsRead).await);
        let after = match cursor.0.as_deref().map(decode_cursor) {
            Some(Some(after)) => Some(after),
            Some(None) => return bad_request("The cursor is not one this service gave."),
            None => None,
        };
        let owner = match (user.0, caller.admin) {
            (None, true) => None,
            (None, false) => Some(caller.user),
            (Some(_), false) => {
                return ListResponse::Forbidden(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "Only admins may list another user's jobs.",
                ));
            }
            (Some(user), true) => match self.user_named(&user).await {
                Ok(Some(id)) => Some(id),
                Ok(None) => return bad_request("There is no such user."),
                Err(refused) => return refused,
            },
        };
        let wanted = status.0;
        let filter = JobFilter {
            owner,
            outcome: wanted.map(|wanted| match wanted {
                StatusFilter::Completed => Some(JobStatus::Completed),
                StatusFilter::Failed => Some(JobStatus::Failed),
                StatusFilter::Cancelled => Some(JobStatus::Cancelled),
                _ => None,
            }),
            created_from: created_after.0.map(|t| t.timestamp_millis()),
            created_before: created_before.0.map(|t| t.timestamp_millis()),
        };
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        let gw = self.cx.gw();
        let (jobs, more) = match gw.db.list_jobs(&filter, after, limit).await {
            Ok(page) => page,
            Err(error) => return ListResponse::Unavailable(store_down(error)),
        };
        let next_cursor = more.then(|| jobs.last().map(encode_cursor)).flatten();
        let summaries = self.summaries(jobs).await;
        let jobs = summaries
            .into_iter()
            .filter(|summary| match wanted {
                Some(StatusFilter::Queued) => summary.status == JobState::Queued,
                Some(StatusFilter::Running) => summary.status == JobState::Running,
                _ => true,
            })
            .collect();
        ListResponse::Ok(Json(JobPage { jobs, next_cursor }))
    }
}

impl ListingApi {
    /// The user an admin named by id or e-mail address.
    async fn user_named(&self, user: &str) -> Result<Option<UserId>, ListResponse> {
        let db = &self.cx.gw().db;
        let found = if user.contains('@') {
            let Ok(email) = EmailAddress::parse(user) else {
                return Ok(None);
            };
            db.user_by_email(&email).await
        } else {
            let Ok(id) = UserId::try_from(user.to_owned()) else {
                return Ok(None);
            };
            db.user_by_id(id).await
        };
        found
            .map(|user| user.map(|user| user.id))
            .map_err(|error| ListResponse::Unavailable(store_down(error)))
    }

    /// Each job as listed: an ended job from its row, a running one as `/status` sees it.
    async fn summaries(&self, jobs: Vec<Job>) -> Vec<JobSummary> {
        let gw = self.cx.gw();
        futures::stream::iter(jobs)
            .map(|job| async move {
                let status = match job.outcome {
                    Some(outcome) => outcome,
                    None => gw.job_views.job_view(&gw.temporal, &job).await.status,
                };
                summary(job, status)
            })
            .buffered(DESCRIBES_AT_ONCE)
            .collect()
            .await
    }
}

fn summary(job: Job, status: JobStatus) -> JobSummary {
    JobSummary {
        job_id: job.id.into(),
        status: status.into(),
        filename: job.original_filename,
        size_bytes: job.source_size,
        created_at: rfc3339(job.created_at),
        format: Some(job.options.format.into()),
        completed_at: job.completed_at.map(rfc3339),
        mp3_bytes: job.mp3_size,
        audio_seconds: job.duration_ms.map(|ms| ms as f64 / 1000.0),
        failure_type: job.failure_type,
        batch_id: job.batch_id.map(ApiBatchId::from),
    }
}

/// The cursor after `job`: opaque to clients, its creation time and id to us.
fn encode_cursor(job: &Job) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", job.created_at, job.id))
}

fn decode_cursor(cursor: &str) -> Option<PageAfter> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (created_at, id) = text.split_once('.')?;
    Some(PageAfter {
        created_at: created_at.parse().ok()?,
        id: JobId::try_from(id.to_owned()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        let id = JobId::generate();
        let text = URL_SAFE_NO_PAD.encode(format!("1700000000000.{id}"));
        assert_eq!(
            decode_cursor(&text),
            Some(PageAfter {
                created_at: 1_700_000_000_000,
                id
            })
        );
        for bad in ["", "not base64!", &URL_SAFE_NO_PAD.encode("12.not-an-id")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
