//! The `switchboard` command line: global flags and one file per verb.
//!
//! Each verb returns an [`ExitCode`]; `main.rs` only parses the arguments, sets up logging
//! and calls [`main`]. Verbs print results to stdout and problems to stderr.

mod leads;
mod oauth;
mod plan;
mod schema;
mod status;
mod sync;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::telemetry::LogFormat;

/// Default config directory (systemd `ConfigurationDirectory=switchboard`).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/switchboard/config.d";
/// Default state file (systemd `StateDirectory=switchboard`).
pub const DEFAULT_STATE: &str = "/var/lib/switchboard/state.db";

/// Declarative sync daemon for chat, mail, contacts, calendars and leads.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, propagate_version = true)]
pub struct Cli {
    /// Config directory; repeat for several (all `*.yaml`/`*.yml` below each, recursively).
    #[arg(short = 'c', long = "config", global = true, env = "SWITCHBOARD_CONFIG", value_delimiter = ':', default_value = DEFAULT_CONFIG_DIR)]
    pub config: Vec<PathBuf>,
    /// The SQLite state file.
    #[arg(long, global = true, env = "SWITCHBOARD_STATE", default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// Log format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `validate` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, schema-check and cross-check every manifest (exit 0 valid, 1 not).
    Validate {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what applying the config would change against the applied state.
    Plan {
        /// Exit 0 when there are no changes and 2 when there are (1 on errors).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Run the daemon: apply the config, serve HTTP, run schedules, reload on change.
    Run,
    /// Every applied object with its state, last success, last error and counters.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run one object's sync now: `switchboard sync Mailbox/sales`.
    ///
    /// When a daemon answers on `Settings.listen`, the request goes to it, with the bearer
    /// token in SWITCHBOARD_TOKEN (a user with CanManageAdministration, or a mailbox's owner or
    /// configurer). With no daemon running, the sync runs in this process.
    #[command(verbatim_doc_comment)]
    Sync {
        /// `Kind/name` of the object.
        object: String,
    },
    /// LinkedIn lead generation: `switchboard leads backfill ads --since 2026-11-01`.
    Leads {
        /// What to do.
        #[command(subcommand)]
        action: LeadsAction,
    },
    /// OAuth 2.0 consent for a mailbox, a Google account or a LinkedIn account:
    /// `switchboard oauth url Mailbox/sales`, `switchboard oauth url GoogleAccount/jonas`.
    Oauth {
        /// What to do.
        #[command(subcommand)]
        action: OauthAction,
    },
    /// Write the JSON Schemas of every kind.
    Schema {
        /// Directory to write into (stdout lists the files written).
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
}

/// `switchboard leads` actions.
#[derive(Debug, Subcommand)]
pub enum LeadsAction {
    /// Load every lead form response submitted in a period (at most 90 days back); leads
    /// that exist already are not created again. Through the running daemon (token in
    /// SWITCHBOARD_TOKEN, a user with CanManageAdministration) or, with none, in this process.
    #[command(verbatim_doc_comment)]
    Backfill {
        /// The LeadIntegration's name (`ads` or `LeadIntegration/ads`).
        integration: String,
        /// Only this form's responses (its numeric id).
        #[arg(long)]
        form: Option<String>,
        /// Start of the period: YYYY-MM-DD (UTC) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// End of the period [now]: YYYY-MM-DD (that whole day) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
    },
}

/// `switchboard oauth` actions.
#[derive(Debug, Subcommand)]
pub enum OauthAction {
    /// Print the provider's consent URL for `Mailbox/NAME`, `GoogleAccount/NAME` or
    /// `LinkedInAccount/NAME`; open it signed in as the account's owner.
    Url {
        /// `Mailbox/name`, `GoogleAccount/name` or `LinkedInAccount/name`.
        object: String,
    },
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Validate { format } => validate::run(&cli.config, *format),
        Command::Plan { detailed_exitcode } => {
            plan::run(&cli.config, &cli.state, *detailed_exitcode)
        }
        Command::Run => crate::daemon::run_daemon(crate::daemon::DaemonOptions {
            config_dirs: cli.config.clone(),
            state: cli.state.clone(),
        }),
        Command::Status { format } => status::run(&cli.state, *format),
        Command::Sync { object } => sync::run(&cli.config, &cli.state, object),
        Command::Leads {
            action:
                LeadsAction::Backfill {
                    integration,
                    form,
                    since,
                    until,
                },
        } => leads::backfill(
            &cli.config,
            &cli.state,
            integration,
            form.as_deref(),
            since,
            until.as_deref(),
        ),
        Command::Oauth {
            action: OauthAction::Url { object },
        } => oauth::url(&cli.config, &cli.state, object),
        Command::Schema { out } => schema::run(out),
    }
}

/// Loads the config; when it is invalid, prints the diagnostics and gives exit code 1.
fn load_valid(dirs: &[PathBuf]) -> Result<crate::config::ConfigSet, ExitCode> {
    let outcome = crate::config::load(dirs);
    match outcome.set {
        Some(set) => Ok(set),
        None => {
            eprint!(
                "{}",
                crate::config::diagnostics::render_text(&outcome.diagnostics, &outcome.sources)
            );
            Err(ExitCode::from(1))
        }
    }
}

/// Prints an error the way every verb does, and returns exit code 1.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}
