"""Call every route of docs/openapi.yaml on the running local stack and validate each
real answer (status and JSON body) against the document. Fails when an answer does not
match, when a status is not documented for its route, or when a documented operation
was never called. Usage: openapi_check.py <base url>; secrets come from the environment
as scripts/dev sets them."""
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_spec():
    with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
        return yaml.safe_load(f)


def call(base, method, path, headers=None, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    base = sys.argv[1].rstrip("/")
    spec = load_spec()
    admin = {"x-df-admin-secret": os.environ["DF_ADMIN_SECRET"]}
    jobs = {"x-df-jobs-secret": os.environ["X_DF_JOBS_SECRET"]}
    basic = base64.b64encode(
        f"{os.environ['ALOWARE_WEBHOOK_BASIC_USER']}:{os.environ['ALOWARE_WEBHOOK_BASIC_PASS']}".encode()
    ).decode()
    aloware = {"authorization": f"Basic {basic}"}
    workflow = {"x-df-workflow-secret": os.environ["GHL_WORKFLOW_WEBHOOK_SECRET"]}
    texting = {"x-texting-secret": os.environ["TEXTING_WEBHOOK_SECRET"]}
    gateway = {"authorization": f"Bearer {os.environ['DF_MIDDLEWARE_API_KEY']}"}
    mcp_headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    broadcast_body = json.dumps({"broadcastId": f"spec-{uuid.uuid4().hex[:8]}", "eventType": "analytics_updated"}).encode()
    broadcast = {"x-broadcast-signature": hmac.new(os.environ["VERITY_WEBHOOK_SECRET"].encode(), broadcast_body, hashlib.sha256).hexdigest()}
    wrong = {"x-df-admin-secret": "wrong"}

    # A finished event: quarantine, mark-done and replay never race its consumer.
    status, raw = call(base, "GET", "/api/admin/events?limit=1&status=done", admin)
    events = json.loads(raw).get("events") or []
    event_id = events[0]["id"] if events else str(uuid.uuid4())
    unknown = str(uuid.uuid4())
    uid = uuid.uuid4().hex[:8]

    # (operation path, method, request path, headers, body, expected status)
    cases = [
        ("/api/health", "get", "/api/health", {}, None, 200),
        ("/api/webhooks/aloware", "post", "/api/webhooks/aloware", aloware,
         {"event": "Contact-Updated", "body": {"id": f"9{int(uid, 16) % 10**8}", "first_name": "Spec", "phone_number": "+12025550188"}}, 200),
        ("/api/webhooks/aloware", "post", "/api/webhooks/aloware", {}, {"event": "x"}, 401),
        ("/api/webhooks/aloware", "post", "/api/webhooks/aloware", aloware, b"{not json", 400),
        ("/api/webhooks/ghl", "post", "/api/webhooks/ghl", workflow,
         {"contact_id": f"spec{uid}", "first_name": "Spec", "phone": "+12025550189", "location": {"id": os.environ.get("GHL_LOCATION_ID", "sandbox-location")}, "customData": {"event": "ContactUpdate"}}, 200),
        ("/api/webhooks/ghl", "post", "/api/webhooks/ghl", {}, {"type": "ContactCreate"}, 401),
        ("/api/webhooks/texting", "post", "/api/webhooks/texting", texting,
         {"type": "message.received", "data": {"id": f"spec-{uid}", "from": "+12025550190", "to": "+12025550142", "body": "hi", "createdAt": "2026-11-22T10:00:00Z"}}, 200),
        ("/api/webhooks/texting", "post", "/api/webhooks/texting", {"x-texting-secret": "no"}, {"type": "x"}, 401),
        ("/api/webhooks/broadcast", "post", "/api/webhooks/broadcast", broadcast, broadcast_body, 200),
        ("/api/webhooks/broadcast", "post", "/api/webhooks/broadcast", {"x-broadcast-signature": "0" * 64}, broadcast_body, 401),
        ("/api/webhooks/broadcast", "post", "/api/webhooks/broadcast", {"x-df-broadcast-secret": os.environ["VERITY_WEBHOOK_SECRET"]}, {"broadcastId": "x"}, 400),
        ("/api/verity", "get", "/api/verity", gateway, None, 200),
        ("/api/verity", "get", "/api/verity", {}, None, 401),
        ("/api/verity", "post", "/api/verity", gateway, {"endpoint": "/api/users/me", "method": "GET"}, 200),
        ("/api/verity", "post", "/api/verity", gateway, {"endpoint": "/apicomms/contacts", "method": "POST", "body": {"firstName": "Spec"}}, 201),
        ("/api/verity", "post", "/api/verity", gateway, {"endpoint": "/api/nope", "method": "GET"}, 404),
        ("/api/verity", "post", "/api/verity", gateway, {"method": "GET"}, 400),
        ("/api/verity", "post", "/api/verity", {"authorization": "Bearer wrong"}, {"endpoint": "/api/users/me", "method": "GET"}, 401),
        ("/mcp", "post", "/mcp", {**gateway, **mcp_headers}, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "spec", "version": "1"}}}, 200),
        ("/mcp", "post", "/mcp", mcp_headers, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, 401),
        ("/mcp", "post", "/mcp", {**gateway, **mcp_headers}, b"{not json", 400),
        ("/mcp", "post", "/mcp", {**gateway, "mcp-protocol-version": "2025-06-18"}, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, 406),
        ("/mcp", "get", "/mcp", {**gateway, **mcp_headers}, None, 405),
        ("/mcp", "delete", "/mcp", {**gateway, **mcp_headers}, None, 405),
        ("/.well-known/oauth-protected-resource/mcp", "get", "/.well-known/oauth-protected-resource/mcp", {}, None, 200),
        ("/.well-known/oauth-protected-resource/mcp", "get", "/.well-known/oauth-protected-resource/mcp", {"host": "evil.example.com"}, None, 403),
        ("/.well-known/oauth-protected-resource", "get", "/.well-known/oauth-protected-resource", {}, None, 200),
        ("/api/jobs/enqueue-pending", "post", "/api/jobs/enqueue-pending", jobs, None, 200),
        ("/api/jobs/enqueue-pending", "post", "/api/jobs/enqueue-pending", {}, None, 401),
        ("/api/jobs/enqueue-texting-pending", "post", "/api/jobs/enqueue-texting-pending", jobs, None, 200),
        ("/api/jobs/run-once", "post", "/api/jobs/run-once", jobs, None, 200),
        ("/api/jobs/run-once", "post", "/api/jobs/run-once", {"x-df-jobs-secret": "no"}, None, 401),
        ("/api/admin/events", "get", "/api/admin/events?limit=2", admin, None, 200),
        ("/api/admin/events", "get", "/api/admin/events?limit=1&includeBody=true", admin, None, 200),
        ("/api/admin/events", "get", "/api/admin/events?limit=500", admin, None, 400),
        ("/api/admin/events", "get", "/api/admin/events?inbox=broadcast&limit=2", admin, None, 200),
        ("/api/admin/events", "get", "/api/admin/events?inbox=nope", admin, None, 400),
        ("/api/admin/events", "get", "/api/admin/events", wrong, None, 401),
        ("/api/admin/texting/events", "get", "/api/admin/texting/events?limit=2", admin, None, 200),
        ("/api/admin/texting/events", "get", "/api/admin/texting/events", wrong, None, 401),
        ("/api/admin/events/{id}/quarantine", "post", f"/api/admin/events/{event_id}/quarantine", admin, {"reason": "openapi check"}, 200),
        ("/api/admin/events/{id}/quarantine", "post", f"/api/admin/events/{event_id}/quarantine", admin, {}, 400),
        ("/api/admin/events/{id}/mark-done", "post", f"/api/admin/events/{event_id}/mark-done", admin, None, 200),
        ("/api/admin/events/{id}/mark-done", "post", f"/api/admin/events/{unknown}/mark-done", admin, None, 404),
        ("/api/admin/events/{id}/replay", "post", f"/api/admin/events/{event_id}/replay", admin, None, 200),
        ("/api/admin/events/{id}/replay", "post", "/api/admin/events/not-a-uuid/replay", admin, None, 400),
        ("/api/admin/events/{id}/replay", "post", f"/api/admin/events/{unknown}/replay", wrong, None, 401),
        ("/api/admin/mappings/repair", "post", "/api/admin/mappings/repair?phone=%2B12025550177", admin, None, 200),
        ("/api/admin/mappings/repair", "post", "/api/admin/mappings/repair", admin, None, 400),
        ("/api/admin/mappings/repair", "post", "/api/admin/mappings/repair?phone=%2B12025550000", admin, None, 404),
        ("/api/admin/stats", "get", "/api/admin/stats", admin, None, 200),
        ("/api/admin/stats", "get", "/api/admin/stats", wrong, None, 401),
        ("/api/admin/agents", "get", "/api/admin/agents", admin, None, 200),
        ("/api/admin/agents", "post", "/api/admin/agents", admin, {"agents": [{"email": "agent@example.com"}]}, 200),
        ("/api/admin/agents", "post", "/api/admin/agents", admin, {"agents": "x"}, 400),
        ("/api/admin/lists/status", "get", "/api/admin/lists/status", admin, None, 200),
        ("/api/admin/lists/status", "get", "/api/admin/lists/status", wrong, None, 401),
        ("/api/admin/optouts", "get", "/api/admin/optouts?phone=%2B16195550111", admin, None, 200),
        ("/api/admin/optouts", "get", "/api/admin/optouts", admin, None, 400),
        ("/api/admin/optouts/review/{id}", "post", f"/api/admin/optouts/review/{unknown}", admin, {"resolution": "dismiss", "reason": "openapi check"}, 404),
        ("/api/admin/optouts/review/{id}", "post", f"/api/admin/optouts/review/{unknown}", admin, {"resolution": "maybe"}, 400),
        ("/api/admin/optouts/review/{id}", "post", f"/api/admin/optouts/review/{unknown}", wrong, {"resolution": "dismiss", "reason": "x"}, 401),
        ("/api/admin/people", "get", "/api/admin/people?phone=%2B12025550177", admin, None, 200),
        ("/api/admin/people", "get", "/api/admin/people", admin, None, 400),
        ("/api/admin/people", "get", "/api/admin/people?phone=%2B12025550177", wrong, None, 401),
        ("/api/admin/events/replay", "post", "/api/admin/events/replay", admin, {"status": "failed", "dryRun": True}, 200),
        ("/api/admin/events/replay", "post", "/api/admin/events/replay", admin, {"status": "processing"}, 400),
        ("/api/admin/events/replay", "post", "/api/admin/events/replay", wrong, {}, 401),
        ("/api/sync/contacts", "post", "/api/sync/contacts?phone=%2B12025550199", admin, None, 202),
        ("/api/sync/contacts", "post", "/api/sync/contacts", admin, None, 400),
        ("/api/sync/lists", "post", "/api/sync/lists?tagName=hot%20lead", admin, None, 202),
        ("/api/sync/lists", "post", "/api/sync/lists?tagName=not-mapped", admin, None, 404),
        ("/api/sync/lists", "post", "/api/sync/lists", wrong, None, 401),
    ]

    failures = []
    called = set()
    for op_path, method, path, headers, body, expected in cases:
        called.add((op_path, method))
        status, raw = call(base, method.upper(), path, headers, body)
        where = f"{method.upper()} {path} -> {status}"
        if status != expected:
            failures.append(f"{where}: expected {expected}: {raw[:300]!r}")
            continue
        operation = spec["paths"].get(op_path, {}).get(method)
        if operation is None:
            failures.append(f"{where}: {method.upper()} {op_path} is not in docs/openapi.yaml")
            continue
        response = operation["responses"].get(str(status))
        if response is None:
            failures.append(f"{where}: status {status} is not documented")
            continue
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        try:
            answer = json.loads(raw)
        except ValueError:
            failures.append(f"{where}: not JSON: {raw[:200]!r}")
            continue
        if schema is not None:
            root = {"components": spec["components"], "allOf": [schema]}
            errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(answer), key=str)
            if errors:
                failures.append(f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}")
                continue
        print(f"ok: {where}")

    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops if m in ("get", "post", "put", "delete")}
    for missing in sorted(documented - called):
        failures.append(f"{missing[1].upper()} {missing[0]} is documented but was never called")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    print(f"openapi: {len(cases) - len([f for f in failures if ' -> ' in f])} of {len(cases)} answers match docs/openapi.yaml; {len(documented)} operations")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
