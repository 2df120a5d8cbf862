"""Production registry imports run as jobs, so a long file does not hold the page that sent it.

The uploaded file is stored under the instance folder with a name of our choosing, an
``ImportJob`` row records who sent it and how far the import has got, and
:func:`run_vehicle_import` does the import (``services.registry.import_vehicles``, all or
nothing unless ``skip_invalid``) with its own sessions, in whatever thread the web layer gives
it. The stored file is deleted when the job ends, whatever the outcome.

Progress: the import reports every batch. While it runs, its transaction holds the writes; on
PostgreSQL the job row is updated beside it from a second connection, so any process can show
the progress. SQLite has a single writer (the import's transaction holds it until the end), so
there the progress is kept in this process's memory only, and the row is written when the job
ends. Percentages come from the line reached out of the file's line count (counted when the job
starts), expressed as an estimate of the bytes read.

A job whose thread dies with its process (a restart, a deploy) would stay ``running`` for ever
and keep its file. There is no scheduler and no "last progress" column, so the pages reap such
jobs lazily (:func:`reap_abandoned`, called when the registry import page or a job's page is
loaded): a job queued or running for more than ``ABANDONED_AFTER`` that no thread of this
process is running is marked failed and its file deleted. Imports take seconds to a couple of
minutes, so the age alone is a safe sign for a job another process (another worker) runs.
While a job of a manufacturer is queued or running, no other import of its registry is queued.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from issuer import clock
from issuer.errors import Conflict, ImportRejected, NotFound
from issuer.models import ImportJob, ImportState, Manufacturer, RegisteredVehicle
from issuer.services import registry as registry_service
from issuer.services.registry import import_vehicles
from issuer.services.tabular import refuse_large_workbook

log = logging.getLogger(__name__)

ALLOWED_SUFFIXES = ("csv", "xlsx")
# A page shows this many rejected lines (with the total); the job row keeps no more.
MAX_KEPT_ERRORS = 200
MAX_FILENAME_CHARS = 255
CHUNK_BYTES = 1024 * 1024
# A queued or running job older than this, run by no thread of this process, was abandoned.
ABANDONED_AFTER = dt.timedelta(minutes=30)
ABANDONED_ERROR = (
    "the import stopped before it finished (the server was restarted); nothing was imported, send the file again"
)
UNSAVED_ERROR = (
    "the import's outcome could not be saved; it has been logged "
    "(check the registry's count before sending the file again)"
)
OPEN_STATES = (ImportState.QUEUED.value, ImportState.RUNNING.value)


class SessionSource(Protocol):
    """What a job needs of ``issuer.db.Database``: a session factory and the engine's dialect."""

    sessions: Callable[[], Session]
    engine: Any


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size: int  # bytes


@dataclass(frozen=True)
class Progress:
    rows_done: int
    bytes_done: int
    known: bool  # False: the file's length in lines is unknown, so no percentage


# Progress of the jobs running in this process, by job id (see the module's docstring).
_live: dict[int, Progress] = {}
# The jobs this process has queued or is running: the ones it will not reap as abandoned.
_alive: set[int] = set()
_live_lock = threading.Lock()


def store_upload(stream: IO[bytes], *, directory: Path, filename: str) -> StoredFile:
    """Copy an uploaded file to ``directory/<random>/<sanitised name>``.

    The client's name decides nothing but the readable part of the stored name (kept so the
    audit trail names the file people know); its suffix must be one of ``ALLOWED_SUFFIXES``."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in ALLOWED_SUFFIXES:
        raise ImportRejected(
            f"{filename!r} is not a .csv or .xlsx file", details={"file": ["choose a .csv or .xlsx file"]}
        )
    stem = (secure_filename(Path(filename).stem) or "upload")[:100]
    folder = directory / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / f"{stem}.{suffix}"
    size = 0
    with path.open("xb") as out:
        while chunk := stream.read(CHUNK_BYTES):
            out.write(chunk)
            size += len(chunk)
    return StoredFile(path=path, size=size)


def readable_name(filename: str) -> str:
    """The name a browser sent, as the job shows it: its last part (after ``/`` or ``\\``, as old
    browsers send a Windows path), without control characters (a NUL, a line break), cut short."""
    name = Path(filename.replace("\\", "/")).name
    return " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())[:MAX_FILENAME_CHARS]


def refuse_oversized(stored: StoredFile) -> None:
    """Refuse a stored registry XLSX that unpacks to more than the import allows (a zip bomb),
    before anything opens it, with the problem named beside the upload's field."""
    try:
        refuse_large_workbook(stored.path, registry_service.MAX_UNPACKED_BYTES)
    except ImportRejected as exc:
        raise ImportRejected(exc.message, details={"file": [exc.message]}) from exc


def _xlsx_rows(path: Path) -> int | None:
    """The first sheet's row count as the workbook declares it (read-only: nothing is loaded).
    An archive too large to import is not opened: the import refuses it, saying why."""
    from openpyxl import load_workbook

    try:
        refuse_large_workbook(path, registry_service.MAX_UNPACKED_BYTES)
    except ImportRejected:
        return None
    try:
        with path.open("rb") as handle:
            workbook = load_workbook(handle, read_only=True, data_only=True)
            try:
                rows = workbook.worksheets[0].max_row if workbook.worksheets else None
            finally:
                workbook.close()
    except Exception:  # an unreadable workbook is reported by the import itself, line by line
        return None
    return rows if isinstance(rows, int) and rows > 0 else None


def discard_file(path: str | Path) -> None:
    """Delete a stored upload and the folder made for it."""
    path = Path(path)
    shutil.rmtree(path.parent, ignore_errors=True)


def create_vehicle_import(
    *, session: Session, manufacturer: Manufacturer, stored: StoredFile, filename: str, skip_invalid: bool, actor: str
) -> ImportJob:
    """Queue an import of a stored file into the manufacturer's production registry; refused
    (``Conflict``, beside the file field) while another import of it is queued or running."""
    # On PostgreSQL, two uploads at once queue one after the other (SQLite has one writer anyway).
    session.execute(select(Manufacturer.id).where(Manufacturer.id == manufacturer.id).with_for_update())
    refuse_if_busy(session, manufacturer_id=manufacturer.id)
    job = ImportJob(
        manufacturer_id=manufacturer.id,
        kind="vehicles",
        filename=readable_name(filename) or stored.path.name,
        stored_path=str(stored.path),
        skip_invalid=skip_invalid,
        state=ImportState.QUEUED.value,
        rows_done=0,
        bytes_total=stored.size,
        bytes_done=0,
        created_by=actor,
        created_at=clock.now_utc(),
    )
    session.add(job)
    session.commit()
    with _live_lock:
        _alive.add(job.id)
    return job


def open_job(session: Session, *, manufacturer_id: int) -> ImportJob | None:
    """The manufacturer's import that is queued or running, if any."""
    return session.scalar(
        select(ImportJob)
        .where(
            ImportJob.manufacturer_id == manufacturer_id,
            ImportJob.kind == "vehicles",
            ImportJob.state.in_(OPEN_STATES),
        )
        .order_by(ImportJob.id)
        .limit(1)
    )


def refuse_if_busy(session: Session, *, manufacturer_id: int) -> None:
    """Refuse a second import of a registry while one is queued or running: two would race, and
    the second, all or nothing, could refuse what the first had just made valid."""
    busy = open_job(session, manufacturer_id=manufacturer_id)
    if busy is not None:
        message = f"another import of the registry ({busy.filename}) is still {busy.state}; wait until it ends"
        raise Conflict(message, details={"file": [message]})


def reap_abandoned(session: Session, *, manufacturer_id: int) -> int:
    """Mark the manufacturer's abandoned jobs failed and delete their files (see the module's
    docstring); returns how many there were. Cheap when there are none: one indexed query."""
    cutoff = clock.now_utc() - ABANDONED_AFTER
    with _live_lock:
        alive = set(_alive)
    stale = [
        job
        for job in session.scalars(
            select(ImportJob).where(
                ImportJob.manufacturer_id == manufacturer_id,
                ImportJob.state.in_(OPEN_STATES),
                ImportJob.created_at < cutoff,
            )
        )
        if job.id not in alive
    ]
    if not stale:
        return 0
    for job in stale:
        log.warning("import job %s was abandoned (%s since %s); marking it failed", job.id, job.state, job.created_at)
        job.state = ImportState.FAILED.value
        job.error = ABANDONED_ERROR
        job.finished_at = clock.now_utc()
    session.commit()
    for job in stale:
        discard_file(job.stored_path)
    return len(stale)


def list_jobs(session: Session, *, manufacturer_id: int, limit: int = 20) -> list[ImportJob]:
    return list(
        session.scalars(
            select(ImportJob)
            .where(ImportJob.manufacturer_id == manufacturer_id, ImportJob.kind == "vehicles")
            .order_by(ImportJob.id.desc())
            .limit(limit)
        )
    )


def get_job(session: Session, *, manufacturer_id: int, job_id: int) -> ImportJob:
    """One of the manufacturer's jobs; another manufacturer's job does not exist for it."""
    job = session.get(ImportJob, job_id)
    if job is None or job.manufacturer_id != manufacturer_id:
        raise NotFound(f"no import job {job_id}")
    return job


def count_registered(session: Session, *, manufacturer_id: int) -> int:
    """How many VINs the manufacturer's production registry holds."""
    return (
        session.scalar(
            select(func.count())
            .select_from(RegisteredVehicle)
            .where(RegisteredVehicle.manufacturer_id == manufacturer_id)
        )
        or 0
    )


def progress_of(job: ImportJob) -> Progress:
    """How far the job has got: this process's live figures while it runs here, else the row's."""
    if job.state == ImportState.RUNNING.value:
        with _live_lock:
            live = _live.get(job.id)
        if live is not None:
            return live
    return Progress(rows_done=job.rows_done, bytes_done=job.bytes_done, known=job.bytes_total > 0)


def percent_of(job: ImportJob) -> int | None:
    """The share of the file read, 0-100; None while it cannot be told."""
    if job.state in (ImportState.DONE.value, ImportState.FAILED.value):
        return 100
    progress = progress_of(job)
    if not progress.known or job.bytes_total <= 0:
        return None if job.state == ImportState.RUNNING.value else 0
    return min(100, progress.bytes_done * 100 // job.bytes_total)


def status_of(job: ImportJob) -> dict[str, Any]:
    """The job as the progress page polls it."""
    return {
        "state": job.state,
        "rows_done": progress_of(job).rows_done,
        "percent": percent_of(job),
        "result": job.result,
        "error": job.error,
    }


def commits_progress(database: SessionSource, *, own_thread: bool) -> bool:
    """Whether progress can be committed to the job row while the import runs: only from a
    connection of its own (a job run in its own thread) and beside a database that allows a
    second writer (not SQLite, whose one writer is the import)."""
    return own_thread and database.engine.dialect.name != "sqlite"


def run_vehicle_import(database: SessionSource, job_id: int, *, commit_progress: bool) -> None:
    """Run a queued job to its end: ``done`` with the counts, or ``failed`` with the rejected
    lines (nothing imported) or the reason. Never raises: a job that breaks says so on its page,
    even when saving its outcome is what broke (it is then marked failed from a fresh session,
    and logged).

    The caller runs it inside the audit context of the request that queued it, so the import is
    recorded as that user's, from that address."""
    with _live_lock:
        _alive.add(job_id)
    try:
        _run_vehicle_import(database, job_id, commit_progress=commit_progress)
    except Exception:
        log.exception("import job %s: its outcome could not be saved", job_id)
        _mark_failed(database, job_id, UNSAVED_ERROR)
    finally:
        with _live_lock:
            _alive.discard(job_id)
            _live.pop(job_id, None)


def _mark_failed(database: SessionSource, job_id: int, error: str) -> None:
    """Record a job's failure from a session of its own (the job's own session is the one that
    failed), and delete its file; a failure here too is logged, never raised."""
    try:
        with closing(database.sessions()) as session:
            job = session.get(ImportJob, job_id)
            if job is None:
                return
            discard_file(job.stored_path)
            if job.state in OPEN_STATES:
                job.state = ImportState.FAILED.value
                job.error = error
                job.finished_at = clock.now_utc()
                session.commit()
    except Exception:
        log.exception("import job %s: it could not even be marked failed", job_id)


def _run_vehicle_import(database: SessionSource, job_id: int, *, commit_progress: bool) -> None:
    with closing(database.sessions()) as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.state != ImportState.QUEUED.value:
            return
        manufacturer = session.get(Manufacturer, job.manufacturer_id)
        path = Path(job.stored_path)
        job.state = ImportState.RUNNING.value
        session.commit()
        lines_total = _lines_of(path)
        reached = {"rows": 0}

        def progress(rows_read: int, line: int) -> None:
            reached["rows"] = rows_read
            bytes_done = min(job.bytes_total, job.bytes_total * line // lines_total) if lines_total else 0
            with _live_lock:
                _live[job_id] = Progress(rows_done=rows_read, bytes_done=bytes_done, known=bool(lines_total))
            if commit_progress:
                job.rows_done, job.bytes_done = rows_read, bytes_done
                session.commit()

        try:
            assert manufacturer is not None  # the job's foreign key cascades  # noqa: S101
            with closing(database.sessions()) as import_session:
                result = import_vehicles(
                    session=import_session,
                    manufacturer_code=manufacturer.code,
                    path=path,
                    skip_invalid=job.skip_invalid,
                    progress=progress,
                )
        except ImportRejected as exc:
            details = exc.details if isinstance(exc.details, list) else []
            job.state = ImportState.FAILED.value
            job.error = exc.message.splitlines()[0] if exc.message else "the file was refused"
            job.result = {
                "imported": False,
                "rejected": len(details),
                "errors": [_error(d) for d in details[:MAX_KEPT_ERRORS]],
            }
        except Exception:
            log.exception("import job %s failed", job_id)
            session.rollback()
            job.state = ImportState.FAILED.value
            job.error = "the import failed unexpectedly; it has been logged"
            job.result = None
        else:
            job.state = ImportState.DONE.value
            outcome = result.as_dict()
            outcome["errors"] = outcome["errors"][:MAX_KEPT_ERRORS]
            job.result = {"imported": True, **outcome}
        finally:
            discard_file(path)
            with _live_lock:
                _live.pop(job_id, None)
        job.rows_done = reached["rows"]
        job.bytes_done = job.bytes_total
        job.finished_at = clock.now_utc()
        session.commit()


def _error(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {"line": detail.get("line"), "message": str(detail.get("message", ""))}
    return {"line": None, "message": str(detail)}


def _lines_of(path: Path) -> int | None:
    """The stored file's length in lines (CSV) or rows (XLSX), header included, for the
    percentage; None when it cannot be told."""
    if not path.is_file():
        return None
    if path.suffix.lower() == ".xlsx":
        return _xlsx_rows(path)
    newlines = 0
    last = b""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    return newlines + (1 if last and last != b"\n" else 0) or None
