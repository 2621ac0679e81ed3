# Shared set-up for scripts/dev, scripts/test and scripts/bench. Source it; it defines
# functions and never starts anything by itself. Everything it starts is recorded so
# `stop_started` (run from a trap) stops exactly that.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"
STARTED=()   # "kind:detail" entries for stop_started

log() { printf '\033[1m[df]\033[0m %s\n' "$*" >&2; }
die() { printf '[df] error: %s\n' "$*" >&2; exit 1; }

# .env supplies defaults; variables already in the environment win.
load_dotenv() {
  local file="$ROOT/.env" line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    line="${line#export }"
    key="${line%%=*}"; value="${line#*=}"
    key="$(echo "$key" | tr -d '[:space:]')"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    if [ -z "${!key+x}" ]; then export "$key=$value"; fi
  done < "$file"
}

# Project-local venv: cargo-lambda (CLI) and moto's server. `with_sam=1` adds the
# tools needed to build and validate the SAM template (ziglang, aws-sam-cli, cfn-lint).
ensure_venv() {
  local with_sam="${1:-0}" want=()
  [ -x "$VENV/bin/python" ] || { log "creating Python venv in .venv"; python3 -m venv "$VENV"; }
  [ -x "$VENV/bin/cargo-lambda" ] || want+=(cargo-lambda)
  [ -x "$VENV/bin/moto_server" ] || want+=("moto[server]")
  if [ "$with_sam" = 1 ]; then
    [ -x "$VENV/bin/sam" ] || want+=(aws-sam-cli)
    [ -x "$VENV/bin/cfn-lint" ] || want+=(cfn-lint)
    "$VENV/bin/python" -c "import ziglang" 2>/dev/null || want+=(ziglang)
    # The official MCP SDK, as a client of our servers (scripts/lib/mcp_clients.py).
    "$VENV/bin/python" -c "import mcp.client.streamable_http" 2>/dev/null || want+=("mcp==2.3.0")
    # The property-based fuzzer over docs/openapi.yaml (scripts/lib/fuzz.sh).
    "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5" || want+=("schemathesis==4.32.5")
  fi
  if [ ${#want[@]} -gt 0 ]; then
    log "installing into .venv: ${want[*]}"
    "$VENV/bin/pip" install -q "${want[@]}"
  fi
  export PATH="$VENV/bin:$PATH"
}

# An npm package, pinned, installed once into $LOCAL/<dir>: ensure_npm_tool dir package@version bin.
ensure_npm_tool() {
  local dir="$LOCAL/$1"
  if [ ! -x "$dir/node_modules/.bin/$3" ]; then
    command -v npm >/dev/null || die "npm is needed for $2 (Debian: nodejs npm)"
    log "installing $2 into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "$2" >/dev/null
  fi
}

# The official MCP conformance suite (npm), pinned: 0.1.12 runs on Node 20 and has the
# server scenarios we run. Exports CONFORMANCE (its command).
ensure_conformance() {
  ensure_npm_tool conformance @modelcontextprotocol/conformance@0.1.12 conformance
  export CONFORMANCE="$LOCAL/conformance/node_modules/.bin/conformance"
}

# Claude Code's CLI (npm), pinned: 2.1.160 is the last release that runs on Node 20.
# Exports CLAUDE (its command); scripts/test runs `claude mcp add` / `claude mcp list`.
ensure_claude_code() {
  ensure_npm_tool claude-code @anthropic-ai/claude-code@2.1.160 claude
  export CLAUDE="$LOCAL/claude-code/node_modules/.bin/claude"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {
  local host="$1" port="$2" what="$3" i
  for i in $(seq 1 150); do port_open "$host" "$port" && return 0; sleep 0.2; done
  die "$what did not start on $host:$port"
}

pg_bin() {
  local dir
  command -v "$1" 2>/dev/null && return 0
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }; done
  return 1
}

as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Postgres: use one that answers; else start the machine's cluster; else run a
# project-local cluster (installing the server from Debian's packages if missing).
ensure_postgres() {
  PGHOST_ADDR="${DF_PG_HOST:-127.0.0.1}"
  PGPORT_NUM="${DF_PG_PORT:-5432}"
  if port_open "$PGHOST_ADDR" "$PGPORT_NUM"; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
    log "starting the machine's PostgreSQL $version cluster"
    if pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start; then
      STARTED+=("pgcluster:$version")
      wait_port "$PGHOST_ADDR" "$PGPORT_NUM" PostgreSQL
      return 0
    fi
  fi
  start_local_postgres
}

start_local_postgres() {
  local initdb pg_ctl data="$LOCAL/pgdata"
  PGPORT_NUM="${DF_LOCAL_PG_PORT:-55432}"
  if port_open "$PGHOST_ADDR" "$PGPORT_NUM"; then return 0; fi
  if ! initdb="$(pg_bin initdb)"; then
    log "installing PostgreSQL from Debian's packages"
    command -v apt-get >/dev/null || die "no PostgreSQL and no apt-get: install PostgreSQL or set DATABASE_URL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    initdb="$(pg_bin initdb)" || die "PostgreSQL install did not provide initdb"
  fi
  pg_ctl="$(dirname "$initdb")/pg_ctl"
  if [ "$(id -u)" = 0 ]; then mkdir -p "$data" && chown postgres "$data" "$LOCAL"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a project-local PostgreSQL cluster in .local/pgdata"
    as_pg_owner "$initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  log "starting project-local PostgreSQL on port $PGPORT_NUM"
  as_pg_owner "$pg_ctl" -D "$data" -l "$LOCAL/postgres.log" -o "-p $PGPORT_NUM -k /tmp -c listen_addresses=$PGHOST_ADDR" -w start >/dev/null
  STARTED+=("pglocal:$pg_ctl:$data")
}

# moto server mode: SQS and Secrets Manager on loopback.
start_moto() {
  local port="$1"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  if port_open 127.0.0.1 "$port"; then log "reusing the emulator already on port $port"; return 0; fi
  log "starting the SQS / Secrets Manager emulator (moto) on port $port"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOCAL/moto-$port.log" 2>&1 &
  STARTED+=("pid:$!")
  wait_port 127.0.0.1 "$port" "moto_server"
}

# Create the FIFO queues and DLQs; exports their URLs.
create_queues() {
  local urls
  urls="$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" queues)"
  eval "$urls"
  export WEBHOOK_EVENTS_QUEUE_URL TEXTING_EVENTS_QUEUE_URL BROADCAST_EVENTS_QUEUE_URL
}

stop_started() {
  local entry i
  for ((i=${#STARTED[@]}-1; i>=0; i--)); do
    entry="${STARTED[$i]}"
    case "$entry" in
      pid:*) kill "${entry#pid:}" 2>/dev/null || true ;;
      pgid:*) kill -- "-${entry#pgid:}" 2>/dev/null || kill "${entry#pgid:}" 2>/dev/null || true ;;
      pgcluster:*) pg_ctlcluster --skip-systemctl-redirect "${entry#pgcluster:}" main stop 2>/dev/null || true ;;
      pglocal:*) local rest="${entry#pglocal:}"; as_pg_owner "${rest%%:*}" -D "${rest#*:}" -m fast stop >/dev/null 2>&1 || true ;;
    esac
  done
  STARTED=()
}

# Verity's database for broadcast analytics: unless VERITY_DATABASE_URL names a real
# one, a local database `$1` on our server with the schema and demo data of infra/verity.
local_verity_database() {
  [ -n "${VERITY_DATABASE_URL:-}" ] && return 0
  [ -n "${DATABASE_URL:-}" ] || die "local_verity_database needs DATABASE_URL"
  local server="${MIGRATION_DATABASE_URL:-$DATABASE_URL}"
  server="${server%/*}"
  export VERITY_DATABASE_URL="$server/$1"
  psql -X -q "$server/postgres" -c "CREATE DATABASE $1" >/dev/null 2>&1 || true
  psql -X -q -v ON_ERROR_STOP=1 "$VERITY_DATABASE_URL" -f "$ROOT/infra/verity/schema.sql" -f "$ROOT/infra/verity/seed.sql" >/dev/null ||
    die "could not load infra/verity into $(redact_url "$VERITY_DATABASE_URL")"
}

# `$1` with its user replaced by `$2`.
with_db_user() { echo "$1" | sed -E "s#^(postgres(ql)?://)([^@/]*@)?#\1$2@#"; }

# Build and run the project's migration command as the owner (MIGRATION_DATABASE_URL,
# else DATABASE_URL), then point DATABASE_URL at the application role (migration V0010),
# which is what every function connects as: it may not rewrite the opt-out audit.
migrate_database() {
  export MIGRATION_DATABASE_URL="${MIGRATION_DATABASE_URL:-$DATABASE_URL}"
  log "migrating $(redact_url "$MIGRATION_DATABASE_URL")"
  DATABASE_URL="$MIGRATION_DATABASE_URL" cargo run -q --bin migrate -- --create-database
  if [ -z "${DF_APP_DATABASE_URL:-}" ]; then
    # Locally the role logs in by itself (trust auth); a real deployment gives it a password.
    psql -X -q "$MIGRATION_DATABASE_URL" -c "ALTER ROLE df_app LOGIN" >/dev/null
    DF_APP_DATABASE_URL="$(with_db_user "$MIGRATION_DATABASE_URL" df_app)"
  fi
  export DATABASE_URL="$DF_APP_DATABASE_URL"
}

redact_url() { echo "$1" | sed -E 's#://([^:@/]+):[^@/]*@#://\1:***@#'; }

# Local defaults for the webhook secrets; the README's curl examples use these.
local_webhook_secrets() {
  export ALOWARE_WEBHOOK_BASIC_USER="${ALOWARE_WEBHOOK_BASIC_USER:-aloware}"
  export ALOWARE_WEBHOOK_BASIC_PASS="${ALOWARE_WEBHOOK_BASIC_PASS:-local-aloware-pass}"
  export GHL_WORKFLOW_WEBHOOK_SECRET="${GHL_WORKFLOW_WEBHOOK_SECRET:-local-workflow-secret}"
  export TEXTING_WEBHOOK_SECRET="${TEXTING_WEBHOOK_SECRET:-local-texting-secret}"
  export VERITY_WEBHOOK_SECRET="${VERITY_WEBHOOK_SECRET:-local-verity-secret}"
  # The API key of the Verity gateway and the MCP server.
  export DF_MIDDLEWARE_API_KEY="${DF_MIDDLEWARE_API_KEY:-local-df-middleware-key}"
  export DF_ADMIN_SECRET="${DF_ADMIN_SECRET:-local-admin-secret}"
  export X_DF_JOBS_SECRET="${X_DF_JOBS_SECRET:-local-jobs-secret}"
  # One mapped tag → power-dialer list, so the list routes have something to show.
  export ALOWARE_LIST_MAP="${ALOWARE_LIST_MAP:-{\"hot lead\":\"5001\"\}}"
  # The roster the agents route matches against GHL's and Aloware's users.
  export AGENT_DIRECTORY="${AGENT_DIRECTORY:-[{\"email\":\"agent@example.com\"\}]}"
  # The texts the middleware sends itself (set either to "" to send none).
  export TEXTING_STOP_CONFIRMATION="${TEXTING_STOP_CONFIRMATION-You are unsubscribed and will get no more texts. Reply START to resubscribe.}"
  export TEXTING_HELP_REPLY="${TEXTING_HELP_REPLY-Reply STOP to unsubscribe. Msg and data rates may apply.}"
}

# Serve every function at its production path; records the process group.
start_watch() {
  local port="$1" logfile="$2"
  port_open 127.0.0.1 "$port" && die "port $port is in use"
  # The functions as `cargo lambda watch` runs them (`cargo run --bin`, default members:
  # the same feature resolution, so nothing recompiles on the first invocation), then
  # the local sandbox and bridge.
  cargo build -q --bins
  cargo build -q -p df-sandbox -p df-bridge
  # The emulator listens inside (port + 1000); df-front, API Gateway's stand-in, on the
  # public port: it hands non-UTF-8 bodies to the function as API Gateway does, where
  # the emulator alone would answer 500 itself.
  WATCH_INTERNAL_PORT=$((port + 1000))
  port_open 127.0.0.1 "$WATCH_INTERNAL_PORT" && die "port $WATCH_INTERNAL_PORT is in use"
  setsid cargo lambda watch -q -A 127.0.0.1 -P "$WATCH_INTERNAL_PORT" >"$logfile" 2>&1 &
  WATCH_PID=$!
  STARTED+=("pgid:$WATCH_PID")
  DF_FRONT_LISTEN="127.0.0.1:$port" DF_FRONT_UPSTREAM="http://127.0.0.1:$WATCH_INTERNAL_PORT" \
    "$ROOT/target/debug/df-front" >>"$logfile" 2>&1 &
  STARTED+=("pid:$!")
  wait_port 127.0.0.1 "$WATCH_INTERNAL_PORT" "cargo lambda watch"
  wait_port 127.0.0.1 "$port" "df-front"
}

ensure_psql() {
  command -v psql >/dev/null && return 0
  log "installing the PostgreSQL client"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
}

# Providers: the sandbox unless real credentials are configured. GHL_API_KEY /
# ALOWARE_API_TOKEN set (with their base URLs, or the real defaults) mean real services.
provider_defaults() {
  local sandbox="http://127.0.0.1:$1"
  if [ -z "${GHL_API_KEY:-}" ]; then
    export GHL_BASE_URL="$sandbox/ghl" GHL_API_KEY=sandbox-ghl-token GHL_LOCATION_ID="${GHL_LOCATION_ID:-sandbox-location}"
  fi
  if [ -z "${ALOWARE_API_TOKEN:-}" ]; then
    export ALOWARE_BASE_URL="$sandbox/aloware" ALOWARE_API_TOKEN=sandbox-aloware-token
  fi
  # Alerts go to the sandbox's receiver (`/_sandbox/state` shows them).
  export ALERT_WEBHOOK_URL="${ALERT_WEBHOOK_URL:-$sandbox/alerts}"
  if [ -z "${TEXTING_API_KEY:-}" ]; then
    export TEXTING_BASE_URL="$sandbox/texting" TEXTING_API_KEY=sandbox-texting-key
  fi
  # Verity: the sandbox serves the example catalog's endpoints.
  if [ -z "${VERITY_API_KEY:-}" ] && [ -z "${CLERK_MACHINE_SECRET_KEY:-}" ]; then
    export VERITY_BASE_URL="$sandbox/verity" VERITY_API_KEY=sandbox-verity-key
  fi
  export VERITY_CATALOG_URI="${VERITY_CATALOG_URI:-$ROOT/infra/verity/api-catalog.json}"
}

# The provider sandbox (GHL, Aloware, texting on loopback).
start_sandbox() {
  local port="$1" logfile="$2"
  port_open 127.0.0.1 "$port" && die "port $port is in use (the sandbox's)"
  DF_SANDBOX_PORT="$port" "$ROOT/target/debug/df-sandbox" >"$logfile" 2>&1 &
  STARTED+=("pid:$!")
  wait_port 127.0.0.1 "$port" "df-sandbox"
}

# The local SQS trigger and EventBridge scheduler, through cargo lambda watch's invoke API.
start_bridge() {
  local invoke_port="${WATCH_INTERNAL_PORT:-$1}" logfile="$2"
  DF_SCHEDULES="$("$VENV/bin/python" "$ROOT/scripts/lib/schedules.py" "$ROOT/template.yaml")" \
    DF_INVOKE_URL="http://127.0.0.1:$invoke_port" "$ROOT/target/debug/df-bridge" >"$logfile" 2>&1 &
  STARTED+=("pid:$!")
}
