//! Many followers of a few running jobs (used by `make bench`): uploads JOBS copies of VIDEO,
//! opens STREAMS event streams at once, spread evenly over those jobs, through
//! `audiomill-client`, and reads each to its job's end. Prints one line:
//! `streams S ended E events N failed F seconds T`.
//!
//!   cargo run --example followers -- URL EMAIL PASSWORD VIDEO [STREAMS] [JOBS]

use futures::StreamExt;
use std::{path::Path, time::Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, email, password, video, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: followers URL EMAIL PASSWORD VIDEO [STREAMS] [JOBS]");
    };
    let number =
        |i: usize, default: usize| rest.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
    let (streams, jobs) = (number(0, 500), number(1, 5));

    let tokens = audiomill_client::login(base, email, password).await?;
    let client = audiomill_client::connect(base, &tokens.access_token)?;
    let mut job_ids = Vec::new();
    for _ in 0..jobs {
        let answer =
            audiomill_client::upload(&client, Path::new(video), &Default::default(), None, |_| {})
                .await?;
        job_ids.push(answer.job.job_id);
    }

    let started = Instant::now();
    let followers = (0..streams).map(|n| {
        let client = client.clone();
        let job = job_ids[n % job_ids.len()];
        tokio::spawn(async move {
            // (saw the end, events read)
            let Ok(Some(mut events)) = audiomill_client::events(&client, job, None).await else {
                return (false, 0);
            };
            let mut read = 0;
            while let Some(Ok(event)) = events.next().await {
                read += 1;
                if event.is_end() {
                    return (event.data.status.to_string() == "completed", read);
                }
            }
            (false, read)
        })
    });
    let outcomes = futures::future::join_all(followers).await;
    let seconds = started.elapsed().as_secs_f64();
    let ended = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok((true, _))))
        .count();
    let events: usize = outcomes.iter().flatten().map(|(_, read)| read).sum();
    println!(
        "streams {streams} ended {ended} events {events} failed {} seconds {seconds:.1}",
        streams - ended
    );
    Ok(())
}
