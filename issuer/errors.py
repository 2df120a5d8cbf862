"""One error hierarchy. Core code raises these; the web layer maps them to HTTP once,
the CLI to a one-line message and exit code 2."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class IssuerError(Exception):
    """Base of every error a user can cause. ``code`` is stable; ``message`` is for people."""

    code = "ERROR"
    http_status = 400

    def __init__(self, message: str, *, details: Mapping[str, Any] | list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else {}


class ValidationFailed(IssuerError):
    """The input is well-formed but its content is wrong (field errors in ``details``)."""

    code = "VALIDATION_FAILED"
    http_status = 422


class BadRequest(IssuerError):
    """The input cannot be parsed at all (malformed JSON, wrong content type)."""

    code = "BAD_REQUEST"
    http_status = 400


class NotFound(IssuerError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(IssuerError):
    """The change would break a uniqueness or state rule (duplicate code, wrong state)."""

    code = "CONFLICT"
    http_status = 409


class Unauthenticated(IssuerError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(IssuerError):
    code = "FORBIDDEN"
    http_status = 403


class ImportRejected(ValidationFailed):
    """A registry or outlet file had invalid rows; ``details`` lists every one."""

    code = "IMPORT_REJECTED"


class IdempotencyKeyReused(ValidationFailed):
    """An Idempotency-Key was sent again with a different request body."""

    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInFlight(Conflict):
    """A request with this Idempotency-Key is still being processed; retry for its answer."""

    code = "IDEMPOTENCY_KEY_IN_FLIGHT"
