"""Deciding a request from the web layer (API and pages alike): inline or through the queue.

Without a job queue (no ``REDIS_URL``, the embedded default) a decision seals its letter before
answering, exactly as ever. With one, a letter of more than ``inline_issuance_max_vehicles``
vehicles is reserved in the decision's transaction together with its
:class:`~issuer.models.IssuanceJob`, queued after the commit, and the caller answered at once
(the API with ``202`` and a status URL, the pages with the request's page showing progress).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from flask import current_app, g
from sqlalchemy.orm import Session

from issuer.config import Settings
from issuer.models import IssuanceJob, JobState, Letter, User
from issuer.queue import IssuanceQueue
from issuer.services import issuance_jobs
from issuer.services import letters as letter_service


def job_queue() -> IssuanceQueue | None:
    return current_app.extensions.get("issuer.queue")  # type: ignore[no-any-return]


def issuance() -> letter_service.Issuance:
    return current_app.extensions["issuer.issuance"]  # type: ignore[no-any-return]


def _queue_job(queue: IssuanceQueue | None, user: User) -> letter_service.QueueJob | None:
    if queue is None:
        return None
    settings: Settings = current_app.config["ISSUER_SETTINGS"]

    def queue_job(session: Session, letter: Letter) -> IssuanceJob | None:
        if len(letter.vehicles) <= settings.inline_issuance_max_vehicles:
            return None  # small enough to seal while the caller waits
        existing = issuance_jobs.open_job_of_letter(session, letter.id)
        if existing is not None:
            return existing
        return issuance_jobs.create_job(
            session, letter, actor=user.email, origin_request_id=getattr(g, "request_id", None)
        )

    return queue_job


def decide(
    *,
    session: Session,
    user: User,
    request_id: int,
    approve: Sequence[str] | Literal["all_eligible"],
    reject: Sequence[tuple[str, str]],
    note: str,
    valid_until: dt.date | None = None,
) -> letter_service.Decision:
    """``decide_request`` with the app's issuance; a queued job is handed to the queue after
    the decision's commit (a failed hand-over is picked up by the workers' periodic check)."""
    queue = job_queue()
    decision = letter_service.decide_request(
        session=session,
        user=user,
        request_id=request_id,
        approve=approve,
        reject=reject,
        note=note,
        valid_until=valid_until,
        issuance=issuance(),
        queue_job=_queue_job(queue, user),
    )
    job = decision.job
    queued = queue is not None and job is not None and job.state == JobState.QUEUED.value
    if queued and queue.enqueue(job.id, origin_request_id=job.origin_request_id):  # type: ignore[union-attr]
        issuance_jobs.mark_enqueued(session, job.id)
    return decision


def status_url(job: IssuanceJob) -> str:
    return f"/api/v1/jobs/{job.id}"


def job_body(job: IssuanceJob) -> dict[str, Any]:
    """A job as the API shows it."""
    queue = job_queue()
    position = None
    if queue is not None and job.state == JobState.QUEUED.value:
        position = queue.position(job.id)
    done = job.state == JobState.DONE.value
    return {
        "id": job.id,
        "state": job.state,
        "request_id": job.request_id,
        "letter_number": job.letter_number if done else None,
        "letter_url": f"/api/v1/letters/{job.letter_number}" if done else None,
        "vehicles": job.vehicle_count,
        "attempts": job.attempts,
        "queue_position": position,
        "error": job.error,
        "status_url": status_url(job),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
