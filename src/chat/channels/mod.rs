//! The channels chats arrive on. Each provider owns its wire format, its signature or token
//! check and its outbound call; the HTTP layer only routes requests to it.
//!
//! Only the `api` channel is built; telegram, facebookMessenger and whatsapp channels are
//! `pending` with a reason until theirs are (never a fake success).

pub mod api;

use std::sync::Arc;
use std::time::Duration;

use crate::config::kinds::{ChannelProvider, ChatChannelSpec};
use crate::config::{ConfigSet, KindSpec, Object};
use crate::engine::Connector;

/// How often a channel is reconciled on its own.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Builds a `ChatChannel`'s connector (its reconciler), or says why it is pending.
pub fn build(object: &Object, _set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
    let spec = ChatChannelSpec::from_spec(&object.spec)
        .ok_or_else(|| format!("{} is not a ChatChannel", object.id()))?;
    match spec.provider {
        ChannelProvider::Api => Ok(Arc::new(api::Reconciler)),
        other => Err(format!(
            "the {} channel provider is not built yet (issue: chat)",
            other.as_str()
        )),
    }
}
