//! Applies a verified bundle: its database part in one `psql` transaction that also writes
//! the ledger row (guarantee 3), then its files (after the commit). The bundle is read in
//! one pass; each entry's checksum is checked again before the transaction commits.
//! Nothing from the bundle reaches psql as it is: schema entries run through
//! [`crate::load::ddl`], data entries through [`crate::load::dump_filter`], CSV through
//! [`crate::load::csv_to_copy`], so a crafted bundle cannot end the transaction early or run a
//! psql meta-command.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};

use anyhow::{bail, Context};
use pgferry::bundle::entry_path::{classify, EntryKind};
use pgferry::bundle::reader::{read_entries, Verified};
use pgferry::bundle::{Entry, Kind, Manifest};
use pgferry::cause::{self, Cause};
use pgferry::pg::ident::{quote_ident, quote_literal};
use pgferry::pg::Psql;
use pgferry::process::StderrTail;
use pgferry::progress::Progress;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::ReceiverSettings;

use crate::install::{self, Installed};
use crate::load::csv_to_copy::CsvToCopy;
use crate::load::ddl;
use crate::load::dump_filter::DumpFilter;
use crate::load::ledger;
use crate::load::plan::{Action, Plan};
use crate::load::post_data;
use crate::load::refused::{Refused, PSQL_SCRIPT_ERROR};
use crate::load::triggers;
use crate::load::upsert;

/// What applying did.
#[derive(Debug, Default)]
pub struct Applied {
    pub loaded_rows: u64,
    pub files: Installed,
}

/// Loads the database part (unless `db_done`: the ledger already has it) and installs the
/// files. `plan` comes from [`crate::load::plan`].
pub fn apply(
    settings: &ReceiverSettings,
    path: &Path,
    verified: &Verified,
    plan: &Plan,
    db_done: bool,
    progress: &Progress,
) -> anyhow::Result<Applied> {
    check_file_sets(settings, &verified.manifest)?;
    let psql = Psql::new(settings.target.connection());
    let mut loader = Loader {
        settings,
        manifest: &verified.manifest,
        sha256: &verified.sha256,
        plan,
        psql: &psql,
        transaction: None,
        db_done,
        schema: HashMap::new(),
        applied: Applied::default(),
        rows: None,
        data: None,
        progress,
    };
    let mut passed = 0;
    read_entries(path, &verified.manifest, |kind, entry, reader| {
        let mut counted = Counted {
            inner: reader,
            passed: &mut passed,
            progress,
        };
        loader.visit(kind, entry, &mut counted)
    })?;
    loader.finish_database()?;
    Ok(loader.applied)
}

/// Reports the bytes of the bundle's entries read so far.
struct Counted<'r, 'p> {
    inner: &'r mut dyn Read,
    passed: &'p mut u64,
    progress: &'p Progress,
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.passed += n as u64;
        self.progress.bytes(*self.passed);
        Ok(n)
    }
}

struct Loader<'a> {
    settings: &'a ReceiverSettings,
    progress: &'a Progress,
    manifest: &'a Manifest,
    sha256: &'a str,
    plan: &'a Plan,
    psql: &'a Psql,
    transaction: Option<Transaction>,
    db_done: bool,
    schema: HashMap<String, Vec<u8>>,
    applied: Applied,
    /// The table whose CSV rows are streaming (partial bundles).
    rows: Option<RowsInProgress>,
    /// The data dump streaming through its filter (complete bundles), and the entry last
    /// fed to it.
    data: Option<(String, DumpFilter<'a>)>,
}

struct RowsInProgress {
    index: usize,
    converter: CsvToCopy,
    copying: bool,
}

impl<'a> Loader<'a> {
    fn visit(
        &mut self,
        kind: &EntryKind,
        entry: &Entry,
        reader: &mut dyn Read,
    ) -> anyhow::Result<()> {
        match kind {
            EntryKind::Schema => {
                let mut bytes = Vec::new();
                reader.read_to_end(&mut bytes)?;
                ddl::check(&bytes).with_context(|| format!("load {}", entry.path))?;
                self.schema.insert(entry.path.clone(), bytes);
            }
            EntryKind::Data if !self.db_done => {
                self.transaction()?;
                let transaction = self.transaction.as_mut().context("no open transaction")?;
                let (path, filter) = self.data.get_or_insert_with(|| {
                    (
                        String::new(),
                        DumpFilter::new(&self.manifest.tables).with_progress(self.progress.clone()),
                    )
                });
                path.clone_from(&entry.path);
                filter
                    .entry(reader, &mut |bytes| transaction.write(bytes))
                    .with_context(|| format!("load {}", entry.path))?;
            }
            EntryKind::Rows if !self.db_done => self.rows(entry, reader)?,
            EntryKind::File { set, relative } => {
                self.finish_database()?;
                let target = self
                    .settings
                    .files
                    .iter()
                    .find(|f| &f.name == set)
                    .with_context(|| format!("the receiver has no [[files]] set named {set:?}"))?;
                install::file(target, relative, reader, &mut self.applied.files)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the data dump: no COPY left open. Then resets what its `SET` lines changed
    /// in psql's session, so psql reads the SQL that follows as it is written.
    fn finish_data(&mut self) -> anyhow::Result<()> {
        let Some((path, filter)) = self.data.take() else {
            return Ok(());
        };
        let transaction = self.transaction.as_mut().context("no open transaction")?;
        filter
            .finish(&mut |bytes| transaction.write(bytes))
            .with_context(|| format!("load {path}"))?;
        transaction.write(ddl::RESET.as_bytes())
    }

    /// Streams one CSV part into its table's staging table, converted to COPY text.
    fn rows(&mut self, entry: &Entry, reader: &mut dyn Read) -> anyhow::Result<()> {
        self.finish_data()?;
        let index = rows_index(&entry.path)?;
        if self.rows.as_ref().map(|r| r.index) != Some(index) {
            self.finish_rows()?;
            let table = self
                .manifest
                .tables
                .get(index)
                .with_context(|| format!("{} names no table of the manifest", entry.path))?;
            self.progress.table(&table.table);
            let create = upsert::create_stage(index, table);
            self.transaction()?.write(create.as_bytes())?;
            self.rows = Some(RowsInProgress {
                index,
                converter: CsvToCopy::new(),
                copying: false,
            });
        }
        let mut input = vec![0u8; 256 * 1024];
        let mut output = Vec::with_capacity(300 * 1024);
        loop {
            let n = reader
                .read(&mut input)
                .with_context(|| format!("read {}", entry.path))?;
            if n == 0 {
                return Ok(());
            }
            output.clear();
            let rows = self.rows.as_mut().context("no table in progress")?;
            rows.converter.feed(&input[..n], &mut output);
            let mut start_copy = None;
            if !rows.copying {
                if let Some(header) = &rows.converter.header {
                    start_copy = Some(upsert::copy_into_stage(rows.index, header));
                    rows.copying = true;
                }
            }
            let transaction = self.transaction.as_mut().context("no open transaction")?;
            if let Some(copy) = start_copy {
                transaction.write(copy.as_bytes())?;
            }
            transaction.write(&output)?;
        }
    }

    /// Ends the COPY of the table in progress and upserts its staged rows.
    fn finish_rows(&mut self) -> anyhow::Result<()> {
        let Some(rows) = self.rows.take() else {
            return Ok(());
        };
        let table = &self.manifest.tables[rows.index];
        let header = rows
            .converter
            .header
            .clone()
            .with_context(|| format!("the rows of table {} have no CSV header", table.table))?;
        if !rows.converter.at_record_start() {
            bail!(
                "the rows of table {} end in the middle of a record",
                table.table
            );
        }
        let expected: Vec<&String> = table.columns.iter().map(|c| &c.name).collect();
        if header.iter().collect::<Vec<_>>() != expected {
            bail!(
                "the CSV header of table {} does not match its columns in the manifest",
                table.table
            );
        }
        let key = table
            .key
            .clone()
            .with_context(|| format!("table {} has no key to upsert by", table.table))?;
        let mut sql = String::from("\\.\n");
        sql.push_str(&row_check(
            &upsert::stage_name(rows.index),
            &table.table.to_string(),
            table.rows,
        ));
        sql.push_str(&upsert::upsert(rows.index, table, &header, &key));
        self.transaction()?.write(sql.as_bytes())
    }

    /// The open transaction, started on first use with the DDL that must precede data.
    fn transaction(&mut self) -> anyhow::Result<&mut Transaction> {
        if self.transaction.is_none() {
            let mut transaction = Transaction::begin(self.psql)?;
            transaction.write(ledger::CREATE.as_bytes())?;
            let prelude = self.prelude()?;
            transaction.write(&prelude)?;
            self.transaction = Some(transaction);
        }
        self.transaction.as_mut().context("no open transaction")
    }

    fn schema_entry(&self, path: &Option<String>) -> anyhow::Result<Vec<u8>> {
        let path = path
            .as_ref()
            .context("the bundle has no schema for a table it must create")?;
        self.schema
            .get(path)
            .cloned()
            .with_context(|| format!("schema entry {path} comes after the data"))
    }

    /// Drops, creates and truncates, per the plan.
    fn prelude(&self) -> anyhow::Result<Vec<u8>> {
        let mut sql = Vec::new();
        if self.manifest.kind == Kind::Partial {
            // Parents are upserted before children; deferrable foreign keys (Django makes
            // every one so) also let rows of a reference cycle arrive in one transaction.
            writeln!(sql, "SET CONSTRAINTS ALL DEFERRED;")?;
        }
        // The tables whose rows this load writes while their triggers exist.
        let written: Vec<&QualifiedName> = match self.manifest.kind {
            Kind::Partial => self.manifest.tables.iter().map(|t| &t.table).collect(),
            Kind::Complete => self
                .plan
                .tables
                .iter()
                .zip(&self.manifest.tables)
                .filter(|(plan, _)| plan.action == Action::Replace)
                .map(|(_, table)| &table.table)
                .collect(),
        };
        sql.extend(triggers::pause(written).as_bytes());
        if !self.plan.create.is_empty() {
            // As pg_dump does: a function body may use what is created after it.
            writeln!(sql, "SET check_function_bodies = false;")?;
        }
        for dependency in &self.plan.create {
            writeln!(
                sql,
                "CREATE SCHEMA IF NOT EXISTS {};",
                quote_ident(&dependency.schema)
            )?;
            sql.extend(ddl::contained(dependency.ddl.as_bytes()));
        }
        let mut truncate = Vec::new();
        for (plan, table) in self.plan.tables.iter().zip(&self.manifest.tables) {
            match plan.action {
                Action::Replace => truncate.push(table.table.quoted()),
                Action::Recreate | Action::Create => {
                    if plan.action == Action::Recreate {
                        writeln!(sql, "DROP TABLE {} CASCADE;", table.table.quoted())?;
                    }
                    writeln!(
                        sql,
                        "CREATE SCHEMA IF NOT EXISTS {};",
                        quote_ident(&table.table.schema)
                    )?;
                    sql.extend(ddl::contained(&self.schema_entry(&table.schema_pre)?));
                }
            }
        }
        if !truncate.is_empty() {
            writeln!(sql, "TRUNCATE {};", truncate.join(", "))?;
        }
        Ok(sql)
    }

    /// Indexes and constraints of created tables, row-count checks, the ledger row.
    fn epilogue(&self) -> anyhow::Result<Vec<u8>> {
        let mut sql = Vec::new();
        sql.extend(triggers::resume().as_bytes());
        if self.manifest.kind == Kind::Partial {
            sql.extend(ledger::insert(self.manifest, self.sha256, ledger::APPLIED).as_bytes());
            return Ok(sql);
        }
        let mut posts = Vec::new();
        for (plan, table) in self.plan.tables.iter().zip(&self.manifest.tables) {
            if plan.action != Action::Replace {
                posts.push(self.schema_entry(&table.schema_post)?);
            }
        }
        if !posts.is_empty() {
            sql.extend(ddl::contained(&post_data::order(&posts)));
        }
        for table in &self.manifest.tables {
            sql.extend(
                row_check(&table.table.quoted(), &table.table.to_string(), table.rows).as_bytes(),
            );
        }
        for dependency in &self.manifest.dependencies {
            if let Some(seq) = dependency.value {
                writeln!(
                    sql,
                    "SELECT pg_catalog.setval({}::pg_catalog.regclass, {}, {});",
                    quote_literal(&dependency.identity),
                    seq.value,
                    seq.called
                )?;
            }
        }
        sql.extend(ledger::insert(self.manifest, self.sha256, ledger::APPLIED).as_bytes());
        Ok(sql)
    }

    /// Commits the database part, once, before any file is installed.
    fn finish_database(&mut self) -> anyhow::Result<()> {
        if self.db_done {
            return Ok(());
        }
        self.finish_data()?;
        self.finish_rows()?;
        let epilogue = self.epilogue()?;
        let transaction = self.transaction()?;
        transaction.write(&epilogue)?;
        let transaction = self.transaction.take().context("no open transaction")?;
        transaction.commit()?;
        self.db_done = true;
        self.applied.loaded_rows = self.manifest.total_rows();
        Ok(())
    }
}

/// Refuses, before anything changes, files of a set the receiver has no directory for.
fn check_file_sets(settings: &ReceiverSettings, manifest: &Manifest) -> anyhow::Result<()> {
    for entry in &manifest.entries {
        if let Ok(EntryKind::File { set, .. }) = classify(&entry.path) {
            if !settings.files.iter().any(|f| f.name == set) {
                bail!(
                    "entry {} belongs to file set {set:?} but the receiver config has no [[files]] entry named so; nothing was loaded",
                    entry.path
                );
            }
        }
    }
    Ok(())
}

/// The table index of a rows entry `rows/0003-000001.csv`.
fn rows_index(path: &str) -> anyhow::Result<usize> {
    path.strip_prefix("rows/")
        .and_then(|rest| rest.split('-').next())
        .and_then(|index| index.parse().ok())
        .with_context(|| format!("rows entry {path} has no table index"))
}

/// A statement that aborts the transaction unless `table` holds `rows` rows of its own:
/// a partitioned table's rows live in its partitions, and each of those is checked itself.
fn row_check(quoted: &str, display: &str, rows: u64) -> String {
    let message = quote_literal(&format!(
        "table {display} has a different row count than the bundle ({rows})"
    ));
    format!(
        "SELECT CASE WHEN count(*) = {rows} THEN NULL ELSE pg_catalog.jsonb_build_object('error', {message})::text::int END FROM ONLY {quoted};\n"
    )
}

/// A `psql` child holding one open transaction, fed through its stdin.
struct Transaction {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stderr: StderrTail,
    target: String,
}

impl Transaction {
    fn begin(psql: &Psql) -> anyhow::Result<Transaction> {
        let target = psql.connection.describe();
        let mut child = psql
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start psql for {target}"))?;
        let stdin = child.stdin.take().context("psql has no stdin")?;
        let stderr = child.stderr.take().context("psql has no stderr")?;
        let mut transaction = Transaction {
            child,
            stdin: Some(BufWriter::with_capacity(1 << 20, stdin)),
            stderr: StderrTail::drain(stderr),
            target,
        };
        transaction.write(b"SET client_min_messages = warning;\nBEGIN;\n")?;
        transaction.write(ddl::RESET.as_bytes())?;
        Ok(transaction)
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes),
            None => Err(io::Error::other("psql input is closed")),
        };
        result.map_err(|_| self.failure())
    }

    /// psql stopped reading: report why, from its exit status and stderr.
    fn failure(&mut self) -> anyhow::Error {
        self.stdin = None;
        match self.child.wait() {
            Ok(status) => self.failed(status),
            Err(err) => cause::tag(
                anyhow::anyhow!(
                    "load into {} failed, nothing was changed (wait for psql: {err}): {}",
                    self.target,
                    self.stderr.finish().trim()
                ),
                Cause::Database,
            ),
        }
    }

    fn commit(mut self) -> anyhow::Result<()> {
        self.write(b"COMMIT;\n")?;
        if let Some(stdin) = self.stdin.take() {
            // A psql that died while the last bytes were still buffered reports why
            // (its status and stderr), not merely the broken pipe.
            if stdin.into_inner().is_err() {
                return Err(self.failure());
            }
        }
        let status = self.child.wait().context("wait for psql")?;
        if !status.success() {
            return Err(self.failed(status));
        }
        self.stderr.finish();
        Ok(())
    }

    /// The error of a psql that exited with `status`: a refusal when one of the bundle's
    /// statements failed, since loading it again would fail the same way.
    fn failed(&mut self, status: ExitStatus) -> anyhow::Error {
        let refusal = Refused::Statement {
            target: self.target.clone(),
            status: status.to_string(),
            message: self.stderr.finish().trim().to_string(),
        };
        if status.code() == Some(PSQL_SCRIPT_ERROR) {
            refusal.into()
        } else {
            cause::tag(anyhow::anyhow!("{refusal}"), Cause::Database)
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Abandoned before COMMIT: stop psql so the transaction rolls back now.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
