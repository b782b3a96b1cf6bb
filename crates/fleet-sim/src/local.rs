//! Hand-written effective configs (`--effective-config FILE`, repeatable): what simulated
//! agents report they run before any server sent them a config, as collectors configured by
//! hand report theirs. Agent `i` runs file `i % n`, byte for byte.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use otaas_opamp::names::{CONFIG_CONTENT_TYPE, CONFIG_FILE_NAME};
use otaas_opamp::proto::{AgentConfigFile, AgentConfigMap};

/// Why an `--effective-config` file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--effective-config {path}: {reason}")]
pub struct LocalConfigError {
    pub path: PathBuf,
    pub reason: String,
}

/// One hand-written config as agents report it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LocalConfig {
    /// The file as the effective config map (`collector.yaml`, the file's exact bytes).
    pub(crate) map: AgentConfigMap,
    /// Its `service.pipelines`, reported as component health.
    pub(crate) pipelines: Vec<String>,
}

impl LocalConfig {
    /// A file's content; it must be a YAML map, as every collector config is (anything else
    /// would be reported as a config no collector could have run).
    pub(crate) fn parse(path: &Path, body: Vec<u8>) -> Result<Self, LocalConfigError> {
        let err = |reason: String| LocalConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let doc: serde_norway::Value =
            serde_norway::from_slice(&body).map_err(|e| err(format!("not YAML: {e}")))?;
        let serde_norway::Value::Mapping(doc) = doc else {
            return Err(err("not a YAML map (a collector config is one)".to_owned()));
        };
        let pipelines = doc
            .get("service")
            .and_then(|s| s.get("pipelines"))
            .and_then(|p| p.as_mapping())
            .map(|p| {
                p.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let file = AgentConfigFile {
            body: Bytes::from(body),
            content_type: CONFIG_CONTENT_TYPE.to_owned(),
        };
        Ok(Self {
            map: AgentConfigMap {
                config_map: [(CONFIG_FILE_NAME.to_owned(), file)].into(),
            },
            pipelines,
        })
    }
}

/// Reads every `--effective-config` file, in order.
pub(crate) fn load(paths: &[PathBuf]) -> Result<Vec<LocalConfig>, LocalConfigError> {
    paths
        .iter()
        .map(|path| {
            let body = std::fs::read(path).map_err(|e| LocalConfigError {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            LocalConfig::parse(path, body)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given files that are not YAML maps (a list, a scalar, broken YAML) or not readable, when
    /// they are loaded, then each is refused naming the flag and the file.
    #[test]
    fn files_that_are_not_yaml_maps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body, reason) in [
            ("list.yaml", "- a\n- b\n", "not a YAML map"),
            ("scalar.yaml", "just text\n", "not a YAML map"),
            ("broken.yaml", "receivers: [a\n", "not YAML: "),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let err = load(std::slice::from_ref(&path)).unwrap_err().to_string();
            let prefix = format!("--effective-config {}: {reason}", path.display());
            assert!(err.starts_with(&prefix), "{err}");
        }
        let missing = dir.path().join("missing.yaml");
        let err = load(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("--effective-config {}: ", missing.display())),
            "{err}"
        );
    }

    /// Given a collector config, when it is loaded, then its bytes are kept exactly (comments
    /// and formatting included) and its pipelines are listed.
    #[test]
    fn a_config_is_kept_byte_for_byte() {
        let body = "# by hand\nservice:\n  pipelines:\n    logs: {}\n    traces/x: {}\n";
        let c = LocalConfig::parse(Path::new("a.yaml"), body.as_bytes().to_vec()).unwrap();
        assert_eq!(
            c.map.config_map[CONFIG_FILE_NAME].body.as_ref(),
            body.as_bytes()
        );
        assert_eq!(c.pipelines, ["logs", "traces/x"]);
    }
}
