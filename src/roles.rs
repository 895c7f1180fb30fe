//! The production roles, `gateway` and `worker`, and [`App`], which runs both in one process.

use crate::{
    config::{Config, MailConfig, Secret, StorageConfig, write_private},
    temporal,
};
use anyhow::{Context, bail};
use audiomill_activities::{ConvertActivities, Mailer, WorkerSettings, transcode::Mp3Settings};
use audiomill_api::{
    Gateway, UploadLimits, auth,
    limits::{LimitSettings, Limits},
};
use audiomill_domain::contract::{FETCH_TASK_QUEUE, TASK_QUEUE};
use audiomill_store::{Database, ObjectStore};
use audiomill_workflows::ConvertVideo;
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use temporalio_sdk::{
    Worker, WorkerOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A secret shorter than this is refused: HS256 keys should carry at least 256 bits.
const MIN_SECRET_BYTES: usize = 32;

/// How long a workflow task waits on a dead worker's sticky queue before any worker takes it.
const STICKY_PICKUP: Duration = Duration::from_secs(3);

/// The state every role shares: database, object storage, mail.
#[derive(Clone)]
pub struct Backends {
    pub db: Database,
    pub objects: ObjectStore,
    pub mailer: Mailer,
}

impl Backends {
    /// Connects every backend and applies migrations; a backend that is down is named.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        if let Some(dir) = config
            .database_url
            .expose()
            .strip_prefix("sqlite://")
            .and_then(|p| std::path::Path::new(p).parent())
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        let db = Database::connect(config.database_url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("The database at DATABASE_URL is unreachable ({e})."))?;
        db.migrate()
            .await
            .context("could not migrate the database")?;
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
        })
    }
}

/// The signing key: `JWT_SECRET`, or in `dev` one generated once and kept in the data dir.
pub fn jwt_secret(config: &Config, allow_generated: bool) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.jwt_secret {
        if secret.expose().len() < MIN_SECRET_BYTES {
            bail!("JWT_SECRET must be at least {MIN_SECRET_BYTES} characters long.");
        }
        return Ok(secret.clone());
    }
    if !allow_generated {
        bail!("JWT_SECRET is required outside `audiomill dev`.");
    }
    let path = config.data_path("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= MIN_SECRET_BYTES
    {
        return Ok(Secret::new(existing.trim()));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).with_context(|| format!("could not write {}", path.display()))?;
    Ok(Secret::new(secret))
}

/// The gateway's rate limits: in Redis when `REDIS_URL` is set (checked now), else in process.
pub async fn rate_limits(config: &Config) -> anyhow::Result<Limits> {
    let settings = LimitSettings {
        logins_per_minute: config.login_attempts_per_minute,
        requests_per_minute: config.requests_per_minute,
    };
    match &config.redis_url {
        None => Ok(Limits::new(settings)),
        Some(url) => Limits::shared(settings, url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("The Redis server at REDIS_URL is unreachable ({e}).")),
    }
}

/// Serves the HTTP API until `shutdown` resolves.
pub async fn serve_gateway(
    config: &Config,
    backends: &Backends,
    rate_limits: Limits,
    temporal: temporalio_client::Client,
    secret: &Secret,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mailer = backends.mailer.clone();
    let gateway = Gateway {
        db: backends.db.clone(),
        objects: backends.objects.clone(),
        temporal,
        tokens: auth::TokenIssuer::new(secret.expose().as_bytes()),
        passwords: auth::Passwords::default(),
        limits: UploadLimits {
            max_bytes: config.max_file_size_mb * 1024 * 1024,
            allowed_extensions: config.allowed_extensions.clone(),
        },
        cors_origins: config.cors_allowed_origins.clone(),
        closed_views: Default::default(),
        uploads: audiomill_api::limits::UploadSlots::new(config.max_concurrent_uploads as usize),
        rate_limits,
        mail_probe: Some(Arc::new(move || {
            let mailer = mailer.clone();
            Box::pin(async move { mailer.ping().await })
        })),
    };
    audiomill_api::server::serve(
        listener,
        audiomill_api::app(Arc::new(gateway)),
        audiomill_api::server::ServerLimits {
            max_connections: config.max_connections as usize,
            ..Default::default()
        },
        shutdown,
    )
    .await
    .context("the HTTP server failed")
}

/// The gateway's Temporal client (Temporal must be at `TEMPORAL_ADDRESS`).
pub async fn gateway_client(config: &Config) -> anyhow::Result<temporalio_client::Client> {
    let address = config
        .temporal_address
        .clone()
        .context("TEMPORAL_ADDRESS is required for the gateway.")?;
    temporal::connect(
        &address,
        &config.temporal_namespace,
        "audiomill-gateway",
        Duration::from_secs(30),
    )
    .await
}

/// A worker running on its own thread (the SDK's worker future is not `Send`).
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl WorkerHandle {
    /// Starts a worker: pollers on the shared task queue (the workflow, `validate_token`,
    /// `send_email`), on the fetch queue (`fetch_source`, when this worker has room) and on
    /// this worker's own queue (the steps that need its local files). Returns once all three
    /// are polling.
    pub async fn start(
        config: &Config,
        backends: &Backends,
        public_url: String,
    ) -> anyhow::Result<Self> {
        let instance = uuid_v4();
        let settings = WorkerSettings {
            work_dir: config.work_dir.clone(),
            host_task_queue: format!("{TASK_QUEUE}-host-{instance}"),
            public_url,
            mp3: Mp3Settings::default(),
            max_transcodes: config.max_concurrent_transcodes,
            transcoder: config.transcoder.clone(),
            media_limits: config.media_limits,
        };
        let activities = ConvertActivities::new(
            backends.db.clone(),
            backends.objects.clone(),
            backends.mailer.clone(),
            settings.clone(),
        );
        activities
            .clean_work_dir()
            .await
            .context("could not prepare WORK_DIR")?;
        let address = config
            .temporal_address
            .clone()
            .context("no Temporal address")?;
        let namespace = config.temporal_namespace.clone();
        let identity = std::env::var("WORKER_ID")
            .ok()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| format!("audiomill-worker-{instance}"));
        // Three queues (see the workflow). The shared one keeps the SDK's defaults. The fetch
        // queue takes one job at a time, and only when this worker has room for it. The
        // worker's own queue has a slot for every job it may hold, so the next step of a held
        // job never waits for one (the transcode itself waits for the CPU inside).
        let limited = move |slots: usize| {
            TunerHolder::builder()
                .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .build()
        };
        let held_slots = activities.max_held_jobs();
        let reaper = {
            let activities = activities.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(10));
                loop {
                    every.tick().await;
                    activities.release_abandoned_jobs().await;
                }
            }
        };

        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("temporal-worker".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let started = async {
                        let client = temporal::connect(
                            &address,
                            &namespace,
                            &identity,
                            Duration::from_secs(30),
                        )
                        .await?;
                        let runtime =
                            temporalio_sdk::Runtime::from_current_tokio(Default::default())
                                .map_err(|e| {
                                    anyhow::anyhow!("could not start the Temporal runtime: {e}")
                                })?;
                        let shared = WorkerOptions::new(TASK_QUEUE)
                            .register_workflow::<ConvertVideo>()
                            .map_err(|e| anyhow::anyhow!("could not register the workflow: {e}"))?
                            .register_activities(activities.clone())
                            .sticky_queue_schedule_to_start_timeout(STICKY_PICKUP)
                            .build();
                        let fetch = WorkerOptions::new(FETCH_TASK_QUEUE)
                            .register_activities(activities.clone())
                            .tuner(limited(1))
                            .build();
                        let own = WorkerOptions::new(settings.host_task_queue.clone())
                            .register_activities(activities)
                            .tuner(limited(held_slots))
                            .build();
                        let worker = |options| {
                            Worker::new(&runtime, client.clone(), options)
                                .map_err(|e| anyhow::anyhow!("{e}"))
                        };
                        let (shared, fetch, own) = (worker(shared)?, worker(fetch)?, worker(own)?);
                        anyhow::Ok((runtime, shared, fetch, own))
                    };
                    let (_runtime, mut shared, mut fetch, mut own) = match started.await {
                        Ok(parts) => parts,
                        Err(error) => {
                            let message = error.to_string();
                            let _ = ready_tx.send(Err(error));
                            bail!(message);
                        }
                    };
                    let stops = [
                        shared.shutdown_handle(),
                        fetch.shutdown_handle(),
                        own.shutdown_handle(),
                    ];
                    tokio::task::spawn_local(async move {
                        let _ = stop_rx.await;
                        stops.iter().for_each(|stop| stop());
                    });
                    let reaper = tokio::task::spawn_local(reaper);
                    let _ = ready_tx.send(Ok(()));
                    tracing::info!(task_queue = TASK_QUEUE, "worker polling");
                    let (a, b, c) = tokio::join!(shared.run(), fetch.run(), own.run());
                    reaper.abort();
                    a.and(b)
                        .and(c)
                        .map_err(|e| anyhow::anyhow!("the worker stopped with an error: {e}"))
                })
            })?;
        ready_rx.await.context("the worker thread ended early")??;
        Ok(Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops polling, lets running activities finish their current step, and joins the thread.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the worker thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Resolves when the worker stops on its own (an error); pending forever otherwise.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn uuid_v4() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gateway and worker in one process, as `dev` runs them (and the tests).
pub struct App;

/// A running [`App`].
pub struct AppHandle {
    pub address: SocketAddr,
    pub backends: Backends,
    stop_http: Option<oneshot::Sender<()>>,
    http: tokio::task::JoinHandle<anyhow::Result<()>>,
    worker: Option<WorkerHandle>,
}

impl App {
    /// Starts both roles against the Temporal server in `config.temporal_address`.
    pub async fn start(config: &Config, allow_generated_secret: bool) -> anyhow::Result<AppHandle> {
        let secret = jwt_secret(config, allow_generated_secret)?;
        let backends = Backends::open(config).await?;
        let limits = rate_limits(config).await?;
        let client = gateway_client(config).await?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let bound = listener.local_addr()?;
        let worker = WorkerHandle::start(config, &backends, config.public_url(bound)).await?;

        let (stop_http, stopped) = oneshot::channel::<()>();
        let http = {
            let (config, backends) = (config.clone(), backends.clone());
            tokio::spawn(async move {
                serve_gateway(
                    &config,
                    &backends,
                    limits,
                    client,
                    &secret,
                    listener,
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
            })
        };
        tracing::info!(%bound, "gateway listening");
        Ok(AppHandle {
            address: bound,
            backends,
            stop_http: Some(stop_http),
            http,
            worker: Some(worker),
        })
    }
}

impl AppHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Resolves if the gateway or the worker stops by itself.
    pub async fn failed(&mut self) -> anyhow::Error {
        loop {
            if self.http.is_finished() {
                return anyhow::anyhow!("the HTTP server stopped");
            }
            if self.worker.as_ref().is_some_and(WorkerHandle::is_finished) {
                return anyhow::anyhow!("the worker stopped");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops only the worker; the gateway goes on serving.
    pub async fn stop_worker(&mut self) -> anyhow::Result<()> {
        match self.worker.take() {
            Some(worker) => worker.stop().await,
            None => Ok(()),
        }
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        let http = (&mut self.http).await;
        if let Some(worker) = self.worker.take() {
            worker.stop().await?;
        }
        self.backends.db.close().await;
        http??;
        Ok(())
    }
}
