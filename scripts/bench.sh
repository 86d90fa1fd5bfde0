#!/usr/bin/env bash
# Benchmark pgferry against the pipeline it replaces, on one machine, with real servers
# (scripts/testenv.sh: PostgreSQL 15 clusters, an sshd on a loopback port); it uses the
# primary, the secondary, and the logical cluster (a primary with wal_level = logical).
#
#   scripts/bench.sh [SCALE]     # as root; SCALE (default 1) = ~200 MB of data-only dump
#                                # plus ~500 images of 20-80 KB per unit
#
# It builds the release binaries, starts its own test environment, generates a dataset
# shaped like the original app (buses, assignments, events, statistics and a wide reports
# table whose "imageName" names image files), then times on the same data:
#   - "classic": the original temp-file pipeline: pg_dump to a file, tar -czf with the
#     images, sftp put, tar -xzf, psql -1 -f into a fresh database, cp -r of the images;
#   - reference limits: pg_dump alone, pg_dump | gzip -1, psql from a local file, and the
#     streamed pipe pg_dump | gzip -1 | ssh 'gunzip | psql';
#   - pgferry: sender complete + receiver load into a fresh database, a partial cycle after
#     10,000 updated rows, a replacing complete (the same 10,000 rows changed again, then a
#     complete loaded into the tables the first complete and the partial filled: the receiver
#     stages and merges rows instead of truncating, as on every day after the first), and
#     (when the sender accepts [compression] codec = "zstd") a zstd complete into a fresh
#     database;
#   - pgferry through an S3-compatible store (when the sender accepts [remote] kind = "s3"),
#     right after the first complete, on the same data: the same sender complete (same
#     compression) with its own state dir into a bucket the bench makes on the test
#     environment's S3 server (moto, authenticated: the writer's keys for the sender and the
#     bucket, the read-only reader's for the receiver), then a receiver load with
#     [inbox] kind = "s3" (it fetches the bundle, then loads it) into a fresh database, each
#     timed with its peak RSS, beside the SFTP complete's. moto is a Python server, slow at
#     taking (and giving back) large bodies: its speed is part of these figures, which say
#     little about a real store. The bucket's objects, unfinished uploads and the bucket
#     itself are deleted at the end of the step, and by the EXIT trap when a run fails;
#   - pgferry with signed and encrypted bundles (when the sender accepts [bundle]), right
#     after the S3 run, on the same data: a minisign key pair (minisign -G -W) and an age
#     identity (age-keygen) made for the step in the bench's scratch dir (mode 600), then
#     three alternating pairs of a plain SFTP complete and a sealed one (sender [bundle]
#     sign_key and encrypt_to, receiver [bundle] trusted_keys and identities): plain,
#     sealed, plain, sealed, plain, sealed, each a sender complete with its own state dir
#     and a receiver load into a fresh database, each timed with its peak RSS, with the
#     reader probe during the load. Every sealed bundle's name must end in .tar.gz.age, and
#     every load must leave its target equal to the source. It reports the median of the
#     three of each and sealed / plain for both sides' time and peak RSS and for the bundle
#     size (target: sealed within 1.10 × plain in time, on either side). The keys and the
#     encrypted bundles are deleted at the end of the step, and by the EXIT trap when a run
#     fails (BENCH_KEEP=1 or not); each run's database is dropped once it is verified;
#   - pgferry with [partial] source = "logical", on the same dataset made again on the
#     logical cluster: an untimed sender complete (it makes the publication and the slot) +
#     receiver load into a fresh database, then the same 10,000 updated rows plus 1,000
#     deleted events, and a timed partial cycle: the logical partial's bundle size and round
#     trip against the changed_at partial's (which cannot carry the deletes), and the WAL the
#     slot kept on the logical cluster between bundles (sender status --json), before the
#     partial read the change and after it moved the slot. The slot and the publication are
#     dropped at the end, even when the run fails or BENCH_KEEP=1;
# verifies that every pgferry run left the secondary equal to its source (tables and
# image files), and prints one markdown table, the target checks and the logical figures.
#
# A reader probe runs during every `receiver load`: one psql session on the target database
# that queries the largest replaced table every 0.05 s with \timing on. The longest "Time:"
# it prints is the longest a reader waited during that load (server round trip, lock waits
# included, no connection cost). During the fresh load the table only appears at the commit,
# so the probe's queries fail at once until then; psql times those too.
#
# Environment:
#   BENCH_OUT=FILE      where to write the output too (default ./bench-results-scale$SCALE.txt)
#   BENCH_BIN_DIR=DIR   use DIR/sender and DIR/receiver instead of building (for testing a
#                       build made elsewhere)
#   BENCH_KEEP=1        leave the servers, configs, data and pgferry logs in place (not the
#                       logical run's slot: a slot no one reads keeps WAL until the disk fills;
#                       nor the S3 run's bucket, nor the sealed run's keys and encrypted
#                       bundles)
#   BENCH_ONLY=sealed   only the dataset and the signed-and-encrypted run (for working on
#                       that step): no classic, references, other pgferry runs, S3 or logical
#                       run; the report is the table of its rows, its targets and its figures
#
# Peak RSS comes from GNU time (/usr/bin/time -v): the largest process of the tree it waits
# for, so a pg_dump or psql child of pgferry counts when it is bigger than pgferry itself.
# Peak extra disk is sampled with du -sb every 0.05 s under the directories each side
# writes to (never the clusters' data directories), minus what was there before the run.
set -Eeuo pipefail

# --- arguments, output file, paths ---------------------------------------------------------

SCALE="${1:-1}"
if ! [[ $SCALE =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SCALE]   (SCALE: a positive integer, default 1)" >&2
    exit 2
fi
ONLY="${BENCH_ONLY:-}"
if [[ -n $ONLY && $ONLY != sealed ]]; then
    echo "bench: BENCH_ONLY=$ONLY: the only run that can go alone is \"sealed\"" >&2
    exit 2
fi
if [[ $EUID -ne 0 ]]; then
    echo "bench: run as root (the test environment starts clusters and an sshd)" >&2
    exit 2
fi

# The output file is relative to the directory the script was started from.
OUT="${BENCH_OUT:-$PWD/bench-results-scale$SCALE.txt}"
[[ $OUT == /* ]] || OUT="$PWD/$OUT"
cd "$(dirname "$0")/.."
REPO="$PWD"
BENCH_FILES="$REPO/scripts/bench"   # the dataset, the partial cycle's change, config templates

export PGFERRY_TESTENV="/tmp/pgferry-bench-$$"
WORK=""           # bench's own scratch directory (mktemp below)
STEP="start"      # named in the failure message
SAMPLER_PIDS=()   # background du loops still running
PROBE_FEED_PID="" # the reader probe's feeding loop, while a load runs
PROBE_PSQL_PID="" # the reader probe's psql session, while a load runs
LOGICAL_CONFIG="" # the logical sender's config while its slot may exist (the EXIT trap drops it)
S3_BUCKET=""      # the S3 run's bucket while it may exist (the EXIT trap empties and deletes it)
SEALED_KEYS=""    # the sealed run's key dir while it may exist (the EXIT trap deletes it and
                  # the encrypted bundles)

: >"$OUT"
# Everything from here on goes to the terminal and to $OUT.
exec > >(tee -a "$OUT") 2>&1

# --- failure and cleanup ---------------------------------------------------------------------

on_error() {
    local rc=$1 line=$2
    echo "bench: FAILED in step '$STEP' (line $line, exit $rc)" >&2
}
trap 'on_error $? $LINENO' ERR

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    stop_samplers
    stop_probe now
    # Before the servers go down or are kept: a kept slot would hold WAL on the logical
    # cluster for as long as it runs.
    [[ -n $LOGICAL_CONFIG ]] && drop_slot_anyway
    # While the S3 server still runs, BENCH_KEEP=1 or not: moto would hold the bundle in its
    # memory for as long as it runs.
    [[ -n $S3_BUCKET ]] && remove_bucket_anyway
    # Secret keys and bundles no one kept a key for: gone, BENCH_KEEP=1 or not.
    [[ -n $SEALED_KEYS ]] && remove_sealed_anyway
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "bench: kept $WORK (configs, logs, data); stop the servers with:" \
            "PGFERRY_TESTENV=$PGFERRY_TESTENV scripts/testenv.sh down" >&2
    else
        bash "$REPO/scripts/testenv.sh" down >/dev/null 2>&1
        [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    fi
    if [[ $rc -ne 0 ]]; then
        echo "bench: exit $rc (step '$STEP'); output so far is in $OUT" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
# A signal ends the run through the EXIT trap, so the servers still go down.
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "bench: $* (step '$STEP')" >&2
    exit 1
}

say() { printf '\n== %s\n' "$*"; }

step() {
    STEP="$*"
    say "$STEP"
}

# --- small helpers ------------------------------------------------------------------------------

# Seconds from the monotonic clock (perl is part of every Debian base system).
now() {
    perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e 'printf "%.6f\n", clock_gettime(CLOCK_MONOTONIC)' 2>/dev/null ||
        date +%s.%N
}

# calc EXPR: floating-point arithmetic through awk.
calc() { awk "BEGIN { printf \"%s\", $1 }"; }
fmt1() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
fmt2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1048576 }'; }

primary() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" "$@"; }
secondary() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$SECONDARY_PORT" -U "$PG_USER" "$@"; }
logical() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$LOGICAL_PORT" -U "$PG_USER" "$@"; }

# cluster_name PSQLFN: how messages name the cluster a helper above talks to.
cluster_name() {
    case $1 in
        logical) echo "the logical cluster" ;;
        *) echo "the $1" ;;
    esac
}

# A fresh, empty database on the secondary.
fresh_db() {
    secondary -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}
drop_db() {
    secondary -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
}

# Before every timed run: wait for autovacuum to finish what the runs before started (it
# analyzes every freshly loaded database, and on 2 cores it would steal from the next run),
# flush dirty pages and let every cluster checkpoint, so no run pays for the one before. The
# logical cluster idles (and its checkpoint costs nothing) until the logical run uses it.
settle() {
    local waited=0 fn
    while (( waited < 120 )); do
        local busy=0
        for fn in primary secondary logical; do
            busy=$(( busy + $("$fn" -d postgres -A -t -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") ))
        done
        (( busy == 0 )) && break
        sleep 1
        waited=$((waited + 1))
    done
    sync
    for fn in primary secondary logical; do
        "$fn" -d postgres -c CHECKPOINT
    done
    sync
}

# --- peak extra disk: a background du loop per side -------------------------------------------

du_bytes() { du -sbc "$@" 2>/dev/null | awk 'END { print $1 + 0 }'; }

# sampler OUTFILE DIR...: writes the largest total size seen under DIRs to OUTFILE until
# killed. It runs in a subshell: no errexit there (files vanish while du walks them).
sampler() {
    trap - ERR
    set +e
    local out=$1 max=0 cur
    shift
    while :; do
        cur=$(du_bytes "$@")
        if ((cur > max)); then
            max=$cur
            echo "$max" >"$out"
        fi
        sleep 0.05
    done
}

# start_disk NAME DIR...: remembers the current size as baseline and starts sampling.
start_disk() {
    local name=$1
    shift
    du_bytes "$@" >"$WORK/disk.$name.base"
    cp "$WORK/disk.$name.base" "$WORK/disk.$name.max"
    sampler "$WORK/disk.$name.max" "$@" &
    SAMPLER_PIDS+=("$!")
    DISK_DIRS_[$name]="$*"
}

stop_samplers() {
    local pid
    for pid in "${SAMPLER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SAMPLER_PIDS=()
}

# disk_peak NAME: bytes above the baseline at the busiest moment (one last sample included).
disk_peak() {
    local name=$1 max base last
    # shellcheck disable=SC2086
    last=$(du_bytes ${DISK_DIRS_[$name]})
    max=$(cat "$WORK/disk.$name.max")
    base=$(cat "$WORK/disk.$name.base")
    ((last > max)) && max=$last
    ((max > base)) && echo $((max - base)) || echo 0
}
declare -A DISK_DIRS_=()

# --- reader probe: how long a reader of the target waits while a load runs ---------------------

# The largest table a complete replaces: the merge of its rows is the longest part of a load.
PROBE_TABLE=AndroidRequests_event
# Per probed load (complete, partial, replace, zstd): queries answered, queries that failed,
# and the longest "Time:" in seconds.
declare -A READER_N=() READER_ERR=() READER_MAX=()

# probe_feed: \timing on, then the reader query every 0.05 s on stdout, until killed. Like
# the sampler it runs in a subshell without errexit.
probe_feed() {
    trap - ERR
    set +e
    printf '\\timing on\n'
    while :; do
        printf 'SELECT 1 FROM "%s" LIMIT 1;\n' "$PROBE_TABLE"
        sleep 0.05
    done
}

# start_probe KEY: one psql session on the target database reading its queries from a FIFO
# the feeding loop writes to. ON_ERROR_STOP=0: a failed query (the table does not exist yet
# during a fresh load) must not end the session. Returns once the session has answered its
# first query, so the probe covers the whole load and not its own connection.
start_probe() {
    local key=$1 fifo="$WORK/probe.fifo" out="$WORK/probe.$1" i
    rm -f "$fifo"
    mkfifo "$fifo"
    : >"$out"   # before psql's own redirection opens it: the loop below may look first
    PGAPPNAME=pgferry-bench-probe psql -X -q -A -t -v ON_ERROR_STOP=0 -h "$PG_HOST" -p "$SECONDARY_PORT" \
        -U "$PG_USER" -d "$TARGET_DB" <"$fifo" >"$out" 2>&1 &
    PROBE_PSQL_PID=$!
    probe_feed >"$fifo" &
    PROBE_FEED_PID=$!
    for ((i = 0; i < 200; i++)); do
        grep -q '^Time: ' "$out" && return 0
        kill -0 "$PROBE_PSQL_PID" 2>/dev/null || break
        sleep 0.05
    done
    stop_probe now
    sed 's/^/   | /' "$out" >&2
    die "the reader probe on $TARGET_DB did not answer its first query"
}

# stop_probe [now]: stops the feeding loop, so psql reads end of file once the loop (and its
# last sleep) closed the FIFO, finishes its statement and exits; only then is its output
# complete. "now" (the EXIT trap, a failed start) ends psql at once instead: a load that
# failed may have left it waiting. Either way, its output stays for probe_result.
stop_probe() {
    local mode=${1:-} i
    if [[ -n $PROBE_FEED_PID ]]; then
        kill "$PROBE_FEED_PID" 2>/dev/null || true
        wait "$PROBE_FEED_PID" 2>/dev/null || true
        PROBE_FEED_PID=""
    fi
    if [[ -n $PROBE_PSQL_PID ]]; then
        if [[ $mode != now ]]; then
            for ((i = 0; i < 200; i++)); do
                kill -0 "$PROBE_PSQL_PID" 2>/dev/null || break
                sleep 0.05
            done
        fi
        kill "$PROBE_PSQL_PID" 2>/dev/null || true
        wait "$PROBE_PSQL_PID" 2>/dev/null || true
        PROBE_PSQL_PID=""
    fi
}

# probe_result KEY: reads the stopped probe's output into READER_N, READER_ERR, READER_MAX.
# psql prints a "Time:" line for a failed statement too, so the longest of all the lines is
# the longest wait, failed or not ("Time: 1234.567 ms (00:01.235)" past one second).
probe_result() {
    local key=$1 n err max
    read -r n err max < <(awk '/^Time: / { n++; ms = $2 + 0; if (ms > max) max = ms }
        /ERROR: / { err++ }
        END { printf "%d %d %.3f\n", n, err, max / 1000 }' "$WORK/probe.$key")
    ((n > 0)) || die "the reader probe of the $key load printed no timing"
    READER_N[$key]=$n
    READER_ERR[$key]=$err
    READER_MAX[$key]=$max
}

# --- results ------------------------------------------------------------------------------------

# One row per run, tab-separated: name, seconds, MB/s, ratio to classic, sender and receiver
# peak RSS (MiB), sender and receiver peak extra disk (MiB).
ROWS=()
declare -A SECS=() RSS_S=() RSS_R=() DISK_S=() DISK_R=()

# record KEY LABEL SECONDS SENDER_RSS RECEIVER_RSS SENDER_DISK RECEIVER_DISK [MBPS]
# (RSS in KiB, disk in bytes, "-" where it does not apply).
record() {
    local key=$1 label=$2 secs=$3 srss=$4 rrss=$5 sdisk=$6 rdisk=$7 mbps=${8:-}
    SECS[$key]=$secs
    RSS_S[$key]=$srss
    RSS_R[$key]=$rrss
    DISK_S[$key]=$sdisk
    DISK_R[$key]=$rdisk
    [[ -n $mbps ]] || mbps=$(calc "$DUMP_BYTES / 1000000 / $secs")
    local ratio="-"
    [[ -n ${SECS[classic]:-} ]] && ratio="$(fmt2 "$(calc "$secs / ${SECS[classic]}")")"
    local cols=("$label" "$(fmt2 "$secs")" "$(if [[ $mbps == - ]]; then echo -; else fmt1 "$mbps"; fi)" "$ratio")
    local v
    for v in "$srss" "$rrss"; do
        [[ $v == - ]] && cols+=("-") || cols+=("$(awk -v k="$v" 'BEGIN { printf "%.1f", k / 1024 }')")
    done
    for v in "$sdisk" "$rdisk"; do
        [[ $v == - ]] && cols+=("-") || cols+=("$(mib "$v")")
    done
    ROWS+=("$(IFS=$'\t'; echo "${cols[*]}")")
    printf '   %s: %s s\n' "$label" "$(fmt2 "$secs")"
}

record_na() {
    ROWS+=("$1"$'\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a')
}

# --- machine, build, environment -----------------------------------------------------------------

print_machine() {
    local cpu ram
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "pgferry benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "SCALE:   $SCALE  (~200 MB data-only dump and ~500 images of 20-80 KB per unit)"
    echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $ram RAM, kernel $(uname -r)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min averages before the run)"
    echo "clients: $(pg_dump --version | head -n1), $(ssh -V 2>&1 | head -n1), $(gzip --version | head -n1)"
}

ensure_gnu_time() {
    [[ -x /usr/bin/time ]] && return 0
    echo "installing GNU time (/usr/bin/time is missing)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
}

build() {
    if [[ -n ${BENCH_BIN_DIR:-} ]]; then
        SENDER="$BENCH_BIN_DIR/sender"
        RECEIVER="$BENCH_BIN_DIR/receiver"
        echo "using binaries from BENCH_BIN_DIR=$BENCH_BIN_DIR (no build)"
    else
        cargo build --release --locked --quiet -p sender -p receiver ||
            die "cargo build --release failed"
        SENDER="$REPO/target/release/sender"
        RECEIVER="$REPO/target/release/receiver"
    fi
    [[ -x $SENDER && -x $RECEIVER ]] || die "no sender/receiver binaries at $SENDER, $RECEIVER"
}

start_env() {
    bash scripts/testenv.sh up
    # shellcheck disable=SC1091
    source "$PGFERRY_TESTENV/env"
    WORK=$(mktemp -d /tmp/pgferry-bench-work.XXXXXX)
    chmod 755 "$WORK"
    # Inboxes live under the SSH account's root: it (not root) writes into them.
    CLASSIC_INBOX="$SSH_ROOT/classic-inbox"
    PGFERRY_INBOX="$SSH_ROOT/pgferry-inbox"
    install -d -o "$SSH_USER" -m 775 "$CLASSIC_INBOX" "$PGFERRY_INBOX"
    IMAGES="$WORK/images"
    CLASSIC_TMP="$WORK/classic-sender-tmp"     # the original sender's temp dir
    CLASSIC_EXTRACT="$WORK/classic-extract"    # where the original receiver unpacked
    CLASSIC_IMAGES="$WORK/classic-target-images"
    SENDER_STATE="$WORK/sender-state"
    SENDER_TMP="$WORK/sender-tmp"              # $TMPDIR of every sender run
    RECEIVER_STATE="$WORK/receiver-state"
    RECEIVER_TMP="$WORK/receiver-tmp"          # $TMPDIR of every receiver run
    TARGET_IMAGES="$WORK/pgferry-target-images"
    mkdir -p "$IMAGES" "$CLASSIC_TMP" "$CLASSIC_EXTRACT" "$CLASSIC_IMAGES" "$SENDER_STATE" \
        "$SENDER_TMP" "$RECEIVER_STATE" "$RECEIVER_TMP" "$TARGET_IMAGES"
}

# --- the dataset ---------------------------------------------------------------------------------

DB=transapp
TABLES=(AndroidRequests_bus AndroidRequests_busassignment AndroidRequests_event
    AndroidRequests_statistic AndroidRequests_report)
CHANGED_AT=timeStamp

# pg_dump's -t options for the dataset tables (quoted: the names are mixed case).
dump_table_args() {
    local t
    for t in "${TABLES[@]}"; do
        printf -- '-t\npublic."%s"\n' "$t"
    done
}

# create_dataset PSQLFN: the dataset's tables and rows in a new $DB on the cluster PSQLFN
# talks to (the primary, and for the logical run the logical cluster).
create_dataset() {
    local fn=$1 s=$SCALE
    "$fn" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    # Row counts per unit of SCALE were chosen so that the data-only plain dump is ~200 MB:
    # reports (wide, ~1 KB a row) and events (narrow, many rows) ~95 MB each, the rest small.
    # Every "timeStamp" is at least a day old, so the partial cycle sends only what the
    # benchmark changes (plus the parents those rows reference).
    "$fn" -d "$DB" \
        -v nbus=$((2000 * s)) -v nassign=$((200000 * s)) -v nevent=$((1300000 * s)) \
        -v nstat=$((50000 * s)) -v nreport=$((100000 * s)) -f "$BENCH_FILES/dataset.sql"
    # Set hint bits and statistics now, so the first timed pg_dump does not pay for them.
    "$fn" -d "$DB" -c "VACUUM (FREEZE, ANALYZE)"
}

generate_data() {
    local s=$SCALE
    create_dataset primary

    # The images named by "imageName" (every 200th report), random bytes: incompressible.
    local g size bytes=0 n=0
    RANDOM=42
    for ((g = 200; g <= 100000 * s; g += 200)); do
        size=$((20480 + (RANDOM * 32768 + RANDOM) % 61441))   # 20-80 KiB
        head -c "$size" /dev/urandom >"$IMAGES/report_$g.jpeg"
        bytes=$((bytes + size))
        n=$((n + 1))
    done
    IMAGE_COUNT=$n
    IMAGE_BYTES=$bytes
    # Old files, as on the real server: a partial then sends only the images that changed
    # rows name, not every file written while the benchmark set itself up.
    touch -d '2 days ago' "$IMAGES"/*.jpeg

    local t rows bytes
    mapfile -t DUMP_ARGS < <(dump_table_args)
    echo "tables: rows, data-only dump MB"
    for t in "${TABLES[@]}"; do
        rows=$(primary -d "$DB" -A -t -c "SELECT count(*) FROM \"$t\"")
        bytes=$(pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain --data-only -t "public.\"$t\"" | wc -c)
        printf '   %-32s %10s rows %8s MB\n' "$t" "$rows" "$(fmt1 "$(calc "$bytes / 1000000")")"
    done
    DUMP_BYTES=$(pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain --data-only "${DUMP_ARGS[@]}" | wc -c)
    echo "data-only plain dump: $DUMP_BYTES bytes ($(fmt1 "$(calc "$DUMP_BYTES / 1000000")") MB)"
    echo "images: $IMAGE_COUNT files, $IMAGE_BYTES bytes ($(fmt1 "$(calc "$IMAGE_BYTES / 1000000")") MB)"
    echo "MB/s below = data-only dump MB (10^6 bytes) / wall seconds; RSS and disk in MiB"
}

# --- verification --------------------------------------------------------------------------------

# table_digest PSQLFN DB TABLE: row count and an md5 over every row in key order. Rows are
# hashed in groups of 65536 ids, so no single string grows past PostgreSQL's 1 GB limit.
table_digest() {
    local fn=$1 db=$2 t=$3
    "$fn" -d "$db" -A -t -c "SELECT coalesce(sum(n), 0) || ' ' || coalesce(md5(string_agg(h, '' ORDER BY b)), '-')
        FROM (SELECT id / 65536 AS b, count(*) AS n, md5(string_agg(t::text, E'\n' ORDER BY id)) AS h
              FROM \"$t\" t GROUP BY 1) x"
}

# files_digest DIR: file count and one sha256 over the sorted list of (name, sha256).
files_digest() {
    local dir=$1
    (
        cd "$dir"
        local n
        n=$(find . -type f | wc -l)
        echo "$n $(find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-64)"
    )
}

# verify_equal LABEL TARGET_DB IMAGES_DIR|- [SOURCE]: fails the benchmark when any table or
# the image files differ between the source ($DB on the cluster the helper SOURCE talks to:
# primary, the default, or logical) and the secondary's TARGET_DB.
verify_equal() {
    local label=$1 target=$2 images=$3 src=${4:-primary} t a b bad=0
    for t in "${TABLES[@]}"; do
        a=$(table_digest "$src" "$DB" "$t")
        b=$(table_digest secondary "$target" "$t" 2>&1) || b="missing ($b)"
        if [[ $a != "$b" ]]; then
            echo "   DIFFERENT $t: $src $a, secondary $b" >&2
            bad=1
        fi
    done
    local files="no files sent"
    if [[ $images != - ]]; then
        a=$(files_digest "$IMAGES")
        b=$(files_digest "$images")
        if [[ $a != "$b" ]]; then
            echo "   DIFFERENT images: primary $a, secondary $b" >&2
            bad=1
        fi
        files="${a%% *} image files equal"
    fi
    ((bad == 0)) || die "verification failed: $label left the secondary different from $(cluster_name "$src")"
    echo "   verified $label: ${#TABLES[@]} tables equal, $files"
}

# --- classic: the original temp-file pipeline --------------------------------------------------

# lap LABEL: prints the time since the previous lap (the classic pipeline's steps).
lap() {
    local t
    t=$(now)
    LAPS+=("$1 $(fmt2 "$(calc "$t - $LAP_T")") s")
    LAP_T=$t
}

classic_send() {
    pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain "${DUMP_ARGS[@]}" \
        -f "$CLASSIC_TMP/dump.sql"
    lap "pg_dump > file"
    tar -czf "$CLASSIC_TMP/bundle.tar.gz" -C "$CLASSIC_TMP" dump.sql -C "$WORK" images
    lap "tar -czf"
    CLASSIC_BUNDLE_BYTES=$(stat -c %s "$CLASSIC_TMP/bundle.tar.gz")
    printf 'put %s %s/bundle.tar.gz\n' "$CLASSIC_TMP/bundle.tar.gz" "$CLASSIC_INBOX" |
        sftp -q -b - -i "$SSH_KEY" -P "$SSH_PORT" -o UserKnownHostsFile="$SSH_KNOWN_HOSTS" \
            -o StrictHostKeyChecking=yes -o BatchMode=yes "$SSH_USER@$SSH_HOST" >/dev/null
    rm -f "$CLASSIC_TMP/dump.sql" "$CLASSIC_TMP/bundle.tar.gz"
    lap "sftp put"
}

classic_receive() {
    tar -xzf "$CLASSIC_INBOX/bundle.tar.gz" -C "$CLASSIC_EXTRACT"
    lap "tar -xzf"
    secondary -d bench_classic -1 -f "$CLASSIC_EXTRACT/dump.sql" >/dev/null
    lap "psql -1 -f"
    cp -r "$CLASSIC_EXTRACT/images/." "$CLASSIC_IMAGES/"
    lap "cp -r images"
}

run_classic() {
    step "classic: pg_dump > file, tar -czf, sftp put, tar -xzf, psql -1 -f, cp -r"
    fresh_db bench_classic
    settle
    start_disk classic_s "$CLASSIC_TMP"
    start_disk classic_r "$CLASSIC_INBOX" "$CLASSIC_EXTRACT"
    local t0 t1
    LAPS=()
    t0=$(now)
    LAP_T=$t0
    classic_send
    classic_receive
    t1=$(now)
    stop_samplers
    record classic "classic (pg_dump file, tar -czf, sftp, tar -xzf, psql -1 -f, cp -r)" \
        "$(calc "$t1 - $t0")" - - "$(disk_peak classic_s)" "$(disk_peak classic_r)"
    local steps
    steps=$(printf '%s, ' "${LAPS[@]}")
    echo "   steps: ${steps%, }"
    echo "   classic bundle (tar.gz): $CLASSIC_BUNDLE_BYTES bytes ($(mib "$CLASSIC_BUNDLE_BYTES") MiB)"
    verify_equal classic bench_classic "$CLASSIC_IMAGES"
    # The unpacked dump stays for the "psql from a local file" reference below.
    rm -f "$CLASSIC_INBOX/bundle.tar.gz"
    rm -rf "$CLASSIC_EXTRACT/images"
    drop_db bench_classic
}

# --- reference limits ------------------------------------------------------------------------

# timed KEY LABEL FUNCTION: times one reference run (no RSS or disk columns).
timed() {
    local key=$1 label=$2 fn=$3 t0 t1
    settle
    t0=$(now)
    "$fn"
    t1=$(now)
    record "$key" "$label" "$(calc "$t1 - $t0")" - - - -
}

ref_dump() {
    pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain "${DUMP_ARGS[@]}" >/dev/null
}
ref_dump_gzip() {
    pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain "${DUMP_ARGS[@]}" |
        gzip -1 >/dev/null
}
ref_psql_local() {
    secondary -d bench_local -1 -f "$CLASSIC_EXTRACT/dump.sql" >/dev/null
}
ref_stream() {
    pg_dump -h "$PG_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d "$DB" --format=plain "${DUMP_ARGS[@]}" |
        gzip -1 |
        ssh -p "$SSH_PORT" -i "$SSH_KEY" -o UserKnownHostsFile="$SSH_KNOWN_HOSTS" \
            -o StrictHostKeyChecking=yes -o BatchMode=yes "$SSH_USER@$SSH_HOST" \
            "gunzip | psql -X -q -1 -v ON_ERROR_STOP=1 -h $PG_HOST -p $SECONDARY_PORT -U $PG_USER -d bench_stream >/dev/null"
}

run_references() {
    step "reference: pg_dump > /dev/null"
    timed ref_dump "pg_dump > /dev/null" ref_dump
    step "reference: pg_dump | gzip -1 > /dev/null"
    timed ref_dump_gzip "pg_dump | gzip -1 > /dev/null" ref_dump_gzip
    step "reference: psql -1 -f from a local file"
    fresh_db bench_local
    timed ref_psql_local "psql -1 -f local file" ref_psql_local
    drop_db bench_local
    rm -rf "${CLASSIC_EXTRACT:?}"/*
    step "reference: pg_dump | gzip -1 | ssh 'gunzip | psql -1'"
    fresh_db bench_stream
    timed ref_stream "pg_dump | gzip -1 | ssh 'gunzip | psql -1'" ref_stream
    verify_equal "the streamed pipe" bench_stream -
    drop_db bench_stream
}

# --- pgferry ------------------------------------------------------------------------------------

TARGET_DB=bench_pgferry

# The templates name $SOURCE_PORT (the cluster the sender reads) and $PARTIAL_SOURCE (the
# [partial] lines saying where partials come from: here the changed_at columns, in the
# logical run the slot). pgferry_cycle loads with $RECEIVER_CONFIG.
write_configs() {
    local t
    # shellcheck disable=SC2034  # read by render: the templates name $SOURCE_TABLES
    SOURCE_TABLES=$(printf '"public.%s", ' "${TABLES[@]}" | sed 's/, $//')
    # shellcheck disable=SC2034  # read by render
    SOURCE_PORT=$PRIMARY_PORT
    PARTIAL_SOURCE=""
    for t in "${TABLES[@]}"; do
        PARTIAL_SOURCE+=$(printf '\n[[partial.tables]]\ntable = "public.%s"\nchanged_at = "%s"\n' "$t" "$CHANGED_AT")
    done
    RECEIVER_CONFIG="$WORK/receiver.toml"
    render "$BENCH_FILES/sender.toml" >"$WORK/sender.toml"
    render "$BENCH_FILES/receiver.toml" >"$RECEIVER_CONFIG"
    chmod 600 "$WORK/sender.toml" "$RECEIVER_CONFIG"
}

# render TEMPLATE: the template with its $VARIABLES filled in from this script.
render() {
    eval "cat <<TOML
$(<"$1")
TOML"
}

# pgferry_run LOGNAME BINARY CONFIG ARGS...: runs one pgferry command under GNU time with
# its own TMPDIR; sets LAST_RSS (KiB). Its log goes to a file, shown when it fails.
pgferry_run() {
    local name=$1 bin=$2 config=$3 tmp
    shift 3
    if [[ $bin == "$SENDER" ]]; then tmp=$SENDER_TMP; else tmp=$RECEIVER_TMP; fi
    local log="$WORK/log.$name" rc=0
    TMPDIR="$tmp" /usr/bin/time -v -o "$log.time" "$bin" -c "$config" --no-alert "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        echo "   $(basename "$bin") $* exited $rc; its log:" >&2
        sed 's/^/   | /' "$log" >&2
        die "$(basename "$bin") $* failed"
    fi
    LAST_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log.time")
    [[ -n $LAST_RSS ]] || die "no peak RSS in $log.time"
}

# Newest published bundle of a kind in the inbox (pending or applied).
bundle_size() {
    local kind=$1 f
    f=$(find "$PGFERRY_INBOX" -type f -name "pgferry-*-$kind.tar.*" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2-)
    [[ -n $f ]] || die "no $kind bundle in $PGFERRY_INBOX"
    stat -c %s "$f"
}

# pgferry_cycle KEY LABEL SENDER_CONFIG SENDER_CMD...: one sender command then
# `receiver load`, timed separately, with RSS and disk for each and the reader probe during
# the load; records three rows.
pgferry_cycle() {
    local key=$1 label=$2 config=$3 kind=$4
    shift 4
    local t0 t1 t2 s_rss r_rss s_secs r_secs
    # Applied bundles of earlier runs are gone, so the receiver side starts from nothing.
    rm -rf "${PGFERRY_INBOX:?}/applied" "${PGFERRY_INBOX:?}/failed"
    rm -rf "${SENDER_TMP:?}"/* "${RECEIVER_TMP:?}"/*
    settle

    start_disk "${key}_send_s" "$SENDER_STATE" "$SENDER_TMP"
    start_disk "${key}_send_r" "$PGFERRY_INBOX" "$RECEIVER_STATE" "$RECEIVER_TMP"
    t0=$(now)
    pgferry_run "$key.sender" "$SENDER" "$config" "$@"
    t1=$(now)
    stop_samplers
    s_rss=$LAST_RSS
    BUNDLE_BYTES[$key]=$(bundle_size "$kind")

    settle
    start_disk "${key}_load_s" "$SENDER_STATE" "$SENDER_TMP"
    start_disk "${key}_load_r" "$PGFERRY_INBOX" "$RECEIVER_STATE" "$RECEIVER_TMP"
    # The load starts with the bundle already in the inbox: count it from zero, as above.
    echo 0 >"$WORK/disk.${key}_load_r.base"
    start_probe "$key"
    t2=$(now)
    pgferry_run "$key.receiver" "$RECEIVER" "$RECEIVER_CONFIG" load
    local t3
    t3=$(now)
    stop_probe
    stop_samplers
    probe_result "$key"
    r_rss=$LAST_RSS
    s_secs=$(calc "$t1 - $t0")
    r_secs=$(calc "$t3 - $t2")

    local sd1 rd1 sd2 rd2
    sd1=$(disk_peak "${key}_send_s")
    rd1=$(disk_peak "${key}_send_r")
    sd2=$(disk_peak "${key}_load_s")
    rd2=$(disk_peak "${key}_load_r")
    local mbps=""
    [[ $kind == partial ]] && mbps="-"
    record "${key}_sender" "$label: sender $*" "$s_secs" "$s_rss" - "$sd1" "$rd1" "$mbps"
    record "${key}_receiver" "$label: receiver load" "$r_secs" - "$r_rss" "$sd2" "$rd2" "$mbps"
    local failed=""
    ((READER_ERR[$key] == 0)) ||
        failed=", ${READER_ERR[$key]} failed ($(grep -m1 -o 'ERROR: .*' "$WORK/probe.$key" | tr -s ' '))"
    echo "   reader probe: ${READER_N[$key]} queries, longest wait ${READER_MAX[$key]} s$failed"
    record "$key" "$label: round trip" "$(calc "$s_secs + $r_secs")" "$s_rss" "$r_rss" \
        "$((sd1 > sd2 ? sd1 : sd2))" "$((rd1 > rd2 ? rd1 : rd2))" "$mbps"
    echo "   $kind bundle: ${BUNDLE_BYTES[$key]} bytes ($(mib "${BUNDLE_BYTES[$key]}") MiB)"
}
declare -A BUNDLE_BYTES=()

# update_rows [PSQLFN]: the change before the partial cycle and again before the replacing
# complete (and, on the logical cluster, before the logical partial): 10,000 rows spread
# over every table, each with a new changed_at and a changed value (a second run picks the
# same rows: a new timeStamp everywhere, and trips, message grow again). The strides grow
# with SCALE so the changed rows stay spread over the whole table.
update_rows() {
    local fn=${1:-primary} n
    n=$("$fn" -d "$DB" -A -t -v s="$SCALE" -f "$BENCH_FILES/update.sql")
    [[ $n == 10000 ]] || die "the UPDATE of update.sql changed $n rows, not 10000"
    echo "   updated $n rows on $(cluster_name "$fn")"
}

run_pgferry() {
    step "pgferry: sender check, receiver check"
    write_configs
    fresh_db "$TARGET_DB"
    pgferry_run check.sender "$SENDER" "$WORK/sender.toml" check
    pgferry_run check.receiver "$RECEIVER" "$RECEIVER_CONFIG" check

    step "pgferry: sender complete + receiver load"
    pgferry_cycle complete "pgferry complete" "$WORK/sender.toml" complete complete
    verify_equal "pgferry complete" "$TARGET_DB" "$TARGET_IMAGES"

    # The same complete through an S3-compatible store, on the same data (before the updates).
    run_s3

    # Signed and encrypted completes against plain ones, on the same data.
    run_sealed

    step "pgferry: partial cycle (10,000 updated rows)"
    update_rows
    pgferry_cycle partial "pgferry partial" "$WORK/sender.toml" partial partial
    verify_equal "pgferry partial" "$TARGET_DB" "$TARGET_IMAGES"

    # A complete into the tables the two loads above filled, as every day after the first:
    # no fresh_db, so the receiver stages the bundle's rows and merges what differs while
    # the probe keeps reading. The partial's bundle was applied, so this one is the only
    # pending bundle.
    step "pgferry: complete replacing the target's rows (10,000 rows changed again)"
    update_rows
    pgferry_cycle replace "pgferry complete, replacing" "$WORK/sender.toml" complete complete
    verify_equal "pgferry complete, replacing" "$TARGET_DB" "$TARGET_IMAGES"

    step "pgferry: complete with [compression] codec = \"zstd\""
    cp "$WORK/sender.toml" "$WORK/sender-zstd.toml"
    printf '\n[compression]\ncodec = "zstd"\n' >>"$WORK/sender-zstd.toml"
    local rc=0
    "$SENDER" -c "$WORK/sender-zstd.toml" check >"$WORK/log.check-zstd" 2>&1 || rc=$?
    if ((rc == 2)); then
        echo "   the sender does not accept [compression] codec = \"zstd\" (check exits 2): n/a"
        ZSTD=0
        record_na "pgferry complete (zstd): round trip"
    else
        ZSTD=1
        ((rc == 0)) || { echo "   sender check with zstd exited $rc:"; sed 's/^/   | /' "$WORK/log.check-zstd"; }
        fresh_db "$TARGET_DB"
        rm -rf "${TARGET_IMAGES:?}"/*
        pgferry_cycle zstd "pgferry complete (zstd)" "$WORK/sender-zstd.toml" complete complete
        verify_equal "pgferry complete (zstd)" "$TARGET_DB" "$TARGET_IMAGES"
    fi
}

# --- pgferry through an S3-compatible store -----------------------------------------------------

# The S3 run's bundles are objects under this prefix of its bucket.
S3_PREFIX=bench/
# The limit of every S3 request's connect, read and write. The default (60s) would do for a
# real store; this one is generous for moto, a Python server on the same cores as everything
# else, and is here only to end a stuck run, not to shape the figure.
S3_TIMEOUT=300s

# The bucket's housekeeping, in the test environment's python (it has boto3): "create" the
# bucket, "list" it (one "SIZE KEY" line per object), "remove" it (abort unfinished multipart
# uploads, delete every object, delete the bucket, then prove it is gone; a bucket that does
# not exist is fine). The keys come from the environment (s3_admin passes the writer's),
# never the command line.
S3_ADMIN_PY='
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

action, endpoint, region, bucket = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name=region,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, read_timeout=300),
)


def code(err):
    return err.response.get("Error", {}).get("Code", "")


if action == "create":
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **extra)
elif action == "list":
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            print(obj["Size"], obj["Key"])
elif action == "remove":
    uploads = objects = 0
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                uploads += 1
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
                objects += 1
        s3.delete_bucket(Bucket=bucket)
    except ClientError as err:
        if code(err) != "NoSuchBucket":
            raise
    try:
        s3.head_bucket(Bucket=bucket)
        sys.exit(f"the bucket {bucket} still exists")
    except ClientError as err:
        if code(err) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    print(f"{objects} objects, {uploads} unfinished uploads")
else:
    sys.exit(f"unknown action {action}")
'

# s3_admin ACTION: S3_ADMIN_PY's ACTION on $S3_BUCKET, with the writer's keys.
s3_admin() {
    AWS_ACCESS_KEY_ID=$S3_WRITER_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_WRITER_SECRET \
        "$S3_PYTHON" -c "$S3_ADMIN_PY" "$1" "$S3_ENDPOINT" "$S3_REGION" "$S3_BUCKET"
}

# remove_bucket: the end of the S3 run; fails the benchmark when the bucket stays.
remove_bucket() {
    local removed
    removed=$(s3_admin remove 2>"$WORK/log.s3-remove-bucket") ||
        { sed 's/^/   | /' "$WORK/log.s3-remove-bucket" >&2; die "could not remove the bucket $S3_BUCKET"; }
    echo "   removed bucket $S3_BUCKET ($removed)"
    S3_BUCKET=""
}

# remove_bucket_anyway: the EXIT trap's version (errexit is off there, and $WORK may be
# about to go: what went wrong is shown here).
remove_bucket_anyway() {
    local out
    if out=$(s3_admin remove 2>&1); then
        echo "bench: removed bucket $S3_BUCKET on the S3 server ($out)" >&2
    else
        echo "bench: could not remove bucket $S3_BUCKET on the S3 server ($S3_ENDPOINT):" >&2
        printf '   | %s\n' "${out//$'\n'/$'\n   | '}" >&2
    fi
    S3_BUCKET=""
}

# s3_bundle_size KIND: the size of the one bundle of KIND in the bucket.
s3_bundle_size() {
    local kind=$1 listing sizes
    listing=$(s3_admin list) || die "cannot list the bucket $S3_BUCKET"
    sizes=$(awk -v k="-$kind.tar." 'index($2, k) { print $1 }' <<<"$listing")
    [[ $sizes =~ ^[0-9]+$ ]] ||
        die "not one $kind bundle in s3://$S3_BUCKET/$S3_PREFIX but: ${listing:-nothing}"
    echo "$sizes"
}

# replace_table NAME BODY: stdin, with the lines of the TOML table [NAME] (up to the next
# table header) replaced by BODY.
replace_table() {
    BODY=$2 awk -v name="[$1]" '
        $0 == name { print; print ENVIRON["BODY"]; skip = 1; found = 1; next }
        /^\[/ && skip { print ""; skip = 0 }
        !skip { print }
        END { exit !found }'
}

# The sender with the SFTP run's config but [remote] naming the bucket, then a receiver whose
# [inbox] is the same bucket, into a fresh database: the SFTP complete's figures again,
# through the store. Its own sender state (the SFTP runs' high-water mark stays theirs),
# receiver state, work dir, target database and image dir; the temp dirs are shared,
# cleared first as pgferry_cycle clears them.
run_s3() {
    # render, start_disk, start_probe and pgferry_run read these names: locals (dynamic
    # scope) switch them over for this step, as in run_logical.
    # shellcheck disable=SC2034  # read by render and the helpers
    local TARGET_DB=bench_s3 TARGET_IMAGES="$WORK/s3-target-images" \
        SENDER_STATE="$WORK/sender-s3-state" RECEIVER_STATE="$WORK/receiver-s3-state" \
        RECEIVER_CONFIG="$WORK/receiver-s3.toml"
    local config="$WORK/sender-s3.toml" work_dir="$WORK/s3-inbox" bucket="pgferry-bench-$$"

    step "pgferry through S3: bucket $bucket, sender check, receiver check"
    if [[ -z ${S3_ENDPOINT:-} || -z ${S3_WRITER_KEY_ID:-} || -z ${S3_READER_KEY_ID:-} ]]; then
        echo "   the test environment has no S3 server (no S3_ENDPOINT or keys in its env file): n/a"
        S3=0
        record_na "pgferry complete → S3 (sender)"
        record_na "pgferry load ← S3 (receiver)"
        return 0
    fi
    mkdir -p "$SENDER_STATE" "$RECEIVER_STATE" "$TARGET_IMAGES" "$work_dir"
    local store
    store=$(printf 'endpoint = "%s"\nregion = "%s"\nbucket = "%s"\nprefix = "%s"\npath_style = true\ntimeout = "%s"' \
        "$S3_ENDPOINT" "$S3_REGION" "$bucket" "$S3_PREFIX" "$S3_TIMEOUT")
    render "$BENCH_FILES/sender.toml" |
        replace_table remote "$(printf 'kind = "s3"\n%s\nkeep_completes = 2' "$store")" >"$config" ||
        die "no [remote] in $BENCH_FILES/sender.toml"
    render "$BENCH_FILES/receiver.toml" |
        replace_table inbox "$(printf 'kind = "s3"\ndir = "%s"\n%s' "$work_dir" "$store")" >"$RECEIVER_CONFIG" ||
        die "no [inbox] in $BENCH_FILES/receiver.toml"
    chmod 600 "$config" "$RECEIVER_CONFIG"
    # From the create on, the bucket may exist: the EXIT trap removes it should anything fail.
    S3_BUCKET=$bucket
    s3_admin create || die "cannot create the bucket $bucket on $S3_ENDPOINT"
    echo "   created bucket $bucket on $S3_ENDPOINT (objects under $S3_PREFIX)"
    # A build from before the S3 store (BENCH_BIN_DIR) rejects the config: n/a, as zstd.
    local rc=0
    AWS_ACCESS_KEY_ID=$S3_WRITER_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_WRITER_SECRET \
        "$SENDER" -c "$config" --no-alert check >"$WORK/log.s3-check.sender" 2>&1 || rc=$?
    if ((rc == 2)); then
        echo "   the sender does not accept [remote] kind = \"s3\" (check exits 2): n/a"
        sed 's/^/   | /' "$WORK/log.s3-check.sender"
        S3=0
        record_na "pgferry complete → S3 (sender)"
        record_na "pgferry load ← S3 (receiver)"
        remove_bucket
        return 0
    fi
    if ((rc != 0)); then
        sed 's/^/   | /' "$WORK/log.s3-check.sender" >&2
        die "sender check with the S3 config exited $rc"
    fi
    S3=1
    fresh_db "$TARGET_DB"
    AWS_ACCESS_KEY_ID=$S3_READER_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_READER_SECRET \
        pgferry_run s3-check.receiver "$RECEIVER" "$RECEIVER_CONFIG" check

    step "pgferry through S3: sender complete → bucket (moto), receiver load ← bucket"
    local t0 t1 t2 t3 s_rss r_rss
    rm -rf "${SENDER_TMP:?}"/* "${RECEIVER_TMP:?}"/*
    settle
    # The bundle goes into the store, not onto the receiver's disk: no receiver disk column.
    start_disk s3_send_s "$SENDER_STATE" "$SENDER_TMP"
    t0=$(now)
    AWS_ACCESS_KEY_ID=$S3_WRITER_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_WRITER_SECRET \
        pgferry_run s3.sender "$SENDER" "$config" complete
    t1=$(now)
    stop_samplers
    s_rss=$LAST_RSS
    BUNDLE_BYTES[s3]=$(s3_bundle_size complete)

    settle
    # The load fetches the bundle into the work dir first: that is its extra disk.
    start_disk s3_load_r "$work_dir" "$RECEIVER_STATE" "$RECEIVER_TMP"
    start_probe s3
    t2=$(now)
    AWS_ACCESS_KEY_ID=$S3_READER_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_READER_SECRET \
        pgferry_run s3.receiver "$RECEIVER" "$RECEIVER_CONFIG" load
    t3=$(now)
    r_rss=$LAST_RSS
    stop_probe
    stop_samplers
    probe_result s3

    record s3_sender "pgferry complete → S3 (sender)" "$(calc "$t1 - $t0")" "$s_rss" - "$(disk_peak s3_send_s)" -
    record s3_receiver "pgferry load ← S3 (receiver)" "$(calc "$t3 - $t2")" - "$r_rss" - "$(disk_peak s3_load_r)"
    echo "   complete bundle in the store: ${BUNDLE_BYTES[s3]} bytes ($(mib "${BUNDLE_BYTES[s3]}") MiB)"
    echo "   reader probe: ${READER_N[s3]} queries, longest wait ${READER_MAX[s3]} s"
    # The load applied the very object the sender stored (fetched, not found some other way).
    local applied
    applied=$(find "$work_dir/applied" -type f -name 'pgferry-*-complete.tar.*' -size "${BUNDLE_BYTES[s3]}c" 2>/dev/null | wc -l)
    ((applied == 1)) || die "the S3 load did not apply the stored bundle (${BUNDLE_BYTES[s3]} bytes) from $work_dir"
    verify_equal "pgferry complete through S3" "$TARGET_DB" "$TARGET_IMAGES"

    step "pgferry through S3: removing the bucket, the fetched bundle and the database"
    remove_bucket
    rm -rf "${work_dir:?}" "${TARGET_IMAGES:?}"
    drop_db "$TARGET_DB"
}

# --- pgferry with signed and encrypted bundles ----------------------------------------------------

# Pairs of a plain and a sealed complete + load, alternating (plain, sealed, plain, ...): on a
# shared 2-core machine the load drifts during a run, and the alternation spreads the drift
# over both sides. The medians are compared.
SEALED_PAIRS=3
# Per run (KEY "plain.I" or "sealed.I"): sender and receiver seconds and peak RSS (KiB), the
# bundle's name and size.
declare -A SEALED_SECS_S=() SEALED_SECS_R=() SEALED_RSS_S=() SEALED_RSS_R=() SEALED_NAME=() SEALED_BYTES=()
# What an age file starts with (its header's first line).
AGE_MAGIC="age-encryption.org/v1"

# median NUMBER...: the middle one (the mean of the two middle ones for an even count).
median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# sealed_dir MODE I: the I-th MODE run's own directory (configs, states, target images).
sealed_dir() { echo "$WORK/sealed/$1-$2"; }
sealed_db() { echo "bench_sealed_$1_$2"; }

# sealed_configs MODE I: the run's sender and receiver configs, the benchmark's own with
# their own sender state, receiver state, target database and image dir, and for MODE
# "sealed" a [bundle] table on each side naming the step's keys.
sealed_configs() {
    local mode=$1 i=$2 dir
    dir=$(sealed_dir "$mode" "$i")
    # shellcheck disable=SC2034  # read by render
    local SENDER_STATE="$dir/sender-state" RECEIVER_STATE="$dir/receiver-state" \
        TARGET_DB TARGET_IMAGES="$dir/target-images"
    TARGET_DB=$(sealed_db "$mode" "$i")
    mkdir -p "$SENDER_STATE" "$RECEIVER_STATE" "$TARGET_IMAGES"
    render "$BENCH_FILES/sender.toml" >"$dir/sender.toml"
    render "$BENCH_FILES/receiver.toml" >"$dir/receiver.toml"
    if [[ $mode == sealed ]]; then
        printf '\n[bundle]\nsign_key = "%s"\nencrypt_to = ["%s"]\n' \
            "$SEALED_KEYS/bundle.key" "$SEALED_RECIPIENT" >>"$dir/sender.toml"
        printf '\n[bundle]\ntrusted_keys = ["%s"]\nidentities = ["%s"]\n' \
            "$SEALED_KEYS/bundle.pub" "$SEALED_KEYS/age.key" >>"$dir/receiver.toml"
    fi
    chmod 600 "$dir/sender.toml" "$dir/receiver.toml"
}

# sealed_cycle MODE I: the I-th MODE sender complete, then receiver load into a fresh
# database, timed with their peak RSS, the reader probe during the load; the bundle checked
# by name (and, sealed, by its age header), the load by verify_equal. Then the run's
# database, applied bundle, states and images go.
sealed_cycle() {
    local mode=$1 i=$2 key="$1.$2" dir
    dir=$(sealed_dir "$mode" "$i")
    # start_probe, probe_result and verify_equal read TARGET_DB: a local switches them over.
    local TARGET_DB
    TARGET_DB=$(sealed_db "$mode" "$i")
    local images="$dir/target-images" probe="sealed-$mode-$i"

    step "sealed: pair $i of $SEALED_PAIRS, $mode sender complete + receiver load"
    rm -rf "${PGFERRY_INBOX:?}/applied" "${PGFERRY_INBOX:?}/failed"
    rm -rf "${SENDER_TMP:?}"/* "${RECEIVER_TMP:?}"/*
    fresh_db "$TARGET_DB"
    settle
    local t0 t1 t2 t3
    t0=$(now)
    pgferry_run "sealed-$mode-$i.sender" "$SENDER" "$dir/sender.toml" complete
    t1=$(now)
    SEALED_RSS_S[$key]=$LAST_RSS

    # The one pending bundle (earlier loads applied theirs, and those were deleted).
    local found name path
    found=$(find "$PGFERRY_INBOX" -maxdepth 1 -type f -name 'pgferry-*' -printf '%f\n')
    [[ -n $found && $found != *$'\n'* ]] || die "not one pending bundle after the $mode complete but: ${found:-none}"
    name=$found
    path="$PGFERRY_INBOX/$name"
    if [[ $mode == sealed ]]; then
        [[ $name == pgferry-*-complete.tar.gz.age ]] || die "the sealed complete is named $name, not ...-complete.tar.gz.age"
        [[ $(head -c ${#AGE_MAGIC} "$path") == "$AGE_MAGIC" ]] || die "$name does not start with an age header"
    else
        [[ $name == pgferry-*-complete.tar.gz ]] || die "the plain complete is named $name, not ...-complete.tar.gz"
    fi
    SEALED_NAME[$key]=$name
    SEALED_BYTES[$key]=$(stat -c %s "$path")

    settle
    start_probe "$probe"
    t2=$(now)
    pgferry_run "sealed-$mode-$i.receiver" "$RECEIVER" "$dir/receiver.toml" load
    t3=$(now)
    SEALED_RSS_R[$key]=$LAST_RSS
    stop_probe
    probe_result "$probe"
    SEALED_SECS_S[$key]=$(calc "$t1 - $t0")
    SEALED_SECS_R[$key]=$(calc "$t3 - $t2")
    printf '   %s complete: sender %s s, %s MiB; load %s s, %s MiB; bundle %s (%s bytes); longest reader wait %s s\n' \
        "$mode" "$(fmt2 "${SEALED_SECS_S[$key]}")" "$(kib "${SEALED_RSS_S[$key]}")" \
        "$(fmt2 "${SEALED_SECS_R[$key]}")" "$(kib "${SEALED_RSS_R[$key]}")" "$name" "${SEALED_BYTES[$key]}" \
        "${READER_MAX[$probe]}"
    # The load applied the very bundle the sender published.
    [[ -f $PGFERRY_INBOX/applied/$name ]] || die "the $mode load did not apply $name (not in $PGFERRY_INBOX/applied)"
    verify_equal "pgferry complete ($mode, pair $i)" "$TARGET_DB" "$images"

    rm -f "$PGFERRY_INBOX/applied/$name"
    drop_db "$TARGET_DB"
    rm -rf "${dir:?}/sender-state" "${dir:?}/receiver-state" "${images:?}"
}

# remove_sealed: the end of the sealed run: its keys and any bundle it left in the inbox.
remove_sealed() {
    rm -rf "${SEALED_KEYS:?}"
    find "$PGFERRY_INBOX" -type f -name 'pgferry-*.age' -delete
    SEALED_KEYS=""
}

# remove_sealed_anyway: the EXIT trap's version (errexit is off there).
remove_sealed_anyway() {
    local n
    n=$(find "$PGFERRY_INBOX" -type f -name 'pgferry-*.age' 2>/dev/null | wc -l)
    find "$PGFERRY_INBOX" -type f -name 'pgferry-*.age' -delete 2>/dev/null
    rm -rf "$SEALED_KEYS"
    echo "bench: removed the sealed run's keys ($SEALED_KEYS) and $n encrypted bundle(s)" >&2
    SEALED_KEYS=""
}

# Signed and encrypted completes against plain ones, on the same data (right after the
# first complete and the S3 run): keys made here, then alternating pairs of sealed_cycle.
run_sealed() {
    step "sealed: keys (minisign -G -W, age-keygen), sender check, receiver check"
    # From here on the keys may exist: the EXIT trap deletes them should anything fail.
    SEALED_KEYS="$WORK/sealed-keys"
    rm -rf "$SEALED_KEYS" "$WORK/sealed"
    mkdir -m 700 "$SEALED_KEYS"
    minisign -G -W -p "$SEALED_KEYS/bundle.pub" -s "$SEALED_KEYS/bundle.key" </dev/null >"$WORK/log.sealed-minisign" 2>&1 ||
        { sed 's/^/   | /' "$WORK/log.sealed-minisign" >&2; die "minisign -G -W failed"; }
    age-keygen -o "$SEALED_KEYS/age.key" >"$WORK/log.sealed-age-keygen" 2>&1 ||
        { sed 's/^/   | /' "$WORK/log.sealed-age-keygen" >&2; die "age-keygen failed"; }
    chmod 600 "$SEALED_KEYS"/*
    SEALED_RECIPIENT=$(age-keygen -y "$SEALED_KEYS/age.key")
    echo "   minisign key $(tail -n1 "$SEALED_KEYS/bundle.pub" | cut -c1-16)..., age recipient ${SEALED_RECIPIENT:0:16}... in $SEALED_KEYS"
    local i mode
    for ((i = 1; i <= SEALED_PAIRS; i++)); do
        for mode in plain sealed; do
            mkdir -p "$(sealed_dir "$mode" "$i")"
            sealed_configs "$mode" "$i"
        done
    done
    # A build from before [bundle] (BENCH_BIN_DIR) rejects the config: n/a, as zstd.
    local rc=0 dir
    dir=$(sealed_dir sealed 1)
    "$SENDER" -c "$dir/sender.toml" --no-alert check >"$WORK/log.sealed-check.sender" 2>&1 || rc=$?
    if ((rc == 2)); then
        echo "   the sender does not accept [bundle] (check exits 2): n/a"
        sed 's/^/   | /' "$WORK/log.sealed-check.sender"
        SEALED=0
        record_na "pgferry complete, sealed (median of $SEALED_PAIRS): sender complete"
        record_na "pgferry complete, sealed (median of $SEALED_PAIRS): receiver load"
        remove_sealed
        rm -rf "$WORK/sealed"
        return 0
    fi
    if ((rc != 0)); then
        sed 's/^/   | /' "$WORK/log.sealed-check.sender" >&2
        die "sender check with the sealed config exited $rc"
    fi
    SEALED=1
    # The receiver's check connects to its target: pair 1's database, made fresh again there.
    fresh_db "$(sealed_db sealed 1)"
    pgferry_run sealed-check.receiver "$RECEIVER" "$dir/receiver.toml" check

    for ((i = 1; i <= SEALED_PAIRS; i++)); do
        sealed_cycle plain "$i"
        sealed_cycle sealed "$i"
    done

    # The medians go into the main table (no disk columns: this step does not sample them).
    sealed_medians
    for mode in plain sealed; do
        record "sealed_${mode}_sender" "pgferry complete, $mode (median of $SEALED_PAIRS pairs): sender complete" \
            "${SM[secs_s.$mode]}" "${SM[rss_s.$mode]}" - - -
        record "sealed_${mode}_receiver" "pgferry complete, $mode (median of $SEALED_PAIRS pairs): receiver load" \
            "${SM[secs_r.$mode]}" - "${SM[rss_r.$mode]}" - -
    done

    step "sealed: removing the keys and the run's directories"
    remove_sealed
    rm -rf "$WORK/sealed"
    echo "   removed the keys, configs and states of the sealed run"
}

# --- pgferry, partials from a logical replication slot ---------------------------------------------

# The slot and the publication the logical run's first complete makes on the logical cluster.
LOGICAL_SLOT=pgferry_bench

# delete_rows PSQLFN: the logical run's deletes, 1,000 events spread over the table (see
# delete.sql). A changed_at partial cannot carry a delete; the logical partial must.
delete_rows() {
    local fn=$1 n
    n=$("$fn" -d "$DB" -A -t -v s="$SCALE" -f "$BENCH_FILES/delete.sql")
    [[ $n == 1000 ]] || die "the DELETE of delete.sql removed $n rows, not 1000"
    echo "   deleted $n events on $(cluster_name "$fn")"
}

# slot_retained: bytes of WAL the logical cluster keeps for the slot, as the sender reports
# it (sender status --json: slot.retained_wal). Debian's python reads the JSON: testenv.sh
# needs it anyway.
slot_retained() {
    local json bytes
    json=$("$SENDER" -c "$LOGICAL_CONFIG" --no-alert status --json 2>"$WORK/log.status-logical") ||
        { sed 's/^/   | /' "$WORK/log.status-logical" >&2; die "sender status --json failed"; }
    bytes=$(/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["slot"]["retained_wal"])' <<<"$json")
    [[ $bytes =~ ^[0-9]+$ ]] || die "sender status --json shows no retained WAL for the slot: $json"
    echo "$bytes"
}

# Where the logical cluster writes WAL now.
wal_lsn() { logical -d postgres -A -t -c "SELECT pg_current_wal_lsn()"; }

# slot_leftovers: how many of the slot and the publication still exist.
slot_leftovers() {
    logical -d "$DB" -A -t -c "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$LOGICAL_SLOT')
        + (SELECT count(*) FROM pg_publication WHERE pubname = '$LOGICAL_SLOT')"
}

# drop_slot: the end of the logical run, through the command an operator would use.
drop_slot() {
    pgferry_run logical-drop-slot.sender "$SENDER" "$LOGICAL_CONFIG" drop-slot
    local left
    left=$(slot_leftovers)
    [[ $left == 0 ]] || die "sender drop-slot left $left of slot and publication $LOGICAL_SLOT"
    LOGICAL_CONFIG=""
    echo "   dropped slot and publication $LOGICAL_SLOT"
}

# drop_slot_anyway: the EXIT trap's version (errexit is off there). When the sender cannot
# drop the slot (a backend still holds it), SQL ends that backend and drops slot and
# publication itself.
drop_slot_anyway() {
    "$SENDER" -c "$LOGICAL_CONFIG" --no-alert drop-slot >"$WORK/log.cleanup-drop-slot" 2>&1 ||
        logical -d "$DB" -A -t \
            -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$LOGICAL_SLOT' AND active_pid IS NOT NULL" \
            -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$LOGICAL_SLOT'" \
            -c "DROP PUBLICATION IF EXISTS $LOGICAL_SLOT" >/dev/null 2>&1
    if [[ $(slot_leftovers 2>/dev/null) == 0 ]]; then
        echo "bench: dropped slot and publication $LOGICAL_SLOT on the logical cluster" >&2
    else
        echo "bench: could not drop slot $LOGICAL_SLOT on the logical cluster (port $LOGICAL_PORT); see $WORK/log.cleanup-drop-slot" >&2
    fi
    LOGICAL_CONFIG=""
}

run_logical() {
    # The logical side has its own source cluster, sender state, target database and image
    # dir. render, pgferry_cycle, start_disk and start_probe read these names, so locals
    # (bash scopes them dynamically) switch those helpers over for this step only; the inbox,
    # the temp dirs and the receiver's state stay shared, cleared as pgferry_cycle clears them.
    # shellcheck disable=SC2034  # read by render and the helpers pgferry_cycle calls
    local SOURCE_PORT=$LOGICAL_PORT TARGET_DB=bench_logical \
        SENDER_STATE="$WORK/sender-logical-state" TARGET_IMAGES="$WORK/logical-target-images" \
        RECEIVER_CONFIG="$WORK/receiver-logical.toml"
    # No [[partial.tables]]: in this mode they are a config error.
    # shellcheck disable=SC2034  # read by render
    local PARTIAL_SOURCE
    PARTIAL_SOURCE=$(printf 'source = "logical"\nslot = "%s"\npublication = "%s"\n' "$LOGICAL_SLOT" "$LOGICAL_SLOT")
    local config="$WORK/sender-logical.toml"

    step "logical: the dataset again, on the logical cluster (wal_level = logical)"
    local t0 t1
    t0=$(now)
    create_dataset logical
    t1=$(now)
    echo "   generated in $(fmt1 "$(calc "$t1 - $t0")") s"

    step "logical: sender check, sender complete + receiver load (untimed: makes the slot)"
    mkdir -p "$SENDER_STATE" "$TARGET_IMAGES"
    render "$BENCH_FILES/sender.toml" >"$config"
    render "$BENCH_FILES/receiver.toml" >"$RECEIVER_CONFIG"
    chmod 600 "$config" "$RECEIVER_CONFIG"
    fresh_db "$TARGET_DB"
    # A build from before the logical mode (BENCH_BIN_DIR) rejects the config: n/a, as zstd.
    local rc=0
    "$SENDER" -c "$config" --no-alert check >"$WORK/log.logical-check.sender" 2>&1 || rc=$?
    if ((rc == 2)); then
        echo "   the sender does not accept [partial] source = \"logical\" (check exits 2): n/a"
        sed 's/^/   | /' "$WORK/log.logical-check.sender"
        LOGICAL=0
        record_na "pgferry partial (logical): round trip"
        drop_db "$TARGET_DB"
        return 0
    fi
    if ((rc != 0)); then
        sed 's/^/   | /' "$WORK/log.logical-check.sender" >&2
        die "sender check with the logical config exited $rc"
    fi
    LOGICAL=1
    pgferry_run logical-check.receiver "$RECEIVER" "$RECEIVER_CONFIG" check
    # From the complete on, the slot may exist: the EXIT trap drops it should anything fail.
    LOGICAL_CONFIG=$config
    rm -rf "${PGFERRY_INBOX:?}/applied" "${PGFERRY_INBOX:?}/failed"
    rm -rf "${SENDER_TMP:?}"/* "${RECEIVER_TMP:?}"/*
    pgferry_run logical-complete.sender "$SENDER" "$config" complete
    pgferry_run logical-complete.receiver "$RECEIVER" "$RECEIVER_CONFIG" load
    verify_equal "pgferry complete (logical source)" "$TARGET_DB" "$TARGET_IMAGES" logical

    # What the slot keeps now is what the next partial will read: every change since the
    # complete, here the benchmark's own and the WAL of the checkpoints in between.
    step "logical: 10,000 updated rows and 1,000 deleted events"
    local lsn0 lsn1
    lsn0=$(wal_lsn)
    update_rows logical
    delete_rows logical
    lsn1=$(wal_lsn)
    LOGICAL_CHANGE_WAL=$(logical -d postgres -A -t -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")
    RETAINED_BEFORE=$(slot_retained)
    echo "   the change wrote $(mib "$LOGICAL_CHANGE_WAL") MiB of WAL; the slot keeps $(mib "$RETAINED_BEFORE") MiB"

    step "logical: partial cycle (10,000 updated rows, 1,000 deleted events)"
    pgferry_cycle logical "pgferry partial (logical)" "$config" partial partial
    # Equal tables prove the deletes arrived: after a changed_at partial the deleted events
    # would still be on the secondary.
    verify_equal "pgferry partial (logical)" "$TARGET_DB" "$TARGET_IMAGES" logical
    RETAINED_AFTER=$(slot_retained)
    echo "   after the partial moved the slot it keeps $(mib "$RETAINED_AFTER") MiB"

    step "logical: sender drop-slot"
    drop_slot
}

# --- the report -------------------------------------------------------------------------------------

print_table() {
    say "results (SCALE $SCALE, dump $(fmt1 "$(calc "$DUMP_BYTES / 1000000")") MB data-only, images $(fmt1 "$(calc "$IMAGE_BYTES / 1000000")") MB in $IMAGE_COUNT files)"
    echo
    echo "| run | wall s | MB/s | × classic | sender RSS MiB | receiver RSS MiB | sender extra disk MiB | receiver extra disk MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local row
    for row in "${ROWS[@]}"; do
        row=${row//|/\\|}             # a pipe in a run's name must not split the cell
        echo "| ${row//$'\t'/ | } |"
    done
}

CHECKS_MISSED=0
check() {
    local label=$1 measured=$2 limit=$3 ok=$4
    local verdict=PASS
    [[ $ok == 1 ]] || { verdict=MISS; CHECKS_MISSED=$((CHECKS_MISSED + 1)); }
    printf -- '- %-4s %s: %s (limit %s)\n' "$verdict" "$label" "$measured" "$limit"
}

le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? 1 : 0 }'; }

# load_name KEY: how the checks name a probed load.
load_name() {
    case $1 in
        complete) echo "fresh complete load" ;;
        partial) echo "partial load" ;;
        replace) echo "replacing complete load" ;;
        zstd) echo "zstd complete load (fresh)" ;;
        *) echo "$1 load" ;;
    esac
}

print_checks() {
    say "targets"
    local rt=${SECS[complete]} classic=${SECS[classic]} lim

    lim=$(calc "0.45 * $classic")
    check "complete round trip ≤ 0.45 × classic" "$(fmt2 "$rt") s = $(fmt2 "$(calc "$rt / $classic")") × classic" \
        "$(fmt2 "$lim") s" "$(le "$rt" "$lim")"

    lim=$(calc "1.3 * ${SECS[ref_dump_gzip]}")
    check "sender complete ≤ 1.3 × (pg_dump | gzip -1)" \
        "$(fmt2 "${SECS[complete_sender]}") s = $(fmt2 "$(calc "${SECS[complete_sender]} / ${SECS[ref_dump_gzip]}")") ×" \
        "$(fmt2 "$lim") s" "$(le "${SECS[complete_sender]}" "$lim")"
    echo "       (the reference packs no images; the sender also sends $(fmt1 "$(calc "$IMAGE_BYTES / 1000000")") MB of them)"

    lim=$(calc "1.5 * ${SECS[ref_psql_local]}")
    check "receiver load ≤ 1.5 × psql from a local file" \
        "$(fmt2 "${SECS[complete_receiver]}") s = $(fmt2 "$(calc "${SECS[complete_receiver]} / ${SECS[ref_psql_local]}")") ×" \
        "$(fmt2 "$lim") s" "$(le "${SECS[complete_receiver]}" "$lim")"

    # The complete of every day after the first: into tables that exist, merged, not truncated.
    local replace=${SECS[replace_receiver]} fresh=${SECS[complete_receiver]}
    lim=$(calc "1.2 * $fresh")
    check "replacing complete load ≤ 1.2 × fresh complete load" \
        "$(fmt2 "$replace") s = $(fmt2 "$(calc "$replace / $fresh")") ×" \
        "$(fmt2 "$lim") s" "$(le "$replace" "$lim")"
    lim=$(calc "1.5 * ${SECS[ref_psql_local]}")
    check "replacing complete load ≤ 1.5 × psql -1 -f from a local file" \
        "$(fmt2 "$replace") s = $(fmt2 "$(calc "$replace / ${SECS[ref_psql_local]}")") ×" \
        "$(fmt2 "$lim") s" "$(le "$replace" "$lim")"

    # The longest a reader of the target waited, over every probed load.
    local probed=(complete partial replace) k worst=complete per=()
    [[ ${ZSTD:-0} == 1 ]] && probed+=(zstd)
    for k in "${probed[@]}"; do
        [[ $(le "${READER_MAX[$k]}" "${READER_MAX[$worst]}") == 1 ]] || worst=$k
        per+=("$(load_name "$k") ${READER_MAX[$k]} s in ${READER_N[$k]} queries")
    done
    check "longest reader wait during any load ≤ 0.2 s" \
        "${READER_MAX[$worst]} s, during the $(load_name "$worst")" "0.2 s" "$(le "${READER_MAX[$worst]}" 0.2)"
    local joined
    joined=$(printf '%s; ' "${per[@]}")
    echo "       (per load: ${joined%; })"

    # The largest of all pgferry runs (complete, partial, replacing, and zstd when it ran).
    local keys=(complete partial replace) srss=0 rrss=0 sdisk=0 rdisk=0
    [[ ${ZSTD:-0} == 1 ]] && keys+=(zstd)
    for k in "${keys[@]}"; do
        ((RSS_S[$k] > srss)) && srss=${RSS_S[$k]}
        ((RSS_R[$k] > rrss)) && rrss=${RSS_R[$k]}
        ((DISK_S[$k] > sdisk)) && sdisk=${DISK_S[$k]}
        ((DISK_R[$k] > rdisk)) && rdisk=${DISK_R[$k]}
    done
    check "peak RSS of sender ≤ 64 MiB" "$(fmt1 "$(calc "$srss / 1024")") MiB" "64 MiB" "$(le "$srss" $((64 * 1024)))"
    check "peak RSS of receiver ≤ 64 MiB" "$(fmt1 "$(calc "$rrss / 1024")") MiB" "64 MiB" "$(le "$rrss" $((64 * 1024)))"
    check "sender extra disk ≤ 16 MiB" "$(mib "$sdisk") MiB" "16 MiB" "$(le "$sdisk" $((16 << 20)))"

    # The received bundle itself sits in the inbox, so the limit is the bundle plus 1 MiB
    # for directory entries and the receiver's state files.
    local bundle=${BUNDLE_BYTES[complete]} rdisk_complete=${DISK_R[complete]}
    check "receiver extra disk ≤ bundle size (complete, gzip)" "$(mib "$rdisk_complete") MiB; bundle $(mib "$bundle") MiB" \
        "$(mib "$((bundle + (1 << 20)))") MiB = bundle + 1 MiB" "$(le "$rdisk_complete" "$((bundle + (1 << 20)))")"
    if [[ ${ZSTD:-0} == 1 ]]; then
        bundle=${BUNDLE_BYTES[zstd]}
        check "receiver extra disk ≤ bundle size (complete, zstd)" "$(mib "${DISK_R[zstd]}") MiB; bundle $(mib "$bundle") MiB" \
            "$(mib "$((bundle + (1 << 20)))") MiB = bundle + 1 MiB" "$(le "${DISK_R[zstd]}" "$((bundle + (1 << 20)))")"
    fi

    lim=$(calc "0.10 * $rt")
    check "partial cycle ≤ 10 % of the complete round trip" \
        "$(fmt2 "${SECS[partial]}") s = $(fmt1 "$(calc "100 * ${SECS[partial]} / $rt")") %" \
        "$(fmt2 "$lim") s" "$(le "${SECS[partial]}" "$lim")"

    if [[ ${SEALED:-0} == 1 ]]; then
        sealed_checks
    fi

    echo
    echo "bundles: classic tar.gz $(mib "$CLASSIC_BUNDLE_BYTES") MiB, pgferry complete $(mib "${BUNDLE_BYTES[complete]}") MiB, partial $(mib "${BUNDLE_BYTES[partial]}") MiB, replacing complete $(mib "${BUNDLE_BYTES[replace]}") MiB$([[ ${ZSTD:-0} == 1 ]] && echo ", complete zstd $(mib "${BUNDLE_BYTES[zstd]}") MiB")"
    echo "$CHECKS_MISSED target(s) missed"
}

kib() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }

# The S3 run against the SFTP complete of the same data: figures, no targets (moto, a Python
# server on the same 2 cores, stands in for a real store).
print_s3() {
    say "complete through an S3-compatible store (moto) against SFTP (figures, no targets)"
    if [[ ${S3:-0} != 1 ]]; then
        echo "n/a: no S3 server in the test environment, or the sender does not accept [remote] kind = \"s3\""
        return 0
    fi
    local s3s=${SECS[s3_sender]} fts=${SECS[complete_sender]} s3r=${SECS[s3_receiver]} ftr=${SECS[complete_receiver]}
    local s3m=${RSS_S[s3_sender]} ftm=${RSS_S[complete_sender]} s3rm=${RSS_R[s3_receiver]} ftrm=${RSS_R[complete_receiver]}
    echo "- sender complete, S3/SFTP: time $(fmt2 "$s3s") s / $(fmt2 "$fts") s = $(fmt2 "$(calc "$s3s / $fts")") ×;" \
        "peak RSS $(kib "$s3m") MiB / $(kib "$ftm") MiB = $(fmt2 "$(calc "$s3m / $ftm")") ×"
    echo "- receiver load, S3/SFTP: time $(fmt2 "$s3r") s / $(fmt2 "$ftr") s = $(fmt2 "$(calc "$s3r / $ftr")") ×" \
        "(the S3 load fetches the bundle from the store first); peak RSS $(kib "$s3rm") MiB / $(kib "$ftrm") MiB"
    echo "- complete bundle: S3 object $(mib "${BUNDLE_BYTES[s3]}") MiB, SFTP $(mib "${BUNDLE_BYTES[complete]}") MiB" \
        "(multipart upload in parts of 8 MiB)"
    echo "- reader probe during the S3 load: longest wait ${READER_MAX[s3]} s in ${READER_N[s3]} queries"
    echo "- moto is a Python server, slow at taking and giving back large bodies: its speed is part of the S3 figures"
}

# The logical run against the changed_at partial of the same 10,000 updated rows: figures,
# no targets. The changed_at bundle also holds the parents its rows reference; the logical
# one holds the changes alone, the 1,000 deletes included.
print_logical() {
    say "logical partials ([partial] source = \"logical\"; figures, no targets)"
    if [[ ${LOGICAL:-0} != 1 ]]; then
        echo "n/a: the sender does not accept [partial] source = \"logical\""
        return 0
    fi
    local lb=${BUNDLE_BYTES[logical]} pb=${BUNDLE_BYTES[partial]}
    echo "- partial bundle: logical $(kib "$lb") KiB (10,000 updated rows, 1,000 deleted events)" \
        "vs changed_at $(kib "$pb") KiB (the same 10,000 updates) = $(fmt2 "$(calc "$lb / $pb")") ×"
    echo "- partial round trip: logical $(fmt2 "${SECS[logical]}") s (sender $(fmt2 "${SECS[logical_sender]}") s," \
        "load $(fmt2 "${SECS[logical_receiver]}") s) vs changed_at $(fmt2 "${SECS[partial]}") s (sender" \
        "$(fmt2 "${SECS[partial_sender]}") s, load $(fmt2 "${SECS[partial_receiver]}") s) = $(fmt2 "$(calc "${SECS[logical]} / ${SECS[partial]}")") ×"
    # After the partial, PostgreSQL frees WAL only up to a snapshot record (written at each
    # checkpoint, and every 15 s while WAL is written) that the slot's decoding went past: so
    # anywhere from nothing to the whole change stays, depending on when those records fell.
    echo "- WAL the slot retained between bundles: $(mib "$RETAINED_BEFORE") MiB before the partial" \
        "(the change itself wrote $(mib "$LOGICAL_CHANGE_WAL") MiB); $(mib "$RETAINED_AFTER") MiB after it moved" \
        "the slot (PostgreSQL frees only up to a snapshot record the slot passed; the rest goes at the next partial)"
    echo "- reader probe during the logical partial load: longest wait ${READER_MAX[logical]} s in ${READER_N[logical]} queries"
}

# sealed_medians: SM[FIGURE.MODE], the medians of the pairs for the sealed run's report
# (FIGURE: secs_s, secs_r, rss_s, rss_r, bytes).
declare -A SM=()
sealed_medians() {
    local mode i k
    for mode in plain sealed; do
        local ss=() sr=() ms=() mr=() b=()
        for ((i = 1; i <= SEALED_PAIRS; i++)); do
            k="$mode.$i"
            ss+=("${SEALED_SECS_S[$k]}")
            sr+=("${SEALED_SECS_R[$k]}")
            ms+=("${SEALED_RSS_S[$k]}")
            mr+=("${SEALED_RSS_R[$k]}")
            b+=("${SEALED_BYTES[$k]}")
        done
        SM[secs_s.$mode]="$(median "${ss[@]}")"
        SM[secs_r.$mode]="$(median "${sr[@]}")"
        SM[rss_s.$mode]="$(median "${ms[@]}")"
        SM[rss_r.$mode]="$(median "${mr[@]}")"
        SM[bytes.$mode]="$(median "${b[@]}")"
    done
}

# sealed_checks: the sealed run's targets (medians): under a tenth more time on each side.
sealed_checks() {
    sealed_medians
    local lim
    lim=$(calc "1.10 * ${SM[secs_s.plain]}")
    check "sealed sender complete ≤ 1.10 × plain (medians of $SEALED_PAIRS)" \
        "$(fmt2 "${SM[secs_s.sealed]}") s / $(fmt2 "${SM[secs_s.plain]}") s = $(fmt2 "$(calc "${SM[secs_s.sealed]} / ${SM[secs_s.plain]}")") ×" \
        "$(fmt2 "$lim") s" "$(le "${SM[secs_s.sealed]}" "$lim")"
    lim=$(calc "1.10 * ${SM[secs_r.plain]}")
    check "sealed receiver load ≤ 1.10 × plain (medians of $SEALED_PAIRS)" \
        "$(fmt2 "${SM[secs_r.sealed]}") s / $(fmt2 "${SM[secs_r.plain]}") s = $(fmt2 "$(calc "${SM[secs_r.sealed]} / ${SM[secs_r.plain]}")") ×" \
        "$(fmt2 "$lim") s" "$(le "${SM[secs_r.sealed]}" "$lim")"
}

# The sealed run: every pair, then the medians and sealed / plain.
print_sealed() {
    say "signed and encrypted bundles ([bundle]) against plain: $SEALED_PAIRS alternating pairs, SFTP, gzip"
    if [[ ${SEALED:-0} != 1 ]]; then
        echo "n/a: the sender does not accept [bundle]"
        return 0
    fi
    sealed_medians
    echo
    echo "| pair | sender complete s, plain / sealed | receiver load s, plain / sealed | sender RSS MiB, plain / sealed | receiver RSS MiB, plain / sealed | bundle bytes, plain / sealed | longest reader wait s, plain / sealed |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local i p s
    for ((i = 1; i <= SEALED_PAIRS; i++)); do
        p="plain.$i"
        s="sealed.$i"
        echo "| $i | $(fmt2 "${SEALED_SECS_S[$p]}") / $(fmt2 "${SEALED_SECS_S[$s]}") | $(fmt2 "${SEALED_SECS_R[$p]}") / $(fmt2 "${SEALED_SECS_R[$s]}")" \
            "| $(kib "${SEALED_RSS_S[$p]}") / $(kib "${SEALED_RSS_S[$s]}") | $(kib "${SEALED_RSS_R[$p]}") / $(kib "${SEALED_RSS_R[$s]}")" \
            "| ${SEALED_BYTES[$p]} / ${SEALED_BYTES[$s]} | ${READER_MAX[sealed-plain-$i]} / ${READER_MAX[sealed-sealed-$i]} |"
    done
    echo
    echo "| figure (median of $SEALED_PAIRS) | plain | sealed | sealed / plain |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| sender complete, time | $(fmt2 "${SM[secs_s.plain]}") s | $(fmt2 "${SM[secs_s.sealed]}") s | $(fmt2 "$(calc "${SM[secs_s.sealed]} / ${SM[secs_s.plain]}")") |"
    echo "| sender complete, peak RSS | $(kib "${SM[rss_s.plain]}") MiB | $(kib "${SM[rss_s.sealed]}") MiB | $(fmt2 "$(calc "${SM[rss_s.sealed]} / ${SM[rss_s.plain]}")") |"
    echo "| receiver load, time | $(fmt2 "${SM[secs_r.plain]}") s | $(fmt2 "${SM[secs_r.sealed]}") s | $(fmt2 "$(calc "${SM[secs_r.sealed]} / ${SM[secs_r.plain]}")") |"
    echo "| receiver load, peak RSS | $(kib "${SM[rss_r.plain]}") MiB | $(kib "${SM[rss_r.sealed]}") MiB | $(fmt2 "$(calc "${SM[rss_r.sealed]} / ${SM[rss_r.plain]}")") |"
    echo "| bundle | $(mib "${SM[bytes.plain]}") MiB (${SM[bytes.plain]} bytes) | $(mib "${SM[bytes.sealed]}") MiB (${SM[bytes.sealed]} bytes) |" \
        "$(awk -v a="${SM[bytes.sealed]}" -v b="${SM[bytes.plain]}" 'BEGIN { printf "%.4f (%+d bytes)", a / b, a - b }') |"
    echo
    echo "- sealed bundles: ${SEALED_NAME[sealed.1]} and the like (signed manifest, age to one X25519 recipient)"
    echo "- every load verified equal to the source; the pairs ran plain first, alternating"
}

# --- main ----------------------------------------------------------------------------------------

main() {
    print_machine
    step "installing what the benchmark needs"
    ensure_gnu_time
    step "building the release binaries"
    build
    step "starting the test environment ($PGFERRY_TESTENV)"
    start_env
    step "generating the dataset (SCALE $SCALE)"
    local t0 t1
    t0=$(now)
    generate_data
    t1=$(now)
    echo "   generated in $(fmt1 "$(calc "$t1 - $t0")") s"

    if [[ $ONLY == sealed ]]; then
        # BENCH_ONLY=sealed: the dataset and this one run, for working on it.
        step "pgferry: configs"
        write_configs
        run_sealed
        STEP="report"
        print_table
        say "targets"
        if [[ ${SEALED:-0} == 1 ]]; then
            sealed_checks
        fi
        echo "$CHECKS_MISSED target(s) missed"
        print_sealed
        echo
        echo "written to $OUT"
        return 0
    fi

    run_classic
    run_references
    run_pgferry
    run_logical

    STEP="report"
    print_table
    print_checks
    print_s3
    print_sealed
    print_logical
    echo
    echo "written to $OUT"
}

main
