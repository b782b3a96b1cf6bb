//! REST types, the error body and a typed client for the otaas control plane API (`/api/v1`).
//!
//! Map of the crate:
//! - [`ids`]: newtype ids (`PipelineId`, `EndpointId`, ...), UUIDs on the wire.
//! - [`types`]: request bodies (`*Spec`, strict: unknown fields are rejected) and the objects the
//!   server returns (lenient, so older clients keep working when the server adds fields).
//! - [`error`]: the error body `{"error":{"code","message","field"}}` and its codes.
//! - [`agents`]: agents as `GET /api/v1/agents` shows them (read-only, known from OpAMP).
//! - [`status`]: a group's rollout status (`/agent-groups/{id}/status`).
//! - [`discovery`]: pipelines collectors run (`/discovered-pipelines`) and their adoption.
//! - [`insights`]: fleet insights (`/insights`): load, anomalies, security events.
//! - [`audit`]: the audit trail (`/audit`): writes and refused token uses.
//! - [`client`]: a typed async client (reqwest + rustls) used by the Terraform provider and tests.

pub mod agents;
pub mod audit;
pub mod client;
pub mod components;
pub mod discovery;
pub mod error;
pub mod ids;
pub mod insights;
pub mod redact;
mod snapshot;
pub mod status;
pub mod types;

pub use agents::{
    Agent, AgentQuery, AgentStatus, AgentTransport, ComponentHealth, HealthFilter,
    RemoteConfigState,
};
pub use audit::{AuditEntry, AuditInterface, AuditQuery, AuditResult};
pub use client::{Client, ClientConfig, ClientError};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, MissingComponent, UnsupportedSignal};
pub use ids::{AgentGroupId, AuditId, EndpointId, ExporterBindingId, PipelineId, TokenId};
pub use status::{AgentFailure, GroupStatus, RolloutState, RolloutStepStatus};
pub use types::*;
