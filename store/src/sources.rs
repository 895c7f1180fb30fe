//! What a job's video may come from besides an upload, and where its MP3 may go besides
//! Audiomill's storage: users' saved connections (their secrets sealed), links, and the
//! exports a job asks for. Plain values; `connections` keeps them in the database.

use crate::{error::StoreError, sealed::Sealer};
use audiomill_domain::{
    ConnectionId, UserId,
    connection::{Endpoint, KeyTemplate},
    import::ImportUrl,
};
use std::path::PathBuf;

/// The most connections one user may keep.
pub const MAX_CONNECTIONS_PER_USER: u64 = 20;

/// A saved connection; its secret key stays sealed ([`Connection::secret`] opens it).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub name: String,
    /// `None`: AWS itself, reached at its regional endpoint.
    pub endpoint: Option<Endpoint>,
    pub region: String,
    pub bucket: String,
    /// Where in the bucket imports read and exports write: empty, or ending in `/`.
    pub prefix: String,
    pub access_key_id: String,
    pub(crate) sealed_secret: String,
    pub created_at: i64,
}

impl Connection {
    /// The secret access key, opened with `sealer`.
    pub fn secret(&self, sealer: &Sealer) -> Result<String, StoreError> {
        sealer.open(&self.sealed_secret)
    }

    /// How the connection is named to people: `bucket/prefix at host`.
    pub fn shown(&self) -> String {
        let host = self
            .endpoint
            .as_ref()
            .map_or_else(|| "AWS".to_owned(), Endpoint::host);
        format!("{}/{} at {host}", self.bucket, self.prefix)
    }
}

/// A connection as a user asks for it, checked.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub user_id: UserId,
    pub name: String,
    pub endpoint: Option<Endpoint>,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Where a new job's video comes from, when it is not uploaded.
#[derive(Debug, Clone)]
pub enum JobImport {
    Link(ImportUrl),
    /// An object of a connection's bucket (its key, the prefix included).
    Bucket {
        connection: Box<Connection>,
        key: String,
    },
    /// A file of a watched folder of the workers' hosts: its absolute path, and the path
    /// shown (under the watched folder).
    HostFile {
        path: PathBuf,
        shown: String,
    },
}

impl JobImport {
    /// What may be shown of where the video comes from.
    pub fn shown(&self) -> String {
        match self {
            Self::Link(url) => url.redacted(),
            Self::Bucket { connection, key } => format!("{key} in {}", connection.shown()),
            Self::HostFile { shown, .. } => format!("{shown} in a folder of the server"),
        }
    }
}

/// Where a new job's MP3 goes besides Audiomill's storage, its secret parts sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExport {
    pub export: SealedExport,
    /// What may be shown of it.
    pub shown: String,
}

impl NewExport {
    /// The export as one column's JSON text.
    pub fn to_column(&self) -> String {
        let export = match &self.export {
            SealedExport::Connection {
                connection_id,
                template,
            } => serde_json::json!({
                "connection_id": connection_id.to_string(),
                "template": template.as_str(),
            }),
            SealedExport::PutUrl(sealed) => serde_json::json!({ "sealed_put_url": sealed }),
        };
        serde_json::json!({ "export": export, "shown": self.shown }).to_string()
    }

    /// The export a column holds; `None` for text that is none.
    pub fn from_column(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let export = &value["export"];
        let sealed = match export["sealed_put_url"].as_str() {
            Some(sealed) => SealedExport::PutUrl(sealed.to_owned()),
            None => SealedExport::Connection {
                connection_id: ConnectionId::parse(export["connection_id"].as_str()?).ok()?,
                template: KeyTemplate::parse(export["template"].as_str()?).ok()?,
            },
        };
        Some(Self {
            export: sealed,
            shown: value["shown"].as_str()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SealedExport {
    Connection {
        connection_id: ConnectionId,
        template: KeyTemplate,
    },
    /// A presigned PUT URL, sealed.
    PutUrl(String),
}

/// Where a job's MP3 goes besides Audiomill's own storage.
#[derive(Debug, Clone, PartialEq)]
pub enum Export {
    /// A connection's bucket, at the key the template makes under its prefix.
    Connection {
        connection_id: ConnectionId,
        template: KeyTemplate,
    },
    /// A presigned PUT URL (its signature is a credential: kept sealed).
    PutUrl(ImportUrl),
}
