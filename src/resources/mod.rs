//! The otaas managed resource types (and their list resources), one file per type.

use crate::framework::Registry;

/// Adds every otaas resource and list resource to the registry.
pub fn register(registry: Registry) -> Registry {
    registry
}
