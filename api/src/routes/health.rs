//! Whether the gateway and its dependencies answer: `/health` (the summary the old gateway
//! had), `/health/services` (each dependency with its latency and what answered),
//! `/health/live` and `/health/ready` for orchestrators.
//!
//! Every dependency is checked concurrently, each within [`CHECK_TIMEOUT`], so a dependency
//! that hangs makes a check slow by that much at most, never the endpoint. Requests that
//! arrive while a round of checks runs share its result (see [`Checking`]).

use super::context::{ApiTags, Context};
use crate::gateway::Gateway;
use chrono::{SecondsFormat, Utc};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The longest a single dependency check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health`, `/health/services`, `/health/live`, `/health/ready`.
pub struct HealthApi {
    cx: Context,
    checking: Checking,
}

impl HealthApi {
    pub(super) fn new(cx: Context) -> Self {
        Self {
            cx,
            checking: Checking::default(),
        }
    }

    async fn checks(&self) -> Arc<Vec<ServiceCheck>> {
        self.checking.checks(self.cx.gateway()).await
    }
}

/// The round of dependency checks under way. Requests that arrive while it runs share its
/// result instead of each asking every dependency again, so `/health` under load costs one
/// round at a time (a load balancer's probes, a crowd of them, never load the database or
/// Temporal), and an answer is never older than the round it joined.
#[derive(Default)]
struct Checking(Mutex<Option<(Instant, Round)>>);

type Round = Shared<BoxFuture<'static, Arc<Vec<ServiceCheck>>>>;

impl Checking {
    async fn checks(&self, gw: Arc<Gateway>) -> Arc<Vec<ServiceCheck>> {
        let round = {
            let mut slot = self
                .0
                .lock()
                .expect("the lock is never held across a panic");
            match slot.as_ref() {
                // A round left by requests that all went away is not joined late.
                Some((started, round)) if started.elapsed() < CHECK_TIMEOUT => round.clone(),
                _ => {
                    let round = async move { Arc::new(check_all(&gw).await) }
                        .boxed()
                        .shared();
                    *slot = Some((Instant::now(), round.clone()));
                    round
                }
            }
        };
        let checks = round.clone().await;
        let mut slot = self
            .0
            .lock()
            .expect("the lock is never held across a panic");
        if slot
            .as_ref()
            .is_some_and(|(_, current)| current.ptr_eq(&round))
        {
            *slot = None;
        }
        checks
    }
}

#[derive(Object)]
struct Services {
    database: String,
    storage: String,
    temporal: String,
    smtp: String,
}

#[derive(Object)]
struct Health {
    /// `ok` when every dependency answers, else `degraded`.
    status: String,
    timestamp: String,
    services: Services,
    version: String,
}

#[derive(ApiResponse)]
enum HealthResponse {
    /// Health of the service and its dependencies.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
enum ServiceState {
    Up,
    Down,
}

/// One dependency, as checked just now.
#[derive(Object, Clone)]
struct ServiceCheck {
    /// `database`, `storage`, `temporal`, `smtp`, and `redis` when rate limits are shared.
    name: String,
    status: ServiceState,
    /// How long the check took, in milliseconds (at most the 2 s timeout).
    latency_ms: u64,
    /// What answered (server and version, bucket), or why the check failed.
    detail: String,
}

#[derive(Object)]
struct ServicesReport {
    /// `ok` when every dependency is up, else `degraded`.
    status: String,
    checked_at: String,
    services: Vec<ServiceCheck>,
}

#[derive(ApiResponse)]
enum ServicesResponse {
    /// Each dependency, checked concurrently.
    #[oai(status = 200)]
    Ok(Json<ServicesReport>),
}

#[derive(Object)]
struct Liveness {
    /// Always `alive`: the process serves requests.
    status: String,
}

#[derive(ApiResponse)]
enum LiveResponse {
    /// The process is serving.
    #[oai(status = 200)]
    Alive(Json<Liveness>),
}

#[derive(Object)]
struct Readiness {
    /// `ready`, or `not_ready` when a dependency the gateway needs is down.
    status: String,
    /// The dependencies that are down.
    failing: Vec<String>,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Database, object storage and Temporal answer: the gateway can take uploads.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency the gateway needs is down.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// The dependencies without which the gateway cannot take an upload.
const NEEDED: [&str; 3] = ["database", "storage", "temporal"];

#[OpenApi]
impl HealthApi {
    /// Whether the service and its dependencies answer.
    #[oai(
        path = "/health",
        method = "get",
        tag = "ApiTags::Operations",
        operation_id = "getHealth"
    )]
    async fn health(&self) -> HealthResponse {
        let checks = self.checks().await;
        let word = |name: &str| match checks.iter().find(|c| c.name == name) {
            Some(check) if check.status == ServiceState::Up => "connected".to_owned(),
            Some(_) => "unreachable".to_owned(),
            None => "not_checked".to_owned(),
        };
        HealthResponse::Ok(Json(Health {
            status: overall(&checks).into(),
            timestamp: now(),
            services: Services {
                database: word("database"),
                storage: word("storage"),
                temporal: word("temporal"),
                smtp: word("smtp"),
            },
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    /// Each dependency with its status, the check's latency and what answered.
    #[oai(
        path = "/health/services",
        method = "get",
        tag = "ApiTags::Operations",
        operation_id = "getServicesHealth"
    )]
    async fn services(&self) -> ServicesResponse {
        let checks = self.checks().await;
        ServicesResponse::Ok(Json(ServicesReport {
            status: overall(&checks).into(),
            checked_at: now(),
            services: checks.to_vec(),
        }))
    }

    /// Liveness for orchestrators.
    ///
    /// Answers as long as the process serves.
    #[oai(
        path = "/health/live",
        method = "get",
        tag = "ApiTags::Operations",
        operation_id = "getLiveness"
    )]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Alive(Json(Liveness {
            status: "alive".into(),
        }))
    }

    /// Readiness for orchestrators.
    ///
    /// 503 while the database, object storage or Temporal is down.
    #[oai(
        path = "/health/ready",
        method = "get",
        tag = "ApiTags::Operations",
        operation_id = "getReadiness"
    )]
    async fn ready(&self) -> ReadyResponse {
        let failing: Vec<String> = self
            .checks()
            .await
            .iter()
            .filter(|c| c.status == ServiceState::Down && NEEDED.contains(&c.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        if failing.is_empty() {
            ReadyResponse::Ready(Json(Readiness {
                status: "ready".into(),
                failing,
            }))
        } else {
            ReadyResponse::NotReady(Json(Readiness {
                status: "not_ready".into(),
                failing,
            }))
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn overall(checks: &[ServiceCheck]) -> &'static str {
    if checks.iter().all(|c| c.status == ServiceState::Up) {
        "ok"
    } else {
        "degraded"
    }
}

/// Checks every dependency at once.
async fn check_all(gw: &Gateway) -> Vec<ServiceCheck> {
    let database = timed("database", async {
        gw.db.server_version().await.map_err(|_| no_answer())
    });
    let storage = timed("storage", async {
        let what = gw.objects.describe();
        if gw.objects.ping().await {
            Ok(what)
        } else {
            Err(format!("{what}: unreachable"))
        }
    });
    let temporal = timed("temporal", async {
        let mut client = gw.temporal.clone();
        temporalio_client::grpc::WorkflowService::get_system_info(
            &mut client,
            temporalio_client::tonic::Request::new(Default::default()),
        )
        .await
        .map(|info| format!("Temporal {}", info.into_inner().server_version))
        .map_err(|_| no_answer())
    });
    let smtp = async {
        match &gw.mail_probe {
            Some(probe) => Some(timed("smtp", probe()).await),
            None => None,
        }
    };
    let redis = async {
        match gw.rate_limits.redis_probe() {
            Some(probe) => Some(timed("redis", probe).await),
            None => None,
        }
    };
    let (database, storage, temporal, smtp, redis) =
        tokio::join!(database, storage, temporal, smtp, redis);
    [Some(database), Some(storage), Some(temporal), smtp, redis]
        .into_iter()
        .flatten()
        .collect()
}

fn no_answer() -> String {
    "unreachable".to_owned()
}

/// Runs one check within [`CHECK_TIMEOUT`] and measures it.
async fn timed(name: &str, check: impl Future<Output = Result<String, String>>) -> ServiceCheck {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (status, detail) = match outcome {
        Ok(Ok(detail)) => (ServiceState::Up, detail),
        Ok(Err(reason)) => (ServiceState::Down, reason),
        Err(_) => (
            ServiceState::Down,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    ServiceCheck {
        name: name.to_owned(),
        status,
        latency_ms,
        detail,
    }
}
