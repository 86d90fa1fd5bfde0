//! `receiver verify BUNDLE`: checks a bundle and prints its manifest; changes nothing.
//! With a config, its `[bundle]` keys check the signature and open an encrypted bundle,
//! as a load would; without one, only integrity is checked.

use std::path::Path;

use pgferry::bundle::reader::verify;
use pgferry::bundle::BundleName;
use pgferry::exit::Exit;
use pgferry::seal::OpenKeys;
use pgferry::settings::ReceiverSettings;

pub fn run(config: &Path, bundle: &Path) -> anyhow::Result<Exit> {
    let keys = if config.exists() {
        OpenKeys::load(&ReceiverSettings::read(config)?.bundle)?
    } else {
        OpenKeys::default()
    };
    let encrypted = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse)
        .is_some_and(|name| name.encrypted);
    match verify(bundle, &keys) {
        Ok(verified) => {
            let m = &verified.manifest;
            println!("bundle:        {}", m.name);
            println!("kind:          {}", m.kind);
            println!("created:       {}", m.created_at.to_rfc3339());
            println!(
                "source:        {} / {} (PostgreSQL {})",
                m.source.host, m.source.dbname, m.source.server_version
            );
            println!("snapshot:      {}", m.snapshot_time.to_rfc3339());
            if let Some(w) = m.window {
                println!(
                    "window:        {} .. {}",
                    w.start.to_rfc3339(),
                    w.end.to_rfc3339()
                );
            }
            println!("format:        {}", m.format_version);
            match verified.signed_by {
                Some(key) => println!("signature:     good, by trusted key {key}"),
                None => println!("signature:     not checked ([bundle] trusted_keys is not set)"),
            }
            println!(
                "encryption:    {}",
                if encrypted { "age, opened" } else { "none" }
            );
            println!(
                "size:          {} bytes, sha256 {}",
                verified.size, verified.sha256
            );
            println!("tables:");
            for t in &m.tables {
                println!(
                    "  {:<40} {:>10} rows{}",
                    t.table.to_string(),
                    t.rows,
                    if t.parent { " (parent rows)" } else { "" }
                );
            }
            println!("file sets:");
            for s in &m.file_sets {
                println!(
                    "  {:<40} {:>10} files {:>12} bytes{}",
                    s.name,
                    s.files,
                    s.bytes,
                    missing(&s.missing)
                );
            }
            println!("entries:       {}", m.entries.len());
            println!("result:        ok");
            Ok(Exit::Done)
        }
        Err(err) => {
            println!("result:        FAILED: {}", err.problem);
            Err(err.into())
        }
    }
}

fn missing(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({} referenced but missing)", names.len())
    }
}
