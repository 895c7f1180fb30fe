//! Reaching a link's video: every address the host resolves to checked, the connection
//! pinned to those, redirects followed by hand and each checked again; and the sentence for
//! every way a request fails.

use super::Stop;
use audiomill_domain::{
    address::{Unreachable, is_public},
    import::{self, ImportUrl, MAX_REDIRECTS},
};
use std::{net::IpAddr, sync::Arc, time::Duration};

/// Which addresses a fetch may connect to.
type Permits = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Reaches a link's video: redirects followed by hand, every address checked.
pub(crate) struct Fetcher {
    permits: Permits,
    idle_timeout: Duration,
}

impl Fetcher {
    /// A fetcher that reaches public addresses only, unless `allow_private`.
    pub(crate) fn new(allow_private: bool, idle_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(move |address| allow_private || is_public(address)),
            idle_timeout,
        }
    }

    /// The response that carries the video: redirects followed by hand (at most
    /// [`MAX_REDIRECTS`]), each new address resolved and checked before it is reached.
    pub(super) async fn follow(&self, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
        let mut current = url.clone();
        let mut visited = vec![current.as_url().clone()];
        for _ in 0..=MAX_REDIRECTS {
            let response = self.request(&current).await?;
            let status = response.status();
            if !status.is_redirection() {
                return answer(response, &current);
            }
            let server = current.host();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    Stop::Refused(format!(
                        "{server} answered {status} without saying where to."
                    ))
                })?;
            let next = current.redirected(location).map_err(|why| {
                Stop::Refused(format!(
                    "{server} redirected to an address that cannot be imported: {why}."
                ))
            })?;
            if visited.contains(next.as_url()) {
                return Err(Stop::Refused(format!("{server} redirects in a loop.")));
            }
            visited.push(next.as_url().clone());
            current = next;
        }
        Err(Stop::Refused(format!(
            "The link redirects more than {MAX_REDIRECTS} times."
        )))
    }

    /// One `GET` of `url`, connecting only to the addresses its host resolves to now, all
    /// allowed ones; no redirect followed, no proxy.
    async fn request(&self, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
        let server = url.host();
        self.client_for(url, "imported from")
            .await?
            .get(url.as_url().clone())
            .send()
            .await
            .map_err(|error| classify(&server, &error, self.idle_timeout))
    }

    /// Writes the file at `path` to `url` with one `PUT` (a presigned upload link), checked and
    /// pinned as a fetch is; no redirect followed.
    pub(crate) async fn put_file(
        &self,
        url: &ImportUrl,
        path: &std::path::Path,
    ) -> Result<(), Stop> {
        let server = url.host();
        let client = self.client_for(url, "written to").await?;
        let unreadable = |error: std::io::Error| {
            Stop::Unreachable(format!("The MP3 could not be read: {error}."))
        };
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
        let response = client
            .put(url.as_url().clone())
            .header(reqwest::header::CONTENT_TYPE, "audio/mpeg")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file))
            .send()
            .await
            .map_err(|error| classify(&server, &error, self.idle_timeout))?;
        let status = response.status();
        let said = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        let said = said.trim();
        match status.as_u16() {
            200..=299 => Ok(()),
            300..=399 => Err(Stop::Refused(format!(
                "{server} answered {said}; an upload follows no redirect."
            ))),
            401 | 403 => Err(Stop::Refused(format!(
                "{server} refused the upload ({said}); the link may have expired."
            ))),
            408 | 429 | 500..=599 => Err(Stop::Unreachable(format!(
                "{server} could not take the MP3 now ({said})."
            ))),
            _ => Err(Stop::Refused(format!(
                "{server} refused the upload ({said})."
            ))),
        }
    }

    /// A client that connects to `url`'s host only at the addresses it resolves to now, all
    /// of them allowed; no redirect followed, no proxy. `doing` says in a refusal what was
    /// to be done there.
    async fn client_for(&self, url: &ImportUrl, doing: &str) -> Result<reqwest::Client, Stop> {
        let server = url.host();
        let addresses = import::resolve(url, true)
            .await
            .map_err(|refusal| Stop::Unreachable(format!("{refusal}.")))?;
        if !addresses.iter().all(|address| (self.permits)(address.ip())) {
            let refusal = Unreachable::Private {
                host: server.clone(),
                address: addresses[0].ip(),
            };
            return Err(Stop::Refused(format!(
                "{refusal}, so it may not be {doing}."
            )));
        }
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(self.idle_timeout)
            .resolve_to_addrs(&server, &addresses)
            .user_agent(concat!("Audiomill/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Stop::Unreachable(format!("No HTTP client: {error}.")))
    }
}

/// The response if it carries the video (2xx); the refusal its status means otherwise.
fn answer(response: reqwest::Response, url: &ImportUrl) -> Result<reqwest::Response, Stop> {
    let status = response.status();
    let server = url.host();
    let said = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    let said = said.trim();
    match status.as_u16() {
        200..=299 => Ok(response),
        401 | 403 => Err(Stop::Refused(format!(
            "{server} refused access to the video ({said})."
        ))),
        404 | 410 => Err(Stop::Refused(format!(
            "{server} has no video at this link ({said})."
        ))),
        408 | 429 | 500..=599 => Err(Stop::Unreachable(format!(
            "{server} could not send the video now ({said})."
        ))),
        _ => Err(Stop::Refused(format!(
            "{server} would not send the video ({said})."
        ))),
    }
}

/// The host a response came from, for sentences.
pub(super) fn url_host(url: &url::Url) -> String {
    audiomill_domain::address::host(url)
}

/// A sentence for a request that got no answer, naming the server.
fn classify(server: &str, error: &reqwest::Error, idle: Duration) -> Stop {
    if is_certificate_problem(error) {
        return Stop::Refused(format!(
            "{server}'s TLS certificate could not be verified, so the video was not fetched."
        ));
    }
    Stop::Unreachable(request_failure(server, error, idle))
}

pub(super) fn request_failure(server: &str, error: &reqwest::Error, idle: Duration) -> String {
    if error.is_timeout() {
        format!("{server} sent nothing for {} s.", idle.as_secs())
    } else if error.is_connect() {
        format!("{server} could not be reached.")
    } else {
        format!("The connection to {server} broke off.")
    }
}

/// Whether the error's causes name a certificate the TLS handshake refused.
fn is_certificate_problem(error: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("unknownissuer") {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering each path with a fixed head (and no body); its base URL.
    async fn server(routes: &'static [(&'static str, &'static str)]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    let read = socket.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let head = routes
                        .iter()
                        .find(|(route, _)| *route == path)
                        .map_or("HTTP/1.1 404 Not Found", |(_, head)| head);
                    let answer =
                        format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        base
    }

    /// A fetcher that may reach 127.0.0.1 and nothing else.
    fn fetcher() -> Fetcher {
        let only = IpAddr::from([127, 0, 0, 1]);
        Fetcher {
            permits: Arc::new(move |address| address == only),
            idle_timeout: Duration::from_secs(5),
        }
    }

    async fn stop_at(base: &str, path: &str) -> Stop {
        let url = ImportUrl::parse(&format!("{base}{path}")).unwrap();
        fetcher().follow(&url).await.expect_err("refused")
    }

    #[tokio::test]
    async fn every_redirect_is_checked_before_it_is_reached() {
        static ROUTES: &[(&str, &str)] = &[
            (
                "/elsewhere",
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/secret",
            ),
            (
                "/metadata",
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/latest/meta-data/",
            ),
            (
                "/file",
                "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd",
            ),
            ("/a", "HTTP/1.1 302 Found\r\nLocation: /b"),
            ("/b", "HTTP/1.1 302 Found\r\nLocation: /a"),
            ("/1", "HTTP/1.1 302 Found\r\nLocation: /2"),
            ("/2", "HTTP/1.1 302 Found\r\nLocation: /3"),
            ("/3", "HTTP/1.1 302 Found\r\nLocation: /4"),
            ("/4", "HTTP/1.1 302 Found\r\nLocation: /5"),
            ("/5", "HTTP/1.1 302 Found\r\nLocation: /6"),
            ("/6", "HTTP/1.1 302 Found\r\nLocation: /7"),
            ("/nowhere", "HTTP/1.1 302 Found"),
            ("/busy", "HTTP/1.1 503 Service Unavailable"),
            ("/secret", "HTTP/1.1 403 Forbidden"),
        ];
        let base = server(ROUTES).await;
        for path in ["/elsewhere", "/metadata"] {
            let Stop::Refused(why) = stop_at(&base, path).await else {
                panic!("{path} was not refused");
            };
            assert!(
                why.contains("does not resolve to a public address"),
                "{why}"
            );
        }

        let Stop::Refused(why) = stop_at(&base, "/file").await else {
            panic!()
        };
        assert!(why.contains("only http and https"), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/a").await else {
            panic!()
        };
        assert!(why.ends_with("redirects in a loop."), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/1").await else {
            panic!()
        };
        assert_eq!(why, "The link redirects more than 5 times.");
        let Stop::Refused(why) = stop_at(&base, "/nowhere").await else {
            panic!()
        };
        assert!(why.contains("without saying where to"), "{why}");
        let Stop::Refused(why) = stop_at(&base, "/missing").await else {
            panic!()
        };
        assert_eq!(why, "127.0.0.1 has no video at this link (404 Not Found).");
        let Stop::Refused(why) = stop_at(&base, "/secret").await else {
            panic!()
        };
        assert!(why.contains("refused access"), "{why}");
        let Stop::Unreachable(why) = stop_at(&base, "/busy").await else {
            panic!()
        };
        assert!(why.contains("503"), "{why}");
    }

    #[tokio::test]
    async fn a_server_that_cannot_be_reached_is_tried_again() {
        let url = ImportUrl::parse("http://127.0.0.1:9/video.mp4").unwrap();
        let Err(Stop::Unreachable(why)) = fetcher().follow(&url).await else {
            panic!("not unreachable");
        };
        assert_eq!(why, "127.0.0.1 could not be reached.");
    }
}
