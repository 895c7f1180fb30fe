//! Jobs whose video is imported from a link: the link, kept apart from the job's row (it may
//! carry credentials) until the video is in storage, and the storage the video then takes,
//! checked against its owner's quota.

use crate::{
    database::{Database, parse_column},
    error::StoreError,
    lifecycle::lock_user,
    quota::OverQuota,
    time::now_millis,
};
use audiomill_domain::{JobId, UserId, import::ImportUrl, lifecycle::Quota};
use sqlx::Row;

impl Database {
    /// Records where job `job` imports its video from; in the transaction that records the job.
    pub(crate) async fn insert_import_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: JobId,
        url: &ImportUrl,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO job_imports (job_id, url, shown_url) VALUES (?, ?, ?)")
            .bind(job.to_string())
            .bind(url.as_url().as_str())
            .bind(url.redacted())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The link job `job` imports its video from, while it has not been imported; `None` for
    /// an upload, a job gone, or a video already in.
    pub async fn import_url(&self, job: JobId) -> Result<Option<ImportUrl>, StoreError> {
        let url: Option<Option<String>> =
            sqlx::query("SELECT url FROM job_imports WHERE job_id = ?")
                .bind(job.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        url.flatten()
            .map(|url| {
                ImportUrl::parse(&url).map_err(|_| StoreError::Corrupt("bad import url".into()))
            })
            .transpose()
    }

    /// What may be shown of the link job `job` was imported from; `None` for an upload.
    pub async fn shown_import_url(&self, job: JobId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT shown_url FROM job_imports WHERE job_id = ?")
                .bind(job.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        )
    }

    /// Records that job `job`'s imported video takes `size` bytes, when its owner's storage
    /// `quota` has room for them (checked with their row locked, as for an upload); the link
    /// is forgotten then, credentials and all. An import recorded already is left as it is.
    pub async fn record_import(
        &self,
        job: JobId,
        size: u64,
        quota: &Quota,
    ) -> Result<Result<(), OverQuota>, StoreError> {
        let id = job.to_string();
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT user_id FROM jobs WHERE id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Ok(()));
        };
        let user: UserId = parse_column(&row, "user_id")?;
        lock_user(&mut tx, user).await?;
        let usage = self.usage_on(&mut tx, user, now_millis(), None).await?;
        if let Some(limit) = quota.storage_bytes
            && usage.storage_bytes + size > limit
        {
            return Ok(Err(OverQuota::Storage {
                limit,
                used: usage.storage_bytes,
            }));
        }
        sqlx::query(
            "UPDATE jobs SET source_size = ? WHERE id = ? AND EXISTS \
             (SELECT 1 FROM job_imports WHERE job_id = ? AND imported_at IS NULL)",
        )
        .bind(size as i64)
        .bind(&id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE job_imports SET url = NULL, imported_at = ? \
             WHERE job_id = ? AND imported_at IS NULL",
        )
        .bind(now_millis())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
