"""A world of two tenants for the access tests, built once per module with the real services.

Tenant A and tenant B each hold a manufacturer ready to issue (seal key, seal image, production
registry, outlets), an exporter asking it for letters, a user of every role of a tenant, API
tokens (one revoked), a deactivated user, requests submitted, approved (its letter sealed),
approved and then revoked, and rejected, a production-registry import job, an exporter on its
negative list, mail in its outbox (one message failed) and the audit entries all of this wrote.
Outside both: a reviewer and a platform administrator.

Also here: reading the whole database into a snapshot, and telling which rows of a snapshot
are a tenant's (the rows reachable from its manufacturer and exporter through foreign keys), so
a test can prove that nothing of a tenant changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from issuer.db import Base
from issuer.domain.eligibility import VehicleDeclaration
from issuer.models import ApiToken, Exporter, ImportJob, ImportState, MessageState, OutboxMessage, User
from issuer.services import accounts, issuance_jobs, organisations, outlets
from issuer.services import letters as letter_service
from issuer.services import requests as request_service
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY

REGISTERED_ON = TODAY - dt.timedelta(days=30)  # within 180 days: every vehicle needs a letter
APPLYING_ON = TODAY + dt.timedelta(days=10)
TENANT_ROLES = ("exporter", "aftersales", "manufacturer_admin")


def png(size: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (size, size), (200, 0, 0, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def declaration(vin: str) -> VehicleDeclaration:
    return VehicleDeclaration(vin=vin, brand="Example", model="E1", registration_date=REGISTERED_ON, destination="KZ")


@dataclass(frozen=True)
class Person:
    """A user as the tests need them: plain values, no ORM object to expire or detach."""

    id: int
    email: str
    role: str


@dataclass(frozen=True)
class Organisation:
    id: int
    code: str


@dataclass
class Tenant:
    """One side's objects, by plain values. ``secrets`` are the strings that identify them, by kind."""

    key: str
    wmi: str
    manufacturer: Organisation
    uscc: str
    exporter: Organisation
    blocked_exporter: Organisation  # on this manufacturer's negative list
    spare_exporter: Organisation  # on no list: the one a probe may put on it
    users: dict[str, Person]  # by role
    deactivated: Person  # an after-sales user whose account was deactivated
    tokens: dict[str, str]  # role -> bearer token
    token_ids: dict[str, int]
    revoked_token: str  # the after-sales user's, revoked
    deactivated_token: str
    vins: list[str]  # registered; those after the first nine are in no request
    requests: dict[str, int] = field(default_factory=dict)  # issued, revoked, rejected, waiting
    letters: dict[str, str] = field(default_factory=dict)  # valid, revoked
    outlet_codes: list[str] = field(default_factory=list)
    import_job_id: int = 0
    issuance_job_id: str = ""  # the valid letter's, as if a worker had sealed it
    failed_message_id: int = 0
    secrets: dict[str, set[str]] = field(default_factory=dict)

    @property
    def spare_vins(self) -> list[str]:
        return self.vins[9:]

    @property
    def organisations(self) -> tuple[Organisation, ...]:
        return (self.exporter, self.blocked_exporter, self.spare_exporter)

    def all_secrets(self, *, except_kinds: Iterable[str] = ()) -> set[str]:
        skipped = set(except_kinds)
        return {s for kind, values in self.secrets.items() if kind not in skipped for s in values}


@dataclass
class World:
    app: Flask
    connection: Connection
    a: Tenant
    b: Tenant
    reviewer: Person
    reviewer_token: str
    platform_admin: Person
    platform_token: str

    def client(self) -> FlaskClient:
        client = self.app.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client

    def sign_in(self, person: Person, password: str = factories.PASSWORD) -> FlaskClient:
        """A new client signed in as ``person`` through the login form (CSRF must be off)."""
        client = self.client()
        answer = client.post("/login", data={"email": person.email, "password": password})
        assert answer.status_code == 302, (person.email, answer.status_code)
        return client

    def session(self) -> Session:
        """A session of the test's own, joining the world's transaction; close it after use."""
        return Session(bind=self.connection, expire_on_commit=False, join_transaction_mode="create_savepoint")


def _person(user: User) -> Person:
    return Person(id=user.id, email=user.email, role=user.role)


def _build_tenant(session: Session, app: Flask, *, key: str, wmi: str, seed: int) -> Tenant:
    settings = app.config["ISSUER_SETTINGS"]
    issuance = app.extensions["issuer.issuance"]
    upper = key.upper()
    maker = organisations.create_manufacturer(
        session=session,
        code=f"{upper}MOTOR",
        name=f"{key}甲乙汽车制造有限公司",
        name_en=f"{key.title()} Motor Works Co., Ltd.",
        uscc=factories.uscc(7000 + seed),
        wmis=(wmi,),
    )
    seal_key = generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    organisations.set_seal_image(session=session, manufacturer_code=maker.code, image=png())
    vins = factories.random_vins(wmi, 12, seed=seed)
    factories.register(session, maker, vins)

    def exporter(suffix: str, name: str, n: int) -> Exporter:
        return organisations.create_exporter(
            session=session,
            code=f"{upper}{suffix}",
            name=f"{key}{name}",
            name_en=f"{key.title()} {suffix.title()} Trading Co., Ltd.",
            uscc=factories.uscc(800_000 + 10 * seed + n),
        )

    own_exporter = exporter("EXPORT", "丙丁出口贸易有限公司", 1)
    blocked = exporter("BLOCKED", "戊己被列入名单公司", 2)
    spare = exporter("SPARE", "庚辛备用出口公司", 3)

    def user(role: str, name: str) -> User:
        return accounts.create_user(
            session=session,
            email=f"{key}-{name}@{key}-tenant.test",
            role=role,
            password=factories.PASSWORD,
            manufacturer_code=maker.code if role != "exporter" else None,
            exporter_code=own_exporter.code if role == "exporter" else None,
        )

    users = {role: user(role, role.replace("_", "-")) for role in TENANT_ROLES}
    former = user("aftersales", "former-aftersales")
    tokens = {
        role: accounts.create_token(session=session, email=u.email, name=f"{key}-token-{role}")
        for role, u in users.items()
    }
    token_ids = {
        role: session.scalars(select(ApiToken.id).where(ApiToken.user_id == u.id).order_by(ApiToken.id)).one()
        for role, u in users.items()
    }
    revoked_token = accounts.create_token(session=session, email=users["aftersales"].email, name=f"{key}-token-revoked")
    revoked_id = session.scalars(select(ApiToken.id).where(ApiToken.name == f"{key}-token-revoked")).one()
    accounts.revoke_token(session=session, user=users["aftersales"], token_id=revoked_id)
    deactivated_token = accounts.create_token(session=session, email=former.email, name=f"{key}-token-former")
    accounts.set_active(session=session, actor=users["manufacturer_admin"], user_id=former.id, active=False)

    tenant = Tenant(
        key=key,
        wmi=wmi,
        manufacturer=Organisation(maker.id, maker.code),
        uscc=maker.uscc,
        exporter=Organisation(own_exporter.id, own_exporter.code),
        blocked_exporter=Organisation(blocked.id, blocked.code),
        spare_exporter=Organisation(spare.id, spare.code),
        users={role: _person(u) for role, u in users.items()},
        deactivated=_person(former),
        tokens=tokens,
        token_ids=token_ids,
        revoked_token=revoked_token,
        deactivated_token=deactivated_token,
        vins=vins,
    )
    for country, n in (("KZ", 1), ("KZ", 2), ("TH", 3)):
        code = f"{upper}-{country}-OUTLET-{n}"
        outlets.create_outlet(
            session=session,
            manufacturer=maker,
            actor=users["aftersales"].email,
            values={
                "code": code,
                "country": country,
                "name": f"{key.title()} Service Centre {n}",
                "provider": f"{key.title()} Aftercare Provider {n} LLP",
                "address": f"{n} {key.title()} Avenue",
                "city": "Almaty",
                "phone": "+7 700 000 0000",
                "email": f"outlet{n}@{key}-outlets.test",
                "brands": "",
                "valid_from": dt.date(2025, 1, 1),
                "valid_to": None,
            },
        )
        tenant.outlet_codes.append(code)

    def file(part: list[str], name: str) -> int:
        letter_request, _ = request_service.submit_request(
            session=session,
            user=users["exporter"],
            manufacturer_code=maker.code,
            application_date=APPLYING_ON,
            reference=f"{upper}-CONTRACT-{name.upper()}",
            vehicles=[declaration(vin) for vin in part],
        )
        tenant.requests[name] = letter_request.id
        return letter_request.id

    def decide(request_id: int, **decision: Any) -> Any:
        return letter_service.decide_request(
            session=session, user=users["aftersales"], request_id=request_id, note="", issuance=issuance, **decision
        )

    issued = decide(file(vins[0:3], "issued"), approve="all_eligible", reject=[]).letter
    tenant.letters["valid"] = issued.number
    issuance_job = issuance_jobs.create_job(session, issued, actor=users["aftersales"].email)
    issuance_job.state = "done"
    session.commit()
    tenant.issuance_job_id = issuance_job.id
    tenant.letters["revoked"] = decide(file(vins[3:5], "revoked"), approve="all_eligible", reject=[]).letter.number
    letter_service.revoke_letter(
        session=session, user=users["aftersales"], number=tenant.letters["revoked"], reason=f"{key} revocation reason"
    )
    decide(file(vins[5:7], "rejected"), approve=[], reject=[(vin, f"{key} rejection reason") for vin in vins[5:7]])
    file(vins[7:9], "waiting")  # in the review queue

    organisations.block_exporter(
        session=session,
        manufacturer_code=maker.code,
        exporter_code=blocked.code,
        reason=f"{key} negative list reason",
        actor=users["manufacturer_admin"].email,
    )
    job = ImportJob(
        manufacturer_id=maker.id,
        kind="vehicles",
        filename=f"{key}-production-registry.csv",
        stored_path=str(settings.keys_dir / f"{key}-import.csv"),
        state=ImportState.DONE.value,
        created_by=users["aftersales"].email,
    )
    session.add(job)
    # One message of its outbox failed (so an administrator could send it again).
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.manufacturer_id == maker.id).order_by(OutboxMessage.id)
    ).first()
    assert message is not None, "no mail about the tenant's requests was written to the outbox"
    message.state = MessageState.FAILED.value
    message.attempts = 3
    message.last_error = f"{key} smtp refused"
    session.commit()
    tenant.import_job_id = job.id
    tenant.failed_message_id = message.id

    codes = [
        letter_service.get_letter(session=session, user=users["exporter"], number=number).verification_code
        for number in tenant.letters.values()
    ]
    tenant.secrets = {
        "manufacturer": {maker.code, maker.name, maker.name_en, maker.uscc},
        "seal key": {seal_key.kid},
        "exporter": {
            *(e.code for e in (own_exporter, blocked, spare)),
            *(e.name for e in (own_exporter, blocked, spare)),
            own_exporter.uscc,
        },
        "vehicle": set(vins),
        "letter": {*tenant.letters.values(), *codes},
        "outlet": {
            *tenant.outlet_codes,
            *(f"{key.title()} Service Centre {n}" for n in (1, 2, 3)),
            *(f"{key.title()} Aftercare Provider {n} LLP" for n in (1, 2, 3)),
        },
        "user": {
            *(u.email for u in (*users.values(), former)),
            *(f'/admin/users/{u.id}"' for u in (*users.values(), former)),
        },
        "token": {*(f"{key}-token-{role}" for role in users), f"{key}-token-revoked", f"{key}-token-former"},
        "request": {
            *(f"{upper}-CONTRACT-{name.upper()}" for name in tenant.requests),
            # Its ids as links and JSON fields (a bare small number is found everywhere).
            *(f'/requests/{request_id}"' for request_id in tenant.requests.values()),
            *(f'"request_id":{request_id},' for request_id in tenant.requests.values()),
            *(f'"request_id": {request_id},' for request_id in tenant.requests.values()),
        },
        "reason": {
            f"{key} revocation reason",
            f"{key} rejection reason",
            f"{key} negative list reason",
            f"{key} smtp refused",
        },
        "import": {f"{key}-production-registry.csv"},
    }
    return tenant


def build_world(app: Flask, connection: Connection) -> World:
    """Tenants A ("alpha") and B ("beta"), a reviewer and a platform administrator."""
    session = Session(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
    try:
        with app.app_context():
            a = _build_tenant(session, app, key="alpha", wmi="LGX", seed=11)
            b = _build_tenant(session, app, key="beta", wmi="LRW", seed=12)
            reviewer = accounts.create_user(
                session=session, email="reviewer@customs-office.test", role="reviewer", password=factories.PASSWORD
            )
            admin = accounts.create_user(
                session=session, email="root@platform-operator.test", role="platform_admin", password=factories.PASSWORD
            )
            return World(
                app=app,
                connection=connection,
                a=a,
                b=b,
                reviewer=_person(reviewer),
                reviewer_token=accounts.create_token(session=session, email=reviewer.email, name="reviewer-token"),
                platform_admin=_person(admin),
                platform_token=accounts.create_token(session=session, email=admin.email, name="platform-token"),
            )
    finally:
        session.close()


# -- what the database holds -------------------------------------------------------------------

Row = dict[str, Any]
Snapshot = dict[str, dict[tuple[Any, ...], Row]]


def _value(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    return value


def snapshot(connection: Connection) -> Snapshot:
    """Every row of every table, by primary key (binary columns as their SHA-256)."""
    out: Snapshot = {}
    for table in Base.metadata.sorted_tables:
        keys = [c.name for c in table.primary_key.columns]
        rows = {}
        for row in connection.execute(select(table)).mappings():
            rows[tuple(row[k] for k in keys)] = {name: _value(value) for name, value in row.items()}
        out[table.name] = rows
    return out


def _references() -> dict[str, list[tuple[str, str]]]:
    """Per table, its (column, referenced table) pairs: the foreign keys, and the audit trail's
    manufacturer_id / exporter_id, which are plain integers so entries outlive what they name."""
    out: dict[str, list[tuple[str, str]]] = {}
    for table in Base.metadata.sorted_tables:
        pairs = [(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys]
        for column, target in (("manufacturer_id", "manufacturers"), ("exporter_id", "exporters")):
            if column in table.columns and (column, target) not in pairs:
                pairs.append((column, target))
        out[table.name] = pairs
    return out


def owned_rows(data: Snapshot, tenant: Tenant) -> set[tuple[str, tuple[Any, ...]]]:
    """The rows of ``data`` that are the tenant's: its manufacturer, its exporters, and every row
    that refers (directly or through other rows) to one of them."""
    owned = {("manufacturers", (tenant.manufacturer.id,)), *(("exporters", (e.id,)) for e in tenant.organisations)}
    references = _references()
    grown = True
    while grown:
        grown = False
        for table, rows in data.items():
            for pk, row in rows.items():
                if (table, pk) in owned:
                    continue
                if any(
                    row.get(column) is not None and (target, (row[column],)) in owned
                    for column, target in references[table]
                ):
                    owned.add((table, pk))
                    grown = True
    return owned


def changes_of(before: Snapshot, after: Snapshot, tenant: Tenant) -> list[str]:
    """What changed among the tenant's rows: every changed, deleted or added row, named."""
    problems = []
    owned_before, owned_after = owned_rows(before, tenant), owned_rows(after, tenant)
    for table, pk in sorted(owned_before, key=repr):
        old, new = before[table][pk], after.get(table, {}).get(pk)
        if new is None:
            problems.append(f"{table} {pk} was deleted")
        elif new != old:
            changed = sorted(k for k in old if old[k] != new.get(k))
            problems.append(f"{table} {pk} changed: {', '.join(changed)}")
    for table, pk in sorted(owned_after - owned_before, key=repr):
        problems.append(f"{table} {pk} was added: {after[table][pk]}")
    return problems
