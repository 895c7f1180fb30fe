//! Users' own buckets, as imports and exports reach them: the saved connection's secret
//! opened with the deployment's key, the endpoint's address held to the rules of links.

use audiomill_store::{BucketTrouble, Connection, Sealer, UserBucket};

/// What reaching a user's bucket takes.
#[derive(Debug, Clone)]
pub struct ConnectionAccess {
    /// Opens the connections' secrets (`CONNECTION_SECRET_KEY`); `None`: connections are off.
    pub sealer: Option<Sealer>,
    /// Endpoints may be on loopback and private addresses (`IMPORT_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

impl ConnectionAccess {
    /// The bucket of `connection` (`None`: deleted since the job was asked for).
    pub(crate) async fn open(
        &self,
        connection: Option<&Connection>,
    ) -> Result<UserBucket, BucketTrouble> {
        let Some(connection) = connection else {
            return Err(BucketTrouble::Refused(
                "The connection was deleted before the job could use it.".into(),
            ));
        };
        let Some(sealer) = &self.sealer else {
            return Err(BucketTrouble::Refused(
                "This server has no CONNECTION_SECRET_KEY, so it cannot use connections.".into(),
            ));
        };
        let secret = connection.secret(sealer).map_err(|_| {
            BucketTrouble::Refused(
                "The connection's secret key cannot be opened with this server's \
                 CONNECTION_SECRET_KEY; save the connection again."
                    .into(),
            )
        })?;
        UserBucket::open(connection, &secret, self.allow_private).await
    }
}
