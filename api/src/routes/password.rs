//! A forgotten password: `POST /password/forgot` mails a one-time link (through the
//! `SendAccountMail` workflow) and answers the same whether the address has an account;
//! `POST /password/reset` spends the link's secret on a new password.

use super::context::{ApiTags, Context, ErrorJson, store_down};
use crate::params::Text;
use crate::{
    auth::{self, password_problem},
    error::ErrorBody,
    gateway::Gateway,
};
use audiomill_domain::{
    EmailAddress,
    contract::{AccountMailInput, TASK_QUEUE},
    secret::secret_hash,
};
use audiomill_workflows::SendAccountMail;
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};
use std::sync::Arc;
use temporalio_client::WorkflowStartOptions;

/// `/password/forgot` and `/password/reset`.
pub struct PasswordApi {
    pub(super) cx: Context,
}

/// Whose password is forgotten.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ForgotPassword {
    #[oai(validator(max_length = 254))]
    email: Text,
}

/// What the answer says, whatever the address.
#[derive(Object)]
#[oai(example)]
struct Forgotten {
    message: String,
}

impl Example for Forgotten {
    fn example() -> Self {
        Forgotten {
            message: SENT.into(),
        }
    }
}

const SENT: &str = "If an account has this address, a link to choose a new password is on its \
    way; it works once, for an hour.";

/// A new password, with the secret of the mailed link.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct ResetPassword {
    /// The `token` of the mailed link.
    #[oai(validator(max_length = 100))]
    token: Text,
    /// At least 8 characters.
    #[oai(validator(min_length = 8, max_length = 1024))]
    new_password: Text,
}

api_response! {
    #[oai(bad_request_handler = "body_refusal")]
    enum ForgotResponse {
        /// Taken: a link is mailed if the address has an active account (at most 3 an hour).
        #[oai(status = 202)]
        Accepted(Json<Forgotten>),
        /// The address is not an e-mail address.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
    }
}

api_response! {
    #[oai(bad_request_handler = "body_refusal")]
    enum ResetResponse {
        /// The password is changed, and every login of the account has ended (API keys stay).
        #[oai(status = 204)]
        Changed,
        /// The link is unknown, used or expired (`field: token`), or the new password is too
        /// short or long (`field: new_password`).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unavailable,
    }
}

/// A body the framework could not read: 400 with its sentence (these operations take no
/// credential, so nothing else is refused before they run).
pub(super) fn body_refusal<R: super::context::AnswersBadRequest>(error: poem::Error) -> R {
    R::bad_request(crate::error::framework_answer(&error).1)
}

#[OpenApi]
impl PasswordApi {
    /// Ask for a link to choose a new password.
    ///
    /// The answer is the same whether the address has an account, and comes at once; the
    /// link is mailed to an active account's address, works once, and expires in an hour.
    /// Counted against the login limits.
    #[oai(
        path = "/password/forgot",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "forgotPassword"
    )]
    async fn forgot(&self, body: Json<ForgotPassword>) -> ForgotResponse {
        let Ok(email) = EmailAddress::parse(body.0.email.trim()) else {
            return ForgotResponse::BadRequest(ErrorBody::for_field(
                "email",
                "This is not an e-mail address.",
            ));
        };
        // Whatever happens next takes its own time, so the answer's time says nothing of it.
        tokio::spawn(mail_reset_link(self.cx.gateway(), email));
        ForgotResponse::Accepted(Json(Forgotten {
            message: SENT.into(),
        }))
    }

    /// Choose a new password with the secret of a mailed link.
    #[oai(
        path = "/password/reset",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "resetPassword"
    )]
    async fn reset(&self, body: Json<ResetPassword>) -> ResetResponse {
        let ResetPassword {
            token,
            new_password,
        } = body.0;
        if let Some(problem) = password_problem(&new_password) {
            return ResetResponse::BadRequest(ErrorBody::for_field("new_password", problem));
        }
        let hash = match auth::hash_in_background(&new_password).await {
            Ok(hash) => hash,
            Err(down) => return ResetResponse::Unavailable(down),
        };
        let db = &self.cx.gw().db;
        match db
            .use_password_reset(&secret_hash(token.trim()), &hash)
            .await
        {
            Ok(Some(_)) => {
                tracing::info!("a password was reset");
                ResetResponse::Changed
            }
            Ok(None) => ResetResponse::BadRequest(ErrorBody::for_field(
                "token",
                "The link is unknown, used or expired; ask for a new one.",
            )),
            Err(error) => ResetResponse::Unavailable(store_down(error)),
        }
    }
}

/// Records a reset request for the active account of `email`, if there is one, and starts the
/// workflow that mails its link.
async fn mail_reset_link(gw: Arc<Gateway>, email: EmailAddress) {
    let requested = match gw.db.user_by_email(&email).await {
        Ok(Some(user)) if user.active => gw.db.request_password_reset(user.id).await,
        Ok(_) => Ok(None),
        Err(error) => Err(error),
    };
    let reset_id = match requested {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, "a password reset could not be recorded");
            return;
        }
    };
    let options =
        WorkflowStartOptions::new(TASK_QUEUE, format!("password-reset-{reset_id}")).build();
    let input = AccountMailInput::PasswordReset { reset_id };
    if let Err(error) = gw
        .temporal
        .start_workflow(SendAccountMail::run, input, options)
        .await
    {
        tracing::error!(%error, "the password reset mail could not be started");
    }
}
