//! The `api_bodies` and `render_inputs` fuzz targets' seed corpora (`fuzz/seeds/`) as regular
//! tests: every seed gives its expected outcome without a panic.

#[path = "../../../fuzz/checks/api_bodies.rs"]
mod api_bodies;
#[path = "../../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/checks/render_inputs.rs"]
mod render_inputs;

fn seeds(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

#[test]
fn api_bodies_seed_corpus() {
    let n = corpus::replay(&seeds("api_bodies"), api_bodies::check);
    assert!(n >= 15, "only {n} seeds");
}

#[test]
fn render_inputs_seed_corpus() {
    let n = corpus::replay(&seeds("render_inputs"), render_inputs::check);
    assert!(n >= 6, "only {n} seeds");
}
