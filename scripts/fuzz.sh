#!/usr/bin/env bash
# Fuzzes the bundle reader for a fixed time (default 600 s): mutations of the seed corpus in
# crates/pgferry/fuzz/corpus/ through `verify` and `read_entries`, checking that nothing
# panics and no damaged bundle is accepted with other content. Prints the execution count.
#
#   scripts/fuzz.sh          # ten minutes
#   scripts/fuzz.sh 60       # one minute
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
PGFERRY_FUZZ_SECONDS="$seconds" cargo test --release --locked -p pgferry --test bundle_fuzz -- --nocapture --exact long_fuzz
