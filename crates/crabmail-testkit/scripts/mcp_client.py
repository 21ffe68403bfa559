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


def upload(mcp_url, token, data, filename):
    """POST /v1/uploads beside the /mcp endpoint: the bytes an attachment refers to by id."""
    import urllib.request

    base = mcp_url.rsplit("/mcp", 1)[0]
    request = urllib.request.Request(
        f"{base}/v1/uploads?filename={filename}&size={len(data)}",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["id"]


async def scenario(session, http=None):
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
    attached = None
    if http:
        # Over HTTP an attachment goes by upload id, never base64 inside the call.
        upload_id = upload(*http, b"a,b\n1,2\n", "report.csv")
        with_file = dict(note, subject="with a file", idempotency_key="file-" + inbox["id"],
                         attachments=[{"upload_id": upload_id}])
        error, _, text = await call("send_message", with_file)
        if error:
            raise SystemExit(f"send_message with an upload failed: {text}")
        _, got, _ = await call("wait_for_message", {"inbox_id": inbox["id"], "subject_contains": "with a file", "timeout_seconds": 30})
        _, full, _ = await call("get_message", {"message_id": got["message"]["id"], "view": "full"})
        attached = [a["filename"] for a in full["message"]["attachments"]]
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
            "attached": attached,
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
                report = await scenario(session, http=(url, token))
    print(json.dumps(report))


asyncio.run(main())
