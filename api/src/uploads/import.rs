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
    ConnectionId, JobId, ObjectKey,
    import::{self, ImportUrl},
    output::{FieldError, OutputRequest},
};
use audiomill_store::JobImport;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The field of an import that names its links.
pub const URLS_FIELD: &str = "urls";

/// An import as asked for, unchecked.
pub struct ImportAsked<'a> {
    pub urls: &'a [String],
    /// Objects of one of the caller's connections instead of links: its id, and the keys
    /// under its prefix.
    pub from: Option<(&'a str, &'a [String])>,
    /// The upload form's output fields, by the same names.
    pub options: &'a BTreeMap<String, String>,
    pub callback_url: Option<&'a str>,
    pub export: super::export::ExportAsked,
}

/// What an import's `Idempotency-Key` remembers of it: its links and choices, hashed.
pub fn fingerprint(asked: &ImportAsked<'_>) -> String {
    let mut hasher = Sha256::new();
    for url in asked.urls {
        hasher.update(url.trim().as_bytes());
        hasher.update([0]);
    }
    if let Some((connection, keys)) = asked.from {
        hasher.update(connection.as_bytes());
        for key in keys {
            hasher.update([2]);
            hasher.update(key.as_bytes());
        }
    }
    for (field, value) in [
        ("export_to", &asked.export.to),
        ("export_key", &asked.export.key),
        ("export_url", &asked.export.url),
    ] {
        hasher.update(field.as_bytes());
        hasher.update(value.as_deref().unwrap_or_default().as_bytes());
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
    let imports = match asked.from {
        None => checked_urls(gw, asked.urls, max_links)
            .await?
            .into_iter()
            .map(JobImport::Link)
            .collect(),
        Some(_) if !asked.urls.is_empty() => {
            return Err(refused("cannot be given with `from`"));
        }
        Some((connection, keys)) => bucket_objects(gw, caller, connection, keys, max_links).await?,
    };
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
    let videos = imports
        .into_iter()
        .map(|import| pending_source(import, &fingerprint))
        .collect();
    let read = ReadForm {
        videos,
        options,
        callback,
        export: asked.export.clone(),
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

/// The objects `keys` (under the prefix) of the caller's connection `connection`, each a
/// key S3 allows.
async fn bucket_objects(
    gw: &Gateway,
    caller: &Caller,
    connection: &str,
    keys: &[String],
    max_links: usize,
) -> Result<Vec<JobImport>, UploadError> {
    let from = |message: &str| {
        UploadError::BadField(FieldError {
            field: "from",
            message: message.to_owned(),
        })
    };
    if gw.sealer.is_none() {
        return Err(from(
            "cannot be used: this server has no CONNECTION_SECRET_KEY",
        ));
    }
    let id = ConnectionId::parse(connection).map_err(|_| from("names no connection id"))?;
    let connection = gw
        .db
        .connection(id)
        .await?
        .filter(|found| found.user_id == caller.user)
        .ok_or_else(|| from("names no connection of yours"))?;
    if keys.is_empty() || keys.len() > max_links {
        return Err(from(&format!("needs 1 to {max_links} keys")));
    }
    keys.iter()
        .map(|key| {
            let key = key.trim().trim_start_matches('/');
            if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) {
                return Err(from(
                    "has a key that is empty, too long or holds control characters",
                ));
            }
            Ok(JobImport::Bucket {
                connection: Box::new(connection.clone()),
                key: format!("{}{key}", connection.prefix),
            })
        })
        .collect()
}

/// A job's video still where it is: its id, the key it will be stored at, and the name it
/// is known by (the file name its link or key ends in, `video` when it names none).
fn pending_source(import: JobImport, fingerprint: &str) -> StoredSource {
    let job_id = JobId::generate();
    let named = match &import {
        JobImport::Link(url) => url.file_name(),
        JobImport::Bucket { key, .. } | JobImport::HostFile { shown: key, .. } => {
            key.rsplit('/').next().map(str::to_owned)
        }
    };
    let filename = named
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
        import: Some(import),
    }
}
