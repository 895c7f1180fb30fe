//! `/stats/uploads`: statistics of the caller's jobs, or of everyone's for an admin.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, store_down};
use crate::error::{ErrorBody, ErrorCode};
use crate::scopes::Scope;
use audiomill_store::{StatsScope, UploadStats};

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json};

/// How many days `per_day` covers, ending today.
const DAYS: u32 = 30;

/// `/stats/uploads`.
pub struct StatsApi {
    pub(super) cx: Context,
}

/// Whose uploads the statistics cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[oai(rename = "StatsScope", rename_all = "lowercase")]
enum Coverage {
    /// The caller's own.
    #[default]
    Mine,
    /// Everyone's; admins only.
    All,
}

/// Uploads by where their jobs stand.
#[derive(Object)]
struct StatusCounts {
    /// Queued or running.
    in_progress: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

/// Sizes of the uploaded files, in bytes; `null` without uploads.
#[derive(Object)]
struct FileSizes {
    #[oai(nullable)]
    mean_bytes: Option<f64>,
    #[oai(nullable)]
    p50_bytes: Option<u64>,
    #[oai(nullable)]
    p95_bytes: Option<u64>,
}

/// Time from upload to MP3 stored, over completed jobs; `null` without any.
#[derive(Object)]
struct ConversionTimes {
    /// Completed jobs measured.
    jobs: u64,
    #[oai(nullable)]
    mean_seconds: Option<f64>,
    #[oai(nullable)]
    p95_seconds: Option<f64>,
}

/// Uploads begun on one UTC day.
#[derive(Object)]
struct DayUploads {
    /// `YYYY-MM-DD`.
    date: String,
    uploads: u64,
}

#[derive(Object)]
struct UploadStatistics {
    scope: Coverage,
    generated_at: String,
    /// Every upload in the scope, ever.
    uploads: u64,
    by_status: StatusCounts,
    /// The uploaded files' sizes added up.
    bytes_uploaded: u64,
    file_size: FileSizes,
    conversion: ConversionTimes,
    /// The last 30 days, oldest first, ending with today; days without uploads count 0.
    per_day: Vec<DayUploads>,
}

api_response! {
    #[oai(bad_request_handler = "scope_refused")]
    enum StatsResponse {
        /// The statistics.
        #[oai(status = 200)]
        Ok(Json<UploadStatistics>),
        /// `scope` is neither `mine` nor `all`.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        /// The credential lacks `jobs:read`, or asks for `scope=all` without `admin`.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        /// The database is unavailable.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

/// The 400 of `/stats/uploads`: the only parameter it parses is `scope`.
fn scope_refused(error: poem::Error) -> StatsResponse {
    super::context::parameter_refusal(error, "The scope is invalid: use `mine` or `all`.")
}

#[OpenApi]
impl StatsApi {
    /// Upload statistics.
    ///
    /// Uploads by status, bytes, file sizes, conversion times and uploads per day: the
    /// caller's own by default; `scope=all` covers everyone's and is for admins.
    #[oai(
        path = "/stats/uploads",
        method = "get",
        tag = "ApiTags::Operations",
        operation_id = "getUploadStats"
    )]
    async fn uploads(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        scope: Query<Option<Coverage>>,
    ) -> StatsResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsRead).await);
        let scope = scope.0.unwrap_or_default();
        let of = match scope {
            Coverage::All if caller.admin => StatsScope::Everyone,
            Coverage::All => {
                return StatsResponse::Forbidden(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "Only admins may see everyone's statistics.",
                ));
            }
            Coverage::Mine => StatsScope::User(caller.user),
        };
        let now = Utc::now();
        match self
            .cx
            .gw()
            .db
            .upload_stats(of, now.timestamp_millis(), DAYS)
            .await
        {
            Ok(stats) => StatsResponse::Ok(Json(statistics(scope, now, stats))),
            Err(error) => StatsResponse::Unavailable(store_down(error)),
        }
    }
}

fn statistics(scope: Coverage, now: DateTime<Utc>, stats: UploadStats) -> UploadStatistics {
    let seconds = |ms: f64| ms / 1000.0;
    UploadStatistics {
        scope,
        generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        uploads: stats.uploads,
        by_status: StatusCounts {
            in_progress: stats.by_outcome.in_progress,
            completed: stats.by_outcome.completed,
            failed: stats.by_outcome.failed,
            cancelled: stats.by_outcome.cancelled,
        },
        bytes_uploaded: stats.bytes_uploaded,
        file_size: FileSizes {
            mean_bytes: stats.size_mean,
            p50_bytes: stats.size_p50,
            p95_bytes: stats.size_p95,
        },
        conversion: ConversionTimes {
            jobs: stats.conversions,
            mean_seconds: stats.conversion_mean_ms.map(seconds),
            p95_seconds: stats.conversion_p95_ms.map(|ms| seconds(ms as f64)),
        },
        per_day: stats
            .per_day
            .into_iter()
            .map(|day| DayUploads {
                date: DateTime::<Utc>::from_timestamp_millis(day.day_start)
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
                    .to_string(),
                uploads: day.uploads,
            })
            .collect(),
    }
}
