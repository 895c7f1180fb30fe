//! Abuse limits, applied in front of every operation: login attempts per account from one
//! client address and per client address, and requests per user (per address when anonymous).
//! Replays of webhook deliveries are counted apart too, per user: each sends requests from the
//! workers. A refused request gets a 429 in the usual error shape with `Retry-After` and
//! `X-RateLimit-*` headers.
//!
//! Login attempts are counted on the account name as login reads it (trimmed, lower-case), so
//! no other spelling buys fresh attempts, and per (account, client address) pair, so guessing
//! from one address never locks the owner out from another. Every key is hashed before it is
//! kept, so a long user name costs as little as a short one; names longer than any e-mail
//! address (254 bytes) are refused before anything is counted.
//!
//! Without `REDIS_URL` each gateway process counts its own traffic (GCRA through `governor`).
//! With it, every replica counts in the same one-minute windows in Redis, so the limits hold
//! for the whole deployment. Should Redis stop answering, requests are let through (and a
//! warning logged) rather than refusing every user.
//!
//! [`Slots`] caps what one user has in flight (uploads, event streams), per gateway process,
//! and what the process has in all.

use crate::{
    auth::TokenIssuer,
    error::{ErrorBody, ErrorCode},
};
use audiomill_domain::{EmailAddress, UserId};
use base64::{Engine, engine::general_purpose::STANDARD};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    future::Future,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Requests allowed per minute.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Login attempts per account from one client address; an address gets three times as
    /// many over all accounts, so it can serve a few people but cannot try many accounts.
    pub logins_per_minute: u32,
    /// Requests per user (or per address before logging in).
    pub requests_per_minute: u32,
    /// Webhook delivery replays per user: each one sends requests from the workers.
    pub replays_per_minute: u32,
    /// Imports from a link per user: each sends requests from the workers.
    pub imports_per_minute: u32,
}

/// What is being counted.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One account from one client address.
    LoginPair,
    LoginAddress,
    Requests,
    Replays,
    Imports,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::LoginPair => "login-pair",
            Kind::LoginAddress => "login-address",
            Kind::Requests => "requests",
            Kind::Replays => "replays",
            Kind::Imports => "imports",
        }
    }
}

pub struct Limits {
    settings: LimitSettings,
    counters: Counters,
    /// The owners of API keys seen valid lately, so a key's requests count against its user
    /// (a key nobody verified counts against its address, so made-up keys gain nothing).
    key_owners: std::sync::Mutex<HashMap<String, String>>,
    /// The wall clock the shared one-minute windows are cut from (tests set it).
    clock: WallClock,
}

/// Seconds since the Unix epoch, now.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> WallClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    })
}

enum Counters {
    Local(Box<LocalCounters>),
    Shared(redis::aio::ConnectionManager),
}

struct LocalCounters {
    login_pair: DefaultKeyedRateLimiter<String>,
    login_address: DefaultKeyedRateLimiter<String>,
    requests: DefaultKeyedRateLimiter<String>,
    replays: DefaultKeyedRateLimiter<String>,
    imports: DefaultKeyedRateLimiter<String>,
    seen: AtomicU64,
}

/// How long a limit check may wait for Redis before the request is let through.
const REDIS_PATIENCE: Duration = Duration::from_millis(250);

impl Limits {
    /// Limits kept in this process.
    pub fn new(settings: LimitSettings) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"));
        Self {
            settings,
            counters: Counters::Local(Box::new(LocalCounters {
                login_pair: RateLimiter::keyed(per_minute(settings.logins_per_minute)),
                login_address: RateLimiter::keyed(per_minute(
                    settings.logins_per_minute.saturating_mul(3),
                )),
                requests: RateLimiter::keyed(per_minute(settings.requests_per_minute)),
                replays: RateLimiter::keyed(per_minute(settings.replays_per_minute)),
                imports: RateLimiter::keyed(per_minute(settings.imports_per_minute)),
                seen: AtomicU64::new(0),
            })),
            clock: system_clock(),
            key_owners: Default::default(),
        }
    }

    /// Limits shared with every gateway that uses the same Redis server.
    pub async fn shared(
        settings: LimitSettings,
        redis_url: &str,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(REDIS_PATIENCE));
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            settings,
            counters: Counters::Shared(connection),
            clock: system_clock(),
            key_owners: Default::default(),
        })
    }

    /// The same limits, with windows cut from `clock` instead of the system's.
    pub fn with_clock(self, clock: WallClock) -> Self {
        Self { clock, ..self }
    }

    /// A check of the Redis server the limits are shared through (its version, or why not);
    /// `None` when they are counted in this process.
    pub fn redis_probe(&self) -> Option<impl Future<Output = Result<String, String>> + use<>> {
        let Counters::Shared(connection) = &self.counters else {
            return None;
        };
        let mut connection = connection.clone();
        Some(async move {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut connection)
                .await
                .map_err(|_| "unreachable".to_owned())?;
            let version = info
                .lines()
                .find_map(|line| line.strip_prefix("redis_version:"))
                .unwrap_or("(version unknown)");
            Ok(format!("Redis {}", version.trim()))
        })
    }

    /// The 429 answer when the request is over a limit.
    pub async fn check(&self, tokens: &TokenIssuer, request: &Request) -> Option<Response> {
        let address = request
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        if is_login(request) {
            let limit = self.settings.logins_per_minute;
            let account = basic_user(request);
            if account.as_ref().is_some_and(|a| a.len() > MAX_ACCOUNT_NAME) {
                return Some(
                    (
                        StatusCode::BAD_REQUEST,
                        ErrorBody::new(
                            ErrorCode::BadRequest,
                            format!("User names are at most {MAX_ACCOUNT_NAME} bytes long."),
                        ),
                    )
                        .into_response(),
                );
            }
            if let Some(account) = account.map(|a| account_key(&a))
                && let Some(wait) = self
                    .hit(Kind::LoginPair, &format!("{account}\n{address}"), limit)
                    .await
            {
                return Some(too_many(
                    "Too many login attempts for this account from this address",
                    limit,
                    wait,
                ));
            }
            let per_address = limit.saturating_mul(3);
            if let Some(wait) = self.hit(Kind::LoginAddress, &address, per_address).await {
                return Some(too_many(
                    "Too many login attempts from this address",
                    per_address,
                    wait,
                ));
            }
        }
        let user = crate::auth::bearer_token(request).and_then(|token| self.owner(tokens, token));
        let key = user.unwrap_or_else(|| format!("address:{address}"));
        let limit = self.settings.requests_per_minute;
        if let Some(wait) = self.hit(Kind::Requests, &key, limit).await {
            return Some(too_many("Too many requests", limit, wait));
        }
        if is_replay(request) {
            let limit = self.settings.replays_per_minute;
            let wait = self.hit(Kind::Replays, &key, limit).await?;
            return Some(too_many("Too many delivery replays", limit, wait));
        }
        if is_import(request) {
            let limit = self.settings.imports_per_minute;
            let wait = self.hit(Kind::Imports, &key, limit).await?;
            return Some(too_many("Too many imports", limit, wait));
        }
        None
    }

    /// Notes that API key `id` is `user`'s, as a valid use of it showed.
    pub(crate) fn remember_key(&self, id: &str, user: &str) {
        /// Enough for every live key of a large deployment; past it the table starts again.
        const MOST: usize = 100_000;
        let mut owners = self.key_owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= MOST {
            owners.clear();
        }
        owners.insert(id.to_owned(), user.to_owned());
    }

    /// The user a credential's requests count against, when it is known without asking the
    /// database.
    fn owner(&self, tokens: &TokenIssuer, token: &str) -> Option<String> {
        match crate::auth::api_key_id(token) {
            Some(id) => {
                let owners = self.key_owners.lock().unwrap_or_else(|p| p.into_inner());
                owners.get(id).cloned()
            }
            None => tokens.verify_access(token).map(|claims| claims.sub),
        }
    }

    /// Counts one request for `key`; `Some(seconds to wait)` when it is over `limit`.
    async fn hit(&self, kind: Kind, key: &str, limit: u32) -> Option<u64> {
        let wait = self.count(kind, key, limit).await;
        if wait.is_some() {
            crate::metrics::rate_limited(kind.name());
        }
        wait
    }

    async fn count(&self, kind: Kind, key: &str, limit: u32) -> Option<u64> {
        match &self.counters {
            Counters::Local(local) => {
                let LocalCounters {
                    login_pair,
                    login_address,
                    requests,
                    replays,
                    imports,
                    seen,
                } = local.as_ref();
                // Forget idle keys now and then so the tables stay small.
                if seen.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
                    login_pair.retain_recent();
                    login_address.retain_recent();
                    requests.retain_recent();
                    replays.retain_recent();
                    imports.retain_recent();
                }
                let limiter = match kind {
                    Kind::LoginPair => login_pair,
                    Kind::LoginAddress => login_address,
                    Kind::Requests => requests,
                    Kind::Replays => replays,
                    Kind::Imports => imports,
                };
                let not_until = limiter.check_key(&hashed(key)).err()?;
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
            Counters::Shared(connection) => {
                let counted = tokio::time::timeout(
                    REDIS_PATIENCE,
                    count_in_window(connection.clone(), kind, key, (self.clock)()),
                )
                .await;
                match counted {
                    Ok(Ok((count, seconds_left))) => {
                        (count > u64::from(limit)).then_some(seconds_left)
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "Redis failed; the request is let through");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("Redis did not answer in time; the request is let through");
                        None
                    }
                }
            }
        }
    }
}

/// Adds one to `key`'s count in the one-minute window of `now` (seconds); returns the count and the
/// seconds left in the window. Keys are hashed: account names never reach Redis.
async fn count_in_window(
    mut connection: redis::aio::ConnectionManager,
    kind: Kind,
    key: &str,
    now: u64,
) -> Result<(u64, u64), redis::RedisError> {
    let window = now / 60;
    let redis_key = format!("audiomill:limit:{}:{window}:{}", kind.name(), hashed(key));
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .incr(&redis_key, 1)
        .expire(&redis_key, 120)
        .ignore()
        .query_async(&mut connection)
        .await?;
    Ok((count, 60 - now % 60))
}

/// Keys are kept as short hashes: account names never reach Redis, and a long name costs no
/// more memory than a short one.
fn hashed(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// The longest account name worth counting: an e-mail address has at most 254 bytes.
const MAX_ACCOUNT_NAME: usize = 254;

/// The account a login names, spelled as login looks it up.
fn account_key(name: &str) -> String {
    match EmailAddress::parse(name) {
        Ok(email) => email.to_string(),
        Err(_) => name.trim().to_lowercase(),
    }
}

fn too_many(what: &str, limit: u32, seconds: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        ErrorBody::new(
            ErrorCode::TooManyRequests,
            format!("{what}; try again in {seconds} s."),
        ),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
    headers.insert("x-ratelimit-reset", HeaderValue::from(seconds));
    response
}

/// `POST /webhooks/{id}/deliveries/{id}/replay`.
fn is_replay(request: &Request) -> bool {
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    request.method() == poem::http::Method::POST
        && matches!(segments[..], ["", "webhooks", _, "deliveries", _, "replay"])
}

/// `POST /imports`, however its path is spelt.
fn is_import(request: &Request) -> bool {
    let path = request.uri().path().trim_matches('/');
    request.method() == poem::http::Method::POST && path.eq_ignore_ascii_case("imports")
}

fn authorization(request: &Request) -> Option<&str> {
    request.headers().get(header::AUTHORIZATION)?.to_str().ok()
}

/// A request that checks a password: `/login`, or a browser's `POST /session`.
fn is_login(request: &Request) -> bool {
    let path = request.uri().path();
    let method = request.method();
    path == "/login"
        || (path == "/session" && method == poem::http::Method::POST)
        || (path == "/me/password" && method == poem::http::Method::PUT)
        || (path.starts_with("/password/") && method == poem::http::Method::POST)
        || (path == "/signup" && method == poem::http::Method::POST)
}

fn basic_user(request: &Request) -> Option<String> {
    let encoded = authorization(request)?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    Some(decoded.split_once(':')?.0.to_owned())
}

/// Things in progress (uploads, event streams) per user and in all on this gateway, capped.
pub struct Slots {
    per_user: usize,
    total: usize,
    taken: Arc<Mutex<Taken>>,
}

/// Uploads in progress per user.
pub type UploadSlots = Slots;

#[derive(Default)]
struct Taken {
    total: usize,
    by_user: HashMap<UserId, usize>,
}

/// One slot taken; given back when dropped, however what holds it ends.
pub struct Slot {
    user: UserId,
    taken: Arc<Mutex<Taken>>,
}

/// Which cap a refused slot met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The user's own.
    User(usize),
    /// This gateway's, over all users.
    Gateway(usize),
}

impl Slots {
    /// At most `per_user` slots for each user, and no cap over all of them.
    pub fn new(per_user: usize) -> Self {
        Self::capped(per_user, usize::MAX)
    }

    /// At most `per_user` slots for each user and `total` in all.
    pub fn capped(per_user: usize, total: usize) -> Self {
        Self {
            per_user: per_user.max(1),
            total: total.max(1),
            taken: Arc::default(),
        }
    }

    /// The cap per user.
    pub fn limit(&self) -> usize {
        self.per_user
    }

    /// A slot for `user`, or `None` when a cap is met.
    pub fn begin(&self, user: UserId) -> Option<Slot> {
        self.take(user).ok()
    }

    /// A slot for `user`, or the cap that is met.
    pub fn take(&self, user: UserId) -> Result<Slot, Full> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if taken.total >= self.total {
            return Err(Full::Gateway(self.total));
        }
        let count = taken.by_user.entry(user).or_default();
        if *count >= self.per_user {
            return Err(Full::User(self.per_user));
        }
        *count += 1;
        taken.total += 1;
        Ok(Slot {
            user,
            taken: self.taken.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.total -= 1;
        if let Some(count) = taken.by_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                taken.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_counted_as_login_spells_them() {
        assert_eq!(account_key(" VIC@Example.test "), "vic@example.test");
        assert_eq!(account_key("vic@example.test"), "vic@example.test");
        assert_eq!(account_key(" Not An Address "), "not an address");
        assert_eq!(hashed(&"x".repeat(200_000)).len(), 32);
    }

    #[test]
    fn upload_slots_are_capped_per_user_and_given_back_on_drop() {
        let slots = UploadSlots::new(2);
        let (ann, bob) = (UserId::generate(), UserId::generate());
        let first = slots.begin(ann).unwrap();
        let _second = slots.begin(ann).unwrap();
        assert!(slots.begin(ann).is_none());
        assert!(
            slots.begin(bob).is_some(),
            "another user has slots of their own"
        );
        drop(first);
        assert!(slots.begin(ann).is_some());
    }

    #[test]
    fn slots_are_capped_in_all_too() {
        let slots = Slots::capped(2, 3);
        let (ann, bob, cy) = (UserId::generate(), UserId::generate(), UserId::generate());
        let _a = slots.take(ann).unwrap();
        let _b = slots.take(ann).unwrap();
        assert_eq!(slots.take(ann).err(), Some(Full::User(2)));
        let b = slots.take(bob).unwrap();
        assert_eq!(slots.take(cy).err(), Some(Full::Gateway(3)));
        drop(b);
        assert!(slots.take(cy).is_ok());
    }

    /// Two gateways on one Redis count against one limit, in windows of the clock's minute.
    #[tokio::test]
    async fn shared_limits_count_across_instances_in_one_minute_windows() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else {
            panic!("TEST_REDIS_URL is not set: run the suite through `make test`");
        };
        let now = Arc::new(AtomicU64::new(1_800_000_000 + 15));
        let clock: WallClock = {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::Relaxed))
        };
        let settings = LimitSettings {
            logins_per_minute: 10,
            requests_per_minute: 3,
            replays_per_minute: 10,
            imports_per_minute: 10,
        };
        let replica = || async {
            Limits::shared(settings, &url)
                .await
                .expect("Redis answers")
                .with_clock(clock.clone())
        };
        let (one, two) = (replica().await, replica().await);
        let key = format!("user-{}", uuid::Uuid::new_v4());
        let mut waits = Vec::new();
        for n in 0..4 {
            let limits = if n % 2 == 0 { &one } else { &two };
            waits.push(limits.hit(Kind::Requests, &key, 3).await);
        }
        assert_eq!(
            waits,
            [None, None, None, Some(45)],
            "45 s left in the minute"
        );
        now.fetch_add(60, Ordering::Relaxed);
        assert_eq!(one.hit(Kind::Requests, &key, 3).await, None, "a new minute");
    }
}
