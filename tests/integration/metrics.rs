//! Issue 18, part 1: both sides write Prometheus metrics to a node_exporter textfile after
//! every job, and print the same with `status --prometheus`; parsed here with a
//! Prometheus text-format parser.

use crate::ferry::*;
use crate::util::*;

/// The samples of a textfile, by metric name and labels (`name{k="v"}`).
fn scrape(text: &str) -> std::collections::BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{key}: not a gauge: {other:?}"),
            };
            (key, value)
        })
        .collect()
}

fn ferry() -> Ferry {
    Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        &format!("{REPORTS_PARTIAL}\n[metrics]\ntextfile = \"{{scratch}}/node_exporter/pgferry_sender.prom\"\n"),
        "[metrics]\ntextfile = \"{scratch}/node_exporter/pgferry_receiver.prom\"\n",
    )
}

fn textfile(ferry: &Ferry, side: &str) -> String {
    std::fs::read_to_string(
        ferry
            .scratch
            .path(&format!("node_exporter/pgferry_{side}.prom")),
    )
    .unwrap()
}

#[test]
fn both_sides_write_their_metrics_after_every_job_and_status_prints_the_same() {
    let ferry = ferry();
    ferry.ship();
    ferry.source.sql(
        r#"UPDATE "AndroidRequests_report" SET message = 'm', "timeStamp" = now() WHERE id <= 3"#,
    );
    ferry.ship_partial(&[]);

    let sender = scrape(&textfile(&ferry, "sender"));
    for job in ["complete", "partial"] {
        assert!(
            sender[&format!("pgferry_job_last_success_timestamp_seconds{{job=\"{job}\"}}")] > 1.7e9
        );
        assert!(sender[&format!("pgferry_job_last_duration_seconds{{job=\"{job}\"}}")] > 0.0);
        assert_eq!(
            sender[&format!("pgferry_job_consecutive_failures{{job=\"{job}\"}}")],
            0.0
        );
    }
    assert_eq!(sender["pgferry_last_bundle_rows{kind=\"complete\"}"], 10.0);
    // The window (overlap 2m) takes every row changed in the last minutes: all 10 here.
    assert_eq!(sender["pgferry_last_bundle_rows{kind=\"partial\"}"], 10.0);
    assert!(sender["pgferry_last_bundle_bytes{kind=\"complete\"}"] > 100.0);
    let age = sender["pgferry_sender_high_water_mark_age_seconds"];
    assert!((0.0..600.0).contains(&age), "{age}");
    assert_eq!(
        sender["pgferry_sender_high_water_mark_held_back_seconds"],
        0.0
    );

    let receiver = scrape(&textfile(&ferry, "receiver"));
    assert!(receiver["pgferry_job_last_success_timestamp_seconds{job=\"load\"}"] > 1.7e9);
    assert_eq!(receiver["pgferry_last_bundle_rows{kind=\"partial\"}"], 10.0);
    assert_eq!(receiver["pgferry_receiver_pending_bundles"], 0.0);
    assert_eq!(receiver["pgferry_receiver_failed_bundles"], 0.0);
    assert_eq!(receiver["pgferry_receiver_blocked"], 0.0);
    assert!(receiver["pgferry_receiver_lag_seconds"] >= 0.0);

    // status --prometheus prints what the textfile holds (times aside: the lag moved on).
    for side in ["sender", "receiver"] {
        let run = match side {
            "sender" => ferry.sender(&["status", "--prometheus"]),
            _ => ferry.receiver(&["status", "--prometheus"]),
        };
        run.expect_code(0);
        let printed = scrape(&run.stdout);
        let written = scrape(&textfile(&ferry, side));
        assert_eq!(
            printed.keys().collect::<Vec<_>>(),
            written.keys().collect::<Vec<_>>(),
            "{side}"
        );
    }
    // Replaced whole each time: no temporary file is left beside it.
    assert_eq!(
        list_dir(&ferry.scratch.path("node_exporter")),
        vec!["pgferry_receiver.prom", "pgferry_sender.prom"]
    );
}

#[test]
fn a_failing_job_shows_in_the_metrics() {
    let ferry = ferry();
    let broken = ferry.unreachable_sender_config();
    run_config("sender", &broken, &["--no-alert", "complete"]).expect_code(1);
    let sender = scrape(&textfile(&ferry, "sender"));
    assert_eq!(
        sender["pgferry_job_consecutive_failures{job=\"complete\"}"],
        1.0
    );
    assert!(sender["pgferry_job_last_failure_timestamp_seconds{job=\"complete\"}"] > 1.7e9);
    assert!(!sender.contains_key("pgferry_job_last_success_timestamp_seconds{job=\"complete\"}"));
}
