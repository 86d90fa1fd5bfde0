//! The command-line frame `sender` and `receiver` share: the global options every command
//! takes, logging set-up, and the one place where a result becomes an exit code.

mod progress_bar;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use pgferry::exit::Exit;
use pgferry::logging::{self, LogFormat, RecentLines};

/// Options every command takes, before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Configuration file (the help names each binary's default: see [`parse`])
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log more (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log less (-q: warnings and errors only, -qq: errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Send no alert email for this run (the job history is still kept)
    #[arg(long, global = true)]
    pub no_alert: bool,

    /// Format of the log lines on stderr
    #[arg(long, global = true, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
    pub log_format: Format,
}

/// Parses the command line of a binary whose config file defaults to `default_config`,
/// so `--help` shows that binary's own path.
pub fn parse<C: Parser>(default_config: &str) -> C {
    C::from_arg_matches(&command::<C>(default_config).get_matches())
        .unwrap_or_else(|err| err.exit())
}

/// The binary's command-line definition, its config default spelled out.
fn command<C: CommandFactory>(default_config: &str) -> clap::Command {
    C::command().mut_arg("config", |arg| {
        arg.help(format!(
            "Configuration file [default: $PGFERRY_CONFIG, else {default_config}]"
        ))
    })
}

/// The commands by which a binary describes itself for installation, from the same clap
/// definitions that parse its command line. They read no config.
#[derive(Debug, Clone, Subcommand)]
pub enum About {
    /// Print shell completions on stdout, to install (see the README's Install)
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) on stdout, to install (see the README's Install)
    Man,
}

/// Runs an [`About`] command of binary `C`.
pub fn about<C: CommandFactory>(default_config: &str, about: About) -> anyhow::Result<Exit> {
    match about {
        About::Completions { shell } => completions::<C>(default_config, shell),
        About::Man => man_page::<C>(default_config),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes `C`'s completions for `shell` to stdout.
fn completions<C: CommandFactory>(default_config: &str, shell: Shell) -> anyhow::Result<Exit> {
    let mut command = command::<C>(default_config);
    let name = command.get_name().to_string();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: the generator panics when its writer fails (a closed pipe).
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut text);
    print(&text, "the completions")
}

/// Writes `C`'s man page (roff) to stdout.
fn man_page<C: CommandFactory>(default_config: &str) -> anyhow::Result<Exit> {
    let mut text = Vec::new();
    clap_mangen::Man::new(command::<C>(default_config)).render(&mut text)?;
    print(&text, "the man page")
}

fn print(text: &[u8], what: &str) -> anyhow::Result<Exit> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text)
        .and_then(|()| stdout.flush())
        .map_err(|err| anyhow::anyhow!("write {what} to stdout: {err}"))?;
    Ok(Exit::Done)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl GlobalArgs {
    /// The config path: `-c`, else `$PGFERRY_CONFIG`, else `default`.
    pub fn config_path(&self, default: &str) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| pgferry::settings::default_path(default))
    }

    /// Starts logging and returns how jobs run: the log lines alerts quote, `--no-alert`,
    /// and progress drawn on a terminal (not with `-q` or `--log-format json`).
    pub fn init(&self) -> pgferry::job::Options {
        pgferry::job::Options {
            recent: self.init_logging(),
            no_alert: self.no_alert,
            progress: progress_bar::on_terminal(self.quiet == 0 && self.log_format == Format::Text),
        }
    }

    /// Starts logging and returns the recent-lines buffer alerts quote.
    pub fn init_logging(&self) -> RecentLines {
        let verbosity = i8::try_from(i16::from(self.verbose) - i16::from(self.quiet)).unwrap_or(0);
        let format = match self.log_format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        };
        logging::init(verbosity, format)
    }
}

/// Maps a command's result to the process exit code, printing the error chain once.
pub fn finish(result: anyhow::Result<Exit>) -> ExitCode {
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            let exit = Exit::for_error(&err);
            eprintln!("error: {err:#}");
            ExitCode::from(exit.code())
        }
    }
}
