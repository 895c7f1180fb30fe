//! A role that cannot reach one of its backends at start refuses to run, with one sentence
//! that names the backend (and never the secrets in its URL); so does one with a weak key.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
};

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    // Bound but never listening, and kept so for the test's life: connecting is refused, and
    // no server another test starts meanwhile can take the port and answer instead.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    std::mem::forget(socket);
    port
}

/// Runs `audiomill <role>` with the embedded defaults plus `vars` (an empty value unsets the
/// variable); returns what it printed on stderr, after checking that it exited with a failure.
fn refused(role: &str, vars: &[(&str, String)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_audiomill"));
    command
        .arg(role)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "off")
        .env("DATA_DIR", data.path())
        .env("JWT_SECRET", "startup-test-secret-long-enough-for-hs256")
        .env(
            "DOWNLOAD_LINK_SECRET",
            "startup-test-link-secret-long-enough",
        )
        .env("TEMPORAL_ADDRESS", format!("127.0.0.1:{}", closed_port()))
        .envs(
            vars.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.as_str())),
        );
    for (name, _) in vars.iter().filter(|(_, value)| value.is_empty()) {
        command.env_remove(name);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("audiomill runs");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(!output.status.success(), "{role} started anyway: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one sentence, not: {stderr}");
    assert!(stderr.starts_with("audiomill: "), "{stderr}");
    stderr
}

#[test]
fn a_short_signing_key_is_refused() {
    let message = refused("gateway", &[("JWT_SECRET", "too-short".into())]);
    assert!(
        message.contains("JWT_SECRET must be at least 32 characters long"),
        "{message}"
    );
    assert!(!message.contains("too-short"), "{message}");
}

#[test]
fn the_download_link_key_is_required_outside_dev_and_must_be_long() {
    for role in ["gateway", "worker"] {
        let message = refused(role, &[("DOWNLOAD_LINK_SECRET", String::new())]);
        assert!(
            message.contains("DOWNLOAD_LINK_SECRET is required outside `audiomill dev`"),
            "{role}: {message}"
        );
    }
    let message = refused(
        "worker",
        &[("DOWNLOAD_LINK_SECRET", "short-link-key".into())],
    );
    assert!(
        message.contains("DOWNLOAD_LINK_SECRET must be at least 32 characters long"),
        "{message}"
    );
    assert!(!message.contains("short-link-key"), "{message}");
    let message = refused("gateway", &[("DOWNLOAD_LINK_HOURS", "0".into())]);
    assert!(
        message.contains("DOWNLOAD_LINK_HOURS must be a whole number of hours from 1 to 8760"),
        "{message}"
    );
}

#[test]
fn a_database_that_is_down_is_named() {
    let url = format!(
        "mysql://audiomill:db-password-42@127.0.0.1:{}/audiomill",
        closed_port()
    );
    let message = refused("gateway", &[("DATABASE_URL", url)]);
    assert!(
        message.contains("database at DATABASE_URL is unreachable"),
        "{message}"
    );
    assert!(!message.contains("db-password-42"), "{message}");
}

#[test]
fn object_storage_that_is_down_is_named() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let message = refused(
        "worker",
        &[
            ("S3_BUCKET", "audiomill".into()),
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "startup-key".into()),
            ("AWS_SECRET_ACCESS_KEY", "s3-secret-42".into()),
        ],
    );
    assert!(message.contains("Object storage"), "{message}");
    assert!(message.contains(&endpoint), "{message}");
    assert!(!message.contains("s3-secret-42"), "{message}");
}

#[test]
fn an_smtp_server_that_is_down_is_named() {
    let url = format!("smtp://mailer:smtp-password-42@127.0.0.1:{}", closed_port());
    let message = refused("worker", &[("SMTP_URL", url)]);
    assert!(
        message.contains("SMTP server at SMTP_URL is unreachable"),
        "{message}"
    );
    assert!(!message.contains("smtp-password-42"), "{message}");
}

#[test]
fn a_redis_server_that_is_down_is_named() {
    let url = format!("redis://:redis-password-42@127.0.0.1:{}", closed_port());
    let message = refused("gateway", &[("REDIS_URL", url)]);
    assert!(
        message.contains("Redis server at REDIS_URL is unreachable"),
        "{message}"
    );
    assert!(!message.contains("redis-password-42"), "{message}");
}

#[test]
fn a_temporal_server_that_is_down_is_named() {
    // The roles wait up to 30 s for Temporal (it may still be starting), then give up.
    let address = format!("127.0.0.1:{}", closed_port());
    let message = refused("gateway", &[("TEMPORAL_ADDRESS", address.clone())]);
    assert!(
        message.contains(&format!("Temporal at {address} is unreachable")),
        "{message}"
    );
}

#[test]
fn dev_refuses_to_join_a_temporal_server_it_did_not_start() {
    // Whoever holds the dev server's port (this test, or another instance) would answer in
    // place of the server `dev` starts; `dev` must stop instead of using it.
    let _holder = TcpListener::bind(audiomill::temporal::DEV_ADDRESS);
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_audiomill"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("audiomill runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(!output.status.success(), "dev started anyway: {stdout}");
    assert!(!stdout.contains("is running"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one sentence, not: {stderr}");
    assert!(
        stderr.contains("127.0.0.1:7233 is already in use"),
        "{stderr}"
    );
}

/// The gateway and the workers start together (compose, Kubernetes): with
/// `S3_CREATE_BUCKET=true` each may find the bucket missing and try to create it. All of them
/// must start, whoever made it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_starting_together_may_all_create_the_missing_bucket() {
    let required = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run through `make test`"))
    };
    let settings = audiomill_store::S3Settings {
        bucket: format!("together-{}", uuid::Uuid::new_v4().simple()),
        endpoint: Some(required("TEST_S3_ENDPOINT")),
        region: "us-east-1".into(),
        access_key_id: required("TEST_S3_KEY"),
        secret_access_key: required("TEST_S3_SECRET"),
    };
    let starts = (0..4).map(|_| {
        let store = audiomill_store::ObjectStore::s3(&settings, true);
        async move { store.init().await }
    });
    for started in futures::future::join_all(starts).await {
        started.expect("every role starts");
    }
}
