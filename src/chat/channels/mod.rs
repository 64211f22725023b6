//! The channels chats arrive on. Each provider owns its wire format, its signature or token
//! check and its outbound call; the HTTP layer only routes requests to it.
//!
//! Each provider module has the same parts: its inbound check and parser (called by
//! `http::webhooks`), `deliver` (called by the outbox) and a `Reconciler` (a connector the
//! scheduler runs on apply and every [`RECONCILE_INTERVAL`]) that reads the provider's live
//! state and repairs drift. A provider not built yet is `pending` with a reason (never a fake
//! success).

pub mod api;
pub mod messenger;
pub mod telegram;
pub mod twilio;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::kinds::{ChannelProvider, ChatChannelSpec};
use crate::config::types::Secret;
use crate::config::{ConfigSet, KindSpec, Object};
use crate::connector::{Connector, Kept, KindConnectors, RetireFuture, Trigger};
use crate::store::{AppliedObject, Store, StoreError};

/// How often a channel is reconciled on its own.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Builds a `ChatChannel`'s connector (its reconciler), or says why it is pending.
pub fn build(object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
    let spec = ChatChannelSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a ChatChannel", object.id()))?;
    match spec.provider {
        ChannelProvider::Api => {
            // A valid choice (the site reads answers through the operator API), said once per
            // apply rather than as a failed delivery per message.
            if spec.callback_url.is_none() {
                tracing::info!(
                    channel = %object.name,
                    "the api channel has no callbackUrl: operator messages stay in the chat's history, where the site reads them"
                );
            }
            Ok(Arc::new(api::Reconciler))
        }
        ChannelProvider::Telegram => Ok(Arc::new(telegram::build(object, set)?)),
        ChannelProvider::Whatsapp => Ok(Arc::new(twilio::build(object, set)?)),
        ChannelProvider::FacebookMessenger => Ok(Arc::new(messenger::build(object, set)?)),
    }
}

/// What the registry knows of `ChatChannel` objects: each provider's reconciler ([`build`]),
/// run every [`RECONCILE_INTERVAL`], and [`retire`] when a channel leaves the config.
pub struct ChannelConnectors;

impl KindConnectors for ChannelConnectors {
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        build(object, set)
    }

    fn trigger(&self, _object: &Object, _set: &ConfigSet) -> Trigger {
        Trigger::Interval(RECONCILE_INTERVAL)
    }

    /// CH-10: a removed channel that has chats is kept with `active: false` (its history
    /// stays readable; its webhooks answer 403 channel-inactive).
    fn keep_removed(
        &self,
        store: &Store,
        removed: &AppliedObject,
    ) -> Result<Option<Kept>, StoreError> {
        if !store.chat_channels_with_chats()?.contains(&removed.name) {
            return Ok(None);
        }
        Ok(Some(Kept {
            spec: crate::plan::deactivated(&removed.spec),
            reason: "deactivated: its manifest was removed and it has chats; its history is kept"
                .into(),
        }))
    }

    fn retire<'a>(
        &'a self,
        object: &'a Object,
        secrets: &'a BTreeMap<String, Secret>,
        previous: &'a ConfigSet,
    ) -> RetireFuture<'a> {
        Box::pin(retire(object, secrets, previous))
    }
}

/// The public base URL providers deliver webhooks to: `Settings.siteUrl`, or without a
/// `Settings` object `http://{listen}` (TG-02: derived when unset).
pub fn site_url(set: &ConfigSet) -> url::Url {
    set.settings().map_or_else(
        || {
            url::Url::parse(&format!("http://{}", set.listen()))
                .expect("a socket address makes a URL")
        },
        |s| s.site_url.url().clone(),
    )
}

/// Undoes what a channel registered with its provider when its manifest leaves the config
/// (a Telegram webhook). Best effort and bounded: the outcome is logged, never an apply error.
pub async fn retire(object: &Object, secrets: &BTreeMap<String, Secret>, previous: &ConfigSet) {
    let Some(spec) = ChatChannelSpec::from_spec(&object.spec) else {
        return;
    };
    if spec.provider == ChannelProvider::Telegram {
        telegram::retire(object, secrets, previous).await;
    }
}
