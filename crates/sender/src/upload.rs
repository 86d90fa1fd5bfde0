//! Opens the receiver's inbox for one job: connect, make the directory, clear this job's
//! leftovers of earlier killed runs (guarantee 1).

use anyhow::Context;
use pgferry::bundle::Kind;
use pgferry::settings::sender::Remote;
use pgferry::sftp;

pub fn open_inbox(remote: &Remote, kind: Kind) -> anyhow::Result<sftp::Connection> {
    let connection = sftp::connect(remote)?;
    connection.make_dir()?;
    let removed = connection
        .remove_leftovers(kind)
        .with_context(|| format!("clean up the inbox {} on {}", remote.dir, connection.label))?;
    for name in removed {
        tracing::info!(host = %connection.label, leftover = %name, "removed the leftover of an interrupted upload");
    }
    Ok(connection)
}
