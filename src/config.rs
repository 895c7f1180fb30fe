//! One typed configuration, read once from the environment (and the command line) at start.
//! Defaults are the embedded mode; conventional variable names switch backends.

use anyhow::{Context, bail};
use audiomill_activities::{isolated::Transcoder, transcode::MediaLimits};
use audiomill_store::S3Settings;
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Every environment variable Audiomill reads.
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "S3_BUCKET",
    "S3_CREATE_BUCKET",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "SMTP_URL",
    "MAIL_FROM",
    "JWT_SECRET",
    "MAX_FILE_SIZE",
    "ALLOWED_EXTENSIONS",
    "LISTEN_ADDR",
    "PUBLIC_URL",
    "DATA_DIR",
    "WORK_DIR",
    "MAX_CONCURRENT_TRANSCODES",
    "WORKER_ID",
    "LOGIN_ATTEMPTS_PER_MINUTE",
    "RATE_LIMIT_PER_MINUTE",
    "CORS_ALLOWED_ORIGINS",
    "MAX_CONCURRENT_UPLOADS",
    "REDIS_URL",
    "MAX_CONNECTIONS",
    "MAX_MEDIA_SECONDS",
    "MAX_OUTPUT_MB",
    "MAX_SECONDS_PER_MB",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// The embedded default when `ALLOWED_EXTENSIONS` is unset.
pub const DEFAULT_EXTENSIONS: &str = "mp4,avi,mov,mkv,webm";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// May carry a password: a secret.
    pub database_url: Secret,
    /// `None`: `dev` starts its own Temporal dev server.
    pub temporal_address: Option<String>,
    pub temporal_namespace: String,
    pub storage: StorageConfig,
    pub mail: MailConfig,
    pub mail_from: String,
    pub jwt_secret: Option<Secret>,
    pub max_file_size_mb: u64,
    pub allowed_extensions: Vec<String>,
    pub listen: SocketAddr,
    /// Base URL of the gateway as users reach it; used in e-mailed download links.
    pub public_url: Option<String>,
    /// Scratch space of a worker.
    pub work_dir: PathBuf,
    /// How many transcodes one worker runs at once.
    pub max_concurrent_transcodes: usize,
    /// Login attempts per account and minute (three times as many per client address).
    pub login_attempts_per_minute: u32,
    /// Requests per user (or client address) and minute.
    pub requests_per_minute: u32,
    /// Browser origins allowed to call the API (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// Uploads one user may have in progress at once.
    pub max_concurrent_uploads: u32,
    /// Redis, where every gateway replica counts rate limits; `None`: each counts its own.
    pub redis_url: Option<Secret>,
    /// Connections the gateway serves at once.
    pub max_connections: u32,
    /// What a worker converts at most.
    pub media_limits: MediaLimits,
    /// How a worker runs transcodes: in child processes of this executable
    /// (`audiomill transcode-child`). Not a setting; tests point it at the built binary.
    pub transcoder: Transcoder,
}

#[derive(Debug, Clone)]
pub enum StorageConfig {
    Files {
        root: PathBuf,
    },
    S3 {
        settings: S3Settings,
        create_bucket: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailConfig {
    Files { dir: PathBuf },
    Smtp { url: Secret },
}

/// A value that must never appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// Reads the environment through `lookup` (a function, so tests need not touch the
    /// process environment).
    pub fn from_lookup(
        data_dir: Option<PathBuf>,
        listen: Option<SocketAddr>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let data_dir = data_dir
            .or_else(|| var("DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./data"));

        let database_url = var("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("audiomill.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("mysql:")
            || database_url.starts_with("mariadb:"))
        {
            bail!(
                "DATABASE_URL must start with sqlite:// or mysql://; other databases are not supported."
            );
        }
        let database_url = Secret::new(database_url.replacen("mariadb:", "mysql:", 1));

        let storage = match var("S3_BUCKET") {
            None => StorageConfig::Files {
                root: data_dir.join("objects"),
            },
            Some(bucket) => {
                let (Some(access_key_id), Some(secret_access_key)) =
                    (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
                else {
                    bail!("S3_BUCKET needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.");
                };
                let endpoint = var("AWS_ENDPOINT_URL");
                if endpoint
                    .as_ref()
                    .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                {
                    bail!("AWS_ENDPOINT_URL must start with http:// or https://.");
                }
                let create_bucket = match var("S3_CREATE_BUCKET").as_deref() {
                    None | Some("false" | "0" | "no") => false,
                    Some("true" | "1" | "yes") => true,
                    Some(_) => bail!("S3_CREATE_BUCKET must be true or false."),
                };
                StorageConfig::S3 {
                    settings: S3Settings {
                        bucket,
                        endpoint,
                        region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
                        access_key_id,
                        secret_access_key,
                    },
                    create_bucket,
                }
            }
        };

        let mail = match var("SMTP_URL") {
            Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
                MailConfig::Smtp {
                    url: Secret::new(url),
                }
            }
            Some(_) => bail!("SMTP_URL must start with smtp:// or smtps://."),
            None => MailConfig::Files {
                dir: data_dir.join("mail"),
            },
        };

        let max_file_size_mb = match var("MAX_FILE_SIZE") {
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|mb| *mb > 0)
                .context("MAX_FILE_SIZE must be a whole number of megabytes greater than 0.")?,
            None => 100,
        };
        let allowed_extensions: Vec<String> = var("ALLOWED_EXTENSIONS")
            .unwrap_or_else(|| DEFAULT_EXTENSIONS.to_owned())
            .split(',')
            .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        if let Some(bad) = allowed_extensions
            .iter()
            .find(|e| audiomill_api::upload::Container::for_extension(e).is_none())
        {
            bail!(
                "ALLOWED_EXTENSIONS names `{bad}`, which cannot be converted; choose from mp4, m4v, mov, avi, mkv, webm."
            );
        }

        let listen = match listen {
            Some(listen) => listen,
            None => var("LISTEN_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
                .parse()
                .context("LISTEN_ADDR must be an address such as 127.0.0.1:8080.")?,
        };

        let max_concurrent_transcodes = match var("MAX_CONCURRENT_TRANSCODES") {
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .context("MAX_CONCURRENT_TRANSCODES must be a whole number greater than 0.")?,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };

        let positive = |name: &str, default: u32| -> anyhow::Result<u32> {
            match var(name) {
                Some(text) => text
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name} must be a whole number greater than 0.")),
                None => Ok(default),
            }
        };
        let login_attempts_per_minute = positive("LOGIN_ATTEMPTS_PER_MINUTE", 10)?;
        let requests_per_minute = positive("RATE_LIMIT_PER_MINUTE", 600)?;
        let max_concurrent_uploads = positive("MAX_CONCURRENT_UPLOADS", 3)?;
        let max_connections = positive("MAX_CONNECTIONS", 1024)?;
        let media_limits = MediaLimits {
            max_seconds: positive("MAX_MEDIA_SECONDS", MediaLimits::default().max_seconds)?,
            max_output_mb: positive("MAX_OUTPUT_MB", MediaLimits::default().max_output_mb)?,
            max_seconds_per_mb: positive(
                "MAX_SECONDS_PER_MB",
                MediaLimits::default().max_seconds_per_mb,
            )?,
        };

        let cors_allowed_origins: Vec<String> = var("CORS_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = cors_allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            bail!("CORS_ALLOWED_ORIGINS names `{bad}`; origins look like https://app.example.com.");
        }
        let redis_url = var("REDIS_URL").map(Secret::new);
        if redis_url.as_ref().is_some_and(|url| {
            !url.expose().starts_with("redis://") && !url.expose().starts_with("rediss://")
        }) {
            bail!("REDIS_URL must start with redis:// or rediss://.");
        }

        Ok(Self {
            transcoder: Transcoder::new(
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("audiomill")),
            ),
            redis_url,
            max_connections,
            media_limits,
            max_concurrent_uploads,
            cors_allowed_origins,
            login_attempts_per_minute,
            requests_per_minute,
            max_concurrent_transcodes,
            work_dir: var("WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("work")),
            data_dir,
            database_url,
            temporal_address: var("TEMPORAL_ADDRESS"),
            temporal_namespace: var("TEMPORAL_NAMESPACE").unwrap_or_else(|| "default".to_owned()),
            storage,
            mail,
            mail_from: var("MAIL_FROM")
                .unwrap_or_else(|| "Audiomill <audiomill@localhost>".to_owned()),
            jwt_secret: var("JWT_SECRET").map(Secret::new),
            max_file_size_mb,
            allowed_extensions,
            listen,
            public_url: var("PUBLIC_URL"),
        })
    }

    pub fn from_env(data_dir: Option<PathBuf>, listen: Option<SocketAddr>) -> anyhow::Result<Self> {
        Self::from_lookup(data_dir, listen, |name| std::env::var(name).ok())
    }

    /// The public base URL, defaulting to the listen address.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }

    pub fn data_path(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(Some(PathBuf::from("/srv/am")), None, |name| {
            vars.get(name).cloned()
        })
    }

    #[test]
    fn every_variable_read_is_listed() {
        let source = include_str!("config.rs");
        let (code, _) = source.split_once("#[cfg(test)]").unwrap();
        for quoted in code.split("var(\"").skip(1) {
            let name = quoted.split('"').next().unwrap();
            assert!(
                ENV_VARS.contains(&name),
                "{name} is read but not in ENV_VARS"
            );
        }
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.database_url.expose(),
            "sqlite:///srv/am/audiomill.db"
        );
        assert!(
            matches!(&config.storage, StorageConfig::Files { root } if root == Path::new("/srv/am/objects"))
        );
        assert_eq!(
            config.mail,
            MailConfig::Files {
                dir: "/srv/am/mail".into()
            }
        );
        assert_eq!(config.max_file_size_mb, 100);
        assert_eq!(
            config.allowed_extensions,
            ["mp4", "avi", "mov", "mkv", "webm"]
        );
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.temporal_address, None);
    }

    #[test]
    fn unsupported_backends_and_bad_values_are_refused_with_a_sentence() {
        let s3 = [
            ("S3_BUCKET", "b"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        for (name, value) in [
            ("DATABASE_URL", "postgres://x"),
            ("SMTP_URL", "http://mail"),
            ("MAX_FILE_SIZE", "lots"),
            ("MAX_FILE_SIZE", "0"),
            ("ALLOWED_EXTENSIONS", "mp4,exe"),
            ("LISTEN_ADDR", "everywhere"),
            ("S3_CREATE_BUCKET", "maybe"),
            ("AWS_ENDPOINT_URL", "minio:9000"),
            ("CORS_ALLOWED_ORIGINS", "app.example.com"),
            ("RATE_LIMIT_PER_MINUTE", "none"),
        ] {
            let mut vars = s3.to_vec();
            vars.push((name, value));
            let error = config(&vars).expect_err(name).to_string();
            assert!(
                error.ends_with('.') && error.contains(name),
                "{name}: {error}"
            );
        }
        let error = config(&[("S3_BUCKET", "videos")]).unwrap_err().to_string();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
    }

    #[test]
    fn s3_settings_come_from_the_conventional_names() {
        let config = config(&[
            ("S3_BUCKET", "videos"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret-key-value"),
            ("S3_CREATE_BUCKET", "true"),
        ])
        .unwrap();
        let StorageConfig::S3 {
            settings,
            create_bucket,
        } = &config.storage
        else {
            panic!("not S3")
        };
        assert_eq!(settings.bucket, "videos");
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(settings.region, "us-east-1");
        assert!(create_bucket);
        assert!(!format!("{config:?}").contains("secret-key-value"));
    }

    #[test]
    fn secrets_do_not_print() {
        let config = config(&[
            ("JWT_SECRET", "super-secret-value"),
            ("SMTP_URL", "smtp://user:pw@host:25"),
            ("DATABASE_URL", "mysql://app:db-password@db:3306/audiomill"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("super-secret-value")
                && !printed.contains("pw@host")
                && !printed.contains("db-password"),
            "{printed}"
        );
    }
}
