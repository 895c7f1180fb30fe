//! Around every activity, by one interceptor, so no activity repeats it:
//! - a span with the job's id (its workflow's id), the run id, the step and the attempt, so
//!   every log line of an activity on any worker names its job (`LOG_FORMAT=json` carries the
//!   span's fields);
//! - step metrics: how long each attempt took and how it ended, by step; retries; and the
//!   failures that stop a step, by their type. Labels are step names, outcomes and failure
//!   types only, never a job.

use audiomill_domain::contract::FailureKind;
use std::time::Instant;
use temporalio_common::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use tracing::Instrument;

/// The interceptor; registered on every poller of a worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepMetrics;

impl ActivityInboundInterceptor for StepMetrics {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let step = info.activity_type.clone();
        let attempt = info.attempt;
        let span = tracing::info_span!(
            "step",
            job_id = info.workflow_id.as_deref().unwrap_or_default(),
            run_id = info.workflow_run_id.as_deref().unwrap_or_default(),
            step = %step,
            attempt,
        );
        let measured = async move {
            let started = Instant::now();
            let result = next.run(input).await;
            let outcome = match &result {
                Ok(_) => "completed",
                Err(ActivityError::Cancelled { .. }) => "cancelled",
                Err(ActivityError::Application(failure)) if failure.is_non_retryable() => {
                    let kind = FailureKind::of(failure.type_name()).name();
                    metrics::counter!("audiomill_step_failures_total", "step" => step.clone(), "type" => kind)
                        .increment(1);
                    "failed"
                }
                Err(_) => "retrying",
            };
            metrics::histogram!(
                "audiomill_step_duration_seconds",
                "step" => step.clone(),
                "outcome" => outcome,
            )
            .record(started.elapsed().as_secs_f64());
            if attempt > 1 {
                metrics::counter!("audiomill_step_retries_total", "step" => step).increment(1);
            }
            result
        };
        Box::pin(measured.instrument(span))
    }
}
