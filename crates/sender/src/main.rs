//! `sender`: runs on the primary. Parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgferry_cli::GlobalArgs;

/// Ships PostgreSQL tables and files from this primary server to a secondary one over SFTP.
#[derive(Debug, Parser)]
#[command(name = "sender", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Self-test: config, pg_dump/psql, database, tables and their changed_at columns, file
    /// dirs, SSH key and state dir. Prints ok/warn/FAIL per item; exits 1 if anything failed
    Check,
    /// Make one complete bundle now (every configured table and file, from one snapshot)
    /// and upload it to the receiver's inbox
    Complete,
    /// Make one partial bundle now: the rows changed since the last successful partial or
    /// complete (minus partial.overlap), the rows they reference, and the files they need
    Partial {
        /// Send the rows changed in the last N minutes instead (the original fixed window;
        /// a gap longer than N minutes loses rows)
        #[arg(long, value_name = "N")]
        minutes: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _recent = cli.global.init_logging();
    let config = cli.global.config_path("/etc/pgferry/sender.toml");
    let result = match cli.command {
        Command::Check => sender::commands::check::run(&config),
        Command::Complete => sender::commands::complete::run(&config),
        Command::Partial { minutes } => sender::commands::partial::run(&config, minutes),
    };
    pgferry_cli::finish(result)
}
