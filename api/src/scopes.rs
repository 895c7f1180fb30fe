//! What a credential may do. Every operation that needs a credential names one scope in the
//! document and asks for it when it authenticates; a credential without it is answered 403.
//!
//! A login (a password or single sign-on) holds every scope its account has: all of them but
//! `admin` for a user, all for an admin. An API key holds the scopes it was made with, never
//! `credentials`, so a leaked key cannot make more keys, change the password or end logins.

use poem_openapi::OAuthScopes;

/// One thing a credential may do.
#[derive(OAuthScopes, poem_openapi::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read jobs: status, events, listings, statistics, batches and downloads.
    #[oai(rename = "jobs:read")]
    JobsRead,
    /// Start jobs (uploads, tus included), cancel and delete them.
    #[oai(rename = "jobs:write")]
    JobsWrite,
    /// See webhook endpoints and their deliveries.
    #[oai(rename = "webhooks:read")]
    WebhooksRead,
    /// Register, change, delete and rotate webhook endpoints; replay deliveries.
    #[oai(rename = "webhooks:write")]
    WebhooksWrite,
    /// Read the account: settings, quota and usage, the list of API keys.
    #[oai(rename = "account:read")]
    AccountRead,
    /// Change the account's settings.
    #[oai(rename = "account:write")]
    AccountWrite,
    /// Act as an admin (only for an admin's credentials): anyone's jobs, accounts, statistics.
    #[oai(rename = "admin")]
    Admin,
    /// Manage credentials: API keys, the password, ending every login. Only a login holds it.
    #[oai(rename = "credentials")]
    Credentials,
}

impl Scope {
    /// Every scope, in the order the document lists them.
    pub const ALL: [Scope; 8] = [
        Scope::JobsRead,
        Scope::JobsWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::AccountRead,
        Scope::AccountWrite,
        Scope::Admin,
        Scope::Credentials,
    ];

    /// The scope named `name` (as the document spells it).
    pub fn parse(name: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u16);

impl Scopes {
    /// What a login of an account holds: everything, `admin` only for an admin.
    pub fn of_login(admin: bool) -> Self {
        Scope::ALL
            .into_iter()
            .filter(|scope| admin || *scope != Scope::Admin)
            .collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    /// The names, separated by spaces (as stored).
    pub fn to_words(self) -> String {
        self.iter().map(|s| s.name()).collect::<Vec<_>>().join(" ")
    }

    /// The scopes of stored words; words this version does not know grant nothing.
    pub fn from_words(words: &str) -> Self {
        words.split_whitespace().filter_map(Scope::parse).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Self {
        Scopes(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_words() {
        let scopes: Scopes = [Scope::JobsRead, Scope::WebhooksWrite]
            .into_iter()
            .collect();
        assert_eq!(scopes.to_words(), "jobs:read webhooks:write");
        assert_eq!(Scopes::from_words("webhooks:write jobs:read bogus"), scopes);
    }

    #[test]
    fn a_users_login_holds_all_but_admin() {
        let user = Scopes::of_login(false);
        assert!(!user.contains(Scope::Admin));
        assert!(user.contains(Scope::Credentials));
        assert_eq!(user.iter().count(), Scope::ALL.len() - 1);
        assert!(Scopes::of_login(true).contains(Scope::Admin));
    }
}
