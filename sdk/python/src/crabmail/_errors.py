from typing import Optional


class CrabmailError(Exception):
    """An error answer of the API (`{"error": {"code", "message", "field"}}`), or a server that
    could not be reached (`status` 0, `code` "unreachable")."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
