# The README's curl examples, verbatim but for the port, against `cargo lambda watch`
# on a fresh database and queues. Sourced by scripts/test (needs common.sh and the
# emulator already started). Prints "N passed, N failed" and fails on any failure.

readme_examples() {
  sed -n '/<!-- examples:start -->/,/<!-- examples:end -->/p' "$ROOT/README.md" | sed '/^```/d; /^<!--/d'
}

run_readme_examples() {
  local port="${DF_SMOKE_PORT:-9055}" db passed=0 failed=0 out script
  db="df_smoke_$(date +%s)_$$"
  export DATABASE_URL="${DF_TEST_DATABASE_URL%/*}/$db"
  cargo run -q --bin migrate -- --create-database >/dev/null
  eval "$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" queues "smoke-$$-")"
  export WEBHOOK_EVENTS_QUEUE_URL TEXTING_EVENTS_QUEUE_URL
  local_webhook_secrets
  start_watch "$port" "$LOCAL/smoke-watch.log"

  script="$LOCAL/readme-examples.sh"
  readme_examples | sed "s#127.0.0.1:9000#127.0.0.1:$port#g" >"$script"
  [ -s "$script" ] || die "README.md has no examples block"

  check() { if eval "$2"; then passed=$((passed+1)); else failed=$((failed+1)); echo "FAILED: $1" >&2; fi; }
  out="$(bash "$script")"; echo "$out"
  check "health is ok" '[[ "$out" == *"\"status\":\"ok\""* ]]'
  check "three webhooks stored and queued" '[ "$(grep -o "\"queued\":true" <<<"$out" | wc -l)" = 3 ]'
  out="$(bash "$script")"
  check "the same examples again are duplicates" '[ "$(grep -o "\"duplicate\":true" <<<"$out" | wc -l)" = 3 ]'
  local rows
  rows="$(psql -X -q -t -A "$DATABASE_URL" -c "SELECT (SELECT count(*) FROM webhook_events WHERE status='pending') + (SELECT count(*) FROM texting_webhook_events WHERE status='pending')")"
  check "three pending rows in Postgres" '[ "$rows" = 3 ]'
  local depths
  depths="$("$VENV/bin/python" "$ROOT/scripts/lib/aws_setup.py" depths | grep "smoke-$$-" | grep -v dlq)"
  check "two messages on webhook-events, one on texting-events" \
    'grep -q "webhook-events.fifo: 2 visible" <<<"$depths" && grep -q "texting-events.fifo: 1 visible" <<<"$depths"'
  echo "smoke: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}
