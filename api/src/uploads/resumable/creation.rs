//! Creating an upload: its headers read and checked, its row recorded within the caller's
//! limits, and a first chunk taken; a creation refused on the way leaves nothing behind.

use super::appending::{remove, take_first_chunk};
use super::request::{Standing, TusRefusal, TusRequest};
use crate::auth::Caller;
use crate::error::ErrorJson;
use crate::uploads::grant;
use crate::uploads::refusal::UploadError;
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    metrics,
    uploads::tus::{self, BadHeader},
};
use audiomill_domain::{BatchId, JobId, ObjectKey, UploadId, UserId};
use audiomill_store::{
    Creation, CreationLimits, CreationRefusal, NewResumable, PendingObject, Resumable,
    time::now_millis,
};
use poem::http::HeaderMap;
use std::sync::Arc;

/// Why a creation was refused: as any tus request may be, or because its `Idempotency-Key`
/// already created an upload of another file.
pub(crate) enum CreateRefusal {
    Refused(TusRefusal),
    KeyReused(ErrorJson),
}

impl<T: Into<TusRefusal>> From<T> for CreateRefusal {
    fn from(refusal: T) -> Self {
        Self::Refused(refusal.into())
    }
}

/// A creation under way, moved off its request.
pub(crate) struct Creating {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) caller: Caller,
}

impl Creating {
    /// Records the upload and appends its body. A refused body removes the upload (its
    /// client has no `Location` for it); one that stopped coming keeps what arrived when the
    /// answer can name it, or when an `Idempotency-Key` lets its client find it again.
    pub(crate) async fn run(
        self,
        request: TusRequest,
    ) -> Result<(UploadId, Standing), CreateRefusal> {
        let gw = &*self.gw;
        let mut asked = match Asked::read(gw, &request).await {
            Ok(asked) => asked,
            Err(refusal) => {
                metrics::upload_refused("form");
                return Err(refusal.into());
            }
        };
        let asked_options = std::mem::take(&mut asked.choices.options);
        asked.choices.options =
            grant::choices_for(&self.caller, asked_options).map_err(TusRefusal::from)?;
        if let Some(key) = &asked.key
            && let Some(earlier) = gw.db.resumable_by_key(self.caller.user, key).await?
        {
            return asked.again(earlier);
        }
        let quota = crate::uploads::allowance::allowance(gw, self.caller.user)
            .await?
            .quota;
        let limit = grant::limits_for(&self.caller, &gw.limits).max_bytes;
        if asked.length > limit {
            return Err(TusRefusal::from(UploadError::TooLarge {
                limit_mb: limit / (1024 * 1024),
            })
            .into());
        }
        let export = crate::uploads::export::resolve(gw, &self.caller, &asked.choices.export, 1)
            .await
            .map_err(TusRefusal::from)?;
        grant::spend(gw, &self.caller)
            .await
            .map_err(TusRefusal::from)?;
        let placed = Placed {
            quota,
            client_addr: request.address.clone(),
            export,
        };
        let upload = match record(gw, self.caller.user, &asked, placed).await? {
            Recorded::New(upload) => upload,
            Recorded::Earlier(earlier) => return asked.again(*earlier),
        };
        let id = upload.upload.id;
        if let Some(grant) = &self.caller.upload {
            gw.db.note_token_upload(&grant.id, &id.to_string()).await?;
        }
        tracing::Span::current().record("upload_id", tracing::field::display(id));
        if !request.has_bytes() {
            return Ok((id, Standing::of(&upload)));
        }
        match take_first_chunk(self.gw.clone(), self.caller.clone(), id, request).await {
            Ok(standing) => Ok((id, standing)),
            Err(TusRefusal::TooSlow(error, offset, _)) => {
                Err(TusRefusal::TooSlow(error, offset, Some(id)).into())
            }
            Err(TusRefusal::Cut(error, offset)) if asked.key.is_some() => {
                Err(TusRefusal::TooSlow(error, offset, Some(id)).into())
            }
            Err(refusal) => {
                if let Ok(Some(left)) = gw.db.resumable(id).await
                    && left.started_at.is_none()
                {
                    let _ = remove(gw, &left).await;
                }
                Err(refusal.into())
            }
        }
    }
}

/// What a new upload is recorded with besides what its request asked.
pub(crate) struct Placed {
    pub(crate) quota: audiomill_domain::lifecycle::Quota,
    pub(crate) client_addr: Option<String>,
    /// Where its MP3 goes besides Audiomill's storage, checked.
    pub(crate) export: Option<audiomill_store::NewExport>,
}

/// Records the new upload and starts its object; `Earlier` when its key won a race.
pub(crate) async fn record(
    gw: &Gateway,
    user_id: UserId,
    asked: &Asked,
    placed: Placed,
) -> Result<Recorded, TusRefusal> {
    let Placed {
        quota,
        client_addr,
        export,
    } = placed;
    let down = TusRefusal::from;
    let job_id = JobId::generate();
    let key = ObjectKey::source(job_id, &asked.extension);
    let storage_id = gw.objects.begin_pending(&key).await.map_err(down)?;
    let upload = NewResumable {
        id: UploadId::generate(),
        user_id,
        job_id,
        filename: asked.filename.clone(),
        source_key: key.clone(),
        length: asked.length,
        options: asked.choices.options.clone(),
        callback_url: asked.choices.callback.as_ref().map(|url| url.to_string()),
        idempotency_key: asked.key.clone(),
        batch_id: asked.batch_id,
        storage_id: storage_id.clone(),
        expires_at: now_millis() + gw.resumable.expiry.as_millis() as i64,
        client_addr,
        export,
    };
    let pending = PendingObject {
        key,
        storage_id,
        offset: 0,
        part_tags: Vec::new(),
    };
    let limits = CreationLimits {
        per_user: gw.resumable.max_unfinished,
        per_address: gw.resumable.max_unfinished_per_address,
        quota,
    };
    let created = gw.db.create_resumable(&upload, &limits).await;
    if !matches!(created, Ok(Creation::Created)) {
        let _ = gw.objects.abort_pending(&pending).await;
    }
    match created {
        Ok(Creation::Created) => Ok(Recorded::New(Box::new(Resumable {
            upload,
            offset: 0,
            part_tags: Vec::new(),
            created_at: now_millis(),
            started_at: None,
        }))),
        Ok(Creation::Existing(earlier)) => Ok(Recorded::Earlier(earlier)),
        Ok(Creation::Refused(refusal)) => Err(creation_refusal(refusal)),
        Err(error) => Err(error.into()),
    }
}

/// The answer to a creation over one of its limits.
pub(crate) fn creation_refusal(refusal: CreationRefusal) -> TusRefusal {
    let too_many = |message: String| {
        metrics::upload_refused("busy");
        TusRefusal::TooMany(
            ErrorBody::new(ErrorCode::TooManyRequests, message),
            None,
            None,
            None,
        )
    };
    match refusal {
        CreationRefusal::TooMany { limit } => too_many(format!(
            "You have {limit} unfinished resumable uploads, as many as allowed; finish or \
             terminate one first."
        )),
        CreationRefusal::TooManyFromAddress { limit } => too_many(format!(
            "Your address has {limit} unfinished resumable uploads, as many as allowed; finish \
             or terminate one first."
        )),
        CreationRefusal::Over(over) => {
            metrics::upload_refused("quota");
            UploadError::OverQuota(over).into()
        }
        CreationRefusal::BatchFull { limit } => crate::uploads::refusal::batch_full(limit).into(),
    }
}

/// What a creation asks for, read and checked from its headers.
pub(crate) struct Asked {
    length: u64,
    filename: String,
    extension: String,
    choices: crate::uploads::form::ReadForm<()>,
    key: Option<String>,
    batch_id: Option<BatchId>,
}

/// What recording a creation led to.
pub(crate) enum Recorded {
    New(Box<Resumable>),
    Earlier(Box<Resumable>),
}

impl Asked {
    async fn read(gw: &Gateway, request: &TusRequest) -> Result<Self, TusRefusal> {
        let headers = &request.headers;
        if headers.contains_key("upload-defer-length") {
            return Err(BadHeader(
                "A deferred length is not taken: send the file's size in Upload-Length.".into(),
            )
            .into());
        }
        let Some(length) = tus::size(headers, "upload-length")? else {
            return Err(BadHeader("The Upload-Length header is required.".into()).into());
        };
        if length == 0 {
            return Err(UploadError::BadRequest("The file is empty.".into()).into());
        }
        if request.has_bytes() && !tus::is_chunk(request.content_type.as_deref()) {
            return Err(TusRefusal::UnsupportedMedia(ErrorBody::new(
                ErrorCode::UnsupportedMediaType,
                format!("A body must be sent as {}.", tus::CHUNK_CONTENT_TYPE),
            )));
        }
        let metadata = tus::metadata(headers)?;
        let Some(raw_name) = metadata.get("filename").or_else(|| metadata.get("name")) else {
            return Err(BadHeader(
                "Upload-Metadata must carry the file's name as `filename`.".into(),
            )
            .into());
        };
        let (filename, extension) = crate::uploads::storing::accepted_name(raw_name, &gw.limits)?;
        let choices = crate::uploads::form::choices_from_metadata(gw, &metadata).await?;
        Ok(Self {
            length,
            filename,
            extension,
            choices,
            key: key_of(headers, &metadata)?,
            batch_id: batch_of(&metadata)?,
        })
    }

    /// The answer to a creation whose key already made `earlier`: that upload, if it is of
    /// the same file.
    fn again(&self, earlier: Resumable) -> Result<(UploadId, Standing), CreateRefusal> {
        if earlier.upload.filename != self.filename
            || earlier.upload.length != self.length
            || earlier.upload.options != self.choices.options
        {
            return Err(CreateRefusal::KeyReused(ErrorBody::new(
                ErrorCode::UnprocessableContent,
                "This Idempotency-Key already created an upload of another file (or with other \
                 choices); use a new key for a new upload.",
            )));
        }
        Ok((earlier.upload.id, Standing::of(&earlier)))
    }
}

/// The batch the metadata's `batch_id` names (a UUID the client chose for files it sends
/// together), if any.
pub(crate) fn batch_of(
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<Option<BatchId>, TusRefusal> {
    metadata
        .get("batch_id")
        .map(|id| {
            BatchId::parse(id).map_err(|_| {
                UploadError::BadRequest(
                    "The batch_id in Upload-Metadata must be a UUID (one the client chose for \
                     the files it sends together)."
                        .into(),
                )
                .into()
            })
        })
        .transpose()
}

/// The creation's `Idempotency-Key`: the header, or `idempotency_key` in the metadata (the
/// same if both).
pub(crate) fn key_of(
    headers: &HeaderMap,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>, TusRefusal> {
    let bad = || {
        BadHeader(
            "An Idempotency-Key must be given once, as 1 to 255 visible ASCII characters.".into(),
        )
    };
    let header = crate::uploads::idempotency::key_of(headers).map_err(|_| bad())?;
    let in_metadata = metadata.get("idempotency_key").cloned();
    if let Some(key) = &in_metadata
        && (!(1..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(bad().into());
    }
    match (header, in_metadata) {
        (Some(a), Some(b)) if a != b => Err(bad().into()),
        (header, in_metadata) => Ok(header.or(in_metadata)),
    }
}
