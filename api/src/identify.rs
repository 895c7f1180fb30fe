//! Who a bearer credential is: an access token of a login, or an API key. Either is checked
//! against the database on every use, so a logout, a revoked key or a deactivated account
//! stops it at once.

use crate::{
    auth::{Caller, Denied, api_key_id, key_matches},
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    scopes::{Scope, Scopes},
};
use audiomill_store::{ApiKey, User, time::now_millis};

/// What `/validate` says of a key that never expires: 9999-12-31T23:59:59Z.
pub(crate) const NEVER: u64 = 253_402_300_799;

/// The caller `token` names, whatever its kind.
pub(crate) async fn identify(gw: &Gateway, token: &str) -> Result<Caller, Denied> {
    match api_key_id(token) {
        Some(id) => key_holder(gw, token, id).await,
        None => login_holder(gw, token).await,
    }
}

/// The caller of a login's access token: signed by us, unexpired, its login still open.
async fn login_holder(gw: &Gateway, token: &str) -> Result<Caller, Denied> {
    let invalid = || refused("The access token is invalid or expired.");
    let claims = gw.tokens.verify_access(token).ok_or_else(invalid)?;
    let caller = Caller::from_claims(claims).ok_or_else(invalid)?;
    if gw
        .db
        .session_is_active(caller.user, &caller.session)
        .await?
    {
        Ok(caller)
    } else {
        Err(refused(
            "This login has ended (logged out or revoked); please log in again.",
        ))
    }
}

/// The caller of an API key: known, its secret matching, not revoked or expired, its account
/// active.
async fn key_holder(gw: &Gateway, token: &str, id: &str) -> Result<Caller, Denied> {
    let invalid = || refused("The API key is invalid or revoked.");
    let (key, user) = gw.db.api_key(id).await?.ok_or_else(invalid)?;
    if !key_matches(token, &key.secret_hash) || key.revoked {
        return Err(invalid());
    }
    if key.is_expired(now_millis()) {
        return Err(refused("The API key has expired."));
    }
    if !user.active {
        return Err(refused("The account is disabled."));
    }
    gw.db.touch_api_key(id).await?;
    gw.rate_limits.remember_key(id, &user.id.to_string());
    Ok(key_caller(key, user))
}

fn key_caller(key: ApiKey, user: User) -> Caller {
    let scopes: Scopes = Scopes::from_words(&key.scopes)
        .iter()
        .filter(|scope| *scope != Scope::Credentials)
        .filter(|scope| *scope != Scope::Admin || user.is_admin)
        .collect();
    Caller {
        user: user.id,
        email: user.email.to_string(),
        admin: scopes.contains(Scope::Admin),
        session: key.session_id,
        expires: key
            .expires_at
            .map_or(NEVER, |at| u64::try_from(at / 1000).unwrap_or_default()),
        scopes,
        key: Some(key.prefix),
    }
}

fn refused(message: &str) -> Denied {
    Denied::Unauthorized(ErrorBody::new(ErrorCode::Unauthorized, message))
}

/// The refusal of a valid credential that lacks `scope`.
pub(crate) fn lacking(scope: Scope) -> Denied {
    use poem_openapi::OAuthScopes;
    Denied::Forbidden(ErrorBody::new(
        ErrorCode::Forbidden,
        format!(
            "This credential lacks the `{}` scope this operation needs.",
            scope.name()
        ),
    ))
}
