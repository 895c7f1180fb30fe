//! Who a bearer credential is: an access token of a login, an API key, or an upload token. Each is checked
//! against the database on every use, so a logout, a revoked key or a deactivated account
//! stops it at once.

use crate::{
    auth::{Caller, Denied, UploadGrant, api_key_id, key_matches, upload_token_id},
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    scopes::{Scope, Scopes},
};
use audiomill_store::{ApiKey, User, time::now_millis};

/// What `/validate` says of a key that never expires: 9999-12-31T23:59:59Z.
pub(crate) const NEVER: u64 = 253_402_300_799;

/// The caller `token` names, whatever its kind.
pub(crate) async fn identify(gw: &Gateway, token: &str) -> Result<Caller, Denied> {
    if let Some(id) = api_key_id(token) {
        key_holder(gw, token, id).await
    } else if let Some(id) = upload_token_id(token) {
        upload_token_holder(gw, token, id).await
    } else {
        login_holder(gw, token).await
    }
}

/// The caller of an upload token: known, its secret matching, unexpired, its account active
/// and the login (or key) that minted it still open. It holds no scope: only the upload
/// operations take it.
async fn upload_token_holder(gw: &Gateway, token: &str, id: &str) -> Result<Caller, Denied> {
    let invalid = || refused("The upload token is invalid.");
    let (grant, user) = gw.db.upload_token(id).await?.ok_or_else(invalid)?;
    if !key_matches(token, &grant.secret_hash) {
        return Err(invalid());
    }
    if grant.expires_at <= now_millis() {
        return Err(refused("The upload token has expired."));
    }
    if !gw.db.session_is_active(user.id, &grant.session_id).await? {
        return Err(refused(
            "The upload token has ended with the login or key that made it.",
        ));
    }
    Ok(Caller {
        user: user.id,
        email: user.email.to_string(),
        admin: false,
        session: grant.session_id,
        expires: u64::try_from(grant.expires_at / 1000).unwrap_or_default(),
        scopes: Scopes::default(),
        key: None,
        upload: Some(UploadGrant {
            id: grant.prefix,
            max_bytes: grant.max_bytes,
            options: grant.options,
        }),
    })
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
        upload: None,
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
