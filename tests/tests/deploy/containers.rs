//! Images and local runs: the Dockerfiles and the compose stack against the Kubernetes objects,
//! the configs and the workspace.

use super::BRIDGE_HTTP_PORT;
use super::files::{
    Dockerfile, context_copies, read, repo_root, socket, str_at, toml_file, toml_str,
    workspace_version, yaml,
};
use super::kubernetes::{k8s_objects, object, only_container};
use serde_json::Value;
use std::collections::BTreeSet;

/// The images' repositories; the tag is the workspace version.
const GATEWAY_IMAGE: &str = "fig/gateway";
const BRIDGE_IMAGE: &str = "fig/cdc-bridge";

/// Compose, Kubernetes and the Dockerfiles name the same images, tagged with the workspace version.
#[test]
fn images_agree_across_compose_k8s_and_the_workspace_version() {
    let version = workspace_version();
    let objects = k8s_objects();
    let compose = yaml("deploy/compose/compose.yaml");
    for (deployment, service, repo, dockerfile) in [
        (
            "fig-gateway",
            "gateway",
            GATEWAY_IMAGE,
            "deploy/docker/gateway.Dockerfile",
        ),
        (
            "fig-cdc-bridge",
            "cdc-bridge",
            BRIDGE_IMAGE,
            "deploy/docker/cdc-bridge.Dockerfile",
        ),
    ] {
        let expected = format!("{repo}:{version}");
        let k8s = only_container(object(&objects, "Deployment", deployment))["image"].clone();
        assert_eq!(k8s, expected, "{deployment} image");
        let spec = &compose["services"][service];
        assert_eq!(spec["image"], expected, "compose {service} image");
        let context = str_at(spec, "/build/context", service);
        let context = repo_root()
            .join("deploy/compose")
            .join(context)
            .canonicalize()
            .ok();
        assert_eq!(
            context,
            repo_root().canonicalize().ok(),
            "{service}: build context"
        );
        assert_eq!(
            spec["build"]["dockerfile"], dockerfile,
            "{service}: dockerfile"
        );
        let how = format!("-f {dockerfile} -t {expected} .");
        assert!(
            read(dockerfile).contains(&how),
            "{dockerfile} says how to build {expected}"
        );
    }
}

/// The Dockerfiles expose the ports the services listen on and build every workspace member.
#[test]
fn dockerfiles_expose_the_ports_the_services_listen_on() {
    let gateway_config = toml_file("deploy/compose/gateway.toml");
    let f = "deploy/compose/gateway.toml";
    let gateway_ports = BTreeSet::from([
        socket(toml_str(&gateway_config, &["listen"], f), f).port(),
        socket(toml_str(&gateway_config, &["admin", "listen"], f), f).port(),
    ]);
    let root = toml_file("Cargo.toml");
    let members = root["workspace"]["members"]
        .as_array()
        .expect("members")
        .clone();
    for (file, ports, config_env) in [
        (
            "deploy/docker/gateway.Dockerfile",
            gateway_ports,
            "FIG_GATEWAY_CONFIG",
        ),
        (
            "deploy/docker/cdc-bridge.Dockerfile",
            BTreeSet::from([BRIDGE_HTTP_PORT]),
            "FIG_BRIDGE_CONFIG",
        ),
    ] {
        let docker = Dockerfile::read(file);
        assert_eq!(docker.exposed(), ports, "{file}: EXPOSE");
        let stages: Vec<&str> = docker.all("FROM").collect();
        assert!(
            stages
                .first()
                .is_some_and(|s| s.starts_with("rust:1-bookworm ")),
            "{file}: build"
        );
        assert!(
            stages
                .last()
                .is_some_and(|s| s.starts_with("debian:bookworm-slim ")),
            "{file}"
        );
        assert_eq!(
            docker.all("HEALTHCHECK").count(),
            0,
            "{file}: orchestrators probe"
        );
        let user = docker.all("USER").last().expect("USER");
        assert!(
            !user.starts_with('0') && user != "root",
            "{file}: runs as {user}"
        );
        let installs: String = docker.all("RUN").collect::<Vec<_>>().join(" ");
        for package in ["libpq5", "ca-certificates", "libpq-dev", "cmake"] {
            assert!(installs.contains(package), "{file}: installs no {package}");
        }
        assert!(docker.env(config_env).is_some(), "{file}: ENV {config_env}");
        let copies = context_copies(&docker);
        for source in &copies {
            assert!(
                repo_root().join(source).exists(),
                "{file}: COPY {source} does not exist"
            );
        }
        for member in &members {
            let member = member.as_str().expect("member");
            assert!(
                copies.iter().any(|c| c == member),
                "{file}: member {member} not copied"
            );
        }
    }
}

/// Compose starts each service after its dependencies report healthy, on the configured ports.
#[test]
fn compose_starts_services_after_their_dependencies_are_healthy() {
    let compose = yaml("deploy/compose/compose.yaml");
    let services = compose["services"].as_object().expect("services");
    for (name, service) in services {
        for (dependency, spec) in service["depends_on"].as_object().into_iter().flatten() {
            assert_eq!(
                spec["condition"], "service_healthy",
                "{name} → {dependency}"
            );
            assert!(
                services[dependency]["healthcheck"].is_object(),
                "{dependency}: healthcheck"
            );
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            // Paths mounted from deploy/ exist; others (acl/mappings) are their crates' to check.
            let source = volume
                .as_str()
                .and_then(|v| v.split(':').next())
                .unwrap_or_default();
            if source.starts_with("./")
                || (source.starts_with("../") && !source.starts_with("../../"))
            {
                let path = repo_root().join("deploy/compose").join(source);
                assert!(path.exists(), "{name}: mounts missing {source}");
            }
        }
    }
    let postgres = &services["postgres"];
    assert!(str_at(postgres, "/image", "postgres").starts_with("postgres:15"));
    let command: Vec<&str> = postgres["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        command.contains(&"wal_level=logical"),
        "postgres needs wal_level=logical"
    );
    let kafka = &services["kafka"]["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"], "broker,controller",
        "one KRaft node"
    );
    assert_eq!(kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"], "1");
    assert_eq!(kafka["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"], "1");

    let gateway = toml_file("deploy/compose/gateway.toml");
    let f = "deploy/compose/gateway.toml";
    let admin = socket(toml_str(&gateway, &["admin", "listen"], f), f).port();
    let public = socket(toml_str(&gateway, &["listen"], f), f).port();
    for (service, ports, health) in [
        (
            "gateway",
            vec![public, admin],
            format!("/dev/tcp/127.0.0.1/{admin}"),
        ),
        (
            "cdc-bridge",
            vec![BRIDGE_HTTP_PORT],
            format!("/dev/tcp/127.0.0.1/{BRIDGE_HTTP_PORT}"),
        ),
    ] {
        let published: Vec<u16> = services[service]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter_map(|p| p.as_str()?.rsplit(':').next()?.parse().ok())
            .collect();
        assert_eq!(published, ports, "{service}: published container ports");
        let check = services[service]["healthcheck"]["test"].to_string();
        assert!(
            check.contains(&health) && check.contains("/health/"),
            "{service}: {check}"
        );
    }
}
