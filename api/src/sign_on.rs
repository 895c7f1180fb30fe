//! Single sign-on with an OpenID provider (OpenID Connect's authorization code flow with
//! PKCE), through the `openidconnect` crate: the provider's discovery document and keys,
//! fetched when first needed and again when an ID token names a key they lack (the provider
//! rotated its keys); the address a sign-in starts at; and the person a provider's answer
//! proves, from an ID token whose signature, issuer, audience, expiry and nonce are checked.

use audiomill_domain::EmailAddress;
use audiomill_store::OwnQuota;
use openidconnect::{
    AccessToken, AdditionalClaims, AsyncHttpClient, AuthenticationFlow, AuthorizationCode,
    ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IdToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SubjectIdentifier, TokenResponse, UserInfoClaims,
    core::{
        CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
        CoreProviderMetadata, CoreResponseType,
    },
};
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};
use tokio::sync::RwLock;

/// How single sign-on is set up (`OIDC_*`).
#[derive(Debug, Clone)]
pub struct SignOnSettings {
    /// The provider's issuer URL (`OIDC_ISSUER`): its discovery document is below it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Asked of the provider besides `openid` (`OIDC_SCOPES`).
    pub scopes: Vec<String>,
    /// The claim that lists a person's groups (`OIDC_GROUPS_CLAIM`).
    pub groups_claim: String,
    /// Members of these groups are admins, others not (`OIDC_ADMIN_GROUPS`; empty: admins are
    /// made here, not by the provider).
    pub admin_groups: Vec<String>,
    /// Limits by group (`OIDC_GROUP_LIMITS`; empty: limits are set here).
    pub group_limits: Vec<(String, OwnQuota)>,
    /// What the sign-in button calls the provider (`OIDC_NAME`).
    pub display_name: String,
}

impl SignOnSettings {
    /// Whether a person in `groups` is an admin; `None` when the provider does not decide.
    pub fn admin_for(&self, groups: &[String]) -> Option<bool> {
        (!self.admin_groups.is_empty())
            .then(|| self.admin_groups.iter().any(|group| groups.contains(group)))
    }

    /// The limits of a person in `groups`: the most generous of their groups' (0 is no limit),
    /// the deployment's defaults where none of their groups sets one; `None` when the provider does not decide.
    pub fn limits_for(&self, groups: &[String]) -> Option<OwnQuota> {
        if self.group_limits.is_empty() {
            return None;
        }
        let theirs = || {
            self.group_limits
                .iter()
                .filter(|(group, _)| groups.contains(group))
                .map(|(_, quota)| *quota)
        };
        Some(OwnQuota {
            storage_bytes: most_generous(theirs().map(|q| q.storage_bytes)),
            jobs_per_day: most_generous(theirs().map(|q| q.jobs_per_day)),
        })
    }
}

/// A sign-in sent to the provider: where the browser goes, and what its answer is checked
/// with.
pub struct Started {
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The person a provider's answer proves.
#[derive(Debug, Clone)]
pub struct Person {
    pub issuer: String,
    pub subject: String,
    /// Their address, when the provider says it verified it.
    pub verified_email: Option<EmailAddress>,
    pub groups: Vec<String>,
}

/// Why a sign-on did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SignOnError {
    /// The provider could not be reached, or answered what no provider should.
    #[error("the OpenID provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the code, or its ID token failed a check.
    #[error("the OpenID provider's answer was refused: {0}")]
    Refused(String),
}

/// Claims beyond the standard ones, read for the groups claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(HashMap<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

type ProviderIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Single sign-on with the configured provider.
pub struct SignOn {
    pub settings: SignOnSettings,
    redirect: RedirectUrl,
    http: ProviderHttp,
    /// The provider's discovery document with its keys, once fetched.
    provider: RwLock<Option<Arc<CoreProviderMetadata>>>,
}

impl SignOn {
    /// Sign-on that sends the provider's answers to `redirect` (`/oidc/callback` under the
    /// public base URL); what is wrong with the settings, if something is.
    pub fn new(settings: SignOnSettings, redirect: &str) -> Result<Self, String> {
        IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| format!("OIDC_ISSUER is no URL: {e}"))?;
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| format!("the sign-on address {redirect} is no URL: {e}"))?;
        let http = reqwest::Client::builder()
            // Never follow the provider elsewhere: its endpoints are the ones it names.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map(ProviderHttp)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            redirect,
            http,
            provider: RwLock::new(None),
        })
    }

    /// A new sign-in: the provider's address for it, with fresh state, nonce and PKCE.
    pub async fn start(&self) -> Result<Started, SignOnError> {
        let client = self.client(self.provider(false).await?.as_ref());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// The person behind the provider's `code`, checked with the sign-in's nonce and PKCE
    /// verifier.
    pub async fn finish(
        &self,
        code: String,
        nonce: &str,
        pkce_verifier: String,
    ) -> Result<Person, SignOnError> {
        let provider = self.provider(false).await?;
        let client = self.client(&provider);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SignOnError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| SignOnError::Refused(format!("the code was not taken: {e}")))?;
        let id_token: ProviderIdToken = tokens
            .id_token()
            .ok_or_else(|| SignOnError::Refused("the answer has no ID token".into()))?
            .to_string()
            .parse()
            .map_err(|e| SignOnError::Refused(format!("the ID token is malformed: {e}")))?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key fetched after ours: the provider rotated its keys.
                let provider = self.provider(true).await?;
                let client = self.client(&provider);
                let verifier = client.id_token_verifier();
                id_token.claims(&verifier, &nonce).cloned()
            }
            checked => checked.cloned(),
        }
        .map_err(|e| SignOnError::Refused(format!("the ID token failed a check: {e}")))?;
        let mut person = Person {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            verified_email: verified(claims.email(), claims.email_verified()),
            groups: groups_in(&claims.additional_claims().0, &self.settings.groups_claim),
        };
        let lacks_groups = !claims
            .additional_claims()
            .0
            .contains_key(&self.settings.groups_claim);
        if person.verified_email.is_none() || lacks_groups {
            self.complete_from_user_info(&provider, tokens.access_token(), &mut person)
                .await?;
        }
        Ok(person)
    }

    /// Fills in what the ID token left out from the provider's user info (many providers put
    /// only the subject in ID tokens of the code flow).
    async fn complete_from_user_info(
        &self,
        provider: &CoreProviderMetadata,
        access_token: &AccessToken,
        person: &mut Person,
    ) -> Result<(), SignOnError> {
        let client = self.client(provider);
        let Ok(request) = client.user_info(
            access_token.clone(),
            Some(SubjectIdentifier::new(person.subject.clone())),
        ) else {
            return Ok(());
        };
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = request
            .request_async(&self.http)
            .await
            .map_err(|e| SignOnError::Refused(format!("the user info was refused: {e}")))?;
        if person.verified_email.is_none() {
            person.verified_email = verified(info.email(), info.email_verified());
        }
        if let Some(groups) = info.additional_claims().0.get(&self.settings.groups_claim) {
            person.groups = group_names(groups);
        }
        Ok(())
    }

    /// The provider's discovery document and keys: those fetched before, or fetched now
    /// (`again`: whatever was fetched before).
    async fn provider(&self, again: bool) -> Result<Arc<CoreProviderMetadata>, SignOnError> {
        if !again && let Some(known) = self.provider.read().await.as_ref() {
            return Ok(known.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| SignOnError::Unavailable(e.to_string()))?;
        // Discovery checks that the document names the configured issuer.
        let fetched = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignOnError::Unavailable(format!("discovery failed: {e}")))?;
        let fetched = Arc::new(fetched);
        *self.provider.write().await = Some(fetched.clone());
        Ok(fetched)
    }

    fn client(
        &self,
        provider: &CoreProviderMetadata,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            provider.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect.clone())
    }
}

/// The HTTP client that talks to the provider.
struct ProviderHttp(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let answer = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut response = poem::http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            let body = answer.bytes().await?.to_vec();
            Ok(response.body(body).unwrap_or_default())
        })
    }
}

/// The most generous of some limits (0 is none); `None` when none is set.
fn most_generous(limits: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    let set: Vec<u64> = limits.flatten().collect();
    if set.contains(&0) {
        Some(0)
    } else {
        set.into_iter().max()
    }
}

/// The address, if the provider says it verified it.
fn verified(
    email: Option<&openidconnect::EndUserEmail>,
    verified: Option<bool>,
) -> Option<EmailAddress> {
    let email = email.filter(|_| verified == Some(true))?;
    EmailAddress::parse(email.as_str()).ok()
}

fn groups_in(claims: &HashMap<String, serde_json::Value>, name: &str) -> Vec<String> {
    claims.get(name).map(group_names).unwrap_or_default()
}

/// A groups claim's names: a list of strings, or one string.
fn group_names(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(one) => vec![one.clone()],
        serde_json::Value::Array(many) => many
            .iter()
            .filter_map(|group| group.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(group_limits: Vec<(&str, Option<u64>, Option<u64>)>) -> SignOnSettings {
        SignOnSettings {
            issuer: "https://id.example.com".into(),
            client_id: "audiomill".into(),
            client_secret: "secret".into(),
            scopes: vec![],
            groups_claim: "groups".into(),
            admin_groups: vec!["ops".into()],
            group_limits: group_limits
                .into_iter()
                .map(|(group, storage_bytes, jobs_per_day)| {
                    (
                        group.to_owned(),
                        OwnQuota {
                            storage_bytes,
                            jobs_per_day,
                        },
                    )
                })
                .collect(),
            display_name: "Example ID".into(),
        }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn admins_are_the_members_of_the_admin_groups() {
        let settings = settings(vec![]);
        assert_eq!(settings.admin_for(&groups(&["staff", "ops"])), Some(true));
        assert_eq!(settings.admin_for(&groups(&["staff"])), Some(false));
        let undecided = SignOnSettings {
            admin_groups: vec![],
            ..settings
        };
        assert_eq!(undecided.admin_for(&groups(&["ops"])), None);
    }

    #[test]
    fn a_person_in_several_tiers_gets_the_most_generous_limit_of_each_kind() {
        let settings = settings(vec![
            ("free", Some(1_000), Some(10)),
            ("pro", Some(50_000), Some(0)),
            ("archive", None, Some(5)),
        ]);
        assert_eq!(
            settings.limits_for(&groups(&["nobody"])),
            Some(OwnQuota::default())
        );
        assert_eq!(
            settings.limits_for(&groups(&["free", "pro"])),
            Some(OwnQuota {
                storage_bytes: Some(50_000),
                jobs_per_day: Some(0),
            })
        );
        assert_eq!(
            settings.limits_for(&groups(&["free", "archive"])),
            Some(OwnQuota {
                storage_bytes: Some(1_000),
                jobs_per_day: Some(10),
            }),
            "a tier that leaves storage at the default does not weigh in"
        );
        assert_eq!(self::settings(vec![]).limits_for(&groups(&["free"])), None);
    }

    #[test]
    fn a_groups_claim_is_a_list_or_one_name() {
        let claims: HashMap<String, serde_json::Value> =
            serde_json::from_str(r#"{"groups": ["a", 3, "b"], "role": "ops"}"#).unwrap();
        assert_eq!(groups_in(&claims, "groups"), groups(&["a", "b"]));
        assert_eq!(groups_in(&claims, "role"), groups(&["ops"]));
        assert!(groups_in(&claims, "missing").is_empty());
    }
}
