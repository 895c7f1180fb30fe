//! The relational state: users, login sessions with their refresh tokens, and jobs.
//!
//! One `sqlx::AnyPool` serves SQLite and MySQL alike, so every query here is written once in
//! the SQL both understand (`?` placeholders, integers for times and flags).

use crate::{error::StoreError, time::now_millis};
use audiomill_domain::{
    BatchId, EmailAddress, JobId, JobStatus, ObjectKey, UserId,
    contract::JobEnding,
    output::{OutputOptions, SourceTrack},
};
use sqlx::{
    AnyPool, Row,
    any::{AnyPoolOptions, AnyRow},
};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub(crate) const USER_COLUMNS: &str = "id, email, password_hash, is_admin, active, completion_emails, \
    quota_storage_bytes, quota_jobs_per_day";

#[derive(Clone)]
pub struct Database {
    pub(crate) pool: AnyPool,
    pub(crate) is_mysql: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub password_hash: String,
    pub is_admin: bool,
    pub active: bool,
    /// Whether the user wants an e-mail when a job completes.
    pub completion_emails: bool,
    /// The limits an admin set for this user, over the deployment's defaults.
    pub quota: crate::quota::OwnQuota,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub user_id: UserId,
    pub original_filename: String,
    pub source_key: ObjectKey,
    pub source_size: u64,
    pub options: OutputOptions,
    /// The batch of an upload with several files; `None` for a file uploaded alone.
    pub batch_id: Option<BatchId>,
    /// The login it was started in.
    pub session_id: Option<String>,
    /// Where its video is imported from; `None` for an upload.
    pub import: Option<crate::sources::JobImport>,
    /// Where its MP3 goes besides Audiomill's storage.
    pub export: Option<crate::sources::NewExport>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub user_id: UserId,
    pub original_filename: String,
    pub source_key: ObjectKey,
    pub source_size: u64,
    pub created_at: i64,
    pub mp3_key: Option<ObjectKey>,
    pub mp3_size: Option<u64>,
    pub duration_ms: Option<u64>,
    pub completed_at: Option<i64>,
    pub notified_at: Option<i64>,
    /// How the job ended (`completed`, `failed` or `cancelled`); `None` while it runs.
    pub outcome: Option<JobStatus>,
    /// A failed job's failure type (`CorruptMedia`, ...).
    pub failure_type: Option<String>,
    /// What the MP3 should be, as the upload asked.
    pub options: OutputOptions,
    pub batch_id: Option<BatchId>,
    /// When the MP3 and the job expire (Unix ms); set when the job ends.
    pub expires_at: Option<i64>,
    /// When the cleanup removed the job's objects; the row stays, holding no object.
    pub expired_at: Option<i64>,
    /// When a worker first took it; `None` while it waits for one (queued).
    pub taken_at: Option<i64>,
    /// Whether its output is the source's audio copied as it is (stream copy).
    pub copied: bool,
    /// The source's audio tracks, once read, when it has more than one.
    pub audio_tracks: Vec<SourceTrack>,
}

impl Job {
    /// The MP3's key once the job has completed (stored and marked so); `None` before, and
    /// once the cleanup removed it.
    pub fn finished_mp3(&self) -> Option<&ObjectKey> {
        match self.expired_at {
            Some(_) => None,
            None => self.completed_at.and(self.mp3_key.as_ref()),
        }
    }

    /// Whether the job has expired at `now` (Unix ms): its objects are removed, or are due to
    /// be at the cleanup's next run.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expired_at.is_some() || self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The columns [`job_from_row`] reads.
pub(crate) const JOB_COLUMNS: &str = "id, user_id, original_filename, source_key, source_size, \
    created_at, mp3_key, mp3_size, duration_ms, completed_at, notified_at, outcome, failure_type, \
    options, batch_id, expires_at, expired_at, taken_at, copied_at, audio_tracks";

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now spent; the new one replaces it.
    Rotated { user_id: UserId, session_id: String },
    /// The token had been used before: someone replayed it, so its whole session is revoked.
    Reused,
    /// Unknown, expired, or from a revoked session.
    Invalid,
}

impl Database {
    /// Connects to `url` (`sqlite://...` or `mysql://...`). A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}mode=rwc")
        } else {
            url.to_owned()
        };
        let options = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5));
        let options = if is_sqlite {
            // WAL lets readers run beside the one writer; the busy timeout makes a writer wait
            // for the lock instead of failing at once.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url).await?;
        Ok(Self {
            pool,
            is_mysql: !is_sqlite,
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        if self.is_mysql {
            self.ensure_utf8mb4().await?;
        }
        Ok(())
    }

    /// File names and e-mail addresses may hold any Unicode character, but a MySQL or MariaDB
    /// database created with another default character set (MariaDB's is latin1) would refuse
    /// them. Tables not yet in utf8mb4 are converted once; afterwards this is one cheap query.
    async fn ensure_utf8mb4(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME IN ('users', 'sessions', 'refresh_tokens', 'jobs', 'webhook_endpoints', 'webhook_messages', 'webhook_attempts') \
             AND TABLE_COLLATION NOT LIKE 'utf8mb4%'",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let table: String = row.try_get(0)?;
            // The name comes from the fixed list above, never from input.
            let statement = format!(
                "ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&self.pool)
                .await?;
            tracing::info!(%table, "converted to utf8mb4");
        }
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The server's name and version, as it reports them (`MariaDB 10.11.6`, `SQLite 3.40.1`).
    pub async fn server_version(&self) -> Result<String, StoreError> {
        let (query, name) = if self.is_mysql {
            ("SELECT VERSION()", "MySQL")
        } else {
            ("SELECT sqlite_version()", "SQLite")
        };
        let row = sqlx::query(query).fetch_one(&self.pool).await?;
        let version: String = row.try_get(0)?;
        // MariaDB says so in its version string (`10.11.6-MariaDB-0+deb12u1`).
        Ok(match version.split_once("-MariaDB") {
            Some((number, _)) => format!("MariaDB {number}"),
            None => format!("{name} {version}"),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- users -----

    pub async fn create_user(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User, StoreError> {
        let id = UserId::generate();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, is_admin, active, created_at) \
             VALUES (?, ?, ?, ?, 1, ?)",
        )
        .bind(id.to_string())
        .bind(email.as_ref())
        .bind(password_hash)
        .bind(i64::from(is_admin))
        .bind(now_millis())
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(User {
                id,
                email: email.clone(),
                password_hash: password_hash.to_owned(),
                is_admin,
                active: true,
                completion_emails: true,
                quota: crate::quota::OwnQuota::default(),
            }),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(StoreError::Conflict("user"))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn user_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ?"
        )))
        .bind(email.as_ref())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    /// Turns a user's completion e-mails on or off; false when there is no such user.
    /// Turns a user's account on or off; `false` when there is no such user. An account that
    /// is off cannot log in, and its tokens stop working at their next use.
    pub async fn set_active(&self, id: UserId, active: bool) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE users SET active = ? WHERE id = ?")
            .bind(i64::from(active))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub async fn set_completion_emails(&self, id: UserId, on: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET completion_emails = ? WHERE id = ?")
            .bind(i64::from(on))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        // MySQL counts changed rows, not matched ones: setting the same value again is 0.
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        Ok(self.user_by_id(id).await?.is_some())
    }

    // ----- sessions and refresh tokens -----

    /// Opens a login session whose first refresh token has the given hash.
    pub async fn create_session(
        &self,
        user_id: UserId,
        session_id: &str,
        refresh_hash: &str,
        refresh_expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(session_id)
            .bind(user_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, session_id, refresh_hash, refresh_expires_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends the refresh token with hash `old_hash` and stores `new_hash` in its place. The
    /// update that marks a token used is the one place that decides, so two concurrent uses of
    /// one token cannot both succeed.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = now_millis();
        let Some(row) = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.used_at, s.user_id, s.revoked_at \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
        )
        .bind(old_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id: String = row.try_get("session_id")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let user_id = parse_column::<UserId>(&row, "user_id")?;
        if revoked_at.is_some() {
            return Ok(RefreshOutcome::Invalid);
        }
        if used_at.is_some() {
            self.revoke_session(&session_id).await?;
            return Ok(RefreshOutcome::Reused);
        }
        if expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }

        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            // Another request spent it between our read and this update: a replay.
            tx.rollback().await?;
            self.revoke_session(&session_id).await?;
            return Ok(RefreshOutcome::Reused);
        }
        insert_refresh(&mut tx, &session_id, new_hash, new_expires_at).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            user_id,
            session_id,
        })
    }

    pub async fn revoke_session(&self, session_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// True when the session exists, belongs to `user_id`, is not revoked, and the user is
    /// still active.
    pub async fn session_is_active(
        &self,
        user_id: UserId,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT s.revoked_at, u.active FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = ? AND s.user_id = ?",
        )
        .bind(session_id)
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => {
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                let active: i64 = row.try_get("active")?;
                revoked_at.is_none() && active != 0
            }
            None => false,
        })
    }

    // ----- jobs -----

    /// Records a new job, outside any quota (see [`Database::insert_job_within`]).
    pub async fn insert_job(&self, job: &NewJob) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.insert_job_on(&mut conn, job, now_millis()).await
    }

    pub(crate) async fn insert_job_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: &NewJob,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (id, user_id, original_filename, source_key, source_size, created_at, \
             options, batch_id, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(job.id.to_string())
        .bind(job.user_id.to_string())
        .bind(&job.original_filename)
        .bind(job.source_key.as_ref())
        .bind(job.source_size as i64)
        .bind(now)
        .bind(options_column(&job.options))
        .bind(job.batch_id.map(|id| id.to_string()))
        .bind(job.session_id.as_deref())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Notes that a worker took job `id` (the first time only).
    pub async fn mark_job_taken(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET taken_at = ? WHERE id = ? AND taken_at IS NULL")
            .bind(now_millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether job `id`'s user is still active and the login that started it still open
    /// (jobs recorded before logins were kept with them answer for their user only); `false`
    /// for a job that is gone.
    pub async fn job_login_is_active(&self, id: JobId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT user_id, session_id FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let user: UserId = parse_column(&row, "user_id")?;
        match row.try_get::<Option<String>, _>("session_id")? {
            Some(session) => self.session_is_active(user, &session).await,
            None => Ok(self.user_by_id(user).await?.is_some_and(|user| user.active)),
        }
    }

    /// Takes back a job whose upload was refused after it was recorded: its row, and its place
    /// in its user's jobs of the day.
    pub async fn delete_job(&self, id: JobId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        delete_job_on(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The jobs of `user_id`'s batch `batch_id`, in the order they were uploaded; none when
    /// the batch is someone else's or does not exist.
    pub async fn batch_jobs(
        &self,
        user_id: UserId,
        batch_id: BatchId,
    ) -> Result<Vec<Job>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = ? AND user_id = ? ORDER BY id"
        )))
        .bind(batch_id.to_string())
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| job_from_row(&row))
        .transpose()
    }

    /// Notes what the transcode found of the source: that its audio was copied as it is
    /// (`copied`), and its audio tracks when it has more than one. One statement, and none
    /// when there is nothing to note (one track, encoded).
    pub async fn note_source(
        &self,
        id: JobId,
        copied: bool,
        tracks: &[SourceTrack],
    ) -> Result<(), StoreError> {
        let tracks =
            (tracks.len() > 1).then(|| serde_json::to_string(tracks).expect("tracks serialize"));
        if !copied && tracks.is_none() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE jobs SET copied_at = COALESCE(?, copied_at), \
             audio_tracks = COALESCE(?, audio_tracks) WHERE id = ?",
        )
        .bind(copied.then(now_millis))
        .bind(tracks)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the finished MP3, which completes the job. `Ok(true)` when this call completed
    /// it, `Ok(false)` when an earlier attempt had (a retried `store_mp3`), and
    /// `Conflict` when the job ended otherwise meanwhile (cancelled).
    pub async fn record_mp3(
        &self,
        id: JobId,
        mp3_key: &ObjectKey,
        mp3_size: u64,
        duration_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let updated = sqlx::query(
            "UPDATE jobs SET mp3_key = ?, mp3_size = ?, duration_ms = ?, completed_at = ?, \
             ended_at = ?, conversion_ms = ? - created_at, outcome = 'completed' \
             WHERE id = ? AND outcome IS NULL",
        )
        .bind(mp3_key.as_ref())
        .bind(mp3_size as i64)
        .bind(duration_ms as i64)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(true);
        }
        match self.job(id).await?.ok_or(StoreError::NotFound)?.outcome {
            Some(JobStatus::Completed) => Ok(false),
            _ => Err(StoreError::Conflict("job ended")),
        }
    }

    /// Records how a job that did not complete ended. `true` when this call recorded it;
    /// `false` when the job had already ended (or is gone), so a retry counts nothing twice.
    pub async fn record_ending(&self, id: JobId, ending: &JobEnding) -> Result<bool, StoreError> {
        let (outcome, failure_type) = match ending {
            JobEnding::Failed { failure_type } => (JobStatus::Failed, Some(failure_type.as_str())),
            JobEnding::Cancelled => (JobStatus::Cancelled, None),
        };
        let updated = sqlx::query(
            "UPDATE jobs SET outcome = ?, failure_type = ?, ended_at = ? \
             WHERE id = ? AND outcome IS NULL",
        )
        .bind(outcome.as_str())
        .bind(failure_type)
        .bind(now_millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Claims the right to send a job's notification. Only the first caller ever gets `true`,
    /// which is what makes "one e-mail per job" hold across retries and replays.
    pub async fn claim_notification(&self, id: JobId) -> Result<bool, StoreError> {
        let claimed =
            sqlx::query("UPDATE jobs SET notified_at = ? WHERE id = ? AND notified_at IS NULL")
                .bind(now_millis())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Gives a claim back after a send that certainly did not happen (the server refused it),
    /// so the next attempt may try again.
    pub async fn release_notification(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET notified_at = NULL WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: &str,
    refresh_hash: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(refresh_hash)
    .bind(session_id)
    .bind(expires_at)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// [`Database::delete_job`] in a transaction of the caller's.
pub(crate) async fn delete_job_on(
    conn: &mut sqlx::AnyConnection,
    id: JobId,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT user_id, created_at FROM jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        let user: String = row.try_get("user_id")?;
        let created_at: i64 = row.try_get("created_at")?;
        sqlx::query(
            "UPDATE job_starts SET jobs = jobs - 1 WHERE user_id = ? AND day = ? AND jobs > 0",
        )
        .bind(user)
        .bind(audiomill_domain::lifecycle::utc_day(created_at))
        .execute(&mut *conn)
        .await?;
        for statement in [
            "DELETE FROM job_imports WHERE job_id = ?",
            "DELETE FROM job_exports WHERE job_id = ?",
            "DELETE FROM jobs WHERE id = ?",
        ] {
            sqlx::query(statement)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

pub(crate) fn parse_column<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: TryFrom<String>,
{
    let text: String = row.try_get(column)?;
    T::try_from(text).map_err(|_| StoreError::Corrupt(format!("bad value in column {column}")))
}

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: parse_column(row, "id")?,
        email: parse_column(row, "email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        active: row.try_get::<i64, _>("active")? != 0,
        completion_emails: row.try_get::<i64, _>("completion_emails")? != 0,
        quota: crate::quota::OwnQuota {
            storage_bytes: unsigned(row.try_get("quota_storage_bytes")?),
            jobs_per_day: unsigned(row.try_get("quota_jobs_per_day")?),
        },
    })
}

/// A count or size column, never negative.
fn unsigned(value: Option<i64>) -> Option<u64> {
    value.map(|v| v.max(0) as u64)
}

pub(crate) fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    let mp3_key: Option<String> = row.try_get("mp3_key")?;
    let mp3_key = mp3_key
        .map(|key| ObjectKey::parse(&key))
        .transpose()
        .map_err(|_| StoreError::Corrupt("bad mp3 key".into()))?;
    Ok(Job {
        id: parse_column(row, "id")?,
        user_id: parse_column(row, "user_id")?,
        original_filename: row.try_get("original_filename")?,
        source_key: parse_column(row, "source_key")?,
        source_size: row.try_get::<i64, _>("source_size")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
        mp3_key,
        mp3_size: unsigned(row.try_get("mp3_size")?),
        duration_ms: unsigned(row.try_get("duration_ms")?),
        completed_at: row.try_get("completed_at")?,
        notified_at: row.try_get("notified_at")?,
        outcome: row
            .try_get::<Option<String>, _>("outcome")?
            .map(|text| {
                JobStatus::parse(&text).ok_or_else(|| StoreError::Corrupt("bad outcome".into()))
            })
            .transpose()?,
        failure_type: row.try_get("failure_type")?,
        options: options_from_row(row)?,
        batch_id: row
            .try_get::<Option<String>, _>("batch_id")?
            .map(|id| BatchId::parse(&id).map_err(|_| StoreError::Corrupt("bad batch id".into())))
            .transpose()?,
        expires_at: row.try_get("expires_at")?,
        expired_at: row.try_get("expired_at")?,
        taken_at: row.try_get("taken_at")?,
        copied: row.try_get::<Option<i64>, _>("copied_at")?.is_some(),
        audio_tracks: row
            .try_get::<Option<String>, _>("audio_tracks")?
            .map(|json| {
                serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("bad tracks".into()))
            })
            .transpose()?
            .unwrap_or_default(),
    })
}

/// The `options` column: JSON, or NULL for the defaults.
pub(crate) fn options_from_row(row: &AnyRow) -> Result<OutputOptions, StoreError> {
    row.try_get::<Option<String>, _>("options")?
        .map(|json| {
            serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("bad options".into()))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The `options` column's value: JSON, or NULL for the defaults.
pub(crate) fn options_column(options: &OutputOptions) -> Option<String> {
    (!options.is_default()).then(|| serde_json::to_string(options).expect("options serialize"))
}

#[cfg(test)]
pub(crate) mod tests;
