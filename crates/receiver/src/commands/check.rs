//! `receiver check`: the local self-test, one ok/warn/FAIL line per item.

use std::path::Path;

use pgferry::checks;
use pgferry::exit::Exit;
use pgferry::pg::Psql;
use pgferry::process::find_program;
use pgferry::report::Report;
use pgferry::settings::ReceiverSettings;

pub fn run(config: &Path) -> anyhow::Result<Exit> {
    let settings = ReceiverSettings::read(config)?;
    let mut report = Report::new();
    checks::config_permissions(&mut report, config);
    checks::running_user(&mut report);
    checks::pg_tool(&mut report, "psql");
    checks::database(&mut report, &Psql::new(settings.target.connection()));
    pgferry::seal::probe::receiver(&mut report, &settings.bundle);
    if let Some(store) = &settings.inbox.store {
        // Read access is all a receiver needs, and all it is asked for.
        checks::s3_store(&mut report, store, false);
    }
    let min_free = settings.inbox.min_free();
    if checks::dir_writable(&mut report, "inbox", &settings.inbox.dir) {
        checks::free_space_item(
            &mut report,
            "inbox free space",
            &settings.inbox.dir,
            min_free,
        );
    }
    for set in &settings.files {
        let subject = format!("files {}", set.name);
        if checks::dir_writable(&mut report, &subject, &set.dir) {
            checks::free_space_item(
                &mut report,
                &format!("{subject} free space"),
                &set.dir,
                min_free,
            );
        }
    }
    if let Some(post) = &settings.postprocess {
        let program = &post.command[0];
        let found = if program.contains('/') {
            Path::new(program).is_file().then(|| program.into())
        } else {
            find_program(program)
        };
        match found {
            Some(path) => report.ok("postprocess", format!("{} found", path.display())),
            None => report.fail("postprocess", format!("command {program:?} not found")),
        }
    }
    checks::dir_writable(&mut report, "state dir", &settings.state.dir);
    println!("{}", report.summary());
    Ok(if report.failed() {
        Exit::Failed
    } else {
        Exit::Done
    })
}
