#!/usr/bin/env bash
# The one test command (the README's, and CI's through .ci/run).
#
# On a fresh machine it installs what the tests need (as root; otherwise it prints the
# apt-get command), starts the test environment (two PostgreSQL clusters, an sshd, an SMTP
# server: see scripts/testenv.sh), builds the workspace, runs the whole test suite and
# tears the environment down by PID, even when a test fails.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh check::         # only tests whose name contains "check::"
set -euo pipefail

cd "$(dirname "$0")/.."

# A directory of its own, so a run never collides with an environment a developer keeps up.
export PGFERRY_TESTENV="${PGFERRY_TESTENV:-/tmp/pgferry-testenv-$$}"
log=$(mktemp /tmp/pgferry-test-log.XXXXXX)

teardown() {
    bash scripts/testenv.sh down || echo "test.sh: teardown reported an error" >&2
}
trap 'teardown; rm -f "$log"' EXIT

bash scripts/testenv.sh up

# The integration tests run the real binaries, so build them before the tests start.
cargo build --workspace --all-targets --locked
# I/O-bound tests: more threads than cores keeps the suite short on 2-core machines.
# --no-fail-fast: one failing test binary must not hide the results of the others.
set +e
cargo test --workspace --locked --no-fail-fast -- --test-threads="${PGFERRY_TEST_THREADS:-4}" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

teardown
trap 'rm -f "$log"' EXIT
# Every failure once more at the end, where it cannot scroll away, then one closing line
# over all the test binaries.
failures=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/  \1/p' "$log")
if [[ -n "$failures" ]]; then
    printf '\ntest.sh: failing tests:\n%s\n' "$failures"
fi
awk '/^test result: / { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
