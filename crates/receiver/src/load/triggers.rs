//! Triggers copied from the primary must not rewrite the copied rows: a `BEFORE UPDATE`
//! trigger that sets `last_update = now()` would make the copy differ. During a load, the
//! user triggers of the tables it writes that fire in the usual ("origin") mode are
//! disabled, and enabled again before the commit, all inside the load's transaction: other
//! sessions never see them off. PostgreSQL's own logical replication gets the same effect
//! with `session_replication_role = replica`, which only a superuser may set; disabling a
//! trigger needs only ownership of the table, which the receiver's role has. The lock it
//! takes (SHARE ROW EXCLUSIVE) lets readers read.

use pgferry::pg::ident::quote_literal;
use pgferry::settings::names::QualifiedName;

/// The table that remembers which triggers this load disabled, gone at commit.
const PAUSED: &str = "pgferry_paused_triggers";

/// Disables the enabled user triggers of `tables` and remembers them.
pub fn pause<'a>(tables: impl IntoIterator<Item = &'a QualifiedName>) -> String {
    let relations = tables
        .into_iter()
        .map(|t| format!("to_regclass({})", quote_literal(&t.quoted())))
        .collect::<Vec<_>>();
    if relations.is_empty() {
        return String::new();
    }
    format!(
        "CREATE TEMP TABLE {PAUSED} ON COMMIT DROP AS SELECT tgrelid, tgname FROM pg_catalog.pg_trigger \
         WHERE tgrelid IN ({}) AND NOT tgisinternal AND tgenabled = 'O';\n{}",
        relations.join(", "),
        each_paused("DISABLE")
    )
}

/// Enables again what [`pause`] disabled.
pub fn resume() -> String {
    each_paused("ENABLE")
}

fn each_paused(action: &str) -> String {
    format!(
        "DO $pgferry$DECLARE t record; BEGIN \
         IF pg_catalog.to_regclass('pg_temp.{PAUSED}') IS NULL THEN RETURN; END IF; \
         FOR t IN EXECUTE 'SELECT tgrelid::pg_catalog.regclass AS rel, tgname FROM pg_temp.{PAUSED}' LOOP \
         EXECUTE pg_catalog.format('ALTER TABLE %s {action} TRIGGER %I', t.rel, t.tgname); END LOOP; END$pgferry$;\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_pause_without_tables() {
        assert_eq!(pause([]), "");
        let sql = pause([&QualifiedName::new("Sch ema", "it's")]);
        assert!(sql.contains(r#"to_regclass('"Sch ema"."it''s"')"#), "{sql}");
        assert!(sql.contains("DISABLE TRIGGER"), "{sql}");
        assert!(resume().contains("ENABLE TRIGGER"));
    }
}
