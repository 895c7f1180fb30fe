//! Taking an upload in, as named steps: [`read_form`](super::form::read_form) walks the form, reads the output fields
//! and stores its videos (one, or a batch of up to `MAX_FILES_PER_UPLOAD`)
//! through [`read_video_part`](super::storing::read_video_part) (the name, the extension and the first bytes checked before
//! anything is stored) and [`store_source`](super::storing::store_source) (streamed into storage under the size limit); then
//! [`start_jobs`] records a job per video and starts its workflow. Each step fails with an
//! [`UploadError`], and whatever an earlier step stored or started is removed when a later one
//! fails.
//! A retried upload whose `Idempotency-Key` already started a job goes through
//! [`fingerprint`](super::storing::fingerprint) instead: the same checks, the file hashed and nothing stored.

use super::allowance::Allowance;
use super::form::{FileLimit, ReadForm, open_upload, read_form};
use super::refusal::{StartError, UploadError};
use super::storing::{Fingerprint, HashOnly, IntoStorage, StoredSource, discard};
use crate::auth::Caller;
use crate::gateway::Gateway;
use audiomill_domain::lifecycle::Quota;
use audiomill_domain::{
    BatchId, UserId,
    contract::{ConvertVideoInput, ImportPlan, TASK_QUEUE},
    output::OutputOptions,
    webhook::{WebhookEvent, WebhookUrl},
};
use audiomill_store::{NewEndpoint, NewExport, NewJob, NotRecorded, WebhookEndpoint};
use audiomill_workflows::ConvertVideo;
use poem::Body;
use temporalio_client::{WorkflowStartOptions, WorkflowTerminateOptions};

/// What an accepted upload started: a job per file, and the batch they make when there are
/// several.
pub struct Received {
    pub sources: Vec<StoredSource>,
    pub batch_id: Option<BatchId>,
    /// The one-off endpoint of the upload's `callback_url`, with its secret.
    pub callback: Option<WebhookEndpoint>,
}

/// The whole upload once the caller is known: the form read, its videos stored (and hashed,
/// with `fingerprint`, which also holds the upload to one file), a job started for each. A
/// refused upload's remaining body is read (and dropped) before the refusal is returned.
pub async fn receive(
    gw: &Gateway,
    caller: &Caller,
    content_type: &str,
    body: Body,
    fingerprint: bool,
    allowance: Allowance,
) -> Result<Received, UploadError> {
    let limits = super::grant::limits_for(caller, &gw.limits);
    let into_storage = IntoStorage {
        objects: &gw.objects,
        limits: &limits,
        fingerprint,
        allowance,
    };
    let files = if fingerprint {
        FileLimit::Keyed
    } else {
        FileLimit::Batch(gw.limits.max_files)
    };
    let mut form = open_upload(gw, content_type, body)?;
    let outcome = match read_form(gw, &mut form.multipart, &into_storage, files).await {
        Ok(read) => start_read(gw, caller, read, allowance.quota).await,
        Err(error) => Err(error),
    };
    form.settle(outcome).await
}

/// Starts a job for each video of a form read whole (a batch when there are several), its
/// one-off callback endpoint recorded first so that no job can end untold; on failure
/// nothing of the upload stays.
pub(crate) async fn start_read(
    gw: &Gateway,
    caller: &Caller,
    mut read: ReadForm<StoredSource>,
    quota: Quota,
) -> Result<Received, UploadError> {
    match super::grant::choices_for(caller, std::mem::take(&mut read.options)) {
        Ok(options) => read.options = options,
        Err(refusal) => {
            for source in &read.videos {
                discard(&gw.objects, Some(source)).await;
            }
            return Err(refusal);
        }
    }
    let batch_id = (read.videos.len() > 1).then(BatchId::generate);
    let one_off_for = match batch_id {
        Some(batch_id) => batch_id.to_string(),
        None => read.videos[0].job_id.to_string(),
    };
    let callback =
        match create_callback(gw, caller.user, read.callback.as_ref(), &one_off_for).await {
            Ok(callback) => callback,
            Err(error) => {
                for source in &read.videos {
                    discard(&gw.objects, Some(source)).await;
                }
                return Err(error.into());
            }
        };
    let export = match super::export::resolve(gw, caller, &read.export, read.videos.len()).await {
        Ok(export) => export,
        Err(error) => {
            for source in &read.videos {
                discard(&gw.objects, Some(source)).await;
            }
            if callback.is_some() {
                let _ = gw.db.delete_callbacks(&one_off_for).await;
            }
            return Err(error);
        }
    };
    let batch = Batch {
        videos: &read.videos,
        options: &read.options,
        batch_id,
        quota,
        export: export.as_ref(),
    };
    let started = start_jobs(gw, caller, batch).await;
    if started.is_err() && callback.is_some() {
        let _ = gw.db.delete_callbacks(&one_off_for).await;
    }
    started.map(|()| Received {
        sources: read.videos,
        batch_id,
        callback,
    })
}

/// Starts the job of a resumable upload whose bytes are all stored, with its one-off callback
/// endpoint; on failure neither the job nor the endpoint stays, and the stored video is the
/// caller's to keep or remove. It joins `batch_id` when its client named one.
pub async fn start_resumed(
    gw: &Gateway,
    caller: &Caller,
    source: &StoredSource,
    read: &ReadForm<()>,
    (batch_id, export): (Option<BatchId>, Option<&NewExport>),
    quota: Quota,
) -> Result<Option<WebhookEndpoint>, StartError> {
    let one_off_for = source.job_id.to_string();
    let callback = create_callback(gw, caller.user, read.callback.as_ref(), &one_off_for).await?;
    let batch = Batch {
        videos: std::slice::from_ref(source),
        options: &read.options,
        batch_id,
        quota,
        export,
    };
    let started = start_job(gw, caller, source, &batch).await;
    if started.is_err() && callback.is_some() {
        let _ = gw.db.delete_callbacks(&one_off_for).await;
    }
    started.map(|()| callback)
}

/// Records the one-off webhook endpoint of an upload's `callback_url` (if any), told of the
/// job or batch `one_off_for` names.
async fn create_callback(
    gw: &Gateway,
    user_id: UserId,
    url: Option<&WebhookUrl>,
    one_off_for: &str,
) -> Result<Option<WebhookEndpoint>, StartError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let endpoint = NewEndpoint {
        user_id,
        url: url.clone(),
        events: WebhookEvent::ENDINGS.to_vec(),
    };
    gw.db
        .create_callback(&endpoint, one_off_for)
        .await
        .map(Some)
        .map_err(StartError::from)
}

/// Records a job for each of `sources` and starts its workflow; on failure no row, video or
/// workflow of the upload stays.
async fn start_jobs(gw: &Gateway, caller: &Caller, batch: Batch<'_>) -> Result<(), UploadError> {
    let sources = batch.videos;
    for (started, source) in sources.iter().enumerate() {
        if let Err(error) = start_job(gw, caller, source, &batch)
            .await
            .map_err(UploadError::from)
        {
            for earlier in &sources[..started] {
                let handle = gw
                    .temporal
                    .get_workflow_handle::<ConvertVideo>(earlier.job_id.to_string());
                let reason = WorkflowTerminateOptions::builder()
                    .reason("another file of its upload could not be taken")
                    .build();
                if let Err(error) = handle.terminate(reason).await {
                    tracing::error!(%error, job_id = %earlier.job_id, "could not stop a refused batch's job");
                }
                let _ = gw.db.delete_job(earlier.job_id).await;
            }
            for source in sources {
                discard(&gw.objects, Some(source)).await;
            }
            return Err(error);
        }
    }
    Ok(())
}

/// The videos of one upload, with what they share.
pub(crate) struct Batch<'a> {
    videos: &'a [StoredSource],
    options: &'a OutputOptions,
    batch_id: Option<BatchId>,
    quota: Quota,
    /// Where every MP3 of the batch goes besides Audiomill's storage.
    export: Option<&'a NewExport>,
}

/// Records the job and starts its workflow; on failure neither the row nor the workflow stays
/// (the caller removes the video).
async fn start_job(
    gw: &Gateway,
    caller: &Caller,
    source: &StoredSource,
    batch: &Batch<'_>,
) -> Result<(), StartError> {
    let options = batch.options;
    let job = NewJob {
        id: source.job_id,
        user_id: caller.user,
        original_filename: source.filename.clone(),
        source_key: source.key.clone(),
        source_size: source.size,
        options: options.clone(),
        batch_id: batch.batch_id,
        session_id: Some(caller.session.clone()),
        import: source.import.clone(),
        export: batch.export.cloned(),
    };
    match gw.db.insert_job_within(&job, &batch.quota).await {
        Ok(Ok(())) => {}
        Ok(Err(NotRecorded::Over(over))) => return Err(StartError::OverQuota(over)),
        Ok(Err(NotRecorded::BatchFull { limit })) => return Err(StartError::BatchFull { limit }),
        Err(error) => return Err(error.into()),
    }
    let input = ConvertVideoInput {
        job_id: source.job_id,
        user_id: caller.user,
        session_id: caller.session.clone(),
        source_key: source.key.clone(),
        original_filename: source.filename.clone(),
        options: options.clone(),
        import: source.import.as_ref().map(|_| ImportPlan {
            max_bytes: super::grant::limits_for(caller, &gw.limits).max_bytes,
            quota: batch.quota,
        }),
        export: batch.export.is_some(),
    };
    let options = WorkflowStartOptions::new(TASK_QUEUE, source.job_id.to_string()).build();
    if let Err(error) = gw
        .temporal
        .start_workflow(ConvertVideo::run, input, options)
        .await
    {
        let _ = gw.db.delete_job(source.job_id).await;
        return Err(StartError::down("conversion service", error));
    }
    Ok(())
}

/// Reads an upload through the same checks as [`receive`] and stores nothing: its file's
/// name and SHA-256, to compare with the upload an `Idempotency-Key` already started.
pub async fn fingerprint(
    gw: &Gateway,
    content_type: &str,
    body: Body,
) -> Result<Fingerprint, UploadError> {
    let hashed = HashOnly { limits: &gw.limits };
    let mut form = open_upload(gw, content_type, body)?;
    let outcome = read_form(gw, &mut form.multipart, &hashed, FileLimit::Keyed)
        .await
        .map(|read| {
            let video = read.videos.into_iter().next().expect("a form has a file");
            Fingerprint {
                options: read.options,
                ..video
            }
        });
    form.settle(outcome).await
}
