//! Resumable (tus) uploads as rows: what each will become, how far its bytes go, and which
//! request is appending to it now. The row is the only state an upload has outside storage,
//! so any gateway may answer the next request; a lease (`lock_holder` until `locked_until`)
//! keeps two requests from appending to one upload at once, and runs out by itself when the
//! gateway holding it dies.

use crate::{
    database::Database,
    database::{options_column, options_from_row, parse_column},
    error::StoreError,
    lifecycle::{count, lock_user},
    quota::{OverQuota, check_quota},
    time::now_millis,
};
use audiomill_domain::{
    BatchId, JobId, ObjectKey, UploadId, UserId,
    lifecycle::{BATCH_MAX_JOBS, Quota},
    output::OutputOptions,
};
use sqlx::{Row, any::AnyRow};

const COLUMNS: &str = "id, user_id, job_id, filename, source_key, upload_length, upload_offset, \
    options, callback_url, idem_key, storage_id, part_tags, created_at, expires_at, started_at, \
    batch_id, client_addr, export";

/// An upload as its creation asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResumable {
    pub id: UploadId,
    pub user_id: UserId,
    /// The job the upload becomes once complete.
    pub job_id: JobId,
    pub filename: String,
    /// Where the complete file is kept (the job's source).
    pub source_key: ObjectKey,
    /// The file's size in bytes, as `Upload-Length` gave it.
    pub length: u64,
    pub options: OutputOptions,
    pub callback_url: Option<String>,
    pub idempotency_key: Option<String>,
    /// The batch its client named, which its job joins.
    pub batch_id: Option<BatchId>,
    /// The storage's own name for the unfinished object (an S3 multipart upload's id).
    pub storage_id: Option<String>,
    pub expires_at: i64,
    /// The address it was created from (for the per-address limit).
    pub client_addr: Option<String>,
    /// Where its MP3 goes besides Audiomill's storage, checked at its creation.
    pub export: Option<crate::sources::NewExport>,
}

/// An upload as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumable {
    pub upload: NewResumable,
    /// Bytes received and kept.
    pub offset: u64,
    /// The tags of the S3 parts stored so far, in order.
    pub part_tags: Vec<String>,
    pub created_at: i64,
    /// When its job started; `None` while bytes are missing.
    pub started_at: Option<i64>,
}

impl Resumable {
    pub fn is_complete(&self) -> bool {
        self.offset == self.upload.length
    }
}

/// What a creation led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Creation {
    Created,
    /// The user's `Idempotency-Key` already names this upload.
    Existing(Box<Resumable>),
    /// The limit it would pass; nothing is recorded.
    Refused(CreationRefusal),
}

/// Which limit refused a creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationRefusal {
    /// The user has this many unfinished uploads already.
    TooMany { limit: u64 },
    /// The address it comes from has this many unfinished uploads already, over all accounts.
    TooManyFromAddress { limit: u64 },
    /// The storage quota leaves no room for its whole length.
    Over(OverQuota),
    /// The batch it names holds this many jobs and unfinished uploads already.
    BatchFull { limit: u64 },
}

/// What a creation must stay within, checked with the user's row locked so that creations at
/// once cannot all pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationLimits {
    /// Unfinished uploads per user.
    pub per_user: u64,
    /// Unfinished uploads per address, over all its users.
    pub per_address: u64,
    /// The user's quota: the upload's whole length must fit.
    pub quota: Quota,
}

impl Database {
    /// The upload `user` created earlier with `key`, if any.
    pub async fn resumable_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Resumable>, StoreError> {
        let query =
            format!("SELECT {COLUMNS} FROM resumable_uploads WHERE user_id = ? AND idem_key = ?");
        sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(user.to_string())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(resumable_from_row)
            .transpose()
    }

    /// Records a new upload, unless it would pass one of `limits` or its `Idempotency-Key`
    /// names another. Unfinished uploads that expired count no more.
    pub async fn create_resumable(
        &self,
        upload: &NewResumable,
        limits: &CreationLimits,
    ) -> Result<Creation, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, upload.user_id).await?;
        if let Some(key) = &upload.idempotency_key {
            let query = format!(
                "SELECT {COLUMNS} FROM resumable_uploads WHERE user_id = ? AND idem_key = ?"
            );
            let earlier = sqlx::query(sqlx::AssertSqlSafe(query))
                .bind(upload.user_id.to_string())
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = earlier {
                return Ok(Creation::Existing(Box::new(resumable_from_row(&row)?)));
            }
        }
        if let Some(refusal) = self.creation_refusal(&mut tx, upload, limits).await? {
            return Ok(Creation::Refused(refusal));
        }
        let inserted = insert_resumable(&mut tx, upload).await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(Creation::Created)
            }
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                drop(tx);
                let key = upload.idempotency_key.as_deref().unwrap_or_default();
                match self.resumable_by_key(upload.user_id, key).await? {
                    Some(existing) => Ok(Creation::Existing(Box::new(existing))),
                    None => Err(StoreError::Conflict("upload")),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Which of `limits` the upload would pass, counted on `conn` (the user's row locked).
    async fn creation_refusal(
        &self,
        conn: &mut sqlx::AnyConnection,
        upload: &NewResumable,
        limits: &CreationLimits,
    ) -> Result<Option<CreationRefusal>, StoreError> {
        let (user, now) = (upload.user_id.to_string(), now_millis());
        let unfinished = count(
            conn,
            sqlx::query(
                "SELECT COUNT(*) FROM resumable_uploads WHERE user_id = ? \
                 AND started_at IS NULL AND expires_at > ?",
            )
            .bind(&user)
            .bind(now),
        )
        .await?;
        if unfinished >= limits.per_user {
            return Ok(Some(CreationRefusal::TooMany {
                limit: limits.per_user,
            }));
        }
        if let Some(address) = &upload.client_addr {
            let from_address = count(
                conn,
                sqlx::query(
                    "SELECT COUNT(*) FROM resumable_uploads WHERE client_addr = ? \
                     AND started_at IS NULL AND expires_at > ?",
                )
                .bind(address)
                .bind(now),
            )
            .await?;
            if from_address >= limits.per_address {
                return Ok(Some(CreationRefusal::TooManyFromAddress {
                    limit: limits.per_address,
                }));
            }
        }
        let usage = self.usage_on(conn, upload.user_id, now, None).await?;
        if let Err(over) = check_quota(&limits.quota, usage, upload.length) {
            return Ok(Some(CreationRefusal::Over(over)));
        }
        if let Some(batch) = upload.batch_id {
            let batch = batch.to_string();
            let jobs = count(
                conn,
                sqlx::query("SELECT COUNT(*) FROM jobs WHERE user_id = ? AND batch_id = ?")
                    .bind(&user)
                    .bind(&batch),
            )
            .await?;
            let waiting = count(
                conn,
                sqlx::query(
                    "SELECT COUNT(*) FROM resumable_uploads WHERE user_id = ? AND batch_id = ? \
                     AND started_at IS NULL AND expires_at > ?",
                )
                .bind(&user)
                .bind(&batch)
                .bind(now),
            )
            .await?;
            if jobs + waiting >= BATCH_MAX_JOBS {
                return Ok(Some(CreationRefusal::BatchFull {
                    limit: BATCH_MAX_JOBS,
                }));
            }
        }
        Ok(None)
    }

    pub async fn resumable(&self, id: UploadId) -> Result<Option<Resumable>, StoreError> {
        let query = format!("SELECT {COLUMNS} FROM resumable_uploads WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(resumable_from_row)
            .transpose()
    }

    /// Takes the upload's lease for `holder` until `until` (Unix ms), unless another holds an
    /// unexpired one; true when taken.
    pub async fn lease_resumable(
        &self,
        id: UploadId,
        holder: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE resumable_uploads SET lock_holder = ?, locked_until = ? \
             WHERE id = ? AND (locked_until IS NULL OR locked_until < ? OR lock_holder = ?)",
        )
        .bind(holder)
        .bind(until)
        .bind(id.to_string())
        .bind(now_millis())
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives the lease up (if `holder` still has it).
    pub async fn release_resumable(&self, id: UploadId, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE resumable_uploads SET lock_holder = NULL, locked_until = NULL \
             WHERE id = ? AND lock_holder = ?",
        )
        .bind(id.to_string())
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the upload's bytes now reach `offset`, in these S3 parts; false when
    /// `holder` lost the lease meanwhile (then nothing is recorded).
    pub async fn record_resumable_offset(
        &self,
        id: UploadId,
        holder: &str,
        offset: u64,
        part_tags: &[String],
    ) -> Result<bool, StoreError> {
        let tags = serde_json::to_string(part_tags).expect("tags serialize");
        let recorded = sqlx::query(
            "UPDATE resumable_uploads SET upload_offset = ?, part_tags = ? \
             WHERE id = ? AND lock_holder = ?",
        )
        .bind(offset as i64)
        .bind(tags)
        .bind(id.to_string())
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(recorded.rows_affected() == 1)
    }

    /// Marks the upload's job started; the row stays until it expires, to answer `HEAD`.
    pub async fn mark_resumable_started(&self, id: UploadId) -> Result<(), StoreError> {
        sqlx::query("UPDATE resumable_uploads SET started_at = ? WHERE id = ?")
            .bind(now_millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_resumable(&self, id: UploadId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM resumable_uploads WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Up to `limit` uploads expired at `as_of` (Unix ms), unfinished or not.
    pub async fn expired_resumables(
        &self,
        as_of: i64,
        limit: u32,
    ) -> Result<Vec<Resumable>, StoreError> {
        let query = format!(
            "SELECT {COLUMNS} FROM resumable_uploads WHERE expires_at <= ? \
             ORDER BY expires_at LIMIT ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(as_of)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(resumable_from_row)
            .collect()
    }
}

fn resumable_from_row(row: &AnyRow) -> Result<Resumable, StoreError> {
    let tags: Option<String> = row.try_get("part_tags")?;
    let part_tags = serde_json::from_str(tags.as_deref().unwrap_or("[]"))
        .map_err(|_| StoreError::Corrupt("bad part tags".into()))?;
    let size = |column: &str| -> Result<u64, StoreError> {
        Ok(row.try_get::<i64, _>(column)?.max(0) as u64)
    };
    Ok(Resumable {
        upload: NewResumable {
            id: parse_column(row, "id")?,
            user_id: parse_column(row, "user_id")?,
            job_id: parse_column(row, "job_id")?,
            filename: row.try_get("filename")?,
            source_key: parse_column(row, "source_key")?,
            length: size("upload_length")?,
            options: options_from_row(row)?,
            callback_url: row.try_get("callback_url")?,
            idempotency_key: row.try_get("idem_key")?,
            batch_id: row
                .try_get::<Option<String>, _>("batch_id")?
                .map(|id| {
                    BatchId::parse(&id).map_err(|_| StoreError::Corrupt("bad batch id".into()))
                })
                .transpose()?,
            storage_id: row.try_get("storage_id")?,
            expires_at: row.try_get("expires_at")?,
            client_addr: row.try_get("client_addr")?,
            export: row
                .try_get::<Option<String>, _>("export")?
                .and_then(|text| crate::sources::NewExport::from_column(&text)),
        },
        offset: size("upload_offset")?,
        part_tags,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
    })
}

async fn insert_resumable(
    conn: &mut sqlx::AnyConnection,
    upload: &NewResumable,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO resumable_uploads (id, user_id, job_id, filename, source_key, \
         upload_length, upload_offset, options, callback_url, idem_key, storage_id, \
         part_tags, created_at, expires_at, batch_id, client_addr, export) \
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?)",
    )
    .bind(upload.id.to_string())
    .bind(upload.user_id.to_string())
    .bind(upload.job_id.to_string())
    .bind(&upload.filename)
    .bind(upload.source_key.as_ref())
    .bind(upload.length as i64)
    .bind(options_column(&upload.options))
    .bind(upload.callback_url.as_deref())
    .bind(upload.idempotency_key.as_deref())
    .bind(upload.storage_id.as_deref())
    .bind(now_millis())
    .bind(upload.expires_at)
    .bind(upload.batch_id.map(|id| id.to_string()))
    .bind(upload.client_addr.as_deref())
    .bind(
        upload
            .export
            .as_ref()
            .map(crate::sources::NewExport::to_column),
    )
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewJob, NotRecorded, database::tests::fresh};
    use audiomill_domain::{EmailAddress, output::OutputOptions};

    fn unlimited() -> CreationLimits {
        CreationLimits {
            per_user: 10,
            per_address: 10,
            quota: Quota::default(),
        }
    }

    fn upload_for(user: UserId, batch: BatchId) -> NewResumable {
        let job_id = JobId::generate();
        NewResumable {
            id: UploadId::generate(),
            user_id: user,
            job_id,
            filename: "clip.mp4".into(),
            source_key: ObjectKey::source(job_id, "mp4"),
            length: 1000,
            options: OutputOptions::default(),
            callback_url: None,
            idempotency_key: None,
            batch_id: Some(batch),
            storage_id: None,
            expires_at: now_millis() + 60_000,
            client_addr: Some("192.0.2.1".into()),
            export: None,
        }
    }

    /// A batch's cap holds wherever a file joins it: a job recorded past it is refused, and
    /// so is a creation once its jobs and the unfinished uploads naming it fill it.
    #[tokio::test]
    async fn a_full_batch_takes_no_further_job_or_upload() {
        let (_dir, db) = fresh().await;
        let email = EmailAddress::parse("ann@example.com").unwrap();
        let user = db.create_user(&email, "hash", false).await.unwrap().id;
        let batch = BatchId::generate();
        let job = |n: u64| NewJob {
            id: JobId::generate(),
            user_id: user,
            original_filename: format!("clip-{n}.mp4"),
            source_key: ObjectKey::parse(&format!("sources/{n}.mp4")).unwrap(),
            source_size: 1,
            options: OutputOptions::default(),
            batch_id: Some(batch),
            session_id: None,
            import: None,
            export: None,
        };
        for n in 0..BATCH_MAX_JOBS - 2 {
            db.insert_job(&job(n)).await.unwrap();
        }
        let quota = Quota::default();
        assert_eq!(
            db.insert_job_within(&job(998), &quota).await.unwrap(),
            Ok(())
        );
        // One place left: an upload takes it, the next finds the batch full.
        let first = upload_for(user, batch);
        let created = db.create_resumable(&first, &unlimited()).await.unwrap();
        assert_eq!(created, Creation::Created);
        let second = upload_for(user, batch);
        assert_eq!(
            db.create_resumable(&second, &unlimited()).await.unwrap(),
            Creation::Refused(CreationRefusal::BatchFull {
                limit: BATCH_MAX_JOBS
            })
        );
        // The upload's own job fills the batch; one more job is refused.
        let its_job = NewJob {
            id: first.job_id,
            ..job(999)
        };
        assert_eq!(
            db.insert_job_within(&its_job, &quota).await.unwrap(),
            Ok(())
        );
        assert_eq!(
            db.insert_job_within(&job(1000), &quota).await.unwrap(),
            Err(NotRecorded::BatchFull {
                limit: BATCH_MAX_JOBS
            })
        );
        assert_eq!(db.batch_jobs(user, batch).await.unwrap().len(), 1000);
    }
}
