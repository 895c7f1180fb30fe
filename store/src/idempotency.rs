//! `Idempotency-Key`s of uploads. A key is reserved before its upload is read, so that two
//! requests with one key never both start a job; the reservation then names the job, or is
//! released when the upload is refused. Keys live [`KEY_LIFETIME_MS`]; a reservation whose
//! gateway died mid-upload is taken over after [`ABANDONED_AFTER_MS`].

use crate::{database::Database, error::StoreError, time::now_millis};
use audiomill_domain::{JobId, UserId};
use sqlx::Row;

/// How long a key keeps naming its upload's job.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a reservation without a job is honoured: longer than an upload at the minimum
/// rate would run, so only a gateway's death leaves one behind that long.
pub const ABANDONED_AFTER_MS: i64 = 60 * 60 * 1000;

/// What a key already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key was free and is now reserved for this upload.
    Reserved,
    /// Another upload with this key is still being received.
    InProgress,
    /// An earlier upload with this key started this job.
    Used(KeyedUpload),
}

/// The upload a key started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedUpload {
    pub job_id: JobId,
    /// The file's SHA-256, hex.
    pub fingerprint: String,
    pub filename: String,
}

impl Database {
    /// Reserves `key` for an upload of `user`'s, unless a live reservation or upload holds it.
    pub async fn claim_idempotency_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<KeyClaim, StoreError> {
        let now = now_millis();
        // Expired keys go first, everyone's (cheap: by the creation-time index), and this
        // one's reservation if it was abandoned.
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(now - KEY_LIFETIME_MS)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE user_id = ? AND idem_key = ? AND job_id IS NULL AND created_at < ?",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(now - ABANDONED_AFTER_MS)
        .execute(&self.pool)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, idem_key, created_at) VALUES (?, ?, ?)",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => return Ok(KeyClaim::Reserved),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {}
            Err(error) => return Err(error.into()),
        }
        let row = sqlx::query(
            "SELECT job_id, fingerprint, filename FROM idempotency_keys \
             WHERE user_id = ? AND idem_key = ?",
        )
        .bind(user.to_string())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Released between our insert and this read: the caller may simply try again.
            return Ok(KeyClaim::InProgress);
        };
        let job_id: Option<String> = row.try_get("job_id")?;
        let Some(job_id) = job_id else {
            return Ok(KeyClaim::InProgress);
        };
        Ok(KeyClaim::Used(KeyedUpload {
            job_id: JobId::parse(&job_id)
                .map_err(|_| StoreError::Corrupt(format!("idempotency key job id {job_id}")))?,
            fingerprint: row
                .try_get::<Option<String>, _>("fingerprint")?
                .unwrap_or_default(),
            filename: row
                .try_get::<Option<String>, _>("filename")?
                .unwrap_or_default(),
        }))
    }

    /// Records the job that `user`'s reserved `key` started.
    pub async fn complete_idempotency_key(
        &self,
        user: UserId,
        key: &str,
        upload: &KeyedUpload,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET job_id = ?, fingerprint = ?, filename = ? \
             WHERE user_id = ? AND idem_key = ?",
        )
        .bind(upload.job_id.to_string())
        .bind(&upload.fingerprint)
        .bind(&upload.filename)
        .bind(user.to_string())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Frees `user`'s reserved `key` after its upload was refused.
    pub async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND job_id IS NULL",
        )
        .bind(user.to_string())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::tests::fresh;

    fn upload(job_id: JobId) -> KeyedUpload {
        KeyedUpload {
            job_id,
            fingerprint: "ab".repeat(32),
            filename: "talk.mp4".into(),
        }
    }

    #[tokio::test]
    async fn a_key_is_reserved_once_then_names_its_job_per_user() {
        let (_dir, db) = fresh().await;
        let (ann, bob) = (UserId::generate(), UserId::generate());
        assert_eq!(
            db.claim_idempotency_key(ann, "k1").await.unwrap(),
            KeyClaim::Reserved
        );
        assert_eq!(
            db.claim_idempotency_key(ann, "k1").await.unwrap(),
            KeyClaim::InProgress
        );
        assert_eq!(
            db.claim_idempotency_key(bob, "k1").await.unwrap(),
            KeyClaim::Reserved,
            "keys are scoped per user"
        );
        let job = JobId::generate();
        db.complete_idempotency_key(ann, "k1", &upload(job))
            .await
            .unwrap();
        assert_eq!(
            db.claim_idempotency_key(ann, "k1").await.unwrap(),
            KeyClaim::Used(upload(job))
        );
        db.release_idempotency_key(ann, "k1").await.unwrap();
        assert_eq!(
            db.claim_idempotency_key(ann, "k1").await.unwrap(),
            KeyClaim::Used(upload(job)),
            "a used key is not released"
        );
        db.release_idempotency_key(bob, "k1").await.unwrap();
        assert_eq!(
            db.claim_idempotency_key(bob, "k1").await.unwrap(),
            KeyClaim::Reserved
        );
    }

    #[tokio::test]
    async fn keys_expire_and_abandoned_reservations_are_taken_over() {
        let (_dir, db) = fresh().await;
        let user = UserId::generate();
        db.claim_idempotency_key(user, "old").await.unwrap();
        db.complete_idempotency_key(user, "old", &upload(JobId::generate()))
            .await
            .unwrap();
        db.claim_idempotency_key(user, "stuck").await.unwrap();
        let age = |key: &'static str, ms: i64| {
            sqlx::query("UPDATE idempotency_keys SET created_at = ? WHERE idem_key = ?")
                .bind(now_millis() - ms)
                .bind(key)
                .execute(&db.pool)
        };
        age("old", KEY_LIFETIME_MS + 1_000).await.unwrap();
        age("stuck", ABANDONED_AFTER_MS + 1_000).await.unwrap();
        assert_eq!(
            db.claim_idempotency_key(user, "old").await.unwrap(),
            KeyClaim::Reserved
        );
        assert_eq!(
            db.claim_idempotency_key(user, "stuck").await.unwrap(),
            KeyClaim::Reserved
        );
    }
}
