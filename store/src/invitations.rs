//! Invitations: an admin asks for an account to be made for an address; the mail's link
//! (armed with the hash of the secret it carries) makes it, once.

use crate::{
    database::{Database, User, parse_column},
    error::StoreError,
    one_time_links::OneTimeLinks,
    time::now_millis,
};
use audiomill_domain::{EmailAddress, UserId};
use sqlx::Row;

/// How long an invitation's link works.
pub const INVITATION_LIFETIME_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// An invitation's link is the address's newest.
const INVITATIONS: OneTimeLinks = OneTimeLinks {
    table: "invitations",
    owner: "email",
};

/// Why an invitation's link made no account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    /// Unknown, used, replaced or expired.
    Invalid,
    /// The address has an account already.
    Taken,
}

impl Database {
    /// Records an invitation of `email` (as an admin when `admin`) by `by`; its id.
    pub async fn invite(
        &self,
        email: &EmailAddress,
        admin: bool,
        by: UserId,
    ) -> Result<String, StoreError> {
        let now = now_millis();
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO invitations (id, email, admin, invited_by, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(email.as_ref())
        .bind(i64::from(admin))
        .bind(by.to_string())
        .bind(now)
        .bind(now + INVITATION_LIFETIME_MS)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Arms invitation `id` with `token_hash` while it is open and its address has no account,
    /// ending the invitations of the address armed before; the address to mail and when the
    /// link expires, or `None`.
    pub async fn arm_invitation(
        &self,
        id: &str,
        token_hash: &str,
    ) -> Result<Option<(EmailAddress, i64)>, StoreError> {
        let Some(row) = INVITATIONS.arm(self, id, token_hash).await? else {
            return Ok(None);
        };
        let email: EmailAddress = parse_column(&row, "email")?;
        if self.user_by_email(&email).await?.is_some() {
            return Ok(None);
        }
        Ok(Some((email, row.try_get("expires_at")?)))
    }

    /// Spends the invitation whose secret hashes to `token_hash` on an account with
    /// `password_hash`.
    pub async fn join(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Result<User, JoinRefusal>, StoreError> {
        let Some(row) = INVITATIONS.spend(self, token_hash, "email, admin").await? else {
            return Ok(Err(JoinRefusal::Invalid));
        };
        let email: EmailAddress = parse_column(&row, "email")?;
        let admin = row.try_get::<i64, _>("admin")? != 0;
        match self.create_user(&email, password_hash, admin).await {
            Ok(user) => Ok(Ok(user)),
            Err(StoreError::Conflict(_)) => Ok(Err(JoinRefusal::Taken)),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JoinRefusal;
    use crate::database::tests::fresh;
    use audiomill_domain::EmailAddress;

    #[tokio::test]
    async fn an_invitation_makes_one_account_for_its_address() {
        let (_dir, db) = fresh().await;
        let admin = EmailAddress::parse("root@example.com").unwrap();
        let admin = db.create_user(&admin, "hash", true).await.unwrap();
        let carl = EmailAddress::parse("carl@example.com").unwrap();
        let first = db.invite(&carl, false, admin.id).await.unwrap();
        let second = db.invite(&carl, true, admin.id).await.unwrap();
        db.arm_invitation(&first, "one").await.unwrap().unwrap();
        let (mailed, _) = db.arm_invitation(&second, "two").await.unwrap().unwrap();
        assert_eq!(mailed, carl);
        assert_eq!(
            db.join("one", "h").await.unwrap(),
            Err(JoinRefusal::Invalid)
        );
        let user = db.join("two", "h").await.unwrap().unwrap();
        assert_eq!((user.email, user.is_admin), (carl.clone(), true));
        assert_eq!(
            db.join("two", "h").await.unwrap(),
            Err(JoinRefusal::Invalid)
        );
        let third = db.invite(&carl, false, admin.id).await.unwrap();
        assert_eq!(
            db.arm_invitation(&third, "three").await.unwrap(),
            None,
            "taken"
        );
    }
}
