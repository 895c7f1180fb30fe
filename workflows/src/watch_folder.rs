//! `WatchFolder`: one run per watch, for as long as the watch is neither paused nor deleted.
//! It scans the folder a page at a time (`scan_watch`) and starts each job the scan recorded
//! as a `ConvertVideo` child it does not wait for (abandoned when this run closes), its
//! workflow id the job's own: a start asked for twice, after a kill, is refused by Temporal
//! and the run already under way converts. The next scan notes the starts, so a job recorded
//! but never started is handed out again. It waits between passes, and while as many of its
//! jobs run as the watch allows; it continues as new every few pages, which keeps its
//! history short however large the folder.

use crate::{all_at_once::all, convert_video::ConvertVideo, options::through_outages};
use audiomill_domain::{
    contract::{TASK_QUEUE, activity},
    watch::{ScanOutcome, ScanWatchInput, WATCH_WORKFLOW_TYPE, WatchFolderInput},
};
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ChildWorkflowOptions, ContinueAsNewOptions, ParentClosePolicy, WorkflowCancellationToken,
    WorkflowContext, WorkflowIdReusePolicy, WorkflowResult,
};

/// Scans one run makes before it continues as new.
const SCANS_PER_RUN: u32 = 50;

#[workflow]
#[derive(Default)]
pub struct WatchFolder;

#[workflow_methods]
impl WatchFolder {
    #[run(name = WATCH_WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: WatchFolderInput,
    ) -> WorkflowResult<()> {
        let WatchFolderInput {
            watch_id,
            mut after,
            mut started,
        } = input;
        for _ in 0..SCANS_PER_RUN {
            let scan = ScanWatchInput {
                watch_id,
                after: after.clone(),
                started: std::mem::take(&mut started),
            };
            let outcome = ctx
                .execute_activity(
                    activity::ScanWatch,
                    scan,
                    through_outages(Duration::from_secs(2 * 60)),
                )
                .await?;
            let ScanOutcome::Page {
                jobs,
                next,
                wait_seconds,
            } = outcome
            else {
                return Ok(());
            };
            let starts = jobs.into_iter().map(|job| {
                started.push(job.job_id);
                let options = ChildWorkflowOptions::builder()
                    .workflow_id(job.job_id.to_string())
                    .task_queue(TASK_QUEUE.to_owned())
                    .parent_close_policy(ParentClosePolicy::Abandon)
                    .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
                    // Not the watch's token: pausing or deleting it leaves its jobs be.
                    .cancellation_token(WorkflowCancellationToken::new())
                    .build();
                ctx.start_child_workflow(ConvertVideo::run, job, options)
            });
            // A start refused because the job's run exists already is a job under way.
            let _ = all(starts).await;
            after = next;
            if wait_seconds > 0 {
                ctx.timer(Duration::from_secs(wait_seconds)).await;
            }
        }
        let next = WatchFolderInput {
            watch_id,
            after,
            started,
        };
        ctx.continue_as_new(next, ContinueAsNewOptions::default())?;
        Ok(())
    }
}
