"""Issuance through the job queue: the record of each queued letter and what a worker does.

When a job queue is configured (``REDIS_URL``), approving a request reserves the letter as
before — number, content and VINs, in the decision's transaction — and writes an
:class:`~issuer.models.IssuanceJob` in that same transaction instead of rendering at once. The
API answers ``202`` with the job's status URL; a worker (``issuer worker``) renders, seals and
stores the letter (:func:`run_job`, which calls the same ``complete_letter`` as inline issuance).

Why the job has a row of its own, and not only an entry in Redis: Redis may lose what it holds
(this deployment runs it without persistence, and an enqueue right after the commit can fail),
while a reserved letter is work owed to an exporter. The row makes the work durable; the queue
only carries it. :func:`owed_jobs` lists what is still owed, so a worker's periodic check
(:mod:`issuer.worker`) queues again whatever the queue no longer knows.

Attempts are safe to repeat: ``complete_letter`` returns a finished letter as it is and stores
the PDF under a row lock, so a job run twice (queued twice, or a worker presumed dead that was
only slow) issues one letter. A permanent failure — a character no font has, an unusable seal
key — undoes the reservation (as inline issuance does) and fails the job at once; anything else
(a lost connection, a killed worker) is retried by the queue and reported as failed only when
the retries are spent.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from issuer import clock
from issuer.errors import Conflict, IssuerError, NotFound, ValidationFailed
from issuer.models import IssuanceJob, JobState, Letter, User
from issuer.services.letters import Issuance, complete_letter
from issuer.services.scoping import scoped

MAX_ERROR_CHARS = 2_000


def create_job(session: Session, letter: Letter, *, actor: str, origin_request_id: str | None = None) -> IssuanceJob:
    """Record that ``letter`` (pending, just reserved) is to be completed by a worker. Added to
    the caller's transaction; nothing is committed here."""
    job = IssuanceJob(
        id=secrets.token_hex(16),
        letter_id=letter.id,
        letter_number=letter.number,
        request_id=letter.request_id,
        manufacturer_id=letter.manufacturer_id,
        exporter_id=letter.exporter_id,
        vehicle_count=len(letter.vehicles),
        state=JobState.QUEUED.value,
        created_by=actor,
        created_at=clock.now_utc(),
        origin_request_id=origin_request_id,
    )
    session.add(job)
    session.flush()
    return job


def open_job_of_letter(session: Session, letter_id: int) -> IssuanceJob | None:
    """The unfinished job of a pending letter, if one exists."""
    return session.scalar(
        select(IssuanceJob)
        .where(
            IssuanceJob.letter_id == letter_id,
            IssuanceJob.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)),
        )
        .order_by(IssuanceJob.created_at.desc())
        .limit(1)
    )


def latest_job_of_request(session: Session, request_id: int) -> IssuanceJob | None:
    return session.scalar(
        select(IssuanceJob)
        .where(IssuanceJob.request_id == request_id)
        .order_by(IssuanceJob.created_at.desc(), IssuanceJob.id)
        .limit(1)
    )


def get_job(*, session: Session, user: User, job_id: str) -> IssuanceJob:
    """A job its requester's exporter or its manufacturer's staff may see; anyone else: 404."""
    query = scoped(
        select(IssuanceJob).where(IssuanceJob.id == job_id),
        user,
        manufacturer_column=IssuanceJob.manufacturer_id,
        exporter_column=IssuanceJob.exporter_id,
    )
    job = session.scalar(query)
    if job is None:
        raise NotFound(f"no issuance job {job_id}")
    return job


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(update(IssuanceJob).where(IssuanceJob.id == job_id).values(enqueued_at=clock.now_utc()))
    session.commit()


def _claim(session: Session, job_id: str) -> IssuanceJob | None:
    """Start an attempt: the job is ``running``, one more attempt counted. ``None`` for a job
    that is unknown or already finished (a duplicate delivery)."""
    job = session.scalar(select(IssuanceJob).where(IssuanceJob.id == job_id).with_for_update())
    if job is None or job.finished:
        session.commit()
        return None
    job.state = JobState.RUNNING.value
    job.attempts += 1
    job.started_at = clock.now_utc()
    job.error = None
    session.commit()
    return job


def _finish(session: Session, job_id: str, *, state: JobState, error: str | None = None) -> None:
    session.rollback()
    session.execute(
        update(IssuanceJob)
        .where(IssuanceJob.id == job_id)
        .values(state=state.value, error=(error or None) and error[:MAX_ERROR_CHARS], finished_at=clock.now_utc())
    )
    session.commit()


def run_job(*, session: Session, job_id: str, issuance: Issuance) -> str:
    """Do one attempt of a job; answers the job's state afterwards.

    A permanent failure (the letter cannot be printed or sealed) fails the job and returns; any
    other exception is left to propagate, for the queue to retry (:func:`record_failed_attempt`)."""
    job = _claim(session, job_id)
    if job is None:
        existing = session.get(IssuanceJob, job_id)
        return existing.state if existing is not None else "unknown"
    if job.letter_id is None:
        _finish(session, job_id, state=JobState.FAILED, error="the reserved letter no longer exists")
        return JobState.FAILED.value
    try:
        letter = complete_letter(session=session, letter_id=job.letter_id, issuance=issuance)
    except (ValidationFailed, Conflict, NotFound) as exc:  # the reservation is undone: not retried
        _finish(session, job_id, state=JobState.FAILED, error=exc.message)
        return JobState.FAILED.value
    if letter.status == "pending":  # cannot happen: complete_letter seals or raises
        raise IssuerError(f"letter {letter.number} is still pending after completion")
    _finish(session, job_id, state=JobState.DONE)
    return JobState.DONE.value


def record_failed_attempt(session: Session, job_id: str, *, error: str, final: bool) -> None:
    """An attempt ended in an unexpected error (or its worker died). With retries left the job
    waits in the queue again; without, it is failed and the pending letter stays reserved, to be
    finished from the request's page (or its VINs freed by rejecting it there)."""
    session.rollback()
    job = session.scalar(select(IssuanceJob).where(IssuanceJob.id == job_id).with_for_update())
    if job is None or job.finished:
        session.commit()
        return
    job.error = error[:MAX_ERROR_CHARS]
    if final:
        job.state, job.finished_at = JobState.FAILED.value, clock.now_utc()
    else:
        job.state = JobState.QUEUED.value
    session.commit()


def owed_jobs(session: Session, *, older_than: dt.timedelta) -> Sequence[str]:
    """Jobs still owed (queued or running) created longer ago than ``older_than``: the ones a
    worker's periodic check looks for in the queue."""
    cutoff = clock.now_utc() - older_than
    return session.scalars(
        select(IssuanceJob.id)
        .where(
            IssuanceJob.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)),
            IssuanceJob.created_at < cutoff,
        )
        .order_by(IssuanceJob.created_at)
        .limit(1_000)
    ).all()


def fail_job(session: Session, job_id: str, *, error: str) -> None:
    _finish(session, job_id, state=JobState.FAILED, error=error)
