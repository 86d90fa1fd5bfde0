//! `receiver verify BUNDLE`: checks a bundle and prints its manifest; changes nothing.

use std::path::Path;

use pgferry::bundle::reader::verify;
use pgferry::exit::Exit;

pub fn run(bundle: &Path) -> anyhow::Result<Exit> {
    match verify(bundle) {
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
