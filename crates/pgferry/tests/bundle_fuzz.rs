//! Fuzzes the bundle reader (guarantee 2) with proptest: random bytes, valid bundles, and
//! valid bundles mutated byte by byte and entry by entry. The reader must never panic,
//! never accept changed content, and refuse every broken bundle with a reason.
//!
//! `scripts/fuzz.sh SECONDS` runs `long_fuzz` for that long over the seed corpus in
//! `fuzz/corpus/`; the normal test run keeps to small, fixed case counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::DateTime;
use flate2::write::GzEncoder;
use flate2::Compression;
use pgferry::bundle::manifest::{Entry, Source};
use pgferry::bundle::reader::{read_entries, verify};
use pgferry::bundle::writer::BundleWriter;
use pgferry::bundle::{BundleName, Kind, Manifest, FORMAT_VERSION};
use pgferry::seal::OpenKeys;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use sha2::{Digest, Sha256};

fn name() -> BundleName {
    BundleName::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        Kind::Complete,
    )
}

fn manifest(entries: Vec<Entry>) -> Manifest {
    let name = name();
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.file_name(),
        kind: name.kind,
        created_at: name.created,
        source: Source {
            host: "db".into(),
            dbname: "app".into(),
            server_version: "15".into(),
        },
        snapshot_time: name.created,
        window: None,
        tables: vec![],
        dependencies: vec![],
        slot: None,
        file_sets: vec![],
        entries,
    }
}

/// Writes `bytes` under the bundle's own name in a fresh directory, as the inbox holds it.
fn in_inbox(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name().file_name());
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// A valid bundle of `entries`, through the real writer.
fn valid(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new(), name().created, Default::default()).unwrap();
    for (path, bytes) in entries {
        writer.append_bytes(path, bytes).unwrap();
    }
    let (out, _) = writer.finish(&mut manifest(vec![])).unwrap();
    out
}

/// Entry paths of the shapes a bundle may hold.
fn entry_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}\\.sql".prop_map(|n| format!("schema/{n}")),
        "[0-9]{6}\\.sql".prop_map(|n| format!("data/{n}")),
        "[0-9]{4}-[0-9]{6}\\.csv".prop_map(|n| format!("rows/{n}")),
        (
            "[a-z]{1,6}",
            "[a-zA-Z0-9_ ]{1,10}(/[a-zA-Z0-9_]{1,6}){0,3}\\.jpeg"
        )
            .prop_map(|(set, file)| format!("files/{set}/{file}")),
    ]
}

fn entries() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::btree_map(
        entry_path(),
        proptest::collection::vec(any::<u8>(), 0..2000),
        0..6,
    )
    .prop_map(|m| {
        // In the order a bundle holds them: schema, then data or rows, then files.
        let mut entries: Vec<(String, Vec<u8>)> = m.into_iter().collect();
        entries.sort_by_key(|(path, _)| match path.split('/').next() {
            Some("schema") => 0,
            Some("files") => 2,
            _ => 1,
        });
        entries
    })
}

/// Verifies and, when verification passes, reads every entry back; never panics.
fn verdict(path: &Path) -> Result<Manifest, String> {
    let verified = verify(path, &OpenKeys::default()).map_err(|e| {
        assert!(
            !e.problem.to_string().is_empty(),
            "a refusal without a reason"
        );
        e.problem.to_string()
    })?;
    read_entries(path, &verified, |_, _, reader| {
        std::io::copy(reader, &mut std::io::sink())?;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(verified.manifest)
}

/// One way to damage a valid bundle.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Splice { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert { at, byte }),
        any::<usize>().prop_map(|at| Damage::Remove { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: &usize| i % bytes.len();
    match damage {
        Damage::Flip { at: i, bit } => {
            let i = at(i);
            bytes[i] ^= 1 << bit;
        }
        Damage::Truncate { at: i } => {
            let i = at(i);
            bytes.truncate(i);
        }
        Damage::Insert { at: i, byte } => {
            let i = at(i);
            bytes.insert(i, *byte);
        }
        Damage::Remove { at: i } => {
            let i = at(i);
            bytes.remove(i);
        }
        Damage::Splice { at: i, bytes: new } => {
            let i = at(i);
            let end = (i + new.len()).min(bytes.len());
            bytes.splice(i..end, new.iter().copied());
        }
    }
}

/// Damaged content is never accepted: a bundle that still verifies carries exactly the
/// original manifest (only bytes that do not matter, such as the gzip header's mtime,
/// may change) and reads back whole.
fn check_damaged(original: &Manifest, bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_dir, path) = in_inbox(bytes);
    if let Ok(manifest) = verdict(&path) {
        prop_assert_eq!(
            &manifest,
            original,
            "a damaged bundle verified with other content"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config::with_cases(64))]

    #[test]
    fn random_bytes_are_refused_with_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (_dir, path) = in_inbox(&bytes);
        prop_assert!(verdict(&path).is_err());
    }

    #[test]
    fn valid_bundles_verify_and_read_back_exactly(entries in entries()) {
        let (_dir, path) = in_inbox(&valid(&entries));
        let verified = verify(&path, &OpenKeys::default()).unwrap();
        let mut seen = Vec::new();
        read_entries(&path, &verified, |_, entry, reader| {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes)?;
            seen.push((entry.path.clone(), bytes));
            Ok(())
        }).unwrap();
        prop_assert_eq!(seen, entries);
    }

    #[test]
    fn damaged_bundles_are_never_accepted_with_other_content(
        entries in entries(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let bytes = valid(&entries);
        let (_dir, path) = in_inbox(&bytes);
        let original = verify(&path, &OpenKeys::default()).unwrap().manifest;
        let mut damaged = bytes.clone();
        for d in &damages {
            apply(&mut damaged, d);
        }
        check_damaged(&original, &damaged)?;
    }
}

// Hand-built archives: what a hostile sender could put in the tar itself.

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A tar.gz of raw entries `(name bytes, type, data)` followed by a manifest listing
/// `listed`, with sizes and checksums that match unless the caller says otherwise.
fn crafted(raw: &[(&[u8], tar::EntryType, &[u8])], listed: Vec<Entry>) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, data) in raw {
        append_raw(&mut tar, name, *kind, data, data.len() as u64);
    }
    let json = serde_json::to_vec(&manifest(listed)).unwrap();
    append_raw(
        &mut tar,
        b"MANIFEST.json",
        tar::EntryType::Regular,
        &json,
        json.len() as u64,
    );
    gzip(&tar.into_inner().unwrap())
}

fn append_raw(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    size: u64,
) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    let field = &mut header.as_old_mut().name;
    let len = name.len().min(field.len());
    field[..len].copy_from_slice(&name[..len]);
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        header.set_link_name("../../etc/passwd").unwrap();
    }
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn listed(path: &str, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        size: data.len() as u64,
        sha256: sha(data),
    }
}

fn refused(bytes: &[u8], expected: &str) {
    let (_dir, path) = in_inbox(bytes);
    let problem = verdict(&path).expect_err("a hostile bundle was accepted");
    assert!(
        problem.contains(expected),
        "expected {expected:?} in {problem:?}"
    );
}

#[test]
fn hostile_archives_are_refused_with_their_reason() {
    let data: &[u8] = b"COPY t FROM stdin;";
    let regular = tar::EntryType::Regular;
    refused(
        &crafted(
            &[
                (b"data/000000.sql", regular, data),
                (b"data/000000.sql", regular, data),
            ],
            vec![listed("data/000000.sql", data)],
        ),
        "appears twice",
    );
    refused(
        &crafted(&[(b"data/000000.sql", regular, data)], vec![]),
        "is not listed in the manifest",
    );
    refused(
        &crafted(&[], vec![listed("data/000000.sql", data)]),
        "is listed in the manifest but missing",
    );
    let mut wrong = listed("data/000000.sql", data);
    wrong.sha256 = sha(b"something else");
    refused(
        &crafted(&[(b"data/000000.sql", regular, data)], vec![wrong]),
        "has SHA-256",
    );
    let mut short = listed("data/000000.sql", data);
    short.size -= 1;
    refused(
        &crafted(&[(b"data/000000.sql", regular, data)], vec![short]),
        "has 18 bytes, the manifest says 17",
    );
    refused(
        &crafted(&[(b"files/images/a", tar::EntryType::Symlink, b"")], vec![]),
        "symbolic link",
    );
    refused(
        &crafted(&[(b"files/images/a", tar::EntryType::Link, b"")], vec![]),
        "hard link",
    );
    refused(
        &crafted(&[(b"files/images/a", tar::EntryType::Char, b"")], vec![]),
        "character device",
    );
    refused(
        &crafted(&[(b"files/images/\xff\xfe.jpeg", regular, data)], vec![]),
        "not UTF-8",
    );
    refused(
        &crafted(&[(b"files/images/../../x", regular, data)], vec![]),
        "parent directory",
    );
    refused(
        &crafted(&[(b"/etc/passwd", regular, data)], vec![]),
        "absolute path",
    );
}

#[test]
fn a_huge_size_in_a_header_is_refused_without_reading_it() {
    // A manifest that claims 3 GiB: refused by its size before a byte is read.
    let mut tar = tar::Builder::new(Vec::new());
    append_raw(
        &mut tar,
        b"MANIFEST.json",
        tar::EntryType::Regular,
        b"",
        3 << 30,
    );
    refused(&gzip(&tar.into_inner().unwrap()), "over the limit");
    // A data entry that claims 5 GiB and ends after a few bytes: a truncated stream.
    let mut tar = tar::Builder::new(Vec::new());
    append_raw(
        &mut tar,
        b"data/000000.sql",
        tar::EntryType::Regular,
        b"",
        5 << 30,
    );
    let started = Instant::now();
    refused(&gzip(&tar.into_inner().unwrap()), "cannot read it");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_deep_path_is_refused_or_read_but_never_escapes() {
    let deep = format!("files/images/{}x.jpeg", "d/".repeat(200));
    let data: &[u8] = b"x";
    // Longer than a tar header's name field: the builder writes a GNU long-name entry.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    tar.append_data(&mut header, &deep, data).unwrap();
    let json = serde_json::to_vec(&manifest(vec![listed(&deep, data)])).unwrap();
    append_raw(
        &mut tar,
        b"MANIFEST.json",
        tar::EntryType::Regular,
        &json,
        json.len() as u64,
    );
    let (_dir, path) = in_inbox(&gzip(&tar.into_inner().unwrap()));
    let manifest = verdict(&path).unwrap();
    assert_eq!(
        manifest.entries[0].path, deep,
        "the entry stays inside files/images"
    );
}

/// The seed corpus for `long_fuzz`: valid bundles of each entry kind, and broken ones.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let rows = b"id,note\n1,\"a\nb\"\n".to_vec();
    vec![
        ("empty.bundle".into(), valid(&[])),
        (
            "complete.bundle".into(),
            valid(&[
                (
                    "schema/0000.pre.sql".into(),
                    b"CREATE TABLE t (id int);".to_vec(),
                ),
                (
                    "data/000000.sql".into(),
                    b"COPY public.t (id) FROM stdin;\n1\n\\.\n".to_vec(),
                ),
                ("files/images/a.jpeg".into(), vec![0xff, 0xd8, 0xff]),
            ]),
        ),
        (
            "partial.bundle".into(),
            valid(&[("rows/0000-000000.csv".into(), rows)]),
        ),
        (
            "duplicate.bundle".into(),
            crafted(
                &[
                    (b"data/000000.sql", tar::EntryType::Regular, b"x"),
                    (b"data/000000.sql", tar::EntryType::Regular, b"x"),
                ],
                vec![listed("data/000000.sql", b"x")],
            ),
        ),
        (
            "symlink.bundle".into(),
            crafted(&[(b"files/images/a", tar::EntryType::Symlink, b"")], vec![]),
        ),
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

#[test]
#[ignore = "writes the committed seed corpus; run once after changing the bundle format"]
fn write_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

/// Mutates the seed corpus for `PGFERRY_FUZZ_SECONDS` seconds (`scripts/fuzz.sh`), or for a
/// few cases in a normal test run.
#[test]
fn long_fuzz() {
    let seconds: u64 = std::env::var("PGFERRY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir())
        .expect("the seed corpus crates/pgferry/fuzz/corpus is missing")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    corpus.sort();
    assert!(!corpus.is_empty());
    let originals: Vec<Option<Manifest>> = corpus
        .iter()
        .map(|bytes| verdict(&in_inbox(bytes).1).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runner = TestRunner::new(Config::default());
    let strategy = (0..corpus.len(), proptest::collection::vec(damage(), 1..8));
    let mut executions: u64 = 0;
    let started = Instant::now();
    loop {
        let (seed, damages) = strategy.new_tree(&mut runner).unwrap().current();
        let mut bytes = corpus[seed].clone();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let (_dir, path) = in_inbox(&bytes);
        if let (Ok(manifest), Some(original)) = (verdict(&path), &originals[seed]) {
            assert_eq!(
                &manifest, original,
                "a damaged bundle verified with other content: {damages:?}"
            );
        }
        executions += 1;
        if (seconds == 0 && executions >= 200) || (seconds > 0 && Instant::now() >= deadline) {
            break;
        }
    }
    println!(
        "fuzz: {executions} executions in {} s, 0 panics",
        started.elapsed().as_secs()
    );
}
