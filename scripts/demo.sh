#!/usr/bin/env bash
# See pgferry work, on one machine: a primary and a secondary PostgreSQL cluster, an sshd
# standing in for the secondary's SSH account, and an SMTP server (scripts/testenv.sh).
#
# It creates a sample primary database shaped like the original app (buses, assignments,
# events with a "timeStamp", statistics, reports whose "imageName" names image files),
# runs `sender complete` then `receiver load`, and prints `receiver status` and a per-table
# row-count comparison. Then a partial round: it changes rows on the primary, runs
# `sender partial` and `receiver load`, and shows the changed rows on the secondary.
# It tears everything down at the end unless --keep is given.
#
#   scripts/demo.sh            # run the demo
#   scripts/demo.sh --keep     # leave the servers, configs and data in place to explore
set -euo pipefail

cd "$(dirname "$0")/.."
keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

export PGFERRY_TESTENV="${PGFERRY_TESTENV:-/tmp/pgferry-demo}"
demo="$PGFERRY_TESTENV/demo"

teardown() {
    if [[ $keep == 0 ]]; then
        bash scripts/testenv.sh down >/dev/null || true
    else
        echo "demo: kept. configs: $demo/sender.toml $demo/receiver.toml; stop with: PGFERRY_TESTENV=$PGFERRY_TESTENV scripts/testenv.sh down"
    fi
}
trap teardown EXIT

say() { printf '\n== %s\n' "$*"; }

say "starting the local environment"
bash scripts/testenv.sh up
# shellcheck disable=SC1091
source "$PGFERRY_TESTENV/env"

say "building pgferry"
cargo build --quiet --bins
sender="$PWD/target/debug/sender"
receiver="$PWD/target/debug/receiver"

primary() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" "$@"; }
secondary() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$SECONDARY_PORT" -U "$PG_USER" "$@"; }

say "creating the sample primary database transapp"
primary -d postgres -c "DROP DATABASE IF EXISTS transapp" -c "CREATE DATABASE transapp"
secondary -d postgres -c "DROP DATABASE IF EXISTS transapp" -c "CREATE DATABASE transapp"
primary -d transapp <<'SQL'
CREATE TABLE "AndroidRequests_bus" (id serial PRIMARY KEY, plate text NOT NULL UNIQUE, service text NOT NULL);
CREATE TABLE "AndroidRequests_busassignment" (
    id serial PRIMARY KEY,
    bus_id integer NOT NULL REFERENCES "AndroidRequests_bus"(id),
    route text NOT NULL,
    "timeStamp" timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE "AndroidRequests_event" (
    id serial PRIMARY KEY,
    assignment_id integer NOT NULL REFERENCES "AndroidRequests_busassignment"(id),
    kind text NOT NULL,
    "timeStamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "AndroidRequests_event" ("timeStamp");
CREATE TABLE "AndroidRequests_statistic" (
    id serial PRIMARY KEY,
    route text NOT NULL,
    day date NOT NULL,
    trips integer NOT NULL,
    average_speed numeric(6,2)
);
CREATE TABLE "AndroidRequests_report" (
    id serial PRIMARY KEY,
    assignment_id integer REFERENCES "AndroidRequests_busassignment"(id),
    message text,
    "imageName" text,
    "timeStamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "AndroidRequests_report" ("timeStamp");
INSERT INTO "AndroidRequests_bus" (plate, service)
    SELECT 'BJFB' || lpad(g::text, 2, '0'), (ARRAY['506', '210', 'D09'])[1 + g % 3] FROM generate_series(1, 60) g;
INSERT INTO "AndroidRequests_busassignment" (bus_id, route, "timeStamp")
    SELECT 1 + g % 60, (ARRAY['506I', '210R', 'D09I'])[1 + g % 3], now() - g * interval '1 minute' FROM generate_series(1, 300) g;
INSERT INTO "AndroidRequests_event" (assignment_id, kind, "timeStamp")
    SELECT 1 + g % 300, (ARRAY['crowded', 'late', 'dirty', 'ok'])[1 + g % 4], now() - g * interval '10 seconds' FROM generate_series(1, 5000) g;
INSERT INTO "AndroidRequests_statistic" (route, day, trips, average_speed)
    SELECT (ARRAY['506I', '210R', 'D09I'])[1 + g % 3], current_date - g / 3, 100 + g % 37, 18.5 + (g % 10) FROM generate_series(1, 90) g;
INSERT INTO "AndroidRequests_report" (assignment_id, message, "imageName")
    SELECT 1 + g % 300, 'report number ' || g, CASE WHEN g % 4 = 0 THEN 'report_' || g || '.jpeg' END FROM generate_series(1, 200) g;
SQL

say "creating the report images"
mkdir -p "$demo/primary-images" "$demo/secondary-images" "$demo/state-sender" "$demo/state-receiver"
for n in $(seq 4 4 200); do
    head -c 2048 /dev/urandom >"$demo/primary-images/report_$n.jpeg"
done

say "writing the configs"
cat >"$demo/sender.toml" <<TOML
[source]
host = "$PG_HOST"
port = $PRIMARY_PORT
user = "$PG_USER"
dbname = "transapp"
tables = ["public.AndroidRequests_*"]

[partial]
overlap = "2m"

[[partial.tables]]
table = "public.AndroidRequests_report"
changed_at = "timeStamp"

[[partial.tables]]
table = "public.AndroidRequests_event"
changed_at = "timeStamp"

[[files]]
name = "images"
dir = "$demo/primary-images"
include = ["*.jpeg"]
partial = true
referenced_by = ["public.AndroidRequests_report.imageName"]

[remote]
host = "$SSH_HOST"
port = $SSH_PORT
user = "$SSH_USER"
private_key = "$SSH_KEY"
known_hosts = "$SSH_KNOWN_HOSTS"
dir = "$SSH_ROOT/demo-inbox"

[state]
dir = "$demo/state-sender"

[alerts]
smtp_host = "$SMTP_HOST"
smtp_port = $SMTP_PORT
security = "none"
from = "pgferry@primary.demo"
to = ["admins@viz.demo"]

[schedule]
complete = "30 3 * * *"
partial = "*/5 * * * *"
check_remote = "0 * * * *"
TOML
cat >"$demo/receiver.toml" <<TOML
[target]
host = "$PG_HOST"
port = $SECONDARY_PORT
user = "$PG_USER"
dbname = "transapp"

[inbox]
dir = "$SSH_ROOT/demo-inbox"

[[files]]
name = "images"
dir = "$demo/secondary-images"

[retention]
complete = "4d"
partial = "1d"

[state]
dir = "$demo/state-receiver"

[alerts]
smtp_host = "$SMTP_HOST"
smtp_port = $SMTP_PORT
security = "none"
from = "pgferry@viz.demo"
to = ["admins@viz.demo"]

[schedule]
load = "*/5 * * * *"
prune = "15 4 * * *"
stale_after = "30m"
TOML
chmod 600 "$demo/sender.toml" "$demo/receiver.toml"

say "sender check"
"$sender" -c "$demo/sender.toml" check
say "sender complete"
"$sender" -c "$demo/sender.toml" complete
say "receiver load"
"$receiver" -c "$demo/receiver.toml" load
say "receiver status"
"$receiver" -c "$demo/receiver.toml" status

compare() {
    say "row counts, primary vs secondary"
    paste <(primary -d transapp -A -t -c "$count_sql") <(secondary -d transapp -A -t -c "$count_sql" | awk '{print $2}') |
        awk 'BEGIN { printf "%-36s %8s %10s\n", "table", "primary", "secondary" } { printf "%-36s %8s %10s %s\n", $1, $2, $3, ($2 == $3 ? "ok" : "DIFFERENT") }'
    printf '%-36s %8s %10s\n' "images (files)" "$(ls "$demo/primary-images" | wc -l)" "$(ls "$demo/secondary-images" | wc -l)"
}
count_sql="SELECT format('%-36s', relname) || ' ' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname"
compare

say "changing rows on the primary: a new bus on a new assignment with two events, an updated report with a new image"
primary -d transapp <<'SQL'
WITH b AS (INSERT INTO "AndroidRequests_bus" (plate, service) VALUES ('DEMO01', '506') RETURNING id),
     a AS (INSERT INTO "AndroidRequests_busassignment" (bus_id, route) SELECT id, '506I' FROM b RETURNING id)
INSERT INTO "AndroidRequests_event" (assignment_id, kind) SELECT id, k FROM a, unnest(ARRAY['crowded', 'late']) k;
UPDATE "AndroidRequests_report" SET message = 'updated by the demo', "imageName" = 'demo.jpeg', "timeStamp" = now() WHERE id = 1;
SQL
head -c 2048 /dev/urandom >"$demo/primary-images/demo.jpeg"
say "sender partial"
"$sender" -c "$demo/sender.toml" partial
say "receiver load"
"$receiver" -c "$demo/receiver.toml" load
say "the changes on the secondary"
secondary -d transapp -c 'SELECT b.plate, a.route, e.kind FROM "AndroidRequests_event" e JOIN "AndroidRequests_busassignment" a ON a.id = e.assignment_id JOIN "AndroidRequests_bus" b ON b.id = a.bus_id WHERE b.plate = '"'DEMO01'"' ORDER BY e.id' \
    -c 'SELECT id, message, "imageName" FROM "AndroidRequests_report" WHERE id = 1'
ls -l "$demo/secondary-images/demo.jpeg"
say "receiver status"
"$receiver" -c "$demo/receiver.toml" status
compare
