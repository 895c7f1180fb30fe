//! `/api-keys`: long-lived credentials for programs, each with a name, its scopes and an
//! optional expiry. The key is shown once, when it is made; the service keeps only its hash.
//! Only a login (never a key) makes or revokes keys: that takes the `credentials` scope.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, rfc3339, store_down};
use crate::params::Text;
use crate::{
    auth,
    error::{ErrorBody, ErrorCode},
};
use audiomill_store::{ApiKey, NewApiKey, time::now_millis};
use chrono::{DateTime, Utc};
use poem_openapi::{OAuthScopes, Object, OpenApi, param::Path, payload::Json, types::Example};

/// The most live (unrevoked, unexpired) keys one account may hold.
pub const MAX_KEYS_PER_USER: u64 = 20;

/// `/api-keys`.
pub struct KeysApi {
    pub(super) cx: Context,
}

/// A key to make.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
struct NewKey {
    /// What the key is for, to tell it apart in the list: 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Text,
    /// What it may do (at least one). `credentials` is never granted to a key; `admin` only
    /// by an admin.
    #[oai(validator(min_items = 1, max_items = 8))]
    scopes: Vec<Scope>,
    /// When it stops working (RFC 3339, in the future); none: until it is revoked.
    #[oai(nullable)]
    expires_at: Option<DateTime<Utc>>,
}

impl Example for NewKey {
    fn example() -> Self {
        NewKey {
            name: "nightly import".into(),
            scopes: vec![Scope::JobsRead, Scope::JobsWrite],
            expires_at: None,
        }
    }
}

/// A key as its owner sees it: never its secret.
#[derive(Object)]
#[oai(example)]
struct KeyInfo {
    /// The key's id: the 12 letters and digits after `amk_`.
    id: String,
    /// How the key begins (`amk_` and its id), to recognise it.
    prefix: String,
    name: String,
    scopes: Vec<Scope>,
    created_at: String,
    #[oai(nullable)]
    expires_at: Option<String>,
    /// When it was last used, to the minute; none if never.
    #[oai(nullable)]
    last_used_at: Option<String>,
    /// Past its expiry: it no longer works (revoke it to remove it from this list).
    expired: bool,
}

impl Example for KeyInfo {
    fn example() -> Self {
        KeyInfo {
            id: "Xq3vR8kT2mPa".into(),
            prefix: "amk_Xq3vR8kT2mPa".into(),
            name: "nightly import".into(),
            scopes: vec![Scope::JobsRead, Scope::JobsWrite],
            created_at: "2026-12-07T09:00:00Z".into(),
            expires_at: None,
            last_used_at: Some("2026-12-07T09:05:00Z".into()),
            expired: false,
        }
    }
}

/// A key just made, with the key itself: shown this once.
#[derive(Object)]
#[oai(example)]
struct CreatedKey {
    /// Send it as `Authorization: Bearer <key>`. It matches
    /// `amk_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}`, so secret scanners can find a leaked one.
    key: String,
    #[oai(flatten)]
    info: KeyInfo,
}

impl Example for CreatedKey {
    fn example() -> Self {
        CreatedKey {
            key: "amk_Xq3vR8kT2mPa_4fT9wLk2QzR7nV1cX8bM3sD6hJ0pY5gA2eK9uN4r".into(),
            info: KeyInfo::example(),
        }
    }
}

/// The caller's keys.
#[derive(Object)]
struct KeyList {
    keys: Vec<KeyInfo>,
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum CreateResponse {
        /// Made; the key is in this answer only.
        #[oai(status = 201)]
        Created(Json<CreatedKey>),
        /// The name, scopes or expiry are not acceptable (`field` says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The account holds as many live keys as it may (20); revoke one first.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        @unavailable,
    }
}

api_response! {
    enum ListResponse {
        /// Every key not revoked, newest first.
        #[oai(status = 200)]
        Ok(Json<KeyList>),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "key_id_refusal")]
    enum RevokeResponse {
        /// Revoked: it stops working at once, and jobs it started that wait for a worker are
        /// cancelled when one takes them.
        #[oai(status = 204)]
        Revoked,
        @bad_id,
        @unauthorized,
        @forbidden,
        /// No such key (or not yours, or already revoked).
        #[oai(status = 404)]
        NotFound(ErrorJson),
        @unavailable,
    }
}

fn key_id_refusal(error: poem::Error) -> RevokeResponse {
    super::context::parameter_refusal(
        error,
        "The key id is malformed: key ids are 12 letters and digits.",
    )
}

#[OpenApi]
impl KeysApi {
    /// Make an API key.
    ///
    /// The answer holds the key, once; keep it secret. It acts with its scopes only, for as
    /// long as the account is active, until it expires or is revoked.
    #[oai(
        path = "/api-keys",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "createApiKey"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::Credentials")] auth: BearerAuth,
        body: Json<NewKey>,
    ) -> CreateResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Credentials).await);
        let NewKey {
            name,
            scopes,
            expires_at,
        } = body.0;
        let granted = granted(&scopes, caller.admin)
            .and_then(|scopes| future(expires_at).map(|expires_at| (scopes, expires_at)));
        let (scopes, expires_at) = match granted {
            Ok(granted) => granted,
            Err(refusal) => return CreateResponse::BadRequest(refusal),
        };
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return CreateResponse::BadRequest(ErrorBody::for_field(
                "name",
                "The name must have a visible character and no control characters.",
            ));
        }
        let made = auth::new_api_key();
        let new = NewApiKey {
            user_id: caller.user,
            session_id: auth::new_session_id(),
            prefix: made.id,
            secret_hash: made.hash,
            name: name.to_owned(),
            scopes: scopes.to_words(),
            expires_at,
        };
        match self
            .cx
            .gw()
            .db
            .create_api_key(&new, MAX_KEYS_PER_USER)
            .await
        {
            Ok(Ok(key)) => {
                tracing::info!(key_id = %key.prefix, "API key made");
                CreateResponse::Created(Json(CreatedKey {
                    key: made.key,
                    info: shown(&key),
                }))
            }
            Ok(Err(too_many)) => CreateResponse::Conflict(ErrorBody::new(
                ErrorCode::Conflict,
                format!(
                    "An account may hold at most {} live API keys; revoke one first.",
                    too_many.limit
                ),
            )),
            Err(error) => CreateResponse::Unavailable(store_down(error)),
        }
    }

    /// The caller's API keys (never their secrets).
    #[oai(
        path = "/api-keys",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "listApiKeys"
    )]
    async fn list(&self, #[oai(scope = "Scope::AccountRead")] auth: BearerAuth) -> ListResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::AccountRead).await);
        match self.cx.gw().db.api_keys(caller.user).await {
            Ok(keys) => ListResponse::Ok(Json(KeyList {
                keys: keys.iter().map(shown).collect(),
            })),
            Err(error) => ListResponse::Unavailable(store_down(error)),
        }
    }

    /// Revoke an API key: it stops working at once.
    #[oai(
        path = "/api-keys/:key_id",
        method = "delete",
        tag = "ApiTags::Auth",
        operation_id = "revokeApiKey"
    )]
    async fn revoke(
        &self,
        #[oai(scope = "Scope::Credentials")] auth: BearerAuth,
        /// The key's id (12 letters and digits).
        #[oai(validator(pattern = r"^[0-9A-Za-z]{12}$"))]
        key_id: Path<String>,
    ) -> RevokeResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Credentials).await);
        match self.cx.gw().db.revoke_api_key(caller.user, &key_id.0).await {
            Ok(true) => {
                tracing::info!(key_id = %key_id.0, "API key revoked");
                RevokeResponse::Revoked
            }
            Ok(false) => RevokeResponse::NotFound(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such key.",
            )),
            Err(error) => RevokeResponse::Unavailable(store_down(error)),
        }
    }
}

/// The scopes a key may be given by this caller.
fn granted(asked: &[Scope], admin: bool) -> Result<crate::scopes::Scopes, ErrorJson> {
    let refuse = |message: String| Err(ErrorBody::for_field("scopes", message));
    for scope in asked {
        match scope {
            Scope::Credentials => {
                return refuse(
                    "No key holds `credentials`: keys are managed only after signing in.".into(),
                );
            }
            Scope::Admin if !admin => {
                return refuse("Only an admin may give a key the `admin` scope.".into());
            }
            _ => {}
        }
    }
    if asked.is_empty() {
        return refuse(format!(
            "Name at least one scope, such as `{}`.",
            Scope::JobsRead.name()
        ));
    }
    Ok(asked.iter().copied().collect())
}

/// An expiry in Unix ms, if it is in the future.
fn future(expires_at: Option<DateTime<Utc>>) -> Result<Option<i64>, ErrorJson> {
    match expires_at.map(|at| at.timestamp_millis()) {
        Some(at) if at <= now_millis() => Err(ErrorBody::for_field(
            "expires_at",
            "`expires_at` must be in the future.",
        )),
        at => Ok(at),
    }
}

fn shown(key: &ApiKey) -> KeyInfo {
    KeyInfo {
        id: key.prefix.clone(),
        prefix: format!("{}{}", auth::API_KEY_START, key.prefix),
        name: key.name.clone(),
        scopes: crate::scopes::Scopes::from_words(&key.scopes)
            .iter()
            .collect(),
        created_at: rfc3339(key.created_at),
        expires_at: key.expires_at.map(rfc3339),
        last_used_at: key.last_used_at.map(rfc3339),
        expired: key.is_expired(now_millis()),
    }
}
