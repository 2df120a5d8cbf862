"""Benchmark: POST /api/v1/precheck of 10,000 vehicles against a 1,000,000-VIN registry.

For each backend, a scratch database gets a manufacturer whose registry holds --rows VINs
(loaded with the raw bulk load of bench/common.py; the import itself is measured by
bench/import_registry.py), outlets in several countries, and an exporter user with an API token.
The request is then sent through Flask's test client, --runs times each way:

  named  the body names the manufacturer (one assessment)
  split  no manufacturer: the list is split across the hosted manufacturers by WMI

The 10,000 vehicles: 9,000 registered VINs (500 of them declared with another brand or model),
900 well-formed VINs of the manufacturer's WMI that are not in the registry, 50 of another
manufacturer's WMI and 50 with a wrong check digit; destinations spread over countries with
outlets, one without and an invalid code. Timed: the whole request, from the client's call to
the response's last byte (JSON body encoded beforehand).

Target (issue acceptance): under 2 s on both backends.

    .venv/bin/python bench/precheck.py [--rows N] [--vehicles N] [--runs N] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

WMI = "LGX"
OTHER_WMI = "LFV"  # held by a second manufacturer with an empty registry
TARGET_SECONDS = 2.0
OUTLETS = (  # country, brands served ("" = all), how many
    ("KZ", "", 6),
    ("RU", "Example", 5),
    ("RU", "Voyager", 3),
    ("UZ", "", 4),
    ("KG", "Example", 2),
    ("AE", "Voyager", 3),
    ("SA", "", 2),
    ("MN", "Example;Voyager", 1),
)
DESTINATIONS = ("KZ", "KZ", "KZ", "RU", "RU", "uz", "KG", "AE", "SA", "MN", "GE")  # GE: no outlet


def setup(url: str, csv_path: Path) -> str:
    """Registry, outlets, a second manufacturer and an exporter user; returns the API token."""
    from sqlalchemy.orm import Session

    from issuer.db import make_engine
    from issuer.services import accounts, organisations

    manufacturer_id = common.create_manufacturer(url, "BENCHPRE", WMI, seed=11)
    common.create_manufacturer(url, "BENCHOTHER", OTHER_WMI, seed=12)
    common.bulk_load(url, manufacturer_id, csv_path)
    if url.startswith("postgresql"):
        common.execute(url, "ANALYZE registered_vehicles")
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            manufacturer = organisations.get_manufacturer(session, "BENCHPRE")
            common.add_outlets(session, manufacturer, OUTLETS)
            organisations.create_exporter(
                session=session, code="BENCHEXP", name="基准测试出口有限公司", uscc=common.uscc(600_013)
            )
            user = accounts.create_user(
                session=session,
                email="exporter@bench.example",
                role="exporter",
                password="correct-horse-battery",  # noqa: S106 - a scratch database's user
                exporter_code="BENCHEXP",
            )
            return accounts.create_token(session=session, email=user.email)
    finally:
        engine.dispose()


def vehicles(registry_size: int, count: int, today: dt.date) -> list[dict[str, Any]]:
    """The mix described in the module's docstring, scaled to ``count``, in shuffled order."""
    from issuer.domain.vin import with_check_digit

    rng = random.Random(20261127)
    registered_count = count * 9 // 10
    mismatched = count // 20
    unknown = count - registered_count - count // 100
    wrong_wmi = (count - registered_count - unknown) // 2
    wrong_check = count - registered_count - unknown - wrong_wmi
    rows = [common.registry_row(i, WMI) for i in sorted(rng.sample(range(registry_size), registered_count))]
    out: list[dict[str, Any]] = []
    for k, (vin, brand, model, produced) in enumerate(rows):
        if k < mismatched:
            brand, model = (brand + " Motors", model) if k % 2 else (brand, model + "X")
        out.append(_vehicle(rng, vin, brand, model, produced, today))
    for k in range(unknown):  # this WMI, a VDS the registry never uses
        vin = with_check_digit(f"{WMI}ZZ9Z90SA{k:06d}")
        out.append(_vehicle(rng, vin, "Example", "E1", "", today))
    for k in range(wrong_wmi):
        vin = with_check_digit(f"{OTHER_WMI}AB1C20SA{k:06d}")
        out.append(_vehicle(rng, vin, "Example", "E1", "", today))
    for k in range(wrong_check):
        vin = rows[k][0]
        wrong = "0" if vin[8] != "0" else "1"
        out.append(_vehicle(rng, vin[:8] + wrong + vin[9:], rows[k][1], rows[k][2], "", today))
    rng.shuffle(out)
    return out


def _vehicle(rng: random.Random, vin: str, brand: str, model: str, produced: str, today: dt.date) -> dict[str, Any]:
    earliest = dt.date.fromisoformat(produced) if produced else today - dt.timedelta(days=400)
    registered = max(earliest, today - dt.timedelta(days=rng.randint(0, 220)))
    transfer = None if rng.random() < 0.5 else min(today, registered + dt.timedelta(days=rng.randint(0, 30)))
    return {
        "vin": vin if rng.random() < 0.9 else vin.lower(),
        "brand": brand,
        "model": model,
        "registration_date": registered.isoformat(),
        "export_transfer_date": transfer.isoformat() if transfer else None,
        "destination": rng.choice(DESTINATIONS),
    }


def measure(url: str, token: str, body: dict[str, Any], runs: int) -> dict[str, Any]:
    from issuer import create_app
    from issuer.config import Settings

    with tempfile.TemporaryDirectory(prefix="issuer-bench-keys-") as keys:
        app = create_app(Settings(database_url=url, keys_dir=Path(keys), ratelimit_enabled=False))
        client = app.test_client()
        payload = json.dumps(body).encode("utf-8")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        seconds = []
        cpu = []
        size = 0
        answer: dict[str, Any] = {}
        for _ in range(runs):
            cpu_started = time.process_time()
            started = time.perf_counter()
            response = client.post("/api/v1/precheck", data=payload, headers=headers)
            data = response.get_data()
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            if response.status_code != 200:
                raise RuntimeError(f"precheck answered {response.status_code}: {data[:500]!r}")
            size = len(data)
            answer = json.loads(data)
        app.extensions["issuer.db"].engine.dispose()
    return {"seconds": seconds, "cpu": cpu, "bytes": size, "answer": answer}


def verdict_counts(answer: dict[str, Any]) -> dict[str, int]:
    verdicts: list[str] = []
    if "vehicles" in answer:
        verdicts = [v["verdict"] for v in answer["vehicles"]]
    else:
        verdicts = [v["verdict"] for g in answer["groups"] for v in g["vehicles"]]
        verdicts += [u["verdict"] for u in answer["unassigned"]]
    return {name: verdicts.count(name) for name in sorted(set(verdicts))}


def run_backend(backend: str, csv_path: Path, args: argparse.Namespace, workdir: Path) -> list[list[object]]:
    from issuer import clock

    today = clock.today_in_china()
    listed = vehicles(args.rows, args.vehicles, today)
    rows: list[list[object]] = []
    with common.scratch_database(backend, workdir) as url:
        started = time.perf_counter()
        token = setup(url, csv_path)
        elapsed = time.perf_counter() - started
        print(f"# {backend}: registry of {args.rows:,} VINs set up in {elapsed:.1f} s", flush=True)
        for mode, body in (
            ("named", {"manufacturer": "BENCHPRE", "application_date": today.isoformat(), "vehicles": listed}),
            ("split", {"application_date": today.isoformat(), "vehicles": listed}),
        ):
            result = measure(url, token, body, args.runs)
            counts = verdict_counts(result["answer"])
            print(f"# {backend} {mode}: verdicts {counts}", flush=True)
            rows.append(
                [
                    backend,
                    mode,
                    len(listed),
                    args.runs,
                    statistics.median(result["seconds"]),
                    max(result["seconds"]),
                    min(result["seconds"]),
                    statistics.median(result["cpu"]),
                    result["bytes"] / 1e6,
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_options(parser)
    parser.add_argument("--vehicles", type=int, default=10_000, help="vehicles per request (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="requests timed per backend and mode (default 5)")
    parser.add_argument("--csv", help="use this registry CSV instead of generating one (must hold --rows rows)")
    args = parser.parse_args(argv)
    backends = common.parse_backends(args.backends)
    if args.vehicles * 9 // 10 > args.rows:
        parser.error("--rows must be at least 90% of --vehicles")
    print(
        f"# precheck: {args.vehicles:,} vehicles, registry of {args.rows:,} VINs, {args.runs} runs; "
        f"{common.machine_line()}",
        flush=True,
    )
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        workdir = Path(tmp)
        csv_path = Path(args.csv) if args.csv else common.write_registry_csv(workdir / "registry.csv", args.rows, WMI)
        for backend in backends:
            rows.extend(run_backend(backend, csv_path, args, workdir))
    print(
        common.table(
            ["backend", "mode", "vehicles", "runs", "median s", "max s", "min s", "median CPU s", "response MB"],
            rows,
        )
    )
    print()
    print(
        "seconds: wall time of the whole request through the test client; CPU s: the app's process only "
        "(PostgreSQL's server work is not in it)."
    )
    for backend, mode, *_, median, worst, _best, _cpu, _size in rows:
        met = worst < TARGET_SECONDS
        print(
            f"{backend} {mode}: median {median:.2f} s, max {worst:.2f} s "  # type: ignore[str-format]
            f"(target < {TARGET_SECONDS:.0f} s: {'met' if met else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
