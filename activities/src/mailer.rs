//! Sends the "your MP3 is ready" e-mail, to `.eml` files (embedded) or over SMTP.

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use std::path::PathBuf;

#[derive(Clone)]
pub enum Mailer {
    /// One `.eml` file per message in a directory.
    Files { dir: PathBuf, from: Mailbox },
    /// An SMTP relay given as a lettre URL (`smtp://host:port`, `smtps://...`).
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// `host:port`, without the credentials the URL may carry.
        server: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the notification could not be built: {0}")]
    Build(String),
    #[error("the notification could not be delivered: {0}")]
    Delivery(String),
}

/// What a notification says.
#[derive(Debug, Clone)]
pub struct Notification {
    pub to: String,
    pub original_filename: String,
    pub download_url: String,
    pub mp3_size: u64,
    pub duration_ms: u64,
}

impl Mailer {
    pub fn files(dir: impl Into<PathBuf>, from: &str) -> Result<Self, MailError> {
        Ok(Self::Files {
            dir: dir.into(),
            from: parse_mailbox(from)?,
        })
    }

    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Build(format!("SMTP_URL is not a valid SMTP URL: {e}")))?
            .build();
        let server = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(
                    u.port()
                        .map_or(host.clone(), |port| format!("{host}:{port}")),
                )
            })
            .unwrap_or_else(|| "the SMTP server".to_owned());
        Ok(Self::Smtp {
            transport,
            from: parse_mailbox(from)?,
            server,
        })
    }

    /// Where mail goes, for operators (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Files { .. } => "`.eml` files".to_owned(),
            Self::Smtp { server, .. } => format!("SMTP {server}"),
        }
    }

    pub async fn init(&self) -> std::io::Result<()> {
        match self {
            Self::Files { dir, .. } => tokio::fs::create_dir_all(dir).await,
            Self::Smtp { transport, .. } => match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(std::io::Error::other("it did not greet us")),
                Err(error) => Err(std::io::Error::other(error)),
            },
        }
    }

    /// True when mail can be handed over now.
    pub async fn ping(&self) -> bool {
        match self {
            Self::Files { dir, .. } => tokio::fs::metadata(dir).await.is_ok(),
            Self::Smtp { transport, .. } => transport.test_connection().await.unwrap_or(false),
        }
    }

    pub async fn send(&self, notification: &Notification) -> Result<(), MailError> {
        let from = match self {
            Self::Files { from, .. } | Self::Smtp { from, .. } => from.clone(),
        };
        let message = compose(from, notification)?;
        match self {
            Self::Files { dir, .. } => {
                AsyncFileTransport::<Tokio1Executor>::new(dir)
                    .send(message)
                    .await
                    .map_err(|e| MailError::Delivery(e.to_string()))?;
            }
            Self::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Delivery(e.to_string()))?;
            }
        }
        Ok(())
    }
}

fn parse_mailbox(text: &str) -> Result<Mailbox, MailError> {
    text.parse()
        .map_err(|_| MailError::Build(format!("MAIL_FROM {text:?} is not an e-mail address")))
}

fn compose(from: Mailbox, n: &Notification) -> Result<Message, MailError> {
    let to: Mailbox =
        n.to.parse()
            .map_err(|_| MailError::Build("the recipient address is invalid".into()))?;
    let seconds = n.duration_ms as f64 / 1000.0;
    let megabytes = n.mp3_size as f64 / 1_000_000.0;
    let body = format!(
        "Hello,\n\nyour file \"{name}\" has been converted to MP3 ({seconds:.1} s, {megabytes:.2} MB).\n\n\
         Download it here (sign in first):\n{url}\n\n-- Audiomill\n",
        name = n.original_filename,
        url = n.download_url,
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Your MP3 is ready: {}", n.original_filename))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}
