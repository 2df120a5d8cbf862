"""Notifications: e-mail to the people a change concerns, written with the change, sent after it.

Who is told what:

- a request arrives → every active after-sales user of the manufacturer it is addressed to;
- a request is decided → every active exporter user of the request's exporter, and the user who
  filed it. A rejection is told at once; an approval when its letter is sealed (``letter.issued``),
  so no mail ever announces a letter that could not be printed (an abandoned letter reopens the
  request instead);
- a letter is revoked → every active exporter user of the letter's exporter.

Each message is an :class:`~issuer.models.OutboxMessage` row added by an audit listener
(:func:`issuer.services.audit.subscribe`) inside the transaction of the change: the message
exists exactly when the change does, and a rolled-back change leaves none. After the commit the
app's :class:`MailDispatcher` is woken and delivers the queued messages by SMTP in a background
thread with its own database session, so a user's request never waits on a mail server and
nothing a server does can fail the action. A failed attempt is retried with a pause
(``MAX_ATTEMPTS`` in all), then the message is marked ``failed`` with the server's last answer,
for an administrator to retry from the outbox page or ``issuer mail deliver --failed``. Without
an SMTP host, messages are marked ``kept`` and stay in the outbox for administrators to read.

A commit is not the only thing that sends: the thread sweeps the whole queue when it starts (the
first request a process serves, so mail left queued by a restart goes out) and again every
``ISSUER_MAIL_SWEEP_SECONDS`` while the process lives, batch after batch until the queue is
empty; and a commit during a retry pause sends its new mail at once instead of after the pause.

Mail is plain text, Chinese first and English below it, in one message: recipients read either
language, and a user's page language is not known to be theirs for mail read elsewhere.

App configuration (``app.config``): ``ISSUER_MAIL_INLINE`` delivers synchronously after the
commit instead of in the thread (default: on when ``TESTING``, since test databases share one
connection that a thread must not use); ``ISSUER_MAIL_BACKOFF`` the seconds to wait before the
second and later attempts; ``ISSUER_MAIL_SWEEP_SECONDS`` the period of the sweep (default 60);
``ISSUER_MAIL_BATCH`` how many messages are read from the queue at a time.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, false, func, select, update
from sqlalchemy.orm import Session

from issuer import clock
from issuer.config import DEFAULT_PUBLIC_URL, Settings
from issuer.domain.countries import lookup_country
from issuer.errors import Conflict, Forbidden, NotFound, ValidationFailed
from issuer.models import (
    AuditEntry,
    Exporter,
    Letter,
    LetterRequest,
    Manufacturer,
    MessageState,
    OutboxMessage,
    RequestStatus,
    Role,
    User,
)
from issuer.services import audit
from issuer.services.mail import Transport, compose, transport_from

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
DEFAULT_BACKOFF: tuple[float, ...] = (10.0, 60.0)  # before the 2nd and the 3rd attempt
MAX_ERROR_CHARS = 2000
MAX_LISTED_REJECTIONS = 20  # a decision mail lists at most this many rejected VINs
DELIVERY_BATCH = 500  # messages read from the queue at a time; a delivery reads batch after batch
SWEEP_SECONDS = 60.0  # the thread looks at the queue this often, woken or not

_PENDING = "issuer.mail_pending"  # session.info key: this transaction queued mail


# -- recipients and queuing ----------------------------------------------------------------------


def _active_users(session: Session, *, role: Role, manufacturer_id: int | None = None, exporter_id: int | None = None):  # type: ignore[no-untyped-def]
    query = select(User).where(User.active.is_(True), User.role == role.value)
    if manufacturer_id is not None:
        query = query.where(User.manufacturer_id == manufacturer_id)
    if exporter_id is not None:
        query = query.where(User.exporter_id == exporter_id)
    return list(session.scalars(query.order_by(User.email)))


def _exporter_recipients(session: Session, request: LetterRequest | None, exporter_id: int) -> list[str]:
    """The exporter's active users, and the request's submitter whatever their role now — if still
    active and still with that exporter (a user moved to another tenant is not told)."""
    emails = [u.email for u in _active_users(session, role=Role.EXPORTER, exporter_id=exporter_id)]
    if request is not None and request.submitted_by_id is not None:
        submitter = session.get(User, request.submitted_by_id)
        if (
            submitter is not None
            and submitter.active
            and submitter.exporter_id == exporter_id
            and submitter.email not in emails
        ):
            emails.append(submitter.email)
    return emails


def _dispatcher() -> MailDispatcher | None:
    if not has_app_context():
        return None
    dispatcher = current_app.extensions.get("issuer.mail")
    return dispatcher if isinstance(dispatcher, MailDispatcher) else None


def _public_url() -> str:
    if has_app_context():
        settings = current_app.config.get("ISSUER_SETTINGS")
        if isinstance(settings, Settings):
            return settings.public_url
    return DEFAULT_PUBLIC_URL


def _mark_pending(session: Session) -> None:
    """Wake the app's dispatcher when this session's transaction commits."""
    session.info[_PENDING] = _dispatcher() or True


def _queue(
    session: Session,
    *,
    kind: str,
    recipients: Iterable[str],
    subject: str,
    body: str,
    manufacturer_id: int | None,
    exporter_id: int | None,
) -> list[OutboxMessage]:
    subject = " ".join(subject.split())[:300]  # one header line, whatever the names hold
    now = clock.now_utc()
    # With no SMTP server there is nothing to deliver: the message is kept at once, so no
    # background write follows the change (on SQLite it would compete for the one write lock).
    dispatcher = _dispatcher()
    keep = dispatcher is not None and dispatcher.transport is None
    messages = [
        OutboxMessage(
            created_at=now,
            kind=kind,
            recipient=email,
            subject=subject,
            body=body,
            manufacturer_id=manufacturer_id,
            exporter_id=exporter_id,
            state=(MessageState.KEPT if keep else MessageState.QUEUED).value,
            attempts=0,
        )
        for email in dict.fromkeys(recipients)
    ]
    if messages:
        session.add_all(messages)
        if not keep:
            _mark_pending(session)
    return messages


def _after_commit(session: Session) -> None:
    dispatcher = session.info.pop(_PENDING, None)
    if isinstance(dispatcher, MailDispatcher):
        dispatcher.wake()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)


# -- the listeners (inside the change's transaction) ---------------------------------------------


def on_request_submitted(session: Session, entry: AuditEntry) -> None:
    request = session.get(LetterRequest, int(entry.object_id))
    if request is None:
        return
    recipients = [
        u.email for u in _active_users(session, role=Role.AFTERSALES, manufacturer_id=request.manufacturer_id)
    ]
    subject, body = request_submitted_text(request, public_url=_public_url())
    _queue(
        session,
        kind="request.submitted",
        recipients=recipients,
        subject=subject,
        body=body,
        manufacturer_id=request.manufacturer_id,
        exporter_id=request.exporter_id,
    )


def on_request_decided(session: Session, entry: AuditEntry) -> None:
    request = session.get(LetterRequest, int(entry.object_id))
    if request is None or request.status == RequestStatus.APPROVED.value:
        return  # an approval is told when its letter is sealed: on_letter_issued
    _queue_decision(session, request, letter=None)


def on_letter_issued(session: Session, entry: AuditEntry) -> None:
    letter = session.scalar(select(Letter).where(Letter.number == entry.object_id))
    if letter is None or letter.request_id is None:
        return
    request = session.get(LetterRequest, letter.request_id)
    if request is not None:
        _queue_decision(session, request, letter=letter)


def _queue_decision(session: Session, request: LetterRequest, *, letter: Letter | None) -> None:
    subject, body = request_decided_text(request, letter=letter, public_url=_public_url())
    _queue(
        session,
        kind="request.decided",
        recipients=_exporter_recipients(session, request, request.exporter_id),
        subject=subject,
        body=body,
        manufacturer_id=request.manufacturer_id,
        exporter_id=request.exporter_id,
    )


def on_letter_revoked(session: Session, entry: AuditEntry) -> None:
    letter = session.scalar(select(Letter).where(Letter.number == entry.object_id))
    if letter is None:
        return
    subject, body = letter_revoked_text(letter, public_url=_public_url())
    _queue(
        session,
        kind="letter.revoked",
        recipients=_exporter_recipients(session, None, letter.exporter_id),
        subject=subject,
        body=body,
        manufacturer_id=letter.manufacturer_id,
        exporter_id=letter.exporter_id,
    )


LISTENERS: Mapping[str, audit.Listener] = {
    "request.submitted": on_request_submitted,
    "request.decided": on_request_decided,
    "letter.issued": on_letter_issued,
    "letter.revoked": on_letter_revoked,
}


def init_notifications(app: Flask, settings: Settings) -> None:
    """Subscribe the listeners (once per process: they are module functions) and give the app
    its dispatcher, which delivers with the app's own database."""
    for action, listener in LISTENERS.items():
        audit.subscribe(action, listener)
    dispatcher = MailDispatcher(
        database=app.extensions["issuer.db"],
        transport=transport_from(settings),
        mail_from=settings.mail_from,
        config=app.config,
    )
    app.extensions["issuer.mail"] = dispatcher
    # The first request a process serves starts the thread, whose first sweep sends what a
    # restart left queued (a worker forked after create_app starts its own thread here too).
    app.before_request(dispatcher.start)


# -- the texts -----------------------------------------------------------------------------------

SEPARATOR = "\n\n" + "—" * 24 + "\n\n"
FOOTER_ZH = "此邮件由系统自动发送，请勿直接回复。"
FOOTER_EN = "This message was sent automatically; please do not reply to it."


def _names(organisation: Manufacturer | Exporter) -> tuple[str, str]:
    """(Chinese name, English name); the English text falls back to the Chinese name."""
    return organisation.name, organisation.name_en or organisation.name


def _destinations(codes: Iterable[str]) -> tuple[str, str]:
    zh, en = [], []
    for code in sorted(set(codes)):
        country = lookup_country(code)
        zh.append(f"{country.name_zh}（{code}）" if country else code)
        en.append(f"{country.name_en} ({code})" if country else code)
    return "、".join(zh), ", ".join(en)


def _china_time(at: dt.datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(clock.CHINA_TIME).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


def _bilingual(zh_lines: Sequence[str], en_lines: Sequence[str]) -> str:
    return "\n".join([*zh_lines, "", FOOTER_ZH]) + SEPARATOR + "\n".join([*en_lines, "", FOOTER_EN]) + "\n"


def request_submitted_text(request: LetterRequest, *, public_url: str) -> tuple[str, str]:
    maker_zh, maker_en = _names(request.manufacturer)
    exporter_zh, exporter_en = _names(request.exporter)
    total = len(request.vehicles)
    eligible = sum(1 for v in request.vehicles if v.verdict == "eligible")
    countries_zh, countries_en = _destinations(v.destination for v in request.vehicles)
    link = f"{public_url}/requests/{request.id}"
    subject = (
        f"新的确认书申请 #{request.id}：{exporter_zh}，{total} 辆车 / "
        f"New letter request #{request.id} from {exporter_en}: {total} vehicle(s)"
    )
    zh = [
        "您好：",
        "",
        f"出口企业 {exporter_zh} 向 {maker_zh} 提交了售后维修服务确认书申请，等待审核。",
        "",
        f"申请编号：#{request.id}",
        f"出口企业：{exporter_zh}（统一社会信用代码 {request.exporter.uscc}）",
        f"参考号：{request.reference or '—'}",
        f"申请日期：{request.application_date.isoformat()}",
        f"车辆：{total} 辆，其中按规则可出具 {eligible} 辆",
        f"目的国家（地区）：{countries_zh or '—'}",
    ]
    en = [
        "Hello,",
        "",
        f"{exporter_en} has asked {maker_en} for an After-sales Maintenance Service Confirmation Letter;"
        " the request is waiting for review.",
        "",
        f"Request: #{request.id}",
        f"Exporter: {exporter_en} (unified social credit code {request.exporter.uscc})",
        f"Reference: {request.reference or '—'}",
        f"Application date: {request.application_date.isoformat()}",
        f"Vehicles: {total}, of which {eligible} eligible under the rules",
        f"Destinations: {countries_en or '—'}",
    ]
    if request.supersedes_number:
        zh.append(f"更正：替换确认书 {request.supersedes_number}")
        en.append(f"Correction of letter {request.supersedes_number}")
    zh += ["", f"请审核：{link}"]
    en += ["", f"Review it here: {link}"]
    return subject, _bilingual(zh, en)


def request_decided_text(request: LetterRequest, *, letter: Letter | None, public_url: str) -> tuple[str, str]:
    maker_zh, maker_en = _names(request.manufacturer)
    approved = [v for v in request.vehicles if v.decision == "approved"]
    rejected = [v for v in request.vehicles if v.decision == "rejected"]
    not_approved = len(request.vehicles) - len(approved) - len(rejected)
    request_link = f"{public_url}/requests/{request.id}"
    if letter is not None:
        subject = (
            f"确认书申请 #{request.id} 已批准，确认书 {letter.number} 已出具 / "
            f"Letter request #{request.id} approved: letter {letter.number} issued"
        )
        zh_result = f"{maker_zh} 已批准您的确认书申请 #{request.id}，并出具了确认书 {letter.number}。"
        en_result = f"{maker_en} approved your letter request #{request.id} and issued letter {letter.number}."
    else:
        subject = f"确认书申请 #{request.id} 未获批准 / Letter request #{request.id} was rejected"
        zh_result = f"{maker_zh} 未批准您的确认书申请 #{request.id}，没有出具确认书。"
        en_result = f"{maker_en} rejected your letter request #{request.id}; no letter was issued."
    zh = [
        "您好：",
        "",
        zh_result,
        "",
        f"参考号：{request.reference or '—'}",
        f"批准：{len(approved)} 辆；拒绝：{len(rejected)} 辆；未批准：{not_approved} 辆",
    ]
    en = [
        "Hello,",
        "",
        en_result,
        "",
        f"Reference: {request.reference or '—'}",
        f"Approved: {len(approved)}; rejected: {len(rejected)}; not approved: {not_approved}",
    ]
    if letter is not None and letter.valid_until is not None:
        zh.append(f"有效期至：{letter.valid_until.isoformat()}")
        en.append(f"Valid until: {letter.valid_until.isoformat()}")
    if rejected:
        zh += ["", "拒绝的车辆及原因："]
        en += ["", "Rejected vehicles and the reasons given:"]
        for vehicle in rejected[:MAX_LISTED_REJECTIONS]:
            zh.append(f"  {vehicle.vin}：{vehicle.decision_reason or ''}")
            en.append(f"  {vehicle.vin}: {vehicle.decision_reason or ''}")
        if len(rejected) > MAX_LISTED_REJECTIONS:
            more = len(rejected) - MAX_LISTED_REJECTIONS
            zh.append(f"  ……另有 {more} 辆，见申请页面")
            en.append(f"  … and {more} more, listed on the request's page")
    if request.decision_note:
        zh += ["", f"审核意见：{request.decision_note}"]
        en += ["", f"Note from the reviewer: {request.decision_note}"]
    zh.append("")
    en.append("")
    if letter is not None:
        letter_link = f"{public_url}/letters/{letter.number}"
        zh.append(f"查看和下载确认书：{letter_link}")
        en.append(f"See and download the letter: {letter_link}")
    zh.append(f"申请详情：{request_link}")
    en.append(f"The request: {request_link}")
    return subject, _bilingual(zh, en)


def letter_revoked_text(letter: Letter, *, public_url: str) -> tuple[str, str]:
    maker_zh, maker_en = _names(letter.manufacturer)
    link = f"{public_url}/letters/{letter.number}"
    count = len(letter.vehicles)
    subject = f"确认书 {letter.number} 已被撤销 / Letter {letter.number} was revoked"
    zh = [
        "您好：",
        "",
        f"{maker_zh} 撤销了确认书 {letter.number}，该确认书自即日起无效，不能再用于出口许可申请。",
        "",
        f"确认书编号：{letter.number}",
        f"出具日期：{letter.issued_on.isoformat()}",
        f"车辆：{count} 辆（这些车辆可以重新申请确认书）",
        f"撤销时间：{_china_time(letter.revoked_at)}",
        f"撤销原因：{letter.revocation_reason or ''}",
        "",
        f"详情：{link}",
    ]
    en = [
        "Hello,",
        "",
        f"{maker_en} revoked letter {letter.number}. It is no longer valid and cannot back an export"
        " license application.",
        "",
        f"Letter: {letter.number}",
        f"Issued on: {letter.issued_on.isoformat()}",
        f"Vehicles: {count} (they may be asked for in a new request)",
        f"Revoked at: {_china_time(letter.revoked_at)}",
        f"Reason: {letter.revocation_reason or ''}",
        "",
        f"Details: {link}",
    ]
    return subject, _bilingual(zh, en)


# -- delivery --------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # gave up: marked failed
    retrying: int = 0  # attempts that failed and will be tried again
    kept: int = 0  # no SMTP server: kept in the outbox


def _go_on_after(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def _attempt(
    session: Session, message_id: int, transport: Transport, *, mail_from: str, max_attempts: int
) -> str | None:
    """One delivery attempt of one message; its new state, or None when it was not ours to send.

    The attempt is claimed first (the attempt counter moves only if nobody else moved it), and
    the claim committed before talking to the server, so two workers never send one attempt
    twice and no transaction stays open while a server is slow."""
    row = session.execute(
        select(
            OutboxMessage.recipient,
            OutboxMessage.subject,
            OutboxMessage.body,
            OutboxMessage.created_at,
            OutboxMessage.attempts,
        ).where(OutboxMessage.id == message_id, OutboxMessage.state == MessageState.QUEUED.value)
    ).one_or_none()
    if row is None:
        session.commit()
        return None
    recipient, subject, body, created_at, attempts = row
    claimed = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.state == MessageState.QUEUED.value,
            OutboxMessage.attempts == attempts,
        )
        .values(attempts=attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if claimed != 1:
        return None
    try:
        transport.send(
            compose(recipient=recipient, subject=subject, body=body, mail_from=mail_from, written_at=created_at)
        )
    except Exception as exc:  # whatever the server, the network or the address does
        state = MessageState.FAILED if attempts + 1 >= max_attempts else MessageState.QUEUED
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        log.warning("mail %s to %s: attempt %d failed: %s", message_id, recipient, attempts + 1, error)
        values: dict[str, Any] = {"state": state.value, "last_error": error}
    else:
        state = MessageState.SENT
        values = {"state": state.value, "sent_at": clock.now_utc(), "last_error": None}
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return state.value


def deliver_pending(
    session: Session,
    transport: Transport | None,
    *,
    mail_from: str,
    max_attempts: int = MAX_ATTEMPTS,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    pause: Callable[[float], bool] = _go_on_after,
    limit: int | None = None,
    fresh_only: bool = False,
) -> DeliveryReport:
    """Deliver the queued messages (oldest first), ``limit`` (default ``DELIVERY_BATCH``) at a
    time, batch after batch until the queue is empty: a queue longer than one batch is not left
    waiting for the next commit. ``fresh_only`` takes only messages never tried yet.

    Within a batch each message is tried once per round, and the rounds are repeated after
    ``backoff`` pauses until every message is sent or failed (at most ``max_attempts`` rounds).
    ``pause(seconds)`` returns False to stop early (the app is shutting down): what is left stays
    queued. Without a transport, queued messages are kept. Commits after every attempt; never
    raises for what a mail server does."""
    batch_size = DELIVERY_BATCH if limit is None else limit
    report = DeliveryReport()
    after_id = 0  # batches follow each other by id, so no message is read twice in one delivery
    while True:
        query = select(OutboxMessage.id).where(
            OutboxMessage.state == MessageState.QUEUED.value, OutboxMessage.id > after_id
        )
        if fresh_only:
            query = query.where(OutboxMessage.attempts == 0)
        ids = list(session.scalars(query.order_by(OutboxMessage.id).limit(batch_size)))
        if not ids:
            session.commit()
            return report
        after_id = ids[-1]
        if not _deliver_batch(
            session,
            ids,
            transport,
            report,
            mail_from=mail_from,
            max_attempts=max_attempts,
            backoff=backoff,
            pause=pause,
        ):
            return report  # stopping: the rest stays queued
        if len(ids) < batch_size:
            return report


def _deliver_batch(
    session: Session,
    ids: list[int],
    transport: Transport | None,
    report: DeliveryReport,
    *,
    mail_from: str,
    max_attempts: int,
    backoff: Sequence[float],
    pause: Callable[[float], bool],
) -> bool:
    """One batch of :func:`deliver_pending`, counted into ``report``; False when a pause was
    told to stop."""
    if transport is None:
        if ids:
            report.kept += session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.state == MessageState.QUEUED.value)
                .values(state=MessageState.KEPT.value)
                .execution_options(synchronize_session=False)
            ).rowcount
        session.commit()
        return True
    session.commit()
    for round_number in range(max_attempts):
        if round_number and ids:
            delay = backoff[min(round_number - 1, len(backoff) - 1)] if backoff else 0.0
            if not pause(delay):
                return False
        again = []
        for message_id in ids:
            state = _attempt(session, message_id, transport, mail_from=mail_from, max_attempts=max_attempts)
            if state == MessageState.SENT:
                report.sent += 1
            elif state == MessageState.FAILED:
                report.failed += 1
            elif state == MessageState.QUEUED:
                report.retrying += 1
                again.append(message_id)
        ids = again
        if not ids:
            break
    return True


class MailDispatcher:
    """Delivers an app's queued mail: in one background thread per process (started by the first
    request or the first commit that queues mail), or synchronously after each such commit when
    the app says ``ISSUER_MAIL_INLINE`` (tests).

    The thread sweeps the queue when it starts and every ``sweep_seconds`` after its last
    delivery, so mail queued before a restart, or by a commit whose wake-up was lost, is sent
    without waiting for the next mail-producing commit. A wake-up during a retry pause sends the
    messages never tried yet at once; the retries keep their pause."""

    def __init__(self, *, database: Any, transport: Transport | None, mail_from: str, config: Mapping[str, Any]):
        self.database = database
        self.transport = transport
        self.mail_from = mail_from
        self._config = config
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def inline(self) -> bool:
        value = self._config.get("ISSUER_MAIL_INLINE")
        return bool(self._config.get("TESTING")) if value is None else bool(value)

    @property
    def backoff(self) -> tuple[float, ...]:
        return tuple(self._config.get("ISSUER_MAIL_BACKOFF", DEFAULT_BACKOFF))

    @property
    def sweep_seconds(self) -> float:
        return float(self._config.get("ISSUER_MAIL_SWEEP_SECONDS", SWEEP_SECONDS))

    @property
    def batch_size(self) -> int:
        return int(self._config.get("ISSUER_MAIL_BATCH", DELIVERY_BATCH))

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wake(self) -> None:
        """Called after a commit that queued mail. Never raises: the change is already done."""
        try:
            if self.inline:
                self.deliver_now()
            else:
                self._start()
                self._wakeup.set()
        except Exception:
            log.exception("mail delivery could not be started; the messages stay queued")

    def start(self) -> None:
        """Start the thread if it is not running (its first act is a sweep of the queue); nothing
        in inline mode. Cheap once running, so every request may call it. Never raises."""
        if self.inline or self.running or self.transport is None:
            return  # without SMTP, messages are kept as they are written: nothing to deliver
        try:
            self._start()
        except Exception:
            log.exception("mail delivery could not be started; the messages stay queued")

    def deliver_now(self, *, pause: Callable[[float], bool] = _go_on_after, fresh_only: bool = False) -> DeliveryReport:
        """Deliver what is queued, in a session of its own."""
        with self.database.session() as session:
            try:
                return deliver_pending(
                    session,
                    self.transport,
                    mail_from=self.mail_from,
                    backoff=self.backoff,
                    pause=pause,
                    limit=self.batch_size,
                    fresh_only=fresh_only,
                )
            except Exception:
                session.rollback()
                raise

    def _start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="issuer-mail", daemon=True)
            self._thread.start()
            atexit.register(self.stop)

    def _pause(self, seconds: float) -> bool:
        """A retry pause that a wake-up interrupts to send the new mail (once, without retries of
        its own: a new message that fails waits for the next sweep), then goes on waiting."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._wakeup.wait(remaining) and not self._stopping.is_set():
                self._wakeup.clear()
                try:
                    self.deliver_now(pause=lambda _seconds: False, fresh_only=True)
                except Exception:
                    log.exception("mail delivery failed; the messages stay queued for the next attempt")
        return False

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()  # a wake-up from now on means another delivery
            try:
                self.deliver_now(pause=self._pause)
            except Exception:
                log.exception("mail delivery failed; the messages stay queued for the next attempt")
            self._wakeup.wait(self.sweep_seconds)

    def stop(self, timeout: float = 30.0) -> None:
        """Let the thread finish the delivery under way (without further pauses) and end it."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wakeup.set()
        thread.join(timeout)
        self._thread = None
        atexit.unregister(self.stop)


# -- the outbox, as administrators see it ----------------------------------------------------------

OUTBOX_ROLES = (Role.PLATFORM_ADMIN, Role.MANUFACTURER_ADMIN)
MESSAGE_STATES = tuple(s.value for s in MessageState)


def _visible_messages(user: User) -> Any:
    """A platform administrator sees every message; a manufacturer administrator those about
    their manufacturer; nobody else reads the outbox."""
    role = user.user_role
    if role not in OUTBOX_ROLES:
        raise Forbidden(f"the role {user.role} may not read the outbox")
    query = select(OutboxMessage)
    if role is Role.MANUFACTURER_ADMIN:
        return query.where(OutboxMessage.manufacturer_id == user.manufacturer_id)
    if role is Role.PLATFORM_ADMIN:
        return query
    return query.where(false())


def _state_filter(query: Any, state: str | None) -> Any:
    if state is None:
        return query
    if state not in MESSAGE_STATES:
        raise ValidationFailed(f"unknown message state {state!r}", details={"state": ["unknown state"]})
    return query.where(OutboxMessage.state == state)


def list_messages(
    *, session: Session, user: User, state: str | None = None, limit: int = 50, offset: int = 0
) -> list[OutboxMessage]:
    """The messages the user may read, newest first."""
    query = _state_filter(_visible_messages(user), state)
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit).offset(offset)))


def count_messages(*, session: Session, user: User, state: str | None = None) -> int:
    query = _state_filter(_visible_messages(user), state)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def get_message(*, session: Session, user: User, message_id: int) -> OutboxMessage:
    """One message the user may read; another tenant's is reported as not found."""
    message = session.scalar(_visible_messages(user).where(OutboxMessage.id == message_id))
    if message is None:
        raise NotFound(f"no message {message_id}")
    return message


def _requeue(session: Session, message: OutboxMessage, *, actor: str) -> None:
    previous = message.state
    message.state = MessageState.QUEUED.value
    message.attempts = 0
    audit.record(
        session,
        action="mail.retried",
        object_type="mail",
        object_id=message.id,
        actor=actor,
        manufacturer_id=message.manufacturer_id,
        exporter_id=message.exporter_id,
        details={"recipient": message.recipient, "kind": message.kind, "was": previous},
    )


def retry_message(*, session: Session, user: User, message_id: int) -> OutboxMessage:
    """Queue a failed message again (with a fresh count of attempts); delivered after the commit."""
    message = get_message(session=session, user=user, message_id=message_id)
    if message.state != MessageState.FAILED.value:
        raise Conflict(f"message {message.id} is {message.state}; only a failed message is retried")
    _requeue(session, message, actor=user.email)
    _mark_pending(session)
    session.commit()
    return message


def requeue_messages(*, session: Session, states: Sequence[str]) -> int:
    """Queue every message in ``states`` (failed, kept) again, for ``issuer mail deliver``."""
    wanted = [s for s in states if s in (MessageState.FAILED.value, MessageState.KEPT.value)]
    if not wanted:
        return 0
    messages = list(session.scalars(select(OutboxMessage).where(OutboxMessage.state.in_(wanted))))
    for message in messages:
        _requeue(session, message, actor=audit.current_context().actor)
    session.commit()
    return len(messages)
