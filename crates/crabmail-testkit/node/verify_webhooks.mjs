// Checks every request a test webhook receiver logged with the Standard Webhooks reference
// library for JavaScript (npm `standardwebhooks`); prints the verified ids as a JSON array and
// exits 1 at the first that fails.
// Usage: node verify_webhooks.mjs SECRET LOG
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const [secret, log] = process.argv.slice(2);
const hook = new Webhook(secret);
const ids = [];
for (const line of readFileSync(log, "utf8").split("\n").filter(Boolean)) {
  const record = JSON.parse(line);
  try {
    hook.verify(record.body, record.headers);
  } catch (e) {
    console.error(`verification failed for request ${record.n}: ${e}`);
    process.exit(1);
  }
  ids.push(record.headers["webhook-id"]);
}
console.log(JSON.stringify(ids));
