//! `GET /jobs/{job_id}/events`: a job's progress as it happens, read from the server's
//! Server-Sent Events.

use crate::{
    generated::Client, generated::ClientInfo, generated::Error, generated::ResponseValue,
    generated::types,
};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::StatusCode;

/// One event of a job's stream.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// `progress`, `retry` or `end`.
    pub kind: String,
    /// Pass back as `last_event_id` when reconnecting.
    pub id: String,
    pub data: types::JobEvent,
}

impl JobEvent {
    /// The job has ended (completed, failed or cancelled); the stream closes after this.
    pub fn is_end(&self) -> bool {
        self.kind == "end"
    }
}

/// Why reading a job's events stopped.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the connection failed: {0}")]
    Connection(#[from] reqwest::Error),
    #[error("the event stream is malformed: {0}")]
    Malformed(String),
}

/// Follows `job_id` until it ends. With `last_event_id` (after a dropped connection), what
/// was already seen is not sent again; `Ok(None)` means the job had ended and its end was
/// seen.
pub async fn events(
    client: &Client,
    job_id: uuid::Uuid,
    last_event_id: Option<&str>,
) -> Result<
    Option<impl Stream<Item = Result<JobEvent, EventsError>> + Send + 'static>,
    Error<types::ErrorBody>,
> {
    let mut request = client
        .client()
        .get(format!("{}/jobs/{job_id}/events", client.baseurl()))
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.map_err(Error::CommunicationError)?;
    match response.status() {
        StatusCode::NO_CONTENT => return Ok(None),
        status if !status.is_success() => {
            let response = crate::limited::read_whole(response).await;
            let refusal = ResponseValue::<types::ErrorBody>::from_response(response).await?;
            return Err(Error::ErrorResponse(refusal));
        }
        _ => {}
    }
    let events = crate::limited::events_capped(response.bytes_stream())
        .eventsource()
        .map_err(|error| match error {
            eventsource_stream::EventStreamError::Transport(error) => {
                match error.downcast::<reqwest::Error>() {
                    Ok(error) => EventsError::Connection(error),
                    Err(other) => EventsError::Malformed(other.to_string()),
                }
            }
            other => EventsError::Malformed(other.to_string()),
        })
        .and_then(|event| async move {
            let data = serde_json::from_str(&event.data)
                .map_err(|error| EventsError::Malformed(format!("{error}: {}", event.data)))?;
            Ok(JobEvent {
                kind: event.event,
                id: event.id,
                data,
            })
        });
    Ok(Some(events.boxed()))
}
