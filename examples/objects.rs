//! Puts a local file into the configured S3 bucket, or times getting one back, for
//! `make bench`. Reads the same variables as `audiomill` (`S3_BUCKET`, `AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
//!
//!   cargo run --example objects -- put KEY FILE
//!     stores FILE as KEY (a finished job's 1 GB MP3, say) and prints its size;
//!   cargo run --example objects -- fetch KEY PARTS
//!     times how a worker may get a stored source for its parts: the whole object copied to a
//!     local file, as a worker taking parts of a job it does not hold fetches it, against the
//!     byte range one part of PARTS equal parts covers, read straight from the bucket. Prints
//!     "whole SECONDS" and "range SECONDS".

use anyhow::Context;
use audiomill_domain::ObjectKey;
use audiomill_store::{ObjectStore, S3Settings};
use futures::StreamExt;
use std::{path::Path, time::Instant};
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, key, argument] = args.as_slice() else {
        anyhow::bail!("usage: objects put KEY FILE | objects fetch KEY PARTS");
    };
    let variable =
        |name: &str| std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"));
    let settings = S3Settings {
        bucket: variable("S3_BUCKET")?,
        endpoint: std::env::var("AWS_ENDPOINT_URL").ok(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key_id: variable("AWS_ACCESS_KEY_ID")?,
        secret_access_key: variable("AWS_SECRET_ACCESS_KEY")?,
    };
    let key = ObjectKey::parse(key).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    let store = ObjectStore::s3(&settings, false);
    match command.as_str() {
        "put" => {
            let size = store.put_file(&key, Path::new(argument)).await?;
            println!("{size}");
        }
        "fetch" => {
            let parts: u64 = argument.parse().context("PARTS is a whole number")?;
            fetch(&store, &key, parts).await?;
        }
        other => anyhow::bail!("{other}: not put or fetch"),
    }
    Ok(())
}

async fn fetch(store: &ObjectStore, key: &ObjectKey, parts: u64) -> anyhow::Result<()> {
    let size = store.size(key).await?.context("no such object")?;
    let scratch = tempfile::tempdir()?;

    let started = Instant::now();
    store
        .get_to_file(key, &scratch.path().join("whole"))
        .await?;
    println!("whole {:.2}", started.elapsed().as_secs_f64());

    // A middle part's share, written to disk as a part would read it.
    let share = size / parts.max(1);
    let started = Instant::now();
    let mut body = store.read_range(key, share..(2 * share).min(size)).await?;
    let mut file = tokio::fs::File::create(scratch.path().join("range")).await?;
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?).await?;
    }
    file.flush().await?;
    println!("range {:.2}", started.elapsed().as_secs_f64());
    Ok(())
}
