"""Run every benchmark script of bench/ in turn and print their tables (``make bench``).

Options after the script's own are passed to every benchmark, e.g.
``.venv/bin/python bench/run_all.py --rows 100000 --backends sqlite``.
Exits non-zero only when a benchmark itself fails to run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"common.py", "run_all.py"}


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHMARKS and not p.name.startswith("_"))


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__.strip())
        print("\nbenchmarks: " + ", ".join(p.name for p in scripts()))
        return 0
    failed = []
    for script in scripts():
        print(f"\n=== {script.name} ===", flush=True)
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, str(script), *argv], check=False)  # noqa: S603
        print(f"=== {script.name}: exit {completed.returncode}, {time.perf_counter() - started:.0f} s ===", flush=True)
        if completed.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
