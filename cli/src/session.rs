//! The saved login: which server, as whom, and the token pair, kept in the user's config
//! directory (`$XDG_CONFIG_HOME/audiomill/login.json`, else `~/.config/...`) readable by the
//! user alone, and renewed with the refresh token when the access token runs out.

use crate::problem::Problem;
use audiomill_client::{Client, Error, types};
use etcetera::BaseStrategy;
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// An access token this close to its expiry is renewed before use, so that it does not run
/// out on the way.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// What `login.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedLogin {
    pub server: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires, in Unix seconds.
    pub expires_at: u64,
}

/// The longest token kept: Audiomill's access tokens are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 << 10;

impl SavedLogin {
    /// The login `tokens` make; refused when they are not tokens a server of ours sends (too
    /// long, or holding what a header cannot carry), so nothing odd is ever saved.
    pub fn new(server: String, email: String, tokens: types::TokenPair) -> Result<Self, Problem> {
        let token_like = |token: &str| {
            (1..=MAX_TOKEN_BYTES).contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_graphic())
        };
        if !token_like(&tokens.access_token) || !token_like(&tokens.refresh_token) {
            return Err(Problem::not_audiomill(&server));
        }
        Ok(Self {
            server,
            email,
            expires_at: now().saturating_add(tokens.expires_in),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        })
    }

    fn is_fresh(&self) -> bool {
        self.expires_at > now() + RENEW_BEFORE.as_secs()
    }
}

/// An API key to act with instead of the saved login, for scripts and machines that keep no
/// login.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// An API key (`amk_...`, made in the web app's account page or with `POST /api-keys`)
    /// to act with instead of the saved login.
    #[arg(
        long,
        env = "AUDIOMILL_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// The server the API key is for; the saved login's when left out.
    #[arg(long, env = "AUDIOMILL_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// The logged-in user (or an API key's holder), with clients that carry a valid credential.
pub struct Session {
    store: LoginStore,
    credential: Credential,
}

enum Credential {
    Saved(SavedLogin),
    Key { server: String, key: String },
}

impl Session {
    /// The login saved on this machine.
    pub fn load() -> Result<Self, Problem> {
        Self::load_with(&KeyArgs::default())
    }

    /// The API key of `key` when it names one, on its server (or the saved login's); else the
    /// login saved on this machine.
    pub fn load_with(key: &KeyArgs) -> Result<Self, Problem> {
        let store = LoginStore::in_config_dir()?;
        let saved = store.read()?;
        let credential = match (&key.api_key, saved) {
            (Some(api_key), saved) => {
                let server = match (&key.server, saved) {
                    (Some(server), _) => crate::login::server_address(server)?,
                    (None, Some(saved)) => saved.server,
                    (None, None) => {
                        return Err(Problem::new(
                            "Name the server the API key is for with --server or AUDIOMILL_SERVER.",
                        ));
                    }
                };
                Credential::Key {
                    server,
                    key: api_key.trim().to_owned(),
                }
            }
            (None, Some(saved)) => Credential::Saved(saved),
            (None, None) => return Err(Problem::not_logged_in()),
        };
        Ok(Self { store, credential })
    }

    pub fn server(&self) -> &str {
        match &self.credential {
            Credential::Saved(login) => &login.server,
            Credential::Key { server, .. } => server,
        }
    }

    /// Where the login is kept, with what else is kept beside it.
    pub fn config_dir(&self) -> &Path {
        self.store.dir()
    }

    /// A client for the server, its access token renewed first if it is about to expire.
    pub async fn client(&mut self) -> Result<Client, Problem> {
        let (server, token) = match &mut self.credential {
            Credential::Key { server, key } => (server.clone(), key.clone()),
            Credential::Saved(login) => {
                if !login.is_fresh() {
                    *login = renew(&self.store, login).await?;
                }
                (login.server.clone(), login.access_token.clone())
            }
        };
        audiomill_client::connect(&server, &token)
            .map_err(|error| Problem::new(format!("{error}.")))
    }

    /// Forgets the login on this machine.
    pub fn forget(self) -> Result<(), Problem> {
        self.store.remove()
    }
}

/// Trades the refresh token of `login` for a new pair. Each refresh token works once, so two
/// commands renewing together would end the login: the lock makes the second one read the
/// pair the first one saved instead.
async fn renew(store: &LoginStore, login: &SavedLogin) -> Result<SavedLogin, Problem> {
    let _lock = store.lock()?;
    if let Some(saved) = store.read()?
        && saved.server == login.server
        && saved.is_fresh()
    {
        return Ok(saved);
    }
    let request = types::RefreshRequest {
        refresh_token: login.refresh_token.clone(),
    };
    let server = login.server.clone();
    let tokens = match Client::new(&server)
        .refresh_token()
        .body(request)
        .send()
        .await
    {
        Ok(tokens) => tokens.into_inner(),
        Err(Error::ErrorResponse(answer)) if answer.status().is_client_error() => {
            return Err(Problem::login_expired(&server));
        }
        Err(error) => return Err(Problem::from_api(&server, error)),
    };
    let renewed = SavedLogin::new(server, login.email.clone(), tokens)?;
    store.write(&renewed)?;
    Ok(renewed)
}

/// Where the login is kept.
pub struct LoginStore {
    dir: PathBuf,
}

impl LoginStore {
    /// `audiomill/` in the user's config directory: `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn in_config_dir() -> Result<Self, Problem> {
        let base = etcetera::choose_base_strategy().map_err(|_| {
            Problem::new("Could not find your home directory to keep the login in.")
        })?;
        Ok(Self::at(base.config_dir().join("audiomill")))
    }

    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("login.json")
    }

    pub fn read(&self) -> Result<Option<SavedLogin>, Problem> {
        let path = self.file();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| {
                Problem::new(format!(
                    "{} is damaged; log in again with `audiomill login --server URL`.",
                    path.display()
                ))
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Problem::new(format!(
                "Could not read {}: {error}.",
                path.display()
            ))),
        }
    }

    /// Saves `login` readable by its owner alone (0600, in a 0700 directory), replacing the
    /// file whole so that a reader never sees half of it.
    pub fn write(&self, login: &SavedLogin) -> Result<(), Problem> {
        let path = self.file();
        let saving = |error: io::Error| Problem::saving(&path, &error);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(saving)?;
        let partial = self.dir.join(".login.json.partial");
        let text = serde_json::to_vec_pretty(login).expect("a login serializes");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(saving)?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&partial, &path))
            .map_err(|error| {
                let _ = fs::remove_file(&partial);
                saving(error)
            })
    }

    pub fn remove(&self) -> Result<(), Problem> {
        match fs::remove_file(self.file()) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(Problem::new(format!(
                "Could not remove {}: {error}.",
                self.file().display()
            ))),
            _ => Ok(()),
        }
    }

    /// Held while the tokens are renewed; released when dropped.
    fn lock(&self) -> Result<fs::File, Problem> {
        let path = self.dir.join("login.lock");
        let locking =
            |error: io::Error| Problem::new(format!("Could not lock {}: {error}.", path.display()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(locking)?;
        file.lock().map_err(locking)?;
        Ok(file)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn login() -> SavedLogin {
        SavedLogin {
            server: "http://127.0.0.1:8080".into(),
            email: "ann@example.com".into(),
            access_token: "access".into(),
            refresh_token: "refresh".into(),
            expires_at: now() + 900,
        }
    }

    #[test]
    fn the_login_is_kept_for_its_owner_alone() {
        let home = tempfile::tempdir().unwrap();
        let store = LoginStore::at(home.path().join("audiomill"));
        assert_eq!(store.read().unwrap(), None);
        // One login, written and read back: two calls could fall either side of a second.
        let saved = login();
        store.write(&saved).unwrap();
        assert_eq!(store.read().unwrap(), Some(saved));
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.file()), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        store.remove().unwrap();
        assert_eq!(store.read().unwrap(), None);
        store.remove().unwrap();
    }

    #[test]
    fn a_damaged_login_file_says_to_log_in_again() {
        let home = tempfile::tempdir().unwrap();
        let store = LoginStore::at(home.path().to_owned());
        fs::write(store.file(), "{not json").unwrap();
        let problem = store.read().unwrap_err().to_string();
        assert!(problem.contains("log in again"), "{problem}");
    }

    #[test]
    fn a_token_about_to_expire_is_not_fresh() {
        let mut saved = login();
        assert!(saved.is_fresh());
        saved.expires_at = now() + 30;
        assert!(!saved.is_fresh());
    }
}
