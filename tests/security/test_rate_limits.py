"""Abuse limits, and why letter numbers, codes, accounts and tokens cannot be enumerated.

Proved through the real app (create_app with rate limits switched on; the test settings switch
them off) on SQLite and PostgreSQL, by sending requests until a limit answers and checking the
figures of issuer.web.security exactly: the last allowed request passes, the next one gets 429
with Retry-After (JSON under /api/, a translated page elsewhere), and other clients, accounts and
tokens are not affected. Client addresses are set per test client (REMOTE_ADDR), as a server
would see them. One test counts in a real Redis (database 9, flushed before and after) with two
app instances, the way two gunicorn workers would share it; one points at a Redis that is not
there and shows the limits stay in force (counted in memory) with a warning logged.

Enumeration is checked by comparing answers byte for byte (after blanking the CSRF token and the
echoed input, the only parts that differ by design), and the work done by counting the SQL
statements and the constant-time code comparisons or password hashes each path runs — no timing.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from issuer import clock, create_app
from issuer.config import Settings
from issuer.domain.eligibility import VehicleDeclaration
from issuer.models import ApiToken, Letter, User
from issuer.services import accounts
from issuer.services import letters as letter_service
from issuer.services.keys import generate_key
from issuer.services.letters import decide_request
from issuer.services.requests import submit_request
from issuer.web import security
from tests import factories
from tests.conftest import TODAY

REDIS_URL = "redis://127.0.0.1:6379/9"  # this module's own Redis database
NO_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
CSRF = re.compile(r'name="csrf_token" value="[^"]+"')
SAVEPOINT = re.compile(r"(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) sa_savepoint_\d+", re.IGNORECASE)

# Headers that differ between any two answers and say nothing about the letter or token asked
# for: the time, and the request id each answer carries (issuer.observability).
VARYING_HEADERS = {"Date", "X-Request-ID"}


def allowed(limit: str) -> int:
    """The number of requests the shortest window of a limit string allows, e.g. 10 for '10/minute;50/hour'."""
    return min(parse_many(limit), key=lambda item: item.get_expiry()).amount


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dozens of sign-ins per test: a cheaper Argon2 (the same code path, lower cost)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("no-such-user-password"))


def limited_app(settings: Settings, database: Any, **changes: Any) -> Flask:
    app = create_app(dataclasses.replace(settings, ratelimit_enabled=True, **changes), database=database)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(settings: Settings, bound_database: Any) -> Flask:
    return limited_app(settings, bound_database)


def visitor(app: Flask, address: str) -> FlaskClient:
    """A browser or script at ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def pdf_file(content: bytes) -> tuple[io.BytesIO, str]:
    return io.BytesIO(content), "letter.pdf"


def csrf_token(client: FlaskClient) -> str:
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the login page has no CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str, token: str | None = None) -> Any:
    data = {"email": email, "password": password, "csrf_token": token or csrf_token(client)}
    return client.post("/login", data=data)


def assert_rate_limited_page(response: Any, window: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert 1 <= int(response.headers["Retry-After"]) <= window
    html = response.get_data(as_text=True)
    assert "请稍候" in html  # the page's heading, in Chinese (the default language)
    assert f"请 {response.headers['Retry-After']} 秒后再试" in html


def assert_rate_limited_json(response: Any, window: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/json"
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= window
    error = response.get_json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["details"] == {"retry_after": seconds}
    assert f"try again in {seconds} seconds" in error["message"]


@pytest.fixture
def exporter(session: Session) -> User:
    return factories.user(session, "exporter", exporter=factories.exporter(session))


# -- signing in ----------------------------------------------------------------------------------


def test_sign_in_answers_429_after_10_attempts_a_minute_from_one_address(app: Flask, session: Session) -> None:
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    attempts = allowed(security.LOGIN_PER_ADDRESS)
    assert attempts == 10
    client = visitor(app, "203.0.113.10")
    token = csrf_token(client)
    # Different e-mails, so the per-account limit (5 failures) is not what answers.
    for n in range(attempts):
        assert sign_in(client, f"nobody{n}@example.test", "wrong-password", token).status_code == 401

    refused = sign_in(client, user.email, factories.PASSWORD, token)

    assert_rate_limited_page(refused, 60)
    assert client.get("/").status_code == 302, "the right password was refused, yet a session was opened"
    assert client.get("/login").status_code == 200, "showing the form is not limited"
    other = visitor(app, "203.0.113.11")
    assert sign_in(other, user.email, factories.PASSWORD).status_code == 302


def test_sign_in_to_one_account_answers_429_after_5_failures_from_any_addresses(
    app: Flask, session: Session, exporter: User
) -> None:
    failures = allowed(security.FAILED_LOGIN_PER_EMAIL)
    assert failures == 5
    for n in range(failures):
        spelling = exporter.email.upper() if n % 2 else exporter.email  # one account, however typed
        assert sign_in(visitor(app, f"198.51.100.{n}"), spelling, "wrong-password").status_code == 401

    refused = sign_in(visitor(app, "198.51.100.99"), exporter.email, factories.PASSWORD)

    assert_rate_limited_page(refused, 60)
    colleague = factories.user(session, "exporter", exporter=exporter.exporter)
    assert sign_in(visitor(app, "198.51.100.99"), colleague.email, factories.PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_count_against_the_account(app: Flask, exporter: User) -> None:
    for n in range(allowed(security.FAILED_LOGIN_PER_EMAIL) + 2):
        assert sign_in(visitor(app, f"192.0.2.{n}"), exporter.email, factories.PASSWORD).status_code == 302


# -- API tokens ----------------------------------------------------------------------------------


def test_api_answers_429_json_after_20_failed_token_authentications_from_one_address(
    app: Flask, session: Session, exporter: User
) -> None:
    token = factories.token(session, exporter)
    failures = allowed(security.FAILED_TOKEN_PER_ADDRESS)
    assert failures == 20
    client = visitor(app, "203.0.113.20")
    for n in range(failures):
        headers = {"Authorization": f"Bearer isr_guess{n:040d}"} if n % 2 else {}
        assert client.get("/api/v1/requests", headers=headers).status_code == 401

    refused = client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})

    assert_rate_limited_json(refused, 60)
    elsewhere = visitor(app, "203.0.113.21").get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})
    assert elsewhere.status_code == 200


def test_successful_token_calls_do_not_count_as_failures(app: Flask, session: Session, exporter: User) -> None:
    headers = {"Authorization": f"Bearer {factories.token(session, exporter)}"}
    client = visitor(app, "203.0.113.22")
    for _ in range(allowed(security.FAILED_TOKEN_PER_ADDRESS) + 5):
        assert client.get("/api/v1/requests", headers=headers).status_code == 200


def test_one_token_is_limited_to_600_calls_a_minute_and_other_tokens_go_on(
    app: Flask, session: Session, exporter: User
) -> None:
    busy = {"Authorization": f"Bearer {factories.token(session, exporter)}"}
    calm = {"Authorization": f"Bearer {factories.token(session, exporter)}"}
    calls = allowed(security.API_PER_TOKEN)
    assert calls == 600
    client = visitor(app, "203.0.113.30")
    # The outlets are manufacturer staff's: each call is authenticated, then refused (403), the
    # cheapest call there is; it counts all the same.
    statuses = Counter(client.get("/api/v1/outlets", headers=busy).status_code for _ in range(calls))
    assert statuses == {403: calls}

    assert_rate_limited_json(client.get("/api/v1/requests", headers=busy), 60)
    assert client.get("/api/v1/requests", headers=calm).status_code == 200


# -- public verification -------------------------------------------------------------------------


def test_verification_lookups_of_one_address_are_limited_across_the_page_and_the_api(app: Flask) -> None:
    lookups = allowed(security.VERIFY_LOOKUP_PER_ADDRESS)
    assert lookups == 30
    client = visitor(app, "203.0.113.40")
    for n in range(lookups):
        path = f"/api/v1/verify/M1-2026-{n:06d}" if n % 2 else f"/verify/M1-2026-{n:06d}"
        assert client.get(path, query_string={"code": "AAAA-BBBB-CCCC-DDDD"}).status_code == 404

    assert_rate_limited_json(client.get("/api/v1/verify/M1-2026-000001?code=X"), 60)
    assert_rate_limited_page(client.get("/verify/M1-2026-000001?code=X"), 60)
    assert client.get("/verify").status_code == 200, "the plain form is not a lookup"
    # Uploads are counted apart: a reviewer who mistyped codes can still upload the PDF.
    upload = client.post("/api/v1/verify", data={"file": pdf_file(b"%PDF-1.7 not a letter")})
    assert upload.status_code == 200
    assert visitor(app, "203.0.113.41").get("/verify/M1-2026-000001?code=X").status_code == 404


def test_pdf_uploads_of_one_address_are_limited_across_the_page_and_the_api(app: Flask) -> None:
    uploads = allowed(security.VERIFY_UPLOAD_PER_ADDRESS)
    assert uploads == 10
    client = visitor(app, "203.0.113.50")
    for n in range(uploads):
        path = "/api/v1/verify" if n % 2 else "/verify"
        answer = client.post(path, data={"file": pdf_file(b"%PDF-1.7 not a letter")})
        assert answer.status_code == 200, path

    assert_rate_limited_json(client.post("/api/v1/verify", data={"file": pdf_file(b"%PDF-1.7")}), 60)
    assert_rate_limited_page(client.post("/verify", data={"file": pdf_file(b"%PDF-1.7")}), 60)
    assert client.get("/api/v1/verify/M1-2026-000001?code=X").status_code == 404, "lookups are counted apart"


# -- where the address comes from ----------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_proxies_are_configured(app: Flask) -> None:
    client = visitor(app, "203.0.113.60")
    for n in range(allowed(security.VERIFY_LOOKUP_PER_ADDRESS)):
        forged = {"X-Forwarded-For": f"10.0.{n}.1"}
        assert client.get("/verify/M1-2026-000001?code=X", headers=forged).status_code == 404

    answer = client.get("/verify/M1-2026-000001?code=X", headers={"X-Forwarded-For": "10.9.9.9"})

    assert answer.status_code == 429, "a forged X-Forwarded-For gave a fresh allowance"


def test_behind_a_configured_proxy_each_forwarded_client_is_counted_alone(
    settings: Settings, bound_database: Any
) -> None:
    app = limited_app(settings, bound_database, trusted_proxies=1)
    proxy = visitor(app, "10.0.0.2")  # every request arrives from the proxy's address
    for _ in range(allowed(security.VERIFY_LOOKUP_PER_ADDRESS)):
        headers = {"X-Forwarded-For": "198.51.100.7"}
        assert proxy.get("/verify/M1-2026-000001?code=X", headers=headers).status_code == 404

    assert proxy.get("/verify/M1-2026-000001?code=X", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    # The client's own X-Forwarded-For is the left part; the proxy appends the address it saw.
    other = {"X-Forwarded-For": "198.51.100.7, 198.51.100.8"}
    assert proxy.get("/verify/M1-2026-000001?code=X", headers=other).status_code == 404


def test_rate_limits_are_off_when_the_settings_say_so(settings: Settings, bound_database: Any) -> None:
    app = create_app(settings, database=bound_database)  # the test settings: RATELIMIT_ENABLED=false
    client = visitor(app, "203.0.113.70")
    for _ in range(allowed(security.VERIFY_LOOKUP_PER_ADDRESS) + 5):
        assert client.get("/verify/M1-2026-000001?code=X").status_code == 404


# -- storage: Redis shared by workers, and Redis gone --------------------------------------------


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.mark.xdist_group("redis-db-9")
def test_two_app_instances_share_the_limits_in_redis(
    settings: Settings, bound_database: Any, redis_db: redis.Redis
) -> None:
    worker_a = limited_app(settings, bound_database, redis_url=REDIS_URL)
    worker_b = limited_app(settings, bound_database, redis_url=REDIS_URL)
    a, b = visitor(worker_a, "203.0.113.80"), visitor(worker_b, "203.0.113.80")
    attempts = allowed(security.LOGIN_PER_ADDRESS)
    tokens = {a: csrf_token(a), b: csrf_token(b)}
    for n in range(attempts):
        client = a if n % 2 else b  # half the attempts reach each worker
        assert sign_in(client, f"nobody{n}@example.test", "wrong", tokens[client]).status_code == 401

    # Worker B has seen only half the attempts itself: it refuses because Redis holds the count.
    assert sign_in(b, "nobody@example.test", "wrong", tokens[b]).status_code == 429
    assert sign_in(a, "nobody@example.test", "wrong", tokens[a]).status_code == 429
    assert any(b"LIMITER/issuer/" in key for key in redis_db.scan_iter()), "nothing was counted in Redis"
    stored = b" ".join(redis_db.scan_iter())
    assert b"nobody" not in stored, "an e-mail address was written into the limiter's keys"


def test_limits_stay_in_force_in_memory_when_redis_cannot_be_reached(
    settings: Settings, bound_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = limited_app(settings, bound_database, redis_url=NO_REDIS_URL)
    client = visitor(app, "203.0.113.90")
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        for _ in range(allowed(security.VERIFY_LOOKUP_PER_ADDRESS)):
            assert client.get("/verify/M1-2026-000001?code=X").status_code == 404

        assert client.get("/verify/M1-2026-000001?code=X").status_code == 429
    assert any("falling back to in-memory storage" in r.getMessage() for r in caplog.records)


# -- enumeration: letters ------------------------------------------------------------------------


@pytest.fixture
def letter(app: Flask, session: Session, settings: Settings) -> Letter:
    """One sealed letter, issued through the real services."""
    maker = factories.manufacturer(session, wmis=("LGX",))
    generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    vins = factories.random_vins("LGX", 1, seed=5)
    factories.register(session, maker, vins)
    factories.outlet(session, maker, country="KZ")
    exporter = factories.user(session, "exporter", exporter=factories.exporter(session))
    aftersales = factories.user(session, "aftersales", manufacturer=maker)
    registered = TODAY.replace(day=1)
    request, _ = submit_request(
        session=session,
        user=exporter,
        manufacturer_code=maker.code,
        application_date=TODAY,
        reference="CONTRACT-1",
        vehicles=[VehicleDeclaration(vin, "Example", "E1", registered, "KZ") for vin in vins],
    )
    decision = decide_request(
        session=session,
        user=aftersales,
        request_id=request.id,
        approve="all_eligible",
        reject=[],
        note="",
        issuance=app.extensions["issuer.issuance"],
    )
    assert decision.letter is not None
    return decision.letter


def unknown_number(letter: Letter) -> str:
    """A number of the same manufacturer and year that was never issued (the next one)."""
    prefix, serial = letter.number.rsplit("-", 1)
    return f"{prefix}-{int(serial) + 1:06d}"


def wrong_codes(code: str) -> list[str]:
    flipped = ("B" if code[0] == "A" else "A") + code[1:]
    return ["", flipped, code[:-1], code + "A", code.replace("-", "")[::-1], "A" * 200]


@pytest.fixture
def statements(connection: Connection) -> Iterator[list[str]]:
    """The SQL statements the app runs (all of them go through the test's connection)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    yield seen
    event.remove(connection, "before_cursor_execute", record)


@pytest.fixture
def code_comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Each comparison of a verification code (hmac.compare_digest inside codes_match)."""
    calls: list[tuple[str, str]] = []
    compare = letter_service.codes_match

    def counted(expected: str, given: str) -> bool:
        calls.append((expected, given))
        return compare(expected, given)

    monkeypatch.setattr(letter_service, "codes_match", counted)
    return calls


def test_wrong_code_and_unknown_number_get_identical_answers_and_do_the_same_work(
    app: Flask, letter: Letter, statements: list[str], code_comparisons: list[tuple[str, str]]
) -> None:
    client = app.test_client()
    answers = [client.get(f"/api/v1/verify/{unknown_number(letter)}?code={letter.verification_code}")]
    answers.append(client.get(f"/api/v1/verify/{letter.number}"))
    for code in wrong_codes(letter.verification_code):
        answers.append(client.get(f"/api/v1/verify/{letter.number}", query_string={"code": code}))

    assert {a.status_code for a in answers} == {404}
    assert len({a.get_data() for a in answers}) == 1
    assert len({tuple(sorted((k, v) for k, v in a.headers if k not in VARYING_HEADERS)) for a in answers}) == 1
    right = client.get(f"/api/v1/verify/{letter.number}", query_string={"code": letter.verification_code.lower()})
    assert right.status_code == 200
    assert right.get_json()["status"] == "valid"

    client.get("/verify")  # the session (and its CSRF token) exists before the pages compared

    def page(number: str, code: str) -> tuple[int, str, str]:
        answer = client.get(f"/verify/{number}", query_string={"code": code})
        # The number typed is shown back (so the visitor sees what was asked): blank it, and the
        # CSRF token of the language switch, which carries a timestamp.
        html = CSRF.sub("csrf", answer.get_data(as_text=True)).replace(number, "NUMBER")
        return answer.status_code, answer.headers.get("Set-Cookie", ""), html

    unknown = page(unknown_number(letter), letter.verification_code)
    for code in wrong_codes(letter.verification_code):
        assert page(letter.number, code) == unknown
    assert unknown[0] == 404
    assert letter.verification_code not in unknown[2]
    assert client.get(f"/verify/{letter.number}", query_string={"code": letter.verification_code}).status_code == 200

    # The same work: one look-up by number, then one constant-time comparison, even without a letter.
    work = {}
    for case, path in {
        "unknown number": f"/api/v1/verify/{unknown_number(letter)}?code={letter.verification_code}",
        "wrong code": f"/api/v1/verify/{letter.number}?code={wrong_codes(letter.verification_code)[1]}",
        "unknown number, page": f"/verify/{unknown_number(letter)}?code={letter.verification_code}",
        "wrong code, page": f"/verify/{letter.number}?code={wrong_codes(letter.verification_code)[1]}",
    }.items():
        statements.clear()
        code_comparisons.clear()
        assert client.get(path).status_code == 404
        work[case] = ([SAVEPOINT.sub("savepoint", s) for s in statements], len(code_comparisons))
    assert work["unknown number"] == work["wrong code"]
    assert work["unknown number, page"] == work["wrong code, page"]
    assert work["unknown number"][1] == 1
    queries = [s for s in work["unknown number"][0] if "savepoint" not in s]
    assert len(queries) == 1
    assert "FROM letters" in queries[0]


def test_letter_numbers_are_sequential_so_the_code_is_the_secret(session: Session) -> None:
    """Issuance takes its number from allocate_number: anyone can guess the next number."""
    maker = factories.manufacturer(session)
    numbers = [letter_service.allocate_number(session, maker, TODAY.year) for _ in range(3)]
    assert numbers == [f"{maker.code}-{TODAY.year}-{serial:06d}" for serial in (1, 2, 3)]


def test_verification_codes_carry_80_random_bits() -> None:
    alphabet = letter_service.CODE_ALPHABET
    length = 4 * letter_service.CODE_GROUPS
    bits = length * math.log2(len(alphabet))
    assert len(set(alphabet)) == len(alphabet) == 32
    assert bits == 80
    codes = [letter_service.new_verification_code() for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(rf"[{alphabet}]{{4}}(-[{alphabet}]{{4}}){{3}}", c) for c in codes)
    # Every character is used about equally (1,000 times each expected; 300 is ~10 standard deviations).
    counts = Counter("".join(codes).replace("-", ""))
    assert set(counts) == set(alphabet)
    assert all(700 <= n <= 1300 for n in counts.values()), counts


def test_the_lookup_limits_make_guessing_a_code_infeasible() -> None:
    """At the hourly limit an address makes 12,000 guesses a day. A million addresses guessing
    for ten years find one given letter's code with a chance of 3.6e-11; ten thousand addresses
    guessing for a year, against a million letters (their numbers are easy to guess), find any
    code with a chance of 3.6e-8. Against a single address the limit divides the rate a server
    could answer (say 1,000 a second) by 7,200."""
    per_hour = max(parse_many(security.VERIFY_LOOKUP_PER_ADDRESS), key=lambda item: item.get_expiry())
    assert per_hour.get_expiry() == 3600
    per_address_per_day = per_hour.amount * 24
    assert per_address_per_day == 12_000
    codes = len(letter_service.CODE_ALPHABET) ** (4 * letter_service.CODE_GROUPS)
    assert codes == 2**80
    one_letter = 1_000_000 * per_address_per_day * 365 * 10 / codes
    any_letter = 10_000 * per_address_per_day * 365 * 1_000_000 / codes
    assert one_letter < 4e-11
    assert any_letter < 4e-8
    assert 1_000 * 86_400 / per_address_per_day == 7_200


# -- enumeration: accounts and tokens ------------------------------------------------------------


def test_unknown_email_wrong_password_and_inactive_account_get_the_same_answer_and_the_same_work(
    app: Flask, session: Session, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = factories.user(session, "exporter", exporter=factories.exporter(session))
    inactive = factories.user(session, "exporter", exporter=factories.exporter(session))
    inactive.active = False
    session.commit()
    hashes: list[str] = []
    verify = accounts.password_matches

    def counted(password_hash: str, password: str) -> bool:
        hashes.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(accounts, "password_matches", counted)
    client = app.test_client()
    token = csrf_token(client)

    def attempt(email: str, password: str) -> tuple[int, str, int, list[str]]:
        statements.clear()
        hashes.clear()
        answer = sign_in(client, email, password, token)
        html = CSRF.sub("csrf", answer.get_data(as_text=True)).replace(email, "EMAIL")
        return answer.status_code, html, len(hashes), [s for s in statements if "users" in s]

    unknown = attempt("nobody@example.test", "wrong-password")
    assert unknown[0] == 401
    assert unknown[2] == 1, "an unknown e-mail must cost one password hash too"
    assert attempt(known.email, "wrong-password") == unknown
    assert attempt(inactive.email, factories.PASSWORD) == unknown


def test_unknown_revoked_and_deactivated_tokens_get_identical_401_answers(
    app: Flask, session: Session, exporter: User
) -> None:
    revoked = factories.token(session, exporter)
    session.query(ApiToken).filter(ApiToken.user_id == exporter.id).one().revoked_at = clock.now_utc()
    deactivated_user = factories.user(session, "exporter", exporter=exporter.exporter)
    deactivated = factories.token(session, deactivated_user)
    deactivated_user.active = False
    session.commit()
    client = app.test_client()
    answers = [
        client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})
        for token in ("isr_" + "A" * 43, revoked, deactivated)
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.get_data() for a in answers}) == 1
    assert len({tuple(sorted((k, v) for k, v in a.headers if k not in VARYING_HEADERS)) for a in answers}) == 1
