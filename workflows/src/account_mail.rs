//! `SendAccountMail`: one mail about an account (a password reset link), sent by an activity
//! that waits out a mail server outage like the completion e-mail does.

use crate::options::mail_options;
use audiomill_domain::contract::{ACCOUNT_MAIL_WORKFLOW_TYPE, AccountMailInput, activity};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

#[workflow]
#[derive(Default)]
pub struct SendAccountMail;

#[workflow_methods]
impl SendAccountMail {
    /// Whether a mail went out (`false` when the request had ended before it could).
    #[run(name = ACCOUNT_MAIL_WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AccountMailInput,
    ) -> WorkflowResult<bool> {
        Ok(ctx
            .execute_activity(activity::SendAccountMail, input, mail_options())
            .await?)
    }
}
