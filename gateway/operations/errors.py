"""The admin API's one error shape: ``{"error": {"code": "<slug>", "message": "<sentence>", "field": ...}}``, and
the refusal of a change that becomes one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


def error(
    status: int, code: str, message: str, *, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer; ``field`` (the dotted path of the value at fault) only for a 422."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class ChangeError(Exception):
    """A change refused; ``code`` is the admin API's error slug."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
