//! Signing in: passwords and single sign-on with an OpenID provider (`OIDC_*`).

use super::{Secret, boolean, comma_list};
use audiomill_api::sign_on::SignOnSettings;
use audiomill_store::OwnQuota;
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How people sign in to the gateway.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Signing in")]
pub struct SignInArgs {
    /// Whether people may sign in with their e-mail and password; off, only single sign-on
    /// (which must then be set up) and API keys work.
    #[arg(long, env = "PASSWORD_SIGN_IN", value_name = "BOOL", value_parser = boolean, default_value = "true", action = clap::ArgAction::Set)]
    pub password_sign_in: bool,
    /// The OpenID provider's issuer URL, for single sign-on (its discovery document is at
    /// `<URL>/.well-known/openid-configuration`); unset, there is no single sign-on.
    #[arg(long, env = "OIDC_ISSUER", value_name = "URL", requires_all = ["oidc_client_id", "oidc_client_secret"])]
    pub oidc_issuer: Option<String>,
    /// This service's client id at the provider.
    #[arg(long, env = "OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// This service's client secret at the provider.
    #[arg(long, env = "OIDC_CLIENT_SECRET", value_name = "SECRET", value_parser = client_secret, hide_env_values = true)]
    pub oidc_client_secret: Option<Secret>,
    /// What to ask the provider for, space-separated (`openid` is always asked).
    #[arg(
        long,
        env = "OIDC_SCOPES",
        value_name = "SCOPES",
        default_value = "openid email profile"
    )]
    pub oidc_scopes: String,
    /// The claim that lists a person's groups.
    #[arg(
        long,
        env = "OIDC_GROUPS_CLAIM",
        value_name = "CLAIM",
        default_value = "groups"
    )]
    pub oidc_groups_claim: String,
    /// Groups whose members are admins, comma-separated; set, the provider decides who is an
    /// admin at each sign-in (unset, admins are made here).
    #[arg(
        long,
        env = "OIDC_ADMIN_GROUPS",
        value_name = "LIST",
        default_value = ""
    )]
    pub oidc_admin_groups: String,
    /// Limits by group, as JSON: `{"<group>": {"storage_limit_mb": N, "jobs_per_day_limit": N}}`
    /// (0: no limit; a limit left out: the deployment's). Set, a person's groups decide their
    /// limits at each sign-in: the most generous of their groups'.
    #[arg(long, env = "OIDC_GROUP_LIMITS", value_name = "JSON", value_parser = group_limits)]
    pub oidc_group_limits: Option<GroupLimits>,
    /// What the sign-in button calls the provider.
    #[arg(
        long,
        env = "OIDC_NAME",
        value_name = "NAME",
        default_value = "single sign-on"
    )]
    pub oidc_name: String,
}

impl SignInArgs {
    /// Single sign-on's settings, when an issuer is set.
    pub fn sign_on(&self) -> Option<SignOnSettings> {
        let issuer = self.oidc_issuer.clone()?;
        let scopes = self
            .oidc_scopes
            .split_whitespace()
            .filter(|scope| *scope != "openid")
            .map(str::to_owned)
            .collect();
        Some(SignOnSettings {
            issuer,
            client_id: self.oidc_client_id.clone().unwrap_or_default(),
            client_secret: self
                .oidc_client_secret
                .as_ref()
                .map(|secret| secret.expose().to_owned())
                .unwrap_or_default(),
            scopes,
            groups_claim: self.oidc_groups_claim.clone(),
            admin_groups: comma_list(&self.oidc_admin_groups)
                .map(str::to_owned)
                .collect(),
            group_limits: self
                .oidc_group_limits
                .as_ref()
                .map(GroupLimits::tiers)
                .unwrap_or_default(),
            display_name: self.oidc_name.clone(),
        })
    }
}

/// `OIDC_GROUP_LIMITS`: each group's limits.
#[derive(Debug, Clone, Deserialize)]
pub struct GroupLimits(BTreeMap<String, Tier>);

/// One group's limits, named as an admin sets an account's.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tier {
    storage_limit_mb: Option<u64>,
    jobs_per_day_limit: Option<u64>,
}

impl GroupLimits {
    fn tiers(&self) -> Vec<(String, OwnQuota)> {
        self.0
            .iter()
            .map(|(group, tier)| {
                let quota = OwnQuota {
                    storage_bytes: tier.storage_limit_mb.map(|mb| mb.saturating_mul(1 << 20)),
                    jobs_per_day: tier.jobs_per_day_limit,
                };
                (group.clone(), quota)
            })
            .collect()
    }
}

fn group_limits(text: &str) -> Result<GroupLimits, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "must be JSON such as {{\"pro\": {{\"storage_limit_mb\": 50000, \"jobs_per_day_limit\": 500}}}}: {e}"
        )
    })
}

fn client_secret(text: &str) -> Result<Secret, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Secret::new(text))
}
