//! LinkedIn lead generation (issue 16, LI-01..LI-08): lead notifications to leads.
//!
//! The webhook (`http::leads`) verifies a notification, stores it durably
//! (`linkedin_notifications`) and asks for a run of its `LeadIntegration`. The integration's
//! connector ([`LeadConnectors`]) takes the stored notifications not done yet, fetches each
//! form response (and its form) from the Lead Sync API ([`api::Client`]), maps it to columns
//! ([`mapping`]) and creates the lead with its contact and duplicate link in one transaction,
//! unique by `(integration, linkedinLeadId)`. It also runs every [`SWEEP_INTERVAL`], so a
//! notification whose fetch failed is tried again. Inactive integrations are not built (their
//! status says why) and inactive forms create nothing (LI-07). Everything it does is written
//! to the integration's log (LI-08).

pub mod api;
pub mod mapping;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::kinds::{LeadIntegrationSpec, LinkedInAccountSpec, SettingsSpec};
use crate::config::{ConfigSet, Kind, KindSpec, Object};
use crate::connector::{
    Connector, ConnectorError, KindConnectors, SyncContext, SyncFuture, SyncReport, Trigger,
    resolve_secrets,
};
use crate::store::leads::{LinkedInLead, PendingNotification};

/// How often an integration's stored notifications are swept when no webhook asks.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Failed runs after which a notification is given up (logged `gave-up`, no longer tried).
pub const MAX_ATTEMPTS: i64 = 20;

/// The `KindConnectors` of `LeadIntegration`.
pub struct LeadConnectors;

impl KindConnectors for LeadConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        let spec = LeadIntegrationSpec::from_spec(&object.spec)
            .ok_or("not a LeadIntegration")?
            .clone();
        if !spec.active {
            return Err("inactive (`active: false`): it creates no leads (LI-07)".into());
        }
        let (settings_object, app) = set
            .specs::<SettingsSpec>()
            .find_map(|(o, s)| s.linkedin.clone().map(|l| (o, l)))
            .ok_or("Settings.linkedin (the LinkedIn app's clientId and clientSecret) is not set")?;
        let client_secret = resolve_secrets(settings_object)
            .map_err(|e| format!("Settings.linkedin.clientSecret: {e}"))?
            .remove("/linkedin/clientSecret")
            .ok_or("Settings.linkedin.clientSecret is not set")?;
        let mut accounts = Vec::new();
        let mut why = Vec::new();
        for name in &spec.accounts {
            let Some(account) = set.object(Kind::LinkedInAccount, name) else {
                why.push(format!("LinkedInAccount {name} does not exist"));
                continue;
            };
            if LinkedInAccountSpec::from_spec(&account.spec)
                .is_some_and(|a| a.refresh_token.is_none())
            {
                why.push(format!(
                    "LinkedInAccount {name} has no refreshToken (the consent flow is not built yet)"
                ));
                continue;
            }
            match resolve_secrets(account).map(|mut s| s.remove("/refreshToken")) {
                Ok(Some(token)) => accounts.push(api::Account {
                    name: name.clone(),
                    refresh_token: token,
                }),
                Ok(None) => why.push(format!("LinkedInAccount {name} has no refreshToken")),
                Err(e) => why.push(format!("LinkedInAccount {name}: {e}")),
            }
        }
        if accounts.is_empty() {
            return Err(format!(
                "stopped: no LinkedInAccount can reach ad account {} (LI-07){}",
                spec.ad_account_id,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            ));
        }
        let client = api::Client::new(
            spec.api_base_url.as_ref().map(|u| u.as_str()),
            &app.client_id,
            client_secret,
            accounts,
        );
        Ok(Arc::new(LeadIntegration {
            name: object.name.clone(),
            spec,
            client,
        }))
    }

    fn trigger(&self, _object: &Object, _set: &ConfigSet) -> Trigger {
        Trigger::Interval(SWEEP_INTERVAL)
    }
}

/// Whether `form` of `spec` creates leads: listed and active, or not listed (the default
/// mapping serves every form of the ad account).
pub fn form_active(spec: &LeadIntegrationSpec, form: &str) -> bool {
    spec.forms
        .iter()
        .find(|f| f.id == form)
        .is_none_or(|f| f.active)
}

/// One integration's connector.
struct LeadIntegration {
    name: String,
    spec: LeadIntegrationSpec,
    client: api::Client,
}

/// What became of one notification.
enum Done {
    Created,
    Known,
    Skipped,
}

impl LeadIntegration {
    async fn handle(
        &self,
        ctx: &SyncContext<'_>,
        forms: &mut HashMap<String, serde_json::Value>,
        n: &PendingNotification,
    ) -> Result<Done, api::ApiError> {
        let response_id = api::response_id(&n.response);
        let response = self
            .client
            .get(
                &format!("leadFormResponses/{}", urlencode(response_id)),
                &ctx.cancel,
            )
            .await?;
        let form_id = response["versionedLeadGenFormUrn"]
            .as_str()
            .map(api::form_id)
            .or_else(|| n.form.as_deref().map(api::form_id))
            .unwrap_or_default();
        let name = self.name.clone();
        if !form_active(&self.spec, &form_id) {
            let message = format!("response {response_id} of inactive form {form_id}: no lead");
            let at = ctx.clock.now();
            ctx.store
                .call(move |s| s.log_lead_event(&name, "skipped", &message, None, at))
                .await
                .map_err(store_failed)?;
            return Ok(Done::Skipped);
        }
        if !forms.contains_key(&form_id) {
            let form = self
                .client
                .get(&format!("leadForms/{}", urlencode(&form_id)), &ctx.cancel)
                .await?;
            forms.insert(form_id.clone(), form);
        }
        let values = mapping::values(&response, &forms[&form_id]);
        let mapping = self
            .spec
            .forms
            .iter()
            .find(|f| f.id == form_id)
            .and_then(|f| f.custom_mapping.as_deref())
            .unwrap_or(&self.spec.default_mapping);
        let person = mapping::person(&values);
        let submitted_at = response["submittedAt"]
            .as_i64()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or_else(|| ctx.clock.now());
        let lead = LinkedInLead {
            integration: self.name.clone(),
            form: form_id,
            linkedin_lead_id: response_id.to_owned(),
            submitted_at,
            columns: mapping::columns(mapping, &values),
            name: person.name,
            emails: person.emails,
            phones: person.phones,
        };
        let at = ctx.clock.now();
        let outcome = ctx
            .store
            .call(move |s| s.create_linkedin_lead(&lead, at))
            .await
            .map_err(store_failed)?;
        if outcome.created {
            ctx.metrics
                .leads_created_total
                .with_label_values(&[&self.name])
                .inc();
            tracing::info!(integration = %self.name, lead = outcome.id, "lead created");
            Ok(Done::Created)
        } else {
            Ok(Done::Known)
        }
    }

    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, ConnectorError> {
        let name = self.name.clone();
        let pending = ctx
            .store
            .call(move |s| s.pending_linkedin_notifications(&name))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        let mut forms = HashMap::new();
        let mut report = SyncReport::default();
        let mut failed = Vec::new();
        for n in &pending {
            if ctx.cancel.is_cancelled() {
                return Err(ConnectorError::Cancelled);
            }
            let result = self.handle(ctx, &mut forms, n).await;
            let at = ctx.clock.now();
            let (id, name) = (n.id, self.name.clone());
            match result {
                Ok(done) => {
                    if matches!(done, Done::Created) {
                        report.items_in += 1;
                    }
                    ctx.store
                        .call(move |s| s.finish_linkedin_notification(id, None, at))
                        .await
                        .map_err(|e| ConnectorError::Failed(e.to_string()))?;
                }
                Err(api::ApiError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(e) => {
                    // A response LinkedIn no longer has (404; it keeps leads 90 days) or one
                    // that failed too often is given up, so it does not retry for ever.
                    let gone = matches!(e, api::ApiError::Status { status: 404, .. });
                    let give_up = gone || n.attempts + 1 >= MAX_ATTEMPTS;
                    let event = match e {
                        _ if give_up => "gave-up",
                        api::ApiError::Token { .. } => "token-error",
                        _ => "fetch-error",
                    };
                    let message = format!("response {}: {e}", api::response_id(&n.response));
                    tracing::warn!(integration = %self.name, error = %message, "lead not fetched");
                    if !give_up {
                        failed.push(message.clone());
                    }
                    ctx.store
                        .call(move |s| {
                            s.finish_linkedin_notification(id, Some(&message), at)?;
                            if give_up {
                                s.finish_linkedin_notification(id, None, at)?;
                            }
                            s.log_lead_event(&name, event, &message, None, at)
                        })
                        .await
                        .map_err(|e| ConnectorError::Failed(e.to_string()))?;
                }
            }
        }
        match failed.last() {
            None => Ok(report),
            Some(last) => Err(ConnectorError::Failed(format!(
                "{} of {} lead notifications not processed; last: {last}",
                failed.len(),
                pending.len()
            ))),
        }
    }
}

impl Connector for LeadIntegration {
    fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
        Box::pin(async move { self.run(&ctx).await })
    }
}

fn store_failed(e: crate::store::StoreError) -> api::ApiError {
    api::ApiError::Transport {
        what: "the store".into(),
        message: e.to_string(),
    }
}

/// Percent-encodes a path segment.
fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
