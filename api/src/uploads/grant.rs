//! What an upload token changes about an upload: one of its uploads spent when the upload
//! begins, the largest file it allows, and the output choices it fixes.

use super::refusal::UploadError;
use crate::auth::{Caller, Denied};
use crate::error::{ErrorBody, ErrorCode};
use crate::gateway::{Gateway, UploadLimits};
use audiomill_domain::output::OutputOptions;

/// Takes one upload from the caller's upload token, if they upload with one; refused when it
/// has none left.
pub(crate) async fn spend(gw: &Gateway, caller: &Caller) -> Result<(), Denied> {
    let Some(grant) = &caller.upload else {
        return Ok(());
    };
    if gw.db.spend_upload(&grant.id).await? {
        Ok(())
    } else {
        Err(Denied::Forbidden(ErrorBody::new(
            ErrorCode::Forbidden,
            "This upload token has no uploads left.",
        )))
    }
}

/// The service's upload limits, with the file size capped by the caller's upload token.
pub(crate) fn limits_for(caller: &Caller, limits: &UploadLimits) -> UploadLimits {
    let cap = caller.upload.as_ref().and_then(|grant| grant.max_bytes);
    UploadLimits {
        max_bytes: cap.map_or(limits.max_bytes, |cap| cap.min(limits.max_bytes)),
        ..limits.clone()
    }
}

/// The output choices the caller's upload gets: those it asked for, or the ones its upload
/// token fixes (when it asked for none).
pub(crate) fn choices_for(
    caller: &Caller,
    asked: OutputOptions,
) -> Result<OutputOptions, UploadError> {
    match caller
        .upload
        .as_ref()
        .and_then(|grant| grant.options.clone())
    {
        None => Ok(asked),
        Some(fixed) if asked.is_default() => Ok(fixed),
        Some(_) => Err(UploadError::bad(
            "This upload token fixes the output choices; send none.",
        )),
    }
}
