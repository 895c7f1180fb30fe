//! What went wrong, told as one sentence for the person at the terminal: never a stack trace,
//! never a bare transport error.

use audiomill_client::{Error, types::ErrorBody};
use std::{fmt, io, path::Path};

/// One sentence saying what went wrong and, where it helps, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(String);

impl fmt::Display for Problem {
    /// A sentence may carry the server's words: shown with nothing a terminal acts on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::printable::printable(&self.0))
    }
}

impl std::error::Error for Problem {}

impl Problem {
    pub fn new(sentence: impl Into<String>) -> Self {
        Self(sentence.into())
    }

    /// No login is saved on this machine.
    pub fn not_logged_in() -> Self {
        Self::new("You are not logged in; run `audiomill login --server URL` first.")
    }

    /// The saved login can no longer be renewed.
    pub fn login_expired(server: &str) -> Self {
        Self::new(format!(
            "Your login to {server} has expired; log in again with `audiomill login --server {server}`."
        ))
    }

    /// `error` from a call to `server`, as one sentence: the server's own message for a
    /// refusal, or what the connection did.
    pub fn from_api(server: &str, error: Error<ErrorBody>) -> Self {
        match error {
            // The server names an API key in every refusal of one.
            Error::ErrorResponse(answer)
                if answer.status().as_u16() == 401 && answer.message.contains("API key") =>
            {
                Self::new(format!(
                    "{server} refused the API key ({}); check --api-key or AUDIOMILL_API_KEY.",
                    answer.message.trim_end_matches('.')
                ))
            }
            Error::ErrorResponse(answer) if answer.status().as_u16() == 401 => {
                Self::login_expired(server)
            }
            Error::ErrorResponse(answer) => Self::new(answer.message.clone()),
            Error::CommunicationError(error)
            | Error::ResponseBodyError(error)
            | Error::InvalidUpgrade(error) => Self::connection(server, &error),
            Error::UnexpectedResponse(answer) if answer.status().is_server_error() => {
                Self::new(format!(
                    "{server} is having trouble (it answered {}); try again later.",
                    answer.status()
                ))
            }
            Error::InvalidResponsePayload(..) | Error::UnexpectedResponse(_) => {
                Self::not_audiomill(server)
            }
            Error::InvalidRequest(sentence) | Error::Custom(sentence) => Self::new(sentence),
        }
    }

    /// The connection to `server` failed.
    pub fn connection(server: &str, error: &reqwest::Error) -> Self {
        if error.is_connect() {
            Self::new(format!(
                "Could not connect to {server}; check the address and that the server is running."
            ))
        } else if error.is_timeout() {
            Self::new(format!("{server} did not answer in time."))
        } else if error.is_decode() || error.is_body() {
            Self::new(format!(
                "The connection to {server} broke off: {}.",
                root_cause(error)
            ))
        } else {
            Self::new(format!(
                "Could not talk to {server}: {}.",
                root_cause(error)
            ))
        }
    }

    /// `server` answers, but not as an Audiomill server would.
    pub fn not_audiomill(server: &str) -> Self {
        Self::new(format!(
            "{server} does not answer like an Audiomill server; check the address."
        ))
    }

    /// Writing `path` failed.
    pub fn saving(path: &Path, error: &io::Error) -> Self {
        let why = match error.kind() {
            io::ErrorKind::StorageFull => "the disk is full".to_owned(),
            io::ErrorKind::QuotaExceeded => "the disk quota is used up".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            io::ErrorKind::NotFound => "its folder does not exist".to_owned(),
            io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
            _ => error.to_string(),
        };
        Self::new(format!("Could not save {}: {why}.", shown(path)))
    }
}

/// How a path is named in a sentence (`-` is standard output).
pub fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "standard output".into()
    } else {
        path.display().to_string()
    }
}

/// The innermost cause of `error`, the one that says what happened.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string().trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_as_such() {
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(
            Problem::saving(Path::new("out/clip.mp3"), &full).to_string(),
            "Could not save out/clip.mp3: the disk is full."
        );
        assert_eq!(
            Problem::saving(Path::new("-"), &full).to_string(),
            "Could not save standard output: the disk is full."
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_one_sentence() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let server = format!("http://{address}");
        let error = reqwest::get(&server).await.unwrap_err();
        let sentence = Problem::connection(&server, &error).to_string();
        assert_eq!(
            sentence,
            format!(
                "Could not connect to {server}; check the address and that the server is running."
            )
        );
    }
}
