//! Creating accounts.

use crate::config::write_private;
use anyhow::Context;
use audiomill_domain::EmailAddress;
use audiomill_store::{Database, StoreError, User};
use rand::{Rng, distr::Alphanumeric};
use std::path::Path;

pub const INITIAL_ADMIN_EMAIL: &str = "admin@audiomill.local";

pub async fn add_user(
    db: &Database,
    email: &str,
    password: &str,
    admin: bool,
) -> anyhow::Result<User> {
    let email = EmailAddress::parse(email)
        .map_err(|_| anyhow::anyhow!("{email:?} is not a valid e-mail address."))?;
    if password.chars().count() < 8 {
        anyhow::bail!("The password must have at least 8 characters.");
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || audiomill_api::auth::hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("could not hash the password: {e}"))?;
    match db.create_user(&email, &hash, admin).await {
        Ok(user) => Ok(user),
        Err(StoreError::Conflict(_)) => {
            anyhow::bail!("A user with the e-mail {email} already exists.")
        }
        Err(error) => Err(error).context("could not create the user"),
    }
}

/// On a first start with no users at all, creates an admin with a random password, prints it
/// once, and keeps it in `file` (mode 0600) so it is not lost with the terminal.
pub async fn ensure_initial_admin(db: &Database, file: &Path) -> anyhow::Result<()> {
    if db.count_users().await? > 0 {
        return Ok(());
    }
    let password: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    add_user(db, INITIAL_ADMIN_EMAIL, &password, true).await?;
    write_private(
        file,
        &format!("email: {INITIAL_ADMIN_EMAIL}\npassword: {password}\n"),
    )
    .with_context(|| format!("could not write {}", file.display()))?;
    println!(
        "Created the first admin account (also saved in {}):",
        file.display()
    );
    println!("  email:    {INITIAL_ADMIN_EMAIL}");
    println!("  password: {password}");
    Ok(())
}
