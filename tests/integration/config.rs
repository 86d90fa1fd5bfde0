//! Every class of config error exits 2 with one message naming the file and the key.

use crate::util::*;

/// Runs `sender check` on an edited config. The scratch directory comes back with the
/// result, so it lives as long as the test and is removed with it.
fn sender_config_error(edit: impl Fn(String) -> String) -> (Run, String, Scratch) {
    let scratch = Scratch::new();
    let source = Db::create(Cluster::Primary);
    let text = edit(sender_toml(&scratch, &source, r#"["public.*"]"#, ""));
    let path = scratch.write("sender.toml", &text);
    let run = run_config("sender", &path, &["check"]);
    (run, path.display().to_string(), scratch)
}

#[test]
fn unknown_key() {
    let (run, file, _scratch) =
        sender_config_error(|t| t.replace("[state]\n", "[state]\ndirr = \"/x\"\n"));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, line 22, key state.dirr: unknown key, expected `dir`"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_key() {
    let (run, file, _scratch) = sender_config_error(|t| t.replace("overlap = \"2m\"\n", ""));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, line 8, key partial.overlap: required key is missing"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn wrong_type() {
    let (run, file, _scratch) =
        sender_config_error(|t| t.replace("timeout = \"20s\"", "timeout = 20"));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!("error: config {file}, line 19, key remote.timeout: invalid type: integer `20`, expected a string")),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_duration() {
    let (run, file, _scratch) =
        sender_config_error(|t| t.replace("overlap = \"2m\"", "overlap = \"2 moons\""));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, line 9, key partial.overlap: invalid duration \"2 moons\""
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_cron() {
    let (run, file, _scratch) =
        sender_config_error(|t| t.replace("partial = \"*/5 * * * *\"", "partial = \"*/5 * *\""));
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, line 33, key schedule.partial: invalid cron schedule \"*/5 * *\": it has 3 fields, expected 5 (\"*/5 * * * *\") or 6 with seconds first"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_size() {
    let scratch = Scratch::new();
    let target = Db::create(Cluster::Secondary);
    let text = receiver_toml(&scratch, &target, "")
        .replace("[inbox]\n", "[inbox]\nmin_free = \"a lot\"\n");
    let path = scratch.write("receiver.toml", &text);
    let run = run_config("receiver", &path, &["check"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {}, line 8, key inbox.min_free: invalid size \"a lot\", expected a number with a unit like \"512MiB\", \"2GiB\" or \"100MB\"",
            path.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let run = run(
        "sender",
        &["check", "-c", "/nonexistent/pgferry/sender.toml"],
    );
    run.expect_code(2);
    assert!(run.stderr.contains("error: config /nonexistent/pgferry/sender.toml: cannot read the file: No such file or directory"), "{}", run.stderr);
}

#[test]
fn the_config_path_comes_from_pgferry_config() {
    let run = run_with(
        "receiver",
        &["check"],
        &[("PGFERRY_CONFIG", "/nonexistent/from-env.toml")],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("config /nonexistent/from-env.toml: cannot read the file"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_example_configs_parse_with_the_binaries() {
    // `check` gets past parsing (the database in the example does not exist here, so it
    // fails later, with exit 1, not 2).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config");
    for (program, file) in [("sender", "sender.toml"), ("receiver", "receiver.toml")] {
        let path = root.join(file);
        let run = run_config(program, &path, &["check"]);
        assert_ne!(run.code, 2, "{file} does not parse: {}", run.stderr);
        assert!(run.stdout.contains("config:"), "{}", run.stdout);
    }
}

#[test]
fn help_names_each_binarys_own_default_config() {
    for program in ["sender", "receiver"] {
        for args in [&["--help"][..], &["check", "--help"][..]] {
            let run = run(program, args);
            run.expect_code(0);
            // Help wraps to the terminal width: compare words, not lines.
            let words = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                words.contains(&format!(
                    "[default: $PGFERRY_CONFIG, else /etc/pgferry/{program}.toml]"
                )) && !words.contains("<side>"),
                "{program} {args:?}:\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn the_example_configs_name_a_readme_section_that_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for file in ["sender.toml", "receiver.toml"] {
        let text = std::fs::read_to_string(root.join("config").join(file)).unwrap();
        let (_, rest) = text
            .split_once("described in the README (\"")
            .unwrap_or_else(|| panic!("{file} does not point to the README"));
        let section = rest.split('"').next().unwrap();
        assert!(
            readme.lines().any(|l| l == format!("## {section}")),
            "{file} points to README section {section:?}, which does not exist"
        );
    }
}

#[test]
fn completions_and_man_pages_come_from_the_binaries_themselves() {
    for program in ["sender", "receiver"] {
        let bash = run(program, &["completions", "bash"]);
        bash.expect_code(0);
        assert!(
            bash.stdout.contains(&format!("complete -F _{program} "))
                && bash.stdout.contains("status"),
            "{}",
            bash.stdout
        );
        let zsh = run(program, &["completions", "zsh"]);
        zsh.expect_code(0);
        assert!(
            zsh.stdout.starts_with(&format!("#compdef {program}")),
            "{}",
            zsh.stdout
        );
        let fish = run(program, &["completions", "fish"]);
        fish.expect_code(0);
        assert!(
            fish.stdout.contains(&format!("complete -c {program} ")),
            "{}",
            fish.stdout
        );
        let man = run(program, &["man"]);
        man.expect_code(0);
        assert!(
            man.stdout.contains(&format!(".TH {program} 1")),
            "{}",
            man.stdout
        );
        assert!(
            man.stdout.contains(&format!("/etc/pgferry/{program}.toml")),
            "{}",
            man.stdout
        );
        run(program, &["completions", "tcsh"]).expect_code(2);
    }
    assert!(run("sender", &["man"]).stdout.contains("check\\-remote"));
    assert!(run("receiver", &["man"]).stdout.contains("load"));
}
