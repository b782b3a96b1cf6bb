//! Newtype ids: one type per kind of object so an endpoint id can never be passed as a pipeline id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id; UUIDv7 so ids sort by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Id of a pipeline.
    PipelineId
);
id_type!(
    /// Id of a secure ingest endpoint.
    EndpointId
);
id_type!(
    /// Id of an exporter binding.
    ExporterBindingId
);
id_type!(
    /// Id of an agent group.
    AgentGroupId
);
id_type!(
    /// Id of an API or enrollment token (never the token itself).
    TokenId
);
id_type!(
    /// Id of an audit trail entry (UUIDv7: entries sort by the time they were recorded).
    AuditId
);
