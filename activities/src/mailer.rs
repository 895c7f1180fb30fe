//! Sends mail, to `.eml` files (embedded) or over SMTP, and writes the "your MP3 is ready"
//! e-mail.

use audiomill_domain::duration::spoken;
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
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
    /// The job's id: names the message (its `Message-ID`), so that a send retried after a
    /// lost acknowledgement is recognised as the same message.
    pub job_id: String,
    pub to: String,
    pub original_filename: String,
    /// A signed link: it opens the MP3 without logging in, until `link_expires_at`.
    pub download_url: String,
    /// Unix seconds.
    pub link_expires_at: i64,
    pub mp3_size: u64,
    pub duration_ms: u64,
    /// What the file was converted to: "MP3", "FLAC", ...
    pub format: &'static str,
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
        self.deliver(compose(self.sender(), notification)?).await
    }

    /// Who mail comes from (`MAIL_FROM`).
    pub(crate) fn sender(&self) -> Mailbox {
        match self {
            Self::Files { from, .. } | Self::Smtp { from, .. } => from.clone(),
        }
    }

    /// Hands `message` over: to a file, or to the SMTP relay.
    pub(crate) async fn deliver(&self, message: Message) -> Result<(), MailError> {
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
    let length = spoken(n.duration_ms.div_ceil(1000));
    let megabytes = n.mp3_size as f64 / 1_000_000.0;
    let until = chrono::DateTime::<chrono::Utc>::from_timestamp(n.link_expires_at, 0)
        .unwrap_or_default()
        .format("%a %-d %b %Y, %H:%M UTC");
    let text = format!(
        "Hello,\n\nyour file \"{name}\" has been converted to {format} ({length}, {megabytes:.2} MB).\n\n\
         Download it here:\n{url}\n\n\
         The link works until {until}; after that, sign in to Audiomill for a new one.\n\n\
         -- Audiomill\n",
        name = n.original_filename,
        url = n.download_url,
        format = n.format,
    );
    // Small and self-contained: no remote images, no scripts, no styles a client must fetch.
    let html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n\
         <p>Hello,</p>\n\
         <p>your file <strong>{name}</strong> has been converted to {format} ({length}, {megabytes:.2} MB).</p>\n\
         <p><a href=\"{url}\">Download the {format}</a></p>\n\
         <p>The link works until {until}; after that, sign in to Audiomill for a new one.</p>\n\
         <p>&mdash; Audiomill</p>\n</body></html>\n",
        name = html_escape::encode_text(&n.original_filename),
        url = html_escape::encode_double_quoted_attribute(&n.download_url),
        format = n.format,
    );
    let message_id = format!("<{}.mp3-ready@{}>", n.job_id, from.email.domain());
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!(
            "Your {} is ready: {}",
            n.format, n.original_filename
        ))
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(name: &str) -> Notification {
        Notification {
            job_id: "01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e".into(),
            to: "ann@example.com".into(),
            original_filename: name.into(),
            download_url:
                "https://audiomill.example.com/download/01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e?signature=1795531500.abc&x=1".into(),
            link_expires_at: 1_795_531_500,
            mp3_size: 1_234_567,
            duration_ms: 185_200,
            format: "MP3",
        }
    }

    fn parsed(name: &str) -> (String, Vec<(String, String)>) {
        let from = parse_mailbox("Audiomill <audiomill@example.com>").unwrap();
        let raw = compose(from, &notification(name)).unwrap().formatted();
        let mail = mailparse::parse_mail(&raw).expect("valid MIME");
        let id = mail
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case("message-id"))
            .map(|h| h.get_value())
            .unwrap_or_default();
        assert_eq!(mail.ctype.mimetype, "multipart/alternative");
        let parts = mail
            .subparts
            .iter()
            .map(|part| (part.ctype.mimetype.clone(), part.get_body().unwrap()))
            .collect();
        (id, parts)
    }

    #[test]
    fn the_message_has_a_text_and_an_html_part_and_an_id_of_its_own() {
        let (id, parts) = parsed("Holiday in Crete.mp4");
        assert_eq!(
            id,
            "<01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e.mp3-ready@example.com>"
        );
        let types: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["text/plain", "text/html"]);
        for (kind, body) in &parts {
            assert!(body.contains("Holiday in Crete.mp4"), "{kind}: {body}");
            assert!(body.contains("3 min 6 s"), "{kind}: {body}");
            assert!(body.contains("/download/01936d5e-"), "{kind}: {body}");
            assert!(
                body.contains("until Tue 24 Nov 2026, 14:45 UTC"),
                "{kind}: {body}"
            );
            assert!(!body.contains("sign in first"), "{kind}: {body}");
        }
        assert!(
            parts[0].1.lines().any(|line| line.trim_end()
                == "https://audiomill.example.com/download/01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e?signature=1795531500.abc&x=1"),
            "the text part carries the link as it is"
        );
        assert!(
            parts[1].1.contains("href=\"https://audiomill.example.com/download/01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e?signature=1795531500.abc&amp;x=1\""),
            "the HTML part escapes the link's ampersands: {}",
            parts[1].1
        );
        let html = &parts[1].1;
        assert!(
            !html.contains("<img") && !html.contains("<script"),
            "{html}"
        );
    }

    #[test]
    fn a_file_name_cannot_put_markup_in_the_html_part() {
        let (_, parts) = parsed("<script>alert(1)</script>\"&.mp4");
        let html = &parts[1].1;
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            parts[0].1.contains("<script>alert(1)</script>"),
            "the text part is text"
        );
    }
}
