//! The scheduler: one task per connector object, run on its trigger, on request, and again
//! after a failure with jittered exponential backoff.
//!
//! Invariants: an object never has two runs at once (requests during a run coalesce into one
//! follow-up run, through a [`Notify`] permit; a replaced object's new task waits for the old
//! one to finish); every task hangs off the scheduler's [`TaskTracker`] and a child of its
//! [`CancellationToken`]; all waiting uses tokio's clock, so tests run under
//! `tokio::time::pause()`. The scheduler records runs (store, metrics) but never decides what
//! the running set is: the engine does, through [`Scheduler::upsert`] and
//! [`Scheduler::retain`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::types::Secret;
use crate::config::{Kind, Object};
use crate::store::{ObjectState, SyncOutcome};
use crate::telemetry::Metrics;

use crate::connector::{Connector, ConnectorError, SyncContext, Trigger, WatchContext};
use crate::store::StoreHandle;

/// The first retry delay after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Relative jitter applied to each retry delay (±20 %), so objects failing together spread out.
pub const BACKOFF_JITTER: f64 = 0.2;

/// The retry delay after `failures` consecutive failures (1-based), before jitter:
/// `BACKOFF_BASE · 2^(failures-1)`, capped at [`BACKOFF_MAX`].
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

fn jittered(delay: Duration) -> Duration {
    let factor = rand::rng().random_range((1.0 - BACKOFF_JITTER)..=(1.0 + BACKOFF_JITTER));
    delay.mul_f64(factor)
}

/// One connector object, ready to run.
pub struct Job {
    /// The object.
    pub object: Object,
    /// Its connector.
    pub connector: Arc<dyn Connector>,
    /// Its resolved secrets, by JSON pointer.
    pub secrets: BTreeMap<String, Secret>,
    /// When it runs on its own.
    pub trigger: Trigger,
}

struct ObjectTask {
    fingerprint: String,
    cancel: CancellationToken,
    wake: Arc<Notify>,
    handle: JoinHandle<()>,
}

/// Runs the connector objects of the running set.
pub struct Scheduler {
    tracker: TaskTracker,
    cancel: CancellationToken,
    store: StoreHandle,
    metrics: Metrics,
    clock: Clock,
    tasks: HashMap<(Kind, String), ObjectTask>,
}

impl Scheduler {
    /// A scheduler whose tasks live on `tracker` and stop when `cancel` fires.
    pub fn new(
        tracker: TaskTracker,
        cancel: CancellationToken,
        store: StoreHandle,
        metrics: Metrics,
        clock: Clock,
    ) -> Scheduler {
        Scheduler {
            tracker,
            cancel,
            store,
            metrics,
            clock,
            tasks: HashMap::new(),
        }
    }

    /// Starts `job`, or keeps its task when `fingerprint` (spec and trigger) is unchanged, or
    /// replaces it. Returns the handle that requests a run.
    pub fn upsert(&mut self, job: Job, fingerprint: String) -> Arc<Notify> {
        let key = (job.object.kind(), job.object.name.clone());
        if let Some(task) = self.tasks.get(&key)
            && task.fingerprint == fingerprint
            && !task.handle.is_finished()
        {
            return Arc::clone(&task.wake);
        }
        let previous = self.tasks.remove(&key).map(|old| {
            old.cancel.cancel();
            old.handle
        });
        let cancel = self.cancel.child_token();
        let wake = Arc::new(Notify::new());
        // A watch (IMAP IDLE) only requests runs, so it may overlap the replaced task's
        // last run; it shares the new task's token and tracker.
        if let Some(watch) = Arc::clone(&job.connector).watch(WatchContext {
            object: job.object.clone(),
            secrets: job.secrets.clone(),
            cancel: cancel.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock,
            request: Arc::clone(&wake),
        }) {
            self.tracker.spawn(watch);
        }
        let runner = Runner {
            job,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock,
            cancel: cancel.clone(),
            wake: Arc::clone(&wake),
        };
        let handle = self.tracker.spawn(runner.run(previous));
        self.tasks.insert(
            key,
            ObjectTask {
                fingerprint,
                cancel,
                wake: Arc::clone(&wake),
                handle,
            },
        );
        wake
    }

    /// Stops every task whose object is not in `keep`.
    pub fn retain(&mut self, keep: &HashSet<(Kind, String)>) {
        self.tasks.retain(|key, task| {
            let stays = keep.contains(key);
            if !stays {
                task.cancel.cancel();
            }
            stays
        });
    }

    /// The objects being scheduled.
    pub fn scheduled(&self) -> impl Iterator<Item = &(Kind, String)> {
        self.tasks.keys()
    }
}

/// How a run ended, for the next-run decision.
enum Ran {
    Ok,
    Failed,
    /// Failed with the provider's `Retry-After`: the next try waits exactly that long.
    Throttled(Duration),
    Cancelled,
}

struct Runner {
    job: Job,
    store: StoreHandle,
    metrics: Metrics,
    clock: Clock,
    cancel: CancellationToken,
    wake: Arc<Notify>,
}

impl Runner {
    async fn run(self, previous: Option<JoinHandle<()>>) {
        if let Some(previous) = previous {
            // The replaced task finishes its current run first: no overlap across a reload.
            let _ = previous.await;
        }
        let mut failures: u32 = 0;
        let mut due = self.job.trigger.first(&self.clock);
        loop {
            let deadline = due.map(|at| self.clock.instant_at(at));
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = sleep_until(deadline) => {}
            }
            match self.run_once().await {
                Ran::Cancelled => return,
                Ran::Ok => {
                    failures = 0;
                    due = self.job.trigger.next(&self.clock);
                }
                Ran::Throttled(wait) => {
                    // The provider said when: neither sooner (another 429) nor the
                    // exponential backoff's later guess. A manual-only object waits too.
                    failures = failures.saturating_add(1);
                    due = Some(
                        self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    );
                }
                Ran::Failed => {
                    failures = failures.saturating_add(1);
                    let scheduled = self.job.trigger.next(&self.clock);
                    due = match scheduled {
                        None => None,
                        Some(scheduled) => {
                            let delay = jittered(backoff_delay(failures));
                            let retry = self.clock.now()
                                + chrono::Duration::from_std(delay).unwrap_or_default();
                            Some(retry.min(scheduled))
                        }
                    };
                }
            }
        }
    }

    async fn run_once(&self) -> Ran {
        let object = &self.job.object;
        let kind = object.kind().as_str();
        let name = object.name.clone();
        let id = object.id();
        let started = self.clock.now();
        let (k, n) = (kind.to_owned(), name.clone());
        if let Err(e) = self
            .store
            .call(move |s| s.record_sync_start(&k, &n, started))
            .await
        {
            if e.is_disk_full() {
                // Logged once per episode, not once per object and run.
                crate::telemetry::disk::full(&e);
            } else {
                tracing::error!(object = %id, error = %e, "could not record the start of a sync");
            }
        }
        super::refresh_objects_gauge(&self.store, &self.metrics).await;
        tracing::debug!(object = %id, "sync started");

        let ctx = SyncContext {
            object,
            secrets: &self.job.secrets,
            cancel: self.cancel.clone(),
            store: &self.store,
            metrics: &self.metrics,
            clock: self.clock,
        };
        let result = self.job.connector.sync(ctx).await;
        let at = self.clock.now();
        let (k, n) = (kind.to_owned(), name.clone());
        let (ran, write) = match result {
            Ok(report) => {
                self.metrics
                    .sync_runs_total
                    .with_label_values(&[kind, &name, "success"])
                    .inc();
                self.metrics
                    .sync_last_success_timestamp_seconds
                    .with_label_values(&[kind, &name])
                    .set(at.timestamp_millis() as f64 / 1000.0);
                self.metrics
                    .sync_items_total
                    .with_label_values(&[kind, &name, "in"])
                    .inc_by(report.items_in);
                self.metrics
                    .sync_items_total
                    .with_label_values(&[kind, &name, "out"])
                    .inc_by(report.items_out);
                tracing::info!(object = %id, items_in = report.items_in, items_out = report.items_out, "sync succeeded");
                let outcome = SyncOutcome::Success {
                    items_in: report.items_in,
                    items_out: report.items_out,
                };
                (
                    Ran::Ok,
                    self.store
                        .call(move |s| s.record_sync_result(&k, &n, &outcome, at))
                        .await,
                )
            }
            Err(failure @ (ConnectorError::Failed(_) | ConnectorError::Throttled { .. })) => {
                self.metrics
                    .sync_runs_total
                    .with_label_values(&[kind, &name, "failure"])
                    .inc();
                let ran = match &failure {
                    ConnectorError::Throttled { retry_after, .. } => Ran::Throttled(*retry_after),
                    _ => Ran::Failed,
                };
                let error = match failure {
                    ConnectorError::Failed(error) => error,
                    other => other.to_string(),
                };
                tracing::warn!(object = %id, error = %error, "sync failed");
                let outcome = SyncOutcome::Failure { error };
                (
                    ran,
                    self.store
                        .call(move |s| s.record_sync_result(&k, &n, &outcome, at))
                        .await,
                )
            }
            Err(ConnectorError::Cancelled) => {
                tracing::info!(object = %id, "sync interrupted; it resumes from its checkpoint");
                (
                    Ran::Cancelled,
                    self.store
                        .call(move |s| {
                            s.set_state(
                                &k,
                                &n,
                                ObjectState::Pending,
                                Some("interrupted; resumes from its checkpoint on the next run"),
                            )
                        })
                        .await,
                )
            }
        };
        match write {
            Err(e) if e.is_disk_full() => crate::telemetry::disk::full(&e),
            Err(e) => {
                tracing::error!(object = %id, error = %e, "could not record the result of a sync");
            }
            Ok(()) => crate::telemetry::disk::writable(),
        }
        super::refresh_objects_gauge(&self.store, &self.metrics).await;
        ran
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::config::ConfigSet;
    use crate::connector::{SyncFuture, SyncReport};
    use crate::store::{ObjectChange, Store};

    /// A connector that takes `delay` (on tokio's clock) per run and returns scripted results
    /// (success when the script is empty), counting runs and overlap.
    struct Fake {
        delay: Duration,
        script: Mutex<VecDeque<Result<SyncReport, ConnectorError>>>,
        runs: AtomicU32,
        running: AtomicU32,
        max_running: AtomicU32,
    }

    impl Fake {
        fn new(delay: Duration, script: Vec<Result<SyncReport, ConnectorError>>) -> Arc<Fake> {
            Arc::new(Fake {
                delay,
                script: Mutex::new(script.into()),
                runs: AtomicU32::new(0),
                running: AtomicU32::new(0),
                max_running: AtomicU32::new(0),
            })
        }
        fn runs(&self) -> u32 {
            self.runs.load(Ordering::SeqCst)
        }
    }

    impl Connector for Fake {
        fn sync<'a>(&'a self, ctx: SyncContext<'a>) -> SyncFuture<'a> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                self.runs.fetch_add(1, Ordering::SeqCst);
                let result = tokio::select! {
                    () = ctx.cancel.cancelled() => Err(ConnectorError::Cancelled),
                    () = tokio::time::sleep(self.delay) => self
                        .script
                        .lock()
                        .expect("script lock")
                        .pop_front()
                        .unwrap_or(Ok(SyncReport { items_in: 3, items_out: 1 })),
                };
                self.running.fetch_sub(1, Ordering::SeqCst);
                result
            })
        }
    }

    /// A one-object config (a Role stands in for any connector kind: the trigger is given).
    fn object() -> (tempfile::TempDir, Object) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("role.yaml"),
            "apiVersion: switchboard/v1\nkind: Role\nmetadata:\n  name: probe\nspec:\n  title: Probe\n",
        )
        .expect("write manifest");
        let set: ConfigSet = crate::config::load(&[dir.path().to_path_buf()])
            .into_result()
            .expect("valid config");
        let object = set.objects[0].clone();
        (dir, object)
    }

    struct Rig {
        _dir: tempfile::TempDir,
        scheduler: Scheduler,
        store: StoreHandle,
        metrics: Metrics,
        cancel: CancellationToken,
        tracker: TaskTracker,
        object: Object,
    }

    fn start() -> chrono::DateTime<chrono::Utc> {
        "2025-01-01T00:00:00Z".parse().expect("timestamp")
    }

    async fn rig() -> Rig {
        let (dir, object) = object();
        let mut store = Store::open_in_memory().expect("store");
        store
            .apply(
                &[ObjectChange::Upsert {
                    kind: "Role".into(),
                    name: "probe".into(),
                    spec: object.spec.to_json(),
                }],
                start(),
            )
            .expect("apply");
        let store = StoreHandle::new(store);
        let metrics = Metrics::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let scheduler = Scheduler::new(
            tracker.clone(),
            cancel.clone(),
            store.clone(),
            metrics.clone(),
            Clock::tokio(start()),
        );
        Rig {
            _dir: dir,
            scheduler,
            store,
            metrics,
            cancel,
            tracker,
            object,
        }
    }

    impl Rig {
        fn schedule(&mut self, fake: &Arc<Fake>, trigger: Trigger) -> Arc<Notify> {
            let connector: Arc<dyn Connector> = fake.clone();
            self.scheduler.upsert(
                Job {
                    object: self.object.clone(),
                    connector,
                    secrets: BTreeMap::new(),
                    trigger,
                },
                "v1".into(),
            )
        }
        fn runs_total(&self, result: &str) -> u64 {
            self.metrics
                .sync_runs_total
                .with_label_values(&["Role", "probe", result])
                .get()
        }
        async fn stop(self) {
            self.cancel.cancel();
            self.tracker.close();
            self.tracker.wait().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_on_its_cron_schedule() {
        // REQ: SPEC ContactSync/CalendarSync schedule (crontab)
        let mut rig = rig().await;
        let fake = Fake::new(Duration::from_secs(1), vec![]);
        rig.schedule(
            &fake,
            Trigger::Cron(Box::new("*/5 * * * *".parse().expect("cron"))),
        );
        tokio::time::sleep(Duration::from_secs(4 * 60 + 50)).await;
        assert_eq!(fake.runs(), 0, "nothing before the first slot");
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(fake.runs(), 1, "one run at 00:05");
        tokio::time::sleep(Duration::from_secs(5 * 60)).await;
        assert_eq!(fake.runs(), 2, "one more at 00:10");
        assert_eq!(rig.runs_total("success"), 2);
        let status = rig.store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(status[0].state, ObjectState::Ready);
        assert_eq!(
            (status[0].runs_ok, status[0].items_in, status[0].items_out),
            (2, 6, 2)
        );
        assert!(rig.metrics.render().contains(
            "switchboard_sync_items_total{direction=\"in\",kind=\"Role\",name=\"probe\"} 6"
        ));
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn requests_during_a_slow_run_coalesce_into_one_follow_up() {
        let mut rig = rig().await;
        let fake = Fake::new(Duration::from_secs(60), vec![]);
        let wake = rig.schedule(&fake, Trigger::Manual);
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(fake.runs(), 1);
        let status = rig.store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(status[0].state, ObjectState::Syncing);
        for _ in 0..3 {
            wake.notify_one();
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(
            fake.runs(),
            2,
            "three requests during a run give one follow-up"
        );
        assert_eq!(
            fake.max_running.load(Ordering::SeqCst),
            1,
            "never two runs at once"
        );
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_retried_after_jittered_backoff() {
        let mut rig = rig().await;
        let fake = Fake::new(
            Duration::ZERO,
            vec![Err(ConnectorError::Failed("remote said no".into()))],
        );
        let wake = rig.schedule(
            &fake,
            Trigger::Cron(Box::new("@daily".parse().expect("cron"))),
        );
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fake.runs(), 1);
        let status = rig.store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(status[0].state, ObjectState::Error);
        assert_eq!(status[0].last_error.as_deref(), Some("remote said no"));
        // 10 s ± 20 %: not before 8 s, surely by 12 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(fake.runs(), 1, "no retry before the backoff");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(fake.runs(), 2, "retried after the backoff");
        assert_eq!(
            (rig.runs_total("failure"), rig.runs_total("success")),
            (1, 1)
        );
        let status = rig.store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(
            (status[0].state, status[0].runs_failed),
            (ObjectState::Ready, 1)
        );
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_run_is_retried_after_the_providers_retry_after_not_sooner() {
        let mut rig = rig().await;
        let fake = Fake::new(
            Duration::ZERO,
            vec![Err(ConnectorError::Throttled {
                message: "People API: 429".into(),
                retry_after: Duration::from_secs(120),
            })],
        );
        let wake = rig.schedule(&fake, Trigger::Interval(Duration::from_secs(30)));
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fake.runs(), 1);
        let status = rig.store.call(|s| s.statuses()).await.expect("statuses");
        assert!(
            status[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("throttled: retried in 120s")),
            "{:?}",
            status[0].last_error
        );
        // Neither the 30 s interval nor the 10 s backoff: the provider's 120 s.
        tokio::time::sleep(Duration::from_secs(110)).await;
        assert_eq!(fake.runs(), 1, "no retry before Retry-After");
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(fake.runs(), 2, "retried once Retry-After passed");
        rig.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_interrupts_an_in_flight_run_without_counting_a_failure() {
        let mut rig = rig().await;
        let fake = Fake::new(Duration::from_secs(3600), vec![]);
        rig.schedule(&fake, Trigger::Interval(Duration::from_secs(300)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fake.runs(), 1, "an interval object runs at start");
        let store = rig.store.clone();
        let metrics = rig.metrics.clone();
        rig.stop().await;
        let status = store.call(|s| s.statuses()).await.expect("statuses");
        assert_eq!(status[0].state, ObjectState::Pending);
        assert_eq!(status[0].runs_failed, 0);
        assert_eq!(
            metrics
                .sync_runs_total
                .with_label_values(&["Role", "probe", "failure"])
                .get(),
            0
        );
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_fifteen_minutes() {
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(2), Duration::from_secs(20));
        assert_eq!(backoff_delay(4), Duration::from_secs(80));
        assert_eq!(backoff_delay(7), Duration::from_secs(640));
        assert_eq!(backoff_delay(8), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }
}
