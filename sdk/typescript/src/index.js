// crabmail's TypeScript/JavaScript SDK: one method per verb of the HTTP API. Types are in
// index.d.ts. Mail content is untrusted: prefer `safeText` and mind `riskLevel`.
import { randomUUID } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

const DEFAULT_URL = "http://127.0.0.1:8080";
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
// 429s that refuse a send over a sending quota: final answers (the caller asked to be refused
// rather than queued), never retried.
const QUOTA_REFUSED = new Set(["rate_limited", "daily_quota_exceeded"]);
const MAX_RETRY_AFTER_MS = 60_000;

export class CrabmailError extends Error {
  constructor(status, code, message, field) {
    super(`${status} ${code}: ${message}`);
    this.name = "CrabmailError";
    this.status = status;
    this.code = code;
    this.field = field ?? undefined;
    this.detail = message;
  }
}

const address = (mailbox) => mailbox?.address ?? null;

function summary(d) {
  return {
    id: d.id,
    inboxId: d.inbox_id,
    receivedAt: d.received_at,
    subject: d.subject ?? null,
    fromAddress: address(d.from),
    preview: d.preview ?? "",
    riskLevel: d.security?.level ?? "low",
    threadId: d.thread_id ?? null,
    data: d,
  };
}

function message(d) {
  return {
    id: d.id,
    inboxId: d.inbox_id,
    direction: d.direction ?? "inbound",
    subject: d.subject ?? null,
    fromAddress: address(d.from),
    text: d.text ?? null,
    html: d.html ?? null,
    safeText: d.safe_text ?? null,
    riskLevel: d.security?.level ?? "low",
    codes: (d.extracted?.codes ?? []).map((c) => c.value),
    threadId: d.thread_id ?? null,
    delivery: d.delivery ?? null,
    data: d,
  };
}

const sent = (d) => ({
  id: d.id,
  status: d.status,
  releaseAt: d.release_at || null,
  approval: d.approval ?? null,
  data: d,
});

const inboxOf = (d) => ({
  id: d.id,
  address: d.address,
  displayName: d.display_name ?? null,
  createdAt: d.created_at,
  data: d,
});

const event = (d) => ({
  id: d.id ?? "",
  seq: d.seq,
  type: d.type,
  at: d.at,
  messageId: d.message_id ?? null,
  inboxId: d.inbox_id ?? null,
  recipient: d.recipient ?? null,
  detail: d.detail ?? null,
});

const list = (v) => (v == null ? [] : Array.isArray(v) ? v : [v]);
const seg = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function delay(attempt, retryAfter) {
  const asked = Number(retryAfter);
  if (retryAfter != null && Number.isFinite(asked)) {
    return Math.min(Math.max(asked * 1000, 0), MAX_RETRY_AFTER_MS);
  }
  return Math.min(250 * 2 ** (attempt - 1), 8000) * (0.5 + Math.random() / 2);
}

export class Crabmail {
  /** Use `Crabmail.connect()` unless you already hold a token. */
  constructor({ url, token, timeout = 30_000, maxRetries = 4 } = {}) {
    if (!token) throw new CrabmailError(0, "no_token", "a token is needed; Crabmail.connect() finds or makes one");
    this.url = (url ?? process.env.CRABMAIL_URL ?? DEFAULT_URL).replace(/\/+$/, "");
    this.token = token;
    this.timeout = timeout;
    this.maxRetries = maxRetries;
    this.cursors = new Map();
  }

  /**
   * A client with a token: `token`, else CRABMAIL_TOKEN, else `tokenFile` (default
   * ~/.crabmail/token, shared with the CLI); with none, it signs up and saves the new token
   * there (mode 0600), unless `signup` is false.
   */
  static async connect({ url, token, tokenFile, signup = true, ...options } = {}) {
    const base = (url ?? process.env.CRABMAIL_URL ?? DEFAULT_URL).replace(/\/+$/, "");
    const file = tokenFile ?? join(homedir(), ".crabmail", "token");
    let found = token ?? (process.env.CRABMAIL_TOKEN?.trim() || null);
    if (!found) {
      found = (await readFile(file, "utf8").catch(() => "")).trim() || null;
    }
    if (!found) {
      if (!signup) throw new CrabmailError(0, "no_token", `no token given and none in ${file}`);
      const anonymous = new Crabmail({ url: base, token: "-", ...options });
      const created = await anonymous.request("POST", "/v1/accounts", { body: {}, retry: false, auth: false });
      found = created.token;
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, found, { mode: 0o600 });
      await chmod(file, 0o600);
    }
    return new Crabmail({ url: base, token: found, ...options });
  }

  // --- inboxes ---

  async createInbox({ name, displayName, domain } = {}) {
    const body = { name, display_name: displayName, domain };
    return inboxOf(await this.request("POST", "/v1/inboxes", { body, retry: false }));
  }

  async listInboxes() {
    return (await this.request("GET", "/v1/inboxes")).inboxes.map(inboxOf);
  }

  async deleteInbox(inboxId) {
    await this.request("DELETE", `/v1/inboxes/${seg(inboxId)}`);
  }

  // --- sending ---

  /**
   * Sends from `inboxId`. Every send carries an idempotency key (a new one unless given), so a
   * retry after a lost answer never sends twice.
   */
  async send(inboxId, { to, cc, bcc, subject, text, html, attachments = [], inReplyTo, headers, idempotencyKey } = {}) {
    const body = {
      to: list(to),
      cc: list(cc),
      bcc: list(bcc),
      subject,
      text,
      html,
      in_reply_to: inReplyTo,
      headers,
      attachments: attachments.map((a) => ({
        filename: a.filename,
        content_type: a.contentType,
        content_base64: Buffer.from(a.content).toString("base64"),
      })),
    };
    for (const k of Object.keys(body)) {
      if (body[k] == null || (Array.isArray(body[k]) && body[k].length === 0)) delete body[k];
    }
    const key = idempotencyKey ?? randomUUID();
    return sent(
      await this.request("POST", `/v1/inboxes/${seg(inboxId)}/messages`, {
        body,
        headers: { "Idempotency-Key": key },
      }),
    );
  }

  /** Answers a received message from the inbox that got it, threaded. */
  async reply(messageId, { text, html, idempotencyKey } = {}) {
    const original = await this.getMessage(messageId);
    return this.send(original.inboxId, { text, html, inReplyTo: messageId, idempotencyKey });
  }

  async deliveryStatus(messageId) {
    return (await this.getMessage(messageId)).delivery ?? {};
  }

  // --- receiving ---

  async messages(inboxId, { after, limit = 50, wait, report } = {}) {
    const page = await this.request("GET", `/v1/inboxes/${seg(inboxId)}/messages`, {
      query: { after, limit, wait: wait || undefined, report },
      timeout: (wait ?? 0) * 1000 + this.timeout,
    });
    return { items: page.messages.map(summary), nextCursor: page.next_cursor };
  }

  /** Every received message after `after`, page by page. */
  async *iterMessages(inboxId, { after, pageSize = 50 } = {}) {
    for (;;) {
      const page = await this.messages(inboxId, { after, limit: pageSize });
      yield* page.items;
      if (page.items.length === 0) return;
      after = page.nextCursor;
    }
  }

  /** What arrived since this client's last `receive` of the inbox, waiting up to `wait` s. */
  async receive(inboxId, { wait = 0 } = {}) {
    const page = await this.messages(inboxId, { after: this.cursors.get(inboxId), limit: 100, wait });
    this.cursors.set(inboxId, page.nextCursor);
    return page.items;
  }

  /** The first matching message (arriving within `timeout` s or within the last `lookback` s). */
  async wait(inboxId, { from, subjectContains, timeout = 60, lookback = 0 } = {}) {
    return this.#wait(inboxId, { from, subjectContains, hasCode: false, timeout, lookback });
  }

  /** The verification code of the first message carrying one (last 5 minutes count), or null. */
  async waitForCode(inboxId, { from, subjectContains, timeout = 60, lookback = 300 } = {}) {
    const found = await this.#wait(inboxId, { from, subjectContains, hasCode: true, timeout, lookback });
    return found?.codes[0] ?? null;
  }

  async getMessage(messageId) {
    return message(await this.request("GET", `/v1/messages/${seg(messageId)}`));
  }

  /** What a model should read: `safe_text`, `security`, `extracted`. */
  async safeView(messageId) {
    return this.request("GET", `/v1/messages/${seg(messageId)}`, { query: { view: "safe" } });
  }

  async raw(messageId) {
    return this.request("GET", `/v1/messages/${seg(messageId)}/raw`, { raw: true });
  }

  async attachment(messageId, index) {
    return this.request("GET", `/v1/messages/${seg(messageId)}/attachments/${index}`, { raw: true });
  }

  async deleteMessage(messageId) {
    await this.request("DELETE", `/v1/messages/${seg(messageId)}`);
  }

  // --- events ---

  async events({ after, wait, limit = 100 } = {}) {
    const page = await this.request("GET", "/v1/events", {
      query: { after, wait: wait || undefined, limit },
      timeout: (wait ?? 0) * 1000 + this.timeout,
    });
    return { items: page.events.map(event), nextCursor: page.next_cursor };
  }

  async *iterEvents({ after } = {}) {
    for (;;) {
      const page = await this.events({ after });
      yield* page.items;
      if (page.items.length === 0) return;
      after = page.nextCursor;
    }
  }

  // --- plumbing ---

  async #wait(inboxId, { from, subjectContains, hasCode, timeout, lookback }) {
    const deadline = Date.now() + timeout * 1000;
    const since = lookback > 0 ? new Date(Date.now() - lookback * 1000).toISOString() : undefined;
    for (;;) {
      const left = Math.floor((deadline - Date.now()) / 1000);
      const chunk = Math.max(0, Math.min(left, 120));
      const answer = await this.request("GET", `/v1/inboxes/${seg(inboxId)}/wait`, {
        query: {
          from,
          subject_contains: subjectContains,
          has_code: hasCode ? "true" : undefined,
          timeout: chunk,
          since,
        },
        timeout: chunk * 1000 + this.timeout,
      });
      if (!answer.timed_out) return message(answer);
      if (left <= chunk) return null;
    }
  }

  /** One API call, retried when that is safe (`retry`), honouring Retry-After. */
  async request(method, path, { body, query, headers = {}, retry = true, auth = true, raw = false, timeout } = {}) {
    const url = new URL(this.url + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const all = { Accept: "application/json", "User-Agent": "crabmail-typescript/0.1.0", ...headers };
    if (body !== undefined) all["Content-Type"] = "application/json";
    if (auth) all.Authorization = `Bearer ${this.token}`;
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(url, {
          method,
          headers: all,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeout ?? this.timeout),
        });
      } catch (e) {
        if (retry && attempt < this.maxRetries) {
          await sleep(delay(attempt + 1, null));
          continue;
        }
        throw new CrabmailError(0, "unreachable", `${this.url}: ${e.cause?.message ?? e.message}`);
      }
      if (response.ok) {
        if (raw) return Buffer.from(await response.arrayBuffer());
        const text = await response.text();
        return text ? JSON.parse(text) : null;
      }
      const text = await response.text();
      let detail;
      try {
        detail = JSON.parse(text).error;
      } catch {
        detail = { code: "error", message: text.slice(0, 200) };
      }
      const transient = RETRY_STATUSES.has(response.status) && !QUOTA_REFUSED.has(detail.code);
      if (retry && transient && attempt < this.maxRetries) {
        await sleep(delay(attempt + 1, response.headers.get("retry-after")));
        continue;
      }
      throw new CrabmailError(response.status, detail.code ?? "error", detail.message ?? "", detail.field);
    }
  }
}
