//! API keys: long-lived credentials with a name and scopes, each a login of its own (a row of
//! `sessions`), so revoking one ends it exactly like a logout ends a login.

use crate::{
    database::{Database, User, parse_column},
    error::StoreError,
    lifecycle::{count, lock_user},
    time::now_millis,
};
use audiomill_domain::UserId;
use sqlx::{Row, any::AnyRow};

/// How often a key's `last_used_at` is written at most: a busy key costs no write per request.
const LAST_USED_PRECISION_MS: i64 = 60_000;

const KEY_COLUMNS: &str = "k.session_id, k.user_id, k.prefix, k.secret_hash, k.name, k.scopes, \
    k.created_at, k.expires_at, k.last_used_at, s.revoked_at";

/// A stored API key; its secret is kept only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The login the key is: what jobs started with it name, and what revoking it ends.
    pub session_id: String,
    pub user_id: UserId,
    /// The key's public part and its id.
    pub prefix: String,
    pub secret_hash: String,
    pub name: String,
    /// Its scopes, separated by spaces.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

impl ApiKey {
    /// Whether the key is past its expiry at `now` (Unix ms).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: UserId,
    pub session_id: String,
    pub prefix: String,
    pub secret_hash: String,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
}

/// A key refused because its user holds as many live keys as they may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyKeys {
    pub limit: u64,
}

impl Database {
    /// Stores `key` unless its user already holds `limit` keys that are neither revoked nor
    /// expired; the count and the insert run under a lock on the user, so concurrent
    /// creations cannot pass the limit together.
    pub async fn create_api_key(
        &self,
        key: &NewApiKey,
        limit: u64,
    ) -> Result<Result<ApiKey, TooManyKeys>, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, key.user_id).await?;
        let held = count(
            &mut tx,
            sqlx::query(
                "SELECT COUNT(*) FROM api_keys k JOIN sessions s ON s.id = k.session_id \
                 WHERE k.user_id = ? AND s.revoked_at IS NULL \
                 AND (k.expires_at IS NULL OR k.expires_at > ?)",
            )
            .bind(key.user_id.to_string())
            .bind(now),
        )
        .await?;
        if held >= limit {
            return Ok(Err(TooManyKeys { limit }));
        }
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&key.session_id)
            .bind(key.user_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_keys (session_id, user_id, prefix, secret_hash, name, scopes, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.session_id)
        .bind(key.user_id.to_string())
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(&key.name)
        .bind(&key.scopes)
        .bind(now)
        .bind(key.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(ApiKey {
            session_id: key.session_id.clone(),
            user_id: key.user_id,
            prefix: key.prefix.clone(),
            secret_hash: key.secret_hash.clone(),
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            created_at: now,
            expires_at: key.expires_at,
            last_used_at: None,
            revoked: false,
        }))
    }

    /// The user's keys that are not revoked (expired ones included, until revoked), newest
    /// first.
    pub async fn api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN sessions s ON s.id = k.session_id \
             WHERE k.user_id = ? AND s.revoked_at IS NULL ORDER BY k.created_at DESC, k.prefix"
        )))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    /// The key with public part `prefix` and its user, revoked or not.
    pub async fn api_key(&self, prefix: &str) -> Result<Option<(ApiKey, User)>, StoreError> {
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN sessions s ON s.id = k.session_id \
             WHERE k.prefix = ?"
        )))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let key = key_from_row(&row)?;
        Ok(self.user_by_id(key.user_id).await?.map(|user| (key, user)))
    }

    /// Revokes the user's key `prefix`; `false` when they have no such live key.
    pub async fn revoke_api_key(&self, user: UserId, prefix: &str) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = ? \
             AND id IN (SELECT session_id FROM api_keys WHERE prefix = ? AND user_id = ?)",
        )
        .bind(now_millis())
        .bind(user.to_string())
        .bind(prefix)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    /// Notes that key `prefix` was used now, at most once a minute.
    pub async fn touch_api_key(&self, prefix: &str) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "UPDATE api_keys SET last_used_at = ? WHERE prefix = ? \
             AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(now)
        .bind(prefix)
        .bind(now - LAST_USED_PRECISION_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every login of `user` that is not an API key or a watch (web sessions and the
    /// refresh tokens of programs), but `keep` if named; the number ended. Keys stay until
    /// they are revoked, watches until they are deleted.
    pub async fn end_logins(&self, user: UserId, keep: Option<&str>) -> Result<u64, StoreError> {
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL \
             AND id <> ? AND id NOT IN (SELECT session_id FROM api_keys WHERE user_id = ?) \
             AND id NOT IN (SELECT session_id FROM watches WHERE user_id = ?)",
        )
        .bind(now_millis())
        .bind(user.to_string())
        .bind(keep.unwrap_or(""))
        .bind(user.to_string())
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(ended.rows_affected())
    }

    /// Replaces `user`'s password hash; `false` when there is no such user.
    pub async fn set_password(&self, user: UserId, hash: &str) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        session_id: row.try_get("session_id")?,
        user_id: parse_column(row, "user_id")?,
        prefix: row.try_get("prefix")?,
        secret_hash: row.try_get("secret_hash")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}
