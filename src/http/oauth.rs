//! `GET /oauth/{google|microsoft|linkedin}/callback`: where a provider's consent page sends the
//! browser back (EP-05, EP-06; a GoogleAccount's AS-04, a LinkedInAccount's LI-01).
//!
//! The handler verifies the signed `state` (which mailbox, not expired), checks that the
//! mailbox's provider uses this callback, exchanges the code through
//! [`crate::mail::consent::complete`] (which stores the tokens sealed), and asks the mailbox to
//! sync. A person reads the answer in a browser, so it is a short plain-text page (plain text,
//! with `nosniff`, so a provider's `error_description` echoed back cannot become markup); the
//! person's mistakes answer 400 with what to do next, ours answer 500 with details only in
//! the log. Neither ever carries a code, a token or a secret.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::config::Kind;
use crate::connector::SyncRequestError;
use crate::mail::consent::{self, Callback, ConsentError};
use crate::mail::oauth::{Sealer, http_client};
use crate::telemetry::logging::outside;

use super::AppState;

/// The most of a provider's `error` and `error_description` repeated, in characters.
const MAX_REASON: usize = 300;

/// The callback's query.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /oauth/google/callback`.
pub async fn google(state: State<AppState>, query: Query<CallbackQuery>) -> Response {
    callback(Callback::Google, state, query).await
}

/// `GET /oauth/linkedin/callback` (a LinkedInAccount's consent, LI-01).
pub async fn linkedin(state: State<AppState>, query: Query<CallbackQuery>) -> Response {
    callback(Callback::LinkedIn, state, query).await
}

/// `GET /oauth/microsoft/callback`.
pub async fn microsoft(state: State<AppState>, query: Query<CallbackQuery>) -> Response {
    callback(Callback::Microsoft, state, query).await
}

fn page(status: StatusCode, text: String) -> Response {
    (
        status,
        axum::Extension(super::error::PlainPage),
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn refused(error: ConsentError) -> Response {
    tracing::info!(%error, "an OAuth 2.0 consent was refused");
    page(StatusCode::BAD_REQUEST, format!("Switchboard: {error}\n"))
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "an OAuth 2.0 consent could not be completed");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Switchboard: internal error while completing the consent; see the daemon's log\n".into(),
    )
}

async fn callback(
    callback: Callback,
    State(app_state): State<AppState>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    if let Some(error) = query.error {
        let reason = match query.error_description {
            Some(d) => format!("{error} ({d})"),
            None => error,
        };
        // The provider's words, or anyone's who forged the link: escaped and cut before they
        // reach the log or the page.
        return refused(ConsentError::Denied(outside(&reason, MAX_REASON)));
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return refused(ConsentError::Denied(
            "the callback has no `code` and `state`; open the consent URL again".into(),
        ));
    };
    let store = app_state.engine.store();
    let sealer = match store.call(|s| Ok(Sealer::for_state(s.path()))).await {
        Ok(Ok(sealer)) => sealer,
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    };
    let subject = match consent::verify_state(&sealer, &state, chrono::Utc::now()) {
        Ok(m) => m,
        Err(e) => return refused(e),
    };
    let config = app_state.engine.config();
    // The subject is a mailbox's name, or `KIND/NAME` for a GoogleAccount or a
    // LinkedInAccount (see mail::consent).
    let (kind, mailbox) = match subject.split_once('/') {
        None => ("Mailbox", subject.clone()),
        Some(("GoogleAccount", name)) => ("GoogleAccount", name.to_owned()),
        Some(("LinkedInAccount", name)) => ("LinkedInAccount", name.to_owned()),
        Some(_) => return refused(ConsentError::BadState),
    };
    let target = match kind {
        "Mailbox" => crate::mail::consent_target(&config, &mailbox),
        "GoogleAccount" => crate::sync::tokens::consent_target(&config, &mailbox),
        _ => crate::leads::consent_target(&config, &mailbox),
    };
    let target = match target {
        Ok(t) => t,
        Err(reason) => return refused(ConsentError::Mailbox(reason)),
    };
    if target.callback != callback {
        let who = if kind == "Mailbox" {
            format!("mailbox {mailbox}")
        } else {
            format!("{kind} {mailbox}")
        };
        return refused(ConsentError::Mailbox(format!(
            "{who} completes its consent at /oauth/{}/callback, not /oauth/{}/callback",
            target.callback.as_str(),
            callback.as_str()
        )));
    }
    let now = chrono::Utc::now();
    match consent::complete(
        &http_client(),
        store,
        &sealer,
        &target.mailbox,
        &target.app,
        &code,
        &target.redirect_uri,
        now,
    )
    .await
    {
        Ok(granted) => {
            // A new grant: healthy again (BX-04), refreshes allowed.
            app_state.metrics.grants.granted(kind, &mailbox);
            let expires =
                now + chrono::Duration::seconds(granted.expires_in.unwrap_or(3600) as i64);
            crate::mail::oauth::set_expiry(&app_state.metrics, kind, &mailbox, expires);
        }
        Err(ConsentError::Store(e)) => return internal(e),
        Err(e) => return refused(e),
    }
    tracing::info!(kind, name = %mailbox, "OAuth 2.0 consent completed; tokens stored sealed");
    if kind == "GoogleAccount" {
        // The contact and calendar syncs over this account run now.
        let mut syncs = 0;
        for (sync_kind, name) in config
            .specs::<crate::config::kinds::ContactSyncSpec>()
            .filter(|(_, s)| s.account == mailbox)
            .map(|(o, _)| (Kind::ContactSync, o.name.clone()))
            .chain(
                config
                    .specs::<crate::config::kinds::CalendarSyncSpec>()
                    .filter(|(_, s)| s.account == mailbox)
                    .map(|(o, _)| (Kind::CalendarSync, o.name.clone())),
            )
        {
            syncs += 1;
            let _ = app_state.engine.request_sync(sync_kind, &name);
        }
        return page(
            StatusCode::OK,
            format!(
                "Switchboard: GoogleAccount {mailbox} is connected; it serves {syncs} contact or calendar sync(s). You can close this page.\n"
            ),
        );
    }
    if kind == "LinkedInAccount" {
        // The integrations this account serves run now (their pending notifications wait).
        let integrations: Vec<String> = config
            .specs::<crate::config::kinds::LeadIntegrationSpec>()
            .filter(|(_, i)| i.accounts.contains(&mailbox))
            .map(|(o, _)| o.name.clone())
            .collect();
        for name in &integrations {
            let _ = app_state.engine.request_sync(Kind::LeadIntegration, name);
        }
        return page(
            StatusCode::OK,
            format!(
                "Switchboard: LinkedInAccount {mailbox} is connected; it serves {} lead integration(s). You can close this page.\n",
                integrations.len()
            ),
        );
    }
    let next = match app_state.engine.request_sync(Kind::Mailbox, &mailbox) {
        Ok(()) => "It is syncing now.".to_owned(),
        Err(SyncRequestError::NotSyncable(reason)) => {
            format!("It does not sync yet: {reason}.")
        }
        Err(SyncRequestError::Unknown) => "It will sync once the daemon applies it.".to_owned(),
    };
    page(
        StatusCode::OK,
        format!("Switchboard: mailbox {mailbox} is connected. {next} You can close this page.\n"),
    )
}
