"""Webhook in → GHL write out, locally: post N Aloware call dispositions (new calls) one
at a time and time each until its note appears in the sandbox. Prints p50 and max."""
import base64
import json
import sys
import time
import urllib.request

webhook_url, sandbox_url, user, password = sys.argv[1:5]
n = int(sys.argv[5]) if len(sys.argv) > 5 else 10
auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def notes():
    with urllib.request.urlopen(f"{sandbox_url}/_sandbox/state") as r:
        state = json.load(r)
    return sum(len(v) for v in state["ghl"]["notes"].values())


latencies = []
for i in range(n):
    before = notes()
    body = {"event": "OutboundPhoneCall-DispositionCompleted", "body": {"id": 7700000 + i + int(time.time()) % 100000 * 100,
            "type": 1, "direction": 2, "disposition_status2": 4, "call_disposition": "Interested", "contact_id": "155091981",
            "lead_number": "+12025550177", "created_at": "2026-08-05 21:00:00"}}
    req = urllib.request.Request(webhook_url, data=json.dumps(body).encode(), headers={"authorization": auth, "content-type": "application/json"})
    start = time.monotonic()
    urllib.request.urlopen(req).read()
    while notes() == before:
        if time.monotonic() - start > 30:
            sys.exit("a note did not appear within 30 s")
        time.sleep(0.01)
    latencies.append((time.monotonic() - start) * 1000)
latencies.sort()
print(f"webhook in -> GHL note out, {n} calls: p50 {latencies[n // 2]:.0f} ms, max {latencies[-1]:.0f} ms")
