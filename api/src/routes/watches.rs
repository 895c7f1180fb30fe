//! `/watches`: folders of a user's own bucket whose new videos are converted as they appear,
//! each object version once, by a `WatchFolder` run per watch.

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope, store_down};
use crate::auth::Caller;
use crate::error::{ErrorBody, ErrorCode};
use crate::gateway::Gateway;
use crate::params::{ApiConnectionId, ApiWatchId, Text, option_texts, rfc3339};
use crate::uploads::choices::OutputChoices;
use crate::uploads::export::{self, ExportAsked};
use crate::uploads::refusal::UploadRefusal;
use audiomill_domain::{
    ConnectionId, WatchId,
    connection::normalized_prefix,
    contract::TASK_QUEUE,
    output::OutputRequest,
    watch::{WatchFolderInput, workflow_id},
};
use audiomill_store::{
    MAX_WATCHES_PER_USER, NewWatch, StoreError, Watch, WatchCounts, WatchedPlace,
};
use audiomill_workflows::{ConvertVideo, WatchFolder};
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};
use std::{
    collections::BTreeMap,
    path::{Component, PathBuf},
};
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
    WorkflowTerminateOptions, errors::WorkflowInteractionError,
};

pub struct WatchesApi {
    pub(super) cx: Context,
}

/// A folder of one of your connections to watch.
#[derive(Debug, Clone, Object)]
struct NewWatchBody {
    /// Your name for it, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Text,
    /// The connection whose bucket holds the folder (`POST /connections`); or, instead,
    /// `directory`.
    #[oai(nullable)]
    connection_id: Option<Text>,
    /// The folder under the connection's prefix; default the connection's whole prefix.
    #[oai(nullable, validator(max_length = 512))]
    prefix: Option<Text>,
    /// Admins only, instead of a connection: an absolute folder of the workers' hosts, inside
    /// one of the folders the operator lets be watched (`WATCH_DIRECTORIES`).
    #[oai(nullable, validator(max_length = 4096))]
    directory: Option<Text>,
    /// The MP3's choices, by the names and with the values of the upload form's fields, as
    /// for `POST /imports`.
    #[oai(default)]
    options: BTreeMap<String, serde_json::Value>,
    /// Also write each MP3 to this connection's bucket (one of yours), at `export_key`.
    #[oai(nullable)]
    export_to: Option<Text>,
    /// With `export_to`: the key template (`{stem}`, `{job_id}`, `{date}`); default
    /// `{stem}.mp3`.
    #[oai(nullable)]
    export_key: Option<Text>,
    /// Its jobs converting at once at most, 1 to 100 (default 4); the next videos wait.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "100")))]
    max_running: Option<u32>,
    /// Seconds between one look over the folder and the next, 10 to 86400 (default 60).
    #[oai(nullable, validator(minimum(value = "10"), maximum(value = "86400")))]
    interval_seconds: Option<u32>,
}

/// A watch, as it is shown.
#[derive(Debug, Clone, Object)]
struct WatchBody {
    id: ApiWatchId,
    name: String,
    /// The connection whose bucket it watches; `null` for a folder of the host.
    #[oai(nullable)]
    connection_id: Option<ApiConnectionId>,
    /// Under the connection's prefix.
    prefix: String,
    /// The folder of the workers' hosts it watches; `null` for a bucket.
    #[oai(nullable)]
    directory: Option<String>,
    /// What its MP3s are.
    options: OutputChoices,
    /// Where its MP3s also go, as it may be shown.
    #[oai(nullable)]
    export: Option<String>,
    max_running: u32,
    interval_seconds: u32,
    /// `active` or `paused`.
    state: String,
    /// Jobs it has started, and how many of them still run.
    jobs: u64,
    running: u64,
    created_at: String,
    /// When it last looked over the whole folder.
    #[oai(nullable)]
    scanned_at: Option<String>,
    /// Why it cannot go on now (the folder cannot be read, a quota is used up); `null` when
    /// nothing holds it.
    #[oai(nullable)]
    trouble: Option<String>,
}

impl WatchBody {
    fn of(watch: &Watch, counts: WatchCounts) -> Self {
        Self {
            id: ApiWatchId(watch.id),
            name: watch.name.clone(),
            connection_id: match &watch.place {
                WatchedPlace::Bucket(connection) => Some(ApiConnectionId(*connection)),
                WatchedPlace::Directory(_) => None,
            },
            prefix: watch.prefix.clone(),
            directory: match &watch.place {
                WatchedPlace::Directory(path) => Some(path.display().to_string()),
                WatchedPlace::Bucket(_) => None,
            },
            options: (&watch.options).into(),
            export: watch.export.as_ref().map(|export| export.shown.clone()),
            max_running: watch.max_running,
            interval_seconds: watch.interval_seconds,
            state: if watch.paused_at.is_some() {
                "paused"
            } else {
                "active"
            }
            .to_owned(),
            jobs: counts.jobs,
            running: counts.running,
            created_at: rfc3339(watch.created_at),
            scanned_at: watch.scanned_at.map(rfc3339),
            trouble: watch.trouble.clone(),
        }
    }
}

#[derive(Object)]
struct WatchList {
    /// Oldest first.
    watches: Vec<WatchBody>,
}

api_response! {
    enum CreateResponse {
        /// Watching: the folder is looked over now, and every `interval_seconds` after.
        #[oai(status = 201)]
        Created(Json<Box<WatchBody>>),
        /// A field is not acceptable (`field` says which).
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The account has as many watches as it may.
        #[oai(status = 409)]
        Conflict(ErrorJson),
        /// The server has no `CONNECTION_SECRET_KEY`, or the database or the workflow service
        /// is down; nothing was saved.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

api_response! {
    enum ListResponse {
        #[oai(status = 200)]
        Ok(Json<WatchList>),
        @unauthorized,
        @forbidden,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum OneResponse {
        #[oai(status = 200)]
        Ok(Json<Box<WatchBody>>),
        @bad_id,
        @unauthorized,
        @forbidden,
        /// No such watch (or not yours).
        #[oai(status = 404)]
        NotFound(ErrorJson),
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::framework_refusal")]
    enum DeleteResponse {
        /// Deleted: it starts nothing more, and its jobs not yet converted end (as a
        /// signed-out login's do). Its jobs and MP3s stay.
        #[oai(status = 204)]
        Deleted,
        @bad_id,
        @unauthorized,
        @forbidden,
        /// No such watch (or not yours).
        #[oai(status = 404)]
        NotFound(ErrorJson),
        @unavailable,
    }
}

#[OpenApi]
impl WatchesApi {
    /// Watch a folder of your bucket.
    ///
    /// Every video or audio file (MP4, MOV, AVI, MKV, WebM, MP3, M4A, WAV, FLAC, Ogg) that appears under the folder becomes a job
    /// with the watch's choices and destination, once per version of the object (its key and
    /// ETag): a video written again is converted again, one seen before never is. At most
    /// `max_running` of its jobs convert at once; the rest wait their turn. Its jobs are
    /// yours, in your history, under your quotas.
    #[oai(
        path = "/watches",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "createWatch"
    )]
    async fn create(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        body: Json<NewWatchBody>,
    ) -> CreateResponse {
        let caller = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await);
        let gw = self.cx.gw();
        if gw.sealer.is_none() {
            return CreateResponse::Unavailable(ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                "This server has no CONNECTION_SECRET_KEY, so it cannot watch your storage.",
            ));
        }
        let new = match checked(gw, &caller, body.0).await {
            Ok(new) => new,
            Err(refusal) => return CreateResponse::BadRequest(refusal),
        };
        let watch = match gw.db.create_watch(&new).await {
            Ok(watch) => watch,
            Err(StoreError::Conflict(_)) => {
                return CreateResponse::Conflict(ErrorBody::new(
                    ErrorCode::Conflict,
                    format!(
                        "An account may keep at most {MAX_WATCHES_PER_USER} watches; delete one first."
                    ),
                ));
            }
            Err(error) => return CreateResponse::Unavailable(store_down(error)),
        };
        if let Err(refusal) = start_run(gw, watch.id).await {
            let _ = gw.db.delete_watch(caller.user, watch.id).await;
            return CreateResponse::Unavailable(refusal);
        }
        tracing::info!(watch_id = %watch.id, "watch created");
        CreateResponse::Created(Json(Box::new(WatchBody::of(
            &watch,
            WatchCounts::default(),
        ))))
    }

    /// Your watches.
    #[oai(
        path = "/watches",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "listWatches"
    )]
    async fn list(&self, #[oai(scope = "Scope::JobsRead")] auth: BearerAuth) -> ListResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::JobsRead).await).user;
        let db = &self.cx.gw().db;
        let watches = match db.watches_of(user).await {
            Ok(watches) => watches,
            Err(error) => return ListResponse::Unavailable(store_down(error)),
        };
        let mut shown = Vec::with_capacity(watches.len());
        for watch in &watches {
            match db.watch_counts(watch.id).await {
                Ok(counts) => shown.push(WatchBody::of(watch, counts)),
                Err(error) => return ListResponse::Unavailable(store_down(error)),
            }
        }
        ListResponse::Ok(Json(WatchList { watches: shown }))
    }

    /// One of your watches.
    #[oai(
        path = "/watches/:watch_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "getWatch"
    )]
    async fn get(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        watch_id: Path<ApiWatchId>,
    ) -> OneResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::JobsRead).await).user;
        self.shown(user, watch_id.0.0).await
    }

    /// Pause a watch: it starts no more jobs until it is resumed (those started go on).
    #[oai(
        path = "/watches/:watch_id/pause",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "pauseWatch"
    )]
    async fn pause(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        watch_id: Path<ApiWatchId>,
    ) -> OneResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await).user;
        match self.cx.gw().db.pause_watch(user, watch_id.0.0, true).await {
            Ok(true) => self.shown(user, watch_id.0.0).await,
            Ok(false) => not_found(),
            Err(error) => OneResponse::Unavailable(store_down(error)),
        }
    }

    /// Resume a paused watch: it looks over its folder at once, from where it stopped.
    #[oai(
        path = "/watches/:watch_id/resume",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "resumeWatch"
    )]
    async fn resume(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        watch_id: Path<ApiWatchId>,
    ) -> OneResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await).user;
        let gw = self.cx.gw();
        match gw.db.pause_watch(user, watch_id.0.0, false).await {
            Ok(true) => {}
            Ok(false) => return not_found(),
            Err(error) => return OneResponse::Unavailable(store_down(error)),
        }
        if let Err(refusal) = start_run(gw, watch_id.0.0).await {
            let _ = gw.db.pause_watch(user, watch_id.0.0, true).await;
            return OneResponse::Unavailable(refusal);
        }
        self.shown(user, watch_id.0.0).await
    }

    /// Delete a watch.
    #[oai(
        path = "/watches/:watch_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "deleteWatch"
    )]
    async fn delete(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        watch_id: Path<ApiWatchId>,
    ) -> DeleteResponse {
        let user = or_refuse!(self.cx.authenticate(&auth, Scope::JobsWrite).await).user;
        let gw = self.cx.gw();
        let unstarted = match gw.db.delete_watch(user, watch_id.0.0).await {
            Ok(Some(unstarted)) => unstarted,
            Ok(None) => {
                return DeleteResponse::NotFound(ErrorBody::new(
                    ErrorCode::NotFound,
                    "There is no such watch.",
                ));
            }
            Err(error) => return DeleteResponse::Unavailable(store_down(error)),
        };
        // Its run would find the watch gone at its next scan; ended now, it starts nothing more.
        let handle = gw
            .temporal
            .get_workflow_handle::<WatchFolder>(workflow_id(watch_id.0.0));
        let reason = WorkflowTerminateOptions::builder()
            .reason("the watch was deleted")
            .build();
        if let Err(error) = handle.terminate(reason).await {
            tracing::info!(%error, "a deleted watch's run is left to end by itself");
        }
        forget_never_started(gw, &unstarted).await;
        DeleteResponse::Deleted
    }
}

impl WatchesApi {
    /// `user`'s watch `id`, with its counts.
    async fn shown(&self, user: audiomill_domain::UserId, id: WatchId) -> OneResponse {
        let db = &self.cx.gw().db;
        let watch = match db.watch(id).await {
            Ok(watch) => watch.filter(|watch| watch.user_id == user),
            Err(error) => return OneResponse::Unavailable(store_down(error)),
        };
        let Some(watch) = watch else {
            return not_found();
        };
        match db.watch_counts(id).await {
            Ok(counts) => OneResponse::Ok(Json(Box::new(WatchBody::of(&watch, counts)))),
            Err(error) => OneResponse::Unavailable(store_down(error)),
        }
    }
}

/// Removes those of `jobs` whose run was never started (a scan cut off by the deletion
/// recorded them): with no run, nothing else would ever end them.
async fn forget_never_started(gw: &Gateway, jobs: &[audiomill_domain::JobId]) {
    for job in jobs {
        let handle = gw
            .temporal
            .get_workflow_handle::<ConvertVideo>(job.to_string());
        let described = handle.describe(WorkflowDescribeOptions::default()).await;
        if let Err(WorkflowInteractionError::NotFound(_)) = described
            && let Err(error) = gw.db.delete_job(*job).await
        {
            tracing::warn!(%error, job_id = %job, "could not remove a job never started");
        }
    }
}

fn not_found() -> OneResponse {
    OneResponse::NotFound(ErrorBody::new(
        ErrorCode::NotFound,
        "There is no such watch.",
    ))
}

/// Starts the watch's run, replacing one that may still be ending (a watch paused and
/// resumed at once): the new run takes over from where the folder's jobs stand.
async fn start_run(gw: &Gateway, watch: WatchId) -> Result<(), ErrorJson> {
    let input = WatchFolderInput {
        watch_id: watch,
        after: None,
        started: Vec::new(),
    };
    let options = WorkflowStartOptions::new(TASK_QUEUE, workflow_id(watch))
        .id_conflict_policy(WorkflowIdConflictPolicy::TerminateExisting)
        .build();
    match gw
        .temporal
        .start_workflow(WatchFolder::run, input, options)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(%error, watch_id = %watch, "could not start a watch's run");
            Err(ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                "The conversion service is unavailable; try again shortly.",
            ))
        }
    }
}

/// The watch asked for, each field checked: the caller's connection, a folder S3 allows,
/// choices and destination as an import's.
async fn checked(gw: &Gateway, caller: &Caller, body: NewWatchBody) -> Result<NewWatch, ErrorJson> {
    let bad = |field: &str, why: &str| ErrorBody::for_field(field, format!("`{field}` {why}."));
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(bad(
            "name",
            "is 1 to 100 characters, without control characters",
        ));
    }
    let (place, prefix) = place(gw, caller, &body).await?;
    let mut request = OutputRequest::default();
    for (name, value) in option_texts(&body.options)? {
        request
            .add(&name, &value)
            .map_err(|error| ErrorBody::for_field(error.field, format!("{error}.")))?;
    }
    let options = request
        .resolve()
        .map_err(|error| ErrorBody::for_field(error.field, format!("{error}.")))?;
    let asked = ExportAsked {
        to: body.export_to.map(|text| text.0),
        key: body.export_key.map(|text| text.0),
        url: None,
    };
    let export = export::resolve(gw, caller, &asked, 2)
        .await
        .map_err(|error| match UploadRefusal::from(error) {
            UploadRefusal::BadRequest(body) => body,
            _ => bad("export_to", "could not be checked now"),
        })?;
    Ok(NewWatch {
        user_id: caller.user,
        name,
        place,
        prefix,
        options,
        export,
        max_running: body.max_running.unwrap_or(4),
        interval_seconds: body.interval_seconds.unwrap_or(60),
        max_bytes: crate::uploads::grant::limits_for(caller, &gw.limits).max_bytes,
    })
}

/// What the watch looks into: one of the caller's connections (and the folder under its
/// prefix), or, for an admin, a folder of the hosts inside `WATCH_DIRECTORIES`.
async fn place(
    gw: &Gateway,
    caller: &Caller,
    body: &NewWatchBody,
) -> Result<(WatchedPlace, String), ErrorJson> {
    let bad = |field: &str, why: &str| ErrorBody::for_field(field, format!("`{field}` {why}."));
    let text = |field: &Option<Text>| {
        let text = field.as_ref()?.trim();
        (!text.is_empty()).then(|| text.to_owned())
    };
    match (text(&body.connection_id), text(&body.directory)) {
        (Some(_), Some(_)) => Err(bad("directory", "cannot be given with `connection_id`")),
        (None, None) => Err(bad(
            "connection_id",
            "is needed (or, for an admin, `directory`)",
        )),
        (None, Some(directory)) => {
            if !caller.admin {
                return Err(bad("directory", "may be watched by an admin only"));
            }
            let path = host_folder(&gw.watch_directories, &directory)
                .map_err(|why| bad("directory", why))?;
            Ok((WatchedPlace::Directory(path), String::new()))
        }
        (Some(connection), None) => {
            let connection = ConnectionId::parse(&connection)
                .map_err(|_| bad("connection_id", "is not a connection id"))?;
            let connection = gw
                .db
                .connection(connection)
                .await
                .map_err(store_down)?
                .filter(|connection| connection.user_id == caller.user)
                .ok_or_else(|| bad("connection_id", "names no connection of yours"))?;
            let prefix = normalized_prefix(body.prefix.as_deref().unwrap_or_default())
                .map_err(|why| bad("prefix", &format!("is not acceptable: {why}")))?;
            Ok((WatchedPlace::Bucket(connection.id), prefix))
        }
    }
}

/// `text` as a folder inside one of `roots`, judged by its words alone (the gateway need not
/// see the workers' folders; each worker resolves it again, links and all, before it reads).
fn host_folder(roots: &[PathBuf], text: &str) -> Result<PathBuf, &'static str> {
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err("must be an absolute path");
    }
    if path
        .components()
        .any(|part| !matches!(part, Component::RootDir | Component::Normal(_)))
    {
        return Err("must not hold `.` or `..`");
    }
    if roots.is_empty() {
        return Err("cannot be watched: this server lets no folder be (WATCH_DIRECTORIES)");
    }
    if !roots.iter().any(|root| path.starts_with(root)) {
        return Err("is not inside a folder this server lets be watched (WATCH_DIRECTORIES)");
    }
    Ok(path)
}
