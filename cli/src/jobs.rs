//! `audiomill jobs`, `status`, `download` and `cancel`: one request each on the saved login.

use crate::{
    exit::Exit,
    printable::{file_stem, printable, printable_json},
    problem::Problem,
    save::save,
    session::Session,
};
use audiomill_client::types::{JobStatusBody, StatusFilter};
use clap::builder::PossibleValuesParser;
use std::{num::NonZeroU32, path::PathBuf};
use uuid::Uuid;

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    /// Only jobs that stand so; `in_progress` is queued or running.
    #[arg(long, value_parser = PossibleValuesParser::new(
        ["in_progress", "queued", "running", "completed", "failed", "cancelled"]
    ))]
    pub status: Option<String>,
    /// How many jobs to show, newest first (1-100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Where to go on from: the cursor a previous page ended with.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the page as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    /// The job's id.
    pub job: Uuid,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    /// The job's id.
    pub job: Uuid,
    /// Where to save the MP3 (`-` for standard output); the video's name with `.mp3` when
    /// left out.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    /// The job's id.
    pub job: Uuid,
}

pub async fn jobs(args: JobsArgs) -> Result<Exit, Problem> {
    let mut session = Session::load_with(&args.key)?;
    let client = session.client().await?;
    let limit = NonZeroU32::new(args.limit).expect("clap keeps the limit at 1 or more");
    let mut request = client.list_jobs().limit(limit);
    if let Some(status) = &args.status {
        let status: StatusFilter = status.parse().expect("clap allows only known statuses");
        request = request.status(status);
    }
    if let Some(cursor) = args.cursor {
        request = request.cursor(cursor);
    }
    let page = request
        .send()
        .await
        .map_err(|error| Problem::from_api(session.server(), error))?
        .into_inner();
    if args.json {
        print_json(&page);
        return Ok(Exit::Success);
    }
    if page.jobs.is_empty() {
        println!("No jobs.");
        return Ok(Exit::Success);
    }
    println!("{:<36}  {:<9}  {:<20}  FILE", "JOB", "STATUS", "CREATED");
    for job in &page.jobs {
        println!(
            "{:<36}  {:<9}  {:<20}  {}",
            job.job_id,
            job.status.to_string(),
            job.created_at,
            printable(&job.filename)
        );
    }
    if let Some(cursor) = page.next_cursor {
        println!(
            "More: audiomill jobs --limit {} --cursor {cursor}",
            args.limit
        );
    }
    Ok(Exit::Success)
}

pub async fn status(args: StatusArgs) -> Result<Exit, Problem> {
    let mut session = Session::load_with(&args.key)?;
    let status = job_status(&mut session, args.job).await?;
    if args.json {
        print_json(&status);
        return Ok(Exit::Success);
    }
    let mut stands = status.status.to_string();
    if let Some(step) = status.step {
        stands += &format!(
            " ({step}, {}%, attempt {})",
            status.progress, status.attempt
        );
    }
    println!("Job:       {}", status.job_id);
    println!("File:      {}", printable(&status.filename));
    println!("Status:    {stands}");
    println!("Created:   {}", status.created_at);
    if let Some(completed) = &status.completed_at {
        println!("Completed: {completed}");
    }
    if let Some(error) = &status.error {
        println!("Error:     {}", printable(error));
    }
    if let Some(format) = &status.options.format {
        let how = match status.stream_copy {
            Some(true) => ", the audio copied as it is",
            Some(false) => ", encoded",
            None => "",
        };
        println!("Output:    {format}{how}");
    }
    for track in &status.audio_tracks {
        let mut about = format!("{}, {} channels", printable(&track.codec), track.channels);
        if let Some(language) = &track.language {
            about = format!("{}, {about}", printable(language));
        }
        if let Some(title) = &track.title {
            about += &format!(", \"{}\"", printable(title));
        }
        if track.default {
            about += ", default";
        }
        println!("Track {}:   {about}", track.index);
    }
    Ok(Exit::Success)
}

pub async fn download(args: DownloadArgs) -> Result<Exit, Problem> {
    let mut session = Session::load_with(&args.key)?;
    let target = match args.output {
        Some(target) => target,
        None => {
            let status = job_status(&mut session, args.job).await?;
            // A server that names no format made an MP3.
            let extension = status
                .options
                .format
                .map_or_else(|| "mp3".to_owned(), |format| format.to_string());
            PathBuf::from(format!("{}.{extension}", file_stem(&status.filename)))
        }
    };
    let client = session.client().await?;
    let mp3 = client
        .download_mp3()
        .job_id(args.job)
        .send()
        .await
        .map_err(|error| Problem::from_api(session.server(), error))?;
    let written = save(session.server(), mp3.into_inner(), &target).await?;
    if target != std::path::Path::new("-") {
        println!(
            "Saved {} ({}).",
            target.display(),
            indicatif::HumanBytes(written)
        );
    }
    Ok(Exit::Success)
}

pub async fn cancel(args: CancelArgs) -> Result<Exit, Problem> {
    let mut session = Session::load_with(&args.key)?;
    let client = session.client().await?;
    let accepted = client
        .cancel_job()
        .job_id(args.job)
        .send()
        .await
        .map_err(|error| Problem::from_api(session.server(), error))?;
    println!("{}", printable(&accepted.message));
    Ok(Exit::Success)
}

async fn job_status(session: &mut Session, job: Uuid) -> Result<JobStatusBody, Problem> {
    let client = session.client().await?;
    let status = client
        .get_job_status()
        .job_id(job)
        .send()
        .await
        .map_err(|error| Problem::from_api(session.server(), error))?;
    Ok(status.into_inner())
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", printable_json(value));
}
