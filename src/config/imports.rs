//! Imports from a link and users' storage connections (`IMPORT_*`, `CONNECTION_SECRET_KEY`).

use super::{Secret, boolean, signing_key};
use clap::Args;

/// Imports from a link: the gateway checks a link's address when the job is asked for, a
/// worker again at every request of the fetch, so both read these.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Imports")]
pub struct ImportArgs {
    /// Let imports fetch from loopback, private and link-local addresses (a media server on
    /// the operator's own network). Off, such links are refused when the job is asked for and
    /// at every redirect.
    #[arg(long, env = "IMPORT_ALLOW_PRIVATE", value_name = "BOOL", value_parser = boolean, default_value = "false", action = clap::ArgAction::Set)]
    pub import_allow_private: bool,
    /// How long a video's server may send nothing (before its answer, or mid-body) before the
    /// attempt stops and is tried again, in seconds.
    #[arg(long, env = "IMPORT_TIMEOUT_SECONDS", value_name = "SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub import_timeout_seconds: u64,
    /// The key users' storage connections' secret keys are sealed with, at least 32
    /// characters; the gateway and every worker need the same. Without it (outside `dev`,
    /// which generates one in DIR) connections are off.
    #[arg(long, env = "CONNECTION_SECRET_KEY", value_name = "KEY", value_parser = signing_key, hide_env_values = true)]
    pub connection_secret_key: Option<Secret>,
    /// Folders on the workers' hosts (absolute paths, comma-separated) that admins may watch:
    /// each video put in one, or in a folder under it, is converted. Every worker must see
    /// them at the same paths (a shared volume). Empty: no folder of the host is watched.
    #[arg(long, env = "WATCH_DIRECTORIES", value_name = "DIRS", default_value = "", value_parser = directories)]
    pub watch_directories: Directories,
}

/// Folders of the host, absolute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directories(pub Vec<std::path::PathBuf>);

fn directories(text: &str) -> Result<Directories, String> {
    let list: Vec<std::path::PathBuf> = text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(std::path::PathBuf::from)
        .collect();
    match list.iter().find(|path| !path.is_absolute()) {
        Some(bad) => Err(format!(
            "names `{}`, which is not an absolute path",
            bad.display()
        )),
        None => Ok(Directories(list)),
    }
}

/// Imports from a link and connections, as [`ImportArgs`] set them.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Imports and connections may reach loopback and private addresses
    /// (`IMPORT_ALLOW_PRIVATE`).
    pub allow_private: bool,
    pub idle_timeout: std::time::Duration,
    pub connection_secret_key: Option<Secret>,
    /// Folders of the host admins may watch (`WATCH_DIRECTORIES`).
    pub watch_directories: Vec<std::path::PathBuf>,
}
