//! Mail about an account: a password reset link, or an invitation to make one. The activity
//! mints the link's secret itself (so no secret is in the workflow's history), keeps its hash,
//! and sends the mail; a retry mints a new one, and only the newest link works. The links open
//! the web app's pages for them (`/#/reset?token=`, `/#/join?token=`).

use crate::failures::{database_down, mail_down};
use crate::mailer::{MailError, Mailer};
use audiomill_domain::contract::{AccountMailInput, activity};
use audiomill_domain::secret::{secret_from, secret_hash};
use audiomill_store::Database;
use lettre::{Message, message::MultiPart};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

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

/// What a mail about an account says.
struct AccountLetter<'a> {
    subject: &'a str,
    /// What the link is for, said before it.
    opening: &'a str,
    /// The words of the link in the HTML part.
    action: &'a str,
    /// What ignoring the mail leaves as it is, said after it.
    closing: &'a str,
}

const RESET: AccountLetter<'static> = AccountLetter {
    subject: "Choose a new Audiomill password",
    opening: "someone (we hope you) asked to choose a new password for your Audiomill account.",
    action: "Choose a new password",
    closing: "If you did not ask, ignore this mail: your password stays as it is.",
};

const INVITATION: AccountLetter<'static> = AccountLetter {
    subject: "You are invited to Audiomill",
    opening: "you are invited to make an account on Audiomill, which converts videos to MP3.",
    action: "Make your account",
    closing: "If you do not want one, ignore this mail.",
};

#[activities]
impl AccountMailActivities {
    /// Sends the mail `input` names; `false` when there is nothing to send any more (the
    /// request was spent, expired, or replaced, or the account is off or exists already).
    #[activity(definition = activity::SendAccountMail)]
    pub async fn send_account_mail(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: AccountMailInput,
    ) -> Result<bool, ActivityError> {
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = secret_from(random);
        let hash = secret_hash(&secret);
        let armed = match &input {
            AccountMailInput::PasswordReset { reset_id } => self
                .db
                .arm_password_reset(reset_id, &hash)
                .await
                .map(|armed| armed.map(|(user, until)| (user.email, until, RESET, "reset"))),
            AccountMailInput::Invitation { invitation_id } => self
                .db
                .arm_invitation(invitation_id, &hash)
                .await
                .map(|armed| armed.map(|(email, until)| (email, until, INVITATION, "join"))),
        };
        let Some((to, expires_at, letter, page)) = armed.map_err(database_down)? else {
            tracing::info!("an account's mail was no longer due");
            return Ok(false);
        };
        let link = format!("{}/#/{page}?token={secret}", self.base_url);
        let message = account_message(&self.mailer, to.as_ref(), &letter, &link, expires_at)
            .map_err(mail_down)?;
        self.mailer.deliver(message).await.map_err(mail_down)?;
        tracing::info!(page, "an account's mail was sent");
        Ok(true)
    }
}

/// `letter` to `to`, with `link`, which works until `expires_at` (Unix ms).
fn account_message(
    mailer: &Mailer,
    to: &str,
    letter: &AccountLetter,
    link: &str,
    expires_at: i64,
) -> Result<Message, MailError> {
    let to = to
        .parse()
        .map_err(|_| MailError::Build("the recipient address is invalid".into()))?;
    let until = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(expires_at)
        .unwrap_or_default()
        .format("%H:%M UTC on %a %-d %b %Y");
    let AccountLetter {
        subject,
        opening,
        action,
        closing,
    } = letter;
    let text = format!(
        "Hello,\n\n{opening} {action} here:\n{link}\n\n\
         The link works once, until {until}. {closing}\n\n-- Audiomill\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n\
         <p>Hello,</p>\n<p>{opening}</p>\n\
         <p><a href=\"{href}\">{action}</a></p>\n\
         <p>The link works once, until {until}. {closing}</p>\n\
         <p>&mdash; Audiomill</p>\n</body></html>\n",
        href = html_escape::encode_double_quoted_attribute(link),
    );
    Message::builder()
        .from(mailer.sender())
        .to(to)
        .subject(*subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| MailError::Build(e.to_string()))
}
