//! `audiomill watch`: folders of your own bucket whose new videos the server converts as they
//! appear: add one, list them, pause, resume or delete one.

use crate::{
    choices::OutputFlags,
    exit::Exit,
    printable::{printable, printable_json},
    problem::Problem,
    session::Session,
};
use audiomill_client::{UploadOptions, types::WatchBody};
use uuid::Uuid;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    #[command(subcommand)]
    pub command: WatchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum WatchCommand {
    /// Watches a folder of one of your connections: each video that appears there (and each
    /// written again) is converted once, with these choices.
    Add(Box<AddArgs>),
    /// Lists your watches.
    List {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Starts no more jobs until resumed (those started go on).
    Pause { watch: Uuid },
    /// Goes on from where it stopped.
    Resume { watch: Uuid },
    /// Stops it for good; its jobs not yet converted end, its MP3s stay.
    Delete { watch: Uuid },
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The connection whose bucket holds the folder (saved on the web app's account page or
    /// with `POST /connections`).
    #[arg(long, value_name = "ID", required_unless_present = "directory")]
    pub connection: Option<Uuid>,
    /// Admins only, instead of --connection: a folder of the server's workers, inside one
    /// the operator lets be watched (WATCH_DIRECTORIES).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["connection", "prefix"])]
    pub directory: Option<String>,
    /// The folder, under the connection's prefix [default: all of it].
    #[arg(long, value_name = "FOLDER")]
    pub prefix: Option<String>,
    /// Your name for the watch [default: the folder's].
    #[arg(long)]
    pub name: Option<String>,
    /// Its jobs converting at once at most (1-100) [server default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_running: Option<u32>,
    /// Seconds between looks over the folder (10-86400) [server default: 60].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(10..=86400))]
    pub interval: Option<u32>,
    /// Print the watch as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub output_choices: OutputFlags,
}

pub async fn watch(args: WatchArgs) -> Result<Exit, Problem> {
    let mut session = Session::load_with(&args.key)?;
    let client = session.client().await?;
    let refused = |error| Problem::from_api(session.server(), error);
    match args.command {
        WatchCommand::Add(add) => {
            let json = add.json;
            let body = add_body(*add)?;
            let watch = client.create_watch().body(body).send().await;
            let watch = watch.map_err(refused)?.into_inner();
            show(&watch, json);
        }
        WatchCommand::List { json } => {
            let list = client.list_watches().send().await.map_err(refused)?;
            let watches = list.into_inner().watches;
            if json {
                println!("{}", printable_json(&watches));
            } else if watches.is_empty() {
                println!("No watches.");
            } else {
                watches.iter().for_each(|watch| show(watch, false));
            }
        }
        WatchCommand::Pause { watch } => {
            let answer = client.pause_watch().watch_id(watch).send().await;
            show(&answer.map_err(refused)?.into_inner(), false);
        }
        WatchCommand::Resume { watch } => {
            let answer = client.resume_watch().watch_id(watch).send().await;
            show(&answer.map_err(refused)?.into_inner(), false);
        }
        WatchCommand::Delete { watch } => {
            client
                .delete_watch()
                .watch_id(watch)
                .send()
                .await
                .map_err(refused)?;
            println!("Deleted watch {watch}.");
        }
    }
    Ok(Exit::Success)
}

/// The request that adds the watch `args` describe.
fn add_body(args: AddArgs) -> Result<audiomill_client::types::NewWatchBody, Problem> {
    let prefix = args.prefix.unwrap_or_default();
    let folder = args.directory.as_deref().unwrap_or(&prefix);
    let name = args.name.unwrap_or_else(|| match folder.trim_matches('/') {
        "" => "whole bucket".to_owned(),
        folder => folder.rsplit('/').next().unwrap_or(folder).to_owned(),
    });
    let choices: UploadOptions = (&args.output_choices).into();
    // The destination is the watch's own field; the rest are the MP3's choices.
    let options = choices
        .fields()
        .into_iter()
        .filter(|(field, _)| !field.starts_with("export_"))
        .map(|(field, value)| (field, serde_json::Value::String(value)))
        .collect();
    let bad = |what: &str| Problem::new(format!("The watch's {what} is not acceptable."));
    Ok(audiomill_client::types::NewWatchBody {
        connection_id: args.connection.map(|id| id.to_string()),
        directory: match args.directory {
            Some(directory) => Some(directory.parse().map_err(|_| bad("folder"))?),
            None => None,
        },
        name: name.parse().map_err(|_| bad("name"))?,
        prefix: match prefix.as_str() {
            "" => None,
            folder => Some(folder.parse().map_err(|_| bad("folder"))?),
        },
        options,
        export_to: choices.export_to.clone(),
        export_key: choices.export_key.clone(),
        max_running: args.max_running.and_then(std::num::NonZeroU32::new),
        interval_seconds: args.interval,
    })
}

/// One watch as lines for a person, or as JSON.
fn show(watch: &WatchBody, json: bool) {
    if json {
        println!("{}", printable_json(watch));
        return;
    }
    println!(
        "{}  {}  {}  {} jobs ({} running)  folder {}",
        watch.id,
        watch.state,
        printable(&watch.name),
        watch.jobs,
        watch.running,
        printable(watch.directory.as_deref().unwrap_or(&watch.prefix)),
    );
    if let Some(trouble) = &watch.trouble {
        println!("  held: {}", printable(trouble));
    }
}
