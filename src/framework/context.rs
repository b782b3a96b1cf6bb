//! What every resource call receives: the configured provider settings and the cancellation
//! token that `StopProvider` fires.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::diag::Diagnostic;

/// A secret string (API token). `Debug` and `Display` never show it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for building an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The provider block, resolved: configuration first, then `OTAAS_ENDPOINT` / `OTAAS_TOKEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Base URL of `otaas serve`, e.g. `https://otaas.internal:8080` (no `/api/v1`).
    pub endpoint: String,
    pub token: Option<Secret>,
    /// PEM bundle of extra CA certificates to trust for `endpoint`.
    pub ca_cert_pem: Option<String>,
    /// The provider block's default for resources' `wait_for_rollout` (unset: wait).
    pub wait_for_rollout: Option<bool>,
    /// The provider block's default for resources' `rollout_timeout` (unset: 10 minutes).
    pub rollout_timeout: Option<std::time::Duration>,
}

/// Per-call context handed to resources, data sources and list resources.
///
/// `cancel` is a child of the token `StopProvider` cancels: long waits (rollouts) should
/// `select!` on `cancel.cancelled()` and return a diagnostic when it fires.
#[derive(Clone, Debug)]
pub struct Context {
    config: Option<Arc<ProviderConfig>>,
    cancel: CancellationToken,
}

impl Context {
    pub fn new(config: Option<Arc<ProviderConfig>>, cancel: CancellationToken) -> Self {
        Context { config, cancel }
    }
    /// The configured provider, or the diagnostic to return when ConfigureProvider has not run.
    pub fn provider_config(&self) -> Result<&ProviderConfig, Diagnostic> {
        self.config.as_deref().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "ConfigureProvider has not been called on this provider process; this is a bug in \
                 Terraform or in the provider.",
            )
        })
    }
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
