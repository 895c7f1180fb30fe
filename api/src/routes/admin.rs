//! The accounts, as an admin sees them: `GET /users` (a page at a time, found by part of the
//! address, each with its limits and usage) and `POST /users` (an account added with a
//! password). Changing one is `PATCH /users/{user_id}`, in `users`.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::params::Text;
use crate::{
    auth::{self, password_problem},
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
};
use audiomill_domain::EmailAddress;
use audiomill_store::{StoreError, User, time::now_millis};
use poem_openapi::{Object, OpenApi, param::Query, payload::Json, types::Example};

/// `GET /users` and `POST /users`.
pub struct AdminApi {
    pub(super) cx: Context,
}

const MIB: u64 = 1024 * 1024;

/// An account's own limits, as an admin set them: `null` is the deployment's default, `0` no
/// limit.
#[derive(Object, Clone, Copy)]
pub(super) struct OwnLimits {
    /// At most 1,000,000,000 MB.
    #[oai(
        nullable,
        validator(minimum(value = "0"), maximum(value = "1000000000"))
    )]
    pub(super) storage_limit_mb: Option<u64>,
    /// At most 1,000,000,000.
    #[oai(
        nullable,
        validator(minimum(value = "0"), maximum(value = "1000000000"))
    )]
    pub(super) jobs_per_day_limit: Option<u64>,
}

/// What an account holds and has started today.
#[derive(Object)]
struct Used {
    storage_used_bytes: u64,
    jobs_today: u64,
}

/// An account, with its limits and usage.
#[derive(Object)]
#[oai(example)]
pub(super) struct ManagedAccount {
    id: String,
    email: String,
    admin: bool,
    /// `false`: the account is off (no sign-in, every credential refused).
    active: bool,
    limits: OwnLimits,
    usage: Used,
    /// The account signs in through the OpenID provider (it has a single sign-on identity).
    single_sign_on: bool,
    /// The next single sign-on with this account's address takes the account (an admin
    /// allowed it with `PATCH /users/{user_id}`).
    sign_on_link: bool,
}

impl Example for ManagedAccount {
    fn example() -> Self {
        ManagedAccount {
            id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            email: "ann@example.com".into(),
            admin: false,
            active: true,
            limits: OwnLimits {
                storage_limit_mb: Some(2048),
                jobs_per_day_limit: None,
            },
            usage: Used {
                storage_used_bytes: 73_400_320,
                jobs_today: 4,
            },
            single_sign_on: false,
            sign_on_link: false,
        }
    }
}

/// A page of accounts.
#[derive(Object)]
struct ManagedAccountPage {
    users: Vec<ManagedAccount>,
    /// Give it as `after` for the next page; none on the last.
    #[oai(nullable)]
    next_after: Option<String>,
}

/// An account to add.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct NewAccount {
    #[oai(validator(max_length = 254))]
    email: Text,
    /// At least 8 characters; the person changes it on their account page.
    #[oai(validator(min_length = 8, max_length = 1024))]
    password: Text,
    #[oai(default)]
    admin: bool,
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum PageResponse {
        #[oai(status = 200)]
        Ok(Json<ManagedAccountPage>),
        /// `limit` is not 1-100.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum AddResponse {
        /// Added.
        #[oai(status = 201)]
        Created(Json<ManagedAccount>),
        /// The address or the password is not acceptable (`field` says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// An account with this address exists.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl AdminApi {
    /// The accounts (admins only), by e-mail address, each with its limits and usage.
    #[oai(
        path = "/users",
        method = "get",
        tag = "ApiTags::Auth",
        operation_id = "listUsers"
    )]
    async fn list(
        &self,
        #[oai(scope = "Scope::Admin")] auth: BearerAuth,
        /// Only accounts whose address contains this (any case).
        #[oai(validator(max_length = 254))]
        search: Query<Option<String>>,
        /// The `next_after` of the page before.
        #[oai(validator(max_length = 254))]
        after: Query<Option<String>>,
        /// How many, 1-100 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> PageResponse {
        or_refuse!(self.cx.authenticate(&auth, Scope::Admin).await);
        let limit = limit.0.unwrap_or(50);
        let gw = self.cx.gw();
        let search = search.0.unwrap_or_default();
        let users = match gw
            .db
            .users_page(search.trim(), after.0.as_deref(), limit)
            .await
        {
            Ok(users) => users,
            Err(error) => return PageResponse::Unavailable(store_down(error)),
        };
        let next_after = (users.len() as u32 == limit)
            .then(|| users.last().map(|user| user.email.to_string()))
            .flatten();
        let mut shown = Vec::with_capacity(users.len());
        for user in users {
            match account(gw, user).await {
                Ok(account) => shown.push(account),
                Err(error) => return PageResponse::Unavailable(store_down(error)),
            }
        }
        PageResponse::Ok(Json(ManagedAccountPage {
            users: shown,
            next_after,
        }))
    }

    /// Add an account (admins only), with a password the person changes later.
    #[oai(
        path = "/users",
        method = "post",
        tag = "ApiTags::Auth",
        operation_id = "addUser"
    )]
    async fn add(
        &self,
        #[oai(scope = "Scope::Admin")] auth: BearerAuth,
        body: Json<NewAccount>,
    ) -> AddResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Admin).await);
        let NewAccount {
            email,
            password,
            admin,
        } = body.0;
        let Ok(email) = EmailAddress::parse(email.trim()) else {
            return AddResponse::BadRequest(ErrorBody::for_field(
                "email",
                "This is not an e-mail address.",
            ));
        };
        if let Some(problem) = password_problem(&password) {
            return AddResponse::BadRequest(ErrorBody::for_field("password", problem));
        }
        let hash = match auth::hash_in_background(&password).await {
            Ok(hash) => hash,
            Err(down) => return AddResponse::Unavailable(down),
        };
        let gw = self.cx.gw();
        let user = match gw.db.create_user(&email, &hash, admin).await {
            Ok(user) => user,
            Err(StoreError::Conflict(_)) => {
                return AddResponse::Conflict(ErrorBody::new(
                    ErrorCode::Conflict,
                    "An account with this address exists.",
                ));
            }
            Err(error) => return AddResponse::Unavailable(store_down(error)),
        };
        tracing::info!(user = %user.id, by = %caller.user, admin, "account added");
        match account(gw, user).await {
            Ok(account) => AddResponse::Created(Json(account)),
            Err(error) => AddResponse::Unavailable(store_down(error)),
        }
    }
}

/// `user` as an admin sees it, with its usage now.
pub(super) async fn account(gw: &Gateway, user: User) -> Result<ManagedAccount, StoreError> {
    let usage = gw.db.usage(user.id, now_millis()).await?;
    let (single_sign_on, sign_on_link) = gw.db.sign_on_state(user.id).await?;
    Ok(ManagedAccount {
        id: user.id.to_string(),
        email: user.email.to_string(),
        admin: user.is_admin,
        active: user.active,
        limits: OwnLimits {
            storage_limit_mb: user.quota.storage_bytes.map(|bytes| bytes / MIB),
            jobs_per_day_limit: user.quota.jobs_per_day,
        },
        usage: Used {
            storage_used_bytes: usage.storage_bytes,
            jobs_today: usage.jobs_today,
        },
        single_sign_on,
        sign_on_link,
    })
}

/// The stored limits of `limits` (MB to bytes).
pub(super) fn own_quota(limits: OwnLimits) -> audiomill_store::OwnQuota {
    audiomill_store::OwnQuota {
        storage_bytes: limits.storage_limit_mb.map(|mb| mb.saturating_mul(MIB)),
        jobs_per_day: limits.jobs_per_day_limit,
    }
}
