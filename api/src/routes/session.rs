//! A browser's login: the access token in the answer, the refresh token in a cookie that no
//! script can read (`HttpOnly`), sent only to `/session` and only by pages of this site
//! (`SameSite=Strict`). The web app keeps its login across reloads that way without holding a
//! long-lived secret where a script could take it. Programs use `/login` and
//! `/token/refresh`, which answer both tokens in the body.
//!
//! A request that carries the cookie must also carry the `Audiomill-Session` header, and an
//! `Origin`, when sent, must be this service's: a page of another site can make a browser send
//! neither (a custom header needs a CORS permission this service never gives with
//! credentials), so a forged request is refused before the cookie is read.

use super::accounts::{OpenLogin, open_login, renew_login};
use super::context::{ApiTags, BasicAuth, Context, ErrorJson, LoginDenied, Refusal};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    session_cookie::{cookie, removal, secure, session_cookie},
};
use poem::Request;
use poem_openapi::{Object, OpenApi, param::Header, payload::Json};

/// `/session` and `/session/refresh`.
pub struct SessionApi {
    pub(super) cx: Context,
}

/// A browser login's access token (its refresh token is in the cookie).
#[derive(Object)]
struct SessionToken {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires; renew it at `POST /session/refresh`.
    expires_in: u64,
}

api_response! {
    enum SessionResponse {
        /// Signed in: the access token here, the refresh token in the `audiomill_session`
        /// cookie (`HttpOnly`, `SameSite=Strict`, `Path=/session`; `Secure` over HTTPS).
        #[oai(status = 200)]
        Open(
            Json<SessionToken>,
            /// The session cookie.
            #[oai(header = "Set-Cookie")]
            String,
        ),
        /// Wrong e-mail or password; or no session cookie, or one whose login has ended (the
        /// cookie is then removed).
        #[oai(status = 401)]
        Ended(
            ErrorJson,
            /// Removes a session cookie that no longer works.
            #[oai(header = "Set-Cookie")]
            Option<String>,
        ),
        /// The request carries the cookie without the `Audiomill-Session` header, or comes
        /// from a page of another site.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        @unavailable,
    }
}

impl Refusal<SessionResponse> for LoginDenied {
    fn answer(self) -> SessionResponse {
        match self {
            LoginDenied::Unauthorized(error) => SessionResponse::Ended(error, None),
            LoginDenied::Unavailable(error) => SessionResponse::Unavailable(error),
        }
    }
}

#[OpenApi]
impl SessionApi {
    /// Sign a browser in with HTTP Basic (email and password).
    ///
    /// As `/login`, with the refresh token in a cookie instead of the body: for the web app
    /// and other pages of this site. Programs use `/login`.
    #[oai(
        path = "/session",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "openSession"
    )]
    async fn open(&self, auth: BasicAuth, request: &Request) -> SessionResponse {
        let login = or_refuse!(open_login(&self.cx, &auth).await);
        opened(self.cx.gw(), request, &login)
    }

    /// Renew a browser's access token with its session cookie.
    ///
    /// The refresh token in the `audiomill_session` cookie is traded for the next one (each
    /// works once), set in the answer's cookie. Requires the `Audiomill-Session` header.
    #[oai(
        path = "/session/refresh",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "refreshSession"
    )]
    async fn refresh(
        &self,
        /// Any value: a page of another site cannot send it.
        #[oai(name = "Audiomill-Session")]
        marker: Header<Option<String>>,
        request: &Request,
    ) -> SessionResponse {
        if let Err(refused) = same_site(marker.0.as_deref(), request) {
            return refused;
        }
        let gw = self.cx.gw();
        let Some(presented) = session_cookie(request) else {
            return SessionResponse::Ended(
                ErrorBody::new(ErrorCode::Unauthorized, "There is no session; sign in."),
                None,
            );
        };
        match renew_login(gw, &presented).await {
            Ok(login) => opened(gw, request, &login),
            Err(LoginDenied::Unauthorized(error)) => {
                SessionResponse::Ended(error, Some(removal(request, gw)))
            }
            Err(denied) => denied.answer(),
        }
    }
}

/// The answer to a login opened or renewed: its access token, and its refresh token set in
/// the cookie.
fn opened(gw: &Gateway, request: &Request, login: &OpenLogin) -> SessionResponse {
    let lifetime = gw.tokens.refresh_ttl.as_secs();
    SessionResponse::Open(
        Json(SessionToken {
            access_token: login.access_token(gw),
            token_type: "Bearer".into(),
            expires_in: gw.tokens.access_ttl.as_secs(),
        }),
        cookie(&login.refresh, lifetime, secure(request, gw)),
    )
}

/// Refuses a cookie request that a page of another site could have made: one without the
/// marker header, or with an `Origin` that is not this service's host.
fn same_site(marker: Option<&str>, request: &Request) -> Result<(), SessionResponse> {
    let forbidden = |message: &str| {
        Err(SessionResponse::Forbidden(ErrorBody::new(
            ErrorCode::Forbidden,
            message,
        )))
    };
    if marker.is_none() {
        return forbidden("The Audiomill-Session header is required with the session cookie.");
    }
    let Some(origin) = request.header("origin") else {
        return Ok(());
    };
    let host = request.header("host").unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return forbidden("The session can only be renewed by this service's own pages.");
    }
    Ok(())
}
