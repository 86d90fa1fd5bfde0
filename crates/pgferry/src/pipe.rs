//! Bounded hand-offs between threads. A bundle stream has stages that each keep a core
//! busy: `pg_dump` and compression on the sender, hashing and the SSH upload after it;
//! reading and hashing the file and decompressing it on the receiver. Chained in one
//! thread, each stage waits for the others. `ReadAhead` and `WriteBehind` move one end
//! of a stream to its own thread, with at most `DEPTH` chunks of `CHUNK` bytes in flight,
//! so the stages overlap and memory stays flat however big the bundle is.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes per hand-off: big enough that the channel costs nothing next to the work on
/// the bytes, small enough that `DEPTH` of them are a few MiB.
pub const CHUNK: usize = 1 << 20;
/// Chunks in flight between two stages: more than one dump part
/// ([`crate::bundle::writer::PART_SIZE`]), so `pg_dump` never waits for a compression.
pub const DEPTH: usize = 6;

/// Reads `inner` on its own thread, up to `DEPTH` chunks ahead of the consumer.
pub struct ReadAhead<R> {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
    thread: Option<JoinHandle<R>>,
}

impl<R: Read + Send + 'static> ReadAhead<R> {
    pub fn new(mut inner: R) -> ReadAhead<R> {
        let (send, chunks) = sync_channel(DEPTH);
        let thread = std::thread::spawn(move || {
            loop {
                match fill(&mut inner) {
                    Ok(chunk) if chunk.is_empty() => break,
                    Ok(chunk) => {
                        if send.send(Ok(chunk)).is_err() {
                            break; // The consumer is gone: stop reading.
                        }
                    }
                    Err(err) => {
                        let _ = send.send(Err(err));
                        break;
                    }
                }
            }
            inner
        });
        ReadAhead {
            chunks,
            current: Vec::new(),
            pos: 0,
            ended: false,
            thread: Some(thread),
        }
    }

    /// Hands back the inner reader once the stream has been read to its end.
    pub fn finish(mut self) -> io::Result<R> {
        if !self.ended {
            return Err(io::Error::other("the stream was not read to its end"));
        }
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("read-ahead thread already joined"))?;
        thread
            .join()
            .map_err(|_| io::Error::other("the read-ahead thread panicked"))
    }
}

/// One chunk: reads until `CHUNK` bytes or the end of the stream.
fn fill(inner: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(CHUNK);
    inner.take(CHUNK as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

impl<R> BufRead for ReadAhead<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.current.len() && !self.ended {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(err)) => {
                    self.ended = true;
                    return Err(err);
                }
                // The thread ended without an error: the end of the stream.
                Err(_) => self.ended = true,
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.current.len());
    }
}

impl<R> Read for ReadAhead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Writes to `inner` on its own thread; `write` returns once the bytes are queued.
/// `finish` waits for every byte to be written and reports the first error.
pub struct WriteBehind<W> {
    pending: Vec<u8>,
    chunks: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> WriteBehind<W> {
    pub fn new(mut inner: W) -> WriteBehind<W> {
        let (send, chunks) = sync_channel::<Vec<u8>>(DEPTH);
        let thread = std::thread::spawn(move || {
            for chunk in chunks {
                inner.write_all(&chunk)?;
            }
            Ok(inner)
        });
        WriteBehind {
            pending: Vec::with_capacity(CHUNK),
            chunks: Some(send),
            thread: Some(thread),
        }
    }

    /// Writes what is queued and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.hand_over()?;
        self.chunks = None;
        self.join()
    }
}

impl<W> WriteBehind<W> {
    fn hand_over(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(chunk).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writing thread stopped: its result says why.
        self.chunks = None;
        match self.join() {
            Err(err) => Err(err),
            Ok(_) => Err(io::Error::other("the writing thread stopped early")),
        }
    }

    fn join(&mut self) -> io::Result<W> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("the writing thread already stopped"))?;
        thread
            .join()
            .map_err(|_| io::Error::other("the writing thread panicked"))?
    }
}

impl<W> Write for WriteBehind<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands the queued bytes to the writing thread; only `finish` waits for them.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn read_ahead_passes_every_byte_and_returns_the_reader() {
        let data = sample(3 * CHUNK + 12345);
        let mut ahead = ReadAhead::new(io::Cursor::new(data.clone()));
        let mut out = Vec::new();
        ahead.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let cursor = ahead.finish().unwrap();
        assert_eq!(cursor.position(), data.len() as u64);
    }

    #[test]
    fn read_ahead_reports_the_readers_error() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("pg_dump failed"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut ahead = ReadAhead::new(Failing(CHUNK + 10));
        let mut out = Vec::new();
        let err = ahead.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.to_string(), "pg_dump failed");
    }

    #[test]
    fn an_unfinished_read_ahead_cannot_be_finished() {
        let ahead = ReadAhead::new(io::Cursor::new(sample(10)));
        assert!(ahead.finish().is_err());
    }

    #[test]
    fn write_behind_writes_every_byte_in_order() {
        let data = sample(5 * CHUNK + 777);
        let mut behind = WriteBehind::new(Vec::new());
        for piece in data.chunks(100_000) {
            behind.write_all(piece).unwrap();
        }
        behind.flush().unwrap();
        assert_eq!(behind.finish().unwrap(), data);
    }

    #[test]
    fn write_behind_reports_the_writers_error() {
        #[derive(Debug)]
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "link down"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut behind = WriteBehind::new(Failing);
        let data = sample(CHUNK);
        let mut result = Ok(());
        for _ in 0..(DEPTH + 3) {
            result = behind.write_all(&data);
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(err) => err,
            Ok(()) => behind.finish().unwrap_err(),
        };
        assert_eq!(err.to_string(), "link down");
    }
}
