//! Applies a verified bundle in named steps: read its schema entries, begin the
//! transaction (its prelude and the ledger table), stream the database entries into it,
//! write the epilogue (replaced rows, post-data, row-count checks, the ledger row),
//! commit, then install its files. One `psql` transaction holds the database part and the
//! ledger row (guarantee 3); the files come after the commit. The bundle is read in one
//! pass, and each entry's checksum is checked again before the next is read, so the
//! commit only uses verified bytes. Nothing from the bundle reaches psql as it is: schema
//! entries run through [`crate::load::ddl`], data entries through
//! [`crate::load::dump_filter`], CSV through [`crate::load::csv_to_copy`], so a crafted
//! bundle cannot end the transaction early or run a psql meta-command.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use pgferry::bundle::entry_path::{classify, EntryKind};
use pgferry::bundle::reader::{with_entries, Verified};
use pgferry::bundle::{Entry, Kind, Manifest};
use pgferry::pg::ident::{quote_ident, quote_literal};
use pgferry::pg::Psql;
use pgferry::progress::Progress;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::ReceiverSettings;

use crate::install::{self, Installed};
use crate::load::changes;
use crate::load::csv_to_copy::CsvToCopy;
use crate::load::ddl;
use crate::load::dump_filter::DumpFilter;
use crate::load::entries::Entries;
use crate::load::ledger;
use crate::load::merge::{self, Staged};
use crate::load::plan::{Action, Plan};
use crate::load::post_data;
use crate::load::transaction::Transaction;
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
    let manifest = &verified.manifest;
    check_file_sets(settings, manifest)?;
    let load = Load {
        manifest,
        sha256: &verified.sha256,
        plan,
        progress,
    };
    with_entries(path, verified, |stream| {
        let mut entries = Entries::start(stream, progress)?;
        let schema = read_schema(&mut entries)?;
        let mut applied = Applied::default();
        if db_done {
            entries.skip_database()?;
        } else {
            let mut transaction = load.begin(settings, &schema)?;
            let staged = load.stream_database(&mut entries, &mut transaction)?;
            transaction.write(&load.epilogue(&schema, &staged)?)?;
            transaction.commit()?;
            applied.loaded_rows = manifest.total_rows();
        }
        applied.files = install_files(settings, &mut entries)?;
        Ok(applied)
    })
}

/// The schema entries (the bundle's first), checked, by path.
fn read_schema(entries: &mut Entries) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let mut schema = HashMap::new();
    while let Some((EntryKind::Schema, entry)) = entries.current {
        let mut bytes = Vec::new();
        entries
            .body()
            .read_to_end(&mut bytes)
            .with_context(|| format!("read {}", entry.path))?;
        ddl::check(&bytes).with_context(|| format!("load {}", entry.path))?;
        schema.insert(entry.path.clone(), bytes);
        entries.advance()?;
    }
    Ok(schema)
}

/// Installs the file entries (the bundle's last), after the commit.
fn install_files(settings: &ReceiverSettings, entries: &mut Entries) -> anyhow::Result<Installed> {
    let mut installed = Installed::default();
    while let Some((kind, entry)) = entries.current.clone() {
        let EntryKind::File { set, relative } = kind else {
            bail!("entry {} comes after the files", entry.path);
        };
        let target = settings
            .files
            .iter()
            .find(|f| f.name == set)
            .with_context(|| format!("the receiver has no [[files]] set named {set:?}"))?;
        install::file(target, &relative, &mut entries.body(), &mut installed)?;
        entries.advance()?;
    }
    Ok(installed)
}

/// What the database part of one bundle needs to know.
struct Load<'a> {
    manifest: &'a Manifest,
    sha256: &'a str,
    plan: &'a Plan,
    progress: &'a Progress,
}

impl<'a> Load<'a> {
    /// Opens the transaction: the ledger table, then the prelude.
    fn begin(
        &self,
        settings: &ReceiverSettings,
        schema: &HashMap<String, Vec<u8>>,
    ) -> anyhow::Result<Transaction> {
        let mut transaction = Transaction::begin(&Psql::new(settings.target.connection()))?;
        transaction.write(ledger::CREATE.as_bytes())?;
        transaction.write(&self.prelude(schema)?)?;
        Ok(transaction)
    }

    /// Streams the data (complete) or rows (partial) entries into the transaction. Returns
    /// the replaced tables, for the epilogue.
    fn stream_database(
        &self,
        entries: &mut Entries,
        transaction: &mut Transaction,
    ) -> anyhow::Result<Vec<Staged>> {
        let mut data: Option<DumpFilter> = None;
        let mut rows: Option<RowsInProgress> = None;
        let mut changes: Option<RowsInProgress> = None;
        loop {
            match entries.current {
                Some((EntryKind::Data, entry)) => {
                    let filter = data.get_or_insert_with(|| self.dump_filter());
                    filter
                        .entry(&mut entries.body(), &mut |bytes| transaction.write(bytes))
                        .with_context(|| format!("load {}", entry.path))?;
                }
                Some((EntryKind::Rows, entry)) => {
                    self.rows(entry, &mut entries.body(), &mut rows, transaction)?;
                }
                Some((EntryKind::Changes, entry)) => {
                    self.changes(entry, &mut entries.body(), &mut changes, transaction)?;
                }
                _ => break,
            }
            entries.advance()?;
        }
        self.finish_rows(rows, transaction)?;
        self.finish_changes(changes, transaction)?;
        let Some(filter) = data else {
            return Ok(Vec::new());
        };
        // No COPY left open; then reset what the dump's `SET` lines changed in psql's
        // session, so psql reads the SQL that follows as it is written.
        let staged = filter
            .finish(&mut |bytes| transaction.write(bytes))
            .context("load the data entries")?;
        transaction.write(ddl::RESET.as_bytes())?;
        Ok(staged)
    }

    /// The filter of a complete bundle's dump; the rows of tables that exist stream into
    /// staging tables ([`merge`]).
    fn dump_filter(&self) -> DumpFilter<'a> {
        let replacing = self
            .manifest
            .tables
            .iter()
            .map(|table| {
                self.plan
                    .tables
                    .iter()
                    .any(|p| p.table == table.table && p.action == Action::Replace)
            })
            .collect();
        DumpFilter::new(&self.manifest.tables)
            .with_progress(self.progress.clone())
            .replacing(replacing)
    }

    /// Streams one CSV part into its table's staging table, converted to COPY text.
    fn rows(
        &self,
        entry: &Entry,
        reader: &mut dyn Read,
        rows: &mut Option<RowsInProgress>,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let index = rows_index(&entry.path)?;
        if rows.as_ref().map(|r| r.index) != Some(index) {
            self.finish_rows(rows.take(), transaction)?;
            let table = self
                .manifest
                .tables
                .get(index)
                .with_context(|| format!("{} names no table of the manifest", entry.path))?;
            self.progress.table(&table.table);
            transaction.write(upsert::create_stage(index, table).as_bytes())?;
            *rows = Some(RowsInProgress {
                index,
                converter: CsvToCopy::new(),
                copying: false,
            });
        }
        let rows = rows.as_mut().context("no table in progress")?;
        let index = rows.index;
        stream_csv(
            entry,
            reader,
            &mut rows.converter,
            &mut rows.copying,
            transaction,
            |header| upsert::copy_into_stage(index, header),
        )
    }

    /// Streams one part of a logical partial's changes into the stream's table.
    fn changes(
        &self,
        entry: &Entry,
        reader: &mut dyn Read,
        changes: &mut Option<RowsInProgress>,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let changes = match changes {
            Some(changes) => changes,
            None => {
                transaction.write(changes::create_stream().as_bytes())?;
                changes.insert(RowsInProgress {
                    index: 0,
                    converter: CsvToCopy::new(),
                    copying: false,
                })
            }
        };
        stream_csv(
            entry,
            reader,
            &mut changes.converter,
            &mut changes.copying,
            transaction,
            |_| changes::copy_into_stream(),
        )
    }

    /// Ends the COPY of the changes, checks them against the manifest and applies them.
    fn finish_changes(
        &self,
        changes: Option<RowsInProgress>,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let Some(changes) = changes else {
            return Ok(());
        };
        let header = changes.converter.header.clone().unwrap_or_default();
        if header != changes::HEADER {
            bail!(
                "the changes entries start with the header {header:?}, not {:?}",
                changes::HEADER
            );
        }
        if !changes.converter.at_record_start() {
            bail!("the changes end in the middle of a record");
        }
        let mut sql = String::from("\\.\n");
        for (index, table) in self.manifest.tables.iter().enumerate() {
            sql.push_str(&changes::count_check(index, table));
        }
        sql.push_str(&changes::apply(&self.manifest.tables));
        transaction.write(sql.as_bytes())
    }

    /// Ends the COPY of the table in progress and upserts its staged rows.
    fn finish_rows(
        &self,
        rows: Option<RowsInProgress>,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let Some(rows) = rows else {
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
        transaction.write(sql.as_bytes())
    }

    fn schema_entry<'s>(
        schema: &'s HashMap<String, Vec<u8>>,
        path: &Option<String>,
    ) -> anyhow::Result<&'s [u8]> {
        let path = path
            .as_ref()
            .context("the bundle has no schema for a table it must create")?;
        schema
            .get(path)
            .map(Vec::as_slice)
            .with_context(|| format!("the bundle has no schema entry {path}"))
    }

    /// Pauses triggers, creates what the plan creates, drops what it recreates. Nothing
    /// here locks a replaced table against readers.
    fn prelude(&self, schema: &HashMap<String, Vec<u8>>) -> anyhow::Result<Vec<u8>> {
        let mut sql = Vec::new();
        // Parents are upserted before children; deferrable foreign keys (Django makes
        // every one so) also let rows of a reference cycle arrive in one transaction.
        writeln!(sql, "SET CONSTRAINTS ALL DEFERRED;")?;
        if self.manifest.kind == Kind::Complete {
            // Room to sort a replaced table's staged rows in memory (see `merge::diff`),
            // for this transaction only.
            writeln!(sql, "SET LOCAL work_mem = '{MERGE_WORK_MEM}';")?;
        }
        sql.extend(triggers::pause(self.written()).as_bytes());
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
        for (plan, table) in self.plan.tables.iter().zip(&self.manifest.tables) {
            if plan.action == Action::Replace {
                continue;
            }
            if plan.action == Action::Recreate {
                writeln!(sql, "DROP TABLE {} CASCADE;", table.table.quoted())?;
            }
            writeln!(
                sql,
                "CREATE SCHEMA IF NOT EXISTS {};",
                quote_ident(&table.table.schema)
            )?;
            sql.extend(ddl::contained(Self::schema_entry(
                schema,
                &table.schema_pre,
            )?));
        }
        Ok(sql)
    }

    /// The tables whose rows this load writes while their triggers exist.
    fn written(&self) -> Vec<&QualifiedName> {
        match self.manifest.kind {
            Kind::Partial => self.manifest.tables.iter().map(|t| &t.table).collect(),
            Kind::Complete => self
                .plan
                .tables
                .iter()
                .zip(&self.manifest.tables)
                .filter(|(plan, _)| plan.action == Action::Replace)
                .map(|(_, table)| &table.table)
                .collect(),
        }
    }

    /// The replaced tables' changes, triggers back on, indexes and constraints of created
    /// tables, row-count checks, sequences, the ledger row.
    fn epilogue(
        &self,
        schema: &HashMap<String, Vec<u8>>,
        staged: &[Staged],
    ) -> anyhow::Result<Vec<u8>> {
        let mut sql = Vec::new();
        sql.extend(merge::apply(&self.manifest.tables, staged).as_bytes());
        sql.extend(triggers::resume().as_bytes());
        if self.manifest.kind == Kind::Partial {
            sql.extend(ledger::insert(self.manifest, self.sha256, ledger::APPLIED).as_bytes());
            return Ok(sql);
        }
        let mut posts = Vec::new();
        for (plan, table) in self.plan.tables.iter().zip(&self.manifest.tables) {
            if plan.action != Action::Replace {
                posts.push(Self::schema_entry(schema, &table.schema_post)?.to_vec());
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
}

/// How much memory a complete's comparison of a replaced table may sort with. The
/// benchmark's largest table (1.3 M rows per unit of scale) sorts in 160 MB; past this it
/// spills to disk, slower but still bounded.
const MERGE_WORK_MEM: &str = "256MB";

struct RowsInProgress {
    index: usize,
    converter: CsvToCopy,
    copying: bool,
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

/// Streams a CSV entry through `converter` into the transaction as COPY text; the COPY
/// starts (`start`, given the header) once the header has been read.
fn stream_csv(
    entry: &Entry,
    reader: &mut dyn Read,
    converter: &mut CsvToCopy,
    copying: &mut bool,
    transaction: &mut Transaction,
    start: impl Fn(&[String]) -> String,
) -> anyhow::Result<()> {
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
        converter.feed(&input[..n], &mut output);
        if !*copying {
            if let Some(header) = &converter.header {
                transaction.write(start(header).as_bytes())?;
                *copying = true;
            }
        }
        transaction.write(&output)?;
    }
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
