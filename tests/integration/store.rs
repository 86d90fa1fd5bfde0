//! Bundles through an S3-compatible store (moto's server, with authentication on) to
//! several receivers, and the store contract both stores keep: the same test runs on the
//! SFTP inbox and on a bucket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pgferry::bundle::{BundleName, Kind};
use pgferry::settings::sender::SftpRemote;
use pgferry::store::s3::credentials::Found;
use pgferry::store::{S3Store, SftpStore, Store};

use crate::ferry::{REPORTS, REPORTS_TABLES};
use crate::hostile_link::Running;
use crate::operations::mails_to;
use crate::s3::*;
use crate::util::*;

fn names(store: &dyn Store) -> Vec<String> {
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|s| s.name.file_name())
        .collect()
}

fn read_all(store: &dyn Store, name: &BundleName) -> Vec<u8> {
    let mut read = Vec::new();
    store.get(name).unwrap().read_to_end(&mut read).unwrap();
    read
}

/// Bytes that do not compress and span two parts of an S3 upload.
fn payload() -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..9 * 1024 * 1024 + 123)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Guarantee 1 through the store interface: nothing is listed before its publish, a
/// published bundle reads back whole, a name is never written twice, an abandoned upload
/// is a leftover only its own kind's cleanup removes, and a delete removes. A failed
/// publish ends its job, so the store is opened anew after it, as the next job would.
fn the_store_contract(open: &dyn Fn() -> Box<dyn Store>) {
    let store = open();
    let store = store.as_ref();
    // As a name reads back from its file name.
    let named = |name: BundleName| BundleName::parse(&name.file_name()).unwrap();
    let now = Utc::now();
    let complete = named(BundleName::new(now, Kind::Complete));
    let partial = named(BundleName::new(
        now + chrono::Duration::seconds(1),
        Kind::Partial,
    ));
    let data = payload();
    let mut upload = store.put(&complete).unwrap();
    upload.write_all(&data).unwrap();
    assert!(names(store).is_empty(), "an upload in progress is listed");
    upload.publish().unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].name, listed[0].bytes),
        (&complete, data.len() as u64)
    );
    assert!(
        read_all(store, &complete) == data,
        "the bundle read back differs"
    );

    let mut again = store.put(&complete).unwrap();
    again.write_all(b"another bundle of the same name").unwrap();
    let err = again.publish().expect_err("a name was written twice");
    assert!(
        format!("{err:#}").contains(&complete.file_name()),
        "{err:#}"
    );
    let store = open();
    let store = store.as_ref();
    // What the refused upload left (SFTP gives up a link whose publish failed) goes with
    // the next run's cleanup.
    store.remove_leftovers(Kind::Complete).unwrap();
    assert!(
        read_all(store, &complete) == data,
        "the first bundle of the name changed"
    );

    // A sender killed mid-upload: the upload is neither published nor given up.
    let mut killed = store.put(&partial).unwrap();
    killed.write_all(&data).unwrap();
    std::mem::forget(killed);
    assert_eq!(names(store), vec![complete.file_name()]);
    let other_kind = store.remove_leftovers(Kind::Complete).unwrap();
    assert!(other_kind.is_empty(), "{other_kind:?}");
    let removed = store.remove_leftovers(Kind::Partial).unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(store.remove_leftovers(Kind::Partial).unwrap().is_empty());

    store.delete(&complete).unwrap();
    assert!(names(store).is_empty());
}

#[test]
fn the_sftp_inbox_keeps_the_store_contract() {
    let env = Env::get();
    let scratch = Scratch::new();
    let remote = SftpRemote {
        host: env.var("SSH_HOST").into(),
        port: env.port("SSH_PORT"),
        user: env.var("SSH_USER").into(),
        private_key: env.var("SSH_KEY").into(),
        known_hosts: env.var("SSH_KNOWN_HOSTS").into(),
        dir: scratch.inbox.display().to_string(),
        timeout: None,
    };
    the_store_contract(&|| Box::new(SftpStore::connect(&remote).unwrap()));
    let left = crate::ferry::list_dir(&scratch.inbox);
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir(&scratch.inbox).unwrap();
}

#[test]
fn an_s3_bucket_keeps_the_store_contract() {
    let bucket = Bucket::create();
    let (key, secret) = (
        Env::get().var("S3_WRITER_KEY_ID"),
        Env::get().var("S3_WRITER_SECRET"),
    );
    the_store_contract(&|| {
        Box::new(
            S3Store::with_credentials(
                &settings(&bucket.name, "contract/"),
                Found::keys(key, secret, None, "the test"),
            )
            .unwrap(),
        )
    });
    assert!(bucket.keys().is_empty(), "{:?}", bucket.keys());
    assert!(bucket.unfinished_uploads().is_empty());
}

const CHANGE: &str =
    "INSERT INTO \"AndroidRequests_report\" (message) SELECT 'later ' || g FROM generate_series(1, 5) g; UPDATE \"AndroidRequests_report\" SET message = 'changed' WHERE id = 3;";
const TABLE: &str = "\"AndroidRequests_report\"";

fn same(ferry: &S3Ferry, target: &Db) {
    assert_eq!(
        crate::ferry::Ferry::rows(&ferry.ferry.source, TABLE, "id"),
        crate::ferry::Ferry::rows(target, TABLE, "id"),
        "the receiver's copy differs from the source"
    );
}

#[test]
fn complete_and_partial_bundles_reach_two_read_only_receivers_once_each() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    let mut runs = vec![
        ferry.sender(&["-v", "complete"]),
        ferry.receiver(&["-v", "load"]),
        ferry.second_receiver(&["load"]),
    ];
    same(&ferry, &ferry.ferry.target);
    same(&ferry, &ferry.second.target);

    ferry.ferry.source.sql(CHANGE);
    runs.push(ferry.sender(&["partial"]));
    assert_eq!(ferry.stored().len(), 2, "{:?}", ferry.stored());
    runs.push(ferry.receiver(&["load"]));
    runs.push(ferry.second_receiver(&["load"]));
    runs.push(ferry.sender(&["status", "--json"]));
    runs.push(ferry.sender(&["check"]));
    let env = Env::get();
    for run in &runs {
        run.expect_code(0);
        for secret in [env.var("S3_WRITER_SECRET"), env.var("S3_READER_SECRET")] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "a secret key in the output:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    same(&ferry, &ferry.ferry.target);
    same(&ferry, &ferry.second.target);
    let first = ferry.ferry.ledger();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|l| l.ends_with(" applied")), "{first:?}");
    assert_eq!(first, ferry.second.ledger());

    // Loading again takes nothing new, and the store is as the sender left it.
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ferry.ledger(), first);
    assert_eq!(ferry.stored().len(), 2);
    let status = ferry.receiver(&["status", "--json"]);
    status.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["pending"], serde_json::json!([]));
    assert_eq!(status["store"]["bundles"], 2, "{status}");
    assert_eq!(status["store"]["not_taken"], 0, "{status}");
    ferry.sender(&["partial"]).expect_code(0);
    let text = ferry.receiver(&["status"]);
    assert!(
        text.stdout.contains(&format!(
            "store          s3://{}/transapp/: 3 bundles, 1 not fetched yet",
            ferry.bucket.name
        )),
        "{}",
        text.stdout
    );
}

#[test]
fn a_receiver_that_joins_late_starts_from_the_newest_complete() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    ferry.sender(&["complete"]).expect_code(0);
    ferry.ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    ferry.sender(&["complete"]).expect_code(0);
    ferry.ferry.source.sql("UPDATE \"AndroidRequests_report\" SET message = 'last', \"timeStamp\" = now() WHERE id = 2; INSERT INTO \"AndroidRequests_report\" (message) VALUES ('newest')");
    ferry.sender(&["partial"]).expect_code(0);
    let stored = ferry.stored();
    assert_eq!(stored.len(), 4, "{stored:?}");

    // The second receiver joins now: it loads the newest complete and the partial after it.
    ferry.second_receiver(&["load"]).expect_code(0);
    let ledger: Vec<String> = ferry.second.ledger();
    let loaded: Vec<&str> = ledger
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(loaded, vec![stored[2].as_str(), stored[3].as_str()]);
    same(&ferry, &ferry.second.target);
    let fetched = crate::ferry::list_dir(&ferry.second.work.join("applied"));
    assert_eq!(fetched, vec![stored[2].clone(), stored[3].clone()]);
}

/// Flips a byte in the middle of a stored bundle, as a writer to the store could.
fn damage(ferry: &S3Ferry, bundle: &str) {
    let key = format!("{}{bundle}", ferry.prefix);
    let mut bytes = ferry.bucket.get(&key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    ferry.bucket.put(&key, &bytes);
}

#[test]
fn a_damaged_newest_complete_in_the_store_passes_over_nothing() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    ferry.sender(&["complete"]).expect_code(0);
    ferry.ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    ferry.sender(&["complete"]).expect_code(0);
    let stored = ferry.stored();
    damage(&ferry, &stored[2]);

    // A receiver joining now refuses the newest complete and starts at the one before.
    let run = ferry.second_receiver(&["load"]);
    run.expect_code(1);
    assert!(run.stderr.contains(&stored[2]), "{}", run.stderr);
    let failed = ferry.second.failed();
    assert_eq!(failed[0], stored[2], "{failed:?}");
    let ledger = ferry.second.ledger();
    let loaded: Vec<&str> = ledger
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(loaded, vec![stored[0].as_str(), stored[1].as_str()]);
    same(&ferry, &ferry.second.target);
    // The refused complete is never fetched again.
    ferry.second_receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.second.ledger().len(), 2);
}

#[test]
fn the_store_keeps_the_newest_completes_and_every_bundle_after_them() {
    let ferry = S3Ferry::new(
        REPORTS,
        REPORTS_TABLES,
        crate::ferry::REPORTS_PARTIAL,
        "keep_completes = 2",
    );
    let mut published = Vec::new();
    for job in [
        "complete", "partial", "complete", "partial", "complete", "partial",
    ] {
        ferry.sender(&[job]).expect_code(0);
        let stored = ferry.stored();
        let newest = stored.last().unwrap().clone();
        assert!(!published.contains(&newest), "{newest} written twice");
        published.push(newest);
    }
    // Complete, partial, then two completes and the bundles after the oldest of them.
    assert_eq!(ferry.stored(), published[2..].to_vec());
    let status = ferry.sender(&["status", "--json"]);
    status.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["store"]["completes"], 2, "{status}");
    assert_eq!(status["store"]["partials"], 2, "{status}");
    assert_eq!(
        status["store"]["newest"],
        serde_json::json!(published.last().unwrap()),
        "{status}"
    );
    let text = ferry.sender(&["status"]);
    assert!(
        text.stdout.contains(&format!(
            "store          {}: 2 complete and 2 partial bundles",
            format_args!("s3://{}/transapp/", ferry.bucket.name)
        )),
        "{}",
        text.stdout
    );
    // A receiver joining now still finds a complete to start from.
    ferry.second_receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.second.ledger().len(), 2);
}

#[test]
fn an_upload_killed_in_the_middle_shows_nothing_and_the_next_run_clears_it() {
    // About 20 MB of gzip: parts are sent before the kill.
    let schema = "CREATE TABLE big (id int PRIMARY KEY, payload text); INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 400000) g;";
    let ferry = S3Ferry::new(schema, r#"["big"]"#, "", "");
    let run = ferry.sender_as_with(
        Who::Writer,
        &["complete"],
        &[("FAILPOINTS", "sender-after-dump=return")],
    );
    assert_ne!(run.code, 0, "the fail point did not kill the sender");
    assert!(ferry.stored().is_empty(), "{:?}", ferry.stored());
    let unfinished = ferry.bucket.unfinished_uploads();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    // A receiver sees nothing to take.
    ferry.receiver(&["load"]).expect_code(0);
    assert!(ferry.ferry.ledger().is_empty());

    let next = ferry.sender(&["complete"]);
    next.expect_code(0);
    assert!(
        next.stderr
            .contains("removed the leftover of an interrupted upload"),
        "{}",
        next.stderr
    );
    assert!(ferry.bucket.unfinished_uploads().is_empty());
    assert_eq!(ferry.stored().len(), 1);
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ferry.target.sql("SELECT count(*) FROM big"), "400000");
}

#[test]
fn a_damaged_bundle_in_the_store_is_refused_once_and_skipped_for_good() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    let mailbox = crate::operations::own_mailbox(&ferry.ferry);
    ferry.sender(&["complete"]).expect_code(0);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    // Someone with write access damages the partial in the store.
    let partial = ferry.stored()[1].clone();
    damage(&ferry, &partial);

    let refused = ferry.receiver(&["load"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains(&partial), "{}", refused.stderr);
    let reason = partial.replace(".tar.gz", ".tar.reason.txt");
    assert_eq!(ferry.receiver_failed(), vec![partial.clone(), reason]);
    let mails = mails_to(&mailbox);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].body.contains(&partial), "{}", mails[0].body);

    // Skipped for good: the next load neither fetches nor refuses it again.
    ferry.receiver(&["load"]).expect_code(0);
    let status = ferry.receiver(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["failed"].as_array().unwrap().len(), 1, "{status}");
    // The second receiver refuses it too, on its own; the next complete heals both.
    ferry.second_receiver(&["load"]).expect_code(1);
    ferry.sender(&["complete"]).expect_code(0);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.second_receiver(&["load"]).expect_code(0);
    same(&ferry, &ferry.ferry.target);
    same(&ferry, &ferry.second.target);
}

#[test]
fn wrong_credentials_a_read_only_key_and_a_missing_bucket_are_named() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, "", "");
    let check = ferry.sender(&["check"]);
    assert!(
        check
            .line("ok   s3 credentials")
            .contains("from the environment (AWS_ACCESS_KEY_ID)"),
        "{}",
        check.stdout
    );
    check.line("ok   s3 list");
    assert!(check
        .line("ok   s3 write")
        .contains("wrote, read back and deleted transapp/.pgferry-probe-"));
    let receiver = ferry.receiver(&["check"]);
    receiver.line("ok   s3 list");
    assert!(!receiver.stdout.contains("s3 write"), "{}", receiver.stdout);

    let stranger = ferry.sender_as(Who::Stranger, &["check"]);
    assert!(
        stranger.line("FAIL s3 list").contains("InvalidAccessKeyId"),
        "{}",
        stranger.stdout
    );
    let reader = ferry.sender_as(Who::Reader, &["check"]);
    assert!(
        reader.line("FAIL s3 write").contains("AccessDenied"),
        "{}",
        reader.stdout
    );
    let publish = ferry.sender_as(Who::Reader, &["complete"]);
    publish.expect_code(1);
    assert!(
        publish.stderr.contains("AccessDenied"),
        "{}",
        publish.stderr
    );
    assert!(ferry.stored().is_empty());

    let text = std::fs::read_to_string(&ferry.ferry.sender_config).unwrap();
    let missing = ferry.ferry.scratch.write(
        "sender-missing-bucket.toml",
        &text.replace(
            &format!("bucket = \"{}\"", ferry.bucket.name),
            "bucket = \"pgferry-no-such-bucket\"",
        ),
    );
    let mailbox = format!("{}@viz.test", unique("admin"));
    // Its own state, so its alert is a first failure (the reader's failed publish above
    // already alerted for this job).
    let missing_text = std::fs::read_to_string(&missing)
        .unwrap()
        .replace("admins@viz.test", &mailbox)
        .replace("sender-state", "sender-state-missing");
    std::fs::write(&missing, missing_text).unwrap();
    let run = run_as(Who::Writer, &missing, "sender", &["complete"]);
    run.expect_code(1);
    assert!(run.stderr.contains("NoSuchBucket"), "{}", run.stderr);
    let mails = mails_to(&mailbox);
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].body.contains("NoSuchBucket: "),
        "{}",
        mails[0].body
    );
    assert!(
        mails[0].body.contains("S3 credentials and bucket"),
        "{}",
        mails[0].body
    );
}

/// A store of the test's own on a loopback port: `answer` takes each connection and
/// returns it to keep it open (unanswered) until the store is dropped.
struct FakeStore {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeStore {
    fn start(mut answer: impl FnMut(TcpStream) -> Option<TcpStream> + Send + 'static) -> FakeStore {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        held.extend(answer(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeStore {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Accepts connections and never answers.
    fn silent() -> FakeStore {
        FakeStore::start(Some)
    }

    /// Answers every request with `503 SlowDown`, counting them in `requests`.
    fn throttling(requests: Arc<AtomicUsize>) -> FakeStore {
        FakeStore::start(move |mut stream| {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            requests.fetch_add(1, SeqCst);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>T1</RequestId></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            None
        })
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// The sender config of `ferry` pointed at a store on `port`, with `timeout`.
fn pointed_at(ferry: &S3Ferry, port: u16, timeout: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&ferry.ferry.sender_config).unwrap();
    let text = text
        .replace(
            Env::get().var("S3_ENDPOINT"),
            &format!("http://127.0.0.1:{port}"),
        )
        .replace("timeout = \"20s\"", &format!("timeout = \"{timeout}\""));
    ferry
        .ferry
        .scratch
        .write(&unique("sender-elsewhere"), &text)
}

#[test]
fn a_store_that_stops_answering_fails_the_job_at_its_timeout() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, "", "");
    let silent = FakeStore::silent();
    let config = pointed_at(&ferry, silent.port, "2s");
    let env = Who::Writer.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // `finish` fails the test if the job is still running after 60 s.
    let run =
        Running::start_with("sender", &config, &["complete"], &ferry.ferry.scratch, &env).finish();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("list interrupted uploads on s3://"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("timeout") || run.stderr.contains("timed out"),
        "{}",
        run.stderr
    );
    drop(silent);
}

#[test]
fn a_throttling_store_is_retried_with_backoff_and_its_code_is_named() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, "", "");
    let requests = Arc::new(AtomicUsize::new(0));
    let store = FakeStore::throttling(requests.clone());
    let config = pointed_at(&ferry, store.port, "5s");
    let run = run_as(Who::Writer, &config, "sender", &["check-remote"]);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("SlowDown: Please reduce your request rate. (HTTP 503, request ID T1)"),
        "{}",
        run.stdout
    );
    // One list, sent four times: the first try and three retries.
    assert_eq!(requests.load(SeqCst), 4);
    assert_eq!(
        run.stderr.matches("retrying in").count(),
        3,
        "{}",
        run.stderr
    );
}

/// Runs the sender with arguments and extra environment variables.
type SenderRun<'a> = &'a dyn Fn(&[&str], &[(&str, &str)]) -> Run;

/// One side of a round trip, whichever store joins the two.
struct Sides<'a> {
    sender: SenderRun<'a>,
    receiver: &'a dyn Fn(&[&str]) -> Run,
    /// Published bundle names, oldest first.
    published: &'a dyn Fn() -> Vec<String>,
    /// Unfinished uploads (SFTP: `.part` files; S3: multipart uploads).
    unfinished: &'a dyn Fn() -> usize,
    source: &'a Db,
    target: &'a Db,
}

/// The same end-to-end run through either store: a killed complete leaves nothing a
/// receiver takes, the next complete clears it and loads once, a partial follows, and a
/// load with nothing new changes nothing.
fn round_trip(sides: &Sides) {
    let killed = (sides.sender)(&["complete"], &[("FAILPOINTS", "sender-after-dump=return")]);
    assert_ne!(killed.code, 0, "the fail point did not kill the sender");
    assert!((sides.published)().is_empty());
    assert_eq!((sides.unfinished)(), 1);
    (sides.receiver)(&["load"]).expect_code(0);

    (sides.sender)(&["complete"], &[]).expect_code(0);
    assert_eq!((sides.unfinished)(), 0);
    (sides.receiver)(&["load"]).expect_code(0);
    sides.source.sql(CHANGE);
    (sides.sender)(&["partial"], &[]).expect_code(0);
    (sides.receiver)(&["load"]).expect_code(0);
    (sides.receiver)(&["load"]).expect_code(0);
    assert_eq!(
        crate::ferry::Ferry::rows(sides.source, TABLE, "id"),
        crate::ferry::Ferry::rows(sides.target, TABLE, "id")
    );
    let ledger = sides
        .target
        .sql("SELECT string_agg(kind || ' ' || status, ',' ORDER BY bundle) FROM pgferry.ledger");
    assert_eq!(ledger, "complete applied,partial applied");
}

#[test]
fn a_round_trip_through_the_sftp_inbox() {
    let ferry =
        crate::ferry::Ferry::with(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    let env_run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["-c", ferry.sender_config.to_str().unwrap()];
        all.extend_from_slice(args);
        run_with("sender", &all, env)
    };
    round_trip(&Sides {
        sender: &env_run,
        receiver: &|args| ferry.receiver(args),
        published: &|| crate::hostile_link::published(&ferry),
        unfinished: &|| crate::hostile_link::leftovers(&ferry).len(),
        source: &ferry.source,
        target: &ferry.target,
    });
}

#[test]
fn a_round_trip_through_an_s3_bucket() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, crate::ferry::REPORTS_PARTIAL, "");
    round_trip(&Sides {
        sender: &|args, env| ferry.sender_as_with(Who::Writer, args, env),
        receiver: &|args| ferry.receiver(args),
        published: &|| ferry.stored(),
        unfinished: &|| ferry.bucket.unfinished_uploads().len(),
        source: &ferry.ferry.source,
        target: &ferry.ferry.target,
    });
}

#[test]
fn status_reports_a_store_that_does_not_answer_instead_of_waiting_for_it() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, "", "");
    let silent = FakeStore::silent();
    // The job's timeout is a minute; status waits at most 10 s for the store.
    let config = pointed_at(&ferry, silent.port, "60s");
    let env = Who::Writer.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = std::time::Instant::now();
    let run = Running::start_with(
        "sender",
        &config,
        &["status", "--json"],
        &ferry.ferry.scratch,
        &env,
    )
    .finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "status waited {:?} for a store that does not answer",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn a_receiver_takes_its_keys_from_a_profile_of_the_shared_credentials_file() {
    let ferry = S3Ferry::new(REPORTS, REPORTS_TABLES, "", "");
    ferry.sender(&["complete"]).expect_code(0);
    let env = Env::get();
    let file = ferry.ferry.scratch.write(
        "aws-credentials",
        &format!(
            "[default]\naws_access_key_id = AKIAUNKNOWN000000000\naws_secret_access_key = wrong\n\n[viz]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            env.var("S3_READER_KEY_ID"),
            env.var("S3_READER_SECRET")
        ),
    );
    let file = file.to_str().unwrap();
    let config = ferry.ferry.receiver_config.to_str().unwrap();
    let with_profile = |args: &[&str]| {
        let mut all = vec!["-c", config];
        all.extend_from_slice(args);
        run_with(
            "receiver",
            &all,
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", file),
                ("AWS_PROFILE", "viz"),
            ],
        )
    };
    let check = with_profile(&["check"]);
    assert!(
        check.line("ok   s3 credentials").ends_with(&format!(
            "from the shared credentials file {file}, profile [viz]"
        )),
        "{}",
        check.stdout
    );
    check.line("ok   s3 list");
    with_profile(&["load"]).expect_code(0);
    same(&ferry, &ferry.ferry.target);
    // The default profile's key is unknown to the store: named at the list.
    let default = run_with(
        "receiver",
        &["-c", config, "check"],
        &[("AWS_SHARED_CREDENTIALS_FILE", file)],
    );
    assert!(
        default.line("FAIL s3 list").contains("InvalidAccessKeyId"),
        "{}",
        default.stdout
    );
}
