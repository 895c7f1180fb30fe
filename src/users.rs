//! Creating accounts, and setting their own quotas.

use crate::{cli::QuotaValue, config::write_private};
use anyhow::Context;
use audiomill_domain::EmailAddress;
use audiomill_store::{Database, OwnQuota, StoreError, User};
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
    if let Some(problem) = audiomill_api::auth::password_problem(password) {
        anyhow::bail!(problem);
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

/// Sets the limits given of `email`'s own quota (`None`: left as it is); the quota as it is
/// then, in words.
pub async fn set_quota(
    db: &Database,
    email: &str,
    storage_mb: Option<QuotaValue>,
    jobs_per_day: Option<QuotaValue>,
) -> anyhow::Result<String> {
    let address = EmailAddress::parse(email)
        .map_err(|_| anyhow::anyhow!("{email:?} is not a valid e-mail address."))?;
    let user = db
        .user_by_email(&address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("There is no user with the e-mail {address}."))?;
    let pick = |given: Option<QuotaValue>, current: Option<u64>, unit: u64| match given {
        None => current,
        Some(QuotaValue::Default) => None,
        Some(QuotaValue::Limit(n)) => Some(n.saturating_mul(unit)),
    };
    let quota = OwnQuota {
        storage_bytes: pick(storage_mb, user.quota.storage_bytes, 1024 * 1024),
        jobs_per_day: pick(jobs_per_day, user.quota.jobs_per_day, 1),
    };
    db.set_quota(user.id, quota).await?;
    let describe = |limit: Option<u64>, unit: u64, suffix: &str| match limit {
        None => "the default".to_owned(),
        Some(0) => "no limit".to_owned(),
        Some(n) => format!("{}{suffix}", n / unit),
    };
    Ok(format!(
        "storage {}, jobs per day {}",
        describe(quota.storage_bytes, 1024 * 1024, " MB"),
        describe(quota.jobs_per_day, 1, "")
    ))
}
