//! `CleanExpired`: removes what retention no longer keeps, in batches, judged against one
//! time for the whole run. A Temporal Schedule starts it every `CLEANUP_INTERVAL_MINUTES`;
//! each batch is an activity retried through database and storage outages, and removes
//! nothing that has not expired by then, so a run cut off anywhere is finished by the next.

use crate::options::through_outages;
use audiomill_domain::contract::{
    CLEANUP_WORKFLOW_TYPE, CleanBatchInput, CleanExpiredInput, CleanupReport, activity,
};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

/// Jobs (and, separately, uploaded videos) one batch removes at most.
const BATCH_SIZE: u32 = 100;

/// Batches one run goes through at most; what is left waits for the next run, which keeps a
/// run's history short however much expired at once.
const MAX_BATCHES: u32 = 100;

#[workflow]
#[derive(Default)]
pub struct CleanExpired;

#[workflow_methods]
impl CleanExpired {
    #[run(name = CLEANUP_WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: CleanExpiredInput,
    ) -> WorkflowResult<CleanupReport> {
        let as_of = input.as_of.unwrap_or_else(|| {
            ctx.workflow_time()
                .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_millis() as i64)
        });
        let mut report = CleanupReport::default();
        for _ in 0..MAX_BATCHES {
            let batch = ctx
                .execute_activity(
                    activity::CleanBatch,
                    CleanBatchInput {
                        as_of,
                        limit: BATCH_SIZE,
                    },
                    through_outages(Duration::from_secs(5 * 60)),
                )
                .await?;
            report.add(&batch);
            if !batch.more {
                break;
            }
        }
        Ok(report)
    }
}
