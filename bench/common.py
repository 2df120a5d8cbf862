"""Shared helpers of the benchmarks: scratch databases, registry CSVs, raw bulk loads, timing and
peak memory of a step run in its own process, and plain-text tables.

Every benchmark script puts the project root on ``sys.path`` itself, so ``python bench/x.py``
works from any directory without installing anything beyond the project's venv.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_ROWS = 1_000_000
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
REGISTRY_HEADER = ("vin", "brand", "model", "production_date")

# VIN layout used for generated rows: WMI (3) + VDS (5) + check digit (1) + model year (1)
# + plant (1) + serial (6). One plant holds a million serial numbers.
_VDS = ("AB1C2", "DE3F4", "GH5J6", "KL7M8")
_PLANTS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_MODEL_YEARS = "RST"  # 2024, 2025, 2026
_BRANDS = (("Example", ("E1", "E2", "E3 Long Range")), ("Voyager", ("V5", "V7 Pro")))
_FIRST_DAY = dt.date(2024, 1, 1).toordinal()


# -- command line ----------------------------------------------------------------------------


def postgres_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", "").strip() or DEFAULT_POSTGRES_URL


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="registry rows (default 1,000,000)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite, postgresql (default both); PostgreSQL from TEST_DATABASE_URL "
        f"or {DEFAULT_POSTGRES_URL}",
    )


def parse_backends(text: str) -> list[str]:
    backends = [b.strip().lower() for b in text.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise SystemExit(f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}")
    return backends


# -- scratch databases -----------------------------------------------------------------------


def migrate(url: str) -> None:
    from issuer.db import make_engine
    from issuer.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_database(backend: str, workdir: Path) -> Iterator[str]:
    """A migrated, empty database of ``backend``; yields its SQLAlchemy URL, removes it afterwards.

    SQLite: a file in ``workdir``. PostgreSQL: a new database on the server of
    ``postgres_url()``, dropped (WITH FORCE) on the way out.
    """
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        migrate(url)
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from sqlalchemy import text

    from issuer.db import make_engine

    admin = make_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    name = f"issuer_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq_url(url: str) -> str:
    """The plain ``postgresql://`` form psycopg.connect() takes, from a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def connect_sqlite(url: str) -> Any:
    """A plain sqlite3 connection with the pragmas issuer sets on its own connections."""
    import sqlite3

    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def execute(url: str, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement in its own transaction; return the rows it yields (if any)."""
    from sqlalchemy import text

    from issuer.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), params or {})
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def registry_count(url: str, manufacturer_id: int | None = None) -> int:
    if manufacturer_id is None:
        return int(execute(url, "SELECT count(*) FROM registered_vehicles")[0][0])
    rows = execute(url, "SELECT count(*) FROM registered_vehicles WHERE manufacturer_id = :m", {"m": manufacturer_id})
    return int(rows[0][0])


def empty_registry(url: str) -> None:
    """Remove every registry row and give the space back, so the next load meets an empty table."""
    if url.startswith("sqlite"):
        connection = connect_sqlite(url)
        try:
            connection.execute("DELETE FROM registered_vehicles")
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        return
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("TRUNCATE registered_vehicles")
        connection.execute("VACUUM ANALYZE registered_vehicles")


# -- tenants ---------------------------------------------------------------------------------


def uscc(seed: int) -> str:
    from issuer.domain.uscc import with_uscc_check

    return with_uscc_check(f"9131000{seed:010d}"[:17])


def create_manufacturer(url: str, code: str, wmi: str, *, seed: int) -> int:
    """Create a manufacturer holding ``wmi`` through issuer's service; return its id."""
    from sqlalchemy.orm import Session

    from issuer.db import make_engine
    from issuer.services import organisations

    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            manufacturer = organisations.create_manufacturer(
                session=session,
                code=code,
                name=f"基准测试汽车有限公司{seed}",
                name_en=f"Benchmark Motor {seed} Co., Ltd.",
                uscc=uscc(seed),
                wmis=(wmi,),
            )
            return manufacturer.id
    finally:
        engine.dispose()


# -- registry CSV ----------------------------------------------------------------------------


def registry_row(index: int, wmi: str = "LGX") -> tuple[str, str, str, str]:
    """Row number ``index`` (from 0) of the generated registry: a valid VIN for ``wmi``, distinct
    for every index; about one row in 50 has no production date, the others were made in 2024-25."""
    from issuer.domain.vin import with_check_digit

    if not 0 <= index < len(_PLANTS) * 1_000_000:
        raise ValueError(f"index {index} is outside 0..{len(_PLANTS) * 1_000_000 - 1}")
    plant = _PLANTS[index // 1_000_000]
    vin = with_check_digit(f"{wmi}{_VDS[index % len(_VDS)]}0{_MODEL_YEARS[index % 2]}{plant}{index % 1_000_000:06d}")
    brand, models = _BRANDS[index % len(_BRANDS)]
    model = models[(index // 7) % len(models)]
    produced = "" if index % 50 == 49 else dt.date.fromordinal(_FIRST_DAY + (index * 7919) % 730).isoformat()
    return vin, brand, model, produced


def registry_rows(count: int, wmi: str = "LGX") -> Iterator[tuple[str, str, str, str]]:
    """The first ``count`` rows of the generated registry (see ``registry_row``)."""
    return (registry_row(i, wmi) for i in range(count))


def write_registry_csv(path: Path, count: int, wmi: str = "LGX") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REGISTRY_HEADER)
        writer.writerows(registry_rows(count, wmi))
    return path


def read_registry_csv(path: Path) -> Iterator[tuple[str, str, str, str | None]]:
    """The CSV's data rows with the csv module, an empty production date as None."""
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for vin, brand, model, produced in reader:
            yield vin, brand, model, produced or None


# -- raw bulk loads (the baseline) -----------------------------------------------------------


def bulk_insert_sqlite(url: str, manufacturer_id: int, csv_path: Path) -> int:
    """One executemany of a plain INSERT in one transaction."""
    connection = connect_sqlite(url)
    try:
        cursor = connection.cursor()
        cursor.execute("BEGIN")
        cursor.executemany(
            "INSERT INTO registered_vehicles (manufacturer_id, vin, brand, model, production_date) "
            "VALUES (?, ?, ?, ?, ?)",
            ((manufacturer_id, *row) for row in read_registry_csv(csv_path)),
        )
        count = cursor.rowcount
        cursor.execute("COMMIT")
        return int(count)
    finally:
        connection.close()


def bulk_copy_postgresql(url: str, manufacturer_id: int, csv_path: Path) -> int:
    """COPY FROM STDIN through psycopg's cursor.copy, one row at a time as the csv module reads it."""
    import psycopg

    count = 0
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY registered_vehicles (manufacturer_id, vin, brand, model, production_date) FROM STDIN"
        ) as copy:
            for row in read_registry_csv(csv_path):
                copy.write_row((manufacturer_id, *row))
                count += 1
        connection.commit()
    return count


def bulk_load(url: str, manufacturer_id: int, csv_path: Path) -> int:
    if url.startswith("sqlite"):
        return bulk_insert_sqlite(url, manufacturer_id, csv_path)
    return bulk_copy_postgresql(url, manufacturer_id, csv_path)


# -- measuring -------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB; ru_maxrss where /proc is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(step: Callable[[], Any]) -> dict[str, Any]:
    """Run ``step`` once: its wall time, the CPU time this process spent on it (user + system;
    a database server's work is not in it), its result, and this process's RSS before and its
    peak RSS after."""
    start_mb = current_rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    value = step()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu, "value": value, "start_mb": start_mb, "peak_mb": peak_rss_mb()}


def emit_child_result(result: dict[str, Any]) -> None:
    """What a child process prints as its last line for ``run_child`` to read."""
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)


def run_child(script: Path, args: Sequence[str]) -> dict[str, Any]:
    """Run one measured step as ``python script args`` in a fresh process; return what it emitted.

    The peak memory to report is the child's own VmHWM (``peak_mb``), read by the child at the
    end: the kernel resets it at exec. (The child's ru_maxrss, as wait4() or RUSAGE_CHILDREN
    report it, is not used: Linux carries the forking parent's peak across exec into it.)
    """
    completed = subprocess.run(  # noqa: S603 - our own interpreter running our own script
        [sys.executable, str(script), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{script.name} {' '.join(args)} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if not lines:
        raise RuntimeError(f"{script.name} {' '.join(args)} printed no result:\n{completed.stdout}\n{completed.stderr}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    return result


# -- output ----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])]).rstrip()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def machine_line() -> str:
    import platform

    return (
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; {platform.platform(terse=True)}"
    )


def add_outlets(session: Any, manufacturer: Any, specs: Sequence[tuple[str, str, int]]) -> None:
    """Create outlets through the real service: (country, brands served — "" for all, how many)."""
    from issuer.services import outlets

    n = 0
    for country, brands, count in specs:
        for _ in range(count):
            n += 1
            outlets.create_outlet(
                session=session,
                manufacturer=manufacturer,
                actor="bench",
                values={
                    "code": f"{country}-{n:03d}",
                    "country": country,
                    "name": f"Service centre {n}",
                    "provider": f"After-sales Provider {n} LLP",
                    "address": f"{n * 17} Industrial Avenue, building {n}",
                    "city": "Capital",
                    "phone": f"+7 700 000 {n:04d}",
                    "email": f"service{n}@provider.example",
                    "brands": brands,
                    "valid_from": dt.date(2025, 1, 1),
                    "valid_to": None,
                },
            )
