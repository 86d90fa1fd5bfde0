//! Round trips through the writer and every way a bundle can be refused.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;

use super::*;
use crate::bundle::manifest::{Kind, Source};
use crate::bundle::noise;
use crate::bundle::writer::BundleWriter;
use crate::bundle::Codec;
use crate::seal::OpenKeys;

pub(super) fn manifest(name: &BundleName) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.file_name(),
        kind: name.kind,
        created_at: name.created,
        source: Source {
            host: "db".into(),
            dbname: "app".into(),
            server_version: "15.8".into(),
        },
        snapshot_time: name.created,
        window: None,
        tables: vec![],
        dependencies: vec![],
        slot: None,
        file_sets: vec![],
        entries: vec![],
    }
}

const CODECS: [Codec; 2] = [Codec::Gzip, Codec::Zstd];

fn write_bundle(dir: &Path, codec: Codec) -> PathBuf {
    let name = BundleName::new(Utc::now(), Kind::Complete).with_codec(codec);
    let path = dir.join(name.file_name());
    let file = File::create(&path).unwrap();
    let mut writer =
        BundleWriter::new(file, name.created, crate::bundle::Compression::of(codec)).unwrap();
    writer
        .append_bytes("schema/0000.pre.sql", b"CREATE TABLE t (id int);")
        .unwrap();
    let parts = writer
        .append_parts("data/", ".sql", &b"0123456789abcdef"[..], 6)
        .unwrap();
    assert_eq!(
        parts,
        vec!["data/000000.sql", "data/000001.sql", "data/000002.sql"]
    );
    writer
        .append_bytes("files/images/a.jpeg", b"\xff\xd8jpeg")
        .unwrap();
    // Big and incompressible: stored, in a gzip member of its own.
    writer
        .append_bytes("files/images/b.jpeg", &noise(50_000))
        .unwrap();
    writer
        .append_bytes("files/migrations/0001.py", &b"import os\n".repeat(5000))
        .unwrap();
    let mut m = manifest(&name);
    writer.finish(&mut m).unwrap();
    path
}

#[test]
fn a_written_bundle_verifies_and_reads_back() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bundle(dir.path(), codec);
        let verified = verify(&path, &OpenKeys::default()).unwrap();
        assert_eq!(verified.manifest.entries.len(), 7);
        assert_eq!(verified.size, std::fs::metadata(&path).unwrap().len());
        let mut data = Vec::new();
        read_entries(&path, &verified, |kind, _, reader| {
            if *kind == EntryKind::Data {
                reader.read_to_end(&mut data)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(data, b"0123456789abcdef");
    }
}

#[test]
fn a_flipped_byte_is_refused() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bundle(dir.path(), codec);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let err = verify(&path, &OpenKeys::default()).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "bundle {} failed verification",
                path.file_name().unwrap().to_string_lossy()
            )),
            "{err}"
        );
    }
}

#[test]
fn a_truncated_bundle_is_refused() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bundle(dir.path(), codec);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(verify(&path, &OpenKeys::default()).is_err());
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bundle(dir.path(), codec);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"junk")
            .unwrap();
        let err = verify(&path, &OpenKeys::default()).unwrap_err();
        assert!(
            err.problem
                .to_string()
                .contains("after the end of the compressed stream"),
            "{err}"
        );
    }
}

#[test]
fn a_renamed_bundle_is_refused() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bundle(dir.path(), codec);
        let other = dir.path().join(
            BundleName::new(Utc::now() + chrono::Duration::seconds(5), Kind::Complete)
                .with_codec(codec)
                .file_name(),
        );
        std::fs::rename(&path, &other).unwrap();
        let err = verify(&other, &OpenKeys::default()).unwrap_err();
        assert!(
            err.problem
                .to_string()
                .starts_with("its name does not match the manifest"),
            "{err}"
        );
    }
}

#[test]
fn entries_out_of_their_order_are_refused() {
    // The load reads the schema before it begins and commits before the first file: a
    // schema or data entry after a file would come too late.
    let dir = tempfile::tempdir().unwrap();
    for (first, second, section) in [
        ("files/images/a.jpeg", "data/000000.sql", "file"),
        ("files/images/a.jpeg", "schema/0000.pre.sql", "file"),
        ("data/000000.sql", "schema/0000.pre.sql", "data"),
    ] {
        let name = BundleName::new(Utc::now(), Kind::Complete);
        let path = dir.path().join(name.file_name());
        let file = File::create(&path).unwrap();
        let mut writer = BundleWriter::new(file, name.created, Default::default()).unwrap();
        writer.append_bytes(first, b"1").unwrap();
        writer.append_bytes(second, b"2").unwrap();
        writer.finish(&mut manifest(&name)).unwrap();
        let err = verify(&path, &OpenKeys::default()).unwrap_err();
        assert_eq!(
            err.problem.to_string(),
            format!("entry {second:?} comes after the {section} entries")
        );
        std::fs::remove_file(&path).unwrap();
    }
}
