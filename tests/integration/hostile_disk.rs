//! A full disk on the receiver, on real (small) tmpfs mounts: a load that would not fit is
//! refused before it starts, and an install that runs out of room mid-way leaves no
//! partial file and no applied mark.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ferry::*;
use crate::operations::{host, mails_to, own_mailbox};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount tmpfs on {} (the tests run as root)",
            dir.display()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

const SCHEMA: &str = "CREATE TABLE report (id integer PRIMARY KEY, \"imageName\" text); INSERT INTO report VALUES (1, 'a.jpeg');";

/// `[[files]]` sets for one side. On the receiver it comes right after `[inbox]`, so it
/// first sets a tiny `min_free`: the tmpfs mounts are megabytes, the default is 1 GiB.
fn files_extra(sets: &[(&str, &str)], side: &str) -> String {
    let reserve = if side == "receiver" {
        "min_free = \"4KiB\"\n\n"
    } else {
        ""
    };
    let sets: String = sets
        .iter()
        .map(|(name, dir)| {
            let include = if side == "sender" {
                "include = [\"*.jpeg\"]\n"
            } else {
                ""
            };
            format!("[[files]]\nname = \"{name}\"\ndir = \"{{scratch}}/{side}-{dir}\"\n{include}")
        })
        .collect();
    format!("{reserve}{sets}")
}

fn write_files(dir: &Path, count: usize, size: usize) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("f{i:03}.jpeg");
            let bytes: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            std::fs::write(dir.join(&name), &bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn assert_no_partial_files(dir: &Path, expected: &[(String, Vec<u8>)]) {
    for name in list_dir(dir) {
        assert!(
            !name.contains("pgferry-tmp"),
            "a temporary file was left: {name}"
        );
        let (_, bytes) = expected.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            &std::fs::read(dir.join(&name)).unwrap(),
            bytes,
            "{name} is incomplete"
        );
    }
}

#[test]
fn a_load_that_would_not_fit_is_refused_before_it_starts_and_alerts() {
    let ferry = Ferry::with(
        SCHEMA,
        r#"["report"]"#,
        &files_extra(&[("images", "images")], "sender"),
        &files_extra(&[("images", "images")], "receiver"),
    );
    let to = own_mailbox(&ferry);
    let images = write_files(&ferry.scratch.path("sender-images"), 3, 600_000);
    let disk = Tmpfs::mount(&ferry.scratch.path("receiver-images"), "size=1m");
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "not enough disk space for file set(s) \"images\": they need 1.7 MiB under {}, 1.0 MiB is free",
            disk.dir.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        ferry.ledger(),
        Vec::<String>::new(),
        "the database was touched"
    );
    assert_eq!(
        ferry.target.sql("SELECT to_regclass('report') IS NULL"),
        "t"
    );
    assert!(list_dir(&disk.dir).is_empty());
    assert_eq!(ferry.pending().len(), 1);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].subject,
        format!("[pgferry] FAILED: load on {}", host())
    );
    assert!(
        mails[0].body.contains("free disk space on the receiver"),
        "{}",
        mails[0].body
    );

    disk.remount("size=8m");
    ferry.receiver(&["load"]).expect_code(0);
    assert_no_partial_files(&disk.dir, &images);
    assert_eq!(list_dir(&disk.dir).len(), 3);
    assert_eq!(mails_to(&to).len(), 2, "no RECOVERED email");
}

#[test]
fn two_file_sets_that_fit_alone_but_not_together_are_refused() {
    let ferry = Ferry::with(
        SCHEMA,
        r#"["report"]"#,
        &files_extra(&[("images", "fs/images"), ("docs", "fs/docs")], "sender"),
        &files_extra(&[("images", "fs/images"), ("docs", "fs/docs")], "receiver"),
    );
    write_files(&ferry.scratch.path("sender-fs/images"), 1, 700_000);
    write_files(&ferry.scratch.path("sender-fs/docs"), 1, 700_000);
    let disk = Tmpfs::mount(&ferry.scratch.path("receiver-fs"), "size=1m");
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "not enough disk space for file set(s) \"images\", \"docs\": they need 1.3 MiB under"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(ferry.ledger(), Vec::<String>::new());
    drop(disk);
}

#[test]
fn an_install_that_runs_out_of_room_leaves_no_partial_file_and_no_applied_mark() {
    let ferry = Ferry::with(
        SCHEMA,
        r#"["report"]"#,
        &files_extra(&[("images", "images")], "sender"),
        &files_extra(&[("images", "images")], "receiver"),
    );
    let images = write_files(&ferry.scratch.path("sender-images"), 40, 1000);
    // Room for the bytes, not for 40 files: the filesystem runs out of inodes mid-way.
    let disk = Tmpfs::mount(
        &ferry.scratch.path("receiver-images"),
        "size=8m,nr_inodes=16",
    );
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("(file set images): No space left on device"),
        "{}",
        run.stderr
    );
    assert_no_partial_files(&disk.dir, &images);
    assert!(list_dir(&disk.dir).len() < 40);
    assert_eq!(ferry.pending().len(), 1, "the bundle was marked applied");
    assert_eq!(ferry.inbox_sub("applied"), Vec::<String>::new());

    disk.remount("nr_inodes=200");
    ferry.receiver(&["load"]).expect_code(0);
    assert_no_partial_files(&disk.dir, &images);
    assert_eq!(list_dir(&disk.dir).len(), 40);
    assert_eq!(ferry.ledger().len(), 1, "the data was loaded twice");
    assert_eq!(ferry.inbox_sub("applied").len(), 1);
}

#[test]
fn check_warns_when_a_file_dir_has_less_free_space_than_min_free() {
    let ferry = Ferry::with(
        SCHEMA,
        r#"["report"]"#,
        "",
        "min_free = \"2MiB\"\n\n[[files]]\nname = \"images\"\ndir = \"{scratch}/receiver-images\"\n",
    );
    let disk = Tmpfs::mount(&ferry.scratch.path("receiver-images"), "size=1m");
    // Made as an operator would before the first check: check itself creates nothing.
    std::fs::create_dir_all(&ferry.scratch.inbox).unwrap();
    std::fs::create_dir_all(ferry.scratch.path("receiver-state")).unwrap();
    let run = ferry.receiver(&["check"]);
    run.expect_code(0);
    assert_eq!(
        run.line("warn files images free space"),
        format!(
            "warn files images free space: only 1.0 MiB free under {} (threshold 2.0 MiB)",
            disk.dir.display()
        )
    );
}
