//! A webhook receiver of the tests' own on loopback (`tests/tools/webhook_receiver.py`), and
//! the Standard Webhooks reference implementation (`tests/tools/verify_webhook.py`, Python's
//! `standardwebhooks`) to verify what it got, not our own code.

use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

pub fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
}

/// The receiver process, and the requests it recorded.
pub struct Receiver {
    child: Child,
    log: PathBuf,
    base: String,
    _dir: tempfile::TempDir,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub record: Value,
}

impl Receiver {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut child = Command::new(python())
            .arg(tool("webhook_receiver.py"))
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts: run the suite through `make test`");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the receiver says where it listens: {line:?}"));
        Self {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let record: Value = serde_json::from_str(line).unwrap();
                Received {
                    path: record["path"].as_str().unwrap().to_owned(),
                    id: record["headers"]["webhook-id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    record,
                }
            })
            .collect()
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits (up to a minute) until `path` has had at least `count` requests.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.at(path);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} requests, not {count}: {:?}",
                got.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payloads of `requests` as the reference implementation verifies them with `secret`;
/// panics if any does not verify.
pub fn verified(secret: &str, requests: &[Received]) -> Vec<Value> {
    let outcome = try_verify(secret, requests);
    outcome.unwrap_or_else(|why| panic!("{why}"))
}

pub fn try_verify(secret: &str, requests: &[Received]) -> Result<Vec<Value>, String> {
    let mut child = Command::new(python())
        .arg(tool("verify_webhook.py"))
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for request in requests {
            writeln!(stdin, "{}", request.record).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect())
}
