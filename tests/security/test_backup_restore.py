"""``issuer backup`` and ``issuer restore``: a round trip gives back every row, every letter
(each re-verified), the audit chain and working keys, accounts and tokens; a damaged, forged or
misdirected archive is refused with one line, exit 2, and nothing written.

How: a world is built with the real services in a database and keys folder of its own (letters
rendered and sealed for real — one revoked, one superseded, one sealed with a key since rotated,
a CA-issued key, a seal image, outlets with versions, the registry, a lifted block, users,
tokens, a finished import job, the audit trail and the outbox), backed up with the real command,
its keys folder then deleted (the server is lost), and restored with the real command into a new
database and keys folder, on SQLite and PostgreSQL, and from SQLite into PostgreSQL and back.
Damaged and crafted archives are made from a real one by changing bytes, members and the
manifest; after each refusal, the target database is compared row for row with its state before
and the keys folder must hold nothing. A backup taken while another thread issues a letter and
imports registry rows (between the backup's first table and the rest) must restore to a database
whose audit chain, counts and letters agree.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import shutil
import stat
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from sqlalchemy import JSON, Table, Text, cast, func, inspect, select

import issuer.models  # noqa: F401 - registers every table on the metadata
from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import Base, make_engine
from issuer.domain.eligibility import VehicleDeclaration
from issuer.migrate import alembic_config, downgrade, upgrade
from issuer.models import ApiToken, ImportJob, Letter, LetterRequest, Manufacturer, SealKey, User
from issuer.services import accounts, backup, import_jobs, organisations, outlets
from issuer.services.keys import generate_key, import_key, rotate_key
from issuer.services.letters import decide_request, revoke_letter, verify_by_code, verify_pdf
from issuer.services.requests import submit_request
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database
from tests.web.ui.conftest import Browser

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)
PASSPHRASE = "backup-round-trip-passphrase"
BACKENDS = ["sqlite", "postgresql"]
WORLD_TABLES = (
    "api_tokens",
    "audit_entries",
    "audit_head",
    "covered_vins",
    "exporter_blocks",
    "exporters",
    "import_jobs",
    "letter_outlets",
    "letter_requests",
    "letter_sequences",
    "letter_vehicles",
    "letters",
    "manufacturer_wmis",
    "manufacturers",
    "outbox_messages",
    "outlet_versions",
    "outlets",
    "registered_vehicles",
    "request_vehicles",
    "seal_keys",
    "users",
)


# -- sites: a database and a keys folder of their own, with an app over them ----------------------


class Site:
    def __init__(self, backend: str, url: str, folder: Path, passphrase: str = PASSPHRASE) -> None:
        self.backend, self.url, self.folder, self.passphrase = backend, url, folder, passphrase
        self.keys_dir = folder / "keys"
        self.settings = Settings(
            database_url=url,
            secret_key="backup-test-" + uuid.uuid4().hex,
            keys_dir=self.keys_dir,
            key_passphrase=passphrase,
            public_url="http://issuer.test",
            ratelimit_enabled=False,
        )
        self.app = create_app(self.settings)
        self.app.config["TESTING"] = True  # mail is kept inline: no delivery thread
        self.database = self.app.extensions["issuer.db"]
        self.issuance = self.app.extensions["issuer.issuance"]

    def session(self):  # type: ignore[no-untyped-def]
        return self.database.session()

    def cli(self, *args: object) -> Result:
        return self.app.test_cli_runner().invoke(args=[str(a) for a in args])

    def tables(self) -> list[Table]:
        present = set(inspect(self.database.engine).get_table_names())
        return [table for table in Base.metadata.sorted_tables if table.name in present]

    def counts(self) -> dict[str, int]:
        with self.database.engine.connect() as connection:
            return {t.name: connection.scalar(select(func.count()).select_from(t)) or 0 for t in self.tables()}

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, as the models read them, ordered by primary key; JSON
        columns as the text stored (so SQL NULL and JSON null differ, and the text must match)."""

        def columns(table: Table) -> list[Any]:
            return [cast(c, Text) if isinstance(c.type, JSON) else c for c in table.columns]

        with self.database.engine.connect() as connection:
            return {
                t.name: [
                    tuple(row) for row in connection.execute(select(*columns(t)).order_by(*t.primary_key.columns))
                ]
                for t in self.tables()
            }

    def key_files(self) -> list[Path]:
        return sorted(self.keys_dir.iterdir()) if self.keys_dir.exists() else []


class Sites:
    """Makes migrated, empty sites and removes them (PostgreSQL databases dropped) at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[tuple[Site, str | None]] = []

    def new(self, backend: str, *, passphrase: str = PASSPHRASE, revision: str = "head") -> Site:
        if backend == "postgresql" and not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests not run")
        folder = Path(tempfile.mkdtemp(prefix=f"{backend}-", dir=self.root))
        if backend == "sqlite":
            url, name = f"sqlite:///{folder / 'issuer.db'}", None
        else:
            name, url = _create_postgres_database()
        engine = make_engine(url)
        upgrade(engine, revision)
        engine.dispose()
        site = Site(backend, url, folder, passphrase)
        self.made.append((site, name))
        return site

    def close(self) -> None:
        for site, name in self.made:
            site.database.engine.dispose()
            if name is not None:
                _drop_postgres_database(name)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    made = Sites(tmp_path_factory.mktemp("sites"))
    yield made
    made.close()


# -- the world ----------------------------------------------------------------------------------


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (48, 48), (200, 0, 0, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class World:
    maker: str
    free_vins: list[str]
    clerk_email: str
    staff_email: str
    clerk_token: str
    staff_token: str
    revoked_token: str
    statuses: dict[str, str] = field(default_factory=dict)  # letter number -> status as issued
    codes: dict[str, str] = field(default_factory=dict)  # letter number -> verification code


def file_request(session, clerk: User, maker: str, vins: list[str], *, supersedes: str | None = None) -> int:  # type: ignore[no-untyped-def]
    vehicles = [VehicleDeclaration(vin, "Example", "E1", REGISTERED_ON, "KZ") for vin in vins]
    request, _ = submit_request(
        session=session,
        user=clerk,
        manufacturer_code=maker,
        application_date=APPLYING_ON,
        reference="CONTRACT-2026-7",
        vehicles=vehicles,
        supersedes=supersedes,
    )
    return request.id


def issue(site: Site, vins: list[str], *, supersedes: str | None = None, clerk: str, staff: str, maker: str) -> str:
    """File a request as the exporter's clerk and approve it as after-sales: a sealed letter."""
    with site.session() as session:
        clerk_user = session.scalar(select(User).where(User.email == clerk))
        request_id = file_request(session, clerk_user, maker, vins, supersedes=supersedes)
        decision = decide_request(
            session=session,
            user=session.scalar(select(User).where(User.email == staff)),
            request_id=request_id,
            approve="all_eligible",
            reject=[],
            note="",
            issuance=site.issuance,
        )
        assert decision.letter is not None
        return decision.letter.number


def build_world(site: Site) -> World:
    with site.session() as session:
        maker = factories.manufacturer(session, wmis=("LGX",))
        organisations.set_seal_image(session=session, manufacturer_code=maker.code, image=png())
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=site.keys_dir, passphrase=PASSPHRASE)
        other = factories.manufacturer(session, wmis=("LRW",))
        key_pem, bundle = factories.ca_issued(other.uscc, content_commitment=True)
        import_key(
            session=session,
            manufacturer_code=other.code,
            key_pem=key_pem,
            certificates_pem=bundle,
            key_password=None,
            keys_dir=site.keys_dir,
            passphrase=PASSPHRASE,
        )
        vins = factories.random_vins("LGX", 9, seed=23)
        factories.register(session, maker, vins)
        factories.outlet(session, maker, code="KZ-1", country="KZ")
        factories.outlet(session, maker, code="TH-1", country="TH")
        outlets.update_outlet(
            session=session, manufacturer=maker, code="KZ-1", values={"phone": "+7 700 111 2222"}, actor="test"
        )
        exporter, other_exporter = factories.exporter(session), factories.exporter(session)
        organisations.block_exporter(
            session=session, manufacturer_code=maker.code, exporter_code=other_exporter.code, reason="unpaid fees"
        )
        organisations.unblock_exporter(
            session=session, manufacturer_code=maker.code, exporter_code=other_exporter.code, reason="paid"
        )
        clerk = factories.user(session, "exporter", exporter=exporter)
        staff = factories.user(session, "aftersales", manufacturer=maker)
        factories.user(session, "manufacturer_admin", manufacturer=maker)
        factories.user(session, "reviewer")
        factories.user(session, "platform_admin")
        revoked_token = factories.token(session, clerk)
        accounts.revoke_token(
            session=session, user=clerk, token_id=session.scalar(select(func.max(ApiToken.id)))
        )
        world = World(
            maker=maker.code,
            free_vins=vins[7:9],
            clerk_email=clerk.email,
            staff_email=staff.email,
            clerk_token=factories.token(session, clerk),
            staff_token=factories.token(session, staff),
            revoked_token=revoked_token,
        )
        # A finished import job (its result is JSON) that added two VINs to the registry.
        upload = import_jobs.store_upload(
            io.BytesIO(
                b"vin,brand,model,production_date\n"
                + "".join(f"{v},Example,E1,2025-05-01\n" for v in factories.random_vins("LGX", 2, seed=99)).encode()
            ),
            directory=site.folder / "uploads",
            filename="registry.csv",
        )
        job = import_jobs.create_vehicle_import(
            session=session, manufacturer=maker, stored=upload, filename="registry.csv", skip_invalid=False, actor="t"
        )
    import_jobs.run_vehicle_import(site.database, job.id, commit_progress=False)
    with site.session() as session:  # and one still queued: its result is SQL NULL, not JSON null
        queued = import_jobs.store_upload(io.BytesIO(b"vin\n"), directory=site.folder / "uploads", filename="q.csv")
        import_jobs.create_vehicle_import(
            session=session,
            manufacturer=session.get(Manufacturer, other.id),
            stored=queued,
            filename="q.csv",
            skip_invalid=True,
            actor="t",
        )

    people = {"clerk": world.clerk_email, "staff": world.staff_email, "maker": world.maker}
    revoked = issue(site, vins[2:3], **people)
    superseded = issue(site, vins[3:5], **people)
    with site.session() as session:
        staff_user = session.scalar(select(User).where(User.email == world.staff_email))
        revoke_letter(session=session, user=staff_user, number=revoked, reason="issued to the wrong exporter")
        rotate_key(session=session, manufacturer_code=world.maker, keys_dir=site.keys_dir, passphrase=PASSPHRASE)
    valid = issue(site, vins[3:5], supersedes=superseded, **people)  # a correction, sealed with the new key
    with site.session() as session:  # a request rejected outright: no letter
        clerk_user = session.scalar(select(User).where(User.email == world.clerk_email))
        rejected = file_request(session, clerk_user, world.maker, vins[5:7])
        decide_request(
            session=session,
            user=session.scalar(select(User).where(User.email == world.staff_email)),
            request_id=rejected,
            approve=[],
            reject=[(vins[5], "no export contract"), (vins[6], "no export contract")],
            note="",
            issuance=site.issuance,
        )
        for letter in session.scalars(select(Letter)):
            world.statuses[letter.number] = letter.status
            world.codes[letter.number] = letter.verification_code
    assert world.statuses == {revoked: "revoked", superseded: "superseded", valid: "valid"}
    return world


# -- the round trips ---------------------------------------------------------------------------------


@dataclass
class Trip:
    source: Site
    target: Site
    world: World
    archive: Path
    backup_output: str
    restore_output: str
    source_dump: dict[str, list[tuple[Any, ...]]]
    target_dump: dict[str, list[tuple[Any, ...]]]

    @functools.cached_property
    def members(self) -> list[Member]:
        """The archive's members, in order, to craft damaged and forged copies from."""
        return members_of(self.archive)


def manifest_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        return json.loads(handle.read())  # type: ignore[no-any-return]


class Trips:
    """Each backend's world, built, backed up and restored once per module (it costs real letters)."""

    def __init__(self, sites: Sites) -> None:
        self.sites = sites
        self.done: dict[str, Trip] = {}

    def get(self, backend: str) -> Trip:
        if backend not in self.done:
            # Argon2 at a low cost: the hashes are still real ones, checked at sign-in.
            with clock.frozen(TODAY), pytest.MonkeyPatch.context() as patch:
                patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
                self.done[backend] = self._make(backend)
        return self.done[backend]

    def _make(self, backend: str) -> Trip:
        source = self.sites.new(backend)
        world = build_world(source)
        archive = source.folder / "issuer-backup.tar.gz"
        backed_up = source.cli("backup", archive)
        assert backed_up.exit_code == 0, backed_up.output
        shutil.rmtree(source.keys_dir)  # the server is lost: only the archive has the keys now
        target = self.sites.new(backend)
        restored = target.cli("restore", archive)
        assert restored.exit_code == 0, restored.output
        return Trip(
            source=source,
            target=target,
            world=world,
            archive=archive,
            backup_output=backed_up.output,
            restore_output=restored.output,
            source_dump=source.dump(),
            target_dump=target.dump(),
        )


@pytest.fixture(scope="module")
def trips(sites: Sites) -> Trips:
    return Trips(sites)


@pytest.fixture(params=BACKENDS)
def trip(request: pytest.FixtureRequest, trips: Trips) -> Trip:
    return trips.get(request.param)


def test_restore_gives_back_every_table_row_for_row(trip: Trip) -> None:
    manifest = manifest_of(trip.archive)

    assert trip.target_dump == trip.source_dump
    rows = {table["name"]: table["rows"] for table in manifest["tables"]}
    assert {name: len(r) for name, r in trip.target_dump.items()} == rows
    # The world is not trivially small: every table of letters, accounts, registries, keys,
    # audit and mail has rows.
    assert [name for name in WORLD_TABLES if not rows.get(name)] == []
    assert len(trip.target_dump["letters"]) == 3
    with trip.target.database.engine.connect() as connection:  # SQL NULL stayed NULL, JSON stayed JSON
        results = connection.scalars(select(cast(ImportJob.result, Text)).order_by(ImportJob.id)).all()
    assert results[0] is not None
    assert json.loads(results[0])["added"] == 2
    assert results[1] is None
    assert f"{sum(rows.values())} rows" in trip.backup_output
    assert f"{len(rows)} tables, {sum(rows.values())} rows, 3 seal key file(s)" in trip.restore_output
    assert "audit trail:" in trip.restore_output
    assert trip.restore_output.rstrip().endswith("intact")


def test_every_letter_verifies_after_restore_with_its_status(trip: Trip, tmp_path: Path) -> None:
    with trip.target.session() as session:
        letters = {letter.number: letter.pdf for letter in session.scalars(select(Letter))}
        assert set(letters) == set(trip.world.statuses)
        for number, pdf in letters.items():
            assert pdf is not None
            verification = verify_pdf(session=session, pdf=pdf)
            assert verification.authentic, (number, verification.reasons)
            assert verification.status == trip.world.statuses[number]
            by_code = verify_by_code(session=session, number=number, code=trip.world.codes[number])
            assert by_code is not None
            assert by_code.status == trip.world.statuses[number]
            assert verify_by_code(session=session, number=number, code="AAAA-BBBB-CCCC-DDDD") is None

    for number, pdf in letters.items():
        path = tmp_path / f"{number}.pdf"
        path.write_bytes(pdf)
        checked = trip.target.cli("verify", path)
        assert checked.exit_code == 0, checked.output
        assert "AUTHENTIC: YES" in checked.output
        assert f"status:               {trip.world.statuses[number]}" in checked.output
        assert "same file as issued:  yes" in checked.output


def test_the_audit_trail_verifies_after_restore_against_the_head_the_backup_printed(trip: Trip) -> None:
    head = next(line for line in trip.backup_output.splitlines() if line.startswith("audit head: "))
    anchor = head.removeprefix("audit head: ")

    checked = trip.target.cli("audit", "verify", "--anchor", anchor)

    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines()[1] == f"head: {anchor}"
    entries = int(anchor.split(":")[0])
    assert entries == len(trip.source_dump["audit_entries"]) > 20


def test_restored_keys_seal_a_new_letter_whose_number_and_ids_follow_the_restored_ones(trip: Trip) -> None:
    world, target = trip.world, trip.target
    serials = sorted(int(number.rsplit("-", 1)[1]) for number in world.statuses)
    with target.session() as session:
        last_request = session.scalar(select(func.max(LetterRequest.id)))
        signing_kid = session.scalar(
            select(SealKey.kid).where(SealKey.retired_at.is_(None), SealKey.kid.startswith(world.maker))
        )

    with clock.frozen(TODAY):
        number = issue(target, world.free_vins, clerk=world.clerk_email, staff=world.staff_email, maker=world.maker)

    assert number == f"{world.maker}-{TODAY.year}-{serials[-1] + 1:06d}"
    with target.session() as session:
        letter = session.scalar(select(Letter).where(Letter.number == number))
        assert letter.request_id == last_request + 1  # PostgreSQL's sequences were moved past the ids
        assert session.get(SealKey, letter.seal_key_id).kid == signing_kid
        verification = verify_pdf(session=session, pdf=letter.pdf)
        assert verification.authentic, verification.reasons
        assert verification.status == "valid"
    assert target.cli("audit", "verify").exit_code == 0


def test_users_sign_in_and_api_tokens_work_after_restore(trip: Trip) -> None:
    world = trip.world
    with trip.target.session() as session:
        clerk = session.scalar(select(User).where(User.email == world.clerk_email))
    browser = Browser(trip.target.app.test_client())

    browser.sign_in(clerk)  # asserts the redirect of a successful sign-in
    assert browser.get("/letters").status_code == 200
    stranger = Browser(trip.target.app.test_client())
    refused = stranger.post("/login", {"email": world.clerk_email, "password": "not-the-password"})
    assert refused.status_code == 401  # the form again, refused: the hash still checks the password
    assert "/login" in stranger.get("/letters").headers["Location"]

    client = trip.target.app.test_client()
    listed = client.get("/api/v1/letters", headers={"Authorization": f"Bearer {world.clerk_token}"})
    assert listed.status_code == 200, listed.json
    assert set(world.statuses) <= {letter["number"] for letter in listed.json["letters"]}
    staff = client.get("/api/v1/letters", headers={"Authorization": f"Bearer {world.staff_token}"})
    assert staff.status_code == 200
    revoked = client.get("/api/v1/letters", headers={"Authorization": f"Bearer {world.revoked_token}"})
    assert revoked.status_code == 401


def test_archive_is_0600_and_keys_come_back_0600_in_a_0700_folder(trip: Trip) -> None:
    assert stat.S_IMODE(trip.archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(trip.target.keys_dir.stat().st_mode) == 0o700
    files = trip.target.key_files()
    with trip.target.session() as session:
        assert sorted(f.name for f in files) == sorted(session.scalars(select(SealKey.key_file)))
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # No temporary file stayed beside the archive or in the keys folder.
    assert sorted(p.name for p in trip.archive.parent.iterdir() if p.name.startswith(".")) == []
    assert [p.name for p in files if p.name.startswith(".")] == []


def test_a_sqlite_archive_restores_into_postgresql_and_back_byte_for_byte(trips: Trips, sites: Sites) -> None:
    trip = trips.get("sqlite")
    postgres = sites.new("postgresql")

    restored = postgres.cli("restore", trip.archive)

    assert restored.exit_code == 0, restored.output
    assert postgres.dump() == trip.source_dump
    with postgres.session() as session:
        for letter in session.scalars(select(Letter)):
            verification = verify_pdf(session=session, pdf=letter.pdf)
            assert verification.authentic, (letter.number, verification.reasons)
            assert verification.status == trip.world.statuses[letter.number]
    assert postgres.cli("audit", "verify").exit_code == 0

    # Backed up again from PostgreSQL, every member is byte for byte the one SQLite wrote...
    again = postgres.folder / "from-postgresql.tar.gz"
    assert postgres.cli("backup", again).exit_code == 0
    assert manifest_of(again)["members"] == manifest_of(trip.archive)["members"]
    assert manifest_of(again)["database"]["backend"] == "postgresql"
    # ...and that archive restores into SQLite as it was.
    sqlite = sites.new("sqlite")
    assert sqlite.cli("restore", again).exit_code == 0
    assert sqlite.dump() == trip.source_dump


# -- refused archives ------------------------------------------------------------------------------


Member = tuple[tarfile.TarInfo, bytes]


def members_of(archive: Path) -> list[Member]:
    with tarfile.open(archive, "r:gz") as tar:
        out = []
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            out.append((info, handle.read() if handle else b""))
        return out


def regular(name: str, content: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content), 0o600
    return info, content


def write_members(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for info, content in members:
            copy = tarfile.TarInfo(info.name)
            copy.type, copy.linkname, copy.mode = info.type, info.linkname, info.mode
            copy.size = len(content) if info.isreg() else 0
            tar.addfile(copy, io.BytesIO(content) if info.isreg() else None)
    return path


def edit(members: list[Member], name: str, change: Callable[[bytes], bytes | None]) -> list[Member]:
    """Replace (or, when ``change`` gives None, drop) one member's content."""
    out = []
    for info, content in members:
        if info.name == name:
            changed = change(content)
            if changed is None:
                continue
            content = changed
        out.append((info, content))
    return out


def edit_manifest(members: list[Member], change: Callable[[dict[str, Any]], None], *, rehash: bool) -> list[Member]:
    """Change the manifest; with ``rehash``, its checksums and sizes are made to fit the members
    (a forger's archive, consistent in itself)."""
    manifest = json.loads(members[0][1])
    if rehash:
        contents = {info.name: content for info, content in members[1:]}
        for member in manifest["members"]:
            if member["name"] in contents:
                content = contents[member["name"]]
                member["sha256"], member["bytes"] = hashlib.sha256(content).hexdigest(), len(content)
    change(manifest)
    return [regular("manifest.json", json.dumps(manifest).encode()), *members[1:]]


def forged(members: list[Member], name: str, change: Callable[[bytes], bytes | None]) -> list[Member]:
    """A member changed and the manifest's checksums recomputed to match."""
    return edit_manifest(edit(members, name, change), lambda m: None, rehash=True)


def flip_middle_byte(content: bytes) -> bytes:
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 0x01]) + content[middle + 1 :]


def key_member(members: list[Member], index: int = 0) -> str:
    return [info.name for info, _ in members if info.name.startswith("keys/")][index]


CLIMBING_KEY, ESCAPED = "keys/../../escaped.txt", b"written outside"
ABSOLUTE_MEMBER = str(Path(tempfile.gettempdir()) / f"escaped-backup-member-{uuid.uuid4().hex}.txt")


def one_byte_more_for_the_second_member(manifest: dict[str, Any]) -> None:
    manifest["members"][1]["bytes"] += 1


def letters_rows_plus_one(manifest: dict[str, Any]) -> None:
    next(t for t in manifest["tables"] if t["name"] == "letters")["rows"] += 1


def unencrypted_key(_: bytes) -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def with_seal_key_file_named(name: str) -> Callable[[bytes], bytes]:
    def change(content: bytes) -> bytes:
        rows = [json.loads(line) for line in content.decode().splitlines()]
        rows[0]["key_file"] = name
        return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()

    return change


def exporter_that_is_not_there(content: bytes) -> bytes:
    rows = [json.loads(line) for line in content.decode().splitlines()]
    rows[-1]["exporter_id"] = 999_999
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()


def last_row_broken(content: bytes) -> bytes:
    lines = content.split(b"\n")
    lines[-2] = lines[-2][:-1]  # the last row loses its closing brace
    return b"\n".join(lines)


def symlink_for(name: str) -> Callable[[list[Member]], list[Member]]:
    def change(members: list[Member]) -> list[Member]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(info, b"") if i.name == name else (i, c) for i, c in members]

    return change


def swapped_keys(members: list[Member]) -> list[Member]:
    first, second = key_member(members, 0), key_member(members, 1)
    contents = {info.name: content for info, content in members}
    swapped = edit(edit(members, first, lambda _: contents[second]), second, lambda _: contents[first])
    return edit_manifest(swapped, lambda m: None, rehash=True)


# Each crafted archive and the text its refusal must contain.
CRAFTED: dict[str, tuple[Callable[[list[Member]], list[Member]], str]] = {
    "a byte changed in the letters": (
        lambda m: edit(m, "database/letters.jsonl", flip_middle_byte),
        "database/letters.jsonl is damaged",
    ),
    "a byte changed in a key": (lambda m: edit(m, key_member(m), flip_middle_byte), "is damaged"),
    "a table missing": (lambda m: edit(m, "database/users.jsonl", lambda _: None), "database/users.jsonl is missing"),
    "a key missing": (lambda m: edit(m, key_member(m), lambda _: None), "is missing from the archive"),
    "a checksum changed in the manifest": (
        lambda m: edit_manifest(
            m, lambda doc: doc["members"][0].update(sha256="0" * 64), rehash=False
        ),
        "is damaged",
    ),
    "a size changed in the manifest": (
        lambda m: edit_manifest(m, one_byte_more_for_the_second_member, rehash=False),
        "the manifest says",
    ),
    "a row count changed in the manifest": (
        lambda m: edit_manifest(m, letters_rows_plus_one, rehash=True),
        "database/letters.jsonl holds 3 rows, not the 4",
    ),
    "the last table's last row broken": (
        lambda m: forged(m, "database/letter_vehicles.jsonl", last_row_broken),
        "database/letter_vehicles.jsonl line",
    ),
    "a letter of an exporter that is not there": (
        lambda m: forged(m, "database/letters.jsonl", exporter_that_is_not_there),
        "database/letters.jsonl: the database refuses its rows (",
    ),
    "a member the manifest does not list": (
        lambda m: [*m, regular("database/extra.jsonl", b"{}\n")],
        "which its manifest does not list",
    ),
    "a member climbing out with ../": (
        lambda m: [*m, regular("../../escaped.txt", b"written outside")],
        "'../../escaped.txt', which its manifest does not list",
    ),
    "an absolute member": (
        lambda m: [*m, regular(ABSOLUTE_MEMBER, b"written outside")],
        "which its manifest does not list",
    ),
    "a ../ member listed in the manifest": (
        lambda m: edit_manifest(
            [*m, regular(CLIMBING_KEY, ESCAPED)],
            lambda doc: doc["members"].append(
                {"name": CLIMBING_KEY, "sha256": hashlib.sha256(ESCAPED).hexdigest(), "bytes": len(ESCAPED)}
            ),
            rehash=False,
        ),
        "which is not a plain name",
    ),
    "a key replaced by a symbolic link": (lambda m: symlink_for(key_member(m))(m), "is not a regular file"),
    "a member twice": (
        lambda m: [*m, next((i, c) for i, c in m if i.name == "database/users.jsonl")],
        "database/users.jsonl twice",
    ),
    "a newer schema revision": (
        lambda m: edit_manifest(m, lambda doc: doc["database"].update(revision="29991231_9999"), rehash=True),
        "revision 29991231_9999 is unknown to this issuer",
    ),
    "a newer archive format": (
        lambda m: edit_manifest(m, lambda doc: doc.update(format_version=2), rehash=True),
        "format version 2 is not one this issuer reads",
    ),
    "another kind of archive": (
        lambda m: edit_manifest(m, lambda doc: doc.update(format="something-else"), rehash=True),
        "is not an issuer backup",
    ),
    "the manifest not first": (lambda m: [*m[1:], m[0]], "does not begin with the manifest"),
    "an unencrypted key": (lambda m: forged(m, key_member(m), unencrypted_key), "is not an encrypted private key"),
    "keys swapped between their certificates": (swapped_keys, "does not belong to its certificate"),
    "a seal key file name climbing out": (
        lambda m: forged(m, "database/seal_keys.jsonl", with_seal_key_file_named("../escaped.key.pem")),
        "is not a plain file name",
    ),
}


# Found only once rows are being inserted: the transaction's rollback keeps the database empty.
REFUSED_WHILE_WRITING = (
    "a row count changed in the manifest",
    "the last table's last row broken",
    "a letter of an exporter that is not there",
)


@dataclass
class Target:
    site: Site
    before: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def empty_targets(sites: Sites) -> Callable[[str], Target]:
    """One empty database per backend, into which every refused archive is restored: each
    refusal must leave it exactly as it was, and its keys folder without a file."""
    made: dict[str, Target] = {}

    def target(backend: str) -> Target:
        if backend not in made:
            site = sites.new(backend)
            made[backend] = Target(site=site, before=site.dump())
        return made[backend]

    return target


@pytest.fixture
def empty_target(empty_targets: Callable[[str], Target]) -> Target:
    """The SQLite one: refusals that come before any row is written do not depend on the backend."""
    return empty_targets("sqlite")


def refused(target: Target, archive: Path, expected: str) -> Result:
    result = target.site.cli("restore", archive)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    assert expected in lines[0], result.output
    assert target.site.dump() == target.before
    assert target.site.key_files() == []
    return result


@pytest.mark.parametrize(
    ("backend", "case"),
    [("sqlite", case) for case in CRAFTED] + [("postgresql", case) for case in REFUSED_WHILE_WRITING],
)
def test_a_crafted_or_damaged_archive_is_refused_and_nothing_is_written(
    backend: str, case: str, empty_targets: Callable[[str], Target], trips: Trips, tmp_path: Path
) -> None:
    craft, expected = CRAFTED[case]
    target = empty_targets(backend)
    (tmp_path / "crafted").mkdir()
    archive = write_members(tmp_path / "crafted" / "archive.tar.gz", craft(trips.get("sqlite").members))

    refused(target, archive, expected)

    assert not list(tmp_path.rglob("escaped*"))
    assert not (target.site.folder.parent / "escaped.txt").exists()
    assert not Path(ABSOLUTE_MEMBER).exists()


@pytest.mark.parametrize("cut", ["half", "all but the last 100 bytes", "nothing but garbage"])
def test_a_truncated_or_unreadable_file_is_refused(
    cut: str, empty_target: Target, trips: Trips, tmp_path: Path
) -> None:
    whole = trips.get("sqlite").archive.read_bytes()
    content = {
        "half": whole[: len(whole) // 2],
        "all but the last 100 bytes": whole[:-100],
        "nothing but garbage": b"this is not an archive" * 100,
    }[cut]
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(content)

    refused(empty_target, archive, "broken.tar.gz is not a readable backup archive")


def test_a_byte_changed_in_the_compressed_file_is_refused(empty_target: Target, trips: Trips, tmp_path: Path) -> None:
    archive = tmp_path / "flipped.tar.gz"
    archive.write_bytes(flip_middle_byte(trips.get("sqlite").archive.read_bytes()))

    result = empty_target.site.cli("restore", archive)

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert any(word in result.output for word in ("not a readable backup archive", "is damaged"))
    assert empty_target.site.dump() == empty_target.before
    assert empty_target.site.key_files() == []


def test_restore_is_refused_into_a_database_that_is_not_empty(trips: Trips) -> None:
    trip = trips.get("sqlite")
    before = trip.target.dump()
    keys_before = [(p.name, p.read_bytes()) for p in trip.target.key_files()]
    shutil.move(trip.target.keys_dir, trip.target.folder / "keys-aside")  # so only the database refuses
    try:
        result = trip.target.cli("restore", trip.archive)
    finally:
        shutil.rmtree(trip.target.keys_dir, ignore_errors=True)
        shutil.move(trip.target.folder / "keys-aside", trip.target.keys_dir)

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the database is not empty (")
    assert "restore into a new database" in result.output
    assert trip.target.dump() == before
    assert [(p.name, p.read_bytes()) for p in trip.target.key_files()] == keys_before


def test_restore_is_refused_into_a_keys_folder_that_holds_keys(empty_target: Target, trips: Trips) -> None:
    site = empty_target.site
    site.keys_dir.mkdir()
    stranger = site.keys_dir / "SOMEONE-0123456789abcdef.key.pem"
    stranger.write_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    try:
        result = site.cli("restore", trips.get("sqlite").archive)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: the keys folder {site.keys_dir} already holds seal keys")
        assert site.dump() == empty_target.before
        assert [p.name for p in site.key_files()] == [stranger.name]
    finally:
        shutil.rmtree(site.keys_dir)


def test_restore_is_refused_when_this_servers_passphrase_does_not_open_the_keys(trips: Trips, sites: Sites) -> None:
    site = sites.new("sqlite", passphrase="another-servers-passphrase")
    before = site.dump()

    result = site.cli("restore", trips.get("sqlite").archive)

    assert result.exit_code == 2, result.output
    assert "cannot be decrypted with this server's ISSUER_KEY_PASSPHRASE" in result.output
    assert "another-servers-passphrase" not in result.output
    assert PASSPHRASE not in result.output
    assert site.dump() == before
    assert site.key_files() == []


def test_restore_into_a_database_at_another_revision_says_which_to_migrate_to(trips: Trips, sites: Sites) -> None:
    archive = trips.get("sqlite").archive
    revision = manifest_of(archive)["database"]["revision"]
    site = sites.new("sqlite", revision="20261127_0004")

    result = site.cli("restore", archive)

    assert result.exit_code == 2, result.output
    assert f"issuer db upgrade --revision {revision}" in result.output
    assert site.counts()["manufacturers"] == 0
    assert site.key_files() == []


def test_an_archive_of_an_older_revision_restores_at_that_revision_and_then_upgrades(
    sites: Sites, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    source = sites.new("sqlite")
    with source.session() as session:
        maker = factories.manufacturer(session)
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=source.keys_dir, passphrase=PASSPHRASE)
        factories.token(session, factories.user(session, "aftersales", manufacturer=maker))
    script = ScriptDirectory.from_config(alembic_config(source.database.engine))
    older = script.get_revision(script.get_current_head()).down_revision
    downgrade(source.database.engine, older)  # the database as an older issuer left it
    archive = source.folder / "older.tar.gz"
    assert source.cli("backup", archive).exit_code == 0
    assert manifest_of(archive)["database"]["revision"] == older
    head_target = sites.new("sqlite")
    assert f"--revision {older}" in head_target.cli("restore", archive).output  # at head: refused, says how

    target = sites.new("sqlite", revision=older)
    restored = target.cli("restore", archive)
    assert restored.exit_code == 0, restored.output
    assert target.cli("db", "upgrade").exit_code == 0

    counts = target.counts()
    assert {name: counts[name] for name in source.counts()} == source.counts()
    assert counts["seal_keys"] == counts["users"] == counts["api_tokens"] == 1
    assert target.cli("audit", "verify").exit_code == 0


# -- refused backups -----------------------------------------------------------------------------


@pytest.fixture
def small_site(sites: Sites) -> Site:
    site = sites.new("sqlite")
    with site.session() as session:
        maker = factories.manufacturer(session)
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=site.keys_dir, passphrase=PASSPHRASE)
    return site


def test_backup_never_overwrites_a_file(small_site: Site) -> None:
    existing = small_site.folder / "precious.tar.gz"
    existing.write_bytes(b"yesterday's backup")

    result = small_site.cli("backup", existing)

    assert result.exit_code == 2
    assert result.output == f"error: {existing} already exists; a backup never overwrites a file\n"
    assert existing.read_bytes() == b"yesterday's backup"


@pytest.mark.parametrize("problem", ["missing", "unencrypted"])
def test_backup_is_refused_and_writes_nothing_when_a_key_file_is_missing_or_not_encrypted(
    small_site: Site, problem: str
) -> None:
    (key_file,) = small_site.key_files()
    if problem == "missing":
        key_file.unlink()
    else:
        key_file.write_bytes(unencrypted_key(b""))
    target = small_site.folder / "out" / "backup.tar.gz"
    target.parent.mkdir()

    result = small_site.cli("backup", target)

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the seal key file ")
    assert ("is missing from the keys folder" if problem == "missing" else "is not encrypted") in result.output
    assert list(target.parent.iterdir()) == []  # no archive, no temporary file


# -- a backup while others write -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backup_taken_while_letters_are_issued_and_the_registry_imported_is_consistent(
    backend: str, sites: Sites, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    source = sites.new(backend)
    with source.session() as session:
        maker = factories.manufacturer(session, wmis=("LGX",))
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=source.keys_dir, passphrase=PASSPHRASE)
        vins = factories.random_vins("LGX", 4, seed=5)
        factories.register(session, maker, vins)
        factories.outlet(session, maker, country="KZ")
        exporter = factories.exporter(session)
        people = {
            "clerk": factories.user(session, "exporter", exporter=exporter).email,
            "staff": factories.user(session, "aftersales", manufacturer=maker).email,
            "maker": maker.code,
        }
    with source.session() as session:  # a request waiting for its decision
        clerk = session.scalar(select(User).where(User.email == people["clerk"]))
        waiting = file_request(session, clerk, maker.code, vins[:2])
    before = source.counts()
    writes: list[str] = []

    def write_meanwhile() -> None:
        """Another server thread: the request decided (a sealed letter) and a registry import."""
        with source.session() as session:
            decision = decide_request(
                session=session,
                user=session.scalar(select(User).where(User.email == people["staff"])),
                request_id=waiting,
                approve="all_eligible",
                reject=[],
                note="",
                issuance=source.issuance,
            )
            writes.append(decision.letter.number)
        with source.session() as session:
            factories.register(session, session.get(Manufacturer, maker.id), factories.random_vins("LGX", 50, seed=6))
        writes.append("registry")

    dump_table = backup._dump_table
    paused = {"done": False}

    def dump_then_let_others_write(connection, table, staging):  # type: ignore[no-untyped-def]
        dumped = dump_table(connection, table, staging)
        if not paused["done"]:  # after the first table, inside the backup's snapshot
            paused["done"] = True
            writer = threading.Thread(target=write_meanwhile)
            writer.start()
            writer.join()
        return dumped

    monkeypatch.setattr(backup, "_dump_table", dump_then_let_others_write)
    archive = source.folder / "during-writes.tar.gz"
    with clock.frozen(TODAY):
        backed_up = source.cli("backup", archive)

    assert backed_up.exit_code == 0, backed_up.output
    assert len(writes) == 2  # the writes committed while the backup was reading
    after = source.counts()
    assert after["letters"] == before["letters"] + 1
    assert after["registered_vehicles"] == before["registered_vehicles"] + 50
    manifest = manifest_of(archive)
    archived = {table["name"]: table["rows"] for table in manifest["tables"]}
    assert archived == before  # the snapshot: exactly what was committed when it began

    target = sites.new(backend)
    restored = target.cli("restore", archive)
    assert restored.exit_code == 0, restored.output
    assert target.counts() == before
    assert target.cli("audit", "verify").exit_code == 0
    with target.session() as session:  # the request is as it was when the backup began
        assert session.get(LetterRequest, waiting).status == "submitted"
        assert session.scalars(select(Letter)).all() == []
    with source.session() as session:
        assert verify_pdf(session=session, pdf=session.scalar(select(Letter.pdf))).authentic
