//! One request at a time on an upload: a lease on its row, taken before the upload is read
//! and given back when the request's work ends, on whichever gateway.

use crate::{
    error::{ErrorBody, ErrorCode, ErrorJson, store_down, unavailable},
    gateway::Gateway,
};
use audiomill_domain::UploadId;
use audiomill_store::{Resumable, time::now_millis};
use std::{sync::Arc, time::Duration};

/// How long a request's lease on an upload lasts; renewed while its body streams in, so only
/// a gateway that died leaves one to run out.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// A refusal that can say what holding an upload's lease may: another request holds it (423),
/// the upload is gone (404), or an outage (503). Each operation has its own.
pub(crate) trait LeaseRefusal: Send + 'static {
    fn held_elsewhere(error: ErrorJson) -> Self;
    fn not_found(error: ErrorJson) -> Self;
    fn down(error: ErrorJson) -> Self;
}

/// An upload as it stands once a request holds its lease.
pub(crate) struct Held {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) upload: Resumable,
    /// The lease's holder, under which offsets are recorded.
    pub(crate) holder: String,
}

/// Runs `work` on upload `id` as it stands once its lease is held (423 when another request
/// holds it; 404 when it is gone), then gives the lease back. The work runs in a task of its
/// own, to its end even when the request is dropped (its client gone mid-body): what arrived
/// is kept, a job started is recorded, and the lease is given back at once.
pub(crate) async fn under_lease<T, E, F, Fut>(
    gw: Arc<Gateway>,
    id: UploadId,
    work: F,
) -> Result<T, E>
where
    T: Send + 'static,
    E: LeaseRefusal,
    F: FnOnce(Held) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
{
    let task = tokio::spawn(async move {
        let lease = Lease::take(gw.clone(), id).await?;
        let outcome = match gw.db.resumable(id).await {
            Ok(Some(upload)) => {
                let holder = lease.holder.clone();
                work(Held { gw, upload, holder }).await
            }
            Ok(None) => Err(E::not_found(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such upload.",
            ))),
            Err(error) => Err(E::down(store_down(error))),
        };
        lease.release().await;
        outcome
    });
    // The request's own task died: a bug, never a client's doing.
    task.await
        .unwrap_or_else(|error| Err(E::down(unavailable("upload service", error))))
}

/// A request's hold on one upload: no other request appends while it lasts. Renewed in the
/// background while held; given up by [`Lease::release`] (or left to run out).
pub(crate) struct Lease {
    gw: std::sync::Arc<Gateway>,
    id: UploadId,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
    /// Whether it is still to be given back.
    held: bool,
}

impl Lease {
    async fn take<E: LeaseRefusal>(gw: std::sync::Arc<Gateway>, id: UploadId) -> Result<Self, E> {
        let holder = uuid::Uuid::new_v4().to_string();
        let until = || now_millis() + LEASE.as_millis() as i64;
        let taken = gw
            .db
            .lease_resumable(id, &holder, until())
            .await
            .map_err(|error| E::down(store_down(error)))?;
        if !taken {
            return Err(E::held_elsewhere(ErrorBody::new(
                ErrorCode::Locked,
                "Another request is appending to this upload now; try again when it has \
                 finished.",
            )));
        }
        let renewal = tokio::spawn({
            let (gw, holder) = (gw.clone(), holder.clone());
            async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let _ = gw.db.lease_resumable(id, &holder, until()).await;
                }
            }
        });
        Ok(Self {
            gw,
            id,
            holder,
            renewal,
            held: true,
        })
    }

    async fn release(mut self) {
        self.renewal.abort();
        self.held = false;
        let _ = self.gw.db.release_resumable(self.id, &self.holder).await;
    }
}

impl Drop for Lease {
    /// A lease dropped unreleased (its request cut short) is given back in the background,
    /// rather than held until it runs out.
    fn drop(&mut self) {
        self.renewal.abort();
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (gw, id, holder) = (self.gw.clone(), self.id, std::mem::take(&mut self.holder));
            runtime.spawn(async move {
                let _ = gw.db.release_resumable(id, &holder).await;
            });
        }
    }
}
