"""The one error tree. Each class carries its HTTP status and a stable code.

Errors become JSON once, at the edge (`lib.http`). Third-party errors are translated
into these in the adapter that meets them (`raise ... from exc`).
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error the service knows how to answer. Unexpected faults stay 500 INTERNAL."""

    status = 500
    code = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.headers: dict[str, str] = {}

    def to_body(self) -> dict[str, Any]:
        """The JSON error envelope of api.md."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(AppError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(AppError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(AppError):
    status = 403
    code = "FORBIDDEN"


class NotFound(AppError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(AppError):
    status = 405
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, allowed: list[str]):
        super().__init__(f"Use {', '.join(allowed)} on this endpoint.", details={"allow": allowed})
        self.headers["Allow"] = ", ".join(allowed)


class Conflict(AppError):
    status = 409
    code = "CONFLICT"


class Gone(AppError):
    """It existed and was deleted on purpose (a stored file past its retention)."""

    status = 410
    code = "GONE"


class PayloadTooLarge(AppError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(AppError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class UnprocessableEntity(AppError):
    """A well-formed request the service will not carry out (a question the assistant refuses)."""

    status = 422
    code = "UNPROCESSABLE"


class TooManyRequests(AppError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code, details={"retryAfterSeconds": retry_after})
        self.headers["Retry-After"] = str(retry_after)


class UpstreamError(AppError):
    """A provider (AI or search) failed. `retryable` says whether trying again may help."""

    status = 502
    code = "UPSTREAM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, details={"provider": provider, "retryable": retryable})
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    """A dependency of ours (database, queue) is down; the caller may retry."""

    status = 503
    code = "SERVICE_UNAVAILABLE"


class ConfigError(Exception):
    """A missing or malformed setting. Raised at start-up, names the variable."""
