//! Applying a valid config: record it in the store, resolve secrets, build the running set,
//! publish it to the HTTP view.
//!
//! [`Engine`] is the only writer of the running set. It is owned by one task (the reload
//! loop), so applies never interleave. A failed apply leaves the previous running set in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::types::{Secret, SecretError};
use crate::config::{ConfigSet, Kind, Object};
use crate::connector::{
    Built, EngineHandle, Registry, ResolvedSecrets, Syncability, resolve_secrets,
};
use crate::store::{ObjectChange, ObjectState, Store, StoreError};

use super::scheduler::{Job, Scheduler};

/// The store changes that make the applied state equal to `set`: an upsert per object and a
/// delete per applied object that left the config.
pub fn changes(set: &ConfigSet, applied: &[(String, String)]) -> Vec<ObjectChange> {
    let present: HashSet<(String, String)> = set
        .objects
        .iter()
        .map(|o| (o.kind().as_str().to_owned(), o.name.clone()))
        .collect();
    let mut changes: Vec<ObjectChange> = set
        .objects
        .iter()
        .map(|o| ObjectChange::Upsert {
            kind: o.kind().as_str().to_owned(),
            name: o.name.clone(),
            spec: o.spec.to_json(),
        })
        .collect();
    changes.extend(
        applied
            .iter()
            .filter(|key| !present.contains(*key))
            .map(|(kind, name)| ObjectChange::Delete {
                kind: kind.clone(),
                name: name.clone(),
            }),
    );
    changes
}

/// Records `set` in the store as the applied config, in one transaction: an upsert per
/// object and a delete per applied object that left it — unless its kind keeps it
/// ([`KindConnectors::keep_removed`](crate::connector::KindConnectors::keep_removed): a chat
/// channel with chats, CH-10), then it is upserted as the kind keeps it. Returns the kept ones
/// as `(kind, name, reason)`. `run` (through [`Engine::apply`]) and the in-process `sync`
/// both apply this way.
pub fn record(
    store: &mut Store,
    set: &ConfigSet,
    registry: &Registry,
    at: DateTime<Utc>,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let applied = store.applied_objects()?;
    let keys: Vec<(String, String)> = applied
        .iter()
        .map(|o| (o.kind.clone(), o.name.clone()))
        .collect();
    let mut kept = Vec::new();
    let mut recorded = Vec::new();
    for change in changes(set, &keys) {
        let ObjectChange::Delete { kind, name } = change else {
            recorded.push(change);
            continue;
        };
        let removed = applied.iter().find(|o| o.kind == kind && o.name == name);
        match removed
            .map(|o| registry.keep_removed(store, o))
            .transpose()?
        {
            Some(Some(keep)) => {
                kept.push((kind.clone(), name.clone(), keep.reason));
                recorded.push(ObjectChange::Upsert {
                    kind,
                    name,
                    spec: keep.spec,
                });
            }
            _ => recorded.push(ObjectChange::Delete { kind, name }),
        }
    }
    store.apply(&recorded, at)?;
    Ok(kept)
}

/// The writer of the running set.
pub struct Engine {
    registry: Registry,
    handle: EngineHandle,
    scheduler: Scheduler,
    clock: Clock,
    current: Option<Arc<ConfigSet>>,
}

impl Engine {
    /// An engine with nothing applied yet.
    pub fn new(
        registry: Registry,
        handle: EngineHandle,
        scheduler: Scheduler,
        clock: Clock,
    ) -> Engine {
        Engine {
            registry,
            handle,
            scheduler,
            clock,
            current: None,
        }
    }

    /// The last config applied.
    pub fn current(&self) -> Option<&Arc<ConfigSet>> {
        self.current.as_ref()
    }

    /// The handle HTTP reads.
    pub fn handle(&self) -> &EngineHandle {
        &self.handle
    }

    /// Applies `set`: one store transaction, then object states, then the running set.
    /// On a store error nothing of the running set changes.
    pub async fn apply(&mut self, set: ConfigSet) -> Result<(), StoreError> {
        let set = Arc::new(set);
        let store = self.handle.store().clone();
        let metrics = self.handle.metrics().clone();
        let at = self.clock.now();

        let (recording, registry) = (Arc::clone(&set), self.registry.clone());
        let kept = store
            .call(move |s| record(s, &recording, &registry, at))
            .await?;

        // Secrets are read from env and files: blocking work.
        let resolving = Arc::clone(&set);
        let resolved: Vec<Result<BTreeMap<String, Secret>, SecretError>> =
            tokio::task::spawn_blocking(move || {
                resolving.objects.iter().map(resolve_secrets).collect()
            })
            .await
            .expect("resolving secrets does not panic");

        let mut states: Vec<(String, String, ObjectState, Option<String>)> = Vec::new();
        let mut syncable = HashMap::new();
        let mut keep = HashSet::new();
        let mut per_kind: HashMap<Kind, std::time::Duration> = HashMap::new();
        let mut published = ResolvedSecrets::new();
        for (object, secrets) in set.objects.iter().zip(resolved) {
            let started = std::time::Instant::now();
            let kind = object.kind();
            let key = (kind, object.name.clone());
            let (kind_s, name) = (kind.as_str().to_owned(), object.name.clone());
            published.insert(
                key.clone(),
                secrets
                    .as_ref()
                    .map(Clone::clone)
                    .map_err(ToString::to_string),
            );
            match secrets {
                Err(e) => {
                    // The message names the reference, never the value.
                    tracing::error!(object = %object.id(), error = %e, "a secret could not be read");
                    let reason = e.to_string();
                    syncable.insert(key, Syncability::NotSyncable(reason.clone()));
                    states.push((kind_s, name, ObjectState::Error, Some(reason)));
                }
                Ok(secrets) => match self.registry.build(object, &set) {
                    Built::Passive => {
                        syncable.insert(
                            key,
                            Syncability::NotSyncable(format!(
                                "{kind} is configuration only; there is nothing to sync"
                            )),
                        );
                        states.push((kind_s, name, ObjectState::Ready, None));
                    }
                    Built::Pending(reason) => {
                        syncable.insert(key, Syncability::NotSyncable(reason.clone()));
                        states.push((kind_s, name, ObjectState::Pending, Some(reason)));
                    }
                    Built::Connector(connector) => {
                        let trigger = self.registry.trigger(object, &set);
                        let fingerprint = format!(
                            "{}|{}|{}",
                            crate::store::spec_hash(&object.spec.to_json()),
                            trigger.describe(),
                            self.registry.inputs(object, &set)
                        );
                        let wake = self.scheduler.upsert(
                            Job {
                                object: object.clone(),
                                connector,
                                secrets,
                                trigger,
                            },
                            fingerprint,
                        );
                        syncable.insert(key.clone(), Syncability::Syncable(wake));
                        keep.insert(key);
                    }
                },
            }
            *per_kind.entry(kind).or_default() += started.elapsed();
        }
        for (kind, took) in per_kind {
            metrics
                .reconcile_duration_seconds
                .with_label_values(&[kind.as_str()])
                .observe(took.as_secs_f64());
        }
        self.scheduler.retain(&keep);
        for (kind, name, reason) in kept {
            states.push((kind, name, ObjectState::Pending, Some(reason)));
        }

        store
            .call(move |s| {
                for (kind, name, state, reason) in &states {
                    s.set_state(kind, name, *state, reason.as_deref())?;
                }
                Ok(())
            })
            .await?;

        if let Some(previous) = &self.current {
            for o in &previous.objects {
                if set.object(o.kind(), &o.name).is_none() {
                    metrics.forget_object(o.kind().as_str(), &o.name);
                }
            }
        }
        super::refresh_objects_gauge(&store, &metrics).await;
        let (_, previous_secrets) = self.handle.applied();
        self.handle.publish(Arc::clone(&set), published, syncable);
        let previous = self.current.replace(set);
        if let Some(previous) = previous {
            self.retire_removed(&previous, &previous_secrets).await;
        }
        Ok(())
    }
}

impl Engine {
    /// Lets objects that left the config undo what they registered with their provider (a
    /// Telegram webhook, TG-02), through their kind's [`crate::connector::KindConnectors`].
    /// They get the secrets resolved when `previous` was applied (an object whose secrets
    /// could not be read then has nothing to undo). Bounded, so a slow provider cannot hold a
    /// reload up; the outcome is logged by the domain.
    async fn retire_removed(&self, previous: &ConfigSet, secrets: &ResolvedSecrets) {
        let current = self.current.as_ref().expect("retire runs after publish");
        let removed: Vec<&Object> = previous
            .objects
            .iter()
            .filter(|o| current.object(o.kind(), &o.name).is_none())
            .collect();
        if removed.is_empty() {
            return;
        }
        let all = async {
            for object in removed {
                if let Some(Ok(secrets)) = secrets.get(&(object.kind(), object.name.clone())) {
                    self.registry.retire(object, secrets, previous).await;
                }
            }
        };
        if tokio::time::timeout(RETIRE_TIMEOUT, all).await.is_err() {
            tracing::warn!(
                "removing the provider registrations of removed channels took too long; stopped"
            );
        }
    }
}

/// How long an apply waits for removed objects to clean up at their provider.
const RETIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

#[cfg(test)]
mod engine_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::connector::{Connector, SyncContext, SyncReport, SyncRequestError};
    use crate::store::{Store, StoreHandle};
    use crate::telemetry::Metrics;

    struct Counting(AtomicU32);

    impl Connector for Counting {
        fn sync<'a>(&'a self, _ctx: SyncContext<'a>) -> crate::connector::SyncFuture<'a> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(SyncReport::default()) })
        }
    }

    fn load(dir: &std::path::Path, roles: &[&str]) -> ConfigSet {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            std::fs::remove_file(entry.expect("entry").path()).expect("remove");
        }
        for role in roles {
            std::fs::write(
                dir.join(format!("{role}.yaml")),
                format!("apiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: {role}}}\nspec: {{title: T}}\n"),
            )
            .expect("write");
        }
        crate::config::load(&[dir.to_path_buf()])
            .into_result()
            .expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_adds_and_removes_scheduled_objects_and_their_metrics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counting = Arc::new(Counting(AtomicU32::new(0)));
        let mut registry = Registry::default();
        let shared = Arc::clone(&counting);
        // A test connector for Role, so pure bookkeeping kinds exercise the scheduler path.
        registry.register(Kind::Role, move |_: &Object, _: &ConfigSet| {
            Ok(shared.clone() as Arc<dyn Connector>)
        });
        let metrics = Metrics::new();
        let store = StoreHandle::new(Store::open_in_memory().expect("store"));
        let handle = EngineHandle::new(store.clone(), metrics.clone());
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let clock = Clock::tokio("2025-01-01T00:00:00Z".parse().expect("ts"));
        let scheduler = Scheduler::new(
            tracker.clone(),
            cancel.clone(),
            store.clone(),
            metrics.clone(),
            clock,
        );
        let mut engine = Engine::new(registry, handle.clone(), scheduler, clock);
        assert!(!handle.is_ready());

        engine
            .apply(load(dir.path(), &["one", "two"]))
            .await
            .expect("apply");
        assert!(handle.is_ready());
        handle.request_sync(Kind::Role, "two").expect("syncable");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        assert!(metrics.render().contains("name=\"two\""));

        // REQ: SPEC run (reload updates the running set; removed objects' series disappear)
        engine
            .apply(load(dir.path(), &["one"]))
            .await
            .expect("re-apply");
        assert_eq!(
            handle.request_sync(Kind::Role, "two"),
            Err(SyncRequestError::Unknown)
        );
        assert!(!metrics.render().contains("name=\"two\""));
        let statuses = store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(statuses.len(), 1);
        assert_eq!(engine.scheduler.scheduled().count(), 1);

        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
