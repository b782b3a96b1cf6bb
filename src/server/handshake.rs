//! go-plugin's process contract: the magic cookie, protocol version negotiation, the unix socket
//! location, and the one handshake line printed on stdout.

use std::path::{Path, PathBuf};

use base64::Engine;

/// Environment variable and value Terraform (and OpenTofu) set when they start a provider.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version (first handshake field).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The tfplugin major version this provider speaks.
pub const APP_PROTOCOL_VERSION: u32 = 6;

/// Shown (on stderr) when someone runs the binary by hand.
pub const NOT_A_PLUGIN_MESSAGE: &str = "This binary is a Terraform/OpenTofu provider plugin (otaas).\n\
It is not meant to be executed directly: terraform or tofu start it when a\n\
configuration uses the otaas provider. To debug it, run it with --debug.";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    #[error("not started by Terraform: {MAGIC_COOKIE_KEY} is missing or wrong")]
    NotAPlugin,
    #[error(
        "the client accepts plugin protocol versions {0:?}, this provider speaks only version 6"
    )]
    NoCommonVersion(String),
}

/// Checks the magic cookie and that the client accepts protocol 6.
pub fn check_env(env: impl Fn(&str) -> Option<String>) -> Result<(), HandshakeError> {
    if env(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(HandshakeError::NotAPlugin);
    }
    // Terraform sends "5,6" or "6,5" (map order); older clients may send nothing, meaning their
    // single default version, which for tfplugin6 clients is 6.
    match env("PLUGIN_PROTOCOL_VERSIONS") {
        None => Ok(()),
        Some(list) if list.trim().is_empty() => Ok(()),
        Some(list) => {
            if list
                .split(',')
                .any(|v| v.trim() == APP_PROTOCOL_VERSION.to_string())
            {
                Ok(())
            } else {
                Err(HandshakeError::NoCommonVersion(list))
            }
        }
    }
}

/// A fresh socket path: `$PLUGIN_UNIX_SOCKET_DIR` or the temp dir, `plugin<random>` like go-plugin.
pub fn socket_path(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    let dir = env("PLUGIN_UNIX_SOCKET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    dir.join(format!("plugin{}{nanos:09}", std::process::id()))
}

/// `1|6|unix|PATH|grpc|CERT`: CERT is the server certificate DER in standard base64 *without*
/// padding (go-plugin decodes with RawStdEncoding), empty when TLS is off.
pub fn handshake_line(socket: &Path, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|d| base64::engine::general_purpose::STANDARD_NO_PAD.encode(d))
        .unwrap_or_default();
    format!(
        "{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc|{cert}",
        socket.display()
    )
}

/// The `TF_REATTACH_PROVIDERS` value for debug mode. `Test: true` makes go-plugin keep protocol 6
/// (otherwise Terraform assumes 5) and not kill the process when done.
pub fn reattach_json(provider_address: &str, socket: &Path) -> String {
    serde_json::json!({
        provider_address: {
            "Protocol": "grpc",
            "ProtocolVersion": APP_PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": { "Network": "unix", "String": socket.display().to_string() }
        }
    })
    .to_string()
}
