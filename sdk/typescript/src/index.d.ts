// Types of crabmail's TypeScript SDK. Every record keeps the API's whole JSON in `data`.

export declare class CrabmailError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  /** Stable, machine-readable: not_found, invalid_request, rate_limited, unreachable, ... */
  readonly code: string;
  /** The request field at fault, for validation errors. */
  readonly field?: string;
  /** The server's message. */
  readonly detail: string;
}

export interface ClientOptions {
  url?: string;
  token?: string;
  /** Milliseconds per request (waits get their own time on top). Default 30000. */
  timeout?: number;
  /** Retries of safe requests on network errors, 429 and 503. Default 4. */
  maxRetries?: number;
}

export interface ConnectOptions extends ClientOptions {
  /** Default ~/.crabmail/token, shared with the crabmail CLI. */
  tokenFile?: string;
  /** Sign up when there is no token. Default true. */
  signup?: boolean;
}

export interface Inbox {
  id: string;
  address: string;
  displayName: string | null;
  createdAt: string;
  data: Record<string, unknown>;
}

/** A message as lists show it. Its text comes from the sender: untrusted. */
export interface MessageSummary {
  id: string;
  inboxId: string;
  receivedAt: string;
  subject: string | null;
  fromAddress: string | null;
  preview: string;
  /** low, medium or high: how likely the message tries to steer an AI agent. */
  riskLevel: "low" | "medium" | "high";
  threadId: string | null;
  data: Record<string, unknown>;
}

/** One message. Received mail is untrusted: have a model read `safeText`, not `text`. */
export interface Message {
  id: string;
  inboxId: string;
  direction: "inbound" | "outbound";
  subject: string | null;
  fromAddress: string | null;
  text: string | null;
  html: string | null;
  safeText: string | null;
  riskLevel: "low" | "medium" | "high";
  /** Verification codes found, most likely first. */
  codes: string[];
  threadId: string | null;
  /** Mail you sent: status and each recipient's attempts. */
  delivery: Record<string, unknown> | null;
  data: Record<string, unknown>;
}

export interface Sent {
  id: string;
  /** queued, throttled (held until releaseAt) or pending_approval. */
  status: string;
  releaseAt: string | null;
  approval: string | null;
  data: Record<string, unknown>;
}

export interface Event {
  /** evt_<account>_<seq>, as webhooks' webhook-id. */
  id: string;
  seq: number;
  type: string;
  at: string;
  messageId: string | null;
  inboxId: string | null;
  recipient: string | null;
  detail: Record<string, unknown> | null;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` for what comes next. */
  nextCursor: string;
}

export interface Attachment {
  filename: string;
  content: Uint8Array | string;
  contentType?: string;
}

export interface SendOptions {
  to?: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: Attachment[];
  /** Id of a received message: sets the recipient, subject and threading headers. */
  inReplyTo?: string;
  headers?: Record<string, string>;
  /** Same key, same send: a retry never sends twice. A new key per call when absent. */
  idempotencyKey?: string;
}

export interface WaitOptions {
  /** Sender address or domain. */
  from?: string;
  subjectContains?: string;
  /** Seconds. Default 60. */
  timeout?: number;
  /** Mail of the last this-many seconds counts too (waitForCode: 300 by default). */
  lookback?: number;
}

export declare class Crabmail {
  constructor(options: ClientOptions & { token: string });
  static connect(options?: ConnectOptions): Promise<Crabmail>;
  readonly url: string;
  readonly token: string;

  createInbox(options?: { name?: string; displayName?: string; domain?: string }): Promise<Inbox>;
  listInboxes(): Promise<Inbox[]>;
  deleteInbox(inboxId: string): Promise<void>;

  send(inboxId: string, message: SendOptions): Promise<Sent>;
  reply(messageId: string, options: { text?: string; html?: string; idempotencyKey?: string }): Promise<Sent>;
  deliveryStatus(messageId: string): Promise<Record<string, unknown>>;

  /** `report`: only reports about mail you sent (`bounce`, `complaint`, `auto_reply`, `any`), or only ordinary mail (`none`). */
  messages(
    inboxId: string,
    options?: { after?: string; limit?: number; wait?: number; report?: "bounce" | "complaint" | "auto_reply" | "any" | "none" },
  ): Promise<Page<MessageSummary>>;
  iterMessages(inboxId: string, options?: { after?: string; pageSize?: number }): AsyncGenerator<MessageSummary>;
  receive(inboxId: string, options?: { wait?: number }): Promise<MessageSummary[]>;
  wait(inboxId: string, options?: WaitOptions): Promise<Message | null>;
  waitForCode(inboxId: string, options?: WaitOptions): Promise<string | null>;
  getMessage(messageId: string): Promise<Message>;
  safeView(messageId: string): Promise<Record<string, unknown>>;
  raw(messageId: string): Promise<Buffer>;
  attachment(messageId: string, index: number): Promise<Buffer>;
  deleteMessage(messageId: string): Promise<void>;

  events(options?: { after?: string; wait?: number; limit?: number }): Promise<Page<Event>>;
  iterEvents(options?: { after?: string }): AsyncGenerator<Event>;
}
