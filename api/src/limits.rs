//! Abuse limits, applied in front of every operation: login attempts per account and per
//! client address, and requests per user (per address when anonymous). A refused request gets
//! a 429 in the usual error shape with `Retry-After` and `X-RateLimit-*` headers.
//!
//! [`UploadSlots`] caps the uploads one user has in flight.
//!
//! The limits are kept in this process (a gateway replica counts its own traffic).

use crate::{Gateway, error::ErrorBody};
use audiomill_domain::UserId;
use base64::{Engine, engine::general_purpose::STANDARD};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Requests allowed per minute.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Login attempts per account; a client address gets three times as many, so one address
    /// can serve a few people but cannot try many accounts.
    pub logins_per_minute: u32,
    /// Requests per user (or per address before logging in).
    pub requests_per_minute: u32,
}

pub struct Limits {
    settings: LimitSettings,
    login_account: DefaultKeyedRateLimiter<String>,
    login_address: DefaultKeyedRateLimiter<String>,
    requests: DefaultKeyedRateLimiter<String>,
    seen: AtomicU64,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"));
        Self {
            settings,
            login_account: RateLimiter::keyed(per_minute(settings.logins_per_minute)),
            login_address: RateLimiter::keyed(per_minute(
                settings.logins_per_minute.saturating_mul(3),
            )),
            requests: RateLimiter::keyed(per_minute(settings.requests_per_minute)),
            seen: AtomicU64::new(0),
        }
    }

    /// The 429 answer when the request is over a limit.
    pub fn check(&self, gateway: &Gateway, request: &Request) -> Option<Response> {
        // Forget idle keys now and then so the tables stay small.
        if self.seen.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.login_account.retain_recent();
            self.login_address.retain_recent();
            self.requests.retain_recent();
        }
        let address = request
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        if request.uri().path() == "/login" {
            let limit = self.settings.logins_per_minute;
            let account = basic_user(request).map(|a| a.to_lowercase());
            let refused = account
                .and_then(|a| {
                    refuse(
                        &self.login_account,
                        &a,
                        limit,
                        "Too many login attempts for this account",
                    )
                })
                .or_else(|| {
                    let per_address = limit.saturating_mul(3);
                    refuse(
                        &self.login_address,
                        &address,
                        per_address,
                        "Too many login attempts from this address",
                    )
                });
            if refused.is_some() {
                return refused;
            }
        }
        let user = bearer(request)
            .and_then(|token| gateway.tokens.verify_access(token))
            .map(|claims| claims.sub);
        let key = user.unwrap_or_else(|| format!("address:{address}"));
        refuse(
            &self.requests,
            &key,
            self.settings.requests_per_minute,
            "Too many requests",
        )
    }
}

fn refuse(
    limiter: &DefaultKeyedRateLimiter<String>,
    key: &str,
    limit: u32,
    what: &str,
) -> Option<Response> {
    let not_until = limiter.check_key(&key.to_owned()).err()?;
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        ErrorBody::new(
            "too_many_requests",
            format!("{what}; try again in {seconds} s."),
        ),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
    headers.insert("x-ratelimit-reset", HeaderValue::from(seconds));
    Some(response)
}

fn authorization(request: &Request) -> Option<&str> {
    request.headers().get(header::AUTHORIZATION)?.to_str().ok()
}

fn bearer(request: &Request) -> Option<&str> {
    authorization(request)?.strip_prefix("Bearer ")
}

fn basic_user(request: &Request) -> Option<String> {
    let encoded = authorization(request)?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    Some(decoded.split_once(':')?.0.to_owned())
}

/// Uploads in progress per user, capped.
pub struct UploadSlots {
    limit: usize,
    in_flight: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// One upload in progress; its slot is given back when dropped, however the upload ends.
pub struct UploadSlot {
    user: UserId,
    in_flight: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl UploadSlots {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            in_flight: Arc::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `user`, or `None` when all of theirs are taken.
    pub fn begin(&self, user: UserId) -> Option<UploadSlot> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = in_flight.entry(user).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(UploadSlot {
            user,
            in_flight: self.in_flight.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = in_flight.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
