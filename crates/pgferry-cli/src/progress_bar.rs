//! Draws the core's progress events on a terminal with `indicatif`: the step, the table it
//! is at, bytes so far, rate and, when the total is known, the share done. Only for a
//! person watching: never under cron, systemd or a pipe, nor with `-q` or JSON logs.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgferry::progress::{Event, Progress};

/// A drawer when stderr is a terminal and `wanted`, else nothing.
pub fn on_terminal(wanted: bool) -> Progress {
    if !wanted || !std::io::stderr().is_terminal() {
        return Progress::none();
    }
    let current: Mutex<Option<(ProgressBar, String)>> = Mutex::new(None);
    Progress::new(move |event| {
        let Ok(mut current) = current.lock() else {
            return;
        };
        match event {
            Event::Start { what, total } => {
                let bar = match total {
                    Some(total) => {
                        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                    }
                    None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                };
                bar.set_style(style(total.is_some()));
                bar.set_message(what.clone());
                *current = Some((bar, what));
            }
            Event::Table(table) => {
                if let Some((bar, what)) = current.as_ref() {
                    bar.set_message(format!("{what}: {table}"));
                }
            }
            Event::Bytes(done) => {
                if let Some((bar, _)) = current.as_ref() {
                    // An estimate may be short: the bar grows rather than overflows.
                    if bar.length().is_some_and(|total| done > total) {
                        bar.set_length(done);
                    }
                    bar.set_position(done);
                }
            }
            Event::Done(how) => {
                if let Some((bar, _)) = current.take() {
                    bar.finish_with_message(how);
                }
            }
        }
    })
}

fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{msg}\n  [{elapsed_precise}] [{wide_bar}] {percent}% {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
    } else {
        "{spinner} {msg}\n  [{elapsed_precise}] {bytes} ({bytes_per_sec})"
    };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
