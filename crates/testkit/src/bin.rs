//! Where the tests find the `otaas` binary: built by cargo into the test's own target dir and
//! profile, once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root (this crate lives in `crates/testkit`).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `otaas` binary of the `otaas` crate. Cargo builds only a package's own binaries for its
/// integration tests, and `otaas` is in another package, so this runs `cargo build` once per
/// test process: a quick no-op when it is fresh, and never a stale binary. `$OTAAS_BIN` skips
/// the build.
///
/// The build selects the whole workspace with its tests, as `cargo test --workspace` does,
/// because features are unified over what a cargo command selects: `cargo build -p otaas`
/// alone resolves other features for shared dependencies, recompiles them and relinks `otaas`
/// on every run. This way, under scripts/test.sh, the build finds everything compiled.
pub fn otaas() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("OTAAS_BIN") {
            return PathBuf::from(path);
        }
        // A test executable is target/<profile>/deps/NAME-HASH.
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = profile_dir
            .file_name()
            .and_then(|name| name.to_str())
            .expect("profile dir name");
        let profile = if profile == "debug" { "dev" } else { profile };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Cargo sets package variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) for a test
        // process. Build scripts such as ring's rerun when those change in cargo's own
        // environment, so passing them on would recompile dependencies here and again in the
        // next plain `cargo` run. The nested cargo gets the environment the outer one had.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_")
                || key.starts_with("CARGO_MANIFEST_")
                || matches!(
                    key.as_ref(),
                    "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                )
            {
                build.env_remove(key.as_ref());
            }
        }
        let out = build
            .current_dir(repo_root())
            .args(["build", "--locked", "--workspace", "--bins", "--tests"])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .output()
            .expect("running cargo build");
        assert!(
            out.status.success(),
            "cargo build of the otaas binary failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join("otaas")
    })
}
