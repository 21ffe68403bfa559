"""crabmail: email for AI agents. The Python SDK of the crabmail HTTP API."""

from ._client import Crabmail
from ._errors import CrabmailError
from ._models import Event, Inbox, Message, MessageSummary, Page, Sent

__all__ = [
    "Crabmail",
    "CrabmailError",
    "Event",
    "Inbox",
    "Message",
    "MessageSummary",
    "Page",
    "Sent",
]
