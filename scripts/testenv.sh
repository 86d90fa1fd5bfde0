#!/usr/bin/env bash
# The real servers pgferry's tests (and scripts/demo.sh) talk to, started and stopped by PID:
#   - three throwaway PostgreSQL 15 clusters on loopback ports, run by the dedicated OS user
#     pgferry-test (initdb refuses to run as root): "primary" and "secondary", and "logical",
#     a primary with wal_level = logical for the logical decoding tests;
#   - an OpenSSH sshd on a loopback port with its own host key and config (never port 22,
#     never /etc/ssh), a client key pair and a known_hosts file;
#   - an SMTP server (Debian's python3-aiosmtpd) that stores every message it receives;
#   - the `minisign` and `age` programs (Debian's), which make the keys of signed and
#     encrypted bundles and check and open such a bundle by hand;
#   - an S3-compatible server (moto in server mode, from pip: a python3 on PATH that has pip,
#     else a venv in /var/lib/pgferry-test/venv) with two IAM users, a writer (s3:*) and a
#     read-only reader, and authentication enforced (scripts/testenv_s3.py sets it up and
#     proves it at every `up`).
#
#   scripts/testenv.sh up       # install missing packages (as root), start everything
#   scripts/testenv.sh status   # which servers are alive
#   scripts/testenv.sh down     # stop everything by PID and remove the directory
#
# Everything lives in $PGFERRY_TESTENV (default /tmp/pgferry-testenv); `up` writes the ports
# and paths the tests need to $PGFERRY_TESTENV/env as KEY=VALUE lines.
set -euo pipefail

ENV_DIR="${PGFERRY_TESTENV:-/tmp/pgferry-testenv}"
OS_USER=pgferry-test
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3_VENV=/var/lib/$OS_USER/venv
S3_REGION=us-east-1
PACKAGES=(postgresql-15 postgresql-client-15 openssh-server openssh-client python3-aiosmtpd libssl-dev pkg-config faketime bsdutils minisign age)

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }

# --- packages and the OS user ------------------------------------------------------------

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $EUID -ne 0 ]]; then
        die "missing packages; run: sudo apt-get install -y ${missing[*]}"
    fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_user() {
    [[ $EUID -eq 0 ]] || die "run as root: the clusters run as the dedicated user $OS_USER and sshd needs root"
    if ! id "$OS_USER" >/dev/null 2>&1; then
        useradd --system --create-home --home-dir "/var/lib/$OS_USER" --shell /bin/bash "$OS_USER"
    fi
    # "*" rather than "!": sshd (UsePAM no) refuses accounts whose password is locked.
    usermod -p '*' "$OS_USER"
}

# The python moto runs with, in S3_PYTHON: the first python3 on PATH other than Debian's
# (which has no pip and is "externally managed") when it has pip, else a venv of Debian's.
# moto[server] (which brings boto3) is pip-installed into it when missing or older than
# 5.2.6: older ones check a signature against the URL with `/` decoded in the query, so a
# correct SigV4 signer fails on every list with a prefix.
MOTO_OK='import moto.server, boto3, moto; v = tuple(int(p) for p in moto.__version__.split(".")[:3]); assert v >= (5, 2, 6), v'

ensure_s3_python() {
    local py="" candidate
    while read -r candidate; do
        [[ -n $candidate && $candidate != /usr/bin/python3 && $candidate != /bin/python3 ]] || continue
        if "$candidate" -m pip --version >/dev/null 2>&1; then
            py=$candidate
            break
        fi
    done < <(type -ap python3)
    if [[ -z $py ]]; then
        if ! dpkg -s python3-venv >/dev/null 2>&1; then
            log "installing python3-venv"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        fi
        if ! "$S3_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
            log "creating $S3_VENV"
            rm -rf "$S3_VENV"
            /usr/bin/python3 -m venv "$S3_VENV" || die "cannot create the venv $S3_VENV"
        fi
        py=$S3_VENV/bin/python
    fi
    # The interpreter itself, not a pyenv shim whose choice depends on the working directory.
    S3_PYTHON=$("$py" -c 'import sys; print(sys.executable)')
    if ! "$S3_PYTHON" -c "$MOTO_OK" >/dev/null 2>&1; then
        log "installing moto[server]>=5.2.6 for $S3_PYTHON"
        "$S3_PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore 'moto[server]>=5.2.6' ||
            die "pip cannot install moto[server] for $S3_PYTHON"
        "$S3_PYTHON" -c "$MOTO_OK" || die "moto[server]>=5.2.6 is installed but does not import"
    fi
}

pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)"; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return
        fi
    done
    die "no initdb/pg_ctl found (is postgresql-15 installed?)"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 200); do
        if /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "$what did not start listening on port $port"
}

as_user() { runuser -u "$OS_USER" -- "$@"; }

# --- servers ---------------------------------------------------------------------------

# start_cluster NAME PORT BINDIR [SETTING...]: initdb, the common settings and SETTINGs
# (postgresql.conf lines), start, and the postmaster's PID in $ENV_DIR/pg-NAME.pid.
start_cluster() {
    local name=$1 port=$2 bindir=$3
    shift 3
    local data="$ENV_DIR/pg-$name"
    install -d -o "$OS_USER" -m 700 "$data"
    as_user "$bindir/initdb" -D "$data" --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$ENV_DIR/pg-$name.initdb.log" 2>&1 ||
        as_user "$bindir/initdb" -D "$data" --username=postgres --auth=trust --encoding=UTF8 --locale=C >"$ENV_DIR/pg-$name.initdb.log" 2>&1 ||
        die "initdb of $name failed: see $ENV_DIR/pg-$name.initdb.log"
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$ENV_DIR/sockets'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
EOF
    local setting
    for setting in "$@"; do
        echo "$setting" >>"$data/postgresql.conf"
    done
    as_user "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null ||
        die "cluster $name did not start: see $data/server.log"
    head -n 1 "$data/postmaster.pid" >"$ENV_DIR/pg-$name.pid"
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" || die "cluster $name is not ready"
}

start_sshd() {
    local port=$1
    local dir="$ENV_DIR/sshd" client="$ENV_DIR/ssh"
    mkdir -p "$dir" "$client" /run/sshd
    chmod 700 "$client"
    ssh-keygen -q -t ed25519 -N '' -C pgferry-test-host -f "$dir/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C pgferry-test-client -f "$client/client_ed25519"
    ssh-keygen -q -t rsa -b 3072 -m PEM -N '' -C pgferry-test-client-rsa -f "$client/client_rsa"
    cat "$client/client_ed25519.pub" "$client/client_rsa.pub" >"$dir/authorized_keys"
    chmod 644 "$dir/authorized_keys"
    # The SSH account writes into the tests' inboxes; the tests (root) read them.
    mkdir -p "$ENV_DIR/sftp"
    chown "$OS_USER:" "$ENV_DIR/sftp"
    chmod 1777 "$ENV_DIR/sftp"
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $OS_USER
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
Subsystem sftp internal-sftp -u 0002
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 50
EOF
    /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejects its config $dir/sshd_config"
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
    wait_port "$port" sshd
    local host_key
    host_key=$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")
    printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$port" "$host_key" "$port" "$host_key" >"$client/known_hosts"
    # Prove the account works before any test relies on it.
    echo "pwd" | sftp -q -b - -i "$client/client_ed25519" -P "$port" \
        -o UserKnownHostsFile="$client/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
        "$OS_USER@127.0.0.1" >/dev/null || die "sftp with the test key fails: see $dir/sshd.log"
}

start_smtp() {
    local port=$1
    local dir="$ENV_DIR/smtp"
    # The Mailbox handler writes into an existing maildir only when its cur/new/tmp exist.
    mkdir -p "$dir/maildir/cur" "$dir/maildir/new" "$dir/maildir/tmp"
    # Debian's python, where python3-aiosmtpd is installed (not a pyenv one on PATH).
    setsid /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$dir/maildir" \
        >"$dir/smtp.log" 2>&1 </dev/null &
    echo $! >"$dir/smtp.pid"
    wait_port "$port" "the SMTP server"
}

start_s3() {
    local port=$1
    local dir="$ENV_DIR/s3"
    mkdir -p "$dir"
    setsid "$S3_PYTHON" -m moto.server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null &
    echo $! >"$dir/moto.pid"
    wait_port "$port" "the S3 server (moto)"
    # The IAM users and their keys, then authentication enforced and proven: the keys are
    # KEY=VALUE lines for the env file.
    "$S3_PYTHON" "$SCRIPT_DIR/testenv_s3.py" "http://127.0.0.1:$port" >"$dir/keys" ||
        die "the S3 server is not usable: see above and $dir/moto.log"
}

write_env() {
    cat >"$ENV_DIR/env" <<EOF
ENV_DIR=$ENV_DIR
PG_BINDIR=$BINDIR
PG_HOST=127.0.0.1
PG_USER=postgres
PG_OS_USER=$OS_USER
PRIMARY_PORT=$PRIMARY_PORT
PRIMARY_DATA=$ENV_DIR/pg-primary
PRIMARY_PID_FILE=$ENV_DIR/pg-primary.pid
SECONDARY_PORT=$SECONDARY_PORT
SECONDARY_DATA=$ENV_DIR/pg-secondary
SECONDARY_PID_FILE=$ENV_DIR/pg-secondary.pid
LOGICAL_PORT=$LOGICAL_PORT
LOGICAL_DATA=$ENV_DIR/pg-logical
LOGICAL_PID_FILE=$ENV_DIR/pg-logical.pid
SSH_HOST=127.0.0.1
SSH_PORT=$SSH_PORT
SSH_USER=$OS_USER
SSH_KEY=$ENV_DIR/ssh/client_ed25519
SSH_RSA_KEY=$ENV_DIR/ssh/client_rsa
SSH_KNOWN_HOSTS=$ENV_DIR/ssh/known_hosts
SSH_HOST_PUBKEY=$ENV_DIR/sshd/host_ed25519.pub
SSH_ROOT=$ENV_DIR/sftp
SSHD_CONFIG=$ENV_DIR/sshd/sshd_config
SSHD_PID_FILE=$ENV_DIR/sshd/sshd.pid
SMTP_HOST=127.0.0.1
SMTP_PORT=$SMTP_PORT
SMTP_MAILDIR=$ENV_DIR/smtp/maildir
SMTP_PID_FILE=$ENV_DIR/smtp/smtp.pid
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
S3_PORT=$S3_PORT
S3_REGION=$S3_REGION
S3_PID_FILE=$ENV_DIR/s3/moto.pid
S3_PYTHON=$S3_PYTHON
EOF
    cat "$ENV_DIR/s3/keys" >>"$ENV_DIR/env"
}

# --- stopping by PID -----------------------------------------------------------------------

pid_files() {
    echo "$ENV_DIR/pg-primary.pid" "$ENV_DIR/pg-secondary.pid" "$ENV_DIR/pg-logical.pid" "$ENV_DIR/sshd/sshd.pid" "$ENV_DIR/smtp/smtp.pid" "$ENV_DIR/s3/moto.pid"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {
    local file=$1 pid
    alive "$file" || return 0
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    log "pid $pid ($file) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_cluster() {
    local name=$1
    local data="$ENV_DIR/pg-$name"
    if alive "$ENV_DIR/pg-$name.pid" && [[ -n "${BINDIR:-}" ]]; then
        as_user "$BINDIR/pg_ctl" -D "$data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
    stop_pid "$ENV_DIR/pg-$name.pid"
}

down() {
    [[ -d $ENV_DIR ]] || return 0
    BINDIR=$(pg_bindir 2>/dev/null || true)
    stop_cluster primary
    stop_cluster secondary
    stop_cluster logical
    stop_pid "$ENV_DIR/sshd/sshd.pid"
    stop_pid "$ENV_DIR/smtp/smtp.pid"
    stop_pid "$ENV_DIR/s3/moto.pid"
    if [[ "${PGFERRY_KEEP_TESTENV:-0}" != 1 ]]; then
        rm -rf "$ENV_DIR"
    fi
    log "down"
}

status() {
    local ok=0 file
    for file in $(pid_files); do
        if alive "$file"; then
            echo "up    $(cat "$file")  $file"
        else
            echo "DOWN        $file"
            ok=1
        fi
    done
    return $ok
}

up() {
    if [[ -f "$ENV_DIR/env" ]] && status >/dev/null; then
        log "already up ($ENV_DIR/env)"
        return 0
    fi
    install_packages
    ensure_user
    ensure_s3_python
    down
    BINDIR=$(pg_bindir)
    mkdir -p "$ENV_DIR"
    chmod 755 "$ENV_DIR"
    as_user true
    install -d -o "$OS_USER" -m 755 "$ENV_DIR/sockets"
    PRIMARY_PORT=$(free_port)
    SECONDARY_PORT=$(free_port)
    LOGICAL_PORT=$(free_port)
    SSH_PORT=$(free_port)
    SMTP_PORT=$(free_port)
    S3_PORT=$(free_port)
    while [[ $SECONDARY_PORT == "$PRIMARY_PORT" ]]; do SECONDARY_PORT=$(free_port); done
    while [[ $LOGICAL_PORT == "$PRIMARY_PORT" || $LOGICAL_PORT == "$SECONDARY_PORT" ]]; do LOGICAL_PORT=$(free_port); done
    while [[ " $PRIMARY_PORT $SECONDARY_PORT $LOGICAL_PORT $SSH_PORT $SMTP_PORT " == *" $S3_PORT "* ]]; do S3_PORT=$(free_port); done
    start_cluster primary "$PRIMARY_PORT" "$BINDIR"
    start_cluster secondary "$SECONDARY_PORT" "$BINDIR"
    # A slot reads only WAL that is flushed: with asynchronous commit a change just made
    # could be missing from a peek for up to wal_writer_delay, so this cluster commits
    # synchronously and a test sees every change it made.
    start_cluster logical "$LOGICAL_PORT" "$BINDIR" "wal_level = logical" "max_replication_slots = 20" \
        "max_wal_senders = 20" "synchronous_commit = on"
    start_sshd "$SSH_PORT"
    start_smtp "$SMTP_PORT"
    start_s3 "$S3_PORT"
    write_env
    log "up: primary :$PRIMARY_PORT, secondary :$SECONDARY_PORT, logical :$LOGICAL_PORT, sshd :$SSH_PORT, smtp :$SMTP_PORT, s3 :$S3_PORT ($ENV_DIR/env)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
