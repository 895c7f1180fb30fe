//! What a request that starts jobs answers (an upload, an import): the jobs it started, the
//! batch they make and the one-off callback, or the job an `Idempotency-Key` already named.

use super::jobs::JobState;
use crate::params::{ApiBatchId, ApiJobId, ApiWebhookId};
use crate::uploads::intake;
use audiomill_store::{KeyedUpload, WebhookEndpoint};
use poem_openapi::{Object, types::Example};

#[derive(Object)]
#[oai(example)]
pub(super) struct UploadAccepted {
    /// The job; with several files, the first one's (`jobs` has them all).
    job_id: ApiJobId,
    filename: String,
    /// Always `queued`.
    status: JobState,
    message: String,
    /// Every job the upload started, one per `file` part, in the form's order.
    jobs: Vec<AcceptedJob>,
    /// With several files, the batch they make: `GET /batches/{batch_id}` follows them all and
    /// `GET /batches/{batch_id}/download` gives their MP3s as one ZIP; else `null`.
    #[oai(nullable)]
    batch_id: Option<ApiBatchId>,
    /// With a `callback_url`, the one-off webhook endpoint made for this upload's jobs, and the
    /// secret that signs its messages (shown only here); else `null`.
    #[oai(nullable)]
    callback: Option<UploadCallback>,
}

/// An upload's one-off webhook endpoint: told when each of its jobs ends, signed as the
/// Standard Webhooks specification says; `GET /webhooks/{webhook_id}/deliveries` shows the
/// attempts. Listed nowhere, and removed with the last of its jobs.
#[derive(Object)]
struct UploadCallback {
    webhook_id: ApiWebhookId,
    /// `whsec_` and the key in base64.
    secret: String,
}

impl From<&WebhookEndpoint> for UploadCallback {
    fn from(endpoint: &WebhookEndpoint) -> Self {
        UploadCallback {
            webhook_id: ApiWebhookId(endpoint.id),
            secret: endpoint.secret.expose(),
        }
    }
}

/// One file of an upload, and the job it became.
#[derive(Object)]
struct AcceptedJob {
    job_id: ApiJobId,
    filename: String,
}

impl Example for UploadAccepted {
    fn example() -> Self {
        UploadAccepted {
            message: "Upload accepted; conversion queued.".into(),
            ..UploadAccepted::queued(ApiJobId::example().0, "talk.mp4".into())
        }
    }
}

impl UploadAccepted {
    /// The answer to a request whose `Idempotency-Key` already started `earlier`.
    pub(super) fn replayed(earlier: KeyedUpload) -> Self {
        UploadAccepted {
            message: format!(
                "This Idempotency-Key already started job {}; follow it at /status/{}.",
                earlier.job_id, earlier.job_id
            ),
            ..UploadAccepted::queued(earlier.job_id, earlier.filename)
        }
    }

    pub(super) fn queued(job_id: audiomill_domain::JobId, filename: String) -> Self {
        UploadAccepted {
            job_id: job_id.into(),
            filename: filename.clone(),
            status: JobState::Queued,
            message: format!("Conversion started; follow it at /status/{job_id}."),
            jobs: vec![AcceptedJob {
                job_id: job_id.into(),
                filename,
            }],
            batch_id: None,
            callback: None,
        }
    }
}

/// What an accepted upload (or import) answers, and with one file what an `Idempotency-Key`
/// then names.
pub(super) fn accepted_body(received: intake::Received) -> (UploadAccepted, Option<KeyedUpload>) {
    let callback = received.callback.as_ref().map(UploadCallback::from);
    if let (Some(batch_id), [first, ..]) = (received.batch_id, &received.sources[..]) {
        let answer = UploadAccepted {
            message: format!(
                "{} conversions started; follow them at /batches/{batch_id}.",
                received.sources.len()
            ),
            jobs: received
                .sources
                .iter()
                .map(|source| AcceptedJob {
                    job_id: source.job_id.into(),
                    filename: source.filename.clone(),
                })
                .collect(),
            batch_id: Some(batch_id.into()),
            callback,
            ..UploadAccepted::queued(first.job_id, first.filename.clone())
        };
        return (answer, None);
    }
    let source = received
        .sources
        .into_iter()
        .next()
        .expect("an accepted upload has a file");
    let keyed = KeyedUpload {
        job_id: source.job_id,
        fingerprint: source.fingerprint.clone().unwrap_or_default(),
        filename: source.filename.clone(),
    };
    let answer = UploadAccepted {
        callback,
        ..UploadAccepted::queued(source.job_id, source.filename)
    };
    (answer, Some(keyed))
}
