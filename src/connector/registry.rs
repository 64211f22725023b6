//! The registry: kind → [`KindConnectors`], the per-kind part of the contract. The engine asks
//! it what an object is ([`Registry::build`]), when it runs on its own ([`Registry::trigger`])
//! and what to undo when it leaves the config ([`Registry::retire`]); it never matches on kinds
//! a domain owns. The composition root (`daemon`) registers the domains; adding a connector
//! family is one implementation plus one `register` line there.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use std::collections::BTreeMap;

use crate::clock::Clock;
use crate::config::types::{Schedule, Secret};
use crate::config::{ConfigSet, Kind, Object};
use crate::store::{AppliedObject, Store, StoreError};

use super::Connector;

/// When an object runs on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// On a cron schedule (`ContactSync`, `CalendarSync`).
    Cron(Box<Schedule>),
    /// At start, then this long after each run ends (`Mailbox`, `Settings.mail.syncInterval`;
    /// a channel's reconcile interval).
    Interval(Duration),
    /// Only on request. A failed manual run is not retried on its own.
    Manual,
}

impl Trigger {
    /// On `schedule` when there is one, otherwise only on request.
    pub fn scheduled(schedule: Option<&Schedule>) -> Trigger {
        schedule.map_or(Trigger::Manual, |s| Trigger::Cron(Box::new(s.clone())))
    }

    /// When the first run is due.
    pub fn first(&self, clock: &Clock) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Interval(_) => Some(clock.now()),
            _ => self.next(clock),
        }
    }

    /// When the next run is due after one that just ended.
    pub fn next(&self, clock: &Clock) -> Option<DateTime<Utc>> {
        let now = clock.now();
        match self {
            Trigger::Cron(schedule) => schedule.next_after(now),
            Trigger::Interval(every) => chrono::Duration::from_std(*every).ok().map(|d| now + d),
            Trigger::Manual => None,
        }
    }

    /// A stable description, part of an object's fingerprint.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Cron(s) => format!("cron {s}"),
            Trigger::Interval(d) => format!("every {}ms", d.as_millis()),
            Trigger::Manual => "manual".into(),
        }
    }
}

/// A removed object its kind keeps in the store instead of deleting it.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The spec to keep (deactivated).
    pub spec: serde_json::Value,
    /// Its status reason (`pending`), saying why it is still there.
    pub reason: String,
}

/// The boxed future of [`KindConnectors::retire`].
pub type RetireFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What a domain knows about the objects of one kind it runs.
///
/// A plain closure `Fn(&Object, &ConfigSet) -> Result<Arc<dyn Connector>, String>` is one too
/// (run on request only, nothing to retire): tests register fake connectors that way.
pub trait KindConnectors: Send + Sync {
    /// Builds the connector of `object`, or says why it is pending (`Err(reason)`).
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String>;

    /// When `object` runs on its own; only on request unless the kind says otherwise.
    fn trigger(&self, object: &Object, set: &ConfigSet) -> Trigger {
        let _ = (object, set);
        Trigger::Manual
    }

    /// A digest of what `object`'s connector takes from *other* objects (a LeadIntegration's
    /// LinkedInAccounts and their tokens): when it changes, the connector is rebuilt even
    /// though `object`'s own manifest did not change. Never a secret in clear (hash it).
    /// Nothing by default.
    fn inputs(&self, object: &Object, set: &ConfigSet) -> String {
        let _ = (object, set);
        String::new()
    }

    /// Whether `removed`, an applied object of this kind whose manifest left the config, stays
    /// in the store (deactivated, [`Kept`]) instead of being deleted — a chat channel that
    /// has chats keeps its history readable (CH-10). Called in the apply, on the store it
    /// records into. Deleted unless the kind says otherwise.
    fn keep_removed(
        &self,
        store: &Store,
        removed: &AppliedObject,
    ) -> Result<Option<Kept>, StoreError> {
        let _ = (store, removed);
        Ok(None)
    }

    /// Undoes what `object` registered with its provider (a Telegram webhook) now that its
    /// manifest left the config; `secrets` are its secrets as resolved when `previous`, the
    /// config it was part of, was applied. Best effort: the outcome is logged, never an apply
    /// error. The engine bounds how long it may take.
    fn retire<'a>(
        &'a self,
        object: &'a Object,
        secrets: &'a BTreeMap<String, Secret>,
        previous: &'a ConfigSet,
    ) -> RetireFuture<'a> {
        let _ = (object, secrets, previous);
        Box::pin(async {})
    }
}

impl<F> KindConnectors for F
where
    F: Fn(&Object, &ConfigSet) -> Result<Arc<dyn Connector>, String> + Send + Sync,
{
    fn build(&self, object: &Object, set: &ConfigSet) -> Result<Arc<dyn Connector>, String> {
        self(object, set)
    }
}

/// What the registry made of an object.
pub enum Built {
    /// A connector the scheduler runs.
    Connector(Arc<dyn Connector>),
    /// Pure configuration: ready once applied, nothing to run.
    Passive,
    /// A kind that needs a connector that does not exist yet (or could not be built).
    Pending(String),
}

/// Kind → its [`KindConnectors`]. Kinds not registered are passive or pending.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<Kind, Arc<dyn KindConnectors>>,
}

/// Whether objects of `kind` are pure configuration.
pub fn is_passive(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Settings
            | Kind::User
            | Kind::Role
            | Kind::ChatQueue
            | Kind::ChatAction
            | Kind::QuickReply
            | Kind::MailProvider
            | Kind::MeetingService
            | Kind::GoogleAccount
            | Kind::LinkedInAccount
            | Kind::DavAccount
    )
}

/// The issue that will build the connector of a kind, for the pending reason.
fn pending_issue(kind: Kind) -> &'static str {
    match kind {
        Kind::ChatChannel => "chat",
        Kind::Mailbox => "mail",
        Kind::ContactSync | Kind::CalendarSync => "sync",
        Kind::LeadIntegration => "leads",
        _ => "engine",
    }
}

impl Registry {
    /// Registers (or replaces) what runs objects of `kind`; tests use this for a fake
    /// connector.
    pub fn register(&mut self, kind: Kind, connectors: impl KindConnectors + 'static) {
        self.kinds.insert(kind, Arc::new(connectors));
    }

    /// Builds `object`'s part of the running set.
    pub fn build(&self, object: &Object, set: &ConfigSet) -> Built {
        let kind = object.kind();
        if let Some(connectors) = self.kinds.get(&kind) {
            return match connectors.build(object, set) {
                Ok(connector) => Built::Connector(connector),
                Err(reason) => Built::Pending(reason),
            };
        }
        if is_passive(kind) {
            Built::Passive
        } else {
            Built::Pending(format!(
                "the {kind} connector is not built yet (issue: {})",
                pending_issue(kind)
            ))
        }
    }

    /// When `object` runs on its own.
    pub fn trigger(&self, object: &Object, set: &ConfigSet) -> Trigger {
        self.kinds
            .get(&object.kind())
            .map_or(Trigger::Manual, |k| k.trigger(object, set))
    }

    /// What `object`'s connector takes from other objects ([`KindConnectors::inputs`]).
    pub fn inputs(&self, object: &Object, set: &ConfigSet) -> String {
        self.kinds
            .get(&object.kind())
            .map_or_else(String::new, |k| k.inputs(object, set))
    }

    /// Whether `removed` stays in the store, deactivated, now that its manifest left.
    pub fn keep_removed(
        &self,
        store: &Store,
        removed: &AppliedObject,
    ) -> Result<Option<Kept>, StoreError> {
        match Kind::parse(&removed.kind).and_then(|k| self.kinds.get(&k)) {
            Some(connectors) => connectors.keep_removed(store, removed),
            None => Ok(None),
        }
    }

    /// Lets `object`, which left the config, undo what it registered with its provider.
    pub async fn retire(
        &self,
        object: &Object,
        secrets: &BTreeMap<String, Secret>,
        previous: &ConfigSet,
    ) {
        if let Some(connectors) = self.kinds.get(&object.kind()) {
            connectors.retire(object, secrets, previous).await;
        }
    }
}
