//! The running set: apply, reload, scheduler, connectors, shutdown and sd_notify.
//!
//! (Being built: this placeholder only exists so the CLI compiles.)

use std::path::PathBuf;
use std::process::ExitCode;

/// What `switchboard run` needs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `--config` directories.
    pub config_dirs: Vec<PathBuf>,
    /// `--state` file.
    pub state: PathBuf,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run_daemon(_opts: DaemonOptions) -> ExitCode {
    eprintln!("error: the daemon is not built yet");
    ExitCode::from(1)
}
