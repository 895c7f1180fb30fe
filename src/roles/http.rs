//! The gateway's HTTP server, and a worker's `/metrics` and health pages, as tasks a role
//! owns and stops.

use super::backends::{Backends, jwt_secret, link_signer, rate_limits, temporal_client};
use super::role_ended;
use crate::{
    config::{Config, GatewayConfig, Secret},
    users,
};
use anyhow::Context;
use audiomill_api::{
    Gateway, UploadLimits, auth,
    limits::{Limits, Slots, UploadSlots},
    sign_on::SignOn,
};
use audiomill_domain::link::LinkSigner;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// An HTTP server on a task of its own: the gateway's API, or a worker's pages.
pub(crate) struct HttpTask {
    pub(super) address: SocketAddr,
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
    pub(super) async fn gateway(
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
        let sign_on = sign_on(gateway, &links)?;
        let mut app = gateway_app(
            config,
            gateway,
            backends,
            &secret,
            links,
            rate_limits,
            temporal,
        );
        app.sign_on = sign_on;
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
    pub(super) async fn worker_pages(
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
    pub(super) async fn ended(&mut self) -> anyhow::Error {
        role_ended(&mut self.task, "HTTP server").await
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the HTTP server panicked")?,
            None => Ok(()),
        }
    }
}

/// Single sign-on with the configured provider, its answers sent back under the public base
/// URL.
fn sign_on(gateway: &GatewayConfig, links: &LinkSigner) -> anyhow::Result<Option<SignOn>> {
    let Some(settings) = gateway.sign_on.clone() else {
        if !gateway.password_sign_in {
            anyhow::bail!(
                "PASSWORD_SIGN_IN=false needs single sign-on (OIDC_ISSUER): nobody could sign in"
            );
        }
        return Ok(None);
    };
    let callback = format!("{}/oidc/callback", links.base_url().trim_end_matches('/'));
    SignOn::new(settings, &callback)
        .map(Some)
        .map_err(|problem| anyhow::anyhow!("single sign-on: {problem}"))
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
        job_views: Default::default(),
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
        import_allow_private: config.imports.allow_private,
        watch_directories: config.imports.watch_directories.clone(),
        sealer: backends.sealer.clone(),
        quota: config.lifecycle.quota,
        resumable: gateway.resumable,
        allow_signup: gateway.allow_signup,
        password_sign_in: gateway.password_sign_in,
        sign_on: None,
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
