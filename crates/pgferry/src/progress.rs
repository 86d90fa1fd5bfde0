//! Progress of a long job, as events the core reports and a binary may draw. The core
//! never draws: a job started by cron, systemd or a pipe gets no sink and reports nothing.

use std::sync::Arc;

/// What a job reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step starts, with the bytes it expects to pass when it knows.
    Start { what: String, total: Option<u64> },
    /// It is now at this table.
    Table(String),
    /// Bytes passed so far in the step.
    Bytes(u64),
    /// The step ended, with a line saying how.
    Done(String),
}

/// Where events go: a drawer on a terminal, or nowhere.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(Event) + Send + Sync>>);

impl Progress {
    pub fn new(sink: impl Fn(Event) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(sink)))
    }

    /// Reports nothing.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// Whether anyone draws the events: work done only for them can be skipped.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn send(&self, event: Event) {
        if let Some(sink) = &self.0 {
            sink(event);
        }
    }

    pub fn start(&self, what: impl Into<String>, total: Option<u64>) {
        self.send(Event::Start {
            what: what.into(),
            total,
        });
    }

    pub fn table(&self, table: impl ToString) {
        if self.0.is_some() {
            self.send(Event::Table(table.to_string()));
        }
    }

    pub fn bytes(&self, done: u64) {
        self.send(Event::Bytes(done));
    }

    pub fn done(&self, how: impl Into<String>) {
        self.send(Event::Done(how.into()));
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(on)"
        } else {
            "Progress(off)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_sink_in_order_and_none_reports_nothing() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            Progress::new(move |e| seen.lock().unwrap().push(e))
        };
        sink.start("load", Some(10));
        sink.table("public.t");
        sink.bytes(5);
        sink.done("loaded");
        Progress::none().table("ignored");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Event::Start {
                    what: "load".into(),
                    total: Some(10)
                },
                Event::Table("public.t".into()),
                Event::Bytes(5),
                Event::Done("loaded".into()),
            ]
        );
    }
}
