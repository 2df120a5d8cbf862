"""The ``issuer`` command line: thin wrappers over the services.

Bad input on any command prints one line ``error: <problem>`` (import files add one line per bad
row) and exits with code 2; nothing is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from issuer.config import ConfigurationError
from issuer.errors import ImportRejected, IssuerError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BAD_INPUT = 2


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def reports_errors(command: F) -> F:
    """Turn the service errors into a one-line message and exit code 2."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ImportRejected as exc:
            head, _, rows = exc.message.partition("\n")
            click.echo(f"error: {head}", err=True)
            if rows:
                click.echo(rows, err=True)
            sys.exit(EXIT_BAD_INPUT)
        except IssuerError as exc:
            fail(exc.message)
        except IntegrityError as exc:
            fail(f"the change conflicts with existing data ({exc.orig})")
        except (OperationalError, ProgrammingError) as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
            if any(word in reason.lower() for word in ("no such table", "no such column", "does not exist")):
                fail(f"the database is not set up or not up to date ({reason}); run `issuer db upgrade`")
            fail(f"the database refused the operation ({reason})")

    return run  # type: ignore[return-value]


class OneLineUsageError(click.UsageError):
    """Click's own usage errors (a missing option, an unknown command) as the one line
    ``error: <problem>`` that every bad input gets, instead of usage text; exit code 2."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _OneLineUsage:
    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)  # type: ignore[misc]
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from exc


class Command(_OneLineUsage, click.Command):
    pass


class Group(_OneLineUsage, AppGroup):
    command_class = Command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from exc


def _session():  # type: ignore[no-untyped-def]
    return current_app.extensions["issuer.db"].session()


# -- db ----------------------------------------------------------------------------------------

db_group = Group("db", help="Database schema.")


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""
    from issuer.migrate import upgrade

    upgrade(current_app.extensions["issuer.db"].engine, revision)
    click.echo(f"database at revision {revision}")


@db_group.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from issuer.migrate import current_revision

    click.echo(current_revision(current_app.extensions["issuer.db"].engine) or "(empty database)")


# -- organisations -----------------------------------------------------------------------------

manufacturer_group = Group("manufacturer", help="Manufacturers (tenants).")


@manufacturer_group.command("create")
@click.option("--code", required=True, help="short code, e.g. GWM")
@click.option("--name", required=True, help="the MIIT-listed Chinese name, printed on letters")
@click.option("--name-en", required=True, help="English name")
@click.option("--uscc", required=True, help="unified social credit code (18 characters)")
@click.option("--wmi", "wmis", multiple=True, required=True, help="WMI, or WMI/positions 12-14 for small makers")
@click.option(
    "--type",
    "manufacturer_type",
    default="vehicle_manufacturer",
    show_default=True,
    help="vehicle_manufacturer | modified_vehicle_manufacturer | sales_company | "
    "overseas_sales_department | overseas_dealer",
)
@reports_errors
def manufacturer_create(
    code: str, name: str, name_en: str, uscc: str, wmis: tuple[str, ...], manufacturer_type: str
) -> None:
    """Add a manufacturer."""
    from issuer.services.organisations import create_manufacturer

    with _session() as session:
        manufacturer = create_manufacturer(
            session=session,
            code=code,
            name=name,
            name_en=name_en,
            uscc=uscc,
            wmis=wmis,
            manufacturer_type=manufacturer_type,
        )
        wmi_list = ", ".join(str(w) for w in manufacturer.wmi_values())
        click.echo(f"manufacturer {manufacturer.code} created ({manufacturer.type}; WMI {wmi_list})")


@manufacturer_group.command("seal-image")
@click.option("--code", required=True, help="manufacturer code")
@click.argument("file", type=click.Path(dir_okay=False))
@reports_errors
def manufacturer_seal_image(code: str, file: str) -> None:
    """Upload the image of the official seal (PNG), printed on new letters."""
    from pathlib import Path

    from issuer.services.organisations import set_seal_image

    path = Path(file)
    if not path.is_file():
        fail(f"{file}: no such file")
    with _session() as session:
        manufacturer = set_seal_image(session=session, manufacturer_code=code, image=path.read_bytes())
        click.echo(f"seal image of {manufacturer.code} stored; it is printed on letters issued from now on")


exporter_group = Group("exporter", help="Exporters and manufacturers' negative lists.")


@exporter_group.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--name-en", default="")
@click.option("--uscc", required=True)
@reports_errors
def exporter_create(code: str, name: str, name_en: str, uscc: str) -> None:
    """Add an exporter organisation."""
    from issuer.services.organisations import create_exporter

    with _session() as session:
        exporter = create_exporter(session=session, code=code, name=name, name_en=name_en, uscc=uscc)
        click.echo(f"exporter {exporter.code} created")


@exporter_group.command("block")
@click.option("--manufacturer", "manufacturer_code", required=True)
@click.option("--exporter", "exporter_code", required=True)
@click.option("--reason", required=True)
@reports_errors
def exporter_block(manufacturer_code: str, exporter_code: str, reason: str) -> None:
    """Put an exporter on a manufacturer's negative list."""
    from issuer.services.organisations import block_exporter

    with _session() as session:
        block_exporter(
            session=session,
            manufacturer_code=manufacturer_code,
            exporter_code=exporter_code,
            reason=reason,
            actor="cli",
        )
        click.echo(f"exporter {exporter_code.upper()} blocked by {manufacturer_code.upper()}")


@exporter_group.command("unblock")
@click.option("--manufacturer", "manufacturer_code", required=True)
@click.option("--exporter", "exporter_code", required=True)
@click.option("--reason", default="")
@reports_errors
def exporter_unblock(manufacturer_code: str, exporter_code: str, reason: str) -> None:
    """Take an exporter off a manufacturer's negative list."""
    from issuer.services.organisations import unblock_exporter

    with _session() as session:
        unblock_exporter(
            session=session,
            manufacturer_code=manufacturer_code,
            exporter_code=exporter_code,
            reason=reason,
            actor="cli",
        )
        click.echo(f"exporter {exporter_code.upper()} unblocked by {manufacturer_code.upper()}")


# -- accounts ----------------------------------------------------------------------------------

user_group = Group("user", help="User accounts.")


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, help="manufacturer_admin | aftersales | exporter | reviewer | platform_admin")
@click.option("--manufacturer", "manufacturer_code", default=None)
@click.option("--exporter", "exporter_code", default=None)
@click.option("--password", required=True)
@reports_errors
def user_create(email: str, role: str, manufacturer_code: str | None, exporter_code: str | None, password: str) -> None:
    """Add a user."""
    from issuer.services.accounts import create_user

    with _session() as session:
        user = create_user(
            session=session,
            email=email,
            role=role,
            password=password,
            manufacturer_code=manufacturer_code,
            exporter_code=exporter_code,
        )
        click.echo(f"user {user.email} created ({user.role})")


token_group = Group("token", help="API tokens.")


@token_group.command("create")
@click.option("--email", required=True)
@click.option("--name", default="cli", show_default=True)
@reports_errors
def token_create(email: str, name: str) -> None:
    """Print a new API token for the user, alone on the last line."""
    from issuer.services.accounts import create_token

    with _session() as session:
        token = create_token(session=session, email=email, name=name)
    click.echo("New API token (shown once; store it now):")
    click.echo(token)


# -- registries --------------------------------------------------------------------------------

vehicles_group = Group("vehicles", help="The production registry.")


@vehicles_group.command("import")
@click.option("--manufacturer", "manufacturer_code", required=True)
@click.option("--skip-invalid", is_flag=True, help="write the valid rows and report the invalid ones")
@click.argument("file", type=click.Path(dir_okay=False))
@reports_errors
def vehicles_import(manufacturer_code: str, skip_invalid: bool, file: str) -> None:
    """Load the production registry from CSV or XLSX (vin,brand,model,production_date)."""
    from issuer.services.registry import import_vehicles

    with _session() as session:
        result = import_vehicles(
            session=session, manufacturer_code=manufacturer_code, path=file, skip_invalid=skip_invalid
        )
    for line, message in result.errors:
        click.echo(f"line {line}: {message} (skipped)", err=True)
    click.echo(
        f"added {result.added}, updated {result.updated}, unchanged {result.unchanged}, rejected {result.rejected}"
    )


outlets_group = Group("outlets", help="The overseas outlet registry.")


@outlets_group.command("import")
@click.option("--manufacturer", "manufacturer_code", required=True)
@click.argument("file", type=click.Path(dir_okay=False))
@reports_errors
def outlets_import(manufacturer_code: str, file: str) -> None:
    """Load outlets from CSV or XLSX."""
    from issuer.services.outlets import import_outlets

    with _session() as session:
        result = import_outlets(session=session, manufacturer_code=manufacturer_code, path=file, actor="cli")
    click.echo(
        f"added {result.added}, updated {result.updated}, unchanged {result.unchanged}, rejected {result.rejected}"
    )


@click.command("demo", cls=Command)
@with_appcontext
@reports_errors
def demo() -> None:
    """Load the demo data set (idempotent) and print the demo accounts."""
    from issuer.services.demo import load_demo

    # The app's own Issuance (keys, passphrase, public URL, sealer): demo letters are real ones.
    # Mail the demo's requests and decisions cause is delivered (or kept, without SMTP) right
    # after each commit, once: a mail thread writing the outbox while the next step reads and
    # then writes makes SQLite refuse that step ("database is locked").
    config = current_app.config
    saved = {key: config[key] for key in ("ISSUER_MAIL_INLINE", "ISSUER_MAIL_BACKOFF") if key in config}
    config.update(ISSUER_MAIL_INLINE=True, ISSUER_MAIL_BACKOFF=())
    try:
        with _session() as session:
            accounts = load_demo(session=session, issuance=current_app.extensions["issuer.issuance"])
    finally:
        for key in ("ISSUER_MAIL_INLINE", "ISSUER_MAIL_BACKOFF"):
            config.pop(key, None)
        config.update(saved)
    click.echo("Demo accounts (password for all: see below):")
    for email, role, organisation, password in accounts:
        click.echo(f"  {email:<34} {role:<19} {organisation:<10} {password}")


# -- mail --------------------------------------------------------------------------------------

mail_group = Group("mail", help="Notifications: the outbox of e-mail.")


@mail_group.command("deliver")
@click.option("--failed", "include_failed", is_flag=True, help="also queue the failed messages again")
@click.option("--kept", "include_kept", is_flag=True, help="also queue the kept ones (after configuring SMTP)")
@reports_errors
def mail_deliver(include_failed: bool, include_kept: bool) -> None:
    """Deliver the queued messages now, with retries, and print what became of them."""
    from issuer.services import audit
    from issuer.services.notifications import MailDispatcher, requeue_messages

    dispatcher: MailDispatcher = current_app.extensions["issuer.mail"]
    states = [state for state, wanted in (("failed", include_failed), ("kept", include_kept)) if wanted]
    with audit.acting_as(audit.cli_context()):
        if states:
            with _session() as session:
                click.echo(f"{requeue_messages(session=session, states=states)} message(s) queued again")
        report = dispatcher.deliver_now()
    if dispatcher.transport is None:
        click.echo(f"no SMTP server configured (ISSUER_SMTP_HOST): {report.kept} message(s) kept in the outbox")
        return
    click.echo(f"{report.sent} sent, {report.failed} failed (given up), {report.retrying} failed attempt(s) retried")


@click.command("worker", cls=Command)
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
@click.option("--name", default=None, help="the worker's name in the queue (default: host and process id)")
@click.option("--max-jobs", default=None, type=click.IntRange(1), help="stop after this many jobs")
@with_appcontext
def worker_command(burst: bool, name: str | None, max_jobs: int | None) -> None:
    """Render and seal queued letters (needs REDIS_URL). SIGTERM finishes the current letter."""
    from issuer import worker

    if current_app.extensions.get("issuer.queue") is None:
        fail("issuer worker needs REDIS_URL: without a job queue letters are sealed inline")
    worker.use_app(current_app._get_current_object())  # type: ignore[attr-defined]
    worker.run_worker(burst=burst, name=name, max_jobs=max_jobs)


def register_commands(app: Flask) -> None:
    for command in (
        db_group,
        manufacturer_group,
        exporter_group,
        user_group,
        token_group,
        vehicles_group,
        outlets_group,
        keys_group,
        mail_group,
        verify_command,
        demo,
        audit_group,
        worker_command,
        backup_command,
        restore_command,
    ):
        app.cli.add_command(command)


def _create_app_for_cli() -> Flask:
    from issuer import create_app

    try:
        return create_app()
    except ConfigurationError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


main = FlaskGroup(
    name="issuer",
    create_app=_create_app_for_cli,
    add_default_commands=True,
    load_dotenv=False,
    help="issuer: After-sales Maintenance Service Confirmation Letters.",
)


# -- seal keys ---------------------------------------------------------------------------------

keys_group = Group("keys", help="Seal keys (newest signs; old keys keep verifying).")


def _key_settings():  # type: ignore[no-untyped-def]
    settings = current_app.config["ISSUER_SETTINGS"]
    return settings.keys_dir, settings.seal_passphrase


@keys_group.command("generate")
@click.option("--manufacturer", "manufacturer_code", required=True)
@reports_errors
def keys_generate(manufacturer_code: str) -> None:
    """Create the manufacturer's seal key and a self-issued certificate."""
    from issuer.services.keys import generate_key

    keys_dir, passphrase = _key_settings()
    with _session() as session:
        key = generate_key(
            session=session, manufacturer_code=manufacturer_code, keys_dir=keys_dir, passphrase=passphrase
        )
        click.echo(f"seal key {key.kid} created ({key.algorithm}, valid to {key.not_after:%Y-%m-%d})")


@keys_group.command("rotate")
@click.option("--manufacturer", "manufacturer_code", required=True)
@reports_errors
def keys_rotate(manufacturer_code: str) -> None:
    """Replace the signing key; the old one stays published for verification."""
    from issuer.services.keys import rotate_key

    keys_dir, passphrase = _key_settings()
    with _session() as session:
        key = rotate_key(session=session, manufacturer_code=manufacturer_code, keys_dir=keys_dir, passphrase=passphrase)
        click.echo(f"seal key {key.kid} now signs for {manufacturer_code.upper()}")


@keys_group.command("import")
@click.option("--manufacturer", "manufacturer_code", required=True)
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False), help="PEM private key")
@click.option(
    "--cert",
    "cert_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate and its chain, as issued by the CA",
)
@click.option("--key-password", default=None, help="password of the PEM private key, if it has one")
@reports_errors
def keys_import(manufacturer_code: str, key_file: str, cert_file: str, key_password: str | None) -> None:
    """Make a CA-issued key and certificate chain the signing key."""
    from pathlib import Path

    from issuer.services.keys import import_key

    keys_dir, passphrase = _key_settings()
    with _session() as session:
        key = import_key(
            session=session,
            manufacturer_code=manufacturer_code,
            key_pem=Path(key_file).read_bytes(),
            certificates_pem=Path(cert_file).read_bytes(),
            key_password=key_password.encode("utf-8") if key_password else None,
            keys_dir=keys_dir,
            passphrase=passphrase,
        )
        click.echo(f"seal key {key.kid} imported and now signs for {manufacturer_code.upper()}")


# -- backup and restore ------------------------------------------------------------------------


@click.command("backup", cls=Command)
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
@reports_errors
def backup_command(file: str) -> None:
    """Write one archive of the database, the letters and the (still encrypted) seal keys."""
    from pathlib import Path

    from issuer.services.backup import write_backup

    settings = current_app.config["ISSUER_SETTINGS"]
    summary = write_backup(
        engine=current_app.extensions["issuer.db"].engine, keys_dir=settings.keys_dir, path=Path(file)
    )
    click.echo(
        f"backup written to {file}: {summary.tables} tables, {summary.rows} rows, "
        f"{summary.key_files} seal key file(s), schema revision {summary.revision}, {summary.size} bytes"
    )
    click.echo(f"audit head: {summary.audit_head}")


@click.command("restore", cls=Command)
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
@reports_errors
def restore_command(file: str) -> None:
    """Restore an archive of `issuer backup` into an empty database and keys folder."""
    from pathlib import Path

    from issuer.services.audit import verify_chain
    from issuer.services.backup import restore_backup

    settings = current_app.config["ISSUER_SETTINGS"]
    summary = restore_backup(
        engine=current_app.extensions["issuer.db"].engine,
        keys_dir=settings.keys_dir,
        passphrase=settings.seal_passphrase,
        path=Path(file),
    )
    click.echo(
        f"restored {file} (written {summary.created_at:%Y-%m-%d %H:%M:%S} UTC from {summary.backend}): "
        f"{summary.tables} tables, {summary.rows} rows, {summary.key_files} seal key file(s)"
    )
    with _session() as session:
        chain = verify_chain(session)
    state = "intact" if chain.intact else "BROKEN (see `issuer audit verify`)"
    click.echo(f"audit trail: {chain.entries_checked} entries checked: {state}")


# -- offline verification ----------------------------------------------------------------------


def _trusted_from_key_set(path: str):  # type: ignore[no-untyped-def]
    """TrustedKeys from a saved copy of /.well-known/letter-keys.json."""
    import datetime as dt
    import json
    from pathlib import Path

    from cryptography import x509

    from issuer.sealing.check import TrustedKey

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        trusted = []
        for key in document["keys"]:
            retired = key.get("retired_at")
            trusted.append(
                TrustedKey(
                    kid=key["kid"],
                    manufacturer=key["manufacturer"],
                    certificate=x509.load_pem_x509_certificate(key["certificate"].encode("ascii")),
                    not_before=dt.datetime.fromisoformat(key["not_before"]),
                    retired_at=dt.datetime.fromisoformat(retired) if retired else None,
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"{path} is not a readable letter key set ({exc})")
    return trusted


@click.command("verify", cls=Command)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--keys", "keys_file", default=None, help="a saved copy of /.well-known/letter-keys.json")
@with_appcontext
def verify_command(file: str, keys_file: str | None) -> None:
    """Check a letter PDF offline: seal, integrity, signer. Exit 0 only when authentic."""
    from pathlib import Path

    from issuer.sealing.check import check_pdf
    from issuer.services.letters import (
        ATTACHMENT_NAME,
        embedded_issuer_uscc,
        embedded_number,
        manufacturer_code_of,
        signature_reasons,
    )

    path = Path(file)
    if not path.is_file():
        fail(f"{file}: no such file")
    if keys_file:
        trusted = _trusted_from_key_set(keys_file)
    else:
        from issuer.services.letters import trusted_keys

        with _session() as session:
            trusted = trusted_keys(session)
    pdf = path.read_bytes()
    check = check_pdf(pdf, trusted=trusted, attachment_name=ATTACHMENT_NAME)
    number = embedded_number(check)
    reasons = signature_reasons(check)
    # The key must be the one of the manufacturer the letter names: by the number's prefix
    # (the key set's manufacturer code) and by the issuer's credit code in the signed data,
    # which the signer certificate must carry.
    issuer_uscc = embedded_issuer_uscc(check)
    belongs = (
        number is not None
        and check.manufacturer is not None
        and check.manufacturer == manufacturer_code_of(number)
        and issuer_uscc is not None
        and issuer_uscc in (check.signer or "")
    )
    if number is None:
        reasons.append("NO_LETTER_DATA")
    elif check.key_id is not None and not belongs:
        reasons.append("KEY_NOT_MANUFACTURERS")
    authentic = check.authentic and belongs
    yes_no = {True: "yes", False: "no"}
    click.echo(f"letter number:        {number or '-'}")
    click.echo(f"seal present:         {yes_no[check.signed]}")
    click.echo(f"content intact:       {yes_no[check.intact and check.valid]}")
    click.echo(f"covers whole file:    {yes_no[check.covers_whole_file]}")
    click.echo(f"seal key:             {check.key_id or '-'} ({check.manufacturer or 'unknown'})")
    click.echo(f"signer:               {check.signer or '-'}")
    click.echo(f"signed at:            {check.signing_time.isoformat() if check.signing_time else '-'}")
    click.echo(f"key valid then:       {yes_no[check.key_valid_at_signing]}")
    click.echo(f"key is the issuer's:  {yes_no[belongs]}")
    for problem in check.problems:
        click.echo(f"problem: {problem}")
    if keys_file or number is None:
        click.echo("status:               (offline check: revocation is shown only online, at the verification URL)")
    else:
        from issuer.services.letters import local_status

        with _session() as session:
            status, same_file = local_status(session, number=number, pdf=pdf)
        click.echo(f"status:               {status or 'not issued by this database'}")
        click.echo(f"same file as issued:  {yes_no[same_file]}")
        if status is not None and not same_file:
            reasons.append("DIFFERENT_FROM_ISSUED")
            authentic = False
    click.echo(f"AUTHENTIC: {yes_no[authentic].upper()}" + ("" if authentic else f" ({', '.join(reasons)})"))
    sys.exit(0 if authentic else 1)


# -- audit trail -------------------------------------------------------------------------------

audit_group = Group("audit", help="The audit trail (append-only, hash-chained).")


def _anchor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.strip().isdigit() or len(digest.strip()) != 64:
        fail(f"--anchor {text!r} must be SEQ:HASH as printed by an earlier `issuer audit verify`")
    return int(seq), digest.strip().lower()


@audit_group.command("verify")
@click.option("--anchor", default=None, help="SEQ:HASH printed by an earlier run, kept outside the database")
@reports_errors
def audit_verify(anchor: str | None) -> None:
    """Recompute the hash chain. Exit 0 when intact, 1 naming every broken entry."""
    from issuer.services.audit import verify_chain

    anchored = _anchor(anchor)
    with _session() as session:
        result = verify_chain(session, anchor=anchored)
    if result.intact:
        click.echo(f"{result.entries_checked} entries checked: intact")
        click.echo(f"head: {result.head_seq}:{result.head_hash}")
        return
    click.echo(f"{result.entries_checked} entries checked: BROKEN")
    for problem in result.problems:
        click.echo(f"problem: {problem}")
    sys.exit(1)


@audit_group.command("show")
@click.option("--object", "object_ref", default=None, help="TYPE:ID, e.g. letter:DYAUTO-2026-000001")
@click.option("--action", default=None, help="e.g. letter.revoked")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@reports_errors
def audit_show(object_ref: str | None, action: str | None, limit: int) -> None:
    """Print the newest entries (oldest of them first), optionally of one object or action."""
    import json

    from sqlalchemy import select

    from issuer.models import AuditEntry

    query = select(AuditEntry)
    if object_ref:
        object_type, _, object_id = object_ref.partition(":")
        if not object_type.strip() or not object_id.strip():
            fail(f"--object {object_ref!r} must be TYPE:ID, e.g. request:42")
        query = query.where(AuditEntry.object_type == object_type.strip(), AuditEntry.object_id == object_id.strip())
    if action:
        query = query.where(AuditEntry.action == action.strip())
    with _session() as session:
        entries = list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))
    for entry in reversed(entries):
        details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True) if entry.details else ""
        click.echo(
            f"{entry.seq:>6} {entry.at:%Y-%m-%d %H:%M:%S}Z {entry.action:<28} "
            f"{entry.object_type}:{entry.object_id} by {entry.actor} from {entry.origin} {details}".rstrip()
        )
