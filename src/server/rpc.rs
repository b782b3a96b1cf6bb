//! The tfplugin6 `Provider` service: decodes each request against the right schema, dispatches to
//! the registry's resources, applies the framework's planning rules, and encodes the answer.
//! Provider errors always travel as diagnostics inside OK responses, never as gRPC statuses.

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert::{
    decode_dv, diag_to_proto, diags_to_proto, encode_dv, identity_schema_to_proto, path_to_proto,
    schema_to_proto,
};
use crate::framework::{
    Action, AttributePath, Context, Diagnostic, Diagnostics, ImportRequest, ListEvent, ListRequest,
    PlanChange, Progress, ProviderConfig, Registry, Resource, Value, plan,
};
use crate::proto::tfplugin6 as tf;
use crate::proto::tfplugin6::provider_server::Provider;
use crate::provider;

type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The provider service. Cheap to clone; all clones share configuration and the stop token.
#[derive(Clone)]
pub struct ProviderService {
    registry: Arc<Registry>,
    config: Arc<RwLock<Option<Arc<ProviderConfig>>>>,
    /// Cancelled by `StopProvider`; every resource call gets a child of it. Never reset: after
    /// Ctrl-C Terraform does not start new work on this process.
    stop: CancellationToken,
    env: Env,
}

impl ProviderService {
    pub fn new(registry: Registry) -> Self {
        Self::with_env(registry, Arc::new(|k: &str| std::env::var(k).ok()))
    }
    /// Like `new`, with a custom environment lookup (tests).
    pub fn with_env(registry: Registry, env: Env) -> Self {
        ProviderService {
            registry: Arc::new(registry),
            config: Arc::new(RwLock::new(None)),
            stop: CancellationToken::new(),
            env,
        }
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// The token `StopProvider` cancels.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
    fn ctx(&self) -> Context {
        let cfg = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Context::new(cfg, self.stop.child_token())
    }
    fn resource(&self, name: &str) -> Result<&Arc<dyn Resource>, Diagnostic> {
        self.registry
            .resources
            .get(name)
            .ok_or_else(|| unknown_type("resource", name))
    }
    fn action(&self, name: &str) -> Result<&Arc<dyn Action>, Diagnostic> {
        self.registry
            .actions
            .get(name)
            .ok_or_else(|| unknown_type("action", name))
    }
    /// An action by type, with a config of that action decoded against its schema (what every
    /// action RPC starts with).
    fn action_with_config(
        &self,
        name: &str,
        config: Option<&tf::DynamicValue>,
    ) -> Result<(Arc<dyn Action>, Value), Diagnostic> {
        let action = self.action(name)?.clone();
        let config = decode_dv(
            config,
            &action.schema().implied_type(),
            "action configuration",
        )?;
        Ok((action, config))
    }
    fn identity_dv(
        &self,
        res: &dyn Resource,
        state: &Value,
        fallback: Option<&tf::ResourceIdentityData>,
    ) -> Result<Option<tf::ResourceIdentityData>, Diagnostic> {
        let Some(schema) = res.identity_schema() else {
            return Ok(None);
        };
        match res.identity(state) {
            Some(id) => Ok(Some(tf::ResourceIdentityData {
                identity_data: Some(encode_dv(&id, &schema.implied_type(), "identity")?),
            })),
            None => Ok(fallback.cloned()),
        }
    }
}

fn unknown_type(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!(
            "This provider has no {kind} type {name:?}; check the type name and the provider version."
        ),
    )
}

fn one(d: Diagnostic) -> Vec<tf::Diagnostic> {
    vec![diag_to_proto(&d)]
}

/// Short-circuits an RPC with a single error diagnostic in an otherwise default response.
macro_rules! try_diag {
    ($e:expr, $resp:ty) => {
        match $e {
            Ok(v) => v,
            Err(d) => return Ok(Response::new(<$resp>::with_diags(one(d)))),
        }
    };
}

/// Responses that can carry only diagnostics.
trait WithDiags: Default {
    fn with_diags(d: Vec<tf::Diagnostic>) -> Self;
}
macro_rules! with_diags {
    ($($t:ty => $f:ident),* $(,)?) => {$(
        #[allow(clippy::needless_update)]
        impl WithDiags for $t {
            fn with_diags(d: Vec<tf::Diagnostic>) -> Self { Self { $f: d, ..Default::default() } }
        }
    )*};
}
with_diags!(
    tf::validate_provider_config::Response => diagnostics,
    tf::validate_resource_config::Response => diagnostics,
    tf::validate_data_resource_config::Response => diagnostics,
    tf::validate_list_resource_config::Response => diagnostics,
    tf::configure_provider::Response => diagnostics,
    tf::upgrade_resource_state::Response => diagnostics,
    tf::upgrade_resource_identity::Response => diagnostics,
    tf::read_resource::Response => diagnostics,
    tf::plan_resource_change::Response => diagnostics,
    tf::apply_resource_change::Response => diagnostics,
    tf::import_resource_state::Response => diagnostics,
    tf::read_data_source::Response => diagnostics,
    tf::validate_action_config::Response => diagnostics,
    tf::plan_action::Response => diagnostics,
);

fn check_known(v: &Value, what: &str, diags: &mut Diagnostics) -> bool {
    if v.is_wholly_known() {
        return true;
    }
    diags.error(
        format!("Provider returned an unknown value in {what}"),
        "Every value must be known after this operation. This is a bug in the provider.",
    );
    false
}

#[tonic::async_trait]
impl Provider for ProviderService {
    async fn get_metadata(
        &self,
        _r: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        let reg = &self.registry;
        Ok(Response::new(tf::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: reg
                .resources
                .keys()
                .map(|k| tf::get_metadata::ResourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            data_sources: reg
                .data_sources
                .keys()
                .map(|k| tf::get_metadata::DataSourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            list_resources: reg
                .list_resources
                .keys()
                .map(|k| tf::get_metadata::ListResourceMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            // Engines before 1.14 do not know this field and skip it: actions are simply
            // absent for them.
            actions: reg
                .actions
                .keys()
                .map(|k| tf::get_metadata::ActionMetadata {
                    type_name: k.clone(),
                })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _r: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        let reg = &self.registry;
        Ok(Response::new(tf::get_provider_schema::Response {
            provider: Some(schema_to_proto(&reg.provider_schema)),
            resource_schemas: reg
                .resources
                .iter()
                .map(|(k, r)| (k.clone(), schema_to_proto(&r.schema())))
                .collect(),
            data_source_schemas: reg
                .data_sources
                .iter()
                .map(|(k, d)| (k.clone(), schema_to_proto(&d.schema())))
                .collect(),
            list_resource_schemas: reg
                .list_resources
                .iter()
                .map(|(k, l)| (k.clone(), schema_to_proto(&l.config_schema())))
                .collect(),
            action_schemas: reg
                .actions
                .iter()
                .map(|(k, a)| {
                    (
                        k.clone(),
                        tf::ActionSchema {
                            schema: Some(schema_to_proto(&a.schema())),
                        },
                    )
                })
                .collect(),
            server_capabilities: Some(capabilities()),
            ..Default::default()
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _r: Request<tf::get_resource_identity_schemas::Request>,
    ) -> Result<Response<tf::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(tf::get_resource_identity_schemas::Response {
            identity_schemas: self
                .registry
                .resources
                .iter()
                .filter_map(|(k, r)| {
                    r.identity_schema()
                        .map(|s| (k.clone(), identity_schema_to_proto(&s)))
                })
                .collect(),
            diagnostics: Vec::new(),
        }))
    }

    async fn get_functions(
        &self,
        _r: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response::default()))
    }

    async fn validate_provider_config(
        &self,
        r: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        type R = tf::validate_provider_config::Response;
        let ty = self.registry.provider_schema.implied_type();
        let config = try_diag!(
            decode_dv(r.get_ref().config.as_ref(), &ty, "provider configuration"),
            R
        );
        let mut diags = Diagnostics::new();
        provider::validate(&config, &mut diags);
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn configure_provider(
        &self,
        r: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        type R = tf::configure_provider::Response;
        let ty = self.registry.provider_schema.implied_type();
        let config = try_diag!(
            decode_dv(r.get_ref().config.as_ref(), &ty, "provider configuration"),
            R
        );
        let mut diags = Diagnostics::new();
        let env = self.env.clone();
        if let Some(cfg) = provider::configure(&config, |k| env(k), &mut diags) {
            provider::check_trust(&cfg, &mut diags).await;
            if !diags.has_errors() {
                tracing::debug!(endpoint = %cfg.endpoint, token_set = cfg.token.is_some(), "Provider configured");
                *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(cfg));
            }
        }
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn validate_resource_config(
        &self,
        r: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        type R = tf::validate_resource_config::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let config = try_diag!(
            decode_dv(
                req.config.as_ref(),
                &res.schema().implied_type(),
                "configuration"
            ),
            R
        );
        let mut diags = Diagnostics::new();
        // An engine without write-only support (Terraform before 1.11) would keep the value in
        // state and plan: refuse rather than leak it.
        let write_only_ok = req
            .client_capabilities
            .as_ref()
            .is_some_and(|c| c.write_only_attributes_allowed);
        if !write_only_ok {
            let schema = res.schema();
            for path in plan::write_only_set(&schema.attributes, &config, &AttributePath::root()) {
                diags.push(
                    Diagnostic::error(
                        "Write-only attribute not supported",
                        format!(
                            "{path} is write-only: it needs Terraform 1.11 or later, which \
                             keeps it out of state and plan. This Terraform would store it; \
                             use the attribute's non-write-only alternative instead."
                        ),
                    )
                    .at(path),
                );
            }
        }
        res.validate(&config, &mut diags).await;
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn validate_data_resource_config(
        &self,
        r: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        type R = tf::validate_data_resource_config::Response;
        let req = r.into_inner();
        let ds = try_diag!(
            self.registry
                .data_sources
                .get(&req.type_name)
                .ok_or_else(|| unknown_type("data source", &req.type_name)),
            R
        );
        let config = try_diag!(
            decode_dv(
                req.config.as_ref(),
                &ds.schema().implied_type(),
                "configuration"
            ),
            R
        );
        let mut diags = Diagnostics::new();
        ds.validate(&config, &mut diags).await;
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn validate_list_resource_config(
        &self,
        r: Request<tf::validate_list_resource_config::Request>,
    ) -> Result<Response<tf::validate_list_resource_config::Response>, Status> {
        type R = tf::validate_list_resource_config::Response;
        let req = r.into_inner();
        let lr = try_diag!(
            self.registry
                .list_resources
                .get(&req.type_name)
                .ok_or_else(|| unknown_type("list resource", &req.type_name)),
            R
        );
        let config = try_diag!(
            decode_dv(
                req.config.as_ref(),
                &lr.config_schema().implied_type(),
                "list configuration"
            ),
            R
        );
        let mut diags = Diagnostics::new();
        lr.validate(&config, &mut diags).await;
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn upgrade_resource_state(
        &self,
        r: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        type R = tf::upgrade_resource_state::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let schema = res.schema();
        let ty = schema.implied_type();
        let raw = req.raw_state.map(|s| s.json).unwrap_or_default();
        if raw.is_empty() {
            return Ok(Response::new(R::with_diags(one(Diagnostic::error(
                "Unsupported state format",
                "Only JSON state can be upgraded (legacy flatmap state predates this provider).",
            )))));
        }
        let mut diags = Diagnostics::new();
        let state = if req.version == schema.version {
            // Same version: re-read the JSON under the current schema (drops removed attributes).
            try_diag!(
                crate::codec::json::decode(&raw, &ty).map_err(|e| Diagnostic::error(
                    "Invalid stored state",
                    format!("decoding state JSON: {e}")
                )),
                R
            )
        } else if req.version > schema.version {
            return Ok(Response::new(R::with_diags(one(Diagnostic::error(
                "State from a newer provider",
                format!(
                    "The state of this {} was written by schema version {}, newer than this provider's {}. Upgrade the provider.",
                    req.type_name, req.version, schema.version
                ),
            )))));
        } else {
            let json: serde_json::Value = try_diag!(
                serde_json::from_slice(&raw).map_err(|e| Diagnostic::error(
                    "Invalid stored state",
                    format!("decoding state JSON: {e}")
                )),
                R
            );
            match res.upgrade_state(req.version, &json, &mut diags).await {
                Some(v) => v,
                None => return Ok(Response::new(R::with_diags(diags_to_proto(&diags)))),
            }
        };
        check_known(&state, "upgraded state", &mut diags);
        let upgraded = try_diag!(encode_dv(&state, &ty, "upgraded state"), R);
        Ok(Response::new(R {
            upgraded_state: Some(upgraded),
            diagnostics: diags_to_proto(&diags),
        }))
    }

    async fn upgrade_resource_identity(
        &self,
        r: Request<tf::upgrade_resource_identity::Request>,
    ) -> Result<Response<tf::upgrade_resource_identity::Response>, Status> {
        type R = tf::upgrade_resource_identity::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let schema = try_diag!(
            res.identity_schema()
                .ok_or_else(|| unknown_type("resource identity", &req.type_name)),
            R
        );
        if req.version != schema.version {
            return Ok(Response::new(R::with_diags(one(Diagnostic::error(
                "Unsupported identity version",
                format!(
                    "{} has no identity upgrade from version {} to {}",
                    req.type_name, req.version, schema.version
                ),
            )))));
        }
        let raw = req.raw_identity.map(|s| s.json).unwrap_or_default();
        let ty = schema.implied_type();
        let id = try_diag!(
            crate::codec::json::decode(&raw, &ty)
                .map_err(|e| Diagnostic::error("Invalid stored identity", e.to_string())),
            R
        );
        let dv = try_diag!(encode_dv(&id, &ty, "identity"), R);
        Ok(Response::new(R {
            upgraded_identity: Some(tf::ResourceIdentityData {
                identity_data: Some(dv),
            }),
            diagnostics: Vec::new(),
        }))
    }

    async fn read_resource(
        &self,
        r: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        type R = tf::read_resource::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let ty = res.schema().implied_type();
        let state = try_diag!(decode_dv(req.current_state.as_ref(), &ty, "state"), R);
        let mut diags = Diagnostics::new();
        let new_state = null_write_only(
            &res.schema(),
            res.read(&self.ctx(), &state, &mut diags).await,
        );
        if diags.has_errors() {
            // Keep the prior state on errors: Terraform must not forget the object.
            return Ok(Response::new(R {
                new_state: req.current_state,
                private: req.private,
                new_identity: req.current_identity,
                diagnostics: diags_to_proto(&diags),
                ..Default::default()
            }));
        }
        check_known(&new_state, "refreshed state", &mut diags);
        let dv = try_diag!(encode_dv(&new_state, &ty, "state"), R);
        let identity = if new_state.is_null() {
            None
        } else {
            try_diag!(
                self.identity_dv(res.as_ref(), &new_state, req.current_identity.as_ref()),
                R
            )
        };
        Ok(Response::new(R {
            new_state: Some(dv),
            diagnostics: diags_to_proto(&diags),
            // Terraform replaces stored private data with what Read returns: echo it.
            private: req.private,
            deferred: None,
            new_identity: identity,
        }))
    }

    async fn plan_resource_change(
        &self,
        r: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        type R = tf::plan_resource_change::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let schema = res.schema();
        let ty = schema.implied_type();
        let prior = try_diag!(decode_dv(req.prior_state.as_ref(), &ty, "prior state"), R);
        let proposed = try_diag!(
            decode_dv(req.proposed_new_state.as_ref(), &ty, "proposed new state"),
            R
        );
        let config = try_diag!(decode_dv(req.config.as_ref(), &ty, "configuration"), R);

        if proposed.is_null() {
            // Destroy (we declare plan_destroy): plan null and keep private data.
            let planned = try_diag!(encode_dv(&Value::Null, &ty, "planned state"), R);
            return Ok(Response::new(R {
                planned_state: Some(planned),
                planned_private: req.prior_private,
                planned_identity: req.prior_identity,
                ..Default::default()
            }));
        }
        let (planned, requires_replace) = plan::plan(&schema, &prior, &proposed, &config);
        let mut change = PlanChange {
            prior,
            config,
            planned,
            requires_replace,
        };
        let mut diags = Diagnostics::new();
        res.modify_plan(&self.ctx(), &mut change, &mut diags).await;
        // Terraform rejects a plan that holds a write-only value, whoever put it there.
        change.planned = null_write_only(&schema, change.planned);
        let planned_dv = try_diag!(encode_dv(&change.planned, &ty, "planned state"), R);
        let identity = try_diag!(
            self.identity_dv(res.as_ref(), &change.planned, req.prior_identity.as_ref()),
            R
        );
        // A planned identity must be wholly known: Terraform writes it verbatim into the plan's
        // JSON (`show -json`, policy tools), which fails on an unknown value. On create there is
        // no identity yet (the id comes from the server); on update the prior one still holds.
        let identity_unknown = res
            .identity(&change.planned)
            .is_some_and(|v| !v.is_wholly_known());
        let identity = match (identity_unknown, change.is_create()) {
            (true, true) => None,
            (true, false) => req.prior_identity.clone(),
            (false, _) => identity,
        };
        Ok(Response::new(R {
            planned_state: Some(planned_dv),
            requires_replace: change.requires_replace.iter().map(path_to_proto).collect(),
            planned_private: req.prior_private,
            diagnostics: diags_to_proto(&diags),
            legacy_type_system: false,
            deferred: None,
            planned_identity: identity,
        }))
    }

    async fn apply_resource_change(
        &self,
        r: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        type R = tf::apply_resource_change::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let ty = res.schema().implied_type();
        let prior = try_diag!(decode_dv(req.prior_state.as_ref(), &ty, "prior state"), R);
        let planned = try_diag!(
            decode_dv(req.planned_state.as_ref(), &ty, "planned state"),
            R
        );
        let config = try_diag!(decode_dv(req.config.as_ref(), &ty, "configuration"), R);
        let ctx = self.ctx();
        let mut diags = Diagnostics::new();

        if planned.is_null() {
            res.delete(&ctx, &prior, &mut diags).await;
            // On failure the object still exists: hand the prior state back.
            let keep = if diags.has_errors() {
                &prior
            } else {
                &Value::Null
            };
            let dv = try_diag!(encode_dv(keep, &ty, "new state"), R);
            return Ok(Response::new(R {
                new_state: Some(dv),
                private: if diags.has_errors() {
                    req.planned_private
                } else {
                    Vec::new()
                },
                diagnostics: diags_to_proto(&diags),
                ..Default::default()
            }));
        }
        let new_state = if prior.is_null() {
            res.create(&ctx, &planned, &config, &mut diags).await
        } else {
            res.update(&ctx, &prior, &planned, &config, &mut diags)
                .await
        };
        let Some(new_state) = new_state else {
            if !diags.has_errors() {
                diags.error("Provider returned no state", "The operation returned neither a state nor an error. This is a bug in the provider.");
            }
            // Create failed: nothing exists (null). Update failed: keep the prior object.
            let dv = try_diag!(encode_dv(&prior, &ty, "new state"), R);
            return Ok(Response::new(R {
                new_state: Some(dv),
                private: req.planned_private,
                diagnostics: diags_to_proto(&diags),
                new_identity: req.planned_identity.filter(|_| !prior.is_null()),
                ..Default::default()
            }));
        };
        // Write-only values are never stored: Terraform rejects a state that keeps them.
        let new_state = null_write_only(&res.schema(), new_state);
        check_known(&new_state, "the new state", &mut diags);
        for path in plan::inconsistencies(&planned, &new_state) {
            diags.push(
                Diagnostic::error(
                    "Provider produced inconsistent result after apply",
                    format!(
                        "{path} was known in the plan but has a different value after apply. \
                         This is a bug in the {} resource.",
                        req.type_name
                    ),
                )
                .at(path),
            );
        }
        let dv = try_diag!(encode_dv(&new_state, &ty, "new state"), R);
        let identity = try_diag!(self.identity_dv(res.as_ref(), &new_state, None), R);
        Ok(Response::new(R {
            new_state: Some(dv),
            private: req.planned_private,
            diagnostics: diags_to_proto(&diags),
            legacy_type_system: false,
            new_identity: identity,
        }))
    }

    async fn import_resource_state(
        &self,
        r: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        type R = tf::import_resource_state::Response;
        let req = r.into_inner();
        let res = try_diag!(self.resource(&req.type_name), R);
        let ty = res.schema().implied_type();
        let import = match req.identity.as_ref().and_then(|i| i.identity_data.as_ref()) {
            Some(dv) => {
                let schema = try_diag!(
                    res.identity_schema()
                        .ok_or_else(|| unknown_type("resource identity", &req.type_name)),
                    R
                );
                ImportRequest::Identity(try_diag!(
                    decode_dv(Some(dv), &schema.implied_type(), "identity"),
                    R
                ))
            }
            None if req.id.is_empty() => {
                return Ok(Response::new(R::with_diags(one(Diagnostic::error(
                    "Missing import id",
                    "Give the id or the name of the object to import.",
                )))));
            }
            None => ImportRequest::Id(req.id.clone()),
        };
        let mut diags = Diagnostics::new();
        let state = res
            .import(&self.ctx(), import, &mut diags)
            .await
            .map(|s| null_write_only(&res.schema(), s));
        let Some(state) = state.filter(|s| !s.is_null()) else {
            if !diags.has_errors() {
                diags.error(
                    "Cannot import non-existent remote object",
                    format!("No {} matches {:?}.", req.type_name, req.id),
                );
            }
            return Ok(Response::new(R::with_diags(diags_to_proto(&diags))));
        };
        let dv = try_diag!(encode_dv(&state, &ty, "imported state"), R);
        let identity = try_diag!(
            self.identity_dv(res.as_ref(), &state, req.identity.as_ref()),
            R
        );
        Ok(Response::new(R {
            imported_resources: vec![tf::import_resource_state::ImportedResource {
                type_name: req.type_name,
                state: Some(dv),
                private: Vec::new(),
                identity,
            }],
            diagnostics: diags_to_proto(&diags),
            deferred: None,
        }))
    }

    async fn read_data_source(
        &self,
        r: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        type R = tf::read_data_source::Response;
        let req = r.into_inner();
        let ds = try_diag!(
            self.registry
                .data_sources
                .get(&req.type_name)
                .ok_or_else(|| unknown_type("data source", &req.type_name)),
            R
        );
        let ty = ds.schema().implied_type();
        let config = try_diag!(decode_dv(req.config.as_ref(), &ty, "configuration"), R);
        let mut diags = Diagnostics::new();
        let Some(state) = ds
            .read(&self.ctx(), &config, &mut diags)
            .await
            .filter(|s| !s.is_null())
        else {
            if !diags.has_errors() {
                diags.error(
                    "Data source returned nothing",
                    "The read returned neither data nor an error. This is a bug in the provider.",
                );
            }
            return Ok(Response::new(R::with_diags(diags_to_proto(&diags))));
        };
        check_known(&state, "data source result", &mut diags);
        let dv = try_diag!(encode_dv(&state, &ty, "data source result"), R);
        Ok(Response::new(R {
            state: Some(dv),
            diagnostics: diags_to_proto(&diags),
            deferred: None,
        }))
    }

    async fn list_resource(
        &self,
        r: Request<tf::list_resource::Request>,
    ) -> Result<Response<tonic::codegen::BoxStream<tf::list_resource::Event>>, Status> {
        let req = r.into_inner();
        let error_stream = |d: Diagnostic| -> Result<
            Response<tonic::codegen::BoxStream<tf::list_resource::Event>>,
            Status,
        > {
            let ev = tf::list_resource::Event {
                diagnostic: one(d),
                ..Default::default()
            };
            Ok(Response::new(Box::pin(futures::stream::iter([Ok(ev)]))))
        };
        let Some(lr) = self.registry.list_resources.get(&req.type_name).cloned() else {
            return error_stream(unknown_type("list resource", &req.type_name));
        };
        let Some(res) = self.registry.resources.get(&req.type_name).cloned() else {
            return error_stream(unknown_type("resource", &req.type_name));
        };
        let Some(id_schema) = res.identity_schema() else {
            return error_stream(unknown_type("resource identity", &req.type_name));
        };
        let config = match decode_dv(
            req.config.as_ref(),
            &lr.config_schema().implied_type(),
            "list configuration",
        ) {
            Ok(c) => c,
            Err(d) => return error_stream(d),
        };
        let request = ListRequest {
            config,
            include_resource: req.include_resource_object,
            limit: if req.limit > 0 { req.limit } else { 100 },
        };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let include = request.include_resource;
        let id_ty = id_schema.implied_type();
        let res_schema = res.schema();
        let res_ty = res_schema.implied_type();
        let stream = lr
            .list(&self.ctx(), request)
            .await
            .take(limit)
            .map(move |ev| {
                let event = match ev {
                    ListEvent::Diagnostic(d) => tf::list_resource::Event {
                        diagnostic: one(d),
                        ..Default::default()
                    },
                    ListEvent::Item(item) => {
                        let encoded =
                            encode_dv(&item.identity, &id_ty, "identity").and_then(|id| {
                                let obj = match item.resource.filter(|_| include) {
                                    Some(o) => Some(encode_dv(
                                        &null_write_only(&res_schema, o),
                                        &res_ty,
                                        "resource object",
                                    )?),
                                    None => None,
                                };
                                Ok((id, obj))
                            });
                        match encoded {
                            Ok((id, obj)) => tf::list_resource::Event {
                                identity: Some(tf::ResourceIdentityData {
                                    identity_data: Some(id),
                                }),
                                display_name: item.display_name,
                                resource_object: obj,
                                diagnostic: Vec::new(),
                            },
                            Err(d) => tf::list_resource::Event {
                                diagnostic: one(d),
                                ..Default::default()
                            },
                        }
                    }
                };
                Ok(event)
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn validate_action_config(
        &self,
        r: Request<tf::validate_action_config::Request>,
    ) -> Result<Response<tf::validate_action_config::Response>, Status> {
        type R = tf::validate_action_config::Response;
        let req = r.into_inner();
        let (action, config) = try_diag!(
            self.action_with_config(&req.type_name, req.config.as_ref()),
            R
        );
        let mut diags = Diagnostics::new();
        action.validate(&config, &mut diags).await;
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn plan_action(
        &self,
        r: Request<tf::plan_action::Request>,
    ) -> Result<Response<tf::plan_action::Response>, Status> {
        type R = tf::plan_action::Response;
        let req = r.into_inner();
        let (action, config) = try_diag!(
            self.action_with_config(&req.action_type, req.config.as_ref()),
            R
        );
        let mut diags = Diagnostics::new();
        action.plan(&self.ctx(), &config, &mut diags).await;
        Ok(Response::new(R::with_diags(diags_to_proto(&diags))))
    }

    async fn invoke_action(
        &self,
        r: Request<tf::invoke_action::Request>,
    ) -> Result<Response<tonic::codegen::BoxStream<tf::invoke_action::Event>>, Status> {
        use tf::invoke_action::{Event, event};
        let completed = |diags: Vec<tf::Diagnostic>| Event {
            r#type: Some(event::Type::Completed(event::Completed {
                diagnostics: diags,
            })),
        };
        let req = r.into_inner();
        let (action, config) = match self.action_with_config(&req.action_type, req.config.as_ref())
        {
            Ok(v) => v,
            Err(d) => {
                let ev = completed(one(d));
                return Ok(Response::new(Box::pin(futures::stream::iter([Ok(ev)]))));
            }
        };
        if !config.is_wholly_known() {
            let ev = completed(one(Diagnostic::error(
                "Action configuration not known",
                "Every value of an action's config must be known when it runs. This is a bug \
                 in Terraform or the provider.",
            )));
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(ev)]))));
        }
        // The action runs on its own task and its progress is streamed as it comes; the
        // completed event is always last.
        let (progress, messages) = Progress::channel();
        let ctx = self.ctx();
        let done = tokio::spawn(async move {
            let mut diags = Diagnostics::new();
            action.invoke(&ctx, &config, &progress, &mut diags).await;
            diags
        });
        let progress_events = futures::stream::unfold(messages, |mut rx| async move {
            let message = rx.recv().await?;
            let ev = Event {
                r#type: Some(event::Type::Progress(event::Progress { message })),
            };
            Some((Ok(ev), rx))
        });
        let last = futures::stream::once(async move {
            let diags = match done.await {
                Ok(diags) => diags_to_proto(&diags),
                Err(e) => one(Diagnostic::error(
                    "Action stopped",
                    format!(
                        "The action ended without a result ({e}). This is a bug in the provider."
                    ),
                )),
            };
            Ok(completed(diags))
        });
        Ok(Response::new(Box::pin(progress_events.chain(last))))
    }

    async fn stop_provider(
        &self,
        _r: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        tracing::info!("StopProvider received: cancelling in-flight operations");
        self.stop.cancel();
        Ok(Response::new(tf::stop_provider::Response {
            error: String::new(),
        }))
    }
}

fn null_write_only(schema: &crate::framework::Schema, state: Value) -> Value {
    plan::null_write_only(&schema.attributes, &state)
}

fn capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        // Resources may want to veto or annotate a destroy; Terraform then asks us to plan it.
        plan_destroy: true,
        // Every RPC works on a fresh process without GetProviderSchema first.
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}
