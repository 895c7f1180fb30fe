//! The OpenAPI document as served and committed: what poem-openapi derives from the
//! operations, plus the answers the layers in front of them may give to any operation (429
//! from the rate limits; 400, 408, 413 and 415 for JSON bodies). Generated clients and API fuzzers
//! then know every status they can meet.
//!
//! It also rewrites one shape of poem-openapi's that generators refuse: a documented field of a
//! named type is written as `allOf: [{$ref}, {description}]`, and generators that take `allOf`
//! as a merge of objects (openapi-python-client among them) drop the whole model when the
//! reference is an enum. The reference alone says the same.
//!
//! The download operations' errors may also come as an HTML page (see `page`): a browser
//! opening a download link asks for one. Their audio is written as the one `audio/*` range its
//! payload declares; the document names each format's type instead, since generators take
//! types one by one and refuse a range.
//!
//! The JSON bodies whose types refuse unknown fields (`deny_unknown_fields`) say so with
//! `additionalProperties: false`, which poem-openapi does not write.
//!
//! The resumable upload operations read their tus headers raw (to answer each malformed
//! spelling with the protocol's own status), so poem-openapi writes them optional and
//! untyped; the document says what the server requires of them (see [`TUS_HEADERS`]).
//!
//! And an event stream's schema: poem-openapi writes it as an array of the events' data, but
//! before OpenAPI 3.2 a `text/event-stream` schema describes one event (`id`, `event`, `data`),
//! which is how API checkers read it; the data's own type is named in `contentSchema`.

use audiomill_domain::output::AudioFormat;
use serde_json::{Value, json};

/// The operations whose errors a browser may ask for as a page (`page::ROUTES`).
const PAGE_OPERATIONS: [&str; 2] = ["downloadMp3", "downloadMp3ByFid"];

/// The request bodies derived with `deny_unknown_fields`: a field they do not name is a 400.
const CLOSED_BODIES: [&str; 12] = [
    "AccountChanges",
    "ForgotPassword",
    "Invite",
    "Join",
    "NewAccount",
    "NewKey",
    "NewUploadToken",
    "NewWebhook",
    "PasswordChange",
    "ResetPassword",
    "UserChanges",
    "WebhookChanges",
];

/// What the tus operations require of their headers, by name: a request without one, or with
/// another value, is refused (412 for the version, 400 for the others).
const TUS_HEADERS: [(&str, &str); 4] = [
    ("Tus-Resumable", r#"{"type": "string", "enum": ["1.0.0"]}"#),
    (
        "Upload-Offset",
        r#"{"type": "string", "pattern": "^[0-9]{1,19}$"}"#,
    ),
    (
        "Upload-Length",
        r#"{"type": "string", "pattern": "^[0-9]{1,19}$"}"#,
    ),
    ("Upload-Metadata", r#"{"type": "string", "minLength": 1}"#),
];

/// A trim point or a cover frame's time, as the server reads it: seconds (at most a day) or
/// `[HH:]MM:SS`, each with up to three decimals.
const TIME_POINT: &str = r#"{"pattern": "^(?:[0-9]{1,4}|[0-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|[0-9]{1,3}:[0-5][0-9]|(?:[01]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])(?:\\.[0-9]{1,3})?$"}"#;

/// An `http` or `https` URL with a host and no credentials or fragment (whether its host
/// resolves to public addresses is known only when it is tried).
const WEB_URL: &str = r#"{"maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$"}"#;

/// What the server requires of fields that poem-openapi writes as any string or any array,
/// by where they are in the document. The handlers check the same and answer each in their
/// own words; the document says it so that a client (or a fuzzer) knows before it sends.
const FIELD_RULES: [(&str, &str); 9] = [
    ("/components/schemas/NewWebhook/properties/url", WEB_URL),
    (
        "/components/schemas/NewWebhook/properties/events",
        r#"{"minItems": 1}"#,
    ),
    ("/components/schemas/WebhookChanges/properties/url", WEB_URL),
    (
        "/components/schemas/WebhookChanges/properties/events",
        r#"{"minItems": 1}"#,
    ),
    (
        "/paths/~1upload/post/requestBody/content/multipart~1form-data/schema/properties/start",
        TIME_POINT,
    ),
    (
        "/paths/~1upload/post/requestBody/content/multipart~1form-data/schema/properties/end",
        TIME_POINT,
    ),
    (
        "/paths/~1upload/post/requestBody/content/multipart~1form-data/schema/properties/cover_at",
        TIME_POINT,
    ),
    (
        "/paths/~1upload/post/requestBody/content/multipart~1form-data/schema/properties/normalize",
        r#"{"pattern": "^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|-(?:[5-9]|[1-6][0-9])(?:\\.[0-9]{1,2})?|-70)$"}"#,
    ),
    (
        "/paths/~1upload/post/requestBody/content/multipart~1form-data/schema/properties/callback_url",
        r#"{"maxLength": 2048, "pattern": "^$|^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$"}"#,
    ),
];

/// A page cursor: base64url, as the service writes it.
const CURSOR: &str = r#"{"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"}"#;

/// Adds each of [`FIELD_RULES`] to the schema it names, and [`CURSOR`] to every `cursor`.
/// (A test checks that the committed document has every rule, so a renamed field is noticed.)
fn add_field_rules(document: &mut Value) {
    for (pointer, rule) in FIELD_RULES {
        let rule: Value = serde_json::from_str(rule).expect("the rules are JSON");
        let Some(Value::Object(schema)) = document.pointer_mut(pointer) else {
            continue;
        };
        schema.extend(rule.as_object().expect("a rule is an object").clone());
    }
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let cursors = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut())
        .filter_map(|operation| operation.get_mut("parameters")?.as_array_mut())
        .flatten()
        .filter(|parameter| parameter["name"] == "cursor" && parameter["in"] == "query");
    for parameter in cursors {
        parameter["schema"] = serde_json::from_str(CURSOR).expect("the schema is JSON");
    }
}

/// Marks each of [`TUS_HEADERS`] required, with its schema, where an operation takes it.
fn require_tus_headers(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let parameters = paths
        .iter_mut()
        .filter(|(path, _)| path.starts_with("/uploads"))
        .filter_map(|(_, methods)| methods.as_object_mut())
        .flat_map(|methods| methods.values_mut())
        .filter_map(|operation| operation.get_mut("parameters")?.as_array_mut())
        .flatten();
    for parameter in parameters.filter(|p| p["in"] == "header") {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        if let Some((_, schema)) = TUS_HEADERS.iter().find(|(header, _)| *header == name) {
            parameter["required"] = Value::Bool(true);
            parameter["schema"] = serde_json::from_str(schema).expect("the schemas are JSON");
        }
    }
}

/// Adds the middleware's answers to every operation of `derived` (poem-openapi's JSON).
pub fn complete(derived: &str) -> String {
    let mut document: Value =
        serde_json::from_str(derived).expect("poem-openapi writes valid JSON");
    plain_references(&mut document);
    require_tus_headers(&mut document);
    add_field_rules(&mut document);
    describe_events(&mut document);
    for name in CLOSED_BODIES {
        if let Some(schema) = document["components"]["schemas"].get_mut(name) {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
    let Some(paths) = document["paths"].as_object_mut() else {
        return derived.to_owned();
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut())
    {
        let operation_id = operation["operationId"].as_str().map(str::to_owned);
        let takes_json = operation["requestBody"]["content"]
            .as_object()
            .is_some_and(|content| content.keys().any(|t| t.starts_with("application/json")));
        scopes_for_bearer_only(operation);
        let Some(responses) = operation["responses"].as_object_mut() else {
            continue;
        };
        responses.entry("429").or_insert_with(too_many_requests);
        if operation_id
            .as_deref()
            .is_some_and(|id| PAGE_OPERATIONS.contains(&id))
        {
            name_audio_types(responses);
            for (_, response) in responses
                .iter_mut()
                .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            {
                response["content"]["text/html; charset=utf-8"] =
                    json!({ "schema": { "type": "string" } });
            }
        }
        if takes_json {
            for (status, description) in [
                ("400", "The body is not valid JSON for this operation."),
                ("408", "The body did not arrive within 10 s."),
                ("413", "The JSON body is over 64 KiB."),
                ("415", "The body is not JSON."),
            ] {
                responses
                    .entry(status)
                    .or_insert_with(|| error_response(description));
            }
        }
    }
    serde_json::to_string_pretty(&document).expect("a JSON value serializes")
}

/// Each format's content type where a response says `audio/*`.
fn name_audio_types(responses: &mut serde_json::Map<String, Value>) {
    for response in responses.values_mut() {
        let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(schema) = content.remove("audio/*") {
            for format in AudioFormat::ALL {
                content.insert(format.content_type().to_owned(), schema.clone());
            }
        }
    }
}

/// Keeps an operation's scopes on its bearer requirement only: a signed link (the other
/// scheme of a download) needs none.
fn scopes_for_bearer_only(operation: &mut Value) {
    let Some(requirements) = operation.get_mut("security").and_then(Value::as_array_mut) else {
        return;
    };
    for requirement in requirements.iter_mut().filter_map(Value::as_object_mut) {
        for (scheme, scopes) in requirement.iter_mut() {
            if scheme != "BearerAuth" {
                *scopes = json!([]);
            }
        }
    }
}

/// Rewrites every `allOf: [{$ref}, {description, nullable}]` below `value` into the reference
/// itself (the description stays beside it), or `allOf: [{$ref}]` with `nullable` when the
/// field may be null: the OpenAPI 3.0 way to say "this type or null".
fn plain_references(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let documented_reference = object
                .get("allOf")
                .and_then(Value::as_array)
                .filter(|parts| parts.len() == 2 && parts[0].get("$ref").is_some())
                .and_then(|parts| {
                    let annotation = parts[1].as_object()?;
                    let only_annotation = annotation
                        .keys()
                        .all(|key| key == "description" || key == "nullable");
                    only_annotation.then(|| (parts[0].clone(), parts[1].clone()))
                });
            if let Some((reference, annotation)) = documented_reference {
                object.remove("allOf");
                if let Some(description) = annotation.get("description") {
                    object
                        .entry("description")
                        .or_insert_with(|| description.clone());
                }
                if annotation["nullable"] == Value::Bool(true) {
                    object.insert("allOf".into(), json!([reference]));
                    object.insert("nullable".into(), Value::Bool(true));
                } else {
                    object.insert("$ref".into(), reference["$ref"].clone());
                }
            }
            object.values_mut().for_each(plain_references);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_references),
        _ => {}
    }
}

/// Rewrites each `text/event-stream` answer's schema from poem-openapi's array of data into
/// the schema of one event, its `data` JSON of the array's item type.
fn describe_events(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let streams = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|methods| methods.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        // `get_mut`, not indexing: indexing a missing key would insert it.
        .filter_map(|response| {
            response
                .get_mut("content")?
                .get_mut("text/event-stream")?
                .as_object_mut()
        });
    for stream in streams {
        let Some(item) = stream
            .get("schema")
            .filter(|schema| schema["format"] == "event-stream")
            .map(|schema| schema["items"].clone())
        else {
            continue;
        };
        stream.insert(
            "schema".into(),
            json!({
                "type": "object",
                "description": "One event; its `data` is JSON.",
                "required": ["data"],
                "properties": {
                    "id": { "type": "string" },
                    "event": { "type": "string" },
                    "retry": { "type": "integer" },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": item
                    }
                }
            }),
        );
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "application/json; charset=utf-8": {
                "schema": { "$ref": "#/components/schemas/ErrorBody" }
            }
        }
    })
}

fn too_many_requests() -> Value {
    let number = |description: &str| json!({ "description": description, "schema": { "type": "integer", "format": "int64" } });
    let mut response = error_response("Too many requests; try again after `Retry-After` seconds.");
    response["headers"] = json!({
        "Retry-After": number("Seconds until a request may succeed again."),
        "X-RateLimit-Limit": number("Requests allowed per minute."),
        "X-RateLimit-Remaining": number("Requests left in this minute."),
        "X-RateLimit-Reset": number("Seconds until the limit is whole again."),
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_says_what_each_checked_field_requires() {
        let committed: Value =
            serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
        for (pointer, rule) in FIELD_RULES {
            let rule: Value = serde_json::from_str(rule).unwrap();
            let schema = committed
                .pointer(pointer)
                .unwrap_or_else(|| panic!("no field at {pointer}"));
            for (key, value) in rule.as_object().unwrap() {
                assert_eq!(&schema[key], value, "{pointer}: {key}");
            }
        }
        let cursor = committed["paths"]["/jobs"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cursor")
            .unwrap();
        assert_eq!(cursor["schema"]["minLength"], 1);
    }

    #[test]
    fn a_time_point_pattern_takes_what_the_server_reads_and_nothing_it_refuses() {
        let rule: Value = serde_json::from_str(TIME_POINT).unwrap();
        let pattern = regex::Regex::new(rule["pattern"].as_str().unwrap()).unwrap();
        for good in [
            "0",
            "90",
            "90.5",
            "86399.999",
            "1:30",
            "999:59",
            "01:02:03.004",
            "23:59:59",
        ] {
            assert!(pattern.is_match(good), "{good}");
        }
        for bad in [
            "", "90.", ".5", "1:60", "24:00:01", "86400", "1:2", "90.1234", "1e3", "-1",
        ] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn scopes_stay_on_the_bearer_requirement_and_open_operations_stay_open() {
        let derived = json!({
            "paths": {
                "/open": { "get": { "responses": {} } },
                "/download": { "get": {
                    "security": [{ "BearerAuth": ["jobs:read"] }, { "LinkSignature": ["jobs:read"] }],
                    "responses": {}
                } }
            }
        })
        .to_string();
        let done: Value = serde_json::from_str(&complete(&derived)).unwrap();
        let open = done["paths"]["/open"]["get"].as_object().unwrap();
        assert!(
            !open.contains_key("security"),
            "no security added: {open:?}"
        );
        assert_eq!(
            done["paths"]["/download"]["get"]["security"],
            json!([{ "BearerAuth": ["jobs:read"] }, { "LinkSignature": [] }])
        );
    }

    #[test]
    fn every_operation_gets_429_and_json_bodies_get_their_errors() {
        let derived = json!({
            "paths": {
                "/a": { "get": { "responses": { "200": { "description": "ok" } } } },
                "/b": { "post": {
                    "requestBody": { "content": { "application/json; charset=utf-8": {} } },
                    "responses": { "400": { "description": "ours" } }
                } }
            }
        })
        .to_string();
        let done: Value = serde_json::from_str(&complete(&derived)).unwrap();
        let a = &done["paths"]["/a"]["get"]["responses"];
        assert!(a["429"]["headers"]["Retry-After"].is_object());
        assert!(a["413"].is_null(), "no body, no 413");
        let b = &done["paths"]["/b"]["post"]["responses"];
        assert_eq!(
            b["400"]["description"], "ours",
            "documented answers are kept"
        );
        assert!(b["413"].is_object() && b["415"].is_object() && b["429"].is_object());
    }

    #[test]
    fn an_event_stream_is_described_event_by_event() {
        let derived = json!({ "paths": { "/e": { "get": { "responses": { "200": { "content": {
            "text/event-stream": { "schema": {
                "type": "array", "format": "event-stream",
                "items": { "$ref": "#/components/schemas/Ev" }
            } }
        } } } } } } })
        .to_string();
        let done: Value = serde_json::from_str(&complete(&derived)).unwrap();
        let schema = &done["paths"]["/e"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"];
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/Ev"
        );
    }

    #[test]
    fn documented_references_become_plain_references() {
        let derived = json!({
            "paths": {},
            "components": { "schemas": { "Job": { "type": "object", "properties": {
                "kind": { "allOf": [
                    { "$ref": "#/components/schemas/Kind" },
                    { "description": "What it is." }
                ] },
                "step": { "allOf": [
                    { "$ref": "#/components/schemas/Step" },
                    { "description": "Now.", "nullable": true }
                ] },
                "merged": { "allOf": [
                    { "$ref": "#/components/schemas/A" },
                    { "type": "object", "properties": {} }
                ] }
            } } } }
        })
        .to_string();
        let done: Value = serde_json::from_str(&complete(&derived)).unwrap();
        let properties = &done["components"]["schemas"]["Job"]["properties"];
        assert_eq!(
            properties["kind"],
            json!({ "$ref": "#/components/schemas/Kind", "description": "What it is." })
        );
        assert_eq!(
            properties["step"],
            json!({ "allOf": [{ "$ref": "#/components/schemas/Step" }], "nullable": true, "description": "Now." })
        );
        assert_eq!(
            properties["merged"]["allOf"].as_array().map(Vec::len),
            Some(2),
            "a real merge is left alone"
        );
    }
}
