//! The deploy files (`deploy/docker`, `deploy/compose`, `deploy/k8s`, `deploy/OPERATIONS.md`)
//! agree with each other and with the gateway and bridge conventions.
//!
//! Docker and Kubernetes cannot run here, so these tests read the files as the tools would: every
//! manifest and the compose file are parsed, and images, ports, probe paths, mounted paths and
//! alert metric names are checked across them. A port changed in one place and not the others, a
//! probe on the wrong listener or an alert on an unlisted metric fails a test.

mod alerts;
mod configs;
mod containers;
mod files;
mod kubernetes;

/// Port of the bridge's `/health/*` and `/metrics` (issue 6).
const BRIDGE_HTTP_PORT: u16 = 9187;
