//! `cargo run -p audiomill-client-codegen`: rewrites `client/src/generated.rs` from
//! `openapi/openapi.json` (`make openapi` runs it after writing the document).

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let document = std::fs::read_to_string(root.join("openapi/openapi.json"))
        .expect("openapi/openapi.json is readable");
    std::fs::write(
        root.join("client/src/generated.rs"),
        audiomill_client_codegen::generate(&document),
    )
    .expect("client/src/generated.rs is writable");
}
