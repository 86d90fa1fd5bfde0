//! The `compression` setting: zstd bundles go all the way through (complete and partial,
//! verify, status, prune), gzip bundles stay plain `.tar.gz` that `tar` reads, and the
//! level is applied.

use crate::ferry::*;

/// Rows that compress well, so the level shows in the bundle's size.
const WORDY: &str = r#"
CREATE TABLE "AndroidRequests_report" (id serial PRIMARY KEY, "timeStamp" timestamptz NOT NULL DEFAULT now(), message text);
CREATE INDEX ON "AndroidRequests_report" ("timeStamp");
INSERT INTO "AndroidRequests_report" (message)
    SELECT 'report ' || g || ' from bus ' || (g % 97) || ': ' || md5(g::text) FROM generate_series(1, 20000) g;
"#;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn magic(path: &std::path::Path, len: usize) -> Vec<u8> {
    std::fs::read(path).unwrap()[..len].to_vec()
}

#[test]
fn zstd_bundles_go_through_complete_partial_verify_status_and_prune() {
    let ferry = Ferry::with(
        WORDY,
        REPORTS_TABLES,
        &format!("[compression]\ncodec = \"zstd\"\n{REPORTS_PARTIAL}"),
        "",
    );
    ferry.sender(&["complete"]).expect_code(0);
    let pending = ferry.pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let complete = &pending[0];
    assert!(complete.ends_with("-complete.tar.zst"), "{complete}");
    assert_eq!(magic(&ferry.scratch.inbox.join(complete), 4), ZSTD_MAGIC);
    let verify = ferry.receiver(&[
        "verify",
        &ferry.scratch.inbox.join(complete).display().to_string(),
    ]);
    verify.expect_code(0);
    assert!(
        verify.stdout.contains(complete.as_str()),
        "{}",
        verify.stdout
    );
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");

    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_report" SET message = 'changed', "timeStamp" = now() WHERE id % 1000 = 0"#);
    ferry.sender(&["partial"]).expect_code(0);
    let partial = ferry.pending();
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert!(partial[0].ends_with("-partial.tar.zst"), "{partial:?}");
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(
        ferry.ledger(),
        vec![
            format!("{complete} complete applied"),
            format!("{} partial applied", partial[0])
        ]
    );
    let status = ferry.receiver(&["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains(&partial[0]), "{}", status.stdout);

    // An old zstd bundle is pruned like a gzip one.
    let old = "pgferry-20200101T000000.000000Z-complete.tar.zst";
    std::fs::write(ferry.scratch.inbox.join("applied").join(old), b"old").unwrap();
    ferry.receiver(&["prune"]).expect_code(0);
    let applied = ferry.inbox_sub("applied");
    assert!(!applied.iter().any(|n| n == old), "{applied:?}");
    assert!(applied.contains(complete), "{applied:?}");
}

/// Stored (incompressible) files make the bundle several gzip members: `tar -z` must
/// still read it as one archive, byte for byte.
#[test]
fn a_gzip_bundle_is_a_plain_tar_gz_that_tar_extracts() {
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "[[files]]\nname = \"images\"\ndir = \"{scratch}/src-images\"\n",
        "[[files]]\nname = \"images\"\ndir = \"{scratch}/dst-images\"\n",
    );
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let text = b"a caption that compresses\n".repeat(4000);
    let images = ferry.scratch.path("src-images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("a.jpeg"), &noise).unwrap();
    std::fs::write(images.join("b.txt"), &text).unwrap();
    ferry.sender(&["complete"]).expect_code(0);
    let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
    assert!(bundle.to_str().unwrap().ends_with("-complete.tar.gz"));
    assert_eq!(magic(&bundle, 2), GZIP_MAGIC);
    let out = ferry.scratch.path("extracted");
    std::fs::create_dir_all(&out).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&bundle)
        .arg("-C")
        .arg(&out)
        .output()
        .unwrap();
    assert!(tar.status.success(), "{tar:?}");
    assert!(out.join("MANIFEST.json").is_file());
    assert!(out.join("data/000000.sql").is_file());
    assert!(std::fs::read(out.join("files/images/a.jpeg")).unwrap() == noise);
    assert!(std::fs::read(out.join("files/images/b.txt")).unwrap() == text);
    // The receiver reads it the same way.
    ferry.receiver(&["load"]).expect_code(0);
    assert!(std::fs::read(ferry.scratch.path("dst-images/a.jpeg")).unwrap() == noise);
}

#[test]
fn a_higher_level_makes_a_smaller_bundle_of_the_same_data() {
    let sizes: Vec<u64> = [1, 9]
        .iter()
        .map(|level| {
            let ferry = Ferry::with(
                WORDY,
                REPORTS_TABLES,
                &format!("[compression]\nlevel = {level}\n"),
                "",
            );
            ferry.sender(&["complete"]).expect_code(0);
            let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
            let size = std::fs::metadata(bundle).unwrap().len();
            ferry.receiver(&["load"]).expect_code(0);
            ferry.assert_same("\"AndroidRequests_report\"", "id");
            size
        })
        .collect();
    assert!(
        sizes[1] < sizes[0] * 95 / 100,
        "level 9 should be clearly smaller than level 1: {sizes:?}"
    );
}

#[test]
fn a_bad_compression_setting_is_a_config_error_naming_the_key() {
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "[compression]\ncodec = \"zstd\"\nlevel = 25\n",
        "",
    );
    let run = ferry.sender(&["check"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("key compression")
            && run
                .stderr
                .contains("level 25 is out of range for zstd, expected 1 to 19"),
        "{}",
        run.stderr
    );
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "[compression]\ncodec = \"lz4\"\n",
        "",
    );
    let run = ferry.sender(&["check"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("unknown codec \"lz4\", expected \"gzip\" or \"zstd\""),
        "{}",
        run.stderr
    );
}
