//! A chunk appended under the upload's lease, and the start of the job once the last byte
//! is in (or, after an outage, at the next request).

use super::lease::{Held, LeaseRefusal, under_lease};
use super::request::{Standing, TusRefusal, TusRequest};
use crate::auth::Caller;
use crate::uploads::intake::{self};
use crate::uploads::refusal::StartError;
use crate::uploads::storing::StoredSource;
use crate::{
    error::{ErrorBody, ErrorCode, ErrorJson},
    gateway::Gateway,
    metrics,
    uploads::file::{Container, Head},
    uploads::tus::{self, Checksum, ChunkChecks, ChunkStop},
};
use audiomill_domain::{UploadId, webhook::WebhookUrl};
use audiomill_store::{Appended, PendingObject, Resumable, StoreError, WebhookEndpoint};
use futures::StreamExt;
use poem::Body;
use std::sync::Arc;

/// Why a chunk was refused: as any tus request may be, or because it was sent for another
/// offset than where the upload stands (which is given).
pub(crate) enum AppendRefusal {
    Refused(TusRefusal),
    Conflict(ErrorJson, u64),
}

impl From<TusRefusal> for AppendRefusal {
    fn from(refusal: TusRefusal) -> Self {
        Self::Refused(refusal)
    }
}

impl LeaseRefusal for AppendRefusal {
    fn held_elsewhere(error: ErrorJson) -> Self {
        Self::Refused(TusRefusal::held_elsewhere(error))
    }

    fn not_found(error: ErrorJson) -> Self {
        Self::Refused(TusRefusal::not_found(error))
    }

    fn down(error: ErrorJson) -> Self {
        Self::Refused(TusRefusal::down(error))
    }
}

/// Appends the request's body to upload `id` at `offset` (which must be where it stands once
/// the lease is held), within the caller's uploads in progress; at the end of the upload,
/// starts its job if no request could yet.
pub(crate) async fn take_chunk(
    gw: Arc<Gateway>,
    caller: Caller,
    id: UploadId,
    offset: u64,
    request: TusRequest,
) -> Result<Standing, AppendRefusal> {
    let checksum = Checksum::of(&request.headers).map_err(TusRefusal::from)?;
    under_lease(gw, id, move |held| async move {
        let upload = &held.upload;
        if offset != upload.offset {
            return Err(AppendRefusal::Conflict(
                ErrorBody::new(
                    ErrorCode::Conflict,
                    format!(
                        "The upload stands at byte {}, not {offset}: send from there.",
                        upload.offset
                    ),
                ),
                upload.offset,
            ));
        }
        Ok(append(held, caller, request, checksum).await?)
    })
    .await
}

/// Appends the body sent with a new upload's creation: its first bytes, from 0.
pub(crate) async fn take_first_chunk(
    gw: Arc<Gateway>,
    caller: Caller,
    id: UploadId,
    request: TusRequest,
) -> Result<Standing, TusRefusal> {
    let checksum = Checksum::of(&request.headers)?;
    under_lease(gw, id, move |held| append(held, caller, request, checksum)).await
}

/// Appends the body where the held upload stands, within the caller's uploads in progress;
/// a complete upload's job is started instead, if no request could yet.
async fn append(
    held: Held,
    caller: Caller,
    request: TusRequest,
    checksum: Option<Checksum>,
) -> Result<Standing, TusRefusal> {
    let upload = &held.upload;
    if upload.is_complete() {
        return Ok(start_when_due(&held.gw, &caller, held.upload.clone()).await?);
    }
    let Some(_slot) = held.gw.uploads.begin(caller.user) else {
        metrics::upload_refused("busy");
        return Err(TusRefusal::TooMany(
            ErrorBody::new(
                ErrorCode::TooManyRequests,
                format!(
                    "At most {} uploads may be in progress at once; wait for one to finish.",
                    held.gw.uploads.limit()
                ),
            ),
            None,
            None,
            None,
        ));
    };
    let appending = Appending { held, caller };
    appending.receive(request.body, checksum).await
}

/// One request appending to an upload, under its lease.
pub(crate) struct Appending {
    held: Held,
    caller: Caller,
}

impl Appending {
    /// Streams `body` into the upload's object and records how far it got.
    async fn receive(
        &self,
        body: Body,
        checksum: Option<Checksum>,
    ) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        let before = upload.pending();
        let extension =
            crate::uploads::file::extension(&upload.upload.filename).unwrap_or_default();
        let checks = ChunkChecks {
            room: upload.upload.length - upload.offset,
            idle: gw.resumable.idle,
            sniff_for: (upload.offset == 0).then(|| Container::for_extension(&extension)),
            checksum,
        };
        let (stream, verdict) = tus::checked(body.into_bytes_stream(), checks);
        let appended = gw.objects.append_pending(&before, stream).await?;
        let stopped = appended.stopped;
        match stopped {
            Some(ChunkStop::BeyondLength) => Err(TusRefusal::TooLarge(
                ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    "The chunk goes past Upload-Length; none of it was kept.",
                ),
                None,
                None,
            )),
            Some(ChunkStop::NotAVideo) => {
                let _ = remove(gw, upload).await;
                metrics::upload_refused("type");
                Err(StartError::UnsupportedMedia(format!(
                    "The file's content is not a valid .{extension} file; the upload is removed."
                ))
                .into())
            }
            Some(stop) if verdict.is_checked() => {
                // A checksum speaks for the whole chunk only.
                Err(cut_off(stop, upload.offset))
            }
            Some(stop) => {
                let standing = self.keep(appended).await?;
                Err(cut_off(stop, standing.offset))
            }
            None if !verdict.matches() => {
                metrics::upload_refused("checksum");
                Err(TusRefusal::ChecksumMismatch(ErrorBody::new(
                    ErrorCode::ChecksumMismatch,
                    "The chunk does not match its Upload-Checksum; none of it was kept.",
                )))
            }
            None if appended.reached.offset == upload.upload.length => {
                self.complete(appended).await
            }
            None => self.keep(appended).await,
        }
    }

    /// Makes the appended bytes durable and records the new offset.
    async fn keep<E>(&self, appended: Appended<E>) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        gw.objects.keep_appended(&appended).await?;
        let reached = appended.reached;
        record_offset(&self.held, &reached).await?;
        gw.objects
            .drop_superseded(&upload.pending(), &reached)
            .await;
        Ok(Standing {
            offset: reached.offset,
            ..Standing::of(upload)
        })
    }

    /// Makes the object whole, records it, and starts the job.
    async fn complete<E>(&self, appended: Appended<E>) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        let reached = appended.reached.clone();
        gw.objects.complete_pending(appended).await?;
        record_offset(&self.held, &reached).await?;
        gw.objects
            .drop_superseded(&upload.pending(), &reached)
            .await;
        let whole = Resumable {
            offset: reached.offset,
            ..upload.clone()
        };
        Ok(start_when_due(gw, &self.caller, whole).await?)
    }
}

/// Starts the job of a complete upload unless it has started: its first bytes sniffed from
/// storage, then as a multipart upload's job. Called under the upload's lease, so one request
/// at a time decides. An outage leaves the upload complete and unstarted, for the next
/// request (`HEAD` or `PATCH`) to start; any other refusal removes it.
pub(crate) async fn start_when_due(
    gw: &Gateway,
    caller: &Caller,
    upload: Resumable,
) -> Result<Standing, StartError> {
    if upload.started_at.is_some() {
        return Ok(Standing::of(&upload));
    }
    // A start whose record was lost (the database failed just after) is not made twice.
    let started = match gw.db.job(upload.upload.job_id).await? {
        Some(_) => Ok(None),
        None => start(gw, caller, &upload).await,
    };
    match started {
        Ok(callback) => {
            gw.db.mark_resumable_started(upload.upload.id).await?;
            tracing::info!(job_id = %upload.upload.job_id, size = upload.upload.length, "resumable upload accepted");
            metrics::upload_accepted(upload.upload.length);
            Ok(Standing {
                job: Some(upload.upload.job_id),
                callback,
                ..Standing::of(&upload)
            })
        }
        Err(error @ StartError::Unavailable { .. }) => Err(error),
        Err(error) => {
            metrics::upload_refused(error.reason());
            let _ = gw.objects.delete(&upload.upload.source_key).await;
            let _ = gw.db.delete_resumable(upload.upload.id).await;
            Err(error)
        }
    }
}

/// Starts the job of a complete upload, after its first bytes are sniffed from storage.
pub(crate) async fn start(
    gw: &Gateway,
    caller: &Caller,
    upload: &Resumable,
) -> Result<Option<WebhookEndpoint>, StartError> {
    let spec = &upload.upload;
    let extension = crate::uploads::file::extension(&spec.filename).unwrap_or_default();
    let head_end = (Head::WANTED as u64).min(spec.length);
    let mut first = gw
        .objects
        .read_range(&spec.source_key, 0..head_end)
        .await
        .map_err(|error| StartError::down("storage", error))?;
    let mut head = Head::new();
    while let Some(Ok(chunk)) = first.next().await {
        head.push(&chunk);
    }
    let seen = Container::sniff(&head.bytes);
    if seen.is_none() || seen != Container::for_extension(&extension) {
        return Err(StartError::UnsupportedMedia(format!(
            "The file's content is not a valid .{extension} file."
        )));
    }
    let quota = crate::uploads::allowance::allowance(gw, caller.user)
        .await?
        .quota;
    let source = StoredSource {
        job_id: spec.job_id,
        key: spec.source_key.clone(),
        filename: spec.filename.clone(),
        size: spec.length,
        fingerprint: None,
        import: None,
    };
    let choices = crate::uploads::form::ReadForm {
        videos: Vec::new(),
        options: spec.options.clone(),
        callback: spec
            .callback_url
            .as_deref()
            .and_then(|url| WebhookUrl::parse(url).ok()),
        export: Default::default(),
    };
    let export = spec.export.as_ref();
    intake::start_resumed(
        gw,
        caller,
        &source,
        &choices,
        (spec.batch_id, export),
        quota,
    )
    .await
}

/// Removes the upload: its row first (so no request finds it again), then its bytes.
pub(crate) async fn remove(gw: &Gateway, upload: &Resumable) -> Result<(), StoreError> {
    gw.db.delete_resumable(upload.upload.id).await?;
    gw.objects.discard_unstarted(upload).await
}

/// Records that the upload reached `reached`, under the request's lease.
pub(crate) async fn record_offset(held: &Held, reached: &PendingObject) -> Result<(), TusRefusal> {
    let recorded = held
        .gw
        .db
        .record_resumable_offset(
            held.upload.upload.id,
            &held.holder,
            reached.offset,
            &reached.part_tags,
        )
        .await?;
    if recorded {
        return Ok(());
    }
    // The lease ran out (this gateway stalled) and another request took over.
    Err(TusRefusal::Locked(ErrorBody::new(
        ErrorCode::Locked,
        "Another request took this upload over; ask where it stands with HEAD.",
    )))
}

/// The refusal of a chunk whose body stopped early, kept up to `offset`.
pub(crate) fn cut_off(stop: ChunkStop, offset: u64) -> TusRefusal {
    let timeout = |message| ErrorBody::new(ErrorCode::RequestTimeout, message);
    match stop {
        ChunkStop::Idle => TusRefusal::TooSlow(
            timeout("The chunk stopped arriving; resume from Upload-Offset."),
            offset,
            None,
        ),
        ChunkStop::TooSlow => TusRefusal::TooSlow(
            timeout(
                "The chunk arrived too slowly (under 8 KiB/s on average); resume from \
                 Upload-Offset.",
            ),
            offset,
            None,
        ),
        _ => TusRefusal::Cut(
            timeout("The chunk was cut off; resume from Upload-Offset."),
            offset,
        ),
    }
}
