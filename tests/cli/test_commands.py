"""The ``issuer`` command line: exit 0 and a result line on success; on bad input exit code 2,
a first stderr line ``error: <problem>`` and nothing written."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.models import ApiToken, Exporter, ExporterBlock, Manufacturer, Outlet, RegisteredVehicle, Role, User
from issuer.services import accounts
from tests import factories
from tests.factories import make_vin
from tests.services.test_outlets import HEADER as OUTLET_HEADER
from tests.services.test_outlets import row as outlet_row
from tests.services.test_registry_import import HEADER as REGISTRY_HEADER
from tests.services.test_registry_import import write_table

PASSWORD = "correct-horse-battery"


def run(cli: FlaskCliRunner, *args: object) -> Result:
    return cli.invoke(args=[str(a) for a in args])


def assert_refused(result: Result, fragment: str, *, one_line: bool = True) -> list[str]:
    """Exit code 2 and a first stderr line ``error: ...`` naming the problem; returns stderr's lines."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines, result.stdout
    assert lines[0].startswith("error: "), lines
    assert fragment in lines[0], lines[0]
    if one_line:
        assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    return lines


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def maker(session: Session) -> Manufacturer:
    return factories.manufacturer(session, wmis=("LGX",))


V = [make_vin("LGX", n) for n in range(6)]


# -- vehicles import --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_vehicles_import_prints_counts_when_file_is_valid(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    first = write_table(tmp_path / f"a{suffix}", [REGISTRY_HEADER, (V[0], "B", "M", ""), (V[1], "B", "M", "")])
    second = write_table(
        tmp_path / f"b{suffix}", [REGISTRY_HEADER, (V[0], "B", "M", ""), (V[1], "B", "M2", ""), (V[2], "B", "M", "")]
    )

    result = run(cli, "vehicles", "import", "--manufacturer", maker.code.lower(), first)
    again = run(cli, "vehicles", "import", "--manufacturer", maker.code, second)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == "added 2, updated 0, unchanged 0, rejected 0"
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == "added 1, updated 1, unchanged 1, rejected 0"
    assert count(session, RegisteredVehicle) == 3


def test_vehicles_import_exits_2_listing_every_bad_line_when_rows_are_bad(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    factories.register(session, maker, [V[0]], brand="Old")
    path = write_table(
        tmp_path / "registry.csv",
        [
            REGISTRY_HEADER,
            (V[0], "New", "M", ""),
            (make_vin("LRW", 1), "B", "M", ""),
            (V[1], "B", "M", ""),
            (V[2], "", "M", "2026-09-16"),
        ],
    )

    result = run(cli, "vehicles", "import", "--manufacturer", maker.code, path)

    lines = assert_refused(result, "2 invalid row(s); nothing was imported", one_line=False)
    assert [line.split(":")[0] for line in lines[1:]] == ["line 3", "line 5"]
    assert "does not carry a WMI" in lines[1]
    assert "brand is empty" in lines[2]
    assert "in the future" in lines[2]
    assert "added" not in result.stdout
    assert count(session, RegisteredVehicle) == 1
    assert session.scalar(select(RegisteredVehicle.brand)) == "Old"


def test_vehicles_import_writes_valid_rows_and_reports_invalid_ones_when_skip_invalid(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    wrong = V[1][:8] + ("1" if V[1][8] != "1" else "2") + V[1][9:]
    path = write_table(
        tmp_path / "registry.csv",
        [REGISTRY_HEADER, (V[0], "B", "M", ""), (wrong, "B", "M", ""), (V[2], "B", "M", "")],
    )

    result = run(cli, "vehicles", "import", "--manufacturer", maker.code, "--skip-invalid", path)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "added 2, updated 0, unchanged 0, rejected 1"
    [reported] = result.stderr.splitlines()
    assert reported.startswith("line 3: ")
    assert "wrong check digit" in reported
    assert set(session.scalars(select(RegisteredVehicle.vin))) == {V[0], V[2]}


def _write_bytes(content: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return write


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path] | None, str]] = {
    "missing_file": (None, "no such file"),
    "empty_file": (_write_bytes(b""), "the file is empty"),
    "not_utf8": (_write_bytes(f"vin,brand,model\n{V[0]},东岳,DY-S7\n".encode("gbk")), "not UTF-8"),
    "pk_but_not_xlsx": (_write_bytes(b"PK\x03\x04" + b"\x00" * 64), "not a readable XLSX workbook"),
    "missing_column": (_write_bytes(f"vin,brand\n{V[0]},B\n".encode()), "lacks the column(s) model"),
    "directory": (_mkdir, "is a directory"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_vehicles_import_exits_2_naming_the_problem_when_file_is_unusable(
    cli: FlaskCliRunner,
    session: Session,
    maker: Manufacturer,
    tmp_path: Path,
    case: tuple[Callable[[Path], Path] | None, str],
) -> None:
    make, fragment = case
    path = tmp_path / "registry.csv"
    if make is not None:
        make(path)

    result = run(cli, "vehicles", "import", "--manufacturer", maker.code, path)

    assert_refused(result, fragment)
    assert count(session, RegisteredVehicle) == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--manufacturer", "NOPE"], "no manufacturer with code 'NOPE'"),
        ([], "Missing option '--manufacturer'"),
    ],
    ids=["unknown_manufacturer", "no_manufacturer_option"],
)
def test_vehicles_import_exits_2_when_the_manufacturer_is_not_given_or_unknown(
    cli: FlaskCliRunner, session: Session, tmp_path: Path, args: list[str], fragment: str
) -> None:
    path = write_table(tmp_path / "registry.csv", [REGISTRY_HEADER, (V[0], "B", "M", "")])

    assert_refused(run(cli, "vehicles", "import", *args, path), fragment)
    assert count(session, RegisteredVehicle) == 0


def test_vehicles_exits_2_with_one_error_line_when_the_subcommand_is_unknown(cli: FlaskCliRunner) -> None:
    assert_refused(run(cli, "vehicles", "imprt"), "No such command 'imprt'")


# -- outlets import ---------------------------------------------------------------------------


def test_outlets_import_prints_counts_when_file_is_valid(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    first = write_table(tmp_path / "a.xlsx", [OUTLET_HEADER, outlet_row("KZ-1"), outlet_row("UZ-1", country="UZ")])
    second = write_table(
        tmp_path / "b.csv", [OUTLET_HEADER, outlet_row("KZ-1"), outlet_row("UZ-1", country="UZ", brands="东岳")]
    )

    result = run(cli, "outlets", "import", "--manufacturer", maker.code, first)
    again = run(cli, "outlets", "import", "--manufacturer", maker.code, second)

    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, "added 2, updated 0, unchanged 0, rejected 0")
    assert (again.exit_code, again.stdout.splitlines()[-1]) == (0, "added 0, updated 1, unchanged 1, rejected 0")


def test_outlets_import_exits_2_listing_every_bad_line_when_rows_are_bad(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(
        tmp_path / "outlets.csv",
        [OUTLET_HEADER, outlet_row("EU-1", country="EU"), outlet_row("KZ-1"), outlet_row("KZ-2", email="nope")],
    )

    result = run(cli, "outlets", "import", "--manufacturer", maker.code, path)

    lines = assert_refused(result, "2 invalid row(s); nothing was imported", one_line=False)
    assert [line.split(":")[0] for line in lines[1:]] == ["line 2", "line 4"]
    assert count(session, Outlet) == 0


def test_outlets_import_exits_2_when_file_does_not_exist(
    cli: FlaskCliRunner, maker: Manufacturer, tmp_path: Path
) -> None:
    assert_refused(run(cli, "outlets", "import", "--manufacturer", maker.code, tmp_path / "x.csv"), "no such file")


# -- manufacturers and exporters --------------------------------------------------------------


def manufacturer_args(**changes: object) -> list[str]:
    values: dict[str, object] = {
        "--code": "GWM",
        "--name": "长城汽车股份有限公司",
        "--name-en": "Great Wall Motor Company Limited",
        "--uscc": factories.uscc(42),
        "--wmi": ["LGW"],
    }
    values.update(changes)
    args = ["manufacturer", "create"]
    for option, value in values.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            args += [option, str(item)]
    return args


def test_manufacturer_create_prints_the_tenant_when_input_is_valid(cli: FlaskCliRunner, session: Session) -> None:
    result = run(cli, *manufacturer_args(**{"--wmi": ["lgw", "LA9/123"], "--type": "sales_company"}))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "manufacturer GWM created (sales_company; WMI LGW, LA9/123)"
    other = run(cli, *manufacturer_args(**{"--code": "JN", "--uscc": factories.uscc(43), "--wmi": ["LA9/124"]}))
    assert other.exit_code == 0, other.stderr
    assert count(session, Manufacturer) == 2


MANUFACTURER_REFUSALS = {
    "duplicate_code": ({"--code": "gwm", "--uscc": factories.uscc(43), "--wmi": ["LRW"]}, "code GWM already exists"),
    "duplicate_uscc": ({"--code": "OTHER", "--wmi": ["LRW"]}, "credit code"),
    "bad_uscc_check": (
        {
            "--code": "OTHER",
            "--uscc": factories.uscc(43)[:17] + ("A" if factories.uscc(43)[17] != "A" else "B"),
            "--wmi": ["LRW"],
        },
        "check character",
    ),
    "wmi_of_another": ({"--code": "OTHER", "--uscc": factories.uscc(43), "--wmi": ["LGW"]}, "belongs to"),
    "small_maker_taken": ({"--code": "OTHER", "--uscc": factories.uscc(43), "--wmi": ["LA9/123"]}, "belongs to"),
    "small_maker_without_plant": ({"--code": "OTHER", "--uscc": factories.uscc(43), "--wmi": ["LA9"]}, "LA9/123"),
    "bad_type": (
        {"--code": "OTHER", "--uscc": factories.uscc(43), "--wmi": ["LRW"], "--type": "oem"},
        "manufacturer type 'oem' is not one of",
    ),
    "no_wmi": ({"--code": "OTHER", "--uscc": factories.uscc(43), "--wmi": None}, "Missing option '--wmi'"),
}


@pytest.mark.parametrize("case", MANUFACTURER_REFUSALS.values(), ids=MANUFACTURER_REFUSALS.keys())
def test_manufacturer_create_exits_2_and_writes_nothing_when_input_is_refused(
    cli: FlaskCliRunner, session: Session, case: tuple[dict[str, object], str]
) -> None:
    changes, fragment = case
    assert run(cli, *manufacturer_args(**{"--wmi": ["LGW", "LA9/123"]})).exit_code == 0
    before = count(session, Manufacturer)

    assert_refused(run(cli, *manufacturer_args(**changes)), fragment)
    assert count(session, Manufacturer) == before
    assert session.scalar(select(Manufacturer.id).where(Manufacturer.code == "OTHER")) is None


def test_exporter_create_exits_2_when_code_or_uscc_is_taken(cli: FlaskCliRunner, session: Session) -> None:
    created = run(cli, "exporter", "create", "--code", "yuanhang", "--name", "宁波远航", "--uscc", factories.uscc(7))
    assert (created.exit_code, created.stdout.strip()) == (0, "exporter YUANHANG created")

    assert_refused(
        run(cli, "exporter", "create", "--code", "YUANHANG", "--name", "X", "--uscc", factories.uscc(8)),
        "code YUANHANG already exists",
    )
    assert_refused(
        run(cli, "exporter", "create", "--code", "OTHER", "--name", "X", "--uscc", factories.uscc(7)), "credit code"
    )
    assert_refused(run(cli, "exporter", "create", "--code", "OTHER", "--name", "X", "--uscc", "123"), "18 characters")
    assert count(session, Exporter) == 1


def test_exporter_block_and_unblock_keep_history_and_refuse_repeats(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer
) -> None:
    exporter = factories.exporter(session)
    target = ["--manufacturer", maker.code.lower(), "--exporter", exporter.code.lower()]

    blocked = run(cli, "exporter", "block", *target, "--reason", "resold vehicles")
    assert (blocked.exit_code, blocked.stdout.strip()) == (0, f"exporter {exporter.code} blocked by {maker.code}")
    assert_refused(run(cli, "exporter", "block", *target, "--reason", "again"), "already on")
    unblocked = run(cli, "exporter", "unblock", *target)
    assert (unblocked.exit_code, unblocked.stdout.strip()) == (0, f"exporter {exporter.code} unblocked by {maker.code}")
    assert_refused(run(cli, "exporter", "unblock", *target), "is not on")
    assert_refused(run(cli, "exporter", "block", *target), "Missing option '--reason'")
    assert_refused(run(cli, "exporter", "block", *target, "--reason", " "), "reason is required")

    session.expire_all()
    [entry] = session.scalars(select(ExporterBlock))
    assert entry.reason == "resold vehicles"
    assert entry.lifted_at is not None
    assert entry.lifted_by == "cli"


# -- users and tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_user_create_prints_the_user_when_role_and_organisation_fit(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, role: str
) -> None:
    exporter = factories.exporter(session)
    organisation = {
        Role.MANUFACTURER_ADMIN: ["--manufacturer", maker.code],
        Role.AFTERSALES: ["--manufacturer", maker.code],
        Role.EXPORTER: ["--exporter", exporter.code],
    }.get(Role(role), [])

    result = run(
        cli, "user", "create", "--email", "New@Example.test", "--role", role, *organisation, "--password", PASSWORD
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"user new@example.test created ({role})"
    assert PASSWORD not in result.output
    user = session.scalar(select(User).where(User.email == "new@example.test"))
    assert user is not None
    assert user.password_hash != PASSWORD
    assert accounts.password_matches(user.password_hash, PASSWORD)


USER_REFUSALS = {
    "short_password": (["--role", "reviewer", "--password", "short-pw1"], "at least 10 characters"),
    "bad_email": (["--email", "clerk(at)example.test", "--role", "reviewer"], "is not an e-mail address"),
    "duplicate_email": (["--email", "TAKEN@example.TEST", "--role", "reviewer"], "already exists"),
    "staff_without_manufacturer": (["--role", "aftersales"], "needs --manufacturer"),
    "exporter_without_exporter": (["--role", "exporter"], "needs --exporter"),
    "reviewer_with_manufacturer": (["--role", "reviewer", "--manufacturer", "M"], "belongs to no"),
    "unknown_role": (["--role", "superuser"], "role 'superuser' is not one of"),
    "unknown_manufacturer": (["--role", "aftersales", "--manufacturer", "NOPE"], "no manufacturer"),
    "no_password": (["--role", "reviewer", "--password", None], "Missing option '--password'"),
}


@pytest.mark.parametrize("case", USER_REFUSALS.values(), ids=USER_REFUSALS.keys())
def test_user_create_exits_2_and_writes_nothing_when_input_is_refused(
    cli: FlaskCliRunner, session: Session, maker: Manufacturer, case: tuple[list[str | None], str]
) -> None:
    given, fragment = case
    accounts.create_user(session=session, email="taken@example.test", role="reviewer", password=PASSWORD)
    options: dict[str, str | None] = {"--email": "new@example.test", "--password": PASSWORD}
    options.update(dict(zip(given[::2], [maker.code if v == "M" else v for v in given[1::2]], strict=True)))
    args = [item for option, value in options.items() if value is not None for item in (option, value)]

    result = run(cli, "user", "create", *args)

    assert_refused(result, fragment)
    assert PASSWORD not in result.output
    assert count(session, User) == 1


def test_token_create_prints_a_token_on_the_last_line_that_authenticates_the_user(
    cli: FlaskCliRunner, session: Session
) -> None:
    user = accounts.create_user(session=session, email="reviewer@example.test", role="reviewer", password=PASSWORD)

    result = run(cli, "token", "create", "--email", "Reviewer@Example.test")

    assert result.exit_code == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"isr_[A-Za-z0-9_-]{40,}", token), token
    session.expire_all()
    [stored] = session.scalars(select(ApiToken))
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (stored.token_hash, stored.prefix, stored.name)
    assert accounts.user_for_token(session=session, token=token).id == user.id


def test_token_create_exits_2_when_user_is_unknown_or_deactivated(cli: FlaskCliRunner, session: Session) -> None:
    user = accounts.create_user(session=session, email="gone@example.test", role="reviewer", password=PASSWORD)
    user.active = False
    session.commit()

    assert_refused(run(cli, "token", "create", "--email", "nobody@example.test"), "no user")
    assert_refused(run(cli, "token", "create", "--email", "gone@example.test"), "deactivated")
    assert count(session, ApiToken) == 0


# -- demo -------------------------------------------------------------------------------------


def test_demo_prints_the_accounts_and_changes_nothing_when_run_twice(cli: FlaskCliRunner, session: Session) -> None:
    models = (Manufacturer, Exporter, ExporterBlock, User, RegisteredVehicle, Outlet)

    first = run(cli, "demo")
    sizes = [count(session, model) for model in models]
    second = run(cli, "demo")

    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    assert [count(session, model) for model in models] == sizes
    assert second.stdout == first.stdout
    for user in session.scalars(select(User)):
        assert re.search(rf"^\s+{re.escape(user.email)}\s+{user.role}\s", first.stdout, re.MULTILINE), user.email
    assert sizes[models.index(RegisteredVehicle)] >= 300
