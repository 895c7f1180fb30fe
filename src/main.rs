//! The `audiomill` command: parses a subcommand and runs that role.

use anyhow::Context;
use audiomill::{
    App, Config,
    roles::{self, Backends, WorkerHandle},
    temporal::{self, DevServer},
    users,
};
use clap::{Args, Parser, Subcommand};
use std::{io::Read, net::SocketAddr, path::PathBuf};

#[derive(Parser)]
#[command(name = "audiomill", version, about = "Video to MP3 conversion service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: gateway, worker, and (unless TEMPORAL_ADDRESS is set) a
    /// Temporal dev server with its Web UI on port 8233.
    Dev {
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        data: DataDir,
    },
    /// The HTTP gateway (configured by the environment).
    Gateway,
    /// A conversion worker (configured by the environment).
    Worker {
        /// How many transcodes run at once (default: MAX_CONCURRENT_TRANSCODES, else the
        /// number of CPU cores).
        #[arg(long, value_name = "N")]
        max_concurrent_transcodes: Option<usize>,
    },
    /// Applies database migrations and exits.
    Migrate {
        #[command(flatten)]
        data: DataDir,
    },
    /// Manages users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Prints the OpenAPI document the gateway serves.
    Openapi,
    /// Runs one transcode for a worker, in a process of its own (internal).
    #[command(name = "transcode-child", hide = true)]
    TranscodeChild,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user.
    Add {
        #[arg(long)]
        email: String,
        #[arg(
            long,
            conflicts_with = "password_stdin",
            required_unless_present = "password_stdin"
        )]
        password: Option<String>,
        /// Reads the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Args)]
struct DataDir {
    /// Where the embedded mode keeps its state.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    audiomill::memory::free_large_buffers_promptly();
    match cli.command {
        Command::Openapi => {
            println!("{}", audiomill_api::openapi_json());
            return Ok(());
        }
        // No runtime, no logging setup: the child only transcodes and reports on stdout.
        Command::TranscodeChild => std::process::exit(audiomill_activities::isolated::child_main()),
        _ => {}
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(cli.command));
    if let Err(error) = &result {
        eprintln!("audiomill: {error:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev { listen, data } => dev(Config::from_env(data.data_dir, listen)?).await,
        Command::Gateway => gateway(Config::from_env(None, None)?).await,
        Command::Worker {
            max_concurrent_transcodes,
        } => {
            let mut config = Config::from_env(None, None)?;
            if let Some(n) = max_concurrent_transcodes.filter(|n| *n > 0) {
                config.max_concurrent_transcodes = n;
            }
            worker(config).await
        }
        Command::Migrate { data } => {
            let config = Config::from_env(data.data_dir, None)?;
            Backends::open(&config).await?;
            println!("The database is up to date.");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    password,
                    password_stdin: _,
                    admin,
                    data,
                },
        } => {
            let config = Config::from_env(data.data_dir, None)?;
            let password = match password {
                Some(password) => password,
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("could not read the password")?;
                    text.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let backends = Backends::open(&config).await?;
            let user = users::add_user(&backends.db, &email, &password, admin).await?;
            println!(
                "Created user {} ({}){}.",
                user.email,
                user.id,
                if admin { " with admin rights" } else { "" }
            );
            Ok(())
        }
        Command::Openapi | Command::TranscodeChild => {
            unreachable!("handled before the runtime starts")
        }
    }
}

async fn dev(mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("could not create {}", config.data_dir.display()))?;
    let server = match &config.temporal_address {
        Some(_) => None,
        None => {
            let db_file = config.data_path("temporal.db");
            let server = DevServer::start(
                Some(&db_file),
                temporal::DEV_ADDRESS,
                Some(temporal::DEV_UI_PORT),
            )
            .await?;
            config.temporal_address = Some(server.address.clone());
            Some(server)
        }
    };
    let result = async {
        let backends = Backends::open(&config).await?;
        users::ensure_initial_admin(&backends.db, &config.data_path("initial-admin.txt")).await?;
        let mut app = App::start(&config, true).await?;
        println!("Audiomill is running:");
        println!("  API and Swagger UI: {}/docs", app.base_url());
        if server.is_some() {
            println!(
                "  Temporal Web UI:    http://127.0.0.1:{}",
                temporal::DEV_UI_PORT
            );
        }
        println!(
            "  E-mails:            {}",
            config.data_path("mail").display()
        );
        println!("Press Ctrl-C to stop.");
        tokio::select! {
            _ = shutdown_signal() => {}
            error = app.failed() => return Err(error),
        }
        println!("Stopping...");
        app.stop().await
    }
    .await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

async fn gateway(config: Config) -> anyhow::Result<()> {
    let secret = roles::jwt_secret(&config, false)?;
    let backends = Backends::open(&config).await?;
    let limits = roles::rate_limits(&config).await?;
    let client = roles::gateway_client(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "gateway listening");
    roles::serve_gateway(
        &config,
        &backends,
        limits,
        client,
        &secret,
        listener,
        async {
            shutdown_signal().await;
        },
    )
    .await
}

async fn worker(config: Config) -> anyhow::Result<()> {
    if config.temporal_address.is_none() {
        anyhow::bail!("TEMPORAL_ADDRESS is required for `audiomill worker`.");
    }
    let backends = Backends::open(&config).await?;
    let public_url = config.public_url(config.listen);
    let worker = WorkerHandle::start(&config, &backends, public_url).await?;
    shutdown_signal().await;
    worker.stop().await
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,temporalio_sdk_core=warn,temporalio_sdk=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        fmt().with_env_filter(filter).json().init();
    } else {
        fmt().with_env_filter(filter).init();
    }
}
