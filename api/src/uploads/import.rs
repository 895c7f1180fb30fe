//! Taking an import in: the links read and their addresses checked now (the worker checks
//! them again at every request), the output choices read as the upload form's fields, and a
//! job started for each link (a batch when there are several) whose first step fetches the
//! video. Nothing is stored here; a refused import leaves nothing behind.

use super::allowance::Allowance;
use super::form::{ReadForm, callback_url};
use super::intake::{Received, start_read};
use super::refusal::UploadError;
use super::storing::StoredSource;
use crate::auth::Caller;
use crate::gateway::Gateway;
use audiomill_domain::{
    JobId, ObjectKey,
    import::{self, ImportUrl},
    output::{FieldError, OutputRequest},
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The field of an import that names its links.
pub const URLS_FIELD: &str = "urls";

/// An import as asked for, unchecked.
pub struct ImportAsked<'a> {
    pub urls: &'a [String],
    /// The upload form's output fields, by the same names.
    pub options: &'a BTreeMap<String, String>,
    pub callback_url: Option<&'a str>,
}

/// What an import's `Idempotency-Key` remembers of it: its links and choices, hashed.
pub fn fingerprint(asked: &ImportAsked<'_>) -> String {
    let mut hasher = Sha256::new();
    for url in asked.urls {
        hasher.update(url.trim().as_bytes());
        hasher.update([0]);
    }
    for (name, value) in asked.options {
        hasher.update(name.as_bytes());
        hasher.update([1]);
        hasher.update(value.trim().as_bytes());
        hasher.update([0]);
    }
    hasher.update(asked.callback_url.unwrap_or_default().trim().as_bytes());
    hex::encode(hasher.finalize())
}

/// Reads and checks the import, then starts a job for each link.
pub async fn receive(
    gw: &Gateway,
    caller: &Caller,
    asked: &ImportAsked<'_>,
    max_links: usize,
    allowance: Allowance,
) -> Result<Received, UploadError> {
    let urls = checked_urls(gw, asked.urls, max_links).await?;
    let mut request = OutputRequest::default();
    for (name, value) in asked.options {
        request.add(name, value).map_err(UploadError::BadField)?;
    }
    let options = request.resolve().map_err(UploadError::BadField)?;
    let callback = match asked.callback_url {
        Some(text) => callback_url(gw, text).await?,
        None => None,
    };
    let fingerprint = fingerprint(asked);
    let videos = urls
        .into_iter()
        .map(|url| pending_source(url, &fingerprint))
        .collect();
    let read = ReadForm {
        videos,
        options,
        callback,
    };
    start_read(gw, caller, read, allowance.quota).await
}

/// The links, each a URL that may be imported from whose host resolves, now, only to
/// addresses imports may reach.
async fn checked_urls(
    gw: &Gateway,
    texts: &[String],
    max_links: usize,
) -> Result<Vec<ImportUrl>, UploadError> {
    if texts.is_empty() {
        return Err(refused("needs at least one link"));
    }
    if texts.len() > max_links {
        return Err(refused(format!("has more than {max_links} links")));
    }
    let mut urls = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let which = |why: String| match texts.len() {
            1 => refused(format!("is not acceptable: {why}")),
            _ => refused(format!(
                "has a link (number {}) that is not acceptable: {why}",
                index + 1
            )),
        };
        let url = ImportUrl::parse(text).map_err(|why| which(why.to_string()))?;
        import::resolve(&url, gw.import_allow_private)
            .await
            .map_err(|refusal| which(format!("{refusal}, so it may not be imported from")))?;
        urls.push(url);
    }
    Ok(urls)
}

fn refused(message: impl Into<String>) -> UploadError {
    UploadError::BadField(FieldError {
        field: URLS_FIELD,
        message: message.into(),
    })
}

/// A job's video still at its link: its id, the key it will be stored at, and the name it
/// is known by (the link's file name, `video` when the link names none).
fn pending_source(url: ImportUrl, fingerprint: &str) -> StoredSource {
    let job_id = JobId::generate();
    let filename = url
        .file_name()
        .map(|name| super::file::clean_file_name(&name))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "video".to_owned());
    let extension = super::file::extension(&filename).unwrap_or_else(|| "video".to_owned());
    StoredSource {
        job_id,
        key: ObjectKey::source(job_id, &extension),
        filename,
        size: 0,
        fingerprint: Some(fingerprint.to_owned()),
        import: Some(url),
    }
}
