//! `schema.json` is the committed snapshot of the provider's schema, so every schema change shows
//! up as a reviewed diff. Run with `UPDATE_DOCS=1` to rewrite it.

use std::path::PathBuf;

#[test]
fn schema_json_matches_the_provider_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.json");
    let snapshot =
        terraform_provider_otaas::docs::schema_snapshot(&terraform_provider_otaas::registry());
    let text = serde_json::to_string_pretty(&snapshot).unwrap() + "\n";
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, text,
        "schema.json is out of date; run UPDATE_DOCS=1 cargo test --test schema_snapshot"
    );
}
