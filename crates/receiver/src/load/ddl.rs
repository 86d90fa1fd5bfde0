//! Runs a bundle's schema entries (`pg_dump --schema-only` DDL) so they cannot leave the
//! load's transaction. The DDL never reaches psql's parser: it travels hex-encoded inside
//! one `DO` block and runs server-side with `EXECUTE`, where `COMMIT` and `ROLLBACK` fail
//! and psql meta-commands (`\!`, `\o`, `\i`) mean nothing.

use std::fmt::Write as _;

use anyhow::bail;

/// Checks a schema entry when it is read: a psql meta-command line other than pg_dump's
/// own `\restrict`/`\unrestrict` pair has no place in DDL.
pub fn check(ddl: &[u8]) -> anyhow::Result<()> {
    for (index, line) in ddl.split(|&b| b == b'\n').enumerate() {
        if line.starts_with(b"\\") && restrict_key(line).is_none() {
            let shown: String = String::from_utf8_lossy(line).chars().take(80).collect();
            bail!(
                "line {}: refused, a psql meta-command in a schema entry: {shown:?}",
                index + 1
            );
        }
    }
    Ok(())
}

/// The key of a `\restrict KEY` or `\unrestrict KEY` line.
fn restrict_key(line: &[u8]) -> Option<&[u8]> {
    let key = line
        .strip_prefix(b"\\restrict ")
        .or_else(|| line.strip_prefix(b"\\unrestrict "))?;
    (!key.is_empty() && key.iter().all(u8::is_ascii_alphanumeric)).then_some(key)
}

/// `ddl` (checked by [`check`]) as SQL for the load's psql: one `DO` block that executes
/// it, then the session settings psql's parser relies on, in case the DDL changed them.
pub fn contained(ddl: &[u8]) -> Vec<u8> {
    let mut encoding = String::from("UTF8");
    let mut hex = String::with_capacity(ddl.len() * 2);
    for line in ddl.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        if restrict_key(bare).is_some() {
            continue;
        }
        if let Some(name) = dump_encoding(bare) {
            encoding = name;
        }
        for byte in line {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
        }
    }
    format!(
        "DO $pgferry$BEGIN EXECUTE pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), '{encoding}'); END$pgferry$;\n{RESET}"
    )
    .into_bytes()
}

/// What the load's psql session must keep whatever the DDL set server-side: the client
/// encoding and string syntax its own statements are written in.
pub const RESET: &str = "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n";

/// The encoding of `SET client_encoding = 'NAME';`, the line pg_dump starts with.
fn dump_encoding(line: &[u8]) -> Option<String> {
    let name = line
        .strip_prefix(b"SET client_encoding = '")?
        .strip_suffix(b"';")?;
    let valid = !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    valid.then(|| String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands_are_refused_but_the_restrict_pair_is_dropped() {
        check(b"\\restrict K1\nCREATE TABLE t ();\n\\unrestrict K1\n").unwrap();
        let err = check(b"SET x = 1;\n\\! touch /tmp/x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: refused, a psql meta-command in a schema entry: \"\\\\! touch /tmp/x\""
        );
        assert!(check(b"\\unrestrict\n").is_err());
    }

    #[test]
    fn the_ddl_travels_hex_encoded_so_psql_never_parses_it() {
        let sql = String::from_utf8(contained(
            b"\\restrict K\nSET client_encoding = 'LATIN1';\nCOMMIT; $pgferry$ '\n\\unrestrict K\n",
        ))
        .unwrap();
        let first = sql.lines().next().unwrap();
        assert!(!first.contains("COMMIT"), "{sql}");
        assert!(first.ends_with("'hex'), 'LATIN1'); END$pgferry$;"), "{sql}");
        assert_eq!(first.matches('\'').count(), 6, "{sql}");
        let hex = first.split('\'').nth(1).unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            bytes,
            b"SET client_encoding = 'LATIN1';\nCOMMIT; $pgferry$ '\n"
        );
        assert!(sql.ends_with(RESET));
    }
}
