//! The bundle format: one `tar.gz` (or `tar.zst`, see [`codec`]) holding SQL or CSV entries, files, and a manifest that
//! lists every entry's size and SHA-256. The manifest is the last entry, because the
//! sender streams and only knows the checksums at the end.

pub mod codec;
pub mod entry_path;
mod gzip_writer;
pub mod hashing;
pub mod manifest;
pub mod naming;
pub mod reader;
pub mod unpack;
pub mod writer;

pub use codec::{Codec, Compression};
pub use manifest::{Entry, Kind, Manifest};
pub use naming::BundleName;

/// The manifest's entry path inside the archive.
pub const MANIFEST_PATH: &str = "MANIFEST.json";

/// The bundle format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes that do not compress, like an image's (a xorshift sequence), for tests.
#[cfg(test)]
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
