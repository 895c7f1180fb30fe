//! Waiting on several steps at once, inside a workflow.

/// Awaits every one of `futures` at once; their outputs in order. Each is polled with the
/// workflow's own waker, as the SDK requires: `join_all` wakes through a `FuturesUnordered`
/// of its own once it has more than 30.
pub(crate) async fn all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut running: Vec<_> = futures
        .into_iter()
        .enumerate()
        .map(|(index, future)| Box::pin(async move { (index, future.await) }))
        .collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    while !running.is_empty() {
        let ((index, output), _, rest) = futures::future::select_all(running).await;
        outputs[index] = Some(output);
        running = rest;
    }
    outputs.into_iter().flatten().collect()
}
