//! Stores a local file as an object in the configured S3 bucket (used by `make bench` to give
//! a finished job a 1 GB MP3). Reads the same variables as `audiomill` (`S3_BUCKET`,
//! `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
//!
//!   cargo run --example put_object -- KEY FILE

use audiomill_domain::ObjectKey;
use audiomill_store::{ObjectStore, S3Settings};
use std::path::Path;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, file] = args.as_slice() else {
        anyhow::bail!("usage: put_object KEY FILE");
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
    let size = ObjectStore::s3(&settings, false)
        .put_file(&key, Path::new(file))
        .await?;
    println!("{size}");
    Ok(())
}
