"""``issuer worker``: an RQ worker that renders and seals queued letters.

Run as many as the machines have cores, on as many machines as needed; they share one
PostgreSQL and one Redis (``DATABASE_URL``, ``REDIS_URL``, and the same ``ISSUER_KEYS_DIR``
contents and ``ISSUER_KEY_PASSPHRASE`` as the web servers). Each job runs in a fresh child
process forked from the worker (RQ's default), so a 900 MB rendering gives its memory back when
it ends and a crash in a C library takes down one attempt, not the worker.

What makes a worker's death harmless:

- RQ notices it: a started job's heartbeat stops, and the first maintenance pass of any worker
  after the job's entry in the started registry expires (``job monitoring interval + 60 s``
  after the last heartbeat, plus the 60 s RQ adds to that entry: about 2 minutes) retries the
  job or, with no retries left, fails it — which :func:`attempt_failed` records on the job's
  row. Maintenance runs between two waits for a job, so an idle worker's wait is bounded by
  the maintenance interval (``worker_ttl``): with RQ's default a worker waits up to 405 s, and
  a lost job was found only some 7 minutes after its worker died (bench/end_to_end.py).
- Every maintenance pass also looks for jobs the database says are owed but the queue no
  longer knows (Redis restarted, an enqueue failed) and queues them again
  (:func:`requeue_lost`).
- An attempt may run twice; issuing stays exactly-once (see issuer.services.issuance_jobs).

SIGTERM (or Ctrl-C) is a warm shutdown: the current letter is finished, then the worker exits;
a second one stops at once (the job is then retried by another worker).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
from typing import Any

from flask import Flask
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from issuer.models import IssuanceJob
from issuer.observability import configure_logging, current_context
from issuer.queue import IssuanceQueue
from issuer.services import issuance_jobs

log = logging.getLogger(__name__)

# Jobs younger than this are not looked for in the queue: their enqueue may still be on its way.
LOST_JOB_GRACE = dt.timedelta(seconds=60)
MAINTENANCE_INTERVAL_SECONDS = 30
JOB_MONITORING_INTERVAL_SECONDS = 10
# RQ waits for a job for worker_ttl - 15 s and maintains only between waits: so that an idle
# worker maintains every MAINTENANCE_INTERVAL_SECONDS too.
WORKER_TTL_SECONDS = MAINTENANCE_INTERVAL_SECONDS + 15

_app: Flask | None = None
_app_pid: int | None = None  # the process that built (or was given) the app


def worker_app() -> Flask:
    """The app a worker runs jobs with, built once from the environment (as the web server's)."""
    global _app, _app_pid
    if _app is None:
        from issuer import create_app

        _app, _app_pid = create_app(), os.getpid()
    return _app


def use_app(app: Flask) -> None:
    """Run jobs with this app (the CLI's), instead of building one."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()


def issue_letter(job_id: str) -> str:
    """The job: seal the pending letter of issuance job ``job_id``; answers the job's state."""
    app = worker_app()
    database = app.extensions["issuer.db"]
    if os.getpid() != _app_pid:
        # A forked work horse must not use the connections its parent opened (the maintenance
        # pass): drop them from this process's pool without closing the parent's sockets.
        database.engine.dispose(close=False)
    job_row = None
    with app.app_context(), database.session() as session:
        job_row = session.get(IssuanceJob, job_id)
        context = {"job_id": job_id, "request_id": (job_row.origin_request_id if job_row else None) or job_id}
        token = current_context.set(context)
        try:
            state = issuance_jobs.run_job(session=session, job_id=job_id, issuance=app.extensions["issuer.issuance"])
        finally:
            current_context.reset(token)
    log.info("issuance job %s: %s", job_id, state, extra={"job_id": job_id, "state": state})
    return state


def attempt_failed(job: Job, connection: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ's failure callback: an attempt raised or its worker died. Called before RQ decides
    on a retry, so the attempt is final when no retries are left."""
    final = not (job.retries_left and job.retries_left > 0)
    if exc_value is not None:
        error = "".join(traceback.format_exception_only(exc_type, exc_value)).strip()
    else:
        error = "the worker running this job stopped (killed or lost)"
    app = worker_app()
    database = app.extensions["issuer.db"]
    with app.app_context(), database.session() as session:
        issuance_jobs.record_failed_attempt(session, job.id, error=error, final=final)
    log.warning("issuance job %s attempt failed (%s): %s", job.id, "final" if final else "will retry", error)


def requeue_lost(app: Flask, queue: IssuanceQueue) -> int:
    """Queue again the owed jobs the queue no longer holds; answers how many. A job the queue
    failed for good whose row was not updated (the callback could not reach the database) is
    failed on its row now."""
    database = app.extensions["issuer.db"]
    requeued = 0
    with app.app_context(), database.session() as session:
        for job_id in issuance_jobs.owed_jobs(session, older_than=LOST_JOB_GRACE):
            if queue.is_alive(job_id):
                continue
            try:
                status = Job.fetch(job_id, connection=queue.redis).get_status(refresh=False)
            except NoSuchJobError:  # unknown to the queue: queued again below
                status = None
            if status == JobStatus.FAILED:
                issuance_jobs.fail_job(session, job_id, error="failed in the queue after its retries")
                continue
            if queue.enqueue(job_id):
                requeued += 1
                log.warning("issuance job %s was owed but not queued: queued again", job_id)
    return requeued


class IssuerWorker(Worker):
    """RQ's worker, with the lost-job check added to its periodic maintenance."""

    issuer_app: Flask | None = None
    issuer_queue: IssuanceQueue | None = None

    def clean_registries(self) -> None:
        super().clean_registries()
        if self.issuer_app is not None and self.issuer_queue is not None:
            try:
                requeue_lost(self.issuer_app, self.issuer_queue)
            except Exception:  # a database hiccup must not stop the worker
                log.exception("the lost-job check failed; it runs again at the next maintenance")


def run_worker(*, burst: bool = False, name: str | None = None, max_jobs: int | None = None) -> bool:
    """Start a worker on the app's queue (blocking); answers whether it ran."""
    app = worker_app()
    queue: IssuanceQueue | None = app.extensions.get("issuer.queue")
    if queue is None:
        raise RuntimeError("issuer worker needs REDIS_URL: without a job queue letters are sealed inline")
    # Load the heavy modules before forking, so each job's child starts with them.
    import issuer.rendering.pdf
    import issuer.sealing.signer  # noqa: F401

    worker = IssuerWorker(
        [queue.queue],
        connection=queue.redis,
        name=name,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
        job_monitoring_interval=JOB_MONITORING_INTERVAL_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
    )
    worker.issuer_app, worker.issuer_queue = app, queue
    settings = app.config["ISSUER_SETTINGS"]
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    # RQ adds no handler of its own when the root logger has one (configured just above).
    return bool(worker.work(burst=burst, with_scheduler=True, max_jobs=max_jobs, logging_level=settings.log_level))
