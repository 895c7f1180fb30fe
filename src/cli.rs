//! The `audiomill` command line: its subcommands, the logging settings every one of them
//! takes, and how a bad setting is told (one sentence naming the variable).

use crate::config::{BackendArgs, DataArgs, DevArgs, GatewayArgs, WorkerArgs};
use clap::{
    Args, CommandFactory, Parser, Subcommand, ValueEnum,
    error::{ContextKind, ContextValue, ErrorKind},
};
use std::collections::HashMap;

#[derive(Parser, Debug)]
#[command(
    name = "audiomill",
    version,
    about = "Video to MP3 conversion service",
    after_help = "Every setting may also come from the environment variable named beside it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Everything in one process: gateway, worker, and (unless TEMPORAL_ADDRESS is set) a
    /// Temporal dev server with its Web UI on port 8233.
    Dev(DevArgs),
    /// The HTTP gateway.
    Gateway {
        #[command(flatten)]
        backends: BackendArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// A conversion worker.
    Worker {
        #[command(flatten)]
        backends: BackendArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Applies database migrations and exits.
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Manages users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Prints the OpenAPI document the gateway serves.
    Openapi,
    #[command(flatten)]
    Client(audiomill_cli::ClientCommand),
    /// Runs one transcode for a worker, in a process of its own (internal).
    #[command(name = "transcode-child", hide = true)]
    TranscodeChild,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
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
        data: DataArgs,
    },
    /// Sets a user's own quota, over the deployment's defaults (QUOTA_STORAGE_MB,
    /// QUOTA_JOBS_PER_DAY). A limit not given stays as it is.
    SetQuota {
        #[arg(long)]
        email: String,
        /// What the user may keep in storage, in MB: a number (0 for no limit) or `default`.
        #[arg(long, value_name = "MB|default", value_parser = quota_value)]
        storage_mb: Option<QuotaValue>,
        /// How many jobs the user may start in a UTC day: a number (0 for no limit) or
        /// `default`.
        #[arg(long, value_name = "N|default", value_parser = quota_value)]
        jobs_per_day: Option<QuotaValue>,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// One limit as `audiomill user set-quota` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaValue {
    /// The deployment's default.
    Default,
    /// This many (0: no limit).
    Limit(u64),
}

fn quota_value(text: &str) -> Result<QuotaValue, String> {
    if text.eq_ignore_ascii_case("default") {
        return Ok(QuotaValue::Default);
    }
    text.parse()
        .map(QuotaValue::Limit)
        .map_err(|_| "must be a whole number (0 for no limit) or `default`".to_owned())
}

/// How the process logs.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Which events are logged, in tracing's filter syntax (e.g. `info,audiomill=debug`).
    #[arg(
        long = "log",
        env = "RUST_LOG",
        global = true,
        value_name = "FILTER",
        default_value = "info,temporalio_sdk_core=warn,temporalio_sdk=warn",
        value_parser = log_filter
    )]
    pub filter: String,
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, ignore_case = true, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line, for log collectors.
    Json,
    /// Human-readable lines.
    Pretty,
}

fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|_| "is not a valid filter such as `info` or `warn,audiomill=debug`".into())
}

impl Cli {
    /// Parses the command line; a bad setting ends the process with one sentence.
    pub fn parse_or_exit() -> Self {
        match Self::try_parse() {
            Ok(cli) => cli,
            Err(error) => match one_sentence_if_setting(&error) {
                Some(sentence) => {
                    eprintln!("audiomill: {sentence}");
                    std::process::exit(2);
                }
                None => error.exit(),
            },
        }
    }
}

impl DevArgs {
    /// Parses settings given as environment variables in a map, not the process environment
    /// (tests run many apps in one process). Unknown names are refused.
    pub fn from_vars(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let command = Self::command();
        let mut args = vec!["audiomill".to_owned()];
        // As in the environment, an empty value is no value.
        for (name, value) in vars.iter().filter(|(_, v)| !v.trim().is_empty()) {
            let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            else {
                anyhow::bail!("{name} is not a setting of `audiomill dev`.");
            };
            args.push(format!(
                "--{}={value}",
                arg.get_long().expect("settings are long flags")
            ));
        }
        Self::try_parse_from(args).map_err(|e| anyhow::anyhow!("{}", one_sentence(&e)))
    }
}

/// A clap error as one sentence: a refused setting names its variable and flag, and never
/// repeats the value (it may be a secret).
pub fn one_sentence(error: &clap::Error) -> String {
    one_sentence_if_setting(error).unwrap_or_else(|| {
        let rendered = error.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        format!(
            "{}.",
            first.trim_start_matches("error: ").trim_end_matches('.')
        )
    })
}

fn one_sentence_if_setting(error: &clap::Error) -> Option<String> {
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split([' ', '=']).next().unwrap_or(arg);
    let reason = match (
        error.get(ContextKind::ValidValue),
        std::error::Error::source(error),
    ) {
        (Some(ContextValue::Strings(valid)), _) => format!("must be one of {}", valid.join(", ")),
        (_, Some(reason)) => reason.to_string(),
        _ => "has a value that is not allowed".to_owned(),
    };
    Some(match variable_of(flag) {
        Some(variable) => format!("{variable} {reason} ({flag})."),
        None => format!("{flag} {reason}."),
    })
}

/// The environment variable behind a flag such as `--max-file-size`.
fn variable_of(flag: &str) -> Option<String> {
    let long = flag.trim_start_matches('-');
    all_arguments(&Cli::command())
        .into_iter()
        .find(|(_, arg)| arg.get_long() == Some(long))
        .and_then(|(_, arg)| arg.get_env().map(|e| e.to_string_lossy().into_owned()))
}

/// Every (subcommand path, argument) of a command, depth first.
fn all_arguments(command: &clap::Command) -> Vec<(String, clap::Arg)> {
    let mut found: Vec<(String, clap::Arg)> = command
        .get_arguments()
        .map(|arg| (command.get_name().to_owned(), arg.clone()))
        .collect();
    for sub in command.get_subcommands() {
        found.extend(
            all_arguments(sub)
                .into_iter()
                .map(|(path, arg)| (format!("{} {path}", command.get_name()), arg)),
        );
    }
    found
}

/// The environment variables `audiomill <subcommand>` reads (the logging ones included).
pub fn variables_of(subcommand: &str) -> Vec<String> {
    let cli = Cli::command();
    let envs = |command: &clap::Command| -> Vec<String> {
        command
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect()
    };
    let mut names = envs(&cli);
    if let Some(sub) = cli.find_subcommand(subcommand) {
        names.extend(envs(sub));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_role_documents_its_variables_in_help() {
        for (role, expected) in [
            (
                "gateway",
                &[
                    "DATABASE_URL",
                    "JWT_SECRET",
                    "MAX_FILE_SIZE",
                    "LISTEN_ADDR",
                    "DOWNLOAD_LINK_SECRET",
                    "PUBLIC_URL",
                    "DOWNLOAD_REDIRECT",
                ][..],
            ),
            (
                "worker",
                &[
                    "DATABASE_URL",
                    "WORKER_ID",
                    "MAX_CONCURRENT_TRANSCODES",
                    "DOWNLOAD_LINK_SECRET",
                    "DOWNLOAD_LINK_HOURS",
                    "PUBLIC_URL",
                ][..],
            ),
            (
                "dev",
                &[
                    "DATA_DIR",
                    "JWT_SECRET",
                    "WORK_DIR",
                    "LOG_FORMAT",
                    "RUST_LOG",
                ][..],
            ),
        ] {
            let mut command = Cli::command();
            command.build();
            let help = command
                .find_subcommand_mut(role)
                .unwrap()
                .render_long_help()
                .to_string();
            for variable in expected {
                assert!(
                    help.contains(&format!("env: {variable}")),
                    "{role}: {variable}\n{help}"
                );
            }
        }
        assert!(!variables_of("gateway").contains(&"WORKER_ID".to_owned()));
        assert!(!variables_of("worker").contains(&"JWT_SECRET".to_owned()));
        assert!(!variables_of("worker").contains(&"DOWNLOAD_REDIRECT".to_owned()));
    }

    #[test]
    fn a_bad_setting_is_one_sentence_with_its_variable() {
        let error =
            Cli::try_parse_from(["audiomill", "gateway", "--max-file-size", "lots"]).unwrap_err();
        assert_eq!(
            one_sentence(&error),
            "MAX_FILE_SIZE must be a whole number greater than 0 (--max-file-size)."
        );
        let error =
            Cli::try_parse_from(["audiomill", "worker", "--log-format", "xml"]).unwrap_err();
        assert_eq!(
            one_sentence(&error),
            "LOG_FORMAT must be one of json, pretty (--log-format)."
        );
    }

    /// The variables are read by clap alone: no other code in the tree reads the environment.
    #[test]
    fn nothing_else_reads_the_environment() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut offenders = Vec::new();
        for crate_dir in [
            "src",
            "api/src",
            "activities/src",
            "store/src",
            "domain/src",
            "workflows/src",
        ] {
            visit(&root.join(crate_dir), &mut |path, text| {
                // Test code may read the environment: a module's tests, or its `tests.rs`.
                if path.file_name().is_some_and(|name| name == "tests.rs") {
                    return;
                }
                let code = text.split("#[cfg(test)]").next().unwrap_or(text);
                for needle in ["env::var(", "env::var_os(", "env::vars("] {
                    if code.contains(needle) {
                        offenders.push(format!("{} reads {needle}", path.display()));
                    }
                }
            });
        }
        assert!(offenders.is_empty(), "{offenders:#?}");
    }

    fn visit(dir: &std::path::Path, check: &mut impl FnMut(&std::path::Path, &str)) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, check);
            } else if path.extension().is_some_and(|e| e == "rs") {
                check(&path, &std::fs::read_to_string(&path).unwrap());
            }
        }
    }
}
