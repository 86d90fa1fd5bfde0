//! Keeps a complete bundle's data entries (`pg_dump --data-only` text) inside the load's
//! transaction. They go to the same `psql` that holds the transaction open, so a crafted
//! entry could end it (`COMMIT;`) or reach psql's meta-commands (`\!`, `\o`, `\copy`).
//! Outside COPY data only the lines pg_dump writes pass, COPY headers are written anew
//! from the manifest's names, and anything else stops the load before it commits. The
//! dump is cut into entries at any byte, so one filter reads them all, in order.

use std::io::Read;

use anyhow::{bail, Context};
use pgferry::bundle::manifest::TableManifest;
use pgferry::pg::ident::{quote_ident, quote_literal};
use pgferry::progress::Progress;
use pgferry::settings::names::QualifiedName;

use pgferry::pg::dump_syntax::identifier;

use crate::load::dump_syntax::{set_line, string_literal};
use crate::load::merge::{self, Staged};

/// The longest line accepted outside COPY data (a COPY header of a very wide table fits).
const LINE_LIMIT: usize = 1024 * 1024;

/// The state of the data dump as its entries stream, line by line, with bounded memory.
pub struct DumpFilter<'a> {
    tables: &'a [TableManifest],
    /// 1-based number of the line being read.
    line_no: u64,
    /// The current line outside COPY data.
    line: Vec<u8>,
    /// Inside COPY data: the table, and the first bytes of the current line.
    copying: Option<Copying>,
    head: Vec<u8>,
    head_len: usize,
    progress: Progress,
    /// By manifest index: the tables whose rows replace live ones ([`merge`]).
    replacing: Vec<bool>,
    /// The replaced tables whose COPY has ended, for [`merge::apply`].
    staged: Vec<Staged>,
}

/// The COPY in progress.
struct Copying {
    table: QualifiedName,
    index: usize,
    columns: Vec<String>,
}

impl<'a> DumpFilter<'a> {
    pub fn new(tables: &'a [TableManifest]) -> Self {
        DumpFilter {
            tables,
            line_no: 1,
            line: Vec::new(),
            copying: None,
            head: Vec::new(),
            head_len: 0,
            progress: Progress::none(),
            replacing: Vec::new(),
            staged: Vec::new(),
        }
    }

    /// The same, streaming the rows of the tables flagged (by manifest index) into a
    /// staging table and keeping only what differs from the live rows ([`merge`]).
    pub fn replacing(self, replacing: Vec<bool>) -> Self {
        DumpFilter { replacing, ..self }
    }

    /// The same, reporting each table as its rows begin.
    pub fn with_progress(self, progress: Progress) -> Self {
        DumpFilter { progress, ..self }
    }

    /// Streams the next entry of the dump from `reader` to `out`. Its lines are numbered
    /// from 1 (a line cut by the entry boundary counts as its first).
    pub fn entry(
        &mut self,
        reader: &mut dyn Read,
        out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.line_no = 1;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).context("read the entry")?;
            if n == 0 {
                return Ok(());
            }
            self.feed(&buf[..n], out)?;
        }
    }

    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while !input.is_empty() {
            let newline = input.iter().position(|&b| b == b'\n');
            let (part, ends_line) = match newline {
                Some(at) => (&input[..at], true),
                None => (input, false),
            };
            if self.copying.is_some() {
                // COPY data passes unchanged; only the `\.` line that ends it matters. A NUL
                // byte (never in COPY text) would make psql see lines differently.
                if part.contains(&0) {
                    bail!("line {}: refused, a NUL byte in COPY data", self.line_no);
                }
                let taken = part.len() + usize::from(ends_line);
                out(&input[..taken])?;
                let room = 3usize.saturating_sub(self.head.len());
                self.head.extend_from_slice(&part[..part.len().min(room)]);
                self.head_len += part.len();
                if ends_line {
                    // psql ends inline COPY data at `\.` and also at `\.` + CR.
                    if self.head_len <= 3 && (self.head == b"\\." || self.head == b"\\.\r") {
                        self.end_copy(out)?;
                    }
                    self.head.clear();
                    self.head_len = 0;
                    self.line_no += 1;
                }
                input = &input[taken..];
            } else {
                if self.line.len() + part.len() > LINE_LIMIT {
                    bail!(
                        "line {}: refused, longer than {LINE_LIMIT} bytes outside COPY data",
                        self.line_no
                    );
                }
                self.line.extend_from_slice(part);
                if ends_line {
                    self.end_line(out)?;
                    input = &input[part.len() + 1..];
                } else {
                    input = &[];
                }
            }
        }
        Ok(())
    }

    /// After a COPY's `\.`: a replaced table's rows are compared with the live ones.
    fn end_copy(&mut self, out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let Some(copying) = self.copying.take() else {
            return Ok(());
        };
        if self.replacing.get(copying.index).copied().unwrap_or(false) {
            let table = &self.tables[copying.index];
            out(merge::diff(copying.index, table, &copying.columns).as_bytes())?;
            self.staged.push(Staged {
                index: copying.index,
                columns: copying.columns,
            });
        }
        Ok(())
    }

    /// Checks the end of the dump: no COPY left open, no unfinished line. Returns the
    /// replaced tables, for [`merge::apply`].
    pub fn finish(
        mut self,
        out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Staged>> {
        if let Some(copying) = &self.copying {
            bail!(
                "line {}: the dump ends inside the COPY data of table {} (no \\. line)",
                self.line_no,
                copying.table
            );
        }
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        Ok(self.staged)
    }

    fn end_line(&mut self, out: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let line = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&line)
            .map_err(|_| anyhow::anyhow!("line {}: refused, not UTF-8", self.line_no))?;
        let result = self.statement(text);
        let line_no = self.line_no;
        self.line_no += 1;
        match result {
            Ok(Some(sql)) => out(sql.as_bytes()),
            Ok(None) => Ok(()),
            Err(problem) => bail!("line {line_no}: refused, {problem}"),
        }
    }

    /// What to send for one line outside COPY data: `None` to drop it, or the problem.
    fn statement(&mut self, line: &str) -> Result<Option<String>, String> {
        if line.is_empty() || line.starts_with("--") {
            return Ok(None);
        }
        if let Some(key) = line
            .strip_prefix("\\restrict ")
            .or_else(|| line.strip_prefix("\\unrestrict "))
        {
            if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                // The receiver feeds psql itself; pg_dump's guard against restores from a
                // hostile server has nothing to guard here.
                return Ok(None);
            }
        }
        if line == "SELECT pg_catalog.set_config('search_path', '', false);" {
            return Ok(Some(format!("{line}\n")));
        }
        if let Some(sql) = set_line(line) {
            return Ok(Some(sql));
        }
        if let Some(rest) = line.strip_prefix("SELECT pg_catalog.setval(") {
            return self.setval(rest).map(Some).ok_or_else(|| not_pg_dump(line));
        }
        if let Some(rest) = line.strip_prefix("COPY ") {
            return self.copy_header(rest, line).map(Some);
        }
        Err(not_pg_dump(line))
    }

    /// `COPY schema.table (columns) FROM stdin;` for a table of the manifest, written anew.
    fn copy_header(&mut self, rest: &str, line: &str) -> Result<String, String> {
        let parsed = (|| {
            let (schema, rest) = identifier(rest)?;
            let rest = rest.strip_prefix('.')?;
            let (name, mut rest) = identifier(rest)?;
            let mut columns = Vec::new();
            if let Some(list) = rest.strip_prefix(" (") {
                rest = list;
                loop {
                    let (column, after) = identifier(rest)?;
                    columns.push(column);
                    if let Some(after) = after.strip_prefix(", ") {
                        rest = after;
                    } else {
                        rest = after.strip_prefix(')')?;
                        break;
                    }
                }
            } else {
                rest = rest.strip_prefix(' ')?;
            }
            (rest == " FROM stdin;").then_some((QualifiedName { schema, name }, columns))
        })();
        let (table, columns) = parsed.ok_or_else(|| not_pg_dump(line))?;
        let index = self
            .tables
            .iter()
            .position(|t| t.table == table)
            .ok_or_else(|| format!("COPY into table {table}, which the manifest does not list"))?;
        let listed = &self.tables[index];
        if let Some(unknown) = columns
            .iter()
            .find(|c| !listed.columns.iter().any(|l| &l.name == *c))
        {
            return Err(format!(
                "COPY into column {unknown:?}, which table {table} does not have in the manifest"
            ));
        }
        let sql = if self.replacing.get(index).copied().unwrap_or(false) {
            merge::stage(index, listed, &columns)
        } else {
            let list: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            format!(
                "COPY {} ({}) FROM stdin;\n",
                table.quoted(),
                list.join(", ")
            )
        };
        self.progress.table(&table);
        self.copying = Some(Copying {
            table,
            index,
            columns,
        });
        Ok(sql)
    }

    /// `SELECT pg_catalog.setval('seq', N, true);` for a sequence that a table of the
    /// manifest owns (sequences ignore rollback, so no other one may be touched).
    fn setval(&self, rest: &str) -> Option<String> {
        let (sequence, rest) = string_literal(rest)?;
        let rest = rest.strip_prefix(", ")?;
        let digits_end = rest
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map(|(i, _)| i)?;
        let (value, rest) = rest.split_at(digits_end);
        if value.is_empty() || value == "-" || value.len() > 20 {
            return None;
        }
        let called = match rest {
            ", true);" => "true",
            ", false);" => "false",
            _ => return None,
        };
        let owners: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{}::pg_catalog.regclass", quote_literal(&t.table.quoted())))
            .collect();
        if owners.is_empty() {
            return None;
        }
        let sequence = quote_literal(&sequence);
        let message = quote_literal(
            "setval on a sequence that no table of the bundle owns; nothing was loaded",
        );
        Some(format!(
            "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_depend d \
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.objid = {sequence}::pg_catalog.regclass \
             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjid IN ({}) AND d.deptype IN ('a', 'i')) \
             THEN pg_catalog.setval({sequence}::pg_catalog.regclass, {value}, {called}) \
             ELSE pg_catalog.jsonb_build_object('error', {message})::text::int END;\n",
            owners.join(", ")
        ))
    }
}

fn not_pg_dump(line: &str) -> String {
    let mut shown: String = line.chars().take(80).collect();
    if shown.len() < line.len() {
        shown.push_str("...");
    }
    format!("not a line pg_dump writes outside COPY data: {shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgferry::pg::catalog::Column;

    fn table(schema: &str, name: &str, columns: &[&str]) -> TableManifest {
        TableManifest {
            table: QualifiedName::new(schema, name),
            rows: 0,
            columns: columns.iter().map(|c| Column::new(c, "text")).collect(),
            key: None,
            parent: false,
            schema_pre: None,
            schema_post: None,
        }
    }

    fn run(tables: &[TableManifest], dump: &str) -> Result<String, String> {
        let mut filter = DumpFilter::new(tables);
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        // Byte by byte: lines must survive any split.
        for byte in dump.as_bytes() {
            filter
                .feed(std::slice::from_ref(byte), &mut sink)
                .map_err(|e| e.to_string())?;
        }
        filter.finish(&mut sink).map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// What pg_dump 15.18 writes for `--data-only` (see the module's tests in the suite).
    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict 4REqLHdmlUCYT2Un\n\n-- Dumped from database version 15.18\n\nSET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\nSET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\n--\n-- Data for Name: We\"ird.T; Type: TABLE DATA; Schema: My Schema; Owner: -\n--\n\nCOPY \"My Schema\".\"We\"\"ird.T\" (id, \"Cap Col\", x) FROM stdin;\n1\ta\\\\.\\nb\t\\N\n3\t\\\\.\t\\N\n\\.\n\n\nCOPY public.e (id) FROM stdin;\n\\.\n\nSELECT pg_catalog.setval('\"My Schema\".\"We\"\"ird.T_id_seq\"', 3, true);\nSELECT pg_catalog.setval('public.e_id_seq', 1, false);\n\n\\unrestrict 4REqLHdmlUCYT2Un\n\n";

    fn tables() -> Vec<TableManifest> {
        vec![
            table("My Schema", "We\"ird.T", &["id", "Cap Col", "x"]),
            table("public", "e", &["id"]),
        ]
    }

    #[test]
    fn what_pg_dump_writes_passes_with_headers_written_anew() {
        let sql = run(&tables(), DUMP).unwrap();
        assert!(!sql.contains("restrict"), "{sql}");
        assert!(!sql.contains("--"), "{sql}");
        assert!(sql.contains("COPY \"My Schema\".\"We\"\"ird.T\" (\"id\", \"Cap Col\", \"x\") FROM stdin;\n1\ta\\\\.\\nb\t\\N\n3\t\\\\.\t\\N\n\\.\n"), "{sql}");
        assert!(sql.contains("COPY \"public\".\"e\" (\"id\") FROM stdin;\n\\.\n"));
        assert!(sql.contains("pg_catalog.setval('\"My Schema\".\"We\"\"ird.T_id_seq\"'::pg_catalog.regclass, 3, true)"));
        assert!(sql.contains("'\"public\".\"e\"'::pg_catalog.regclass"));
        assert!(sql.contains("SET client_encoding = 'UTF8';\n"));
    }

    #[test]
    fn statements_and_meta_commands_are_refused_with_their_line() {
        for (line, problem) in [
            (
                "COMMIT;",
                "not a line pg_dump writes outside COPY data: \"COMMIT;\"",
            ),
            (
                "\\! touch /tmp/x",
                "not a line pg_dump writes outside COPY data: \"\\\\! touch /tmp/x\"",
            ),
            ("\\o /tmp/x", "not a line pg_dump writes outside COPY data"),
            (
                "\\set ON_ERROR_STOP 0",
                "not a line pg_dump writes outside COPY data",
            ),
            (
                "\\unrestrict",
                "not a line pg_dump writes outside COPY data",
            ),
            ("SET role = postgres;", "not a line pg_dump writes"),
            (
                "SET standard_conforming_strings = off;",
                "not a line pg_dump writes",
            ),
            ("SET client_encoding = 'SJIS';", "not a line pg_dump writes"),
            (
                "SET statement_timeout = 0; DROP TABLE x;",
                "not a line pg_dump writes",
            ),
            (
                "SELECT pg_catalog.setval('s', 1, true); DROP TABLE x;",
                "not a line pg_dump writes",
            ),
            (
                "SELECT pg_catalog.setval('s\\', 1, true);",
                "not a line pg_dump writes",
            ),
            (
                "COPY public.canary (id) FROM stdin;",
                "COPY into table public.canary, which the manifest does not list",
            ),
            (
                "COPY public.e (id, secret) FROM stdin;",
                "COPY into column \"secret\", which table public.e does not have in the manifest",
            ),
            (
                "COPY public.e (id) FROM stdin; DROP TABLE x;",
                "not a line pg_dump writes",
            ),
            (
                "COPY public.e (id) TO '/tmp/x';",
                "not a line pg_dump writes",
            ),
            (
                "COPY public.E (id) FROM stdin;",
                "not a line pg_dump writes",
            ),
        ] {
            let dump = format!("SET lock_timeout = 0;\n\n{line}\n");
            let err = run(&tables(), &dump).unwrap_err();
            assert!(err.starts_with("line 3: refused, "), "{err}");
            assert!(err.contains(problem), "{line}: {err}");
        }
    }

    #[test]
    fn a_dump_cut_into_entries_reads_as_one() {
        let tables = tables();
        let mut filter = DumpFilter::new(&tables);
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        let (first, second) = DUMP.split_at(DUMP.find("a\\\\.").unwrap());
        filter.entry(&mut first.as_bytes(), &mut sink).unwrap();
        filter.entry(&mut second.as_bytes(), &mut sink).unwrap();
        filter.finish(&mut sink).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), run(&tables, DUMP).unwrap());
        let mut filter = DumpFilter::new(&tables);
        let mut sink = |_: &[u8]| Ok(());
        filter.entry(&mut "SET x".as_bytes(), &mut sink).unwrap();
        let err = filter
            .entry(&mut "yz = 1;\nCOMMIT;\n".as_bytes(), &mut sink)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: refused, not a line pg_dump writes outside COPY data: \"SET xyz = 1;\""
        );
    }

    #[test]
    fn copy_data_ends_only_at_the_terminator_psql_sees() {
        // `\.` + CR also ends COPY in psql, so what follows is SQL and is checked.
        let err = run(
            &tables(),
            "COPY public.e (id) FROM stdin;\n1\n\\.\r\nCOMMIT;\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "line 4: refused, not a line pg_dump writes outside COPY data: \"COMMIT;\""
        );
        // Lines that only look like it are data.
        let sql = run(
            &tables(),
            "COPY public.e (id) FROM stdin;\n\\.x\n \\.\nCOMMIT;\n\\.\n",
        )
        .unwrap();
        assert!(sql.ends_with("\\.x\n \\.\nCOMMIT;\n\\.\n"), "{sql}");
        let err = run(&tables(), "COPY public.e (id) FROM stdin;\nx\0\n\\.\n").unwrap_err();
        assert_eq!(err, "line 2: refused, a NUL byte in COPY data");
        let err = run(&tables(), "COPY public.e (id) FROM stdin;\n1\n").unwrap_err();
        assert_eq!(
            err,
            "line 3: the dump ends inside the COPY data of table public.e (no \\. line)"
        );
    }
}
