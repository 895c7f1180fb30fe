//! What a job leaves behind, over time: when its objects expire and which are due for removal
//! (the cleanup's batches), how much each user keeps and starts (quotas), and removing a
//! user's jobs on request.

use crate::sources::JobImport;
use crate::{
    database::Database,
    database::Job,
    database::{JOB_COLUMNS, job_from_row, parse_column},
    error::StoreError,
    quota::{NotRecorded, OwnQuota, Usage, check_quota},
    time::now_millis,
};
use audiomill_domain::{
    JobId, ObjectKey, UserId,
    lifecycle::{BATCH_MAX_JOBS, Quota, Retention, utc_day},
};
use sqlx::Row;

/// A job the cleanup removes: the objects it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueJob {
    pub id: JobId,
    /// The uploaded video, unless it was removed before.
    pub source_key: Option<ObjectKey>,
    /// The MP3, if the job made one.
    pub mp3_key: Option<ObjectKey>,
}

/// Bytes a user keeps, per job: the video unless removed, and the MP3 (of jobs not expired).
const BYTES_KEPT: &str =
    "CASE WHEN source_removed_at IS NULL THEN source_size ELSE 0 END + COALESCE(mp3_size, 0)";

impl Database {
    /// Sets when an ended job's objects expire, counted from its ending; once (a retried step
    /// keeps the first times). Nothing for a job still running or gone.
    pub async fn schedule_expiry(
        &self,
        id: JobId,
        retention: &Retention,
    ) -> Result<(), StoreError> {
        let Some(ended_at) =
            sqlx::query("SELECT ended_at FROM jobs WHERE id = ? AND expires_at IS NULL")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten())
        else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE jobs SET expires_at = ?, source_expires_at = ? WHERE id = ? AND expires_at IS NULL",
        )
        .bind(retention.job_expiry(ended_at))
        .bind(retention.source_expiry(ended_at))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The uploaded video of job `id`, if it is due for removal at `now` and still there.
    pub async fn source_due(&self, id: JobId, now: i64) -> Result<Option<ObjectKey>, StoreError> {
        sqlx::query(
            "SELECT source_key FROM jobs WHERE id = ? AND source_removed_at IS NULL \
             AND source_expires_at <= ?",
        )
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| parse_column(&row, "source_key"))
        .transpose()
    }

    /// Up to `limit` jobs whose uploaded video is due for removal at `as_of`, still there.
    pub async fn due_sources(
        &self,
        as_of: i64,
        limit: u32,
    ) -> Result<Vec<(JobId, ObjectKey)>, StoreError> {
        sqlx::query(
            "SELECT id, source_key FROM jobs WHERE source_removed_at IS NULL \
             AND source_expires_at <= ? ORDER BY source_expires_at LIMIT ?",
        )
        .bind(as_of)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((parse_column(row, "id")?, parse_column(row, "source_key")?)))
        .collect()
    }

    /// Notes that job `id`'s uploaded video is removed (from then on it counts in no quota).
    pub async fn mark_source_removed(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET source_removed_at = ? WHERE id = ? AND source_removed_at IS NULL",
        )
        .bind(now_millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` jobs that expire at `as_of` and still hold objects or rows.
    pub async fn due_jobs(&self, as_of: i64, limit: u32) -> Result<Vec<DueJob>, StoreError> {
        sqlx::query(
            "SELECT id, source_key, source_removed_at, mp3_key FROM jobs WHERE expired_at IS NULL \
             AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        )
        .bind(as_of)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let removed: Option<i64> = row.try_get("source_removed_at")?;
            let mp3_key: Option<String> = row.try_get("mp3_key")?;
            Ok(DueJob {
                id: parse_column(row, "id")?,
                source_key: match removed {
                    Some(_) => None,
                    None => Some(parse_column(row, "source_key")?),
                },
                mp3_key: mp3_key
                    .map(|key| ObjectKey::parse(&key))
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("bad mp3 key".into()))?,
            })
        })
        .collect()
    }

    /// Marks job `id` expired once its objects are gone, and removes the rows that only served
    /// it (its webhook messages and their attempts, its upload's idempotency key). The job's
    /// own row stays, as the record that it existed. Returns how many rows were removed.
    pub async fn mark_expired(&self, id: JobId) -> Result<u64, StoreError> {
        let job = id.to_string();
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        let mut removed = sqlx::query(
            "DELETE FROM webhook_attempts WHERE message_id IN \
             (SELECT id FROM webhook_messages WHERE job_id = ?)",
        )
        .bind(&job)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for statement in [
            "DELETE FROM webhook_messages WHERE job_id = ?",
            "DELETE FROM idempotency_keys WHERE job_id = ?",
            "DELETE FROM webhook_endpoints WHERE one_off_for = ?",
            "DELETE FROM job_imports WHERE job_id = ?",
            "DELETE FROM job_exports WHERE job_id = ?",
        ] {
            removed += sqlx::query(statement)
                .bind(&job)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        // A batch's one-off endpoint goes with the last of its jobs.
        let batch: Option<String> = sqlx::query("SELECT batch_id FROM jobs WHERE id = ?")
            .bind(&job)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .flatten();
        if let Some(batch) = batch {
            removed += sqlx::query(
                "DELETE FROM webhook_endpoints WHERE one_off_for = ? AND NOT EXISTS \
                 (SELECT 1 FROM jobs WHERE batch_id = ? AND id <> ? AND expired_at IS NULL)",
            )
            .bind(&batch)
            .bind(&batch)
            .bind(&job)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "UPDATE jobs SET expired_at = ?, source_removed_at = COALESCE(source_removed_at, ?) \
             WHERE id = ? AND expired_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(&job)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// What `user` keeps in storage (unfinished resumable uploads counting their whole
    /// length) and has started today (UTC) at `now`.
    pub async fn usage(&self, user: UserId, now: i64) -> Result<Usage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.usage_on(&mut conn, user, now, None).await
    }

    /// [`Database::usage`] on `conn`, leaving out the reservation of the upload that becomes
    /// job `becoming` (its bytes are counted as the job's instead).
    pub(crate) async fn usage_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        user: UserId,
        now: i64,
        becoming: Option<JobId>,
    ) -> Result<Usage, StoreError> {
        let user = user.to_string();
        let stored: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM jobs WHERE user_id = ? AND expired_at IS NULL",
            self.integer_sum(BYTES_KEPT)
        )))
        .bind(&user)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        // An unfinished upload holds its whole length from its creation: bytes promised are
        // room taken, or many unfinished uploads would together pass the quota.
        let reserved: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM resumable_uploads WHERE user_id = ? AND started_at IS NULL \
             AND expires_at > ? AND job_id <> ?",
            self.integer_sum("upload_length")
        )))
        .bind(&user)
        .bind(now)
        .bind(becoming.map(|job| job.to_string()).unwrap_or_default())
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let jobs: Option<i64> =
            sqlx::query("SELECT jobs FROM job_starts WHERE user_id = ? AND day = ?")
                .bind(&user)
                .bind(utc_day(now))
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        Ok(Usage {
            storage_bytes: (stored.max(0) + reserved.max(0)) as u64,
            jobs_today: jobs.unwrap_or(0).max(0) as u64,
        })
    }

    /// Sets `user`'s own limits (see [`OwnQuota`]); `false` when there is no such user.
    pub async fn set_quota(&self, user: UserId, quota: OwnQuota) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE users SET quota_storage_bytes = ?, quota_jobs_per_day = ? WHERE id = ?",
        )
        .bind(quota.storage_bytes.map(|v| v as i64))
        .bind(quota.jobs_per_day.map(|v| v as i64))
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records a new job when `quota` allows it and its batch has room, counting it in its
    /// user's jobs of the day. The user's row is locked meanwhile, so that uploads at once
    /// cannot all pass one limit. `Ok(Err(..))` names the limit the job would break; nothing is
    /// recorded then.
    pub async fn insert_job_within(
        &self,
        job: &crate::database::NewJob,
        quota: &Quota,
    ) -> Result<Result<(), NotRecorded>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let recorded = self.insert_job_within_on(&mut tx, job, quota).await?;
        if recorded.is_ok() {
            tx.commit().await?;
        }
        Ok(recorded)
    }

    /// [`Database::insert_job_within`] in a transaction of the caller's, which it locks the
    /// user's row in and leaves open.
    pub(crate) async fn insert_job_within_on(
        &self,
        tx: &mut sqlx::AnyConnection,
        job: &crate::database::NewJob,
        quota: &Quota,
    ) -> Result<Result<(), NotRecorded>, StoreError> {
        let user = job.user_id.to_string();
        let now = now_millis();
        lock_user(&mut *tx, job.user_id).await?;
        let usage = self
            .usage_on(&mut *tx, job.user_id, now, Some(job.id))
            .await?;
        if let Err(over) = check_quota(quota, usage, job.source_size) {
            return Ok(Err(NotRecorded::Over(over)));
        }
        if let Some(batch) = job.batch_id {
            let held = count(
                &mut *tx,
                sqlx::query("SELECT COUNT(*) FROM jobs WHERE user_id = ? AND batch_id = ?")
                    .bind(&user)
                    .bind(batch.to_string()),
            )
            .await?;
            if held >= BATCH_MAX_JOBS {
                return Ok(Err(NotRecorded::BatchFull {
                    limit: BATCH_MAX_JOBS,
                }));
            }
        }
        self.insert_job_on(&mut *tx, job, now).await?;
        match &job.import {
            Some(JobImport::Link(url)) => self.insert_import_on(&mut *tx, job.id, url).await?,
            Some(JobImport::Bucket { connection, key }) => {
                self.insert_bucket_import_on(&mut *tx, job.id, connection, key)
                    .await?
            }
            Some(JobImport::HostFile { path, shown }) => {
                self.insert_host_import_on(&mut *tx, job.id, path, shown)
                    .await?
            }
            None => {}
        }
        if let Some(export) = &job.export {
            self.insert_export_on(&mut *tx, job.id, export).await?;
        }
        let day = utc_day(now);
        let counted =
            sqlx::query("UPDATE job_starts SET jobs = jobs + 1 WHERE user_id = ? AND day = ?")
                .bind(&user)
                .bind(day)
                .execute(&mut *tx)
                .await?;
        if counted.rows_affected() == 0 {
            sqlx::query("INSERT INTO job_starts (user_id, day, jobs) VALUES (?, ?, 1)")
                .bind(&user)
                .bind(day)
                .execute(&mut *tx)
                .await?;
        }
        Ok(Ok(()))
    }

    /// Up to `limit` of `user`'s jobs, oldest first: all of them, or only those still running.
    pub async fn jobs_of(
        &self,
        user: UserId,
        running_only: bool,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let running = if running_only {
            " AND outcome IS NULL"
        } else {
            ""
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = ?{running} ORDER BY created_at, id LIMIT ?"
        )))
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    /// Removes job `id`'s row and the rows that served it, once its objects are gone. The
    /// day's job count stays: removing jobs gives no quota back.
    pub async fn remove_job(&self, id: JobId) -> Result<(), StoreError> {
        self.mark_expired(id).await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Locks `user`'s row until the transaction ends: checks of their limits and the insert that
/// counts against them run one request at a time.
pub(crate) async fn lock_user(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET id = id WHERE id = ?")
        .bind(user.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What a `SELECT COUNT(*)` query counts.
pub(crate) async fn count<'q>(
    conn: &mut sqlx::AnyConnection,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
) -> Result<u64, StoreError> {
    let n: i64 = query.fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(n.max(0) as u64)
}
