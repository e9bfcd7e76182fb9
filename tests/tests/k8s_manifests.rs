//! The Kubernetes manifests and the Dockerfile, checked without a cluster or a container
//! engine: both overlays rendered by `kubectl kustomize`, every workload probed, hardened and
//! bounded, what the manifests configure in step with what the binaries read, and each
//! overlay's configuration (environment, ConfigMaps, the kind of Redis URL) run as the three
//! services on loopback against a real Redis: a single one for dev, a cluster for prod.

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

fn service(name: &'static str, port: u64, command: clap::Command) -> Service {
    // Telemetry reads these two outside `Config` (services/common/src/telemetry.rs).
    let mut env: BTreeSet<String> = ["RUST_LOG", "GOVPULSE_LOG_FORMAT"].map(String::from).into();
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

/// Both overlays rendered once; a failure is kept as text so that every test reports it.
static RENDERED: LazyLock<Result<BTreeMap<&'static str, Vec<Value>>, String>> =
    LazyLock::new(|| OVERLAYS.into_iter().map(|o| Ok((o, render(o)?))).collect());

/// `kubectl kustomize` of one overlay, one JSON value per YAML document.
fn render(overlay: &str) -> Result<Vec<Value>, String> {
    let dir = repo_root().join("k8s/overlays").join(overlay);
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

#[test]
fn every_deployment_has_grpc_readiness_and_liveness_probes_on_its_grpc_port() {
    for overlay in OVERLAYS {
        for service in SERVICES.iter() {
            let deployment = deployment(overlay, service.name);
            for (label, container) in containers(deployment) {
                let ports: Vec<u64> = array(&container["ports"])
                    .iter()
                    .filter(|p| p["name"] == "grpc")
                    .filter_map(|p| p["containerPort"].as_u64())
                    .collect();
                assert_eq!(ports, [service.port], "{overlay}: {label} grpc port");
                for probe in ["readinessProbe", "livenessProbe"] {
                    let grpc = &container[probe]["grpc"];
                    assert_eq!(
                        grpc["port"].as_u64(),
                        Some(service.port),
                        "{overlay}: {label} needs a gRPC {probe} on {}",
                        service.port
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
    let targets = std::fs::read_to_string(root.join("deploy/config/targets.toml"))
        .expect("deploy/config/targets.toml");
    let indexes = std::fs::read_to_string(root.join("deploy/config/indexes.toml"))
        .expect("deploy/config/indexes.toml");
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
        let targets_map = config_map(overlay, "govpulse-targets");
        assert_eq!(
            name(targets_map),
            "govpulse-targets",
            "{overlay}: a fixed name, so that an edit reaches running pods and is reloaded"
        );
        assert_eq!(
            targets_map["data"]["targets.toml"].as_str(),
            Some(targets.as_str()),
            "{overlay}: the targets ConfigMap differs from deploy/config/targets.toml"
        );
        let indexes_map = config_map(overlay, "govpulse-indexes");
        assert_eq!(
            name(indexes_map),
            "govpulse-indexes",
            "{overlay}: a fixed name, so that an edit reaches running pods and is reloaded"
        );
        assert_eq!(
            indexes_map["data"]["indexes.toml"].as_str(),
            Some(indexes.as_str()),
            "{overlay}: the index profiles ConfigMap differs from deploy/config/indexes.toml"
        );
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
        for service in kind(overlay, "Service") {
            for port in array(&service["spec"]["ports"]) {
                assert!(
                    port["name"].is_string(),
                    "{overlay}: Service {} has an unnamed port",
                    name(service)
                );
            }
        }
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
    let data = setting("--dir").expect("a data directory");
    assert!(
        array(&container["volumeMounts"])
            .iter()
            .any(|m| m["mountPath"] == data),
        "{data} is a volume, the root filesystem being read-only"
    );
    assert!(
        !array(&redis["spec"]["volumeClaimTemplates"]).is_empty(),
        "the data outlives the pod"
    );
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

/// The files of the ConfigMaps a Deployment mounts, written under `root` at their mount
/// paths; returns (mount path, folder written).
fn write_mounted_config_maps(
    overlay: &str,
    deployment: &Value,
    root: &Path,
) -> Vec<(String, PathBuf)> {
    let pod = &deployment["spec"]["template"]["spec"];
    let mut mounts = Vec::new();
    for mount in array(&pod["containers"][0]["volumeMounts"]) {
        let volume = array(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("a mounted volume is declared");
        let map_name = volume["configMap"]["name"]
            .as_str()
            .expect("a ConfigMap volume");
        let map = kind(overlay, "ConfigMap")
            .find(|c| name(c) == map_name)
            .unwrap_or_else(|| panic!("{overlay}: ConfigMap {map_name} is mounted but absent"));
        let mount_path = mount["mountPath"].as_str().expect("a mount path");
        let dir = root.join(mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("a folder for the ConfigMap");
        for (file, text) in map["data"].as_object().expect("ConfigMap data") {
            std::fs::write(dir.join(file), text.as_str().expect("text data")).expect("write");
        }
        mounts.push((mount_path.to_owned(), dir));
    }
    mounts
}

/// The command line a service's `Config` would build from the Deployment's environment,
/// with what only the cluster has replaced: listen on a free loopback port, the aggregate
/// Service's address by `aggregate_url`, the Redis URL Secret by `redis_url`, mount paths by
/// the folders the ConfigMaps were written to.
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
        if variable == "RUST_LOG" || variable == "GOVPULSE_LOG_FORMAT" {
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
                "GOVPULSE_LISTEN" => "127.0.0.1:0".to_owned(),
                "GOVPULSE_AGGREGATE_URL" => {
                    assert_eq!(value, "http://aggregate:50052", "{overlay}: {service}");
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

/// Runs the three services with `overlay`'s environment and ConfigMap files, counting into
/// `store_url`, and sends them one event that counts and one the catalog's mergers refuse.
async fn run_overlay_on_loopback(overlay: &'static str, store_url: &str) {
    use clap::Parser;
    use govpulse_proto::{
        catalog::Block,
        event::OutcomeStatus,
        ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
        ranking::{GetRankingRequest, RankingQuery, ranking_service_client::RankingServiceClient},
    };
    use tokio_util::sync::CancellationToken;

    let root = std::env::temp_dir().join(format!("govpulse-k8s-{overlay}-{}", std::process::id()));
    let stop = CancellationToken::new();

    let mounts = write_mounted_config_maps(overlay, deployment(overlay, "aggregate"), &root);
    let line = command_line(
        overlay,
        "aggregate",
        &govpulse_aggregate::Config::command(),
        &mounts,
        "",
        store_url,
    );
    let config = govpulse_aggregate::Config::try_parse_from(&line)
        .unwrap_or_else(|e| panic!("aggregate's manifest: {e}"));
    let aggregate = govpulse_aggregate::Server::build(config)
        .await
        .expect("aggregate starts with the manifest's configuration");
    let aggregate_url = format!("http://{}", aggregate.local_addr());
    let aggregate_task = tokio::spawn(aggregate.run_until(stop.clone().cancelled_owned()));

    let mounts = write_mounted_config_maps(overlay, deployment(overlay, "ingest"), &root);
    let line = command_line(
        overlay,
        "ingest",
        &govpulse_ingest::Config::command(),
        &mounts,
        &aggregate_url,
        "",
    );
    let config = govpulse_ingest::Config::try_parse_from(&line)
        .unwrap_or_else(|e| panic!("ingest's manifest: {e}"));
    let ingest = govpulse_ingest::Server::build(config)
        .await
        .expect("ingest starts with the manifest's configuration");
    let ingest_addr = ingest.local_addr();
    let ingest_task = tokio::spawn(ingest.run_until(stop.clone().cancelled_owned()));

    let mounts = write_mounted_config_maps(overlay, deployment(overlay, "ranking"), &root);
    let line = command_line(
        overlay,
        "ranking",
        &govpulse_ranking::Config::command(),
        &mounts,
        &aggregate_url,
        "",
    );
    let config = govpulse_ranking::Config::try_parse_from(&line)
        .unwrap_or_else(|e| panic!("ranking's manifest: {e}"));
    let ranking = govpulse_ranking::Server::build(config)
        .await
        .expect("ranking starts with the manifest's configuration");
    let ranking_addr = ranking.local_addr();
    let ranking_task = tokio::spawn(ranking.run_until(stop.clone().cancelled_owned()));

    let now = time::OffsetDateTime::now_utc();
    let events = vec![
        govpulse_e2e::received("k8s-1", "tuyen-quang", now, true),
        // Merged away in 2025: refused only if mergers.csv came through the ConfigMap.
        govpulse_e2e::received("k8s-2", "ha-giang", now, true),
    ];
    let response = IngestServiceClient::connect(format!("http://{ingest_addr}"))
        .await
        .expect("ingest answers")
        .submit_events(SubmitEventsRequest { events })
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
    };
    let ranking = RankingServiceClient::connect(format!("http://{ranking_addr}"))
        .await
        .expect("ranking answers")
        .get_ranking(GetRankingRequest { query: Some(query) })
        .await
        .expect("a ranking read through aggregate")
        .into_inner();
    assert_eq!(ranking.ranked_count, 1, "tuyen-quang's one dossier");

    stop.cancel();
    let stopped = |joined: Result<Result<(), _>, tokio::task::JoinError>, service: &str| {
        if let Err(e) = joined.expect("no panic") {
            panic!("{service} stopped with {e:?}");
        }
    };
    stopped(
        ingest_task.await.map(|r| r.map_err(|e| e.to_string())),
        "ingest",
    );
    stopped(
        ranking_task.await.map(|r| r.map_err(|e| e.to_string())),
        "ranking",
    );
    stopped(
        aggregate_task.await.map(|r| r.map_err(|e| e.to_string())),
        "aggregate",
    );
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
