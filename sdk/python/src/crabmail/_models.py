"""Typed views of the API's JSON. Each keeps the whole answer in `data`, so fields this version
does not name are still there."""

from dataclasses import dataclass, field
from typing import Any, Dict, Generic, List, Optional, TypeVar

T = TypeVar("T")


def _address(mailbox: Optional[Dict[str, Any]]) -> Optional[str]:
    return (mailbox or {}).get("address")


@dataclass
class Inbox:
    id: str
    address: str
    display_name: Optional[str]
    created_at: str
    data: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Inbox":
        return cls(d["id"], d["address"], d.get("display_name"), d["created_at"], d)


@dataclass
class MessageSummary:
    """A message as lists show it. Its text fields come from the sender: untrusted."""

    id: str
    inbox_id: str
    received_at: str
    subject: Optional[str]
    from_address: Optional[str]
    preview: str
    risk_level: str
    thread_id: Optional[str]
    data: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "MessageSummary":
        security = d.get("security") or {}
        return cls(
            d["id"],
            d["inbox_id"],
            d["received_at"],
            d.get("subject"),
            _address(d.get("from")),
            d.get("preview", ""),
            security.get("level", "low"),
            d.get("thread_id"),
            d,
        )


@dataclass
class Message:
    """One message. Received mail is untrusted: read `safe_text` (the text wrapped as untrusted,
    hidden content removed) rather than `text` when a model reads it, and mind `risk_level`."""

    id: str
    inbox_id: str
    direction: str
    subject: Optional[str]
    from_address: Optional[str]
    text: Optional[str]
    html: Optional[str]
    safe_text: Optional[str]
    risk_level: str
    codes: List[str]
    thread_id: Optional[str]
    delivery: Optional[Dict[str, Any]]
    data: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Message":
        security = d.get("security") or {}
        extracted = d.get("extracted") or {}
        return cls(
            d["id"],
            d["inbox_id"],
            d.get("direction", "inbound"),
            d.get("subject"),
            _address(d.get("from")),
            d.get("text"),
            d.get("html"),
            d.get("safe_text"),
            security.get("level", "low"),
            [c["value"] for c in extracted.get("codes", [])],
            d.get("thread_id"),
            d.get("delivery"),
            d,
        )


@dataclass
class Sent:
    """A send's answer: `status` is queued, throttled (held until `release_at`) or
    pending_approval."""

    id: str
    status: str
    release_at: Optional[str]
    approval: Optional[str]
    data: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Sent":
        return cls(d["id"], d["status"], d.get("release_at") or None, d.get("approval"), d)


@dataclass
class Event:
    id: str
    seq: int
    type: str
    at: str
    message_id: Optional[str]
    inbox_id: Optional[str]
    recipient: Optional[str]
    detail: Optional[Dict[str, Any]]

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Event":
        return cls(
            d.get("id", ""),
            d["seq"],
            d["type"],
            d["at"],
            d.get("message_id"),
            d.get("inbox_id"),
            d.get("recipient"),
            d.get("detail"),
        )


@dataclass
class Page(Generic[T]):
    items: List[T]
    next_cursor: str
