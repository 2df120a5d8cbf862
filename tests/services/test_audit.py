"""The audit trail: the chain links and verifies, tampering of every kind is found, the table
refuses UPDATE and DELETE, and every state-changing service writes its entry — with who, from
where and for which tenant.

To tamper, the tests do what an attacker with database access would: switch the append-only
triggers off (SQLite: drop them; PostgreSQL: ``DISABLE TRIGGER USER``), inside the test's
transaction, which is rolled back at the end.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from issuer.errors import Forbidden, ImportRejected
from issuer.models import AuditEntry, AuditHead, Letter, SealKey, User
from issuer.services import audit, keys, organisations, outlets, registry
from issuer.services.accounts import user_for_token
from tests import factories
from tests.letters import conftest as letters

ORIGIN = "198.51.100.7"
# A manufacturer ready to issue, and issuing through the API (tests/letters/conftest.py).
world = letters.world
issue = letters.issue
ACTOR = "tester@example.test"


@pytest.fixture(autouse=True)
def acting() -> Iterator[None]:
    """Entries written directly by a test are this actor's, from this address (a web request
    run by the test client sets its own context, as in production)."""
    with audit.acting_as(audit.AuditContext(actor=ACTOR, origin=ORIGIN)):
        yield


def _write(session: Session, count: int, *, start: int = 1) -> list[AuditEntry]:
    entries = [
        audit.record(
            session,
            action="outlet.updated",
            object_type="outlet",
            object_id=f"KZ-{n}",
            manufacturer_id=n,
            details={"changed": {"city": f"Almaty {n}"}, "version": n},
        )
        for n in range(start, start + count)
    ]
    session.commit()
    return entries


def _bypass_triggers(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
    else:
        session.execute(text("DROP TRIGGER audit_entries_no_update"))
        session.execute(text("DROP TRIGGER audit_entries_no_delete"))


def _problems(session: Session, **kwargs: Any) -> list[str]:
    result = audit.verify_chain(session, **kwargs)
    return result.problems


def _entry(session: Session, seq: int) -> AuditEntry:
    return session.scalars(
        select(AuditEntry).where(AuditEntry.seq == seq).execution_options(populate_existing=True)
    ).one()


# -- the chain ----------------------------------------------------------------------------------


def test_entries_link_to_the_one_before_and_the_chain_verifies(session):
    before = audit.verify_chain(session)
    entries = _write(session, 3)

    assert [e.seq for e in entries] == [before.head_seq + 1, before.head_seq + 2, before.head_seq + 3]
    assert entries[0].prev_hash == before.head_hash
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[2].prev_hash == entries[1].entry_hash
    result = audit.verify_chain(session)
    assert result.intact, result.problems
    assert result.entries_checked == before.entries_checked + 3
    assert (result.head_seq, result.head_hash) == (entries[2].seq, entries[2].entry_hash)
    head = session.get(AuditHead, 1)
    assert (head.last_seq, head.last_hash) == (entries[2].seq, entries[2].entry_hash)


def test_an_entry_names_the_actor_and_origin_of_its_context_unless_the_service_names_the_actor(session):
    default = audit.record(session, action="key.used", object_type="key", object_id="K1")
    named = audit.record(session, action="key.used", object_type="key", object_id="K1", actor="a@b.test")
    with audit.acting_as(audit.cli_context()):
        from_cli = audit.record(session, action="key.used", object_type="key", object_id="K1")
    session.commit()

    assert (default.actor, default.origin) == (ACTOR, ORIGIN)
    assert (named.actor, named.origin) == ("a@b.test", ORIGIN)
    assert from_cli.actor.startswith("cli:")
    assert "@" in from_cli.actor
    assert from_cli.origin == "cli"


def test_details_are_stored_as_json_gives_them_back_so_dates_and_unicode_verify(session):
    entry = audit.record(
        session,
        action="letter.issued",
        object_type="letter",
        object_id="ACME-2026-000001",
        details={"valid_until": dt.date(2027, 3, 1), "note": "东岳 — ok", "count": 3},
    )
    session.commit()

    assert _entry(session, entry.seq).details == {"valid_until": "2027-03-01", "note": "东岳 — ok", "count": 3}
    assert audit.verify_chain(session).intact


def test_history_of_returns_one_objects_entries_oldest_first(session):
    _write(session, 2)
    first = audit.record(session, action="outlet.created", object_type="outlet", object_id="TH-9")
    _write(session, 1, start=5)
    second = audit.record(session, action="outlet.updated", object_type="outlet", object_id="TH-9")
    audit.record(session, action="outlet.created", object_type="letter", object_id="TH-9")  # another type
    session.commit()

    history = audit.history_of(session, object_type="outlet", object_id="TH-9")

    assert [e.seq for e in history] == [first.seq, second.seq]
    assert [e.action for e in history] == ["outlet.created", "outlet.updated"]
    assert audit.history_of(session, object_type="outlet", object_id="NOPE") == []


# -- the database refuses changes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEntry).values(actor="someone@else.test"),
        update(AuditEntry).values(details={}),
        delete(AuditEntry),
    ],
    ids=["update actor", "update details", "delete"],
)
def test_the_table_refuses_a_plain_update_or_delete(session, statement):
    _write(session, 2)

    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(statement.execution_options(synchronize_session=False))
    session.rollback()

    assert audit.verify_chain(session).intact


# -- tampering is found -------------------------------------------------------------------------

EDITS = {
    "actor": "innocent@example.test",
    "origin": "10.0.0.1",
    "action": "outlet.created",
    "object_type": "letter",
    "object_id": "KZ-999",
    "manufacturer_id": 999,
    "exporter_id": 7,
    "details": {"changed": {"city": "Astana"}, "version": 2},
    "at": dt.datetime(2026, 9, 1, 3, 0, tzinfo=dt.UTC),
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edited_entry_is_found_whichever_field_was_changed(session, column):
    entries = _write(session, 3)
    middle = entries[1].seq
    _bypass_triggers(session)

    session.execute(
        update(AuditEntry)
        .where(AuditEntry.seq == middle)
        .values({column: EDITS[column]})
        .execution_options(synchronize_session=False)
    )
    session.commit()

    assert _problems(session) == [
        f"entry {middle} ({_entry(session, middle).action}) was altered: its hash does not match"
    ]


def test_an_edited_entry_whose_hash_was_recomputed_no_longer_links_to_the_next(session):
    entries = _write(session, 3)
    middle = entries[1].seq
    _bypass_triggers(session)
    forged = _entry(session, middle)
    forged.details = {"changed": {"city": "Astana"}}
    forged.entry_hash = audit.entry_hash(forged)
    session.commit()

    assert _problems(session) == [f"entry {middle + 1} (outlet.updated) does not link to the entry before it"]


def test_a_deleted_entry_in_the_middle_is_found(session):
    entries = _write(session, 3)
    middle = entries[1].seq
    _bypass_triggers(session)

    session.execute(delete(AuditEntry).where(AuditEntry.seq == middle).execution_options(synchronize_session=False))
    session.commit()

    problems = _problems(session)
    assert f"entry {middle} missing (deleted)" in problems
    assert f"entry {middle + 1} (outlet.updated) does not link to the entry before it" in problems


def test_deleting_the_newest_entries_is_found_because_the_head_no_longer_matches(session):
    entries = _write(session, 4)
    _bypass_triggers(session)

    session.execute(
        delete(AuditEntry).where(AuditEntry.seq >= entries[2].seq).execution_options(synchronize_session=False)
    )
    session.commit()

    problems = _problems(session)
    assert len(problems) == 1
    assert problems[0].startswith(f"entries {entries[2].seq}–{entries[3].seq} missing: the newest entries were deleted")


def test_an_entry_inserted_behind_the_head_is_found(session):
    last = _write(session, 2)[-1]
    forged = AuditEntry(
        seq=last.seq + 1,
        at=last.at,
        actor="admin@example.test",
        origin="127.0.0.1",
        action="letter.revoked",
        object_type="letter",
        object_id="ACME-2026-000001",
        details={"reason": "forged"},
        prev_hash=last.entry_hash,
    )
    forged.entry_hash = audit.entry_hash(forged)  # a perfectly linked, correctly hashed entry
    session.add(forged)
    session.commit()

    assert _problems(session) == [f"entry {forged.seq} lies beyond the chain's head: it was inserted behind the chain"]


def test_an_entry_forged_into_the_middle_is_found(session):
    entries = _write(session, 3)
    _bypass_triggers(session)
    # Make room: move the newest entry one place on, then slip a forged entry in.
    newest = entries[2].seq
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.seq == newest)
        .values(seq=newest + 1)
        .execution_options(synchronize_session=False)
    )
    forged = {
        "seq": newest,
        "at": entries[1].at,
        "actor": "admin@example.test",
        "origin": "127.0.0.1",
        "action": "letter.revoked",
        "object_type": "letter",
        "object_id": "ACME-2026-000001",
        "manufacturer_id": None,
        "exporter_id": None,
        "details": {"reason": "forged"},
        "prev_hash": entries[1].entry_hash,
    }
    forged["entry_hash"] = audit.entry_hash(AuditEntry(**forged))
    session.execute(insert(AuditEntry).values(forged))
    session.execute(update(AuditHead).values(last_seq=newest + 1).execution_options(synchronize_session=False))
    session.commit()

    problems = _problems(session)
    assert f"entry {newest + 1} (outlet.updated) does not link to the entry before it" in problems
    assert f"entry {newest + 1} (outlet.updated) was altered: its hash does not match" in problems


def test_a_chain_rewritten_from_an_edited_entry_on_is_found_only_against_an_anchor(session):
    entries = _write(session, 3)
    anchor = (entries[1].seq, entries[1].entry_hash)  # noted outside the database earlier
    _bypass_triggers(session)
    previous = entries[0].entry_hash
    for seq in (entries[1].seq, entries[2].seq):  # rewrite every hash from the edit on
        entry = _entry(session, seq)
        if seq == entries[1].seq:
            entry.details = {"changed": {"city": "Astana"}}
        entry.prev_hash = previous
        entry.entry_hash = previous = audit.entry_hash(entry)
    session.execute(update(AuditHead).values(last_hash=previous).execution_options(synchronize_session=False))
    session.commit()

    # Unkeyed hashes cannot catch a complete rewrite by themselves (see the module's docstring) …
    assert _problems(session) == []
    # … an anchor kept outside the database does.
    assert _problems(session, anchor=anchor) == [
        f"entry {anchor[0]} (outlet.updated) is not the one anchored: the chain was rewritten"
    ]


def test_an_anchor_that_matches_keeps_the_chain_intact(session):
    entries = _write(session, 2)

    assert _problems(session, anchor=(entries[0].seq, entries[0].entry_hash)) == []


# -- reading, scoped to the tenant --------------------------------------------------------------


def test_list_entries_shows_a_manufacturer_admin_only_their_own_tenant_and_refuses_others(session):
    acme = factories.manufacturer(session)
    other = factories.manufacturer(session, wmis=("LRW",))
    admin = factories.user(session, "manufacturer_admin", manufacturer=acme)
    platform = factories.user(session, "platform_admin")
    mine = audit.record(session, action="outlet.created", object_type="outlet", object_id="A", manufacturer_id=acme.id)
    theirs = audit.record(
        session, action="outlet.created", object_type="outlet", object_id="B", manufacturer_id=other.id
    )
    session.commit()

    seen = audit.list_entries(session, admin, action="outlet.created").entries
    assert [e.seq for e in seen] == [mine.seq]
    everything = audit.list_entries(session, platform, action="outlet.created", per_page=500).entries
    assert {mine.seq, theirs.seq} <= {e.seq for e in everything}
    assert [e.seq for e in everything] == sorted((e.seq for e in everything), reverse=True)  # newest first
    for role, kwargs in (
        ("aftersales", {"manufacturer": acme}),
        ("exporter", {"exporter": factories.exporter(session)}),
    ):
        with pytest.raises(Forbidden):
            audit.list_entries(session, factories.user(session, role, **kwargs))


def test_list_entries_filters_by_object_and_pages(session):
    platform = factories.user(session, "platform_admin")
    for n in range(5):
        audit.record(session, action="letter.issued", object_type="letter", object_id="L-1", details={"n": n})
    audit.record(session, action="letter.issued", object_type="letter", object_id="L-2")
    session.commit()

    first = audit.list_entries(session, platform, object_type="letter", object_id="L-1", per_page=2)
    third = audit.list_entries(session, platform, object_type="letter", object_id="L-1", per_page=2, page=3)

    assert (first.total, first.pages) == (5, 3)
    assert [e.details["n"] for e in first.entries] == [4, 3]
    assert [e.details["n"] for e in third.entries] == [0]


# -- every state-changing service writes its entry ----------------------------------------------


def _entries(session: Session, action: str, object_id: str | int | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    return list(session.scalars(query.order_by(AuditEntry.seq).execution_options(populate_existing=True)))


def _one(session: Session, action: str, object_id: str | int | None = None) -> AuditEntry:
    found = _entries(session, action, object_id)
    assert len(found) == 1, (action, object_id, found)
    return found[0]


def _user(session: Session, token: str) -> User:
    return user_for_token(session=session, token=token)


def test_filing_deciding_and_issuing_through_the_api_record_who_from_where_and_the_tenant(
    client, session, world, issue
):
    number, letter_json, _ = issue(world.vins[:2])
    clerk, staff = _user(session, world.exporter_token), _user(session, world.aftersales_token)
    letter = session.scalar(select(Letter).where(Letter.number == number))
    tenant = (world.manufacturer.id, world.exporter.id)

    submitted = _one(session, "request.submitted", letter.request_id)
    assert (submitted.actor, submitted.origin, submitted.object_type) == (clerk.email, "127.0.0.1", "request")
    assert (submitted.manufacturer_id, submitted.exporter_id) == tenant
    assert submitted.details["vehicle_count"] == 2
    assert submitted.details["eligible"] == 2
    assert submitted.details["reference"] == "CONTRACT-2026-001"

    decided = _one(session, "request.decided", letter.request_id)
    assert (decided.actor, decided.origin, decided.manufacturer_id, decided.exporter_id) == (
        staff.email,
        "127.0.0.1",
        *tenant,
    )
    assert decided.details["status"] == "approved"
    assert (decided.details["approved"], decided.details["rejected"], decided.details["letter"]) == (2, 0, number)

    issued = _one(session, "letter.issued", number)
    assert (issued.object_type, issued.actor, issued.origin) == ("letter", staff.email, "127.0.0.1")
    assert (issued.manufacturer_id, issued.exporter_id) == tenant
    assert issued.details["vehicles"] == 2
    assert letter_json["verification_code"] not in str(issued.details)  # the code is a secret

    used = _entries(session, "key.used")[-1]
    assert (used.object_type, used.object_id, used.details["letter"]) == (
        "key",
        session.get(SealKey, letter.seal_key_id).kid,
        number,
    )
    assert (used.actor, used.manufacturer_id) == (staff.email, world.manufacturer.id)
    assert decided.seq < issued.seq < used.seq
    assert audit.verify_chain(session).intact


def test_revoking_and_superseding_record_on_the_letter(client, session, world, issue):
    old, _, _ = issue(world.vins[:1])
    new, _, _ = issue(world.vins[:1], supersedes=old)
    admin = _user(session, world.admin_token)

    answer = client.post(
        f"/api/v1/letters/{new}/revoke", json={"reason": "wrong  destination"}, headers=world.auth(world.admin_token)
    )
    assert answer.status_code == 200, answer.json

    superseded = _one(session, "letter.superseded", old)
    assert superseded.details == {"superseded_by": new}
    assert (superseded.manufacturer_id, superseded.exporter_id) == (world.manufacturer.id, world.exporter.id)
    revoked = _one(session, "letter.revoked", new)
    assert (revoked.actor, revoked.origin, revoked.details) == (
        admin.email,
        "127.0.0.1",
        {"reason": "wrong destination"},
    )
    assert [e.action for e in audit.history_of(session, object_type="letter", object_id=new)] == [
        "letter.issued",
        "letter.revoked",
    ]


def test_a_letter_that_cannot_be_issued_reopens_the_request_on_the_record(client, session, world):
    from tests.letters.test_failure_paths import _registered_as

    _registered_as(session, world.vins[0], "E1 \U000f0000")
    body = world.request_body(world.vins[:1])
    body["vehicles"][0]["model"] = "E1 \U000f0000"  # no installed font has it: printing fails
    filed = client.post("/api/v1/requests", json=body, headers=world.auth(world.exporter_token)).json
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.auth(world.aftersales_token),
    )
    assert answer.status_code == 422

    history = audit.history_of(session, object_type="request", object_id=filed["id"])
    assert [e.action for e in history] == ["request.submitted", "request.decided", "request.reopened"]
    assert history[2].details["reason"] == "missing glyphs"
    assert history[2].details["letter"] == history[1].details["letter"]
    assert not _entries(session, "letter.issued", history[1].details["letter"])


def test_outlet_changes_through_the_api_record_the_changed_fields(client, session, world):
    staff = _user(session, world.aftersales_token)
    created = client.post(
        "/api/v1/outlets",
        json={
            "code": "uz-1",
            "country": "UZ",
            "name": "Tashkent Service",
            "provider": "Provider LLC",
            "address": "1 Amir Temur St",
            "valid_from": "2026-01-01",
        },
        headers=world.auth(world.aftersales_token),
    )
    assert created.status_code == 201, created.json
    changed = client.patch(
        "/api/v1/outlets/UZ-1",
        json={"city": "Tashkent", "name": "Tashkent Service"},
        headers=world.auth(world.aftersales_token),
    )
    assert changed.status_code == 200, changed.json
    unchanged = client.patch(
        "/api/v1/outlets/UZ-1", json={"city": "Tashkent"}, headers=world.auth(world.aftersales_token)
    )
    assert unchanged.status_code == 200

    entry = _one(session, "outlet.created", "UZ-1")
    assert (entry.object_type, entry.actor, entry.origin, entry.manufacturer_id) == (
        "outlet",
        staff.email,
        "127.0.0.1",
        world.manufacturer.id,
    )
    assert entry.details["country"] == "UZ"
    update_entry = _one(session, "outlet.updated", "UZ-1")  # the no-op edit recorded nothing
    assert update_entry.details["changed"] == {"city": "Tashkent"}
    assert update_entry.details["version"] == 2


def test_imports_record_their_counts_and_the_file_name_only(session, tmp_path):
    maker = factories.manufacturer(session, wmis=("LGX",))
    vins = factories.random_vins("LGX", 3, seed=3)
    registry_file = tmp_path / "registry.csv"
    registry_file.write_text(
        "vin,brand,model,production_date\n" + "".join(f"{v},Example,E1,2025-05-01\n" for v in vins)
    )
    outlets_file = tmp_path / "outlets.csv"
    outlets_file.write_text(
        "code,country,name,provider,address,valid_from\nKZ-1,KZ,Almaty Service,Provider LLP,1 Main St,2025-01-01\n"
    )

    registry.import_vehicles(session=session, manufacturer_code=maker.code, path=registry_file, actor="clerk@a.test")
    outlets.import_outlets(session=session, manufacturer_code=maker.code, path=outlets_file, actor="clerk@a.test")

    vehicles = _one(session, "vehicles.imported", maker.code)
    assert (vehicles.object_type, vehicles.actor, vehicles.origin, vehicles.manufacturer_id) == (
        "manufacturer",
        "clerk@a.test",
        ORIGIN,
        maker.id,
    )
    assert vehicles.details["file"] == "registry.csv"
    assert (vehicles.details["added"], vehicles.details["updated"], vehicles.details["rejected"]) == (3, 0, 0)
    imported = _one(session, "outlets.imported", maker.code)
    assert imported.details == {"file": "outlets.csv", "added": 1, "updated": 0, "unchanged": 0}
    assert imported.manufacturer_id == maker.id


def test_a_refused_import_records_nothing(session, tmp_path):
    maker = factories.manufacturer(session, wmis=("LGX",))
    bad = tmp_path / "registry.csv"
    bad.write_text("vin,brand,model,production_date\nNOT-A-VIN,Example,E1,2025-05-01\n")

    with pytest.raises(ImportRejected, match="nothing was imported"):
        registry.import_vehicles(session=session, manufacturer_code=maker.code, path=bad)

    assert _entries(session, "vehicles.imported", maker.code) == []


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 0, 0, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_organisations_record_their_creation_the_negative_list_and_the_seal_image(session):
    maker = factories.manufacturer(session, wmis=("LGX",))
    exporter = factories.exporter(session)
    organisations.block_exporter(
        session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="unpaid", actor="adm@a.test"
    )
    organisations.unblock_exporter(
        session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="paid", actor="adm@a.test"
    )
    organisations.set_seal_image(session=session, manufacturer_code=maker.code, image=_png())

    created = _one(session, "manufacturer.created", maker.code)
    assert (created.actor, created.origin, created.manufacturer_id, created.exporter_id) == (
        ACTOR,
        ORIGIN,
        maker.id,
        None,
    )
    assert created.details["wmis"] == ["LGX"]
    assert created.details["uscc"] == maker.uscc
    exporter_created = _one(session, "exporter.created", exporter.code)
    assert (exporter_created.exporter_id, exporter_created.manufacturer_id) == (exporter.id, None)
    for action, reason in (("exporter.blocked", "unpaid"), ("exporter.unblocked", "paid")):
        entry = _one(session, action, exporter.code)
        assert (entry.actor, entry.manufacturer_id, entry.exporter_id) == ("adm@a.test", maker.id, exporter.id)
        assert entry.details == {"manufacturer": maker.code, "reason": reason}
    image = _one(session, "manufacturer.seal_image_set", maker.code)
    assert image.manufacturer_id == maker.id
    assert set(image.details) == {"bytes", "sha256"}  # the image itself is not copied into the log


def test_accounts_record_users_and_tokens_but_never_the_secrets(session):
    maker = factories.manufacturer(session, wmis=("LGX",))
    user = factories.user(session, "aftersales", manufacturer=maker)
    token = factories.token(session, user)

    created = _one(session, "user.created", user.id)
    assert (created.object_type, created.actor, created.manufacturer_id) == ("user", ACTOR, maker.id)
    assert created.details == {"email": user.email, "role": "aftersales", "manufacturer": maker.code, "exporter": None}
    issued = _one(session, "token.created")
    assert (issued.object_type, issued.manufacturer_id, issued.details["user"]) == ("token", maker.id, user.email)
    logged = " ".join(str(e.details) for e in _entries(session, "user.created") + _entries(session, "token.created"))
    assert token not in logged
    assert token[4:12] not in logged
    assert factories.PASSWORD not in logged
    assert "$argon2" not in logged


def test_seal_keys_record_generation_rotation_and_import(session, settings):
    maker = factories.manufacturer(session, wmis=("LGX",))
    paths = {"keys_dir": settings.keys_dir, "passphrase": settings.seal_passphrase}
    first = keys.generate_key(session=session, manufacturer_code=maker.code, **paths)
    second = keys.rotate_key(session=session, manufacturer_code=maker.code, **paths)
    key_pem, chain_pem = factories.ca_issued(maker.uscc)
    third = keys.import_key(
        session=session,
        manufacturer_code=maker.code,
        key_pem=key_pem,
        certificates_pem=chain_pem,
        key_password=None,
        **paths,
    )

    generated = _one(session, "key.generated", first.kid)
    assert (generated.object_type, generated.manufacturer_id, generated.details["retired"]) == ("key", maker.id, None)
    assert _one(session, "key.rotated", second.kid).details["retired"] == first.kid
    imported = _one(session, "key.imported", third.kid)
    assert (imported.details["retired"], imported.details["source"]) == (second.kid, "imported")
    logged = str(generated.details) + str(imported.details)
    assert "PRIVATE KEY" not in logged
    assert settings.seal_passphrase not in logged
    assert (settings.keys_dir / first.key_file).exists()


def test_a_key_whose_audit_entry_cannot_be_written_leaves_no_key_file(session, settings):
    maker = factories.manufacturer(session, wmis=("LGX",))
    session.execute(delete(AuditHead))  # the trail cannot take an entry now
    session.commit()

    with pytest.raises(RuntimeError, match="head row is missing"):
        keys.generate_key(
            session=session,
            manufacturer_code=maker.code,
            keys_dir=settings.keys_dir,
            passphrase=settings.seal_passphrase,
        )

    assert not list(settings.keys_dir.glob("*.pem"))
    assert keys.current_key(session, maker) is None


# -- concurrency (PostgreSQL) -------------------------------------------------------------------

WRITERS = 8
ENTRIES_EACH = 15


@pytest.fixture
def pg_sessions():  # type: ignore[no-untyped-def]
    """Sessions of a database of its own: the writers must commit and see each other's commits."""
    from sqlalchemy.orm import sessionmaker

    from issuer.db import make_engine
    from issuer.migrate import upgrade
    from tests.conftest import TEST_DATABASE_URL, _create_postgres_database, _drop_postgres_database

    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL concurrency not tested")
    name, url = _create_postgres_database()
    engine = make_engine(url, pool_size=WRITERS + 2)
    try:
        upgrade(engine)
        yield sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        engine.dispose()
        _drop_postgres_database(name)


def test_concurrent_writers_leave_one_intact_chain_without_gaps(pg_sessions):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(WRITERS)

    def write(writer: int) -> list[int]:
        barrier.wait()
        seqs = []
        with audit.acting_as(audit.AuditContext(actor=f"writer{writer}@example.test", origin="127.0.0.1")):
            for n in range(ENTRIES_EACH):
                with pg_sessions() as session:
                    # Each transaction also changes something else first, as a service does.
                    organisations.create_exporter(
                        session=session,
                        code=f"W{writer}-{n}",
                        name=f"并发出口有限公司 {writer}-{n}",
                        uscc=factories.uscc(700_000 + writer * 100 + n),
                    )
                    entry = audit.record(session, action="key.used", object_type="key", object_id=f"K{writer}")
                    session.commit()
                    seqs.append(entry.seq)
        return seqs

    with ThreadPoolExecutor(WRITERS) as pool:
        written = [seq for seqs in pool.map(write, range(WRITERS)) for seq in seqs]

    total = WRITERS * ENTRIES_EACH * 2  # exporter.created and key.used per transaction
    with pg_sessions() as session:
        result = audit.verify_chain(session)
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
    assert result.intact, result.problems
    assert result.entries_checked == total
    assert seqs == list(range(1, total + 1))
    assert len(set(written)) == WRITERS * ENTRIES_EACH
