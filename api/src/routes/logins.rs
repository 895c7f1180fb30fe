//! A person's own credentials: ending every login at once (`DELETE /me/logins`) and changing
//! the password (`PUT /me/password`). Both take the `credentials` scope, which only a login
//! holds.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::params::Text;
use crate::{
    auth::{self, password_problem},
    error::{ErrorBody, ErrorCode},
};
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};

/// `/me/logins` and `/me/password`.
pub struct LoginsApi {
    pub(super) cx: Context,
}

/// What signing out everywhere ended.
#[derive(Object)]
#[oai(example)]
struct EndedLogins {
    /// Logins ended: web sessions and programs' refresh tokens, this one included.
    ended: u64,
    /// API keys still working (they stay until revoked; see `/api-keys`).
    api_keys_kept: u64,
}

impl Example for EndedLogins {
    fn example() -> Self {
        EndedLogins {
            ended: 3,
            api_keys_kept: 1,
        }
    }
}

/// A new password, with the current one.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct PasswordChange {
    #[oai(validator(max_length = 1024))]
    current_password: Text,
    /// At least 8 characters.
    #[oai(validator(min_length = 8, max_length = 1024))]
    new_password: Text,
}

api_response! {
    enum EndResponse {
        /// Every login has ended, this one too; a browser's session cookie is removed.
        #[oai(status = 200)]
        Ended(
            Json<EndedLogins>,
            /// Removes the session cookie (see `POST /session`).
            #[oai(header = "Set-Cookie")]
            String,
        ),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum PasswordResponse {
        /// Changed. Every other login of the account has ended; this one goes on.
        #[oai(status = 204)]
        Changed,
        /// The current password is wrong, or the new one is too short or too long (`field`
        /// says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

#[OpenApi]
impl LoginsApi {
    /// Sign out everywhere: end every login of the account.
    ///
    /// Web sessions and programs' refresh tokens stop working at once, this one included.
    /// API keys stay until they are revoked, and watches until they are deleted.
    #[oai(
        path = "/me/logins",
        method = "delete",
        tag = "ApiTags::Auth",
        operation_id = "endAllLogins"
    )]
    async fn end_all(
        &self,
        #[oai(scope = "Scope::Credentials")] auth: BearerAuth,
        request: &poem::Request,
    ) -> EndResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Credentials).await);
        let gw = self.cx.gw();
        let ended = match gw.db.end_logins(caller.user, None).await {
            Ok(ended) => ended,
            Err(error) => return EndResponse::Unavailable(store_down(error)),
        };
        let now = audiomill_store::time::now_millis();
        let api_keys_kept = match gw.db.api_keys(caller.user).await {
            Ok(keys) => keys.iter().filter(|key| !key.is_expired(now)).count() as u64,
            Err(error) => return EndResponse::Unavailable(store_down(error)),
        };
        tracing::info!(ended, "every login of an account ended");
        EndResponse::Ended(
            Json(EndedLogins {
                ended,
                api_keys_kept,
            }),
            crate::session_cookie::removal(request, gw),
        )
    }

    /// Change the password.
    ///
    /// Takes the current password too. Every other login of the account ends; API keys stay.
    #[oai(
        path = "/me/password",
        method = "put",
        tag = "ApiTags::Auth",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        #[oai(scope = "Scope::Credentials")] auth: BearerAuth,
        body: Json<PasswordChange>,
    ) -> PasswordResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Credentials).await);
        let PasswordChange {
            current_password,
            new_password,
        } = body.0;
        if let Some(problem) = password_problem(&new_password) {
            return PasswordResponse::BadRequest(ErrorBody::for_field("new_password", problem));
        }
        let gw = self.cx.gw();
        let user = match gw.db.user_by_id(caller.user).await {
            Ok(Some(user)) => user,
            Ok(None) => return gone(),
            Err(error) => return PasswordResponse::Unavailable(store_down(error)),
        };
        let gateway = self.cx.gateway();
        // Argon2 is deliberately slow; keep it off the async workers.
        let hashed = tokio::task::spawn_blocking(move || {
            let hash = Some(user.password_hash.as_str());
            gateway
                .passwords
                .verify(&current_password, hash)
                .then(|| auth::hash_password(&new_password))
        })
        .await;
        let hash = match hashed {
            Ok(Some(Ok(hash))) => hash,
            Ok(None) => {
                return PasswordResponse::BadRequest(ErrorBody::for_field(
                    "current_password",
                    "The current password is wrong.",
                ));
            }
            Ok(Some(Err(_))) | Err(_) => {
                return PasswordResponse::Unavailable(crate::error::unavailable(
                    "password hashing",
                    "the hash could not be made",
                ));
            }
        };
        let changed = gw.db.set_password(caller.user, &hash).await;
        let others_ended = match changed {
            Ok(true) => gw.db.end_logins(caller.user, Some(&caller.session)).await,
            Ok(false) => return gone(),
            Err(error) => Err(error),
        };
        match others_ended {
            Ok(ended) => {
                tracing::info!(ended, "password changed; the other logins ended");
                PasswordResponse::Changed
            }
            Err(error) => PasswordResponse::Unavailable(store_down(error)),
        }
    }
}

fn gone() -> PasswordResponse {
    PasswordResponse::Unauthorized(ErrorBody::new(
        ErrorCode::Unauthorized,
        "This account no longer exists.",
    ))
}
