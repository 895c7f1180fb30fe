//! The `audiomill` command: parses its command line and runs what it names.

use anyhow::Context;
use audiomill::{
    cli::{Cli, Command, LogArgs, LogFormat, UserCommand},
    config::DataArgs,
    roles::{self, Roles, Running},
    temporal::{self, DevServer},
    users,
};
use std::io::Read;

fn main() {
    let cli = Cli::parse_or_exit();
    audiomill::memory::free_large_buffers_promptly();
    audiomill::private_data::create_files_private();
    match cli.command {
        Command::Openapi => {
            println!("{}", audiomill_api::openapi_json());
            return;
        }
        // No runtime, no logging setup: the child only transcodes and reports on stdout.
        Command::TranscodeChild => std::process::exit(audiomill_activities::isolated::child_main()),
        // The client's commands speak to their user in sentences, not in log lines.
        Command::Client(command) => std::process::exit(run_client(command)),
        _ => {}
    }
    init_logging(&cli.log);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    if let Err(error) = result {
        eprintln!("audiomill: {error:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => {
            let (config, gateway, worker) = args.resolve(true)?;
            let roles = Roles {
                gateway: Some(gateway),
                worker: Some(worker),
            };
            dev(config, roles).await
        }
        Command::Gateway { backends, gateway } => {
            let roles = Roles {
                gateway: Some(gateway.resolve(false)),
                worker: None,
            };
            roles::run(&backends.resolve()?, roles, |_| {}).await
        }
        Command::Worker { backends, worker } => {
            let config = backends.resolve()?;
            let roles = Roles {
                gateway: None,
                worker: Some(worker.resolve(&config)),
            };
            roles::run(&config, roles, |_| {}).await
        }
        Command::Migrate { data } => {
            roles::open_database(&data.database_url()).await?;
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
        } => add_user(&data, &email, password, admin).await,
        Command::User {
            command:
                UserCommand::SetQuota {
                    email,
                    storage_mb,
                    jobs_per_day,
                    data,
                },
        } => {
            let db = roles::open_database(&data.database_url()).await?;
            let quota = users::set_quota(&db, &email, storage_mb, jobs_per_day).await?;
            println!("{email}: {quota}.");
            Ok(())
        }
        Command::Openapi | Command::TranscodeChild | Command::Client(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// Runs a client command and returns the process's exit status.
fn run_client(command: audiomill_cli::ClientCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("audiomill: could not start: {error}.");
            return 1;
        }
    };
    // The runtime is not dropped: a question left unanswered after a second Ctrl-C would
    // hold its shutdown; the process exits with what the command says.
    let exit = runtime.block_on(audiomill_cli::run(command));
    std::mem::forget(runtime);
    match exit {
        Ok(exit) => exit.code(),
        Err(problem) => {
            eprintln!("audiomill: {problem}");
            1
        }
    }
}

/// `dev`: starts a Temporal dev server unless one is configured, then both roles.
async fn dev(mut config: audiomill::Config, roles: Roles) -> anyhow::Result<()> {
    let opened = audiomill::private_data::make_private(&config.data_dir)
        .with_context(|| format!("could not make {} private", config.data_dir.display()))?;
    if opened > 0 {
        tracing::warn!(
            entries = opened,
            "{} was readable by other users: it and its files are now private to their owner \
             (directories 0700, files 0600)",
            config.data_dir.display()
        );
    }
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
    let mail_dir = config.data_path("mail");
    let public_url = config.links.public_url.clone();
    let banner = |running: &Running| {
        let (address, reached) = reachable_at(running, public_url.as_deref());
        println!("Audiomill is running:");
        println!("  Web app:            {address}/");
        println!("  API and Swagger UI: {address}/docs");
        if !reached {
            println!("  (share links name this address: set PUBLIC_URL to the one others reach)");
        }
        if server.is_some() {
            println!(
                "  Temporal Web UI:    http://127.0.0.1:{}",
                temporal::DEV_UI_PORT
            );
        }
        println!("  E-mails:            {}", mail_dir.display());
        println!("Press Ctrl-C to stop.");
    };
    let result = roles::run(&config, roles, banner).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

/// Where people reach the gateway: `PUBLIC_URL` when set, else its own address (a browser on
/// this machine reaches a wildcard bind at 127.0.0.1); and whether that is an address others
/// reach too.
fn reachable_at(running: &Running, public_url: Option<&str>) -> (String, bool) {
    if let Some(url) = public_url {
        return (url.trim_end_matches('/').to_owned(), true);
    }
    let address = running.address().expect("dev runs a gateway");
    (audiomill::roles::local_url(address), false)
}

async fn add_user(
    data: &DataArgs,
    email: &str,
    password: Option<String>,
    admin: bool,
) -> anyhow::Result<()> {
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
    let db = roles::open_database(&data.database_url()).await?;
    let user = users::add_user(&db, email, &password, admin).await?;
    println!(
        "Created user {} ({}){}.",
        user.email,
        user.id,
        if admin { " with admin rights" } else { "" }
    );
    Ok(())
}

fn init_logging(log: &LogArgs) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::new(&log.filter);
    match log.log_format {
        LogFormat::Json => fmt().with_env_filter(filter).json().init(),
        LogFormat::Pretty => fmt().with_env_filter(filter).init(),
    }
}
