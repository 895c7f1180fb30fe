//! Configuration, parsed once at start with clap and passed explicitly.
//!
//! Every setting is a flag with a conventional environment variable behind it, so
//! `audiomill <role> --help` lists them all with their defaults. Each role has its own group:
//! - [`BackendArgs`] -> [`Config`]: database, object storage, mail and Temporal (every role);
//!   [`DataArgs`] is its database part, all that `migrate` and `user add` need.
//! - [`GatewayArgs`] -> [`GatewayConfig`]; [`WorkerArgs`] -> [`WorkerConfig`].
//!
//! Value parsers check single values (their messages are completed with the variable's name
//! in [`crate::cli`]); `resolve` checks what depends on several, and fills in the defaults
//! that depend on others (the data dir).

use anyhow::bail;
use audiomill_activities::{
    isolated::Transcoder,
    transcode::{MediaLimits, SegmentSettings},
};
use audiomill_domain::lifecycle::{Quota, Retention};
use audiomill_store::S3Settings;
use clap::{Args, Parser};
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The embedded default when `ALLOWED_EXTENSIONS` is unset.
pub const DEFAULT_EXTENSIONS: &str = "mp4,avi,mov,mkv,webm,mp3,m4a,wav,flac,ogg,opus";

/// A signing key shorter than this is refused: HS256 keys should carry at least 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest a download link may work: a year.
const MAX_LINK_HOURS: u32 = 365 * 24;

/// The longest a presigned S3 URL may work (SigV4's own limit).
const MAX_PRESIGNED_SECONDS: u32 = 7 * 24 * 3600;

/// Where the state is: enough for `migrate` and `user add`.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Where the embedded mode keeps its state (database, objects, mail, keys).
    #[arg(long, env = "DATA_DIR", value_name = "DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `mysql://USER:PASSWORD@HOST:PORT/DATABASE` [default:
    /// sqlite://DIR/audiomill.db]
    #[arg(long, env = "DATABASE_URL", value_name = "URL", value_parser = database_url, hide_env_values = true)]
    pub database_url: Option<Secret>,
}

/// The backends every role uses.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Backends")]
pub struct BackendArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The Temporal frontend (`dev` starts a server of its own when unset).
    #[arg(long, env = "TEMPORAL_ADDRESS", value_name = "HOST:PORT")]
    pub temporal_address: Option<String>,
    #[arg(
        long,
        env = "TEMPORAL_NAMESPACE",
        value_name = "NAME",
        default_value = "default"
    )]
    pub temporal_namespace: String,
    /// Keep objects in this S3 bucket instead of files under DIR/objects.
    #[arg(long, env = "S3_BUCKET", value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// Create the bucket at start when it does not exist.
    #[arg(long, env = "S3_CREATE_BUCKET", value_name = "BOOL", value_parser = boolean, default_value = "false", action = clap::ArgAction::Set)]
    pub s3_create_bucket: bool,
    /// An S3-compatible server (MinIO, ...), addressed path-style [default: AWS S3].
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL", value_parser = http_url)]
    pub aws_endpoint_url: Option<String>,
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub aws_access_key_id: Option<String>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", value_name = "SECRET", value_parser = secret, hide_env_values = true)]
    pub aws_secret_access_key: Option<Secret>,
    #[arg(
        long,
        env = "AWS_REGION",
        value_name = "REGION",
        default_value = "us-east-1"
    )]
    pub aws_region: String,
    /// Send e-mail through this server (`smtp://` or `smtps://`, lettre's URL form) instead
    /// of writing `.eml` files under DIR/mail.
    #[arg(long, env = "SMTP_URL", value_name = "URL", value_parser = smtp_url, hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    #[arg(
        long,
        env = "MAIL_FROM",
        value_name = "ADDRESS",
        default_value = "Audiomill <audiomill@localhost>"
    )]
    pub mail_from: String,
    /// The bearer token Prometheus must send for `/metrics` (the gateway's, and a worker's on
    /// METRICS_LISTEN) [default: none, `/metrics` is open].
    #[arg(long, env = "METRICS_TOKEN", value_name = "TOKEN", value_parser = secret, hide_env_values = true)]
    pub metrics_token: Option<Secret>,
    #[command(flatten)]
    pub links: LinkArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub imports: imports::ImportArgs,
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
}

/// Retention and quotas: a worker writes each job's expiry when it ends and runs the cleanup,
/// the gateway shows expiries and holds users to their quotas, so every role reads these.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Retention and quotas")]
pub struct LifecycleArgs {
    /// How long a job and its MP3 are kept once the job ended, in hours.
    #[arg(long, env = "RETENTION_HOURS", value_name = "HOURS", default_value = "168", value_parser = clap::value_parser!(u32).range(1..=87_600))]
    pub retention_hours: u32,
    /// How long an uploaded video is kept once its job ended, in hours; 0 removes it as soon
    /// as the job ends (for a completed job, once its MP3 is stored).
    #[arg(long, env = "RETENTION_SOURCE_HOURS", value_name = "HOURS", default_value = "0", value_parser = clap::value_parser!(u32).range(0..=87_600))]
    pub retention_source_hours: u32,
    /// How often the cleanup removes what has expired, in minutes (a Temporal Schedule).
    #[arg(long, env = "CLEANUP_INTERVAL_MINUTES", value_name = "MINUTES", default_value = "60", value_parser = clap::value_parser!(u32).range(1..=1_440))]
    pub cleanup_interval_minutes: u32,
    /// What one user may keep in storage (videos and MP3s), in MB; 0 for no limit. An admin
    /// sets a user's own with `audiomill user set-quota`.
    #[arg(
        long,
        env = "QUOTA_STORAGE_MB",
        value_name = "MB",
        default_value = "10240"
    )]
    pub quota_storage_mb: u64,
    /// How many jobs one user may start in a UTC day; 0 for no limit.
    #[arg(
        long,
        env = "QUOTA_JOBS_PER_DAY",
        value_name = "N",
        default_value = "1000"
    )]
    pub quota_jobs_per_day: u64,
}

/// Webhooks: the gateway checks endpoints when they are registered, a worker again at every
/// delivery, so both read these.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    /// Let webhooks reach loopback, private and link-local addresses (receivers on the
    /// operator's own network). Off, such endpoints are refused at registration and delivery.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", value_name = "BOOL", value_parser = boolean, default_value = "false", action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// How long a receiver has to answer a delivery, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECONDS", value_name = "SECONDS", default_value = "10", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub webhook_timeout_seconds: u64,
}

/// Signed download links: the worker puts them in e-mails, the gateway hands them out and
/// checks them, so both read these.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Download links")]
pub struct LinkArgs {
    /// The gateway's address as users reach it, the base of download links [default: the
    /// gateway's own address in `dev`, else http://127.0.0.1:8080].
    #[arg(long, env = "PUBLIC_URL", value_name = "URL", value_parser = http_url)]
    pub public_url: Option<String>,
    /// Another name of `PUBLIC_URL`, which either may set.
    #[arg(long, env = "PUBLIC_BASE_URL", value_name = "URL", value_parser = http_url, conflicts_with = "public_url", hide = true)]
    pub public_base_url: Option<String>,
    /// The key download links are signed with, at least 32 characters, not the JWT key
    /// (required outside `dev`, which generates one in DIR; the gateway and every worker
    /// need the same).
    #[arg(long, env = "DOWNLOAD_LINK_SECRET", value_name = "KEY", value_parser = signing_key, hide_env_values = true)]
    pub download_link_secret: Option<Secret>,
    /// How long a download link works, in hours.
    #[arg(long, env = "DOWNLOAD_LINK_HOURS", value_name = "HOURS", default_value = "72", value_parser = link_hours)]
    pub download_link_hours: u32,
}

/// What only the gateway reads.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayArgs {
    /// The address the HTTP API listens on.
    #[arg(long, env = "LISTEN_ADDR", value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// The key tokens are signed with, at least 32 characters (required outside `dev`, which
    /// generates one in DIR).
    #[arg(long, env = "JWT_SECRET", value_name = "KEY", value_parser = signing_key, hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// The largest upload, in MB.
    #[arg(long, env = "MAX_FILE_SIZE", value_name = "MB", default_value = "100", value_parser = whole_above_zero::<u64>)]
    pub max_file_size: u64,
    /// The most `file` parts one upload may carry (each becomes a job of one batch).
    #[arg(long, env = "MAX_FILES_PER_UPLOAD", value_name = "N", default_value = "10", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_files_per_upload: u16,
    /// The file name extensions accepted for upload, comma-separated.
    #[arg(long, env = "ALLOWED_EXTENSIONS", value_name = "LIST", default_value = DEFAULT_EXTENSIONS, value_parser = extensions)]
    pub allowed_extensions: Extensions,
    /// Login attempts per account and minute (three times as many per client address).
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_MINUTE", value_name = "N", default_value = "10", value_parser = whole_above_zero::<u32>)]
    pub login_attempts_per_minute: u32,
    /// Requests per user (or client address) and minute.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", value_name = "N", default_value = "600", value_parser = whole_above_zero::<u32>)]
    pub rate_limit_per_minute: u32,
    /// Webhook delivery replays per user and minute (each sends requests from the workers).
    #[arg(long, env = "REPLAYS_PER_MINUTE", value_name = "N", default_value = "10", value_parser = whole_above_zero::<u32>)]
    pub replays_per_minute: u32,
    /// Imports from a link (`POST /imports`) per user and minute (each sends requests from
    /// the workers).
    #[arg(long, env = "IMPORTS_PER_MINUTE", value_name = "N", default_value = "10", value_parser = whole_above_zero::<u32>)]
    pub imports_per_minute: u32,
    /// Event streams (`GET /jobs/{job_id}/events`) one user may hold open on one gateway.
    #[arg(long, env = "MAX_EVENT_STREAMS_PER_USER", value_name = "N", default_value = "20", value_parser = whole_above_zero::<u32>)]
    pub max_event_streams_per_user: u32,
    /// Event streams one gateway holds open over all users.
    #[arg(long, env = "MAX_EVENT_STREAMS", value_name = "N", default_value = "1000", value_parser = whole_above_zero::<u32>)]
    pub max_event_streams: u32,
    /// Browser origins allowed to call the API (CORS), comma-separated.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "LIST", default_value = "", value_parser = origins)]
    pub cors_allowed_origins: Origins,
    /// Uploads one user may have in progress at once.
    #[arg(long, env = "MAX_CONCURRENT_UPLOADS", value_name = "N", default_value = "3", value_parser = whole_above_zero::<u32>)]
    pub max_concurrent_uploads: u32,
    /// How long an unfinished resumable (tus) upload is kept, in hours; the cleanup then
    /// removes its bytes.
    #[arg(long, env = "RESUMABLE_EXPIRY_HOURS", value_name = "HOURS", default_value = "24", value_parser = clap::value_parser!(u32).range(1..=720))]
    pub resumable_expiry_hours: u32,
    /// Unfinished resumable uploads one user may have at once.
    #[arg(long, env = "MAX_UNFINISHED_UPLOADS", value_name = "N", default_value = "10", value_parser = whole_above_zero::<u32>)]
    pub max_unfinished_uploads: u32,
    /// Unfinished resumable uploads one client address may have at once, over all its users.
    #[arg(long, env = "MAX_UNFINISHED_UPLOADS_PER_ADDRESS", value_name = "N", default_value = "30", value_parser = whole_above_zero::<u32>)]
    pub max_unfinished_uploads_per_address: u32,
    /// A resumable upload's request whose body sends nothing for this long is cut off,
    /// keeping what arrived, in seconds.
    #[arg(long, env = "UPLOAD_IDLE_SECONDS", value_name = "SECONDS", default_value = "60", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub upload_idle_seconds: u32,
    /// Redis, where every gateway replica counts rate limits [default: each counts its own].
    #[arg(long, env = "REDIS_URL", value_name = "URL", value_parser = redis_url, hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Connections served at once; beyond them, clients wait.
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "N", default_value = "1024", value_parser = whole_above_zero::<u32>)]
    pub max_connections: u32,
    /// With S3, answer downloads with a redirect to a presigned URL of the object, so the
    /// bucket serves the bytes (the bucket's endpoint must be reachable by the users).
    #[arg(long, env = "DOWNLOAD_REDIRECT", value_name = "BOOL", value_parser = boolean, default_value = "false", action = clap::ArgAction::Set)]
    pub download_redirect: bool,
    /// How long a redirect's presigned URL works, in seconds (at most 7 days).
    #[arg(long, env = "DOWNLOAD_REDIRECT_SECONDS", value_name = "SECONDS", default_value = "300", value_parser = redirect_seconds)]
    pub download_redirect_seconds: u32,
    /// Whether anyone may make an account with `POST /signup` (or the web app's sign-in page);
    /// off, accounts come only from admins and their invitations.
    #[arg(long, env = "ALLOW_SIGNUP", value_name = "BOOL", value_parser = boolean, default_value = "false", action = clap::ArgAction::Set)]
    pub allow_signup: bool,
    #[command(flatten)]
    pub sign_in: sign_on::SignInArgs,
}

/// What only a worker reads.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Worker")]
pub struct WorkerArgs {
    /// Scratch space for sources and MP3s being made [default: DIR/work].
    #[arg(long, env = "WORK_DIR", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// How many transcodes run at once [default: the number of CPU cores].
    #[arg(long, env = "MAX_CONCURRENT_TRANSCODES", value_name = "N", value_parser = whole_above_zero::<usize>)]
    pub max_concurrent_transcodes: Option<usize>,
    /// This worker's name in the Temporal Web UI [default: audiomill-worker-RANDOM].
    #[arg(long, env = "WORKER_ID", value_name = "NAME")]
    pub worker_id: Option<String>,
    /// The longest audio converted, in seconds.
    #[arg(long, env = "MAX_MEDIA_SECONDS", value_name = "SECONDS", default_value_t = MediaLimits::default().max_seconds, value_parser = whole_above_zero::<u32>)]
    pub max_media_seconds: u32,
    /// The largest MP3 made, in MB.
    #[arg(long, env = "MAX_OUTPUT_MB", value_name = "MB", default_value_t = MediaLimits::default().max_output_mb, value_parser = whole_above_zero::<u32>)]
    pub max_output_mb: u32,
    /// Seconds of audio allowed per MB of upload beyond the first ten minutes.
    #[arg(long, env = "MAX_SECONDS_PER_MB", value_name = "SECONDS", default_value_t = MediaLimits::default().max_seconds_per_mb, value_parser = whole_above_zero::<u32>)]
    pub max_seconds_per_mb: u32,
    /// Sources at least this long (after any trim) are converted in parts, on every worker
    /// with room, and joined; 0 turns this off.
    #[arg(long, env = "SEGMENT_MIN_SECONDS", value_name = "SECONDS", default_value_t = SegmentSettings::default().min_seconds)]
    pub segment_min_seconds: u32,
    /// About the audio each part converts, in seconds (equal parts, at least two).
    #[arg(long, env = "SEGMENT_SECONDS", value_name = "SECONDS", default_value_t = SegmentSettings::default().share_seconds, value_parser = whole_above_zero::<u32>)]
    pub segment_seconds: u32,
    /// The most parts one source is cut into (longer parts then); 0: as many as
    /// SEGMENT_SECONDS gives [default: 0; in `dev`, MAX_CONCURRENT_TRANSCODES: its one worker
    /// converts that many parts at once, and more would only wait their turn].
    #[arg(long, env = "SEGMENT_MAX_PARTS", value_name = "N")]
    pub segment_max_parts: Option<u32>,
    /// Serve `/metrics`, `/health/live` and `/health/ready` of this worker on this address
    /// [default: none; in `dev` the gateway's `/metrics` covers the worker too].
    #[arg(long, env = "METRICS_LISTEN", value_name = "ADDR", value_parser = listen_addr)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Everything `dev` reads: both roles on one set of backends. Tests parse it from a map of
/// variables ([`DevArgs::from_vars`]).
#[derive(Parser, Debug, Clone)]
pub struct DevArgs {
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// The backends, checked: what every role runs on.
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
    /// The token `/metrics` asks for, wherever it is served.
    pub metrics_token: Option<Secret>,
    pub links: LinkConfig,
    pub webhooks: WebhookConfig,
    pub imports: imports::ImportConfig,
    pub lifecycle: LifecycleConfig,
}

/// Retention and quotas, as [`LifecycleArgs`] set them.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    pub retention: Retention,
    pub cleanup_every: std::time::Duration,
    /// The deployment's default limits of every user.
    pub quota: Quota,
}

/// Webhooks, as [`WebhookArgs`] set them.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    pub allow_private: bool,
    pub timeout: std::time::Duration,
}

/// Download links, as [`LinkArgs`] set them.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `None`: the gateway's address in the same process, else `http://127.0.0.1:8080`.
    pub public_url: Option<String>,
    /// `None` outside `dev` is refused when a role starts.
    pub secret: Option<Secret>,
    pub lifetime: std::time::Duration,
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

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// `None` outside `dev` is refused when the gateway starts.
    pub jwt_secret: Option<Secret>,
    /// `dev`: the signing key and the first admin may be made and kept in the data dir.
    pub embedded: bool,
    pub max_file_size_mb: u64,
    pub max_files_per_upload: u16,
    pub allowed_extensions: Vec<String>,
    pub login_attempts_per_minute: u32,
    pub requests_per_minute: u32,
    pub replays_per_minute: u32,
    pub imports_per_minute: u32,
    pub max_event_streams_per_user: usize,
    pub max_event_streams: usize,
    pub cors_allowed_origins: Vec<String>,
    pub max_concurrent_uploads: u32,
    pub resumable: audiomill_api::ResumableLimits,
    pub redis_url: Option<Secret>,
    pub max_connections: u32,
    /// With S3: answer downloads with a presigned URL that works this long.
    pub download_redirect: Option<std::time::Duration>,
    pub allow_signup: bool,
    pub password_sign_in: bool,
    /// Single sign-on, when an OpenID provider is set up.
    pub sign_on: Option<audiomill_api::sign_on::SignOnSettings>,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub work_dir: PathBuf,
    pub max_concurrent_transcodes: usize,
    pub worker_id: Option<String>,
    pub media_limits: MediaLimits,
    /// When a long source is converted in parts; `None`: never.
    pub segments: Option<SegmentSettings>,
    /// Where this worker serves its metrics and health pages, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How transcodes run: in child processes of this executable (`audiomill
    /// transcode-child`). Not a setting; tests point it at the built binary.
    pub transcoder: Transcoder,
}

/// A value that must never appear in logs, `Debug` output or `--help`.
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

/// Accepted upload extensions, lower case, without dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extensions(pub Vec<String>);

/// Browser origins, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

impl DataArgs {
    pub fn database_url(&self) -> Secret {
        self.database_url.clone().unwrap_or_else(|| {
            Secret::new(format!(
                "sqlite://{}",
                self.data_dir.join("audiomill.db").display()
            ))
        })
    }
}

impl BackendArgs {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let data_dir = self.data.data_dir.clone();
        let storage = match self.s3_bucket {
            None => StorageConfig::Files {
                root: data_dir.join("objects"),
            },
            Some(bucket) => {
                let (Some(access_key_id), Some(secret_access_key)) =
                    (self.aws_access_key_id, self.aws_secret_access_key)
                else {
                    bail!("S3_BUCKET needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.");
                };
                StorageConfig::S3 {
                    settings: S3Settings {
                        bucket,
                        endpoint: self.aws_endpoint_url,
                        region: self.aws_region,
                        access_key_id,
                        secret_access_key: secret_access_key.0,
                    },
                    create_bucket: self.s3_create_bucket,
                }
            }
        };
        let mail = match self.smtp_url {
            Some(url) => MailConfig::Smtp { url },
            None => MailConfig::Files {
                dir: data_dir.join("mail"),
            },
        };
        Ok(Config {
            database_url: self.data.database_url(),
            data_dir,
            temporal_address: self.temporal_address,
            temporal_namespace: self.temporal_namespace,
            storage,
            mail,
            mail_from: self.mail_from,
            metrics_token: self.metrics_token,
            links: LinkConfig {
                public_url: self.links.public_url.or(self.links.public_base_url),
                secret: self.links.download_link_secret,
                lifetime: std::time::Duration::from_secs(
                    u64::from(self.links.download_link_hours) * 3600,
                ),
            },
            webhooks: WebhookConfig {
                allow_private: self.webhooks.webhook_allow_private,
                timeout: std::time::Duration::from_secs(self.webhooks.webhook_timeout_seconds),
            },
            imports: imports::ImportConfig {
                allow_private: self.imports.import_allow_private,
                idle_timeout: std::time::Duration::from_secs(self.imports.import_timeout_seconds),
                connection_secret_key: self.imports.connection_secret_key,
                watch_directories: self.imports.watch_directories.0,
            },
            lifecycle: self.lifecycle.resolve(),
        })
    }
}

impl LifecycleArgs {
    fn resolve(self) -> LifecycleConfig {
        let limit = |value: u64| (value > 0).then_some(value);
        LifecycleConfig {
            retention: Retention {
                job_hours: self.retention_hours,
                source_hours: self.retention_source_hours,
            },
            cleanup_every: std::time::Duration::from_secs(
                u64::from(self.cleanup_interval_minutes) * 60,
            ),
            quota: Quota {
                storage_bytes: limit(self.quota_storage_mb.saturating_mul(1024 * 1024)),
                jobs_per_day: limit(self.quota_jobs_per_day),
            },
        }
    }
}

impl GatewayArgs {
    pub fn resolve(self, embedded: bool) -> GatewayConfig {
        GatewayConfig {
            listen: self.listen,
            jwt_secret: self.jwt_secret,
            embedded,
            max_file_size_mb: self.max_file_size,
            max_files_per_upload: self.max_files_per_upload,
            allowed_extensions: self.allowed_extensions.0,
            login_attempts_per_minute: self.login_attempts_per_minute,
            requests_per_minute: self.rate_limit_per_minute,
            replays_per_minute: self.replays_per_minute,
            imports_per_minute: self.imports_per_minute,
            max_event_streams_per_user: self.max_event_streams_per_user as usize,
            max_event_streams: self.max_event_streams as usize,
            cors_allowed_origins: self.cors_allowed_origins.0,
            max_concurrent_uploads: self.max_concurrent_uploads,
            resumable: audiomill_api::ResumableLimits {
                expiry: std::time::Duration::from_secs(
                    u64::from(self.resumable_expiry_hours) * 3600,
                ),
                max_unfinished: u64::from(self.max_unfinished_uploads),
                max_unfinished_per_address: u64::from(self.max_unfinished_uploads_per_address),
                idle: std::time::Duration::from_secs(u64::from(self.upload_idle_seconds)),
            },
            redis_url: self.redis_url,
            max_connections: self.max_connections,
            download_redirect: self
                .download_redirect
                .then(|| std::time::Duration::from_secs(self.download_redirect_seconds.into())),
            allow_signup: self.allow_signup,
            password_sign_in: self.sign_in.password_sign_in,
            sign_on: self.sign_in.sign_on(),
        }
    }
}

impl WorkerArgs {
    pub fn resolve(self, config: &Config) -> WorkerConfig {
        WorkerConfig {
            work_dir: self
                .work_dir
                .unwrap_or_else(|| config.data_dir.join("work")),
            max_concurrent_transcodes: self
                .max_concurrent_transcodes
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            worker_id: self.worker_id,
            media_limits: MediaLimits {
                max_seconds: self.max_media_seconds,
                max_output_mb: self.max_output_mb,
                max_seconds_per_mb: self.max_seconds_per_mb,
            },
            segments: (self.segment_min_seconds > 0).then_some(SegmentSettings {
                min_seconds: self.segment_min_seconds,
                share_seconds: self.segment_seconds,
                max_parts: self.segment_max_parts.filter(|&most| most > 0),
            }),
            metrics_listen: self.metrics_listen,
            transcoder: Transcoder::new(
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("audiomill")),
            ),
        }
    }
}

impl DevArgs {
    /// The three configurations; `embedded` as for [`GatewayArgs::resolve`].
    pub fn resolve(self, embedded: bool) -> anyhow::Result<(Config, GatewayConfig, WorkerConfig)> {
        let config = self.backends.resolve()?;
        let parts_capped = self.worker.segment_max_parts.is_some();
        let mut worker = self.worker.resolve(&config);
        if let Some(segments) = &mut worker.segments
            && !parts_capped
        {
            // The only worker: more parts than its transcode slots would only add rounds.
            segments.max_parts = u32::try_from(worker.max_concurrent_transcodes).ok();
        }
        Ok((config, self.gateway.resolve(embedded), worker))
    }
}

impl Config {
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }
}

// Value parsers. Each message is the end of a sentence that starts with the variable's name.

fn database_url(text: &str) -> Result<Secret, String> {
    let url = text.trim();
    if url.starts_with("sqlite:") || url.starts_with("mysql:") {
        Ok(Secret::new(url))
    } else if let Some(rest) = url.strip_prefix("mariadb:") {
        Ok(Secret::new(format!("mysql:{rest}")))
    } else {
        Err("must start with sqlite:// or mysql://; other databases are not supported".into())
    }
}

fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text.trim()))
}

fn signing_key(text: &str) -> Result<Secret, String> {
    let key = text.trim();
    if key.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "must be at least {MIN_SECRET_BYTES} characters long"
        ));
    }
    Ok(Secret::new(key))
}

fn smtp_url(text: &str) -> Result<Secret, String> {
    secret_url(text, ["smtp://", "smtps://"])
}

fn redis_url(text: &str) -> Result<Secret, String> {
    secret_url(text, ["redis://", "rediss://"])
}

/// A URL that may carry a password, with one of two schemes (plain and TLS).
fn secret_url(text: &str, schemes: [&str; 2]) -> Result<Secret, String> {
    let url = text.trim();
    if schemes.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(Secret::new(url))
    } else {
        Err(format!("must start with {} or {}", schemes[0], schemes[1]))
    }
}

fn http_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err("must start with http:// or https://".into())
    }
}

fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "must be an address such as 127.0.0.1:8080".into())
}

fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

fn whole_above_zero<N: std::str::FromStr + PartialOrd + From<u8>>(text: &str) -> Result<N, String> {
    text.trim()
        .parse::<N>()
        .ok()
        .filter(|n| *n > N::from(0))
        .ok_or_else(|| "must be a whole number greater than 0".into())
}

fn link_hours(text: &str) -> Result<u32, String> {
    whole_above_zero::<u32>(text)
        .ok()
        .filter(|hours| *hours <= MAX_LINK_HOURS)
        .ok_or_else(|| format!("must be a whole number of hours from 1 to {MAX_LINK_HOURS}"))
}

fn redirect_seconds(text: &str) -> Result<u32, String> {
    whole_above_zero::<u32>(text)
        .ok()
        .filter(|seconds| *seconds <= MAX_PRESIGNED_SECONDS)
        .ok_or_else(|| {
            format!("must be a whole number of seconds from 1 to {MAX_PRESIGNED_SECONDS} (7 days, the most S3 allows)")
        })
}

fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn extensions(text: &str) -> Result<Extensions, String> {
    let list: Vec<String> = comma_list(text)
        .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
        .collect();
    match list
        .iter()
        .find(|e| audiomill_api::uploads::file::Container::for_extension(e).is_none())
    {
        Some(bad) => Err(format!(
            "names `{bad}`, which cannot be converted; choose from {}",
            audiomill_domain::container::EXTENSIONS.join(", ")
        )),
        None if list.is_empty() => Err("must name at least one extension".into()),
        None => Ok(Extensions(list)),
    }
}

fn origins(text: &str) -> Result<Origins, String> {
    let list: Vec<String> = comma_list(text)
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    match list
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
    {
        Some(bad) => Err(format!(
            "names `{bad}`; origins look like https://app.example.com"
        )),
        None => Ok(Origins(list)),
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

mod imports;
mod sign_on;
#[cfg(test)]
mod tests;
