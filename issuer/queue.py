"""The job queue: RQ on Redis, carrying letters to be rendered and sealed to worker processes.

Why RQ: the work is one kind of job (a Python function with a job id), Redis is already the
rate limiter's store, and RQ gives what issuance needs with nothing more to run — retries with
delays, a timeout per job, a registry of started jobs that notices a worker that died (its
heartbeats stop; the job is retried), several workers on several machines sharing one Redis.
Celery brings a broker abstraction, a result backend and a beat scheduler we would not use;
Dramatiq is close, but RQ's registries make "what happened to this job" plain to inspect.

The database stays the record of what is owed (:mod:`issuer.services.issuance_jobs`); the RQ
job's id is the ``issuance_jobs`` row's id, so either can be found from the other.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

QUEUE_NAME = "issuer-issuance"
# A 5,000-vehicle letter renders in about 25 s on a 2-core machine; a job taking far longer
# is stuck, and is stopped and retried.
JOB_TIMEOUT_SECONDS = 10 * 60
# Three more attempts after the first, 10 s, 1 and 5 minutes later: long enough to ride out a
# database restart or a failover, short enough that an exporter is told soon.
RETRY_DELAYS_SECONDS = (10, 60, 300)
RESULT_TTL_SECONDS = 24 * 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
JOB_FUNCTION = "issuer.worker.issue_letter"
FAILURE_CALLBACK = "issuer.worker.attempt_failed"
# Redis commands answer in milliseconds; a web request must not hang on an unreachable Redis.
SOCKET_TIMEOUT_SECONDS = 5.0

ALIVE_STATES = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
}


class IssuanceQueue:
    """One Redis connection and the issuance queue on it."""

    def __init__(
        self, redis_url: str, *, name: str = QUEUE_NAME, retry_delays: tuple[int, ...] = RETRY_DELAYS_SECONDS
    ) -> None:
        self.redis_url = redis_url
        self.retry_delays = retry_delays
        self.redis = Redis.from_url(
            redis_url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
        )
        self.queue = Queue(name, connection=self.redis)

    def enqueue(self, job_id: str, *, origin_request_id: str | None = None) -> bool:
        """Queue the sealing of one letter; False when Redis could not take it (the job's row
        stays queued and a worker's periodic check queues it again)."""
        try:
            self.queue.enqueue(
                JOB_FUNCTION,
                job_id,
                job_id=job_id,
                job_timeout=JOB_TIMEOUT_SECONDS,
                retry=Retry(max=len(self.retry_delays), interval=list(self.retry_delays)),
                result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS,
                on_failure=Callback(FAILURE_CALLBACK),
                meta={"origin_request_id": origin_request_id},
                description=f"seal the letter of issuance job {job_id}",
            )
        except RedisError as exc:
            log.warning("could not queue issuance job %s: %s", job_id, exc)
            return False
        return True

    def is_alive(self, job_id: str) -> bool:
        """Whether the queue still holds the job in a state that will lead to a run."""
        try:
            job = Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            return False
        return job.get_status(refresh=False) in ALIVE_STATES

    def position(self, job_id: str) -> int | None:
        """0-based place in the queue, or None when not waiting (running, done, unknown)."""
        try:
            return self.queue.get_job_position(job_id)
        except RedisError:
            return None

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self.queue.count,
            "started": self.queue.started_job_registry.count,
            "scheduled": self.queue.scheduled_job_registry.count,
            "failed": self.queue.failed_job_registry.count,
        }
