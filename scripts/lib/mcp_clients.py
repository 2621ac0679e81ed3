"""The official MCP Python SDK (PyPI `mcp`) against our servers, as a client a user runs:
over streamable HTTP (`mcp-http` under cargo lambda watch) and over stdio (`df-mcp`,
started from the client config's entry, in a directory other than the checkout).

    mcp_clients.py http <url> <bearer key> <expected tools>
    mcp_clients.py stdio <client config json> <server name> <expected tools>

Checks: initialize, every tool in one tools/list page with the legacy aliases first, a
call that reaches Verity, invalid arguments as an isError result. Exit 0 when all hold;
each failure is printed."""
import asyncio
import json
import sys
import tempfile

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

ALIASES = {"calls_agents_test", "calls_agents_create", "calls_agents_get", "comms_contacts_create",
           "comms_contacts_get", "comms_contacts_patch", "sms_sms_create", "conversations_messages_create"}


async def exercise(session: ClientSession, expected: int) -> list[str]:
    problems = []
    init = await session.initialize()
    if not init.server_info.name:
        problems.append("initialize: no server name")
    listed = await session.list_tools()
    names = [t.name for t in listed.tools]
    if len(names) != expected:
        problems.append(f"tools/list: {len(names)} tools, expected {expected}")
    if listed.next_cursor:
        problems.append("tools/list: more than one page")
    first = set(names[: len(ALIASES)])
    if first != ALIASES:
        problems.append(f"tools/list: the aliases are not first ({names[:len(ALIASES)]})")
    if any(len(n) > 48 for n in names):
        problems.append("tools/list: a name over 48 characters")
    ok = await session.call_tool("get_comms_broadcasts_by_id_stats", {"id": "b-42"})
    if ok.is_error or not (ok.structured_content or {}):
        problems.append(f"tools/call: {ok}")
    bad = await session.call_tool("get_comms_broadcasts_by_id_stats", {"id": 7})
    if not bad.is_error:
        problems.append(f"invalid arguments are not an isError result: {bad}")
    print(f"{len(names)} tools, first {names[0]}; a call reached Verity; invalid arguments came back as a tool error")
    return problems


async def over_http(url: str, key: str, expected: int) -> list[str]:
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with client, streamable_http_client(url, http_client=client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            return await exercise(session, expected)


async def over_stdio(config_path: str, name: str, expected: int) -> list[str]:
    entry = json.load(open(config_path))["mcpServers"][name]
    params = StdioServerParameters(command=entry["command"], args=entry.get("args", []),
                                   env=entry.get("env"), cwd=tempfile.gettempdir())
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await exercise(session, expected)


def main() -> int:
    mode = sys.argv[1]
    if mode == "http":
        problems = asyncio.run(over_http(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        problems = asyncio.run(over_stdio(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    for p in problems:
        print("FAILED:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
