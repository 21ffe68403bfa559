// Compiled (never run) by the SDK test with `tsc --noEmit --strict`: the declarations describe
// what the examples in the README do.
import { Crabmail, CrabmailError, type Message, type Sent } from "crabmail";

async function example(): Promise<void> {
  const mail: Crabmail = await Crabmail.connect({ url: "http://127.0.0.1:8080" });
  const inbox = await mail.createInbox({ name: "signup-bot" });
  const sent: Sent = await mail.send(inbox.id, {
    to: ["bob@example.com"],
    subject: "Hi",
    text: "Hello",
    attachments: [{ filename: "a.txt", content: "x", contentType: "text/plain" }],
    idempotencyKey: "k-1",
  });
  const code: string | null = await mail.waitForCode(inbox.id, { from: "github.com", timeout: 120 });
  const found: Message | null = await mail.wait(inbox.id, { subjectContains: "Hi" });
  for (const m of await mail.receive(inbox.id, { wait: 30 })) {
    const level: "low" | "medium" | "high" = m.riskLevel;
    console.log(m.subject, level, sent.status, code, found?.safeText);
  }
  for await (const e of mail.iterEvents()) console.log(e.id, e.seq, e.type);
  try {
    await mail.getMessage("msg_x");
  } catch (e) {
    if (e instanceof CrabmailError) console.log(e.status, e.code, e.field, e.detail);
  }
}
void example;
