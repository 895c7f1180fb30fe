//! Audiomill's command-line client, on the [`audiomill_client`] crate: `login`, `logout`,
//! `convert`, `jobs`, `status`, `download`, `cancel` and `watch`, subcommands of the `audiomill`
//! binary beside the server's roles.
//!
//! - [`session`]: the saved login and its renewal.
//! - [`convert`]: upload, live progress, saving the MP3s.
//! - [`jobs`]: the one-request commands.
//! - [`watch`]: watch folders of your own bucket.
//! - [`feedback`]: bars on a terminal, plain lines elsewhere.
//! - [`problem`]: every failure as one sentence; [`exit`]: how a command ended.
//! - [`printable`]: what the server sends, with nothing a terminal would act on.

pub mod choices;
pub mod convert;
pub mod exit;
pub mod feedback;
pub mod jobs;
pub mod login;
pub mod pending;
pub mod printable;
pub mod problem;
pub mod save;
pub mod session;
pub mod watch;

pub use exit::Exit;
pub use problem::Problem;

/// The client's subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Logs in to an Audiomill server and keeps the login for the other commands.
    Login(login::LoginArgs),
    /// Ends the saved login, here and on the server.
    Logout,
    /// Converts videos to MP3 on the server, showing progress, and saves the MP3s.
    Convert(Box<convert::ConvertArgs>),
    /// Lists your jobs, newest first.
    Jobs(jobs::JobsArgs),
    /// Shows where a job stands.
    Status(jobs::StatusArgs),
    /// Saves a completed job's MP3.
    Download(jobs::DownloadArgs),
    /// Cancels a job that is still running (an ended job is left as it is).
    Cancel(jobs::CancelArgs),
    /// Watches folders of your own bucket: their new videos are converted as they appear.
    Watch(watch::WatchArgs),
}

/// Runs `command`; a [`Problem`] is for the caller to print (exit status 1).
pub async fn run(command: ClientCommand) -> Result<Exit, Problem> {
    match command {
        ClientCommand::Login(args) => login::login(args).await,
        ClientCommand::Logout => login::logout().await,
        ClientCommand::Convert(args) => convert::convert(*args).await,
        ClientCommand::Jobs(args) => jobs::jobs(args).await,
        ClientCommand::Status(args) => jobs::status(args).await,
        ClientCommand::Download(args) => jobs::download(args).await,
        ClientCommand::Cancel(args) => jobs::cancel(args).await,
        ClientCommand::Watch(args) => watch::watch(args).await,
    }
}
