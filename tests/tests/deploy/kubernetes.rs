//! `deploy/k8s`: the kustomization's objects, the gateway's and the bridge's Deployments, their
//! probes, mounts, Services, budgets and autoscaler, against the configs they mount.

use super::BRIDGE_HTTP_PORT;
use super::files::{read, repo_root, socket, str_at, toml_file, toml_str, yaml, yaml_docs};
use serde_json::Value;
use std::collections::BTreeSet;

/// The Kubernetes objects of every resource the kustomization lists.
pub fn k8s_objects() -> Vec<Value> {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let resources = kustomization["resources"].as_array().expect("resources");
    resources
        .iter()
        .flat_map(|r| {
            yaml_docs(&format!(
                "deploy/k8s/{}",
                r.as_str().expect("resource path")
            ))
        })
        .collect()
}

pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s"))
}

pub fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

pub fn only_container(deployment: &Value) -> &Value {
    let containers = deployment
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .expect("containers");
    assert_eq!(
        containers.len(),
        1,
        "{}: one container",
        deployment["metadata"]["name"]
    );
    &containers[0]
}

/// A probe's or Service's port: a number, or the name of one of the container's ports.
pub fn resolve_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).expect("port fits u16");
    }
    let name = port.as_str().expect("port is a number or a name");
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// (path, port) of a container's `readinessProbe` or `livenessProbe`.
pub fn probe(container: &Value, kind: &str) -> (String, u16) {
    let get = &container[kind]["httpGet"];
    assert!(
        get.is_object(),
        "{}: {kind} is no httpGet probe",
        container["name"]
    );
    let path = str_at(get, "/path", kind).to_string();
    (path, resolve_port(container, &get["port"]))
}

pub fn container_ports(container: &Value) -> BTreeSet<u16> {
    let ports = container["ports"].as_array().expect("container ports");
    ports
        .iter()
        .map(|p| resolve_port(container, &p["containerPort"]))
        .collect()
}

/// Where a pod mounts the volume that comes from the ConfigMap or Secret `source`.
pub fn mount_of(deployment: &Value, source_kind: &str, source_name: &str) -> String {
    let spec = &deployment["spec"]["template"]["spec"];
    let name_key = if source_kind == "secret" {
        "secretName"
    } else {
        "name"
    };
    let volume = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v[source_kind][name_key] == source_name)
        .unwrap_or_else(|| panic!("no {source_kind} volume from {source_name}"));
    only_container(deployment)["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == volume["name"])
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("volume {} is not mounted", volume["name"]))
        .to_string()
}

/// The `--config FILE` argument of a container.
pub fn config_arg(container: &Value) -> String {
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config in args");
    assert_eq!(args[0], "run", "the container runs the `run` subcommand");
    args[at + 1].to_string()
}

/// Every kustomization resource and generated file exists, and every object is named once.
#[test]
fn kustomization_lists_files_that_exist_and_every_object_is_named() {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    for generator in kustomization["configMapGenerator"]
        .as_array()
        .expect("generators")
    {
        for file in generator["files"].as_array().expect("generator files") {
            let file = file.as_str().expect("file name");
            assert!(
                repo_root().join("deploy/k8s").join(file).is_file(),
                "{file} is missing"
            );
        }
    }
    let objects = k8s_objects();
    let mut seen = BTreeSet::new();
    for o in &objects {
        let kind = str_at(o, "/kind", "object").to_string();
        let name = str_at(o, "/metadata/name", &kind).to_string();
        str_at(o, "/apiVersion", &name);
        assert!(
            seen.insert((kind.clone(), name.clone())),
            "{kind} {name} appears twice"
        );
    }
    assert!(
        seen.len() >= 7,
        "expected the gateway's and the bridge's objects, got {seen:?}"
    );
}

/// The gateway configs use the conventions' keys, and the admin listener is reachable by probes.
#[test]
fn gateway_configs_follow_the_conventions() {
    for file in ["deploy/k8s/gateway.toml", "deploy/compose/gateway.toml"] {
        let config = toml_file(file);
        socket(toml_str(&config, &["listen"], file), file);
        let admin = socket(toml_str(&config, &["admin", "listen"], file), file);
        assert!(
            !admin.ip().is_loopback(),
            "{file}: admin.listen on loopback is unreachable"
        );
        assert_eq!(
            toml_str(&config, &["store", "kind"], file),
            "postgres",
            "{file}: replicas share toggles"
        );
        assert!(toml_str(&config, &["store", "url"], file).starts_with("postgres://"));
        let legacy = toml_str(&config, &["legacy"], file);
        assert!(legacy.starts_with("http://"), "{file}: legacy = `{legacy}`");
        let capabilities = config["capability"].as_array().expect("[[capability]]");
        assert!(!capabilities.is_empty(), "{file}: no capability");
        for capability in capabilities {
            let capability = capability.as_table().expect("capability table");
            assert!(
                capability["name"].as_str().is_some_and(|n| !n.is_empty()),
                "{file}: name"
            );
            let new = capability["new"].as_str().unwrap_or_default();
            assert!(
                new.starts_with("http://"),
                "{file}: capability.new = `{new}`"
            );
            let routes = capability["routes"].as_array().map_or(0, Vec::len);
            assert!(
                routes > 0,
                "{file}: capability {} has no routes",
                capability["name"]
            );
        }
    }
}

/// Gateway probes hit /health/* on the admin port of the ConfigMap's config; tokens are mounted.
#[test]
fn gateway_probes_use_the_admin_listener_of_its_config() {
    let config = toml_file("deploy/k8s/gateway.toml");
    let file = "deploy/k8s/gateway.toml";
    let public = socket(toml_str(&config, &["listen"], file), file).port();
    let admin = socket(toml_str(&config, &["admin", "listen"], file), file).port();

    let objects = k8s_objects();
    let deployment = object(&objects, "Deployment", "fig-gateway");
    let container = only_container(deployment);
    assert_eq!(
        probe(container, "readinessProbe"),
        ("/health/ready".into(), admin)
    );
    assert_eq!(
        probe(container, "livenessProbe"),
        ("/health/live".into(), admin)
    );
    assert_eq!(container_ports(container), BTreeSet::from([public, admin]));
    let scrape = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        scrape["prometheus.io/port"],
        admin.to_string(),
        "metrics are on the admin port"
    );

    let config_dir = mount_of(deployment, "configMap", "fig-gateway-config");
    assert_eq!(config_arg(container), format!("{config_dir}/gateway.toml"));
    let tokens_dir = mount_of(deployment, "secret", "fig-gateway-tokens");
    let tokens_file = toml_str(&config, &["admin", "tokens_file"], file);
    let key = tokens_file
        .strip_prefix(&format!("{tokens_dir}/"))
        .unwrap_or_else(|| panic!("tokens_file {tokens_file} is not under {tokens_dir}"));
    let secret = object(&objects, "Secret", "fig-gateway-tokens");
    assert!(
        secret["stringData"][key].is_string(),
        "the Secret has no key {key}"
    );

    let targets = |name: &str| -> BTreeSet<u16> {
        let service = object(&objects, "Service", name);
        let ports = service["spec"]["ports"].as_array().expect("service ports");
        ports
            .iter()
            .map(|p| resolve_port(container, &p["targetPort"]))
            .collect()
    };
    assert_eq!(targets("fig-gateway"), BTreeSet::from([public]));
    assert_eq!(targets("fig-gateway-admin"), BTreeSet::from([admin]));
}

/// The bridge runs as one active plus one standby, probed on 9187, with its config mounted.
#[test]
fn bridge_is_one_active_one_standby_probed_on_9187() {
    let objects = k8s_objects();
    let deployment = object(&objects, "Deployment", "fig-cdc-bridge");
    assert_eq!(
        deployment["spec"]["replicas"], 2,
        "one active plus one standby"
    );
    let container = only_container(deployment);
    assert_eq!(
        probe(container, "livenessProbe"),
        ("/health/live".into(), BRIDGE_HTTP_PORT)
    );
    assert_eq!(probe(container, "readinessProbe").1, BRIDGE_HTTP_PORT);
    assert_eq!(
        container_ports(container),
        BTreeSet::from([BRIDGE_HTTP_PORT])
    );

    for file in ["deploy/k8s/bridge.toml", "deploy/compose/bridge.toml"] {
        let config = toml_file(file);
        let listen = socket(toml_str(&config, &["http", "listen"], file), file);
        assert_eq!(listen.port(), BRIDGE_HTTP_PORT, "{file}: http.listen");
    }
    let config = toml_file("deploy/k8s/bridge.toml");
    let config_dir = mount_of(deployment, "configMap", "fig-bridge-config");
    assert_eq!(config_arg(container), format!("{config_dir}/bridge.toml"));
    let mapping_dir = mount_of(deployment, "configMap", "fig-acl-mapping");
    let mapping = toml_str(&config, &["mapping", "path"], "deploy/k8s/bridge.toml");
    assert!(
        mapping.starts_with(&format!("{mapping_dir}/")),
        "{mapping} not under {mapping_dir}"
    );
    assert!(
        read("deploy/k8s/kustomization.yaml").contains("kubectl create configmap fig-acl-mapping"),
        "the mapping ConfigMap is created by hand: the kustomization must say how"
    );
}

/// Every container of every Deployment has requests, limits, both probes and runs as non-root.
#[test]
fn every_deployment_has_resources_and_probes() {
    let objects = k8s_objects();
    let deployments: Vec<&Value> = of_kind(&objects, "Deployment").collect();
    assert_eq!(deployments.len(), 2, "the gateway and the bridge");
    for deployment in deployments {
        let name = &deployment["metadata"]["name"];
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"], true,
            "{name}: runAsNonRoot"
        );
        for container in pod["containers"].as_array().expect("containers") {
            for limit in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    let value = &container["resources"][limit][resource];
                    assert!(!value.is_null(), "{name}: no resources.{limit}.{resource}");
                }
            }
            probe(container, "readinessProbe");
            probe(container, "livenessProbe");
        }
    }
}

/// Services, PodDisruptionBudgets and the HPA select or target pods that exist.
#[test]
fn services_budgets_and_autoscaler_target_existing_pods() {
    let objects = k8s_objects();
    let pod_labels = |selector: &Value| -> Vec<String> {
        of_kind(&objects, "Deployment")
            .filter(|d| {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                let wanted = selector.as_object().expect("selector");
                wanted.iter().all(|(k, v)| &labels[k] == v)
            })
            .map(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    for service in of_kind(&objects, "Service") {
        let hits = pod_labels(&service["spec"]["selector"]);
        assert_eq!(
            hits.len(),
            1,
            "{} selects {hits:?}",
            service["metadata"]["name"]
        );
    }
    for budget in of_kind(&objects, "PodDisruptionBudget") {
        let hits = pod_labels(&budget["spec"]["selector"]["matchLabels"]);
        assert_eq!(
            hits.len(),
            1,
            "{} selects {hits:?}",
            budget["metadata"]["name"]
        );
    }
    let hpa = object(&objects, "HorizontalPodAutoscaler", "fig-gateway");
    let target = str_at(hpa, "/spec/scaleTargetRef/name", "hpa");
    let deployment = object(&objects, "Deployment", target);
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "the HPA, not the Deployment, sets replicas"
    );
    let min = hpa["spec"]["minReplicas"].as_u64().expect("minReplicas");
    let budget = object(&objects, "PodDisruptionBudget", "fig-gateway");
    let min_available = budget["spec"]["minAvailable"]
        .as_u64()
        .expect("minAvailable");
    assert!(
        min >= 2 && min_available < min,
        "drains must be possible: min {min}, budget {min_available}"
    );
}
