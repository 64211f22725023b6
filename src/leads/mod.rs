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

use crate::config::kinds::{LeadIntegrationSpec, SettingsSpec};
use crate::config::{ConfigSet, Kind, KindSpec, Object};
use crate::connector::{
    Connector, ConnectorError, KindConnectors, SyncContext, SyncFuture, SyncReport, Trigger,
    resolve_secrets,
};
use crate::store::leads::{BackfillPage, LeadBackfill, LinkedInLead, PendingNotification};

/// How often an integration's stored notifications are swept when no webhook asks.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Responses asked per page of a backfill (the finder's `count`).
pub const BACKFILL_PAGE: i64 = 100;

/// How far back LinkedIn keeps lead data, and so how far a backfill may reach (LI-06).
pub const BACKFILL_DAYS: i64 = 90;

/// Failed runs after which a notification is given up (logged `gave-up`, no longer tried).
pub const MAX_ATTEMPTS: i64 = 20;

/// The `KindConnectors` of `LeadIntegration`.
pub struct LeadConnectors;

/// The webhook URL LinkedIn is given for `spec`: `{receiveUrl or Settings.siteUrl}/webhooks/linkedin`.
pub fn webhook_url(spec: &LeadIntegrationSpec, set: &ConfigSet) -> String {
    let base = spec.receive_url.as_ref().map_or_else(
        || {
            set.settings().map_or_else(
                || format!("http://{}", set.listen()),
                |s| s.site_url.url().as_str().to_owned(),
            )
        },
        |u| u.as_str().to_owned(),
    );
    format!("{}/webhooks/linkedin", base.trim_end_matches('/'))
}

/// The Lead Sync API client of `spec` in `set`: the app and the listed accounts usable now.
fn client_for(spec: &LeadIntegrationSpec, set: &ConfigSet) -> Result<api::Client, String> {
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
        // Without `refreshToken` the account serves with the token its consent flow stored
        // (`switchboard oauth url LinkedInAccount/NAME`); until then its refreshes fail
        // saying so, and the integration's other accounts serve.
        match resolve_secrets(account).map(|mut s| s.remove("/refreshToken")) {
            Ok(refresh_token) => accounts.push(api::Account {
                name: name.clone(),
                refresh_token,
            }),
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
    Ok(api::Client::new(
        spec.api_base_url.as_ref().map(|u| u.as_str()),
        &app.client_id,
        client_secret,
        accounts,
    ))
}

/// The consent flow of LinkedInAccount `name` (LI-01): the LinkedIn app of `Settings.linkedin`,
/// LinkedIn's authorization and token endpoints — under the `apiBaseUrl` of the first
/// LeadIntegration naming the account when that is not LinkedIn's own (a fake, a proxy) — and
/// `{Settings.siteUrl}/oauth/linkedin/callback`. `Err` says what to fix.
pub fn consent_target(set: &ConfigSet, name: &str) -> Result<crate::mail::ConsentTarget, String> {
    set.object(Kind::LinkedInAccount, name)
        .ok_or_else(|| format!("no LinkedInAccount named `{name}` in the configuration"))?;
    let (settings_object, app) = set
        .specs::<SettingsSpec>()
        .find_map(|(o, s)| s.linkedin.clone().map(|l| (o, l)))
        .ok_or("Settings.linkedin (the LinkedIn app's clientId and clientSecret) is not set")?;
    let client_secret = resolve_secrets(settings_object)
        .map_err(|e| format!("Settings.linkedin.clientSecret: {e}"))?
        .remove("/linkedin/clientSecret")
        .ok_or("Settings.linkedin.clientSecret is not set")?;
    let api_base = set
        .specs::<LeadIntegrationSpec>()
        .find(|(_, i)| i.accounts.iter().any(|a| a == name))
        .and_then(|(_, i)| i.api_base_url.as_ref().map(|u| u.as_str().to_owned()));
    let site_url = set
        .settings()
        .map(|s| s.site_url.as_str().to_owned())
        .ok_or(
            "the consent flow needs Settings.siteUrl (the public address LinkedIn redirects to)",
        )?;
    let callback = crate::mail::consent::Callback::LinkedIn;
    Ok(crate::mail::ConsentTarget {
        mailbox: api::grant_key(name),
        app: api::app(api_base.as_deref(), &app.client_id, client_secret),
        redirect_uri: callback.redirect_uri(&site_url),
        callback,
    })
}

impl KindConnectors for LeadConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        let spec = LeadIntegrationSpec::from_spec(&object.spec)
            .ok_or("not a LeadIntegration")?
            .clone();
        if !spec.active {
            return Err("inactive (`active: false`): it creates no leads (LI-07)".into());
        }
        let client = client_for(&spec, set)?;
        Ok(Arc::new(LeadIntegration {
            name: object.name.clone(),
            webhook: webhook_url(&spec, set),
            subscribed: std::sync::atomic::AtomicBool::new(false),
            spec,
            client,
        }))
    }

    fn trigger(&self, _object: &Object, _set: &ConfigSet) -> Trigger {
        Trigger::Interval(SWEEP_INTERVAL)
    }

    /// The LinkedIn app and the named accounts with their resolved refresh tokens (hashed):
    /// a new token in an account's manifest or secret file rebuilds the client, which then
    /// asks with it (a grant refused before is tried again, BX-04).
    fn inputs(&self, object: &Object, set: &ConfigSet) -> String {
        use sha2::Digest;
        let Some(spec) = LeadIntegrationSpec::from_spec(&object.spec) else {
            return String::new();
        };
        let mut hash = sha2::Sha256::new();
        let mut add = |part: &str| {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        };
        for settings in set.objects.iter().filter(|o| o.kind() == Kind::Settings) {
            add(&settings.spec.to_json().to_string());
            if let Ok(secrets) = resolve_secrets(settings) {
                for (pointer, secret) in secrets {
                    add(&pointer);
                    add(secret.expose());
                }
            }
        }
        for name in &spec.accounts {
            add(name);
            if let Some(account) = set.object(Kind::LinkedInAccount, name) {
                add(&account.spec.to_json().to_string());
                if let Ok(secrets) = resolve_secrets(account) {
                    for (pointer, secret) in secrets {
                        add(&pointer);
                        add(secret.expose());
                    }
                }
            }
        }
        hex::encode(hash.finalize())
    }

    fn retire<'a>(
        &'a self,
        object: &'a Object,
        _secrets: &'a std::collections::BTreeMap<String, crate::config::types::Secret>,
        previous: &'a ConfigSet,
    ) -> crate::connector::RetireFuture<'a> {
        Box::pin(async move {
            let Some(spec) = LeadIntegrationSpec::from_spec(&object.spec) else {
                return;
            };
            let client = match client_for(spec, previous) {
                Ok(c) => c,
                Err(why) => {
                    tracing::warn!(integration = %object.name, %why, "lead notification subscription not removed");
                    return;
                }
            };
            let ours = webhook_url(spec, previous);
            let cancel = tokio_util::sync::CancellationToken::new();
            match subscriptions(&client, spec, &cancel).await {
                Ok(found) => {
                    for (id, _) in found.into_iter().filter(|(_, url)| *url == ours) {
                        let path = format!("leadNotifications/{}", urlencode(&id));
                        match client
                            .call(reqwest::Method::DELETE, &path, None, &cancel)
                            .await
                        {
                            Ok(_) => {
                                tracing::info!(integration = %object.name, subscription = %id, "lead notification subscription removed")
                            }
                            Err(e) => {
                                tracing::warn!(integration = %object.name, error = %e, "lead notification subscription not removed")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(integration = %object.name, error = %e, "lead notification subscriptions not listed")
                }
            }
        })
    }
}

/// The lead notification subscriptions of `spec`'s ad account (`leadNotifications` criteria
/// finder): `(id, webhook URL)`.
async fn subscriptions(
    client: &api::Client,
    spec: &LeadIntegrationSpec,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Vec<(String, String)>, api::ApiError> {
    let owner = format!("urn:li:sponsoredAccount:{}", spec.ad_account_id);
    let found = client
        .get(
            &format!(
                "leadNotifications?q=criteria&owner=(sponsoredAccount:{})&leadType=(leadType:SPONSORED)",
                urlencode(&owner)
            ),
            cancel,
        )
        .await?;
    Ok(found["elements"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|s| {
                    let id = match &s["id"] {
                        serde_json::Value::String(id) => id.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((id, s["webhook"].as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default())
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
    /// The webhook URL its subscription points at.
    webhook: String,
    /// Whether this connector (this config) has made sure of its subscription.
    subscribed: std::sync::atomic::AtomicBool,
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
        self.make_lead(ctx, forms, &response, response_id, n.form.as_deref())
            .await
    }

    /// Turns one form response (as the Lead Sync API answers it) into a lead: skipped for an
    /// inactive form, known when a lead of it exists already, created otherwise.
    async fn make_lead(
        &self,
        ctx: &SyncContext<'_>,
        forms: &mut HashMap<String, serde_json::Value>,
        response: &serde_json::Value,
        response_id: &str,
        form_hint: Option<&str>,
    ) -> Result<Done, api::ApiError> {
        let form_id = response["versionedLeadGenFormUrn"]
            .as_str()
            .map(api::form_id)
            .or_else(|| form_hint.map(api::form_id))
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
        let values = mapping::values(response, &forms[&form_id]);
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
        let (columns, unconverted) = mapping::columns(mapping, &values);
        for problem in unconverted {
            // The raw value is in the not-mapped text; the log says which column refused it.
            let message = format!("response {response_id}: {problem}");
            tracing::info!(integration = %self.name, "{message}");
            let (name, at) = (self.name.clone(), ctx.clock.now());
            ctx.store
                .call(move |s| s.log_lead_event(&name, "value-not-converted", &message, None, at))
                .await
                .map_err(store_failed)?;
        }
        let lead = LinkedInLead {
            integration: self.name.clone(),
            form: form_id,
            linkedin_lead_id: response_id.to_owned(),
            submitted_at,
            columns,
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

    /// The `leadFormResponses` owner finder (Lead Sync API) for one page of `backfill`: the
    /// integration's ad account, sponsored leads, not only test leads, submitted in the
    /// period (epoch milliseconds, start inclusive, end exclusive).
    fn finder_path(&self, backfill: &LeadBackfill) -> String {
        let owner = format!("urn:li:sponsoredAccount:{}", self.spec.ad_account_id);
        format!(
            "leadFormResponses?q=owner&owner=(sponsoredAccount:{})&leadType=(leadType:SPONSORED)\
             &limitedToTestLeads=false&submittedAtTimeRange=(start:{},end:{})&count={}&start={}",
            urlencode(&owner),
            backfill.since.timestamp_millis(),
            backfill.until.timestamp_millis(),
            BACKFILL_PAGE,
            backfill.next_start
        )
    }

    /// Runs `backfill` from its cursor to its end (LI-06), page by page; each page's counts and
    /// the next cursor are stored together, so a crash resumes at the page it was on and the
    /// leads' uniqueness makes the page read again create nothing. A form filter is applied
    /// here, on each response's form, rather than in the finder (which wants the form's
    /// version); inactive forms are skipped as for notifications.
    async fn backfill(
        &self,
        ctx: &SyncContext<'_>,
        forms: &mut HashMap<String, serde_json::Value>,
        mut backfill: LeadBackfill,
    ) -> Result<LeadBackfill, ConnectorError> {
        let id = backfill.id;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(ConnectorError::Cancelled);
            }
            let page = match self
                .client
                .get(&self.finder_path(&backfill), &ctx.cancel)
                .await
            {
                Ok(page) => page,
                Err(api::ApiError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(e) => return self.end_backfill(ctx, id, e.to_string(), &e).await,
            };
            let elements = page["elements"].as_array().cloned().unwrap_or_default();
            let mut counts = BackfillPage {
                fetched: i64::try_from(elements.len()).unwrap_or(i64::MAX),
                ..BackfillPage::default()
            };
            for response in &elements {
                let response_id = response["id"].as_str().map(api::response_id).unwrap_or("");
                let form = response["versionedLeadGenFormUrn"]
                    .as_str()
                    .map(api::form_id)
                    .unwrap_or_default();
                if response_id.is_empty() || backfill.form.as_deref().is_some_and(|f| f != form) {
                    counts.skipped += 1;
                    continue;
                }
                match self
                    .make_lead(ctx, forms, response, response_id, None)
                    .await
                {
                    Ok(Done::Created) => counts.created += 1,
                    Ok(Done::Known) => counts.known += 1,
                    Ok(Done::Skipped) => counts.skipped += 1,
                    Err(api::ApiError::Cancelled) => return Err(ConnectorError::Cancelled),
                    Err(e) => {
                        // This page's earlier leads are made; its cursor is not moved, so the
                        // next run reads the page again and creates only what is missing.
                        let message = format!("response {response_id}: {e}");
                        return self.end_backfill(ctx, id, message, &e).await;
                    }
                }
            }
            let next = backfill.next_start + counts.fetched;
            let total = page["paging"]["total"].as_i64();
            let more =
                !elements.is_empty() && total.map_or(counts.fetched >= BACKFILL_PAGE, |t| next < t);
            ctx.store
                .call(move |s| s.advance_lead_backfill(id, next, counts))
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
            backfill.next_start = next;
            if !more {
                let at = ctx.clock.now();
                return ctx
                    .store
                    .call(move |s| s.finish_lead_backfill(id, None, at))
                    .await
                    .map_err(|e| ConnectorError::Failed(e.to_string()));
            }
        }
    }

    /// Makes sure LinkedIn notifies `self.webhook` of the ad account's leads, once per
    /// connector (so once per applied config): an existing subscription to that URL is kept,
    /// none is created twice; subscriptions of an earlier URL of ours (another
    /// `…/webhooks/linkedin`) are removed, so a changed `receiveUrl` moves it. A failure is
    /// logged (`subscription-error`) and tried again on the next run; receiving is unaffected.
    async fn ensure_subscription(&self, ctx: &SyncContext<'_>) -> Result<(), ConnectorError> {
        use std::sync::atomic::Ordering;
        if self.subscribed.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = async {
            let found = subscriptions(&self.client, &self.spec, &ctx.cancel).await?;
            let mut done = Vec::new();
            for (id, url) in &found {
                if url != &self.webhook && url.ends_with("/webhooks/linkedin") {
                    let path = format!("leadNotifications/{}", urlencode(id));
                    self.client
                        .call(reqwest::Method::DELETE, &path, None, &ctx.cancel)
                        .await?;
                    done.push(format!("removed the subscription to {url}"));
                }
            }
            if !found.iter().any(|(_, url)| url == &self.webhook) {
                let body = serde_json::json!({
                    "webhook": self.webhook,
                    "owner": {"sponsoredAccount": format!("urn:li:sponsoredAccount:{}", self.spec.ad_account_id)},
                    "leadType": "SPONSORED",
                });
                self.client
                    .call(reqwest::Method::POST, "leadNotifications", Some(&body), &ctx.cancel)
                    .await?;
                done.push(format!("subscribed {} to the ad account's lead notifications", self.webhook));
            }
            Ok::<_, api::ApiError>(done)
        }
        .await;
        let (event, messages) = match result {
            Ok(done) => {
                self.subscribed.store(true, Ordering::Release);
                ("subscribed", done)
            }
            Err(api::ApiError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => (
                "subscription-error",
                vec![format!("lead notification subscription: {e}")],
            ),
        };
        for message in messages {
            let (name, at) = (self.name.clone(), ctx.clock.now());
            ctx.store
                .call(move |s| s.log_lead_event(&name, event, &message, None, at))
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        }
        Ok(())
    }

    /// Logs each account whose grant LinkedIn refused (`reauth-needed`, LI-07/LI-08): it needs
    /// `switchboard oauth url LinkedInAccount/NAME` or a new `refreshToken`; the other listed
    /// accounts keep serving the integration.
    async fn report_refusals(&self, ctx: &SyncContext<'_>) -> Result<(), ConnectorError> {
        for (account, reason) in self.client.take_refusals() {
            let others = self.spec.accounts.iter().filter(|a| **a != account).count();
            let message = format!(
                "LinkedInAccount {account} needs consent again (LinkedIn refused its grant: {reason}); \
                 give it a new refreshToken or run `switchboard oauth url LinkedInAccount/{account}`{}",
                if others > 0 {
                    "; the integration's other accounts serve meanwhile"
                } else {
                    "; until then the integration creates no leads"
                }
            );
            tracing::warn!(integration = %self.name, %account, "LinkedIn grant refused: consent needed");
            let (name, at) = (self.name.clone(), ctx.clock.now());
            ctx.store
                .call(move |s| s.log_lead_event(&name, "reauth-needed", &message, None, at))
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        }
        Ok(())
    }

    /// A backfill that met `error`: a passing trouble (429 beyond the wait, 5xx, transport)
    /// is logged and fails the run, the backfill staying pending at its cursor for the next
    /// run; anything else (no token, a refusal) ends it with the error.
    async fn end_backfill(
        &self,
        ctx: &SyncContext<'_>,
        id: i64,
        message: String,
        error: &api::ApiError,
    ) -> Result<LeadBackfill, ConnectorError> {
        let at = ctx.clock.now();
        tracing::warn!(integration = %self.name, backfill = id, error = %message, "backfill interrupted");
        let passing = match error {
            api::ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            api::ApiError::Transport { .. } => true,
            api::ApiError::Token { .. } | api::ApiError::Cancelled => false,
        };
        if passing {
            let name = self.name.clone();
            let text = format!("backfill {id}: {message}; resumed on the next run");
            ctx.store
                .call(move |s| s.log_lead_event(&name, "fetch-error", &text, None, at))
                .await
                .map_err(|e| ConnectorError::Failed(e.to_string()))?;
            return Err(ConnectorError::Failed(format!("backfill {id}: {message}")));
        }
        ctx.store
            .call(move |s| s.finish_lead_backfill(id, Some(&message), at))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))
    }

    async fn run(&self, ctx: &SyncContext<'_>) -> Result<SyncReport, ConnectorError> {
        self.client.attach(ctx.metrics, ctx.clock, ctx.store);
        let name = self.name.clone();
        let pending = ctx
            .store
            .call(move |s| s.pending_linkedin_notifications(&name))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        self.ensure_subscription(ctx).await?;
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
        let name = self.name.clone();
        let backfills = ctx
            .store
            .call(move |s| s.pending_lead_backfills(&name))
            .await
            .map_err(|e| ConnectorError::Failed(e.to_string()))?;
        for backfill in backfills {
            let done = self.backfill(ctx, &mut forms, backfill).await?;
            report.items_in += u64::try_from(done.created).unwrap_or_default();
        }
        self.report_refusals(ctx).await?;
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

/// Reads a backfill bound: `YYYY-MM-DD` (midnight UTC; as an end, the end of that day) or an
/// RFC 3339 time.
fn backfill_bound(text: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Some(at.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let day = if end { day.succ_opt()? } else { day };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The period of a backfill (LI-06) from `since` and `until` [now], checked against `now`: no
/// further back than [`BACKFILL_DAYS`] (LinkedIn keeps lead data no longer), `since` before
/// `until`, nothing in the future. The error is a sentence for the user.
pub fn backfill_period(
    since: &str,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let since_at = backfill_bound(since, false)
        .ok_or_else(|| format!("since `{since}` is not a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    let until_at = match until {
        None => now,
        Some(text) => backfill_bound(text, true)
            .ok_or_else(|| {
                format!("until `{text}` is not a date (YYYY-MM-DD) or an RFC 3339 time")
            })?
            .min(now),
    };
    let oldest = now - chrono::Duration::days(BACKFILL_DAYS);
    if since_at < oldest {
        return Err(format!(
            "since {since} is more than {BACKFILL_DAYS} days ago: LinkedIn keeps lead data for \
             {BACKFILL_DAYS} days, so the earliest possible start is {}",
            oldest.format("%Y-%m-%d")
        ));
    }
    if since_at >= until_at {
        return Err(format!(
            "since {since} is not before until {} (the period is empty)",
            until_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok((since_at, until_at))
}

/// Why a backfill of `spec` (and `form`) cannot be run, if it cannot.
pub fn backfill_refusal(
    name: &str,
    spec: &LeadIntegrationSpec,
    form: Option<&str>,
) -> Option<String> {
    if !spec.active {
        return Some(format!(
            "LeadIntegration {name} is inactive (`active: false`): activate it to backfill its leads"
        ));
    }
    if let Some(form) = form.filter(|f| !form_active(spec, f)) {
        return Some(format!(
            "form {form} of LeadIntegration {name} is inactive: it creates no leads"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    // REQ: LI-06
    #[test]
    fn a_backfill_period_reaches_back_ninety_days_at_most() {
        let now = at("2026-12-07T12:00:00Z");
        assert_eq!(
            backfill_period("2026-11-01", Some("2026-11-30"), now).unwrap(),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            backfill_period("2026-12-01T08:00:00Z", None, now).unwrap(),
            (at("2026-12-01T08:00:00Z"), now)
        );
        let old = backfill_period("2026-08-01", None, now).unwrap_err();
        assert!(
            old.contains("90 days") && old.contains("2026-09-08"),
            "{old}"
        );
        assert!(backfill_period("2026-12-05", Some("2026-12-01"), now).is_err());
        assert!(backfill_period("yesterday", None, now).is_err());
    }
}
