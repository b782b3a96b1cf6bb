//! Agent and server capability bit masks as typed sets, so code asks
//! `caps.contains(AgentCaps::ACCEPTS_REMOTE_CONFIG)` instead of masking bare integers.

use crate::proto::{AgentCapabilities, ServerCapabilities};

/// The capabilities an agent declared (`AgentToServer.capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AgentCaps(pub u64);

/// The capabilities a server declares (`ServerToAgent.capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServerCaps(pub u64);

impl AgentCaps {
    pub const REPORTS_STATUS: Self = Self(AgentCapabilities::ReportsStatus as u64);
    pub const ACCEPTS_REMOTE_CONFIG: Self = Self(AgentCapabilities::AcceptsRemoteConfig as u64);
    pub const REPORTS_EFFECTIVE_CONFIG: Self =
        Self(AgentCapabilities::ReportsEffectiveConfig as u64);
    pub const ACCEPTS_OPAMP_CONNECTION_SETTINGS: Self =
        Self(AgentCapabilities::AcceptsOpAmpConnectionSettings as u64);
    pub const REPORTS_OWN_METRICS: Self = Self(AgentCapabilities::ReportsOwnMetrics as u64);
    pub const REPORTS_HEALTH: Self = Self(AgentCapabilities::ReportsHealth as u64);
    pub const REPORTS_REMOTE_CONFIG: Self = Self(AgentCapabilities::ReportsRemoteConfig as u64);
    pub const REPORTS_HEARTBEAT: Self = Self(AgentCapabilities::ReportsHeartbeat as u64);

    /// Every bit with a name, in bit order (used to list capabilities by name).
    const NAMED: [(u64, &'static str); 16] = [
        (0x1, "ReportsStatus"),
        (0x2, "AcceptsRemoteConfig"),
        (0x4, "ReportsEffectiveConfig"),
        (0x8, "AcceptsPackages"),
        (0x10, "ReportsPackageStatuses"),
        (0x20, "ReportsOwnTraces"),
        (0x40, "ReportsOwnMetrics"),
        (0x80, "ReportsOwnLogs"),
        (0x100, "AcceptsOpAMPConnectionSettings"),
        (0x200, "AcceptsOtherConnectionSettings"),
        (0x400, "AcceptsRestartCommand"),
        (0x800, "ReportsHealth"),
        (0x1000, "ReportsRemoteConfig"),
        (0x2000, "ReportsHeartbeat"),
        (0x4000, "ReportsAvailableComponents"),
        (0x8000, "ReportsConnectionSettingsStatus"),
    ];

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the set bits; bits the spec does not define are listed as `0x...`.
    pub fn names(self) -> Vec<String> {
        let mut out: Vec<String> = Self::NAMED
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let unknown = self.0 & !0xffff;
        if unknown != 0 {
            out.push(format!("{unknown:#x}"));
        }
        out
    }
}

impl std::ops::BitOr for AgentCaps {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl ServerCaps {
    pub const ACCEPTS_STATUS: Self = Self(ServerCapabilities::AcceptsStatus as u64);
    pub const OFFERS_REMOTE_CONFIG: Self = Self(ServerCapabilities::OffersRemoteConfig as u64);
    pub const ACCEPTS_EFFECTIVE_CONFIG: Self =
        Self(ServerCapabilities::AcceptsEffectiveConfig as u64);
    pub const OFFERS_CONNECTION_SETTINGS: Self =
        Self(ServerCapabilities::OffersConnectionSettings as u64);

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ServerCaps {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_peer_capabilities_by_name() {
        // 0x3007 is what opentelemetry-opamp-client 0.5b0 sends.
        assert_eq!(
            AgentCaps(0x3007).names(),
            [
                "ReportsStatus",
                "AcceptsRemoteConfig",
                "ReportsEffectiveConfig",
                "ReportsRemoteConfig",
                "ReportsHeartbeat"
            ]
        );
        assert!(AgentCaps(0x3007).contains(AgentCaps::ACCEPTS_REMOTE_CONFIG));
        assert!(!AgentCaps(0x3007).contains(AgentCaps::REPORTS_HEALTH));
        assert_eq!(AgentCaps(0x1_0001).names(), ["ReportsStatus", "0x10000"]);
    }

    #[test]
    fn server_bits_match_the_spec() {
        let caps = ServerCaps::ACCEPTS_STATUS
            | ServerCaps::OFFERS_REMOTE_CONFIG
            | ServerCaps::ACCEPTS_EFFECTIVE_CONFIG
            | ServerCaps::OFFERS_CONNECTION_SETTINGS;
        assert_eq!(caps.0, 0x27);
    }
}
