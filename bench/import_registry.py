"""Benchmark: the production-registry import against a raw bulk load of the same rows.

For each backend, in one scratch database, three steps each run in a fresh process (so each has
its own peak memory):

  baseline  the CSV read with the csv module and bulk-loaded into registered_vehicles
            (SQLite: one executemany of a plain INSERT in one transaction;
             PostgreSQL: COPY FROM STDIN through psycopg's cursor.copy)
  import    issuer.services.registry.import_vehicles of the same file, for a fresh manufacturer,
            into the table emptied again after the baseline
  reimport  the same file imported again for that manufacturer (every row unchanged)

Targets (issue acceptance): import at most 2.0x the baseline's time; peak memory of the import
under 500 MB for 1,000,000 rows.

    .venv/bin/python bench/import_registry.py [--rows N] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
WMI = "LGX"
BASELINE_WMI = "LFV"  # the baseline's manufacturer holds another WMI; raw inserts check nothing
MAX_TIME_RATIO = 2.0
MAX_PEAK_MB = 500.0
STEPS = {"baseline": "baseline", "import": "import", "reimport": "reimport (unchanged)"}


# -- the measured steps, each in its own process ---------------------------------------------


def child(args: argparse.Namespace) -> None:
    csv_path = Path(args.csv)
    if args.child == "baseline":
        if args.url.startswith("postgresql"):
            import psycopg  # noqa: F401 - imported before the clock starts, like issuer's modules below
        else:
            import sqlite3  # noqa: F401
        measured = common.measure(lambda: common.bulk_load(args.url, args.manufacturer_id, csv_path))
        measured["rows"] = measured.pop("value")
    else:
        from sqlalchemy.orm import Session

        from issuer.db import make_engine
        from issuer.services.registry import import_vehicles

        engine = make_engine(args.url)

        def run() -> dict[str, int]:
            with Session(engine) as session:
                result = import_vehicles(session=session, manufacturer_code=args.manufacturer, path=csv_path)
            return {k: v for k, v in result.as_dict().items() if k != "errors"}

        measured = common.measure(run)
        engine.dispose()
        counts = measured.pop("value")
        measured.update(counts, rows=counts["added"] + counts["updated"] + counts["unchanged"])
    common.emit_child_result(measured)


# -- the driver ------------------------------------------------------------------------------


def run_backend(backend: str, csv_path: Path, rows: int, rounds: int, workdir: Path) -> list[dict[str, Any]]:
    """``rounds`` rounds of baseline, import, re-import in one scratch database, emptied between
    steps, so a change in the machine's load hits the steps of a round alike."""
    measured: dict[str, list[dict[str, Any]]] = {step: [] for step in STEPS}
    with common.scratch_database(backend, workdir) as url:
        baseline_id = common.create_manufacturer(url, "BENCHBASE", BASELINE_WMI, seed=1)
        common.create_manufacturer(url, "BENCHIMP", WMI, seed=2)
        common_args = ["--url", url, "--csv", str(csv_path)]
        for _ in range(rounds):
            result = common.run_child(
                SCRIPT, ["--child", "baseline", *common_args, "--manufacturer-id", str(baseline_id)]
            )
            loaded = common.registry_count(url, baseline_id)
            if loaded != rows:
                raise RuntimeError(f"{backend}: the baseline loaded {loaded} rows, not {rows}")
            measured["baseline"].append(result)
            common.empty_registry(url)
            result = common.run_child(SCRIPT, ["--child", "import", *common_args, "--manufacturer", "BENCHIMP"])
            if result["added"] != rows or common.registry_count(url) != rows:
                raise RuntimeError(f"{backend}: the import reported {result}, expected {rows} added")
            measured["import"].append(result)
            result = common.run_child(SCRIPT, ["--child", "reimport", *common_args, "--manufacturer", "BENCHIMP"])
            if result["unchanged"] != rows or result["added"] or result["updated"]:
                raise RuntimeError(f"{backend}: the re-import reported {result}, expected {rows} unchanged")
            measured["reimport"].append(result)
            common.empty_registry(url)
    return [
        {
            "backend": backend,
            "step": STEPS[step],
            "rows": runs[0]["rows"],
            "rounds": len(runs),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs),
        }
        for step, runs in measured.items()
    ]


def report(results: list[dict[str, Any]]) -> str:
    baselines = {r["backend"]: r for r in results if r["step"] == STEPS["baseline"]}
    rows = []
    for r in results:
        base = baselines[r["backend"]]
        rows.append(
            [
                r["backend"],
                r["step"],
                r["rows"],
                r["seconds"],
                int(r["rows"] / r["seconds"]) if r["seconds"] else 0,
                r["peak_mb"],
                r["seconds"] / base["seconds"],
                r["cpu_seconds"],
                r["cpu_seconds"] / base["cpu_seconds"],
            ]
        )
    text = common.table(
        ["backend", "step", "rows", "seconds", "rows/s", "peak MB", "x baseline", "client CPU s", "CPU x baseline"],
        rows,
    )
    verdicts = []
    for backend, base in baselines.items():
        step = next(r for r in results if r["backend"] == backend and r["step"] == STEPS["import"])
        ratio = step["seconds"] / base["seconds"]
        peak = step["peak_mb"]
        verdicts.append(
            f"{backend}: import {ratio:.2f}x baseline (target <= {MAX_TIME_RATIO:.1f}x: "
            f"{'met' if ratio <= MAX_TIME_RATIO else 'MISSED'}); peak {peak:.0f} MB "
            f"(target < {MAX_PEAK_MB:.0f} MB: {'met' if peak < MAX_PEAK_MB else 'MISSED'})"
        )
    notes = (
        "seconds: wall time of the step (median of the rounds); peak MB: the step's process peak RSS (VmHWM, "
        "max of the rounds); client CPU s: CPU time of that process (PostgreSQL's server work is not in it)."
    )
    return text + "\n\n" + notes + "\n" + "\n".join(verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_options(parser)
    parser.add_argument("--csv", help="use this registry CSV instead of generating one (must hold --rows rows)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of baseline, import, re-import per backend (median reported)"
    )
    parser.add_argument("--child", choices=["baseline", "import", "reimport"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--manufacturer-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--manufacturer", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    backends = common.parse_backends(args.backends)
    print(f"# registry import: {args.rows:,} rows, {args.rounds} round(s); {common.machine_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        workdir = Path(tmp)
        if args.csv:
            csv_path = Path(args.csv)
        else:
            started = time.perf_counter()
            csv_path = common.write_registry_csv(workdir / "registry.csv", args.rows, WMI)
            print(
                f"# generated {csv_path.stat().st_size / 1e6:.0f} MB of CSV in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        results: list[dict[str, Any]] = []
        for backend in backends:
            results.extend(run_backend(backend, csv_path, args.rows, args.rounds, workdir))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
