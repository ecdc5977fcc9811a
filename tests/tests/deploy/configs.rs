//! The configs the deploy files ship, read by the services' own parsers: what the images would
//! load at start, so a key the code renamed or a value it refuses fails here, not in a cluster.

use super::files::read;

const GATEWAY_CONFIGS: [&str; 2] = ["deploy/k8s/gateway.toml", "deploy/compose/gateway.toml"];
const BRIDGE_CONFIGS: [&str; 2] = ["deploy/k8s/bridge.toml", "deploy/compose/bridge.toml"];

/// Every shipped gateway config parses and validates with the gateway's own `Config`.
#[test]
fn gateway_configs_pass_the_gateways_validation() {
    for file in GATEWAY_CONFIGS {
        let config = gateway::config::Config::parse(&read(file))
            .unwrap_or_else(|problems| panic!("{file}: {problems:?}"));
        let problems = config.validate();
        assert!(problems.is_empty(), "{file}: {problems:?}");
    }
}

/// Every shipped bridge config parses and validates with the bridge's own `Config`, without
/// environment overrides.
#[test]
fn bridge_configs_pass_the_bridges_validation() {
    for file in BRIDGE_CONFIGS {
        if let Err(e) = cdc_bridge::config::Config::from_toml(&read(file), |_| None) {
            panic!("{file}: {e} ({e:?})");
        }
    }
}
