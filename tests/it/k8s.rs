//! The Kubernetes manifests, checked without a cluster: `kubectl kustomize` renders the base
//! (`deploy/k8s`) and the example overlay, `kubernetes-validate` checks them against the
//! Kubernetes schemas offline, and the wiring is checked like the compose file's: each role is
//! given only variables it reads, probes ask for pages the role serves on ports it listens on,
//! and every reference (Service, Ingress, autoscalers, disruption budgets) names something
//! that exists.

use serde::Deserialize;
use serde_yaml::Value;
use std::{collections::BTreeMap, path::Path, process::Command};

fn tool(variable: &str) -> String {
    std::env::var(variable)
        .unwrap_or_else(|_| panic!("{variable} is not set: run the suite through `make test`"))
}

/// The rendered documents of a kustomization.
fn render(dir: &str) -> (String, Vec<Value>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(tool("TEST_KUBECTL"))
        .arg("kustomize")
        .arg(root.join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let documents = serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .collect();
    (text, documents)
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(documents, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_manifests_render_and_match_the_kubernetes_schemas() {
    for dir in ["deploy/k8s", "deploy/k8s-overlays/example"] {
        let (rendered, _) = render(dir);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), rendered).unwrap();
        let output = Command::new(tool("TEST_K8S_VALIDATE"))
            .args(["--strict", "--quiet"])
            .arg(file.path())
            .output()
            .expect("kubernetes-validate runs");
        assert!(
            output.status.success(),
            "{dir}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn each_role_gets_only_variables_it_reads_and_probes_what_it_serves() {
    let (_, documents) = render("deploy/k8s-overlays/example");
    let spec: serde_json::Value = serde_json::from_str(&audiomill_api::openapi_json()).unwrap();
    for deployment in of_kind(&documents, "Deployment") {
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let role = text(&container["args"][0]);
        let reads = audiomill::cli::variables_of(&role);
        assert!(!reads.is_empty(), "{role} is not a role");

        // Every variable, given directly or through a ConfigMap or Secret.
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        for variable in container["env"].as_sequence().unwrap() {
            let value = variable.get("value").map(text).unwrap_or_default();
            given.insert(text(&variable["name"]), value);
        }
        for source in container["envFrom"].as_sequence().unwrap() {
            let (kind, reference) = match source.get("configMapRef") {
                Some(reference) => ("ConfigMap", reference),
                None => ("Secret", &source["secretRef"]),
            };
            let data = named(&documents, kind, &text(&reference["name"]));
            let entries = data.get("data").or(data.get("stringData")).unwrap();
            for (name, value) in entries.as_mapping().unwrap() {
                given.insert(text(name), text(value));
            }
        }
        for name in given.keys() {
            assert!(
                reads.contains(name),
                "{role} is given {name}, which it does not read"
            );
        }
        for required in [
            "DATABASE_URL",
            "TEMPORAL_ADDRESS",
            "S3_BUCKET",
            "SMTP_URL",
            "PUBLIC_URL",
            "DOWNLOAD_LINK_SECRET",
        ] {
            assert!(given.contains_key(required), "{role} lacks {required}");
        }

        // Probes ask for pages this role serves, on the port it listens on.
        let listen = match role.as_str() {
            "gateway" => "LISTEN_ADDR",
            _ => "METRICS_LISTEN",
        };
        let port: u16 = given[listen].rsplit(':').next().unwrap().parse().unwrap();
        let ports = container["ports"].as_sequence().unwrap();
        let named_port = ports
            .iter()
            .find(|p| p["containerPort"].as_u64() == Some(u64::from(port)))
            .unwrap_or_else(|| panic!("{role} does not expose {listen}'s port {port}"));
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["port"], named_port["name"], "{role} {probe} port");
            let path = text(&get["path"]);
            match role.as_str() {
                "gateway" => assert!(spec["paths"].get(&path).is_some(), "{path}"),
                _ => assert!(["/health/live", "/health/ready"].contains(&path.as_str())),
            }
        }
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(text(&annotations["prometheus.io/port"]), port.to_string());
        assert_eq!(annotations["prometheus.io/path"], "/metrics");

        // Non-root, read-only, no capabilities, bounded.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10001));
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"][0], "ALL");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][bound].get(resource).is_some(),
                    "{role}"
                );
            }
        }
        if role == "worker" {
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
            assert!(
                grace >= 300,
                "a worker needs time to end its transcodes: {grace}"
            );
        }
    }
    let dockerfile = include_str!("../../deploy/compose/Dockerfile");
    assert!(
        dockerfile.contains("USER 10001"),
        "the image runs as the pods' user"
    );
}

#[test]
fn every_reference_names_something_that_exists() {
    let (_, documents) = render("deploy/k8s-overlays/example");
    let labels_of = |name: &str| {
        named(&documents, "Deployment", name)["spec"]["template"]["metadata"]["labels"].clone()
    };
    for service in of_kind(&documents, "Service") {
        let selector = &service["spec"]["selector"];
        let target = of_kind(&documents, "Deployment")
            .into_iter()
            .find(|d| {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                selector
                    .as_mapping()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &labels[k] == v)
            })
            .expect("the Service selects a Deployment");
        let ports = target["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_sequence()
            .unwrap();
        for port in service["spec"]["ports"].as_sequence().unwrap() {
            assert!(ports.iter().any(|p| p["name"] == port["targetPort"]));
        }
    }
    for ingress in of_kind(&documents, "Ingress") {
        for rule in ingress["spec"]["rules"].as_sequence().unwrap() {
            for path in rule["http"]["paths"].as_sequence().unwrap() {
                let backend = &path["backend"]["service"];
                let service = named(&documents, "Service", &text(&backend["name"]));
                let ports = service["spec"]["ports"].as_sequence().unwrap();
                assert!(ports.iter().any(|p| p["name"] == backend["port"]["name"]));
            }
        }
    }
    for autoscaler in of_kind(&documents, "HorizontalPodAutoscaler") {
        let target = &autoscaler["spec"]["scaleTargetRef"];
        named(&documents, "Deployment", &text(&target["name"]));
    }
    for budget in of_kind(&documents, "PodDisruptionBudget") {
        let wanted = &budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"];
        let labels = labels_of(&text(wanted));
        assert_eq!(&labels["app.kubernetes.io/name"], wanted);
    }
    let deployments = of_kind(&documents, "Deployment");
    assert_eq!(deployments.len(), 2, "a gateway and a worker");
    for deployment in deployments {
        let image = text(&deployment["spec"]["template"]["spec"]["containers"][0]["image"]);
        assert_eq!(
            image, "registry.example.com/audiomill:0.1.0",
            "the overlay sets it"
        );
        assert_eq!(deployment["metadata"]["namespace"], "audiomill");
    }
}
