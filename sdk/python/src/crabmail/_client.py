"""The client: one method per verb of the API, standard library only."""

import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ._errors import CrabmailError
from ._models import Event, Inbox, Message, MessageSummary, Page, Sent

DEFAULT_URL = "http://127.0.0.1:8080"
# Statuses worth another try: the server asked to slow down, or was briefly unavailable.
RETRY_STATUSES = {429, 502, 503, 504}
# 429s that refuse a send over a sending quota: final answers (the caller asked to be refused
# rather than queued), never retried.
QUOTA_REFUSED = {"rate_limited", "daily_quota_exceeded"}
MAX_RETRY_AFTER = 60.0


def _token_file() -> Path:
    return Path.home() / ".crabmail" / "token"


class Crabmail:
    """A crabmail account.

    The token comes from `token`, else `CRABMAIL_TOKEN`, else `token_file` (default
    `~/.crabmail/token`, shared with the `crabmail` CLI); when there is none, the client signs up
    and saves the new token there (mode 0600), unless `signup=False`.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        token_file: Optional[Union[str, Path]] = None,
        *,
        signup: bool = True,
        timeout: float = 30.0,
        max_retries: int = 4,
    ):
        self.url = (url or os.environ.get("CRABMAIL_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._cursors: Dict[str, str] = {}
        path = Path(token_file) if token_file else _token_file()
        token = token or os.environ.get("CRABMAIL_TOKEN", "").strip() or None
        if token is None and path.exists():
            token = path.read_text().strip() or None
        if token is None:
            if not signup:
                raise CrabmailError(0, "no_token", f"no token given and none in {path}")
            created = self._request("POST", "/v1/accounts", body={}, retry=False, auth=False)
            token = created["token"]
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token)
        self.token: str = token

    # --- inboxes ---

    def create_inbox(
        self,
        name: Optional[str] = None,
        display_name: Optional[str] = None,
        domain: Optional[str] = None,
    ) -> Inbox:
        """A new address. When `name` is taken the server adds a suffix: read `address`."""
        body = {k: v for k, v in {"name": name, "display_name": display_name, "domain": domain}.items() if v}
        return Inbox.from_json(self._request("POST", "/v1/inboxes", body=body, retry=False))

    def list_inboxes(self) -> List[Inbox]:
        return [Inbox.from_json(i) for i in self._request("GET", "/v1/inboxes")["inboxes"]]

    def delete_inbox(self, inbox_id: str) -> None:
        self._request("DELETE", f"/v1/inboxes/{_seg(inbox_id)}")

    # --- sending ---

    def send(
        self,
        inbox_id: str,
        to: Union[str, Sequence[str], None] = None,
        subject: Optional[str] = None,
        text: Optional[str] = None,
        html: Optional[str] = None,
        *,
        cc: Union[str, Sequence[str], None] = None,
        bcc: Union[str, Sequence[str], None] = None,
        attachments: Sequence[Tuple[str, bytes, Optional[str]]] = (),
        in_reply_to: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Sent:
        """Sends from `inbox_id`. Attachments are `(filename, bytes, content_type)`. Every send
        carries an idempotency key (a new one unless given), so a retry after a lost answer never
        sends twice; pass your own key to make your own retries safe too."""
        import base64

        body: Dict[str, Any] = {
            "to": _list(to),
            "cc": _list(cc),
            "bcc": _list(bcc),
            "subject": subject,
            "text": text,
            "html": html,
            "in_reply_to": in_reply_to,
            "headers": headers or {},
            "attachments": [
                {
                    "filename": name,
                    "content_type": content_type,
                    "content_base64": base64.b64encode(content).decode("ascii"),
                }
                for name, content, content_type in attachments
            ],
        }
        body = {k: v for k, v in body.items() if v not in (None, [], {})}
        key = idempotency_key or str(uuid.uuid4())
        answer = self._request(
            "POST",
            f"/v1/inboxes/{_seg(inbox_id)}/messages",
            body=body,
            headers={"Idempotency-Key": key},
        )
        return Sent.from_json(answer)

    def reply(
        self,
        message_id: str,
        text: Optional[str] = None,
        html: Optional[str] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> Sent:
        """Answers a received message from the inbox that got it: to its sender, with its
        subject and threading headers."""
        original = self.get_message(message_id)
        return self.send(
            original.inbox_id,
            text=text,
            html=html,
            in_reply_to=message_id,
            idempotency_key=idempotency_key,
        )

    def delivery_status(self, message_id: str) -> Dict[str, Any]:
        """A sent message's `delivery`: status and each recipient's attempts."""
        return self.get_message(message_id).delivery or {}

    # --- receiving ---

    def messages(
        self,
        inbox_id: str,
        after: Optional[str] = None,
        limit: int = 50,
        wait: int = 0,
        report: Optional[str] = None,
    ) -> Page[MessageSummary]:
        """One page of received mail, oldest first; `wait` seconds holds the request when
        nothing is new. `report` keeps only reports about mail you sent (`bounce`, `complaint`,
        `auto_reply`, `any`) or only ordinary mail (`none`)."""
        query = {"after": after, "limit": limit, "wait": wait or None, "report": report}
        page = self._request("GET", f"/v1/inboxes/{_seg(inbox_id)}/messages", query=query)
        return Page([MessageSummary.from_json(m) for m in page["messages"]], page["next_cursor"])

    def iter_messages(self, inbox_id: str, after: Optional[str] = None, page_size: int = 50) -> Iterator[MessageSummary]:
        """Every received message after `after`, page by page."""
        while True:
            page = self.messages(inbox_id, after=after, limit=page_size)
            yield from page.items
            if not page.items:
                return
            after = page.next_cursor

    def receive(self, inbox_id: str, wait: int = 0) -> List[MessageSummary]:
        """What arrived since this client's last `receive` of the inbox (everything, the first
        time), waiting up to `wait` seconds when nothing has."""
        page = self.messages(inbox_id, after=self._cursors.get(inbox_id), limit=100, wait=wait)
        self._cursors[inbox_id] = page.next_cursor
        return page.items

    def wait(
        self,
        inbox_id: str,
        *,
        from_: Optional[str] = None,
        subject_contains: Optional[str] = None,
        timeout: int = 60,
        lookback: int = 0,
    ) -> Optional[Message]:
        """The first message that matches (arriving within `timeout` seconds, or within the last
        `lookback` seconds), or None."""
        return self._wait(inbox_id, from_, subject_contains, False, timeout, lookback)

    def wait_for_code(
        self,
        inbox_id: str,
        *,
        from_: Optional[str] = None,
        subject_contains: Optional[str] = None,
        timeout: int = 60,
        lookback: int = 300,
    ) -> Optional[str]:
        """The verification code of the first message carrying one (mail of the last `lookback`
        seconds counts: it is often there before you ask), or None. Check who sent it."""
        message = self._wait(inbox_id, from_, subject_contains, True, timeout, lookback)
        return message.codes[0] if message and message.codes else None

    def get_message(self, message_id: str) -> Message:
        return Message.from_json(self._request("GET", f"/v1/messages/{_seg(message_id)}"))

    def safe_view(self, message_id: str) -> Dict[str, Any]:
        """What a model should read: `safe_text`, `security`, `extracted`."""
        return self._request("GET", f"/v1/messages/{_seg(message_id)}", query={"view": "safe"})

    def raw(self, message_id: str) -> bytes:
        return self._request("GET", f"/v1/messages/{_seg(message_id)}/raw", raw=True)

    def attachment(self, message_id: str, index: int) -> bytes:
        return self._request("GET", f"/v1/messages/{_seg(message_id)}/attachments/{index}", raw=True)

    def delete_message(self, message_id: str) -> None:
        self._request("DELETE", f"/v1/messages/{_seg(message_id)}")

    # --- events ---

    def events(self, after: Optional[str] = None, wait: int = 0, limit: int = 100) -> Page[Event]:
        page = self._request("GET", "/v1/events", query={"after": after, "wait": wait or None, "limit": limit})
        return Page([Event.from_json(e) for e in page["events"]], page["next_cursor"])

    def iter_events(self, after: Optional[str] = None) -> Iterator[Event]:
        """Every event after `after` so far, page by page."""
        while True:
            page = self.events(after=after)
            yield from page.items
            if not page.items:
                return
            after = page.next_cursor

    # --- plumbing ---

    def _wait(self, inbox_id, from_, subject_contains, has_code, timeout, lookback) -> Optional[Message]:
        deadline = time.monotonic() + timeout
        since = None
        if lookback > 0:
            since = (datetime.now(timezone.utc) - timedelta(seconds=lookback)).isoformat()
        while True:
            left = int(deadline - time.monotonic())
            chunk = max(0, min(left, 120))
            query = {
                "from": from_,
                "subject_contains": subject_contains,
                "has_code": "true" if has_code else None,
                "timeout": chunk,
                "since": since,
            }
            answer = self._request(
                "GET", f"/v1/inboxes/{_seg(inbox_id)}/wait", query=query, timeout=chunk + self.timeout
            )
            if not answer.get("timed_out"):
                return Message.from_json(answer)
            if left <= chunk:
                return None

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Optional[Dict[str, Any]] = None,
        query: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
        retry: bool = True,
        auth: bool = True,
        raw: bool = False,
        timeout: Optional[float] = None,
    ) -> Any:
        url = self.url + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Accept": "application/json", "User-Agent": "crabmail-python/0.1.0"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if auth:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                    payload = response.read()
                    if raw:
                        return payload
                    return json.loads(payload) if payload else None
            except urllib.error.HTTPError as e:
                payload = e.read()
                error = _error(e.code, payload)
                if (
                    retry
                    and e.code in RETRY_STATUSES
                    and error.code not in QUOTA_REFUSED
                    and attempt < self.max_retries
                ):
                    attempt += 1
                    time.sleep(_delay(attempt, e.headers.get("Retry-After")))
                    continue
                raise error from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if retry and attempt < self.max_retries:
                    attempt += 1
                    time.sleep(_delay(attempt, None))
                    continue
                raise CrabmailError(0, "unreachable", f"{self.url}: {e}") from None


def _delay(attempt: int, retry_after: Optional[str]) -> float:
    """What the server asked (Retry-After seconds), else exponential backoff with jitter."""
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass
    return min(0.25 * 2 ** (attempt - 1), 8.0) * (0.5 + random.random() / 2)


def _error(status: int, payload: bytes) -> CrabmailError:
    try:
        detail = json.loads(payload)["error"]
        return CrabmailError(status, detail.get("code", "error"), detail.get("message", ""), detail.get("field"))
    except (ValueError, KeyError, TypeError):
        return CrabmailError(status, "error", payload.decode("utf-8", "replace")[:200])


def _list(value: Union[str, Sequence[str], None]) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")
