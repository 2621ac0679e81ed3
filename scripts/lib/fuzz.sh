# Schemathesis (PyPI, pinned in common.sh's ensure_venv) against the running local stack:
# every operation of docs/openapi.yaml, a fixed seed, bounded examples, the secrets of
# scripts/lib/schemathesis.toml. Fails on any 5xx, a status code the document does not
# list for the route, or an answer (body, content type, headers) that does not match it.
# `unsupported_method` is not run: a method a route does not declare never reaches our
# code (API Gateway answers it with its own 404), and the positive / negative data
# checks are not gates (see docs/operations.md, "The contract").
SCHEMATHESIS_SEED="${SCHEMATHESIS_SEED:-20261203}"
SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-25}"

run_schemathesis() {
  local base="$1" dir="$LOCAL/schemathesis"
  mkdir -p "$dir"
  ( cd "$dir" && "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/lib/schemathesis.toml" run \
      "$ROOT/docs/openapi.yaml" --url "$base" --seed "$SCHEMATHESIS_SEED" \
      --max-examples "$SCHEMATHESIS_EXAMPLES" --phases examples,coverage,fuzzing \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
      --workers 2 --request-timeout 30 --generation-database none --no-color \
      --report junit --report-dir "$dir" ) >"$dir/run.log" 2>&1
  local rc=$?
  grep -E "^Test cases:|generated|passed|failures" "$dir/run.log" | tail -3
  [ "$rc" = 0 ] || { sed -n '/FAILURES/,/SUMMARY/p' "$dir/run.log" | head -80; return 1; }
}
