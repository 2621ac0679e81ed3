# The README's curl examples, verbatim but for the ports, against the local stack that
# scripts/dev runs (cargo lambda watch, the provider sandbox, the queue bridge) on a
# fresh database and queues. Sourced by scripts/test (needs common.sh and the emulator
# already started). Prints "N passed, N failed" and fails on any failure.

readme_examples() {
  sed -n '/<!-- examples:start -->/,/<!-- examples:end -->/p' "$ROOT/README.md" | sed '/^```/d; /^<!--/d'
}

sql() { psql -X -q -t -A "$DATABASE_URL" -c "$1"; }

run_readme_examples() {
  local port="${DF_SMOKE_PORT:-9055}" sandbox_port="${DF_SMOKE_SANDBOX_PORT:-7755}" passed=0 failed=0 out script state i
  export DATABASE_URL="${DF_TEST_DATABASE_URL%/*}/df_smoke_$(date +%s)_$$"
  cargo run -q --bin migrate -- --create-database >/dev/null
  eval "$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" queues "smoke-$$-")"
  export WEBHOOK_EVENTS_QUEUE_URL TEXTING_EVENTS_QUEUE_URL RETRY_BASE_SECONDS=1
  local_webhook_secrets
  (unset GHL_API_KEY ALOWARE_API_TOKEN TEXTING_API_KEY; provider_defaults "$sandbox_port"; env | grep -E '^(GHL|ALOWARE|TEXTING)_(BASE_URL|API_KEY|API_TOKEN|LOCATION_ID)=' >"$LOCAL/smoke-providers.env")
  set -a; source "$LOCAL/smoke-providers.env"; set +a
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
  check "four webhooks stored and queued" '[ "$(grep -o "\"queued\":true" <<<"$out" | wc -l)" = 4 ]'

  # The consumer (through the bridge) applies them to the sandbox.
  for i in $(seq 1 120); do
    state="$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/state")"
    [ "$(sql "SELECT count(*) FROM webhook_events WHERE status IN ('done','skipped','error')")" = 3 ] && break
    sleep 1
  done
  echo "applied within $((SECONDS - t0)) s of the first curl (includes the consumer's first start under cargo lambda watch)"
  echo "events: $(sql "SELECT string_agg(event_type || '=' || status, ', ' ORDER BY received_at) FROM webhook_events")"
  check "the three GHL/Aloware events are done" '[ "$(sql "SELECT count(*) FROM webhook_events WHERE status = '"'"'done'"'"'")" = 3 ]'
  state="$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/state")"
  check "GHL has Test Merchant with one call note" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); c=[c for c in s[\"ghl\"][\"contacts\"] if c.get(\"firstName\")==\"Test\"]; n=[n for ns in s[\"ghl\"][\"notes\"].values() for n in ns]; sys.exit(not (len(c)==1 and \"call: no answer\" in c[0][\"tags\"] and len(n)==1 and \"No Answer\" in n[0][\"body\"]))" <<<"$state"'
  check "Aloware has John Deo" \
    '"$VENV/bin/python" -c "import json,sys; s=json.load(sys.stdin); sys.exit(not any(c.get(\"first_name\")==\"John\" and c[\"phone_number\"]==\"+12025550199\" for c in s[\"aloware\"][\"contacts\"]))" <<<"$state"'

  "$VENV/bin/python" "$ROOT/scripts/lib/latency.py" "http://127.0.0.1:$port/api/webhooks/aloware" \
    "http://127.0.0.1:$sandbox_port" "$ALOWARE_WEBHOOK_BASIC_USER" "$ALOWARE_WEBHOOK_BASIC_PASS" 10 ||
    { failed=$((failed+1)); echo "FAILED: local latency run" >&2; }
  out="$(bash "$script")"
  check "the same examples again are duplicates" '[ "$(grep -o "\"duplicate\":true" <<<"$out" | wc -l)" = 4 ]'
  check "the texting event waits, pending, for its consumer" '[ "$(sql "SELECT count(*) FROM texting_webhook_events WHERE status = '"'"'pending'"'"'")" = 1 ]'
  local depths
  depths="$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" depths | grep "smoke-$$-" | grep -v dlq)"
  check "webhook-events drained, one message on texting-events" \
    'grep -q "webhook-events.fifo: 0 visible, 0 in flight" <<<"$depths" && grep -q "texting-events.fifo: 1 visible" <<<"$depths"'
  local violations
  violations="$(curl -s "http://127.0.0.1:$sandbox_port/_sandbox/violations")"
  check "no request the real providers would refuse (sandbox violations: $violations)" '[ "$violations" = "[]" ]'
  echo "smoke: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}
