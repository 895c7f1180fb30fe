//! A user's data as a whole: `DELETE /me/jobs` removes all of the caller's jobs, and
//! `PATCH /users/{user_id}` lets an admin turn an account off (or on again). Both cancel the
//! user's running jobs first.

use super::admin::{OwnLimits, own_quota};
use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use super::jobs::{self, NotCancelled};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    params::ApiUserId,
};
use audiomill_domain::UserId;
use poem_openapi::{Object, OpenApi, param::Path, payload::Json, types::Example};

/// `DELETE /me/jobs` and `PATCH /users/{user_id}`.
pub struct UsersApi {
    pub(super) cx: Context,
}

/// Jobs taken from storage and the database at once.
const REMOVAL_BATCH: u32 = 100;

/// What `DELETE /me/jobs` removed.
#[derive(Object)]
#[oai(example)]
struct RemovedJobs {
    /// Jobs removed, with their videos, MP3s and records.
    removed: u64,
    /// Of those, the jobs that were still running: cancelled first.
    cancelled: u64,
}

impl Example for RemovedJobs {
    fn example() -> Self {
        RemovedJobs {
            removed: 12,
            cancelled: 1,
        }
    }
}

/// An account as an admin sees it after a change.
#[derive(Object)]
#[oai(example)]
struct UserSummary {
    id: String,
    email: String,
    admin: bool,
    /// `false`: the user cannot log in, and their tokens no longer work.
    active: bool,
    /// Running jobs cancelled by this change.
    jobs_cancelled: u64,
}

impl Example for UserSummary {
    fn example() -> Self {
        UserSummary {
            id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            email: "ann@example.com".into(),
            admin: false,
            active: false,
            jobs_cancelled: 2,
        }
    }
}

/// What an admin changes about an account; `null` or left out: unchanged.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct UserChanges {
    /// `false` turns the account off at once: no more logins, every token refused, running
    /// jobs cancelled. `true` turns it on again.
    #[oai(nullable)]
    active: Option<bool>,
    /// Whether the account is an admin (an admin cannot take it from their own account).
    #[oai(nullable)]
    admin: Option<bool>,
    /// The account's own limits, both at once (`null` in either: the deployment's default; `0`:
    /// no limit).
    #[oai(nullable)]
    limits: Option<OwnLimits>,
    /// `true` lets the next single sign-on with the account's verified address take the
    /// account (once); `false` stops that. Without it, single sign-on never takes an account
    /// that exists.
    #[oai(nullable)]
    sign_on_link: Option<bool>,
}

api_response! {
    enum RemoveResponse {
        /// Everything of the caller's is gone.
        #[oai(status = 200)]
        Ok(Json<RemovedJobs>),
        @unauthorized,
        @forbidden,
        /// A dependency is down; what was removed so far stays removed, and the request may be
        /// sent again to finish.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum UserResponse {
        /// The account, as it is now.
        #[oai(status = 200)]
        Ok(Json<UserSummary>),
        /// The user id or the body is malformed.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        /// The credential lacks `admin` (only admins change other accounts), or an admin
        /// tries to turn their own account off.
        #[oai(status = 403)]
        Forbidden(ErrorJson),
        /// No such user.
        #[oai(status = 404)]
        NotFound(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl UsersApi {
    /// Delete all of the caller's jobs.
    ///
    /// Running jobs are cancelled first; then every job's video, MP3 and record is removed.
    /// Today's job count stays as it is (deleting jobs gives no jobs-per-day quota back).
    #[oai(
        path = "/me/jobs",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "deleteMyJobs"
    )]
    async fn delete_my_jobs(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
    ) -> RemoveResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await);
        let user = caller.user;
        let gw = self.cx.gw();
        let reason = format!("deleted by {}", caller.email);
        let cancelled = match cancel_running(gw, user, &reason).await {
            Ok(cancelled) => cancelled,
            Err(error) => return RemoveResponse::Unavailable(error),
        };
        let mut removed = 0;
        loop {
            let jobs = match gw.db.jobs_of(user, false, REMOVAL_BATCH).await {
                Ok(jobs) => jobs,
                Err(error) => return RemoveResponse::Unavailable(store_down(error)),
            };
            if jobs.is_empty() {
                break;
            }
            for job in jobs {
                if let Err(error) = jobs::remove_with_files(gw, &job).await {
                    return RemoveResponse::Unavailable(error);
                }
                removed += 1;
            }
        }
        tracing::info!(%user, removed, cancelled, "a user deleted all their jobs");
        RemoveResponse::Ok(Json(RemovedJobs { removed, cancelled }))
    }

    /// Change an account (admins only): turn it off or on, make it an admin or not, set its
    /// limits, let single sign-on take it.
    ///
    /// Turning it off takes effect at once: the user cannot log in, every token of theirs is
    /// refused from its next use, and their running jobs are cancelled.
    #[oai(
        path = "/users/:user_id",
        method = "patch",
        tag = "ApiTags::Auth",
        operation_id = "updateUser"
    )]
    async fn update_user(
        &self,
        #[oai(scope = "Scope::Admin")] auth: BearerAuth,
        user_id: Path<ApiUserId>,
        changes: Json<UserChanges>,
    ) -> UserResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::Admin).await);
        if !caller.admin {
            return UserResponse::Forbidden(ErrorBody::new(
                ErrorCode::Forbidden,
                "Only admins may change other accounts.",
            ));
        }
        let gw = self.cx.gw();
        let target = user_id.0.0;
        if changes.0.active == Some(false) && caller.user == target {
            return UserResponse::Forbidden(ErrorBody::new(
                ErrorCode::Forbidden,
                "Admins may not turn their own account off.",
            ));
        }
        if changes.0.admin == Some(false) && caller.user == target {
            return UserResponse::Forbidden(ErrorBody::new(
                ErrorCode::Forbidden,
                "Admins may not take being an admin from their own account.",
            ));
        }
        match apply(gw, target, &changes.0).await {
            Ok(true) => {}
            Ok(false) => return no_such_user(),
            Err(error) => return UserResponse::Unavailable(store_down(error)),
        }
        let mut cancelled = 0;
        if let Some(active) = changes.0.active {
            match gw.db.set_active(target, active).await {
                Ok(true) => {}
                Ok(false) => return no_such_user(),
                Err(error) => return UserResponse::Unavailable(store_down(error)),
            }
            if !active {
                let reason = format!("account disabled by {}", caller.email);
                cancelled = match cancel_running(gw, target, &reason).await {
                    Ok(cancelled) => cancelled,
                    Err(error) => return UserResponse::Unavailable(error),
                };
                tracing::info!(user = %target, cancelled, "account disabled");
            }
        }
        match gw.db.user_by_id(target).await {
            Ok(Some(user)) => UserResponse::Ok(Json(UserSummary {
                id: user.id.to_string(),
                email: user.email.to_string(),
                admin: user.is_admin,
                active: user.active,
                jobs_cancelled: cancelled,
            })),
            Ok(None) => no_such_user(),
            Err(error) => UserResponse::Unavailable(store_down(error)),
        }
    }
}

/// Makes `changes` but turning the account on or off; `false` when there is no such user.
async fn apply(
    gw: &Gateway,
    target: UserId,
    changes: &UserChanges,
) -> Result<bool, audiomill_store::StoreError> {
    if let Some(admin) = changes.admin
        && !gw.db.set_admin(target, admin).await?
    {
        return Ok(false);
    }
    if let Some(limits) = changes.limits
        && !gw.db.set_quota(target, own_quota(limits)).await?
    {
        return Ok(false);
    }
    if let Some(allow) = changes.sign_on_link {
        return gw.db.allow_sign_on_link(target, allow).await;
    }
    Ok(true)
}

fn no_such_user() -> UserResponse {
    UserResponse::NotFound(ErrorBody::new(
        ErrorCode::NotFound,
        "There is no such user.",
    ))
}

/// Asks Temporal to cancel every running job of `user`; how many were asked. A job whose
/// workflow has already ended is counted out, not refused.
async fn cancel_running(gw: &Gateway, user: UserId, reason: &str) -> Result<u64, ErrorJson> {
    let running = gw
        .db
        .jobs_of(user, true, u32::MAX)
        .await
        .map_err(store_down)?;
    let mut cancelled = 0;
    for job in running {
        match jobs::cancel_workflow(gw, &job, reason.to_owned()).await {
            Ok(()) => cancelled += 1,
            Err(NotCancelled::Ended(_)) => {}
            Err(NotCancelled::Unavailable(error)) => return Err(error),
        }
    }
    Ok(cancelled)
}
