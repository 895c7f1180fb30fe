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

/// The logged-in user, with clients that carry a valid access token.
pub struct Session {
    store: LoginStore,
    login: SavedLogin,
}

impl Session {
    /// The login saved on this machine.
    pub fn load() -> Result<Self, Problem> {
        let store = LoginStore::in_config_dir()?;
        let login = store.read()?.ok_or_else(Problem::not_logged_in)?;
        Ok(Self { store, login })
    }

    pub fn server(&self) -> &str {
        &self.login.server
    }

    pub fn email(&self) -> &str {
        &self.login.email
    }

    /// Where the login is kept, with what else is kept beside it.
    pub fn config_dir(&self) -> &Path {
        self.store.dir()
    }

    /// A client for the server, its access token renewed first if it is about to expire.
    pub async fn client(&mut self) -> Result<Client, Problem> {
        if !self.login.is_fresh() {
            self.renew().await?;
        }
        audiomill_client::connect(&self.login.server, &self.login.access_token)
            .map_err(|error| Problem::new(format!("{error}.")))
    }

    /// Forgets the login on this machine.
    pub fn forget(self) -> Result<(), Problem> {
        self.store.remove()
    }

    /// Trades the refresh token for a new pair. Each refresh token works once, so two
    /// commands renewing together would end the login: the lock makes the second one read
    /// the pair the first one saved instead.
    async fn renew(&mut self) -> Result<(), Problem> {
        let _lock = self.store.lock()?;
        if let Some(saved) = self.store.read()?
            && saved.server == self.login.server
            && saved.is_fresh()
        {
            self.login = saved;
            return Ok(());
        }
        let request = types::RefreshRequest {
            refresh_token: self.login.refresh_token.clone(),
        };
        let server = self.login.server.clone();
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
        self.login = SavedLogin::new(server, self.login.email.clone(), tokens)?;
        self.store.write(&self.login)
    }
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
