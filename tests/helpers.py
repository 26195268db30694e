"""Assertions shared by the HTTP tests."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

ERROR_KEYS = {"code", "status", "message", "errors"}


def assert_error(
    response: TestResponse, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """The response is the one JSON error shape with this status (and code, and field error)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert field in body["errors"], body
    return body  # type: ignore[no-any-return]
