//! A gzip stream whose deflate level can change between entries. A bundle's images and
//! other already-compressed files do not shrink, and deflate spends as long failing on
//! them as it does on text (about 50 MB/s at level 2, measured in BENCHMARKS.md): they are
//! stored instead (level 0, a copy), and the stream goes back to its level for the next
//! entry that compresses.
//!
//! Each change of level starts a new gzip member (RFC 1952 allows any number, and `gzip`
//! and `tar -z` read them as one stream): a deflate stream's level cannot change midway
//! through flate2 here. A run of stored files shares one member, so a bundle usually has
//! three: dump, files, manifest.

use std::io::{self, Write};

use flate2::{Compress, Crc, FlushCompress, Status};

/// gzip magic, deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// Output produced per call into the compressor.
const OUT: usize = 128 * 1024;

pub struct GzipWriter<W: Write> {
    inner: W,
    compress: Compress,
    crc: Crc,
    out: Vec<u8>,
    /// The level chosen for what compresses.
    level: u32,
    /// Whether the current member stores (level 0) instead.
    storing: bool,
}

impl<W: Write> GzipWriter<W> {
    pub fn new(mut inner: W, level: u32) -> io::Result<GzipWriter<W>> {
        inner.write_all(&HEADER)?;
        Ok(GzipWriter {
            inner,
            compress: Compress::new(flate2::Compression::new(level), false),
            crc: Crc::new(),
            out: Vec::with_capacity(OUT),
            level,
            storing: false,
        })
    }

    /// Stores what follows (level 0), or compresses it at the writer's level; a change
    /// starts a new member.
    pub fn store(&mut self, storing: bool) -> io::Result<()> {
        if storing == self.storing {
            return Ok(());
        }
        self.end_member()?;
        self.inner.write_all(&HEADER)?;
        let level = if storing { 0 } else { self.level };
        self.compress = Compress::new(flate2::Compression::new(level), false);
        self.crc = Crc::new();
        self.storing = storing;
        Ok(())
    }

    /// Ends the last member and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_member()?;
        Ok(self.inner)
    }

    /// Ends the deflate stream and writes the member's trailer: CRC-32 and size.
    fn end_member(&mut self) -> io::Result<()> {
        loop {
            self.out.clear();
            let status = self
                .compress
                .compress_vec(&[], &mut self.out, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            self.inner.write_all(&self.out)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pos = 0;
        while pos < buf.len() {
            let before = self.compress.total_in();
            self.out.clear();
            self.compress
                .compress_vec(&buf[pos..], &mut self.out, FlushCompress::None)
                .map_err(io::Error::other)?;
            let used =
                usize::try_from(self.compress.total_in() - before).map_err(io::Error::other)?;
            if used == 0 && self.out.is_empty() {
                return Err(io::Error::other("the compressor made no progress"));
            }
            self.crc.update(&buf[pos..pos + used]);
            pos += used;
            self.inner.write_all(&self.out)?;
        }
        Ok(buf.len())
    }

    /// Passes on a flush without ending a deflate block: only `finish` completes the stream.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::noise;
    use std::io::Read;

    fn text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"pgferry ships rows\n"[i % 19]).collect()
    }

    #[test]
    fn levels_change_between_pieces_and_any_gzip_reader_reads_it() {
        let pieces = [text(300_000), noise(500_000), noise(1000), text(200_000)];
        let stored = [false, true, true, false];
        let mut writer = GzipWriter::new(Vec::new(), 2).unwrap();
        for (piece, storing) in pieces.iter().zip(stored) {
            writer.store(storing).unwrap();
            writer.write_all(piece).unwrap();
        }
        let gzip = writer.finish().unwrap();
        let all: Vec<u8> = pieces.concat();
        // Stored noise adds only block headers; the text still compresses.
        assert!(gzip.len() < 501_000 + 1000 + 60_000, "{}", gzip.len());
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(gzip.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == all, "{} bytes back of {}", back.len(), all.len());
        // And the system's gzip agrees, trailer (CRC, size) included.
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&gzip).unwrap());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success());
        assert!(
            out.stdout == all,
            "gzip gave {} bytes of {}",
            out.stdout.len(),
            all.len()
        );
    }

    #[test]
    fn an_empty_stream_is_valid_gzip() {
        let gzip = GzipWriter::new(Vec::new(), 2).unwrap().finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gzip.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
