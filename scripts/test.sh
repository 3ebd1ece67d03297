#!/usr/bin/env bash
# The project's single test command; CI runs it through .ci/run.
#
#   1. formatting          cargo fmt --check
#   2. lints               cargo clippy, warnings are errors; scripts/layering.sh (which layer
#                          may use which, and each port's method count)
#   3. tests on SQLite     cargo test --workspace, then the console in a real browser, then
#                          OTLP export by a hub built with the `otlp` feature
#   4. tests on PostgreSQL the same tests against a throwaway local cluster
#   5. interoperability    a real hub driven by Python grpcio and by the Rust example
#
# Steps 4 and 5 and the browser tests need tools outside Rust (PostgreSQL's initdb/pg_ctl;
# python3 with venv and pip; Debian's chromium, which is installed with apt-get when it is
# missing and the script runs as root). When those are missing the step is skipped with a
# loud warning rather than failing, so the script still works on a bare Rust machine; the
# closing summary says what was skipped. Any failure stops the script with a non-zero exit status, and everything it
# started (database cluster, hub, temp folders) is cleaned up on the way out.
#
# Runs from any working directory. `scripts/test.sh interop` (or any list of fmt, clippy, package,
# sqlite, postgres, interop) runs only those steps, for a quicker loop while developing.
# Uses the network only for `pip install` of the pinned packages in
# scripts/interop/requirements.txt and scripts/console/requirements.txt (cached under target/
# after the first run), and for `apt-get install chromium` when it is missing.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac

# What ran and what was skipped, for the summary; the step under way, for failure messages.
RAN=()
SKIPPED=()
TOOK=()              # how long each step took, for the summary (CI has a time budget)
CURRENT_STEP="setup"

# Things to clean up on exit. Set as soon as they exist, so the trap sees them.
PG_TMP=""            # temp folder holding the PostgreSQL cluster
PG_CTL=""            # pg_ctl that started it
PG_STARTED=0
INTEROP_TMP=""       # temp folder holding the hub's certificates and database
SERVER_PID=""        # the hub started for the interoperability checks

# ---------------------------------------------------------------------------------------
# Helpers

# Colours only on a terminal, so CI logs stay plain text.
if [[ -t 1 ]]; then
    BOLD=$'\033[1m' RED=$'\033[1;31m' GREEN=$'\033[1;32m' PLAIN=$'\033[0m'
else
    BOLD="" RED="" GREEN="" PLAIN=""
fi

banner() {
    CURRENT_STEP=$1
    printf '\n%s==== %s ====%s\n' "$BOLD" "$1" "$PLAIN"
}

# A warning that is hard to miss in a long CI log: a skipped step means less was tested.
warn_loudly() {
    local line
    {
        printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
        for line in "$@"; do printf '!!! WARNING: %s\n' "$line"; done
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
    } >&2
}

fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The steps' times so far, as "fmt 1 s, clippy 35 s".
took() {
    local IFS=,
    local joined="${TOOK[*]}"
    echo "${joined//,/, }"
}

# A free TCP port on 127.0.0.1. Another process could take it before we use it, but
# nothing else on a test machine is racing for random high ports.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + RANDOM % 40000))
}

cleanup() {
    local status=$?
    set +e
    [[ -n $SERVER_PID ]] && terminate_hub
    if [[ $status -ne 0 && -n $INTEROP_TMP && -s $INTEROP_TMP/serve.err ]]; then
        echo "---- last lines of the hub's log ----" >&2
        tail -n 30 "$INTEROP_TMP/serve.err" >&2
    fi
    if [[ $PG_STARTED -eq 1 ]]; then
        # Immediate: the cluster is thrown away, no need for a clean checkpoint.
        as_postgres "$PG_CTL" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1
    fi
    if [[ $status -ne 0 && -n $PG_TMP && -s $PG_TMP/log ]]; then
        echo "---- last lines of the PostgreSQL log ----" >&2
        tail -n 20 "$PG_TMP/log" >&2
    fi
    [[ -n $PG_TMP ]] && rm -rf "$PG_TMP"
    [[ -n $INTEROP_TMP ]] && rm -rf "$INTEROP_TMP"
    if [[ $status -ne 0 ]]; then
        # A full disk shows itself in odd ways (a linker's bus error); say how much was left.
        echo "---- disk where the builds go ----" >&2
        df -h "$TARGET_DIR" "${TMPDIR:-/tmp}" >&2 2>/dev/null
        printf '\n%sFAILED%s during: %s (exit status %d)\n' "$RED" "$PLAIN" "$CURRENT_STEP" "$status" >&2
        [[ ${#TOOK[@]} -eq 0 ]] || printf 'steps before it took: %s\n' "$(took)" >&2
        printf 'in all %d s\n' "$SECONDS" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
# Make Ctrl-C and SIGTERM go through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# 1-3: the Rust checks

check_format() {
    banner "1/6 formatting: cargo fmt --check"
    cargo fmt --all -- --check
    RAN+=("fmt")
}

check_lints() {
    banner "2/6 lints: cargo clippy -D warnings, and the layering check"
    cargo clippy --workspace --all-targets -- -D warnings
    # The OTLP export is compiled only with its feature.
    cargo clippy -p telesub-server --features otlp -- -D warnings
    "$ROOT/scripts/layering.sh"
    RAN+=("clippy" "layering")
}

test_sqlite() {
    banner "3/6 tests on SQLite: cargo test --workspace"
    # The tests use PostgreSQL only when this is set; make sure it isn't inherited here.
    env -u TELESUB_TEST_POSTGRES_URL cargo test --workspace
    RAN+=("tests(sqlite)")
    run_browser sqlite env -u TELESUB_TEST_POSTGRES_URL
    test_traces
}

# Spans exported over OTLP/gRPC by `telesub serve` built with the `otlp` feature, to a
# collector the test runs (in step 3); the default binary is put back afterwards.
test_traces() {
    echo "-- traces: a hub built with --features otlp exports its spans to a collector"
    # Built as `cargo test --workspace` built the rest (see `run_browser`).
    cargo build --workspace --bin telesub --features telesub/otlp
    cp "$TARGET_DIR/debug/telesub" "$TARGET_DIR/debug/telesub-otlp"
    cargo build --workspace --bin telesub
    TELESUB_OTLP_BIN="$TARGET_DIR/debug/telesub-otlp" env -u TELESUB_TEST_POSTGRES_URL \
        cargo test --workspace --test api -- --ignored traces::
    RAN+=("traces(otlp)")
}

# ---------------------------------------------------------------------------------------
# The console in a real browser (in steps 3 and 4): Debian's Chromium driven by Playwright,
# presenting members' client certificates to a hub the test starts and fills.

BROWSER=""           # "ready", or why the browser tests cannot run
# Whether this script may install Debian's packages: as root, where apt-get exists.
can_apt_get() {
    [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1
}

# apt-get install [OPTIONS] PACKAGE..., updating the package lists first when the install
# fails (a fresh machine may have none); the downloaded archives are removed afterwards, so
# that they do not take the disk the builds need.
apt_install() {
    if ! apt-get install -y "$@" >/dev/null 2>&1; then
        { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null 2>&1; } ||
            fail "apt-get install $* failed (no access to Debian's mirrors?)"
    fi
    apt-get clean >/dev/null 2>&1 || true
}

PROMTOOL=""          # promtool, once found
PROMTOOL_WHY=""      # why promtool cannot run
METRICS_PORT=""      # the interop hub's metrics listener

# Sets PROMTOOL to Prometheus' promtool, installing Debian's prometheus package when missing
# (as root, with apt-get); else PROMTOOL is empty and PROMTOOL_WHY says why.
prepare_promtool() {
    PROMTOOL=$(command -v promtool || true)
    [[ -z $PROMTOOL ]] || return 0
    if can_apt_get; then
        echo "installing Debian's prometheus package for promtool"
        apt_install --no-install-recommends prometheus
        PROMTOOL=$(command -v promtool || true)
    fi
    [[ -n $PROMTOOL ]] || PROMTOOL_WHY="promtool is not installed, and this script cannot install it (not root, or no apt-get)"
}

SOFFICE=""           # LibreOffice's soffice, once found
SOFFICE_WHY=""       # why LibreOffice cannot run

# Sets SOFFICE to LibreOffice's soffice, installing Debian's libreoffice-calc-nogui when
# missing (as root, with apt-get); else SOFFICE is empty and SOFFICE_WHY says why.
prepare_libreoffice() {
    SOFFICE=$(command -v soffice || true)
    [[ -z $SOFFICE ]] || return 0
    if can_apt_get; then
        echo "installing Debian's libreoffice-calc-nogui, the workbooks' second reader"
        apt_install --no-install-recommends libreoffice-calc-nogui
        SOFFICE=$(command -v soffice || true)
    fi
    [[ -n $SOFFICE ]] || SOFFICE_WHY="LibreOffice is not installed, and this script cannot install it (not root, or no apt-get)"
}

# Sets TELESUB_BROWSER_PYTHON to a Python with Playwright and makes sure Chromium is there,
# installing it from Debian's packages when missing (as root, with apt-get); else BROWSER says
# why not. Playwright never downloads a browser of its own.
prepare_browser() {
    [[ -z $BROWSER ]] || return 0
    if ! command -v chromium >/dev/null 2>&1; then
        if can_apt_get; then
            echo "installing Debian's chromium for the console's browser tests"
            apt_install chromium
        else
            BROWSER="chromium is not installed, and this script cannot install it (not root, or no apt-get)"
            return 0
        fi
    fi
    if ! python_venv "$ROOT/scripts/console/requirements.txt" browser-venv; then
        BROWSER="python3 with the venv and pip modules is not available"
        return 0
    fi
    export TELESUB_BROWSER_PYTHON=$VENV_PY CHROMIUM
    CHROMIUM=$(command -v chromium)
    BROWSER="ready"
}

# The browser scenarios against a hub on one backend: `run_browser NAME COMMAND-PREFIX...`
# (the prefix sets the backend's environment for cargo).
run_browser() {
    local backend=$1
    shift
    prepare_browser
    if [[ $BROWSER != ready ]]; then
        warn_loudly "The console's browser tests are NOT run on $backend: $BROWSER."
        SKIPPED+=("browser($backend): $BROWSER")
        return 0
    fi
    echo "-- the console in Chromium ($("$CHROMIUM" --version 2>/dev/null)), on $backend"
    # `--workspace`, as in the whole run: with `-p telesub-tests` cargo would unify other
    # features (the contract's `json` is asked for by telesub-cli only) and compile the
    # contract, the hub and the tests a second time.
    "$@" cargo test --workspace --test api -- --ignored --exact \
        console::in_a_real_browser_members_see_what_their_certificates_allow
    RAN+=("browser($backend)")
}

# ---------------------------------------------------------------------------------------
# 4: the same tests against PostgreSQL

# PostgreSQL refuses to run as root, so as root its tools run as the `postgres` user.
as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        # From a folder postgres can read: the tools complain when they cannot stat the cwd.
        (cd "$PG_TMP" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Sets PG_BIN to a folder with initdb and pg_ctl: PATH first, else the newest Debian install.
find_postgres() {
    PG_BIN=""
    local initdb dir
    if initdb=$(command -v initdb 2>/dev/null) && [[ -x $(dirname "$initdb")/pg_ctl ]]; then
        PG_BIN=$(dirname "$initdb")
        return 0
    fi
    # Unmatched, the glob stays literal and fails the -x test below.
    for dir in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            PG_BIN=$dir
            return 0
        fi
    done
    return 1
}

test_postgres() {
    banner "4/6 tests on PostgreSQL: cargo test --workspace with TELESUB_TEST_POSTGRES_URL"
    if ! find_postgres; then
        warn_loudly "PostgreSQL (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin." \
            "The PostgreSQL store is NOT tested. Install PostgreSQL to run these tests."
        SKIPPED+=("tests(postgres): PostgreSQL not installed")
        return 0
    fi
    if [[ $EUID -eq 0 ]] && ! { id postgres >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; }; then
        warn_loudly "Running as root, and PostgreSQL will not: it needs a 'postgres' user and runuser." \
            "The PostgreSQL store is NOT tested. Run as a normal user or create the postgres user."
        SKIPPED+=("tests(postgres): root without a postgres user")
        return 0
    fi
    PG_CTL=$PG_BIN/pg_ctl
    echo "using PostgreSQL from $PG_BIN ($("$PG_BIN/initdb" --version))"

    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/telesub-pg.XXXXXX")
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$PG_TMP"
        as_postgres test -w "$PG_TMP" ||
            fail "$PG_TMP is not reachable by the postgres user; set TMPDIR to a folder it can reach"
    fi

    # A scratch cluster: trust auth on loopback (the tests connect as the superuser to
    # CREATE DATABASE), no fsync (nothing here needs to survive a crash).
    local initdb_args=(-D "$PG_TMP/data" -A trust -U postgres --no-sync -E UTF8)
    if ! as_postgres "$PG_BIN/initdb" "${initdb_args[@]}" --locale=C.UTF-8 >"$PG_TMP/initdb.log" 2>&1; then
        echo "initdb with --locale=C.UTF-8 failed; retrying with --locale=C"
        rm -rf "$PG_TMP/data"
        as_postgres "$PG_BIN/initdb" "${initdb_args[@]}" --locale=C >"$PG_TMP/initdb.log" 2>&1 ||
            { cat "$PG_TMP/initdb.log" >&2; fail "initdb failed"; }
    fi

    local port
    port=$(free_port)
    # Mark as started before the attempt, so a half-started cluster is stopped too.
    PG_STARTED=1
    as_postgres "$PG_CTL" -D "$PG_TMP/data" -l "$PG_TMP/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || fail "could not start PostgreSQL (log: $PG_TMP/log)"
    echo "PostgreSQL listening on 127.0.0.1:$port"

    TELESUB_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres" cargo test --workspace
    RAN+=("tests(postgres)")
    run_browser postgres env TELESUB_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"

    as_postgres "$PG_CTL" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
    PG_STARTED=0
    rm -rf "$PG_TMP"
    PG_TMP=""
}

# ---------------------------------------------------------------------------------------
# 5: interoperability — a real hub, driven by a client that shares no code with it

# Sets VENV_PY to a Python with the packages pinned in REQUIREMENTS: `python_venv
# REQUIREMENTS FOLDER`. The virtual environment is kept under target/FOLDER keyed by the
# requirements and the interpreter, so re-runs skip pip (and work offline); a half-built one
# (no .complete marker) is rebuilt.
# Returns 1 when python3 cannot make a virtual environment (e.g. Debian without
# python3-venv); a failing `pip install` is an error, not a skip. Called as an `if`
# condition, where `set -e` is off, so every command's failure is handled explicitly.
python_venv() {
    local requirements=$1 folder=$2 key venv
    command -v python3 >/dev/null 2>&1 || return 1
    key=$( { cat "$requirements"; command -v python3; python3 --version; } 2>&1 | python3 -c \
        'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])') ||
        return 1
    venv=$TARGET_DIR/$folder/$key
    if [[ ! -f $venv/.complete ]]; then
        echo "creating the Python environment in $venv"
        rm -rf "$venv"
        mkdir -p "$TARGET_DIR/$folder" || fail "cannot create $TARGET_DIR/$folder"
        if ! python3 -m venv "$venv" || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
            rm -rf "$venv"
            return 1
        fi
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" ||
            fail "pip install -r ${requirements#"$ROOT"/} failed (no access to PyPI?)"
        touch "$venv/.complete" || fail "cannot write $venv/.complete"
    fi
    VENV_PY=$venv/bin/python
    echo "Python environment: $("$VENV_PY" -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
}

# Starts `telesub serve` on a free port and sets SERVER_PORT from the line it prints.
start_hub() {
    local telesub=$1 tls=$2 database=$3 line="" _
    # A free port for the metrics listener.
    METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # NO_COLOR: the log goes to a file, to be shown if something fails.
    NO_COLOR=1 "$telesub" serve --tls-dir "$tls" --listen 127.0.0.1:0 --database "$database" \
        --metrics-listen "127.0.0.1:$METRICS_PORT" \
        >"$INTEROP_TMP/serve.out" 2>"$INTEROP_TMP/serve.err" &
    SERVER_PID=$!
    for _ in $(seq 300); do
        line=$(grep -m1 -E '^telesub listening on ' "$INTEROP_TMP/serve.out" || true)
        [[ -n $line ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || fail "the hub exited before it was listening"
        sleep 0.1
    done
    [[ -n $line ]] || fail "the hub did not print 'telesub listening on' within 30 s"
    SERVER_PORT=${line##*:}
    [[ $SERVER_PORT =~ ^[0-9]+$ ]] || fail "cannot read the port from: $line"
    echo "hub listening on 127.0.0.1:$SERVER_PORT (pid $SERVER_PID)"
}

# Sends SIGTERM, as a service manager would, and waits up to 15 s for the hub to exit;
# then SIGKILL. Returns the hub's exit status (137 when it had to be killed).
terminate_hub() {
    local pid=$SERVER_PID status=0 _
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "the hub did not stop within 15 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

stop_hub() {
    local status=0
    terminate_hub || status=$?
    [[ $status -eq 0 ]] || fail "the hub exited with status $status after SIGTERM"
    echo "hub stopped cleanly after SIGTERM"
}

test_interop() {
    banner "5/6 interoperability: Python grpcio and the Rust example against a running hub"
    if ! python_venv "$ROOT/scripts/interop/requirements.txt" interop-venv; then
        warn_loudly "python3 with the venv and pip modules is not available." \
            "The interoperability checks with Python grpcio are NOT run." \
            "Install python3 and python3-venv to run them."
        SKIPPED+=("interop: python3 venv/pip missing")
        return 0
    fi

    # The hub binary and the examples; built here because `cargo test` need not build them,
    # and run from where they were built: `cargo run -p telesub-examples` would build one
    # package alone, with other features than the workspace's, compiling the contract and the
    # SDK a second time.
    cargo build --workspace --bins
    example() {
        local name=$1
        shift
        "$TARGET_DIR/debug/$name" "$@"
    }
    local telesub=$TARGET_DIR/debug/telesub
    [[ -x $telesub ]] || fail "$telesub was not built"

    INTEROP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/telesub-interop.XXXXXX")
    local tls=$INTEROP_TMP/tls foreign=$INTEROP_TMP/foreign-tls database="sqlite://$INTEROP_TMP/hub.db"
    "$telesub" pki init --dir "$tls" --org DOICT:ICT --org VNPT:OPERATOR --org DOLISA:LABOUR \
        --org UBND:PROVINCE_COMMITTEE --org DOET:EDUCATION --person "DOICT:lan:Nguyễn Thị Lan"
    # A second, unrelated CA with a certificate for the same organisation: the hub must
    # refuse it even though it names a registered member.
    "$telesub" pki init --dir "$foreign" --org VNPT:OPERATOR

    start_hub "$telesub" "$tls" "$database"

    echo "-- Python grpcio"
    "$VENV_PY" "$ROOT/scripts/interop/interop.py" --port "$SERVER_PORT" --tls-dir "$tls" \
        --proto-dir "$ROOT/proto" --foreign-tls-dir "$foreign"
    RAN+=("interop(python grpcio)")

    echo "-- Rust example: whoami"
    local out
    out=$(example whoami "https://localhost:$SERVER_PORT" "$tls" VNPT)
    echo "$out"
    grep -qw VNPT <<<"$out" || fail "whoami did not report VNPT"
    RAN+=("interop(rust whoami)")

    echo "-- Rust example: labour_push (twice: the second run must replay, not re-apply)"
    out=$(example labour_push "https://localhost:$SERVER_PORT" "$tls" DOLISA)
    echo "$out"
    grep -q "example-2024-02: applied: 2 records, 0 added, 1 changed, 1 removed" <<<"$out" ||
        fail "labour_push did not apply February's changes"
    out=$(example labour_push "https://localhost:$SERVER_PORT" "$tls" DOLISA)
    grep -q "example-2024-02: already applied, nothing changed" <<<"$out" || fail "labour_push's second run was not a replay"
    RAN+=("interop(rust labour_push)")

    echo "-- Rust example: operator_sync (twice: the second run replays the enrolment)"
    local cursor=$INTEROP_TMP/operator_sync.cursor
    out=$(example operator_sync "https://localhost:$SERVER_PORT" "$tls" VNPT 067075000101 "$cursor")
    echo "$out"
    grep -q "eligible: household EX-0001" <<<"$out" || fail "operator_sync did not find EX-0001 eligible"
    grep -q "enrolled: enrolment" <<<"$out" || fail "operator_sync did not enrol"
    grep -q "feed: caught up" <<<"$out" || fail "operator_sync did not catch up with the feed"
    local first_enrolment
    first_enrolment=$(grep -o "enrolled: enrolment [0-9]*" <<<"$out")
    out=$(example operator_sync "https://localhost:$SERVER_PORT" "$tls" VNPT 067075000101 "$cursor")
    grep -q "$first_enrolment" <<<"$out" || fail "operator_sync's second run did not replay the enrolment"
    RAN+=("interop(rust operator_sync)")

    echo "-- Rust examples: operator_monthly (twice: the second run replays) and ict_reconciliation"
    # The month of the enrolment operator_sync made today (the hub's day is Vietnam's, UTC+7).
    local period lines=$INTEROP_TMP/vnpt-month.csv
    period=$(date -u -d '+7 hours' +%Y-%m)
    printf '%s\r\n' \
        "phone_number,subscriber_citizen_id,household_code,enrollment_id,change,service,package_code,tariff,amount_claimed,days_of_service,used,unclaimed_reason" \
        "0912000101,067075000101,EX-0001,,STARTED,MOBILE,ASXH60,70000,0,0,true," >"$lines"
    out=$(example operator_monthly "https://localhost:$SERVER_PORT" "$tls" VNPT "$period" "$lines" --out "$INTEROP_TMP")
    echo "$out"
    grep -q "$period: RECONCILED; lines: 1, of which 1 claims, 0 not claimed, 1 OK" <<<"$out" ||
        fail "operator_monthly: the list was not reconciled with its line OK"
    out=$(example operator_monthly "https://localhost:$SERVER_PORT" "$tls" VNPT "$period" "$lines" --out "$INTEROP_TMP")
    grep -q "already sent" <<<"$out" || fail "operator_monthly's second run was not a replay"
    out=$(example ict_reconciliation "https://localhost:$SERVER_PORT" "$tls" DOICT "$period" "$INTEROP_TMP/reviews")
    echo "$out"
    grep -q "^confirmed VNPT" <<<"$out" || fail "ict_reconciliation did not confirm VNPT's list"
    compgen -G "$INTEROP_TMP/reviews/*.xlsx" >/dev/null || fail "ict_reconciliation saved no workbook"
    # The workbook, as an independent reader opens it (compressed parts, its sheets and rows).
    "$VENV_PY" - "$INTEROP_TMP"/reviews/*.xlsx <<'PY' || fail "openpyxl could not read the hub's workbook"
import sys, zipfile
from openpyxl import load_workbook
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as z:
        methods = {i.filename: i.compress_type for i in z.infolist()}
        assert all(m == zipfile.ZIP_DEFLATED for m in methods.values()), methods
        assert z.testzip() is None
    book = load_workbook(path)
    sheets = book.sheetnames
    assert len(sheets) >= 2, sheets
    lines = book["Chi tiết"]
    rows = list(lines.iter_rows(values_only=True))
    assert len(rows) >= 2 and "EX-0001" in {str(c) for r in rows for c in r}, rows[:3]
    # The headings stay in view, the rows can be filtered, amounts are numbers shown as #,##0.
    assert lines.freeze_panes == "A2", lines.freeze_panes
    assert (lines.auto_filter.ref or "").startswith("A1:"), lines.auto_filter.ref
    headings = [c.value for c in lines[1]]
    amount = lines.cell(row=2, column=headings.index("Số tiền đề nghị (đồng)") + 1)
    assert isinstance(amount.value, int) and amount.number_format == "#,##0", (amount.value, amount.number_format)
    print(f"openpyxl read {path}: sheets {sheets}, {len(rows)} rows on the last")
PY
    # A second reader that shares no code with the first: LibreOffice converts every sheet to
    # CSV (UTF-8; the cells as shown), as a department's staff would open it.
    prepare_libreoffice
    if [[ -n $SOFFICE ]]; then
        local book sheets=$INTEROP_TMP/libreoffice
        mkdir -p "$sheets"
        for book in "$INTEROP_TMP"/reviews/*.xlsx; do
            HOME=$INTEROP_TMP timeout 120 "$SOFFICE" --headless --norestore --convert-to \
                'csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1' \
                --outdir "$sheets" "$book" >"$INTEROP_TMP/libreoffice.log" 2>&1 ||
                fail "LibreOffice could not read $book: $(cat "$INTEROP_TMP/libreoffice.log")"
        done
        compgen -G "$sheets/*Chi tiết.csv" >/dev/null || fail "LibreOffice found no sheet 'Chi tiết': $(ls "$sheets")"
        grep -q "EX-0001" "$sheets"/*"Chi tiết.csv" || fail "LibreOffice's 'Chi tiết' does not hold the line of EX-0001"
        grep -q "Số tiền đề nghị (đồng)" "$sheets"/*"Chi tiết.csv" ||
            fail "LibreOffice did not read the Vietnamese headings"
        # The tariff, a number shown with the thousands separator of #,##0.
        grep -q '"70,000"' "$sheets"/*"Chi tiết.csv" || fail "LibreOffice does not show the amount 70,000 as #,##0"
        echo "LibreOffice read $(ls "$sheets" | wc -l) sheets"
        RAN+=("interop(libreoffice)")
    else
        warn_loudly "The workbooks' second reader (LibreOffice) did NOT run: $SOFFICE_WHY."
        SKIPPED+=("libreoffice ($SOFFICE_WHY)")
    fi
    RAN+=("interop(rust operator_monthly + ict_reconciliation)")

    echo "-- Rust example: device_allocation (twice: the second decision finds no household left)"
    out=$(example device_allocation "https://localhost:$SERVER_PORT" "$tls" DOICT UBND DOET --decision "EX-1/QĐ-BTTTT")
    echo "$out"
    grep -q "^handed over to EX-0001" <<<"$out" || fail "device_allocation did not hand a device over to EX-0001"
    grep -q "<!DOCTYPE html>" <<<"$out" || fail "device_allocation did not fetch the published page"
    out=$(example device_allocation "https://localhost:$SERVER_PORT" "$tls" DOICT UBND DOET --decision "EX-2/QĐ-BTTTT")
    grep -q "no household on the list" <<<"$out" || fail "device_allocation: a household got a place on a second list"
    RAN+=("interop(rust device_allocation)")

    echo "-- Rust example: ict_dashboard_report (the month's overview)"
    out=$(example ict_dashboard_report "https://localhost:$SERVER_PORT" "$tls" DOICT "$period")
    echo "$out"
    grep -q "^households on the list" <<<"$out" || fail "ict_dashboard_report printed no overview"
    grep -Eq "VNPT .*list CONFIRMED" <<<"$out" || fail "ict_dashboard_report did not see VNPT's confirmed list"
    RAN+=("interop(rust ict_dashboard_report)")

    echo "-- telesub-cli: eligibility check and policy"
    local cli=$TARGET_DIR/debug/telesub-cli
    out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT eligibility check 067075000101)
    echo "$out"
    grep -Eq "^household +EX-0001" <<<"$out" || fail "telesub-cli eligibility check did not name EX-0001"
    grep -Eq "^reason +ALREADY_ENROLLED_ELSEWHERE" <<<"$out" &&
        fail "telesub-cli: the operator's own enrolment was taken for another operator's"
    if "$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT eligibility check 12345 2>/dev/null; then
        fail "telesub-cli accepted a malformed citizen ID"
    fi
    out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT policy show)
    grep -Eq "^version +1" <<<"$out" ||
        fail "telesub-cli policy show did not show version 1"
    # A reader that stops early (`| head`, `| grep -q`) ends the command quietly, not with a panic.
    "$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT policy show \
        2>"$INTEROP_TMP/cli-stderr" | true ||
        fail "telesub-cli failed when its reader went away: $(cat "$INTEROP_TMP/cli-stderr")"
    if [[ -s $INTEROP_TMP/cli-stderr ]]; then
        fail "telesub-cli complained when its reader went away: $(cat "$INTEROP_TMP/cli-stderr")"
    fi
    out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT enrollments list --household EX-0001)
    echo "$out"
    grep -Eq "^[0-9]+ +VNPT +EX-0001 +0912000101 +MOBILE" <<<"$out" || fail "telesub-cli enrollments list did not show the enrolment"
    # The same enrolment by its id, as JSON.
    id=$(grep -Eo "^[0-9]+ +VNPT +EX-0001" <<<"$out" | head -1 | cut -d' ' -f1)
    out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT enrollments get "$id" --output json)
    grep -q "\"enrollmentId\": *\"$id\"" <<<"$out" || fail "telesub-cli enrollments get $id did not show it: $out"
    # ICT sees every operator's enrolments.
    if out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org DOICT enrollments list 2>&1); then
        grep -q "EX-0001" <<<"$out" || fail "telesub-cli: ICT does not see the enrolment"
    else
        fail "telesub-cli enrollments list as ICT failed: $out"
    fi
    out=$("$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org VNPT watch --once --cursor-file "$INTEROP_TMP/cli.cursor" 2>&1)
    grep -Eq "^(cursor: |nothing new)" <<<"$out" || fail "telesub-cli watch --once did not stop when caught up: $out"
    RAN+=("interop(telesub-cli)")

    echo "-- metrics: a scrape after the calls above, checked by Prometheus' promtool"
    local scrape=$INTEROP_TMP/metrics.txt
    python3 - "$METRICS_PORT" "$scrape" <<'PY' || fail "the metrics listener did not answer"
import sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
for path in ("/health/live", "/health/ready"):
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status == 200, path
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
    open(out, "wb").write(r.read())
PY
    grep -q '^telesub_calls_total{method="/telesub.v1.Policy/GetPolicy",role="OPERATOR",outcome="OK"}' "$scrape" ||
        fail "the scrape does not count telesub-cli's policy calls"
    prepare_promtool
    if [[ -n $PROMTOOL ]]; then
        "$PROMTOOL" check metrics <"$scrape" || fail "promtool check metrics failed on the hub's scrape"
        RAN+=("metrics(promtool)")
    else
        warn_loudly "promtool check metrics NOT run: $PROMTOOL_WHY."
        SKIPPED+=("promtool check metrics ($PROMTOOL_WHY)")
    fi

    echo "-- audit: an export with its proof, checked in Python written from the README alone"
    local key checker=$ROOT/scripts/interop/audit_check.py export=$INTEROP_TMP/audit.csv
    key=$("$telesub" audit public-key --tls-dir "$tls")
    # A call with a person's certificate: its record names her (`telesub-audit-v3`).
    "$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org DOICT.lan policy show >/dev/null ||
        fail "telesub-cli with a person's certificate failed"
    "$cli" --endpoint "https://localhost:$SERVER_PORT" --tls-dir "$tls" --org DOICT audit export --with-proof -o "$export"
    tr -d '\r' <"$export" | grep -q ',Nguyễn Thị Lan$' || fail "the audit export does not name the person who called"
    "$VENV_PY" "$checker" "$export" "$export.proof" --public-key "$key" || fail "the audit export did not check in Python"
    # A field changed, or the last record (the one proven) left out: the checker says so.
    sed '0,/,OK,/s//,NOT_FOUND,/' "$export" >"$INTEROP_TMP/changed.csv"
    head -n -1 "$export" >"$INTEROP_TMP/shortened.csv"
    local tampered
    for tampered in changed shortened; do
        if "$VENV_PY" "$checker" "$INTEROP_TMP/$tampered.csv" "$export.proof" --public-key "$key" \
            2>"$INTEROP_TMP/check-err"; then
            fail "the Python check passed a $tampered export"
        fi
        grep -q "NOT VERIFIED" "$INTEROP_TMP/check-err" || fail "the Python check of a $tampered export: $(cat "$INTEROP_TMP/check-err")"
    done
    RAN+=("interop(python audit check)")

    stop_hub
    echo "-- audit trail"
    "$telesub" audit verify --database "$database"
    RAN+=("audit verify")
}

# ---------------------------------------------------------------------------------------

# The Debian package, where cargo-deb is installed (`cargo install cargo-deb`): built in
# release, then its contents and control fields checked. Not installed (as in CI, where the
# release build would add some ten minutes): a loud skip.
build_package() {
    banner "6/6 the Debian package: cargo deb"
    if ! cargo deb --version >/dev/null 2>&1; then
        warn_loudly "The Debian package is NOT built: cargo-deb is not installed (cargo install cargo-deb)."
        SKIPPED+=("package (cargo-deb not installed)")
        return 0
    fi
    local out deb contents
    out=$(cd "$ROOT" && cargo deb -p telesub 2>&1) || fail "cargo deb failed: $out"
    deb=$(tail -n 1 <<<"$out")
    [[ -f $deb ]] || fail "cargo deb did not name the package it built: $out"
    contents=$(dpkg-deb --contents "$deb")
    local path
    for path in ./usr/bin/telesub ./etc/telesub/telesub.toml ./usr/lib/systemd/system/telesub.service \
        ./usr/share/doc/telesub/README.md; do
        grep -q " $path\$" <<<"$contents" || fail "the package has no $path"
    done
    dpkg-deb --field "$deb" Depends | grep -q adduser || fail "the package does not depend on adduser"
    dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q 'postinst' || fail "the package has no postinst"
    echo "built $deb"
    RAN+=("package")
}

summary() {
    CURRENT_STEP="summary"
    local ran="nothing" skipped="none"
    [[ ${#RAN[@]} -eq 0 ]] || ran=$(IFS=,; echo "${RAN[*]}")
    if [[ ${#SKIPPED[@]} -gt 0 ]]; then
        skipped=$(IFS=';'; echo "${SKIPPED[*]}")
        warn_loudly "Some checks were SKIPPED: $skipped"
    fi
    printf '\n%sPASSED%s ran: %s | skipped: %s\n' "$GREEN" "$PLAIN" "${ran//,/, }" "${skipped//;/; }"
    printf 'took: %s | in all %d s\n' "$(took)" "$SECONDS"
}

usage() {
    cat <<'USAGE'
usage: scripts/test.sh [STEP...]
Runs every step when none is named. Steps: fmt clippy sqlite postgres interop package
USAGE
}

main() {
    local step steps=("$@")
    [[ $# -gt 0 ]] || steps=(fmt clippy sqlite postgres interop package)
    # Check all names before running anything, so a typo fails fast.
    for step in "${steps[@]}"; do
        case $step in
            fmt | clippy | sqlite | postgres | interop | package) ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
    done
    for step in "${steps[@]}"; do
        local started=$SECONDS
        case $step in
            fmt) check_format ;;
            clippy) check_lints ;;
            sqlite) test_sqlite ;;
            postgres) test_postgres ;;
            interop) test_interop ;;
            package) build_package ;;
        esac
        TOOK+=("$step $((SECONDS - started)) s")
    done
    summary
}

main "$@"
