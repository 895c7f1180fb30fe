//! Watch folders in the database: the watches (each a login of its own), and the object
//! versions each has taken, recorded in the transaction that records their job so that one
//! version makes one job however often a scan is tried again.

use crate::{
    database::{Database, NewJob, options_column, options_from_row, parse_column},
    error::StoreError,
    lifecycle::{count, lock_user},
    quota::NotRecorded,
    sources::NewExport,
    time::now_millis,
};
use audiomill_domain::{
    ConnectionId, JobId, UserId, WatchId, lifecycle::Quota, output::OutputOptions,
};
use sqlx::{Row, any::AnyRow};
use std::path::PathBuf;

/// The most watches one user may keep.
pub const MAX_WATCHES_PER_USER: u64 = 20;

const WATCH_COLUMNS: &str = "id, user_id, session_id, name, connection_id, directory, prefix, \
    options, export, max_running, interval_seconds, max_bytes, paused_at, created_at, scanned_at, \
    trouble";

/// What a watch looks into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchedPlace {
    /// A connection's bucket, under the connection's prefix and the watch's.
    Bucket(ConnectionId),
    /// A folder of the workers' hosts (absolute), inside one of `WATCH_DIRECTORIES`.
    Directory(PathBuf),
}

/// A watch: new objects of its folder become jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub id: WatchId,
    pub user_id: UserId,
    /// The login its jobs run under; deleting the watch ends it.
    pub session_id: String,
    pub name: String,
    pub place: WatchedPlace,
    /// Under the connection's prefix: empty, or ending in `/` (empty for a directory).
    pub prefix: String,
    pub options: OutputOptions,
    /// Where its MP3s also go.
    pub export: Option<NewExport>,
    /// Its jobs running at once at most; the next wait for one to end.
    pub max_running: u32,
    /// Seconds between the end of one pass over the folder and the next.
    pub interval_seconds: u32,
    /// The largest video it converts, as the gateway allowed when it was made.
    pub max_bytes: u64,
    pub paused_at: Option<i64>,
    pub created_at: i64,
    /// When a pass over the whole folder last ended.
    pub scanned_at: Option<i64>,
    /// Why the last scan could not read the folder, in a sentence; `None` when it could.
    pub trouble: Option<String>,
}

/// A watch as its user asks for it, checked.
#[derive(Debug, Clone)]
pub struct NewWatch {
    pub user_id: UserId,
    pub name: String,
    pub place: WatchedPlace,
    pub prefix: String,
    pub options: OutputOptions,
    pub export: Option<NewExport>,
    pub max_running: u32,
    pub interval_seconds: u32,
    pub max_bytes: u64,
}

/// How many jobs a watch has made, and how many of them still run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchCounts {
    pub jobs: u64,
    pub running: u64,
}

/// An object version a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedObject {
    pub watch_id: WatchId,
    pub key: String,
    pub version: String,
}

/// What recording an object version's job did.
#[derive(Debug)]
pub enum WatchRecord {
    /// The job is recorded now.
    Recorded,
    /// A job of this version was recorded before.
    Seen,
    /// The user's quota or a limit refused it; nothing is recorded.
    Refused(NotRecorded),
    /// The watch was paused or deleted meanwhile; nothing is recorded.
    Stopped,
}

impl Database {
    /// Saves a watch and the login its jobs run under; `Conflict` past
    /// [`MAX_WATCHES_PER_USER`].
    pub async fn create_watch(&self, new: &NewWatch) -> Result<Watch, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, new.user_id).await?;
        let held = count(
            &mut tx,
            sqlx::query("SELECT COUNT(*) FROM watches WHERE user_id = ?")
                .bind(new.user_id.to_string()),
        )
        .await?;
        if held >= MAX_WATCHES_PER_USER {
            return Err(StoreError::Conflict("too many watches"));
        }
        let id = WatchId::generate();
        let watch = Watch {
            id,
            user_id: new.user_id,
            session_id: format!("watch-{id}"),
            name: new.name.clone(),
            place: new.place.clone(),
            prefix: new.prefix.clone(),
            options: new.options.clone(),
            export: new.export.clone(),
            max_running: new.max_running,
            interval_seconds: new.interval_seconds,
            max_bytes: new.max_bytes,
            paused_at: None,
            created_at: now_millis(),
            scanned_at: None,
            trouble: None,
        };
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&watch.session_id)
            .bind(watch.user_id.to_string())
            .bind(watch.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO watches ({WATCH_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(watch.id.to_string())
        .bind(watch.user_id.to_string())
        .bind(&watch.session_id)
        .bind(&watch.name)
        .bind(match &watch.place {
            WatchedPlace::Bucket(connection) => Some(connection.to_string()),
            WatchedPlace::Directory(_) => None,
        })
        .bind(match &watch.place {
            WatchedPlace::Directory(path) => Some(path.to_string_lossy().into_owned()),
            WatchedPlace::Bucket(_) => None,
        })
        .bind(&watch.prefix)
        .bind(options_column(&watch.options))
        .bind(watch.export.as_ref().map(NewExport::to_column))
        .bind(i64::from(watch.max_running))
        .bind(i64::from(watch.interval_seconds))
        .bind(watch.max_bytes as i64)
        .bind(None::<i64>)
        .bind(watch.created_at)
        .bind(None::<i64>)
        .bind(None::<String>)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(watch)
    }

    /// Watch `id`, whoever owns it.
    pub async fn watch(&self, id: WatchId) -> Result<Option<Watch>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| watch_from_row(&row))
        .transpose()
    }

    /// `user`'s watches, oldest first.
    pub async fn watches_of(&self, user: UserId) -> Result<Vec<Watch>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches WHERE user_id = ? ORDER BY created_at, id"
        )))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(watch_from_row)
        .collect()
    }

    /// Pauses (or resumes) `user`'s watch `id`, under the user's lock as jobs are recorded,
    /// so that none is recorded for it once paused; `false` when they have none by that id.
    pub async fn pause_watch(
        &self,
        user: UserId,
        id: WatchId,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, user).await?;
        let updated = sqlx::query("UPDATE watches SET paused_at = ? WHERE id = ? AND user_id = ?")
            .bind(paused.then(now_millis))
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Deletes `user`'s watch `id` and ends its login (its jobs not yet converted end with
    /// it); `None` when they have none by that id. Its jobs stay; the answer names those
    /// whose start was never noted (a scan this cut off may have recorded one and never
    /// started it: the caller removes any that has no run).
    pub async fn delete_watch(
        &self,
        user: UserId,
        id: WatchId,
    ) -> Result<Option<Vec<JobId>>, StoreError> {
        let Some(watch) = self.watch(id).await?.filter(|w| w.user_id == user) else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        // Under the user's lock, as jobs are recorded: none is recorded for it after this.
        lock_user(&mut tx, user).await?;
        let unstarted: Vec<JobId> = sqlx::query(
            "SELECT job_id FROM watch_objects WHERE watch_id = ? AND started_at IS NULL",
        )
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| parse_column(row, "job_id"))
        .collect::<Result<_, _>>()?;
        sqlx::query("DELETE FROM watches WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM watch_objects WHERE watch_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(&watch.session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(unstarted))
    }

    /// How many jobs watch `id` has made, and how many of them still run.
    pub async fn watch_counts(&self, id: WatchId) -> Result<WatchCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(CASE WHEN j.outcome IS NULL THEN 1 END) \
             FROM watch_objects w JOIN jobs j ON j.id = w.job_id WHERE w.watch_id = ?",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        let (jobs, running): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(WatchCounts {
            jobs: jobs.max(0) as u64,
            running: running.max(0) as u64,
        })
    }

    /// Records `job`, the job of `object`, within `quota`, unless a job of that version was
    /// recorded before.
    pub async fn record_watch_job(
        &self,
        job: &NewJob,
        quota: &Quota,
        object: &WatchedObject,
    ) -> Result<WatchRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, job.user_id).await?;
        let active = count(
            &mut tx,
            sqlx::query("SELECT COUNT(*) FROM watches WHERE id = ? AND paused_at IS NULL")
                .bind(object.watch_id.to_string()),
        )
        .await?;
        if active == 0 {
            return Ok(WatchRecord::Stopped);
        }
        let seen = count(
            &mut tx,
            sqlx::query("SELECT COUNT(*) FROM watch_objects WHERE job_id = ?")
                .bind(job.id.to_string()),
        )
        .await?;
        if seen > 0 {
            return Ok(WatchRecord::Seen);
        }
        if let Err(refused) = self.insert_job_within_on(&mut tx, job, quota).await? {
            return Ok(WatchRecord::Refused(refused));
        }
        sqlx::query(
            "INSERT INTO watch_objects (job_id, watch_id, object_key, version, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job.id.to_string())
        .bind(object.watch_id.to_string())
        .bind(&object.key)
        .bind(&object.version)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(WatchRecord::Recorded)
    }

    /// Jobs watch `watch` recorded and never noted as started (a scan cut off between the
    /// two), at most `limit`.
    pub async fn left_unstarted(
        &self,
        watch: WatchId,
        limit: u32,
    ) -> Result<Vec<JobId>, StoreError> {
        sqlx::query(
            "SELECT job_id FROM watch_objects WHERE watch_id = ? AND started_at IS NULL \
             ORDER BY created_at, job_id LIMIT ?",
        )
        .bind(watch.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| parse_column(row, "job_id"))
        .collect()
    }

    /// Notes that the workflows of `jobs` were started.
    pub async fn note_watch_started(&self, jobs: &[JobId]) -> Result<(), StoreError> {
        let now = now_millis();
        for job in jobs {
            sqlx::query(
                "UPDATE watch_objects SET started_at = ? WHERE job_id = ? AND started_at IS NULL",
            )
            .bind(now)
            .bind(job.to_string())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Notes how the last scan of watch `id` went: `trouble` when it could not read the
    /// folder, and whether it ended a pass over the whole folder.
    pub async fn note_watch_scan(
        &self,
        id: WatchId,
        trouble: Option<&str>,
        pass_over: bool,
    ) -> Result<(), StoreError> {
        let query = if pass_over {
            sqlx::query("UPDATE watches SET trouble = ?, scanned_at = ? WHERE id = ?")
                .bind(trouble)
                .bind(now_millis())
        } else {
            sqlx::query("UPDATE watches SET trouble = ? WHERE id = ?").bind(trouble)
        };
        query.bind(id.to_string()).execute(&self.pool).await?;
        Ok(())
    }
}

fn place_from_row(row: &AnyRow) -> Result<WatchedPlace, StoreError> {
    let connection: Option<String> = row.try_get("connection_id")?;
    let directory: Option<String> = row.try_get("directory")?;
    match (connection, directory) {
        (Some(connection), _) => ConnectionId::parse(&connection)
            .map(WatchedPlace::Bucket)
            .map_err(|_| StoreError::Corrupt("bad watch connection".into())),
        (None, Some(directory)) => Ok(WatchedPlace::Directory(PathBuf::from(directory))),
        (None, None) => Err(StoreError::Corrupt("a watch of nothing".into())),
    }
}

fn watch_from_row(row: &AnyRow) -> Result<Watch, StoreError> {
    let whole = |column: &str| -> Result<i64, StoreError> { Ok(row.try_get(column)?) };
    Ok(Watch {
        id: parse_column(row, "id")?,
        user_id: parse_column(row, "user_id")?,
        session_id: row.try_get("session_id")?,
        name: row.try_get("name")?,
        place: place_from_row(row)?,
        prefix: row.try_get("prefix")?,
        options: options_from_row(row)?,
        export: row
            .try_get::<Option<String>, _>("export")?
            .map(|text| {
                NewExport::from_column(&text)
                    .ok_or_else(|| StoreError::Corrupt("bad watch export".into()))
            })
            .transpose()?,
        max_running: u32::try_from(whole("max_running")?).unwrap_or(1),
        interval_seconds: u32::try_from(whole("interval_seconds")?).unwrap_or(60),
        max_bytes: u64::try_from(whole("max_bytes")?).unwrap_or_default(),
        paused_at: row.try_get("paused_at")?,
        created_at: whole("created_at")?,
        scanned_at: row.try_get("scanned_at")?,
        trouble: row.try_get("trouble")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::tests::fresh;
    use audiomill_domain::{EmailAddress, ObjectKey, watch::job_for};

    #[tokio::test]
    async fn a_version_is_recorded_once_and_never_for_a_paused_or_deleted_watch() {
        let (_dir, db) = fresh().await;
        let email = EmailAddress::parse("wes@example.com").unwrap();
        let user = db.create_user(&email, "hash", false).await.unwrap().id;
        let new = NewWatch {
            user_id: user,
            name: "camera".into(),
            place: WatchedPlace::Directory(PathBuf::from("/srv/inbox")),
            prefix: String::new(),
            options: OutputOptions::default(),
            export: None,
            max_running: 2,
            interval_seconds: 60,
            max_bytes: 1 << 20,
        };
        let watch = db.create_watch(&new).await.unwrap();
        let job = |key: &str| {
            let id = job_for(watch.id, key, "v1");
            let job = NewJob {
                id,
                user_id: user,
                original_filename: key.into(),
                source_key: ObjectKey::source(id, "mp4"),
                source_size: 0,
                options: OutputOptions::default(),
                batch_id: None,
                session_id: Some(watch.session_id.clone()),
                import: None,
                export: None,
            };
            let object = WatchedObject {
                watch_id: watch.id,
                key: key.into(),
                version: "v1".into(),
            };
            (job, object)
        };
        let unlimited = Quota::default();
        let record = |key: &'static str| {
            let (db, (job, object)) = (db.clone(), job(key));
            async move {
                db.record_watch_job(&job, &unlimited, &object)
                    .await
                    .unwrap()
            }
        };
        assert!(matches!(record("a.mp4").await, WatchRecord::Recorded));
        assert!(matches!(record("a.mp4").await, WatchRecord::Seen));
        assert_eq!(db.left_unstarted(watch.id, 10).await.unwrap().len(), 1);
        assert!(db.pause_watch(user, watch.id, true).await.unwrap());
        assert!(matches!(record("b.mp4").await, WatchRecord::Stopped));
        assert!(db.pause_watch(user, watch.id, false).await.unwrap());
        assert!(matches!(record("b.mp4").await, WatchRecord::Recorded));
        db.note_watch_started(&[job("b.mp4").0.id]).await.unwrap();
        let counts = db.watch_counts(watch.id).await.unwrap();
        assert_eq!((counts.jobs, counts.running), (2, 2));

        // Deleted: its login ends, and it names the job whose start was never noted.
        let unstarted = db.delete_watch(user, watch.id).await.unwrap();
        assert_eq!(unstarted, Some(vec![job("a.mp4").0.id]));
        assert!(matches!(record("c.mp4").await, WatchRecord::Stopped));
        assert!(db.job(job("b.mp4").0.id).await.unwrap().is_some());
        assert!(!db.session_is_active(user, &watch.session_id).await.unwrap());
        assert_eq!(db.delete_watch(user, watch.id).await.unwrap(), None);
    }
}
