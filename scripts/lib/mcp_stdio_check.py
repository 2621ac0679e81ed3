"""Start an MCP stdio server exactly as an MCP client config describes it (command, args,
env, run from the checkout's directory) and speak the protocol to it: initialize, the
initialized notification, tools/list. Exit 0 when it lists the expected number of tools.

usage: mcp_stdio_check.py CONFIG.json SERVER_NAME EXPECTED_TOOLS
"""
import json
import os
import subprocess
import sys


def main():
    config_path, name, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    entry = json.load(open(config_path))["mcpServers"][name]
    env = {"PATH": os.environ.get("PATH", ""), **entry.get("env", {})}
    proc = subprocess.Popen([entry["command"], *entry.get("args", [])], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def send(msg, answer=True):
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline()) if answer else None

    try:
        init = send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "check", "version": "1"}}})
        send({"jsonrpc": "2.0", "method": "notifications/initialized"}, answer=False)
        tools = send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})["result"]["tools"]
        print(f"stdio MCP server {init['result']['serverInfo']['name']}: {len(tools)} tools")
        return 0 if len(tools) == expected else 1
    finally:
        proc.kill()


if __name__ == "__main__":
    sys.exit(main())
