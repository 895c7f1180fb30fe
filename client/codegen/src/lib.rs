//! Writes `client/src/generated.rs` from the OpenAPI document with progenitor: run by
//! `make openapi`, and by audiomill-client's test that the committed file is current. A crate
//! of its own so that it builds while the client does not (its generated module stale).
//!
//! progenitor takes one success type and one error type per operation, and no multipart
//! bodies, so it reads a copy of the document narrowed to what it can express:
//! - `POST /upload` is left out: `crate::upload` streams the file itself, with progress and an
//!   `Idempotency-Key`, which a generated whole-body method could not;
//! - `GET /jobs/{job_id}/events` is left out: `crate::events` reads the Server-Sent Events;
//! - the resumable uploads (`/uploads`) are left out: tus speaks in headers and raw bodies,
//!   and `crate::resumable` sends them;
//! - where an operation's successes carry different bodies (`DELETE /jobs/{job_id}`: 202 with
//!   a body, 204 without), their bodies are dropped and the status tells them apart;
//! - where its failures do (`GET /health/ready`: 503 with the readiness report, 429 with the
//!   error shape), only the error-shaped ones are kept; others come back as
//!   `Error::UnexpectedResponse`, the whole response in hand.

use serde_json::Value;
use std::collections::BTreeSet;

/// Paths whose operations the hand-written modules cover.
const BY_HAND: [&str; 4] = [
    "/upload",
    "/jobs/{job_id}/events",
    "/uploads",
    "/uploads/{upload_id}",
];

/// The generated module's source, formatted, for the document `openapi_json`.
pub fn generate(openapi_json: &str) -> String {
    let mut document: Value = serde_json::from_str(openapi_json).expect("the document is JSON");
    narrow(&mut document);
    let spec: openapiv3::OpenAPI =
        serde_json::from_value(document).expect("the document is OpenAPI 3.0");
    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged);
    let tokens = progenitor::Generator::new(&settings)
        .generate_tokens(&spec)
        .expect("progenitor reads the narrowed document");
    let file: syn::File = syn::parse2(tokens).expect("progenitor writes Rust");
    format!(
        "// Generated from openapi/openapi.json by progenitor (`make openapi`); do not edit.\n\n{}",
        prettyplease::unparse(&file)
    )
}

fn narrow(document: &mut Value) {
    let paths = document["paths"]
        .as_object_mut()
        .expect("the document has paths");
    paths.retain(|path, _| !BY_HAND.contains(&path.as_str()));
    let operations = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut());
    for operation in operations {
        let Some(responses) = operation["responses"].as_object_mut() else {
            continue;
        };
        let bodies = |success: bool| {
            responses
                .iter()
                .filter(|(status, _)| status.starts_with('2') == success)
                .map(|(_, response)| response["content"].to_string())
                .collect::<BTreeSet<_>>()
                .len()
        };
        let (mixed_successes, mixed_failures) = (bodies(true) > 1, bodies(false) > 1);
        if mixed_successes {
            for (_, response) in responses.iter_mut().filter(|(s, _)| s.starts_with('2')) {
                response.as_object_mut().map(|r| r.remove("content"));
            }
        }
        if mixed_failures {
            responses.retain(|status, response| {
                status.starts_with('2') || response["content"].to_string().contains("/ErrorBody\"")
            });
        }
    }
}
