//! Single sign-on in the browser: `GET /oidc/sign-in` sends the browser to the OpenID
//! provider, which sends it back to `GET /oidc/callback`; a person the provider proves is
//! signed in as a login of `POST /session` is (the refresh token in the session cookie), and
//! the web app at `/` finds them signed in. `GET /sign-in/methods` says which ways to sign in
//! this service offers.
//!
//! The sign-in's state travels in the provider's address and in a cookie of this site
//! (`SameSite=Lax`, so the provider's redirect back carries it): an answer is taken only by
//! the browser that began it, and only once. What goes wrong comes back to the web app as
//! `/?sign_in_error=<reason>`, since a person, not a program, follows these addresses.

use super::accounts::login_for;
use super::context::{ApiTags, Context, ErrorJson};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    session_cookie::{cookie, cookie_named, secure},
    sign_on::{Person, SignOn, SignOnError},
};
use audiomill_domain::secret::secret_hash;
use audiomill_store::{SIGN_ON_LIFETIME_MS, SignOnAccount, SignOnAttempt, User};
use poem::Request;
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use subtle::ConstantTimeEq;

/// The cookie that ties a sign-in to the browser that began it.
const STATE_COOKIE: &str = "audiomill_sign_on";

/// `/oidc/sign-in`, `/oidc/callback` and `/sign-in/methods`.
pub struct SignOnApi {
    pub(super) cx: Context,
}

/// The ways to sign in here.
#[derive(Object)]
struct SignInMethods {
    /// E-mail and password (`POST /session`, `POST /login`).
    password: bool,
    /// Single sign-on with an OpenID provider, when one is set up (`null`: none).
    #[oai(nullable)]
    single_sign_on: Option<SingleSignOn>,
    /// Whether anyone may make an account (as `GET /signup` says).
    signup: bool,
}

/// The OpenID provider people sign in with.
#[derive(Object)]
struct SingleSignOn {
    /// What to call it on a button.
    name: String,
    /// Where a browser goes to sign in.
    url: String,
}

api_response! {
    enum MethodsResponse {
        #[oai(status = 200)]
        Ok(Json<SignInMethods>),
    }
}

api_response! {
    enum SignOnResponse {
        /// To the provider (from `/oidc/sign-in`), or back to the web app: signed in, or with
        /// `?sign_in_error=` saying why not (`unavailable`, `state`, `refused`, `token`,
        /// `email`, `exists`, `disabled`).
        #[oai(status = 303)]
        SeeOther(
            #[oai(header = "Location")] String,
            /// The sign-in's state (to the provider), or the session cookie (signed in).
            #[oai(header = "Set-Cookie")]
            Option<String>,
        ),
        /// No single sign-on is set up here.
        #[oai(status = 404)]
        NotFound(ErrorJson),
    }
}

/// Why a sign-on ended without a login: the reason the web app shows, and what the log says.
struct Failed(&'static str, String);

#[OpenApi]
impl SignOnApi {
    /// Which ways to sign in this service offers.
    #[oai(
        path = "/sign-in/methods",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "signInMethods"
    )]
    async fn methods(&self) -> MethodsResponse {
        let gw = self.cx.gw();
        MethodsResponse::Ok(Json(SignInMethods {
            password: gw.password_sign_in,
            single_sign_on: gw.sign_on.as_ref().map(|sign_on| SingleSignOn {
                name: sign_on.settings.display_name.clone(),
                url: "/oidc/sign-in".into(),
            }),
            signup: gw.allow_signup,
        }))
    }

    /// Sign in with the OpenID provider: a browser goes here and is sent to the provider.
    #[oai(
        path = "/oidc/sign-in",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "startSignOn"
    )]
    async fn start(&self, request: &Request) -> SignOnResponse {
        let gw = self.cx.gw();
        let Some(sign_on) = gw.sign_on.as_ref() else {
            return not_set_up();
        };
        let started = match sign_on.start().await {
            Ok(started) => started,
            Err(error) => return failed(Failed("unavailable", error.to_string())),
        };
        let attempt = SignOnAttempt {
            nonce: started.nonce,
            pkce_verifier: started.pkce_verifier,
        };
        if let Err(error) = gw
            .db
            .begin_sign_on(&secret_hash(&started.state), &attempt)
            .await
        {
            return failed(Failed("unavailable", error.to_string()));
        }
        let lifetime = (SIGN_ON_LIFETIME_MS / 1000) as u64;
        SignOnResponse::SeeOther(
            started.url.to_string(),
            Some(state_cookie(&started.state, lifetime, secure(request, gw))),
        )
    }

    /// Where the OpenID provider sends the browser back: signs the person in.
    #[oai(
        path = "/oidc/callback",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "finishSignOn"
    )]
    async fn callback(
        &self,
        /// The provider's authorization code.
        code: Query<Option<String>>,
        /// The sign-in's state, as sent to the provider.
        state: Query<Option<String>>,
        /// The provider's refusal, instead of a code.
        error: Query<Option<String>>,
        /// The provider's issuer, when it names itself (RFC 9207).
        iss: Query<Option<String>>,
        request: &Request,
    ) -> SignOnResponse {
        let gw = self.cx.gw();
        let Some(sign_on) = gw.sign_on.as_ref() else {
            return not_set_up();
        };
        let answer = Answer {
            code: code.0,
            state: state.0,
            error: error.0,
            issuer: iss.0,
        };
        match signed_in(gw, sign_on, answer, request).await {
            Ok(user) => match login_for(gw, user).await {
                Ok(login) => {
                    let lifetime = gw.tokens.refresh_ttl.as_secs();
                    SignOnResponse::SeeOther(
                        "/".into(),
                        Some(cookie(&login.refresh, lifetime, secure(request, gw))),
                    )
                }
                Err(error) => failed(Failed("unavailable", error.to_string())),
            },
            Err(why) => failed(why),
        }
    }
}

/// What the provider sent the browser back with.
struct Answer {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    issuer: Option<String>,
}

/// The account the provider's answer signs in to, with its groups' admin and limits applied.
async fn signed_in(
    gw: &Gateway,
    sign_on: &SignOn,
    answer: Answer,
    request: &Request,
) -> Result<User, Failed> {
    let state = answer.state.unwrap_or_default();
    let own = cookie_named(request, STATE_COOKIE).unwrap_or_default();
    if state.is_empty() || !bool::from(state.as_bytes().ct_eq(own.as_bytes())) {
        return Err(Failed("state", "the state is not this browser's".into()));
    }
    let attempt = gw
        .db
        .take_sign_on(&secret_hash(&state))
        .await
        .map_err(|e| Failed("unavailable", e.to_string()))?
        .ok_or_else(|| Failed("state", "the sign-in was used or expired".into()))?;
    // An answer from another provider, sent here to mix the two up, is refused by its name.
    if answer
        .issuer
        .is_some_and(|issuer| issuer != sign_on.settings.issuer)
    {
        return Err(Failed("token", "the answer names another issuer".into()));
    }
    if let Some(error) = answer.error {
        return Err(Failed(
            "refused",
            format!("the provider answered {error:.64}"),
        ));
    }
    let code = answer
        .code
        .ok_or_else(|| Failed("refused", "the provider sent no code".into()))?;
    let person = sign_on
        .finish(code, &attempt.nonce, attempt.pkce_verifier)
        .await
        .map_err(|error| match error {
            SignOnError::Unavailable(_) => Failed("unavailable", error.to_string()),
            SignOnError::Refused(_) => Failed("token", error.to_string()),
        })?;
    let user = account_of(gw, &person).await?;
    apply_groups(gw, sign_on, user, &person.groups).await
}

/// The person's account: theirs, linked, or made now.
async fn account_of(gw: &Gateway, person: &Person) -> Result<User, Failed> {
    let Some(email) = person.verified_email.as_ref() else {
        return Err(Failed(
            "email",
            "the provider vouches for no address".into(),
        ));
    };
    let unusable_password = "!";
    let account = gw
        .db
        .sign_on_account(&person.issuer, &person.subject, email, unusable_password)
        .await
        .map_err(|e| Failed("unavailable", e.to_string()))?;
    let user = match account {
        SignOnAccount::Known(user) | SignOnAccount::Linked(user) | SignOnAccount::Made(user) => {
            user
        }
        SignOnAccount::NotLinkable => {
            return Err(Failed(
                "exists",
                "an account has the address, unlinked".into(),
            ));
        }
    };
    if !user.active {
        return Err(Failed("disabled", format!("account {} is off", user.id)));
    }
    Ok(user)
}

/// Makes the account an admin or not, and sets its limits, as its groups decide (where the
/// settings let them).
async fn apply_groups(
    gw: &Gateway,
    sign_on: &SignOn,
    mut user: User,
    groups: &[String],
) -> Result<User, Failed> {
    let down = |e: audiomill_store::StoreError| Failed("unavailable", e.to_string());
    if let Some(admin) = sign_on.settings.admin_for(groups) {
        gw.db.set_admin(user.id, admin).await.map_err(down)?;
        user.is_admin = admin;
    }
    if let Some(limits) = sign_on.settings.limits_for(groups) {
        gw.db.set_quota(user.id, limits).await.map_err(down)?;
        user.quota = limits;
    }
    Ok(user)
}

/// Back to the web app, saying why the sign-in did not go through.
fn failed(Failed(reason, detail): Failed) -> SignOnResponse {
    tracing::warn!(reason, detail = %detail, "a single sign-on was refused");
    SignOnResponse::SeeOther(format!("/?sign_in_error={reason}"), None)
}

fn not_set_up() -> SignOnResponse {
    SignOnResponse::NotFound(ErrorBody::new(
        ErrorCode::NotFound,
        "No single sign-on is set up here (OIDC_ISSUER).",
    ))
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{STATE_COOKIE}={value}; Path=/oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}
