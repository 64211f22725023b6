//! The `switchboard` binary: parse the command line, set up logging, run the verb.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = switchboard::cli::Cli::parse();
    switchboard::telemetry::init(cli.log_format);
    switchboard::cli::main(cli)
}
