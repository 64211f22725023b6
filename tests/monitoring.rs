//! What an operator watches, shipped in `deploy/`: the Prometheus alert rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), every alert is tested
//! firing and silent and documented in the README, the Grafana dashboard's queries are valid
//! PromQL, and every metric a rule or a panel queries is one the daemon exports — read from a
//! running daemon's `/metrics` and from the registry's list of families (a family with no series
//! yet is missing from `/metrics`) — or one listed in [`PLANNED`] with its reason.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Daemon, base_config, free_port};
use switchboard::telemetry::Metrics;

/// Metrics the rules or the dashboard query before the daemon exports them, with their label
/// names and why. The check fails when one of them is exported (move it out of this list) or
/// no longer queried (drop it), so this list cannot hide a typo for long.
const PLANNED: &[(&str, &[&str], &str)] = &[
    (
        "switchboard_cluster_nodes",
        &[],
        "SPEC metrics and issue 17 (several nodes on one PostgreSQL): not built yet",
    ),
    (
        "switchboard_objects_owned",
        &[],
        "issue 17's per-node gauge of the connector objects a node runs: not built yet",
    ),
];

/// Series Prometheus makes itself for every target, with their labels.
const FROM_PROMETHEUS: &[(&str, &[&str])] = &[("up", &[])];

/// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules_file() -> PathBuf {
    repo().join("deploy/prometheus/switchboard.rules.yml")
}

fn rules_test_file() -> PathBuf {
    repo().join("deploy/prometheus/switchboard.rules.test.yml")
}

fn dashboard_file() -> PathBuf {
    repo().join("deploy/grafana/switchboard.json")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = switchboard::config::yaml::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    docs[0].root.as_ref().expect("a document").to_json()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dashboard_file()).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Runs `promtool ARGS` and fails the test, with its output, unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is installed (Debian package `prometheus`; tests/run.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{said}");
    said
}

/// Every alerting rule of the rules file.
fn alerts() -> Vec<Value> {
    let rules = yaml(&rules_file());
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

// REQ: BX-05 (issue 17 item 6 only, not the PostgreSQL store: alert rules checked with
// `promtool check rules` and unit-tested with `promtool test rules`)
// REQ: BX-04 (the alert on a grant needing consent, written against its planned metrics)
#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let said = promtool(&["check", "rules", rules_file().to_str().unwrap()]);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool(&["test", "rules", rules_test_file().to_str().unwrap()]);
    assert!(said.contains("SUCCESS"), "{said}");
}

// REQ: BX-05 (issue 17 item 6: each alert with a duration, a severity and what to do)
#[test]
fn every_alert_has_a_duration_a_severity_advice_and_a_unit_test_each_way() {
    let tests = yaml(&rules_test_file());
    // alertname -> (tested firing, tested silent)
    let mut tested: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for case in tests["tests"].as_array().expect("tests") {
        for check in case["alert_rule_test"].as_array().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            let fires = check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            let entry = tested.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let section = readme
        .split("### Alerts and dashboard")
        .nth(1)
        .expect("README has an \"Alerts and dashboard\" section");
    let section = section.split("\n## ").next().unwrap_or(section);

    let alerts = alerts();
    assert!(alerts.len() >= 13, "{} alerts", alerts.len());
    for alert in &alerts {
        let name = alert["alert"].as_str().expect("alert name");
        assert!(alert["for"].is_string(), "{name} has no `for:`");
        assert!(
            matches!(
                alert["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ),
            "{name} has no severity warning|critical"
        );
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|t| t.len() > 20),
                "{name} has no {annotation}"
            );
        }
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("README: \"Alerts and dashboard\""),
            "{name}'s description does not point to the README section"
        );
        assert_eq!(
            tested.get(name),
            Some(&(true, true)),
            "{name} needs a unit test where it fires and one where it does not"
        );
        assert!(
            section.contains(&format!("`{name}`")),
            "README's \"Alerts and dashboard\" does not explain {name}"
        );
    }
}

/// Every PromQL expression of the dashboard (panels, nested rows included), with where it is.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a target has an expr");
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A Grafana expression with its variables replaced, as Prometheus would receive it.
fn as_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$instance", ".*")
}

// REQ: BX-05 (issue 17 item 6: a Grafana dashboard JSON)
#[test]
fn the_dashboard_is_grafana_json_with_valid_promql() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "switchboard");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 25, "{} queries", exprs.len());
    for (place, expr) in &exprs {
        assert!(
            expr.contains("instance=~\"$instance\""),
            "{place} does not follow the instance picker: {expr}"
        );
    }
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Chat messages by channel",
        "Waiting and active chats by queue",
        "Webhook answers by code",
        "Mail sync runs by result",
        "Mail sync errors",
        "Sync items by direction",
        "Sync conflicts",
        "Leads created by integration",
        "HTTP connections",
        "State disk full",
        "Config reloads",
    ] {
        assert!(
            titles.contains(&wanted),
            "no panel {wanted:?} in {titles:?}"
        );
    }

    // promtool parses each query as a recording rule's expression.
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&as_promql(expr)).unwrap()
        ));
    }
    let path = dir.path().join("dashboard.rules.yml");
    std::fs::write(&path, &file).unwrap();
    let said = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(
        said.contains(&format!("{} rules found", exprs.len())),
        "{said}"
    );
}

/// A series selector found in a PromQL expression: the metric and its matchers' label names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// The series selectors of `expr`, by a small PromQL scanner: identifiers that are not
/// functions, keywords, label lists of `by`/`without`/`on`/`ignoring`/`group_*`, durations, or
/// Grafana variables.
fn selectors(expr: &str) -> Vec<Selector> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "Inf",
        "NaN",
        // Aggregations, whose `by (...)` may come before their `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            if chars[j] == '\\' {
                j += 1;
            }
            j += 1;
        }
        j + 1
    };
    let ident_at = |i: usize| {
        let mut j = i;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == ':')
        {
            j += 1;
        }
        (chars[i..j].iter().collect::<String>(), j)
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '[' {
            // A range or subquery duration.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            // A Grafana variable.
            let (_, j) = ident_at(i + 1);
            i = j.max(i + 1);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // A number or a duration (`5m`, `1e3`).
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let (word, j) = ident_at(i);
            let next = skip_space(j);
            if LABEL_LISTS.contains(&word.as_str()) && chars.get(next) == Some(&'(') {
                // A list of label names.
                i = next;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            } else if KEYWORDS.contains(&word.as_str()) || chars.get(next) == Some(&'(') {
                // A keyword or a function (an aggregation's `(` follows its name).
                i = j;
            } else {
                let mut labels = Vec::new();
                i = j;
                if chars.get(next) == Some(&'{') {
                    i = next + 1;
                    loop {
                        i = skip_space(i);
                        match chars.get(i) {
                            None => break,
                            Some('}') => {
                                i += 1;
                                break;
                            }
                            Some(',') => i += 1,
                            Some('"' | '\'' | '`') => i = skip_string(i),
                            Some(ch) if ch.is_alphabetic() || *ch == '_' => {
                                let (label, j) = ident_at(i);
                                labels.push(label);
                                i = j;
                            }
                            Some(_) => i += 1, // = != =~ !~
                        }
                    }
                }
                out.push(Selector {
                    metric: word,
                    labels,
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// What may be queried: sample name -> label names.
fn queryable(metrics: &Metrics) -> BTreeMap<String, BTreeSet<String>> {
    let mut names = BTreeMap::new();
    let targets = TARGET_LABELS.iter().map(|l| l.to_string());
    for family in metrics.families() {
        for sample in family.sample_names() {
            let mut labels: BTreeSet<String> = family.labels.iter().cloned().collect();
            labels.extend(targets.clone());
            if sample.ends_with("_bucket") && family.kind == "histogram" {
                labels.insert("le".into());
            }
            names.insert(sample, labels);
        }
    }
    for (name, labels) in PLANNED
        .iter()
        .map(|(n, l, _)| (n, l))
        .chain(FROM_PROMETHEUS.iter().map(|(n, l)| (n, l)))
    {
        let mut set: BTreeSet<String> = labels.iter().map(|l| l.to_string()).collect();
        set.extend(targets.clone());
        names.insert(name.to_string(), set);
    }
    names
}

/// The problems of `expr` against `known`: unknown metrics, unknown label names.
fn problems(place: &str, expr: &str, known: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    let found = selectors(expr);
    if found.is_empty() {
        out.push(format!("{place}: no metric found in {expr}"));
    }
    for s in found {
        match known.get(&s.metric) {
            None => out.push(format!(
                "{place}: `{}` is neither exported by the daemon nor planned",
                s.metric
            )),
            Some(labels) => {
                for label in s.labels.iter().filter(|l| !labels.contains(*l)) {
                    out.push(format!(
                        "{place}: `{}` has no label `{label}` (it has {labels:?})",
                        s.metric
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_scanner_finds_selectors_and_a_typo_is_reported() {
    let expr = r#"sum by (queue, le) (rate(switchboard_chat_assignment_seconds_bucket{instance=~"$instance",queue!="x"}[$__rate_interval])) > 300 unless on (instance) up{job="switchboard"} == 0 and time() - switchboard_state_disk_full offset 5m > 1e3"#;
    assert_eq!(
        selectors(expr),
        [
            Selector {
                metric: "switchboard_chat_assignment_seconds_bucket".into(),
                labels: vec!["instance".into(), "queue".into()],
            },
            Selector {
                metric: "up".into(),
                labels: vec!["job".into()],
            },
            Selector {
                metric: "switchboard_state_disk_full".into(),
                labels: vec![],
            },
        ]
    );
    let known = queryable(&Metrics::new());
    assert!(
        problems("ok", expr, &known).is_empty(),
        "{:?}",
        problems("ok", expr, &known)
    );
    let typo = problems("typo", "rate(switchboard_chat_mesages_total[5m])", &known);
    assert_eq!(typo.len(), 1, "{typo:?}");
    let bad_label = problems(
        "label",
        r#"switchboard_sync_runs_total{outcome="failure"}"#,
        &known,
    );
    assert_eq!(bad_label.len(), 1, "{bad_label:?}");
    assert!(bad_label[0].contains("no label `outcome`"), "{bad_label:?}");
}

// REQ: BX-05 (issue 17 item 6: every query names a metric the daemon exports)
#[tokio::test(flavor = "multi_thread")]
async fn every_metric_in_the_rules_and_the_dashboard_is_exported_or_planned() {
    let registry = Metrics::new();
    let registered: BTreeSet<String> = registry.families().iter().map(|f| f.name.clone()).collect();

    // The registry's list is the daemon's: every family a running daemon shows is in it.
    let port = free_port();
    let mut daemon = Daemon::start(port, &base_config(port), &[("SB_TEST_SECRET", "x")]);
    daemon.wait_ready().await;
    daemon.get("/api/v1/objects", None).await;
    let served = daemon.metrics().await;
    let served_families: BTreeSet<String> = served
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        served_families.len() >= 5,
        "the daemon served too little:\n{served}"
    );
    let unlisted: Vec<_> = served_families.difference(&registered).collect();
    assert!(
        unlisted.is_empty(),
        "the daemon serves families Metrics::families() does not list: {unlisted:?}"
    );
    daemon.signal("TERM");
    daemon.wait_exit(std::time::Duration::from_secs(10));

    let known = queryable(&registry);
    let mut queried = Vec::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap().to_owned();
        queried.push((
            format!("alert {name}"),
            alert["expr"].as_str().unwrap().to_owned(),
        ));
    }
    let dashboard = dashboard();
    queried.extend(dashboard_exprs(&dashboard));
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(definition) = variable["definition"].as_str() {
            // label_values(metric, label)
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .expect("variables are label_values(metric, label)");
            let (metric, label) = inner.split_once(',').expect("metric, label");
            queried.push((
                format!("variable {}", variable["name"]),
                format!("{}{{{}=\"\"}}", metric.trim(), label.trim()),
            ));
        }
    }

    let mut wrong = Vec::new();
    for (place, expr) in &queried {
        wrong.extend(problems(place, expr, &known));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A planned metric that is exported now, or no longer queried, leaves the list.
    let used: BTreeSet<String> = queried
        .iter()
        .flat_map(|(_, e)| selectors(e))
        .map(|s| s.metric)
        .collect();
    for (name, _, why) in PLANNED {
        assert!(
            !registry.sample_names().contains(*name),
            "{name} is exported now: remove it from PLANNED ({why})"
        );
        assert!(
            used.contains(*name),
            "{name} is planned but nothing queries it"
        );
    }
}
