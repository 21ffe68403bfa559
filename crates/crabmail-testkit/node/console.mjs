// Drives crabmail's operator console in headless Chromium (Debian's `chromium`, through
// puppeteer-core): signs in with the operator token, finds the queued message, filters, retries
// it, and checks what the page says. Screenshots go to SHOTS.
//
//   node console.mjs URL TOKEN MESSAGE_ID SHOTS_DIR
// Prints one JSON line with what it saw; exits non-zero on any failure.
import puppeteer from "puppeteer-core";
import { mkdirSync } from "node:fs";

const [url, token, messageId, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
});
const seen = {};
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.setDefaultTimeout(30000);
  await page.goto(`${url}/console`);

  // A wrong token is refused, and the page says so.
  await page.type("#token", "cm_not-the-operator");
  await page.click("#sign-in");
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"));
  seen.wrong_token = await page.$eval("#status", (e) => e.textContent);

  await page.$eval("#token", (e) => (e.value = ""));
  await page.type("#token", token);
  await page.click("#sign-in");
  const row = `tr[data-message="${messageId}"]`;
  await page.waitForSelector(row);
  seen.row = await page.$eval(row, (e) => e.innerText);
  for (const id of ["deliveries", "levels", "risk", "suppressions", "accounts", "domains"]) {
    seen[id] = await page.$eval(`#${id}`, (e) => e.innerText);
  }
  await page.screenshot({ path: `${shots}/1-queue.png`, fullPage: true });

  // The filter hides what does not match and shows it again.
  await page.type("#filter", "no-such-thing-anywhere");
  seen.hidden_by_filter = await page.$eval(row, (e) => e.hidden);
  await page.$eval("#filter", (e) => { e.value = ""; e.dispatchEvent(new Event("input")); });

  await page.click(`${row} button.retry`);
  await page.waitForFunction(
    (id) => document.querySelector("#status").textContent.startsWith(`retried ${id}`),
    {},
    messageId,
  );
  seen.after_retry = await page.$eval("#status", (e) => e.textContent);
  await page.screenshot({ path: `${shots}/2-retried.png`, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
