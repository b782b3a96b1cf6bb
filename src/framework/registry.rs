//! The set of resource, data source, list resource and action types one provider serves, keyed by type
//! name, plus the provider block's own schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::action::Action;
use super::resource::{DataSource, ListResource, Resource};
use super::schema::Schema;

#[derive(Clone)]
pub struct Registry {
    pub provider_schema: Schema,
    pub resources: BTreeMap<String, Arc<dyn Resource>>,
    pub data_sources: BTreeMap<String, Arc<dyn DataSource>>,
    pub list_resources: BTreeMap<String, Arc<dyn ListResource>>,
    pub actions: BTreeMap<String, Arc<dyn Action>>,
}

impl Registry {
    pub fn new(provider_schema: Schema) -> Self {
        Registry {
            provider_schema,
            resources: BTreeMap::new(),
            data_sources: BTreeMap::new(),
            list_resources: BTreeMap::new(),
            actions: BTreeMap::new(),
        }
    }
    #[must_use]
    pub fn resource(mut self, r: impl Resource) -> Self {
        self.resources
            .insert(r.type_name().to_string(), Arc::new(r));
        self
    }
    #[must_use]
    pub fn data_source(mut self, d: impl DataSource) -> Self {
        self.data_sources
            .insert(d.type_name().to_string(), Arc::new(d));
        self
    }
    #[must_use]
    pub fn list_resource(mut self, l: impl ListResource) -> Self {
        self.list_resources
            .insert(l.type_name().to_string(), Arc::new(l));
        self
    }
    #[must_use]
    pub fn action(mut self, a: impl Action) -> Self {
        self.actions.insert(a.type_name().to_string(), Arc::new(a));
        self
    }
}
