//! Webhook endpoints, the messages made for them and the attempts to deliver those.
//!
//! A message is one event told to one endpoint; its id is derived from both (see
//! `audiomill_domain::webhook::message_id`), so preparing it again finds the row already there
//! and every retry and replay sends the same body under the same id.

use crate::{
    database::Database, database::Job, database::parse_column, error::StoreError, time::now_millis,
};
use audiomill_domain::{
    JobId, UserId, WebhookId,
    webhook::{WebhookEvent, WebhookSecret, WebhookUrl},
};
use sqlx::{Row, any::AnyRow};

/// How long the secret before a rotation keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

/// The most endpoints one user may register.
pub const MAX_ENDPOINTS_PER_USER: i64 = 20;

const ENDPOINT_COLUMNS: &str = "id, user_id, url, events, secret, previous_secret, \
    previous_secret_until, enabled, disabled_reason, created_at, updated_at, one_off_for";

/// A registered endpoint. Its secret signs every message sent to it.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub user_id: UserId,
    pub url: WebhookUrl,
    pub events: Vec<WebhookEvent>,
    pub secret: WebhookSecret,
    /// The secret before the last rotation, while it still signs too.
    pub previous_secret: Option<WebhookSecret>,
    pub enabled: bool,
    /// Why it was disabled, when not by its owner (a receiver that answered 410).
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// An upload's `callback_url`: the job or batch it is told of; `None` for a registered
    /// endpoint.
    pub one_off_for: Option<String>,
}

impl WebhookEndpoint {
    /// The secrets that sign a message sent now: the current one, and the previous one during
    /// its overlap.
    pub fn signing_secrets(&self) -> Vec<&WebhookSecret> {
        std::iter::once(&self.secret)
            .chain(self.previous_secret.as_ref())
            .collect()
    }
}

/// A new endpoint's settings.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub user_id: UserId,
    pub url: WebhookUrl,
    pub events: Vec<WebhookEvent>,
}

/// Changes to an endpoint; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<WebhookUrl>,
    pub events: Option<Vec<WebhookEvent>>,
    pub enabled: Option<bool>,
}

/// A message with the endpoint it goes to.
#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub id: String,
    pub endpoint_id: WebhookId,
    pub job_id: JobId,
    pub event: WebhookEvent,
    pub payload: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// One try at delivering a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub message_id: String,
    pub attempted_at: i64,
    /// The receiver's status code; `None` when it never answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub replay: bool,
}

impl Database {
    /// Registers an endpoint with a fresh secret; `Conflict` when the user has as many as
    /// allowed already. Concurrent registrations of one user are counted one after another:
    /// the transaction first locks the user's row (an update that changes nothing, which both
    /// databases lock), so the limit holds for any number of requests at once.
    pub async fn create_webhook(
        &self,
        endpoint: &NewEndpoint,
    ) -> Result<WebhookEndpoint, StoreError> {
        let user = endpoint.user_id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET id = id WHERE id = ?")
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ? AND one_off_for IS NULL",
        )
        .bind(&user)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if count >= MAX_ENDPOINTS_PER_USER {
            return Err(StoreError::Conflict("webhook endpoint limit"));
        }
        let id = insert_endpoint(&mut tx, endpoint, None).await?;
        tx.commit().await?;
        self.webhook(id)
            .await?
            .ok_or(StoreError::Corrupt("the new endpoint vanished".into()))
    }

    /// An upload's one-off endpoint (its `callback_url`), told of the job or batch `one_off_for`
    /// names; it counts in no limit and no list.
    pub async fn create_callback(
        &self,
        endpoint: &NewEndpoint,
        one_off_for: &str,
    ) -> Result<WebhookEndpoint, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let id = insert_endpoint(&mut conn, endpoint, Some(one_off_for)).await?;
        self.webhook(id)
            .await?
            .ok_or(StoreError::Corrupt("the new endpoint vanished".into()))
    }

    /// Removes the one-off endpoints made for `one_off_for` (an upload refused after its
    /// callback was recorded).
    pub async fn delete_callbacks(&self, one_off_for: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_endpoints WHERE one_off_for = ?")
            .bind(one_off_for)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The endpoints that may be told of `job`: its owner's registered ones, and the one-off
    /// endpoint of its upload (for the job, or for its batch).
    pub async fn webhooks_for_job(&self, job: &Job) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let batch = job.batch_id.map(|batch| batch.to_string());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = ? \
             AND (one_off_for IS NULL OR one_off_for = ? OR one_off_for = ?) \
             ORDER BY created_at, id"
        )))
        .bind(job.user_id.to_string())
        .bind(job.id.to_string())
        .bind(batch.unwrap_or_else(|| job.id.to_string()))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    pub async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| endpoint_from_row(&row))
        .transpose()
    }

    /// The user's registered endpoints, oldest first.
    pub async fn webhooks_of(&self, user: UserId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = ? \
             AND one_off_for IS NULL ORDER BY created_at, id"
        )))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    /// Applies `changes`; turning an endpoint on again clears why it was off.
    pub async fn update_webhook(
        &self,
        id: WebhookId,
        changes: &EndpointChanges,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let Some(current) = self.webhook(id).await? else {
            return Ok(None);
        };
        let url = changes.url.as_ref().unwrap_or(&current.url);
        let events = changes.events.as_ref().unwrap_or(&current.events);
        let enabled = changes.enabled.unwrap_or(current.enabled);
        let reason = if enabled {
            None
        } else {
            current.disabled_reason.as_deref()
        };
        sqlx::query(
            "UPDATE webhook_endpoints SET url = ?, events = ?, enabled = ?, disabled_reason = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(url.as_str())
        .bind(events_column(events))
        .bind(i64::from(enabled))
        .bind(reason)
        .bind(now_millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        self.webhook(id).await
    }

    /// Replaces the secret; the old one keeps signing beside it for [`ROTATION_OVERLAP_MS`].
    pub async fn rotate_webhook_secret(
        &self,
        id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let Some(current) = self.webhook(id).await? else {
            return Ok(None);
        };
        let now = now_millis();
        sqlx::query(
            "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, \
             previous_secret_until = ?, updated_at = ? WHERE id = ?",
        )
        .bind(new_secret().expose())
        .bind(current.secret.expose())
        .bind(now + ROTATION_OVERLAP_MS)
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        self.webhook(id).await
    }

    /// Turns an endpoint off because its receiver said so; nothing more is sent to it until
    /// its owner turns it on again.
    pub async fn disable_webhook(&self, id: WebhookId, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(reason)
        .bind(now_millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an endpoint with its messages and their attempts; false when there was none.
    pub async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE message_id IN \
             (SELECT id FROM webhook_messages WHERE endpoint_id = ?)",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_messages WHERE endpoint_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Stores a message unless one with its id exists; either way the stored one is returned,
    /// so a second preparation keeps the first body.
    pub async fn ensure_webhook_message(
        &self,
        message: &WebhookMessage,
    ) -> Result<WebhookMessage, StoreError> {
        if let Some(existing) = self.webhook_message(&message.id).await? {
            return Ok(existing);
        }
        let inserted = sqlx::query(
            "INSERT INTO webhook_messages (id, endpoint_id, job_id, event, payload, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&message.id)
        .bind(message.endpoint_id.to_string())
        .bind(message.job_id.to_string())
        .bind(message.event.as_str())
        .bind(&message.payload)
        .bind(message.created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(message.clone()),
            // Another attempt stored it first.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => self
                .webhook_message(&message.id)
                .await?
                .ok_or(StoreError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn webhook_message(&self, id: &str) -> Result<Option<WebhookMessage>, StoreError> {
        sqlx::query(
            "SELECT id, endpoint_id, job_id, event, payload, created_at, delivered_at \
             FROM webhook_messages WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| message_from_row(&row))
        .transpose()
    }

    /// An endpoint's messages, newest first, at most `limit`.
    pub async fn webhook_messages(
        &self,
        endpoint: WebhookId,
        limit: u32,
    ) -> Result<Vec<WebhookMessage>, StoreError> {
        sqlx::query(
            "SELECT id, endpoint_id, job_id, event, payload, created_at, delivered_at \
             FROM webhook_messages WHERE endpoint_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(endpoint.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    /// Records an attempt, and the message as delivered when the receiver took it.
    pub async fn record_delivery_attempt(
        &self,
        attempt: &DeliveryAttempt,
        delivered: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (id, message_id, attempted_at, status_code, latency_ms, \
             error, replay) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&attempt.message_id)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.latency_ms as i64)
        .bind(attempt.error.as_deref())
        .bind(i64::from(attempt.replay))
        .execute(&mut *tx)
        .await?;
        if delivered {
            sqlx::query(
                "UPDATE webhook_messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
            )
            .bind(attempt.attempted_at)
            .bind(&attempt.message_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The attempts at the given messages, oldest first.
    pub async fn delivery_attempts(
        &self,
        message_ids: &[String],
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; message_ids.len()].join(", ");
        let sql = format!(
            "SELECT message_id, attempted_at, status_code, latency_ms, error, replay \
             FROM webhook_attempts WHERE message_id IN ({placeholders}) \
             ORDER BY attempted_at, id"
        );
        // Only placeholders are formatted in; the ids are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in message_ids {
            query = query.bind(id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let status: Option<i64> = row.try_get("status_code")?;
                Ok(DeliveryAttempt {
                    message_id: row.try_get("message_id")?,
                    attempted_at: row.try_get("attempted_at")?,
                    status_code: status.and_then(|s| u16::try_from(s).ok()),
                    latency_ms: row.try_get::<i64, _>("latency_ms")?.max(0) as u64,
                    error: row.try_get("error")?,
                    replay: row.try_get::<i64, _>("replay")? != 0,
                })
            })
            .collect()
    }
}

/// Inserts an endpoint with a fresh secret; its id.
async fn insert_endpoint(
    conn: &mut sqlx::AnyConnection,
    endpoint: &NewEndpoint,
    one_off_for: Option<&str>,
) -> Result<WebhookId, StoreError> {
    let id = WebhookId::generate();
    let now = now_millis();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, user_id, url, events, secret, enabled, created_at, \
         updated_at, one_off_for) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(endpoint.user_id.to_string())
    .bind(endpoint.url.as_str())
    .bind(events_column(&endpoint.events))
    .bind(new_secret().expose())
    .bind(now)
    .bind(now)
    .bind(one_off_for.map(str::to_owned))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

fn events_column(events: &[WebhookEvent]) -> String {
    events
        .iter()
        .map(|event| event.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn endpoint_from_row(row: &AnyRow) -> Result<WebhookEndpoint, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("bad webhook {what}"));
    let url: String = row.try_get("url")?;
    let events: String = row.try_get("events")?;
    let secret: String = row.try_get("secret")?;
    let previous: Option<String> = row.try_get("previous_secret")?;
    let previous_until: Option<i64> = row.try_get("previous_secret_until")?;
    let previous_secret = match (previous, previous_until) {
        (Some(secret), Some(until)) if until > now_millis() => {
            Some(WebhookSecret::parse(&secret).map_err(|_| corrupt("secret"))?)
        }
        _ => None,
    };
    Ok(WebhookEndpoint {
        id: parse_column(row, "id")?,
        user_id: parse_column(row, "user_id")?,
        url: WebhookUrl::parse(&url).map_err(|_| corrupt("url"))?,
        events: events
            .split(',')
            .filter(|name| !name.is_empty())
            .map(WebhookEvent::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("events"))?,
        secret: WebhookSecret::parse(&secret).map_err(|_| corrupt("secret"))?,
        previous_secret,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        one_off_for: row.try_get("one_off_for")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<WebhookMessage, StoreError> {
    let event: String = row.try_get("event")?;
    Ok(WebhookMessage {
        id: row.try_get("id")?,
        endpoint_id: parse_column(row, "endpoint_id")?,
        job_id: parse_column(row, "job_id")?,
        event: WebhookEvent::parse(&event)
            .map_err(|_| StoreError::Corrupt("bad webhook event".into()))?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

/// A new signing secret: 32 random bytes, as the Standard Webhooks specification advises.
fn new_secret() -> WebhookSecret {
    let mut bytes = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    WebhookSecret::from_bytes(bytes)
}
