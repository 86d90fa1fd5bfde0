//! Issue 13, part 1: complete bundles carry what their tables need besides their own DDL
//! (extensions, enum and composite types, domains, functions, shared sequences), create
//! it on an empty target in dependency order, reuse it when the target has it the same,
//! and refuse, naming it, when the target has it different.

use crate::ferry::*;
use crate::util::*;

/// A schema that uses its own types: names needing quotes in types and domains too.
const TYPED: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA "Sch ema";
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'it''s');
CREATE TYPE "Sch ema"."Ünïcode ""Mood""" AS ENUM ('ä', 'b');
CREATE DOMAIN public.posint AS integer NOT NULL CHECK (VALUE > 0);
CREATE FUNCTION public.double_it(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE DOMAIN "Sch ema"."small even" AS integer CONSTRAINT "is even" CHECK (VALUE % 2 = 0) CONSTRAINT small CHECK (public.double_it(VALUE) < 1000);
CREATE TYPE public.pair AS (a integer, b text, m public.mood);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.last_update := now(); RETURN NEW; END$$;
CREATE SEQUENCE public.shared_ids START 100;
CREATE TABLE public.node (
    id serial PRIMARY KEY,
    ident integer GENERATED ALWAYS AS IDENTITY,
    m public.mood NOT NULL,
    odd "Sch ema"."Ünïcode ""Mood""",
    n public.posint,
    e "Sch ema"."small even",
    p public.pair,
    name citext,
    doubled integer GENERATED ALWAYS AS (public.double_it(id)) STORED,
    ticket bigint NOT NULL DEFAULT nextval('public.shared_ids'),
    last_update timestamptz,
    "timeStamp" timestamptz NOT NULL DEFAULT now(),
    CHECK (public.double_it(n) < 100000)
);
CREATE TRIGGER node_touch BEFORE UPDATE ON public.node FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE INDEX ON public.node ("timeStamp");
CREATE INDEX node_lower_name ON public.node (public.double_it(n));
CREATE TABLE public.tag (id bigint PRIMARY KEY DEFAULT nextval('public.shared_ids'), node_id integer REFERENCES public.node (id), label citext);
INSERT INTO public.node (m, odd, n, e, p, name)
    SELECT (ARRAY['sad', 'ok', 'happy', 'it''s']::public.mood[])[1 + g % 4], 'ä', g, 2 * (g % 100), ROW(g, 'b' || g, 'ok')::public.pair, 'Name ' || g
    FROM generate_series(1, 50) g;
INSERT INTO public.tag (node_id, label) SELECT g, 'Tag ' || g FROM generate_series(1, 20) g;
CREATE VIEW public.moods AS SELECT m, count(*) FROM public.node GROUP BY m;
CREATE MATERIALIZED VIEW public.names AS SELECT name FROM public.node;
"#;

const NODE: &str = "public.node";

fn typed() -> Ferry {
    Ferry::with(
        TYPED,
        r#"["public.*"]"#,
        "[[partial.tables]]\ntable = \"node\"\nchanged_at = \"timeStamp\"\n",
        "",
    )
}

fn assert_copies(ferry: &Ferry) {
    ferry.assert_same(NODE, "id");
    ferry.assert_same("public.tag", "id");
}

#[test]
fn a_complete_bundle_creates_the_types_domains_functions_sequences_and_extensions_its_tables_use() {
    let ferry = typed();
    ferry.ship();
    assert_copies(&ferry);
    let manifest = ferry.manifest(&ferry.inbox_sub("applied")[0]);
    let identities: Vec<&str> = manifest["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["identity"].as_str().unwrap())
        .collect();
    for expected in [
        "citext",
        "public.mood",
        "\"Sch ema\".\"Ünïcode \"\"Mood\"\"\"",
        "public.posint",
        "\"Sch ema\".\"small even\"",
        "public.pair",
        "public.double_it(integer)",
        "public.touch()",
        "public.shared_ids",
    ] {
        assert!(
            identities.contains(&expected),
            "{expected} not in {identities:?}"
        );
    }
    let at = |name: &str| identities.iter().position(|i| *i == name).unwrap();
    assert!(at("public.mood") < at("public.pair"), "{identities:?}");
    assert!(
        at("public.double_it(integer)") < at("\"Sch ema\".\"small even\""),
        "{identities:?}"
    );
    // The shared sequence goes on from the primary's value, not from its start.
    assert_eq!(
        ferry.target.sql("SELECT nextval('public.shared_ids')"),
        ferry.source.sql("SELECT nextval('public.shared_ids')")
    );
    // The domains keep their checks on the target.
    assert!(ferry
        .target
        .sql_result("INSERT INTO public.node (m, n) VALUES ('ok', -1)")
        .unwrap_err()
        .contains("violates check constraint \"posint_check\""));

    // The next complete finds them on the target, the same: it reuses them; a function
    // changed on the primary is replaced.
    ferry.source.sql(
        "UPDATE public.node SET m = 'happy', \"timeStamp\" = now() WHERE id = 3; CREATE OR REPLACE FUNCTION public.double_it(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $1'",
    );
    ferry.ship();
    assert_copies(&ferry);
    let body = "SELECT pg_get_functiondef('public.double_it(integer)'::regprocedure)";
    assert!(ferry.target.sql(body).contains("SELECT $1 + $1"));

    // A partial upserts into the typed columns.
    ferry.source.sql(
        "INSERT INTO public.node (m, n, e, p) VALUES ('it''s', 7, 4, ROW(1, 'x', 'sad')); UPDATE public.node SET name = 'Changed', \"timeStamp\" = now() WHERE id = 5",
    );
    ferry.ship_partial(&[]);
    assert_copies(&ferry);
    // The trigger was off only inside the load's transaction: it fires again on the target.
    assert_eq!(
        ferry
            .target
            .sql("SELECT tgenabled FROM pg_trigger WHERE tgname = 'node_touch'"),
        "O"
    );
    assert_eq!(
        ferry.target.sql(
            "UPDATE public.node SET name = 'local' WHERE id = 1 RETURNING last_update IS NOT NULL"
        ),
        "t"
    );
}

#[test]
fn a_type_that_differs_on_the_target_is_a_schema_difference_named_before_anything_changes() {
    let ferry = typed();
    ferry.target.sql(
        "CREATE TYPE public.mood AS ENUM ('sad', 'ok'); CREATE TABLE public.canary (id int); INSERT INTO public.canary VALUES (1)",
    );
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("type public.mood on the target differs from the bundle: the bundle has `CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'it''s')`, the target `CREATE TYPE public.mood AS ENUM ('sad', 'ok')`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ferry
            .target
            .sql("SELECT to_regclass('public.node') IS NULL"),
        "t"
    );
    assert_eq!(ferry.ledger(), Vec::<String>::new());
}

/// A partitioned table with a default partition, beside a plain table.
const PARTITIONED: &str = r#"
CREATE TYPE public.mood AS ENUM ('sad', 'ok');
CREATE TABLE public.events (id bigint, at date NOT NULL, kind public.mood, "timeStamp" timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_other PARTITION OF public.events DEFAULT;
CREATE INDEX ON public.events ("timeStamp");
INSERT INTO public.events (id, at, kind) SELECT g, date '2024-12-01' + g * 7, 'ok' FROM generate_series(1, 120) g;
CREATE TABLE public.other (id int PRIMARY KEY);
INSERT INTO public.other VALUES (1), (2);
"#;

const PARTITIONS: [&str; 4] = [
    "public.events",
    "public.events_2025",
    "public.events_2026",
    "public.events_other",
];

fn assert_partitions_copied(ferry: &Ferry) {
    for table in PARTITIONS {
        ferry.assert_same(table, "id");
    }
    let bounds = "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '; ' ORDER BY c.relname) FROM pg_class c WHERE c.relispartition";
    assert_eq!(ferry.target.sql(bounds), ferry.source.sql(bounds));
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM public.events"),
        "120"
    );
    // The root holds no rows of its own: each row is in its partition, once.
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM ONLY public.events"),
        "0"
    );
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM public.events_other"),
        ferry.source.sql("SELECT count(*) FROM public.events_other")
    );
}

#[test]
fn a_partition_tree_copies_whole_and_once_whether_the_config_names_the_root_a_partition_or_both() {
    for tables in [
        r#"["public.events", "public.other"]"#,
        r#"["public.events_2026", "public.other"]"#,
        r#"["public.*"]"#,
    ] {
        let ferry = Ferry::with(
            PARTITIONED,
            tables,
            "[[partial.tables]]\ntable = \"events\"\nchanged_at = \"timeStamp\"\n",
            "",
        );
        ferry.ship();
        assert_partitions_copied(&ferry);
        let manifest = ferry.manifest(&ferry.inbox_sub("applied")[0]);
        let names: Vec<&str> = manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["table"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "events",
                "events_2025",
                "events_2026",
                "events_other",
                "other"
            ],
            "{tables}"
        );

        // The next complete replaces it, and a partial upserts through the root.
        ferry.ship();
        ferry.source.sql(
            "UPDATE public.events SET kind = 'sad', \"timeStamp\" = now() WHERE id IN (3, 60, 119); INSERT INTO public.events (id, at, kind) VALUES (500, '2026-06-01', 'sad')",
        );
        ferry.ship_partial(&[]);
        for table in PARTITIONS {
            ferry.assert_same(table, "id");
        }
    }
}

/// A public sample schema, as a new user would try it: pgbench's own, with its accounts
/// partitioned by range and its foreign keys, copied with a `public.*` pattern.
#[test]
fn pgbenchs_partitioned_sample_schema_copies_row_for_row() {
    let ferry = Ferry::new("", r#"["public.*"]"#);
    let env = Env::get();
    let out = std::process::Command::new(format!("{}/pgbench", env.var("PG_BINDIR")))
        .args(["-i", "-q", "-s", "1", "--partitions=3", "--foreign-keys"])
        .args(["-h", env.var("PG_HOST"), "-U", env.var("PG_USER")])
        .args(["-p", &ferry.source.port.to_string(), &ferry.source.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ferry
        .source
        .sql("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 5, now()), (2, 1, 99999, -5, now())");
    ferry.ship();
    for (table, order) in [
        ("pgbench_accounts", "aid"),
        ("pgbench_accounts_1", "aid"),
        ("pgbench_accounts_3", "aid"),
        ("pgbench_branches", "bid"),
        ("pgbench_tellers", "tid"),
        ("pgbench_history", "aid"),
    ] {
        let digest = format!(
            "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY {order})) FROM {table} t"
        );
        assert_eq!(
            ferry.target.sql(&digest),
            ferry.source.sql(&digest),
            "{table}"
        );
    }
    let foreign_keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'";
    assert_eq!(
        ferry.target.sql(foreign_keys),
        ferry.source.sql(foreign_keys)
    );
}
