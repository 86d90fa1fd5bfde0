//! What `sender check-remote` asks of an open connection beyond `connect`: that a file can
//! really be written, read back and deleted in the inbox, and how much room is left there.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ssh2::ExtendedData;

use super::Connection;

/// More than `df` ever prints for one directory; a server that sends more is not `df`.
const DF_OUTPUT_LIMIT: u64 = 64 * 1024;

impl Connection {
    /// Writes a small file under a name the receiver ignores (hidden, ending in `.part`),
    /// fsyncs it as an upload would, reads it back, compares, and deletes it. Returns the
    /// probe's path.
    pub fn probe(&self) -> anyhow::Result<String> {
        let path = self.path(&probe_name());
        let content = format!("pgferry check-remote probe {path}\n");
        if let Err(err) = self.write_and_read_back(&path, content.as_bytes()) {
            self.discard(&path);
            return Err(err);
        }
        self.sftp
            .unlink(Path::new(&path))
            .with_context(|| format!("delete {path} on {}", self.label))?;
        Ok(path)
    }

    fn write_and_read_back(&self, path: &str, content: &[u8]) -> anyhow::Result<()> {
        let mut file = self
            .sftp
            .create(Path::new(path))
            .with_context(|| format!("create {path} on {}", self.label))?;
        file.write_all(content)
            .with_context(|| format!("write {path} on {}", self.label))?;
        file.fsync()
            .with_context(|| format!("fsync {path} on {}", self.label))?;
        file.close()
            .with_context(|| format!("close {path} on {}", self.label))?;
        drop(file);
        let mut back = Vec::new();
        self.sftp
            .open(Path::new(path))
            .with_context(|| format!("open {path} on {} to read it back", self.label))?
            .take(content.len() as u64 + 1)
            .read_to_end(&mut back)
            .with_context(|| format!("read back {path} on {}", self.label))?;
        if back != content {
            bail!(
                "read back {path} on {}: got {} bytes that differ from the {} bytes written",
                self.label,
                back.len(),
                content.len()
            );
        }
        Ok(())
    }

    /// Bytes available in the inbox, or `None` when unknown. ssh2 has no statvfs, so this
    /// runs `df` over an exec channel; an SFTP-only account refuses that, and a server
    /// whose `df` prints something else is not understood. Neither is an error: free space
    /// is only a warning ahead of failing uploads.
    pub fn free_space(&self) -> Option<u64> {
        let kib = self
            .run_df()
            .and_then(|output| {
                parse_df_available(&output)
                    .with_context(|| format!("understand the output of df: {output:?}"))
            })
            .map_err(|err| {
                tracing::debug!(host = %self.label, error = %format!("{err:#}"), "free space in the inbox is unknown");
            })
            .ok()?;
        Some(kib.saturating_mul(1024))
    }

    fn run_df(&self) -> anyhow::Result<String> {
        let command = format!("df -Pk -- {}", shell_quote(&self.dir));
        let mut channel = self
            .session
            .channel_session()
            .with_context(|| format!("open a channel on {}", self.label))?;
        channel.handle_extended_data(ExtendedData::Ignore)?;
        channel
            .exec(&command)
            .with_context(|| format!("run {command} on {}", self.label))?;
        // An SFTP-only account starts internal-sftp instead of df; closing its input makes
        // it exit at once instead of waiting out the timeout.
        channel.send_eof()?;
        let mut output = String::new();
        (&mut channel)
            .take(DF_OUTPUT_LIMIT)
            .read_to_string(&mut output)
            .with_context(|| format!("read the output of {command} on {}", self.label))?;
        channel.wait_close()?;
        let status = channel.exit_status()?;
        if status != 0 {
            bail!("{command} on {} exited with status {status}", self.label);
        }
        Ok(output)
    }
}

/// `.pgferry-probe-<pid>-<nanos>.part`: unique, and ignored by the receiver.
fn probe_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(".pgferry-probe-{}-{nanos}.part", std::process::id())
}

/// `text` as one word for a POSIX shell: single-quoted, each `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The "Available" KiB of `df -Pk`'s single filesystem line, found by the header's column.
fn parse_df_available(output: &str) -> Option<u64> {
    let mut lines = output.lines().filter(|line| !line.trim().is_empty());
    let column = lines
        .next()?
        .split_whitespace()
        .position(|word| word == "Available")?;
    lines.next()?.split_whitespace().nth(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_available_is_read_from_its_column() {
        let output = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                      /dev/vda         264212084 15335340  79950548      17% /srv/my inbox\n";
        assert_eq!(parse_df_available(output), Some(79950548));
    }

    #[test]
    fn df_output_that_is_not_df_is_unknown() {
        assert_eq!(parse_df_available(""), None);
        assert_eq!(
            parse_df_available("This service allows sftp connections only.\n"),
            None
        );
        assert_eq!(
            parse_df_available("Filesystem 1024-blocks Used Available Capacity Mounted on\n"),
            None
        );
        assert_eq!(
            parse_df_available(
                "Filesystem 1K-blocks Used Available Use% Mounted on\nx 1 2 lots 4% /\n"
            ),
            None
        );
    }

    #[test]
    fn shell_quote_keeps_a_directory_one_word() {
        assert_eq!(shell_quote("/home/t/inbox"), "'/home/t/inbox'");
        assert_eq!(shell_quote("/it's $(here)"), r"'/it'\''s $(here)'");
    }

    #[test]
    fn probe_names_are_ones_the_receiver_ignores() {
        let name = probe_name();
        assert!(
            name.starts_with(".pgferry-probe-") && name.ends_with(".part"),
            "{name}"
        );
        assert!(crate::bundle::BundleName::parse(&name).is_none());
    }
}
