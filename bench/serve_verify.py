"""Benchmark: public verification by number and code under wrk against gunicorn, against the
trivial JSON endpoint /healthz of the same server.

For each backend (default PostgreSQL, the production database, then SQLite), one scratch
database gets bench/issue_letter.py's world and ``--letters`` real letters (default 20, of 10 to
100 vehicles, issued through submit_request and decide_request: rendered and sealed). Then a
real gunicorn with issuer/gunicorn_conf.py serves it (ISSUER_ENV=production, JSON access log to
a file, RATELIMIT_ENABLED=false, no Redis) with ``--workers`` processes of ``--threads``
threads (by default what the configuration gives this machine: 2 workers per core, 4 threads)
and worker recycling off (``--max-requests 0``, see below), and wrk (1 thread,
``--connections`` connections) drives, in turn:

  healthz      GET /healthz                                   the trivial JSON endpoint
  verify JSON  GET /api/v1/verify/<number>?code=<code>        the API's verification by number
  verify HTML  GET /verify/<number>?code=<code>               the page a QR code opens

The two verification rows rotate over every letter (a Lua script builds each request's path
from the list of numbers and codes). Each endpoint gets a warm-up of ``--warmup`` seconds, then
``--rounds`` measured runs of ``--seconds`` seconds, the endpoints taking turns within a round.
Every answer must be a 200 (wrk counts the others; any makes the row fail).

wrk, gunicorn and PostgreSQL share the machine's cores (2 on the development VM).

Worker recycling: issuer/gunicorn_conf.py restarts a worker after about 10,000 requests. At
the rates measured here that is every few seconds per worker, and each restart (a new process
importing issuer and building its app) costs a second or two of CPU and the worker's kept
answers; the benchmark switches it off by default to measure serving itself, and
``--max-requests 10000`` measures it as configured.

Targets (issue 6): verification by number reaches at least 60% of /healthz's requests per
second on the same server, with a p99 latency under 50 ms.

    .venv/bin/python bench/serve_verify.py [--backends postgresql,sqlite] [--letters 20]
        [--workers 4] [--threads 4] [--connections 8] [--seconds 10] [--rounds 2] [--warmup 3]

(--rows, which run_all.py passes to every benchmark, is accepted and ignored.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _serving
import common

MIN_RATIO = 0.60
MAX_P99_MS = 50.0


def letter_sizes(count: int, smallest: int = 10, largest: int = 100) -> list[int]:
    if count == 1:
        return [largest]
    return [smallest + round((largest - smallest) * i / (count - 1)) for i in range(count)]


def process_cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time of a process and of its children that are running (gunicorn's
    workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    if children and listed.exists():
        pids.extend(int(p) for p in listed.read_text().split())
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def database_cpu_seconds(url: str) -> float:
    """CPU time of the PostgreSQL server processes serving ``url``'s database (NaN on SQLite,
    whose work is inside gunicorn's processes)."""
    if not url.startswith("postgresql"):
        return float("nan")
    rows = common.execute(
        url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return sum(process_cpu_seconds(int(pid), children=False) for (pid,) in rows)


def check_answers(base: str, letters: list[_serving.IssuedLetter]) -> None:
    """Every letter verifies over HTTP before the load starts; a wrong code is a 404."""
    import requests

    for letter in letters:
        answer = requests.get(f"{base}/api/v1/verify/{letter.number}", params={"code": letter.code}, timeout=30)
        body = answer.json()
        if answer.status_code != 200 or body["status"] != "valid" or len(body["letter"]["vehicles"]) != letter.vehicles:
            raise RuntimeError(f"{letter.number}: unexpected answer {answer.status_code} {str(body)[:300]}")
        page = requests.get(f"{base}/verify/{letter.number}", params={"code": letter.code}, timeout=30)
        if page.status_code != 200 or letter.number not in page.text:
            raise RuntimeError(f"{letter.number}: the page answered {page.status_code}")
    wrong = requests.get(
        f"{base}/api/v1/verify/{letters[0].number}", params={"code": "AAAA-AAAA-AAAA-AAAA"}, timeout=30
    )
    if wrong.status_code != 404:
        raise RuntimeError(f"a wrong code answered {wrong.status_code}")


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    sizes = letter_sizes(args.letters)
    keys_dir = workdir / f"keys-{backend}"
    with common.scratch_database(backend, workdir) as url:
        started = time.perf_counter()
        _serving.set_up_world(url, workdir, keys_dir, sum(sizes))
        letters = _serving.issue_letters(url, keys_dir, sizes)
        print(
            f"# {backend}: {len(letters)} letters of {min(sizes)}-{max(sizes)} vehicles "
            f"({sum(sizes):,} in all, {min(x.pages for x in letters)}-{max(x.pages for x in letters)} pages) "
            f"issued in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        scripts = {
            "healthz": _serving.wrk_script(workdir / "healthz.lua", ["/healthz"]),
            "verify JSON": _serving.wrk_script(
                workdir / "verify-json.lua", [f"/api/v1/verify/{x.number}?code={x.code}" for x in letters]
            ),
            "verify HTML": _serving.wrk_script(
                workdir / "verify-html.lua", [f"/verify/{x.number}?code={x.code}" for x in letters]
            ),
        }
        env = _serving.issuer_environment(url, keys_dir)
        server = _serving.Gunicorn(
            env,
            workdir / f"gunicorn-{backend}.log",
            workers=args.workers,
            threads=args.threads,
            extra_args=["--max-requests", str(args.max_requests)],
        )
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scripts}
        with server:
            check_answers(server.base, letters)
            pid = server.pid
            for script in scripts.values():
                _serving.run_wrk(server.base, script, connections=args.connections, seconds=args.warmup)
            for round_ in range(1, args.rounds + 1):
                for name, script in scripts.items():
                    cpu_before, db_before = process_cpu_seconds(pid), database_cpu_seconds(url)
                    result = _serving.run_wrk(server.base, script, connections=args.connections, seconds=args.seconds)
                    served = max(1, result["requests"])
                    result["app_cpu_ms"] = (process_cpu_seconds(pid) - cpu_before) * 1000 / served
                    result["db_cpu_ms"] = (database_cpu_seconds(url) - db_before) * 1000 / served
                    runs[name].append(result)
                    print(
                        f"# {backend} round {round_} {name}: {result['rate']:,.0f} req/s, "
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                        f"{result['errors']} errors; load {_serving.load_average()}",
                        flush=True,
                    )
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log_path, Path(args.logs) / server.log_path.name)
    rows = []
    for name, results in runs.items():
        rows.append(
            {
                "backend": backend,
                "endpoint": name,
                "requests": sum(r["requests"] for r in results),
                "rate": statistics.mean(r["rate"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": max(r["p99_ms"] for r in results),
                "max_ms": max(r["max_ms"] for r in results),
                "app_cpu_ms": statistics.median(r["app_cpu_ms"] for r in results),
                "db_cpu_ms": statistics.median(r["db_cpu_ms"] for r in results),
                "kb": results[0]["kb_per_request"],
                "errors": sum(r["errors"] for r in results),
            }
        )
    trivial = rows[0]["rate"]
    for row in rows:
        row["ratio"] = row["rate"] / trivial
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    text = common.table(
        [
            "backend",
            "endpoint",
            "requests",
            "req/s",
            "x healthz",
            "p50 ms",
            "p99 ms",
            "max ms",
            "app CPU ms/req",
            "db CPU ms/req",
            "KB/answer",
            "errors",
        ],
        [
            [
                r["backend"],
                r["endpoint"],
                r["requests"],
                r["rate"],
                r["ratio"],
                r["p50_ms"],
                r["p99_ms"],
                r["max_ms"],
                r["app_cpu_ms"],
                r["db_cpu_ms"],
                r["kb"],
                r["errors"],
            ]
            for r in rows
        ],
    )
    text += (
        f"\n\nreq/s: mean of {args.rounds} run(s) of {args.seconds:g} s; p50: median of the runs; p99 and max: "
        "the worst run. x healthz: req/s over /healthz's on the same server. app CPU ms/req: CPU time of "
        "gunicorn's master and workers per request; db CPU ms/req: the PostgreSQL server processes' (SQLite's is in "
        "the app's). "
        "Every answer was a 200 unless errors says otherwise."
    )
    lines = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        for r in rows:
            if r["backend"] != backend or r["endpoint"] == "healthz":
                continue
            ok_ratio = r["ratio"] >= MIN_RATIO
            ok_p99 = r["p99_ms"] < MAX_P99_MS
            lines.append(
                f"{backend} {r['endpoint']}: {r['ratio']:.0%} of /healthz's throughput "
                f"(target >= {MIN_RATIO:.0%}: {'met' if ok_ratio else 'MISSED'}); p99 {r['p99_ms']:.1f} ms "
                f"(target < {MAX_P99_MS:.0f} ms: {'met' if ok_p99 else 'MISSED'})"
                + ("" if r["endpoint"] == "verify JSON" else " [the targets are for the API; shown for comparison]")
            )
            if r["errors"]:
                lines.append(f"{backend} {r['endpoint']}: {r['errors']} answers were not 200 or failed: FAILED")
    return text + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="postgresql,sqlite", help="comma-separated (default postgresql,sqlite)")
    parser.add_argument("--rows", type=int, help="accepted for run_all.py and ignored")
    parser.add_argument("--letters", type=int, default=20, help="letters issued and rotated over (default 20)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="gunicorn worker processes (default: issuer/gunicorn_conf.py's, 2 per core)",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="recycle a gunicorn worker after this many requests (default 0: never; issuer/gunicorn_conf.py says "
        "10,000, which at these rates restarts each worker every few seconds)",
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections (default 8)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="measured runs per endpoint (default 2)")
    parser.add_argument("--logs", help="copy gunicorn's log (one JSON access line per request) into this directory")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up per endpoint, seconds (default 3)")
    args = parser.parse_args(argv)
    if args.letters < 1 or args.rounds < 1 or args.workers < 1 or args.threads < 1 or args.connections < 1:
        parser.error("--letters, --rounds, --workers, --threads and --connections must be at least 1")
    backends = common.parse_backends(args.backends)
    _serving.require_wrk()
    print(
        f"# verification under load: gunicorn {args.workers} workers x {args.threads} threads (gthread), wrk 1 thread "
        f"x {args.connections} connections, all on the same machine; RATELIMIT_ENABLED=false; "
        f"--max-requests {args.max_requests}; "
        f"{common.machine_line()}; load {_serving.load_average()}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        for backend in backends:
            rows.extend(run_backend(backend, args, Path(tmp)))
    print(report(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
