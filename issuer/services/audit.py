"""The audit trail: who changed what, when and from where, in a hash chain.

Every service that changes state (or uses a seal key) calls :func:`record` inside the
transaction of the change, so an entry exists exactly when the change does. Entries are chained:
each stores the hash of the one before and a hash of its own canonical content, and
:func:`verify_chain` recomputes the chain, so an edited, inserted or deleted entry is found.

"From where" comes from the :class:`AuditContext` of the current request or command (the web
layer sets the client address, the CLI ``cli``); "who" is the acting user's e-mail, given by the
service, or the context's actor when the service acts for nobody in particular.

What the chain proves, and what it does not: an entry edited, deleted or inserted by someone
who bypasses the table's append-only triggers breaks a hash, a link, the numbering or the head.
The hashes are not keyed, so someone able to rewrite the database could recompute the chain
from the changed entry on; :func:`verify_chain` with an ``anchor`` (a ``(seq, hash)`` printed
by an earlier ``issuer audit verify`` and kept outside the database) detects that too.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import getpass
import hashlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from issuer import clock
from issuer.errors import Forbidden
from issuer.models import GENESIS_HASH, AuditEntry, AuditHead, Role, User

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
    """Set the context from here on (the web layer, per request); returns a token for
    :func:`reset_context`. ``None`` means a command run on this machine."""
    return _context.set(context)


def reset_context(token: contextvars.Token[AuditContext | None]) -> None:
    _context.reset(token)


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

    Call it last before the commit. The head row is incremented with UPDATE … RETURNING: on
    PostgreSQL that row lock queues concurrent writers until this transaction ends, so the chain
    never forks and has no gaps. The session's pending changes are flushed first, so when the
    entries are the last writes before the commit, the head is the last lock the transaction
    takes — writers then cannot deadlock on it — and it is held only until the commit."""
    context = current_context()
    session.flush()
    try:
        seq, prev_hash = session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(last_seq=AuditHead.last_seq + 1)
            .returning(AuditHead.last_seq, AuditHead.last_hash)
            .execution_options(synchronize_session=False)
        ).one()
    except NoResultFound:
        raise RuntimeError("the audit trail's head row is missing; run `issuer db upgrade`") from None
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
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_hash=entry.entry_hash)
        .execution_options(synchronize_session=False)
    )
    for listener in _listeners.get(action, ()):
        listener(session, entry)
    return entry


HISTORY_LIMIT = 50


def history_of(
    session: Session, *, object_type: str, object_id: str | int, limit: int | None = HISTORY_LIMIT
) -> list[AuditEntry]:
    """The newest ``limit`` entries about one object (None: all), oldest first (for the
    object's page). A user's history grows with every sign-in, so a page never reads it all;
    :func:`count_history` tells whether there is more (the audit page shows the rest)."""
    query = (
        select(AuditEntry)
        .where(AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id))
        .order_by(AuditEntry.seq.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.scalars(query).all()))


def count_history(session: Session, *, object_type: str, object_id: str | int) -> int:
    """How many entries there are about one object."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id))
        )
        or 0
    )


ActorKind = str  # "manufacturer" | "exporter" | "platform"


def actor_kinds(session: Session, actors: Iterable[str]) -> dict[str, ActorKind]:
    """The kind of organisation each actor acts for, for showing a history without naming
    people: the manufacturer's staff, an exporter's user, or the platform (its administrators
    and commands run on the server). An actor no user has any more is left out."""
    actors = set(actors)
    kinds: dict[str, ActorKind] = {actor: "platform" for actor in actors if actor.startswith("cli:")}
    emails = [actor for actor in actors if actor not in kinds]
    if emails:
        for email, role in session.execute(select(User.email, User.role).where(User.email.in_(emails))):
            if Role(role).is_manufacturer_staff:
                kinds[email] = "manufacturer"
            elif Role(role) is Role.EXPORTER:
                kinds[email] = "exporter"
            else:
                kinds[email] = "platform"
    return kinds


@dataclass
class ChainVerification:
    entries_checked: int = 0
    problems: list[str] = field(default_factory=list)
    head_seq: int = 0  # the newest entry checked: quote it (with head_hash) as a later anchor
    head_hash: str = GENESIS_HASH

    @property
    def intact(self) -> bool:
        return not self.problems


def _head(session: Session) -> tuple[int, str] | None:
    """The head as stored now (not a possibly stale object of the session)."""
    row = session.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)).first()
    return (row[0], row[1]) if row is not None else None


def verify_chain(session: Session, *, anchor: tuple[int, str] | None = None) -> ChainVerification:
    """Recompute the whole chain: every hash, every link, no gaps, and the head at its end.

    The head is read first and the entries up to it are checked, so entries appended meanwhile
    by other transactions (committed together with the head they moved) are not mistaken for
    forgeries; an entry beyond the head that no head covers is one. With ``anchor`` — a
    ``(seq, entry_hash)`` noted earlier outside the database — the entry at ``seq`` must still
    have that hash, which a chain rewritten from an earlier entry on cannot."""
    result = ChainVerification()
    head = _head(session)
    if head is None:
        result.problems.append("the chain's head row is missing")
        return result
    head_seq, head_hash = head
    expected_seq, expected_prev = 1, GENESIS_HASH
    anchor_seen = False
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.seq <= head_seq)
        .order_by(AuditEntry.seq)
        # What the database holds now, not what this session recorded or read before.
        .execution_options(yield_per=1000, populate_existing=True)
    )
    for entry in rows:
        result.entries_checked += 1
        if entry.seq > expected_seq:
            missing = (
                f"entry {expected_seq}" if entry.seq == expected_seq + 1 else f"entries {expected_seq}–{entry.seq - 1}"
            )
            result.problems.append(f"{missing} missing (deleted)")
        if entry.prev_hash != expected_prev:
            result.problems.append(f"entry {entry.seq} ({entry.action}) does not link to the entry before it")
        if entry_hash(entry) != entry.entry_hash:
            result.problems.append(f"entry {entry.seq} ({entry.action}) was altered: its hash does not match")
        if anchor is not None and entry.seq == anchor[0]:
            anchor_seen = True
            if entry.entry_hash != anchor[1]:
                result.problems.append(
                    f"entry {entry.seq} ({entry.action}) is not the one anchored: the chain was rewritten"
                )
        expected_seq, expected_prev = entry.seq + 1, entry.entry_hash
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        missing = f"entry {head_seq}" if last_seq + 1 == head_seq else f"entries {last_seq + 1}–{head_seq}"
        result.problems.append(
            f"{missing} missing: the newest entries were deleted (the head records entry {head_seq})"
        )
    elif expected_prev != head_hash:
        result.problems.append(f"the head does not match entry {last_seq}: the entry or the head was altered")
    if anchor is not None and not anchor_seen:
        result.problems.append(f"the anchored entry {anchor[0]} is missing")
    beyond = session.scalar(select(func.max(AuditEntry.seq)).where(AuditEntry.seq > head_seq))
    if beyond is not None:
        now = _head(session)
        if now is None or beyond > now[0]:
            result.problems.append(f"entry {beyond} lies beyond the chain's head: it was inserted behind the chain")
    result.head_seq, result.head_hash = head_seq, head_hash
    return result


# -- reading ------------------------------------------------------------------------------------

AUDIT_READERS = (Role.PLATFORM_ADMIN, Role.MANUFACTURER_ADMIN)


@dataclass(frozen=True)
class EntryPage:
    entries: list[AuditEntry]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def visible_entries(user: User) -> Any:
    """The entries ``user`` may read: a platform administrator all of them, a manufacturer
    administrator those of their own manufacturer. Nobody else reads the audit trail."""
    if user.user_role is Role.PLATFORM_ADMIN:
        return select(AuditEntry)
    if user.user_role is Role.MANUFACTURER_ADMIN and user.manufacturer_id is not None:
        return select(AuditEntry).where(AuditEntry.manufacturer_id == user.manufacturer_id)
    raise Forbidden(f"the role {user.role} may not read the audit trail")


def list_entries(
    session: Session,
    user: User,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> EntryPage:
    """One page of the entries ``user`` may read, newest first, optionally of one action or object."""
    query = visible_entries(user)
    if action:
        query = query.where(AuditEntry.action == action.strip())
    if object_type:
        query = query.where(AuditEntry.object_type == object_type.strip())
    if object_id:
        query = query.where(AuditEntry.object_id == object_id.strip())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    entries = session.scalars(query.order_by(AuditEntry.seq.desc()).limit(per_page).offset((page - 1) * per_page))
    return EntryPage(entries=list(entries), page=page, per_page=per_page, total=total)
