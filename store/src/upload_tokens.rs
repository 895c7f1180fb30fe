//! Upload tokens: short-lived credentials that may only upload, minted by a login or a key.

use crate::{
    database::{Database, User, options_from_row, parse_column},
    error::StoreError,
    time::now_millis,
};
use audiomill_domain::{UserId, output::OutputOptions};
use sqlx::Row;

/// A stored upload token; its secret is kept only as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadToken {
    pub prefix: String,
    pub secret_hash: String,
    pub user_id: UserId,
    /// The login (or key) that minted it: when that ends, so does the token.
    pub session_id: String,
    pub expires_at: i64,
    pub uploads_left: u64,
    pub max_bytes: Option<u64>,
    /// The output choices every upload with it gets; `None`: the uploader's own.
    pub options: Option<OutputOptions>,
}

impl Database {
    pub async fn create_upload_token(&self, token: &UploadToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upload_tokens (prefix, secret_hash, user_id, session_id, created_at, \
             expires_at, uploads_left, max_bytes, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.prefix)
        .bind(&token.secret_hash)
        .bind(token.user_id.to_string())
        .bind(&token.session_id)
        .bind(now_millis())
        .bind(token.expires_at)
        .bind(token.uploads_left as i64)
        .bind(token.max_bytes.map(|bytes| bytes as i64))
        .bind(
            token
                .options
                .as_ref()
                .map(|options| serde_json::to_string(options).expect("options serialize")),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with public part `prefix` and its user.
    pub async fn upload_token(
        &self,
        prefix: &str,
    ) -> Result<Option<(UploadToken, User)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT prefix, secret_hash, user_id, session_id, expires_at, uploads_left, \
             max_bytes, options FROM upload_tokens WHERE prefix = ?",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let token = UploadToken {
            prefix: row.try_get("prefix")?,
            secret_hash: row.try_get("secret_hash")?,
            user_id: parse_column(&row, "user_id")?,
            session_id: row.try_get("session_id")?,
            expires_at: row.try_get("expires_at")?,
            uploads_left: row.try_get::<i64, _>("uploads_left")?.max(0) as u64,
            max_bytes: row
                .try_get::<Option<i64>, _>("max_bytes")?
                .map(|bytes| bytes.max(0) as u64),
            options: row
                .try_get::<Option<String>, _>("options")?
                .is_some()
                .then(|| options_from_row(&row))
                .transpose()?,
        };
        Ok(self
            .user_by_id(token.user_id)
            .await?
            .map(|user| (token, user)))
    }

    /// Takes one upload from token `prefix`; `false` when it has none left.
    pub async fn spend_upload(&self, prefix: &str) -> Result<bool, StoreError> {
        let spent = sqlx::query(
            "UPDATE upload_tokens SET uploads_left = uploads_left - 1 \
             WHERE prefix = ? AND uploads_left > 0",
        )
        .bind(prefix)
        .execute(&self.pool)
        .await?;
        Ok(spent.rows_affected() == 1)
    }

    /// Notes that token `prefix` created resumable upload `upload_id`.
    pub async fn note_token_upload(&self, prefix: &str, upload_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO upload_token_uploads (upload_id, prefix) VALUES (?, ?)")
            .bind(upload_id)
            .bind(prefix)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether token `prefix` created resumable upload `upload_id`.
    pub async fn token_made_upload(
        &self,
        prefix: &str,
        upload_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT prefix FROM upload_token_uploads WHERE upload_id = ?")
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<String, _>("prefix")? == prefix,
            None => false,
        })
    }
}
