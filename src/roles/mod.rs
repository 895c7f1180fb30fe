//! The roles, `gateway` and `worker`, and [`run`], the one way any process starts them: `dev`
//! runs both, `gateway` and `worker` one each, the tests both through [`Running::start`].
//!
//! - `backends`: the database, object storage, mail and the keys, opened once per process
//!   before any role; the Temporal client and the rate limits the gateway shares.
//! - `http`: the gateway's HTTP server (and a worker's `/metrics` and health pages).
//! - `worker`: a worker's pollers, its activities and the cleanup schedule.

mod backends;
mod http;
mod worker;

pub use backends::{Backends, open_database};
use backends::{connection_sealer, link_secret, link_signer};
use http::HttpTask;
use worker::WorkerHandle;

use crate::config::{Config, GatewayConfig, WorkerConfig};
use std::net::SocketAddr;

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

/// `bytes` random bytes in hex: a name no other process picks.
pub(crate) fn random_hex(bytes: usize) -> String {
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
        let mut backends = Backends::open(config).await?;
        // A worker in `dev` shares the embedded gateway's kept keys.
        let embedded = roles.gateway.as_ref().is_some_and(|g| g.embedded);
        let link_key = link_secret(config, embedded)?;
        backends.sealer = connection_sealer(config, embedded)?;
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

/// Awaits the end of a role (its task, or its thread's last message) once, and says why it
/// ended; pending forever when there is nothing (more) to await.
pub(crate) async fn role_ended<F, E>(end: &mut Option<F>, role: &str) -> anyhow::Error
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

/// The URL a browser on this machine reaches a gateway listening at `address` by: a wildcard
/// bind (`0.0.0.0`, `::`) is reached at the loopback address.
pub fn local_url(mut address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        address.set_ip(loopback);
    }
    format!("http://{address}")
}
