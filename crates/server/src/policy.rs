//! The operator's config policy: which component types configs may use, which file paths
//! components may read or write, and whether the collector may expand `${...}` references in
//! user values. Checked on every pipeline, endpoint and exporter binding write (and the
//! component dry run); the escaping is applied by the renderer.
//!
//! Paths judged (any component, any depth of its JSON config): values of keys `include`
//! (filelog), `path` (file exporter), `root_path` (hostmetrics), `directory` (file_storage),
//! `filename`, `file_path` and every key ending in `_file` (TLS `ca_file`, `cert_file`,
//! `key_file`, ...), strings or lists of strings; plus the `tls` files of endpoints and
//! destinations. `exclude` lists are not judged: they only narrow what is read.

use std::collections::BTreeSet;

use otaas_api::{EndpointSpec, ExporterBindingSpec, PipelineSpec};
use serde_json::Value;

use otaas_collector::components::type_of;

/// Paths denied by default: credentials, the places that run code at boot or on a schedule,
/// kernel and device files, system binaries and libraries. `/var/log/**` and application
/// directories stay allowed.
pub const DEFAULT_DENY_PATHS: &[&str] = &[
    "/etc/shadow*",
    "/etc/gshadow*",
    "/etc/passwd*",
    "/etc/group*",
    "/etc/sudoers*",
    "/etc/cron*",
    "/etc/anacrontab",
    "/etc/ssh",
    "/etc/security",
    "/etc/pam.d",
    "/etc/ld.so.preload",
    "/etc/profile*",
    "/etc/systemd",
    "/etc/init.d",
    "/root",
    "/home/*/.ssh",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/spool/cron",
    "/run/secrets",
    "/var/run/secrets",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
];

/// A component kind and type, as `--deny-components`/`--allow-components` name them
/// (`exporter/file`, `receiver/filelog`, `processor/transform`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentRule {
    pub kind: &'static str,
    pub ty: String,
}

impl std::str::FromStr for ComponentRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, ty) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected KIND/TYPE such as exporter/file"))?;
        let kind = match kind {
            "receiver" => "receiver",
            "processor" => "processor",
            "exporter" => "exporter",
            _ => {
                return Err(format!(
                    "{s:?}: the kind must be receiver, processor or exporter"
                ));
            }
        };
        if ty.is_empty() || ty.contains('/') {
            return Err(format!("{s:?}: expected KIND/TYPE such as exporter/file"));
        }
        Ok(Self {
            kind,
            ty: ty.to_string(),
        })
    }
}

impl std::fmt::Display for ComponentRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.ty)
    }
}

/// The policy `otaas serve` enforces (see the `--config-*`, `--*-components` and
/// `--*-paths` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPolicy {
    /// Config providers whose `${provider:...}` references reach the collector unescaped
    /// (`env` also covers `${NAME}`). Empty: every `$` of a user value is written as `$$`.
    pub expansion: BTreeSet<String>,
    /// When not empty, only these component types may be used.
    pub allow_components: Vec<ComponentRule>,
    pub deny_components: Vec<ComponentRule>,
    /// Glob patterns (`*`, `**`, `?`) of denied paths; a pattern also denies what is below it.
    pub deny_paths: Vec<String>,
    /// Exceptions to `deny_paths` (same syntax).
    pub allow_paths: Vec<String>,
}

impl Default for ConfigPolicy {
    fn default() -> Self {
        Self {
            expansion: BTreeSet::new(),
            allow_components: Vec::new(),
            deny_components: Vec::new(),
            deny_paths: DEFAULT_DENY_PATHS.iter().map(|s| s.to_string()).collect(),
            allow_paths: Vec::new(),
        }
    }
}

/// The `otaas serve` flags of the policy.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct PolicyFlags {
    /// Config providers whose `${provider:...}` references in user config values reach the
    /// collector for expansion (e.g. `env`, which also covers `${NAME}`). By default none: every
    /// `$` of a user value is written as `$$`, which the collector reads as a literal `$`.
    #[arg(long, env = "OTAAS_CONFIG_ALLOW_EXPANSION", value_delimiter = ',')]
    pub config_allow_expansion: Vec<String>,

    /// Component types configs may not use, as KIND/TYPE (`exporter/file,receiver/filelog`;
    /// KIND is receiver, processor or exporter). Refused with 422 `policy_denied`.
    #[arg(long, env = "OTAAS_DENY_COMPONENTS", value_delimiter = ',')]
    pub deny_components: Vec<ComponentRule>,

    /// When given, the only component types configs may use (same syntax as
    /// `--deny-components`); endpoints' `otlp` receivers are the server's and always allowed.
    #[arg(long, env = "OTAAS_ALLOW_COMPONENTS", value_delimiter = ',')]
    pub allow_components: Vec<ComponentRule>,

    /// Paths components may not read or write: glob patterns (`*`, `**`, `?`), each also
    /// denying everything below it. A user path, or a user glob that could match such a path,
    /// is refused with 422 `policy_denied`. Replaces the default list; `--deny-paths ''` denies
    /// none.
    #[arg(
        long,
        env = "OTAAS_DENY_PATHS",
        value_delimiter = ',',
        default_values_t = DEFAULT_DENY_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    )]
    pub deny_paths: Vec<String>,

    /// Exceptions to `--deny-paths` (same syntax): a user path or glob within one of these
    /// patterns is allowed.
    #[arg(long, env = "OTAAS_ALLOW_PATHS", value_delimiter = ',')]
    pub allow_paths: Vec<String>,
}

impl Default for PolicyFlags {
    fn default() -> Self {
        Self {
            config_allow_expansion: Vec::new(),
            deny_components: Vec::new(),
            allow_components: Vec::new(),
            deny_paths: DEFAULT_DENY_PATHS.iter().map(|s| s.to_string()).collect(),
            allow_paths: Vec::new(),
        }
    }
}

impl PolicyFlags {
    pub fn policy(&self) -> ConfigPolicy {
        let non_empty = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        ConfigPolicy {
            expansion: non_empty(&self.config_allow_expansion)
                .into_iter()
                .collect(),
            allow_components: self.allow_components.clone(),
            deny_components: self.deny_components.clone(),
            deny_paths: non_empty(&self.deny_paths),
            allow_paths: non_empty(&self.allow_paths),
        }
    }
}

/// A refusal: the rule (as the operator wrote it), the field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (rule {rule})")]
pub struct PolicyError {
    pub field: String,
    pub rule: String,
    pub message: String,
}

type R = Result<(), PolicyError>;

impl ConfigPolicy {
    /// `s` as the collector must see it: every `$` doubled (the collector's escape for a
    /// literal `$`), except references `${provider:...}` to providers the operator allows.
    pub fn escape(&self, s: &str) -> String {
        if !s.contains('$') {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len() + 8);
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(len) = self.allowed_reference(tail) {
                out.push_str(&tail[..len]);
                rest = &tail[len..];
            } else {
                out.push_str("$$");
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The length of an allowed `${...}` reference at the start of `s`.
    fn allowed_reference(&self, s: &str) -> Option<usize> {
        if self.expansion.is_empty() {
            return None;
        }
        let body = s.strip_prefix("${")?;
        let end = body.find('}')?;
        let inner = &body[..end];
        if inner.contains(['$', '{']) {
            return None;
        }
        let provider = match inner.split_once(':') {
            Some((p, _)) => p,
            None => "env",
        };
        self.expansion.contains(provider).then_some(end + 3)
    }

    fn component(&self, field: &str, kind: &'static str, id: &str) -> R {
        let ty = type_of(id);
        let rule = ComponentRule {
            kind,
            ty: ty.to_string(),
        };
        if self.deny_components.contains(&rule) {
            return Err(PolicyError {
                field: field.to_string(),
                rule: format!("--deny-components {rule}"),
                message: format!("the server's policy does not allow the {kind} type {ty:?}"),
            });
        }
        if !self.allow_components.is_empty() && !self.allow_components.contains(&rule) {
            let allowed: Vec<String> = self
                .allow_components
                .iter()
                .map(|r| r.to_string())
                .collect();
            return Err(PolicyError {
                field: field.to_string(),
                rule: format!("--allow-components {}", allowed.join(",")),
                message: format!(
                    "the server's policy allows only the listed component types, not the {kind} type {ty:?}"
                ),
            });
        }
        Ok(())
    }

    /// Judges one path a component would read or write.
    pub fn path(&self, field: &str, p: &str) -> R {
        if p.split(['/', '\\']).any(|c| c == "..") {
            return Err(PolicyError {
                field: field.to_string(),
                rule: "no `..` in paths".into(),
                message: format!("{field}: paths may not climb with `..`, got {p:?}"),
            });
        }
        if p.len() > MAX_PATH_BYTES {
            return Err(PolicyError {
                field: field.to_string(),
                rule: format!("paths of at most {MAX_PATH_BYTES} bytes"),
                message: format!("{field}: the path is longer than {MAX_PATH_BYTES} bytes"),
            });
        }
        let p = normalise(p);
        if self.allow_paths.iter().any(|a| covers(a, &p)) {
            return Ok(());
        }
        if let Some(d) = self.deny_paths.iter().find(|d| reaches(&p, d)) {
            return Err(PolicyError {
                field: field.to_string(),
                rule: format!("--deny-paths {d}"),
                message: format!(
                    "{field}: {p:?} is, or may match, a path the server's policy denies \
                     (an operator can allow it with --allow-paths)"
                ),
            });
        }
        Ok(())
    }

    /// Paths and component types in a JSON config, `field` being where it stands.
    fn config(&self, field: &str, v: &Value) -> R {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let f = format!("{field}.{k}");
                    if is_path_key(k) {
                        match x {
                            Value::String(s) => self.path(&f, s)?,
                            Value::Array(items) => {
                                for (i, item) in items.iter().enumerate() {
                                    if let Value::String(s) = item {
                                        self.path(&format!("{f}[{i}]"), s)?;
                                    }
                                }
                            }
                            _ => self.config(&f, x)?,
                        }
                    } else {
                        self.config(&f, x)?;
                    }
                }
                Ok(())
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| self.config(&format!("{field}[{i}]"), x)),
            _ => Ok(()),
        }
    }

    pub fn pipeline(&self, p: &PipelineSpec) -> R {
        for (id, cfg) in &p.receivers {
            let f = format!("receivers.{id}");
            self.component(&f, "receiver", id)?;
            self.config(&f, cfg)?;
        }
        for (i, proc_) in p.processors.iter().enumerate() {
            self.component(&format!("processors[{i}].id"), "processor", &proc_.id)?;
            self.config(&format!("processors[{i}].config"), &proc_.config)?;
        }
        Ok(())
    }

    pub fn binding(&self, b: &ExporterBindingSpec) -> R {
        for (i, d) in b.destinations.iter().enumerate() {
            self.component(&format!("destinations[{i}].type"), "exporter", &d.kind)?;
            if let Some(tls) = &d.tls {
                for (k, v) in [
                    ("ca_file", &tls.ca_file),
                    ("cert_file", &tls.cert_file),
                    ("key_file", &tls.key_file),
                ] {
                    if let Some(v) = v {
                        self.path(&format!("destinations[{i}].tls.{k}"), v)?;
                    }
                }
            }
            self.config(&format!("destinations[{i}].config"), &d.config)?;
        }
        Ok(())
    }

    pub fn endpoint(&self, e: &EndpointSpec) -> R {
        if let Some(tls) = &e.tls {
            self.path("tls.cert_file", &tls.cert_file)?;
            self.path("tls.key_file", &tls.key_file)?;
            if let Some(ca) = &tls.client_ca_file {
                self.path("tls.client_ca_file", ca)?;
            }
        }
        Ok(())
    }
}

fn is_path_key(k: &str) -> bool {
    matches!(
        k,
        "include" | "path" | "root_path" | "directory" | "filename" | "file_path"
    ) || k.ends_with("_file")
}

/// Collapses repeated `/` and `/./`.
fn normalise(p: &str) -> String {
    let abs = p.starts_with('/');
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let joined = parts.join("/");
    if abs { format!("/{joined}") } else { joined }
}

/// Longest path judged; longer ones are refused (the glob intersection is quadratic).
const MAX_PATH_BYTES: usize = 1024;

/// Does the allow pattern `a` cover the user path or pattern `p` (text `p` or a directory of
/// it matches `a`; a user pattern's glob characters are taken literally, so only a pattern as
/// narrow as `a` passes)?
fn covers(a: &str, p: &str) -> bool {
    let mut cur = Some(p);
    while let Some(c) = cur {
        if intersects(&tokens(a), &literal_tokens(c)) {
            return true;
        }
        cur = match c.rfind('/') {
            Some(0) if c.len() > 1 => Some("/"),
            Some(i) if i > 0 => Some(&c[..i]),
            _ => None,
        };
    }
    false
}

/// May the user path or pattern `p` name something the deny pattern `d` denies (`d` itself
/// or anything below it)?
fn reaches(p: &str, d: &str) -> bool {
    let user = tokens(p);
    intersects(&user, &tokens(d)) || intersects(&user, &tokens(&format!("{d}/**")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    /// One character other than `/` (`?`, `[...]`, `{...}`: wider than the real thing, which
    /// errs towards denying).
    One,
    /// `*`: any text without `/`.
    Star,
    /// `**`: any text.
    DStar,
}

fn tokens(p: &str) -> Vec<Tok> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' if b.get(i + 1) == Some(&b'*') => {
                out.push(Tok::DStar);
                i += 2;
            }
            b'*' => {
                out.push(Tok::Star);
                i += 1;
            }
            b'?' => {
                out.push(Tok::One);
                i += 1;
            }
            open @ (b'[' | b'{') => {
                let close = if open == b'[' { b']' } else { b'}' };
                match b[i..].iter().position(|c| *c == close) {
                    Some(end) => {
                        out.push(Tok::One);
                        i += end + 1;
                    }
                    None => {
                        out.push(Tok::Lit(open));
                        i += 1;
                    }
                }
            }
            c => {
                out.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    out
}

fn literal_tokens(p: &str) -> Vec<Tok> {
    p.bytes().map(Tok::Lit).collect()
}

/// Is there a path both patterns match? Reachability over (position in `a`, position in `b`):
/// a star may match nothing (skip it) or one more character (stay); both sides consume the
/// same character.
fn intersects(a: &[Tok], b: &[Tok]) -> bool {
    let (n, m) = (a.len(), b.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut todo = vec![(0usize, 0usize)];
    let consumes = |t: Tok| -> (Option<u8>, bool, bool) {
        // (the one literal it takes, takes '/', stays)
        match t {
            Tok::Lit(c) => (Some(c), c == b'/', false),
            Tok::One => (None, false, false),
            Tok::Star => (None, false, true),
            Tok::DStar => (None, true, true),
        }
    };
    while let Some((i, j)) = todo.pop() {
        if seen[i * (m + 1) + j] {
            continue;
        }
        seen[i * (m + 1) + j] = true;
        if i == n && j == m {
            return true;
        }
        let mut push = |x: usize, y: usize| {
            if !seen[x * (m + 1) + y] {
                todo.push((x, y));
            }
        };
        if i < n && matches!(a[i], Tok::Star | Tok::DStar) {
            push(i + 1, j);
        }
        if j < m && matches!(b[j], Tok::Star | Tok::DStar) {
            push(i, j + 1);
        }
        if i < n && j < m {
            let (la, sa, stay_a) = consumes(a[i]);
            let (lb, sb, stay_b) = consumes(b[j]);
            let compatible = match (la, lb) {
                (Some(x), Some(y)) => x == y,
                (Some(x), None) => x != b'/' || sb,
                (None, Some(y)) => y != b'/' || sa,
                (None, None) => true,
            };
            if compatible && !(stay_a && stay_b) {
                push(
                    if stay_a { i } else { i + 1 },
                    if stay_b { j } else { j + 1 },
                );
            }
            if compatible && stay_a && stay_b {
                // Both stars taking one character each is a no-op; moving past either is
                // covered by the skips above.
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_dollar_by_default() {
        let p = ConfigPolicy::default();
        assert_eq!(p.escape("${env:HOME}"), "$${env:HOME}");
        assert_eq!(p.escape("${file:/etc/shadow}"), "$${file:/etc/shadow}");
        assert_eq!(p.escape("pa$$word $x"), "pa$$$$word $$x");
        assert_eq!(p.escape("plain"), "plain");
    }

    #[test]
    fn allowed_providers_pass() {
        let p = ConfigPolicy {
            expansion: ["env".to_string()].into(),
            ..Default::default()
        };
        assert_eq!(p.escape("Bearer ${env:TOKEN}"), "Bearer ${env:TOKEN}");
        assert_eq!(p.escape("${TOKEN}"), "${TOKEN}");
        assert_eq!(p.escape("${file:/x} $"), "$${file:/x} $$");
    }

    #[test]
    fn default_paths() {
        let p = ConfigPolicy::default();
        for bad in [
            "/etc/shadow",
            "/etc//shadow",
            "/etc/./shadow",
            "/etc/cron.d/evil",
            "/etc/*",
            "/**",
            "/e*/shadow",
            "/root/.bash_history",
            "/proc/1/environ",
            "/proc/*/environ",
            "/var/log/../../etc/shadow",
            "/home/alice/.ssh/authorized_keys",
        ] {
            assert!(p.path("f", bad).is_err(), "{bad}");
        }
        for ok in [
            "/var/log/syslog",
            "/var/log/**/*.log",
            "/var/log/pods/*/*/*.log",
            "/tmp/out.json",
            "/srv/app/logs/*.log",
            "/",
            "logs/app.log",
        ] {
            assert!(p.path("f", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn allow_paths_carve_out() {
        let p = ConfigPolicy {
            allow_paths: vec!["/etc/myapp/**".into()],
            ..Default::default()
        };
        assert!(p.path("f", "/etc/myapp/x.log").is_ok());
        assert!(p.path("f", "/etc/*.log").is_err());
    }

    #[test]
    fn component_rules() {
        let p = ConfigPolicy {
            deny_components: vec!["exporter/file".parse().unwrap()],
            ..Default::default()
        };
        let e = p
            .component("destinations[0].type", "exporter", "file")
            .unwrap_err();
        assert_eq!(e.rule, "--deny-components exporter/file");
        assert!(p.component("f", "receiver", "file").is_ok());
        let p = ConfigPolicy {
            allow_components: vec!["receiver/otlp".parse().unwrap()],
            ..Default::default()
        };
        assert!(p.component("f", "receiver", "otlp/x").is_ok());
        assert!(p.component("f", "receiver", "filelog").is_err());
        assert!("thing/x".parse::<ComponentRule>().is_err());
    }
}
