//! `DeliverWebhooks`: how a job ended (or a progress milestone), told to its owner's webhook
//! endpoints, or one message replayed. `ConvertVideo` starts it as a child and does not wait
//! for it (nor fail with it): deliveries are retried for a day, long after the job has ended.

use crate::{
    all_at_once::all,
    options::{delivery_options, through_outages},
};
use audiomill_domain::contract::{
    DeliverWebhookInput, DeliverWebhooksInput, DeliverWebhooksOutput, DeliveryOutcome,
    PrepareWebhooksInput, WEBHOOKS_WORKFLOW_TYPE, activity,
};
use audiomill_domain::webhook::WebhookEvent;
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ChildWorkflowOptions, ParentClosePolicy, WorkflowCancellationToken, WorkflowContext,
    WorkflowResult,
};
use temporalio_workflow::workflows::WorkflowImplementation;

/// One job's webhook messages (or one replayed message), each delivered on its own: an
/// endpoint that is down delays only its own message.
#[workflow]
#[derive(Default)]
pub struct DeliverWebhooks;

#[workflow_methods]
impl DeliverWebhooks {
    #[run(name = WEBHOOKS_WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: DeliverWebhooksInput,
    ) -> WorkflowResult<DeliverWebhooksOutput> {
        let prepare = match input {
            DeliverWebhooksInput::Event { job_id, event } => PrepareWebhooksInput {
                job_id,
                event,
                progress: None,
            },
            DeliverWebhooksInput::Progress { job_id, percent } => PrepareWebhooksInput {
                job_id,
                event: WebhookEvent::JobProgress,
                progress: Some(percent),
            },
            DeliverWebhooksInput::Replay { message_id } => {
                return deliver_all(ctx, vec![message_id], true).await;
            }
        };
        let prepared = ctx
            .execute_activity(
                activity::PrepareWebhooks,
                prepare,
                through_outages(Duration::from_secs(30)),
            )
            .await?;
        deliver_all(ctx, prepared, false).await
    }
}

/// Delivers each message at once, each retried on its own; how many were delivered.
async fn deliver_all(
    ctx: &mut WorkflowContext<DeliverWebhooks>,
    message_ids: Vec<String>,
    replay: bool,
) -> WorkflowResult<DeliverWebhooksOutput> {
    let deliveries = message_ids.into_iter().map(|message_id| {
        ctx.execute_activity(
            activity::DeliverWebhook,
            DeliverWebhookInput { message_id, replay },
            delivery_options(),
        )
    });
    let mut output = DeliverWebhooksOutput::default();
    for outcome in all(deliveries).await {
        match outcome {
            Ok(DeliveryOutcome::Delivered) => output.delivered += 1,
            Ok(DeliveryOutcome::EndpointGone | DeliveryOutcome::Skipped) | Err(_) => {
                output.undelivered += 1
            }
        }
    }
    Ok(output)
}

/// Starts a `DeliverWebhooks` child the job does not wait for: it outlives the job (abandoned
/// when the job's run closes), also when the job was cancelled, and its failures are its own.
/// The start is asked for when this is called (the SDK issues the command then); the future
/// returned waits for its answer. A run with this id already under way refuses it, and that
/// one delivers.
pub(crate) fn start_deliveries<W: WorkflowImplementation>(
    ctx: &WorkflowContext<W>,
    workflow_id: String,
    input: DeliverWebhooksInput,
) -> impl Future<Output = ()> {
    let options = ChildWorkflowOptions::builder()
        .workflow_id(workflow_id)
        .parent_close_policy(ParentClosePolicy::Abandon)
        // Not the job's token: a cancelled job still announces that it was cancelled.
        .cancellation_token(WorkflowCancellationToken::new())
        .build();
    let starting = ctx.start_child_workflow(DeliverWebhooks::run, input, options);
    async move {
        let _ = starting.await;
    }
}
