//! The committed generated client matches the committed document.

#[test]
fn the_committed_client_matches_the_document() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let document = std::fs::read_to_string(root.join("../openapi/openapi.json")).unwrap();
    let committed = std::fs::read_to_string(root.join("src/generated.rs")).unwrap();
    assert!(
        committed == audiomill_client_codegen::generate(&document),
        "client/src/generated.rs is stale: run `make openapi`"
    );
}
