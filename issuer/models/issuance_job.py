"""A letter's rendering and sealing handed to a worker through the job queue.

The row is written in the decision's own transaction, beside the pending letter it is to
complete, so the database — not Redis — is the record of work owed: a job that Redis lost
(a restart, an enqueue that failed) is found again from here and queued anew. Its state is what
``GET /api/v1/jobs/{id}`` answers.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from issuer.db import Base
from issuer.models.types import UtcDateTime, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class IssuanceJob(Base):
    __tablename__ = "issuance_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex, also the RQ job id
    # The pending letter; a letter that could not be sealed is deleted (its VINs freed), so the
    # job keeps the number it was to have and falls back to NULL here.
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id", ondelete="SET NULL"), index=True)
    letter_number: Mapped[str] = mapped_column(String(48))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("letter_requests.id"), index=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    exporter_id: Mapped[int] = mapped_column(ForeignKey("exporters.id"), index=True)
    vehicle_count: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    origin_request_id: Mapped[str | None] = mapped_column(String(128), default=None)  # X-Request-ID, for logs
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE.value, JobState.FAILED.value)
