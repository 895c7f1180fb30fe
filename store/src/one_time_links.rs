//! Links that work once (password resets, invitations): a request, armed with the SHA-256 of
//! the secret its mail carries, of which only the owner's newest armed link works, once, until
//! it expires. Each kind keeps its own table with the columns `id`, `token_hash`,
//! `created_at`, `expires_at`, `used_at` and one that names the owner.

use crate::{database::Database, error::StoreError, time::now_millis};
use sqlx::{Row, any::AnyRow};

/// One kind of link: where its requests are kept, and whose they are.
pub(crate) struct OneTimeLinks {
    pub table: &'static str,
    /// The column naming the owner, whose earlier links end when a new one is armed.
    pub owner: &'static str,
}

impl OneTimeLinks {
    /// Arms request `id` with `token_hash` while it is open (a secret minted again replaces
    /// the one before) and ends the owner's links armed before, so that only the newest mailed
    /// works; the request's owner and expiry (columns named as in the table), or `None` when
    /// it has ended.
    pub(crate) async fn arm(
        &self,
        db: &Database,
        id: &str,
        token_hash: &str,
    ) -> Result<Option<AnyRow>, StoreError> {
        let (table, owner) = (self.table, self.owner);
        let now = now_millis();
        let armed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET token_hash = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?"
        )))
        .bind(token_hash)
        .bind(id)
        .bind(now)
        .execute(&db.pool)
        .await?;
        if armed.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {owner}, expires_at FROM {table} WHERE id = ?"
        )))
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
        let whose: String = row.try_get(owner)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET used_at = ? WHERE {owner} = ? AND id <> ? \
             AND used_at IS NULL AND token_hash IS NOT NULL"
        )))
        .bind(now)
        .bind(whose)
        .bind(id)
        .execute(&db.pool)
        .await?;
        Ok(Some(row))
    }

    /// Spends the link whose secret hashes to `token_hash`: once, before it expires, and not
    /// after a newer one was armed. Its `columns`, or `None` when it does not work.
    pub(crate) async fn spend(
        &self,
        db: &Database,
        token_hash: &str,
        columns: &str,
    ) -> Result<Option<AnyRow>, StoreError> {
        let table = self.table;
        let now = now_millis();
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?
        else {
            return Ok(None);
        };
        let spent = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET used_at = ? WHERE token_hash = ? AND used_at IS NULL \
             AND expires_at > ?"
        )))
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .execute(&db.pool)
        .await?;
        Ok((spent.rows_affected() == 1).then_some(row))
    }
}
