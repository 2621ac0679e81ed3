# The README's curl examples, verbatim but for the ports, against the local stack that
# scripts/dev runs (cargo lambda watch, the provider sandbox, the queue bridge) on a
# fresh database and queues. Sourced by scripts/test (needs common.sh and the emulator
# already started). Prints "N passed, N failed" and fails on any failure.

# The examples of block $1 (default `examples`), wherever it lives: the README or a page
# under docs/.
readme_examples() {
  local page
  for page in "$ROOT/README.md" "$ROOT"/docs/*.md; do
    sed -n "/<!-- ${1:-examples}:start -->/,/<!-- ${1:-examples}:end -->/p" "$page"
  done | sed '/^```/d; /^<!--/d'
}

sql() { psql -X -q -t -A "$DATABASE_URL" -c "$1"; }

# Run README block $1 against the smoke's ports ($2 functions, $3 sandbox); prints its output.
run_readme_block() {
  local file="$LOCAL/readme-$1.sh"
  readme_examples "$1" | sed "s#127.0.0.1:9000#127.0.0.1:$2#g; s#127.0.0.1:7700#127.0.0.1:$3#g" >"$file"
  [ -s "$file" ] || die "no $1 block in README.md or docs/*.md"
  bash "$file" 2>&1
}

source "$ROOT/scripts/lib/fuzz.sh"

run_readme_examples() {
  local port="${DF_SMOKE_PORT:-9055}" sandbox_port="${DF_SMOKE_SANDBOX_PORT:-7755}" passed=0 failed=0 out script state i
  export DATABASE_URL="${DF_TEST_DATABASE_URL%/*}/df_smoke_$(date +%s)_$$"
  unset MIGRATION_DATABASE_URL DF_APP_DATABASE_URL
  migrate_database >/dev/null
  eval "$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" queues "smoke-$$-")"
  export WEBHOOK_EVENTS_QUEUE_URL TEXTING_EVENTS_QUEUE_URL BROADCAST_EVENTS_QUEUE_URL RETRY_BASE_SECONDS=1
  unset VERITY_DATABASE_URL
  local_verity_database "df_smoke_verity_$(date +%s)_$$"
  local_webhook_secrets
  (unset GHL_API_KEY ALOWARE_API_TOKEN TEXTING_API_KEY VERITY_API_KEY CLERK_MACHINE_SECRET_KEY VERITY_CATALOG_URI; provider_defaults "$sandbox_port"; env | grep -E '^(GHL|ALOWARE|TEXTING|VERITY)_(BASE_URL|API_KEY|API_TOKEN|LOCATION_ID|CATALOG_URI)=' >"$LOCAL/smoke-providers.env")
  set -a; source "$LOCAL/smoke-providers.env"; set +a
  # The conformance suite's browser-like requests come through the header proxy.
  export MCP_ALLOWED_ORIGINS="http://127.0.0.1:$((port + 1)),http://localhost:$((port + 1))"
  start_watch "$port" "$LOCAL/smoke-watch.log"
  start_sandbox "$sandbox_port" "$LOCAL/smoke-sandbox.log"
  start_bridge "$port" "$LOCAL/smoke-bridge.log"

  script="$LOCAL/readme-examples.sh"
  readme_examples | sed "s#127.0.0.1:9000#127.0.0.1:$port#g; s#127.0.0.1:7700#127.0.0.1:$sandbox_port#g" >"$script"
  [ -s "$script" ] || die "README.md has no examples block"

  check() { if eval "$2"; then passed=$((passed+1)); echo "ok: $1"; else failed=$((failed+1)); echo "FAILED: $1" >&2; fi; }
  local t0=$SECONDS
  out="$(bash "$script")"; echo "$out"
  check "health is ok" '[[ "$out" == *"\"status\":\"ok\""* ]]'
  check "six webhooks stored and queued" '[ "$(grep -o "\"queued\":true" <<<"$out" | wc -l)" = 6 ]'

  # The consumers (through the bridge) apply them to the sandbox.
  for i in $(seq 1 120); do
    [ "$(sql "SELECT (SELECT count(*) FROM webhook_events WHERE status IN ('done','skipped','error','failed')) + (SELECT count(*) FROM texting_webhook_events WHERE status IN ('done','skipped','error','failed'))")" = 7 ] && break
    sleep 1
  done
  echo "applied within $((SECONDS - t0)) s of the first curl (includes the consumer's first start under cargo lambda watch)"
  echo "events: $(sql "SELECT string_agg(event_type || '=' || status, ', ' ORDER BY received_at) FROM webhook_events")"
  echo "texting events: $(sql "SELECT string_agg(event_type || '=' || status || coalesce(' (' || error_message || ')', ''), ', ' ORDER BY received_at) FROM texting_webhook_events")"
  check "the three GHL/Aloware events are done" '[ "$(sql "SELECT count(*) FROM webhook_events WHERE status = '"'"'done'"'"'")" = 3 ]'
  state="$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/state")"
  check "GHL has Test Merchant with one call note and one SMS note" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); c=[c for c in s[\"ghl\"][\"contacts\"] if c.get(\"firstName\")==\"Test\"]; n=s[\"ghl\"][\"notes\"].get(c[0][\"id\"], []) if c else []; calls=[x for x in n if x[\"body\"].startswith(\"[Call]\") and \"No Answer\" in x[\"body\"]]; sms=[x for x in n if x[\"body\"].startswith(\"[SMS][Inbound] 2026-11-22 10:00:00 UTC\")]; sys.exit(not (len(c)==1 and \"call: no answer\" in c[0][\"tags\"] and len(calls)==1 and len(sms)==1 and len(n)==2))" <<<"$state"'
  check "the seed's texting examples are done, and the STOP's opt-out job" '[ "$(sql "SELECT count(*) FROM texting_webhook_events WHERE status = '"'"'done'"'"'")" = 4 ]'
  check "GHL has +16195550111 with two SMS notes, SMS DND on and both opt-out tags" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); c=[c for c in s[\"ghl\"][\"contacts\"] if c.get(\"phone\")==\"+16195550111\"]; n=s[\"ghl\"][\"notes\"].get(c[0][\"id\"], []) if c else []; sys.exit(not (len(c)==1 and c[0][\"dndSettings\"][\"SMS\"][\"status\"]==\"active\" and {\"dnc-sms\",\"sms opted out\"} <= set(c[0][\"tags\"]) and len(n)==2 and any(\"Hey, I have a question about my investment\" in x[\"body\"] for x in n)))" <<<"$state"'
  check "one STOP confirmation sent, from the number texted" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); m=s[\"texting\"][\"messages\"]; sys.exit(not (len(m)==1 and m[0][\"to\"]==\"+16195550111\" and m[0][\"from\"]==\"+18885550123\"))" <<<"$state"'
  local audit
  audit="$(curl -s -H "x-df-admin-secret: $DF_ADMIN_SECRET" "http://127.0.0.1:$port/api/admin/optouts?phone=%2B16195550111")"
  echo "admin optouts: $audit"
  check "the admin route shows the opt-out, masked" \
    '[[ "$audit" == *"\"status\":\"opted_out\""* && "$audit" == *"\"phone\":\"***0111\""* && "$audit" == *"confirmation: sent"* && "$audit" != *"16195550111"* ]]'
  check "the admin route refuses a wrong secret" \
    '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "x-df-admin-secret: nope" "http://127.0.0.1:$port/api/admin/optouts?phone=%2B16195550111")" = 401 ]'
  check "Aloware has John Deo" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); sys.exit(not any(c.get(\"first_name\")==\"John\" and c[\"phone_number\"]==\"+12025550199\" for c in s[\"aloware\"][\"contacts\"]))" <<<"$state"'

  run_ops_examples "$port" "$sandbox_port"
  run_broadcast_examples "$port" "$sandbox_port"
  run_verity_examples "$port" "$sandbox_port"

  "$VENV/bin/python" "$ROOT/scripts/lib/latency.py" "http://127.0.0.1:$port/api/webhooks/aloware" \
    "http://127.0.0.1:$sandbox_port" "$ALOWARE_WEBHOOK_BASIC_USER" "$ALOWARE_WEBHOOK_BASIC_PASS" 10 ||
    { failed=$((failed+1)); echo "FAILED: local latency run" >&2; }
  out="$(bash "$script")"
  check "the same examples again are duplicates" '[ "$(grep -o "\"duplicate\":true" <<<"$out" | wc -l)" = 6 ]'
  local depths
  depths="$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" depths "smoke-$$-" | grep -v dlq)"
  check "both queues drained" \
    'grep -q "webhook-events.fifo: 0 visible, 0 in flight" <<<"$depths" && grep -q "texting-events.fifo: 0 visible, 0 in flight" <<<"$depths"'
  local violations
  violations="$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/violations")"
  check "no request the real providers would refuse (sandbox violations: $violations)" '[ "$violations" = "[]" ]'
  # Bodies that are not UTF-8 reach the function locally as through API Gateway (df-front):
  # an authenticated Aloware one is stored, quarantined; an admin route answers 400.
  printf '{"event":"Contact-Updated","body":{"id":"\xff"}}' >"$LOCAL/not-utf8.json"
  out="$(curl -s -u "$ALOWARE_WEBHOOK_BASIC_USER:$ALOWARE_WEBHOOK_BASIC_PASS" -H 'content-type: application/json' --data-binary @"$LOCAL/not-utf8.json" "http://127.0.0.1:$port/api/webhooks/aloware")"
  check "a non-UTF-8 Aloware body is stored, quarantined ($out)" '[[ "$out" == *"\"status\":\"quarantined\""* ]]'
  out="$(curl -s -w " %{http_code}" -H "x-df-admin-secret: $DF_ADMIN_SECRET" -H 'content-type: application/json' --data-binary @"$LOCAL/not-utf8.json" "http://127.0.0.1:$port/api/admin/agents")"
  check "a non-UTF-8 admin body is a JSON 400 ($out)" '[[ "$out" == *"\"error\":"*" 400" ]]'
  echo "== every route against docs/openapi.yaml"
  check "real answers match docs/openapi.yaml" '"$VENV/bin/python" "$ROOT/scripts/lib/openapi_check.py" "http://127.0.0.1:$port"'
  echo "== Schemathesis over docs/openapi.yaml (seed $SCHEMATHESIS_SEED, $SCHEMATHESIS_EXAMPLES examples per operation)"
  check "Schemathesis: no 5xx, no undocumented status, every answer as documented" 'run_schemathesis "http://127.0.0.1:$port"'
  echo "smoke: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# The README's operations examples, after the webhook examples were applied.
# README "Broadcast analytics": a signed Verity event ends as the GHL record with the
# figures infra/verity/seed.sql computes by hand.
run_broadcast_examples() {
  local port="$1" sandbox_port="$2" out i
  out="$(run_readme_block broadcast-examples "$port" "$sandbox_port")"; echo "$out"
  check "the broadcast event was stored and queued" '[[ "$out" == *"\"queued\":true"* ]]'
  for i in $(seq 1 60); do
    [ "$(sql "SELECT count(*) FROM broadcast_webhook_events WHERE status IN ('done','skipped','failed')")" = 1 ] && break
    sleep 1
  done
  echo "broadcast events: $(sql "SELECT string_agg(event_type || '=' || status || coalesce(' (' || error_message || ')', ''), ', ') FROM broadcast_webhook_events")"
  check "the GHL record has the hand-computed figures" \
    '"$VENV/bin/python" -c "import json,sys,urllib.request; s=json.load(urllib.request.urlopen(\"http://127.0.0.1:$sandbox_port/_sandbox/state\")); r=[x[\"properties\"] for x in s[\"ghl\"][\"records\"]]; want={\"broadcast_id\":\"bc-demo-0001\",\"broadcast_name\":\"November open house\",\"recipients\":5,\"sent\":4,\"delivered\":3,\"failed\":1,\"pending\":1,\"responses\":2,\"appointments_set\":1,\"delivery_rate\":0.75,\"failure_rate\":0.25,\"response_rate\":0.6667,\"conversion_rate\":0.5}; sys.exit(not (len(r)==1 and all(r[0].get(k)==v for k,v in want.items())))"'
}

# README "Verity gateway and MCP server": the gateway and MCP over HTTP under cargo
# lambda watch, and the README's stdio client entry started exactly as written.
run_verity_examples() {
  local port="$1" sandbox_port="$2" out
  out="$(run_readme_block verity-examples "$port" "$sandbox_port")"; echo "$out"
  check "the gateway proxies a catalogued request" '[[ "$out" == *"\"success\":true"* && "$out" == *"\"id\":\"b-42\""* ]]'
  check "the gateway refuses an uncatalogued one" '[[ "$out" == *"UNKNOWN_ENDPOINT"* ]]'
  check "MCP initialize over HTTP" '[[ "$out" == *"\"serverInfo\""* ]]'
  check "MCP tools/list lists the catalog's 48 tools a key without ;admin may use" '[[ "$out" == *"48 tools, e.g."* ]]'
  check "MCP tools/call reaches Verity" '[[ "$out" == *"\"structuredContent\":{"*"\"b-42\""* ]]'
  check "the MCP call left an audit row" '[ "$(sql "SELECT count(*) FROM mcp_tool_calls WHERE tool = '"'"'get_comms_broadcasts_by_id_stats'"'"'")" = 1 ]'
  # The refusals and errors, under cargo lambda watch too.
  local mcp_url="http://127.0.0.1:$port/mcp" key="authorization: Bearer $DF_MIDDLEWARE_API_KEY" list='{"jsonrpc":"2.0","id":9,"method":"tools/list"}'
  local hdr=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-06-18')
  out="$(curl -s "${hdr[@]}" -H "$key" -d '{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{"cursor":"40"}}' "$mcp_url")"
  check "MCP: tools/list from a cursor (the last 8 of 48, no nextCursor)" \
    '"$VENV/bin/python" -c "import json,sys; r=json.load(sys.stdin)[\"result\"]; sys.exit(not (len(r[\"tools\"])==8 and \"nextCursor\" not in r))" <<<"$out"'
  check "MCP: a wrong Host is refused with 403" '[ "$(curl -s -o /dev/null -w "%{http_code}" "${hdr[@]}" -H "$key" -H "host: evil.example.com" -d "$list" "$mcp_url")" = 403 ]'
  check "MCP: no key is refused with 401 and WWW-Authenticate naming the RFC 9728 metadata" '[[ "$(curl -s -D - -o /dev/null "${hdr[@]}" -d "$list" "$mcp_url" | tr -d "\r")" == *"401"*"www-authenticate: Bearer"*"resource_metadata=\"http://127.0.0.1:$port/.well-known/oauth-protected-resource/mcp\""* ]]'
  out="$(curl -s "http://127.0.0.1:$port/.well-known/oauth-protected-resource/mcp")"
  check "MCP: the protected-resource metadata names the resource ($out)" '[[ "$out" == *"\"resource\":\"http://127.0.0.1:$port/mcp\""* ]]'
  out="$(curl -s "${hdr[@]}" -H "$key" -d '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"get_comms_broadcasts_by_id_stats","arguments":{"id":7}}}' "$mcp_url")"
  check "MCP: invalid arguments are a tool error the model can correct ($out)" '[[ "$out" == *"\"isError\":true"* && "$out" == *"INVALID_ARGUMENTS"* ]]'
  curl -s -X POST -d '{"provider":"verity","status":500,"count":1}' "http://127.0.0.1:$sandbox_port/_sandbox/faults" >/dev/null
  out="$(curl -s "${hdr[@]}" -H "$key" -d '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"post_comms_broadcasts","arguments":{"body":{"subject":"Hi"}}}}' "$mcp_url")"
  check "MCP: Verity's 500 is a tool error with its status ($out)" '[[ "$out" == *"\"isError\":true"* && "$out" == *"\"status\":500"* ]]'
  cargo build -q -p df-mcp
  readme_examples mcp-config | sed "s#127.0.0.1:7700#127.0.0.1:$sandbox_port#g; s#127.0.0.1:9000#127.0.0.1:$port#g; s#/path/to/df-middleware#$ROOT#g" >"$LOCAL/mcp-config.json"
  # Real clients: the official Python SDK over HTTP and over stdio (started from another
  # directory), and the official conformance suite through a proxy adding the key.
  check "the official MCP Python SDK over HTTP" '"$VENV/bin/python" "$ROOT/scripts/lib/mcp_clients.py" http "$mcp_url" "$DF_MIDDLEWARE_API_KEY" 48'
  check "the documented stdio entry, started outside the checkout, driven by the official MCP Python SDK" '"$VENV/bin/python" "$ROOT/scripts/lib/mcp_clients.py" stdio "$LOCAL/mcp-config.json" verity 48'
  "$VENV/bin/python" "$ROOT/scripts/lib/header_proxy.py" "$((port + 1))" "http://127.0.0.1:$port" "Authorization: Bearer $DF_MIDDLEWARE_API_KEY" &
  STARTED+=("pid:$!")
  wait_port 127.0.0.1 "$((port + 1))" "the header proxy"
  local scenario
  for scenario in server-initialize ping tools-list dns-rebinding-protection; do
    check "MCP conformance suite: $scenario" '"$CONFORMANCE" server --url "http://127.0.0.1:$((port + 1))/mcp" --scenario "$scenario" >"$LOCAL/conformance-$scenario.log" 2>&1 || { tail -20 "$LOCAL/conformance-$scenario.log"; false; }'
  done
  check "client set-up: scripts/mcp-config prints entries that start the server" \
    '"$ROOT/scripts/mcp-config" cursor >"$LOCAL/mcp-cursor.json" && "$ROOT/scripts/mcp-config" vscode >"$LOCAL/mcp-vscode.json" && DF_MCP_URL="$mcp_url" "$ROOT/scripts/mcp-config" claude-desktop >"$LOCAL/mcp-claude-desktop.json" && "$VENV/bin/python" "$ROOT/scripts/lib/mcp_clients.py" stdio "$LOCAL/mcp-claude-desktop.json" verity 48'
  check "the documented Claude Desktop entry for the HTTP server: df-mcp's stdio bridge, driven by the official SDK" \
    '"$VENV/bin/python" "$ROOT/scripts/lib/mcp_clients.py" stdio "$LOCAL/mcp-config.json" verity-http 48 && "$VENV/bin/python" "$ROOT/scripts/lib/mcp_clients.py" stdio "$LOCAL/mcp-claude-desktop.json" verity-http 48'
  check "Claude Code: the printed \`claude mcp add\` commands, then \`claude mcp list\` connects to both" 'claude_code_setup "$mcp_url"'
}

# Claude Code's own CLI runs scripts/mcp-config's commands as printed, in a home and a
# project directory of its own; `claude mcp list` connects to each server it lists.
claude_code_setup() {
  local home="$LOCAL/claude-home" project="$LOCAL/claude-project" listed
  rm -rf "$home" "$project"; mkdir -p "$home" "$project"
  DF_MCP_URL="$1" "$ROOT/scripts/mcp-config" claude-code >"$LOCAL/claude-code.sh"
  listed="$(cd "$project" && export HOME="$home" PATH="$(dirname "$CLAUDE"):$PATH" DISABLE_TELEMETRY=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 && bash "$LOCAL/claude-code.sh" >/dev/null && timeout 120 claude mcp list 2>&1)"
  echo "$listed"
  grep -q "^verity-http: .*Connected" <<<"$listed" && grep -q "^verity: .*Connected" <<<"$listed"
}

run_ops_examples() {
  local port="$1" sandbox_port="$2" ops i
  ops="$(run_readme_block ops-examples "$port" "$sandbox_port")"; echo "$ops"
  check "stats answer with events, dead letters and budgets" '[[ "$ops" == *"\"rateBudgets\":["* && "$ops" == *"\"deadLetterQueues\""* ]]'
  check "events page masked, with sync log" '[[ "$ops" == *"\"masked\":true"* && "$ops" == *"\"syncLog\":[{"* ]]'
  check "quarantine, mark-done and replay of one event" \
    '[[ "$ops" == *"Event quarantined"* && "$ops" == *"Event marked done"* && "$ops" == *"Event replayed"* ]]'
  check "mapping repaired" '[[ "$ops" == *"\"repaired\":true"* ]]'
  check "two manual sync jobs accepted" '[ "$(grep -o "\"jobId\"" <<<"$ops" | wc -l)" = 2 ]'
  check "agent matched on both sides" '[[ "$ops" == *"\"matchedBothSides\":1"* && "$ops" == *"\"alowareUserId\":\"1\""* ]]'
  check "lists status shows the mapped tag" '[[ "$ops" == *"\"tag\":\"hot lead\""* ]]'
  check "the person view shows Test Merchant's call and text" '[[ "$ops" == *"\"found\":true"* && "$ops" == *"\"ghlCallNotes\":[{"* && "$ops" == *"\"inbox\":\"texting\""* ]]'
  check "a bulk replay dry run, then the run" '[[ "$ops" == *"\"dryRun\":true"* && "$ops" == *"\"bulkId\""* ]]'
  check "three job answers" '[ "$(grep -o "\"totalPending\"" <<<"$ops" | wc -l)" = 3 ]'
  for i in $(seq 1 60); do
    [ "$(sql "SELECT count(*) FROM webhook_events WHERE source = 'admin' AND status IN ('done','skipped','failed')")" = 2 ] && break
    sleep 1
  done
  echo "admin jobs: $(sql "SELECT string_agg(event_type || '=' || status || coalesce(' (' || error_message || ')', ''), ', ') FROM webhook_events WHERE source = 'admin'")"
  check "both manual sync jobs finished through the queue (done, or skipped as already in sync)" '[ "$(sql "SELECT count(*) FROM webhook_events WHERE source = '"'"'admin'"'"' AND status IN ('"'"'done'"'"', '"'"'skipped'"'"')")" = 2 ]'
}
