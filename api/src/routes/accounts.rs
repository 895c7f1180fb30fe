//! Logging in, checking and refreshing tokens, logging out; the caller's own account.

use super::context::{
    ApiTags, BasicAuth, BearerAuth, Context, Denied, ErrorJson, LoginDenied, Scope, rfc3339,
    store_down,
};
use crate::{
    auth,
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
};
use audiomill_domain::{
    EmailAddress,
    lifecycle::{Quota, next_utc_day},
};
use audiomill_store::{RefreshOutcome, Usage, time::now_millis};
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};

/// `/login`, `/validate`, `/logout`, `/token/refresh` and `/me`.
pub struct AccountsApi {
    pub(super) cx: Context,
}

#[derive(Object)]
#[oai(example)]
struct TokenPair {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
}

impl Example for TokenPair {
    fn example() -> Self {
        TokenPair {
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
            refresh_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwicmVmcmVzaCI6dHJ1ZX0.c2lnbg".into(),
        }
    }
}

#[derive(Object)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Object)]
struct Identity {
    sub: String,
    email: String,
    /// Whether the credential acts as an admin (an admin's login, or an admin's key with
    /// `admin`).
    admin: bool,
    /// Expiry, Unix seconds (253402300799, the end of 9999, for a key that never expires).
    exp: u64,
    /// What the credential may do.
    scopes: Vec<Scope>,
    /// The API key's id when the credential is one; none for a login.
    #[oai(nullable)]
    key_id: Option<String>,
}

/// The caller's account and settings.
#[derive(Object)]
#[oai(example)]
struct Account {
    id: String,
    email: String,
    admin: bool,
    /// Whether an e-mail with a download link is sent when a job completes.
    completion_emails: bool,
    /// What the caller keeps and has started today, against their limits.
    quota: AccountQuota,
    /// What an upload may be, so that a client refuses a file before sending it.
    uploads: AccountUploadLimits,
}

/// The gateway's limits on uploads (`MAX_FILE_SIZE`, `MAX_FILES_PER_UPLOAD`,
/// `ALLOWED_EXTENSIONS`).
#[derive(Object)]
struct AccountUploadLimits {
    /// The largest file taken, in bytes.
    max_file_bytes: u64,
    /// The most files one multipart upload may carry.
    max_files_per_upload: u64,
    /// The file name extensions taken, lower case, without the dot.
    allowed_extensions: Vec<String>,
    /// Uploads the caller may send at once, a resumable upload's `PATCH` included
    /// (`MAX_CONCURRENT_UPLOADS`): a client sending many files queues the rest.
    max_uploads_in_progress: u64,
    /// Resumable uploads the caller may have unfinished at once (`MAX_UNFINISHED_UPLOADS`).
    max_unfinished_uploads: u64,
}

impl AccountUploadLimits {
    fn of(gw: &Gateway) -> Self {
        Self {
            max_file_bytes: gw.limits.max_bytes,
            max_files_per_upload: gw.limits.max_files as u64,
            allowed_extensions: gw.limits.allowed_extensions.clone(),
            max_uploads_in_progress: gw.uploads.limit() as u64,
            max_unfinished_uploads: gw.resumable.max_unfinished,
        }
    }
}

impl Example for Account {
    fn example() -> Self {
        Account {
            id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            email: "ann@example.com".into(),
            admin: false,
            completion_emails: true,
            quota: AccountQuota {
                storage_limit_bytes: Some(10 * 1024 * 1024 * 1024),
                storage_used_bytes: 52_428_800,
                storage_remaining_bytes: Some(10 * 1024 * 1024 * 1024 - 52_428_800),
                jobs_per_day_limit: Some(1000),
                jobs_today: 3,
                jobs_remaining_today: Some(997),
                jobs_reset_at: "2026-11-25T00:00:00.000Z".into(),
            },
            uploads: AccountUploadLimits {
                max_file_bytes: 100 * 1024 * 1024,
                max_files_per_upload: 10,
                allowed_extensions: ["mp4", "m4v", "mov", "avi", "mkv", "webm"]
                    .map(String::from)
                    .to_vec(),
                max_uploads_in_progress: 3,
                max_unfinished_uploads: 10,
            },
        }
    }
}

/// A user's quotas and usage. A limit of `null` is no limit.
#[derive(Object)]
struct AccountQuota {
    /// Bytes the user may keep in storage (uploaded videos and MP3s).
    #[oai(nullable)]
    storage_limit_bytes: Option<u64>,
    /// Bytes kept now: videos not yet removed, MP3s not yet expired.
    storage_used_bytes: u64,
    #[oai(nullable)]
    storage_remaining_bytes: Option<u64>,
    /// Jobs the user may start in one UTC day.
    #[oai(nullable)]
    jobs_per_day_limit: Option<u64>,
    /// Jobs started today (UTC); deleting jobs does not lower it.
    jobs_today: u64,
    #[oai(nullable)]
    jobs_remaining_today: Option<u64>,
    /// When the day's count starts again (UTC midnight), RFC 3339.
    jobs_reset_at: String,
}

impl AccountQuota {
    fn new(quota: Quota, usage: Usage, now: i64) -> Self {
        Self {
            storage_limit_bytes: quota.storage_bytes,
            storage_used_bytes: usage.storage_bytes,
            storage_remaining_bytes: quota
                .storage_bytes
                .map(|limit| limit.saturating_sub(usage.storage_bytes)),
            jobs_per_day_limit: quota.jobs_per_day,
            jobs_today: usage.jobs_today,
            jobs_remaining_today: quota
                .jobs_per_day
                .map(|limit| limit.saturating_sub(usage.jobs_today)),
            jobs_reset_at: rfc3339(next_utc_day(now)),
        }
    }
}

/// Settings to change; those left out (or `null`) stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct AccountChanges {
    /// `false`: no e-mail when a job completes (links stay available from `/status` and
    /// `GET /jobs/{job_id}/link`).
    #[oai(nullable)]
    completion_emails: Option<bool>,
}

api_response! {
    enum AccountResponse {
        /// The account, as it is now.
        #[oai(status = 200)]
        Ok(Json<Account>),
        /// The token is invalid or expired, or its login has ended.
        #[oai(status = 401)]
        Unauthorized(ErrorJson),
        @forbidden,
        @unavailable,
    }
}

api_response! {
    enum LoginResponse {
        /// Logged in.
        #[oai(status = 200)]
        Ok(Json<TokenPair>),
        /// Wrong email or password.
        #[oai(status = 401)]
        Unauthorized(ErrorJson),
        @unavailable,
    }
}

api_response! {
    enum ValidateResponse {
        /// The token is valid.
        #[oai(status = 200)]
        Ok(Json<Identity>),
        /// The token is invalid or expired, or its login has ended.
        #[oai(status = 401)]
        Unauthorized(ErrorJson),
        @unavailable,
    }
}

api_response! {
    enum LogoutResponse {
        /// Logged out: the access token and every refresh token of this login stop working,
        /// and a browser's session cookie is removed.
        #[oai(status = 204)]
        Done(
            /// Removes the session cookie (see `POST /session`).
            #[oai(header = "Set-Cookie")]
            String,
        ),
        /// The token is invalid or expired, or its login has already ended.
        #[oai(status = 401)]
        Unauthorized(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl AccountsApi {
    /// Log in with HTTP Basic (email and password); returns an access and a refresh token.
    #[oai(
        path = "/login",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "login"
    )]
    async fn login(&self, auth: BasicAuth) -> LoginResponse {
        let gw = self.cx.gw();
        let opened = or_refuse!(open_login(&self.cx, &auth).await);
        token_pair(gw, &opened)
    }

    /// Check an access token and show who it belongs to.
    #[oai(
        path = "/validate",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "validateToken"
    )]
    async fn validate(&self, auth: BearerAuth) -> ValidateResponse {
        match self.cx.identify(&auth).await {
            Ok(caller) => ValidateResponse::Ok(Json(Identity {
                sub: caller.user.to_string(),
                email: caller.email,
                admin: caller.admin,
                exp: caller.expires,
                scopes: caller.scopes.iter().collect(),
                key_id: caller.key,
            })),
            Err(Denied::Unauthorized(error) | Denied::Forbidden(error)) => {
                ValidateResponse::Unauthorized(error)
            }
            Err(Denied::Unavailable(error)) => ValidateResponse::Unavailable(error),
        }
    }

    /// End this login: its access token and all its refresh tokens stop working.
    ///
    /// Presented with an API key, it revokes that key. Any credential may end itself, whatever
    /// its scopes.
    #[oai(
        path = "/logout",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "logout"
    )]
    async fn logout(&self, auth: BearerAuth, request: &poem::Request) -> LogoutResponse {
        let caller = match self.cx.identify(&auth).await {
            Ok(caller) => caller,
            Err(Denied::Unauthorized(error) | Denied::Forbidden(error)) => {
                return LogoutResponse::Unauthorized(error);
            }
            Err(Denied::Unavailable(error)) => return LogoutResponse::Unavailable(error),
        };
        let gw = self.cx.gw();
        match gw.db.revoke_session(&caller.session).await {
            Ok(()) => LogoutResponse::Done(crate::session_cookie::removal(request, gw)),
            Err(error) => LogoutResponse::Unavailable(store_down(error)),
        }
    }

    /// The caller's account and settings.
    #[oai(
        path = "/me",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "getAccount"
    )]
    async fn me(&self, #[oai(scope = "Scope::AccountRead")] auth: BearerAuth) -> AccountResponse {
        self.account(
            &auth,
            Scope::AccountRead,
            AccountChanges {
                completion_emails: None,
            },
        )
        .await
    }

    /// Change the caller's settings: `{"completion_emails": false}` stops the e-mail sent
    /// when a job completes.
    #[oai(
        path = "/me",
        method = "patch",
        tag = "ApiTags::Auth",
        operation_id = "updateAccount"
    )]
    async fn update_me(
        &self,
        #[oai(scope = "Scope::AccountWrite")] auth: BearerAuth,
        changes: Json<AccountChanges>,
    ) -> AccountResponse {
        self.account(&auth, Scope::AccountWrite, changes.0).await
    }

    /// Trade a refresh token for a new pair.
    ///
    /// Each refresh token works once; presenting a used one again revokes its whole login.
    #[oai(
        path = "/token/refresh",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "refreshToken"
    )]
    async fn refresh(&self, body: Json<RefreshRequest>) -> LoginResponse {
        let gw = self.cx.gw();
        let renewed = or_refuse!(renew_login(gw, &body.0.refresh_token).await);
        token_pair(gw, &renewed)
    }
}

/// A login just opened or renewed: its user, its session and its newest refresh token.
pub(super) struct OpenLogin {
    pub(super) user: audiomill_store::User,
    pub(super) session_id: String,
    pub(super) refresh: String,
}

impl OpenLogin {
    /// A fresh access token for this login.
    pub(super) fn access_token(&self, gw: &Gateway) -> String {
        let user = &self.user;
        gw.tokens
            .issue_access(user.id, &user.email, user.is_admin, &self.session_id)
            .0
    }
}

/// Checks the e-mail and password and opens a login for an active user.
pub(super) async fn open_login(cx: &Context, auth: &BasicAuth) -> Result<OpenLogin, LoginDenied> {
    let gw = cx.gw();
    if !gw.password_sign_in {
        return Err(refused(
            "Password sign-in is turned off here: sign in with single sign-on, or use an API key.",
        ));
    }
    let user = match EmailAddress::parse(&auth.0.username) {
        Ok(email) => gw.db.user_by_email(&email).await?,
        Err(_) => None,
    };
    let password = auth.0.password.clone();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let gateway = cx.gateway();
    // Argon2 is deliberately slow; keep it off the async workers.
    let matches =
        tokio::task::spawn_blocking(move || gateway.passwords.verify(&password, hash.as_deref()))
            .await
            .unwrap_or(false);
    let Some(user) = user.filter(|u| matches && u.active) else {
        return Err(refused("The email or password is wrong."));
    };
    Ok(login_for(gw, user).await?)
}

/// Opens a new login for `user`.
pub(super) async fn login_for(
    gw: &Gateway,
    user: audiomill_store::User,
) -> Result<OpenLogin, audiomill_store::StoreError> {
    let session_id = auth::new_session_id();
    let (refresh, refresh_hash, expires_at) = gw.tokens.new_refresh();
    gw.db
        .create_session(user.id, &session_id, &refresh_hash, expires_at)
        .await?;
    Ok(OpenLogin {
        user,
        session_id,
        refresh,
    })
}

/// Trades refresh token `presented` for the next one of its login (each works once; a used
/// one presented again revokes the whole login).
pub(super) async fn renew_login(gw: &Gateway, presented: &str) -> Result<OpenLogin, LoginDenied> {
    let (refresh, new_hash, expires_at) = gw.tokens.new_refresh();
    let outcome = gw
        .db
        .rotate_refresh_token(&auth::hash_refresh(presented), &new_hash, expires_at)
        .await?;
    let (user_id, session_id) = match outcome {
        RefreshOutcome::Rotated {
            user_id,
            session_id,
        } => (user_id, session_id),
        RefreshOutcome::Reused => {
            return Err(refused(
                "This refresh token was already used; the login has been revoked. Please log in again.",
            ));
        }
        RefreshOutcome::Invalid => {
            return Err(refused("The refresh token is invalid or expired."));
        }
    };
    match gw.db.user_by_id(user_id).await? {
        Some(user) if user.active => Ok(OpenLogin {
            user,
            session_id,
            refresh,
        }),
        _ => Err(refused("The account is disabled.")),
    }
}

fn refused(message: &str) -> LoginDenied {
    LoginDenied::Unauthorized(ErrorBody::new(ErrorCode::Unauthorized, message))
}

impl AccountsApi {
    /// Applies `changes` to the caller's account and shows it.
    async fn account(
        &self,
        auth: &BearerAuth,
        need: Scope,
        changes: AccountChanges,
    ) -> AccountResponse {
        let id = or_refuse!(self.cx.authenticate(auth, need).await).user;
        let gone = || {
            AccountResponse::Unauthorized(ErrorBody::new(
                ErrorCode::Unauthorized,
                "This account no longer exists.",
            ))
        };
        let db = &self.cx.gw().db;
        if let Some(on) = changes.completion_emails {
            match db.set_completion_emails(id, on).await {
                Ok(true) => {}
                Ok(false) => return gone(),
                Err(error) => return AccountResponse::Unavailable(store_down(error)),
            }
        }
        let now = now_millis();
        let user = match db.user_by_id(id).await {
            Ok(Some(user)) => user,
            Ok(None) => return gone(),
            Err(error) => return AccountResponse::Unavailable(store_down(error)),
        };
        let usage = match db.usage(id, now).await {
            Ok(usage) => usage,
            Err(error) => return AccountResponse::Unavailable(store_down(error)),
        };
        AccountResponse::Ok(Json(Account {
            id: user.id.to_string(),
            email: user.email.to_string(),
            admin: user.is_admin,
            completion_emails: user.completion_emails,
            quota: AccountQuota::new(user.quota.over(self.cx.gw().quota), usage, now),
            uploads: AccountUploadLimits::of(self.cx.gw()),
        }))
    }
}

/// A fresh access token for the login, with the refresh token that goes with it.
fn token_pair(gw: &Gateway, login: &OpenLogin) -> LoginResponse {
    LoginResponse::Ok(Json(TokenPair {
        access_token: login.access_token(gw),
        token_type: "Bearer".into(),
        expires_in: gw.tokens.access_ttl.as_secs(),
        refresh_token: login.refresh.clone(),
    }))
}
