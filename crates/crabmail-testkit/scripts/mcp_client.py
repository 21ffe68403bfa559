#!/usr/bin/env python3
"""An agent on the official MCP Python SDK (PyPI `mcp`) using crabmail's tools.

stdio CRABMAIL_BINARY API_URL HOME: starts `crabmail mcp --server API_URL` with HOME as its home
(so it signs up and keeps its token there) and talks to it over stdio.
http MCP_URL TOKEN: talks to the server's /mcp endpoint over Streamable HTTP with the token.

Either way it lists the tools, creates an inbox, sends to it twice with the same idempotency key,
waits for the message, reads it, asks for a message that does not exist, and prints a JSON report.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


async def scenario(session):
    await session.initialize()
    tools = (await session.list_tools()).tools
    report = {
        "tools": {
            t.name: {
                "read_only": t.annotations.readOnlyHint if t.annotations else None,
                "destructive": t.annotations.destructiveHint if t.annotations else None,
                "idempotent": t.annotations.idempotentHint if t.annotations else None,
                "has_output_schema": t.outputSchema is not None,
                "description": t.description,
            }
            for t in tools
        }
    }

    async def call(name, args):
        result = await session.call_tool(name, args)
        return result.isError, result.structuredContent, [c.text for c in result.content if c.type == "text"]

    _, created, _ = await call("create_inbox", {"name": "mcp-agent"})
    inbox = created["inbox"]
    note = {
        "inbox_id": inbox["id"],
        "to": [inbox["address"]],
        "subject": "hello over mcp",
        "text": "ping from the python sdk",
        "idempotency_key": "send-once-" + inbox["id"],
    }
    first_error, first, first_text = await call("send_message", note)
    if first_error:
        raise SystemExit(f"send_message failed: {first_text}")
    _, again, _ = await call("send_message", note)
    _, waited, _ = await call(
        "wait_for_message",
        {"inbox_id": inbox["id"], "subject_contains": "hello over mcp", "timeout_seconds": 30},
    )
    message_id = waited["message"]["id"] if waited.get("found") else None
    _, read, _ = await call("get_message", {"message_id": message_id}) if message_id else (None, None, None)
    _, listed, _ = await call("list_messages", {"inbox_id": inbox["id"]})
    _, status, _ = await call("get_delivery_status", {"message_id": first["message_id"]})
    missing_error, _, missing_text = await call("get_message", {"message_id": "msg_" + "0" * 32})
    report.update(
        {
            "inbox": inbox,
            "first_send": first,
            "second_send": again,
            "waited": waited,
            "read": read,
            "listed": len(listed["messages"]),
            "delivery": status,
            "missing": {"is_error": missing_error, "text": missing_text},
        }
    )
    return report


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        binary, api, home = sys.argv[2:5]
        env = dict(os.environ, HOME=home, CRABMAIL_TOKEN="")
        params = StdioServerParameters(command=binary, args=["mcp", "--server", api], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                report = await scenario(session)
    else:
        url, token = sys.argv[2:4]
        headers = {"Authorization": f"Bearer {token}"}
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                report = await scenario(session)
    print(json.dumps(report))


asyncio.run(main())
