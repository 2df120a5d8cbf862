"""What the serving benchmarks share (serve_verify.py, verify_upload.py, end_to_end.py): a world
that issues real letters, API tokens, a real gunicorn with issuer's configuration, and wrk.

The world is bench/issue_letter.py's (a manufacturer with a seal key and a seal image, a
registry, 9 outlets in KZ/RU/UZ, an exporter and its user, an after-sales user), so the letters
are like the ones that benchmark measures. Not a benchmark itself: run_all.py skips files whose
name starts with "_".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import issue_letter

MANUFACTURER = issue_letter.MANUFACTURER
PASSPHRASE = issue_letter.PASSPHRASE
PUBLIC_URL = issue_letter.PUBLIC_URL
EXPORTER_EMAIL = issue_letter.EXPORTER_EMAIL
AFTERSALES_EMAIL = issue_letter.AFTERSALES_EMAIL


# -- the world and its letters ---------------------------------------------------------------


def set_up_world(url: str, workdir: Path, keys_dir: Path, vin_count: int) -> None:
    """bench/issue_letter.py's world, with a registry of ``vin_count`` generated VINs."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    issue_letter.set_up(url, workdir, keys_dir, vin_count)


@dataclass(frozen=True)
class IssuedLetter:
    number: str
    code: str
    vehicles: int
    pages: int


def issue_letters(url: str, keys_dir: Path, sizes: Sequence[int], *, first: int = 0) -> list[IssuedLetter]:
    """Issue one letter per size through the real services (submit_request, then
    decide_request(approve="all_eligible"): reserve, render, seal, store), in this process.
    The letters cover registry rows ``first`` .. ``first + sum(sizes) - 1``."""
    from sqlalchemy import select

    from issuer import clock
    from issuer.db import Database
    from issuer.models import User
    from issuer.services.letters import decide_request
    from issuer.services.requests import submit_request

    issuance = issue_letter.issuance_settings(keys_dir)
    today = clock.today_in_china()
    database = Database(url)
    issued = []
    try:
        for size in sizes:
            with database.session() as filing, database.session() as deciding:
                exporter = filing.scalar(select(User).where(User.email == EXPORTER_EMAIL))
                staff = deciding.scalar(select(User).where(User.email == AFTERSALES_EMAIL))
                deciding.commit()
                request, _ = submit_request(
                    session=filing,
                    user=exporter,
                    manufacturer_code=MANUFACTURER,
                    application_date=today,
                    reference=f"BENCH-{first}",
                    vehicles=issue_letter.declarations(first, size, today),
                )
                decision = decide_request(
                    session=deciding,
                    user=staff,
                    request_id=request.id,
                    approve="all_eligible",
                    reject=(),
                    note="",
                    issuance=issuance,
                )
                letter = decision.letter
                if letter is None or letter.status != "valid" or len(decision.approved) != size:
                    raise RuntimeError(f"expected a valid letter of {size} vehicles, got {letter and letter.status}")
                issued.append(IssuedLetter(letter.number, letter.verification_code, size, letter.page_count or 0))
            first += size
    finally:
        database.engine.dispose()
    return issued


def letter_pdf(url: str, number: str) -> bytes:
    from sqlalchemy import select

    from issuer.db import Database
    from issuer.models import Letter

    database = Database(url)
    try:
        with database.session() as session:
            pdf = session.scalar(select(Letter.pdf).where(Letter.number == number))
    finally:
        database.engine.dispose()
    if not pdf:
        raise RuntimeError(f"letter {number} has no PDF")
    return bytes(pdf)


def api_tokens(url: str) -> dict[str, str]:
    """A new API token for the exporter user and one for the after-sales user."""
    from issuer.db import Database
    from issuer.services import accounts

    database = Database(url)
    try:
        with database.session() as session:
            return {
                "exporter": accounts.create_token(session=session, email=EXPORTER_EMAIL),
                "aftersales": accounts.create_token(session=session, email=AFTERSALES_EMAIL),
            }
    finally:
        database.engine.dispose()


# -- gunicorn --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def issuer_environment(url: str, keys_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a production deployment of issuer on the scratch database."""
    return {
        **os.environ,
        "ISSUER_ENV": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_KEY_PASSPHRASE": PASSPHRASE,
        "ISSUER_PUBLIC_URL": PUBLIC_URL,
        "ISSUER_LOG_FORMAT": "json",
        "RATELIMIT_ENABLED": "false",
        "REDIS_URL": "",
        **extra,
    }


@dataclass
class Gunicorn:
    """gunicorn -c python:issuer.gunicorn_conf wsgi:app, as `make serve` runs it."""

    env: Mapping[str, str]
    log_path: Path
    workers: int
    threads: int
    extra_args: Sequence[str] = ()  # gunicorn options, which win over the configuration file's
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        env = {
            **self.env,
            "ISSUER_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(self.workers),
            "ISSUER_THREADS": str(self.threads),
        }
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter running gunicorn
            [sys.executable, "-m", "gunicorn", "-c", "python:issuer.gunicorn_conf", *self.extra_args, "wsgi:app"],
            cwd=common.ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log_tail())
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not become ready:\n" + self.log_tail())

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("gunicorn is not running")
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(AttributeError):
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- wrk -------------------------------------------------------------------------------------

# Each connection walks the list of paths from its own starting point, so the requests in flight
# ask for different letters; done() prints the figures as one JSON line (latencies in µs).
_WRK_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
local index = 0

function setup(thread)
    thread:set("offset", counter)
    counter = counter + 7
end

function init(args)
    index = offset
end

function request()
    index = index + 1
    return wrk.format("GET", paths[(index %% #paths) + 1])
end

function done(summary, latency, requests)
    io.write(string.format(
        'WRK-RESULT {"requests": %%d, "duration_us": %%d, "bytes": %%d, "status_errors": %%d, '
        .. '"connect_errors": %%d, "read_errors": %%d, "write_errors": %%d, "timeouts": %%d, '
        .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\\n',
        summary.requests, summary.duration, summary.bytes, summary.errors.status, summary.errors.connect,
        summary.errors.read, summary.errors.write, summary.errors.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def wrk_script(path: Path, paths: Sequence[str]) -> Path:
    quoted = ", ".join(json.dumps(p) for p in paths)  # JSON strings of ASCII paths are Lua strings
    path.write_text(_WRK_SCRIPT % {"paths": quoted})
    return path


def run_wrk(base: str, script: Path, *, connections: int, seconds: float, threads: int = 1) -> dict[str, Any]:
    """wrk against ``base`` with the Lua ``script``; its figures (latencies in ms, rate per s)."""
    completed = subprocess.run(  # noqa: S603 - wrk with our arguments
        [  # noqa: S607 - wrk from PATH, installed by scripts/install-system-packages.sh wrk
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"^WRK-RESULT (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(match.group(1))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rate": raw["requests"] / seconds_run,
        "seconds": seconds_run,
        "errors": raw["status_errors"]
        + raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        "status_errors": raw["status_errors"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "kb_per_request": raw["bytes"] / max(1, raw["requests"]) / 1024,
    }


def require_wrk() -> None:
    try:
        subprocess.run(["wrk", "--version"], capture_output=True, check=False)  # noqa: S607
    except FileNotFoundError:
        raise SystemExit(
            "wrk is not installed: run ./scripts/install-system-packages.sh wrk (make bench does)"
        ) from None


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def today() -> dt.date:
    from issuer import clock

    return clock.today_in_china()
