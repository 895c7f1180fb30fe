//! The accounts an admin looks through: a page at a time, by e-mail address, optionally only
//! those whose address contains some text.

use crate::{
    database::{Database, USER_COLUMNS, User, user_from_row},
    error::StoreError,
};

impl Database {
    /// Up to `limit` accounts whose e-mail contains `search` (any case; all when empty), in
    /// order of address, after the address `after` when given.
    pub async fn users_page(
        &self,
        search: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let pattern = format!("%{}%", like_escaped(&search.to_lowercase()));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE LOWER(email) LIKE ? ESCAPE '!' \
             AND email > ? ORDER BY email LIMIT ?"
        )))
        .bind(pattern)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    /// Makes an account an admin or takes that away; `false` when there is no such user.
    pub async fn set_admin(
        &self,
        user: audiomill_domain::UserId,
        admin: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET is_admin = ? WHERE id = ?")
            .bind(i64::from(admin))
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // MySQL counts changed rows: setting the same value again is 0.
        Ok(self.user_by_id(user).await?.is_some())
    }
}

/// `text` with the `LIKE` wildcards (and the escape character) taken literally.
fn like_escaped(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '%' | '_' | '!' => vec!['!', c],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::database::tests::fresh;
    use audiomill_domain::EmailAddress;

    #[tokio::test]
    async fn accounts_are_found_by_part_of_their_address_a_page_at_a_time() {
        let (_dir, db) = fresh().await;
        for name in ["ann", "bob", "anna_b", "annabel"] {
            let email = EmailAddress::parse(&format!("{name}@example.com")).unwrap();
            db.create_user(&email, "hash", false).await.unwrap();
        }
        let emails = |users: Vec<crate::User>| -> Vec<String> {
            users.iter().map(|u| u.email.to_string()).collect()
        };
        let ann = emails(db.users_page("ANN", None, 10).await.unwrap());
        assert_eq!(
            ann,
            [
                "ann@example.com",
                "anna_b@example.com",
                "annabel@example.com"
            ]
        );
        let literal = emails(db.users_page("a_b", None, 10).await.unwrap());
        assert_eq!(literal, ["anna_b@example.com"], "`_` is no wildcard");
        let first = emails(db.users_page("", None, 2).await.unwrap());
        assert_eq!(first, ["ann@example.com", "anna_b@example.com"]);
        let next = emails(
            db.users_page("", Some("anna_b@example.com"), 2)
                .await
                .unwrap(),
        );
        assert_eq!(next, ["annabel@example.com", "bob@example.com"]);
    }
}
