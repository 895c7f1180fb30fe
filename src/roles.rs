//! The roles, `gateway` and `worker`, and [`run`], the one way any process starts them: `dev`
//! runs both, `gateway` and `worker` one each, the tests both through [`Running::start`].
//!
//! The backends are opened (and the database migrated) once per process, before any role.

use crate::{
    config::{
        Config, GatewayConfig, MIN_SECRET_BYTES, MailConfig, Secret, StorageConfig, WorkerConfig,
        write_private,
    },
    temporal,
    temporal_metrics::SdkMeter,
    users,
};
use anyhow::{Context, bail};
use audiomill_activities::{
    ConvertActivities, LifecycleActivities, Mailer, ProgressTeller, WebhookActivities,
    WebhookSettings, WorkDir, WorkerSettings, metered::StepMetrics,
};
use audiomill_api::{
    Gateway, UploadLimits, auth,
    limits::{LimitSettings, Limits, Slots, UploadSlots},
};
use audiomill_domain::{
    JobId,
    contract::{
        CLEANUP_SCHEDULE_ID, CLEANUP_WORKFLOW_TYPE, CleanExpiredInput, DeliverWebhooksInput,
        FETCH_TASK_QUEUE, SEGMENTS_TASK_QUEUE, TASK_QUEUE,
    },
    link::LinkSigner,
};
use audiomill_store::{Database, ObjectStore};
use audiomill_workflows::{CleanExpired, ConvertVideo, DeliverWebhooks};
use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use temporalio_common::telemetry::{TelemetryOptions, metrics::CoreMeter};
use temporalio_sdk::{
    Worker, WorkerOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// How long a workflow task waits on a dead worker's sticky queue before any worker takes it.
const STICKY_PICKUP: Duration = Duration::from_secs(3);

/// How long a role waits for Temporal at start (compose starts everything at once).
const TEMPORAL_PATIENCE: Duration = Duration::from_secs(30);

/// The roles one process runs: those that are configured.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub gateway: Option<GatewayConfig>,
    pub worker: Option<WorkerConfig>,
}

/// Opens the backends, starts `roles`, calls `ready` and runs until a signal asks to stop
/// (then stops gracefully) or a role ends by itself (an error).
pub async fn run(
    config: &Config,
    roles: Roles,
    ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    let mut running = Running::start(config, roles).await?;
    ready(&running);
    tokio::select! {
        _ = shutdown_signal() => {}
        error = running.ended() => {
            let _ = running.stop().await;
            return Err(error);
        }
    }
    tracing::info!("stopping");
    running.stop().await
}

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
fn jwt_secret(config: &Config, gateway: &GatewayConfig) -> anyhow::Result<Secret> {
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
fn link_secret(config: &Config, embedded: bool) -> anyhow::Result<Secret> {
    given_or_kept(
        config,
        config.links.secret.as_ref(),
        embedded,
        "DOWNLOAD_LINK_SECRET",
        "download-link-secret",
    )
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
fn link_signer(config: &Config, key: &Secret, gateway: Option<SocketAddr>) -> LinkSigner {
    let base = config.links.public_url.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            gateway.map_or_else(|| "127.0.0.1:8080".to_owned(), |a| a.to_string())
        )
    });
    LinkSigner::new(key.expose().as_bytes(), config.links.lifetime, &base)
}

/// The gateway's rate limits: in Redis when `REDIS_URL` is set (checked now), else in process.
async fn rate_limits(gateway: &GatewayConfig) -> anyhow::Result<Limits> {
    let settings = LimitSettings {
        logins_per_minute: gateway.login_attempts_per_minute,
        requests_per_minute: gateway.requests_per_minute,
        replays_per_minute: gateway.replays_per_minute,
    };
    match &gateway.redis_url {
        None => Ok(Limits::new(settings)),
        Some(url) => Limits::shared(settings, url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("The Redis server at REDIS_URL is unreachable ({e}).")),
    }
}

/// A Temporal client for `identity`, once the frontend answers.
async fn temporal_client(
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

/// An HTTP server on a task of its own: the gateway's API, or a worker's pages.
struct HttpTask {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Folds recorded histogram samples into their buckets, scraped or not.
    metrics_upkeep: JoinHandle<()>,
}

impl Drop for HttpTask {
    fn drop(&mut self) {
        self.metrics_upkeep.abort();
    }
}

impl HttpTask {
    /// Serves `endpoint` on `listener` until stopped; `on_stop` runs as the stop begins,
    /// before the requests in flight are waited for.
    fn serve(
        listener: TcpListener,
        endpoint: impl poem::IntoEndpoint<Endpoint: 'static> + Send + 'static,
        limits: audiomill_api::server::ServerLimits,
        on_stop: impl FnOnce() + Send + 'static,
    ) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
                on_stop();
            };
            audiomill_api::server::serve(listener, endpoint, limits, stopped)
                .await
                .context("the HTTP server failed")
        });
        let metrics_upkeep = tokio::spawn(async {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                audiomill_api::metrics::handle().run_upkeep();
            }
        });
        Ok(Self {
            address,
            stop: Some(stop),
            task: Some(task),
            metrics_upkeep,
        })
    }

    /// Checks the signing key and Redis, connects to Temporal, binds and serves the API.
    async fn gateway(
        config: &Config,
        gateway: &GatewayConfig,
        backends: &Backends,
        link_key: &Secret,
    ) -> anyhow::Result<Self> {
        let secret = jwt_secret(config, gateway)?;
        if gateway.embedded {
            users::ensure_initial_admin(&backends.db, &config.data_path("initial-admin.txt"))
                .await?;
        }
        let rate_limits = rate_limits(gateway).await?;
        let temporal = temporal_client(config, "audiomill-gateway").await?;
        let listener = bind(gateway.listen).await?;
        let links = link_signer(config, link_key, listener.local_addr().ok());
        let app = gateway_app(
            config,
            gateway,
            backends,
            &secret,
            links,
            rate_limits,
            temporal,
        );
        let limits = audiomill_api::server::ServerLimits {
            max_connections: gateway.max_connections as usize,
            ..Default::default()
        };
        let app = Arc::new(app);
        let streams = app.clone();
        // Event streams never end by themselves while their job runs: end them, or the
        // shutdown would wait the whole grace period for them.
        let end_streams = move || streams.watchers.close();
        let served = Self::serve(listener, audiomill_api::app(app), limits, end_streams)?;
        tracing::info!(listen = %served.address, "gateway listening");
        Ok(served)
    }

    /// A worker's `/metrics` and health pages; ready while it polls and its backends answer.
    async fn worker_pages(
        config: &Config,
        listen: SocketAddr,
        backends: &Backends,
        polling: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let listener = bind(listen).await?;
        let backends = backends.clone();
        let readiness: audiomill_api::metrics::Readiness = Arc::new(move || {
            let (backends, polling) = (backends.clone(), polling.clone());
            Box::pin(async move {
                let (database, storage) = tokio::join!(
                    answers_in_time(backends.db.ping()),
                    answers_in_time(backends.objects.ping())
                );
                [
                    (polling.load(Ordering::Relaxed), "temporal"),
                    (database, "database"),
                    (storage, "storage"),
                ]
                .into_iter()
                .filter(|(up, _)| !up)
                .map(|(_, name)| name.to_owned())
                .collect()
            })
        });
        let token = config.metrics_token.as_ref().map(|t| t.expose().to_owned());
        let pages = audiomill_api::metrics::worker_pages(token, readiness);
        let served = Self::serve(listener, pages, Default::default(), || {})?;
        tracing::info!(listen = %served.address, "worker pages listening");
        Ok(served)
    }

    /// Resolves when the server ends by itself (it only ends when told to, or on an error).
    async fn ended(&mut self) -> anyhow::Error {
        role_ended(&mut self.task, "HTTP server").await
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the HTTP server panicked")?,
            None => Ok(()),
        }
    }
}

/// A health check's answer, `false` when it takes longer than a check may.
async fn answers_in_time(ping: impl std::future::Future<Output = bool>) -> bool {
    tokio::time::timeout(audiomill_api::routes::CHECK_TIMEOUT, ping)
        .await
        .unwrap_or(false)
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("could not listen on {address}"))
}

/// The gateway's handlers' state.
fn gateway_app(
    config: &Config,
    gateway: &GatewayConfig,
    backends: &Backends,
    secret: &Secret,
    links: LinkSigner,
    rate_limits: Limits,
    temporal: temporalio_client::Client,
) -> Gateway {
    let mailer = backends.mailer.clone();
    Gateway {
        db: backends.db.clone(),
        objects: backends.objects.clone(),
        temporal,
        tokens: auth::TokenIssuer::new(secret.expose().as_bytes()),
        passwords: auth::Passwords::default(),
        limits: UploadLimits {
            max_bytes: gateway.max_file_size_mb * 1024 * 1024,
            max_files: usize::from(gateway.max_files_per_upload),
            allowed_extensions: gateway.allowed_extensions.clone(),
        },
        cors_origins: gateway.cors_allowed_origins.clone(),
        closed_views: Default::default(),
        watchers: Default::default(),
        uploads: UploadSlots::new(gateway.max_concurrent_uploads as usize),
        event_streams: Slots::capped(
            gateway.max_event_streams_per_user,
            gateway.max_event_streams,
        ),
        rate_limits,
        metrics_token: config.metrics_token.as_ref().map(|t| t.expose().to_owned()),
        links,
        download_redirect: gateway.download_redirect,
        webhook_allow_private: config.webhooks.allow_private,
        quota: config.lifecycle.quota,
        mail_probe: Some(Arc::new(move || {
            let mailer = mailer.clone();
            Box::pin(async move {
                let what = mailer.describe();
                if mailer.ping().await {
                    Ok(what)
                } else {
                    Err(format!("{what}: unreachable"))
                }
            })
        })),
    }
}

/// A worker running on its own thread (the SDK's worker future is not `Send`).
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    /// The thread's result, sent as its last act.
    ended: Option<oneshot::Receiver<anyhow::Result<()>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// True while the pollers run (the worker's readiness).
    pub polling: Arc<AtomicBool>,
}

/// What a worker's thread needs to build its pollers.
struct PollerParts {
    config: Config,
    identity: String,
    host_task_queue: String,
    activities: ConvertActivities,
    webhooks: WebhookActivities,
    lifecycle: LifecycleActivities,
    /// Where the client goes once connected, for the progress teller.
    client: Arc<OnceLock<temporalio_client::Client>>,
}

/// Starts each `job.progress` milestone's delivery as a `DeliverWebhooks` run of its own,
/// once `client` is connected. Its workflow id names the job and the milestone, and a second
/// start (a transcode tried again) is refused by Temporal, so each is told once.
fn progress_teller(client: Arc<OnceLock<temporalio_client::Client>>) -> ProgressTeller {
    Arc::new(move |job_id: JobId, percent: u8| {
        let Some(client) = client.get().cloned() else {
            return;
        };
        tokio::spawn(async move {
            let options = temporalio_client::WorkflowStartOptions::new(
                TASK_QUEUE,
                format!("webhooks-{job_id}-progress-{percent}"),
            )
            .id_reuse_policy(temporalio_client::WorkflowIdReusePolicy::RejectDuplicate)
            .build();
            let input = DeliverWebhooksInput::Progress { job_id, percent };
            match client
                .start_workflow(DeliverWebhooks::run, input, options)
                .await
            {
                Ok(_)
                | Err(temporalio_client::errors::WorkflowStartError::AlreadyStarted { .. }) => {}
                Err(error) => {
                    tracing::warn!(%job_id, percent, %error, "could not start telling progress")
                }
            }
        });
    })
}

impl WorkerHandle {
    /// Starts a worker: pollers on the shared task queue (the workflow, `validate_token`,
    /// `send_email`), on the fetch queue (`fetch_source`, when this worker has room), on
    /// this worker's own queue (the steps that need its local files) and on the segments queue
    /// (parts of long sources). Returns once all four are polling.
    pub async fn start(
        config: &Config,
        worker: &WorkerConfig,
        backends: &Backends,
        links: LinkSigner,
    ) -> anyhow::Result<Self> {
        let instance = random_hex(6);
        let host_task_queue = format!("{TASK_QUEUE}-host-{instance}");
        let webhooks = WebhookActivities::new(
            backends.db.clone(),
            WebhookSettings {
                allow_private: config.webhooks.allow_private,
                timeout: config.webhooks.timeout,
                links: links.clone(),
            },
        );
        // A child started ahead for each transcode slot, and one more: a long source's plan
        // takes a child for a moment, and its parts, a moment later, one for each slot (the
        // child started again after the plan is still loading FFmpeg then). About 11 MB each.
        let transcoder = worker
            .transcoder
            .clone()
            .with_spares(worker.max_concurrent_transcodes.max(1) + 1);
        transcoder.start_spares();
        let work_dir = {
            let (root, instance) = (worker.work_dir.clone(), instance.clone());
            tokio::task::spawn_blocking(move || WorkDir::claim(&root, &instance))
                .await?
                .context("could not prepare WORK_DIR")?
        };
        let activities = ConvertActivities::new(
            backends.db.clone(),
            backends.objects.clone(),
            backends.mailer.clone(),
            WorkerSettings {
                work_dir,
                host_task_queue: host_task_queue.clone(),
                links,
                max_transcodes: worker.max_concurrent_transcodes,
                transcoder,
                media_limits: worker.media_limits,
                retention: config.lifecycle.retention,
                segments: worker.segments,
            },
        );
        let client = Arc::new(OnceLock::new());
        let activities = activities.with_progress_teller(progress_teller(client.clone()));
        let lifecycle = LifecycleActivities::new(backends.db.clone(), backends.objects.clone());
        let parts = PollerParts {
            config: config.clone(),
            identity: worker
                .worker_id
                .clone()
                .unwrap_or_else(|| format!("audiomill-worker-{instance}")),
            host_task_queue,
            activities,
            webhooks,
            lifecycle,
            client,
        };
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ended_tx, ended_rx) = oneshot::channel::<anyhow::Result<()>>();
        let polling = Arc::new(AtomicBool::new(false));
        let thread = {
            let polling = polling.clone();
            std::thread::Builder::new()
                .name("temporal-worker".into())
                .spawn(move || {
                    let result = run_pollers(parts, ready_tx, stop_rx);
                    polling.store(false, Ordering::Relaxed);
                    let _ = ended_tx.send(result);
                })?
        };
        ready_rx.await.context("the worker thread ended early")??;
        polling.store(true, Ordering::Relaxed);
        Ok(Self {
            stop: Some(stop_tx),
            ended: Some(ended_rx),
            thread: Some(thread),
            polling,
        })
    }

    /// Resolves when the worker ends by itself (it only ends when told to, or on an error).
    pub async fn ended(&mut self) -> anyhow::Error {
        role_ended(&mut self.ended, "worker").await
    }

    /// Stops polling, lets running activities finish their current step, and joins the thread.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.polling.store(false, Ordering::Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.ended.take() {
            Some(ended) => ended
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the worker thread panicked"))),
            None => Ok(()),
        };
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Awaits the end of a role (its task, or its thread's last message) once, and says why it
/// ended; pending forever when there is nothing (more) to await.
async fn role_ended<F, E>(end: &mut Option<F>, role: &str) -> anyhow::Error
where
    F: std::future::Future<Output = Result<anyhow::Result<()>, E>> + Unpin,
{
    let Some(running) = end.as_mut() else {
        return std::future::pending().await;
    };
    let result = running.await;
    *end = None;
    match result {
        Ok(Ok(())) => anyhow::anyhow!("the {role} stopped"),
        Ok(Err(error)) => error,
        Err(_) => anyhow::anyhow!("the {role} panicked"),
    }
}

/// The worker thread's body: its own runtime, the four pollers, until `stop` fires.
fn run_pollers(
    parts: PollerParts,
    ready: oneshot::Sender<anyhow::Result<()>>,
    stop: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let reaper_activities = parts.activities.clone();
        let (_runtime, mut workers) = match build_pollers(parts).await {
            Ok(built) => built,
            Err(error) => {
                let message = error.to_string();
                let _ = ready.send(Err(error));
                bail!(message);
            }
        };
        let stops: Vec<_> = workers.iter().map(|w| w.shutdown_handle()).collect();
        tokio::task::spawn_local(async move {
            let _ = stop.await;
            stops.iter().for_each(|stop| stop());
        });
        let reaper = tokio::task::spawn_local(release_abandoned_jobs(reaper_activities));
        let _ = ready.send(Ok(()));
        tracing::info!(task_queue = TASK_QUEUE, "worker polling");
        let [shared, fetch, own, segments] = &mut workers;
        let (a, b, c, d) = tokio::join!(shared.run(), fetch.run(), own.run(), segments.run());
        reaper.abort();
        a.and(b)
            .and(c)
            .and(d)
            .map_err(|e| anyhow::anyhow!("the worker stopped with an error: {e}"))
    })
}

/// Connects and builds the four pollers (see the workflow). The shared queue keeps the SDK's
/// defaults. The fetch queue takes one job at a time, and only when this worker has room for
/// it. The worker's own queue has a slot for every job it may hold, so the next step of a held
/// job never waits for one (the transcode itself waits for the CPU inside). The segments
/// queue takes as many parts of long sources as this worker has transcode slots.
async fn build_pollers(
    parts: PollerParts,
) -> anyhow::Result<(temporalio_sdk::Runtime, [Worker; 4])> {
    let client = temporal_client(&parts.config, &parts.identity).await?;
    let _ = parts.client.set(client.clone());
    ensure_cleanup_schedule(&client, parts.config.lifecycle.cleanup_every).await?;
    let runtime = temporalio_sdk::Runtime::from_current_tokio(sdk_runtime_options())
        .map_err(|e| anyhow::anyhow!("could not start the Temporal runtime: {e}"))?;
    let held_slots = parts.activities.max_held_jobs();
    let shared = WorkerOptions::new(TASK_QUEUE)
        .register_workflow::<ConvertVideo>()
        .and_then(|options| options.register_workflow::<DeliverWebhooks>())
        .and_then(|options| options.register_workflow::<CleanExpired>())
        .map_err(|e| anyhow::anyhow!("could not register the workflow: {e}"))?
        .register_activities(parts.activities.clone())
        .register_activities(parts.webhooks)
        .register_activities(parts.lifecycle)
        .sticky_queue_schedule_to_start_timeout(STICKY_PICKUP)
        .activity_inbound_interceptor(StepMetrics)
        .build();
    let fetch = WorkerOptions::new(FETCH_TASK_QUEUE)
        .register_activities(parts.activities.clone())
        .tuner(fixed_slots(1))
        .activity_inbound_interceptor(StepMetrics)
        .build();
    let segments = WorkerOptions::new(SEGMENTS_TASK_QUEUE)
        .register_activities(parts.activities.clone())
        .tuner(fixed_slots(parts.activities.max_transcodes()))
        .activity_inbound_interceptor(StepMetrics)
        .build();
    let own = WorkerOptions::new(parts.host_task_queue)
        .register_activities(parts.activities)
        .tuner(fixed_slots(held_slots))
        .activity_inbound_interceptor(StepMetrics)
        .build();
    let worker = |options| {
        Worker::new(&runtime, client.clone(), options).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let workers = [
        worker(shared)?,
        worker(fetch)?,
        worker(own)?,
        worker(segments)?,
    ];
    Ok((runtime, workers))
}

/// Makes sure the Schedule that starts the cleanup exists and runs every `every`: created by
/// the first worker to start; the others bring its interval to theirs (an operator may have
/// changed `CLEANUP_INTERVAL_MINUTES`).
async fn ensure_cleanup_schedule(
    client: &temporalio_client::Client,
    every: Duration,
) -> anyhow::Result<()> {
    use temporalio_client::schedules::{
        CreateScheduleOptions, ScheduleAction, ScheduleError, ScheduleOverlapPolicy, ScheduleSpec,
    };
    let options = CreateScheduleOptions::builder()
        .action(ScheduleAction::start_workflow(
            CleanExpired::run,
            CleanExpiredInput::default(),
            TASK_QUEUE,
            CLEANUP_WORKFLOW_TYPE,
        ))
        .spec(ScheduleSpec::from_interval(every))
        .overlap_policy(ScheduleOverlapPolicy::Skip)
        .note("Removes uploaded videos, MP3s and jobs past their retention.")
        .build();
    match client.create_schedule(CLEANUP_SCHEDULE_ID, options).await {
        Ok(_) => Ok(()),
        Err(ScheduleError::Rpc(status))
            if status.code() == temporalio_client::tonic::Code::AlreadyExists =>
        {
            let schedule = client.get_schedule_handle(CLEANUP_SCHEDULE_ID);
            let update = schedule.update(
                move |schedule| {
                    schedule.set_spec(ScheduleSpec::from_interval(every));
                },
                Default::default(),
            );
            // Workers starting together may update it at once; one of them wins.
            if let Err(error) = update.await {
                tracing::warn!(%error, "could not update the cleanup schedule's interval");
            }
            Ok(())
        }
        Err(error) => Err(anyhow::anyhow!(
            "could not create the cleanup schedule: {error}"
        )),
    }
}

/// The SDK runtime's options: its worker metrics go to our registry (see `temporal_metrics`).
fn sdk_runtime_options() -> temporalio_sdk::runtime::RuntimeOptions {
    let telemetry = TelemetryOptions::builder()
        .metrics(Arc::new(SdkMeter) as Arc<dyn CoreMeter>)
        .build();
    temporalio_sdk::runtime::RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .expect("the default heartbeat interval is valid")
}

/// A tuner that lets a poller hold `slots` tasks of each kind at once.
fn fixed_slots(slots: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .build()
}

/// Frees the room of jobs whose workflow gave up on this worker (see `held.rs`).
async fn release_abandoned_jobs(activities: ConvertActivities) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        every.tick().await;
        activities.release_abandoned_jobs().await;
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buffer);
    hex::encode(buffer)
}

/// The roles of one process, running on one set of backends.
pub struct Running {
    pub backends: Backends,
    gateway: Option<HttpTask>,
    worker: Option<WorkerHandle>,
    /// The worker's own pages (`METRICS_LISTEN`).
    worker_pages: Option<HttpTask>,
}

impl Running {
    /// Opens the backends once, then starts the gateway (if configured) and the worker (if
    /// configured; its e-mailed links point at the gateway started here unless `PUBLIC_URL`
    /// says otherwise).
    pub async fn start(config: &Config, roles: Roles) -> anyhow::Result<Self> {
        // Before any role records a metric (the recorder is one per process).
        audiomill_api::metrics::handle();
        let backends = Backends::open(config).await?;
        // A worker in `dev` shares the embedded gateway's kept keys.
        let embedded = roles.gateway.as_ref().is_some_and(|g| g.embedded);
        let link_key = link_secret(config, embedded)?;
        let gateway = match &roles.gateway {
            Some(settings) => {
                Some(HttpTask::gateway(config, settings, &backends, &link_key).await?)
            }
            None => None,
        };
        let worker = match &roles.worker {
            Some(settings) => {
                let links = link_signer(config, &link_key, gateway.as_ref().map(|g| g.address));
                Some(WorkerHandle::start(config, settings, &backends, links).await?)
            }
            None => None,
        };
        let worker_pages = match (&roles.worker, &worker) {
            (Some(settings), Some(handle)) => match settings.metrics_listen {
                Some(listen) => Some(
                    HttpTask::worker_pages(config, listen, &backends, handle.polling.clone())
                        .await?,
                ),
                None => None,
            },
            _ => None,
        };
        Ok(Self {
            backends,
            gateway,
            worker,
            worker_pages,
        })
    }

    /// Where the gateway listens, when this process runs one.
    pub fn address(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|g| g.address)
    }

    /// Where the worker's own pages listen, when `METRICS_LISTEN` is set.
    pub fn worker_pages_address(&self) -> Option<SocketAddr> {
        self.worker_pages.as_ref().map(|p| p.address)
    }

    pub fn base_url(&self) -> String {
        format!(
            "http://{}",
            self.address().expect("this process runs a gateway")
        )
    }

    /// Resolves when any role ends by itself, with why.
    pub async fn ended(&mut self) -> anyhow::Error {
        let gateway = async {
            match self.gateway.as_mut() {
                Some(gateway) => gateway.ended().await,
                None => std::future::pending().await,
            }
        };
        let worker = async {
            match self.worker.as_mut() {
                Some(worker) => worker.ended().await,
                None => std::future::pending().await,
            }
        };
        let pages = async {
            match self.worker_pages.as_mut() {
                Some(pages) => pages.ended().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            error = gateway => error,
            error = worker => error,
            error = pages => error,
        }
    }

    /// Stops only the worker; the gateway goes on serving.
    pub async fn stop_worker(&mut self) -> anyhow::Result<()> {
        match self.worker.take() {
            Some(worker) => worker.stop().await,
            None => Ok(()),
        }
    }

    /// Stops the gateway (requests in flight finish), then the worker, then closes the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let http = match self.gateway.take() {
            Some(gateway) => gateway.stop().await,
            None => Ok(()),
        };
        self.stop_worker().await?;
        if let Some(pages) = self.worker_pages.take() {
            pages.stop().await?;
        }
        self.backends.db.close().await;
        http
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
