//! Users' saved storage connections in the database, and the rows that tie a job to one: an
//! import from its bucket, an export of the MP3 to it (or to a presigned PUT URL).

use crate::{
    database::{Database, parse_column},
    error::StoreError,
    sealed::Sealer,
    sources::{
        Connection, Export, MAX_CONNECTIONS_PER_USER, NewConnection, NewExport, SealedExport,
    },
    time::now_millis,
};
use audiomill_domain::{
    ConnectionId, JobId, UserId,
    connection::{Endpoint, KeyTemplate},
    import::ImportUrl,
};
use sqlx::{Row, any::AnyRow};

const CONNECTION_COLUMNS: &str = "id, user_id, name, endpoint, region, bucket, prefix, \
    access_key_id, sealed_secret, created_at";

impl Database {
    /// Saves a connection, its secret sealed; `Conflict` past [`MAX_CONNECTIONS_PER_USER`].
    pub async fn create_connection(
        &self,
        new: &NewConnection,
        sealer: &Sealer,
    ) -> Result<Connection, StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::lifecycle::lock_user(&mut tx, new.user_id).await?;
        let held = crate::lifecycle::count(
            &mut tx,
            sqlx::query("SELECT COUNT(*) FROM connections WHERE user_id = ?")
                .bind(new.user_id.to_string()),
        )
        .await?;
        if held >= MAX_CONNECTIONS_PER_USER {
            return Err(StoreError::Conflict("too many connections"));
        }
        let connection = Connection {
            id: ConnectionId::generate(),
            user_id: new.user_id,
            name: new.name.clone(),
            endpoint: new.endpoint.clone(),
            region: new.region.clone(),
            bucket: new.bucket.clone(),
            prefix: new.prefix.clone(),
            access_key_id: new.access_key_id.clone(),
            sealed_secret: sealer.seal(&new.secret_access_key)?,
            created_at: now_millis(),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(connection.id.to_string())
        .bind(connection.user_id.to_string())
        .bind(&connection.name)
        .bind(connection.endpoint.as_ref().map(|e| e.as_str().to_owned()))
        .bind(&connection.region)
        .bind(&connection.bucket)
        .bind(&connection.prefix)
        .bind(&connection.access_key_id)
        .bind(&connection.sealed_secret)
        .bind(connection.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(connection)
    }

    pub async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(connection_from_row)
        .transpose()
    }

    /// `user`'s connections, oldest first.
    pub async fn connections_of(&self, user: UserId) -> Result<Vec<Connection>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE user_id = ? ORDER BY created_at, id"
        )))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(connection_from_row)
        .collect()
    }

    /// Removes `user`'s connection `id`; `false` when they have none by that id.
    pub async fn delete_connection(
        &self,
        user: UserId,
        id: ConnectionId,
    ) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM connections WHERE id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Records where job `job` imports its video from in a connection's bucket; in the
    /// transaction that records the job.
    pub(crate) async fn insert_bucket_import_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: JobId,
        connection: &Connection,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO job_imports (job_id, connection_id, object_key, shown_url) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(job.to_string())
        .bind(connection.id.to_string())
        .bind(key)
        .bind(format!("{key} in {}", connection.shown()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The connection and object job `job` imports its video from, while it has not been
    /// imported; `None` otherwise.
    pub async fn bucket_import(
        &self,
        job: JobId,
    ) -> Result<Option<(Option<Connection>, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT connection_id, object_key FROM job_imports \
             WHERE job_id = ? AND imported_at IS NULL AND object_key IS NOT NULL",
        )
        .bind(job.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: ConnectionId = parse_column(&row, "connection_id")?;
        let key: String = row.try_get("object_key")?;
        Ok(Some((self.connection(id).await?, key)))
    }

    /// Records where job `job`'s MP3 is exported to; in the transaction that records the job.
    pub(crate) async fn insert_export_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: JobId,
        export: &NewExport,
    ) -> Result<(), StoreError> {
        let (connection, template, put_url) = match &export.export {
            SealedExport::Connection {
                connection_id,
                template,
            } => (
                Some(connection_id.to_string()),
                Some(template.as_str().to_owned()),
                None,
            ),
            SealedExport::PutUrl(sealed) => (None, None, Some(sealed.clone())),
        };
        let shown = &export.shown;
        sqlx::query(
            "INSERT INTO job_exports (job_id, connection_id, key_template, sealed_put_url, shown) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job.to_string())
        .bind(connection)
        .bind(template)
        .bind(put_url)
        .bind(shown)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Where job `job`'s MP3 is exported to; `None` without an export. A PUT URL is opened
    /// with `sealer`.
    pub async fn export_of(
        &self,
        job: JobId,
        sealer: &Sealer,
    ) -> Result<Option<Export>, StoreError> {
        let row = sqlx::query(
            "SELECT connection_id, key_template, sealed_put_url FROM job_exports WHERE job_id = ?",
        )
        .bind(job.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt("bad export row".into());
        let sealed: Option<String> = row.try_get("sealed_put_url")?;
        if let Some(sealed) = sealed {
            let url = ImportUrl::parse(&sealer.open(&sealed)?).map_err(|_| corrupt())?;
            return Ok(Some(Export::PutUrl(url)));
        }
        let template: Option<String> = row.try_get("key_template")?;
        let template = KeyTemplate::parse(&template.unwrap_or_default()).map_err(|_| corrupt())?;
        Ok(Some(Export::Connection {
            connection_id: parse_column(&row, "connection_id")?,
            template,
        }))
    }

    /// Notes that job `job`'s MP3 was written at `key` (a PUT URL's: its path).
    pub async fn record_export(&self, job: JobId, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE job_exports SET exported_key = ?, exported_at = ? WHERE job_id = ?")
            .bind(key)
            .bind(now_millis())
            .bind(job.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What may be shown of job `job`'s export, and the key it was written at once it was.
    pub async fn shown_export(
        &self,
        job: JobId,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT shown, exported_key FROM job_exports WHERE job_id = ?")
            .bind(job.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("shown")?, row.try_get("exported_key")?)))
            .transpose()
    }
}

fn connection_from_row(row: &AnyRow) -> Result<Connection, StoreError> {
    let endpoint: Option<String> = row.try_get("endpoint")?;
    Ok(Connection {
        id: parse_column(row, "id")?,
        user_id: parse_column(row, "user_id")?,
        name: row.try_get("name")?,
        endpoint: endpoint
            .map(|text| Endpoint::parse(&text))
            .transpose()
            .map_err(|_| StoreError::Corrupt("bad endpoint".into()))?,
        region: row.try_get("region")?,
        bucket: row.try_get("bucket")?,
        prefix: row.try_get("prefix")?,
        access_key_id: row.try_get("access_key_id")?,
        sealed_secret: row.try_get("sealed_secret")?,
        created_at: row.try_get("created_at")?,
    })
}
