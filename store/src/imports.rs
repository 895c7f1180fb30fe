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

    /// Records that job `job` imports its video from a file of the host; in the transaction
    /// that records the job.
    pub(crate) async fn insert_host_import_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: JobId,
        path: &std::path::Path,
        shown: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO job_imports (job_id, host_path, shown_url) VALUES (?, ?, ?)")
            .bind(job.to_string())
            .bind(path.to_string_lossy().into_owned())
            .bind(format!("{shown} in a folder of the server"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The file of the host job `job` imports its video from, while it has not been
    /// imported; `None` otherwise.
    pub async fn host_import(&self, job: JobId) -> Result<Option<std::path::PathBuf>, StoreError> {
        let path: Option<Option<String>> = sqlx::query(
            "SELECT host_path FROM job_imports WHERE job_id = ? AND imported_at IS NULL",
        )
        .bind(job.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        Ok(path.flatten().map(std::path::PathBuf::from))
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

#[cfg(test)]
mod tests {
    use crate::database::{NewJob, tests::fresh};
    use crate::sources::JobImport;
    use audiomill_domain::{
        EmailAddress, JobId, ObjectKey, import::ImportUrl, lifecycle::Quota, output::OutputOptions,
    };

    #[tokio::test]
    async fn an_import_keeps_its_link_until_its_video_is_in_and_counts_against_the_quota() {
        let (_dir, db) = fresh().await;
        let email = EmailAddress::parse("ivy@example.com").unwrap();
        let user = db.create_user(&email, "hash", false).await.unwrap();
        let quota = Quota {
            storage_bytes: Some(1_000),
            jobs_per_day: Some(1),
        };
        let url = ImportUrl::parse("https://ivy:pw@example.com/a.mp4?sig=1").unwrap();
        let job = |id: JobId, import: Option<ImportUrl>, size: u64| NewJob {
            id,
            user_id: user.id,
            original_filename: "a.mp4".into(),
            source_key: ObjectKey::source(id, "mp4"),
            source_size: size,
            options: OutputOptions::default(),
            batch_id: None,
            session_id: None,
            import: import.map(JobImport::Link),
            export: None,
        };
        let imported = JobId::generate();
        db.insert_job_within(&job(imported, Some(url.clone()), 0), &quota)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.import_url(imported).await.unwrap(), Some(url));
        assert_eq!(
            db.shown_import_url(imported).await.unwrap().as_deref(),
            Some("https://example.com/a.mp4")
        );
        // Another job (uploaded) takes 600 bytes: 500 more do not fit, 400 do.
        db.insert_job(&job(JobId::generate(), None, 600))
            .await
            .unwrap();
        let over = db.record_import(imported, 500, &quota).await.unwrap();
        assert!(over.is_err(), "{over:?}");
        assert!(
            db.import_url(imported).await.unwrap().is_some(),
            "kept for a retry"
        );
        db.record_import(imported, 400, &quota)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.job(imported).await.unwrap().unwrap().source_size, 400);
        // The link, credentials and all, is forgotten once the video is in; a second record
        // (an attempt that ran again) changes nothing.
        assert_eq!(db.import_url(imported).await.unwrap(), None);
        db.record_import(imported, 999, &Quota::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.job(imported).await.unwrap().unwrap().source_size, 400);
        db.delete_job(imported).await.unwrap();
        assert_eq!(db.shown_import_url(imported).await.unwrap(), None);
    }
}
