//! `/connections`: a user's own S3-compatible storage, saved once, that jobs import their
//! videos from (`POST /imports` with `from`) and write their MP3s to (`export_to`).

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::error::{ErrorBody, ErrorCode};
use crate::params::{ApiConnectionId, Text, rfc3339};
use audiomill_domain::{
    UserId, address,
    connection::{Endpoint, check_bucket, normalized_prefix},
};
use audiomill_store::{
    Connection, MAX_CONNECTIONS_PER_USER, NewConnection, StoreError, WatchedPlace,
};
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};

pub struct ConnectionsApi {
    pub(super) cx: Context,
}

/// A bucket of yours to save.
#[derive(Debug, Clone, Object)]
struct NewConnectionBody {
    /// Your name for it, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Text,
    /// The S3 endpoint (`https://s3.example.com`, a MinIO server's address); leave out for
    /// AWS itself. Its host must resolve to public addresses only (unless the operator
    /// allows private ones).
    #[oai(nullable, validator(max_length = 2048))]
    endpoint: Option<Text>,
    /// Default `us-east-1`.
    #[oai(nullable, validator(max_length = 64))]
    region: Option<Text>,
    /// 3 to 63 lower-case letters, digits, dots and hyphens.
    #[oai(validator(pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    bucket: Text,
    /// The folder imports read from and exports write to; default the whole bucket.
    #[oai(nullable, validator(max_length = 512))]
    prefix: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 255))]
    access_key_id: Text,
    /// Kept encrypted, used by the workers only, never shown again.
    #[oai(validator(min_length = 1, max_length = 255))]
    secret_access_key: Text,
}

/// A saved connection, as it is shown: never its secret key.
#[derive(Debug, Clone, Object)]
struct ConnectionBody {
    id: ApiConnectionId,
    name: String,
    /// `null`: AWS itself.
    #[oai(nullable)]
    endpoint: Option<String>,
    region: String,
    bucket: String,
    prefix: String,
    access_key_id: String,
    created_at: String,
}

impl From<&Connection> for ConnectionBody {
    fn from(connection: &Connection) -> Self {
        Self {
            id: ApiConnectionId(connection.id),
            name: connection.name.clone(),
            endpoint: connection.endpoint.as_ref().map(|e| e.as_str().to_owned()),
            region: connection.region.clone(),
            bucket: connection.bucket.clone(),
            prefix: connection.prefix.clone(),
            access_key_id: connection.access_key_id.clone(),
            created_at: rfc3339(connection.created_at),
        }
    }
}

#[derive(Object)]
struct ConnectionList {
    /// Oldest first.
    connections: Vec<ConnectionBody>,
}

api_response! {
    enum CreateResponse {
        /// Saved.
        #[oai(status = 201)]
        Created(Json<ConnectionBody>),
        /// A field is not acceptable (`field` says which), or the endpoint's address may not
        /// be reached.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The account has as many connections as it may.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        /// The server has no `CONNECTION_SECRET_KEY`, or the database is down.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

api_response! {
    enum ListResponse {
        #[oai(status = 200)]
        Ok(Json<ConnectionList>),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum DeleteResponse {
        /// Deleted; jobs that still name it fail with a sentence saying so.
        #[oai(status = 204)]
        Deleted,
        @bad_id,
        @unauthorized,
        @forbidden,
        /// No such connection (or not yours).
        #[oai(status = 404)]
        NotFound(ErrorJson),
        /// A watch uses it: delete the watch first.
        #[oai(status = 409)]
        InUse(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl ConnectionsApi {
    /// Save a connection to a bucket of yours.
    ///
    /// Jobs may then import videos from it (`POST /imports` with `from`) and write their MP3s
    /// to it (`export_to`, with the upload form or an import). The secret key is encrypted at
    /// rest with the server's `CONNECTION_SECRET_KEY` and never shown again.
    #[oai(
        path = "/connections",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "createConnection"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::AccountWrite")] auth: BearerAuth,
        body: Json<NewConnectionBody>,
    ) -> CreateResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::AccountWrite).await).user;
        let gw = self.cx.gw();
        let Some(sealer) = &gw.sealer else {
            return CreateResponse::Unavailable(ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                "This server has no CONNECTION_SECRET_KEY, so it cannot keep connections.",
            ));
        };
        let new = match checked(gw, user, body.0).await {
            Ok(new) => new,
            Err(refusal) => return CreateResponse::BadRequest(refusal),
        };
        match gw.db.create_connection(&new, sealer).await {
            Ok(connection) => {
                tracing::info!(connection_id = %connection.id, "connection saved");
                CreateResponse::Created(Json((&connection).into()))
            }
            Err(StoreError::Conflict(_)) => CreateResponse::Conflict(ErrorBody::new(
                ErrorCode::Conflict,
                format!(
                    "An account may keep at most {MAX_CONNECTIONS_PER_USER} connections; delete one first."
                ),
            )),
            Err(error) => CreateResponse::Unavailable(store_down(error)),
        }
    }

    /// Your connections, without their secret keys.
    #[oai(
        path = "/connections",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "listConnections"
    )]
    async fn list(&self, #[oai(scope = "Scope::AccountRead")] auth: BearerAuth) -> ListResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::AccountRead).await).user;
        match self.cx.gw().db.connections_of(user).await {
            Ok(connections) => ListResponse::Ok(Json(ConnectionList {
                connections: connections.iter().map(ConnectionBody::from).collect(),
            })),
            Err(error) => ListResponse::Unavailable(store_down(error)),
        }
    }

    /// Delete a connection.
    #[oai(
        path = "/connections/:connection_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "deleteConnection"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::AccountWrite")] auth: BearerAuth,
        connection_id: Path<ApiConnectionId>,
    ) -> DeleteResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::AccountWrite).await).user;
        let db = &self.cx.gw().db;
        let watches = match db.watches_of(user).await {
            Ok(watches) => watches,
            Err(error) => return DeleteResponse::Unavailable(store_down(error)),
        };
        if let Some(watch) = watches
            .iter()
            .find(|watch| watch.place == WatchedPlace::Bucket(connection_id.0.0))
        {
            return DeleteResponse::InUse(ErrorBody::new(
                ErrorCode::Conflict,
                format!(
                    "The watch \"{}\" uses this connection; delete the watch first.",
                    watch.name
                ),
            ));
        }
        match db.delete_connection(user, connection_id.0.0).await {
            Ok(true) => DeleteResponse::Deleted,
            Ok(false) => DeleteResponse::NotFound(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such connection.",
            )),
            Err(error) => DeleteResponse::Unavailable(store_down(error)),
        }
    }
}

/// The connection asked for, each field checked, the endpoint's address allowed.
async fn checked(
    gw: &crate::gateway::Gateway,
    user: UserId,
    body: NewConnectionBody,
) -> Result<NewConnection, ErrorJson> {
    let bad = |field: &str, why: String| ErrorBody::for_field(field, format!("`{field}` {why}."));
    let endpoint = match body
        .endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(text) => {
            let endpoint = Endpoint::parse(text)
                .map_err(|why| bad("endpoint", format!("is not acceptable: {why}")))?;
            address::resolve(endpoint.as_url(), gw.import_allow_private)
                .await
                .map_err(|refusal| bad("endpoint", format!("is not acceptable: {refusal}")))?;
            Some(endpoint)
        }
        None => None,
    };
    let bucket = body.bucket.trim().to_owned();
    check_bucket(&bucket).map_err(|why| bad("bucket", format!("is not acceptable: {why}")))?;
    let prefix = normalized_prefix(body.prefix.as_deref().unwrap_or_default())
        .map_err(|why| bad("prefix", format!("is not acceptable: {why}")))?;
    let region = body
        .region
        .unwrap_or_else(|| "us-east-1".into())
        .trim()
        .to_owned();
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad("region", "is letters, digits and hyphens".into()));
    }
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(bad(
            "name",
            "is 1 to 100 characters, without control characters".into(),
        ));
    }
    Ok(NewConnection {
        user_id: user,
        name,
        endpoint,
        region,
        bucket,
        prefix,
        access_key_id: body.access_key_id.trim().to_owned(),
        secret_access_key: body.secret_access_key.0,
    })
}
