//! The activities of `DeliverWebhooks`: `prepare_webhooks` makes one message per endpoint that
//! wants a job's event (its body fixed once, in the database), `deliver_webhook` sends one
//! message, signed as the Standard Webhooks specification says, and records the attempt.
//! Temporal retries an undelivered message with backoff; the message id stays the same on
//! every attempt, so a receiver sees one id per event however often it is sent.

use crate::failures::{capitalize, database_down};
use audiomill_domain::{
    UserId,
    contract::{
        DeliverWebhookInput, DeliveryOutcome, FailureKind, PrepareWebhooksInput, activity,
        webhook_failure,
    },
    link::LinkSigner,
    webhook::{self, WebhookEvent},
};
use audiomill_store::{Database, DeliveryAttempt, Job, WebhookEndpoint, WebhookMessage, time};
use std::{sync::Arc, time::Duration};
use temporalio_common::error::ApplicationFailure;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// The most of a receiver's answer that is read; the rest is never downloaded.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the webhook activities need to know.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback and private addresses too (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// How long a receiver has to answer, body included.
    pub timeout: Duration,
    /// Signs the download links in `job.completed` messages.
    pub links: LinkSigner,
}

#[derive(Clone)]
pub struct WebhookActivities {
    db: Database,
    settings: Arc<WebhookSettings>,
}

/// Why one attempt did not deliver.
enum Undelivered {
    /// The endpoint's address may not be reached: no retry.
    Refused(String),
    /// No 2xx this time: retried.
    Failed(String),
}

#[activities]
impl WebhookActivities {
    /// One message per enabled endpoint of the job's owner that wants `event` (and its
    /// upload's `callback_url`, if it had one); the ids of
    /// those messages. Safe to run again: an existing message is kept as it is.
    #[activity(definition = activity::PrepareWebhooks)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id, event = %input.event))]
    pub async fn prepare_webhooks(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PrepareWebhooksInput,
    ) -> Result<Vec<String>, ActivityError> {
        let Some(job) = self.db.job(input.job_id).await.map_err(database_down)? else {
            return Ok(Vec::new());
        };
        if !self.owner_is_active(job.user_id).await? {
            return Ok(Vec::new());
        }
        let endpoints: Vec<WebhookEndpoint> = self
            .db
            .webhooks_for_job(&job)
            .await
            .map_err(database_down)?
            .into_iter()
            .filter(|endpoint| endpoint.enabled && endpoint.events.contains(&input.event))
            .collect();
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let payload = self.payload(&job, input.event, input.progress);
        let mut ids = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let message = WebhookMessage {
                id: webhook::message_id(endpoint.id, job.id, input.event, input.progress),
                endpoint_id: endpoint.id,
                job_id: job.id,
                event: input.event,
                payload: payload.clone(),
                created_at: time::now_millis(),
                delivered_at: None,
            };
            let stored = self
                .db
                .ensure_webhook_message(&message)
                .await
                .map_err(database_down)?;
            ids.push(stored.id);
        }
        tracing::info!(messages = ids.len(), "webhook messages prepared");
        Ok(ids)
    }

    /// Sends one message to its endpoint and records the attempt. 2xx delivers it; 410
    /// disables the endpoint; an address that may not be reached fails it for good; anything
    /// else (another status, a timeout, a refused connection) is retried by Temporal.
    #[activity(definition = activity::DeliverWebhook)]
    #[tracing::instrument(skip_all, fields(message_id = %input.message_id))]
    pub async fn deliver_webhook(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeliverWebhookInput,
    ) -> Result<DeliveryOutcome, ActivityError> {
        let Some((message, endpoint)) = self.deliverable(&input).await? else {
            return Ok(DeliveryOutcome::Skipped);
        };
        // Told already (a delivery run started again): once is enough, unless replayed.
        if message.delivered_at.is_some() && !input.replay {
            return Ok(DeliveryOutcome::Delivered);
        }
        let (attempt, outcome) = self.attempt(&endpoint, &message, input.replay).await?;
        let delivered = matches!(outcome, Ok(DeliveryOutcome::Delivered));
        self.db
            .record_delivery_attempt(&attempt, delivered)
            .await
            .map_err(database_down)?;
        match &outcome {
            Ok(result) => tracing::info!(?result, status = attempt.status_code, "webhook sent"),
            Err(_) => tracing::warn!(
                status = attempt.status_code,
                error = attempt.error.as_deref(),
                "webhook not delivered"
            ),
        }
        metrics::counter!(
            "audiomill_webhook_attempts_total",
            "outcome" => if delivered { "delivered" } else { "undelivered" }
        )
        .increment(1);
        outcome
    }
}

impl WebhookActivities {
    /// The message and its endpoint, if it is to be sent: both exist, the endpoint is on (or
    /// this is a replay), and its owner's account is on (a turned-off account is told nothing
    /// more, whatever was pending or retrying).
    async fn deliverable(
        &self,
        input: &DeliverWebhookInput,
    ) -> Result<Option<(WebhookMessage, WebhookEndpoint)>, ActivityError> {
        let Some(message) = self
            .db
            .webhook_message(&input.message_id)
            .await
            .map_err(database_down)?
        else {
            return Ok(None);
        };
        let Some(endpoint) = self
            .db
            .webhook(message.endpoint_id)
            .await
            .map_err(database_down)?
        else {
            return Ok(None);
        };
        if !endpoint.enabled && !input.replay {
            return Ok(None);
        }
        if !self.owner_is_active(endpoint.user_id).await? {
            tracing::info!("webhook dropped: its owner's account is turned off");
            return Ok(None);
        }
        Ok(Some((message, endpoint)))
    }

    /// One attempt at sending `message`: what to record of it, and what it means (410 turns
    /// the endpoint off; an address that may not be reached is not retried).
    async fn attempt(
        &self,
        endpoint: &WebhookEndpoint,
        message: &WebhookMessage,
        replay: bool,
    ) -> Result<(DeliveryAttempt, Result<DeliveryOutcome, ActivityError>), ActivityError> {
        let attempted_at = time::now_millis();
        let started = std::time::Instant::now();
        let sent = self.send(endpoint, message).await;
        let mut attempt = DeliveryAttempt {
            message_id: message.id.clone(),
            attempted_at,
            status_code: None,
            latency_ms: started.elapsed().as_millis() as u64,
            error: None,
            replay,
        };
        let outcome = match sent {
            Ok(status) if (200..300).contains(&status) => {
                attempt.status_code = Some(status);
                Ok(DeliveryOutcome::Delivered)
            }
            Ok(410) => {
                attempt.status_code = Some(410);
                attempt.error = Some("The receiver answered 410 Gone: endpoint disabled.".into());
                self.db
                    .disable_webhook(endpoint.id, "The receiver answered 410 Gone.")
                    .await
                    .map_err(database_down)?;
                Ok(DeliveryOutcome::EndpointGone)
            }
            Ok(status) => {
                attempt.status_code = Some(status);
                let why = if (300..400).contains(&status) {
                    format!("The receiver answered {status}; redirects are not followed.")
                } else {
                    format!("The receiver answered {status}.")
                };
                attempt.error = Some(why.clone());
                Err(undelivered(why))
            }
            Err(Undelivered::Refused(why)) => {
                attempt.error = Some(why.clone());
                Err(refused(why))
            }
            Err(Undelivered::Failed(why)) => {
                attempt.error = Some(why.clone());
                Err(undelivered(why))
            }
        };
        Ok((attempt, outcome))
    }

    /// Whether the user's account exists and is turned on.
    async fn owner_is_active(&self, user: UserId) -> Result<bool, ActivityError> {
        let owner = self.db.user_by_id(user).await.map_err(database_down)?;
        Ok(owner.is_some_and(|owner| owner.active))
    }

    pub fn new(db: Database, settings: WebhookSettings) -> Self {
        Self {
            db,
            settings: Arc::new(settings),
        }
    }

    /// Posts the message to the addresses its endpoint resolves to now (checked against the
    /// policy again: DNS answers change), following no redirect, reading at most
    /// [`MAX_RESPONSE_BYTES`] of the answer; the receiver's status code.
    async fn send(
        &self,
        endpoint: &WebhookEndpoint,
        message: &WebhookMessage,
    ) -> Result<u16, Undelivered> {
        let addresses = webhook::resolve(&endpoint.url, self.settings.allow_private)
            .await
            .map_err(|refusal| match refusal {
                webhook::AddressRefusal::Private { .. } => {
                    Undelivered::Refused(format!("{}.", capitalize(&refusal.to_string())))
                }
                webhook::AddressRefusal::Unresolved { .. } => {
                    Undelivered::Failed(format!("{}.", capitalize(&refusal.to_string())))
                }
            })?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.settings.timeout.min(Duration::from_secs(5)))
            .timeout(self.settings.timeout)
            .resolve_to_addrs(&endpoint.url.host(), &addresses)
            .user_agent(concat!("Audiomill-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Undelivered::Failed(format!("No HTTP client: {error}.")))?;
        let timestamp = time::now_millis() / 1000;
        let body = message.payload.as_bytes();
        let signature =
            webhook::signature_header(&endpoint.signing_secrets(), &message.id, timestamp, body);
        let mut response = client
            .post(endpoint.url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.payload.clone())
            .send()
            .await
            .map_err(|error| Undelivered::Failed(request_failure(&error, self.settings.timeout)))?;
        let status = response.status().as_u16();
        // Drain a little of the answer so a well-behaved receiver is not cut off mid-write;
        // a huge or endless one is dropped here, with its connection.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(status)
    }

    /// The message body: the event, when it was made, and the job as `/status` shows it, with
    /// a signed download link when it completed, and the percentage a `job.progress` tells.
    fn payload(&self, job: &Job, event: WebhookEvent, progress: Option<u8>) -> String {
        let rfc3339 = |millis: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        let link = (event == WebhookEvent::JobCompleted).then(|| self.settings.links.issue(job.id));
        let error = job.failure_type.as_deref().map(|type_name| {
            FailureKind::of(Some(type_name))
                .user_sentence()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("The file could not be converted ({type_name})."))
        });
        let progress = match event {
            WebhookEvent::JobCompleted => Some(100),
            _ => progress,
        };
        let data = serde_json::json!({
            "job_id": job.id.to_string(),
            "status": event.status().as_str(),
            "progress": progress,
            "filename": job.original_filename,
            "batch_id": job.batch_id.map(|id| id.to_string()),
            "created_at": rfc3339(job.created_at),
            "completed_at": job.completed_at.and_then(rfc3339),
            "failure_type": job.failure_type,
            "error": error,
            "mp3_size": job.mp3_size,
            "duration_ms": job.duration_ms,
            "download_url": link.as_ref().map(|l| l.url.clone()),
            "download_expires_at": link.and_then(|l| rfc3339(l.expires_at * 1000)),
            "expires_at": job.expires_at.and_then(rfc3339),
        });
        serde_json::json!({
            "type": event.as_str(),
            "timestamp": rfc3339(time::now_millis()),
            "data": data,
        })
        .to_string()
    }
}

/// A sentence for a request that got no answer.
fn request_failure(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!(
            "The receiver did not answer within {} s.",
            timeout.as_secs()
        )
    } else if error.is_connect() {
        "The receiver could not be reached.".into()
    } else {
        "The request to the receiver failed.".into()
    }
}

fn undelivered(why: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(why)
            .type_name(webhook_failure::UNDELIVERED.to_owned())
            .build(),
    )
}

fn refused(why: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(why)
            .type_name(webhook_failure::REFUSED.to_owned())
            .non_retryable(true)
            .build(),
    )
}
