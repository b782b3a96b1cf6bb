//! The `Action` trait (tfplugin6 actions, Terraform 1.14+): an operation a configuration
//! declares in an `action` block and Terraform runs on `terraform apply -invoke=...` or from a
//! resource's `action_trigger`. Actions change no state; they report progress while they run
//! and end with diagnostics.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::context::Context;
use super::diag::Diagnostics;
use super::schema::Schema;
use super::value::Value;

/// Where a running action sends progress messages (Terraform prints each as it arrives).
#[derive(Clone, Debug)]
pub struct Progress {
    tx: mpsc::UnboundedSender<String>,
}

impl Progress {
    /// A sink and the receiver its messages arrive on, in order.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Progress { tx }, rx)
    }

    /// Reports one message. A message nobody reads any more (Terraform went away) is dropped:
    /// the action still finishes what it started.
    pub fn report(&self, message: impl Into<String>) {
        let _ = self.tx.send(message.into());
    }
}

#[async_trait]
pub trait Action: Send + Sync + 'static {
    /// Full type name, e.g. `otaas_rollout_pause`.
    fn type_name(&self) -> &'static str;
    /// Schema of the action block's `config {}`.
    fn schema(&self) -> Schema;
    /// Config-only checks; values may be unknown here.
    async fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Plan-time checks against the API, before Terraform asks for approval; values may be
    /// unknown (they are known again at invoke).
    async fn plan(&self, _ctx: &Context, _config: &Value, _diags: &mut Diagnostics) {}
    /// Runs the action with a wholly known `config`; errors in `diags` fail the apply.
    async fn invoke(
        &self,
        ctx: &Context,
        config: &Value,
        progress: &Progress,
        diags: &mut Diagnostics,
    );
}
