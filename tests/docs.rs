//! The registry docs under `docs/` must equal what `docs::render` generates from the schemas and
//! `examples/`. Run with `UPDATE_DOCS=1` to rewrite them after a schema or example change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn existing_pages(docs: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![docs.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.insert(p.strip_prefix(docs).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[test]
fn docs_directory_matches_generated_pages() {
    let docs = root().join("docs");
    let pages = terraform_provider_otaas::docs::render(
        &terraform_provider_otaas::registry(),
        &root().join("examples"),
    )
    .expect("rendering docs");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        for stale in existing_pages(&docs) {
            if !pages.contains_key(&stale) {
                std::fs::remove_file(docs.join(&stale)).unwrap();
            }
        }
        for (rel, text) in &pages {
            let path = docs.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        return;
    }
    let generated: BTreeSet<PathBuf> = pages.keys().cloned().collect();
    assert_eq!(
        existing_pages(&docs),
        generated,
        "docs/ pages differ from the generated set; run UPDATE_DOCS=1 cargo test --test docs"
    );
    for (rel, text) in &pages {
        let on_disk = std::fs::read_to_string(docs.join(rel)).unwrap();
        assert_eq!(
            &on_disk,
            text,
            "docs/{} is out of date; run UPDATE_DOCS=1 cargo test --test docs",
            rel.display()
        );
    }
}

#[test]
fn provider_page_documents_every_provider_attribute_and_the_example() {
    let pages = terraform_provider_otaas::docs::render(
        &terraform_provider_otaas::registry(),
        &root().join("examples"),
    )
    .expect("rendering docs");
    let index = &pages[Path::new("index.md")];
    assert!(
        index.contains("- `endpoint` (String) Base URL of the otaas REST API"),
        "{index}"
    );
    assert!(
        index.contains("- `token` (String, Sensitive) API token"),
        "{index}"
    );
    assert!(
        index.contains("- `ca_cert_pem` (String) PEM-encoded"),
        "{index}"
    );
    let example = std::fs::read_to_string(root().join("examples/provider/provider.tf")).unwrap();
    assert!(
        index.contains(example.trim_end()),
        "index.md lacks examples/provider/provider.tf"
    );
}
