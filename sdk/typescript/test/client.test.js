// The SDK against a real crabmail (CRABMAIL_BIN, else the workspace's debug build): signup and
// the token file, send and receive, waits and codes, idempotent sends, pages, typed errors, and
// retries that honour Retry-After.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Crabmail, CrabmailError } from "crabmail";

// The workspace root, for the debug build when CRABMAIL_BIN is not set (running in place).
const repo = fileURLToPath(new URL("../../..", import.meta.url));
const running = [];
after(() => running.forEach((p) => p.kill("SIGKILL")));

async function start(...settings) {
  const dir = await mkdtemp(join(tmpdir(), "crabmail-ts-"));
  const bin = process.env.CRABMAIL_BIN ?? join(repo, "target", "debug", "crabmail");
  const args = ["serve", "--data-dir", join(dir, "data")];
  for (const flag of ["--api-listen", "--mx-listen", "--submission-listen", "--submissions-listen"]) {
    args.push(flag, "127.0.0.1:0");
  }
  for (const s of settings) args.push("--set", s);
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, CRABMAIL_LOG: "info" } });
  running.push(child);
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const found = line.includes("crabmail is serving") && line.match(/api=(\S+)/);
    if (found) {
      lines.on("line", () => {}); // keep draining the log
      return { url: `http://${found[1]}`, dir };
    }
  }
  throw new Error("crabmail exited before serving");
}

const connect = (server, name = "token") => Crabmail.connect({ url: server.url, tokenFile: join(server.dir, name) });

// Waits for `count` messages in the inbox, long-polling (the server answers as mail lands).
async function arrived(mail, inboxId, count) {
  let seen = 0;
  while (seen < count) {
    const got = await mail.receive(inboxId, { wait: 30 });
    assert.ok(got.length > 0, `only ${seen} of ${count} messages arrived within 30 s`);
    seen += got.length;
  }
}

test("signs up once and keeps the token", async () => {
  delete process.env.CRABMAIL_TOKEN;
  const server = await start();
  const first = await connect(server);
  const file = join(server.dir, "token");
  assert.equal((await readFile(file, "utf8")).trim(), first.token);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const inbox = await first.createInbox({ name: "kept" });
  const again = await connect(server);
  assert.equal(again.token, first.token);
  assert.deepEqual((await again.listInboxes()).map((i) => i.id), [inbox.id]);
  await assert.rejects(Crabmail.connect({ url: server.url, tokenFile: join(server.dir, "none"), signup: false }), {
    code: "no_token",
  });
});

test("sends, receives, waits and replies", async () => {
  const server = await start();
  const mail = await connect(server);
  const sender = await mail.createInbox({ name: "sender" });
  const reader = await mail.createInbox({ name: "reader" });
  const sent = await mail.send(sender.id, { to: reader.address, subject: "status report", text: "all green" });
  assert.equal(sent.status, "queued");
  const got = await mail.wait(reader.id, { subjectContains: "status report", timeout: 30, lookback: 60 });
  assert.equal(got.subject, "status report");
  assert.equal(got.fromAddress, sender.address);
  assert.ok(got.safeText.includes("all green"));
  assert.equal(got.riskLevel, "low");
  assert.deepEqual((await mail.receive(reader.id)).map((m) => m.subject), ["status report"]);
  assert.deepEqual(await mail.receive(reader.id), []);
  assert.equal((await mail.deliveryStatus(sent.id)).status, "delivered");
  await mail.reply(got.id, { text: "thanks" });
  const answer = await mail.wait(sender.id, { subjectContains: "Re: status report", timeout: 30, lookback: 60 });
  assert.ok(answer.threadId);
  assert.equal(await mail.wait(reader.id, { subjectContains: "never sent", timeout: 1 }), null);
});

test("waits for a code", async () => {
  const server = await start();
  const mail = await connect(server);
  const inbox = await mail.createInbox({ name: "codes" });
  await mail.send(inbox.id, { to: inbox.address, subject: "Your sign-in code", text: "Your verification code is 482913." });
  assert.equal(await mail.waitForCode(inbox.id, { timeout: 30 }), "482913");
});

test("a retried send is sent once; pages and events", async () => {
  const server = await start();
  const mail = await connect(server);
  const inbox = await mail.createInbox({ name: "once" });
  const note = { to: inbox.address, subject: "once", text: "x", idempotencyKey: "order-7" };
  const first = await mail.send(inbox.id, note);
  const again = await mail.send(inbox.id, note);
  assert.equal(first.id, again.id);
  const other = await mail.send(inbox.id, { to: inbox.address, subject: "once", text: "x" });
  assert.notEqual(other.id, first.id);
  const all = async () => {
    const out = [];
    for await (const m of mail.iterMessages(inbox.id, { pageSize: 1 })) out.push(m);
    return out;
  };
  await arrived(mail, inbox.id, 2);
  assert.equal((await all()).length, 2);
  assert.equal((await mail.messages(inbox.id, { report: "bounce" })).items.length, 0);
  assert.equal((await mail.messages(inbox.id, { report: "none" })).items.length, 2);
  const events = [];
  for await (const e of mail.iterEvents()) events.push(e);
  assert.deepEqual(events.map((e) => e.seq), [...events.map((e) => e.seq)].sort((a, b) => a - b));
  assert.ok(events.some((e) => e.type === "message.received"));
  assert.ok(events.every((e) => e.id.startsWith("evt_")));
});

test("errors are typed", async () => {
  const server = await start();
  const mail = await connect(server);
  const inbox = await mail.createInbox({ name: "errors" });
  await assert.rejects(mail.getMessage("msg_" + "0".repeat(32)), (e) => {
    assert.ok(e instanceof CrabmailError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "not_found");
    return true;
  });
  await assert.rejects(mail.send(inbox.id, { to: "not an address", text: "x" }), (e) => e.status === 422 && !!e.field);
  await assert.rejects(new Crabmail({ url: server.url, token: "tok_wrong" }).listInboxes(), { code: "unauthorized" });
  await assert.rejects(new Crabmail({ url: "http://127.0.0.1:9", token: "tok_x", maxRetries: 1 }).listInboxes(), {
    code: "unreachable",
  });
});

test("retries honour Retry-After", async () => {
  const server = await start("api.rate_limit=1", "api.rate_burst=2");
  const mail = await connect(server);
  const started = Date.now();
  for (let i = 0; i < 5; i++) await mail.listInboxes();
  assert.ok(Date.now() - started >= 2000, "it waited as the server asked");
  const impatient = new Crabmail({ url: server.url, token: mail.token, maxRetries: 0 });
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 5; i++) await impatient.listInboxes();
    })(),
    { status: 429 },
  );
});
