//! Joining: an admin invites an address (`POST /invitations`, mailed through the
//! `SendAccountMail` workflow); the invitation's link, or anyone when `ALLOW_SIGNUP` is on,
//! makes an account (`POST /signup`); `GET /signup` says whether anyone may.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::params::Text;
use crate::{
    auth::{self, password_problem},
    error::{ErrorBody, ErrorCode},
};
use audiomill_domain::{
    EmailAddress,
    contract::{AccountMailInput, TASK_QUEUE},
    secret::secret_hash,
};
use audiomill_store::{JoinRefusal, StoreError, User};
use audiomill_workflows::SendAccountMail;
use poem_openapi::{Object, OpenApi, payload::Json};
use temporalio_client::WorkflowStartOptions;

/// `/signup` and `/invitations`.
pub struct SignupApi {
    pub(super) cx: Context,
}

/// Whether anyone may make an account here.
#[derive(Object)]
struct SignupOpen {
    /// `false`: accounts come from admins and their invitations only.
    open: bool,
}

/// A new account: with an invitation's `token` (whose address it takes), or an `email` when
/// sign-up is open.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct Join {
    #[oai(nullable, validator(max_length = 100))]
    token: Option<Text>,
    #[oai(nullable, validator(max_length = 254))]
    email: Option<Text>,
    /// At least 8 characters.
    #[oai(validator(min_length = 8, max_length = 1024))]
    password: Text,
}

/// The account made.
#[derive(Object)]
struct Joined {
    id: String,
    email: String,
}

/// Whom to invite.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct Invite {
    #[oai(validator(max_length = 254))]
    email: Text,
    /// Whether the account is to be an admin.
    #[oai(default)]
    admin: bool,
}

/// What became of an invitation.
#[derive(Object)]
struct Invited {
    message: String,
}

api_response! {
    enum OpenResponse {
        #[oai(status = 200)]
        Ok(Json<SignupOpen>),
    }
}

api_response! {
    #[oai(bad_request_handler = "super::password::body_refusal")]
    enum JoinResponse {
        /// Made; sign in with the address and password.
        #[oai(status = 201)]
        Created(Json<Joined>),
        /// The invitation's link is unknown, used or expired (`field: token`), the address is
        /// not one, or the password is too short.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        /// Sign-up is closed (`ALLOW_SIGNUP`), and no invitation was given.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        /// The address has an account.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum InviteResponse {
        /// The invitation is on its way; its link works once, for 7 days.
        #[oai(status = 202)]
        Accepted(Json<Invited>),
        /// The address is not one.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The address has an account.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl SignupApi {
    /// Whether anyone may make an account (`ALLOW_SIGNUP`).
    #[oai(
        path = "/signup",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "getSignup"
    )]
    async fn open(&self) -> OpenResponse {
        OpenResponse::Ok(Json(SignupOpen {
            open: self.cx.gw().allow_signup,
        }))
    }

    /// Make an account: with an invitation's token, or with an address when sign-up is open.
    ///
    /// Counted against the login limits.
    #[oai(
        path = "/signup",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "signUp"
    )]
    async fn join(&self, body: Json<Join>) -> JoinResponse {
        let Join {
            token,
            email,
            password,
        } = body.0;
        if let Some(problem) = password_problem(&password) {
            return JoinResponse::BadRequest(ErrorBody::for_field("password", problem));
        }
        let email = match (&token, email) {
            (Some(_), _) => None,
            (None, _) if !self.cx.gw().allow_signup => {
                return JoinResponse::Forbidden(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "Sign-up is closed here; ask an admin for an invitation.",
                ));
            }
            (None, Some(email)) => match EmailAddress::parse(email.trim()) {
                Ok(email) => Some(email),
                Err(_) => return not_an_address(),
            },
            (None, None) => return not_an_address(),
        };
        let hash = match auth::hash_in_background(&password).await {
            Ok(hash) => hash,
            Err(down) => return JoinResponse::Unavailable(down),
        };
        let db = &self.cx.gw().db;
        let made = match (token, email) {
            (Some(token), _) => db.join(&secret_hash(token.trim()), &hash).await,
            (None, Some(email)) => match db.create_user(&email, &hash, false).await {
                Ok(user) => Ok(Ok(user)),
                Err(StoreError::Conflict(_)) => Ok(Err(JoinRefusal::Taken)),
                Err(error) => Err(error),
            },
            (None, None) => return not_an_address(),
        };
        joined(made)
    }

    /// Invite an address to make an account (admins only): a link is mailed to it.
    #[oai(
        path = "/invitations",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "inviteUser"
    )]
    async fn invite(
        &self,
        #[oai(scope = "Scope::Admin")] auth: BearerAuth,
        body: Json<Invite>,
    ) -> InviteResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Admin).await);
        let Ok(email) = EmailAddress::parse(body.0.email.trim()) else {
            return InviteResponse::BadRequest(ErrorBody::for_field(
                "email",
                "This is not an e-mail address.",
            ));
        };
        let gw = self.cx.gw();
        match gw.db.user_by_email(&email).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return InviteResponse::Conflict(ErrorBody::new(
                    ErrorCode::Conflict,
                    "An account with this address exists.",
                ));
            }
            Err(error) => return InviteResponse::Unavailable(store_down(error)),
        }
        let invitation_id = match gw.db.invite(&email, body.0.admin, caller.user).await {
            Ok(id) => id,
            Err(error) => return InviteResponse::Unavailable(store_down(error)),
        };
        let options =
            WorkflowStartOptions::new(TASK_QUEUE, format!("invitation-{invitation_id}")).build();
        let input = AccountMailInput::Invitation { invitation_id };
        if let Err(error) = gw
            .temporal
            .start_workflow(SendAccountMail::run, input, options)
            .await
        {
            return InviteResponse::Unavailable(crate::error::unavailable("mail service", error));
        }
        tracing::info!(by = %caller.user, "an invitation was sent");
        InviteResponse::Accepted(Json(Invited {
            message: format!("An invitation is on its way to {email}; its link works for 7 days."),
        }))
    }
}

fn not_an_address() -> JoinResponse {
    JoinResponse::BadRequest(ErrorBody::for_field(
        "email",
        "Give the e-mail address of the new account.",
    ))
}

fn joined(made: Result<Result<User, JoinRefusal>, StoreError>) -> JoinResponse {
    match made {
        Ok(Ok(user)) => {
            tracing::info!(user = %user.id, "an account was made");
            JoinResponse::Created(Json(Joined {
                id: user.id.to_string(),
                email: user.email.to_string(),
            }))
        }
        Ok(Err(JoinRefusal::Invalid)) => JoinResponse::BadRequest(ErrorBody::for_field(
            "token",
            "The invitation's link is unknown, used or expired; ask for a new one.",
        )),
        Ok(Err(JoinRefusal::Taken)) => JoinResponse::Conflict(ErrorBody::new(
            ErrorCode::Conflict,
            "An account with this address exists; sign in, or choose a new password.",
        )),
        Err(error) => JoinResponse::Unavailable(store_down(error)),
    }
}
