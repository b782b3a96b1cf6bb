//! The otaas data source types, one file per type.

use crate::framework::Registry;

/// Adds every otaas data source to the registry.
pub fn register(registry: Registry) -> Registry {
    registry
}
