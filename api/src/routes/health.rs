//! Whether the gateway and its dependencies answer.

use super::{ApiTags, Context};
use chrono::{SecondsFormat, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

/// `/health`.
pub struct HealthApi {
    pub(super) cx: Context,
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

#[OpenApi]
impl HealthApi {
    /// Whether the service and its dependencies answer.
    #[oai(path = "/health", method = "get", tag = "ApiTags::Operations")]
    async fn health(&self) -> HealthResponse {
        let gw = self.cx.gw();
        let temporal_probe = async {
            let mut client = gw.temporal.clone();
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                temporalio_client::grpc::WorkflowService::get_system_info(
                    &mut client,
                    temporalio_client::tonic::Request::new(Default::default()),
                ),
            )
            .await
            .is_ok_and(|r| r.is_ok())
        };
        let mail_probe = async {
            match &gw.mail_probe {
                Some(probe) => Some(probe().await),
                None => None,
            }
        };
        let (database, storage, temporal, smtp) =
            tokio::join!(gw.db.ping(), gw.objects.ping(), temporal_probe, mail_probe);
        let word = |up: bool| if up { "connected" } else { "unreachable" }.to_owned();
        let healthy = database && storage && temporal && smtp.unwrap_or(true);
        HealthResponse::Ok(Json(Health {
            status: if healthy { "ok" } else { "degraded" }.into(),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            services: Services {
                database: word(database),
                storage: word(storage),
                temporal: word(temporal),
                smtp: smtp.map_or_else(|| "not_checked".to_owned(), word),
            },
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }
}
