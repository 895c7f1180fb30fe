//! Credentials: argon2 password hashes, HS256 access tokens and opaque refresh tokens.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use audiomill_domain::{EmailAddress, UserId};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{ErrorJson, store_down};
use crate::scopes::Scopes;
use audiomill_store::StoreError;

const ISSUER: &str = "audiomill";
const AUDIENCE: &str = "audiomill";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub admin: bool,
    /// The login session (refresh-token family) this token was issued in.
    pub sid: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<UserId> {
        UserId::parse(&self.sub).ok()
    }
}

/// Signs and checks access tokens, and makes refresh tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }

    pub fn issue_access(
        &self,
        user: UserId,
        email: &EmailAddress,
        admin: bool,
        session_id: &str,
    ) -> (String, Claims) {
        let now = unix_now();
        let claims = Claims {
            sub: user.to_string(),
            email: email.to_string(),
            admin,
            sid: session_id.to_owned(),
            jti: random_token(16),
            iat: now,
            exp: now + self.access_ttl.as_secs(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, claims)
    }

    /// The claims of a valid token; `None` for anything forged, expired or malformed.
    pub fn verify_access(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    /// A new refresh token and the hash under which it is stored.
    pub fn new_refresh(&self) -> (String, String, i64) {
        let token = random_token(32);
        let hash = hash_refresh(&token);
        let expires_at = (SystemTime::now() + self.refresh_ttl)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(i64::MAX);
        (token, hash, expires_at)
    }
}

/// Refresh tokens are high-entropy random strings, so a plain SHA-256 is enough to store them.
pub fn hash_refresh(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_session_id() -> String {
    random_token(16)
}

/// How every API key begins, so that secret scanners can find leaked ones: `amk_`, the key's
/// id (12 letters and digits), `_`, and its secret (40 letters and digits).
pub const API_KEY_START: &str = "amk_";
const KEY_ID_LENGTH: usize = 12;
const KEY_SECRET_LENGTH: usize = 40;

/// A new API key: the key itself (shown once), its id, and the hash it is stored as.
pub struct NewKey {
    pub key: String,
    pub id: String,
    pub hash: String,
}

/// How every upload token begins: `amu_`, then an id and a secret shaped as an API key's.
pub const UPLOAD_TOKEN_START: &str = "amu_";

pub fn new_api_key() -> NewKey {
    new_credential(API_KEY_START)
}

pub fn new_upload_token() -> NewKey {
    new_credential(UPLOAD_TOKEN_START)
}

fn new_credential(start: &str) -> NewKey {
    let id = random_alphanumeric(KEY_ID_LENGTH);
    let key = format!("{start}{id}_{}", random_alphanumeric(KEY_SECRET_LENGTH));
    NewKey {
        hash: hash_refresh(&key),
        key,
        id,
    }
}

/// The id of a token shaped like an API key; `None` for anything else.
pub fn api_key_id(token: &str) -> Option<&str> {
    credential_id(token, API_KEY_START)
}

/// The id of a token shaped like an upload token; `None` for anything else.
pub fn upload_token_id(token: &str) -> Option<&str> {
    credential_id(token, UPLOAD_TOKEN_START)
}

fn credential_id<'a>(token: &'a str, start: &str) -> Option<&'a str> {
    let (id, secret) = token.strip_prefix(start)?.split_once('_')?;
    let alphanumeric = |part: &str, length| {
        part.len() == length && part.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    (alphanumeric(id, KEY_ID_LENGTH) && alphanumeric(secret, KEY_SECRET_LENGTH)).then_some(id)
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn key_matches(presented: &str, stored: &str) -> bool {
    use subtle::ConstantTimeEq;
    hash_refresh(presented)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into()
}

fn random_alphanumeric(length: usize) -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Argon2id password hashing. Checking an unknown account verifies against a fixed dummy hash,
/// so both cases cost the same time and reveal nothing about which accounts exist.
pub struct Passwords {
    dummy_hash: String,
}

impl Default for Passwords {
    fn default() -> Self {
        Self {
            dummy_hash: hash_password("not a real password").expect("hashing works"),
        }
    }
}

impl Passwords {
    /// True when `password` matches `hash`. With no hash, or one no password matches (an
    /// account made by single sign-on), it does the same work and says no, so the answer's
    /// time tells nothing of the account.
    pub fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let usable = hash.and_then(|hash| PasswordHash::new(hash).ok());
        let checked = match &usable {
            Some(parsed) => parsed.clone(),
            None => match PasswordHash::new(&self.dummy_hash) {
                Ok(dummy) => dummy,
                Err(_) => return false,
            },
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &checked)
            .is_ok();
        matches && usable.is_some()
    }
}

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most bytes a password may have (hashing is costly; no real password is longer).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why `password` may not be a new password, if it may not.
pub fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!(
            "The password must have at least {MIN_PASSWORD_CHARS} characters."
        ))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some(format!(
            "The password must be at most {MAX_PASSWORD_BYTES} bytes long."
        ))
    } else {
        None
    }
}

/// `password`'s hash, made off the async workers (Argon2 is deliberately slow); the 503 body
/// when it could not be made.
pub(crate) async fn hash_in_background(password: &str) -> Result<String, ErrorJson> {
    let password = password.to_owned();
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(hash)) => Ok(hash),
        _ => Err(crate::error::unavailable(
            "password hashing",
            "the hash could not be made",
        )),
    }
}

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// The token of an `Authorization: Bearer ...` header (the scheme in any case, as RFC 9110 has
/// it), if the request carries one.
pub fn bearer_token(request: &poem::Request) -> Option<&str> {
    let value = request
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The account behind a request, from its access token's claims.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: UserId,
    pub(crate) email: String,
    pub(crate) admin: bool,
    /// The login (refresh-token family) the token was issued in.
    pub(crate) session: String,
    /// When the credential expires, in seconds since the epoch.
    pub(crate) expires: u64,
    /// What the credential may do.
    pub(crate) scopes: Scopes,
    /// The API key's id, when the credential is one.
    pub(crate) key: Option<String>,
    /// What an upload token allows, when the credential is one (it holds no scope).
    pub(crate) upload: Option<UploadGrant>,
}

/// What an upload token lets its holder upload.
#[derive(Debug, Clone)]
pub(crate) struct UploadGrant {
    /// The token's id.
    pub(crate) id: String,
    /// The largest file, in bytes; `None`: the service's limit.
    pub(crate) max_bytes: Option<u64>,
    /// The output choices every upload gets; `None`: the uploader's own.
    pub(crate) options: Option<audiomill_domain::output::OutputOptions>,
}

impl Caller {
    /// The caller the claims name; `None` when their subject is no user id.
    pub(crate) fn from_claims(claims: Claims) -> Option<Self> {
        Some(Self {
            user: claims.user_id()?,
            email: claims.email,
            admin: claims.admin,
            session: claims.sid,
            expires: claims.exp,
            scopes: Scopes::of_login(claims.admin),
            key: None,
            upload: None,
        })
    }

    /// Whether what `owner` owns is the caller's to see: theirs, or any when an admin.
    pub(crate) fn may_see(&self, owner: UserId) -> bool {
        self.admin || self.user == owner
    }
}

/// Why a request's token was not accepted.
pub(crate) enum Denied {
    Unauthorized(ErrorJson),
    /// A valid credential without the scope the operation needs.
    Forbidden(ErrorJson),
    Unavailable(ErrorJson),
}

/// Why a login could not be opened or renewed.
pub(crate) enum LoginDenied {
    Unauthorized(ErrorJson),
    Unavailable(ErrorJson),
}

impl From<StoreError> for LoginDenied {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(store_down(error))
    }
}

impl From<StoreError> for Denied {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(store_down(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_and_a_tampered_one_does_not() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef");
        let email = EmailAddress::parse("ann@example.com").unwrap();
        let (token, claims) = issuer.issue_access(UserId::generate(), &email, false, "s");
        assert_eq!(issuer.verify_access(&token), Some(claims));

        let other = TokenIssuer::new(b"another secret, just as long....");
        assert_eq!(other.verify_access(&token), None);

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["admin"] = true.into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(issuer.verify_access(&parts.join(".")), None);

        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(issuer.verify_access(&unsigned), None);
    }

    #[test]
    fn an_api_key_has_its_documented_shape_and_matches_only_its_hash() {
        let key = new_api_key();
        assert_eq!(api_key_id(&key.key), Some(key.id.as_str()));
        assert_eq!(key.key.len(), 4 + 12 + 1 + 40);
        assert!(key_matches(&key.key, &key.hash));
        let other = new_api_key();
        assert!(!key_matches(&other.key, &key.hash));
        for malformed in [
            "amk_short_secret",
            "eyJhbGciOi.x.y",
            "",
            "amk_",
            &key.key[..50],
        ] {
            assert_eq!(api_key_id(malformed), None, "{malformed}");
        }
        let tampered = format!("{}!", &key.key[..key.key.len() - 1]);
        assert_eq!(api_key_id(&tampered), None);
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let passwords = Passwords::default();
        let hash = hash_password("correct horse").unwrap();
        assert!(passwords.verify("correct horse", Some(&hash)));
        assert!(!passwords.verify("wrong", Some(&hash)));
        assert!(!passwords.verify("not a real password", None));
        assert!(
            !passwords.verify("!", Some("!")),
            "a hash no password matches"
        );
    }

    #[test]
    fn an_unknown_account_costs_the_same_argon2_work_as_a_known_one() {
        let passwords = Passwords::default();
        let known = hash_password("correct horse").unwrap();
        let known = PasswordHash::new(&known).unwrap();
        let dummy = PasswordHash::new(&passwords.dummy_hash).unwrap();
        assert_eq!(known.algorithm, dummy.algorithm);
        assert_eq!(known.version, dummy.version);
        assert_eq!(known.params, dummy.params, "memory, iterations and lanes");
    }
}
