//! The Kubernetes manifests and the Dockerfile, checked without a cluster or a container
//! engine: the base and both overlays rendered by `kubectl kustomize`, every workload probed
//! (on its plaintext health port), hardened and bounded, TLS and credentials from Secrets
//! everywhere but dev, what the manifests configure in step with what the binaries read, and
//! each overlay's configuration (environment, ConfigMaps, the kind of Redis URL, and for prod
//! generated certificates and a token file in place of the operator's Secrets) run as the
//! three services on loopback against a real Redis: a single one for dev, a cluster for prod.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::LazyLock,
};

use clap::CommandFactory;
use serde::Deserialize;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["dev", "prod"];

/// What must be secure: the base, and the overlay that deploys it for real. Only dev may
/// patch it back to plaintext and anonymous calls.
const SECURE: [&str; 2] = ["base", "prod"];

/// The plaintext port serving only `grpc.health.v1`, which the probes ask.
const HEALTH_PORT: u64 = 8086;
/// The Prometheus `/metrics` port.
const METRICS_PORT: u64 = 9464;

/// The services, their gRPC port and the environment variables their binary reads.
struct Service {
    name: &'static str,
    port: u64,
    env: BTreeSet<String>,
}

static SERVICES: LazyLock<Vec<Service>> = LazyLock::new(|| {
    vec![
        service("ingest", 50051, govpulse_ingest::Config::command()),
        service("aggregate", 50052, govpulse_aggregate::Config::command()),
        service("ranking", 50053, govpulse_ranking::Config::command()),
    ]
});

/// The standard OpenTelemetry variables the SDK reads when traces are exported
/// (services/runtime/src/telemetry.rs), outside `Config`: the exporter's endpoint, the
/// resource's service name and attributes, the sampler and the batch processor.
const OTEL_VARIABLES: [&str; 11] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
];

fn service(name: &'static str, port: u64, command: clap::Command) -> Service {
    // Telemetry reads these two outside `Config` (services/runtime/src/telemetry.rs).
    let mut env: BTreeSet<String> = ["RUST_LOG", "GOVPULSE_LOG_FORMAT"].map(String::from).into();
    // An exception, by name so that a typo still fails: the OpenTelemetry SDK reads these.
    env.extend(OTEL_VARIABLES.map(String::from));
    env.extend(
        command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned()),
    );
    Service { name, port, env }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The base and both overlays rendered once; a failure is kept as text so that every test
/// reports it.
static RENDERED: LazyLock<Result<BTreeMap<&'static str, Vec<Value>>, String>> =
    LazyLock::new(|| {
        ["base"]
            .into_iter()
            .chain(OVERLAYS)
            .map(|o| Ok((o, render(o)?)))
            .collect()
    });

/// `kubectl kustomize` of one overlay (or of the base), one JSON value per YAML document.
fn render(overlay: &str) -> Result<Vec<Value>, String> {
    let dir = match overlay {
        "base" => repo_root().join("k8s/base"),
        _ => repo_root().join("k8s/overlays").join(overlay),
    };
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .map_err(|e| {
            format!(
                "cannot run kubectl ({e}): it renders the manifests; \
                 `bash deploy/bin/setup --test` checks for it and says how to install it"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).map_err(|e| e.to_string()))
        .filter(|value| value.as_ref().map_or(true, |v| !v.is_null()))
        .collect()
}

fn kind<'a>(overlay: &str, kind: &'a str) -> impl Iterator<Item = &'static Value> + 'a {
    let rendered = RENDERED.as_ref().unwrap_or_else(|e| panic!("{e}"));
    rendered[overlay]
        .iter()
        .filter(move |object| object["kind"] == kind)
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .expect("every object has a name")
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Every port of every Service of an overlay, with its Service.
fn service_ports(overlay: &str) -> impl Iterator<Item = (&'static Value, &'static Value)> {
    kind(overlay, "Service").flat_map(|service| {
        array(&service["spec"]["ports"])
            .iter()
            .map(move |port| (service, port))
    })
}

/// Asserts that `holds` of every port of every Service of `overlay`; a Service whose port
/// does not is named, followed by `otherwise`.
#[track_caller]
fn assert_service_ports(overlay: &str, otherwise: &str, holds: impl Fn(&Value) -> bool) {
    for (service, port) in service_ports(overlay) {
        assert!(
            holds(port),
            "{overlay}: Service {} {otherwise}",
            name(service)
        );
    }
}

/// Every Deployment and StatefulSet of an overlay.
fn workloads(overlay: &str) -> Vec<&'static Value> {
    kind(overlay, "Deployment")
        .chain(kind(overlay, "StatefulSet"))
        .collect()
}

/// Every container (init containers too) of a workload, with its qualified name.
fn containers(workload: &Value) -> Vec<(String, &Value)> {
    let pod = &workload["spec"]["template"]["spec"];
    array(&pod["containers"])
        .iter()
        .chain(array(&pod["initContainers"]))
        .map(|c| {
            let label = format!(
                "{} {}/{}",
                workload["kind"].as_str().unwrap_or_default(),
                name(workload),
                c["name"].as_str().unwrap_or_default()
            );
            (label, c)
        })
        .collect()
}

fn deployment(overlay: &str, service: &str) -> &'static Value {
    kind(overlay, "Deployment")
        .find(|d| name(d) == service)
        .unwrap_or_else(|| panic!("{overlay}: no Deployment {service}"))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let wanted = selector["matchLabels"]
        .as_object()
        .expect("selectors use matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| &labels[k] == v)
}

#[test]
fn each_overlay_deploys_the_three_services_and_nothing_else_as_a_deployment() {
    for overlay in OVERLAYS {
        let names: BTreeSet<&str> = kind(overlay, "Deployment").map(name).collect();
        assert_eq!(
            names,
            ["aggregate", "ingest", "ranking"].into(),
            "{overlay}: Deployments"
        );
    }
}

/// The number of a container's port named `port_name`.
fn named_port(container: &Value, port_name: &str) -> Option<u64> {
    array(&container["ports"])
        .iter()
        .find(|p| p["name"] == port_name)
        .and_then(|p| p["containerPort"].as_u64())
}

/// The literal value of a container's environment variable.
fn env_value<'a>(container: &'a Value, variable: &str) -> Option<&'a str> {
    array(&container["env"])
        .iter()
        .find(|e| e["name"] == variable)
        .and_then(|e| e["value"].as_str())
}

/// Whether a label selector (`matchLabels` and `matchExpressions`; empty selects all)
/// selects pods with these `labels`.
fn selector_selects(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| &labels[k] == v));
    let by_expressions = array(&selector["matchExpressions"]).iter().all(|e| {
        let value = &labels[e["key"].as_str().expect("a key")];
        let values = array(&e["values"]);
        match e["operator"].as_str() {
            Some("In") => values.contains(value),
            Some("NotIn") => !values.contains(value),
            Some("Exists") => !value.is_null(),
            Some("DoesNotExist") => value.is_null(),
            other => panic!("unknown selector operator {other:?}"),
        }
    });
    by_labels && by_expressions
}

/// The NetworkPolicies of an overlay that apply to a Deployment's pods.
fn policies_of(overlay: &str, deployment: &Value) -> Vec<&'static Value> {
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    kind(overlay, "NetworkPolicy")
        .filter(|p| selector_selects(&p["spec"]["podSelector"], labels))
        .collect()
}

#[test]
fn every_deployment_has_grpc_readiness_and_liveness_probes_on_its_plaintext_health_port() {
    for overlay in ["base"].into_iter().chain(OVERLAYS) {
        for service in SERVICES.iter() {
            let deployment = deployment(overlay, service.name);
            for (label, container) in containers(deployment) {
                assert_eq!(
                    named_port(container, "grpc"),
                    Some(service.port),
                    "{overlay}: {label} grpc port"
                );
                assert_eq!(
                    named_port(container, "health"),
                    Some(HEALTH_PORT),
                    "{overlay}: {label} health port"
                );
                assert_eq!(
                    env_value(container, "GOVPULSE_HEALTH_LISTEN"),
                    Some(format!("0.0.0.0:{HEALTH_PORT}").as_str()),
                    "{overlay}: {label} serves health on its health port"
                );
                for probe in ["readinessProbe", "livenessProbe"] {
                    let grpc = &container[probe]["grpc"];
                    // A gRPC probe takes a number, not a port name: the port named health.
                    // The main port may speak TLS, which the kubelet's gRPC probes cannot.
                    assert_eq!(
                        grpc["port"].as_u64(),
                        Some(HEALTH_PORT),
                        "{overlay}: {label} needs a gRPC {probe} on the health port"
                    );
                    // "" is the overall status, the one that turns NOT_SERVING on SIGTERM.
                    assert!(
                        grpc["service"].as_str().is_none_or(str::is_empty),
                        "{overlay}: {label} {probe} asks for the overall status"
                    );
                }
            }
        }
    }
}

#[test]
fn the_health_port_is_reached_by_the_probes_only() {
    for overlay in OVERLAYS {
        assert_service_ports(overlay, "exposes the health port", |port| {
            port["targetPort"] != "health"
                && port["targetPort"].as_u64() != Some(HEALTH_PORT)
                && port["port"].as_u64() != Some(HEALTH_PORT)
        });
        for svc in SERVICES.iter() {
            for policy in policies_of(overlay, deployment(overlay, svc.name)) {
                for rule in array(&policy["spec"]["ingress"]) {
                    let ports = array(&rule["ports"]);
                    // A rule without ports would admit every port, the health port included.
                    assert!(
                        !ports.is_empty()
                            && ports.iter().all(|p| p["port"] != "health"
                                && p["port"].as_u64() != Some(HEALTH_PORT)),
                        "{overlay}: {} admits {}'s health port: {rule}",
                        name(policy),
                        svc.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_deployment_exposes_prometheus_on_a_metrics_port_the_monitoring_namespace_may_scrape() {
    let from_monitoring = |rule: &Value| {
        array(&rule["from"]).iter().any(|peer| {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"
        })
    };
    for overlay in OVERLAYS {
        for service in SERVICES.iter() {
            let deployment = deployment(overlay, service.name);
            for (label, container) in containers(deployment) {
                assert_eq!(
                    named_port(container, "metrics"),
                    Some(METRICS_PORT),
                    "{overlay}: {label} metrics port"
                );
                assert_eq!(
                    env_value(container, "GOVPULSE_METRICS_LISTEN"),
                    Some(format!("0.0.0.0:{METRICS_PORT}").as_str()),
                    "{overlay}: {label} serves /metrics on its metrics port"
                );
            }
            let scraped = policies_of(overlay, deployment)
                .into_iter()
                .flat_map(|p| array(&p["spec"]["ingress"]))
                .any(|rule| {
                    from_monitoring(rule)
                        && array(&rule["ports"])
                            .iter()
                            .any(|p| p["port"].as_u64() == Some(METRICS_PORT))
                });
            assert!(
                scraped,
                "{overlay}: the monitoring namespace may scrape {} on {METRICS_PORT}",
                service.name
            );
        }
        // Prometheus reaches the metrics port and nothing else.
        for policy in kind(overlay, "NetworkPolicy") {
            for rule in array(&policy["spec"]["ingress"]) {
                if from_monitoring(rule) {
                    let ports = array(&rule["ports"]);
                    assert!(
                        !ports.is_empty()
                            && ports
                                .iter()
                                .all(|p| p["port"].as_u64() == Some(METRICS_PORT)),
                        "{overlay}: {} admits the monitoring namespace beyond /metrics: {rule}",
                        name(policy)
                    );
                }
            }
        }
    }
}

/// The Secret mounted read-only, as a whole folder, where `file` lies, and the file's key.
fn secret_of_file<'a>(
    pod: &'a Value,
    container: &Value,
    file: &'a str,
) -> Option<(&'a str, &'a str)> {
    let (dir, key) = file.rsplit_once('/')?;
    let mount = array(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"] == dir)?;
    let volume = array(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let secret = volume["secret"]["secretName"].as_str()?;
    (mount["readOnly"] == true && mount["subPath"].is_null()).then_some((secret, key))
}

#[test]
fn base_and_prod_serve_tls_with_certificates_and_tokens_from_read_only_secrets() {
    for overlay in SECURE {
        for service in SERVICES.iter() {
            let deployment = deployment(overlay, service.name);
            let pod = &deployment["spec"]["template"]["spec"];
            for (label, container) in containers(deployment) {
                for forbidden in ["GOVPULSE_PLAINTEXT", "GOVPULSE_ALLOW_ANONYMOUS"] {
                    assert!(
                        array(&container["env"])
                            .iter()
                            .all(|e| e["name"] != forbidden),
                        "{overlay}: {label} sets {forbidden}: only dev may"
                    );
                }
                // Each file these settings name, and the key a kubernetes.io/tls Secret (or
                // cert-manager's) gives it.
                let mut tls_files = vec![
                    ("GOVPULSE_TLS_CERT", "tls.crt"),
                    ("GOVPULSE_TLS_KEY", "tls.key"),
                ];
                if service.name == "aggregate" {
                    // ingest and ranking present certificates of the cluster's CA.
                    tls_files.push(("GOVPULSE_TLS_CLIENT_CA", "ca.crt"));
                } else {
                    assert!(
                        env_value(container, "GOVPULSE_AGGREGATE_URL")
                            .is_some_and(|url| url.starts_with("https://")),
                        "{overlay}: {label} calls aggregate over TLS"
                    );
                    tls_files.extend([
                        ("GOVPULSE_UPSTREAM_CA", "ca.crt"),
                        ("GOVPULSE_UPSTREAM_CERT", "tls.crt"),
                        ("GOVPULSE_UPSTREAM_KEY", "tls.key"),
                    ]);
                }
                let mut tls_secrets = BTreeSet::new();
                for (variable, key) in tls_files {
                    let file = env_value(container, variable)
                        .unwrap_or_else(|| panic!("{overlay}: {label} sets no {variable}"));
                    let (secret, file_key) = secret_of_file(pod, container, file)
                        .unwrap_or_else(|| {
                            panic!("{overlay}: {label}: {variable}={file} is not in a Secret mounted read-only as a folder")
                        });
                    assert_eq!(file_key, key, "{overlay}: {label} {variable}");
                    tls_secrets.insert(secret);
                }
                assert_eq!(
                    tls_secrets.len(),
                    1,
                    "{overlay}: {label} takes its certificate, key and CA from one Secret: {tls_secrets:?}"
                );
                let mut operators = tls_secrets;
                // ingest checks reporters' tokens, ranking publishers'.
                if service.name == "ingest" || service.name == "ranking" {
                    let file = env_value(container, "GOVPULSE_TOKENS")
                        .unwrap_or_else(|| panic!("{overlay}: {label} checks bearer tokens"));
                    let (secret, _) = secret_of_file(pod, container, file).unwrap_or_else(|| {
                        panic!("{overlay}: {label}: the token file {file} is not in a Secret mounted read-only as a folder")
                    });
                    operators.insert(secret);
                }
                // Keys and tokens never live in the repository: the operator creates these.
                for secret in operators {
                    assert!(
                        kind(overlay, "Secret").all(|s| name(s) != secret),
                        "{overlay}: {secret} is generated from the repository, not created by the operator"
                    );
                }
            }
        }
    }
}

#[test]
fn dev_alone_runs_plaintext_and_anonymous_and_says_so_explicitly() {
    for service in SERVICES.iter() {
        let deployment = deployment("dev", service.name);
        let pod = &deployment["spec"]["template"]["spec"];
        for (label, container) in containers(deployment) {
            assert_eq!(
                env_value(container, "GOVPULSE_PLAINTEXT"),
                Some("true"),
                "dev: {label}"
            );
            assert_eq!(
                env_value(container, "GOVPULSE_ALLOW_ANONYMOUS"),
                // ingest's reporters and ranking's publishers need no credential in dev.
                (service.name != "aggregate").then_some("true"),
                "dev: {label}"
            );
            for variable in ["GOVPULSE_TLS_CERT", "GOVPULSE_TOKENS"] {
                assert!(
                    env_value(container, variable).is_none(),
                    "dev: {label} sets {variable} beside plaintext"
                );
            }
        }
        // A pod whose Secret is missing never starts: dev mounts only what it generates.
        for volume in array(&pod["volumes"]) {
            if let Some(secret) = volume["secret"]["secretName"].as_str() {
                assert!(
                    kind("dev", "Secret").any(|s| name(s) == secret),
                    "dev: {} mounts the Secret {secret}, which dev does not create",
                    service.name
                );
            }
        }
    }
}

#[test]
fn no_rendered_secret_holds_a_private_key_or_a_token_file() {
    for overlay in ["base"].into_iter().chain(OVERLAYS) {
        for secret in kind(overlay, "Secret") {
            let data = secret["data"].as_object().cloned().unwrap_or_default();
            for (key, value) in data {
                let text = value.as_str().and_then(base64_decode).unwrap_or_default();
                assert!(
                    !text.contains("PRIVATE KEY") && !text.contains("[[credential]]"),
                    "{overlay}: Secret {} key {key} holds a key or tokens",
                    name(secret)
                );
            }
        }
    }
}

#[test]
fn prod_exports_traces_to_the_collector_it_may_reach() {
    for service in SERVICES.iter() {
        let deployment = deployment("prod", service.name);
        for (label, container) in containers(deployment) {
            let endpoint = env_value(container, "OTEL_EXPORTER_OTLP_ENDPOINT")
                .unwrap_or_else(|| panic!("prod: {label} exports traces"));
            let port: u64 = endpoint
                .rsplit_once(':')
                .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
                .unwrap_or_else(|| panic!("prod: {label}: {endpoint} names its port"));
            let reachable = policies_of("prod", deployment)
                .into_iter()
                .flat_map(|p| array(&p["spec"]["egress"]))
                .any(|rule| {
                    array(&rule["ports"])
                        .iter()
                        .any(|p| p["port"].as_u64() == Some(port))
                });
            assert!(reachable, "prod: {label} may reach {endpoint}");
        }
    }
}

#[test]
fn every_workload_container_runs_as_non_root_on_a_read_only_root_filesystem_without_privileges() {
    for overlay in OVERLAYS {
        for workload in workloads(overlay) {
            let pod = &workload["spec"]["template"]["spec"]["securityContext"];
            for (label, container) in containers(workload) {
                let context = &container["securityContext"];
                assert!(
                    context["runAsNonRoot"] == true
                        || (context["runAsNonRoot"].is_null() && pod["runAsNonRoot"] == true),
                    "{overlay}: {label} runAsNonRoot"
                );
                assert_eq!(
                    context["readOnlyRootFilesystem"], true,
                    "{overlay}: {label} readOnlyRootFilesystem"
                );
                assert_eq!(
                    context["allowPrivilegeEscalation"], false,
                    "{overlay}: {label} allowPrivilegeEscalation"
                );
                assert!(
                    array(&context["capabilities"]["drop"]).contains(&Value::from("ALL")),
                    "{overlay}: {label} drops ALL capabilities"
                );
                assert!(
                    array(&context["capabilities"]["add"]).is_empty(),
                    "{overlay}: {label} adds no capability"
                );
            }
        }
    }
}

#[test]
fn every_workload_container_requests_and_limits_cpu_and_memory() {
    for overlay in OVERLAYS {
        for workload in workloads(overlay) {
            for (label, container) in containers(workload) {
                for bound in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            container["resources"][bound][resource].is_string(),
                            "{overlay}: {label} has no {bound}.{resource}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_workload_is_given_longer_to_terminate_than_a_drain_takes() {
    for overlay in OVERLAYS {
        for workload in workloads(overlay) {
            let pod = &workload["spec"]["template"]["spec"];
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
            // The longest call a drain waits for is ingest's ApplyEvents, 10 s by default,
            // after the preStop sleep: 30 s (Kubernetes' default) leaves too little room.
            assert!(
                grace > 30,
                "{overlay}: {} terminationGracePeriodSeconds {grace}",
                name(workload)
            );
            for (label, container) in containers(workload) {
                let sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                    .as_u64()
                    .unwrap_or(0);
                assert!(
                    sleep + 30 < grace,
                    "{overlay}: {label} preStop sleep {sleep} s leaves under 30 s of {grace} s"
                );
            }
        }
    }
}

#[test]
fn every_deployment_has_an_autoscaler_and_a_disruption_budget() {
    for overlay in OVERLAYS {
        for deployment in kind(overlay, "Deployment") {
            let name = name(deployment);
            let hpa = kind(overlay, "HorizontalPodAutoscaler")
                .find(|h| {
                    let target = &h["spec"]["scaleTargetRef"];
                    target["kind"] == "Deployment" && target["name"] == name
                })
                .unwrap_or_else(|| panic!("{overlay}: no HorizontalPodAutoscaler for {name}"));
            let (min, max) = (
                hpa["spec"]["minReplicas"].as_u64().unwrap_or(1),
                hpa["spec"]["maxReplicas"].as_u64().unwrap_or(0),
            );
            assert!(
                min >= 1 && max > min,
                "{overlay}: {name} scales {min}..{max}"
            );
            assert!(
                deployment["spec"]["replicas"].is_null(),
                "{overlay}: {name} leaves its replica count to the autoscaler"
            );
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            assert!(
                kind(overlay, "PodDisruptionBudget")
                    .any(|p| labels_match(&p["spec"]["selector"], labels)),
                "{overlay}: no PodDisruptionBudget selects {name}'s pods"
            );
        }
    }
    let prod_minimum = kind("prod", "HorizontalPodAutoscaler")
        .filter_map(|h| h["spec"]["minReplicas"].as_u64())
        .min();
    assert!(
        prod_minimum >= Some(2),
        "prod runs several replicas of each service: {prod_minimum:?}"
    );
}

#[test]
fn manifests_set_only_environment_variables_the_services_read() {
    for overlay in OVERLAYS {
        for service in SERVICES.iter() {
            for (label, container) in containers(deployment(overlay, service.name)) {
                let env: BTreeMap<&str, &Value> = array(&container["env"])
                    .iter()
                    .map(|e| (e["name"].as_str().expect("env names are strings"), e))
                    .collect();
                let unknown: Vec<&&str> =
                    env.keys().filter(|n| !service.env.contains(**n)).collect();
                assert!(
                    unknown.is_empty(),
                    "{overlay}: {label} sets {unknown:?}, which govpulse-{} does not read \
                     (it reads {:?})",
                    service.name,
                    service.env
                );
                assert!(
                    container["envFrom"].is_null(),
                    "{overlay}: {label}: name each variable"
                );
                assert_eq!(
                    env.get("GOVPULSE_LOG_FORMAT").map(|e| &e["value"]),
                    Some(&Value::from("json")),
                    "{overlay}: {label} logs JSON in the cluster"
                );
                let listen = env.get("GOVPULSE_LISTEN").map(|e| &e["value"]);
                assert_eq!(
                    listen,
                    Some(&Value::from(format!("0.0.0.0:{}", service.port))),
                    "{overlay}: {label} listens on its grpc port"
                );
            }
        }
    }
}

#[test]
fn ingest_and_aggregate_share_one_horizon() {
    for overlay in OVERLAYS {
        let horizon = |service: &str| {
            array(&deployment(overlay, service)["spec"]["template"]["spec"]["containers"][0]["env"])
                .iter()
                .find(|e| e["name"] == "GOVPULSE_HORIZON_DAYS")
                .map(|e| e["valueFrom"].clone())
                .unwrap_or_else(|| panic!("{overlay}: {service} sets GOVPULSE_HORIZON_DAYS"))
        };
        assert_eq!(horizon("ingest"), horizon("aggregate"), "{overlay}");
    }
}

/// The ConfigMap whose name, before kustomize's hash suffix, is `prefix`.
fn config_map(overlay: &str, prefix: &str) -> &'static Value {
    kind(overlay, "ConfigMap")
        .find(|c| {
            let name = name(c);
            name == prefix
                || name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('-') && !rest[1..].contains('-'))
        })
        .unwrap_or_else(|| panic!("{overlay}: no ConfigMap {prefix}"))
}

#[test]
fn the_catalog_targets_and_index_profiles_config_maps_hold_the_files_in_deploy() {
    let root = repo_root();
    let mut catalog_files = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("deploy/catalog")).expect("deploy/catalog") {
        let path = entry.expect("a catalog entry").path();
        if path.extension().is_some_and(|e| e == "csv") {
            let file = path.file_name().expect("a file name").to_string_lossy();
            let text = std::fs::read_to_string(&path).expect("a readable catalog file");
            catalog_files.insert(file.into_owned(), Value::from(text));
        }
    }
    assert!(
        catalog_files.contains_key("provinces.csv"),
        "{catalog_files:?}"
    );
    // The files reloaded while the services run: one ConfigMap each, under a fixed name.
    let reloaded = ["targets", "indexes", "alerts"].map(|name| {
        let file = format!("{name}.toml");
        let text = std::fs::read_to_string(root.join("deploy/config").join(&file))
            .unwrap_or_else(|e| panic!("deploy/config/{file}: {e}"));
        (format!("govpulse-{name}"), file, text)
    });
    for overlay in OVERLAYS {
        let catalog = config_map(overlay, "govpulse-catalog");
        let data: BTreeMap<String, Value> =
            serde_json::from_value(catalog["data"].clone()).expect("string data");
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            catalog_files.keys().collect::<Vec<_>>(),
            "{overlay}: the catalog ConfigMap holds every CSV file of deploy/catalog"
        );
        assert!(
            data == catalog_files,
            "{overlay}: the catalog ConfigMap differs from deploy/catalog"
        );
        for (map_name, file, text) in &reloaded {
            let map = config_map(overlay, map_name);
            assert_eq!(
                name(map),
                map_name,
                "{overlay}: a fixed name, so that an edit reaches running pods and is reloaded"
            );
            assert_eq!(
                map["data"][file.as_str()].as_str(),
                Some(text.as_str()),
                "{overlay}: the {map_name} ConfigMap differs from deploy/config/{file}"
            );
        }
    }
}

#[test]
fn every_file_a_service_is_pointed_at_is_mounted_from_its_config_map() {
    let files = [
        ("GOVPULSE_CATALOG_DIR", "govpulse-catalog", None),
        ("GOVPULSE_TARGETS", "govpulse-targets", Some("targets.toml")),
        (
            "GOVPULSE_INDEX_PROFILES",
            "govpulse-indexes",
            Some("indexes.toml"),
        ),
        (
            "GOVPULSE_ALERT_RULES",
            "govpulse-alerts",
            Some("alerts.toml"),
        ),
    ];
    for overlay in OVERLAYS {
        for service in SERVICES.iter() {
            let deployment = deployment(overlay, service.name);
            let pod = &deployment["spec"]["template"]["spec"];
            for (label, container) in containers(deployment) {
                for (variable, map, file) in files {
                    let Some(value) = array(&container["env"])
                        .iter()
                        .find(|e| e["name"] == variable)
                        .and_then(|e| e["value"].as_str())
                    else {
                        continue;
                    };
                    let dir = match file {
                        Some(file) => value
                            .strip_suffix(file)
                            .and_then(|d| d.strip_suffix('/'))
                            .unwrap_or_else(|| panic!("{overlay}: {label} {variable}={value}")),
                        None => value,
                    };
                    let mount = array(&container["volumeMounts"])
                        .iter()
                        .find(|m| m["mountPath"] == dir)
                        .unwrap_or_else(|| panic!("{overlay}: {label}: nothing mounted at {dir}"));
                    assert!(
                        mount["subPath"].is_null(),
                        "{overlay}: {label}: a subPath mount never sees ConfigMap updates"
                    );
                    let volume = array(&pod["volumes"])
                        .iter()
                        .find(|v| v["name"] == mount["name"])
                        .expect("a mounted volume is declared");
                    let source = volume["configMap"]["name"].as_str().unwrap_or_default();
                    assert!(
                        source == name(config_map(overlay, map)),
                        "{overlay}: {label}: {dir} comes from {source:?}, not {map}"
                    );
                }
            }
        }
    }
}

#[test]
fn services_name_their_grpc_ports_and_aggregate_has_a_headless_service_for_every_replica() {
    for overlay in OVERLAYS {
        assert_service_ports(overlay, "has an unnamed port", |port| {
            port["name"].is_string()
        });
        for svc in SERVICES.iter() {
            let labels = &deployment(overlay, svc.name)["spec"]["template"]["metadata"]["labels"];
            let serving: Vec<&Value> = kind(overlay, "Service")
                .filter(|s| {
                    let selector = &s["spec"]["selector"];
                    selector.as_object().is_some_and(|m| !m.is_empty())
                        && selector
                            .as_object()
                            .is_some_and(|m| m.iter().all(|(k, v)| &labels[k] == v))
                })
                .collect();
            assert!(
                serving.iter().any(|s| array(&s["spec"]["ports"])
                    .iter()
                    .any(|p| p["name"] == "grpc" && p["port"].as_u64() == Some(svc.port))),
                "{overlay}: no Service exposes {} as grpc:{}",
                svc.name,
                svc.port
            );
            let headless = serving.iter().any(|s| s["spec"]["clusterIP"] == "None");
            assert_eq!(
                headless,
                svc.name == "aggregate",
                "{overlay}: a headless Service for {}",
                svc.name
            );
        }
        let public: BTreeSet<&str> = kind(overlay, "Service")
            .filter(|s| s["spec"]["type"] == "LoadBalancer" || s["spec"]["type"] == "NodePort")
            .map(name)
            .collect();
        assert!(
            public.is_subset(&["ingest", "ranking"].into()),
            "{overlay}: only ingest and ranking are exposed, not {public:?}"
        );
    }
}

/// Whether a NetworkPolicy peer list admits pods of this `name`.
fn peers_admit(peers: &Value, app: &str) -> bool {
    array(peers)
        .iter()
        .any(|p| p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == app)
}

#[test]
fn network_policies_deny_by_default_and_only_aggregate_reaches_redis() {
    for overlay in OVERLAYS {
        let policies: Vec<&Value> = kind(overlay, "NetworkPolicy").collect();
        assert!(
            policies.iter().any(|p| {
                p["spec"]["podSelector"]
                    .as_object()
                    .is_some_and(|s| s.is_empty())
                    && p["spec"].get("ingress").is_none()
                    && p["spec"].get("egress").is_none()
                    && array(&p["spec"]["policyTypes"]).len() == 2
            }),
            "{overlay}: a default-deny policy for ingress and egress"
        );
        let selects = |p: &Value, app: &str| {
            p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == app
        };
        let ingress_rules = |app: &'static str| {
            policies
                .iter()
                .filter(move |p| selects(p, app))
                .flat_map(|p| array(&p["spec"]["ingress"]))
        };
        // Public: a rule with no `from` admits every source, on the gRPC port only.
        for (app, port) in [("ingest", 50051), ("ranking", 50053)] {
            assert!(
                ingress_rules(app)
                    .any(|r| r["from"].is_null()
                        && array(&r["ports"]).iter().all(|p| p["port"] == port)),
                "{overlay}: {app} is reachable from anywhere on {port}"
            );
        }
        for rule in ingress_rules("aggregate") {
            assert!(
                !array(&rule["from"]).is_empty()
                    && array(&rule["from"]).iter().all(|peer| {
                        let app = &peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"];
                        peer.get("namespaceSelector").is_none()
                            && peer.get("ipBlock").is_none()
                            && (app == "ingest" || app == "ranking")
                    }),
                "{overlay}: aggregate admits only ingest and ranking: {rule}"
            );
        }
        for rule in ingress_rules("redis") {
            assert!(
                peers_admit(&rule["from"], "aggregate") && array(&rule["from"]).len() == 1,
                "{overlay}: Redis admits aggregate only: {rule}"
            );
        }
        // Egress to Redis' port: aggregate's, nobody else's.
        for policy in &policies {
            for rule in array(&policy["spec"]["egress"]) {
                if array(&rule["ports"]).iter().any(|p| p["port"] == 6379) {
                    assert!(
                        selects(policy, "aggregate"),
                        "{overlay}: {} lets other pods than aggregate reach Redis",
                        name(policy)
                    );
                }
            }
        }
        assert!(
            policies.iter().any(|p| selects(p, "aggregate")
                && array(&p["spec"]["egress"])
                    .iter()
                    .any(|r| array(&r["ports"]).iter().any(|p| p["port"] == 6379))),
            "{overlay}: aggregate may reach Redis"
        );
        for client in ["ingest", "ranking"] {
            assert!(
                policies.iter().any(|p| selects(p, client)
                    && array(&p["spec"]["egress"])
                        .iter()
                        .any(|r| peers_admit(&r["to"], "aggregate"))),
                "{overlay}: {client} may reach aggregate"
            );
        }
    }
}

#[test]
fn the_dev_redis_keeps_every_acknowledged_batch_on_disk() {
    let redis = kind("dev", "StatefulSet")
        .find(|s| name(s) == "redis")
        .expect("dev runs a Redis StatefulSet");
    assert_eq!(redis["spec"]["replicas"], 1, "a single Redis");
    let container = &redis["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = array(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let setting = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1).copied())
    };
    assert_eq!(setting("--appendonly"), Some("yes"), "{args:?}");
    assert_eq!(setting("--appendfsync"), Some("always"), "{args:?}");
    // A parent's day roll-up, a field per child, as a hash table: in a listpack every field
    // set is found by a scan (docs/OPERATIONS.md, section 6).
    let listpack_fields: u32 = setting("--hash-max-listpack-entries")
        .and_then(|n| n.parse().ok())
        .expect("a listpack limit for hashes");
    assert!(listpack_fields <= 64, "{args:?}");
    let data = setting("--dir").expect("a data directory");
    assert!(
        array(&container["volumeMounts"])
            .iter()
            .any(|m| m["mountPath"] == data),
        "{data} is a volume, the root filesystem being read-only"
    );
    let claims = array(&redis["spec"]["volumeClaimTemplates"]);
    assert!(!claims.is_empty(), "the data outlives the pod");
    // The append-only file grows to its rewrite size (or, past it, to twice a base as large
    // as memory allows) while a rewrite writes the next base beside it: the volume holds
    // both.
    let rewrite_from = bytes(setting("--auto-aof-rewrite-min-size").expect("a rewrite size"));
    let memory = bytes(
        container["resources"]["limits"]["memory"]
            .as_str()
            .expect("a memory limit"),
    );
    let storage = bytes(
        claims[0]["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .expect("a storage request"),
    );
    assert!(
        storage >= rewrite_from.max(2 * memory) + memory,
        "{storage} bytes of volume for an append-only file rewritten from {rewrite_from} bytes and {memory} bytes of memory"
    );
}

/// A size as Redis (`1gb`, `64mb`) or Kubernetes (`4Gi`, `512Mi`) writes it, in bytes.
fn bytes(size: &str) -> u64 {
    let (number, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let scale: u64 = match unit {
        "" | "b" => 1,
        "kb" | "Ki" => 1 << 10,
        "mb" | "Mi" => 1 << 20,
        "gb" | "Gi" => 1 << 30,
        other => panic!("{size}: unknown unit {other:?}"),
    };
    number.parse::<u64>().expect("a size's number") * scale
}

#[test]
fn the_dockerfile_builds_each_service_binary_into_a_non_root_image_without_a_shell() {
    let root = repo_root();
    let dockerfile =
        std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    // Instructions, continuation lines joined, comments dropped.
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let build = lines
        .iter()
        .find(|l| l.starts_with("RUN cargo build"))
        .expect("a cargo build step");
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "the images build the locked dependencies the tests use, in release: {build}"
    );
    for service in SERVICES.iter() {
        let binary = format!("govpulse-{}", service.name);
        let manifest: toml::Table =
            std::fs::read_to_string(root.join("services").join(service.name).join("Cargo.toml"))
                .expect("the service's Cargo.toml")
                .parse()
                .expect("valid TOML");
        let bins: Vec<&str> = manifest["bin"]
            .as_array()
            .expect("a [[bin]] section")
            .iter()
            .filter_map(|b| b["name"].as_str())
            .collect();
        assert_eq!(
            bins,
            [binary.as_str()],
            "{}: the binary's name",
            service.name
        );
        assert!(
            build.contains(&format!("-p {binary}")),
            "the build step builds {binary}: {build}"
        );
        let start = lines
            .iter()
            .position(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {}", service.name)))
            .unwrap_or_else(|| panic!("a stage named {} for --target", service.name));
        let from = lines[start];
        assert!(
            from.starts_with("FROM gcr.io/distroless/") && from.contains(":nonroot"),
            "{}: a distroless non-root base has no shell: {from}",
            service.name
        );
        let stage: Vec<&str> = lines[start + 1..]
            .iter()
            .take_while(|l| !l.starts_with("FROM "))
            .copied()
            .collect();
        let has = |prefix: &str| stage.iter().any(|l| l.starts_with(prefix));
        assert!(
            has(&format!(
                "COPY --from=builder /src/target/release/{binary} "
            )),
            "{}: copies {binary}: {stage:?}",
            service.name
        );
        assert!(
            has("USER 65532") || has("USER nonroot"),
            "{}: runs as the non-root user",
            service.name
        );
        assert!(
            has(&format!("EXPOSE {}", service.port)),
            "{}: exposes {}",
            service.name,
            service.port
        );
        assert!(
            has(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]")),
            "{}: exec-form entrypoint, no shell: {stage:?}",
            service.name
        );
        for overlay in OVERLAYS {
            let image = deployment(overlay, service.name)["spec"]["template"]["spec"]["containers"]
                [0]["image"]
                .as_str()
                .expect("an image");
            let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
            assert!(
                repository == binary || repository.ends_with(&format!("/{binary}")),
                "{overlay}: {} runs the {binary} image, not {image}",
                service.name
            );
        }
    }
}

/// Standard base64 (what kustomize writes in a Secret's `data`), or `None`.
fn base64_decode(text: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    // Long values come folded over several lines.
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let value = ALPHABET.iter().position(|a| *a == c)?;
        buffer = (buffer << 6) | u32::try_from(value).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    String::from_utf8(bytes).ok()
}

/// What the operator's Secrets hold in a cluster, generated for the test: a CA, one
/// certificate it signs for `localhost` (the name the test's clients and services dial) that
/// serves as every service's server and client certificate, and a token file.
struct OperatorSecrets {
    ca: String,
    cert: String,
    key: String,
    tokens: String,
}

/// The bearer token the generated token file admits, as a reporter for Tuyên Quang.
const TOKEN: &str = "k8s-manifests-test-token";

impl OperatorSecrets {
    fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("certificate");
        let tokens = govpulse_e2e::credential_for(
            &govpulse_edge::auth::token_hash(TOKEN),
            "tuyen-quang",
            "\"reporter\"",
        );
        Self {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
            tokens,
        }
    }

    /// The content of the file a variable names in an operator's Secret.
    fn file_for(&self, variable: &str) -> &str {
        match variable {
            "GOVPULSE_TLS_CERT" | "GOVPULSE_UPSTREAM_CERT" => &self.cert,
            "GOVPULSE_TLS_KEY" | "GOVPULSE_UPSTREAM_KEY" => &self.key,
            "GOVPULSE_TLS_CLIENT_CA" | "GOVPULSE_UPSTREAM_CA" => &self.ca,
            "GOVPULSE_TOKENS" => &self.tokens,
            _ => panic!("{variable} names a file of a Secret this test cannot make"),
        }
    }
}

/// The files of the volumes a Deployment mounts, written under `root` at their mount paths:
/// a ConfigMap's or a rendered Secret's data, and for a Secret the operator creates, the
/// generated files its container's variables name. Returns (mount path, folder written).
fn write_mounted_volumes(
    overlay: &str,
    deployment: &Value,
    root: &Path,
    secrets: &OperatorSecrets,
) -> Vec<(String, PathBuf)> {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mut mounts = Vec::new();
    for mount in array(&container["volumeMounts"]) {
        let volume = array(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("a mounted volume is declared");
        let mount_path = mount["mountPath"].as_str().expect("a mount path");
        let dir = root.join(mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("a folder for the volume");
        if let Some(map_name) = volume["configMap"]["name"].as_str() {
            let map = kind(overlay, "ConfigMap")
                .find(|c| name(c) == map_name)
                .unwrap_or_else(|| panic!("{overlay}: ConfigMap {map_name} is mounted but absent"));
            for (file, text) in map["data"].as_object().expect("ConfigMap data") {
                std::fs::write(dir.join(file), text.as_str().expect("text data")).expect("write");
            }
        } else if let Some(secret_name) = volume["secret"]["secretName"].as_str() {
            match kind(overlay, "Secret").find(|s| name(s) == secret_name) {
                Some(secret) => {
                    for (file, data) in secret["data"].as_object().expect("Secret data") {
                        let text = data.as_str().and_then(base64_decode).expect("base64 text");
                        std::fs::write(dir.join(file), text).expect("write");
                    }
                }
                None => {
                    for env in array(&container["env"]) {
                        let variable = env["name"].as_str().expect("a name");
                        let Some(file) = env["value"]
                            .as_str()
                            .and_then(|v| v.strip_prefix(mount_path))
                            .and_then(|rest| rest.strip_prefix('/'))
                        else {
                            continue;
                        };
                        std::fs::write(dir.join(file), secrets.file_for(variable)).expect("write");
                    }
                }
            }
        } else {
            panic!(
                "{overlay}: volume {} is neither a ConfigMap nor a Secret",
                volume["name"]
            );
        }
        mounts.push((mount_path.to_owned(), dir));
    }
    mounts
}

/// The command line a service's `Config` would build from the Deployment's environment,
/// with what only the cluster has replaced: listen (gRPC, health, metrics) on free loopback
/// ports, the aggregate Service's address by `aggregate_url`, the Redis URL Secret by
/// `redis_url`, mount paths by the folders the volumes were written to. The OpenTelemetry
/// variables are left out: the SDK reads them, and the tests install no exporter.
fn command_line(
    overlay: &str,
    service: &str,
    command: &clap::Command,
    mounts: &[(String, PathBuf)],
    aggregate_url: &str,
    redis_url: &str,
) -> Vec<String> {
    let container = &deployment(overlay, service)["spec"]["template"]["spec"]["containers"][0];
    let mut line = vec![format!("govpulse-{service}")];
    for env in array(&container["env"]) {
        let variable = env["name"].as_str().expect("a name");
        if variable == "RUST_LOG"
            || variable == "GOVPULSE_LOG_FORMAT"
            || OTEL_VARIABLES.contains(&variable)
        {
            continue; // read by telemetry, which the tests do not install
        }
        let from = &env["valueFrom"];
        let value = if let Some(key) = from["configMapKeyRef"]["key"].as_str() {
            let map_name = from["configMapKeyRef"]["name"].as_str().expect("a name");
            let map = kind(overlay, "ConfigMap")
                .find(|c| name(c) == map_name)
                .unwrap_or_else(|| panic!("{overlay}: {variable} names a missing ConfigMap"));
            map["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("{overlay}: {map_name} has no key {key}"))
                .to_owned()
        } else if let Some(key) = from["secretKeyRef"]["key"].as_str() {
            let secret_name = from["secretKeyRef"]["name"].as_str().expect("a name");
            let secret = kind(overlay, "Secret")
                .find(|s| name(s) == secret_name)
                .unwrap_or_else(|| panic!("{overlay}: {variable} names a missing Secret"));
            let url = secret["data"][key]
                .as_str()
                .and_then(base64_decode)
                .unwrap_or_else(|| panic!("{overlay}: {secret_name}.{key} is not base64 text"));
            assert_eq!(variable, "GOVPULSE_STORE", "the only Secret is Redis' URL");
            let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_owned());
            assert_eq!(
                scheme(&url),
                scheme(redis_url),
                "{overlay}: the Secret's Redis URL {url} is of the kind this test runs"
            );
            redis_url.to_owned()
        } else {
            let value = env["value"].as_str().expect("a literal value");
            match variable {
                "GOVPULSE_LISTEN" | "GOVPULSE_HEALTH_LISTEN" | "GOVPULSE_METRICS_LISTEN" => {
                    "127.0.0.1:0".to_owned()
                }
                "GOVPULSE_AGGREGATE_URL" => {
                    let (scheme, address) = value.split_once("://").expect("a URL");
                    assert_eq!(address, "aggregate:50052", "{overlay}: {service}");
                    assert!(
                        aggregate_url.starts_with(&format!("{scheme}://")),
                        "{overlay}: {service} calls {value}, aggregate serves {aggregate_url}"
                    );
                    aggregate_url.to_owned()
                }
                _ => mounts
                    .iter()
                    .find_map(|(path, dir)| {
                        value
                            .strip_prefix(path.as_str())
                            .map(|rest| format!("{}{rest}", dir.display()))
                    })
                    .unwrap_or_else(|| value.to_owned()),
            }
        };
        let flag = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == variable))
            .and_then(|a| a.get_long())
            .unwrap_or_else(|| panic!("{service} has no flag for {variable}"));
        line.push(format!("--{flag}={value}"));
    }
    line
}

/// Whether a Deployment's gRPC port speaks TLS, by its environment.
fn serves_tls(overlay: &str, service: &str) -> bool {
    let container = &deployment(overlay, service)["spec"]["template"]["spec"]["containers"][0];
    env_value(container, "GOVPULSE_TLS_CERT").is_some()
}

/// A channel to a service on loopback: over TLS trusting `ca` when given (the certificate
/// names localhost), else plaintext.
fn loopback_channel(addr: std::net::SocketAddr, ca: Option<&str>) -> tonic::transport::Channel {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).expect("a URL");
    if let Some(ca) = ca {
        endpoint = endpoint
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .expect("TLS settings");
    }
    endpoint.connect_lazy()
}

/// Runs the three services with `overlay`'s environment, ConfigMap files and Secrets (the
/// generated ones where the operator creates them), counting into `store_url`; checks each
/// health port, and sends one event that counts and one the catalog's mergers refuse, with
/// the token and over the TLS the manifests require.
/// The configuration `service`'s manifest in `overlay` gives (its mounted files written
/// under `root`), as the service parses its command line.
fn manifest_config<C: clap::Parser>(
    overlay: &str,
    service: &str,
    root: &Path,
    secrets: &OperatorSecrets,
    aggregate_url: &str,
    store_url: &str,
) -> C {
    let mounts = write_mounted_volumes(overlay, deployment(overlay, service), root, secrets);
    let line = command_line(
        overlay,
        service,
        &C::command(),
        &mounts,
        aggregate_url,
        store_url,
    );
    C::try_parse_from(&line).unwrap_or_else(|e| panic!("{service}'s manifest: {e}"))
}

async fn run_overlay_on_loopback(overlay: &'static str, store_url: &str) {
    use govpulse_e2e::Spawned;
    use govpulse_proto::{
        catalog::Block,
        event::OutcomeStatus,
        ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
        ranking::{GetRankingRequest, RankingQuery, ranking_service_client::RankingServiceClient},
    };
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let root = std::env::temp_dir().join(format!("govpulse-k8s-{overlay}-{}", std::process::id()));
    let secrets = OperatorSecrets::generate();
    let config: govpulse_aggregate::Config =
        manifest_config(overlay, "aggregate", &root, &secrets, "", store_url);
    let aggregate = Spawned::aggregate(config).await;
    // The generated certificate names localhost, as aggregate's names the aggregate Service.
    let aggregate_url = match serves_tls(overlay, "aggregate") {
        true => format!("https://localhost:{}", aggregate.addr().port()),
        false => format!("http://{}", aggregate.addr()),
    };
    let config: govpulse_ingest::Config =
        manifest_config(overlay, "ingest", &root, &secrets, &aggregate_url, "");
    let needs_token = config.token_file.tokens.is_some();
    let ingest = Spawned::ingest(config).await;
    let config: govpulse_ranking::Config =
        manifest_config(overlay, "ranking", &root, &secrets, &aggregate_url, "");
    let ranking = Spawned::ranking(config).await;

    // What the kubelet's probes ask: plaintext, on the health port.
    for spawned in [&aggregate, &ingest, &ranking] {
        let service = spawned.name();
        let addr = spawned
            .health_addr()
            .unwrap_or_else(|| panic!("{overlay}: {service} has a health port"));
        let status = HealthClient::new(loopback_channel(addr, None))
            .check(HealthCheckRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{overlay}: {service}'s health port answers: {e}"))
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "{overlay}: {service}"
        );
    }

    let now = time::OffsetDateTime::now_utc();
    let events = vec![
        govpulse_e2e::received("k8s-1", "tuyen-quang", now, true),
        // Merged away in 2025: refused only if mergers.csv came through the ConfigMap.
        govpulse_e2e::received("k8s-2", "ha-giang", now, true),
    ];
    let mut request = tonic::Request::new(SubmitEventsRequest { events });
    if needs_token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("a header value"),
        );
    }
    let ca = |service| serves_tls(overlay, service).then_some(secrets.ca.as_str());
    let ingest_channel = loopback_channel(ingest.addr(), ca("ingest"));
    let response = IngestServiceClient::new(ingest_channel)
        .submit_events(request)
        .await
        .expect("submit")
        .into_inner();
    let statuses: Vec<(OutcomeStatus, &str)> = response
        .outcomes
        .iter()
        .map(|o| {
            let status = OutcomeStatus::try_from(o.status).expect("a known status");
            (status, o.reason.split(';').next().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (OutcomeStatus::Accepted, ""),
            (
                OutcomeStatus::Rejected,
                "agency ha-giang was merged into tuyen-quang on 2025-07-01"
            )
        ]
    );
    let query = RankingQuery {
        metric: "online-dossier-rate".into(),
        block: Block::Province.into(),
        period: "ytd".into(),
        selection: None,
        index: String::new(),
        parent_id: String::new(),
        ..Default::default()
    };
    let ranking_channel = loopback_channel(ranking.addr(), ca("ranking"));
    let ranked = RankingServiceClient::new(ranking_channel)
        .get_ranking(GetRankingRequest { query: Some(query) })
        .await
        .expect("a ranking read through aggregate")
        .into_inner();
    // One dossier is below the manifests' minimum volume: listed, not ranked.
    assert_eq!(ranked.ranked_count, 0, "one dossier is not ranked");
    let row = ranked
        .rows
        .iter()
        .find(|r| r.agency_id == "tuyen-quang")
        .expect("tuyen-quang listed");
    assert!(row.below_minimum_volume, "{row:?}");
    assert_eq!(ranked.min_volume, 30, "the manifests' minimum volume");

    for spawned in [ingest, ranking, aggregate] {
        spawned.stop().await;
    }
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[tokio::test]
async fn the_dev_overlay_configuration_runs_the_three_services_against_a_real_redis() {
    let redis = govpulse_e2e::RedisServer::start().expect("redis-server starts");
    run_overlay_on_loopback("dev", &redis.url()).await;
}

#[tokio::test]
async fn the_prod_overlay_configuration_runs_the_three_services_against_a_real_redis_cluster() {
    let cluster = govpulse_e2e::RedisCluster::start().expect("a three-master redis cluster starts");
    run_overlay_on_loopback("prod", &cluster.url()).await;
}
