//! Every Prometheus metric of Switchboard, defined once.
//!
//! Names follow the Prometheus conventions the SPEC asks for: prefix `switchboard_`, base units
//! (`_seconds`), `_total` on counters, a HELP text on each. The output must stay clean under
//! `promtool check metrics`; a unit test runs it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::proto::{LabelPair, MetricType};
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Buckets for `switchboard_reconcile_duration_seconds`: applying one kind takes milliseconds
/// for pure bookkeeping and up to tens of seconds when connectors are (re)started.
const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets for `switchboard_chat_assignment_seconds`: from an instant hand-off to a chat waiting
/// far beyond the default `chat.acceptTimeout` (5m).
const CHAT_ASSIGNMENT_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The registry and a typed handle for each metric Switchboard exports.
///
/// Handles are cheap to clone (they share their values), so connectors may keep their own
/// copies; cloning `Metrics` clones the handles, not the values.
///
/// # Label values
/// Label values come only from config names (`metadata.name`, kinds, fixed enumerations such as
/// `result`, `direction`, `state`, and route templates) — never from user data: no message text,
/// e-mail addresses, contact names, raw request paths, tokens or error strings. This keeps the
/// series count bounded by the size of the config and keeps secrets and personal data out of
/// the metrics. When an object leaves the config, call [`Metrics::forget_object`] so its series
/// disappear.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `switchboard_config_last_reload_successful`: 1 when the last (re)load applied, 0 when it
    /// was rejected.
    pub config_last_reload_successful: IntGauge,
    /// `switchboard_config_last_reload_success_timestamp_seconds`: Unix time of the last
    /// successful (re)load.
    pub config_last_reload_success_timestamp_seconds: Gauge,
    /// `switchboard_config_reloads_total{result}`, result = `success` | `failure`.
    pub config_reloads_total: IntCounterVec,
    /// `switchboard_objects{kind,state}`, state = `ready` | `syncing` | `error`; maintained with
    /// [`Metrics::set_objects`].
    pub objects: IntGaugeVec,
    /// `switchboard_reconcile_duration_seconds{kind}`: time to apply one kind's desired state.
    pub reconcile_duration_seconds: HistogramVec,
    /// `switchboard_sync_runs_total{kind,name,result}`, result = `success` | `failure`.
    pub sync_runs_total: IntCounterVec,
    /// `switchboard_sync_last_success_timestamp_seconds{kind,name}`: Unix time.
    pub sync_last_success_timestamp_seconds: GaugeVec,
    /// `switchboard_sync_items_total{kind,name,direction}`, direction = `in` | `out`.
    pub sync_items_total: IntCounterVec,
    /// `switchboard_sync_conflicts_total{kind,name}`: records changed on both sides since the
    /// last sync, resolved by the object's `conflict` policy (CS-04, BX-02).
    pub sync_conflicts_total: IntCounterVec,
    /// `switchboard_webhook_requests_total{provider,outcome}`; provider is the route's provider
    /// (`telegram`, `messenger`, `twilio`, `linkedin`, `api`), outcome a fixed word such as
    /// `accepted`, `duplicate`, `unauthorized`, `invalid`, `error`.
    pub webhook_requests_total: IntCounterVec,
    /// `switchboard_chat_messages_total{channel,direction}`, direction = `in` | `out`.
    pub chat_messages_total: IntCounterVec,
    /// `switchboard_chats{queue,state}`, state = `offered` | `active` | `completed`.
    pub chats: IntGaugeVec,
    /// `switchboard_chat_assignment_seconds{queue}`: time from a chat's arrival to its
    /// assignment to an operator.
    pub chat_assignment_seconds: HistogramVec,
    /// `switchboard_operators{queue,status}`, status = `active` | `inactive`.
    pub operators: IntGaugeVec,
    /// `switchboard_mail_messages_total{mailbox,direction}`; mailbox is the `Mailbox` object's
    /// name (never its address), direction = `in` | `out`.
    pub mail_messages_total: IntCounterVec,
    /// `switchboard_leads_created_total{integration}`.
    pub leads_created_total: IntCounterVec,
    /// `switchboard_http_requests_total{route,status}`; route is the matched route template
    /// (`/webhooks/telegram/{channel}`), never the raw path, status the numeric HTTP status.
    pub http_requests_total: IntCounterVec,
    /// `switchboard_http_connections`: connections the listener holds now (at most
    /// `Settings.http.maxConnections`).
    pub http_connections: IntGauge,
    /// `switchboard_http_connections_refused_total`: connections closed as soon as accepted
    /// because `Settings.http.maxConnections` were open.
    pub http_connections_refused_total: IntCounter,
    /// `switchboard_build_info{version}`, always 1.
    pub build_info: IntGaugeVec,
    /// `switchboard_oauth_token_expiry_timestamp_seconds{kind,name}`: Unix time at which the
    /// current access token of an OAuth grant (Mailbox, GoogleAccount, LinkedInAccount) expires.
    pub oauth_token_expiry_timestamp_seconds: GaugeVec,
    /// `switchboard_oauth_refresh_failures_total{kind,name}`: refreshes of a grant's access
    /// token that failed (refused or unreachable token endpoint).
    pub oauth_refresh_failures_total: IntCounterVec,
    /// Which grants need consent again (not a metric; shared the same way).
    pub grants: std::sync::Arc<super::grants::Grants>,
    /// Every family registered above, with its type and label names, in registration order.
    families: Vec<Family>,
}

/// One registered metric family: what a query may name, whether or not it has a series yet.
///
/// A vector gets its first series on first use (a `Mailbox` that never synced has no
/// `sync_runs_total` series), so `/metrics` alone does not show every name a dashboard or an
/// alert rule may query; [`Metrics::families`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The family's name, e.g. `switchboard_chat_assignment_seconds`.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`, as in the `# TYPE` line.
    pub kind: &'static str,
    /// The label names of its series (a histogram's `le` not included).
    pub labels: Vec<String>,
}

impl Family {
    /// The sample names this family exposes: the name itself for a counter or gauge;
    /// `_bucket`, `_sum` and `_count` for a histogram (a summary also has the bare name).
    pub fn sample_names(&self) -> Vec<String> {
        let suffixed = |suffixes: &[&str]| {
            suffixes
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect()
        };
        match self.kind {
            "histogram" => suffixed(&["_bucket", "_sum", "_count"]),
            "summary" => suffixed(&["", "_sum", "_count"]),
            _ => vec![self.name.clone()],
        }
    }
}

/// The registry being filled by [`Metrics::new`], and the families registered so far.
struct Registrar<'a> {
    registry: &'a Registry,
    families: RefCell<Vec<Family>>,
}

impl Metrics {
    /// The `Content-Type` of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str = prometheus::TEXT_FORMAT;

    /// Creates a fresh registry with every metric registered and `build_info` set.
    ///
    /// Panics only on a programmer error in the definitions below (an invalid or duplicate name).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &Registrar {
            registry: &registry,
            families: RefCell::new(Vec::new()),
        };
        register(r, Ok(super::disk::GAUGE.clone()));

        let metrics = Metrics {
            config_last_reload_successful: register(
                r,
                IntGauge::new(
                    "switchboard_config_last_reload_successful",
                    "Whether the last configuration (re)load was applied (1) or rejected (0).",
                ),
            ),
            config_last_reload_success_timestamp_seconds: register(
                r,
                Gauge::new(
                    "switchboard_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration (re)load.",
                ),
            ),
            config_reloads_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_config_reloads_total",
                        "Configuration (re)loads, by result (success, failure).",
                    ),
                    &["result"],
                ),
            ),
            objects: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_objects",
                        "Configured objects, by kind and state (ready, syncing, error).",
                    ),
                    &["kind", "state"],
                ),
            ),
            reconcile_duration_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "switchboard_reconcile_duration_seconds",
                        "Time to reconcile the live state of one kind against the config.",
                    )
                    .buckets(RECONCILE_BUCKETS.to_vec()),
                    &["kind"],
                ),
            ),
            sync_runs_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_sync_runs_total",
                        "Sync runs per object, by result (success, failure).",
                    ),
                    &["kind", "name", "result"],
                ),
            ),
            sync_last_success_timestamp_seconds: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "switchboard_sync_last_success_timestamp_seconds",
                        "Unix time of the last successful sync run per object.",
                    ),
                    &["kind", "name"],
                ),
            ),
            sync_items_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_sync_items_total",
                        "Items moved by sync runs per object, by direction (in, out).",
                    ),
                    &["kind", "name", "direction"],
                ),
            ),
            sync_conflicts_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_sync_conflicts_total",
                        "Records changed on both sides since the last sync, resolved by policy.",
                    ),
                    &["kind", "name"],
                ),
            ),
            webhook_requests_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_webhook_requests_total",
                        "Webhook deliveries received, by provider and outcome.",
                    ),
                    &["provider", "outcome"],
                ),
            ),
            chat_messages_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_chat_messages_total",
                        "Chat messages per channel, by direction (in, out).",
                    ),
                    &["channel", "direction"],
                ),
            ),
            chats: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_chats",
                        "Chats per queue, by state (offered, active, completed).",
                    ),
                    &["queue", "state"],
                ),
            ),
            chat_assignment_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "switchboard_chat_assignment_seconds",
                        "Time from a chat's arrival to its assignment to an operator.",
                    )
                    .buckets(CHAT_ASSIGNMENT_BUCKETS.to_vec()),
                    &["queue"],
                ),
            ),
            operators: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_operators",
                        "Operators per queue, by status (active, inactive).",
                    ),
                    &["queue", "status"],
                ),
            ),
            mail_messages_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_mail_messages_total",
                        "E-mail messages per mailbox, by direction (in, out).",
                    ),
                    &["mailbox", "direction"],
                ),
            ),
            leads_created_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_leads_created_total",
                        "Leads created per lead integration.",
                    ),
                    &["integration"],
                ),
            ),
            http_requests_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_http_requests_total",
                        "HTTP requests served, by matched route template and status code.",
                    ),
                    &["route", "status"],
                ),
            ),
            http_connections: register(
                r,
                IntGauge::new(
                    "switchboard_http_connections",
                    "HTTP connections open now (at most Settings.http.maxConnections).",
                ),
            ),
            http_connections_refused_total: register(
                r,
                IntCounter::new(
                    "switchboard_http_connections_refused_total",
                    "HTTP connections closed at once because Settings.http.maxConnections were open.",
                ),
            ),
            build_info: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_build_info",
                        "Build information; the value is always 1.",
                    ),
                    &["version"],
                ),
            ),
            oauth_token_expiry_timestamp_seconds: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "switchboard_oauth_token_expiry_timestamp_seconds",
                        "Unix time at which the current access token of an OAuth grant expires.",
                    ),
                    &["kind", "name"],
                ),
            ),
            oauth_refresh_failures_total: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "switchboard_oauth_refresh_failures_total",
                        "Failed refreshes of an OAuth grant's access token.",
                    ),
                    &["kind", "name"],
                ),
            ),
            grants: std::sync::Arc::default(),
            families: r.families.take(),
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics
    }

    /// The registry every metric is registered in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every registered family, series or not: what the dashboard and the alert rules in
    /// `deploy/` may query (`tests/monitoring.rs` checks them against this list).
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Every sample name the registry can expose, histograms' `_bucket`/`_sum`/`_count`
    /// included.
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.families
            .iter()
            .flat_map(Family::sample_names)
            .collect()
    }

    /// Every metric with at least one series, in the classic Prometheus text format
    /// ([`Metrics::CONTENT_TYPE`]). A vector with no series yet is left out, as usual.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("the text encoder only fails on malformed families, which we never build")
    }

    /// Removes every series that belongs to the object `kind/name`, so that a deleted object's
    /// series disappear from the next scrape instead of freezing at their last value.
    ///
    /// Covers the `sync_*` metrics (`{kind,name}`) and the kind's own metrics: a `ChatChannel`'s
    /// `chat_messages_total`, a `ChatQueue`'s `chats`, `chat_assignment_seconds` and
    /// `operators`, a `Mailbox`'s `mail_messages_total`, a `LeadIntegration`'s
    /// `leads_created_total`. Unknown objects are a no-op.
    pub fn forget_object(&self, kind: &str, name: &str) {
        let this_object = |labels: &[LabelPair]| {
            label(labels, "kind") == Some(kind) && label(labels, "name") == Some(name)
        };
        remove_where(&self.sync_runs_total, this_object);
        remove_where(&self.sync_last_success_timestamp_seconds, this_object);
        remove_where(&self.sync_items_total, this_object);
        remove_where(&self.sync_conflicts_total, this_object);
        remove_where(&self.oauth_token_expiry_timestamp_seconds, this_object);
        remove_where(&self.oauth_refresh_failures_total, this_object);
        self.grants.forget(kind, name);

        let named =
            |key: &'static str| move |labels: &[LabelPair]| label(labels, key) == Some(name);
        match kind {
            "ChatChannel" => remove_where(&self.chat_messages_total, named("channel")),
            "ChatQueue" => {
                remove_where(&self.chats, named("queue"));
                remove_where(&self.chat_assignment_seconds, named("queue"));
                remove_where(&self.operators, named("queue"));
            }
            "Mailbox" => remove_where(&self.mail_messages_total, named("mailbox")),
            "LeadIntegration" => remove_where(&self.leads_created_total, named("integration")),
            _ => {}
        }
    }

    /// Replaces the whole `switchboard_objects{kind,state}` gauge with `counts`
    /// (`(kind, state, count)`): pairs not listed disappear, listed ones are set (the last
    /// entry wins if a pair repeats). Pairs present before and after are updated in place, so a
    /// concurrent scrape never sees them missing.
    pub fn set_objects(&self, counts: &[(String, String, i64)]) {
        let wanted: HashSet<(&str, &str)> = counts
            .iter()
            .map(|(kind, state, _)| (kind.as_str(), state.as_str()))
            .collect();
        remove_where(&self.objects, |labels| {
            let pair = (
                label(labels, "kind").unwrap_or_default(),
                label(labels, "state").unwrap_or_default(),
            );
            !wanted.contains(&pair)
        });
        for (kind, state, count) in counts {
            self.objects.with_label_values(&[kind, state]).set(*count);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("families", &self.registry.gather().len())
            .finish_non_exhaustive()
    }
}

/// Registers `collector` (a definition above, hence valid and unique), notes its families and
/// hands it back.
fn register<C: Collector + Clone + 'static>(
    r: &Registrar<'_>,
    collector: prometheus::Result<C>,
) -> C {
    let collector = collector.expect("metric definitions in telemetry::metrics are valid");
    r.registry
        .register(Box::new(collector.clone()))
        .expect("metric names in telemetry::metrics are unique");
    let mut families = r.families.borrow_mut();
    for (family, desc) in collector.collect().iter().zip(collector.desc()) {
        let mut labels: Vec<String> = desc
            .const_label_pairs
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        labels.extend(desc.variable_labels.iter().cloned());
        families.push(Family {
            name: family.name().to_owned(),
            kind: match family.get_field_type() {
                MetricType::COUNTER => "counter",
                MetricType::GAUGE => "gauge",
                MetricType::HISTOGRAM => "histogram",
                MetricType::SUMMARY => "summary",
                MetricType::UNTYPED => "untyped",
            },
            labels,
        });
    }
    collector
}

fn label<'a>(labels: &'a [LabelPair], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|pair| pair.name() == name)
        .map(|pair| pair.value())
}

/// Removes each series of `vec` whose labels satisfy `doomed`.
fn remove_where<T: MetricVecBuilder>(vec: &MetricVec<T>, doomed: impl Fn(&[LabelPair]) -> bool) {
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            if doomed(labels) {
                let by_name: HashMap<&str, &str> =
                    labels.iter().map(|p| (p.name(), p.value())).collect();
                // Err only means a concurrent caller removed it first: the goal is reached.
                let _ = vec.remove(&by_name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Every family name [`Metrics`] defines, as rendered.
    const ALL_NAMES: &[&str] = &[
        "switchboard_config_last_reload_successful",
        "switchboard_config_last_reload_success_timestamp_seconds",
        "switchboard_config_reloads_total",
        "switchboard_objects",
        "switchboard_reconcile_duration_seconds",
        "switchboard_sync_runs_total",
        "switchboard_sync_last_success_timestamp_seconds",
        "switchboard_sync_items_total",
        "switchboard_sync_conflicts_total",
        "switchboard_webhook_requests_total",
        "switchboard_chat_messages_total",
        "switchboard_chats",
        "switchboard_chat_assignment_seconds",
        "switchboard_operators",
        "switchboard_mail_messages_total",
        "switchboard_leads_created_total",
        "switchboard_http_requests_total",
        "switchboard_http_connections",
        "switchboard_http_connections_refused_total",
        "switchboard_build_info",
        "switchboard_oauth_token_expiry_timestamp_seconds",
        "switchboard_oauth_refresh_failures_total",
        "switchboard_state_disk_full",
    ];

    /// One sample in every metric, with realistic config-name label values.
    fn touch_everything(m: &Metrics) {
        m.config_last_reload_successful.set(1);
        m.config_last_reload_success_timestamp_seconds
            .set(1_767_225_600.0);
        m.config_reloads_total.with_label_values(&["success"]).inc();
        m.config_reloads_total.with_label_values(&["failure"]).inc();
        m.set_objects(&[
            ("ChatQueue".into(), "ready".into(), 2),
            ("Mailbox".into(), "error".into(), 1),
        ]);
        m.reconcile_duration_seconds
            .with_label_values(&["ChatQueue"])
            .observe(0.042);
        m.sync_runs_total
            .with_label_values(&["ContactSync", "sales-google", "success"])
            .inc();
        m.sync_last_success_timestamp_seconds
            .with_label_values(&["ContactSync", "sales-google"])
            .set(1_767_225_600.0);
        m.sync_items_total
            .with_label_values(&["ContactSync", "sales-google", "in"])
            .inc_by(12);
        m.sync_conflicts_total
            .with_label_values(&["ContactSync", "sales-dav"])
            .inc();
        m.webhook_requests_total
            .with_label_values(&["telegram", "accepted"])
            .inc();
        m.chat_messages_total
            .with_label_values(&["support-telegram", "in"])
            .inc();
        m.chats.with_label_values(&["support", "offered"]).set(3);
        m.chat_assignment_seconds
            .with_label_values(&["support"])
            .observe(17.5);
        m.operators.with_label_values(&["support", "active"]).set(4);
        m.mail_messages_total
            .with_label_values(&["sales-inbox", "out"])
            .inc();
        m.leads_created_total
            .with_label_values(&["linkedin-ads"])
            .inc();
        m.http_requests_total
            .with_label_values(&["/webhooks/telegram/{channel}", "200"])
            .inc();
        m.http_connections.set(2);
        m.http_connections_refused_total.inc();
        m.oauth_token_expiry_timestamp_seconds
            .with_label_values(&["Mailbox", "sales-inbox"])
            .set(1_767_229_200.0);
        m.oauth_refresh_failures_total
            .with_label_values(&["LinkedInAccount", "alice"])
            .inc();
    }

    #[test]
    fn render_has_help_and_type_for_every_metric() {
        let m = Metrics::new();
        touch_everything(&m);
        let text = m.render();
        for name in ALL_NAMES {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no HELP line for {name} in:\n{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "no TYPE line for {name} in:\n{text}"
            );
        }
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(
            families,
            ALL_NAMES.len(),
            "a metric is missing from ALL_NAMES"
        );
    }

    #[test]
    fn families_list_every_metric_before_its_first_use() {
        let m = Metrics::new();
        let names: Vec<&str> = m.families().iter().map(|f| f.name.as_str()).collect();
        let mut expected = ALL_NAMES.to_vec();
        let mut got = names.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);

        // Types and labels as rendered once every metric has a series.
        touch_everything(&m);
        let text = m.render();
        for family in m.families() {
            let type_line = format!("# TYPE {} {}", family.name, family.kind);
            assert!(
                text.lines().any(|l| l == type_line),
                "{type_line:?} not in:\n{text}"
            );
        }
        let runs = m
            .families()
            .iter()
            .find(|f| f.name == "switchboard_sync_runs_total")
            .expect("sync_runs_total registered");
        assert_eq!(runs.labels, ["kind", "name", "result"]);
        let sample_names = m.sample_names();
        assert!(sample_names.contains("switchboard_chat_assignment_seconds_bucket"));
        assert!(sample_names.contains("switchboard_chat_assignment_seconds_count"));
        assert!(!sample_names.contains("switchboard_chat_assignment_seconds"));
        assert!(sample_names.contains("switchboard_state_disk_full"));
    }

    #[test]
    fn build_info_is_one_with_the_crate_version() {
        let text = Metrics::new().render();
        let line = format!(
            "switchboard_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }

    #[test]
    fn forget_object_drops_only_that_objects_series() {
        let m = Metrics::new();
        touch_everything(&m);
        m.sync_runs_total
            .with_label_values(&["ContactSync", "other", "success"])
            .inc();
        m.chats.with_label_values(&["billing", "active"]).set(1);

        m.forget_object("ContactSync", "sales-google");
        m.forget_object("ChatQueue", "support");
        m.forget_object("ChatChannel", "support-telegram");
        m.forget_object("Mailbox", "sales-inbox");
        m.forget_object("LeadIntegration", "linkedin-ads");
        m.forget_object("ChatQueue", "never-existed");

        let text = m.render();
        for gone in [
            "sales-google",
            "\"support\"",
            "support-telegram",
            "sales-inbox",
            "linkedin-ads",
        ] {
            assert!(!text.contains(gone), "{gone} still rendered:\n{text}");
        }
        assert!(text.contains(
            r#"switchboard_sync_runs_total{kind="ContactSync",name="other",result="success"} 1"#
        ));
        assert!(text.contains(r#"switchboard_chats{queue="billing",state="active"} 1"#));
    }

    #[test]
    fn set_objects_replaces_the_previous_counts() {
        let m = Metrics::new();
        m.set_objects(&[
            ("ChatQueue".into(), "ready".into(), 2),
            ("Mailbox".into(), "error".into(), 1),
        ]);
        m.set_objects(&[
            ("ChatQueue".into(), "ready".into(), 3),
            ("Mailbox".into(), "ready".into(), 1),
        ]);
        let text = m.render();
        assert!(text.contains(r#"switchboard_objects{kind="ChatQueue",state="ready"} 3"#));
        assert!(text.contains(r#"switchboard_objects{kind="Mailbox",state="ready"} 1"#));
        assert!(
            !text.contains(r#"state="error""#),
            "stale pair kept:\n{text}"
        );

        m.set_objects(&[]);
        assert!(!m.render().contains("switchboard_objects"));
    }

    // REQ: SPEC metrics (promtool check metrics clean)
    #[test]
    fn promtool_accepts_metrics() {
        let m = Metrics::new();
        touch_everything(&m);
        let mut file = tempfile::NamedTempFile::new().expect("create temp file");
        file.write_all(m.render().as_bytes())
            .expect("write metrics to temp file");
        let input = std::fs::File::open(file.path()).expect("reopen temp file");

        let output = match Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::from(input))
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`promtool` is not installed, so the metrics format cannot be checked. \
                 Install it (Debian: `apt-get install prometheus`, which provides \
                 /usr/bin/promtool) and run the test again."
            ),
            Err(e) => panic!("could not run `promtool check metrics`: {e}"),
        };
        assert!(
            output.status.success(),
            "`promtool check metrics` rejected the output ({}):\nstdout:\n{}\nstderr:\n{}\nmetrics:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            m.render(),
        );
        // promtool reports lint problems on stdout/stderr; clean means nothing at all.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.trim().is_empty(), "promtool complained:\n{said}");
    }
}
