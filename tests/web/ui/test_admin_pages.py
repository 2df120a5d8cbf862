"""The administration pages: manufacturers, exporters, users and roles — what each administrator
may do, bad input re-rendered beside its field, and one manufacturer's users hidden from another."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from issuer.errors import ValidationFailed
from issuer.models import AuditEntry, Manufacturer, User
from issuer.services import accounts, organisations
from tests import factories
from tests.web.ui.admin_support import error_beside, page
from tests.web.ui.admin_support import user as make_user


@pytest.fixture
def platform_admin(session) -> User:
    return make_user(session, "platform_admin")


@pytest.fixture
def maker(session) -> Manufacturer:
    return factories.manufacturer(session, "ACME", wmis=("LGX",))


@pytest.fixture
def other_maker(session) -> Manufacturer:
    return factories.manufacturer(session, "OTHER", wmis=("LRW",))


def manufacturer_form(**changes: str) -> dict[str, str]:
    values = {
        "code": "dyauto",
        "name": "东岳汽车制造有限公司",
        "name_en": "Dongyue Automobile Manufacturing Co., Ltd.",
        "uscc": factories.uscc(77),
        "type": "vehicle_manufacturer",
        "wmis": "LDY\nLA9/123",
        "letter_validity_days": "90",
    }
    values.update(changes)
    return values


# -- manufacturers -----------------------------------------------------------------------------


def test_platform_admin_creates_a_manufacturer_and_sees_it_listed(browser, session, platform_admin):
    browser.sign_in(platform_admin)
    form_page = page(browser.get("/admin/manufacturers/new"))
    assert 'name="csrf_token"' in form_page
    assert "Only a vehicle manufacturer listed by MIIT may issue letters" in form_page
    assert "LA9/123" in form_page  # the small-maker form is explained

    answer = browser.post("/admin/manufacturers/new", manufacturer_form())
    assert answer.status_code == 302, page(answer)

    listed = page(browser.get("/admin/manufacturers"))
    assert "DYAUTO" in listed
    assert "东岳汽车制造有限公司" in listed
    assert "Dongyue Automobile Manufacturing Co., Ltd." in listed
    assert "LDY, LA9/123" in listed
    assert "Vehicle manufacturer listed by MIIT — may issue letters" in listed
    assert "No key" in listed
    stored = organisations.get_manufacturer(session, "DYAUTO")
    assert stored.letter_validity_days == 90
    assert [str(w) for w in stored.wmi_values()] == ["LDY", "LA9/123"]


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"uscc": "91310000MA1FL0XW9X"}, "uscc", ""),
        ({"wmis": "LDY\nLI9"}, "wmis", "LI9"),
        ({"wmis": "LA9"}, "wmis", "LA9"),
        ({"letter_validity_days": "0"}, "letter_validity_days", ""),
        ({"code": "BAD CODE!"}, "code", ""),
    ],
)
def test_manufacturer_form_with_bad_input_shows_the_error_beside_the_field_and_keeps_the_values(
    browser, session, platform_admin, changes, field, expected
):
    browser.sign_in(platform_admin)
    answer = browser.post("/admin/manufacturers/new", manufacturer_form(**changes))

    assert answer.status_code == 422
    text = page(answer)
    assert expected in error_beside(text, field)
    assert 'value="东岳汽车制造有限公司"' in text  # what was typed is kept
    assert 'value="Dongyue Automobile Manufacturing Co., Ltd."' in text
    assert session.scalar(select(Manufacturer).where(Manufacturer.code == "DYAUTO")) is None


def test_manufacturer_with_a_taken_code_or_wmi_is_refused_with_409_beside_the_field(
    browser, session, platform_admin, maker
):
    browser.sign_in(platform_admin)
    taken_code = browser.post("/admin/manufacturers/new", manufacturer_form(code="acme"))
    assert taken_code.status_code == 409
    assert "already exists" in error_beside(page(taken_code), "code")

    taken_wmi = browser.post("/admin/manufacturers/new", manufacturer_form(wmis="LGX"))
    assert taken_wmi.status_code == 409
    assert "LGX already belongs to manufacturer ACME" in error_beside(page(taken_wmi), "wmis")
    assert "LGX" in page(taken_wmi)

    taken_uscc = browser.post("/admin/manufacturers/new", manufacturer_form(uscc=maker.uscc))
    assert taken_uscc.status_code == 409
    assert "already exists" in error_beside(page(taken_uscc), "uscc")


def test_platform_admin_changes_a_manufacturers_type_names_validity_and_wmis(browser, session, platform_admin, maker):
    browser.sign_in(platform_admin)
    edit_page = page(browser.get("/admin/manufacturers/ACME"))
    assert maker.uscc in edit_page
    assert 'name="uscc"' not in edit_page  # the credit code cannot be changed
    assert 'name="code"' not in edit_page

    answer = browser.post(
        "/admin/manufacturers/ACME",
        {
            "name": "阿克米汽车有限公司",
            "name_en": "Acme Motors Ltd.",
            "type": "sales_company",
            "wmis": "LGX\nLA9/456",
            "letter_validity_days": "",
        },
    )
    assert answer.status_code == 302, page(answer)

    session.expire_all()
    changed = organisations.get_manufacturer(session, "ACME")
    assert (changed.name, changed.name_en, changed.type) == ("阿克米汽车有限公司", "Acme Motors Ltd.", "sales_company")
    assert changed.letter_validity_days is None
    assert not changed.may_issue
    assert [str(w) for w in changed.wmi_values()] == ["LGX", "LA9/456"]
    listed = page(browser.get("/admin/manufacturers"))
    assert "Sales company — may not issue letters" in listed
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "manufacturer.updated")).one()
    assert entry.actor == platform_admin.email
    assert entry.details["changes"]["type"] == ["vehicle_manufacturer", "sales_company"]
    assert "Manufacturer changed" in page(browser.get("/admin/manufacturers/ACME"))  # its history


def test_editing_a_manufacturer_with_another_manufacturers_wmi_is_refused(
    browser, session, platform_admin, maker, other_maker
):
    browser.sign_in(platform_admin)
    answer = browser.post(
        "/admin/manufacturers/ACME",
        {
            "name": maker.name,
            "name_en": maker.name_en,
            "type": maker.type,
            "wmis": "LGX\nLRW",
            "letter_validity_days": "180",
        },
    )
    assert answer.status_code == 409
    assert "WMI LRW already belongs to manufacturer OTHER" in error_beside(page(answer), "wmis")
    assert "LGX\nLRW" in page(answer)
    session.expire_all()
    assert [str(w) for w in organisations.get_manufacturer(session, "ACME").wmi_values()] == ["LGX"]


# -- exporters ---------------------------------------------------------------------------------


def test_platform_admin_adds_an_exporter_and_bad_credit_code_is_shown_beside_the_field(
    browser, session, platform_admin
):
    browser.sign_in(platform_admin)
    bad = browser.post(
        "/admin/exporters/new", {"code": "yuanhang", "name": "宁波远航汽车出口有限公司", "uscc": "not-a-code"}
    )
    assert bad.status_code == 422
    assert error_beside(page(bad), "uscc")
    assert 'value="宁波远航汽车出口有限公司"' in page(bad)

    good = browser.post(
        "/admin/exporters/new",
        {
            "code": "yuanhang",
            "name": "宁波远航汽车出口有限公司",
            "name_en": "Ningbo Yuanhang",
            "uscc": factories.uscc(88),
        },
    )
    assert good.status_code == 302
    listed = page(browser.get("/admin/exporters"))
    assert "YUANHANG" in listed
    assert "宁波远航汽车出口有限公司" in listed

    again = browser.post("/admin/exporters/new", {"code": "YUANHANG", "name": "另一家", "uscc": factories.uscc(89)})
    assert again.status_code == 409
    assert "already exists" in error_beside(page(again), "code")


@pytest.mark.parametrize("role", ["exporter", "aftersales", "reviewer", "manufacturer_admin"])
@pytest.mark.parametrize(
    "path", ["/admin/manufacturers", "/admin/manufacturers/new", "/admin/manufacturers/ACME", "/admin/exporters"]
)
def test_only_platform_admins_manage_organisations(browser, session, maker, role, path):
    organisation = {"exporter": factories.exporter(session)} if role == "exporter" else {}
    if role in ("aftersales", "manufacturer_admin"):
        organisation = {"manufacturer": maker}
    browser.sign_in(make_user(session, role, **organisation))
    assert browser.get(path).status_code == 403


@pytest.mark.parametrize("role", ["exporter", "aftersales", "reviewer"])
@pytest.mark.parametrize("path", ["/admin/users", "/admin/users/new", "/admin/keys", "/admin/keys/ACME"])
def test_exporters_aftersales_and_reviewers_get_403_on_user_and_key_pages(browser, session, maker, role, path):
    organisation = {"exporter": factories.exporter(session)} if role == "exporter" else {}
    if role == "aftersales":
        organisation = {"manufacturer": maker}
    browser.sign_in(make_user(session, role, **organisation))
    assert browser.get(path).status_code == 403


def test_admin_pages_need_signing_in(client):
    answer = client.get("/admin/users")
    assert answer.status_code == 302
    assert "/login" in answer.headers["Location"]


# -- users and roles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "organisation"),
    [
        ("manufacturer_admin", "manufacturer"),
        ("aftersales", "manufacturer"),
        ("exporter", "exporter"),
        ("reviewer", None),
        ("platform_admin", None),
    ],
)
def test_platform_admin_creates_users_of_every_role(browser, session, platform_admin, maker, role, organisation):
    exporter = factories.exporter(session, "EXPA")
    browser.sign_in(platform_admin)
    form = {
        "email": f"New.{role}@Example.test",
        "role": role,
        "password": "a-long-password",
        "manufacturer": "",
        "exporter": "",
    }
    if organisation == "manufacturer":
        form["manufacturer"] = maker.code
    if organisation == "exporter":
        form["exporter"] = exporter.code
    answer = browser.post("/admin/users/new", form)
    assert answer.status_code == 302, page(answer)

    created = session.scalars(select(User).where(User.email == f"new.{role}@example.test")).one()
    assert created.role == role
    assert created.manufacturer_id == (maker.id if organisation == "manufacturer" else None)
    assert created.exporter_id == (exporter.id if organisation == "exporter" else None)
    assert f"new.{role}@example.test" in page(browser.get("/admin/users"))
    assert accounts.authenticate(session=session, email=created.email, password="a-long-password") is not None


def test_user_form_with_bad_input_keeps_values_and_shows_errors_beside_fields(browser, session, platform_admin, maker):
    browser.sign_in(platform_admin)
    short = browser.post(
        "/admin/users/new",
        {
            "email": "clerk@example.test",
            "role": "aftersales",
            "password": "short",
            "manufacturer": maker.code,
            "exporter": "",
        },
    )
    assert short.status_code == 422
    assert error_beside(page(short), "password")
    assert 'value="clerk@example.test"' in page(short)

    no_organisation = browser.post(
        "/admin/users/new",
        {
            "email": "clerk@example.test",
            "role": "aftersales",
            "password": "a-long-password",
            "manufacturer": "",
            "exporter": "",
        },
    )
    assert no_organisation.status_code == 422
    assert "required" in error_beside(page(no_organisation), "manufacturer")

    existing = make_user(session, "reviewer")
    duplicate = browser.post(
        "/admin/users/new",
        {
            "email": existing.email,
            "role": "reviewer",
            "password": "a-long-password",
            "manufacturer": "",
            "exporter": "",
        },
    )
    assert duplicate.status_code == 409
    assert "already exists" in error_beside(page(duplicate), "email")


def test_manufacturer_admin_sees_and_edits_only_its_own_manufacturers_users(make_browser, session, maker, other_maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    colleague = make_user(session, "aftersales", manufacturer=maker)
    stranger = make_user(session, "aftersales", manufacturer=other_maker)
    exporter_user = make_user(session, "exporter", exporter=factories.exporter(session))
    browser = make_browser(admin)

    listed = page(browser.get("/admin/users"))
    assert colleague.email in listed
    assert stranger.email not in listed
    assert exporter_user.email not in listed

    assert browser.get(f"/admin/users/{colleague.id}").status_code == 200
    for user in (stranger, exporter_user):
        assert browser.get(f"/admin/users/{user.id}").status_code == 404
        form = page(browser.get(f"/admin/users/{colleague.id}"))
        assert f"/admin/users/{user.id}" not in form
        refused = browser.post(
            f"/admin/users/{user.id}", {"role": "manufacturer_admin"}, form_page=f"/admin/users/{colleague.id}"
        )
        assert refused.status_code == 404
        deactivate = browser.post(f"/admin/users/{user.id}/deactivate", {}, form_page=f"/admin/users/{colleague.id}")
        assert deactivate.status_code == 404
        reset = browser.post(
            f"/admin/users/{user.id}/password",
            {"password": "hijacked-password"},
            form_page=f"/admin/users/{colleague.id}",
        )
        assert reset.status_code == 404
    session.expire_all()
    assert session.get(User, stranger.id).active
    assert session.get(User, stranger.id).role == "aftersales"


def test_manufacturer_admin_adds_staff_to_its_own_manufacturer_only_and_never_platform_admins(
    make_browser, session, maker, other_maker
):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    browser = make_browser(admin)
    form_page = page(browser.get("/admin/users/new"))
    assert 'name="manufacturer"' not in form_page  # the organisation is always its own
    assert 'value="platform_admin"' not in form_page

    for role in ("platform_admin", "exporter", "reviewer"):
        refused = browser.post(
            "/admin/users/new", {"email": f"{role}@example.test", "role": role, "password": "a-long-password"}
        )
        assert refused.status_code == 422
        assert error_beside(page(refused), "role")
    assert session.scalar(select(User).where(User.email == "platform_admin@example.test")) is None

    added = browser.post(
        "/admin/users/new",
        {
            "email": "new.staff@example.test",
            "role": "aftersales",
            "password": "a-long-password",
            "manufacturer": "OTHER",
        },
    )
    assert added.status_code == 302
    created = session.scalars(select(User).where(User.email == "new.staff@example.test")).one()
    assert created.manufacturer_id == maker.id  # "OTHER" in the form is ignored


def test_service_refuses_a_platform_admin_from_a_manufacturer_admin(session, maker):
    from issuer.errors import ValidationFailed

    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    with pytest.raises(ValidationFailed):
        accounts.create_user_as(
            session=session, actor=admin, email="boss@example.test", role="platform_admin", password="a-long-password"
        )
    with pytest.raises(ValidationFailed):
        accounts.update_user(
            session=session,
            actor=admin,
            user_id=make_user(session, "aftersales", manufacturer=maker).id,
            role="platform_admin",
        )


def test_manufacturer_admin_changes_a_colleagues_role_and_it_is_audited(make_browser, session, maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    colleague = make_user(session, "aftersales", manufacturer=maker)
    browser = make_browser(admin)

    answer = browser.post(f"/admin/users/{colleague.id}", {"role": "manufacturer_admin"})
    assert answer.status_code == 302
    session.expire_all()
    assert session.get(User, colleague.id).role == "manufacturer_admin"
    assert session.get(User, colleague.id).manufacturer_id == maker.id
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.updated")).one()
    assert entry.actor == admin.email
    assert entry.details["changes"]["role"] == ["aftersales", "manufacturer_admin"]
    assert "User changed" in page(browser.get(f"/admin/users/{colleague.id}"))


def test_platform_admin_moves_a_user_to_another_role_and_organisation(browser, session, platform_admin, maker):
    exporter = factories.exporter(session, "EXPB")
    user = make_user(session, "aftersales", manufacturer=maker)
    browser.sign_in(platform_admin)
    answer = browser.post(
        f"/admin/users/{user.id}", {"role": "exporter", "manufacturer": maker.code, "exporter": "EXPB"}
    )
    assert answer.status_code == 302, page(answer)
    session.expire_all()
    moved = session.get(User, user.id)
    assert (moved.role, moved.manufacturer_id, moved.exporter_id) == ("exporter", None, exporter.id)

    missing = browser.post(f"/admin/users/{user.id}", {"role": "aftersales", "manufacturer": "", "exporter": ""})
    assert missing.status_code == 422
    assert "required" in error_beside(page(missing), "manufacturer")


def test_an_admin_cannot_deactivate_themselves_or_change_their_own_role(make_browser, session, maker, platform_admin):
    for admin in (platform_admin, make_user(session, "manufacturer_admin", manufacturer=maker)):
        browser = make_browser(admin)
        edit = page(browser.get(f"/admin/users/{admin.id}"))
        assert "You cannot deactivate your own account." in edit
        deactivate = browser.post(f"/admin/users/{admin.id}/deactivate", {}, form_page=f"/admin/users/{admin.id}")
        assert deactivate.status_code == 422
        assert "you cannot deactivate your own account" in page(deactivate)
        demote = browser.post(f"/admin/users/{admin.id}", {"role": "aftersales", "manufacturer": maker.code})
        assert demote.status_code == 422
        assert "you cannot change your own role" in error_beside(page(demote), "role")
        session.expire_all()
        assert session.get(User, admin.id).active
        assert session.get(User, admin.id).role == admin.role


def test_deactivated_user_cannot_sign_in_and_their_token_gets_401(make_browser, client, session, platform_admin, maker):
    user = make_user(session, "aftersales", manufacturer=maker)
    token = factories.token(session, user)
    signed_in = make_browser(user)
    assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    admin = make_browser(platform_admin)

    answer = admin.post(f"/admin/users/{user.id}/deactivate", {}, form_page=f"/admin/users/{user.id}")
    assert answer.status_code == 302
    assert "Deactivated" in page(admin.get("/admin/users"))
    assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert signed_in.get("/account").status_code == 302  # the open session ends
    with pytest.raises(AssertionError):
        make_browser(user)  # the login form refuses a deactivated user
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.deactivated")).one()
    assert entry.actor == platform_admin.email

    again = admin.post(f"/admin/users/{user.id}/reactivate", {}, form_page=f"/admin/users/{user.id}")
    assert again.status_code == 302
    assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    make_browser(user)


def test_admin_resets_a_password_of_at_least_the_minimum_length(make_browser, session, maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    user = make_user(session, "aftersales", manufacturer=maker)
    browser = make_browser(admin)

    short = browser.post(
        f"/admin/users/{user.id}/password",
        {"password": "x" * (accounts.MIN_PASSWORD_CHARS - 1)},
        form_page=f"/admin/users/{user.id}",
    )
    assert short.status_code == 422
    assert error_beside(page(short), "password")

    answer = browser.post(
        f"/admin/users/{user.id}/password", {"password": "brand-new-password"}, form_page=f"/admin/users/{user.id}"
    )
    assert answer.status_code == 302
    session.expire_all()
    assert accounts.authenticate(session=session, email=user.email, password="brand-new-password") is not None
    assert accounts.authenticate(session=session, email=user.email, password=factories.PASSWORD) is None
    make_browser().sign_in(user, password="brand-new-password")
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_reset")).one()
    assert "brand-new-password" not in str(entry.details)


def test_renaming_a_manufacturer_with_a_seal_key_advises_a_rotation(browser, session, settings, platform_admin, maker):
    from issuer.services.keys import generate_key

    generate_key(
        session=session, manufacturer_code="ACME", keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    browser.sign_in(platform_admin)
    answer = browser.post(
        "/admin/manufacturers/ACME",
        {
            "name": "新名称汽车有限公司",
            "name_en": maker.name_en,
            "type": maker.type,
            "wmis": "LGX",
            "letter_validity_days": "180",
        },
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert "The current seal certificate still names the old name" in page(answer)


@pytest.mark.parametrize(
    ("role", "kept"),
    [("aftersales", "manufacturer"), ("exporter", "exporter"), ("reviewer", None), ("platform_admin", None)],
)
def test_new_user_keeps_only_the_organisation_select_that_fits_the_role(
    browser, session, platform_admin, maker, role, kept
):
    """Both selects are always submitted (the script only hides one): an exporter chosen before
    the role was switched to after-sales is ignored, not refused as 'not both'."""
    exporter = factories.exporter(session, "EXPA")
    browser.sign_in(platform_admin)
    answer = browser.post(
        "/admin/users/new",
        {
            "email": "switched@example.test",
            "role": role,
            "password": "a-long-password",
            "manufacturer": maker.code,
            "exporter": exporter.code,
        },
    )
    assert answer.status_code == 302, page(answer)
    created = session.scalars(select(User).where(User.email == "switched@example.test")).one()
    assert created.manufacturer_id == (maker.id if kept == "manufacturer" else None)
    assert created.exporter_id == (exporter.id if kept == "exporter" else None)


def test_editing_a_user_keeps_only_the_organisation_select_that_fits_the_role(browser, session, platform_admin, maker):
    exporter = factories.exporter(session, "EXPB")
    user = make_user(session, "exporter", exporter=exporter)
    browser.sign_in(platform_admin)

    answer = browser.post(
        f"/admin/users/{user.id}", {"role": "aftersales", "manufacturer": maker.code, "exporter": exporter.code}
    )

    assert answer.status_code == 302, page(answer)
    session.expire_all()
    moved = session.get(User, user.id)
    assert (moved.role, moved.manufacturer_id, moved.exporter_id) == ("aftersales", maker.id, None)
    missing = browser.post(f"/admin/users/{user.id}", {"role": "exporter", "manufacturer": maker.code, "exporter": ""})
    assert missing.status_code == 422
    assert "required" in error_beside(page(missing), "exporter")


def test_a_password_reset_revokes_every_api_token_of_the_user(make_browser, client, session, maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    user = make_user(session, "aftersales", manufacturer=maker)
    tokens = [factories.token(session, user) for _ in range(2)]
    colleague = make_user(session, "aftersales", manufacturer=maker)
    colleagues_token = factories.token(session, colleague)
    for token in (*tokens, colleagues_token):
        assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    browser = make_browser(admin)

    answer = browser.post(
        f"/admin/users/{user.id}/password", {"password": "brand-new-password"}, form_page=f"/admin/users/{user.id}"
    )

    assert answer.status_code == 302
    assert "Their 2 API tokens are revoked" in page(browser.get(f"/admin/users/{user.id}"))
    for token in tokens:
        assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {colleagues_token}"}).status_code == 200
    revoked = session.scalars(select(AuditEntry).where(AuditEntry.action == "token.revoked")).all()
    assert len(revoked) == 2
    assert {entry.actor for entry in revoked} == {admin.email}
    reset = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_reset")).one()
    assert reset.details["revoked_tokens"] == 2

    again = browser.post(
        f"/admin/users/{user.id}/password", {"password": "another-new-password"}, form_page=f"/admin/users/{user.id}"
    )
    assert again.status_code == 302
    assert "They had no API token to revoke." in page(browser.get(f"/admin/users/{user.id}"))


def test_an_admin_cannot_reset_their_own_password_here(make_browser, client, session, maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    token = factories.token(session, admin)
    browser = make_browser(admin)

    answer = browser.post(
        f"/admin/users/{admin.id}/password", {"password": "brand-new-password"}, form_page=f"/admin/users/{admin.id}"
    )

    assert answer.status_code == 422
    assert "change it on your account page" in error_beside(page(answer), "password")
    session.expire_all()
    assert accounts.authenticate(session=session, email=admin.email, password=factories.PASSWORD) is not None
    assert client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_reset")).all() == []


def test_the_service_refuses_an_admin_resetting_their_own_password(session, maker):
    admin = make_user(session, "manufacturer_admin", manufacturer=maker)
    with pytest.raises(ValidationFailed) as refused:
        accounts.set_password(session=session, actor=admin, user_id=admin.id, password="brand-new-password")
    assert "password" in refused.value.details
    session.rollback()
    assert accounts.authenticate(session=session, email=admin.email, password=factories.PASSWORD) is not None
