//! `POST /upload-tokens`: a short-lived credential that may only upload, for a browser or a
//! device that must never see a key: a few uploads at most, each file up to a size, the output
//! choices fixed, for minutes. It ends with the login or key that made it.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, rfc3339, store_down};
use crate::params::Text;
use crate::{auth, error::ErrorBody};
use audiomill_domain::output::OutputRequest;
use audiomill_store::{UploadToken, time::now_millis};
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};
use std::collections::BTreeMap;

/// `/upload-tokens`.
pub struct UploadTokensApi {
    pub(super) cx: Context,
}

/// What the token allows.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
struct NewUploadToken {
    /// How long it works, 1 to 1440 minutes (default 15).
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "1440")))]
    expires_in_minutes: Option<u32>,
    /// How many uploads it allows, 1 to 100 (default 1). A form upload (of one file or a
    /// batch) or a tus creation is one.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100")))]
    uploads: Option<u32>,
    /// The largest file, in MB (at most `MAX_FILE_SIZE`); none: `MAX_FILE_SIZE`.
    #[oai(nullable, validator(minimum(value = "1")))]
    max_file_mb: Option<u64>,
    /// The output choices every upload with it gets, named as the upload's fields
    /// (`{"preset": "voice"}`); an upload that sends choices of its own is refused. None: the
    /// uploader chooses.
    #[oai(nullable)]
    options: Option<BTreeMap<String, Text>>,
}

impl Example for NewUploadToken {
    fn example() -> Self {
        NewUploadToken {
            expires_in_minutes: Some(10),
            uploads: Some(1),
            max_file_mb: Some(200),
            options: Some(BTreeMap::from([("preset".to_owned(), Text::from("voice"))])),
        }
    }
}

/// A token just made: shown this once.
#[derive(Object)]
struct CreatedUploadToken {
    /// Send it as `Authorization: Bearer <token>` to `POST /upload` or the tus operations. It
    /// matches `amu_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}`.
    token: String,
    expires_at: String,
    uploads: u32,
    max_file_mb: u64,
    #[oai(nullable)]
    options: Option<BTreeMap<String, String>>,
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum CreateResponse {
        /// Made; the token is in this answer only.
        #[oai(status = 201)]
        Created(Json<CreatedUploadToken>),
        /// A number is out of range, or an output choice is not acceptable (`field` names it).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

#[OpenApi]
impl UploadTokensApi {
    /// Make an upload token: a credential that may only upload, briefly.
    #[oai(
        path = "/upload-tokens",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "createUploadToken"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        body: Json<NewUploadToken>,
    ) -> CreateResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await);
        let NewUploadToken {
            expires_in_minutes,
            uploads,
            max_file_mb,
            options,
        } = body.0;
        let gw = self.cx.gw();
        let service_mb = gw.limits.max_bytes / (1024 * 1024);
        let max_file_mb = max_file_mb.unwrap_or(service_mb);
        if max_file_mb > service_mb {
            return CreateResponse::BadRequest(ErrorBody::for_field(
                "max_file_mb",
                format!("`max_file_mb` may be at most {service_mb} (`MAX_FILE_SIZE`)."),
            ));
        }
        let fixed = match options.as_ref().map(checked_options).transpose() {
            Ok(fixed) => fixed,
            Err(refusal) => return CreateResponse::BadRequest(refusal),
        };
        let uploads = uploads.unwrap_or(1);
        let expires_at = now_millis() + i64::from(expires_in_minutes.unwrap_or(15)) * 60 * 1000;
        let made = auth::new_upload_token();
        let token = UploadToken {
            prefix: made.id,
            secret_hash: made.hash,
            user_id: caller.user,
            session_id: caller.session.clone(),
            expires_at,
            uploads_left: u64::from(uploads),
            max_bytes: Some(max_file_mb * 1024 * 1024),
            options: fixed,
        };
        if let Err(error) = gw.db.create_upload_token(&token).await {
            return CreateResponse::Unavailable(store_down(error));
        }
        tracing::info!(token_id = %token.prefix, uploads, "upload token made");
        CreateResponse::Created(Json(CreatedUploadToken {
            token: made.key,
            expires_at: rfc3339(expires_at),
            uploads,
            max_file_mb,
            options: options.map(|fields| {
                fields
                    .into_iter()
                    .map(|(name, value)| (name, value.0))
                    .collect()
            }),
        }))
    }
}

/// The output options `fields` name, checked as an upload's fields are.
fn checked_options(
    fields: &BTreeMap<String, Text>,
) -> Result<audiomill_domain::output::OutputOptions, ErrorJson> {
    let refused = |error: audiomill_domain::output::FieldError| {
        ErrorBody::for_field(error.field, format!("{error}."))
    };
    let mut request = OutputRequest::default();
    for (name, value) in fields {
        request.add(name, value).map_err(refused)?;
    }
    request.resolve().map_err(refused)
}
