//! `POST /imports`: jobs whose videos are fetched from links instead of sent.

use super::accepted::{UploadAccepted, accepted_body};
use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::error::{ErrorBody, ErrorCode};
use crate::metrics;
use crate::params::Text;
use crate::uploads::idempotency::{self, Claim};
use crate::uploads::import::{self, ImportAsked};
use crate::uploads::refusal::{UploadError, UploadRefusal};
use audiomill_store::KeyedUpload;
use poem_openapi::{Object, OpenApi, param::Header, payload::Json, types::Example};
use std::collections::BTreeMap;

pub struct ImportsApi {
    pub(super) cx: Context,
}

/// Videos to import: a link each, with the choices of the MP3s.
#[derive(Debug, Clone, Object)]
#[oai(example)]
struct ImportRequest {
    /// `http` or `https` links to the videos (MP4, MOV, AVI, MKV, WebM) or audio files (MP3,
    /// M4A, WAV, FLAC, Ogg), 1 to
    /// `MAX_FILES_PER_UPLOAD` (one with an `Idempotency-Key`); several make a batch, as several
    /// files of an upload do. A link may carry credentials (`https://user:password@...`, a
    /// presigned query): they are used for the fetch alone and never shown again. Each host
    /// must resolve to public addresses only (unless the operator allows private ones), and
    /// so must every redirect. Leave out (or empty) with `from`.
    #[oai(default)]
    urls: Vec<Text>,
    /// Objects of one of your connections' buckets instead of links (`POST /connections`):
    /// its id, and their keys under its prefix.
    #[oai(nullable)]
    from: Option<BucketObjects>,
    /// The MP3's choices, by the names and with the values of the upload form's fields
    /// (`preset`, `bitrate_mode`, `quality`, `bitrate`, `sample_rate`, `channels`, `start`,
    /// `end`, `normalize`, `normalize_true_peak`, `strip`, `cover`, `cover_at`,
    /// `tags[title]`, ...): strings, numbers or booleans. A bad one answers 400 naming it.
    #[oai(default)]
    options: BTreeMap<String, serde_json::Value>,
    /// A one-off webhook endpoint told when each of these jobs ends, as the upload form's
    /// `callback_url`.
    #[oai(nullable, validator(max_length = 2048))]
    callback_url: Option<Text>,
    /// Also write each MP3 to this connection's bucket (one of yours), at `export_key`
    /// under its prefix.
    #[oai(nullable)]
    export_to: Option<Text>,
    /// With `export_to`: the object key each MP3 gets, from `{stem}` (the video's name
    /// without its extension), `{job_id}` and `{date}`; default `{stem}.mp3`.
    #[oai(nullable)]
    export_key: Option<Text>,
    /// Also write the MP3 to this URL with one `PUT` (a presigned upload link); one link only.
    #[oai(nullable)]
    export_url: Option<Text>,
}

/// Objects of a connection's bucket.
#[derive(Debug, Clone, Object)]
struct BucketObjects {
    connection_id: Text,
    /// Keys under the connection's prefix, 1 to `MAX_FILES_PER_UPLOAD`.
    keys: Vec<Text>,
}

impl Example for ImportRequest {
    fn example() -> Self {
        Self {
            urls: vec![Text("https://media.example.com/talks/keynote.mp4".into())],
            options: BTreeMap::from([
                ("preset".to_owned(), serde_json::json!("podcast")),
                ("tags[title]".to_owned(), serde_json::json!("Keynote")),
            ]),
            callback_url: None,
            from: None,
            export_to: None,
            export_key: None,
            export_url: None,
        }
    }
}

api_response! {
    enum ImportResponse {
        /// Accepted; each video is fetched, then converted, in the background: `/status`
        /// shows the step `import_source` meanwhile, and a failed fetch's sentence.
        #[oai(status = 202)]
        Accepted(Json<UploadAccepted>),
        /// This `Idempotency-Key` already started a job for these same links and choices
        /// (within 24 hours): that job, and nothing started again.
        #[oai(status = 200)]
        Replayed(Json<UploadAccepted>),
        /// A link or a choice is not acceptable (`field` says which), or the body is not JSON.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// Another import with this `Idempotency-Key` is still being started.
        #[oai(status = 409)]
        KeyInUse(ErrorJson),
        /// The caller's storage quota is used up (with the quota's headers, in bytes).
        #[oai(status = 413)]
        TooLarge(
            ErrorJson,
            #[oai(header = "X-Quota-Storage-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Storage-Remaining")] Option<u64>,
        ),
        /// This `Idempotency-Key` already started a job for other links or choices.
        #[oai(status = 422)]
        KeyReused(ErrorJson),
        /// Over `IMPORTS_PER_MINUTE`, or the jobs-per-day quota is used up (then with the
        /// quota's headers, and `Retry-After` in seconds until the count starts again).
        #[oai(status = 429)]
        TooMany(
            ErrorJson,
            #[oai(header = "X-Quota-Jobs-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Jobs-Remaining")] Option<u64>,
            #[oai(header = "Retry-After")] Option<u64>,
        ),
        /// The database or the workflow service is down; nothing was started.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

#[OpenApi]
impl ImportsApi {
    /// Import videos from links.
    ///
    /// Starts a `ConvertVideo` job per link whose first step, `import_source`, fetches the
    /// video into storage: streamed, under the caller's size limit and storage quota, its
    /// first bytes checked to be a video container, each redirect checked like the link. A
    /// fetch that fails for good (404, too large, not a video, an address that may not be
    /// reached, redirects in a loop) fails the job with a sentence saying so; a server error
    /// or a timeout is tried again first. With an `Idempotency-Key`, sending the same import
    /// again answers 200 with the first job.
    #[oai(
        path = "/imports",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "importVideos"
    )]
    #[tracing::instrument(skip_all)]
    async fn import(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        /// Any string of 1 to 255 visible ASCII characters naming this import, so that sending
        /// it again cannot start a second job.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        body: Json<ImportRequest>,
        request: &poem::Request,
    ) -> ImportResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await);
        let gw = self.cx.gw();
        let options = match crate::params::option_texts(&body.0.options) {
            Ok(options) => options,
            Err(refusal) => return ImportResponse::BadRequest(refusal),
        };
        let body = body.0;
        let unpacked = Unpacked::of(&body);
        let asked = ImportAsked {
            urls: &unpacked.urls,
            from: unpacked
                .from
                .as_ref()
                .map(|(connection, keys)| (connection.as_str(), keys.as_slice())),
            options: &options,
            callback_url: body.callback_url.as_deref(),
            export: unpacked.export.clone(),
        };
        // Read from the raw headers: the typed parameter reads a value that is not visible
        // ASCII, or a second one, as no key at all.
        let Ok(key) = idempotency::key_of(request.headers()) else {
            return ImportResponse::BadRequest(ErrorBody::new(
                ErrorCode::BadRequest,
                "The Idempotency-Key header must be given once, as 1 to 255 visible ASCII \
                 characters.",
            ));
        };
        let links = asked.urls.len() + asked.from.map_or(0, |(_, keys)| keys.len());
        if key.is_some() && links > 1 {
            return refusal(UploadError::BadField(
                audiomill_domain::output::FieldError {
                    field: import::URLS_FIELD,
                    message: "has more than one link: an Idempotency-Key names one import".into(),
                },
            ));
        }
        let reservation = match idempotency::claim(&gw.db, caller.user, key).await {
            Ok(Claim::Unkeyed) => None,
            Ok(Claim::Reserved(reservation)) => Some(reservation),
            Ok(Claim::Used(earlier)) => return replay(earlier, &asked),
            Ok(Claim::InProgress) => {
                return ImportResponse::KeyInUse(ErrorBody::new(
                    ErrorCode::Conflict,
                    "Another import with this Idempotency-Key is still being started; try \
                     again in a moment.",
                ));
            }
            Err(error) => return ImportResponse::Unavailable(store_down(error)),
        };
        let received = match crate::uploads::allowance::allowance(gw, caller.user).await {
            Ok(allowance) => {
                let max_links = gw.limits.max_files;
                import::receive(gw, &caller, &asked, max_links, allowance).await
            }
            Err(error) => Err(error.into()),
        };
        self.answer(received, reservation).await
    }
}

impl ImportsApi {
    /// The answer to an import received (or refused), its key's reservation completed (or
    /// released).
    async fn answer(
        &self,
        received: Result<crate::uploads::intake::Received, UploadError>,
        reservation: Option<idempotency::Reservation>,
    ) -> ImportResponse {
        let gw = self.cx.gw();
        match received {
            Ok(received) => {
                for source in &received.sources {
                    let from = source
                        .import
                        .as_ref()
                        .map(audiomill_store::JobImport::shown);
                    tracing::info!(job_id = %source.job_id, from, "import accepted");
                }
                let (answer, keyed) = accepted_body(received);
                if let (Some(reservation), Some(keyed)) = (reservation, keyed) {
                    reservation.complete(&gw.db, &keyed).await;
                }
                ImportResponse::Accepted(Json(answer))
            }
            Err(error) => {
                if let Some(reservation) = reservation {
                    reservation.release(&gw.db).await;
                }
                refusal(error)
            }
        }
    }
}

/// The request's text, as owned strings: its links, or its bucket's connection and keys, and
/// where its MP3s go besides (a field left empty asks for nothing, as a form's blank one).
struct Unpacked {
    urls: Vec<String>,
    from: Option<(String, Vec<String>)>,
    export: crate::uploads::export::ExportAsked,
}

impl Unpacked {
    fn of(body: &ImportRequest) -> Self {
        let texts = |list: &[Text]| list.iter().map(|text| text.0.clone()).collect::<Vec<_>>();
        let text = |field: &Option<Text>| {
            let text = field.as_ref()?.0.trim();
            (!text.is_empty()).then(|| text.to_owned())
        };
        Self {
            urls: texts(&body.urls),
            from: body
                .from
                .as_ref()
                .map(|from| (from.connection_id.0.clone(), texts(&from.keys))),
            export: crate::uploads::export::ExportAsked {
                to: text(&body.export_to),
                key: text(&body.export_key),
                url: text(&body.export_url),
            },
        }
    }
}

/// The answer to an import whose `Idempotency-Key` already started `earlier`: that job if the
/// links and choices are the same, else 422.
fn replay(earlier: KeyedUpload, asked: &ImportAsked<'_>) -> ImportResponse {
    if import::fingerprint(asked) == earlier.fingerprint {
        metrics::upload_replayed();
        return ImportResponse::Replayed(Json(UploadAccepted::replayed(earlier)));
    }
    ImportResponse::KeyReused(ErrorBody::new(
        ErrorCode::UnprocessableContent,
        format!(
            "This Idempotency-Key already started job {} for other links or choices; use a new \
             key for a new import.",
            earlier.job_id
        ),
    ))
}

fn refusal(error: UploadError) -> ImportResponse {
    match UploadRefusal::from(error) {
        UploadRefusal::BadRequest(body) | UploadRefusal::UnsupportedMedia(body) => {
            ImportResponse::BadRequest(body)
        }
        UploadRefusal::Unauthorized(body) => ImportResponse::Unauthorized(body),
        UploadRefusal::TooLarge(body, limit, left) => ImportResponse::TooLarge(body, limit, left),
        UploadRefusal::TooMany(body, limit, left, after) => {
            ImportResponse::TooMany(body, limit, left, after)
        }
        UploadRefusal::Unavailable(body) => ImportResponse::Unavailable(body),
        // Nothing of an import is received.
        UploadRefusal::TooSlow => ImportResponse::BadRequest(ErrorBody::new(
            ErrorCode::BadRequest,
            "The import could not be read.",
        )),
    }
}
