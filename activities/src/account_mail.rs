//! Mail about an account: a password reset link. The activity mints the link's secret itself
//! (so no secret is in the workflow's history), keeps its hash, and sends the mail; a retry
//! mints a new one, and only the newest link works.

use crate::failures::{database_down, mail_down};
use crate::mailer::{MailError, Mailer};
use audiomill_domain::contract::{AccountMailInput, activity};
use audiomill_domain::secret::{secret_from, secret_hash};
use audiomill_store::Database;
use lettre::{Message, message::MultiPart};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// The page a reset link opens: the web app's form for a new password.
const RESET_PAGE: &str = "/#/reset?token=";

#[derive(Clone)]
pub struct AccountMailActivities {
    db: Database,
    mailer: Mailer,
    /// The service's public address, which links start with.
    base_url: String,
}

impl AccountMailActivities {
    pub fn new(db: Database, mailer: Mailer, base_url: &str) -> Self {
        Self {
            db,
            mailer,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }
}

#[activities]
impl AccountMailActivities {
    /// Sends the mail `input` names; `false` when there is nothing to send any more (the
    /// request was spent, expired, or replaced, or the account is off).
    #[activity(definition = activity::SendAccountMail)]
    pub async fn send_account_mail(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: AccountMailInput,
    ) -> Result<bool, ActivityError> {
        let AccountMailInput::PasswordReset { reset_id } = input;
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = secret_from(random);
        let armed = self
            .db
            .arm_password_reset(&reset_id, &secret_hash(&secret))
            .await
            .map_err(database_down)?;
        let Some((user, expires_at)) = armed else {
            tracing::info!("a password reset ended before its mail was sent");
            return Ok(false);
        };
        let link = format!("{}{RESET_PAGE}{secret}", self.base_url);
        let message = reset_message(&self.mailer, user.email.as_ref(), &link, expires_at)
            .map_err(mail_down)?;
        self.mailer.deliver(message).await.map_err(mail_down)?;
        tracing::info!("password reset mail sent");
        Ok(true)
    }
}

/// The reset mail to `to`, with `link`, which works until `expires_at` (Unix ms).
fn reset_message(
    mailer: &Mailer,
    to: &str,
    link: &str,
    expires_at: i64,
) -> Result<Message, MailError> {
    let to = to
        .parse()
        .map_err(|_| MailError::Build("the recipient address is invalid".into()))?;
    let until = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(expires_at)
        .unwrap_or_default()
        .format("%H:%M UTC on %a %-d %b %Y");
    let text = format!(
        "Hello,\n\nsomeone (we hope you) asked to choose a new password for your Audiomill \
         account. Choose one here:\n{link}\n\n\
         The link works once, until {until}. If you did not ask, ignore this mail: your \
         password stays as it is.\n\n-- Audiomill\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n\
         <p>Hello,</p>\n\
         <p>someone (we hope you) asked to choose a new password for your Audiomill account.</p>\n\
         <p><a href=\"{href}\">Choose a new password</a></p>\n\
         <p>The link works once, until {until}. If you did not ask, ignore this mail: your \
         password stays as it is.</p>\n\
         <p>&mdash; Audiomill</p>\n</body></html>\n",
        href = html_escape::encode_double_quoted_attribute(link),
    );
    Message::builder()
        .from(mailer.sender())
        .to(to)
        .subject("Choose a new Audiomill password")
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| MailError::Build(e.to_string()))
}
