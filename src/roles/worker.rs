//! A worker: its activities, its pollers on the shared, fetch, segments and own task
//! queues, and the schedule of the cleanup.

use super::{
    backends::{Backends, temporal_client},
    random_hex, role_ended,
};
use crate::{
    config::{Config, WorkerConfig},
    temporal_metrics::SdkMeter,
};
use anyhow::{Context, bail};
use audiomill_activities::{
    AccountMailActivities, ConnectionAccess, ConvertActivities, ExportActivities, HostFolders,
    ImportActivities, ImportSettings, LifecycleActivities, ProgressTeller, WatchActivities,
    WebhookActivities, WebhookSettings, WorkDir, WorkerSettings, metered::StepMetrics,
};
use audiomill_domain::{
    JobId,
    contract::{
        CLEANUP_SCHEDULE_ID, CLEANUP_WORKFLOW_TYPE, CleanExpiredInput, DeliverWebhooksInput,
        FETCH_TASK_QUEUE, SEGMENTS_TASK_QUEUE, TASK_QUEUE,
    },
    link::LinkSigner,
};
use audiomill_workflows::{
    CleanExpired, ConvertVideo, DeliverWebhooks, SendAccountMail, WatchFolder,
};
use std::{
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
use tokio::sync::oneshot;

/// How long a workflow task waits on a dead worker's sticky queue before any worker takes it.
const STICKY_PICKUP: Duration = Duration::from_secs(3);

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
    account_mail: AccountMailActivities,
    imports: ImportActivities,
    exports: ExportActivities,
    watches: WatchActivities,
    /// Where the client goes once connected, for the progress teller.
    client: Arc<OnceLock<temporalio_client::Client>>,
}

/// The activities that reach users' own storage: `import_source` (a link or a bucket),
/// `export_mp3` (the MP3 written from `export_dir`, this worker's scratch) and `scan_watch`.
fn storage_activities(
    config: &Config,
    backends: &Backends,
    export_dir: WorkDir,
) -> (ImportActivities, ExportActivities, WatchActivities) {
    let access = ConnectionAccess {
        sealer: backends.sealer.clone(),
        allow_private: config.imports.allow_private,
    };
    let folders = HostFolders::new(config.imports.watch_directories.clone());
    let imports = ImportActivities::new(
        backends.db.clone(),
        backends.objects.clone(),
        ImportSettings {
            allow_private: config.imports.allow_private,
            idle_timeout: config.imports.idle_timeout,
            ..ImportSettings::default()
        },
        (access.clone(), folders.clone()),
    );
    let exports = ExportActivities::new(
        backends.db.clone(),
        export_dir,
        access.clone(),
        config.imports.idle_timeout,
    );
    let watches =
        WatchActivities::new(backends.db.clone(), access, folders, config.lifecycle.quota);
    (imports, exports, watches)
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
        let account_mail = AccountMailActivities::new(
            backends.db.clone(),
            backends.mailer.clone(),
            links.base_url(),
        );
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
        let export_dir = work_dir.clone();
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
        let (imports, exports, watches) = storage_activities(config, backends, export_dir);
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
            account_mail,
            imports,
            exports,
            watches,
            client,
        };
        Self::spawn(parts).await
    }

    /// Runs the pollers of `parts` on a thread of their own; returns once they poll.
    async fn spawn(parts: PollerParts) -> anyhow::Result<Self> {
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
        .and_then(|options| options.register_workflow::<SendAccountMail>())
        .and_then(|options| options.register_workflow::<WatchFolder>())
        .map_err(|e| anyhow::anyhow!("could not register the workflow: {e}"))?
        .register_activities(parts.activities.clone())
        .register_activities(parts.webhooks)
        .register_activities(parts.lifecycle)
        .register_activities(parts.account_mail)
        .register_activities(parts.imports)
        .register_activities(parts.watches)
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
        .register_activities(parts.exports)
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
