//! Metrics in Prometheus' text format: what both sides write to the node_exporter textfile
//! after every job and print with `status --prometheus`. Names and units follow
//! Prometheus' conventions (`pgferry_…_seconds`, `_bytes`, `_total`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::bundle::Kind;
use crate::history::JobHistory;
use crate::job::Jobs;
use crate::last_bundles::LastBundles;

/// Metric families in the order they were first added, each with its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    order: Vec<&'static str>,
    families: BTreeMap<&'static str, Family>,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Exposition {
    /// Adds one gauge sample.
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let order = &mut self.order;
        let family = self.families.entry(name).or_insert_with(|| {
            order.push(name);
            Family {
                help,
                samples: Vec::new(),
            }
        });
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        family.samples.push((labels, value));
    }

    /// The text format, one `# HELP` and `# TYPE` per family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let family = &self.families[name];
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in &family.samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}

/// A label value as the text format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

/// Each job's last success and failure, last duration and consecutive failures.
pub fn jobs(out: &mut Exposition, histories: &[JobHistory]) {
    for history in histories {
        let job = [("job", history.job.as_str())];
        if let Some(at) = history.last_success {
            out.gauge(
                "pgferry_job_last_success_timestamp_seconds",
                "When the job last succeeded, as a Unix time.",
                &job,
                unix(at),
            );
        }
        if let Some(at) = history.last_failure {
            out.gauge(
                "pgferry_job_last_failure_timestamp_seconds",
                "When the job last failed, as a Unix time.",
                &job,
                unix(at),
            );
        }
        if let Some(ms) = history.last_duration_ms {
            out.gauge(
                "pgferry_job_last_duration_seconds",
                "How long the job's last run took.",
                &job,
                ms as f64 / 1000.0,
            );
        }
        out.gauge(
            "pgferry_job_consecutive_failures",
            "Failed runs of the job since its last success.",
            &job,
            f64::from(history.consecutive_failures),
        );
    }
}

/// Size and rows of the last bundle of each kind.
pub fn bundles(out: &mut Exposition, last: &LastBundles) {
    for kind in [Kind::Complete, Kind::Partial] {
        let Some(facts) = last.of(kind) else { continue };
        let kind = kind.to_string();
        let labels = [("kind", kind.as_str())];
        out.gauge(
            "pgferry_last_bundle_bytes",
            "Size of the last bundle of this kind.",
            &labels,
            facts.bytes as f64,
        );
        out.gauge(
            "pgferry_last_bundle_rows",
            "Rows of all tables of the last bundle of this kind.",
            &labels,
            facts.rows as f64,
        );
    }
}

/// Replaces `path` with `text` atomically, as the textfile collector expects: it never
/// reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::atomic_file::write(path, text.as_bytes())
}

/// `jobs`, rewriting `textfile` with what `render` makes after every job. A failure to
/// write it is logged, never the job's.
pub fn after_every_job(
    jobs: Jobs,
    textfile: PathBuf,
    render: impl Fn(DateTime<Utc>) -> anyhow::Result<String> + Send + Sync + 'static,
) -> Jobs {
    jobs.with_after_job(move || {
        if let Err(err) = render(Utc::now()).and_then(|text| write_textfile(&textfile, &text)) {
            tracing::warn!(file = %textfile.display(), error = %format!("{err:#}"), "could not write the metrics textfile");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_one_help_and_type_and_labels_are_escaped() {
        let mut out = Exposition::default();
        out.gauge("pgferry_a", "A.", &[("job", "x\"y")], 1.5);
        out.gauge("pgferry_b", "B.", &[], 2.0);
        out.gauge("pgferry_a", "A.", &[("job", "z")], 3.0);
        assert_eq!(
            out.render(),
            "# HELP pgferry_a A.\n# TYPE pgferry_a gauge\npgferry_a{job=\"x\\\"y\"} 1.5\npgferry_a{job=\"z\"} 3\n# HELP pgferry_b B.\n# TYPE pgferry_b gauge\npgferry_b 2\n"
        );
    }
}
