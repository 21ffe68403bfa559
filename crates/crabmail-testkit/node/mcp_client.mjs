// An agent on the official MCP TypeScript SDK (npm @modelcontextprotocol/sdk) using crabmail's
// tools, over stdio (`crabmail mcp`, with HOME as its home) or Streamable HTTP (/mcp with a
// token). Lists the tools, creates an inbox, sends to it twice with one idempotency key, waits
// for the message, reads it, asks for one that does not exist; prints a JSON report.
// Usage: node mcp_client.mjs stdio CRABMAIL_BINARY API_URL HOME
//        node mcp_client.mjs http MCP_URL TOKEN
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, ...args] = process.argv.slice(2);
let transport;
if (mode === "stdio") {
  const [binary, api, home] = args;
  transport = new StdioClientTransport({
    command: binary,
    args: ["mcp", "--server", api],
    env: { ...process.env, HOME: home, CRABMAIL_TOKEN: "" },
    stderr: "inherit",
  });
} else {
  const [url, token] = args;
  transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
}
const client = new Client({ name: "crabmail-test-agent", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();
const report = { tools: {} };
for (const t of tools) {
  report.tools[t.name] = {
    read_only: t.annotations?.readOnlyHint ?? null,
    destructive: t.annotations?.destructiveHint ?? null,
    idempotent: t.annotations?.idempotentHint ?? null,
    has_output_schema: t.outputSchema !== undefined,
    description: t.description,
  };
}
const call = async (name, a) => {
  const r = await client.callTool({ name, arguments: a });
  return { isError: r.isError ?? false, data: r.structuredContent, text: r.content.map((c) => c.text) };
};
const inbox = (await call("create_inbox", { name: "mcp-agent" })).data.inbox;
const note = {
  inbox_id: inbox.id,
  to: [inbox.address],
  subject: "hello over mcp",
  text: "ping from the typescript sdk",
  idempotency_key: `send-once-${inbox.id}`,
};
const first = await call("send_message", note);
if (first.isError) throw new Error(`send_message failed: ${first.text}`);
const again = await call("send_message", note);
const waited = (await call("wait_for_message", {
  inbox_id: inbox.id,
  subject_contains: "hello over mcp",
  timeout_seconds: 30,
})).data;
const read = waited.found ? (await call("get_message", { message_id: waited.message.id })).data : null;
const listed = (await call("list_messages", { inbox_id: inbox.id })).data.messages.length;
const delivery = (await call("get_delivery_status", { message_id: first.data.message_id })).data;
const missing = await call("get_message", { message_id: "msg_" + "0".repeat(32) });
Object.assign(report, {
  inbox,
  first_send: first.data,
  second_send: again.data,
  waited,
  read,
  listed,
  delivery,
  missing: { is_error: missing.isError, text: missing.text },
});
console.log(JSON.stringify(report));
await client.close();
