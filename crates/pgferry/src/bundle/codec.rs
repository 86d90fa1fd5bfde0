//! How a bundle's tar stream is compressed: gzip (the default, so any `tar -xzf` reads a
//! bundle) or zstd (faster to make and to read at a similar size). The codec is part of
//! the bundle's file name, so the receiver knows how to read a bundle before opening it.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::ops::RangeInclusive;

use flate2::bufread::GzDecoder;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::gzip_writer::GzipWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    /// The end of a bundle's file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip => ".tar.gz",
            Codec::Zstd => ".tar.zst",
        }
    }

    pub fn levels(self) -> RangeInclusive<i32> {
        match self {
            Codec::Gzip => 1..=9,
            Codec::Zstd => 1..=19,
        }
    }

    /// Measured on a 176 MB plain dump (BENCHMARKS.md): zlib-rs at gzip level 2 makes
    /// what `gzip -1` makes (ratio 0.25) at twice its speed (160 MB/s), about as fast as
    /// `pg_dump` produces data. Level 1 is faster still but a third bigger, which the
    /// link, the hashing and the receiver's disk pay for; level 6 is 4.5 times slower
    /// for 15 % less. zstd 3, its own default, is smaller than gzip 6 and faster than
    /// gzip 2.
    pub fn default_level(self) -> i32 {
        match self {
            Codec::Gzip => 2,
            Codec::Zstd => 3,
        }
    }

    fn parse(text: &str) -> Option<Codec> {
        match text {
            "gzip" => Some(Codec::Gzip),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        })
    }
}

/// The sender's `compression` setting: a codec and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    pub codec: Codec,
    pub level: i32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::of(Codec::Gzip)
    }
}

impl Compression {
    pub fn of(codec: Codec) -> Compression {
        Compression {
            codec,
            level: codec.default_level(),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} level {}", self.codec, self.level)
    }
}

const CODECS: &str = "\"gzip\" or \"zstd\"";

/// Written either as `compression = "zstd"` or as a table:
/// `[compression]` with `codec = "gzip"` and `level = 1`, both optional.
impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CompressionVisitor)
    }
}

struct CompressionVisitor;

impl<'de> Visitor<'de> for CompressionVisitor {
    type Value = Compression;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{CODECS}, or a table with `codec` ({CODECS}) and `level`"
        )
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Compression, E> {
        let codec = Codec::parse(text)
            .ok_or_else(|| E::custom(format!("unknown codec {text:?}, expected {CODECS}")))?;
        Ok(Compression::of(codec))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Compression, A::Error> {
        let mut codec = None;
        let mut level = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "codec" => {
                    let text: String = map.next_value()?;
                    codec = Some(Codec::parse(&text).ok_or_else(|| {
                        de::Error::custom(format!("unknown codec {text:?}, expected {CODECS}"))
                    })?);
                }
                "level" => level = Some(map.next_value::<i64>()?),
                other => return Err(de::Error::unknown_field(other, &["codec", "level"])),
            }
        }
        let codec = codec.unwrap_or(Codec::Gzip);
        let levels = codec.levels();
        let level = match level {
            None => codec.default_level(),
            Some(level) => i32::try_from(level)
                .ok()
                .filter(|l| levels.contains(l))
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "level {level} is out of range for {codec}, expected {} to {}",
                        levels.start(),
                        levels.end()
                    ))
                })?,
        };
        Ok(Compression { codec, level })
    }
}

/// The compressing end of a bundle stream.
pub enum Encoder<W: Write> {
    Gzip(Box<GzipWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, compression: Compression) -> io::Result<Encoder<W>> {
        let level = compression.level;
        Ok(match compression.codec {
            Codec::Gzip => Encoder::Gzip(Box::new(GzipWriter::new(out, gzip_level(level))?)),
            Codec::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
                // A checksum per frame, like gzip's CRC: damage is caught by the codec too.
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Whether what follows compresses (`false`: store it as it is, where the codec can).
    /// zstd needs no hint: it skips incompressible data at a gigabyte per second.
    pub fn expect_compressible(&mut self, compressible: bool) -> io::Result<()> {
        match self {
            Encoder::Gzip(gzip) => gzip.store(!compressible),
            Encoder::Zstd(_) => Ok(()),
        }
    }

    /// Ends the compressed stream and hands back the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(gzip) => gzip.finish(),
            Encoder::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(gzip) => gzip.write(buf),
            Encoder::Zstd(zstd) => zstd.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(gzip) => gzip.flush(),
            Encoder::Zstd(zstd) => zstd.flush(),
        }
    }
}

/// gzip members one after another, as long as the next bytes start one. Anything else
/// after a member ends the stream and is left in the input.
pub struct GzipMembers<R: BufRead> {
    member: Option<GzDecoder<R>>,
    rest: Option<R>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl<R: BufRead> GzipMembers<R> {
    fn into_inner(self) -> Option<R> {
        self.rest.or_else(|| self.member.map(GzDecoder::into_inner))
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(mut input) = self.member.take().map(GzDecoder::into_inner) else {
                return Ok(0);
            };
            let another = input.fill_buf().map(|next| next.starts_with(&GZIP_MAGIC));
            match another {
                Ok(true) => self.member = Some(GzDecoder::new(input)),
                Ok(false) => {
                    self.rest = Some(input);
                    return Ok(0);
                }
                Err(err) => {
                    self.rest = Some(input);
                    return Err(err);
                }
            }
        }
    }
}

fn gzip_level(level: i32) -> u32 {
    u32::try_from(level).unwrap_or(1)
}

/// The decompressing end: reads exactly one compressed stream (the gzip members the
/// writer makes, one zstd frame), so whatever follows it is left for the caller to refuse.
pub enum Decoder<R: BufRead> {
    Gzip(Box<GzipMembers<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    pub fn new(input: R, codec: Codec) -> io::Result<Decoder<R>> {
        Ok(match codec {
            Codec::Gzip => Decoder::Gzip(Box::new(GzipMembers {
                member: Some(GzDecoder::new(input)),
                rest: None,
            })),
            Codec::Zstd => {
                Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?.single_frame())
            }
        })
    }

    /// The input after the compressed stream.
    pub fn into_inner(self) -> io::Result<R> {
        match self {
            Decoder::Gzip(gzip) => gzip
                .into_inner()
                .ok_or_else(|| io::Error::other("the gzip decoder lost its input")),
            Decoder::Zstd(zstd) => Ok(zstd.finish()),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(gzip) => gzip.read(buf),
            Decoder::Zstd(zstd) => zstd.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Compression, String> {
        #[derive(Deserialize)]
        struct Holder {
            compression: Compression,
        }
        toml::from_str::<Holder>(text)
            .map(|h| h.compression)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn written_as_a_codec_or_a_table() {
        assert_eq!(
            parse("compression = \"zstd\"").unwrap(),
            Compression::of(Codec::Zstd)
        );
        assert_eq!(
            parse("[compression]\nlevel = 6").unwrap(),
            Compression {
                codec: Codec::Gzip,
                level: 6
            }
        );
        assert_eq!(
            parse("[compression]\ncodec = \"zstd\"\nlevel = 19").unwrap(),
            Compression {
                codec: Codec::Zstd,
                level: 19
            }
        );
    }

    #[test]
    fn bad_codecs_levels_and_keys_are_named() {
        let err = parse("compression = \"lz4\"").unwrap_err();
        assert!(err.contains("unknown codec \"lz4\""), "{err}");
        let err = parse("[compression]\nlevel = 10").unwrap_err();
        assert!(
            err.contains("level 10 is out of range for gzip, expected 1 to 9"),
            "{err}"
        );
        let err = parse("[compression]\ncodec = \"zstd\"\nlevel = 0").unwrap_err();
        assert!(
            err.contains("out of range for zstd, expected 1 to 19"),
            "{err}"
        );
        let err = parse("[compression]\nlevl = 3").unwrap_err();
        assert!(err.contains("unknown field `levl`"), "{err}");
        let err = parse("compression = 3").unwrap_err();
        assert!(err.contains("\"gzip\" or \"zstd\""), "{err}");
    }

    #[test]
    fn both_codecs_round_trip_and_stop_at_the_end_of_their_stream() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let mut encoder = Encoder::new(Vec::new(), Compression::of(codec)).unwrap();
            encoder.write_all(&data).unwrap();
            let mut compressed = encoder.finish().unwrap();
            compressed.extend_from_slice(b"TRAILER");
            let mut decoder = Decoder::new(compressed.as_slice(), codec).unwrap();
            let mut out = Vec::new();
            decoder.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{codec}");
            let mut rest = Vec::new();
            decoder
                .into_inner()
                .unwrap()
                .read_to_end(&mut rest)
                .unwrap();
            assert_eq!(rest, b"TRAILER", "{codec}");
        }
    }
}
