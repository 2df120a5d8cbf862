"""Backup and restore: one archive holding the database, the letters and the seal keys.

``issuer backup FILE`` writes a gzip-compressed tar:

    manifest.json              first: format, issuer version, schema revision, backend, the
                               tables with their columns and row counts, every member's SHA-256
    database/<table>.jsonl     one JSON object per row, the tables in foreign-key order
    keys/<file>                the private key files the database names, byte for byte

The letters are rows of ``letters``: their sealed PDFs are stored in ``letters.pdf``, so they
are in ``database/letters.jsonl`` and come back byte for byte (verification compares SHA-256).

Decisions:

- **One consistent snapshot.** Every table is read in one transaction: on PostgreSQL a
  REPEATABLE READ READ ONLY one, on SQLite one read transaction (WAL gives it a fixed
  snapshot). Writers are not blocked; what they commit meanwhile is not in the archive, so
  row counts, references and the audit chain always agree with each other. Key files are
  written before their row commits and never changed or deleted, so every key the snapshot
  names is on disk; only those files are archived (other files of the keys folder, e.g. a
  README or a file left by a failed generation, are not the database's).
- **Backend-neutral rows.** Values are encoded by column type, not by backend: dates ISO 8601,
  times ISO 8601 in UTC with the offset (SQLite's naive values are UTC, as ``UtcDateTime``
  stores them), binary columns (``letters.pdf``, ``manufacturers.seal_image``) base64, JSON
  columns as the exact JSON text stored (so SQL NULL and JSON ``null`` stay apart and the text
  stays byte for byte). So a SQLite archive restores into PostgreSQL and back.
- **Keys stay encrypted.** The key files are archived as they are, encrypted with
  ISSUER_KEY_PASSPHRASE; a key file that is not an encrypted PKCS#8 PEM is refused, never
  archived. Nothing here decrypts a key except restore's check that the passphrase of the
  restoring server opens each key and that it matches its certificate (a restore that could
  not seal would be found out only at the next letter).
- **The archive is written atomically**, mode 0600: into a private temporary folder beside
  FILE, then linked to FILE, so FILE is either absent or complete. An existing FILE is never
  overwritten.
- **Restore only into an empty database at the archive's schema revision**, and a keys folder
  without seal keys. There is no ``--replace``: replacing would mean deleting the audit trail,
  which the database refuses by design. Restore into a new database, then point DATABASE_URL
  at it. An archive of a revision this issuer does not know (a newer issuer) is refused; an
  older one restores into a database migrated to that revision (``issuer db upgrade
  --revision R``), after which ``issuer db upgrade`` brings it up to date.
- **Verified before anything is written.** The manifest, every member's name, type, size and
  SHA-256, and the keys are checked on a first reading; member names are only ever compared
  with the manifest's, whose names must be plain (``database/<table>.jsonl``, ``keys/<file>``),
  so a member such as ``../../x`` is refused and nothing is ever extracted by its name.
- **All or nothing.** The rows are inserted in one transaction, reading the archive a second
  time and checking the checksums again on the way. The key files are written each under a
  temporary name and linked into place (never over an existing file) before the commit; if
  anything fails, the transaction is rolled back and the files written are removed.
- **Ids are kept**, so every reference, the letters' numbers and the audit trail's hash chain
  (entries and head) come back intact; rows that reference a later row of their own table
  (``letters.superseded_by_id``) are linked after every row is in; PostgreSQL's sequences are
  moved past the restored ids, and the letter counters are rows, so new numbers never collide.
- **Neither backup nor restore is an audit entry**: a backup changes nothing, and a restore
  must give back the trail exactly as it was (who ran either command is the operating
  system's record). ``issuer backup`` prints the audit head (``SEQ:HASH``), an anchor for
  ``issuer audit verify --anchor`` on the restored database.
- What comes back as it was is the data, so messages queued in the outbox are delivered after
  a restore, and an import job that was running is marked failed when next shown (its upload
  is not in the archive).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_pem_x509_certificate
from sqlalchemy import MetaData, Table, Text, bindparam, cast, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import JSON, Boolean, Date, DateTime, Integer, LargeBinary, String

from issuer import clock
from issuer.errors import Conflict, ValidationFailed
from issuer.models import GENESIS_HASH

FORMAT = "issuer-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 10 * 1024 * 1024
MAX_KEY_FILE_BYTES = 1024 * 1024
# Rows go to the database in batches of at most this many rows and bytes, and are read in
# pages of ROWS_PER_READ (a table with binary columns — letters' PDFs — in small pages), so
# memory stays bounded whatever the size of the database.
BATCH_ROWS = 500
BATCH_BYTES = 16 * 1024 * 1024
ROWS_PER_READ = 2000
BINARY_ROWS_PER_READ = 20
ENCRYPTED_KEY_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
# Names an archive may hold, and a key file name (it becomes a path inside the keys folder).
TABLE_MEMBER = re.compile(r"database/([a-z_][a-z0-9_]{0,62})\.jsonl")
KEY_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Rows the migrations themselves write: a database holding only these is empty.
SEED_ROWS = {"audit_head": [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}]}
SKIPPED_TABLES = {"alembic_version"}  # the revision is the manifest's, not a table's


class ArchiveRefused(ValidationFailed):
    """The file is not a usable backup archive (damaged, incomplete, forged or unknown)."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    tables: int
    rows: int
    key_files: int
    revision: str
    backend: str
    audit_head: str  # "SEQ:HASH" of the newest audit entry, an anchor for `issuer audit verify`
    size: int


@dataclass(frozen=True)
class RestoreSummary:
    tables: int
    rows: int
    key_files: int
    revision: str
    backend: str  # the backend the archive was written from
    created_at: dt.datetime


# -- columns and values ----------------------------------------------------------------------


def _kind(table: Table, column: Any) -> str:
    """The backend-neutral kind of a reflected column, which decides how its values are written."""
    type_ = column.type
    for kind, types in (
        ("json", JSON),
        ("binary", LargeBinary),
        ("datetime", DateTime),
        ("date", Date),
        ("boolean", Boolean),
        ("integer", Integer),
        ("string", String),
    ):
        if isinstance(type_, types):
            return kind
    raise ValidationFailed(f"the column {table.name}.{column.name} has a type a backup cannot carry ({type_})")


def _columns(table: Table) -> list[dict[str, str]]:
    return [{"name": column.name, "kind": _kind(table, column)} for column in table.columns]


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "binary":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "datetime":
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    if kind == "date":
        return value.isoformat()
    return value  # integer, string, boolean, and json (its stored text)


class _BadValue(ValueError):
    pass


def _decode(kind: str, value: Any, *, aware: bool) -> Any:
    """A value of the archive as the target column takes it (``aware``: a time zone column)."""
    if value is None:
        return None
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (kind == "string" and isinstance(value, str)) or (kind == "boolean" and isinstance(value, bool)):
        return value
    if kind == "json" and isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise _BadValue("not JSON text") from None
        return value
    if kind == "binary" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _BadValue("not base64") from None
    if kind == "date" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise _BadValue("not an ISO date") from None
    if kind == "datetime" and isinstance(value, str):
        try:
            instant = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _BadValue("not an ISO date and time") from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=dt.UTC)
        instant = instant.astimezone(dt.UTC)
        return instant if aware else instant.replace(tzinfo=None)
    raise _BadValue(f"not a {kind} value")


# -- the schema ------------------------------------------------------------------------------


def _tables(connection: Connection) -> list[Table]:
    """The database's tables as they are (reflected, whatever the revision), parents first."""
    reflected = MetaData()
    reflected.reflect(bind=connection)
    return [table for table in reflected.sorted_tables if table.name not in SKIPPED_TABLES]


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _known_revisions(engine: Engine) -> set[str]:
    from issuer.migrate import alembic_config

    return {script.revision for script in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()}


def _self_references(table: Table) -> list[str]:
    """Columns referencing the table itself: inserted empty, set once every row is in."""
    return sorted({fk.parent.name for fk in table.foreign_keys if fk.column.table is table})


# -- backup ----------------------------------------------------------------------------------


def write_backup(*, engine: Engine, keys_dir: Path, path: Path) -> BackupSummary:
    """Write the archive of the database and its seal keys to ``path`` (which must not exist)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise Conflict(f"{path} already exists; a backup never overwrites a file")
    if not path.parent.is_dir():
        raise ValidationFailed(f"the folder {path.parent} does not exist")
    created_at = clock.now_utc()
    with tempfile.TemporaryDirectory(prefix=".issuer-backup-", dir=path.parent) as staging_name:
        staging = Path(staging_name)
        snapshot = _snapshot(engine, keys_dir, staging)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": created_at.isoformat(),
            "issuer_version": _issuer_version(),
            "database": {
                "backend": snapshot.backend,
                "revision": snapshot.revision,
                "audit_head": snapshot.audit_head,
            },
            "tables": snapshot.tables,
            "members": snapshot.members,
        }
        partial = staging / "archive.tar.gz"
        _write_archive(partial, manifest, snapshot, staging, created_at)
        try:
            os.link(partial, path)  # never over an existing file, and FILE appears complete
        except FileExistsError:
            raise Conflict(f"{path} already exists; a backup never overwrites a file") from None
        _sync_folder(path.parent)
    return BackupSummary(
        path=path,
        tables=len(snapshot.tables),
        rows=sum(table["rows"] for table in snapshot.tables),
        key_files=len(snapshot.key_files),
        revision=snapshot.revision,
        backend=snapshot.backend,
        audit_head=snapshot.audit_head,
        size=path.stat().st_size,
    )


@dataclass
class _Snapshot:
    backend: str
    revision: str
    audit_head: str
    tables: list[dict[str, Any]]
    members: list[dict[str, Any]]
    key_files: dict[str, bytes]


def _snapshot(engine: Engine, keys_dir: Path, staging: Path) -> _Snapshot:
    """Every table, in one read-only transaction, as JSON lines in ``staging``; the key files."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            revision = _revision(connection)
            if revision is None:
                raise ValidationFailed("the database is not set up (no schema revision); there is nothing to back up")
            tables, members = [], []
            (staging / "database").mkdir()
            for table in _tables(connection):
                member, rows, digest, size = _dump_table(connection, table, staging)
                tables.append({"name": table.name, "member": member, "rows": rows, "columns": _columns(table)})
                members.append({"name": member, "sha256": digest, "bytes": size})
            head = connection.execute(text("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")).first()
            key_names = sorted(connection.scalars(text("SELECT key_file FROM seal_keys")))
            backend = connection.dialect.name
    key_files = {name: _key_file_to_archive(keys_dir, name) for name in key_names}
    for name, content in key_files.items():
        members.append({"name": f"keys/{name}", "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)})
    return _Snapshot(
        backend=backend,
        revision=revision,
        audit_head=f"{head[0]}:{head[1]}" if head is not None else f"0:{GENESIS_HASH}",
        tables=tables,
        members=members,
        key_files=key_files,
    )


def _dump_table(connection: Connection, table: Table, staging: Path) -> tuple[str, int, str, int]:
    kinds = {column.name: _kind(table, column) for column in table.columns}
    # JSON columns are read as the text stored, so the archive holds exactly that text.
    selected = [cast(c, Text).label(c.name) if kinds[c.name] == "json" else c for c in table.columns]
    query = select(*selected).order_by(*table.primary_key.columns)
    member = f"database/{table.name}.jsonl"
    digest, rows, size = hashlib.sha256(), 0, 0
    descriptor = os.open(staging / member, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    per_read = BINARY_ROWS_PER_READ if "binary" in kinds.values() else ROWS_PER_READ
    with os.fdopen(descriptor, "wb") as out:
        for row in connection.execute(query.execution_options(yield_per=per_read)):
            values = {name: _encode(kinds[name], value) for name, value in row._mapping.items()}
            line = (json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            out.write(line)
            digest.update(line)
            rows, size = rows + 1, size + len(line)
    return member, rows, digest.hexdigest(), size


def _key_file_to_archive(keys_dir: Path, name: str) -> bytes:
    if not KEY_FILE.fullmatch(name):
        raise ValidationFailed(f"the seal key file name {name!r} in the database is not a plain file name")
    try:
        content = (keys_dir / name).read_bytes()
    except FileNotFoundError:
        raise ValidationFailed(
            f"the seal key file {name} named by the database is missing from the keys folder {keys_dir}; "
            "an archive without it could not seal letters after a restore"
        ) from None
    if not content.lstrip().startswith(ENCRYPTED_KEY_HEADER):
        raise ValidationFailed(f"the seal key file {name} is not encrypted; a backup holds keys only encrypted")
    return content


def _issuer_version() -> str:
    try:
        return package_metadata.version("issuer")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def _tar_entry(name: str, size: int, created_at: dt.datetime) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = size, 0o600, int(created_at.timestamp())
    return entry


def _write_archive(
    partial: Path, manifest: dict[str, Any], snapshot: _Snapshot, staging: Path, created_at: dt.datetime
) -> None:
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
            manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
            tar.addfile(_tar_entry(MANIFEST, len(manifest_bytes), created_at), io.BytesIO(manifest_bytes))
            for member in manifest["members"]:
                name = member["name"]
                if name.startswith("keys/"):
                    content = snapshot.key_files[name.removeprefix("keys/")]
                    tar.addfile(_tar_entry(name, len(content), created_at), io.BytesIO(content))
                else:
                    with (staging / name).open("rb") as rows:
                        tar.addfile(_tar_entry(name, member["bytes"], created_at), rows)
        out.flush()
        os.fsync(out.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a new name in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# -- reading an archive ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Manifest:
    created_at: dt.datetime
    issuer_version: str
    backend: str
    revision: str
    tables: list[dict[str, Any]]  # name, member, rows, columns — in the archive's order
    members: dict[str, dict[str, Any]]  # name -> sha256, bytes

    @property
    def key_members(self) -> list[str]:
        return [name for name in self.members if name.startswith("keys/")]


def _parse_manifest(raw: bytes) -> _Manifest:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ArchiveRefused("the archive's manifest is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveRefused("the archive is not an issuer backup (its manifest names another format)")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ArchiveRefused(
            f"the archive's format version {version!r} is not one this issuer reads (it reads {FORMAT_VERSION}); "
            "restore it with the issuer version that wrote it"
        )
    try:
        database = document["database"]
        created_at = dt.datetime.fromisoformat(document["created_at"])
        members = {}
        for member in document["members"]:
            name, digest, size = member["name"], member["sha256"], member["bytes"]
            if not isinstance(name, str) or not (
                TABLE_MEMBER.fullmatch(name) or (name.startswith("keys/") and KEY_FILE.fullmatch(name[5:]))
            ):
                raise ArchiveRefused(f"the archive's manifest names the member {name!r}, which is not a plain name")
            if name in members:
                raise ArchiveRefused(f"the archive's manifest names the member {name} twice")
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) and isinstance(size, int)):
                raise ArchiveRefused(f"the archive's manifest gives no usable checksum and size for {name}")
            members[name] = {"sha256": digest, "bytes": size}
        tables = []
        for table in document["tables"]:
            entry = {
                "name": str(table["name"]),
                "member": str(table["member"]),
                "rows": int(table["rows"]),
                "columns": [(str(c["name"]), str(c["kind"])) for c in table["columns"]],
            }
            if entry["member"] != f"database/{entry['name']}.jsonl" or entry["member"] not in members:
                raise ArchiveRefused(f"the archive's manifest lists the table {entry['name']} without its member")
            tables.append(entry)
        manifest = _Manifest(
            created_at=created_at,
            issuer_version=str(document.get("issuer_version") or "unknown"),
            backend=str(database["backend"]),
            revision=str(database["revision"]),
            tables=tables,
            members=members,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchiveRefused(f"the archive's manifest is incomplete ({type(exc).__name__}: {exc})") from None
    table_members = {table["member"] for table in tables}
    strays = [name for name in members if name.startswith("database/") and name not in table_members]
    if strays:
        raise ArchiveRefused(f"the archive's manifest names {strays[0]}, which is no table of it")
    return manifest


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive read as a stream (no seeking: each member is read once, in order)."""
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            yield tar
    except ValidationFailed:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveRefused(f"{path.name} is not a readable backup archive ({exc or type(exc).__name__})") from None


def _chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    if handle is None:
        raise ArchiveRefused(f"the archive's member {member.name} is not a regular file")
    while chunk := handle.read(1024 * 1024):
        yield chunk


def _checked_member(member: tarfile.TarInfo, manifest: _Manifest, seen: set[str]) -> None:
    """Refuse a member the manifest does not list, a second copy, a link or device, a wrong size."""
    if member.name not in manifest.members:
        raise ArchiveRefused(f"the archive holds {member.name!r}, which its manifest does not list")
    if member.name in seen:
        raise ArchiveRefused(f"the archive holds {member.name} twice")
    if not member.isreg():
        raise ArchiveRefused(f"the archive's member {member.name} is not a regular file")
    expected = manifest.members[member.name]["bytes"]
    if member.size != expected:
        raise ArchiveRefused(f"{member.name} is {member.size} bytes, not the {expected} the manifest says")
    seen.add(member.name)


def _damaged(name: str) -> ArchiveRefused:
    return ArchiveRefused(f"{name} is damaged: its SHA-256 does not match the manifest")


@dataclass(frozen=True)
class VerifiedArchive:
    manifest: _Manifest
    key_files: dict[str, bytes]  # file name -> content (encrypted PEM)
    seal_keys: list[dict[str, Any]]  # the archive's seal_keys rows (key_file, certificate_pem)


def verify_archive(path: Path, *, passphrase: str | None = None) -> VerifiedArchive:
    """Read the whole archive once and check it: manifest, every member, the keys. Writes nothing.

    With ``passphrase``, every key must open with it and match its certificate."""
    path = Path(path)
    if not path.is_file():
        raise ValidationFailed(f"{path}: no such file")
    manifest: _Manifest | None = None
    seen: set[str] = set()
    key_files: dict[str, bytes] = {}
    seal_keys_lines: bytes | None = None
    with _opened(path) as tar:
        for member in tar:
            if manifest is None:
                if member.name != MANIFEST or not member.isreg() or member.size > MAX_MANIFEST_BYTES:
                    raise ArchiveRefused(f"{path.name} does not begin with the manifest of an issuer backup")
                manifest = _parse_manifest(b"".join(_chunks(tar, member)))
                continue
            _checked_member(member, manifest, seen)
            digest = hashlib.sha256()
            keep = member.name.startswith("keys/") or member.name == "database/seal_keys.jsonl"
            if member.name.startswith("keys/") and member.size > MAX_KEY_FILE_BYTES:
                raise ArchiveRefused(f"{member.name} is too big to be a seal key")
            kept = bytearray()
            for chunk in _chunks(tar, member):
                digest.update(chunk)
                if keep:
                    kept += chunk
            if digest.hexdigest() != manifest.members[member.name]["sha256"]:
                raise _damaged(member.name)
            if member.name.startswith("keys/"):
                key_files[member.name.removeprefix("keys/")] = bytes(kept)
            elif keep:
                seal_keys_lines = bytes(kept)
    if manifest is None:
        raise ArchiveRefused(f"{path.name} is empty: it holds no manifest")
    missing = [name for name in manifest.members if name not in seen]
    if missing:
        raise ArchiveRefused(f"{missing[0]} is missing from the archive ({len(missing)} member(s) missing)")
    seal_keys = _seal_key_rows(seal_keys_lines)
    _check_keys(key_files, seal_keys, passphrase)
    return VerifiedArchive(manifest=manifest, key_files=key_files, seal_keys=seal_keys)


def _seal_key_rows(lines: bytes | None) -> list[dict[str, Any]]:
    if lines is None:
        return []
    try:
        rows = [json.loads(line) for line in lines.decode("utf-8").splitlines() if line.strip()]
    except ValueError:
        raise ArchiveRefused("database/seal_keys.jsonl is not JSON lines") from None
    if not all(isinstance(row, dict) and isinstance(row.get("key_file"), str) for row in rows):
        raise ArchiveRefused("database/seal_keys.jsonl has rows without a key file")
    return rows


def _check_keys(key_files: dict[str, bytes], seal_keys: list[dict[str, Any]], passphrase: str | None) -> None:
    named = {row["key_file"] for row in seal_keys}
    for name in sorted(named):
        if not KEY_FILE.fullmatch(name):
            raise ArchiveRefused(f"the archive's seal key file name {name!r} is not a plain file name")
        if name not in key_files:
            raise ArchiveRefused(f"the seal key file {name} the archive's database names is not in the archive")
    strays = sorted(set(key_files) - named)
    if strays:
        raise ArchiveRefused(f"the archive holds the key file {strays[0]}, which no seal key of its database names")
    for row in seal_keys:
        name, content = row["key_file"], key_files[row["key_file"]]
        if not content.lstrip().startswith(ENCRYPTED_KEY_HEADER):
            raise ArchiveRefused(f"the archive's key file {name} is not an encrypted private key")
        if passphrase is None:
            continue
        _check_key_opens(name, content, str(row.get("certificate_pem") or ""), passphrase)


def _check_key_opens(name: str, content: bytes, certificate: str, passphrase: str) -> None:
    """The key opens with ``passphrase`` (in memory only) and is the certificate's."""
    try:
        private_key = serialization.load_pem_private_key(content, password=passphrase.encode("utf-8"))
    except (ValueError, TypeError):
        raise ArchiveRefused(
            f"the seal key {name} in the archive cannot be decrypted with this server's ISSUER_KEY_PASSPHRASE; "
            "restore with the passphrase the keys were made with"
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        certified = load_pem_x509_certificate(certificate.encode("ascii")).public_key()
    except ValueError:
        raise ArchiveRefused(f"the certificate of the seal key {name} in the archive cannot be read") from None
    if private_key.public_key().public_bytes(serialization.Encoding.DER, spki) != certified.public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise ArchiveRefused(f"the seal key file {name} in the archive does not belong to its certificate")


# -- restore ---------------------------------------------------------------------------------


def restore_backup(*, engine: Engine, keys_dir: Path, passphrase: str, path: Path) -> RestoreSummary:
    """Bring an archive back into an empty database and a keys folder without keys; all or nothing."""
    path, keys_dir = Path(path), Path(keys_dir)
    verified = verify_archive(path, passphrase=passphrase)
    manifest = verified.manifest
    _check_keys_folder(keys_dir, verified.key_files)
    if manifest.revision not in _known_revisions(engine):
        raise ArchiveRefused(
            f"the archive's schema revision {manifest.revision} is unknown to this issuer "
            f"(the archive was written by issuer {manifest.issuer_version}); restore it with that version"
        )
    placed: list[Path] = []
    created_folder = not keys_dir.exists()
    try:
        with engine.connect() as connection, connection.begin():
            tables = _check_target(connection, manifest)
            rows = _insert_rows(connection, path, manifest, tables)
            _reset_sequences(connection, tables)
            placed = _place_keys(keys_dir, verified.key_files)
    except BaseException:
        for key_path in placed:
            key_path.unlink(missing_ok=True)
        if created_folder:
            with contextlib.suppress(OSError):
                keys_dir.rmdir()
        raise
    return RestoreSummary(
        tables=len(manifest.tables),
        rows=rows,
        key_files=len(placed),
        revision=manifest.revision,
        backend=manifest.backend,
        created_at=manifest.created_at,
    )


def _check_keys_folder(keys_dir: Path, key_files: dict[str, bytes]) -> None:
    if not keys_dir.exists():
        return
    if not keys_dir.is_dir():
        raise Conflict(f"the keys folder {keys_dir} is not a folder")
    present = sorted(p.name for p in keys_dir.iterdir() if p.name.endswith(".key.pem") or p.name in key_files)
    if present:
        raise Conflict(
            f"the keys folder {keys_dir} already holds seal keys ({', '.join(present[:3])}"
            f"{', …' if len(present) > 3 else ''}); restore into a keys folder without keys"
        )


def _check_target(connection: Connection, manifest: _Manifest) -> list[Table]:
    """The database must be at the archive's revision, have its tables and columns, and be empty."""
    current = _revision(connection)
    if current != manifest.revision:
        state = f"is at {current}" if current else "is not set up"
        raise Conflict(
            f"the archive holds schema revision {manifest.revision} and the database {state}: "
            f"restore into a new database migrated with `issuer db upgrade --revision {manifest.revision}`, "
            "then run `issuer db upgrade`"
        )
    tables = _tables(connection)
    if [t.name for t in tables] != [t["name"] for t in manifest.tables]:
        raise ArchiveRefused("the archive's tables are not those of this schema revision")
    for table, entry in zip(tables, manifest.tables, strict=True):
        if [(c["name"], c["kind"]) for c in _columns(table)] != entry["columns"]:
            raise ArchiveRefused(f"the archive's table {table.name} has other columns than this schema's")
    filled = []
    for table in tables:
        count = connection.scalar(select(func.count()).select_from(table)) or 0
        seed = SEED_ROWS.get(table.name)
        if seed is not None and [dict(row._mapping) for row in connection.execute(select(table))] == seed:
            continue
        if count:
            filled.append(f"{table.name}: {count} row(s)")
    if filled:
        raise Conflict(
            f"the database is not empty ({', '.join(filled[:4])}{', …' if len(filled) > 4 else ''}); "
            "restore into a new database migrated with `issuer db upgrade`"
        )
    for table in tables:
        if table.name in SEED_ROWS:
            connection.execute(delete(table))  # the migration's row; the archive holds the real one
    return tables


class _Lines:
    """A member's lines, hashed on the way, so a file changed since its check is found again."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self._chunks:
            self.digest.update(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if pending:
            yield pending


def _insert_rows(connection: Connection, path: Path, manifest: _Manifest, tables: list[Table]) -> int:
    by_member = {entry["member"]: (table, entry) for table, entry in zip(tables, manifest.tables, strict=True)}
    done: set[str] = set()
    total = 0
    with _opened(path) as tar:
        for member in tar:
            if member.name not in by_member:
                continue  # the manifest and the keys, checked and kept on the first reading
            table, entry = by_member[member.name]
            lines = _Lines(_chunks(tar, member))
            try:
                count = _insert_table(connection, table, member.name, lines)
            except DBAPIError as exc:  # a forged row: a broken reference, a duplicate, a bad value
                reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
                raise ArchiveRefused(f"{member.name}: the database refuses its rows ({reason})") from None
            if lines.digest.hexdigest() != manifest.members[member.name]["sha256"]:
                raise _damaged(member.name)
            if count != entry["rows"]:
                raise ArchiveRefused(f"{member.name} holds {count} rows, not the {entry['rows']} the manifest says")
            done.add(member.name)
            total += count
    if len(done) != len(by_member):
        raise ArchiveRefused("the archive changed while it was restored")
    return total


def _insert_table(connection: Connection, table: Table, member: str, lines: _Lines) -> int:
    kinds = {column.name: _kind(table, column) for column in table.columns}
    aware = {column.name: bool(getattr(column.type, "timezone", False)) for column in table.columns}
    names = set(kinds)
    later = _self_references(table)
    if later and len(table.primary_key.columns) != 1:
        raise ValidationFailed(f"the table {table.name} refers to itself without a one-column primary key")
    key = next(iter(table.primary_key.columns), None)
    values: dict[str, Any] = {}
    for column in table.columns:
        if kinds[column.name] == "json":
            # The JSON text as archived: PostgreSQL casts it, SQLite stores text as it is.
            parameter = bindparam(f"v_{column.name}", type_=Text())
            values[column.name] = (
                cast(parameter, column.type) if connection.dialect.name == "postgresql" else parameter
            )
        else:
            values[column.name] = bindparam(f"v_{column.name}", type_=column.type)
    statement = insert(table).values(values)
    links: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    count = batch_bytes = 0
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or set(row) != names:
                raise _BadValue(f"not a row of {table.name}")
            decoded = {name: _decode(kinds[name], value, aware=aware[name]) for name, value in row.items()}
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveRefused(f"{member} line {number}: {exc}") from None
        if later and any(decoded[name] is not None for name in later):
            links.append({"k": decoded[key.name], **{f"v_{n}": decoded[n] for n in later}})
            decoded.update(dict.fromkeys(later))
        batch.append({f"v_{name}": value for name, value in decoded.items()})
        count, batch_bytes = count + 1, batch_bytes + len(line)
        if len(batch) >= BATCH_ROWS or batch_bytes >= BATCH_BYTES:
            connection.execute(statement, batch)
            batch, batch_bytes = [], 0
    if batch:
        connection.execute(statement, batch)
    if links and key is not None:
        link = update(table).where(key == bindparam("k")).values({n: bindparam(f"v_{n}") for n in later})
        connection.execute(link, links)
    return count


def _reset_sequences(connection: Connection, tables: list[Table]) -> None:
    """Move PostgreSQL's sequences past the restored ids (SQLite takes the largest rowid + 1)."""
    if connection.dialect.name != "postgresql":
        return
    quote = connection.dialect.identifier_preparer.quote
    for table in tables:
        for column in table.primary_key.columns:
            sequence = connection.scalar(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quote(table.name), "column": column.name},
            )
            if sequence is None:
                continue
            highest = connection.scalar(select(func.max(column)))
            connection.execute(
                text("SELECT setval(:sequence, :value, :called)"),
                {"sequence": sequence, "value": highest or 1, "called": highest is not None},
            )


def _place_keys(keys_dir: Path, key_files: dict[str, bytes]) -> list[Path]:
    """Write each key under a temporary name, then link it into place (never over a file).

    Returns the files placed; the caller removes them if the restore fails after all."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    placed: list[Path] = []
    try:
        for name, content in sorted(key_files.items()):
            target = keys_dir / name
            descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".restoring", dir=keys_dir)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temporary, 0o600)
                try:
                    os.link(temporary, target)
                except FileExistsError:
                    raise Conflict(f"the keys folder {keys_dir} already holds {name}") from None
                placed.append(target)
            finally:
                os.unlink(temporary)
    except BaseException:
        for key_path in placed:
            key_path.unlink(missing_ok=True)
        raise
    _sync_folder(keys_dir)
    return placed
