"""The API's error bodies: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

# Error ``type`` per HTTP status, as documented for the Anthropic API.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """The error ``type`` the API gives with HTTP ``status``."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic error JSON shape for ``status``."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error response to ``request``, its body echoing the request's id."""
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(
        error_body(status, message, request_id), status_code=status, headers=headers
    )
