//! Where a job's MP3 goes besides Audiomill's storage, as an upload form, or an import, asks:
//! `export_to` (one of the caller's connections) with `export_key` (a key template, default
//! `{stem}.mp3`), or `export_url` (a presigned PUT URL). Checked when the job is asked for;
//! the worker writes the MP3 there before Audiomill stores its own copy.

use super::refusal::UploadError;
use crate::auth::Caller;
use crate::gateway::Gateway;
use audiomill_domain::{
    ConnectionId,
    connection::{DEFAULT_KEY_TEMPLATE, KeyTemplate},
    import::{self, ImportUrl},
    output::FieldError,
};
use audiomill_store::{NewExport, SealedExport};

pub const EXPORT_TO: &str = "export_to";
pub const EXPORT_KEY: &str = "export_key";
pub const EXPORT_URL: &str = "export_url";

/// The export fields as they arrived, unchecked.
#[derive(Debug, Default, Clone)]
pub struct ExportAsked {
    pub to: Option<String>,
    pub key: Option<String>,
    pub url: Option<String>,
}

impl ExportAsked {
    /// Whether `name` is an export field.
    pub fn takes(name: &str) -> bool {
        [EXPORT_TO, EXPORT_KEY, EXPORT_URL].contains(&name)
    }

    /// Records the export field `name`; an empty value (a form's blank field) is none.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), UploadError> {
        let slot = match name {
            EXPORT_TO => &mut self.to,
            EXPORT_KEY => &mut self.key,
            _ => &mut self.url,
        };
        if slot.is_some() {
            return Err(refused(field_name(name), "is given more than once"));
        }
        let value = value.trim();
        if !value.is_empty() {
            *slot = Some(value.to_owned());
        }
        Ok(())
    }
}

/// The export `asked` describes, checked for `caller`: their connection, or a URL whose
/// address may be reached, sealed; `None` when none is asked for.
pub async fn resolve(
    gw: &Gateway,
    caller: &Caller,
    asked: &ExportAsked,
    jobs: usize,
) -> Result<Option<NewExport>, UploadError> {
    if asked.url.is_some() && jobs > 1 {
        return Err(refused(
            EXPORT_URL,
            "takes one video: several MP3s cannot share one upload link",
        ));
    }
    match (&asked.to, &asked.url) {
        (None, None) if asked.key.is_some() => Err(refused(EXPORT_KEY, "needs `export_to`")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(refused(EXPORT_URL, "cannot be given with `export_to`")),
        (Some(to), None) => to_connection(gw, caller, to, asked.key.as_deref())
            .await
            .map(Some),
        (None, Some(url)) if asked.key.is_some() => {
            let _ = url;
            Err(refused(
                EXPORT_KEY,
                "goes with `export_to`, not `export_url`",
            ))
        }
        (None, Some(url)) => to_url(gw, url).await.map(Some),
    }
}

async fn to_connection(
    gw: &Gateway,
    caller: &Caller,
    to: &str,
    key: Option<&str>,
) -> Result<NewExport, UploadError> {
    if gw.sealer.is_none() {
        return Err(refused(
            EXPORT_TO,
            "cannot be used: this server has no CONNECTION_SECRET_KEY",
        ));
    }
    let id = ConnectionId::parse(to).map_err(|_| refused(EXPORT_TO, "is not a connection id"))?;
    let connection = gw
        .db
        .connection(id)
        .await?
        .filter(|connection| connection.user_id == caller.user)
        .ok_or_else(|| refused(EXPORT_TO, "names no connection of yours"))?;
    let template = KeyTemplate::parse(key.unwrap_or(DEFAULT_KEY_TEMPLATE))
        .map_err(|why| refused(EXPORT_KEY, format!("is not acceptable: {why}")))?;
    Ok(NewExport {
        shown: format!("{} in {}", template.as_str(), connection.shown()),
        export: SealedExport::Connection {
            connection_id: connection.id,
            template,
        },
    })
}

async fn to_url(gw: &Gateway, text: &str) -> Result<NewExport, UploadError> {
    let Some(sealer) = &gw.sealer else {
        return Err(refused(
            EXPORT_URL,
            "cannot be used: this server has no CONNECTION_SECRET_KEY",
        ));
    };
    let url = ImportUrl::parse(text)
        .map_err(|why| refused(EXPORT_URL, format!("is not acceptable: {why}")))?;
    import::resolve(&url, gw.import_allow_private)
        .await
        .map_err(|refusal| {
            refused(
                EXPORT_URL,
                format!("is not acceptable: {refusal}, so it may not be written to"),
            )
        })?;
    Ok(NewExport {
        shown: url.redacted(),
        export: SealedExport::PutUrl(sealer.seal(url.as_url().as_str())?),
    })
}

fn field_name(name: &str) -> &'static str {
    match name {
        EXPORT_TO => EXPORT_TO,
        EXPORT_KEY => EXPORT_KEY,
        _ => EXPORT_URL,
    }
}

fn refused(field: &'static str, message: impl Into<String>) -> UploadError {
    UploadError::BadField(FieldError {
        field,
        message: message.into(),
    })
}
