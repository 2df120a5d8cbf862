"""Benchmark: issuing a sealed letter of 10 to 5,000 vehicles, against WeasyPrint rendering it alone.

For each backend (default SQLite), one scratch database gets a manufacturer with a seal key and a
seal image, a registry holding the letters' VINs, 9 outlets in 3 destination countries (KZ 4,
RU 3, UZ 2, all brands), an exporter with an exporter user, and an after-sales user. Then, for
each size and repeat, two steps each run in a FRESH process (so each has its own peak memory):

  issue   the whole issuance: issuer.services.requests.submit_request of N eligible vehicles
          (half to KZ, 3/10 to RU, 1/5 to UZ; two brands, five models), then
          issuer.services.letters.decide_request(approve="all_eligible"), which reserves the
          letter, renders it (render_letter), seals it (PadesSealer) and stores it. The two calls
          get a session each, as two API calls would.
  render  the bare render of the identical HTML: the letter just issued is read back (its stored
          content, verification URL and seal mark, before the clock starts), then
          issuer.rendering.pdf.letter_html(...) and
          weasyprint.HTML(string=html, base_url=None, url_fetcher=LockedDownFetcher()).render()
          .write_pdf(). The HTML's SHA-256 is compared with the one the issuance rendered.

Before the measured steps one 10-vehicle letter is issued and thrown away (it warms the OS file
cache: fonts, the database, the interpreter's modules).

Each round issues and renders every size, the two steps of a size back to back; the overhead
(issue - render) / render is taken per round and its median over the rounds reported.

Targets (issue acceptance): at 1,000 vehicles the issuance adds at most 25% to the bare render's
time, and the letter has at most 35 pages; at 5,000 vehicles the issuance stays under 1 GB peak
memory.

    .venv/bin/python bench/issue_letter.py [--sizes 10,100,1000,5000] [--repeat N] [--backends sqlite]

(--rows, which run_all.py may pass to every benchmark, is accepted and ignored.)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
WMI = "LGX"
MANUFACTURER = "BENCHLTR"
EXPORTER = "BENCHEXPLTR"
EXPORTER_EMAIL = "exporter@letters.bench.example"
AFTERSALES_EMAIL = "aftersales@letters.bench.example"
PASSWORD = "correct-horse-battery"  # noqa: S105 - a scratch database's users
PASSPHRASE = "bench-key-passphrase"  # noqa: S105 - a scratch key
PUBLIC_URL = "https://issuer.bench.example"
OUTLETS = (("KZ", 4), ("RU", 3), ("UZ", 2))  # every outlet serves every brand
DESTINATIONS = ("KZ",) * 5 + ("RU",) * 3 + ("UZ",) * 2  # vehicle k goes to DESTINATIONS[k % 10]
DEFAULT_SIZES = "10,100,1000,5000"
WARM_UP_SIZE = 10
TARGET_OVERHEAD_AT, MAX_OVERHEAD = 1_000, 0.25
TARGET_PAGES_AT, MAX_PAGES = 1_000, 35
TARGET_MEMORY_AT, MAX_PEAK_MB = 5_000, 1024.0


# -- the world -------------------------------------------------------------------------------


def seal_png() -> bytes:
    """A round red seal with a transparent background, like a scanned company seal (400 px)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    red = (200, 16, 32, 230)
    draw.ellipse((8, 8, 392, 392), outline=red, width=14)
    draw.ellipse((40, 40, 360, 360), outline=red, width=3)
    star = [(200, 120), (222, 180), (285, 180), (234, 218), (253, 280), (200, 242), (147, 280), (166, 218),
            (115, 180), (178, 180)]  # fmt: skip
    draw.polygon(star, fill=red)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def set_up(url: str, workdir: Path, keys_dir: Path, vin_count: int) -> None:
    """Manufacturer with key and seal image, registry of ``vin_count`` VINs, outlets, exporter, users."""
    from sqlalchemy.orm import Session

    from issuer.db import make_engine
    from issuer.services import accounts, organisations
    from issuer.services.keys import generate_key

    manufacturer_id = common.create_manufacturer(url, MANUFACTURER, WMI, seed=31)
    csv_path = common.write_registry_csv(workdir / f"letters-registry-{vin_count}.csv", vin_count, WMI)
    common.bulk_load(url, manufacturer_id, csv_path)
    csv_path.unlink()
    if url.startswith("postgresql"):
        common.execute(url, "ANALYZE registered_vehicles")
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            generate_key(session=session, manufacturer_code=MANUFACTURER, keys_dir=keys_dir, passphrase=PASSPHRASE)
            organisations.set_seal_image(session=session, manufacturer_code=MANUFACTURER, image=seal_png())
            manufacturer = organisations.get_manufacturer(session, MANUFACTURER)
            common.add_outlets(session, manufacturer, [(country, "", count) for country, count in OUTLETS])
            organisations.create_exporter(
                session=session,
                code=EXPORTER,
                name="基准测试二手车出口有限公司",
                name_en="Benchmark Used Car Export Co., Ltd.",
                uscc=common.uscc(600_031),
            )
            accounts.create_user(
                session=session, email=EXPORTER_EMAIL, role="exporter", password=PASSWORD, exporter_code=EXPORTER
            )
            accounts.create_user(
                session=session,
                email=AFTERSALES_EMAIL,
                role="aftersales",
                password=PASSWORD,
                manufacturer_code=MANUFACTURER,
            )
    finally:
        engine.dispose()


def declarations(first: int, count: int, today: dt.date) -> list[Any]:
    """``count`` eligible vehicles from registry row ``first`` on: registered 30 days ago,
    application today, spread over the three destinations."""
    from issuer.domain.eligibility import VehicleDeclaration

    registered = today - dt.timedelta(days=30)
    out = []
    for k in range(count):
        vin, brand, model, _produced = common.registry_row(first + k, WMI)
        destination = DESTINATIONS[k % len(DESTINATIONS)]
        out.append(
            VehicleDeclaration(vin=vin, brand=brand, model=model, registration_date=registered, destination=destination)
        )
    return out


def issuance_settings(keys_dir: Path) -> Any:
    from issuer.sealing.signer import PadesSealer
    from issuer.services.letters import Issuance

    return Issuance(keys_dir=keys_dir, passphrase=PASSPHRASE, public_url=PUBLIC_URL, sealer=PadesSealer())


# -- the measured steps, each in its own process ---------------------------------------------


class _Phases:
    """Wall time and peak memory after each phase of the issuance, taken by thin wrappers around
    the functions ``decide_request`` calls (a few perf_counter calls: nothing measurable)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_after: dict[str, float] = {}
        self.html: str | None = None

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.peak_after[name] = common.peak_rss_mb()

        return timed

    def keep_html(self, function: Callable[..., str]) -> Callable[..., str]:
        def kept(*args: Any, **kwargs: Any) -> str:
            self.html = function(*args, **kwargs)
            return self.html

        return kept


class _TimedSealer:
    """The real sealer, with the time of its ``seal`` recorded."""

    def __init__(self, sealer: Any, phases: _Phases) -> None:
        self.name = sealer.name
        self.seal = phases.wrap("seal", sealer.seal)


def child_issue(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    from sqlalchemy import select

    import issuer.rendering.pdf as pdf_module
    import issuer.services.letters as letters_module
    from issuer import clock
    from issuer.db import Database
    from issuer.models import User
    from issuer.services.requests import submit_request

    phases = _Phases()
    letters_module.render_letter = phases.wrap("render", letters_module.render_letter)  # type: ignore[assignment]
    letters_module._reserve_letter = phases.wrap("reserve", letters_module._reserve_letter)  # type: ignore[assignment]
    pdf_module.letter_html = phases.keep_html(pdf_module.letter_html)  # type: ignore[assignment]
    settings = issuance_settings(Path(args.keys_dir))
    issuance = dataclasses.replace(settings, sealer=_TimedSealer(settings.sealer, phases))
    today = clock.today_in_china()
    vehicles = declarations(args.first, args.vehicles, today)
    database = Database(args.url)
    with contextlib.ExitStack() as stack:
        filing = stack.enter_context(database.session())
        deciding = stack.enter_context(database.session())
        exporter = filing.scalar(select(User).where(User.email == EXPORTER_EMAIL))
        staff = deciding.scalar(select(User).where(User.email == AFTERSALES_EMAIL))
        if exporter is None or staff is None:
            raise RuntimeError("the scratch database lacks the benchmark's users")
        filing.commit()  # end the read transactions: the decision must see the request filed
        deciding.commit()

        def issue() -> Any:
            started = time.perf_counter()
            request, _ = submit_request(
                session=filing,
                user=exporter,
                manufacturer_code=MANUFACTURER,
                application_date=today,
                reference=f"BENCH-{args.vehicles}",
                vehicles=vehicles,
            )
            phases.seconds["submit"] = time.perf_counter() - started
            started = time.perf_counter()
            decision = letters_module.decide_request(
                session=deciding,
                user=staff,
                request_id=request.id,
                approve="all_eligible",
                reject=(),
                note="",
                issuance=issuance,
            )
            phases.seconds["decide"] = time.perf_counter() - started
            return decision

        measured = common.measure(issue)
        decision = measured.pop("value")
        letter = decision.letter
        if letter is None or letter.status != "valid" or len(decision.approved) != args.vehicles:
            raise RuntimeError(
                f"expected a valid letter of {args.vehicles} vehicles, got {letter and letter.status} "
                f"with {len(decision.approved)} approved"
            )
        measured.update(
            number=letter.number,
            pages=letter.page_count,
            pdf_bytes=len(letter.pdf),
            html_sha256=hashlib.sha256((phases.html or "").encode("utf-8")).hexdigest(),
            phases=phases.seconds,
            peak_after=phases.peak_after,
        )
    database.engine.dispose()
    return measured


def child_render(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select
    from weasyprint import HTML

    from issuer.db import Database
    from issuer.domain.letter import LetterContent
    from issuer.models import Letter, SealKey
    from issuer.rendering.pdf import LockedDownFetcher, SealMark, letter_html

    database = Database(args.url)
    with database.session() as session:
        letter = session.scalar(select(Letter).where(Letter.number == args.number))
        if letter is None:
            raise RuntimeError(f"no letter {args.number}")
        record = session.get(SealKey, letter.seal_key_id)
        if record is None:
            raise RuntimeError(f"letter {args.number} names no seal key")
        # Exactly what complete_letter hands to render_letter.
        content = LetterContent.from_json(letter.content)
        verify_url = issuance_settings(Path(args.keys_dir)).verify_url(letter.number, letter.verification_code)
        seal = SealMark(kid=record.kid, algorithm=record.algorithm, image_png=letter.manufacturer.seal_image)
    database.engine.dispose()
    html_seen: list[str] = []

    def render() -> dict[str, int]:
        html = letter_html(content, verify_url=verify_url, seal=seal)
        html_seen.append(html)
        document = HTML(string=html, base_url=None, url_fetcher=LockedDownFetcher()).render()
        pdf = document.write_pdf()
        return {"pages": len(document.pages), "pdf_bytes": len(pdf)}

    measured = common.measure(render)
    measured.update(measured.pop("value"))
    measured["html_sha256"] = hashlib.sha256(html_seen[0].encode("utf-8")).hexdigest()
    return measured


# -- the driver ------------------------------------------------------------------------------


def run_backend(backend: str, sizes: list[int], repeat: int, workdir: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    keys_dir = workdir / f"keys-{backend}"
    keys_dir.mkdir()
    with common.scratch_database(backend, workdir) as url:
        started = time.perf_counter()
        set_up(url, workdir, keys_dir, WARM_UP_SIZE + sum(sizes) * repeat)
        print(f"# {backend}: set up in {time.perf_counter() - started:.1f} s", flush=True)
        base = ["--url", url, "--keys-dir", str(keys_dir)]
        common.run_child(SCRIPT, ["--child", "issue", *base, "--first", "0", "--vehicles", str(WARM_UP_SIZE)])
        first = WARM_UP_SIZE
        for round_ in range(1, repeat + 1):
            for size in sizes:
                issued = common.run_child(
                    SCRIPT, ["--child", "issue", *base, "--first", str(first), "--vehicles", str(size)]
                )
                first += size
                rendered = common.run_child(SCRIPT, ["--child", "render", *base, "--number", issued["number"]])
                if rendered["html_sha256"] != issued["html_sha256"]:
                    raise RuntimeError(f"{issued['number']}: the bare render's HTML differs from the issuance's")
                if rendered["pages"] != issued["pages"]:
                    raise RuntimeError(f"{issued['number']}: {rendered['pages']} pages bare, {issued['pages']} issued")
                print(
                    f"# {backend} round {round_}: {size:,} vehicles, {issued['pages']} pages: "
                    f"issue {issued['seconds']:.2f} s ({issued['peak_mb']:.0f} MB), "
                    f"bare render {rendered['seconds']:.2f} s ({rendered['peak_mb']:.0f} MB)",
                    flush=True,
                )
                results.append({"backend": backend, "vehicles": size, "issue": issued, "render": rendered})
    return results


def overhead(issued: dict[str, Any], rendered: dict[str, Any], key: str) -> float:
    """(issue - render) / render of one round, for ``key`` "seconds" or "cpu_seconds"."""
    return float((issued[key] - rendered[key]) / rendered[key])


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend and size: medians of the times, maxima of the peaks."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["backend"], r["vehicles"]), []).append(r)
    rows = []
    for (backend, vehicles), runs in groups.items():
        issues = [r["issue"] for r in runs]
        renders = [r["render"] for r in runs]

        def median(values: Iterator[float]) -> float:
            return statistics.median(list(values))

        phase_names = ("submit", "decide", "reserve", "render", "seal")
        rows.append(
            {
                "backend": backend,
                "vehicles": vehicles,
                "runs": len(runs),
                "pages": issues[0]["pages"],
                "pdf_mb": issues[0]["pdf_bytes"] / 1e6,
                "issue_s": median(i["seconds"] for i in issues),
                "render_s": median(r["seconds"] for r in renders),
                "issue_cpu_s": median(i["cpu_seconds"] for i in issues),
                "render_cpu_s": median(r["cpu_seconds"] for r in renders),
                "issue_peak_mb": max(i["peak_mb"] for i in issues),
                "render_peak_mb": max(r["peak_mb"] for r in renders),
                "phases": {p: median(i["phases"].get(p, 0.0) for i in issues) for p in phase_names},
                "peak_after": {p: max(i["peak_after"].get(p, 0.0) for i in issues) for p in ("render", "seal")},
                # Each round's issue and bare render run back to back, so a change in the machine's
                # load hits both; the median of the rounds' overheads is steadier than the overhead
                # of the two medians.
                "overhead": median(overhead(r["issue"], r["render"], "seconds") for r in runs),
                "cpu_overhead": median(overhead(r["issue"], r["render"], "cpu_seconds") for r in runs),
                "own_s": median(i["seconds"] - i["phases"].get("render", 0.0) for i in issues),
            }
        )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    main_rows = []
    phase_rows = []
    for r in rows:
        main_rows.append(
            [
                r["backend"],
                r["vehicles"],
                r["pages"],
                r["issue_s"],
                r["render_s"],
                r["overhead"] * 100,
                r["issue_s"] / r["pages"],
                r["issue_peak_mb"],
                r["render_peak_mb"],
                r["issue_cpu_s"],
                r["render_cpu_s"],
                r["cpu_overhead"] * 100,
            ]
        )
        p = r["phases"]
        in_decide = p["reserve"] + p["render"] + p["seal"]
        phase_rows.append(
            [
                r["backend"],
                r["vehicles"],
                p["submit"],
                p["decide"] - in_decide,
                p["reserve"],
                p["render"],
                p["seal"],
                max(0.0, r["issue_s"] - p["submit"] - p["decide"]),
                r["peak_after"]["render"],
                r["peak_after"]["seal"],
                r["pdf_mb"],
            ]
        )
    text = common.table(
        [
            "backend",
            "vehicles",
            "pages",
            "issue s",
            "bare render s",
            "overhead %",
            "issue s/page",
            "issue peak MB",
            "render peak MB",
            "issue CPU s",
            "render CPU s",
            "CPU overhead %",
        ],
        main_rows,
    )
    text += "\n\nWhere the issuance's time goes (seconds, medians; peaks in MB after the phase, max):\n"
    text += common.table(
        [
            "backend",
            "vehicles",
            "submit",
            "decide rest",
            "reserve",
            "render_letter",
            "seal",
            "other",
            "peak after render",
            "peak after seal",
            "PDF MB",
        ],
        phase_rows,
    )
    notes = (
        "issue s: wall time of submit_request + decide_request in a fresh process (imports and loading the two users "
        "not included); bare render s: letter_html + WeasyPrint render + write_pdf of the same HTML in another fresh "
        "process; overhead % = (issue - render) / render of each round, median of the rounds (each round runs the two "
        "back to back); times are medians of the repeats. Peak MB: the process's "
        "VmHWM, max of the repeats. CPU s: the process's CPU time (less disturbed by other load than wall time).\n"
        "Phases: submit = submit_request; reserve = _reserve_letter; render_letter and seal as called by "
        "complete_letter; decide rest = the rest of decide_request (loading the request, assessing it again, the "
        "decisions, the signing key, the two commits); other = the issuance's time outside both calls."
    )
    return text + "\n\n" + notes + "\n" + "\n".join(verdicts(rows))


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        by_size = {r["vehicles"]: r for r in rows if r["backend"] == backend}
        r = by_size.get(TARGET_OVERHEAD_AT)
        if r is None:
            out.append(f"{backend}: overhead at {TARGET_OVERHEAD_AT:,} vehicles not measured")
        else:
            met = r["overhead"] <= MAX_OVERHEAD
            out.append(
                f"{backend}: issuance adds {r['overhead']:.0%} to the bare render at {TARGET_OVERHEAD_AT:,} vehicles "
                f"(target <= {MAX_OVERHEAD:.0%}: {'met' if met else 'MISSED'}); CPU time {r['cpu_overhead']:.0%}; "
                f"the issuance's work besides render_letter takes {r['own_s']:.2f} s, "
                f"{r['own_s'] / r['render_s']:.0%} of the bare render"
            )
        r = by_size.get(TARGET_PAGES_AT)
        if r is None:
            out.append(f"{backend}: pages at {TARGET_PAGES_AT:,} vehicles not measured")
        else:
            out.append(
                f"{backend}: {r['pages']} pages at {TARGET_PAGES_AT:,} vehicles "
                f"(target <= {MAX_PAGES}: {'met' if r['pages'] <= MAX_PAGES else 'MISSED'})"
            )
        r = by_size.get(TARGET_MEMORY_AT)
        if r is None:
            out.append(f"{backend}: peak memory at {TARGET_MEMORY_AT:,} vehicles not measured")
        else:
            peak = r["issue_peak_mb"]
            out.append(
                f"{backend}: issuance peak {peak:.0f} MB at {TARGET_MEMORY_AT:,} vehicles "
                f"(target < {MAX_PEAK_MB:.0f} MB: {'met' if peak < MAX_PEAK_MB else 'MISSED'})"
            )
    return out


def code_line() -> str:
    """The commit measured and how many files under issuer/ and templates/ differ from it."""
    import subprocess

    def git(*args: str) -> str:
        completed = subprocess.run(  # noqa: S603 - git with fixed arguments
            ["git", "-C", str(common.ROOT), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        return completed.stdout.strip() if completed.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = len(git("status", "--porcelain", "--", "issuer", "templates").splitlines())
    return f"code: commit {commit}, {changed} file(s) under issuer/ and templates/ changed since"


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "").replace(",", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--sizes: not a list of numbers: {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise SystemExit("--sizes: give at least one size, each at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"vehicles per letter (default {DEFAULT_SIZES})")
    parser.add_argument("--repeat", type=int, default=1, help="letters issued per size (median reported; default 1)")
    parser.add_argument(
        "--backends",
        default="sqlite",
        help="comma-separated: sqlite, postgresql (default sqlite; PostgreSQL from TEST_DATABASE_URL "
        f"or {common.DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--rows", type=int, help="accepted for run_all.py and ignored: the registry holds the letters' VINs"
    )
    parser.add_argument("--child", choices=["issue", "render"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--keys-dir", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--vehicles", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--number", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        common.emit_child_result(child_issue(args) if args.child == "issue" else child_render(args))
        return 0
    sizes = parse_sizes(args.sizes)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    backends = common.parse_backends(args.backends)
    print(
        f"# letter issuance: sizes {', '.join(f'{s:,}' for s in sizes)}, {args.repeat} repeat(s), "
        f"{', '.join(backends)}; {common.machine_line()}\n# {code_line()}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        for backend in backends:
            results.extend(run_backend(backend, sizes, args.repeat, Path(tmp)))
    print(report(summarise(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
