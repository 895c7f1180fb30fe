//! The jobs of one upload with several files, together: their summed status and progress, and
//! their MP3s as one ZIP, streamed entry by entry from storage as it is sent (never built in
//! memory or on disk first).

use super::context::{
    AnswersBadRequest, AnswersUnauthorized, ApiTags, BearerAuth, Context, ErrorJson, JobRefusal,
    Scope,
};
use super::jobs::JobState;
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    params::{ApiBatchId, ApiJobId},
};
use async_zip::{Compression, ZipDateTime, ZipEntryBuilder, tokio::write::ZipFileWriter};
use audiomill_domain::{BatchId, JobStatus, output::AudioFormat};
use audiomill_store::Job;
use futures::{AsyncWriteExt, StreamExt};
use poem::Body;
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};
use std::{collections::HashSet, sync::Arc};
use tokio_util::io::ReaderStream;

pub struct BatchesApi {
    pub(super) cx: Context,
}

/// One job of a batch.
#[derive(Object)]
struct BatchJob {
    job_id: ApiJobId,
    filename: String,
    status: JobState,
    /// 0-100.
    progress: u8,
    /// Why it failed; else `null`.
    #[oai(nullable)]
    error: Option<String>,
}

/// How many of a batch's jobs stand where.
#[derive(Object, Default)]
struct BatchCounts {
    queued: u32,
    running: u32,
    completed: u32,
    failed: u32,
    cancelled: u32,
}

/// A batch: the jobs of one upload with several files.
#[derive(Object)]
struct BatchStatus {
    batch_id: ApiBatchId,
    /// Every job has ended (completed, failed or cancelled).
    done: bool,
    /// 0-100 over all its jobs (an ended job counts as done).
    progress: u8,
    counts: BatchCounts,
    /// Its jobs, in the order of the upload's `file` parts.
    jobs: Vec<BatchJob>,
    /// Where the finished MP3s are, as one ZIP, once at least one is; else `null`.
    #[oai(nullable)]
    download: Option<String>,
}

api_response! {
    #[oai(bad_request_handler = "batch_id_refusal")]
    enum BatchResponse {
        #[oai(status = 200)]
        Ok(Json<BatchStatus>),
        @bad_batch_id,
        @unauthorized,
        @forbidden,
        @batch_not_found,
        @unavailable,
    }
}

streamed_payload!(
    /// A ZIP archive, streamed.
    Zip,
    "application/zip"
);

api_response! {
    #[oai(bad_request_handler = "batch_id_refusal")]
    enum ZipResponse {
        /// The finished MP3s, one entry each (named after its video), stored uncompressed.
        #[oai(status = 200)]
        Ok(
            Zip,
            #[oai(header = "Content-Disposition")] String,
            /// How many MP3s the archive holds.
            #[oai(header = "X-Batch-Files")]
            usize,
        ),
        @bad_batch_id,
        @unauthorized,
        @forbidden,
        @batch_not_found,
        /// None of its MP3s is ready yet.
        #[oai(status = 409)]
        NotReady(ErrorJson),
        @unavailable,
    }
}

/// The framework's refusal of the operations on one batch: the only parameter they parse is
/// its id.
fn batch_id_refusal<R: AnswersUnauthorized + AnswersBadRequest>(error: poem::Error) -> R {
    super::context::parameter_refusal(
        error,
        "The batch id is missing or malformed: batch ids are lower-case UUIDs.",
    )
}

#[OpenApi]
impl BatchesApi {
    /// The jobs of an upload with several files: each one's status and progress, and the
    /// whole batch's.
    #[oai(
        path = "/batches/:batch_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "getBatch"
    )]
    #[tracing::instrument(skip_all, fields(batch_id = %batch_id.0))]
    async fn batch(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        batch_id: Path<ApiBatchId>,
    ) -> BatchResponse {
        let jobs = or_refuse!(self.caller_batch(&auth, batch_id.0.0).await);
        let gw = self.cx.gw();
        let mut counts = BatchCounts::default();
        let mut listed = Vec::with_capacity(jobs.len());
        let mut done_percent = 0u32;
        for job in jobs {
            let view = gw.job_views.batch_view(&gw.temporal, &job).await;
            let count = match view.status {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Running => &mut counts.running,
                JobStatus::Completed => &mut counts.completed,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Cancelled => &mut counts.cancelled,
            };
            *count += 1;
            let progress = if view.status.is_final() {
                100
            } else {
                view.progress
            };
            done_percent += u32::from(progress);
            listed.push(BatchJob {
                job_id: job.id.into(),
                filename: job.original_filename,
                status: view.status.into(),
                progress: view.progress,
                error: view.error,
            });
        }
        let total = listed.len().max(1) as u32;
        BatchResponse::Ok(Json(BatchStatus {
            batch_id: batch_id.0,
            done: counts.queued + counts.running == 0,
            progress: (done_percent / total) as u8,
            download: (counts.completed > 0).then(|| format!("/batches/{}/download", batch_id.0)),
            counts,
            jobs: listed,
        }))
    }

    /// The batch's finished MP3s as one ZIP archive, streamed as it is read from storage.
    ///
    /// Jobs that have not completed are left out (`X-Batch-Files` says how many are in).
    #[oai(
        path = "/batches/:batch_id/download",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "downloadBatch"
    )]
    #[tracing::instrument(skip_all, fields(batch_id = %batch_id.0))]
    async fn download(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        batch_id: Path<ApiBatchId>,
    ) -> ZipResponse {
        let jobs = or_refuse!(self.caller_batch(&auth, batch_id.0.0).await);
        let finished: Vec<Job> = jobs
            .into_iter()
            .filter(|job| job.finished_mp3().is_some())
            .collect();
        if finished.is_empty() {
            return ZipResponse::NotReady(ErrorBody::new(
                ErrorCode::NotReady,
                "None of the batch's MP3s is ready yet; check /batches/{batch_id}.",
            ));
        }
        let count = finished.len();
        let name = zip_name(&finished);
        let (reader, writer) = tokio::io::duplex(64 * 1024);
        let gateway = self.cx.gateway();
        tokio::spawn(async move {
            if let Err(error) = write_zip(&gateway, &finished, writer).await {
                // The answer has begun: the client sees a cut-off archive, the log why.
                tracing::error!(%error, "a batch's ZIP stopped short");
            }
        });
        ZipResponse::Ok(
            Zip(Body::from_bytes_stream(ReaderStream::new(reader))),
            crate::uploads::file::attachment(&name),
            count,
        )
    }
}

impl BatchesApi {
    /// The caller's batch: its jobs, if the token is good and they are the caller's (an admin
    /// sees no one else's batches: a batch id is only ever shown to its owner).
    async fn caller_batch(
        &self,
        auth: &BearerAuth,
        batch_id: BatchId,
    ) -> Result<Vec<Job>, JobRefusal> {
        let caller = self.cx.authenticate(auth, Scope::JobsRead).await?;
        let jobs = self.cx.gw().db.batch_jobs(caller.user, batch_id).await?;
        if jobs.is_empty() {
            return Err(JobRefusal::NotFound(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such batch.",
            )));
        }
        Ok(jobs)
    }
}

/// Writes the outputs of `jobs` into `out` as a ZIP, each read from storage as it is written.
async fn write_zip(
    gw: &Arc<Gateway>,
    jobs: &[Job],
    out: tokio::io::DuplexStream,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut zip = ZipFileWriter::with_tokio(out);
    let mut names = EntryNames::default();
    for job in jobs {
        let Some(key) = job.finished_mp3() else {
            continue;
        };
        let size = gw.objects.size(key).await?.unwrap_or(0);
        let mut object = gw.objects.read_range(key, 0..size).await?;
        let entry = ZipEntryBuilder::new(
            names
                .name_for(&job.original_filename, job.options.format)
                .into(),
            Compression::Stored,
        )
        .last_modification_date(entry_date(job));
        let mut writer = zip.write_entry_stream(entry).await?;
        while let Some(chunk) = object.next().await {
            writer.write_all(&chunk?).await?;
        }
        writer.close().await?;
        crate::metrics::downloaded(size);
    }
    zip.close().await?;
    Ok(())
}

/// The archive's name, after the files in it: `talk.zip` for one, `talk and 2 more.zip` for
/// three.
fn zip_name(jobs: &[Job]) -> String {
    let first = jobs
        .first()
        .map(|job| crate::uploads::file::stem_of(&job.original_filename))
        .unwrap_or_else(|| "audio".into());
    match jobs.len() {
        0 | 1 => format!("{first}.zip"),
        count => format!("{first} and {} more.zip", count - 1),
    }
}

/// When a job's MP3 was made, as a ZIP entry's date (UTC; the format has no zone).
fn entry_date(job: &Job) -> ZipDateTime {
    let millis = job.completed_at.unwrap_or(job.created_at);
    let at = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default();
    ZipDateTime::from_chrono(&at)
}

/// Entry names: each video's name with its output's extension (`.mp3`, `.flac`, ...), made
/// unique in the archive.
#[derive(Default)]
struct EntryNames {
    taken: HashSet<String>,
}

impl EntryNames {
    fn name_for(&mut self, original: &str, format: AudioFormat) -> String {
        let stem = std::path::Path::new(original)
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("audio");
        // Upload names are cleaned already; a separator would still make a folder in some
        // unzip tools.
        let stem: String = stem
            .chars()
            .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
            .collect();
        let extension = format.extension();
        let mut name = format!("{stem}.{extension}");
        let mut n = 1;
        while !self.taken.insert(name.to_lowercase()) {
            n += 1;
            name = format!("{stem} ({n}).{extension}");
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_unique_whatever_the_case() {
        let mut names = EntryNames::default();
        let mp3 = AudioFormat::Mp3;
        assert_eq!(names.name_for("talk.mp4", mp3), "talk.mp3");
        assert_eq!(names.name_for("talk.mov", mp3), "talk (2).mp3");
        assert_eq!(names.name_for("TALK.mkv", mp3), "TALK (3).mp3");
        assert_eq!(
            names.name_for("Überraschung 日本.webm", mp3),
            "Überraschung 日本.mp3"
        );
        assert_eq!(names.name_for("a\\b.avi", mp3), "a_b.mp3");
        // Each format has its own extension: a FLAC and an MP3 of one name do not collide.
        assert_eq!(names.name_for("talk.mp4", AudioFormat::Flac), "talk.flac");
        assert_eq!(
            names.name_for("talk.webm", AudioFormat::Flac),
            "talk (2).flac"
        );
    }
}
