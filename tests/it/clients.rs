//! The clients integrators generate from `openapi/openapi.json` work without edits: the Python
//! client from openapi-python-client (with `openapi/python-client.yaml`) is generated with no
//! warning and drives a real gateway from login to download.

use crate::common;

use common::*;
use serde_json::Value;
use std::{path::Path, process::Command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_python_client_converts_a_video() {
    let generator = required("TEST_OPENAPI_PYTHON_CLIENT");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    // The generator formats its output with ruff, which it looks for on PATH.
    let tools = Path::new(&generator).parent().unwrap();
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let generated = Command::new(&generator)
        .current_dir(out.path())
        .env("PATH", path)
        .args(["generate", "--meta", "none", "--path"])
        .arg(root.join("openapi/openapi.json"))
        .arg("--config")
        .arg(root.join("openapi/python-client.yaml"))
        .output()
        .expect("openapi-python-client runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "{said}");
    for complaint in ["Warning", "WARNING", "Unable", "Cannot"] {
        assert!(
            !said.contains(complaint),
            "the generator complained:\n{said}"
        );
    }

    let app = TestApp::spawn().await;
    let email = app.add_user("py", false).await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 3, true);
    // The generator's own interpreter has the generated code's dependencies (httpx, attrs).
    let python = tools.join("python3");
    let run = Command::new(python)
        .arg(root.join("tests/clients/python_client.py"))
        .env("PYTHONPATH", out.path())
        .env("AUDIOMILL_URL", &app.base)
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("AUDIOMILL_VIDEO", &video)
        .output()
        .expect("python runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let seen: Value = serde_json::from_slice(&run.stdout).expect("the script prints JSON");
    assert_eq!(seen["health"], "ok", "{seen}");
    assert_eq!(seen["token_type"], "Bearer", "{seen}");
    assert_eq!(seen["wrong_login"], "unauthorized", "{seen}");
    assert_eq!(seen["upload_status"], 202, "{seen}");
    assert_eq!(seen["batch_jobs"], 2, "{seen}");
    assert_eq!(
        seen["batch_listed"],
        serde_json::json!(["one.mp4", "two.mp4"]),
        "{seen}"
    );
    assert_eq!(seen["final_status"], "completed", "{seen}");
    // Newest first: the batch's two jobs, then the first upload's.
    assert_eq!(seen["listed"][2], seen["job_id"], "{seen}");
    assert_eq!(seen["download_status"], 200, "{seen}");
    let head = seen["download_head"].as_str().unwrap_or_default();
    assert!(
        head.starts_with("494433") || head.starts_with("fff"),
        "an MP3 starts with an ID3 tag or a frame sync: {seen}"
    );
    assert_eq!(seen["missing"], "not_found", "{seen}");
    assert_eq!(seen["limit_101"], "bad_request", "{seen}");
    assert_eq!(seen["key_prefix"], "amk_", "{seen}");
    assert_eq!(seen["key_lists_jobs"], 200, "{seen}");
    assert_eq!(seen["key_webhooks"], "forbidden", "{seen}");
    assert_eq!(seen["key_revoked"], 204, "{seen}");
    assert_eq!(seen["revoked_key_lists_jobs"], 401, "{seen}");
}
