"""Benchmark: 50 letters of 100 vehicles submitted and approved at once over HTTP, sealed by two
``issuer worker`` processes, one of which is killed midway (PostgreSQL, Redis).

One scratch PostgreSQL database gets bench/issue_letter.py's world with a registry of
``--letters`` x ``--vehicles`` VINs, an API token for the exporter user and one for the
after-sales user. A real gunicorn (issuer/gunicorn_conf.py, 2 workers x 4 threads,
ISSUER_ENV=production, RATELIMIT_ENABLED=false) serves it with REDIS_URL set to a Redis
database of its own (``--redis``, default redis://127.0.0.1:6379/14, flushed before and after)
and a queue name of its own; two ``issuer worker`` processes (the real command, each in its own
session) work that queue.

Then ``--letters`` threads (default 50) each, at the same moment: file a request of
``--vehicles`` eligible vehicles (POST /api/v1/requests, as the exporter), approve it (POST
/api/v1/requests/<id>/decision, as after-sales staff), which answers 202 with a status URL, and
poll that URL every second until its ``state`` is done or failed.

Midway (when ``--kill-after`` letters are done, default 20) one worker that is sealing a letter
is killed with SIGKILL: its process group and its work horse's (RQ puts the horse in a group of
its own, so killing the worker's group alone would leave the horse running to the end of its
letter), as losing the machine would. A replacement worker is started at once, as a
supervisor would. RQ notices the lost job only when its heartbeat expires (job monitoring
interval 10 s + 60 s, plus the 60 s RQ adds to a started job's registry entry) at the next
maintenance pass (every 30 s, issuer/worker.py), then retries it after 10 s (the queue's first
retry delay): the recovery time is reported as measured.

At the end it checks: every job done and none failed, the killed one in two attempts; 50
distinct letters, each valid, each PDF (downloaded through the API) authentic by
issuer.services.letters.verify_pdf with its 100 vehicles; no letter pending; the queue, its
started and failed registries empty; every VIN covered once. Any failed check fails the run.

Reported: letters per minute (first filing to last letter done), the same without the killed
letter, and the time from approval to letter done (the job's created_at to finished_at, as the
server recorded them; and as the polling client saw it), median and slowest.

    .venv/bin/python bench/end_to_end.py [--letters 50] [--vehicles 100] [--kill-after 20]

(--rows is accepted and ignored; --backends must include postgresql, else the run is skipped.)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _serving
import common
import issue_letter

DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
POLL_SECONDS = 1.0
DEADLINE_SECONDS = 15 * 60


@dataclass
class Submission:
    index: int
    request_id: int | None = None
    job_id: str | None = None
    status_url: str | None = None
    filed_at: float | None = None
    approved_at: float | None = None
    seen_done_at: float | None = None
    state: str | None = None
    letter_number: str | None = None
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Workers:
    """The ``issuer worker`` processes, each in a session of its own."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    def start(self, name: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our interpreter running issuer's CLI
            [sys.executable, "-c", "from issuer.cli import main; main()", "worker", "--name", name],
            cwd=common.ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> list[int]:
        """SIGKILL to the worker's process group and to its children's (the work horse, in a
        group of its own, and the RQ scheduler when the worker runs it); answers their pids."""
        process = self.processes[name]
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        horses = [int(p) for p in children.read_text().split()] if children.exists() else []
        os.killpg(process.pid, signal.SIGKILL)
        for horse in horses:
            with contextlib.suppress(ProcessLookupError):  # gone already: it was in the worker's group
                os.killpg(horse, signal.SIGKILL)
        process.wait(timeout=30)
        return horses

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for log in self._logs:
            log.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def request_body(index: int, vehicles: int, today: dt.date) -> dict[str, Any]:
    declared = issue_letter.declarations(index * vehicles, vehicles, today)
    return {
        "manufacturer": _serving.MANUFACTURER,
        "application_date": today.isoformat(),
        "reference": f"E2E-{index:03d}",
        "vehicles": [
            {
                "vin": v.vin,
                "brand": v.brand,
                "model": v.model,
                "registration_date": v.registration_date.isoformat(),
                "destination": v.destination,
            }
            for v in declared
        ],
    }


def submit(
    submission: Submission,
    base: str,
    tokens: dict[str, str],
    body: dict[str, Any],
    start: threading.Event,
    deadline: float,
    done: Callable[[Submission], None],
) -> None:
    import requests

    exporter = {"Authorization": f"Bearer {tokens['exporter']}"}
    staff = {"Authorization": f"Bearer {tokens['aftersales']}"}
    try:
        with requests.Session() as http:
            start.wait()
            submission.filed_at = time.monotonic()
            filed = http.post(f"{base}/api/v1/requests", json=body, headers=exporter, timeout=120)
            if filed.status_code != 201:
                raise RuntimeError(f"filing answered {filed.status_code}: {filed.text[:300]}")
            submission.request_id = filed.json()["id"]
            decided = http.post(
                f"{base}/api/v1/requests/{submission.request_id}/decision",
                json={"approve": "all_eligible"},
                headers=staff,
                timeout=120,
            )
            submission.approved_at = time.monotonic()
            if decided.status_code != 202:
                raise RuntimeError(f"the decision answered {decided.status_code}: {decided.text[:300]}")
            submission.status_url = decided.json()["status_url"]
            submission.job_id = submission.status_url.rsplit("/", 1)[1]
            while time.monotonic() < deadline:
                answer = http.get(base + submission.status_url, headers=exporter, timeout=60)
                if answer.status_code != 200:
                    raise RuntimeError(f"the status URL answered {answer.status_code}: {answer.text[:300]}")
                job = answer.json()
                submission.state = job["state"]
                if job["state"] in ("done", "failed"):
                    submission.seen_done_at = time.monotonic()
                    submission.job = job
                    submission.letter_number = job["letter_number"]
                    break
                time.sleep(POLL_SECONDS)
            else:
                raise RuntimeError(f"job {submission.job_id} still {submission.state} at the deadline")
    except Exception as exc:  # reported with the others at the end
        submission.error = f"{type(exc).__name__}: {exc}"
    finally:
        done(submission)


def busy_worker(redis_connection: Any, names: list[str]) -> tuple[str, str] | None:
    """(worker name, job id) of a worker among ``names`` that is running a job, if any."""
    from rq import Worker

    for worker in Worker.all(connection=redis_connection):
        if worker.name in names:
            job_id = worker.get_current_job_id()
            if job_id:
                return worker.name, job_id
    return None


def final_checks(
    url: str, base: str, tokens: dict[str, str], submissions: list[Submission], vehicles: int, queue: Any
) -> list[str]:
    """Every check of the end state; answers the failures (empty when all passed)."""
    import requests
    from sqlalchemy import func, select

    from issuer.db import Database
    from issuer.models import CoveredVin, IssuanceJob, Letter
    from issuer.services.letters import verify_pdf

    failures = [f"request #{s.index}: {s.error}" for s in submissions if s.error]
    numbers = [s.letter_number for s in submissions if s.letter_number]
    if len(set(numbers)) != len(submissions):
        failures.append(f"{len(set(numbers))} distinct letters for {len(submissions)} requests")
    headers = {"Authorization": f"Bearer {tokens['exporter']}"}
    database = Database(url)
    try:
        with database.session() as session, requests.Session() as http:
            states = dict(session.execute(select(IssuanceJob.state, func.count()).group_by(IssuanceJob.state)).all())
            if states != {"done": len(submissions)}:
                failures.append(f"issuance jobs by state: {states}")
            by_status = dict(session.execute(select(Letter.status, func.count()).group_by(Letter.status)).all())
            if by_status != {"valid": len(submissions)}:
                failures.append(f"letters by status: {by_status}")
            covered = session.scalar(select(func.count()).select_from(CoveredVin))
            if covered != len(submissions) * vehicles:
                failures.append(f"{covered} covered VINs, expected {len(submissions) * vehicles}")
            for number in numbers:
                pdf = http.get(f"{base}/api/v1/letters/{number}/pdf", headers=headers, timeout=60)
                result = verify_pdf(session=session, pdf=pdf.content)
                if not (result.authentic and result.status == "valid" and result.letter_number == number):
                    failures.append(f"{number}: not authentic and valid ({', '.join(result.reasons)})")
                elif result.letter is None or len(result.letter.vehicles) != vehicles:
                    failures.append(f"{number}: not {vehicles} vehicles")
                session.expunge_all()
    finally:
        database.engine.dispose()
    stats = queue.stats()
    if any(stats.values()):
        failures.append(f"the queue or its registries are not empty: {stats}")
    return failures


def run(args: argparse.Namespace, workdir: Path) -> int:
    import redis

    from issuer.queue import IssuanceQueue

    keys_dir = workdir / "keys"
    queue_name = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    store = redis.Redis.from_url(args.redis)
    store.flushdb()
    today = _serving.today()
    with common.scratch_database("postgresql", workdir) as url:
        started = time.perf_counter()
        _serving.set_up_world(url, workdir, keys_dir, args.letters * args.vehicles)
        tokens = _serving.api_tokens(url)
        print(f"# set up in {time.perf_counter() - started:.0f} s; queue {queue_name} on {args.redis}", flush=True)
        env = _serving.issuer_environment(url, keys_dir, REDIS_URL=args.redis, ISSUER_QUEUE_NAME=queue_name)
        queue = IssuanceQueue(args.redis, name=queue_name)
        workers = Workers(env, workdir)
        server = _serving.Gunicorn(env, workdir / "gunicorn.log", workers=2, threads=4)
        submissions = [Submission(i) for i in range(args.letters)]
        finished: list[Submission] = []
        lock = threading.Condition()

        def done(submission: Submission) -> None:
            with lock:
                finished.append(submission)
                lock.notify_all()

        kill: dict[str, Any] = {}
        try:
            server.start()
            for name in ("bench-worker-1", "bench-worker-2"):
                workers.start(name)
            time.sleep(3)  # the workers register with Redis
            bodies = [request_body(s.index, args.vehicles, today) for s in submissions]
            start = threading.Event()
            deadline = time.monotonic() + DEADLINE_SECONDS
            threads = [
                threading.Thread(target=submit, args=(s, server.base, tokens, body, start, deadline, done), daemon=True)
                for s, body in zip(submissions, bodies, strict=True)
            ]
            for thread in threads:
                thread.start()
            t0 = time.monotonic()
            start.set()
            print(f"# {args.letters} requests of {args.vehicles} vehicles filed and approved at once", flush=True)
            with lock:
                lock.wait_for(lambda: sum(1 for s in finished if s.state == "done") >= args.kill_after, timeout=600)
            chosen = None
            while chosen is None and time.monotonic() < deadline:
                chosen = busy_worker(queue.redis, ["bench-worker-1", "bench-worker-2"])
                if chosen is None:
                    time.sleep(0.05)
            if chosen is None:
                raise RuntimeError("no worker was busy to be killed")
            name, job_id = chosen
            kill["at"] = time.monotonic()
            kill["done_before"] = sum(1 for s in finished if s.state == "done")
            kill["horses"] = workers.kill(name)
            kill["worker"], kill["job_id"] = name, job_id
            workers.start("bench-worker-3")
            kill["replaced_after"] = time.monotonic() - kill["at"]
            print(
                f"# {kill['done_before']} letters done: killed {name} (SIGKILL to its group and its children's "
                f"{kill['horses']}: work horse, scheduler) while it sealed job {job_id}; bench-worker-3 started",
                flush=True,
            )
            for thread in threads:
                thread.join(timeout=max(1.0, deadline - time.monotonic()))
            t_end = time.monotonic()
            failures = final_checks(url, server.base, tokens, submissions, args.vehicles, queue)
        finally:
            workers.stop_all()
            server.stop()
            store.flushdb()
            if args.logs:
                Path(args.logs).mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    shutil.copy(log, Path(args.logs) / log.name)
    return report(args, submissions, kill, t0, t_end, failures, workers)


def report(
    args: argparse.Namespace,
    submissions: list[Submission],
    kill: dict[str, Any],
    t0: float,
    t_end: float,
    failures: list[str],
    workers: Workers,
) -> int:
    def server_seconds(s: Submission) -> float:
        job = s.job
        if not job.get("finished_at") or not job.get("created_at"):
            return float("nan")
        finished = dt.datetime.fromisoformat(job["finished_at"])
        created = dt.datetime.fromisoformat(job["created_at"])
        return (finished - created).total_seconds()

    completed = [s for s in submissions if s.seen_done_at is not None and s.approved_at is not None]
    killed = [s for s in completed if s.job_id == kill.get("job_id")]
    others = [s for s in completed if s.job_id != kill.get("job_id")]
    last = max((s.seen_done_at for s in completed), default=t_end) or t_end
    last_other = max((s.seen_done_at for s in others), default=t_end) or t_end
    rows = []
    for label, group in (("all letters", completed), ("without the killed one", others), ("the killed one", killed)):
        if not group:
            continue
        server = [server_seconds(s) for s in group]
        client = [(s.seen_done_at or 0) - (s.approved_at or 0) for s in group]
        span = (last if group is not others else last_other) - t0
        rows.append(
            [
                label,
                len(group),
                len(group) / span * 60 if group is not killed else float("nan"),
                statistics.median(server),
                max(server),
                statistics.median(client),
                max(client),
                max(s.job.get("attempts", 0) for s in group),
            ]
        )
    print(
        common.table(
            [
                "letters",
                "count",
                "letters/min",
                "median s",
                "slowest s",
                "client median s",
                "client slowest s",
                "max attempts",
            ],
            rows,
        )
    )
    print(
        "\nletters/min: letters over the time from the first filing to the last of them seen done. median s, "
        "slowest s: approval to letter done as the server recorded it (job created_at to finished_at); client: "
        f"from the 202 to the poll (every {POLL_SECONDS:g} s) that saw it done."
    )
    if killed:
        s = killed[0]
        recovered = (s.seen_done_at or 0) - kill["at"]
        print(
            f"recovery: the letter of the killed worker was done {recovered:.0f} s after the kill "
            f"(in {s.job.get('attempts')} attempts; a replacement worker ran {kill['replaced_after']:.1f} s after "
            "the kill, RQ retried the job once the heartbeat had expired)"
        )
    print(f"wall time {t_end - t0:.0f} s from the first filing to the end of the last poll")
    if failures:
        print("\nFAILED checks:\n  " + "\n  ".join(failures))
        for name in workers.processes:
            print(f"--- {name} log (tail) ---\n{workers.log_tail(name)}")
        return 1
    print(
        f"checks: {len(submissions)} distinct letters, each valid and authentic (verify_pdf of the PDF served by the "
        "API), every job done, none failed, no letter pending, the queue and its registries empty, "
        "every VIN covered once: met"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="postgresql", help="must include postgresql (default postgresql)")
    parser.add_argument("--rows", type=int, help="accepted for run_all.py and ignored")
    parser.add_argument("--letters", type=int, default=50, help="requests filed and approved at once (default 50)")
    parser.add_argument("--vehicles", type=int, default=100, help="vehicles per request (default 100)")
    parser.add_argument("--kill-after", type=int, default=20, help="kill a worker once this many are done (20)")
    parser.add_argument("--logs", help="copy the logs of gunicorn and the workers into this directory")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"a Redis database of its own (default {DEFAULT_REDIS})")
    args = parser.parse_args(argv)
    if args.letters < 2 or args.vehicles < 21 or not 0 < args.kill_after < args.letters:
        parser.error("need --letters >= 2, --vehicles > 20 (sealed by a worker) and 0 < --kill-after < --letters")
    if "postgresql" not in common.parse_backends(args.backends):
        print("# end_to_end.py runs on PostgreSQL only (concurrent filings and workers): skipped")
        return 0
    print(
        f"# end to end: {args.letters} x {args.vehicles} vehicles, gunicorn 2 x 4 threads, 2 issuer workers (one "
        f"killed midway, replaced), PostgreSQL + Redis on the same machine; {common.machine_line()}; "
        f"load {_serving.load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
