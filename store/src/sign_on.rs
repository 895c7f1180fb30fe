//! Single sign-on's records: sign-ins waiting for the provider's answer, each taken once, and
//! the provider's people that accounts belong to.

use crate::{
    database::{Database, USER_COLUMNS, User, user_from_row},
    error::StoreError,
    time::now_millis,
};
use audiomill_domain::UserId;
use sqlx::Row;

/// How long a sign-in may take at the provider.
pub const SIGN_ON_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// What a waiting sign-in checks the provider's answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOnAttempt {
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Whose account a sign-on gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOnAccount {
    /// The account this person signed in to before.
    Known(User),
    /// An account with the person's address, linked to them now as an admin allowed.
    Linked(User),
    /// An account with the person's address that no admin let single sign-on take.
    NotLinkable,
    /// A new account, made for the person now.
    Made(User),
}

impl Database {
    /// Records a sign-in sent to the provider under the SHA-256 of its state, and forgets the
    /// sign-ins that expired unanswered.
    pub async fn begin_sign_on(
        &self,
        state_hash: &str,
        attempt: &SignOnAttempt,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query("DELETE FROM sign_on_attempts WHERE expires_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sign_on_attempts (state_hash, nonce, pkce_verifier, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(state_hash)
        .bind(&attempt.nonce)
        .bind(&attempt.pkce_verifier)
        .bind(now + SIGN_ON_LIFETIME_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the waiting sign-in with this state: once, and only before it expires.
    pub async fn take_sign_on(
        &self,
        state_hash: &str,
    ) -> Result<Option<SignOnAttempt>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT nonce, pkce_verifier, expires_at FROM sign_on_attempts WHERE state_hash = ?",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let taken = sqlx::query("DELETE FROM sign_on_attempts WHERE state_hash = ?")
            .bind(state_hash)
            .execute(&self.pool)
            .await?;
        let expires_at: i64 = row.try_get("expires_at")?;
        // Two answers with one state at once: only the one that deleted the row goes on.
        if taken.rows_affected() != 1 || expires_at < now_millis() {
            return Ok(None);
        }
        Ok(Some(SignOnAttempt {
            nonce: row.try_get("nonce")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
        }))
    }

    /// The account of the provider's person `(issuer, subject)`: the one they had, else the
    /// one with their verified `email` when an admin let sign-on link it, else a new one with
    /// `password_hash` (a hash no password matches).
    pub async fn sign_on_account(
        &self,
        issuer: &str,
        subject: &str,
        email: &audiomill_domain::EmailAddress,
        password_hash: &str,
    ) -> Result<SignOnAccount, StoreError> {
        if let Some(user) = self.identity_owner(issuer, subject).await? {
            return Ok(SignOnAccount::Known(user));
        }
        if let Some(user) = self.user_by_email(email).await? {
            let linked =
                sqlx::query("UPDATE users SET sign_on_link = 0 WHERE id = ? AND sign_on_link = 1")
                    .bind(user.id.to_string())
                    .execute(&self.pool)
                    .await?;
            if linked.rows_affected() != 1 {
                return Ok(SignOnAccount::NotLinkable);
            }
            self.record_identity(issuer, subject, user.id).await?;
            return Ok(SignOnAccount::Linked(user));
        }
        let user = self.create_user(email, password_hash, false).await?;
        self.record_identity(issuer, subject, user.id).await?;
        Ok(SignOnAccount::Made(user))
    }

    /// Lets the next single sign-on with `user`'s address take the account (or stops that);
    /// `false` when there is no such user.
    pub async fn allow_sign_on_link(&self, user: UserId, allow: bool) -> Result<bool, StoreError> {
        sqlx::query("UPDATE users SET sign_on_link = ? WHERE id = ?")
            .bind(i64::from(allow))
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(self.user_by_id(user).await?.is_some())
    }

    /// Whether the account has a single sign-on identity, and whether an admin let the next
    /// sign-on link one.
    pub async fn sign_on_state(&self, user: UserId) -> Result<(bool, bool), StoreError> {
        let row = sqlx::query(
            "SELECT sign_on_link, (SELECT COUNT(*) FROM sign_on_identities i \
             WHERE i.user_id = users.id) AS identities FROM users WHERE id = ?",
        )
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok((false, false));
        };
        let identities: i64 = row.try_get("identities")?;
        let link: i64 = row.try_get("sign_on_link")?;
        Ok((identities > 0, link == 1))
    }

    async fn identity_owner(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE id = (SELECT user_id FROM sign_on_identities \
             WHERE issuer = ? AND subject = ?)",
            USER_COLUMNS
        )))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    async fn record_identity(
        &self,
        issuer: &str,
        subject: &str,
        user: UserId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_on_identities (issuer, subject, user_id, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user.to_string())
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(|error| match error {
            sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict("identity"),
            other => other.into(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::tests::fresh;
    use audiomill_domain::EmailAddress;

    fn attempt() -> SignOnAttempt {
        SignOnAttempt {
            nonce: "nonce".into(),
            pkce_verifier: "verifier".into(),
        }
    }

    #[tokio::test]
    async fn a_waiting_sign_in_is_taken_once() {
        let (_dir, db) = fresh().await;
        db.begin_sign_on("state", &attempt()).await.unwrap();
        assert_eq!(db.take_sign_on("other").await.unwrap(), None);
        assert_eq!(db.take_sign_on("state").await.unwrap(), Some(attempt()));
        assert_eq!(db.take_sign_on("state").await.unwrap(), None, "replayed");
    }

    #[tokio::test]
    async fn a_person_gets_a_new_account_then_the_same_one_and_never_a_password_account_unless_allowed()
     {
        let (_dir, db) = fresh().await;
        let ada = EmailAddress::parse("ada@example.com").unwrap();
        let made = match db.sign_on_account("iss", "sub-1", &ada, "!").await.unwrap() {
            SignOnAccount::Made(user) => user,
            other => panic!("{other:?}"),
        };
        let again = db.sign_on_account("iss", "sub-1", &ada, "!").await.unwrap();
        assert_eq!(again, SignOnAccount::Known(made.clone()));
        assert_eq!(db.sign_on_state(made.id).await.unwrap(), (true, false));

        let bob = EmailAddress::parse("bob@example.com").unwrap();
        let own = db.create_user(&bob, "hash", false).await.unwrap();
        let taken = db.sign_on_account("iss", "sub-2", &bob, "!").await.unwrap();
        assert_eq!(taken, SignOnAccount::NotLinkable);
        assert!(db.allow_sign_on_link(own.id, true).await.unwrap());
        assert_eq!(db.sign_on_state(own.id).await.unwrap(), (false, true));
        let linked = db.sign_on_account("iss", "sub-2", &bob, "!").await.unwrap();
        assert!(matches!(linked, SignOnAccount::Linked(user) if user.id == own.id));
        assert_eq!(db.sign_on_state(own.id).await.unwrap(), (true, false));
        let other = db.sign_on_account("iss", "sub-3", &bob, "!").await.unwrap();
        assert_eq!(other, SignOnAccount::NotLinkable, "a link is allowed once");
    }
}
