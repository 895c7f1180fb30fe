//! Step metrics, measured in the worker around every activity by one interceptor, so no
//! activity repeats them: how long each attempt took and how it ended, by step; retries; and
//! the failures that stop a step, by their type. Labels are step names, outcomes and failure
//! types only, never a job.

use std::time::Instant;
use temporalio_common::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};

/// The interceptor; registered on every poller of a worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepMetrics;

impl ActivityInboundInterceptor for StepMetrics {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let step = input.activity_info().activity_type.clone();
        let attempt = input.activity_info().attempt;
        Box::pin(async move {
            let started = Instant::now();
            let result = next.run(input).await;
            let outcome = match &result {
                Ok(_) => "completed",
                Err(ActivityError::Cancelled { .. }) => "cancelled",
                Err(ActivityError::Application(failure)) if failure.is_non_retryable() => {
                    let kind = failure.type_name().unwrap_or("unknown").to_owned();
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
        })
    }
}
