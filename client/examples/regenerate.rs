//! `cargo run -p audiomill-client --example regenerate`: rewrites `client/src/generated.rs`
//! from `openapi/openapi.json` (`make openapi` runs it after writing the document).

#[path = "../codegen/mod.rs"]
mod codegen;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let document = std::fs::read_to_string(root.join("../openapi/openapi.json"))
        .expect("openapi/openapi.json is readable");
    std::fs::write(root.join("src/generated.rs"), codegen::generate(&document))
        .expect("client/src/generated.rs is writable");
}
