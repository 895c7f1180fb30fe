//! `/webhooks`: the endpoints a user registers to hear when their jobs end, each with its own
//! signing secret (shown once, rotatable), the deliveries made to it with every attempt, and
//! replays. Deliveries themselves are the `DeliverWebhooks` workflow's activities.

use super::context::{
    ApiTags, BearerAuth, Context, Denied, ErrorJson, JobRefusal, Scope, rfc3339, store_down,
    unavailable,
};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    params::{ApiJobId, ApiWebhookId},
};
use audiomill_domain::{
    UserId,
    contract::{DeliverWebhooksInput, TASK_QUEUE},
    webhook::{self, AddressRefusal, WebhookEvent, WebhookUrl},
};
use audiomill_store::{
    EndpointChanges, MAX_ENDPOINTS_PER_USER, NewEndpoint, StoreError, WebhookEndpoint,
};
use audiomill_workflows::DeliverWebhooks;
use poem_openapi::{
    Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use temporalio_client::WorkflowStartOptions;

/// Deliveries shown unless `limit` says otherwise, and the most one page may hold.
const DEFAULT_DELIVERIES: u32 = 20;
const MAX_DELIVERIES: u32 = 100;

pub struct WebhooksApi {
    pub(super) cx: Context,
}

/// An event an endpoint can subscribe to: a job ended (`job.completed`, `job.failed`,
/// `job.cancelled`), or its transcode passed 25, 50 or 75 percent (`job.progress`, each once;
/// these may arrive out of order, even after the ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
enum EventName {
    #[oai(rename = "job.completed")]
    Completed,
    #[oai(rename = "job.failed")]
    Failed,
    #[oai(rename = "job.cancelled")]
    Cancelled,
    #[oai(rename = "job.progress")]
    Progress,
}

impl From<EventName> for WebhookEvent {
    fn from(name: EventName) -> Self {
        match name {
            EventName::Completed => Self::JobCompleted,
            EventName::Failed => Self::JobFailed,
            EventName::Cancelled => Self::JobCancelled,
            EventName::Progress => Self::JobProgress,
        }
    }
}

impl From<WebhookEvent> for EventName {
    fn from(event: WebhookEvent) -> Self {
        match event {
            WebhookEvent::JobCompleted => Self::Completed,
            WebhookEvent::JobFailed => Self::Failed,
            WebhookEvent::JobCancelled => Self::Cancelled,
            WebhookEvent::JobProgress => Self::Progress,
        }
    }
}

/// The examples' endpoint: a public address by its literal, so the example registers as it
/// is on any server, with no name to resolve.
const EXAMPLE_URL: &str = "https://93.184.216.34/audiomill";

/// A new endpoint.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
struct NewWebhook {
    /// Where to POST: an `http` or `https` URL whose host resolves to public addresses only
    /// (unless the operator allows private ones), without credentials.
    url: String,
    /// The events to send; at least one.
    events: Vec<EventName>,
}

impl Example for NewWebhook {
    fn example() -> Self {
        NewWebhook {
            url: EXAMPLE_URL.into(),
            events: vec![EventName::Completed, EventName::Failed],
        }
    }
}

/// Changes to an endpoint; fields left out (or `null`) stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct WebhookChanges {
    #[oai(nullable)]
    url: Option<String>,
    #[oai(nullable)]
    events: Option<Vec<EventName>>,
    /// `true` turns on an endpoint that was off (also one its receiver disabled with 410).
    #[oai(nullable)]
    enabled: Option<bool>,
}

/// A registered endpoint.
#[derive(Object)]
#[oai(example)]
struct Webhook {
    id: ApiWebhookId,
    url: String,
    events: Vec<EventName>,
    /// Off: nothing is sent to it.
    enabled: bool,
    /// Why it is off when its owner did not turn it off (its receiver answered 410 Gone).
    #[oai(nullable)]
    disabled_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Example for Webhook {
    fn example() -> Self {
        Webhook {
            id: ApiWebhookId::example(),
            url: EXAMPLE_URL.into(),
            events: vec![EventName::Completed, EventName::Failed],
            enabled: true,
            disabled_reason: None,
            created_at: "2026-11-24T18:30:00Z".into(),
            updated_at: "2026-11-24T18:30:00Z".into(),
        }
    }
}

/// A new endpoint, with its secret: shown this once.
#[derive(Object)]
struct CreatedWebhook {
    id: ApiWebhookId,
    url: String,
    events: Vec<EventName>,
    enabled: bool,
    created_at: String,
    /// The Standard Webhooks signing secret (`whsec_...`): verify `webhook-signature` with it.
    secret: String,
}

/// A new secret, shown this once.
#[derive(Object)]
struct RotatedSecret {
    secret: String,
    /// Until when messages are signed with the previous secret too (a second signature in
    /// `webhook-signature`), so receivers can switch without losing any.
    previous_secret_expires_at: String,
}

#[derive(Object)]
struct WebhookList {
    /// Oldest first.
    webhooks: Vec<Webhook>,
}

/// One try at delivering a message.
#[derive(Object)]
struct Attempt {
    attempted_at: String,
    /// The receiver's status code; `null` when it did not answer (timeout, refused connection).
    #[oai(nullable)]
    status_code: Option<u16>,
    latency_ms: u64,
    #[oai(nullable)]
    error: Option<String>,
    /// Made by `POST .../replay`.
    replay: bool,
}

/// One message to the endpoint: an event of one job, with every attempt to deliver it.
#[derive(Object)]
struct Delivery {
    /// The message id, sent as `webhook-id` on every attempt and replay.
    delivery_id: String,
    event: EventName,
    job_id: ApiJobId,
    created_at: String,
    /// When a receiver first answered 2xx; `null` until then.
    #[oai(nullable)]
    delivered_at: Option<String>,
    /// Oldest first.
    attempts: Vec<Attempt>,
}

#[derive(Object)]
struct DeliveryList {
    /// Newest first.
    deliveries: Vec<Delivery>,
}

#[derive(Object)]
struct ReplayAccepted {
    delivery_id: String,
    message: String,
}

api_response! {
    enum CreateResponse {
        /// Registered; the secret is in this answer only.
        #[oai(status = 201)]
        Created(Json<CreatedWebhook>),
        /// The URL or the events are not acceptable (`field` says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The account has as many endpoints as it may.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        @unavailable,
    }
}

api_response! {
    enum ListResponse {
        #[oai(status = 200)]
        Ok(Json<WebhookList>),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum WebhookResponse {
        /// The endpoint, as it is now.
        #[oai(status = 200)]
        Ok(Json<Webhook>),
        /// The id is malformed, or a change is not acceptable (`field` says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        @endpoint_not_found,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum DeleteResponse {
        /// Deleted, with its deliveries; nothing more is sent to it.
        #[oai(status = 204)]
        Deleted,
        @bad_id,
        @unauthorized,
        @forbidden,
        @endpoint_not_found,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum SecretResponse {
        /// The new secret; the previous one keeps signing beside it for a day.
        #[oai(status = 200)]
        Ok(Json<RotatedSecret>),
        @bad_id,
        @unauthorized,
        @forbidden,
        @endpoint_not_found,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum DeliveriesResponse {
        #[oai(status = 200)]
        Ok(Json<DeliveryList>),
        /// The id is malformed, or `limit` is outside 1-100.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        @endpoint_not_found,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "delivery_id_refused")]
    enum ReplayResponse {
        /// The message goes out again, with its id and body, newly signed.
        #[oai(status = 202)]
        Accepted(Json<ReplayAccepted>),
        /// An id is malformed.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// No such endpoint or delivery (or not yours).
        #[oai(status = 404)]
        NotFound(ErrorJson),
        /// A replay of this delivery is still being sent (one at a time).
        #[oai(status = 409)]
        InFlight(ErrorJson),
        @unavailable,
    }
}

/// A malformed id in a replay's path, said in a sentence: the delivery id's form (the
/// framework's own words name the pattern) or the endpoint's.
fn delivery_id_refused(error: poem::Error) -> ReplayResponse {
    if error.to_string().contains("delivery_id") {
        super::context::parameter_refusal(
            error,
            "The delivery id is malformed: delivery ids look like msg_ and 24 letters.",
        )
    } else {
        super::context::framework_refusal(error)
    }
}
#[OpenApi]
impl WebhooksApi {
    /// Register a webhook endpoint.
    ///
    /// Each message is a POST with a JSON body `{type, timestamp, data}` (`data` is the job as
    /// `/status` shows it, with a signed `download_url` when it completed, and `progress`),
    /// signed as the
    /// Standard Webhooks specification says: headers `webhook-id` (the same on every retry),
    /// `webhook-timestamp` and `webhook-signature`. A 2xx answer delivers it; 410 Gone turns
    /// the endpoint off; anything else is retried with backoff for over a day.
    #[oai(
        path = "/webhooks",
        method = "post",
        tag = "ApiTags::Webhooks",
        operation_id = "createWebhook"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::WebhooksWrite")] auth: BearerAuth,
        body: Json<NewWebhook>,
    ) -> CreateResponse {
        let user_id = or_refuse!(self.caller(&auth, Scope::WebhooksWrite).await);
        let url = or_refuse!(
            checked_url(self.cx.gw(), &body.0.url)
                .await
                .map_err(CreateResponse::BadRequest)
        );
        let events = or_refuse!(checked_events(&body.0.events).map_err(CreateResponse::BadRequest));
        let endpoint = NewEndpoint {
            user_id,
            url,
            events,
        };
        match self.cx.gw().db.create_webhook(&endpoint).await {
            Ok(endpoint) => {
                tracing::info!(webhook_id = %endpoint.id, "webhook endpoint registered");
                let shown = shown(&endpoint);
                CreateResponse::Created(Json(CreatedWebhook {
                    id: shown.id,
                    url: shown.url,
                    events: shown.events,
                    enabled: shown.enabled,
                    created_at: shown.created_at,
                    secret: endpoint.secret.expose(),
                }))
            }
            Err(StoreError::Conflict(_)) => CreateResponse::Conflict(ErrorBody::new(
                ErrorCode::Conflict,
                format!(
                    "An account may have at most {MAX_ENDPOINTS_PER_USER} webhook endpoints; delete one first."
                ),
            )),
            Err(error) => CreateResponse::Unavailable(store_down(error)),
        }
    }

    /// The caller's webhook endpoints.
    #[oai(
        path = "/webhooks",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "listWebhooks"
    )]
    async fn list(&self, #[oai(scope = "Scope::WebhooksRead")] auth: BearerAuth) -> ListResponse {
        let user_id = or_refuse!(self.caller(&auth, Scope::WebhooksRead).await);
        match self.cx.gw().db.webhooks_of(user_id).await {
            Ok(endpoints) => ListResponse::Ok(Json(WebhookList {
                webhooks: endpoints.iter().map(shown).collect(),
            })),
            Err(error) => ListResponse::Unavailable(store_down(error)),
        }
    }

    /// One of the caller's webhook endpoints.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "getWebhook"
    )]
    async fn get(
        &self,
        #[oai(scope = "Scope::WebhooksRead")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
    ) -> WebhookResponse {
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksRead, webhook_id.0)
                .await
        );
        WebhookResponse::Ok(Json(shown(&endpoint)))
    }

    /// Change an endpoint's URL or events, or turn it off or on.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "patch",
        tag = "ApiTags::Webhooks",
        operation_id = "updateWebhook"
    )]
    async fn update(
        &self,
        #[oai(scope = "Scope::WebhooksWrite")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
        body: Json<WebhookChanges>,
    ) -> WebhookResponse {
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksWrite, webhook_id.0)
                .await
        );
        let gw = self.cx.gw();
        let mut changes = EndpointChanges {
            enabled: body.0.enabled,
            ..Default::default()
        };
        if let Some(url) = &body.0.url {
            let url = checked_url(gw, url).await;
            changes.url = Some(or_refuse!(url.map_err(WebhookResponse::BadRequest)));
        }
        if let Some(events) = &body.0.events {
            let events = checked_events(events);
            changes.events = Some(or_refuse!(events.map_err(WebhookResponse::BadRequest)));
        }
        match gw.db.update_webhook(endpoint.id, &changes).await {
            Ok(Some(endpoint)) => WebhookResponse::Ok(Json(shown(&endpoint))),
            Ok(None) => WebhookResponse::NotFound(no_such_webhook()),
            Err(error) => WebhookResponse::Unavailable(store_down(error)),
        }
    }

    /// Delete an endpoint and its deliveries.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "delete",
        tag = "ApiTags::Webhooks",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::WebhooksWrite")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
    ) -> DeleteResponse {
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksWrite, webhook_id.0)
                .await
        );
        match self.cx.gw().db.delete_webhook(endpoint.id).await {
            Ok(true) => DeleteResponse::Deleted,
            Ok(false) => DeleteResponse::NotFound(no_such_webhook()),
            Err(error) => DeleteResponse::Unavailable(store_down(error)),
        }
    }

    /// Give an endpoint a new signing secret.
    ///
    /// For a day, messages carry two signatures, one per secret, so a receiver can change its
    /// secret whenever it likes within that day.
    #[oai(
        path = "/webhooks/:webhook_id/secret",
        method = "post",
        tag = "ApiTags::Webhooks",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate(
        &self,
        #[oai(scope = "Scope::WebhooksWrite")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
    ) -> SecretResponse {
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksWrite, webhook_id.0)
                .await
        );
        match self.cx.gw().db.rotate_webhook_secret(endpoint.id).await {
            Ok(Some(endpoint)) => SecretResponse::Ok(Json(RotatedSecret {
                secret: endpoint.secret.expose(),
                previous_secret_expires_at: rfc3339(
                    endpoint.updated_at + audiomill_store::ROTATION_OVERLAP_MS,
                ),
            })),
            Ok(None) => SecretResponse::NotFound(no_such_webhook()),
            Err(error) => SecretResponse::Unavailable(store_down(error)),
        }
    }

    /// The messages sent to an endpoint, newest first, each with every attempt to deliver it
    /// (status code, latency, error).
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        tag = "ApiTags::Webhooks",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        #[oai(scope = "Scope::WebhooksRead")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
        /// How many, 1-100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> DeliveriesResponse {
        let limit = limit.0.unwrap_or(DEFAULT_DELIVERIES);
        if !(1..=MAX_DELIVERIES).contains(&limit) {
            return DeliveriesResponse::BadRequest(ErrorBody::for_field(
                "limit",
                format!("`limit` must be between 1 and {MAX_DELIVERIES}."),
            ));
        }
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksRead, webhook_id.0)
                .await
        );
        let db = &self.cx.gw().db;
        let database_down = |error| DeliveriesResponse::Unavailable(store_down(error));
        let messages = or_refuse!(
            db.webhook_messages(endpoint.id, limit)
                .await
                .map_err(database_down)
        );
        let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
        let attempts = or_refuse!(db.delivery_attempts(&ids).await.map_err(database_down));
        let deliveries = messages
            .into_iter()
            .map(|message| Delivery {
                attempts: attempts
                    .iter()
                    .filter(|a| a.message_id == message.id)
                    .map(|a| Attempt {
                        attempted_at: rfc3339(a.attempted_at),
                        status_code: a.status_code,
                        latency_ms: a.latency_ms,
                        error: a.error.clone(),
                        replay: a.replay,
                    })
                    .collect(),
                delivery_id: message.id,
                event: message.event.into(),
                job_id: message.job_id.into(),
                created_at: rfc3339(message.created_at),
                delivered_at: message.delivered_at.map(rfc3339),
            })
            .collect();
        DeliveriesResponse::Ok(Json(DeliveryList { deliveries }))
    }

    /// Send one message again, with the same id and body (newly timestamped and signed), also
    /// to an endpoint that was turned off since.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id/replay",
        method = "post",
        tag = "ApiTags::Webhooks",
        operation_id = "replayWebhookDelivery"
    )]
    async fn replay(
        &self,
        #[oai(scope = "Scope::WebhooksWrite")] auth: BearerAuth,
        webhook_id: Path<ApiWebhookId>,
        /// `msg_` and 24 letters, digits, `-` or `_`.
        #[oai(validator(pattern = r"^msg_[A-Za-z0-9_-]{24}$"))]
        delivery_id: Path<String>,
    ) -> ReplayResponse {
        let Ok(message_id) = webhook::parse_message_id(&delivery_id.0) else {
            return ReplayResponse::BadRequest(ErrorBody::new(
                ErrorCode::BadRequest,
                "The delivery id is malformed: delivery ids look like msg_ and 24 letters.",
            ));
        };
        let endpoint = or_refuse!(
            self.caller_endpoint(&auth, Scope::WebhooksWrite, webhook_id.0)
                .await
        );
        let gw = self.cx.gw();
        match gw.db.webhook_message(message_id).await {
            Ok(Some(message)) if message.endpoint_id == endpoint.id => {}
            Ok(_) => {
                return ReplayResponse::NotFound(ErrorBody::new(
                    ErrorCode::NotFound,
                    "There is no such delivery for this endpoint.",
                ));
            }
            Err(error) => return ReplayResponse::Unavailable(store_down(error)),
        }
        let input = DeliverWebhooksInput::Replay {
            message_id: message_id.to_owned(),
        };
        // One replay of a delivery at a time: its run is named after the message, and a
        // second start while the first runs is refused by Temporal.
        let run_id = format!("webhook-replay-{message_id}");
        let options = WorkflowStartOptions::new(TASK_QUEUE, run_id).build();
        match gw
            .temporal
            .start_workflow(DeliverWebhooks::run, input, options)
            .await
        {
            Ok(_) => {}
            Err(temporalio_client::errors::WorkflowStartError::AlreadyStarted { .. }) => {
                return ReplayResponse::InFlight(ErrorBody::new(
                    ErrorCode::Conflict,
                    "This delivery is already being sent again; wait until that replay ends.",
                ));
            }
            Err(error) => {
                return ReplayResponse::Unavailable(unavailable("conversion service", error));
            }
        }
        tracing::info!(webhook_id = %endpoint.id, message_id, "webhook replay started");
        ReplayResponse::Accepted(Json(ReplayAccepted {
            delivery_id: message_id.to_owned(),
            message: "The message is being sent again.".into(),
        }))
    }
}

impl WebhooksApi {
    /// The caller's user id.
    async fn caller(&self, auth: &BearerAuth, need: Scope) -> Result<UserId, Denied> {
        Ok(self.cx.authenticate(auth, need).await?.user)
    }

    /// The caller's endpoint `id`; someone else's is `NotFound`, exactly like a missing one.
    async fn caller_endpoint(
        &self,
        auth: &BearerAuth,
        need: Scope,
        id: ApiWebhookId,
    ) -> Result<WebhookEndpoint, JobRefusal> {
        let user_id = self.caller(auth, need).await?;
        match self.cx.gw().db.webhook(id.0).await {
            Ok(Some(endpoint)) if endpoint.user_id == user_id => Ok(endpoint),
            Ok(_) => Err(JobRefusal::NotFound(no_such_webhook())),
            Err(error) => Err(error.into()),
        }
    }
}

/// A URL that parses and, resolved now, reaches only addresses webhooks may reach.
async fn checked_url(gw: &Gateway, text: &str) -> Result<WebhookUrl, ErrorJson> {
    let url = WebhookUrl::parse(text)
        .map_err(|why| ErrorBody::for_field("url", format!("The URL is not acceptable: {why}.")))?;
    // Resolved again at every delivery: DNS answers change.
    webhook::resolve(&url, gw.webhook_allow_private)
        .await
        .map_err(|refusal: AddressRefusal| {
            ErrorBody::for_field("url", format!("The URL is not acceptable: {refusal}."))
        })?;
    Ok(url)
}

/// At least one event, each once.
fn checked_events(names: &[EventName]) -> Result<Vec<WebhookEvent>, ErrorJson> {
    if names.is_empty() {
        return Err(ErrorBody::for_field(
            "events",
            "Name at least one event: job.completed, job.failed, job.cancelled or job.progress.",
        ));
    }
    let mut events: Vec<WebhookEvent> = Vec::new();
    for name in names {
        let event = WebhookEvent::from(*name);
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

fn shown(endpoint: &WebhookEndpoint) -> Webhook {
    Webhook {
        id: endpoint.id.into(),
        url: endpoint.url.to_string(),
        events: endpoint
            .events
            .iter()
            .map(|e| EventName::from(*e))
            .collect(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        created_at: rfc3339(endpoint.created_at),
        updated_at: rfc3339(endpoint.updated_at),
    }
}

fn no_such_webhook() -> ErrorJson {
    ErrorBody::new(ErrorCode::NotFound, "There is no such webhook endpoint.")
}
