//! Password resets: a request made for an account, armed with the hash of the secret its
//! mail carries, spent once.

use crate::{
    database::{Database, User, parse_column},
    error::StoreError,
    lifecycle::count,
    one_time_links::OneTimeLinks,
    time::now_millis,
};
use audiomill_domain::UserId;
use sqlx::Row;

/// A reset's link is the account's newest.
const RESETS: OneTimeLinks = OneTimeLinks {
    table: "password_resets",
    owner: "user_id",
};

/// How long a reset link works.
pub const RESET_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// Reset mails one account is sent at most in an hour, however often they are asked for.
pub const MAX_RESETS_PER_HOUR: u64 = 3;

impl Database {
    /// Records a reset request for `user`; its id, or `None` when the account was asked for
    /// [`MAX_RESETS_PER_HOUR`] resets within the hour already.
    pub async fn request_password_reset(&self, user: UserId) -> Result<Option<String>, StoreError> {
        let now = now_millis();
        let mut conn = self.pool.acquire().await?;
        let recent = count(
            &mut conn,
            sqlx::query(
                "SELECT COUNT(*) FROM password_resets WHERE user_id = ? AND created_at > ?",
            )
            .bind(user.to_string())
            .bind(now - 60 * 60 * 1000),
        )
        .await?;
        if recent >= MAX_RESETS_PER_HOUR {
            return Ok(None);
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO password_resets (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(user.to_string())
        .bind(now)
        .bind(now + RESET_LIFETIME_MS)
        .execute(&mut *conn)
        .await?;
        Ok(Some(id))
    }

    /// Arms reset `id` with `token_hash` (a secret minted again replaces the one before) while
    /// it is open, and ends the user's requests armed before (their mails went out already),
    /// so only the link mailed last works; the user to mail and when the link expires, or
    /// `None` when the request has ended or the account is off.
    pub async fn arm_password_reset(
        &self,
        id: &str,
        token_hash: &str,
    ) -> Result<Option<(User, i64)>, StoreError> {
        let Some(row) = RESETS.arm(self, id, token_hash).await? else {
            return Ok(None);
        };
        let user_id: UserId = parse_column(&row, "user_id")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let user = self.user_by_id(user_id).await?.filter(|user| user.active);
        Ok(user.map(|user| (user, expires_at)))
    }

    /// Spends the reset whose secret hashes to `token_hash`: the password becomes
    /// `password_hash` and every login of the account ends (API keys stay). The user, or
    /// `None` for a link that is unknown, used, expired, or of an account that is off.
    pub async fn use_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let Some(row) = RESETS.spend(self, token_hash, "user_id").await? else {
            return Ok(None);
        };
        let user_id: UserId = parse_column(&row, "user_id")?;
        if !self.user_by_id(user_id).await?.is_some_and(|u| u.active) {
            return Ok(None);
        }
        self.set_password(user_id, password_hash).await?;
        self.end_logins(user_id, None).await?;
        Ok(Some(user_id))
    }
}

#[cfg(test)]
mod tests {
    use crate::database::tests::fresh;
    use audiomill_domain::EmailAddress;

    #[tokio::test]
    async fn an_account_gets_three_reset_requests_an_hour_and_a_link_works_once() {
        let (_dir, db) = fresh().await;
        let email = EmailAddress::parse("ann@example.com").unwrap();
        let user = db.create_user(&email, "old hash", false).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..super::MAX_RESETS_PER_HOUR {
            ids.push(db.request_password_reset(user.id).await.unwrap().unwrap());
        }
        assert_eq!(db.request_password_reset(user.id).await.unwrap(), None);

        let (mailed, _) = db
            .arm_password_reset(&ids[0], "first")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mailed.id, user.id);
        // Arming a newer request ends the older ones.
        db.arm_password_reset(&ids[1], "second")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.use_password_reset("first", "h").await.unwrap(), None);
        assert_eq!(db.arm_password_reset(&ids[0], "again").await.unwrap(), None);
        assert_eq!(
            db.use_password_reset("second", "new hash").await.unwrap(),
            Some(user.id)
        );
        assert_eq!(db.use_password_reset("second", "h").await.unwrap(), None);
        let changed = db.user_by_id(user.id).await.unwrap().unwrap();
        assert_eq!(changed.password_hash, "new hash");
    }
}
