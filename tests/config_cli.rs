//! The config model through the real `switchboard` binary: the shipped examples and presets
//! validate, the committed schemas are fresh, the meeting masks recognise the links they should,
//! and every class of broken manifest gets a compiler-style message (snapshot-tested) and exit 1.
//!
//! Each case writes its manifests into a temp dir and runs `switchboard validate -c cfg` with the
//! temp dir as the working directory, so file names in the output are relative (`cfg/a.yaml`) and
//! the snapshots hold no temp paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use switchboard::config::kinds::MeetingServiceSpec;
use switchboard::config::{self, Kind};

/// What one run of the binary produced.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `switchboard ARGS` in `cwd` with a clean environment for the config flags.
fn switchboard(cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_STATE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the switchboard binary");
    Output {
        code: out.status.code().expect("switchboard exits with a code"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Writes `files` (relative to `cfg/`) into a fresh temp dir and runs `validate -c cfg` there,
/// plus `extra` arguments.
fn validate_with(files: &[(&str, &str)], extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("create temp dir");
    for (name, text) in files {
        let path = dir.path().join("cfg").join(name);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create cfg dir");
        fs::write(&path, text).expect("write manifest");
    }
    let mut args = vec!["validate", "-c", "cfg"];
    args.extend_from_slice(extra);
    switchboard(dir.path(), &args)
}

fn validate(files: &[(&str, &str)]) -> Output {
    validate_with(files, &[])
}

/// Validates a broken set: exit 1, nothing on stdout, and the rendered diagnostics on stderr.
fn invalid(files: &[(&str, &str)]) -> String {
    let out = validate(files);
    assert_eq!(
        out.code, 1,
        "expected exit 1 for an invalid config: {out:#?}"
    );
    assert_eq!(out.stdout, "", "text diagnostics go to stderr: {out:#?}");
    assert!(
        out.stderr.contains("the configuration is not valid"),
        "{}",
        out.stderr
    );
    out.stderr
}

/// Validates a valid set: exit 0 and the `ok:` line.
fn valid(files: &[(&str, &str)]) -> String {
    let out = validate(files);
    assert_eq!(out.code, 0, "expected a valid config: {}", out.stderr);
    assert!(out.stdout.starts_with("ok: "), "{out:#?}");
    out.stdout
}

/// Every manifest file (`*.yaml`/`*.yml`) under `dir`, recursively.
fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            manifests(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn shipped_manifests() -> Vec<PathBuf> {
    let mut files = Vec::new();
    manifests(&repo().join("examples"), &mut files);
    manifests(&repo().join("config.d"), &mut files);
    files.sort();
    assert!(!files.is_empty());
    files
}

// ---------------------------------------------------------------------------------------------
// Shipped configuration
// ---------------------------------------------------------------------------------------------

// REQ: SPEC repository-layout (examples validate)
#[test]
fn every_example_validates_with_the_shipped_presets() {
    for example in ["quickstart", "contact-center", "sales-team"] {
        let example_dir = repo().join("examples").join(example);
        let presets = repo().join("config.d");
        let out = switchboard(
            repo(),
            &[
                "validate",
                "-c",
                presets.to_str().expect("UTF-8 path"),
                "-c",
                example_dir.to_str().expect("UTF-8 path"),
            ],
        );
        assert_eq!(
            out.code, 0,
            "examples/{example} does not validate:\n{}",
            out.stderr
        );
        assert!(out.stdout.starts_with("ok: "), "{}", out.stdout);
    }
}

// REQ: SPEC manifests (yaml-language-server schema line)
#[test]
fn every_shipped_manifest_names_an_existing_schema() {
    const PREFIX: &str = "# yaml-language-server: $schema=";
    for file in shipped_manifests() {
        let text = fs::read_to_string(&file).expect("read manifest");
        let first = text.lines().next().unwrap_or_default();
        let rel = first.strip_prefix(PREFIX).unwrap_or_else(|| {
            panic!(
                "{} does not start with `{PREFIX}<path>`; first line: {first:?}",
                file.display()
            )
        });
        let rel = rel.trim();
        assert!(
            !rel.starts_with('/') && !rel.contains("://"),
            "{}: the schema path must be relative to the file, found {rel}",
            file.display()
        );
        let target = file.parent().expect("parent").join(rel);
        let target = target
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: schema {rel} does not resolve: {e}", file.display()));
        let schemas = repo().join("schemas").canonicalize().expect("schemas/");
        assert!(
            target.starts_with(&schemas) && target.is_file(),
            "{}: schema {rel} is not a file under schemas/",
            file.display()
        );
    }
}

// REQ: SPEC repository-layout (schemas/ generated and committed; a test fails when stale)
#[test]
fn committed_schemas_are_fresh() {
    let out_dir = tempfile::tempdir().expect("create temp dir");
    let out = switchboard(out_dir.path(), &["schema", "--out", "generated"]);
    assert_eq!(out.code, 0, "schema failed: {}", out.stderr);
    let read_all = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| {
                let path = e.expect("dir entry").path();
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (name, fs::read(&path).expect("read schema"))
            })
            .collect()
    };
    let generated = read_all(&out_dir.path().join("generated"));
    let committed = read_all(&repo().join("schemas"));
    const STALE: &str = "schemas/ is stale: run `cargo run -- schema --out schemas`";
    let gen_names: BTreeSet<_> = generated.keys().collect();
    let com_names: BTreeSet<_> = committed.keys().collect();
    assert_eq!(
        gen_names, com_names,
        "{STALE} (the file sets differ: generated vs committed)"
    );
    for (name, text) in &generated {
        assert!(
            committed[name] == *text,
            "{STALE} ({name} differs from the generated one)"
        );
    }
    // stdout lists what was written.
    assert_eq!(
        out.stdout.lines().count(),
        generated.len(),
        "{}",
        out.stdout
    );
}

// REQ: SPEC manifests (kinds)
#[test]
fn the_examples_together_use_every_kind() {
    let mut used = BTreeSet::new();
    for example in ["quickstart", "contact-center", "sales-team"] {
        let set = config::load(&[
            repo().join("config.d"),
            repo().join("examples").join(example),
        ])
        .into_result()
        .unwrap_or_else(|d| panic!("examples/{example} is invalid: {d:#?}"));
        used.extend(set.objects.iter().map(|o| o.kind()));
    }
    let missing: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| !used.contains(*k))
        .map(|k| k.as_str())
        .collect();
    assert!(missing.is_empty(), "no example uses {missing:?}");
}

// REQ: OM-01
#[test]
fn meeting_service_presets_recognise_their_links_and_nothing_else() {
    let set = config::load(&[repo().join("config.d")])
        .into_result()
        .unwrap_or_else(|d| panic!("config.d is invalid: {d:#?}"));
    let table = fs::read_to_string(repo().join("tests/data/meeting-links.tsv")).expect("read tsv");
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("service\texpect\turl"), "header line");
    let mut matches: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(service), Some(expect), Some(url), None) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            panic!("meeting-links.tsv line {}: expected 3 columns", i + 2);
        };
        let spec = set
            .get::<MeetingServiceSpec>(service)
            .unwrap_or_else(|| panic!("no MeetingService `{service}` in config.d"));
        let want = match expect {
            "match" => true,
            "nomatch" => false,
            other => panic!("meeting-links.tsv line {}: bad expect {other:?}", i + 2),
        };
        if spec.mask.regex().expect("the mask compiles").is_match(url) != want {
            failures.push(format!("{service}: expected {expect}: {url}"));
        }
        if want {
            *matches.entry(service).or_default() += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "masks disagree:\n{}",
        failures.join("\n")
    );
    for service in [
        "teams",
        "zoom",
        "webex",
        "joinme",
        "anymeeting",
        "gotomeeting",
        "google-meet",
    ] {
        assert!(
            matches.get(service).copied().unwrap_or(0) > 0,
            "no `match` row for {service} in meeting-links.tsv"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Broken manifests: one snapshot per class of error
// ---------------------------------------------------------------------------------------------

const QUEUE_SUPPORT: &str = "\
apiVersion: switchboard/v1
kind: ChatQueue
metadata:
  name: support
spec:
  title: Support
  routing: toAll
";

const USER_ALICE: &str = "\
apiVersion: switchboard/v1
kind: User
metadata:
  name: alice
spec:
  displayName: Alice Example
  email: alice@example.com
";

// REQ: SPEC manifests (YAML syntax errors are positioned)
#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let stderr = invalid(&[(
        "roles.yaml",
        "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
  operations: [CanManageChats
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: CH-02
#[test]
fn unknown_field_suggests_the_closest_one() {
    let stderr = invalid(&[(
        "chat.yaml",
        "\
apiVersion: switchboard/v1
kind: ChatQueue
metadata:
  name: support
spec:
  title: Support
  rooting: toAll
",
    )]);
    assert!(stderr.contains("did you mean `routing`?"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: CH-02
#[test]
fn unknown_routing_value_lists_the_rules() {
    let stderr = invalid(&[(
        "chat.yaml",
        "\
apiVersion: switchboard/v1
kind: ChatQueue
metadata:
  name: support
spec:
  title: Support
  routing: roundRobin
",
    )]);
    assert!(
        stderr.contains("expected one of toAll, leastBusy"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (required fields)
#[test]
fn missing_required_field_is_named() {
    let stderr = invalid(&[(
        "people.yaml",
        "\
apiVersion: switchboard/v1
kind: User
metadata:
  name: alice
spec:
  displayName: Alice Example
",
    )]);
    assert!(stderr.contains("`email`"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (secrets never inline, never printed)
#[test]
fn inline_secret_is_refused_without_printing_it() {
    const SECRET: &str = "7302815:AAH-sup3r-s3cret-bot-token";
    let channel = format!(
        "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: telegram-main
spec:
  provider: telegram
  title: Telegram
  queue: support
  language: en-US
  token: \"{SECRET}\"
"
    );
    let out = validate(&[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", &channel)]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        !out.stdout.contains(SECRET),
        "secret on stdout: {}",
        out.stdout
    );
    assert!(
        !out.stderr.contains(SECRET),
        "secret on stderr: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    // The JSON rendering must not carry it either.
    let json = validate_with(
        &[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", &channel)],
        &["--format", "json"],
    );
    assert_eq!(json.code, 1);
    assert!(!json.stdout.contains("s3cret") && !json.stderr.contains("s3cret"));
    insta::assert_snapshot!(out.stderr);
}

// REQ: CH-02 (completion timeout is a duration)
#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    let stderr = invalid(&[(
        "chat.yaml",
        "\
apiVersion: switchboard/v1
kind: ChatQueue
metadata:
  name: support
spec:
  title: Support
  routing: toAll
  completionTimeout: 30 minutes
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (schedules are 5-field crontab)
#[test]
fn bad_cron_schedule_is_refused() {
    let stderr = invalid(&[(
        "sync.yaml",
        "\
apiVersion: switchboard/v1
kind: ContactSync
metadata:
  name: alice-contacts
spec:
  account: alice-google
  schedule: \"*/15 * * *\"
  import: {enabled: true}
  export: {enabled: false}
  google: {tag: crm}
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: OM-01 (custom masks must compile)
#[test]
fn bad_regex_mask_is_refused() {
    let stderr = invalid(&[(
        "meetings.yaml",
        "\
apiVersion: switchboard/v1
kind: MeetingService
metadata:
  name: acme-zoom
spec:
  title: Acme Zoom
  description: Acme's own Zoom domain.
  mask: '(?i)https://acme\\.zoom\\.us/(j|my/'
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (kinds)
#[test]
fn unknown_kind_suggests_the_closest_kind() {
    let stderr = invalid(&[(
        "chat.yaml",
        "\
apiVersion: switchboard/v1
kind: ChatQeue
metadata:
  name: support
spec:
  title: Support
  routing: toAll
",
    )]);
    assert!(stderr.contains("did you mean `ChatQueue`?"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (apiVersion switchboard/v1)
#[test]
fn wrong_api_version_names_the_supported_one() {
    let stderr = invalid(&[(
        "roles.yaml",
        "\
apiVersion: switchboard/v2
kind: Role
metadata:
  name: agents
spec:
  title: Agents
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (metadata.name is a lower-case DNS label)
#[test]
fn invalid_object_name_explains_dns_labels() {
    let stderr = invalid(&[(
        "roles.yaml",
        "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: Support_Agents
spec:
  title: Agents
",
    )]);
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC manifests (names unique per kind)
#[test]
fn duplicate_name_across_files_points_at_the_first_definition() {
    let role = "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
";
    // Same name, other kind: allowed.
    let user = "\
apiVersion: switchboard/v1
kind: User
metadata:
  name: agents
spec:
  displayName: Agents mailbox owner
  email: agents@example.com
";
    let stderr = invalid(&[("a.yaml", role), ("b.yaml", &format!("{user}---\n{role}"))]);
    assert!(
        stderr.contains("first defined at cfg/a.yaml:4:9"),
        "{stderr}"
    );
    assert!(stderr.contains("1 error in 1 file"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: CH-09 (a channel names its queue; references are checked)
#[test]
fn unresolved_reference_suggests_the_closest_name() {
    let channel = "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: website
spec:
  provider: api
  title: Website chat
  queue: suport
  language: en-US
  inboundToken: {env: WEBSITE_INBOUND_TOKEN}
";
    let stderr = invalid(&[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", channel)]);
    assert!(stderr.contains("did you mean `support`?"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: CH-09
#[test]
fn telegram_channel_needs_its_token_and_refuses_whatsapp_fields() {
    let channel = "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: telegram-main
spec:
  provider: telegram
  title: Telegram
  queue: support
  language: ru-RU
  phoneNumber: \"+14155238886\"
";
    let stderr = invalid(&[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", channel)]);
    assert!(stderr.contains("`token`"), "{stderr}");
    assert!(stderr.contains("phoneNumber"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

const PROVIDER_CORP: &str = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata:
  name: corp-imap
spec:
  type: imap
  title: Corp mail
  domains: [corp.example]
  imap: {host: imap.corp.example}
  smtp: {host: smtp.corp.example}
";

// REQ: EP-07
#[test]
fn mailbox_on_a_domain_no_provider_serves_is_refused() {
    let mailbox = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: alice-mail
spec:
  address: alice@unknown.example
  owner: alice
  password: {env: ALICE_MAIL_PASSWORD}
";
    let stderr = invalid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", mailbox),
    ]);
    assert!(
        stderr.contains("no MailProvider serves the domain"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

// REQ: EP-08
#[test]
fn removed_provider_is_reported_with_the_mailboxes_using_it() {
    // `corp-imap` was deleted from providers.yaml while two mailboxes still name it.
    let mailboxes = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: alice-mail
spec:
  address: alice@corp.example
  owner: alice
  provider: corp-imap
  password: {env: ALICE_MAIL_PASSWORD}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: sales-shared
spec:
  address: sales@corp.example
  owner: alice
  provider: corp-imap
  password: {credential: sales-mail-password}
";
    let stderr = invalid(&[("people.yaml", USER_ALICE), ("mail.yaml", mailboxes)]);
    assert!(stderr.contains("Mailbox/alice-mail"), "{stderr}");
    assert!(stderr.contains("Mailbox/sales-shared"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: EP-04
#[test]
fn oauth2_provider_without_its_client_is_refused() {
    let provider = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata:
  name: workspace
spec:
  type: gmail
  title: Google Workspace
  domains: [corp.example]
  imap: {host: imap.gmail.com}
  smtp: {host: smtp.gmail.com}
  auth: oauth2
";
    let stderr = invalid(&[("providers.yaml", provider)]);
    assert!(stderr.contains("oauth2"), "{stderr}");
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC cli (validate reports all errors, not just the first)
#[test]
fn errors_from_several_files_are_all_reported() {
    let roles = "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
  operations: [CanManageChat]
";
    let queue = "\
apiVersion: switchboard/v1
kind: ChatQueue
metadata:
  name: support
spec:
  title: Support
  routing: leastBusy
  operators:
    - role: agent
    - user: nobody
";
    let user = "\
apiVersion: switchboard/v1
kind: User
metadata:
  name: bob
spec:
  displayName: Bob
  email: bob-at-example.com
";
    let stderr = invalid(&[
        ("chat.yaml", queue),
        ("people/roles.yaml", roles),
        ("people/users.yaml", user),
    ]);
    assert!(
        stderr.ends_with("error: 4 errors in 3 files; the configuration is not valid\n"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

// REQ: SPEC cli (validate --format json)
#[test]
fn json_format_lists_every_diagnostic_for_tools() {
    let channel = "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: website
spec:
  provider: api
  title: Website chat
  queue: suport
  language: en-US
  inboundToken: {env: WEBSITE_INBOUND_TOKEN}
  callbackUrl: https://www.example.com/chat/callback
";
    let out = validate_with(
        &[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", channel)],
        &["--format", "json"],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let items = parsed.as_array().expect("a JSON array");
    assert_eq!(items.len(), 2, "{parsed:#}");
    for d in items {
        for key in [
            "code", "file", "line", "column", "object", "field", "message",
        ] {
            assert!(d.get(key).is_some(), "diagnostic without `{key}`: {d:#}");
        }
    }
    insta::assert_snapshot!(out.stdout);
}

// REQ: SPEC cli (validate --format json on a valid config)
#[test]
fn json_format_on_a_valid_config_is_an_empty_list() {
    let out = validate_with(&[("chat.yaml", QUEUE_SUPPORT)], &["--format", "json"]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout.trim(), "[]");
}

// ---------------------------------------------------------------------------------------------
// Valid sets that exercise the model
// ---------------------------------------------------------------------------------------------

// REQ: EP-07
#[test]
fn mailbox_provider_is_detected_from_a_provider_domain() {
    let mailbox = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: alice-mail
spec:
  address: Alice@Corp.Example
  owner: alice
  password: {env: ALICE_MAIL_PASSWORD}
";
    let stdout = valid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", mailbox),
    ]);
    assert_eq!(stdout, "ok: 3 objects in 3 files are valid\n");
}

// REQ: EP-07
#[test]
fn mailbox_with_explicit_provider_adds_its_domain_to_the_directory() {
    // corp-imap lists no domains; the first mailbox names it, which makes `team.example`
    // detectable for the second mailbox (and for one in another file).
    let provider = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata:
  name: corp-imap
spec:
  type: imap
  title: Corp mail
  imap: {host: imap.corp.example}
  smtp: {host: smtp.corp.example}
";
    let explicit = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: alice-mail
spec:
  address: alice@team.example
  owner: alice
  provider: corp-imap
  password: {env: ALICE_MAIL_PASSWORD}
";
    let detected = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: team-shared
spec:
  address: team@team.example
  owner: alice
  password: {credential: team-mail-password}
";
    // The detected mailbox is read before the explicit one (a.yaml < b.yaml): order must not
    // matter.
    let stdout = valid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", provider),
        ("a.yaml", detected),
        ("b.yaml", explicit),
    ]);
    assert_eq!(stdout, "ok: 4 objects in 4 files are valid\n");
    // Without the explicit mailbox, the domain is unknown.
    let stderr = invalid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", provider),
        ("a.yaml", detected),
    ]);
    assert!(
        stderr.contains("no MailProvider serves the domain `team.example`"),
        "{stderr}"
    );
}

// REQ: EP-02, EP-03, EP-04
#[test]
fn imap_provider_with_every_option_validates_and_fills_defaults() {
    let provider = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata:
  name: corp-imap
spec:
  type: imap
  title: Corp mail
  domains: [corp.example]
  imap: {host: imap.corp.example, port: 143, security: starttls}
  smtp: {host: smtp.corp.example}
  loginFormat: localPart
  auth: oauth2
  oauth2:
    clientId: corp-switchboard
    clientSecret: {credential: corp-oauth-secret}
    authUrl: https://sso.corp.example/authorize
    tokenUrl: https://sso.corp.example/token
    scopes: [mail]
";
    valid(&[("providers.yaml", provider)]);
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("p.yaml"), provider).expect("write");
    let set = config::load(&[dir.path().to_path_buf()])
        .into_result()
        .expect("valid");
    let spec = set
        .get::<config::kinds::MailProviderSpec>("corp-imap")
        .expect("provider loaded");
    // EP-02 defaults: SMTP 465 over TLS when not given.
    let smtp = spec.smtp.as_ref().expect("smtp");
    assert_eq!(smtp.port, 465);
    assert_eq!(smtp.security, config::kinds::Security::Tls);
    let imap = spec.imap.as_ref().expect("imap");
    assert_eq!(
        (imap.port, imap.security),
        (143, config::kinds::Security::Starttls)
    );
    assert_eq!(spec.login_format, config::kinds::LoginFormat::LocalPart);
    assert_eq!(spec.auth, config::kinds::AuthMethod::Oauth2);
}

// REQ: MB-02, MB-04
#[test]
fn shared_mailbox_with_folders_and_access_rights_validates() {
    let role = "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
  operations: [CanConnectSharedMailbox, CanManageSharedMailboxSync]
";
    let mailbox = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: support-shared
spec:
  address: support@corp.example
  owner: alice
  password: {file: secrets/support-password}
  load:
    period: 30d
    auto: false
    folders: [INBOX, INBOX/Escalations]
  access:
    - role: agents
      readEmails: true
    - user: alice
      readEmails: true
      sendEmails: true
      configure: true
";
    // The owner holds both shared-mailbox operations through the role (MB-04).
    let alice = USER_ALICE.replace(
        "  email: alice@example.com\n",
        "  email: alice@example.com\n  roles: [agents]\n",
    );
    valid(&[
        ("people.yaml", &format!("{alice}---\n{role}")),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", mailbox),
    ]);
    // An access entry must name a user or a role that exists.
    let broken = mailbox.replace("role: agents", "role: agent");
    let stderr = invalid(&[
        ("people.yaml", &format!("{alice}---\n{role}")),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", &broken),
    ]);
    assert!(stderr.contains("spec.access[0].role"), "{stderr}");
    assert!(stderr.contains("did you mean `agents`?"), "{stderr}");
}

const SHARED_SALES: &str = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: sales-shared
spec:
  address: sales@corp.example
  owner: alice
  password: {credential: sales-mail-password}
  access:
    - role: agents
      readEmails: true
";

// REQ: MB-04 (setting up a shared mailbox needs CanConnectSharedMailbox and
// CanManageSharedMailboxSync; the owner sets it up)
#[test]
fn shared_mailbox_owner_without_the_shared_mailbox_operations_is_refused() {
    let role = "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
";
    let stderr = invalid(&[
        ("people.yaml", &format!("{USER_ALICE}---\n{role}")),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", SHARED_SALES),
    ]);
    assert!(stderr.contains("config::missing-operation"), "{stderr}");
    assert!(
        stderr.contains("CanConnectSharedMailbox and CanManageSharedMailboxSync"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);

    // The same mailbox without `access` is a personal one: no operation needed.
    let personal = SHARED_SALES
        .split("  access:")
        .next()
        .expect("the manifest")
        .to_owned();
    valid(&[
        ("people.yaml", &format!("{USER_ALICE}---\n{role}")),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", &personal),
    ]);
}

// REQ: MB-04 (an operation held through a role counts; the one missing is named)
#[test]
fn shared_mailbox_owner_missing_one_operation_is_named_in_json() {
    let role = "\
apiVersion: switchboard/v1
kind: Role
metadata:
  name: agents
spec:
  title: Agents
  operations: [CanConnectSharedMailbox]
";
    let alice = USER_ALICE.replace(
        "  email: alice@example.com\n",
        "  email: alice@example.com\n  roles: [agents]\n",
    );
    let out = validate_with(
        &[
            ("people.yaml", &format!("{alice}---\n{role}")),
            ("providers.yaml", PROVIDER_CORP),
            ("mail.yaml", SHARED_SALES),
        ],
        &["--format", "json"],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{parsed:#}");
    assert_eq!(parsed[0]["field"], "spec.access", "{parsed:#}");
    assert_eq!(parsed[0]["object"], "Mailbox/sales-shared", "{parsed:#}");
    insta::assert_snapshot!(out.stdout);

    // Given directly on the user, the second operation completes the pair.
    let alice = alice.replace(
        "  roles: [agents]\n",
        "  roles: [agents]\n  operations: [CanManageSharedMailboxSync]\n",
    );
    valid(&[
        ("people.yaml", &format!("{alice}---\n{role}")),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", SHARED_SALES),
    ]);
}

// REQ: LI-04
#[test]
fn lead_mapping_without_not_mapped_fields_is_valid() {
    // SPEC changed: without the macro the not-mapped values go to Notes.
    let integration = "\
apiVersion: switchboard/v1
kind: LeadIntegration
metadata:
  name: linkedin-ads
spec:
  title: LinkedIn ads
  adAccountId: \"508123456\"
  accounts: []
  defaultMapping:
    - {column: Email, field: emailAddress}
  forms: []
";
    valid(&[("leads.yaml", integration)]);
    let unknown = integration.replace("accounts: []", "accounts: [nobody]");
    let out = validate(&[("leads.yaml", &unknown)]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
}

// REQ: LI-03 (constants typed by column; the macro only on an unlimited text column)
#[test]
fn lead_constants_fit_their_column_and_the_macro_needs_unlimited_text() {
    let integration = |mapping: &str| {
        format!(
            "apiVersion: switchboard/v1\nkind: LeadIntegration\nmetadata:\n  name: linkedin-ads\nspec:\n  title: LinkedIn ads\n  adAccountId: \"508123456\"\n  accounts: []\n  defaultMapping:\n{mapping}  forms: []\n"
        )
    };
    valid(&[(
        "leads.yaml",
        &integration(
            "    - {column: Budget, constant: 1500}\n    - {column: DoNotUseSms, constant: true}\n    - {column: DecisionDate, constant: '2026-06-30'}\n    - {column: UsrAnything, macro: not_mapped_fields}\n",
        ),
    )]);
    let out = validate(&[(
        "leads.yaml",
        &integration(
            "    - {column: Budget, constant: plenty}\n    - {column: JobTitle, macro: not_mapped_fields}\n",
        ),
    )]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("is not a number (column `Budget`)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "needs a text column of unlimited length; `JobTitle` is text of at most 250 characters"
        ),
        "{}",
        out.stderr
    );
    // Each error points at its line.
    assert!(out.stderr.contains("leads.yaml:10"), "{}", out.stderr);
    assert!(out.stderr.contains("leads.yaml:11"), "{}", out.stderr);
}

// REQ: SPEC cli (a missing --config directory is an error, not an empty config)
#[test]
fn missing_config_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = switchboard(dir.path(), &["validate", "-c", "no-such-dir"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("no-such-dir"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Known bugs in src/config (reported; un-ignore when fixed)
// ---------------------------------------------------------------------------------------------

// REQ: SPEC manifests (secrets are never printed, not in error messages)
#[test]

fn secret_under_a_misspelled_field_is_not_printed() {
    let channel = "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: telegram-main
spec:
  provider: telegram
  title: Telegram
  queue: support
  language: en-US
  tokne: \"7302815:AAH-sup3r-s3cret-bot-token\"
";
    let out = validate(&[("chat.yaml", QUEUE_SUPPORT), ("channel.yaml", channel)]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `token`?"),
        "{}",
        out.stderr
    );
}

// REQ: EP-07
#[test]

fn sync_account_resolves_a_detected_provider_like_the_mailbox_check() {
    // m2's provider is detected through m1 (EP-07): corp-imap, an imap provider, so m2 cannot
    // be a ContactSync account, exactly like m1.
    let set = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata: {name: corp-imap}
spec: {type: imap, title: Corp, imap: {host: imap.corp.example}, smtp: {host: smtp.corp.example}}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: m1}
spec: {address: a@team.example, owner: alice, provider: corp-imap, password: {env: P}}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: m2}
spec: {address: b@team.example, owner: alice, password: {env: P}}
---
apiVersion: switchboard/v1
kind: ContactSync
metadata: {name: m2-contacts}
spec: {account: m2, import: {enabled: true}, export: {enabled: false}}
";
    let stderr = invalid(&[("people.yaml", USER_ALICE), ("mail.yaml", set)]);
    assert!(
        stderr.contains("Mailbox `m2` is on a provider of type imap"),
        "{stderr}"
    );
}

// REQ: SPEC cli (each error names what is wrong)
#[test]

fn syntax_error_does_not_cascade_into_unresolved_references() {
    let broken = format!(
        "{QUEUE_SUPPORT}---\napiVersion: switchboard/v1\nkind: Role\nmetadata: {{name: x}}\nspec: {{title: [oops}}\n"
    );
    let channel = "\
apiVersion: switchboard/v1
kind: ChatChannel
metadata:
  name: website
spec:
  provider: api
  title: Website chat
  queue: support
  language: en-US
  inboundToken: {env: WEBSITE_INBOUND_TOKEN}
";
    let stderr = invalid(&[("a.yaml", &broken), ("b.yaml", channel)]);
    assert!(!stderr.contains("does not exist"), "{stderr}");
}

// REQ: EP-08
#[test]

fn misspelled_provider_name_gets_a_did_you_mean() {
    let mailbox = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata:
  name: alice-mail
spec:
  address: alice@corp.example
  owner: alice
  provider: corp-imapp
  password: {env: ALICE_MAIL_PASSWORD}
";
    let stderr = invalid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", PROVIDER_CORP),
        ("mail.yaml", mailbox),
    ]);
    assert!(stderr.contains("did you mean `corp-imap`?"), "{stderr}");
}

// REQ: SPEC kinds (Mailbox `load.enabled` / `send.enabled` default to the provider's value)
#[test]
fn load_and_send_blocks_without_enabled_follow_a_provider_that_does_not_load_or_send() {
    let provider = "\
apiVersion: switchboard/v1
kind: MailProvider
metadata: {name: outbound}
spec:
  type: imap
  title: Outbound only
  domains: [example.com]
  imap: {host: imap.example.com}
  smtp: {host: smtp.example.com}
  load: false
---
apiVersion: switchboard/v1
kind: MailProvider
metadata: {name: archive}
spec:
  type: imap
  title: Archive only
  domains: [archive.example]
  imap: {host: imap.archive.example}
  smtp: {host: smtp.archive.example}
  send: false
";
    let blocks = "\
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: alice-out}
spec:
  address: alice@example.com
  owner: alice
  password: {env: SB_PASSWORD}
  load: {period: 2w, auto: false, folders: [INBOX]}
---
apiVersion: switchboard/v1
kind: Mailbox
metadata: {name: alice-archive}
spec:
  address: alice@archive.example
  owner: alice
  password: {env: SB_PASSWORD}
  send: {alias: Alice}
";
    valid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", provider),
        ("mail.yaml", blocks),
    ]);

    // Only an explicit `enabled: true` against such a provider is an error.
    let explicit = blocks
        .replace("load: {period: 2w,", "load: {enabled: true, period: 2w,")
        .replace(
            "send: {alias: Alice}",
            "send: {enabled: true, alias: Alice}",
        );
    let stderr = invalid(&[
        ("people.yaml", USER_ALICE),
        ("providers.yaml", provider),
        ("mail.yaml", &explicit),
    ]);
    assert!(
        stderr.contains("the provider does not load mail"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the provider does not send mail"),
        "{stderr}"
    );
}
