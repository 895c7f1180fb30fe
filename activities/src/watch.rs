//! `scan_watch`: one page of a watch's folder. Each video there whose version the watch has
//! not taken becomes a job, recorded (with the version) in one transaction, as many as the
//! watch's room allows; the workflow starts them. A scan cut off anywhere is tried again and
//! names the same jobs (their ids come from the watch, the key and the version), and jobs
//! recorded but never started are handed out again before anything new.

use crate::{buckets::ConnectionAccess, failures::database_down, host_folders::HostFolders};
use audiomill_domain::{
    JobId, ObjectKey,
    container::{Container, clean_file_name, extension},
    contract::{ConvertVideoInput, ImportPlan, activity},
    lifecycle::Quota,
    output::OutputOptions,
    watch::{BUSY_WAIT_SECONDS, SCAN_PAGE, ScanOutcome, ScanWatchInput, job_for},
};
use audiomill_store::{
    Connection, Database, JobImport, ListedObject, NewJob, NotRecorded, OverQuota, Watch,
    WatchRecord, WatchedObject, WatchedPlace,
};
use std::{path::PathBuf, sync::Arc};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

#[derive(Clone)]
pub struct WatchActivities {
    db: Database,
    access: ConnectionAccess,
    folders: HostFolders,
    /// The deployment's default quota, under which users without their own convert.
    quota: Quota,
}

/// Where a listed page's objects are.
enum Origin {
    Bucket(Box<Connection>),
    Directory(PathBuf),
}

impl Origin {
    /// Where the job of object `key` imports its video from.
    fn import_of(&self, key: &str) -> JobImport {
        match self {
            Self::Bucket(connection) => JobImport::Bucket {
                connection: connection.clone(),
                key: key.to_owned(),
            },
            Self::Directory(folder) => JobImport::HostFile {
                path: folder.join(key),
                shown: key.to_owned(),
            },
        }
    }
}

/// Where a page's scan stopped, and why.
struct PageEnd {
    next: Option<String>,
    wait_seconds: u64,
}

#[activities]
impl WatchActivities {
    /// Notes the jobs started since the last scan, then takes the next page of the folder.
    #[activity(definition = activity::ScanWatch)]
    #[tracing::instrument(skip_all, fields(watch_id = %input.watch_id))]
    pub async fn scan_watch(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ScanWatchInput,
    ) -> Result<ScanOutcome, ActivityError> {
        let db = &self.db;
        db.note_watch_started(&input.started)
            .await
            .map_err(database_down)?;
        let watch = db.watch(input.watch_id).await.map_err(database_down)?;
        let Some(watch) = watch.filter(|watch| watch.paused_at.is_none()) else {
            return Ok(ScanOutcome::Stopped);
        };
        let left = db
            .left_unstarted(watch.id, SCAN_PAGE)
            .await
            .map_err(database_down)?;
        if !left.is_empty() {
            let jobs = self.inputs_of(&watch, &left).await?;
            return Ok(ScanOutcome::Page {
                jobs,
                next: input.after,
                wait_seconds: 0,
            });
        }
        let user = db.user_by_id(watch.user_id).await.map_err(database_down)?;
        if !user.is_some_and(|user| user.active) {
            db.note_watch_scan(watch.id, Some("The account is disabled."), false)
                .await
                .map_err(database_down)?;
            return Ok(self.held(input.after, u64::from(watch.interval_seconds)));
        }
        let running = db
            .watch_counts(watch.id)
            .await
            .map_err(database_down)?
            .running;
        let room = u64::from(watch.max_running).saturating_sub(running);
        if room == 0 {
            return Ok(self.held(input.after, BUSY_WAIT_SECONDS));
        }
        self.next_page(&watch, input.after, room).await
    }
}

impl WatchActivities {
    pub fn new(db: Database, access: ConnectionAccess, folders: HostFolders, quota: Quota) -> Self {
        Self {
            db,
            access,
            folders,
            quota,
        }
    }

    /// Lists the page after `after` and records a job for each new video in it, `room` at most.
    async fn next_page(
        &self,
        watch: &Watch,
        after: Option<String>,
        room: u64,
    ) -> Result<ScanOutcome, ActivityError> {
        let wait = u64::from(watch.interval_seconds);
        let (listed, origin) = match self.list(watch, after.as_deref()).await? {
            Ok(listed) => listed,
            Err(trouble) => {
                self.db
                    .note_watch_scan(watch.id, Some(&trouble), false)
                    .await
                    .map_err(database_down)?;
                return Ok(self.held(after, wait));
            }
        };
        let pass_over = listed.len() < SCAN_PAGE as usize;
        let mut jobs = Vec::new();
        let mut end = PageEnd {
            next: listed.last().map(|object| object.key.clone()),
            wait_seconds: 0,
        };
        let mut last_taken = after;
        let mut trouble = None;
        for object in &listed {
            if jobs.len() as u64 >= room {
                end = PageEnd {
                    next: last_taken,
                    wait_seconds: BUSY_WAIT_SECONDS,
                };
                break;
            }
            match self.record(watch, &origin, object).await? {
                Ok(Some(input)) => jobs.push(input),
                Ok(None) => {}
                Err(sentence) => {
                    trouble = Some(sentence);
                    end = PageEnd {
                        next: last_taken,
                        wait_seconds: wait,
                    };
                    break;
                }
            }
            last_taken = Some(object.key.clone());
        }
        let finished = pass_over && end.wait_seconds == 0;
        if finished {
            end = PageEnd {
                next: None,
                wait_seconds: wait,
            };
        }
        self.db
            .note_watch_scan(watch.id, trouble.as_deref(), finished)
            .await
            .map_err(database_down)?;
        Ok(ScanOutcome::Page {
            jobs,
            next: end.next,
            wait_seconds: end.wait_seconds,
        })
    }

    /// Up to a page of objects of the watch's folder after `after`, and where they are; a
    /// sentence when the folder cannot be read.
    async fn list(
        &self,
        watch: &Watch,
        after: Option<&str>,
    ) -> Result<Result<(Vec<ListedObject>, Origin), String>, ActivityError> {
        let connection_id = match &watch.place {
            WatchedPlace::Directory(folder) => {
                let listed = self.folders.list(folder, after, SCAN_PAGE).await;
                return Ok(listed.map(|listed| (listed, Origin::Directory(folder.clone()))));
            }
            WatchedPlace::Bucket(connection_id) => *connection_id,
        };
        let connection = self
            .db
            .connection(connection_id)
            .await
            .map_err(database_down)?;
        let bucket = match self.access.open(connection.as_ref()).await {
            Ok(bucket) => bucket,
            Err(trouble) => return Ok(Err(trouble.sentence())),
        };
        let connection = connection.expect("an opened bucket has its connection");
        let prefix = format!("{}{}", connection.prefix, watch.prefix);
        Ok(match bucket.list(&prefix, after, SCAN_PAGE).await {
            Ok(listed) => Ok((listed, Origin::Bucket(Box::new(connection)))),
            Err(trouble) => Err(trouble.sentence()),
        })
    }

    /// Records the job of `object` when it is a video the watch has not taken: `Ok(None)`
    /// when it is not one, or taken before; `Err` with a sentence when the user's quota
    /// refuses it.
    async fn record(
        &self,
        watch: &Watch,
        origin: &Origin,
        object: &ListedObject,
    ) -> Result<Result<Option<ConvertVideoInput>, String>, ActivityError> {
        let filename = clean_file_name(&object.key);
        let Some(container_extension) =
            extension(&filename).filter(|ext| Container::for_extension(ext).is_some())
        else {
            return Ok(Ok(None));
        };
        if object.size == 0 {
            return Ok(Ok(None));
        }
        let version = object.version();
        let job_id = job_for(watch.id, &object.key, &version);
        let job = NewJob {
            id: job_id,
            user_id: watch.user_id,
            original_filename: filename,
            source_key: ObjectKey::source(job_id, &container_extension),
            source_size: 0,
            options: watch.options.clone(),
            batch_id: None,
            session_id: Some(watch.session_id.clone()),
            import: Some(origin.import_of(&object.key)),
            export: watch.export.clone(),
        };
        let watched = WatchedObject {
            watch_id: watch.id,
            key: object.key.clone(),
            version,
        };
        let quota = self.quota_of(watch).await?;
        let recorded = self
            .db
            .record_watch_job(&job, &quota, &watched)
            .await
            .map_err(database_down)?;
        Ok(match recorded {
            WatchRecord::Recorded => {
                let source = (job.source_key, job.original_filename, job.options);
                Ok(Some(input_of(watch, job_id, source, quota)))
            }
            WatchRecord::Seen | WatchRecord::Stopped => Ok(None),
            WatchRecord::Refused(refused) => Err(held_by(refused)),
        })
    }

    /// The quota the watch's user converts under.
    async fn quota_of(&self, watch: &Watch) -> Result<Quota, ActivityError> {
        let user = self
            .db
            .user_by_id(watch.user_id)
            .await
            .map_err(database_down)?;
        Ok(user.map_or(self.quota, |user| user.quota.over(self.quota)))
    }

    /// The workflow inputs of jobs `ids`, recorded by the watch earlier.
    async fn inputs_of(
        &self,
        watch: &Watch,
        ids: &[JobId],
    ) -> Result<Vec<ConvertVideoInput>, ActivityError> {
        let quota = self.quota_of(watch).await?;
        let mut inputs = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(job) = self.db.job(*id).await.map_err(database_down)? else {
                // Deleted by its user before it started: nothing to start.
                self.db
                    .note_watch_started(&[*id])
                    .await
                    .map_err(database_down)?;
                continue;
            };
            let source = (job.source_key, job.original_filename, job.options);
            inputs.push(input_of(watch, job.id, source, quota));
        }
        Ok(inputs)
    }

    /// Nothing to start now: scan again from `after` in `wait_seconds`.
    fn held(&self, after: Option<String>, wait_seconds: u64) -> ScanOutcome {
        ScanOutcome::Page {
            jobs: Vec::new(),
            next: after,
            wait_seconds,
        }
    }
}

/// The workflow input of job `id` of the watch, from its source key, file name and choices.
fn input_of(
    watch: &Watch,
    id: JobId,
    (source_key, original_filename, options): (ObjectKey, String, OutputOptions),
    quota: Quota,
) -> ConvertVideoInput {
    ConvertVideoInput {
        job_id: id,
        user_id: watch.user_id,
        session_id: watch.session_id.clone(),
        source_key,
        original_filename,
        options,
        import: Some(ImportPlan {
            max_bytes: watch.max_bytes,
            quota,
        }),
        export: watch.export.is_some(),
    }
}

/// Why the watch waits, in a sentence for its user.
fn held_by(refused: NotRecorded) -> String {
    match refused {
        NotRecorded::Over(OverQuota::JobsPerDay { limit, .. }) => format!(
            "Your {limit} jobs of the day are used up; the watch goes on when the day's count \
             starts again."
        ),
        NotRecorded::Over(OverQuota::Storage { limit, .. }) => format!(
            "Your storage quota ({} MB) is used up; the watch goes on once jobs are deleted \
             or expire.",
            limit / (1024 * 1024)
        ),
        NotRecorded::BatchFull { .. } => "The watch could not record a job.".to_owned(),
    }
}
