//! `sender check` and `receiver check` against the real environment.

use crate::util::*;

/// A source database shaped like the original app: a report table with a `"timeStamp"`.
fn source_with_report(indexed: bool) -> Db {
    let db = Db::create(Cluster::Primary);
    db.sql(
        r#"CREATE TABLE "AndroidRequests_report" (id serial PRIMARY KEY, "timeStamp" timestamptz NOT NULL, "imageName" text);
           CREATE TABLE "AndroidRequests_event" (id serial PRIMARY KEY, name text);"#,
    );
    if indexed {
        db.sql(r#"CREATE INDEX ON "AndroidRequests_report" ("timeStamp")"#);
    }
    db
}

const PARTIAL: &str = r#"[[partial.tables]]
table = "public.AndroidRequests_report"
changed_at = "timeStamp"
"#;

fn files_section(scratch: &Scratch) -> String {
    let images = scratch.path("images");
    std::fs::create_dir_all(&images).unwrap();
    format!(
        "[[files]]\nname = \"images\"\ndir = \"{}\"\ninclude = [\"*.jpeg\"]\npartial = true\nreferenced_by = [\"public.AndroidRequests_report.imageName\"]\n",
        images.display()
    )
}

/// Makes the state and inbox directories, as an operator does before the first check:
/// check itself creates nothing.
fn make_dirs(scratch: &Scratch) {
    for dir in [
        scratch.path("sender-state"),
        scratch.path("receiver-state"),
        scratch.inbox.clone(),
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
}

fn sender_check(scratch: &Scratch, text: &str) -> Run {
    make_dirs(scratch);
    let path = scratch.write("sender.toml", text);
    run_config("sender", &path, &["check"])
}

/// The tests run as root, and check warns about that: the warning is expected here.
const ROOT_WARNING: &str = "warn user: running as root: the directory checks show root's rights, not the service user's; hint: run the check as the account the jobs run as (sudo -u USER ...)";

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// Warning and failure lines, the expected root warning left out.
fn complaints(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| (l.starts_with("FAIL") || l.starts_with("warn")) && *l != ROOT_WARNING)
        .collect()
}

fn insert_partial(text: String, extra: &str) -> String {
    text.replace(
        "overlap = \"2m\"\n",
        &format!("overlap = \"2m\"\n\n{extra}"),
    )
}

#[test]
fn sender_check_passes_against_the_real_environment() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let text = insert_partial(
        sender_toml(
            &scratch,
            &source,
            r#"["public.AndroidRequests_*"]"#,
            &files_section(&scratch),
        ),
        PARTIAL,
    );
    let run = sender_check(&scratch, &text);
    run.expect_code(0);
    assert_eq!(complaints(&run), Vec::<&str>::new(), "{}", run.stdout);
    assert_eq!(run.stdout.contains(ROOT_WARNING), running_as_root());
    assert!(run
        .line("ok   database:")
        .contains("reachable, server version 15."));
    assert_eq!(
        run.line("ok   table public.AndroidRequests_*:"),
        "ok   table public.AndroidRequests_*: 2 table(s)"
    );
    assert!(run
        .line("ok   partial table public.AndroidRequests_report:")
        .contains("changed_at column \"timeStamp\" is indexed"));
    assert!(run.stdout.contains(
        "ok   files images referenced_by public.AndroidRequests_report.imageName: column exists"
    ));
    assert!(run.stdout.contains("ok   state dir:"));
    assert!(run
        .stdout
        .contains("ok   pg_dump version: pg_dump 15 can dump server 15"));
}

#[test]
fn sender_check_warns_about_an_unindexed_changed_at_column() {
    let scratch = Scratch::new();
    let source = source_with_report(false);
    let text = insert_partial(
        sender_toml(&scratch, &source, r#"["public.AndroidRequests_*"]"#, ""),
        PARTIAL,
    );
    let run = sender_check(&scratch, &text);
    run.expect_code(0);
    assert_eq!(
        run.line("warn partial table"),
        r#"warn partial table public.AndroidRequests_report: changed_at column "timeStamp" has no index, so every partial scans the whole table; hint: CREATE INDEX ON "public"."AndroidRequests_report" ("timeStamp")"#
    );
}

#[test]
fn sender_check_warns_about_a_world_readable_config() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let path = scratch.write(
        "sender.toml",
        &sender_toml(&scratch, &source, r#"["public.*"]"#, ""),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    make_dirs(&scratch);
    let run = run_config("sender", &path, &["check"]);
    run.expect_code(0);
    assert_eq!(
        run.line("warn config:"),
        format!(
            "warn config: {0} is readable by other users (mode 644); hint: chmod o-r {0}",
            path.display()
        )
    );
}

#[test]
fn sender_check_fails_when_the_database_is_down() {
    let scratch = Scratch::new();
    let source = Db {
        name: "nowhere".into(),
        port: free_port(),
    };
    let run = sender_check(
        &scratch,
        &sender_toml(&scratch, &source, r#"["public.*"]"#, ""),
    );
    run.expect_code(1);
    let line = run.line("FAIL database:");
    assert!(line.starts_with(&format!("FAIL database: cannot connect to 127.0.0.1:{}/nowhere: query 127.0.0.1:{}/nowhere: psql failed (exit status 2): psql: error: connection to server at \"127.0.0.1\", port {} failed: Connection refused", source.port, source.port, source.port)), "{line}");
}

#[test]
fn sender_check_fails_when_the_ssh_key_is_unreadable() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let text = sender_toml(&scratch, &source, r#"["public.*"]"#, "")
        .replace(Env::get().var("SSH_KEY"), "/nonexistent/id_ed25519");
    let run = sender_check(&scratch, &text);
    run.expect_code(1);
    assert_eq!(run.line("FAIL private key:"), "FAIL private key: /nonexistent/id_ed25519 is not readable: No such file or directory (os error 2)");
}

#[test]
fn sender_check_fails_when_a_table_does_not_exist() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let run = sender_check(
        &scratch,
        &sender_toml(
            &scratch,
            &source,
            r#"["public.AndroidRequests_report", "public.Missing"]"#,
            "",
        ),
    );
    run.expect_code(1);
    assert!(run.line("FAIL table public.Missing:").ends_with(
        "key source.tables[1]: \"public.Missing\" matches no table in the source database; hint: names are case-sensitive, as the catalog spells them"
    ), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("ok   table public.AndroidRequests_report: 1 table(s)"));
}

#[test]
fn sender_check_fails_when_a_changed_at_column_is_missing() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let text = insert_partial(
        sender_toml(&scratch, &source, r#"["public.*"]"#, ""),
        &PARTIAL.replace("changed_at = \"timeStamp\"", "changed_at = \"timestamp\""),
    );
    let run = sender_check(&scratch, &text);
    run.expect_code(1);
    assert_eq!(
        run.line("FAIL partial table"),
        "FAIL partial table public.AndroidRequests_report: changed_at column \"timestamp\" does not exist in public.AndroidRequests_report"
    );
}

#[test]
fn sender_check_fails_when_the_state_dir_is_not_writable() {
    let scratch = Scratch::new();
    let source = source_with_report(true);
    let blocker = scratch.write("not-a-dir", "a file where a directory should be");
    let text = sender_toml(&scratch, &source, r#"["public.*"]"#, "").replace(
        &scratch.path("sender-state").display().to_string(),
        &blocker.join("state").display().to_string(),
    );
    let run = sender_check(&scratch, &text);
    run.expect_code(1);
    assert_eq!(
        run.line("FAIL state dir:"),
        format!(
            "FAIL state dir: cannot stat {}/state: Not a directory (os error 20)",
            blocker.display()
        )
    );
}

#[test]
fn receiver_check_passes_against_the_real_environment() {
    let scratch = Scratch::new();
    let target = Db::create(Cluster::Secondary);
    let images = scratch.path("images");
    std::fs::create_dir(&images).unwrap();
    make_dirs(&scratch);
    let extra = format!(
        "[[files]]\nname = \"images\"\ndir = \"{}\"\n\n[postprocess]\ncommand = [\"true\"]\n",
        images.display()
    );
    let path = scratch.write("receiver.toml", &receiver_toml(&scratch, &target, &extra));
    let run = run_config("receiver", &path, &["check"]);
    run.expect_code(0);
    assert_eq!(complaints(&run), Vec::<&str>::new(), "{}", run.stdout);
    assert!(
        run.stdout.ends_with(&format!(
            "check: 9 ok, {} warnings, 0 failed\n",
            u8::from(running_as_root())
        )),
        "{}",
        run.stdout
    );
    assert!(run.line("ok   inbox:").ends_with("is writable"));
    assert!(run.line("ok   files images:").ends_with("is writable"));
    assert!(run.line("ok   inbox free space:").contains(" free under "));
    assert!(run.line("ok   postprocess:").ends_with("true found"));
}

#[test]
fn receiver_check_fails_when_the_database_is_down() {
    let scratch = Scratch::new();
    let target = Db {
        name: "nowhere".into(),
        port: free_port(),
    };
    let path = scratch.write("receiver.toml", &receiver_toml(&scratch, &target, ""));
    let run = run_config("receiver", &path, &["check"]);
    run.expect_code(1);
    assert!(
        run.line("FAIL database:").contains("Connection refused"),
        "{}",
        run.stdout
    );
}

#[test]
fn receiver_check_fails_when_the_hook_is_missing() {
    let scratch = Scratch::new();
    let target = Db::create(Cluster::Secondary);
    let extra = "[postprocess]\ncommand = [\"/nonexistent/refresh\"]\n";
    let path = scratch.write("receiver.toml", &receiver_toml(&scratch, &target, extra));
    let run = run_config("receiver", &path, &["check"]);
    run.expect_code(1);
    assert_eq!(
        run.line("FAIL postprocess:"),
        "FAIL postprocess: command \"/nonexistent/refresh\" not found"
    );
}

#[test]
fn receiver_check_creates_nothing_and_names_the_command_that_makes_a_missing_directory() {
    let scratch = Scratch::new();
    let target = Db::create(Cluster::Secondary);
    let images = scratch.path("srv/images");
    let extra = format!(
        "[[files]]\nname = \"images\"\ndir = \"{}\"\n",
        images.display()
    );
    let path = scratch.write("receiver.toml", &receiver_toml(&scratch, &target, &extra));
    let run = run_config("receiver", &path, &["check"]);
    run.expect_code(1);
    let owner = if running_as_root() {
        "SERVICE_USER".to_string()
    } else {
        std::env::var("USER").unwrap()
    };
    for (subject, dir) in [
        ("inbox", scratch.inbox.clone()),
        ("files images", images.clone()),
        ("state dir", scratch.path("receiver-state")),
    ] {
        assert_eq!(
            run.line(&format!("FAIL {subject}:")),
            format!(
                "FAIL {subject}: {0} does not exist; hint: create it as root with `install -d -o {owner} -m 750 {0}`",
                dir.display()
            )
        );
        assert!(!dir.exists(), "check created {}", dir.display());
    }
    assert!(!scratch.path("srv").exists());
}

/// Issue 20: run as root on a fresh machine, `check` with the example configs created
/// `/var/lib/pgferry`, the inbox and the file directories, owned by root. The examples'
/// directories are moved under a scratch root, so they are surely missing here.
#[test]
fn check_with_the_example_configs_leaves_the_host_as_it_found_it() {
    let scratch = Scratch::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    for (program, file) in [("sender", "sender.toml"), ("receiver", "receiver.toml")] {
        let mut dirs = Vec::new();
        let text: String = std::fs::read_to_string(root.join(file))
            .unwrap()
            .lines()
            .map(|line| match line.strip_prefix("dir = \"/") {
                Some(rest) => {
                    let (dir, comment) = rest.split_once('"').unwrap();
                    let moved = scratch.path(&format!("host/{dir}"));
                    dirs.push(moved.clone());
                    format!("dir = \"{}\"{comment}\n", moved.display())
                }
                None => format!("{line}\n"),
            })
            .collect();
        assert!(dirs.len() >= 3, "{file} names {} directories", dirs.len());
        let path = scratch.write(file, &text);
        let run = run_config(program, &path, &["check"]);
        run.expect_code(1);
        for dir in &dirs {
            if program == "sender" && !dir.ends_with("pgferry") {
                continue; // the file sets it reads and the remote inbox: not its to make
            }
            assert!(
                run.stdout.contains(&format!(
                    "{0} does not exist; hint: create it as root with `install -d -o ",
                    dir.display()
                )),
                "{}",
                run.stdout
            );
        }
        assert!(
            !scratch.path("host").exists(),
            "{program} check created directories: {}",
            run.stdout
        );
    }
}
