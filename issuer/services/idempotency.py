"""Idempotency keys for filing requests: the ``Idempotency-Key`` header of
``POST /api/v1/requests``, as in draft-ietf-httpapi-idempotency-key-header and Stripe's API.

A client that is not sure its request arrived (a timeout, a dropped connection, a double click)
sends it again with the same key, and the request is filed once. Decisions:

- **Scope: the user.** A key belongs to the user whose token sent it, not to the exporter: two
  clerks (or two scripts with their own accounts) cannot collide on a key, or learn through a
  refusal that a colleague used one. Keys are case-sensitive.
- **Form:** 1-255 printable ASCII characters (space to ``~``), e.g. a UUID; white space around
  the value is not part of it (HTTP's rule). The key is opaque: the draft's quoted form
  (``"8e03978e-…"``) is taken as it is, quotes included, which is the same key every time the
  client sends it. Anything else is a 400 naming the problem. (Two such headers reach the app
  joined by a comma, as HTTP allows: that is one key, the same one each time they are sent.)
- **The fingerprint** is the SHA-256 of the body's canonical JSON (keys sorted, no insignificant
  white space, non-ASCII escaped): the same JSON however it is spaced or ordered. The same key
  with another fingerprint is a 422 (``IDEMPOTENCY_KEY_REUSED``).
- **Only a filed request is kept.** The key, the fingerprint, the request id and the answer
  (status and body, exactly as first given) are written in the transaction that files the
  request, so a crash leaves neither the request nor the key. An attempt that fails (a 400, a
  422, anything) stores nothing and does not use up the key: it can be sent again, corrected.
- **A replay** answers the stored status and body with ``Idempotent-Replayed: true``: the answer
  as it was when the request was filed (``GET /api/v1/requests/{id}`` tells its state now). It
  files nothing, so it writes no audit entry and sends no mail.
- **In flight:** while the transaction that holds a key has not ended, the same key is a 409
  (``IDEMPOTENCY_KEY_IN_FLIGHT``); once it has committed, the stored answer. On PostgreSQL the
  key is held by a transaction-scoped advisory lock, taken before the key is looked up. SQLite has a
  single writer: a second attempt waits for the first and is answered 503 (busy, retry), and the
  retry is the replay. In every case the unique (user, key) constraint allows one request.
- **Keys live 24 hours** from the filing. An expired key is ignored, as if never used: the next
  request with it is filed anew. Expired keys are deleted when a request is filed with a key
  (that key's own, and up to ``PURGE_BATCH`` others' at a time, skipping rows another
  transaction is deleting).
- **The answer is stored, not rebuilt,** so a replay is the first answer byte for byte even after
  the request was decided. It is some 0.4 KB a vehicle, more with refusals explained (4-8 MB for
  a 10,000-vehicle request; PostgreSQL compresses it), kept for a day.
- **The web pages send no key** (yet): a double click on a precheck part's send button can still
  file it twice. Doing it well needs a key per rendered form, a fingerprint of the form's fields,
  and the page's own answers to a replay (the request's page) and to a 409, across the form, the
  declarations service and the translations: more than a small change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.errors import BadRequest, IdempotencyKeyInFlight, IdempotencyKeyReused
from issuer.models import IdempotencyKey, LetterRequest, User

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_LIFETIME = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255
PURGE_BATCH = 100


@dataclass(frozen=True)
class StoredAnswer:
    """The answer a request was filed with, to be given again."""

    request_id: int
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class IdempotentFiling:
    """A filing under a key: what to store with the request. ``answer`` renders the request as the
    caller will answer it, so the same body is stored in the filing's transaction."""

    key: str
    fingerprint: str
    status: int
    answer: Callable[[LetterRequest], dict[str, Any]]


def _refuse(problem: str) -> BadRequest:
    return BadRequest(f"the {HEADER} header {problem}", details=[{"field": HEADER, "message": problem}])


def parse_key(value: str | None) -> str | None:
    """The key the ``Idempotency-Key`` header carries: None without the header; a 400 naming the
    problem when it is not 1-255 printable ASCII characters."""
    if value is None:
        return None
    value = value.strip(" \t")  # HTTP's optional white space around a value
    bad = sorted({c for c in value if not " " <= c <= "~"})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise _refuse(f"must be printable ASCII characters (space to ~); it contains {shown}")
    if not value:
        raise _refuse("is empty; send 1 to 255 characters, e.g. a UUID")
    if len(value) > MAX_KEY_LENGTH:
        raise _refuse(f"is {len(value)} characters long; at most {MAX_KEY_LENGTH} are allowed")
    return value


def fingerprint(payload: Any) -> str:
    """SHA-256 (hex) of the body's canonical JSON: keys sorted, no insignificant white space."""
    try:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except RecursionError:  # the encoder may stop a few levels before the parser did
        raise BadRequest("the request body is nested too deeply") from None
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _lock_id(user_id: int, key: str) -> int:
    digest = hashlib.sha256(f"idempotency-key:{user_id}:{key}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def claim(session: Session, *, user: User, key: str, fingerprint: str) -> StoredAnswer | None:
    """Hold ``key`` for this transaction and tell whether its request was filed already.

    Returns the stored answer when the user filed this body with this key in the last 24 hours,
    and None when the request is to be filed now (then :func:`record` stores the key with it).
    Refuses the key when it was used with another body (422) or, on PostgreSQL, while another
    transaction holds it (409)."""
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(
        select(func.pg_try_advisory_xact_lock(_lock_id(user.id, key)))
    ):
        raise IdempotencyKeyInFlight(
            f"a request with this {HEADER} is still being processed; send it again once it has finished",
            details=[{"field": HEADER, "message": "in use by a request still being processed"}],
        )
    now = clock.now_utc()
    stored = session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user.id, IdempotencyKey.key == key))
    if stored is not None and now < stored.created_at + KEY_LIFETIME:
        if stored.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"this {HEADER} was used with a different request body (request {stored.request_id}); "
                "send a new key for a new request",
                details=[{"field": HEADER, "message": "already used with a different request body"}],
            )
        return StoredAnswer(request_id=stored.request_id, status=stored.response_status, body=stored.response_body)
    _purge_expired(session, user_id=user.id, key=key, cutoff=now - KEY_LIFETIME)
    return None


def _purge_expired(session: Session, *, user_id: int, key: str, cutoff: dt.datetime) -> None:
    """Delete this key's expired row (the new one takes its place) and a batch of other expired
    ones; on PostgreSQL rows another transaction is already deleting are skipped, not waited for."""
    session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key, IdempotencyKey.created_at <= cutoff)
        .execution_options(synchronize_session=False)
    )
    expired = (
        select(IdempotencyKey.id)
        .where(IdempotencyKey.created_at <= cutoff)
        .order_by(IdempotencyKey.created_at)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.id.in_(expired)).execution_options(synchronize_session=False)
    )


def record(session: Session, *, user: User, filing: IdempotentFiling, request: LetterRequest) -> None:
    """Store the key with the request just filed, in its transaction (the caller commits)."""
    session.add(
        IdempotencyKey(
            user_id=user.id,
            key=filing.key,
            fingerprint=filing.fingerprint,
            request_id=request.id,
            response_status=filing.status,
            response_body=filing.answer(request),
            created_at=clock.now_utc(),
        )
    )
