"""The audit trail: who changed what, when and from where, in a hash chain.

Every service that changes state (or uses a seal key) calls :func:`record` inside the
transaction of the change, so an entry exists exactly when the change does. Entries are chained:
each stores the hash of the one before and a hash of its own canonical content, and
:func:`verify_chain` recomputes the chain, so an edited, inserted or deleted entry is found.

"From where" comes from the :class:`AuditContext` of the current request or command (the web
layer sets the client address, the CLI ``cli``); "who" is the acting user's e-mail, given by the
service, or the context's actor when the service acts for nobody in particular.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import getpass
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from issuer import clock
from issuer.models import GENESIS_HASH, AuditEntry, AuditHead

MAX_ORIGIN_CHARS = 100


@dataclass(frozen=True)
class AuditContext:
    actor: str
    origin: str


_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("issuer_audit_context", default=None)


def cli_context() -> AuditContext:
    """The context of a command run on this machine: the operating-system user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return AuditContext(actor=f"cli:{user}@{socket.gethostname()}"[:254], origin="cli")


@contextmanager
def acting_as(context: AuditContext) -> Iterator[None]:
    """Record the entries written inside the block with this actor and origin."""
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


def set_context(context: AuditContext | None) -> contextvars.Token[AuditContext | None]:
    return _context.set(context)


def current_context() -> AuditContext:
    return _context.get() or cli_context()


# Listeners run inside the recording transaction, e.g. to queue a notification with the change.
Listener = Callable[[Session, AuditEntry], None]
_listeners: dict[str, list[Listener]] = {}


def subscribe(action: str, listener: Listener) -> None:
    """Call ``listener(session, entry)`` whenever an entry with ``action`` is recorded."""
    if listener not in _listeners.setdefault(action, []):
        _listeners[action].append(listener)


def _plain(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as JSON gives them back, so the hash computed now equals the one recomputed later."""
    return json.loads(json.dumps(details or {}, default=str, ensure_ascii=False))  # type: ignore[no-any-return]


def _timestamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's canonical JSON, which includes the previous entry's hash."""
    canonical = json.dumps(
        {
            "seq": entry.seq,
            "at": _timestamp(entry.at),
            "actor": entry.actor,
            "origin": entry.origin,
            "action": entry.action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "manufacturer_id": entry.manufacturer_id,
            "exporter_id": entry.exporter_id,
            "details": entry.details,
            "prev_hash": entry.prev_hash,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: str | int,
    actor: str | None = None,
    manufacturer_id: int | None = None,
    exporter_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the chain in the session's transaction (the caller commits).

    The head row is incremented with UPDATE … RETURNING first: on PostgreSQL that row lock
    queues concurrent writers until this transaction ends, so the chain never forks."""
    context = current_context()
    seq, prev_hash = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + 1)
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    ).one()
    entry = AuditEntry(
        seq=seq,
        at=clock.now_utc(),
        actor=(actor or context.actor)[:254],
        origin=context.origin[:MAX_ORIGIN_CHARS],
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:80],
        manufacturer_id=manufacturer_id,
        exporter_id=exporter_id,
        details=_plain(details),
        prev_hash=prev_hash,
    )
    entry.entry_hash = entry_hash(entry)
    session.add(entry)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=entry.entry_hash))
    for listener in _listeners.get(action, ()):
        listener(session, entry)
    return entry


def history_of(session: Session, *, object_type: str, object_id: str | int) -> list[AuditEntry]:
    """Every entry about one object, oldest first (for the object's page)."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id))
            .order_by(AuditEntry.seq)
        )
    )


@dataclass
class ChainVerification:
    entries_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(session: Session) -> ChainVerification:
    """Recompute the whole chain: every hash, every link, no gaps, and the head at its end."""
    result = ChainVerification()
    expected_seq, expected_prev = 1, GENESIS_HASH
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)).scalars()
    for entry in rows:
        result.entries_checked += 1
        if entry.seq != expected_seq:
            result.problems.append(
                f"entries {expected_seq}–{entry.seq - 1} are missing (deleted)"
                if entry.seq > expected_seq
                else f"entry {entry.seq} is out of order"
            )
        if entry.prev_hash != expected_prev:
            result.problems.append(f"entry {entry.seq} does not link to the entry before it")
        if entry_hash(entry) != entry.entry_hash:
            result.problems.append(f"entry {entry.seq} ({entry.action}) was altered: its hash does not match")
        expected_seq, expected_prev = entry.seq + 1, entry.entry_hash
    head = session.get(AuditHead, 1)
    if head is None:
        result.problems.append("the chain's head row is missing")
    elif head.last_seq != expected_seq - 1 or head.last_hash != expected_prev:
        result.problems.append(
            f"the chain ends at entry {expected_seq - 1} but its head records entry {head.last_seq}: "
            "the newest entries were deleted or the head was altered"
        )
    return result
