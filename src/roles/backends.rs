//! The backends every role uses, opened once per process: the database (migrated), object
//! storage, the mailer and the keys; the Temporal client and the gateway's rate limits.

use super::random_hex;
use crate::{
    config::{
        Config, GatewayConfig, MIN_SECRET_BYTES, MailConfig, Secret, StorageConfig, write_private,
    },
    temporal,
};
use anyhow::{Context, bail};
use audiomill_activities::Mailer;
use audiomill_api::limits::{LimitSettings, Limits};
use audiomill_domain::link::LinkSigner;
use audiomill_store::Sealer;
use audiomill_store::{Database, ObjectStore};
use std::{net::SocketAddr, time::Duration};

/// How long a role waits for Temporal at start (compose starts everything at once).
const TEMPORAL_PATIENCE: Duration = Duration::from_secs(30);

/// The state every role shares: database, object storage, mail.
#[derive(Clone)]
pub struct Backends {
    pub db: Database,
    pub objects: ObjectStore,
    pub mailer: Mailer,
    /// Seals and opens users' storage keys (`CONNECTION_SECRET_KEY`); `None`: connections
    /// are off.
    pub sealer: Option<Sealer>,
}

impl Backends {
    /// Connects every backend and applies migrations; a backend that is down is named.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let db = open_database(&config.database_url).await?;
        let objects = match &config.storage {
            StorageConfig::Files { root } => ObjectStore::files(root),
            StorageConfig::S3 {
                settings,
                create_bucket,
            } => ObjectStore::s3(settings, *create_bucket),
        };
        objects.init().await.map_err(|e| match &config.storage {
            StorageConfig::Files { root } => {
                anyhow::anyhow!(
                    "The object directory {} is not usable ({e}).",
                    root.display()
                )
            }
            StorageConfig::S3 { settings, .. } => anyhow::anyhow!(
                "Object storage (bucket {:?} at {}) is not usable ({e}).",
                settings.bucket,
                settings.endpoint.as_deref().unwrap_or("AWS S3")
            ),
        })?;
        let mailer = match &config.mail {
            MailConfig::Files { dir } => Mailer::files(dir, &config.mail_from)?,
            MailConfig::Smtp { url } => Mailer::smtp(url.expose(), &config.mail_from)?,
        };
        mailer.init().await.map_err(|e| match &config.mail {
            MailConfig::Files { dir } => {
                anyhow::anyhow!("The mail directory {} is not usable ({e}).", dir.display())
            }
            MailConfig::Smtp { .. } => {
                anyhow::anyhow!("The SMTP server at SMTP_URL is unreachable ({e}).")
            }
        })?;
        Ok(Self {
            db,
            objects,
            mailer,
            sealer: None,
        })
    }
}

/// Connects to the database (creating an SQLite file's directory) and migrates it.
pub async fn open_database(url: &Secret) -> anyhow::Result<Database> {
    if let Some(dir) = url
        .expose()
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p).parent())
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let db = Database::connect(url.expose())
        .await
        .map_err(|e| anyhow::anyhow!("The database at DATABASE_URL is unreachable ({e})."))?;
    db.migrate()
        .await
        .context("could not migrate the database")?;
    Ok(db)
}

/// The token signing key: `JWT_SECRET`, or in `dev` one generated once and kept in the data
/// dir.
pub(super) fn jwt_secret(config: &Config, gateway: &GatewayConfig) -> anyhow::Result<Secret> {
    given_or_kept(
        config,
        gateway.jwt_secret.as_ref(),
        gateway.embedded,
        "JWT_SECRET",
        "jwt-secret",
    )
}

/// The download link key: `DOWNLOAD_LINK_SECRET`, or in `dev` one generated once and kept in
/// the data dir (a key of its own: a leaked link key forges no tokens, and the other way).
pub(super) fn link_secret(config: &Config, embedded: bool) -> anyhow::Result<Secret> {
    given_or_kept(
        config,
        config.links.secret.as_ref(),
        embedded,
        "DOWNLOAD_LINK_SECRET",
        "download-link-secret",
    )
}

/// The key users' storage keys are sealed with: `CONNECTION_SECRET_KEY`, or in `dev` one
/// generated once and kept in the data dir; elsewhere without it, connections are off.
pub(super) fn connection_sealer(config: &Config, embedded: bool) -> anyhow::Result<Option<Sealer>> {
    let given = config.imports.connection_secret_key.as_ref();
    if given.is_none() && !embedded {
        return Ok(None);
    }
    let key = given_or_kept(
        config,
        given,
        embedded,
        "CONNECTION_SECRET_KEY",
        "connection-secret-key",
    )?;
    Ok(Some(Sealer::new(key.expose())))
}

/// A key from the configuration; else, in `dev`, the one kept in the data dir's `file`, made
/// the first time.
fn given_or_kept(
    config: &Config,
    given: Option<&Secret>,
    embedded: bool,
    variable: &str,
    file: &str,
) -> anyhow::Result<Secret> {
    if let Some(secret) = given {
        return Ok(secret.clone());
    }
    if !embedded {
        bail!("{variable} is required outside `audiomill dev`.");
    }
    let path = config.data_path(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= MIN_SECRET_BYTES
    {
        return Ok(Secret::new(existing.trim()));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let secret = random_hex(32);
    write_private(&path, &secret).with_context(|| format!("could not write {}", path.display()))?;
    Ok(Secret::new(secret))
}

/// The download links of this process: `PUBLIC_URL`, else the gateway it runs, else the
/// gateway's default address.
pub(super) fn link_signer(
    config: &Config,
    key: &Secret,
    gateway: Option<SocketAddr>,
) -> LinkSigner {
    let base = config.links.public_url.clone().unwrap_or_else(|| {
        gateway.map_or_else(|| "http://127.0.0.1:8080".to_owned(), super::local_url)
    });
    LinkSigner::new(key.expose().as_bytes(), config.links.lifetime, &base)
}

/// The gateway's rate limits: in Redis when `REDIS_URL` is set (checked now), else in process.
pub(super) async fn rate_limits(gateway: &GatewayConfig) -> anyhow::Result<Limits> {
    let settings = LimitSettings {
        logins_per_minute: gateway.login_attempts_per_minute,
        requests_per_minute: gateway.requests_per_minute,
        replays_per_minute: gateway.replays_per_minute,
        imports_per_minute: gateway.imports_per_minute,
    };
    match &gateway.redis_url {
        None => Ok(Limits::new(settings)),
        Some(url) => Limits::shared(settings, url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("The Redis server at REDIS_URL is unreachable ({e}).")),
    }
}

/// A Temporal client for `identity`, once the frontend answers.
pub(super) async fn temporal_client(
    config: &Config,
    identity: &str,
) -> anyhow::Result<temporalio_client::Client> {
    let address = config
        .temporal_address
        .as_deref()
        .context("TEMPORAL_ADDRESS is required for `audiomill gateway` and `audiomill worker`.")?;
    temporal::connect(
        address,
        &config.temporal_namespace,
        identity,
        TEMPORAL_PATIENCE,
    )
    .await
}
