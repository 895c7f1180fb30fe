//! What can be checked of the compose stack without a Docker engine: the variables it passes
//! are ones Audiomill reads, addresses point at services that exist and listen there, start
//! order waits for health, and the runtime image's packages exist in Debian bookworm.

use serde_yaml::Value;
use std::{collections::BTreeSet, process::Command};

const COMPOSE: &str = include_str!("../../deploy/compose/docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../deploy/compose/Dockerfile");
const ENV_EXAMPLE: &str = include_str!("../../deploy/compose/.env.example");

fn compose() -> Value {
    let mut value: Value = serde_yaml::from_str(COMPOSE).expect("the compose file is valid YAML");
    value.apply_merge().expect("merge keys resolve");
    value
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    &compose["services"][name]
}

fn environment(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .expect("environment is a mapping")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().map(str::to_owned).unwrap_or_default(),
            )
        })
        .collect()
}

/// `scheme://user:pw@host:port/...` or `host:port` -> (host, port).
fn host_and_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').expect("address has a port");
    (host.to_owned(), port.parse().expect("numeric port"))
}

#[test]
fn audiomill_services_pass_only_variables_the_binary_reads() {
    let compose = compose();
    for name in ["gateway", "worker"] {
        let env = environment(service(&compose, name));
        let names: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        let read = audiomill::cli::variables_of(name);
        for variable in &names {
            assert!(
                read.iter().any(|r| r == variable),
                "{name} sets {variable}, which audiomill does not read"
            );
        }
        let own: &[&str] = match name {
            "gateway" => &["JWT_SECRET", "LISTEN_ADDR", "REDIS_URL"],
            _ => &["WORK_DIR"],
        };
        for required in [
            "DATABASE_URL",
            "TEMPORAL_ADDRESS",
            "S3_BUCKET",
            "AWS_ENDPOINT_URL",
            "SMTP_URL",
            "PUBLIC_URL",
            "DOWNLOAD_LINK_SECRET",
        ]
        .iter()
        .chain(own)
        {
            assert!(names.contains(required), "{name} lacks {required}");
        }
        let command = service(&compose, name)["command"][0].as_str().unwrap();
        assert_eq!(command, name, "the {name} service runs `audiomill {name}`");
    }
}

#[test]
fn addresses_point_at_services_that_listen_there() {
    let compose = compose();
    let env = environment(service(&compose, "worker"));
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    for (variable, expected_service, expected_port) in [
        ("DATABASE_URL", "mysql", 3306),
        ("TEMPORAL_ADDRESS", "temporal", 7233),
        ("AWS_ENDPOINT_URL", "minio", 9000),
        ("SMTP_URL", "mailpit", 1025),
    ] {
        let (host, port) = host_and_port(&get(variable));
        assert_eq!(
            (host.as_str(), port),
            (expected_service, expected_port),
            "{variable}"
        );
        assert!(
            !service(&compose, &host).is_null(),
            "{variable} names a missing service {host}"
        );
    }
    assert!(get("DATABASE_URL").starts_with("mysql://"));

    // The gateway listens where its port is published; it is the only service published to
    // other hosts.
    let gateway = service(&compose, "gateway");
    let listen = environment(gateway)
        .into_iter()
        .find(|(k, _)| k == "LISTEN_ADDR")
        .unwrap()
        .1;
    let (_, port) = host_and_port(&listen);
    let published: Vec<&str> = gateway["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        published.contains(&format!("8080:{port}").as_str()),
        "{published:?}"
    );
    // The operators' UIs listen on the host's loopback only; nothing else is published.
    for (name, port) in [
        ("temporal-ui", "127.0.0.1:8233:8080"),
        ("minio", "127.0.0.1:9001:9001"),
        ("mailpit", "127.0.0.1:8025:8025"),
        ("prometheus", "127.0.0.1:9090:9090"),
    ] {
        let ports: Vec<&str> = service(&compose, name)["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(ports, [port], "{name} publishes {ports:?}");
    }
    let services = compose["services"].as_mapping().unwrap();
    for (name, definition) in services {
        let name = name.as_str().unwrap();
        if ["gateway", "temporal-ui", "minio", "mailpit", "prometheus"].contains(&name) {
            continue;
        }
        assert!(
            definition["ports"].is_null(),
            "{name} must stay on the internal network"
        );
    }
    // Workers publish nothing, so `--scale worker=N` cannot collide on ports.
    assert!(service(&compose, "worker")["ports"].is_null());
}

#[test]
fn roles_wait_for_healthy_dependencies() {
    let compose = compose();
    for name in ["gateway", "worker"] {
        let depends = service(&compose, name)["depends_on"]
            .as_mapping()
            .expect("depends_on with conditions");
        for dependency in ["mysql", "temporal", "mailpit"] {
            let condition = depends
                .get(dependency)
                .and_then(|d| d["condition"].as_str());
            assert_eq!(condition, Some("service_healthy"), "{name} -> {dependency}");
        }
        let bucket = depends
            .get("minio-init")
            .and_then(|d| d["condition"].as_str());
        assert_eq!(
            bucket,
            Some("service_completed_successfully"),
            "{name} waits for the bucket"
        );
    }
    for name in ["mysql", "minio", "temporal", "mailpit", "gateway"] {
        assert!(
            !service(&compose, name)["healthcheck"].is_null(),
            "{name} has no health check"
        );
    }
}

#[test]
fn no_credential_has_a_default() {
    for secret in [
        "JWT_SECRET",
        "DOWNLOAD_LINK_SECRET",
        "METRICS_TOKEN",
        "MYSQL_ROOT_PASSWORD",
        "MYSQL_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
    ] {
        let pattern = format!("${{{secret}");
        for (at, _) in COMPOSE.match_indices(&pattern) {
            if COMPOSE[..at].ends_with('$') {
                continue; // `$${...}` is for the container's shell.
            }
            let rest = &COMPOSE[at + pattern.len()..];
            assert!(
                rest.starts_with(":?"),
                "{secret} must be required, not defaulted: {pattern}{}",
                &rest[..rest.len().min(20)]
            );
        }
        let example = ENV_EXAMPLE
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{secret}=")));
        let is_password = secret.ends_with("PASSWORD") || secret.ends_with("SECRET");
        assert!(
            example.is_some_and(|v| !is_password || v.is_empty()),
            "{secret} in .env.example must be left for the operator to fill in"
        );
    }
}

#[test]
fn every_variable_the_compose_file_interpolates_is_in_the_env_example() {
    let example: BTreeSet<&str> = ENV_EXAMPLE
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.starts_with('#'))
        .collect();
    for piece in COMPOSE.split("${").skip(1) {
        if piece.starts_with('{') {
            continue; // `$${...}` is for the container's shell.
        }
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            example.contains(name.as_str()),
            "{name} is missing from .env.example"
        );
    }
}

#[test]
fn the_runtime_image_packages_exist_in_debian_bookworm() {
    let runtime = DOCKERFILE
        .split("FROM debian:bookworm-slim")
        .nth(1)
        .expect("a bookworm-slim runtime stage");
    let install = runtime
        .split("apt-get install")
        .nth(1)
        .expect("the runtime stage installs packages");
    let packages: Vec<&str> = install
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|word| !word.starts_with('-') && *word != "\\")
        .collect();
    assert!(packages.contains(&"libavcodec59"), "{packages:?}");
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    assert!(
        release.contains("bookworm"),
        "this check reads Debian bookworm's package lists"
    );
    for package in packages {
        let output = Command::new("apt-cache")
            .args(["show", "--no-all-versions", package])
            .output()
            .expect("apt-cache runs");
        assert!(
            output.status.success() && !output.stdout.is_empty(),
            "{package} is not a bookworm package"
        );
    }
    // And the binary links only libraries those packages provide.
    let linked = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_audiomill"))
        .output()
        .expect("ldd runs");
    let linked = String::from_utf8_lossy(&linked.stdout);
    for library in [
        "libavcodec.so.59",
        "libavformat.so.59",
        "libavutil.so.57",
        "libswresample.so.4",
        "libavfilter.so.8",
    ] {
        assert!(
            linked.contains(library),
            "the binary no longer links {library}; update the Dockerfile"
        );
    }
}

#[test]
fn prometheus_scrapes_each_role_where_it_serves_metrics_with_the_token() {
    let compose = compose();
    let prometheus: Value =
        serde_yaml::from_str(include_str!("../../deploy/compose/prometheus.yml")).unwrap();
    let setting = |role: &str, key: &str| {
        environment(service(&compose, role))
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{role} lacks {key}"))
    };
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j["job_name"] == name)
            .unwrap_or_else(|| panic!("no scrape job {name}"))
    };
    let (_, gateway_port) = host_and_port(&setting("gateway", "LISTEN_ADDR"));
    assert_eq!(
        job("audiomill-gateway")["static_configs"][0]["targets"][0],
        format!("gateway:{gateway_port}").as_str()
    );
    let (_, worker_port) = host_and_port(&setting("worker", "METRICS_LISTEN"));
    let workers = &job("audiomill-worker")["dns_sd_configs"][0];
    assert_eq!(workers["names"][0], "worker");
    assert_eq!(workers["port"].as_u64(), Some(u64::from(worker_port)));
    // Both roles ask for the token; Prometheus reads it from the secret compose mounts.
    for role in ["gateway", "worker"] {
        assert!(setting(role, "METRICS_TOKEN").starts_with("${METRICS_TOKEN:?"));
    }
    let secrets = service(&compose, "prometheus")["secrets"]
        .as_sequence()
        .unwrap();
    assert_eq!(secrets[0], "metrics_token");
    assert_eq!(
        compose["secrets"]["metrics_token"]["environment"],
        "METRICS_TOKEN"
    );
    for job in jobs {
        assert_eq!(
            job["authorization"]["credentials_file"],
            "/run/secrets/metrics_token"
        );
    }
}
