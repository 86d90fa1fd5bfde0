//! The bundle's entries as the load pulls them, in order: the schema, the database part,
//! the files. Each entry is checked against its checksum when the next is taken.

use std::io::{self, Read};

use pgferry::bundle::entry_path::EntryKind;
use pgferry::bundle::reader::EntryStream;
use pgferry::bundle::Entry;
use pgferry::progress::Progress;

/// The bundle's entries as the load pulls them: the one in hand, and the bytes read so far
/// for the progress bar.
pub struct Entries<'s, 'a> {
    stream: &'s mut EntryStream<'a>,
    pub current: Option<(EntryKind, &'a Entry)>,
    passed: u64,
    progress: &'s Progress,
}

impl<'s, 'a> Entries<'s, 'a> {
    pub fn start(stream: &'s mut EntryStream<'a>, progress: &'s Progress) -> anyhow::Result<Self> {
        let current = stream.next_entry()?;
        Ok(Entries {
            stream,
            current,
            passed: 0,
            progress,
        })
    }

    /// Checks the entry in hand and takes the next.
    pub fn advance(&mut self) -> anyhow::Result<()> {
        self.current = self.stream.next_entry()?;
        Ok(())
    }

    /// The entry in hand's bytes, counted as they are read.
    pub fn body(&mut self) -> Counted<'_> {
        Counted {
            inner: self.stream.body(),
            passed: &mut self.passed,
            progress: self.progress,
        }
    }

    /// Passes over the database entries of a bundle whose database part is loaded.
    pub fn skip_database(&mut self) -> anyhow::Result<()> {
        while matches!(
            self.current,
            Some((EntryKind::Data | EntryKind::Rows | EntryKind::Changes, _))
        ) {
            self.advance()?;
        }
        Ok(())
    }
}

/// Reports the bytes of the bundle's entries read so far.
pub struct Counted<'r> {
    inner: &'r mut dyn Read,
    passed: &'r mut u64,
    progress: &'r Progress,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.passed += n as u64;
        self.progress.bytes(*self.passed);
        Ok(n)
    }
}
